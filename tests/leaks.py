"""What a person must never read in a reply: action names, Python reprs, log lines."""

from __future__ import annotations

import re

from sayso.demo.catalog import catalog
from sayso.evaluation import Case
from sayso.turn import TurnResult

_ACTION = re.compile(r"\b(?:" + "|".join(re.escape(a.name) for a in catalog) + r")\b")
_REPR = re.compile(r"\b\w+=(?:True|False|None)\b|\{'|\['|Traceback|object at 0x|\bNone\b")
_LOG = re.compile(r"\b(?:DEBUG|INFO|WARNING|ERROR|CRITICAL)\b\s+sayso\b|^\S+ \[c_[0-9a-f]+\]", re.M)


def leaks(reply: str) -> list[str]:
    """The internal names, reprs and log lines in ``reply`` (empty: it is written for a person)."""
    return [f"{what}: {m.group(0)!r}" for what, pattern in (("action", _ACTION), ("repr", _REPR), ("log", _LOG))
            for m in pattern.finditer(reply)]


class Watch:
    """An ``observe`` for run_cases that keeps every reply that leaks, with where it was said."""

    def __init__(self) -> None:
        self.found: list[tuple[str, int, list[str], str]] = []
        self.replies = 0

    def __call__(self, case: Case, turn: int, result: TurnResult) -> None:
        self.replies += 1
        bad = leaks(result.reply)
        if bad:
            self.found.append((case.id, turn, bad, result.reply[:300]))
