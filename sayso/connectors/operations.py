"""The arguments of the standard operations of a calendar, email, chat, ticket and CRM system.

The demo systems (``demo.calendar``, ``demo.email``, ``demo.chat``, ``demo.tickets``, ``demo.crm``) and
the real connectors that stand in for them (``caldav``, ``smtp``, ``slack``, ``jira``, ``salesforce``)
check an operation's arguments with the same model, so that a workspace switches a system's kind by
configuration alone and the catalog's actions keep working. A connector that takes more (an extra
operation) or less (a shorter text) says so in a subclass of its own.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, StringConstraints

__all__ = [
    "Amount",
    "CloseDeal",
    "CommentTicket",
    "CreateTicket",
    "FindDeals",
    "FindTickets",
    "GetRecord",
    "GetTicket",
    "History",
    "LogNote",
    "Params",
    "Priority",
    "Project",
    "ReassignAccount",
    "Remind",
    "ScheduleMeeting",
    "SendEmail",
    "SendMessage",
    "Stage",
    "Status",
    "Text",
    "UpdateDeal",
    "UpdateTicket",
]

Text = Annotated[str, StringConstraints(min_length=1, pattern=r"\S")]
"""A string with something in it besides spaces."""


class Params(BaseModel):
    """The arguments of one operation; unknown names are refused, not ignored."""

    model_config = ConfigDict(extra="forbid")


# --- calendar -------------------------------------------------------------------------


class Remind(Params):
    """``remind``: a reminder for the person who asks."""

    at: datetime
    text: Text


class ScheduleMeeting(Params):
    """``schedule_meeting``; attendees are person ids (or, where the calendar can, email addresses)."""

    attendees: Annotated[list[Text], Field(min_length=1)]
    start: datetime
    duration: Annotated[int, Field(gt=0, le=480)] = 30
    title: Text


# --- email ------------------------------------------------------------------------------


class SendEmail(Params):
    """``send``: recipients are person ids or email addresses."""

    to: Annotated[list[Text], Field(min_length=1)]
    subject: Text
    body: Text


# --- chat -------------------------------------------------------------------------------


class SendMessage(Params):
    """``send``: to a ``#channel`` or to a person of the directory."""

    to: Text
    text: Text


class History(Params):
    """``history``: the newest messages, of one conversation or of all the asker may see."""

    to: str | None = None
    limit: Annotated[int, Field(gt=0, le=200)] = 20


# --- tickets ----------------------------------------------------------------------------

Project = Literal["SALES", "SUPPORT", "FIN"]
Priority = Literal["low", "medium", "high"]
Status = Literal["open", "in_progress", "closed", "cancelled"]


class CreateTicket(Params):
    project: Project = "SALES"
    title: Text
    assignee: str | None = None
    due: date | None = None
    priority: Priority | None = None
    related: str | None = None
    description: str | None = None


class UpdateTicket(Params):
    ticket: Text
    status: Status | None = None
    priority: Priority | None = None
    assignee: str | None = None


class CommentTicket(Params):
    ticket: Text
    text: Text


class GetTicket(Params):
    ticket: Text


class FindTickets(Params):
    project: Project | None = None
    assignee: str | None = None
    status: Status | None = None
    text: str | None = None
    related: str | None = None


# --- CRM --------------------------------------------------------------------------------

Stage = Literal["prospecting", "qualification", "proposal", "negotiation", "closed_won", "closed_lost"]
Amount = Annotated[int, Strict(), Field(gt=0)]


class FindDeals(Params):
    owner: str | None = None
    stage: Stage | None = None
    account: str | None = None
    closing_after: date | None = None
    closing_before: date | None = None


class GetRecord(Params):
    record: Text


class UpdateDeal(Params):
    deal: Text
    stage: Stage | None = None
    amount: Amount | None = None
    close_date: date | None = None


class CloseDeal(Params):
    deal: Text
    outcome: Literal["won", "lost"]
    reason: str | None = None


class LogNote(Params):
    record: Text
    text: Text


class ReassignAccount(Params):
    account: Text
    new_owner: Text
