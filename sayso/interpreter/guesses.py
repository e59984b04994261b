"""Requests no interpreter can carry out safely in one step, or asks not to act, declined whatever interpreter
read them.

An interpreter proposes from words, before any data is read, so it cannot evaluate a condition ("if I
haven't met aisha in the last 9 days, schedule ...") and a write step changes one record, not "all of
kofi's tasks". :func:`decline_guesses` turns a proposal that would act on such a request into no action
with a reply that says why; reads are left alone.
"""

from __future__ import annotations

import re

from ..catalog import Catalog
from ..text import close_quotes
from . import Interpretation
from .questions import _QUOTED, reads_only

__all__ = ["decline_guesses", "refuses"]

# "If I haven't met aisha in the last 9 days, schedule ...": a condition this interpreter cannot evaluate. A
# concession is not one: "even if it is shared", "it's fine if ...", "I don't mind if ..." allow, they set no
# condition on acting.
_CONDITION = re.compile(
    r"\b(?<!even )(?<!fine )(?<!okay )(?<!ok )(?<!alright )(?<!mind )(?<!matter )"
    r"(?:if|unless|provided(?: that)?|as long as|in case|only when|whether)\b(?!\s+(?:you (?:can|could|would|"
    r"don'?t mind|have (?:a )?(?:time|moment|chance)|get (?:a|the) chance)|possible|needed|necessary|"
    r"that'?s (?:ok|okay|alright|fine|possible)|so desired)\b)", re.I)


# "all of kofi's tasks", "every lead assigned to Lena": more records than one step changes.
_BULK = re.compile(r"\b(?:all|every|each|any)\b(?:\s+(?:of\s+)?(?:the|my|our|their|his|her|[\w.]+'s?))?"
                   r"(?:\s+[\w-]+){0,3}?\s+(?:[\w-]+s)\b", re.I)


def _own_words(found: Interpretation, text: str, catalog: Catalog) -> str:
    """The message without what it quotes or dictates ("tell raj 'if you can, call me'"): words meant
    for others are carried, never read as conditions or quantities of this request."""
    from .offline.schema import params_of  # here: the offline package imports this module

    own = _QUOTED.sub(" ", text)
    for step in found.steps:
        if step.action not in catalog:
            continue
        texts = {p.name for p in params_of(catalog.get(step.action)) if p.kind == "text"}
        for name, words in step.mentions.items():
            if name in texts and words:
                own = own.replace(words, " ")
    return own


def unless_bulk(found: Interpretation, text: str, catalog: Catalog) -> Interpretation:
    """A change to "all of kofi's tasks" is not made on one of them: a write step names one record, so a
    request for many is declined with what to do instead, rather than run on whichever record a word fits."""
    if found.kind not in ("plan", "question") or not found.steps or _BULK.search(_own_words(found, text,
                                                                                          catalog)) is None:
        return found
    for step in found.steps:
        action = catalog.get(step.action) if step.action in catalog else None
        if action is not None and action.is_write and action.marked("x-record"):
            return _declined(found, "bulk", "That asks me to change several records at once, and I change one "
                                            "record per step, so I did nothing. Ask me to list them, then name "
                                            "each one to change.")
    return found


def unless_conditional(found: Interpretation, text: str, catalog: Catalog) -> Interpretation:
    """A change asked for under a condition ("if so", "if it's been longer than 10 days", "unless ...") is
    not made on a guess: an interpreter reads words, not data, so the request is declined with why, rather
    than run as if the condition held. Reads stay (they answer the question the condition asks)."""
    if found.kind not in ("plan", "question") or not found.steps:
        return found
    writes = [s.action for s in found.steps if s.action in catalog and catalog.get(s.action).is_write]
    own = _own_words(found, text, catalog)
    match = _CONDITION.search(own)
    if not writes or match is None:
        return found
    shown = _CONDITION.search(text) or match
    said = (text if shown is not match else own)[shown.start():].split("?")[0].split(",")[0].strip()[:120]
    return _declined(found, "condition", f"That asks me to act only {said!r}, and I cannot check a condition "
                                         "before acting, so I did nothing. Ask me to show what the condition "
                                         "depends on, then tell me what to do.")


# "don't book it", "I don't want to reserve it yet", "not yet", "let's not", "no need", "hold off": a request not to
# act, at the start of a sentence or clause (after "no,", "ok,", "please"). "don't forget to ..." and "don't
# hesitate to ..." ask for it; "tell devi not to ..." is a message (a verb comes first).
_OPENERS = (r"^(?:(?:no|nope|nah|ok|okay|well|hmm+|actually|sorry|thanks|thank\s+you|but|and|so|please|just|oh|"
            r"for\s+now|instead|then|rather)\b[\s,.!]*)*")
_REFUSES = re.compile(
    _OPENERS + r"(?:(?:please\s+)?(?:don'?t|do\s+not|never)\b(?!\s+(?:forget|hesitate|worry|wait|delay)\b)"
    r"|(?:i|we)(?:'d|\s+would)?\s+(?:really\s+|just\s+)?(?:don'?t|do\s+not|won'?t|will\s+not|wouldn'?t|would\s+not)"
    r"\s+(?:really\s+)?(?:want|need|wish|like)\b|(?:i|we)(?:'d|\s+would)\s+rather\s+not\b|let'?s\s+not\b|"
    r"let\s+us\s+not\b|no\s+need\b|hold\s+off\b|not\s+(?:yet|now|right\s+now|today|just\s+yet|at\s+the\s+moment|"
    r"for\s+now)\b)", re.I)
# A clause that asks for something after all: "..., but get me tickets", "I do want 4 tickets", "can you ...".
_ASKS = re.compile(
    _OPENERS + r"(?:(?:then|instead|rather|also|still)\b[\s,]*)*(?:(?:can|could|would|will)\s+(?:you|u)\b|"
    r"(?:can|could|may)\s+(?:i|we)\s+(?:please\s+)?(?:get|have|book|reserve|order)\b|"
    r"(?:i|we)(?:'d|\s+would)?\s+(?:do\s+|really\s+|still\s+|just\s+|also\s+|only\s+)*(?:want|need|like|wish)\b|"
    r"(?:i|we)\s+(?:could|can|would|will|might)\s+(?!not\b)(?:really\s+|also\s+|just\s+)*\w+|"
    r"let'?s\b(?!\s+not)|let\s+me\b|go\s+ahead\b|i'?m\s+looking\b)", re.I)
_CLAUSES = re.compile(r"(?<=[.!?;])\s*|,\s*|\s+(?:but|though|however)\s+", re.I)


def refuses(text: str, catalog: Catalog | None = None) -> bool:
    """Whether ``text`` asks for something not to be done ("don't book it", "I don't want to reserve it yet",
    "not yet") and asks for nothing else ("not yet, but can you find cheaper ones?" asks)."""
    from .questions import _FIRST, _verb  # here: the offline package imports this module

    refused = False
    for clause in (c.strip() for c in _CLAUSES.split(text) if c and c.strip()):
        if _REFUSES.match(clause):
            refused = True
            continue
        first = _FIRST.match(re.sub(_OPENERS, "", clause, flags=re.I))
        if _ASKS.match(clause) or (first is not None and _verb(first.group(1).lower(), catalog)):
            return False
    return refused


def unless_refused(found: Interpretation, text: str, catalog: Catalog) -> Interpretation:
    """A request not to act ("I don't want to reserve it yet", "don't book it", "not yet") never moves toward a
    write, whatever interpreter read it: the writes are withheld and nothing is done. Reads stay."""
    if found.kind not in ("plan", "question") or not found.steps:
        return found
    if not any(s.action in catalog and catalog.get(s.action).is_write for s in found.steps) \
            or not refuses(_QUOTED.sub(" ", text), catalog):  # a quote is someone else's words
        return found
    return _declined(found, "decline", "Okay, I won't do that: you asked me not to, so nothing was changed.")


def _declined(found: Interpretation, reason: str, reply: str) -> Interpretation:
    """No action, keeping who proposed what (interpreter, version, raw output) for the audit."""
    return found.model_copy(update={"kind": "none", "reason": reason, "reply": reply, "steps": [],
                                    "question": None, "param": None, "options": [],
                                    "withheld": found.steps if found.steps else found.withheld})


def decline_guesses(found: Interpretation, text: str, catalog: Catalog) -> Interpretation:
    """``found``, with reads only when ``text`` is a question, or no action when it would change something
    under a condition or change many records. A quotation left open runs to the end of ``text``."""
    text = close_quotes(text)
    found = unless_refused(reads_only(found, text, catalog), text, catalog)
    return unless_bulk(unless_conditional(found, text, catalog), text, catalog)
