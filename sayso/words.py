"""Answers in everyday words that every channel understands: "yes", "go ahead", "never mind", "undo that",
"undo the reminder", "cancel that meeting".

Read here, before any interpreter, so that the same words mean the same thing whichever interpreter a
workspace uses (offline or a model) and in every channel that goes through the conversation layer.
Only whole short messages are read: "yes, and move D-104 to proposal" is a new request, not an answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from .catalog import Action, Catalog

__all__ = ["Said", "cancel_action", "delegate_to", "read", "undo_matches"]

_LEAD = r"^(?:(?:ok(?:ay)?|well|actually|hmm+|oh|ah|um+|erm|please)[\s,]+)?"
_END = r"[\s.!,]*(?:please|thanks|thank you)?[\s.!]*$"
_AFFIRM = re.compile(_LEAD + r"(?:yes|yeah|yep|yup|sure|ok|okay|confirm(?:ed)?|approve[d]?|go ahead|do it|"
                     r"please do|proceed|go for it|yes please|sounds good|let'?s do it|ship it)" + _END, re.I)
_DECLINE = re.compile(_LEAD + r"(?:no|nope|nah|cancel(?: (?:it|that))?|don'?t(?: do it)?|do not|never\s?mind|"
                      r"forget it|scratch that|decline[d]?|stop|abort|not now|leave it)" + _END, re.I)
_UNDO = re.compile(_LEAD + r"(?:undo|revert|roll back|take back|reverse)\s*(?P<what>.*?)" + _END, re.I)
_CANCEL_THING = re.compile(_LEAD + r"(?:cancel|call off|delete|remove)\s+(?:that|the|my|this)\s+"
                           r"(?:last\s+)?(?P<thing>meeting|reminder|appointment|call|event)\b.*$", re.I)
_GENERIC = {"", "it", "that", "this", "last", "change", "step", "thing", "action", "what", "you", "did", "just",
            "i", "my", "the", "last change", "that change"}


_DELEGATE = re.compile(
    r"^(?:(?:ok(?:ay)?|then|so|well|fine|please|can you|could you|in that case)[\s,]+)*"
    r"(?:ask|tell|get|have|let|request)\s+(?P<who>[\w.' -]+?)\s+(?:to\s+)?"
    r"(?:do|handle|make|take care of|sort(?: out)?|deal with|action|change|move|close)\s+"
    r"(?:it|that|this|the change|the move|the request)(?:\s+(?:then|instead|for me|out|please))*[\s.!?]*$", re.I)


@dataclass(frozen=True)
class Said:
    """What a short message means without interpretation."""

    kind: Literal["affirm", "decline", "undo", "cancel"]
    what: str = ""  # undo: the kind of step ("reminder"), empty for the last one; cancel: the thing named


def read(text: str) -> Said | None:
    """The meaning of ``text`` when it is one of these everyday answers; None otherwise."""
    said = text.strip()
    if len(said) > 60:
        return None
    if _AFFIRM.match(said):
        return Said("affirm")
    if _DECLINE.match(said):
        return Said("decline")
    undo = _UNDO.match(said)
    if undo:
        return Said("undo", _noun(undo.group("what")))
    cancel = _CANCEL_THING.match(said)
    if cancel:
        return Said("cancel", cancel.group("thing").lower())
    return None


def delegate_to(text: str) -> str | None:
    """Who "ask devi to do it", "tell its owner to do that", "have my manager handle it" names; None when
    the message is not such a request ("ask carol to approve" is a routed confirmation, not this)."""
    match = _DELEGATE.match(text.strip())
    return match.group("who").strip() if match and len(text) <= 80 else None


def _noun(words: str) -> str:
    """The kind of step named after "undo" ("the reminder" -> "reminder"); empty for "that", "my last change"."""
    kept = [w for w in re.findall(r"[a-z]+", words.lower()) if w not in _GENERIC]
    return kept[0] if kept else ""  # "the meeting I just booked", "the message to devi": the first noun


def _stem(word: str) -> str:
    for end in ("ings", "ing", "ers", "er", "es", "s"):
        if word.endswith(end) and len(word) - len(end) >= 4:
            return word[: -len(end)]
    return word


def undo_matches(catalog: Catalog, what: str) -> list[Action]:
    """The undoable actions a word like "reminder", "message" or "meeting" names (all of them for no word)."""
    undoable = [a for a in catalog if a.undo]
    if not what:
        return undoable
    stem = _stem(what)
    return [a for a in undoable if stem in a.name.split(".")[-1] or stem in a.description.lower().split(".")[0]]


def cancel_action(catalog: Catalog, thing: str) -> Action | None:
    """A catalog action that cancels a ``thing`` ("meeting"), when the catalog has one."""
    stem = _stem(thing)
    return next((a for a in catalog if a.is_write and a.name.split(".")[-1].startswith("cancel")
                 and stem in a.name.lower()), None)
