"""Replies written for people: a short sentence, then the records as a readable list with the fields that
matter. Every channel shows this text (CLI, web page, Slack, MCP); action names, argument reprs and
connector errors stay in the structured fields (``--json``, the API), never in what a person reads."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from .catalog import Action
from .connectors import Change
from .interpreter.offline.schema import Param
from .turn import StepResult, StepStatus

__all__ = ["change_line", "effects", "error_reply", "error_text", "label", "question_for", "records",
           "without_action_names"]

# Fields that are bookkeeping, not something a person asked about.
_HIDDEN = {"description", "origin", "text", "title", "version", "deleted", "type", "id", "system", "score",
           "created_at", "updated_at", "key", "undoes", "body", "message_id", "sender"}
_PLURAL = {"opportunity": "opportunities", "company": "companies", "activity": "activities"}


def label(action: Action) -> str:
    """What an action does, in words: the first sentence of its description ("Close a deal as won or lost")."""
    first = re.split(r"(?<=[a-z)])\.\s", action.description.strip() + " ", maxsplit=1)[0].strip().rstrip(".")
    first = re.sub(r"\s*\([^)]*\)$", "", first)  # "(ping, let someone know, tell)": words for the interpreter
    return first or action.name.split(".")[-1].replace("_", " ").capitalize()


def question_for(param: Param) -> str:
    """The question that asks a person for one missing argument, in words."""
    name = param.name.replace("_", " ")
    if param.kind == "record":
        return f"Which {(param.record.split('|')[0] or name).lower()}?"
    if param.kind in ("person", "recipient"):
        return "Who should it go to?" if param.kind == "recipient" or name in ("to", "attendees") else \
            f"Who should be the {name}?"
    if param.kind in ("date", "datetime", "time"):
        return f"When should it be ({name})?"
    if param.enum:
        return f"Which {name}: {', '.join(param.enum[:-1])} or {param.enum[-1]}?" if len(param.enum) > 1 else \
            f"Which {name}?"
    if param.kind == "text":
        return {"text": "What should it say?", "body": "What should the email say?"}.get(
            param.name, f"What should the {name} be?")
    return f"What should the {name} be?"


def _noun(record_type: str, count: int) -> str:
    word = record_type.replace("_", " ").lower() or "record"
    if count == 1:
        return word
    return _PLURAL.get(word, word if word.endswith("s") else f"{word}s")


def _value(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(_value(v) for v in value)
    return str(value)


def _fields(values: dict[str, Any]) -> str:
    title = values.get("title")
    shown = [f"{k.replace('_', ' ')} {_value(v)}" for k, v in values.items()
             if k not in _HIDDEN and v not in (None, "", [], False, title)
             and isinstance(v, str | int | float | list) and not (isinstance(v, str) and len(v) > 80)]
    return ", ".join(shown)


def _name(record_id: str, title: str) -> str:
    if len(title) > 60:  # a message's or a note's whole text is its title: the start says which one
        title = title[:57].rstrip() + "..."
    return record_id if title in ("", record_id) else f"{record_id} {title}"


def without_action_names(text: str, actions: Iterable[Action]) -> str:
    """An interpreter's question in words: "crm.log_note: Log a note ..." reads "Log a note ..."."""
    for action in actions:
        if action.name in text:
            text = text.replace(f"{action.name}: ", "").replace(action.name, label(action).lower())
    return text


def records(action: Action, found: list[dict[str, Any]]) -> str:
    """The answer to a read: how many were found, then one line per record with its fields."""
    if not found:
        return "I found nothing that matches."
    kinds = {str(r.get("type", "")) for r in found}
    noun = _noun(kinds.pop() if len(kinds) == 1 else "record", len(found))
    head = f"Found {len(found)} {noun}:" if len(found) > 1 else f"Found 1 {noun}:"
    lines = []
    for r in found:
        fields = _fields(r)
        lines.append(f"- {_name(str(r.get('id', '')), str(r.get('title', '')))}" + (f": {fields}" if fields else ""))
    return "\n".join([head, *lines])


def change_line(change: Change) -> str:
    """One change to one record: created with its fields, deleted, or each field before -> after."""
    name = _name(change.record_id, change.title)
    if change.before is None:
        fields = _fields(change.after or {})
        return f"{name}: new" + (f", {fields}" if fields else "")
    if change.after is None:
        return f"{name}: deleted"
    keys = [k for k in dict.fromkeys([*change.before, *change.after]) if k not in _HIDDEN]
    parts = [f"{k.replace('_', ' ')} {_value(change.before.get(k))} -> {_value(change.after.get(k))}"
             if change.before.get(k) != change.after.get(k) else f"{k.replace('_', ' ')} {_value(change.after.get(k))}"
             for k in keys]
    return f"{name}: " + ", ".join(parts)


def error_text(error: str) -> str:
    """A connector's or a schema's error as a sentence: "title: Field required" -> "the title is missing"."""
    said = re.sub(r"^[a-z_]+\.[a-z_]+:\s*", "", error.strip())  # an action name in front
    said = re.sub(r"^[a-z_]+:\s*(?=[a-z])", "", said)  # an operation name in front ("update: give a ...")
    said = re.sub(r"\b([a-z_]+): Field required\b", lambda m: f"the {m.group(1).replace('_', ' ')} is missing",
                  said)
    return said.rstrip(".")


def _said_args(args: dict[str, Any]) -> str:
    """"ticket SUP-17, priority high": arguments as words, for a sentence."""
    return ", ".join(f"{k.replace('_', ' ')} {_value(v)}" for k, v in args.items() if k not in _HIDDEN)


def error_reply(error: str) -> str:
    """An invalid request's error as a person reads it: "billing.issue_credit_note: amount must be positive;
    -500 was given" -> "I could not do that: the amount must be positive; -500 was given."."""
    said = error_text(error)
    if re.match(r"I (?:could|can|cannot|can't|do|don't|am)\b", said):  # already a sentence in sayso's voice
        return error.strip() if said == error.strip().rstrip(".") else said
    said = re.sub(r"^([a-z_]+) (must|should|is|are|cannot|can't)\b", lambda m: f"the {m.group(1).replace('_', ' ')} "
                  f"{m.group(2)}", said)
    return f"I could not do that: {said}." if said else "I could not do that."


def effects(results: list[StepResult], actions: dict[str, Action]) -> str:
    """What writes did: "Done." and each change, or what could not be done and why, in words."""
    lines = []
    for result in results:
        action = actions.get(result.action)
        what = label(action) if action else "that step"
        effect = result.effect or {}
        if result.status is StepStatus.EXECUTED:
            changes = [change_line(Change.model_validate(c)) for c in effect.get("changes", [])]
            if changes:
                lines.append("Done: " + "; ".join(changes))
            elif action is not None and action.preview:  # a change whose values were already so
                lines.append(f"Nothing needed to change: {_said_args(result.args)} already.")
            else:
                lines.append(f"Done: {what[0].lower()}{what[1:]}.")
        elif result.status is StepStatus.SKIPPED:
            lines.append(f"Not done: {what[0].lower()}{what[1:]} (an earlier step did not go through).")
        else:
            why = f": {error_text(result.error)}" if result.error else "."
            lines.append(f"I could not {what[0].lower()}{what[1:]}{why}")
    return "\n".join(lines)
