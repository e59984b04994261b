"""Requests about many records, done as a read and then one step per record.

"move all of kofi's tasks that are in progress to in review", "cancel all future meetings with raj": an
interpreter reads words, not data, so it proposes one change (or the read that lists the records) and
:mod:`sayso.interpreter.guesses` withholds a change to "all of" them. Here, in the turn, whichever
interpreter proposed it:

1. the change is the write the interpreter proposed, or the one it proposes over the same type of record
   when it answered with the list (only when the request says that write's verb: "cancel", "move", ...);
2. the records are those the same words would list: the request without the change's own values ("to in
   review") is read by the interpreter over the catalog's reads, run as the person (only what they may
   read), then narrowed by what the read cannot say: "overdue", "future", "on Friday", "after 11",
   "in the last 5 days" (:func:`narrow`);
3. one step per record, the change's values on each: one plan, confirmed as one when its risk asks for it,
   each step run once by the executor. No records: nothing to do, said so. More than :data:`LIMIT`: a
   question, never a partial run.

"my" filters by the person only where the records name them: where no record of the kind does (everything
in a sandbox's calendar is the person's own), it is read as no filter, rather than as "none of them".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime, time, timedelta

from .catalog import Action, Catalog
from .connectors import Record
from .directory import Directory, Person
from .interpreter import Context, Interpretation, Interpreter, ProposedStep
from .interpreter.offline.schema import params_of
from .interpreter.questions import is_question
from .interpreter.values import find_dates, find_durations

__all__ = ["LIMIT", "expand", "narrow", "spread"]

LIMIT = 50
"""The most records one request about many changes; beyond it sayso asks to narrow the request."""

Look = Callable[[str, dict[str, object]], list[Record] | None]

_FIRST_PERSON = re.compile(r"\b(?:my|mine|our|ours)\b\s*", re.I)
_SELF = frozenset({"my", "me", "mine", "our", "ours", "i", "we", "us"})
_OVERDUE = re.compile(r"\b(?:overdue|past due|past their (?:deadline|due date)|late)\b", re.I)
_FINISHED = frozenset({"completed", "complete", "done", "finished", "closed", "resolved", "cancelled", "canceled"})
_FUTURE = re.compile(r"\b(?:future|upcoming|coming up|remaining|still to come)\b", re.I)
_SINCE = re.compile(r"\b(?:since|from|after|starting)\s*(?:on\s+)?$", re.I)
_BEFORE = re.compile(r"\b(?:before|earlier than|until|till)\s*$", re.I)
_AFTER = re.compile(r"\b(?:after|later than|from)\s*$", re.I)
_VERB = re.compile(r"^([a-z]+)(?:\s*\(([a-z ]+)\))?", re.I)


def _record_param(action: Action) -> tuple[str, str] | None:
    """The parameter naming the one record a write changes, and its record type."""
    for p in params_of(action):
        if p.kind == "record" and p.record:
            return p.name, p.record.split("|")[0]
    return None


def _verbs(action: Action) -> set[str]:
    """The verbs an action is asked for by: its description's first word and the verbs it names in brackets
    ("Delete (cancel) a calendar event." -> delete, cancel; "... (change its name or title)" -> change), and
    its examples' first words."""
    out: set[str] = set()
    m = _VERB.match(action.description.strip())
    if m:
        out.add(m.group(1).lower())
        out.update(w.lower() for w in (m.group(2) or "").split())
    out.update(v.lower() for v in re.findall(r"\(([a-z]{4,})(?:\)|\s+(?:its|it|the|them|their)\b)",
                                             action.description))
    out.update(e.split()[0].lower() for e in action.examples if e.split())
    return out


_CONTENT = re.compile(r"[a-z]{3,}", re.I)
_STOP = frozenset("the and for with its who how what which this that from into onto are was has have".split())


def _closest(actions: list[Action], text: str) -> list[Action]:
    """The actions whose descriptions share the most words with the request ("change the name of ..." is
    "Rename a calendar event (change its name or title)", not "Change how long a calendar event lasts")."""
    said = {w.lower() for w in _CONTENT.findall(text)} - _STOP
    scores = {a.name: len(said & ({w.lower() for w in _CONTENT.findall(a.description)} - _STOP)) for a in actions}
    best = max(scores.values(), default=0)
    return [a for a in actions if scores[a.name] == best]


def _says(text: str, verbs: set[str]) -> bool:
    return bool(verbs & {w.lower() for w in re.findall(r"[a-z]+", text, re.I)})


def _commands(text: str, verbs: set[str], obj: re.Pattern[str]) -> bool:
    """Is one of ``verbs`` said besides the words naming the records ("cancel all my meetings"), not only as
    a word of their description ("my open tickets" asks for a list)?"""
    where = obj.search(text)
    return where is not None and _says(text[:where.start()] + " " + text[where.end():], verbs)


def _without(text: str, step: ProposedStep, keep: str, verbs: set[str], others: list[str]) -> str:
    """``text`` without the change's verb and the words of its values other than its record (with the
    "to"/"as" before them): "move all of kofi's tasks that are in progress to in review" -> "all of kofi's
    tasks that are in progress": the words that say which records. ``others`` are names that may follow a
    value as more values ("to kofi and raj")."""
    out = re.sub(r"\b(?:" + "|".join(re.escape(v) for v in sorted(verbs)) + r")\b", " ", text, count=1,
                 flags=re.I) if verbs else text
    for name, words in step.mentions.items():
        if name == keep or not words or words.lower() in _SELF:
            continue
        out = re.sub(r"(?:\b(?:to|as|into|for|with|saying|titled)\s+)?" + re.escape(words) +
                     r"(?:(?:\s*,\s*|\s+and\s+|\s*&\s*)(?:" + "|".join(re.escape(o) for o in others) + r")\b)*",
                     " ", out, count=1, flags=re.I)
    return re.sub(r"\s+", " ", out).strip()


def _when(record: Record, names: tuple[str, ...] = ()) -> datetime | None:
    """The record's date: the first attribute (of ``names`` when given) holding an ISO date or date-time, else
    its id or title when that is one (a day of analytics is its date)."""
    items = list(record.attrs.items()) + ([] if names else [("id", record.id), ("title", record.title)])
    for key, value in items:
        if names and not any(n in key.lower() for n in names):
            continue
        if isinstance(value, str) and re.match(r"^\d{4}-\d{2}-\d{2}", value):
            try:
                return datetime.fromisoformat(value.replace(" ", "T")[:19])
            except ValueError:
                continue
    return None


def narrow(records: list[Record], text: str, now: datetime) -> list[Record]:
    """The records that fit what a read's parameters cannot say: "overdue" (a due date before today, not
    finished),
    "future" / "upcoming" (dated from now on), a day ("on Friday"), a start ("since November 1", a date that
    has been), a time of day ("after 11", "before 2pm") and a range ("in the last 5 days"), against each
    record's own date."""
    today = now.date()
    naive_now = now.replace(tzinfo=None)
    keep = list(records)
    if _OVERDUE.search(text):  # past its due date and not finished
        keep = [r for r in keep if (d := _when(r, ("due", "deadline"))) is not None and d.date() < today
                and not any(isinstance(v, str) and v.strip().lower() in _FINISHED for v in r.attrs.values())]
    if _FUTURE.search(text):
        keep = [r for r in keep if (d := _when(r)) is not None and d >= naive_now]
    day: date | None = None
    for span in find_dates(text, now):
        before = text[:span.start]
        if span.kind == "date" and isinstance(span.value, date):
            day = span.value
            if _SINCE.search(before):  # "since November 1": from then on, a date that has been
                start = day if day <= today else day.replace(year=day.year - 1)
                keep = [r for r in keep if (d := _when(r)) is not None and d.date() >= start]
                continue
            keep = [r for r in keep if (d := _when(r)) is not None and d.date() == day]
        elif span.kind == "range" and isinstance(span.value, tuple):
            start, end = span.value
            keep = [r for r in keep if (d := _when(r)) is not None and (start is None or d.date() >= start)
                    and (end is None or d.date() <= end)]
        elif span.kind == "time" and isinstance(span.value, time):
            t = span.value
            if _BEFORE.search(before):
                keep = [r for r in keep if (d := _when(r)) is not None and d.time() < t]
            elif _AFTER.search(before):
                keep = [r for r in keep if (d := _when(r)) is not None and d.time() > t]
    return keep


def _read_of(interpreter: Interpreter, text: str, context: Context, reads: Catalog,
             person: Person) -> ProposedStep | None:
    if not len(reads):
        return None
    found = interpreter.interpret(text, context, reads, person)  # "which action?" with a read is that read
    if found.kind == "none" and _FIRST_PERSON.search(text):  # "my meeting with raj": the meetings with raj
        found = interpreter.interpret(_FIRST_PERSON.sub("", text), context, reads, person)
    step = next((s for s in found.steps if s.action in reads), None) if found.kind in ("plan", "question") \
        and found.param is None else None
    if step is None:
        return None
    positional = {k for k, v in step.mentions.items() if v.lower() in _POSITIONS}  # "the last event": no name
    return step.model_copy(update={"args": {k: v for k, v in step.args.items() if k not in positional},
                                   "mentions": {k: v for k, v in step.mentions.items() if k not in positional}})


def expand(found: Interpretation, text: str, *, interpreter: Interpreter, context: Context, catalog: Catalog,
           person: Person, look: Look) -> Interpretation:
    """``found``, or, for a request about many records, the plan of one step per record (or no action, or a
    question), found by reads as the person."""
    position = _position(text, context.now)
    write = _the_write(found, text, interpreter, context, catalog, person) if position is None else \
        _positioned_write(found, text, interpreter, context, catalog, person)
    if write is None or (position is not None and not _names(position[1], write[1], catalog)):
        return found
    step, action, (param, record_type) = write
    prefix = action.name.split(".")[0] + "."
    reads = Catalog([a for a in catalog if not a.is_write and a.name.startswith(prefix)])
    others = [n for p in (context.directory or ()) for n in {p.id, p.name.split()[0].lower()} if n]
    words = _without(text, step, param, _verbs(action), others or ["(?!)"])
    for span in reversed([d for d in find_durations(words) if re.search(r"\bby\s+$", words[:d.start], re.I)]):
        words = words[:span.start].rstrip()[:-2] + words[span.end:]  # "by 2 hours" says how far, not which
    read = _read_of(interpreter, words, context, reads, person)
    if read is None:
        return _none(found, "bulk", f"I could not tell which {record_type.lower()}s you mean, so I did nothing. "
                                    f"Ask me to list them first.")
    looked = _records(read, words, interpreter, context, reads, person, look, record_type)
    if looked is None:
        return _none(found, "bulk", "I could not look those records up, so I did nothing.")
    records, read = looked
    unheeded = _unheeded(read, reads.get(read.action), words, context, person)
    if unheeded:
        return _none(found, "bulk", f"I could not tell which {record_type.lower()}s you mean ({unheeded} did not "
                                    "fit one reading), so I did nothing. Ask me to list them first.")
    chosen = narrow(records, words, context.now)
    kind = record_type.lower()
    if position is not None:
        chosen = _at(chosen, position[0], context.now)
    if not chosen:
        return _none(found, "bulk", f"No {kind} matches that, so there is nothing to change.")
    if len(chosen) > LIMIT:
        return _none(found, "bulk", f"That is {len(chosen)} {kind}s, more than the {LIMIT} I change in one "
                                    "request, so I did nothing. Narrow it down and ask again.")
    args = {k: v for k, v in step.args.items() if k != param}
    mentions = {k: v for k, v in step.mentions.items() if k != param}
    steps = [ProposedStep(action=action.name, args={**args, param: r.id}, mentions=mentions,
                          confidence=step.confidence) for r in chosen]
    notice = f"That is {len(steps)} {kind}{'s' if len(steps) != 1 else ''}: " + ", ".join(
        f"{r.title or r.id} ({r.id})" for r in chosen[:10]) + ("..." if len(chosen) > 10 else "") + "."
    missing = next((p for p in params_of(action) if p.required and p.name not in steps[0].args), None)
    shift = _shift(text, context.now) if missing is not None and missing.kind == "datetime" else None
    if missing is not None and shift is not None:  # "push back my first meeting ... by 2 hours"
        shifted = [(s, d) for s, r in zip(steps, chosen, strict=True) if (d := _when(r)) is not None]
        if len(shifted) == len(steps):
            steps = [s.model_copy(update={"args": {**s.args, missing.name: (d + shift).isoformat()}})
                     for s, d in shifted]
            missing = None
    said = _destination(text) if missing is not None and missing.kind in ("text", "name") else None
    if missing is not None and said:  # "... the last event on December 19 to casual catch-up"
        steps = [s.model_copy(update={"args": {**s.args, missing.name: said},
                                      "mentions": {**s.mentions, missing.name: said}}) for s in steps]
        missing = None
    if missing is not None:  # the change's new value was not said: ask for it (of one record), never guess
        if len(steps) > 1:
            return _none(found, "bulk", f"{notice} Say the new {missing.name} in the same request, and I will "
                                        "change them all.")
        return found.model_copy(update={
            "kind": "question", "reason": "bulk", "reply": None, "steps": steps, "withheld": [], "notice": notice,
            "param": missing.name, "options": [],
            "question": f"What is the {missing.name}?" + (f" ({missing.description})" if missing.description
                                                          else "")})
    return found.model_copy(update={"kind": "plan", "reason": "bulk", "reply": None, "steps": steps,
                                    "withheld": [], "notice": notice})


# "my first meeting on December 13", "the last event on Dec 19", "my next meeting with sofia", "nadia's
# latest email": one record picked by its place in time among those the words list.
_POSITIONS = {"first": "first", "earliest": "first", "oldest": "first", "last": "last", "latest": "last",
              "newest": "last", "most recent": "last", "next": "next", "upcoming": "next",
              "previous": "previous"}
_POSITION = re.compile(r"\b(?:my|the|his|her|their|our|[a-z]+'s?)\s+(" + "|".join(_POSITIONS) +
                       r")\s+([a-z]+)", re.I)


def _position(text: str, now: datetime) -> tuple[str, str] | None:
    """(first | last | next | previous, the noun it picks: "meeting") when the request picks one record by
    its place in time; a position inside a date ("last 5 days", "next Friday") is the date's."""
    dates = find_dates(text, now)
    for m in _POSITION.finditer(text):
        if m.group(2).lower() in ("one", "ones"):  # "close the first one": the conversation's list, not a read
            continue
        if not any(d.start <= m.start(1) < d.end for d in dates):
            return _POSITIONS[m.group(1).lower()], m.group(2).lower()
    return None


def _names(noun: str, action: Action, catalog: Catalog) -> bool:
    """Does ``noun`` ("meeting", "event", "email") name the records ``action`` changes: its record type,
    or a word of the descriptions and examples of its system's actions ("Show calendar events (meetings)")?"""
    rp = _record_param(action)
    prefix = action.name.split(".")[0] + "."
    words = {rp[1].lower()} if rp else set()
    for a in catalog:
        if a.name.startswith(prefix):
            words |= {w.lower().rstrip("s") for w in _CONTENT.findall(" ".join([a.description, *a.examples]))}
    return noun.rstrip("s") in words


def _at(records: list[Record], position: str, now: datetime) -> list[Record]:
    """The one record at ``position`` in time (by each record's own date), or none."""
    dated = sorted(((d, r) for r in records if (d := _when(r)) is not None), key=lambda x: x[0])
    naive = now.replace(tzinfo=None)
    if position == "next":
        dated = [x for x in dated if x[0] >= naive]
    elif position == "previous":
        dated = [x for x in dated if x[0] < naive]
    if not dated:
        return []
    return [dated[0][1] if position in ("first", "next") else dated[-1][1]]


def _positioned_write(found: Interpretation, text: str, interpreter: Interpreter, context: Context,
                      catalog: Catalog, person: Person) -> tuple[ProposedStep, Action, tuple[str, str]] | None:
    """The change asked of the record a position picks: among the writes over one record whose verb the
    request says, the one the interpreter proposed, else the one it proposes over those alone."""
    if is_question(text, catalog) or found.kind == "reply":
        return None
    said = [a for a in catalog if a.is_write and _record_param(a) is not None and _commands(text, _verbs(a),
                                                                                           _POSITION)]
    if not said:
        return None
    said = _closest(said, text)
    for step in [*found.steps, *found.withheld]:
        action = next((a for a in said if a.name == step.action), None)
        if action is not None:
            rp = _record_param(action)
            return _destined(step, action, rp, text, interpreter, context, person) if rp else None
    again = interpreter.interpret(text, context, Catalog(said), person)
    proposed = next((s for s in [*again.steps, *again.withheld] if s.action in {a.name for a in said}), None)
    if proposed is None:
        return None
    action = catalog.get(proposed.action)
    rp = _record_param(action)
    return _destined(proposed, action, rp, text, interpreter, context, person) if rp else None


def _the_write(found: Interpretation, text: str, interpreter: Interpreter, context: Context, catalog: Catalog,
               person: Person) -> tuple[ProposedStep, Action, tuple[str, str]] | None:
    """The change asked for "all of" some records: the write withheld from ``found`` when the request says
    its verb, else the one write over the same type of record whose verb it says, as the interpreter reads
    the request over that write alone. None when there is no such change (or more than one)."""
    if found.kind == "plan" and found.steps and not any(catalog.get(s.action).is_write for s in found.steps
                                                        if s.action in catalog):
        return _listed(found, text, interpreter, context, catalog, person)
    if found.kind != "none" or found.reason != "bulk":
        return None
    for step in found.withheld:
        action = catalog.get(step.action) if step.action in catalog else None
        if action is None or not action.is_write or (rp := _record_param(action)) is None:
            continue
        if _says(text, _verbs(action)):
            return _destined(step, action, rp, text, interpreter, context, person)
        said = [a for a in catalog if a.is_write and (r := _record_param(a)) is not None and r[1] == rp[1]
                and _says(text, _verbs(a))]
        if len(said) != 1:
            return None
        again = interpreter.interpret(text, context, Catalog(said), person)
        chosen = next((s for s in again.steps or again.withheld if s.action == said[0].name), None)
        return _destined(chosen, said[0], _record_param(said[0]) or rp, text, interpreter, context, person) \
            if chosen is not None else None
    return None


def _listed(found: Interpretation, text: str, interpreter: Interpreter, context: Context, catalog: Catalog,
            person: Person) -> tuple[ProposedStep, Action, tuple[str, str]] | None:
    """A request the interpreter answered with a list ("cancel all future meetings with raj" as the
    meetings with raj) that asks, in so many words, to change many records: the one write of the read's
    system, over a record, whose verb the request says."""
    if is_question(text, catalog) or not _MANY.search(text):
        return None
    read = catalog.get(found.steps[0].action)
    prefix = read.name.split(".")[0] + "."
    said = [a for a in catalog if a.is_write and a.name.startswith(prefix) and a.connector == read.connector
            and _record_param(a) is not None and _commands(text, _verbs(a), _MANY)]
    if len(said) != 1:
        return None
    again = interpreter.interpret(text, context, Catalog(said), person)
    chosen = next((s for s in again.steps or again.withheld if s.action == said[0].name), None)
    rp = _record_param(said[0])
    return _destined(chosen, said[0], rp, text, interpreter, context, person) \
        if chosen is not None and rp is not None else None


# "all of kofi's tasks", "every lead", "their in progress tasks", "my meetings on Friday": many records.
_MANY = re.compile(r"\b(?:all|every|each)\b(?:(?:\s+[\w'-]+){0,4}?\s+[a-z]+[^s\W]s\b)?|"
                   r"\b(?:their|his|her|my|our|[a-z]+'s?)\s+(?:[\w-]+\s+){0,3}?[a-z]+[^s\W]s\b", re.I)


_LATER = re.compile(r"\b(?:push(?:ed)?\s+back|delay|postpone|move|shift|push)\b", re.I)
_EARLIER = re.compile(r"\b(?:bring|brought|pull|move|shift)\s+(?:\S+\s+){0,6}?(?:forward|earlier)\b|\bearlier\b",
                      re.I)


def _shift(text: str, now: datetime) -> timedelta | None:
    """How far a change moves a record's time: "by 2 hours" later ("push back", "delay", "move"), or earlier
    ("bring forward", "earlier"); None when no "by <duration>" is said."""
    spans = [d for d in find_durations(text) if re.search(r"\bby\s+$", text[:d.start], re.I)]
    if len(spans) != 1 or not isinstance(spans[0].value, int | float):
        return None
    minutes = timedelta(minutes=float(spans[0].value))
    if _EARLIER.search(text):
        return -minutes
    return minutes if _LATER.search(text) else None


_DESTINATION = re.compile(r"\bto\s+(?!(?:the|a|an|my|his|her|their|in|on)\b)([^.?!,;:'\"]+?)\s*(?:,?\s*please)?"
                          r"\s*[.?!]?\s*$", re.I)


def _destination(text: str) -> str | None:
    """The words after the last "to" that end the request: the new value of a change whose words the
    interpreter did not take ("change the name of the last event on December 19 to casual catch-up")."""
    m = _DESTINATION.search(text.strip())
    return m.group(1).strip() if m and " to " not in f" {m.group(1)} " else None


_TO = r"\b(?:to|as|into|onto|with)\s+(?:the\s+)?"


def _destined(step: ProposedStep, action: Action, rp: tuple[str, str], text: str, interpreter: Interpreter,
              context: Context, person: Person) -> tuple[ProposedStep, Action, tuple[str, str]] | None:
    """The change with its new values where the request puts new values: after "to" / "as" / "into"
    ("reassign all of akira's leads to lena": lena, not akira, whose leads they are). A value said
    elsewhere is read again from the request without it; None when no reading puts it there."""
    for _ in range(3):
        stray = next(((k, w) for k, w in step.mentions.items() if k != rp[0] and w and w.lower() not in _SELF
                      and re.search(_TO + re.escape(w), text, re.I) is None), None)
        if stray is None:
            return step, action, rp
        fewer = re.sub(r"\b" + re.escape(stray[1]) + r"(?:'s)?\b", " ", text, count=1, flags=re.I)
        again = interpreter.interpret(fewer, context, Catalog([action]), person)
        found = next((s for s in again.steps or again.withheld if s.action == action.name
                      and s.args.get(stray[0]) != step.args.get(stray[0])), None)
        if found is None:
            return None
        if found.args.get(stray[0]) is None:  # said only as part of which record ("on December 4"): not a value
            step = step.model_copy(update={"args": {k: v for k, v in step.args.items() if k != stray[0]},
                                           "mentions": {k: v for k, v in step.mentions.items() if k != stray[0]}})
            continue
        step = found.model_copy(update={"mentions": {**step.mentions, **found.mentions}})
    return None


def _unheeded(read: ProposedStep, action: Action, words: str, context: Context, person: Person) -> str:
    """What the request says of the records that the read leaves out, or "" when it heeds every word: each
    choice it names ("in progress", "done") must be the read's one value for that choice, and each colleague
    it names the read's value for a person. Acting on more records than were meant is worse than asking."""
    low = words.lower()
    for p in params_of(action):
        if p.kind != "enum":
            continue
        named = {value for value, labels in ({v: [v] for v in p.enum} | p.labels).items()
                 for label in [value, *labels] if re.search(r"\b" + re.escape(label.lower()) + r"\b", low)}
        if named and (len(named) > 1 or read.args.get(p.name) not in named):
            return " and ".join(sorted(named))
    people = {str(v).lower() for p in params_of(action) if p.kind in ("person", "recipient")
              for v in [read.args.get(p.name)] if v}
    for other in context.directory or ():
        if other.id == person.id:
            continue
        first = other.name.split()[0].lower() if other.name else other.id
        if re.search(r"\b" + re.escape(first) + r"\b", low) and not people & {other.id.lower(),
                                                                               other.email.lower()}:
            return other.name
    return ""


def _records(read: ProposedStep, words: str, interpreter: Interpreter, context: Context, reads: Catalog,
             person: Person, look: Look, record_type: str) -> tuple[list[Record], ProposedStep] | None:
    """The read's records of the type, and the read that found them; a filter on the person themselves
    ("my") that no record of the kind could meet is read as no filter (the words are read again without it)."""
    records = look(read.action, dict(read.args))
    if records is None:
        return None
    selves = [k for k, v in read.mentions.items() if v.lower() in _SELF]
    if not records and selves:
        alone = look(read.action, {k: read.args[k] for k in selves})
        if alone is not None and not alone:
            again = _read_of(interpreter, _FIRST_PERSON.sub("", words), context, reads, person)
            if again is not None:
                read = again.model_copy(update={"args": {
                    k: v for k, v in again.args.items() if (again.mentions.get(k) or "").lower() not in _SELF}})
                records = look(read.action, dict(read.args)) or []
    return [r for r in records if r.type == record_type], read


def _none(found: Interpretation, reason: str, reply: str) -> Interpretation:
    return found.model_copy(update={"kind": "none", "reason": reason, "reply": reply, "steps": [], "withheld": []})


_AND = re.compile(r"\s*(?:,\s*(?:and\s+|&\s*)?|\s+and\s+|\s*&\s*)(?:to\s+|with\s+)?", re.I)
_TOKEN = re.compile(r"[\w.@'-]+")


def spread(found: Interpretation, text: str, catalog: Catalog, directory: Directory | None) -> Interpretation:
    """Several values said for one value ("email nadia and kofi", "move tasks 00000012 and 00000013 to
    done") become several steps, one per value, when the interpreter took the first alone: a colleague after
    a colleague, an id after an id of the same pattern. Nothing else is split."""
    if found.kind not in ("plan", "question") or not found.steps:
        return found
    steps: list[ProposedStep] = []
    for step in found.steps:
        action = catalog.get(step.action) if step.action in catalog else None
        more = _more(step, action, text, directory) if action is not None and action.is_write else None
        if more is None:
            steps.append(step)
            continue
        name, values = more
        steps += [step.model_copy(update={"args": {**step.args, name: v}, "mentions": {**step.mentions, name: v}})
                  for v in values]
    if len(steps) == len(found.steps):
        return found
    return found.model_copy(update={"steps": steps})


def _more(step: ProposedStep, action: Action, text: str, directory: Directory | None) -> tuple[str, list[object]] \
        | None:
    """The parameter said with more than one value, and its values (the first as the interpreter read it)."""
    for p in params_of(action):
        words = step.mentions.get(p.name)
        if p.many or not words or p.kind not in ("person", "recipient", "record"):
            continue
        at = re.search(r"(?<![\w@.])" + re.escape(words) + r"(?![\w@])", text, re.I)
        if at is None:
            continue
        values: list[object] = [step.args[p.name]]
        rest = text[at.end():]
        while (joint := _AND.match(rest)) is not None:
            token = _TOKEN.match(rest, joint.end())
            if token is None:
                break
            word = token.group(0).rstrip(".'")
            if p.kind == "record":
                if not (p.id_pattern and re.fullmatch(p.id_pattern, word)):
                    break
                values.append(word)
            else:
                people = directory.find(word) if directory is not None else []
                if len(people) != 1:
                    break
                values.append(people[0].id)
            rest = rest[token.end():]
        if len(values) > 1:
            return p.name, values
    return None
