"""Corrections: "actually make it 2,500", "no, to devi", "make it Friday instead", "change the amount to 3000".

Said while a confirmation or a question is pending, a correction changes one argument of the pending plan.
The new value is read with the interpreter's own value finder (``sayso.interpreter.values``: money, dates,
times, numbers, durations, the action's choices) or the directory (people); the argument it replaces is
decided by the action's slots (``params_of``): the one the person named ("the amount"), else the only one
of the value's kind. The amended plan then goes through grounding, policy and the guard again like any
plan: this module only rewrites arguments, it never decides anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

from .catalog import Action, Catalog
from .directory import Directory
from .interpreter.offline.schema import Param, params_of
from .interpreter.values import Span, find_choices, find_values

__all__ = ["Amendment", "amend", "carry", "is_correction"]

_LEAD = re.compile(r"^\s*(?:(?:actually|sorry|oops|wait|hmm+|oh|ah|no|nope|not quite|correction|my bad|ok(?:ay)?|"
                   r"hold on|i meant|i mean|i said)\b[\s,;:.!-]*)+", re.I)
_NAMED = re.compile(r"\b(?:make|change|set|switch|update|put|move)\s+(?:the\s+)?(?P<name>[a-z][a-z _]{1,30}?)\s+"
                    r"(?:to|as|at|for)\s+(?P<rest>.+)$"
                    r"|\b(?:the\s+)?(?P<name2>[a-z][a-z _]{1,30}?)\s+(?:should\s+be|is|must\s+be)\s+(?P<rest2>.+)$",
                    re.I)
_MAKE = re.compile(r"\b(?:make|change|set|switch|move|put)\s+(?:it|that|this|them)\b(?:\s+(?:to|for|on|at|as)\b)?",
                   re.I)
_CUES = re.compile(r"^\s*(?:actually|sorry|oops|wait|no\b|nope|not quite|correction|my bad|hold on|i meant|i mean|"
                   r"i said)|\b(?:instead|rather)\b|^\s*not\s+\S+\s+but\b|\S\s+not\s+\S+\s*$|"
                   r"\b(?:make|change|set|switch|move)\s+(?:it|that|this|the\s+\w+)\b",
                   re.I)
_STRONG = re.compile(r"^\s*(?:actually|sorry|oops|wait|no\b|nope|not quite|correction|my bad|hold on|i meant|i mean)"
                     r"|\b(?:instead|rather)\b|^\s*not\s+\S+\s+but\b|\S\s+not\s+\S+\s*$", re.I)
_ORDINALS = {"first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4, "fifth": 5,
             "5th": 5}
_RECORD_SAID = re.compile(r"(?:the\s+)?(?:(?P<ord>first|second|third|fourth|fifth|last|1st|2nd|3rd|4th|5th)"
                          r"(?:\s+(?:one|deal|ticket|account|invoice|record))?"
                          r"|[a-z][\w&'-]*(?:\s+[a-z][\w&'-]*){0,2}\s+(?:one|deal|ticket|account))", re.I)
_FILLER = frozenset("to on for at by it that this the a an instead rather please one be should make change set switch "
                    "move put of than not but i meant mean ok okay actually no sorry oops wait just then with "
                    "is was in and pls thanks".split())
_KINDS = {  # a value's kind -> the parameter kinds it can fill, best first
    "money": ("money", "number"), "number": ("money", "number", "duration"), "date": ("date", "datetime"),
    "datetime": ("datetime", "date"), "time": ("datetime", "time"), "duration": ("duration", "number"),
    "person": ("person", "recipient"), "email": ("email", "person", "recipient"),
}


@dataclass
class Amendment:
    """The amended steps and what changed, or why nothing could be."""

    steps: list[dict[str, Any]] = field(default_factory=list)
    changed: list[tuple[str, Any, Any]] = field(default_factory=list)  # (param, before, after)
    problem: str = ""

    def sentence(self, directory: Directory, records: dict[str, str] | None = None) -> str:
        """"Changed the amount from 2,000 to 2,500."; a record by what it became ("Changed the deal to D-102
        Kestrel Aerospace Platform."), from ``records``: parameter -> the record grounding found."""
        said = []
        for name, before, after in self.changed:
            if records and name in records:
                said.append(f"Changed the {name.replace('_', ' ')} to {records[name]}.")
            else:
                said.append(f"Changed the {name.replace('_', ' ')} from {_shown(before, directory)} to "
                            f"{_shown(after, directory)}.")
        return " ".join(said)


def is_correction(text: str, strong: bool = False) -> bool:
    """Whether a short message reads as a correction of what was just asked ("actually ...", "... instead");
    ``strong``: only words that take something back, not "set the amount to 290k", which after a change
    already made is the next change."""
    return len(text) <= 120 and (_STRONG if strong else _CUES).search(text) is not None


def amend(steps: list[dict[str, Any]], text: str, catalog: Catalog, directory: Directory,
          now: datetime, strong: bool = False) -> Amendment | None:
    """``steps`` with the correction in ``text`` applied; None when ``text`` is not a correction of them
    (a new request that merely starts with "actually"); an Amendment with a ``problem`` when it is one
    but cannot be applied."""
    if not steps or not is_correction(text, strong) or re.search(r"\b(?:also|too|as well|and then)\b", text, re.I):
        return None
    index = len(steps) - 1
    action = catalog.get(steps[index]["action"])
    params = params_of(action)
    said = _LEAD.sub("", text.strip()).strip(" .!?")
    named: Param | None = None
    match = _NAMED.search(said)
    if match and not _MAKE.match(said[match.start():]):
        name = (match.group("name") or match.group("name2") or "").strip().lower()
        named = _param_named(params, name)
        if named is not None:
            said = match.group("rest") or match.group("rest2") or ""
    said = _MAKE.sub(" ", said)
    said = re.sub(r"\b(?:instead|rather)\b(?:\s+of\s+\S+)?", " ", said, flags=re.I).strip(" ,.!?")
    if not said:
        return None
    if named is not None and named.kind == "text":
        return _replace(steps, index, named, said.strip("\"'“” "))
    record = _RECORD_SAID.fullmatch(said)
    records = [p for p in params if p.kind == "record"]
    if record is not None and (named is None or named.kind == "record"):
        target = named or (records[0] if len(records) == 1 else None)
        if target is None:
            return Amendment(problem="I could not tell which record to change")
        ordinal = (record.group("ord") or "").lower()
        name = re.sub(r"^the\s+|\s+one$", "", said, flags=re.I)
        return _replace(steps, index, target, ("@-1" if ordinal == "last" else f"@{_ORDINALS[ordinal]}")
                        if ordinal else name)
    values = _values(said, params, directory, now)
    if _unexplained(said, values):
        return None
    if not values:
        return None
    meant = [v for v in values if not re.search(r"\bnot\s*$", said[:v[0].start], re.I)] or values
    span, kind = meant[-1]  # "not 2,000 but 2,500", "lost, not won": the value not negated, the last one said
    target = named or _slot(params, kind, span, steps[index]["args"])
    if target is None:
        return Amendment(problem=f"I could not tell which part of the request {span.text!r} should change")
    value = _typed(target, kind, span, steps[index]["args"].get(target.name))
    if value is None:
        return Amendment(problem=f"{span.text!r} is not a {target.name.replace('_', ' ')}")
    return _replace(steps, index, target, value)


def carry(args: dict[str, Any], chosen: Action, said: str, directory: Directory, now: datetime) -> dict[str, Any]:
    """The arguments of a guessed action carried to the action chosen instead ("bump the SSO one": a deal or a
    ticket? the ticket): same names kept, the record named for the guess named for the chosen one, and the
    values the person's words give for its other slots, one slot per kind."""
    params = params_of(chosen)
    names = {p.name for p in params}
    out = {k: v for k, v in args.items() if k in names}
    records = [v for k, v in args.items() if k not in names and isinstance(v, str)
               and not any(p.name == k for p in params)]
    free_record = [p for p in params if p.kind == "record" and p.name not in out]
    if records and len(free_record) >= 1:
        out[free_record[0].name] = records[0]
    for span, kind in _values(said, params, directory, now):
        target = _slot([p for p in params if p.name not in out], kind, span, out)
        if target is not None:
            value = _typed(target, kind, span, None)
            if value is not None:
                out[target.name] = [value] if target.many and not isinstance(value, list) else value
    return out


def _replace(steps: list[dict[str, Any]], index: int, param: Param, value: Any) -> Amendment:
    args = dict(steps[index]["args"])
    before = args.get(param.name)
    if param.many and not isinstance(value, list):
        value = [value]
    if before == value:
        return Amendment(problem=f"the {param.name.replace('_', ' ')} is already {_shown(value, None)}")
    args[param.name] = value
    amended = [dict(s) for s in steps]
    amended[index] = {**steps[index], "args": args}
    return Amendment(steps=amended, changed=[(param.name, before, value)])


def _param_named(params: list[Param], name: str) -> Param | None:
    words = [w for w in re.findall(r"[a-z]+", name) if w not in ("the", "a", "an")]
    if not words:
        return None
    exact = [p for p in params if p.name.replace("_", " ") == " ".join(words)]
    if exact:
        return exact[0]
    hits = [p for p in params if all(any(part.startswith(w[:4]) for part in p.words.split()) for w in words)]
    return hits[0] if len(hits) == 1 else None


def _values(said: str, params: list[Param], directory: Directory, now: datetime) -> list[tuple[Span, str]]:
    timed = any(p.kind in ("datetime", "time") for p in params) and not any(p.kind == "money" for p in params)
    found = []
    for span in find_values(said, now):
        if span.kind == "number" and timed and isinstance(span.value, int) and 1 <= span.value <= 12 \
                and span.text.isdigit():  # "make it 11": an hour, in business hours as the value finder reads one
            hour = span.value + 12 if span.value <= 6 else span.value
            span = Span(span.start, span.end, "time", time(hour), span.text)
        if span.kind in _KINDS:
            found.append((span, span.kind))
    taken = [(s.start, s.end) for s, _ in found]
    for param in params:
        if param.enum:
            for span in find_choices(said, param.enum + [w for ws in param.labels.values() for w in ws]):
                if span.text.lower() in {*(e.lower() for e in param.enum), *(
                        w.lower() for ws in param.labels.values() for w in ws)}:
                    found.append((Span(span.start, span.end, f"choice:{param.name}",
                                       _label_value(param, str(span.value)), span.text), f"choice:{param.name}"))
    for word in re.finditer(r"[A-Za-z][\w.'-]+", said):
        if any(a <= word.start() < b for a, b in taken) or word.group(0).lower() in _FILLER:
            continue
        people = directory.find(word.group(0))
        if len(people) == 1 and word.group(0).lower() in (people[0].id, people[0].name.split()[0].lower()):
            found.append((Span(word.start(), word.end(), "person", people[0].id, word.group(0)), "person"))
    return sorted(found, key=lambda f: f[0].start)


def _label_value(param: Param, said: str) -> str:
    for value, words in param.labels.items():
        if said.lower() in (w.lower() for w in words):
            return value
    return next((e for e in param.enum if e.lower() == said.lower()), said)


def _unexplained(said: str, values: list[tuple[Span, str]]) -> bool:
    """Words left over that are neither a value nor filler: a new request, not a correction."""
    rest = said
    for span, _ in sorted(values, key=lambda v: -v[0].start):
        rest = rest[:span.start] + " " + rest[span.end:]
    words = [w for w in re.findall(r"[a-z]+", rest.lower()) if w not in _FILLER and len(w) > 1]
    return len(words) > 1


def _slot(params: list[Param], kind: str, span: Span, args: dict[str, Any]) -> Param | None:
    if kind.startswith("choice:"):
        return next(p for p in params if p.name == kind.split(":", 1)[1])
    for wanted in _KINDS.get(kind, ()):
        fits = [p for p in params if p.kind == wanted]
        given = [p for p in fits if p.name in args]
        if len(given) == 1:
            return given[0]
        if len(fits) == 1:
            return fits[0]
        if fits:
            return None
    return None


def _typed(param: Param, kind: str, span: Span, before: Any) -> Any:
    """The value as the parameter takes it; a date or a time alone keeps the rest of an earlier date-time."""
    value = span.value
    if kind.startswith("choice:") or param.kind in ("person", "recipient", "email"):
        return value
    if param.kind in ("money", "number", "duration"):
        return value if isinstance(value, int | float) else None
    old = _as_datetime(before)
    if param.kind == "date":
        if isinstance(value, datetime):
            return value.date().isoformat()
        return value.isoformat() if isinstance(value, date) else None
    if param.kind == "time":
        return value.isoformat(timespec="minutes") if isinstance(value, time) else None
    if param.kind == "datetime":
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, date) and old is not None:
            return old.replace(year=value.year, month=value.month, day=value.day).isoformat()
        if isinstance(value, time) and old is not None:
            return old.replace(hour=value.hour, minute=value.minute).isoformat()
    return None


def _as_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def _shown(value: Any, directory: Directory | None) -> str:
    """A value as a person reads it: 2,500; Fri Nov 27; Fri Nov 27 at 10:00; Devi Rao."""
    if isinstance(value, list):
        return ", ".join(_shown(v, directory) for v in value)
    if isinstance(value, bool) or value is None:
        return "nothing" if value is None else ("yes" if value else "no")
    if isinstance(value, int | float):
        return f"{value:,}"
    text = str(value)
    if directory is not None and text in directory:
        return directory.get(text).name
    when = _as_datetime(text) if re.match(r"\d{4}-\d\d-\d\d", text) else None
    if when is not None:
        day = f"{when:%a %b} {when.day}"
        return day if len(text) == 10 else f"{day} at {when:%H:%M}"
    return text
