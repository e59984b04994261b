"""Grounding: names in arguments become concrete records and people, deterministically.

A parameter marked ``x-record`` is looked up in the systems holding that
record type; ``x-person`` in the directory; ``x-recipient`` is a ``#channel``
or a person. One match is used; several plausible matches become a question
listing them; none is an error. Grounding finds records; it never filters
them by permission (that is the policy's job).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .catalog import Action
from .connectors import Record
from .directory import Directory, Person
from .errors import UnknownRecord, UnknownUser
from .turn import Option

__all__ = ["Clarification", "Grounded", "ground"]

# Records scoring at least this are plausible; an exact id or name scores 100.
PLAUSIBLE = 85.0

RecordFinder = Callable[[str, str], list[Record]]


@dataclass
class Clarification:
    param: str
    question: str
    options: list[Option]


@dataclass
class Grounded:
    """Arguments with names replaced by ids, and what each name became."""

    args: dict[str, Any]
    records: dict[str, Record] = field(default_factory=dict)
    people: dict[str, list[Person]] = field(default_factory=dict)
    channels: dict[str, str] = field(default_factory=dict)
    question: Clarification | None = None
    notes: list[str] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        return {
            "records": {k: r.ref() for k, r in self.records.items()},
            "people": {k: [p.id for p in v] for k, v in self.people.items()},
            "channels": self.channels,
        }


def ground(action: Action, args: dict[str, Any], *, directory: Directory, find: RecordFinder) -> Grounded:
    """Resolve every marked argument of ``args``; stops at the first question."""
    out = Grounded(dict(args))
    for param, types in action.marked("x-record").items():
        value = args.get(param)
        if value is None:
            continue
        candidates = _candidates(find, str(types), str(value))
        if len(candidates) == 1:
            record = candidates[0]
            out.records[param] = record
            out.args[param] = record.id
            continue
        if not candidates:
            kinds = " or ".join(str(types).lower().split("|"))
            raise UnknownRecord(f"no {kinds} matches {value!r}")
        out.question = Clarification(
            param,
            f"Which one do you mean by {value!r}?",
            [Option(label=_label(r), value=r.id) for r in candidates],
        )
        return out
    for param, mode in action.marked("x-person").items():
        value = args.get(param)
        if value is None:
            continue
        values = value if isinstance(value, list) else [value]
        resolved: list[Any] = []
        people: list[Person] = []
        for item in values:
            text = str(item)
            if mode == "or-email" and "@" in text and not directory.find(text):
                resolved.append(text)
                continue
            person = _person(directory, text, param, out)
            if person is None:
                return out
            people.append(person)
            resolved.append(person.id)
        out.people[param] = people
        out.args[param] = resolved if isinstance(value, list) else resolved[0]
    for param in action.marked("x-recipient"):
        value = args.get(param)
        if value is None:
            continue
        text = str(value).strip()
        if text.startswith("#"):
            if text.lower() not in directory.channels:
                raise UnknownRecord(f"no channel {text!r}; channels: {', '.join(directory.channels)}")
            out.channels[param] = text.lower()
            out.args[param] = text.lower()
            continue
        person = _person(directory, text, param, out)
        if person is None:
            return out
        out.people[param] = [person]
        out.args[param] = person.id
    return out


def _person(directory: Directory, text: str, param: str, out: Grounded) -> Person | None:
    found = directory.find(text)
    if len(found) == 1:
        return found[0]
    if not found:
        raise UnknownUser(f"no person matches {text!r}")
    out.question = Clarification(
        param, f"Which person do you mean by {text!r}?", [Option(label=f"{p.name} ({p.role})", value=p.id)
                                                        for p in found]
    )
    return None


def _candidates(find: RecordFinder, types: str, text: str) -> list[Record]:
    found: list[Record] = []
    for record_type in types.split("|"):
        found.extend(find(record_type, text))
    exact = [r for r in found if (r.score or 0) >= 100]
    if exact:
        return _unique(exact)
    return _unique(sorted((r for r in found if (r.score or 0) >= PLAUSIBLE), key=lambda r: -(r.score or 0)))


def _unique(records: list[Record]) -> list[Record]:
    seen: dict[str, Record] = {}
    for record in records:
        seen.setdefault(record.ref(), record)
    return list(seen.values())


def _label(record: Record) -> str:
    """"D-102 Kestrel Aerospace Platform (deal, Kestrel Aerospace, alice)": enough to tell them apart."""
    bits = [record.type.lower()] + [str(record.attrs[k]) for k in ("account", "industry", "owner") if k in record.attrs]
    head = record.id if record.title in ("", record.id) else f"{record.id} {record.title}"
    return f"{head} ({', '.join(bits)})"
