"""The initial state schema: conversations, plans, steps, confirmations, audit."""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "conversations",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(128), nullable=False, index=True),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("state", sa.JSON, nullable=False),
    )
    op.create_table(
        "plans",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("conversation", sa.String(64), nullable=False, index=True),
        sa.Column("turn", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("status", sa.String(24), nullable=False, index=True),
        sa.Column("lease_owner", sa.String(200)),
        sa.Column("lease_until", sa.Float),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
    )
    op.create_table(
        "steps",
        sa.Column("key", sa.String(80), primary_key=True),
        sa.Column("plan_id", sa.String(64), nullable=False, index=True),
        sa.Column("idx", sa.Integer, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False, index=True),
        sa.Column("action", sa.String(200), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("effect", sa.JSON),
        sa.Column("error", sa.Text),
        sa.Column("at", sa.String(40)),
    )
    op.create_table(
        "confirmations",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("approver", sa.String(128), nullable=False, index=True),
        sa.Column("requester", sa.String(128), nullable=False),
        sa.Column("conversation", sa.String(64), nullable=False),
        sa.Column("plan", sa.JSON, nullable=False),
        sa.Column("plan_hash", sa.String(64), nullable=False),
        sa.Column("policy_hash", sa.String(64), nullable=False),
        sa.Column("versions", sa.JSON, nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("expires_at", sa.String(40), nullable=False),
    )
    op.create_table(
        "audit",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("id", sa.String(40), nullable=False, unique=True),
        sa.Column("at", sa.String(40), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False, index=True),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("conversation", sa.String(64), index=True),
        sa.Column("turn", sa.String(64)),
        sa.Column("event", sa.String(24), nullable=False),
        sa.Column("action", sa.String(200)),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    # One head row from the start, so appends only ever lock and update it.
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": ""}])
