"""Requests under a condition ("if X, do Y"), evaluated now by reads, whichever interpreter proposed them.

:mod:`sayso.interpreter.guesses` withholds a change asked for under a condition: an interpreter reads words,
not data. Here, in the turn:

1. the request is split into the condition and what to do ("if X, Y", "Y if X", "X? If so, Y", "... and if
   so, Y", with "otherwise Z" for when it does not hold);
2. the condition is read by the interpreter over the catalog's reads alone, and that read is run as the
   person (only records they may read);
3. it is decided from the records: a number compared with a threshold ("total visits was more than 10 at
   any time since October 1": any day's ``total_visits`` above 10; "is": the latest), or whether there are
   any ("has any overdue tasks", "hasn't sent me any emails in the past 5 days"), narrowed like a request
   about many records (:func:`sayso.bulk.narrow`);
4. then what to do (or, if it does not hold, the "otherwise", or nothing) is interpreted on its own words and
   goes through the pipeline as any request, with a notice saying what was checked and what was found.

A condition it cannot decide (a percentage change, a comparison between two days, a condition about the
future that standing instructions did not take) stays declined, with why: nothing is done on a guess.
"""

from __future__ import annotations

import re
from datetime import date, datetime

from rapidfuzz import fuzz

from .bulk import Look, expand, narrow, spread
from .catalog import Catalog
from .connectors import Record
from .directory import Person
from .instructions.triggers import looks_back
from .interpreter import Context, Interpretation, Interpreter, ProposedStep
from .interpreter.guesses import _CONDITION, decline_guesses
from .interpreter.questions import CONSEQUENT as _SO
from .interpreter.questions import is_question
from .interpreter.values import find_dates

__all__ = ["evaluate", "settle", "split"]

_IF = re.compile(r"\b(?:if|provided(?: that)?|as long as)\b\s+", re.I)
_ELSE = re.compile(r"(?:[.;,]\s*|\s+)(?:otherwise|if not|else|if it (?:isn'?t|wasn'?t|hasn'?t|didn'?t))\b\s*,?\s*",
                   re.I)
_CHECK = re.compile(r"^\s*(?:(?:can|could|would) you\s+)?(?:please\s+)?(?:check|see|find out|look)\s+(?:if|whether)\s+"
                    r"|^\s*(?:i think|i believe|i suspect|maybe|perhaps)\s+", re.I)
_MIGHT = re.compile(r"\b(?:might|may|could)\s+have\s+been\b", re.I)
_CMP = re.compile(r"\b(?P<op>(?:more|greater|higher|less|fewer|lower)\s+than|above|over|below|under)\s+"
                  r"(?P<n>-?\d+(?:\.\d+)?)\b(?!\s*(?:%|percent|per cent))", re.I)
_RELATIVE = re.compile(r"%|\bpercent\b|\bper cent\b|\bthan (?:it|they) (?:was|were|did)\b|\bprevious\b", re.I)
_NEGATED = re.compile(r"\b(?:hasn'?t|haven'?t|hadn'?t|didn'?t|doesn'?t|don'?t|isn'?t|aren'?t|wasn'?t|not|no|"
                      r"never|none)\b", re.I)
_ANY = re.compile(r"\b(?:any time|anytime|ever|at some point|at any point|on any day|any day)\b", re.I)
_NOW = re.compile(r"\b(?:is|are)\b", re.I)
_FUTURE = re.compile(r"\b(?:when|once|whenever|as soon as|by the time)\b", re.I)
_THEM = re.compile(r"\b(?:them|they|their|him|her|his)\b", re.I)


def split(text: str) -> tuple[str, str, str] | None:
    """(condition, what to do, what to do otherwise) of a conditional request, or None."""
    so = _SO.search(text)
    if so is not None:
        condition, then = text[:so.start()], text[so.end():]
        condition = _MIGHT.sub("was", _CHECK.sub("", re.sub(r"[.?!]\s*(?:can|could) you check\s*$", "",
                                                            condition.strip(), flags=re.I)))
    else:
        m = _IF.search(text)
        if m is None:
            return None
        before, after = text[:m.start()].strip(" ,"), text[m.end():]
        if before and not _CHECK.match(before + " if "):  # "make a chart ... if it was more than 2"
            end = re.search(r"[.?!;]\s|$", after)
            condition, then = after[:end.start() if end else len(after)], before
        else:
            comma = re.search(r",\s*(?:then\s+)?|\s+then\s+", after)
            if comma is None:
                return None
            condition, then = after[:comma.start()], after[comma.end():]
    otherwise = ""
    other = _ELSE.search(then)
    if other is not None:
        then, otherwise = then[:other.start()], then[other.end():]
    condition, then = condition.strip(" ,.?"), then.strip(" ,")
    return (condition, then, otherwise.strip(" ,")) if condition and then else None


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and re.fullmatch(r"-?\d+(?:\.\d+)?", value.strip()):
        return float(value)
    return None


def evaluate(condition: str, records: list[Record], now: datetime) -> tuple[bool | None, str]:
    """Whether the condition holds over the records its read found, and what was found; None when these
    words do not say a test sayso can apply (then nothing is done)."""
    if _RELATIVE.search(condition):
        return None, "it compares with another value (a percentage or another day), which I cannot check"
    kept = narrow(records, condition, now)
    cmp = _CMP.search(condition)
    if cmp is None:
        if not (_NEGATED.search(condition) or re.search(r"\b(?:any|some|there (?:is|are))\b", condition, re.I)):
            return None, "it does not say what to look for"
        exists = bool(kept)
        holds = not exists if _NEGATED.search(condition) else exists
        return holds, f"{len(kept)} found"
    numeric = sorted({k for r in kept for k, v in r.attrs.items() if _number(v) is not None})
    subject = condition[:cmp.start()]
    scored = sorted(((fuzz.token_set_ratio(subject.lower(), k.replace("_", " ")), k) for k in numeric), reverse=True)
    if not scored or scored[0][0] < 70 or (len(scored) > 1 and scored[1][0] == scored[0][0]):
        return None, "I could not tell which figure it is about"
    attr, threshold = scored[0][1], float(cmp.group("n"))
    above = cmp.group("op").lower().split()[0] in ("more", "greater", "higher", "above", "over")
    values = [(v, r) for r in kept if (v := _number(r.attrs.get(attr))) is not None]
    if not values:
        return None, f"there is no {attr.replace('_', ' ')} to compare"
    if _NOW.search(subject) and not _ANY.search(condition):  # "is more than": the latest figure
        values = values[-1:]
    hits = [(v, r) for v, r in values if (v > threshold if above else v < threshold)]
    best = max(values, key=lambda x: x[0]) if above else min(values, key=lambda x: x[0])
    said = f"{attr.replace('_', ' ')} {'peaked at' if above else 'fell to'} {best[0]:g} ({best[1].title or best[1].id})"
    return bool(hits), said


def settle(found: Interpretation, text: str, *, interpreter: Interpreter, context: Context, catalog: Catalog,
           person: Person, look: Look) -> Interpretation:
    """``found``, with a condition evaluated now (then what to do, or nothing), or a request about many
    records expanded (:func:`sayso.bulk.expand`)."""
    if (found.kind == "none" and found.reason == "condition") or (
            found.kind == "plan" and not any(catalog.get(s.action).is_write for s in found.steps if s.action in catalog)
            and _CONDITION.search(text) and not is_question(text, catalog)):
        return _conditional(found, text, interpreter=interpreter, context=context, catalog=catalog,
                            person=person, look=look)
    then = _SO.search(text)
    if then is not None and text[then.end():].strip() and found.kind == "plan" and is_question(text, catalog):
        # "can you check if X? If so, Y": X is answered by reads; Y is never done on that answer's strength
        # (what to do under the condition is left to the person, who now knows whether it holds).
        said = "I only answered the question and changed nothing; if the answer calls for it, ask me to " \
               f"{text[then.end():].strip().rstrip('.!?')}."
        found = found.model_copy(update={"notice": f"{found.notice}\n{said}" if found.notice else said})
    return spread(expand(found, text, interpreter=interpreter, context=context, catalog=catalog, person=person,
                         look=look), text, catalog, context.directory)


def _conditional(found: Interpretation, text: str, *, interpreter: Interpreter, context: Context,
                 catalog: Catalog, person: Person, look: Look) -> Interpretation:
    parts = split(text)
    if parts is None:
        return found
    condition, then, otherwise = parts
    if _FUTURE.search(condition) or (not looks_back(condition) and any(
            _ahead(span.value, context.now) for span in find_dates(condition, context.now))):
        return found  # about the future: a standing instruction's, not now's
    reads = Catalog([a for a in catalog if not a.is_write])
    asked = interpreter.interpret(condition, context, reads, person)
    read = next((s for s in asked.steps if s.action in reads), None) if asked.kind == "plan" else None
    records = look(read.action, dict(read.args)) if read is not None else None
    if read is None or records is None:
        return _declined(found, condition, "I could not find what it depends on")
    holds, said = evaluate(condition, records, context.now)
    if holds is None:
        return _declined(found, condition, said)
    todo = then if holds else otherwise
    verdict = f"I checked {condition!r}: {'yes' if holds else 'no'} ({said})"
    if not todo:
        return found.model_copy(update={"kind": "none", "reason": "condition", "withheld": [], "steps": [],
                                        "reply": f"{verdict}, so I did nothing."})
    todo = _named(todo, read)
    proposed = decline_guesses(interpreter.interpret(todo, context, catalog, person), todo, catalog)
    done = spread(expand(proposed, todo, interpreter=interpreter, context=context, catalog=catalog, person=person,
                         look=look), todo, catalog, context.directory)
    notice = f"{verdict}, so: {todo}"
    return done.model_copy(update={"notice": f"{notice}\n{done.notice}" if done.notice else notice})


def _named(todo: str, read: ProposedStep) -> str:
    """What to do, with "them" as the one colleague the condition named ("if kofi has any overdue tasks,
    book a meeting with them")."""
    people = [w for w in read.mentions.values() if w and w.lower() not in ("my", "me", "i", "our")]
    if len(people) != 1 or not any(isinstance(v, str) and "." in v or "@" in str(v) for v in read.args.values()):
        return todo
    return _THEM.sub(people[0], todo)


def _ahead(value: object, now: datetime) -> bool:
    """Is a date (or a range's start) the condition names after today (a deadline to wait for)?"""
    first = value[0] if isinstance(value, tuple) else value
    if isinstance(first, datetime):
        first = first.date()
    return isinstance(first, date) and first > now.date()


def _declined(found: Interpretation, condition: str, why: str) -> Interpretation:
    reply = (f"That asks me to act only if {condition!r}, and {why}, so I did nothing. Ask me to show what it "
             "depends on, then tell me what to do.")
    return found.model_copy(update={"kind": "none", "reason": "condition", "steps": [], "withheld": [],
                                    "question": None, "param": None, "options": [], "reply": reply})
