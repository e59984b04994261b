"""Slots: which value of a message fills which parameter of generic kinds.

``arguments`` finds the pieces of a message (values, people, records, free
text); this module decides, for parameters described only by their name and
description (dates and times, places, names, counts, yes/no), which piece
or leftover words fill them: "from Fresno" is an origin, "until the 14th" an
end date, "4 tickets" a number of seats.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from .. import Context
from .schema import Param
from .words import Token

if TYPE_CHECKING:
    from .arguments import Piece

__all__ = ["assign_dates", "assign_names"]

Take = Callable[[Param, "Piece", Any], None]


def _as_datetime(value: Any, now: datetime, default_hour: int = 9) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime.combine(value, time(default_hour, 0), tzinfo=now.tzinfo)
    if isinstance(value, time):
        moment = datetime.combine(now.date(), value, tzinfo=now.tzinfo)
        return moment if moment > now else moment + timedelta(days=1)
    return None


def assign_dates(text: str, pieces: list[Piece], date_params: list[Param], args: dict[str, Any], take: Take,
                 now: datetime) -> None:
    """Ranges to after/before pairs; dates and times to date, date-time and time parameters."""
    for piece in [p for p in pieces if p.kind == "range"]:
        start, end = piece.value
        lows = [p for p in date_params if re.search(r"after|from|start|since|begin", p.words) and p.name not in args]
        highs = [p for p in date_params if re.search(r"before|until|end|to\b|by", p.words) and p.name not in args]
        if lows and start is not None:
            take(lows[0], piece, start.isoformat())
        if highs and end is not None:
            take(highs[0], piece, end.isoformat())
    for piece in [p for p in pieces if p.kind in ("datetime", "date", "time")]:
        target = next((p for p in date_params if p.name not in args
                       and not re.search(r"after|before", p.words)), None)
        if target is None:
            target = next((p for p in date_params if p.name not in args), None)
        if target is None:
            break
        if target.kind == "datetime":
            moment = _as_datetime(piece.value, now)
            if moment is not None:
                take(target, piece, moment.isoformat())
        elif target.kind == "date":
            value = piece.value.date() if isinstance(piece.value, datetime) else piece.value
            if isinstance(value, date):
                take(target, piece, value.isoformat())
        else:
            take(target, piece, piece.text)


def assign_names(text: str, words: list[Token], chunks: list[Piece], pieces: list[Piece], params: list[Param],
                 args: dict[str, Any], take: Take, context: Context) -> None:
    """Leftover words (``chunks``) to name and place parameters, by the preposition before them."""
    for piece in chunks:
        candidates = [p for p in params if p.kind in ("name", "place") and p.name not in args]
        target = _name_param(piece, candidates)
        if target is not None:
            take(target, piece, [piece.value] if target.many else piece.value)


def _name_param(piece: Piece, candidates: list[Param]) -> Param | None:
    if not candidates:
        return None
    if piece.prep in ("in", "at", "near", "around"):
        place = next((p for p in candidates if p.kind == "place"), None)
        if place is not None:
            return place
    if piece.prep == "from":
        origin = next((p for p in candidates if re.search(r"from|origin|depart|leav|pickup|source", p.words)), None)
        if origin is not None:
            return origin
    if piece.prep == "to":
        destination = next((p for p in candidates if re.search(r"\bto\b|destination|arriv|going", p.words)), None)
        if destination is not None:
            return destination
    names = [p for p in candidates if p.kind == "name"]
    return names[0] if names else candidates[0]
