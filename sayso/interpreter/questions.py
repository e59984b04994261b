"""A question proposes reads only, whatever interpreter read it.

"is the Brightwater deal in negotiation yet?" asks about a record's state; an interpreter that matched its
words to ``crm.update_deal`` must not move the deal. :func:`reads_only` turns every write step of an
interrogative request into the read that shows the same record (or drops it), and says why in the
interpretation's ``reason`` and ``notice``. A polite command ("can you move ...?", "could you please close
...?", "please send ...?") is a request, not a question, and keeps its writes.
"""

from __future__ import annotations

import re

from ..catalog import Action, Catalog
from . import Interpretation, ProposedStep

__all__ = ["is_question", "reads_only"]

_OPENER = r"(?:(?:hey|hi|ok|okay|so|and|also|quick question|one question|sayso|um|well)\b[\s,:;.!-]*)*"
# "can you / could you please / would you mind / will you ...": asked of sayso, so a request.
_POLITE = re.compile(
    r"^\s*" + _OPENER + r"(?:please\s+)?(?:(?:can|could|would|will|won'?t)\s+(?:you|u|ya)(?:\s+(?:please|kindly|"
    r"just|quickly|possibly|maybe))*(?:\s+mind)?|would you be (?:so kind|able)|please|kindly|i'?d like you to|"
    r"i need you to|i want you to)\b(?!\s+(?:tell|say|confirm|check|see|find out|let me know|look|show|know|remind "
    r"me (?:whether|if|what|when|who|which))\b)", re.I)
_INTERROGATIVE = re.compile(
    r"^\s*" + _OPENER + r"(?:(?:is|are|was|were|am|does|do|did|has|have|had|can|could|should|shall|will|would|may|"
    r"might|must|isn'?t|aren'?t|wasn'?t|weren'?t|doesn'?t|don'?t|didn'?t|hasn'?t|haven'?t|hadn'?t|can'?t|"
    r"couldn'?t|shouldn'?t|won'?t|wouldn'?t)\b|(?:who|whom|whose|what|what'?s|whats|which|when|when'?s|where|"
    r"where'?s|why|how|how'?s)\b(?!\s+about\b)|(?:tell me|let me know|do you know|any idea|i wonder|i'?m wondering|"
    r"i was wondering|i'?d like to know|can you tell me|could you tell me)\b.{0,40}?\b(?:whether|if|when|who|"
    r"what|which|how|why|where)\b)", re.I)
_SENTENCES = re.compile(r"(?<=[.?!])\s+")
_QUOTED = re.compile(r"(?<!\w)(['\"‘“]).+?(?:\1|[’”])(?!\w)")


def is_question(text: str) -> bool:
    """True when ``text`` asks (yes/no, wh-, "tell me whether ...", a trailing "?") rather than requests:
    a polite command ("could you close SUP-17?") is a request. Quoted text is someone else's words."""
    own = _QUOTED.sub(" ", text).strip()
    sentences = [s for s in _SENTENCES.split(own) if s.strip()]
    if not sentences or any(_POLITE.match(s) for s in sentences):
        return False
    return any(_INTERROGATIVE.match(s) or s.rstrip().endswith("?") for s in sentences)


def _reader(write: Action, step: ProposedStep, catalog: Catalog) -> ProposedStep | None:
    """The read that shows the record ``step`` would change: same record type, no other required argument,
    the same system first."""
    from .offline.schema import params_of  # here: the offline package imports this module

    named = [(p.record, step.args[p.name], step.mentions.get(p.name)) for p in params_of(write)
             if p.kind == "record" and step.args.get(p.name) not in (None, "")]
    if not named:
        return None
    system = write.name.split(".")[0]
    candidates: list[tuple[tuple[int, int], ProposedStep]] = []
    for action in catalog:
        if action.is_write:
            continue
        params = params_of(action)
        for record, value, mention in named:
            wanted = set(record.split("|"))
            for p in params:
                kinds = set(p.record.split("|")) if p.kind == "record" and p.record else set()
                others = [q for q in params if q.required and q.name != p.name]
                if kinds & wanted and not others:
                    rank = (0 if action.name.split(".")[0] == system else 1, 0 if p.required else 1)
                    mentions = {p.name: mention} if mention else {}
                    candidates.append((rank, ProposedStep(action=action.name, args={p.name: value},
                                                          mentions=mentions, confidence=step.confidence)))
    return min(candidates, key=lambda c: c[0])[1] if candidates else None


def reads_only(found: Interpretation, text: str, catalog: Catalog) -> Interpretation:
    """``found``, or, when ``text`` is a question and ``found`` would write, the reads that answer it
    (each write replaced by the read of its record, or dropped) and why, or no action when none is left."""
    writes = [s for s in found.steps if s.action in catalog and catalog.get(s.action).is_write]
    if found.kind not in ("plan", "question") or not writes or not is_question(text):
        return found
    steps: list[ProposedStep] = []
    for step in found.steps:
        if step not in writes:
            steps.append(step)
            continue
        read = _reader(catalog.get(step.action), step, catalog)
        if read is not None and read not in steps:
            steps.append(read)
    dropped = ", ".join(dict.fromkeys(s.action for s in writes))
    why = (f"That reads as a question, so I changed nothing ({dropped} not run); to make the change, "
           "ask for it (for example: \"please ...\" or \"can you ...\").")
    if not steps:
        return found.model_copy(update={"kind": "none", "reason": "question", "reply": why, "steps": [],
                                        "question": None, "param": None, "options": []})
    notice = f"{found.notice}\n{why}" if found.notice else why
    return found.model_copy(update={"kind": "plan", "reason": "question", "notice": notice, "steps": steps,
                                    "question": None, "param": None, "options": []})
