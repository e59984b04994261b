"""Requests no interpreter can carry out safely in one step, declined whatever interpreter read them.

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
from .questions import reads_only

__all__ = ["decline_guesses"]

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

    own = re.sub(r"(?<!\w)(['\"‘“]).+?(?:\1|[’”])(?!\w)", " ", text)
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


def _declined(found: Interpretation, reason: str, reply: str) -> Interpretation:
    """No action, keeping who proposed what (interpreter, version, raw output) for the audit."""
    return found.model_copy(update={"kind": "none", "reason": reason, "reply": reply, "steps": [],
                                    "question": None, "param": None, "options": [],
                                    "withheld": found.steps if found.steps else found.withheld})


def decline_guesses(found: Interpretation, text: str, catalog: Catalog) -> Interpretation:
    """``found``, with reads only when ``text`` is a question, or no action when it would change something
    under a condition or change many records. A quotation left open runs to the end of ``text``."""
    text = close_quotes(text)
    return unless_bulk(unless_conditional(reads_only(found, text, catalog), text, catalog), text, catalog)
