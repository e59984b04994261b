"""The demo team chat, mail outbox and calendar."""

from __future__ import annotations

import hashlib
import re
from datetime import date, timedelta

from ...errors import InvalidArguments
from .._common import short
from ..base import Record
from ..operations import History, Remind, ScheduleMeeting, SendEmail, SendMessage
from ._store import (
    INTEGER,
    OPTIONAL,
    TEXT,
    DemoSystem,
    Op,
    Outcome,
    Table,
    Tx,
    mark_created,
    remove_created,
)

CHANNEL = Table("Channel", "channels", {"topic": OPTIONAL}, title=None)
MESSAGE = Table(
    "Message", "messages", {"to": TEXT, "text": TEXT, "sender": TEXT, "deleted": INTEGER},
    title="text", flags=frozenset({"deleted"}),
)
EMAIL = Table(
    "Email", "emails", {"to": TEXT, "subject": TEXT, "body": TEXT, "sender": TEXT, "message_id": OPTIONAL},
    title="subject", lists=frozenset({"to"}),
)
EVENT = Table(
    "Event", "events",
    {"owner": OPTIONAL, "attendees": TEXT, "start": TEXT, "end": TEXT, "title": TEXT, "kind": TEXT},
    title="title", lists=frozenset({"attendees"}),
)
_ADDRESS = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def send_message(tx: Tx, p: SendMessage) -> Outcome:
    """Post to a known #channel or to a person of the directory; the origin is kept beside the text."""
    if p.to.startswith("#"):
        tx.row(CHANNEL, p.to)
    else:
        tx.person(p.to)
    message = f"M-{tx.next_number('message')}"
    values = {"to": p.to, "text": p.text, "sender": tx.actor or "sayso", "deleted": False}
    change = tx.create(MESSAGE, message, values)
    return Outcome([change], f"sent to {p.to}: {short(p.text)!r}", {"id": message})


def history(tx: Tx, p: History) -> list[Record]:
    """Messages not deleted, newest first (M-10 after M-9: ordered by length, then id). A person sees
    channels and their own direct messages (sent or received), never other people's."""
    where, params = ["deleted = 0"], []
    if p.to:
        where.append('"to" = ?')
        params.append(p.to)
    if tx.actor is not None:
        where.append("(\"to\" LIKE '#%' OR \"to\" = ? OR sender = ?)")
        params += [tx.actor, tx.actor]
    return tx.records(MESSAGE, " AND ".join(where), params, order="length(id) DESC, id DESC", limit=p.limit)


def message_id(key: str) -> str:
    """The Message-ID header of the email sent under an idempotency key: the same key, the same id."""
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@sayso>"


def send_email(tx: Tx, p: SendEmail) -> Outcome:
    """Queue an email in the outbox; person ids become their directory addresses."""
    addresses = []
    for recipient in p.to:
        address = recipient if "@" in recipient else tx.person(recipient).email
        if not _ADDRESS.fullmatch(address):
            raise InvalidArguments(f"email.send: {recipient!r} has no valid email address")
        addresses.append(address)
    actor = tx.actor
    sender = tx.person(actor).email if actor is not None and actor in tx.directory else ""
    header = message_id(tx.key) if tx.key else None  # a preview has no key, so no Message-ID yet
    email = f"E-{tx.next_number('email')}"
    values = {
        "to": addresses, "subject": p.subject, "body": p.body, "sender": sender or "sayso",
        "message_id": header,
    }
    change = tx.create(EMAIL, email, values)
    summary = f"emailed {', '.join(addresses)}: {short(p.subject)!r}"
    return Outcome([change], summary, {"id": email, "message_id": header})


def remind(tx: Tx, p: Remind) -> Outcome:
    """A reminder is for the person who asks for it: the origin's actor."""
    if tx.actor is None:
        raise InvalidArguments("calendar.remind: a reminder needs the person it is for (origin actor)")
    tx.person(tx.actor)
    event = f"EV-{tx.next_number('event')}"
    at = p.at.isoformat()
    values = {
        "owner": tx.actor, "attendees": [tx.actor], "start": at, "end": at, "title": p.text,
        "kind": "reminder",
    }
    change = tx.create(EVENT, event, values)
    return Outcome([change], f"reminder for {tx.actor} at {at}: {short(p.text)!r}", {"id": event})


def schedule_meeting(tx: Tx, p: ScheduleMeeting) -> Outcome:
    for attendee in p.attendees:
        tx.person(attendee)
    event = f"EV-{tx.next_number('event')}"
    start = p.start.isoformat()
    values = {
        "owner": tx.actor, "attendees": p.attendees, "start": start,
        "end": (p.start + timedelta(minutes=p.duration)).isoformat(), "title": p.title, "kind": "meeting",
    }
    change = tx.create(EVENT, event, values)
    return Outcome([change], f"scheduled {p.title!r} at {start} with {', '.join(p.attendees)}", {"id": event})


class Chat(DemoSystem):
    """Channels and direct messages, as a team chat such as Slack keeps them."""

    record_types = frozenset({"Message"})
    tables = (CHANNEL, MESSAGE)
    reads = {"history": Op(History, history)}
    writes = {"send": Op(SendMessage, send_message)}
    undos = {"send": mark_created({"deleted": True})}

    @staticmethod
    def populate(tx: Tx, reference: date) -> None:
        for channel, topic in CHANNELS:
            tx.create(CHANNEL, channel, {"topic": topic})


class Email(DemoSystem):
    """An outbox: sent mail cannot be recalled, so nothing here can be undone."""

    record_types = frozenset({"Email"})
    tables = (EMAIL,)
    writes = {"send": Op(SendEmail, send_email)}


class Calendar(DemoSystem):
    """Reminders and meetings in people's calendars."""

    record_types = frozenset({"Event"})
    tables = (EVENT,)
    writes = {"remind": Op(Remind, remind), "schedule_meeting": Op(ScheduleMeeting, schedule_meeting)}
    undos = {"remind": remove_created, "schedule_meeting": remove_created}


CHANNELS = [
    ("#sales-east", "East team deals"),
    ("#sales-west", "West team deals"),
    ("#support", "Customer issues"),
    ("#finance", "Invoices, credit notes and collections"),
    ("#deal-desk", "Pricing and contract approvals"),
]
