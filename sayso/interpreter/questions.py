"""A question proposes reads only, whatever interpreter read it.

"is the Brightwater deal in negotiation yet?" asks about a record's state; an interpreter that matched its
words to ``crm.update_deal`` must not move the deal. :func:`reads_only` turns every write step of an
interrogative request into the read that shows the same record (or drops it), and says why in the
interpretation's ``reason`` and ``notice``. A polite command ("can you move ...?", "could you please close
...?", "please send ...?") is a request, not a question, and keeps its writes.
"""

from __future__ import annotations

import re
from functools import lru_cache

from ..catalog import Action, Catalog
from . import Interpretation, ProposedStep

__all__ = ["CONSEQUENT", "is_question", "reads_only"]

_OPENER = (r"(?:(?:hey|hi|hello|ok|okay|so|and|also|now|then|great|sure|quick question|one question|sayso|um|"
           r"well)\b[\s,:;.!-]*)*")
# Asked of sayso, so a request: "can you / could you please / would you mind / ... will ya?", "please ...",
# "can I get ...", "is it possible to ...", "could you tell devi nice job?". Not when what sayso is asked to
# do is to inform the speaker: "can you tell me whether ...", "could you check if ...", "can you say who ...".
_WH = r"(?:whether|if|who|whom|whose|what|what'?s|which|when|where|why|how)"
_POLITE = re.compile(
    r"\b(?:(?:can|could|would|will|won'?t)\s+(?:you|u|ya)\b(?!(?:\s+(?:please|kindly|just|quickly|possibly|"
    r"maybe|also))*\s+(?:(?:tell|show|let)\s+(?:me|us)\b|(?:tell|say)\s+" + _WH + r"\b|confirm|check|see|"
    r"find out|look|know|remember|recall)\b)|"
    r"(?:can|could|may|shall)\s+(?:i|we)\s+(?:please\s+)?(?:get|have|book|reserve|order|find|proceed|"
    r"go ahead)\b|is it possible (?:for you )?to\b|would you be (?:so kind|able)\b)|(?:^|[,;:]\s*)please\s+[a-z]",
    re.I)
# "I want to ...", "let's ...", "why don't we ...": a request stated, not a question.
_WANT = re.compile(r"^\s*" + _OPENER + r"(?:i|we)(?:'d| would)? (?:want|need|like|wish)\b|(?:let'?s|let us|"
                   r"why don'?t (?:we|you|i)|how about|i'?m looking (?:to|for)|i am looking (?:to|for)|go ahead|"
                   r"proceed)\b", re.I)
_INTERROGATIVE = re.compile(
    r"^\s*" + _OPENER + r"(?:(?:is|are|was|were|am|does|do|did|has|have|had|can|could|should|shall|will|would|"
    r"may|might|must|isn'?t|aren'?t|wasn'?t|weren'?t|doesn'?t|don'?t|didn'?t|hasn'?t|haven'?t|hadn'?t|can'?t|"
    r"couldn'?t|shouldn'?t|won'?t|wouldn'?t)\b|(?:who|whom|whose|what|what'?s|whats|which|when|when'?s|where|"
    r"where'?s|why|how|how'?s)\b(?!\s+about\b)|(?:tell me|let me know|do you know|any idea|i wonder|"
    r"i'?m wondering|i was wondering|i'?d like to know)\b.{0,40}?\b(?:whether|if|when|who|what|which|how|why|"
    r"where)\b)", re.I)
_FIRST = re.compile(r"^\s*" + _OPENER + r"([a-z]+)\b", re.I)
# Verbs a command starts with ("find a cab there?", "move D-101 to negotiation?"), besides the first word of
# every action's description in the catalog.
_VERBS = frozenset("get find show give book make set add send move close open assign create delete remove cancel "
                   "update change schedule reserve buy order call list look search put mark log note remind "
                   "reassign transfer pay play rent email message tell ping invite".split())
# "..., if so, Y" / "... and if it is, Y": what follows is done under the condition before it (a request when
# it does not itself ask; sayso.conditions evaluates it).
CONSEQUENT = re.compile(r"(?:^|[.?!;,]\s*|\band\s+)(?:then\s+)?if\s+(?:so|yes|that'?s (?:the case|true|right)|"
                        r"it (?:is|was|has|did))\b\s*,?\s*", re.I)
_SENTENCES = re.compile(r"(?<=[.?!])\s+")
_QUOTED = re.compile(r"(?<!\w)(['\"‘“]).+?(?:\1|[’”])(?!\w)")


# The words a question turns on, recognised through one slip of the keyboard ("shoudl we", "whta", "whehter").
_KEYWORDS = ("should", "could", "would", "what", "which", "where", "when", "whose", "whether", "does", "have",
             "tell", "quick", "question", "wonder", "know", "status")
_WORD = re.compile(r"[a-z]{4,}", re.I)


def _slip(word: str, target: str) -> bool:
    """One swapped pair of neighbouring letters, or (five letters and more) one letter too many or too few."""
    if len(word) == len(target):
        diff = [i for i, (a, b) in enumerate(zip(word, target, strict=True)) if a != b]
        return len(diff) == 2 and diff[1] == diff[0] + 1 and word[diff[0]] == target[diff[1]] \
            and word[diff[1]] == target[diff[0]]
    if min(len(word), len(target)) < 5 or abs(len(word) - len(target)) != 1:
        return False
    short, long_ = sorted((word, target), key=len)
    return any(long_[:i] + long_[i + 1:] == short for i in range(len(long_)))


def _mended(text: str) -> str:
    """``text`` with the question's keywords spelt right."""
    return _WORD.sub(lambda m: _keyword(m.group(0).lower()) or m.group(0), text)


@lru_cache(maxsize=8192)
def _keyword(word: str) -> str | None:
    """The keyword ``word`` is a slip of, if any (a keyword itself is left as it is written)."""
    if word in _KEYWORDS:
        return None
    return next((k for k in _KEYWORDS if _slip(word, k)), None)


def _verb(word: str, catalog: Catalog | None) -> bool:
    """A word a command starts with: a common one, or the first word of an action's description."""
    return word in _VERBS or (catalog is not None and any(
        a.description[:len(word) + 1].lower() == word + " " for a in catalog))


def is_question(text: str, catalog: Catalog | None = None) -> bool:
    """True when ``text`` asks (yes/no, wh-, "tell me whether ...", a trailing "?") and nothing in it
    requests: a polite command ("could you close SUP-17?"), a stated want ("I want to book ..."), a
    sentence that starts with a verb ("find me a cab there?") or what to do under a condition ("X? If so,
    Y") is a request. Quoted text is someone else's."""
    own = _mended(_QUOTED.sub(" ", text).strip())
    asks = False
    for sentence in (s for s in _SENTENCES.split(own) if s.strip()):
        if _POLITE.search(sentence) or _WANT.match(sentence):
            return False
        if _INTERROGATIVE.match(sentence):
            asks = True
            continue
        first = _FIRST.match(sentence)
        if first is not None and _verb(first.group(1).lower(), catalog):
            return False
        asks = asks or sentence.rstrip().endswith("?")
    return asks


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
    if found.kind not in ("plan", "question") or not writes or not is_question(text, catalog):
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
