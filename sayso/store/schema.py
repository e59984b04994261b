"""The state database's tables: conversations, plans and their steps (the
effect ledger), confirmations, and the audit chain.

Idempotency lives in the schema: a step's primary key is its idempotency key.
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, Float, Integer, MetaData, String, Table, Text

metadata = MetaData()

conversations = Table(
    "conversations",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("user_id", String(128), nullable=False, index=True),
    Column("channel", String(32), nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("state", JSON, nullable=False),
    Column("updated_at", String(40)),
)

messages = Table(
    "messages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("conversation", String(64), nullable=False, index=True),
    Column("at", String(40), nullable=False),
    Column("role", String(16), nullable=False),  # person | sayso
    Column("user_id", String(128), nullable=False),
    Column("turn", String(64)),
    Column("text", Text, nullable=False),
    Column("status", String(32)),
    Column("data", JSON),
)

plans = Table(
    "plans",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("conversation", String(64), nullable=False, index=True),
    Column("turn", String(64), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("status", String(24), nullable=False, index=True),
    Column("lease_owner", String(200)),
    Column("lease_until", Float),
    Column("payload", JSON, nullable=False),
    Column("created_at", String(40), nullable=False),
)

steps = Table(
    "steps",
    metadata,
    Column("key", String(80), primary_key=True),
    Column("plan_id", String(64), nullable=False, index=True),
    Column("idx", Integer, nullable=False),
    Column("actor", String(128), nullable=False, index=True),
    Column("action", String(200), nullable=False),
    Column("status", String(24), nullable=False),
    Column("effect", JSON),
    Column("error", Text),
    Column("at", String(40)),
    # The order in which outcomes were recorded, given when the step finishes ("the last step" for undo):
    # times tie under a pinned clock or a coarse one; this never does.
    Column("seq", Integer, index=True),
)

confirmations = Table(
    "confirmations",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("approver", String(128), nullable=False, index=True),
    Column("requester", String(128), nullable=False),
    Column("conversation", String(64), nullable=False),
    Column("plan", JSON, nullable=False),
    Column("plan_hash", String(64), nullable=False),
    Column("policy_hash", String(64), nullable=False),
    Column("versions", JSON, nullable=False),
    Column("status", String(24), nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("expires_at", String(40), nullable=False),
)

audit = Table(
    "audit",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("id", String(40), nullable=False, unique=True),
    Column("at", String(40), nullable=False),
    Column("actor", String(128), nullable=False, index=True),
    Column("channel", String(32), nullable=False),
    Column("conversation", String(64), index=True),
    Column("turn", String(64)),
    Column("event", String(24), nullable=False),
    Column("action", String(200)),
    Column("status", String(32), nullable=False),
    Column("detail", JSON, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", Integer, nullable=False),
    Column("hash", String(64), nullable=False),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", String(128), nullable=False, index=True),
    Column("hash", String(64), nullable=False, unique=True),  # sha256 of the token; the token is never stored
    Column("created_at", String(40), nullable=False),
    Column("expires_at", String(40)),
    Column("revoked_at", String(40)),
    Column("label", String(200)),
)

idempotency = Table(
    "idempotency",
    metadata,
    Column("user_id", String(128), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("status", Integer, nullable=False),
    Column("response", JSON, nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("holder", String(200)),  # while it runs: the process (host:pid:nonce) that holds it
    Column("held_until", Float),  # and until when (epoch seconds)
    Column("turn", String(64)),  # the turn the request runs as
    Column("plan", String(64)),  # the plan it runs, when known before it runs (an approved confirmation)
)

instructions = Table(
    "instructions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("owner", String(128), nullable=False, index=True),
    Column("conversation", String(64)),
    Column("kind", String(16), nullable=False),  # at | every | watch | after
    Column("status", String(16), nullable=False, index=True),  # active | done | cancelled | suspended | expired
    Column("words", Text, nullable=False),  # what the person said, for the why
    Column("summary", Text, nullable=False),  # what sayso understood, in plain words
    Column("trigger", JSON, nullable=False),
    Column("action", String(200)),
    Column("args", JSON),
    Column("next_due", String(40), index=True),  # UTC ISO; null for follow-ups (they wait on an outcome)
    Column("created_at", String(40), nullable=False),
    Column("updated_at", String(40), nullable=False),
    Column("fired", Integer, nullable=False, default=0),
    Column("note", Text),  # why it was suspended or expired
)

firings = Table(
    "firings",
    metadata,
    Column("key", String(200), primary_key=True),  # instruction id + scheduled time (+ record): acts once
    Column("instruction", String(32), nullable=False, index=True),
    Column("scheduled_for", String(40), nullable=False),
    Column("started_at", String(40), nullable=False),
    Column("status", String(24), nullable=False),  # running | executed | needs_confirmation | suspended | ...
    Column("late", Integer, nullable=False, default=0),
    Column("turn", String(64), nullable=False),
    Column("result", JSON),
)

token_epoch = Table(
    "token_epoch",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),  # one row, id 1
    Column("epoch", Integer, nullable=False),  # raised by every revocation, in its transaction
)

rate_buckets = Table(  # PostgreSQL only: SQLite workspaces keep their buckets in a file on the host
    "rate_buckets",
    metadata,
    Column("who", String(128), primary_key=True),
    Column("level", Float, nullable=False),  # requests left
    Column("at", Float, nullable=False),  # when they were counted: the database's clock, epoch seconds
)

slack_threads = Table(  # one Slack thread, for one person in it, is one sayso conversation
    "slack_threads",
    metadata,
    Column("team", String(32), primary_key=True),
    Column("channel", String(32), primary_key=True),
    Column("thread_ts", String(32), primary_key=True),  # "" for a direct message's top level
    Column("user_id", String(128), primary_key=True),  # the directory person
    Column("conversation", String(64), nullable=False),
    Column("created_at", String(40), nullable=False),
)

slack_seen = Table(  # Slack deliveries already taken: an event's id, a click's payload; each is handled once
    "slack_seen",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("at", String(40), nullable=False),
)

approvals = Table(  # a confirmation routed to someone other than the requester (sayso.approvals)
    "approvals",
    metadata,
    Column("confirmation", String(64), primary_key=True),
    Column("requester", String(128), nullable=False),
    Column("approver", String(128), nullable=False, index=True),
    Column("conversation", String(64), nullable=False),  # the requester's
    Column("words", Text, nullable=False),  # what the requester asked, in their words
    Column("why", Text, nullable=False),  # why it needs the approver: the rule that denied the requester
    Column("rule", String(128), nullable=False),
    Column("replaces", String(64)),  # the confirmation this one re-routed ("ask wes instead")
    Column("created_at", String(40), nullable=False),
)

workspace_keys = Table(  # keys sayso made for itself, e.g. the one that signs approval links
    "workspace_keys",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(128), nullable=False),
)
