"""Turn results as Block Kit: reads as compact sections, confirmations as cards with Approve / Decline bound to
the confirmation's id, questions with their options as buttons, and a card's outcome in place of its buttons.

Slack's limits are kept: a section's text at most 3,000 characters, a button's text 75 and its value 2,000, at
most 50 blocks in a message (https://docs.slack.dev/reference/block-kit/blocks).
"""

from __future__ import annotations

from typing import Any

from ...turn import StepResult, TurnResult, TurnStatus

__all__ = ["APPROVE", "DECLINE", "OPTION", "answered_option", "decided", "progress", "progress_done", "render",
           "text_of"]

APPROVE, DECLINE, OPTION = "sayso_approve", "sayso_decline", "sayso_option_"
_SECTION_CHARS = 2900
_RECORDS_SHOWN = 25
_BUTTONS = 25  # an actions block holds at most 25 elements
_ATTRS_SHOWN = 4
_HIDDEN_ATTRS = frozenset({"type", "id", "title", "version", "description", "body", "text"})
_ICONS = {TurnStatus.DENIED: ":no_entry:", TurnStatus.FAILED: ":warning:", TurnStatus.ERROR: ":warning:",
          TurnStatus.EXECUTED: ":white_check_mark:", TurnStatus.CANCELLED: ":heavy_multiplication_x:"}


def _escape(text: str) -> str:
    """Slack's mrkdwn control characters, escaped as its docs say: text from systems is shown, never a link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, most: int = _SECTION_CHARS) -> str:
    return text if len(text) <= most else text[: most - 1] + "…"


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _clip(text) or " "}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": _clip(text)}]}


def _button(text: str, action_id: str, value: str, style: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {"type": "button", "text": {"type": "plain_text", "text": _clip(text, 75)},
                              "action_id": action_id, "value": value[:2000]}
    if style:
        button["style"] = style
    return button


def _record_line(record: dict[str, Any]) -> str:
    attrs = [f"{k}: {v}" for k, v in record.items()
             if k not in _HIDDEN_ATTRS and isinstance(v, str | int | float) and not isinstance(v, bool)
             and len(str(v)) <= 60][:_ATTRS_SHOWN]
    head = f"*{_escape(str(record.get('id', '')))}* {_escape(str(record.get('title', '')))}".strip()
    return head + (f"  ·  {_escape(' · '.join(attrs))}" if attrs else "")


def _records(steps: list[StepResult]) -> list[dict[str, Any]]:
    """The records a read answered, one line each, in as few sections as fit."""
    records = [r for step in steps for r in (step.records or [])]
    lines = [_record_line(r) for r in records[:_RECORDS_SHOWN]]
    if len(records) > _RECORDS_SHOWN:
        lines.append(f"_…and {len(records) - _RECORDS_SHOWN} more_")
    blocks, chunk = [], ""
    for line in lines:
        if chunk and len(chunk) + len(line) + 1 > _SECTION_CHARS:
            blocks.append(_section(chunk))
            chunk = ""
        chunk = f"{chunk}\n{line}" if chunk else line
    if chunk:
        blocks.append(_section(chunk))
    return blocks


def text_of(result: TurnResult) -> str:
    """The plain text that goes with the blocks: notifications and screen readers read it."""
    return _clip(result.reply or result.status.value, 3000)


def render(result: TurnResult) -> list[dict[str, Any]]:
    """The blocks of one turn's reply."""
    icon = _ICONS.get(result.status)
    reply = _escape(result.reply or result.status.value)
    blocks = [_section(f"{icon} {reply}" if icon else reply)]
    if result.status is TurnStatus.ANSWERED:
        blocks += _records(result.steps)
    if result.status is TurnStatus.NEEDS_CONFIRMATION and result.confirmation and result.confirmation.get(
            "requester"):  # asked of someone else (sayso.approvals): the buttons are on their card, not here
        blocks.append(_context(f"Waiting for {_escape(str(result.confirmation.get('approver')))} · expires "
                               f"{result.confirmation.get('expires_at', '')}"))
    elif result.status is TurnStatus.NEEDS_CONFIRMATION and result.confirmation:
        confirmation = str(result.confirmation["id"])
        blocks.append(_context(f"Confirmation `{confirmation}` · expires {result.confirmation.get('expires_at', '')}"))
        blocks.append({"type": "actions", "block_id": "sayso_confirmation", "elements": [
            _button("Approve", APPROVE, confirmation, "primary"), _button("Decline", DECLINE, confirmation, "danger")]})
    if result.status in (TurnStatus.NEEDS_CLARIFICATION, TurnStatus.DENIED) and result.options:
        # a question's options, or a denial's "Ask carol to approve" (sayso.approvals)
        blocks.append({"type": "actions", "block_id": "sayso_options", "elements": [
            _button(option.label, f"{OPTION}{i}", option.value) for i, option in enumerate(result.options[:_BUTTONS])]})
    if result.rule:
        blocks.append(_context(f"Rule: `{_escape(result.rule)}`"))
    return blocks[:50]


def progress(stage: str) -> list[dict[str, Any]]:
    return [_context(f":hourglass_flowing_sand: {_escape(stage)}…")]


def progress_done(note: str) -> list[dict[str, Any]]:
    return [_context(f":lock: {_escape(note)}")]


def _without_buttons(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [b for b in blocks if b.get("type") != "actions"]


def decided(card: list[dict[str, Any]], result: TurnResult, who: str, approve: bool) -> list[dict[str, Any]]:
    """The confirmation card, its buttons replaced by the outcome ("Approved by carol · executed once")."""
    if (result.error or {}).get("code") == "confirmation_expired":
        outcome = ":hourglass: Expired · nothing changed"
    elif not approve:
        outcome = f":heavy_multiplication_x: Declined by {who} · nothing changed"
    elif result.status is TurnStatus.EXECUTED:
        outcome = f":white_check_mark: Approved by {who} · executed once"
    elif result.status in (TurnStatus.NEEDS_CONFIRMATION, TurnStatus.NEEDS_CLARIFICATION):
        outcome = ":arrows_counterclockwise: Changed since · nothing done; see below"
        return [*_without_buttons(card), _section(f"*{outcome}*")]
    else:
        outcome = f"{_ICONS.get(result.status, ':warning:')} Approved by {who} · {result.status.value}"
    return [*_without_buttons(card), _section(f"*{outcome}*\n{_escape(result.reply)}")]


def answered_option(question: list[dict[str, Any]], who: str, label: str) -> list[dict[str, Any]]:
    """A question, its buttons replaced by the answer chosen."""
    return [*_without_buttons(question), _context(f"{_escape(who)} chose *{_escape(label)}*")]
