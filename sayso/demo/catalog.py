"""The Lumen Labs demo catalog, declared in Python (docs/catalog.md shows YAML too).

Names and parameters follow shared/demo-workspace.md, so scripts, docs and
tests agree. Each function turns validated parameters into the connector's
request; most pass them through.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..catalog import Catalog, RiskCondition, RiskRule, Tier

catalog = Catalog()

Stage = Literal["prospecting", "qualification", "proposal", "negotiation", "closed_won", "closed_lost"]
OpenStage = Literal["prospecting", "qualification", "proposal", "negotiation"]
Priority = Literal["low", "medium", "high"]
Project = Literal["SALES", "SUPPORT", "FIN"]
TicketStatus = Literal["open", "in_progress", "closed"]


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _plain(params: BaseModel) -> dict[str, Any]:
    return params.model_dump(mode="json", exclude_none=True)


def _deal(description: str = "A deal, by id (D-101) or name") -> Any:
    return Field(description=description, json_schema_extra={"x-record": "Deal"})


def _ticket() -> Any:
    return Field(description="A ticket key such as SUP-17, SALES-5 or FIN-1", json_schema_extra={"x-record": "Ticket"})


def _person(description: str) -> Any:
    return Field(description=description, json_schema_extra={"x-person": True})


# --- CRM --------------------------------------------------------------------------


class FindDeals(_Params):
    owner: str | None = Field(None, description="Owner of the deals", json_schema_extra={"x-person": True})
    stage: Stage | None = Field(None, description="Pipeline stage")
    account: str | None = Field(None, description="Account name", json_schema_extra={"x-record": "Account"})
    closing_after: date | None = Field(None, description="Close date on or after")
    closing_before: date | None = Field(None, description="Close date on or before")


@catalog.action(
    "crm.find_deals", kind="read", risk=Tier.NONE, connector="crm", resource="System",
    examples=["which of my deals close in the next 30 days?", "show deals in negotiation"],
)
def find_deals(params: FindDeals) -> dict[str, Any]:
    """Find deals in the CRM by owner, stage, account or close date."""
    return _plain(params)


class GetRecord(_Params):
    record: str = Field(
        description="A deal, account or contact", json_schema_extra={"x-record": "Deal|Account|Contact"}
    )


@catalog.action(
    "crm.get", kind="read", risk=Tier.NONE, connector="crm", resource="Record", resource_param="record",
    examples=["show me the Orchid deal", "who owns Brightwater Dental?"],
)
def get_record(params: GetRecord) -> dict[str, Any]:
    """Show one CRM record: a deal, an account or a contact."""
    return _plain(params)


class UpdateDeal(_Params):
    deal: str = _deal()
    # Closing is crm.close_deal, with its own risk and rules: an update cannot close a deal.
    stage: OpenStage | None = Field(None, description="New pipeline stage (an open one; closing is a close)")
    amount: int | None = Field(None, gt=0, description="New amount in USD")
    close_date: date | None = Field(None, description="New expected close date")


@catalog.action(
    "crm.update_deal", kind="write", risk=Tier.MEDIUM, connector="crm", resource="Deal", resource_param="deal",
    preview=True, undo=True,
    examples=["move the Brightwater deal to negotiation", "set the Orchid amount to 120k"],
)
def update_deal(params: UpdateDeal) -> dict[str, Any]:
    """Change a deal's stage, amount or close date."""
    return _plain(params)


class CloseDeal(_Params):
    deal: str = _deal()
    outcome: Literal["won", "lost"] = Field(description="won or lost")
    reason: str | None = Field(None, description="Why it was won or lost")


@catalog.action(
    "crm.close_deal", kind="write", risk=Tier.HIGH, connector="crm", resource="Deal", resource_param="deal",
    preview=True, undo=True,
    examples=["close Kestrel Aerospace as won", "mark the Orchid deal as lost"],
)
def close_deal(params: CloseDeal) -> dict[str, Any]:
    """Close a deal as won or lost."""
    return _plain(params)


class LogNote(_Params):
    record: str = Field(description="A deal or an account", json_schema_extra={"x-record": "Deal|Account"})
    text: str = Field(min_length=1, max_length=4000, description="The note")


@catalog.action(
    "crm.log_note", kind="write", risk=Tier.LOW, connector="crm", resource="Record", resource_param="record",
    undo=True, examples=["log a note on the Orchid deal: legal review done"],
)
def log_note(params: LogNote) -> dict[str, Any]:
    """Log a note on a deal or an account."""
    return _plain(params)


class ReassignAccount(_Params):
    account: str = Field(description="The account", json_schema_extra={"x-record": "Account"})
    new_owner: str = _person("The new owner")


@catalog.action(
    "crm.reassign_account", kind="write", risk=Tier.HIGH, connector="crm", resource="Account",
    resource_param="account", preview=True, undo=True,
    examples=["give Juniper Schools to bob", "reassign Orchid Pharma to wes"],
)
def reassign_account(params: ReassignAccount) -> dict[str, Any]:
    """Give an account to a new owner."""
    return _plain(params)


class DeleteRecord(_Params):
    record: str = Field(description="A deal or an account", json_schema_extra={"x-record": "Deal|Account"})


@catalog.action(
    "crm.delete", kind="write", risk=Tier.CRITICAL, connector="crm", resource="Record", resource_param="record",
    preview=True, examples=["delete the Cobalt deal"],
)
def delete_record(params: DeleteRecord) -> dict[str, Any]:
    """Delete a deal or an account from the CRM."""
    return _plain(params)


# --- Billing ----------------------------------------------------------------------


class ListInvoices(_Params):
    account: str | None = Field(None, description="Account name", json_schema_extra={"x-record": "Account"})
    status: Literal["draft", "sent", "paid", "overdue"] | None = Field(None, description="Invoice status")


@catalog.action(
    "billing.list_invoices", kind="read", risk=Tier.NONE, connector="billing", resource="System",
    examples=["show overdue invoices", "list invoices for Orchid Pharma"],
)
def list_invoices(params: ListInvoices) -> dict[str, Any]:
    """List invoices by account or status."""
    return _plain(params)


class IssueCreditNote(_Params):
    account: str = Field(description="The account credited", json_schema_extra={"x-record": "Account"})
    amount: int = Field(gt=0, description="Amount in USD")
    reason: str = Field(min_length=1, max_length=1000, description="Why the credit is issued")


@catalog.action(
    "billing.issue_credit_note", kind="write", risk=Tier.HIGH, connector="billing", resource="Account",
    resource_param="account", preview=True, undo=True,
    examples=["issue a credit note of 2,000 to Orchid Pharma for the outage"],
)
def issue_credit_note(params: IssueCreditNote) -> dict[str, Any]:
    """Issue a credit note against an account."""
    return _plain(params)


# --- Tickets ----------------------------------------------------------------------


class CreateTicket(_Params):
    project: Project = Field("SALES", description="SALES for tasks and follow-ups, SUPPORT, FIN")
    title: str = Field(min_length=1, max_length=300, description="Short title")
    assignee: str | None = Field(None, description="Who does it", json_schema_extra={"x-person": True})
    due: date | None = Field(None, description="Due date")
    priority: Priority | None = Field(None, description="low, medium or high")
    related: str | None = Field(
        None, description="A related deal (D-104) or account", json_schema_extra={"x-record": "Deal|Account"}
    )
    description: str | None = Field(None, max_length=10000, description="Details")


@catalog.action(
    "tickets.create", kind="write", risk=Tier.LOW, connector="tickets", resource="Project",
    resource_param="project", undo=True,
    examples=["create a follow-up for devi next Tuesday", "open a FIN task to reconcile the credit note"],
)
def create_ticket(params: CreateTicket) -> dict[str, Any]:
    """Create a task, follow-up or ticket (SALES unless another project is named)."""
    return _plain(params)


class UpdateTicket(_Params):
    ticket: str = _ticket()
    status: TicketStatus | None = None
    priority: Priority | None = None
    assignee: str | None = Field(None, description="New assignee", json_schema_extra={"x-person": True})


@catalog.action(
    "tickets.update", kind="write", risk=Tier.MEDIUM, connector="tickets", resource="Ticket",
    resource_param="ticket", preview=True, undo=True,
    examples=["close SUP-17", "assign SUP-18 to sam", "set SUP-18 to high priority"],
)
def update_ticket(params: UpdateTicket) -> dict[str, Any]:
    """Change a ticket's status, priority or assignee."""
    return _plain(params)


class CommentTicket(_Params):
    ticket: str = _ticket()
    text: str = Field(min_length=1, max_length=4000)


@catalog.action(
    "tickets.comment", kind="write", risk=Tier.LOW, connector="tickets", resource="Ticket",
    resource_param="ticket", undo=True, examples=["comment on SUP-17: customer confirmed the fix"],
)
def comment_ticket(params: CommentTicket) -> dict[str, Any]:
    """Add a comment to a ticket."""
    return _plain(params)


class GetTicket(_Params):
    ticket: str = _ticket()


@catalog.action(
    "tickets.get", kind="read", risk=Tier.NONE, connector="tickets", resource="Ticket", resource_param="ticket",
    examples=["show SUP-18"],
)
def get_ticket(params: GetTicket) -> dict[str, Any]:
    """Show one ticket."""
    return _plain(params)


class FindTickets(_Params):
    project: Project | None = None
    assignee: str | None = Field(None, json_schema_extra={"x-person": True})
    status: TicketStatus | None = None
    text: str | None = Field(None, description="Words in the title")
    related: str | None = Field(None, json_schema_extra={"x-record": "Deal|Account"})


@catalog.action(
    "tickets.find", kind="read", risk=Tier.NONE, connector="tickets", resource="System",
    examples=["open support tickets", "tickets assigned to sam"],
)
def find_tickets(params: FindTickets) -> dict[str, Any]:
    """Find tickets by project, assignee, status, text or related record."""
    return _plain(params)


# --- Calendar, chat, email --------------------------------------------------------


class Remind(_Params):
    at: datetime = Field(description="When to remind")
    text: str = Field(min_length=1, max_length=1000)


@catalog.action(
    "calendar.remind", kind="write", risk=Tier.LOW, connector="calendar", resource="System", undo=True,
    examples=["remind me Friday at 9 to call Priya"],
)
def remind(params: Remind) -> dict[str, Any]:
    """Set a reminder for yourself."""
    return _plain(params)


class ScheduleMeeting(_Params):
    attendees: list[str] = Field(min_length=1, max_length=50, json_schema_extra={"x-person": True})
    start: datetime
    duration: int = Field(30, gt=0, le=480, description="Minutes")
    title: str = Field(min_length=1, max_length=300)


@catalog.action(
    "calendar.schedule_meeting", kind="write", risk=Tier.MEDIUM, connector="calendar", resource="System",
    undo=True, examples=["set up a meeting with carol and devi tomorrow at 10 about Orchid"],
)
def schedule_meeting(params: ScheduleMeeting) -> dict[str, Any]:
    """Schedule a meeting with people."""
    return _plain(params)


class SendChat(_Params):
    to: str = Field(description="A person or a #channel", json_schema_extra={"x-recipient": True})
    text: str = Field(min_length=1, max_length=4000)


@catalog.action(
    "chat.send", kind="write", connector="chat", resource="Recipient", resource_param="to", undo=True,
    risk=RiskRule(tier=Tier.LOW, when=[RiskCondition(arg="to", startswith="#", tier=Tier.MEDIUM)]),
    examples=["let carol know the deal slipped", "post in #sales-east that Orchid renewed"],
)
def send_chat(params: SendChat) -> dict[str, Any]:
    """Send a chat message to a person or a channel (ping, let someone know, tell)."""
    return _plain(params)


class ChatHistory(_Params):
    to: str | None = Field(None, json_schema_extra={"x-recipient": True})
    limit: int = Field(20, gt=0, le=200)


@catalog.action(
    "chat.history", kind="read", risk=Tier.NONE, connector="chat", resource="System",
    examples=["what did I send to carol?"],
)
def chat_history(params: ChatHistory) -> dict[str, Any]:
    """Show your recent chat messages (the last ones, or those to a person or a channel)."""
    return _plain(params)


class SendEmail(_Params):
    to: list[str] = Field(min_length=1, max_length=500, json_schema_extra={"x-person": "or-email"})
    subject: str = Field(min_length=1, max_length=300)
    body: str = Field(min_length=1, max_length=20000)


@catalog.action(
    "email.send", kind="write", connector="email", resource="System",
    risk=RiskRule(
        tier=Tier.LOW,
        when=[
            RiskCondition(arg="to", count_gte=2, tier=Tier.MEDIUM),
            RiskCondition(arg="to", count_gt=10, tier=Tier.HIGH),
        ],
    ),
    examples=["email Priya Shah the renewal terms"],
)
def send_email(params: SendEmail) -> dict[str, Any]:
    """Send an email to one or more people."""
    return _plain(params)
