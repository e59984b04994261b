"""Typed values in a person's message: dates, times, money, numbers, durations, emails and choices.

Every function is pure and deterministic (relative dates read only ``now``) and every pattern is
compiled at import, because the offline interpreter runs these on each message. A value comes back
as a :class:`Span` with its offsets and its verbatim text, so a caller can quote, score or strip
exactly the words that were read. Span texts leave out leading prepositions and articles
("on Friday" gives "Friday", "the day after tomorrow" gives "day after tomorrow") except where the
word is the value ("the 5th", "in 3 days", "within 30 days", "between Dec 1 and Dec 15"). So an open
range keeps its date's words: "by Friday" is the range (None, Friday) over the text "Friday", and
"from March 4th till 7th of March" stays two dates (a pick-up and a return, as people say them).

A bare hour means business hours: 1 to 6 are afternoon, 7 to 11 morning, 12 noon ("at 3" is 15:00).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from calendar import monthrange
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any, TypeVar

from rapidfuzz import fuzz

__all__ = [
    "Span",
    "find_choices",
    "find_dates",
    "find_durations",
    "find_emails",
    "find_money",
    "find_numbers",
    "find_values",
    "match_choice",
]


@dataclass(frozen=True)
class Span:
    """A value found in a text: ``text == source[start:end]``.

    ``parts`` holds the pieces a combined value was built from (the date and the time of a
    "datetime", the two ends of a "between" range), for callers that score them one by one.
    """

    start: int
    end: int
    kind: str
    value: Any
    text: str
    parts: tuple[Span, ...] = field(default=(), compare=False, repr=False)


# --- vocabulary --------------------------------------------------------------------------------

_MONTHS = {
    "january": 1, "jan": 1, "february": 2, "feb": 2, "march": 3, "mar": 3, "april": 4, "apr": 4,
    "may": 5, "june": 6, "jun": 6, "july": 7, "jul": 7, "august": 8, "aug": 8, "september": 9,
    "sept": 9, "sep": 9, "october": 10, "oct": 10, "november": 11, "nov": 11, "december": 12, "dec": 12,
}  # fmt: skip
_WEEKDAYS = {
    "monday": 0, "mon": 0, "tuesday": 1, "tues": 1, "tue": 1, "wednesday": 2, "weds": 2, "wed": 2,
    "thursday": 3, "thurs": 3, "thur": 3, "thu": 3, "friday": 4, "fri": 4, "saturday": 5, "sat": 5,
    "sunday": 6, "sun": 6,
}  # fmt: skip
# Abbreviations that are also everyday words count only when capitalised ("Sat 5th", not "sat down").
_WORDLIKE = frozenset({"sat", "sun", "wed", "mon", "mar", "may"})
_UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
_ORDINALS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8,
    "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13, "fourteenth": 14,
    "fifteenth": 15, "sixteenth": 16, "seventeenth": 17, "eighteenth": 18, "nineteenth": 19,
    "twentieth": 20, "thirtieth": 30,
}  # fmt: skip
_HOUR_WORDS = {word: n for word, n in _UNITS.items() if 1 <= n <= 12}
_PART_OF_DAY = ("morning", "afternoon", "evening", "night")


def _alt(words: Iterable[str]) -> str:
    """A regex alternation that tries longer words first."""
    return "|".join(sorted(set(words), key=len, reverse=True))


_MONTH_FULL = _alt(w for w in _MONTHS if len(w) > 4)
_MONTH_SHORT = _alt(w for w in _MONTHS if len(w) <= 4)
_DAY_FULL = _alt(w for w in _WEEKDAYS if w.endswith("day"))
_DAY_SHORT = _alt(w for w in _WEEKDAYS if not w.endswith("day"))
# An abbreviation's dot is taken only where the date goes on ("Dec. 19"), never a sentence's full stop.
_MONTH = rf"(?P<month>(?:{_MONTH_FULL})\b|(?:{_MONTH_SHORT})\b(?:\.(?=\s*\d))?)"
_WEEKDAY = rf"(?P<wd>(?:{_DAY_FULL})\b|(?:{_DAY_SHORT})\b(?:\.(?=,?\s+(?:the\s+)?\d))?)"
_NUM_WORD = rf"(?:(?:{_alt(_TENS)})(?:[\s-](?:{_alt(w for w, n in _UNITS.items() if 1 <= n <= 9)}))?|{_alt(_UNITS)})"
_ORD_WORD = rf"(?:(?:twenty|thirty)[\s-](?:{_alt(w for w, n in _ORDINALS.items() if n <= 9)})|{_alt(_ORDINALS)})"
_HOUR_WORD = _alt(_HOUR_WORDS)
_COUNT = rf"\d+|{_NUM_WORD}"
# A day of the month, with an ordinal suffix or as an ordinal word; never part of a longer number or time.
_DAY = rf"(?:(?P<day>\d{{1,2}})(?P<suf>st|nd|rd|th)?(?![\w:]|[.,]\d)|(?P<dayw>{_ORD_WORD})\b)"
_DAY_ORD = rf"(?:(?P<day>\d{{1,2}})(?P<suf>st|nd|rd|th)|(?P<dayw>{_ORD_WORD}))\b"
_YEAR = r"(?:,?\s+(?P<year>(?:19|20)\d\d)(?![\w:]|[.,]\d))?"
_AMPM = r"(?:(?P<ampm>[ap])\.\s?m\.|(?P<ampm2>[ap])\s?m\b)"
_OCLOCK = r"\s*o\s*['’\"`]?\s*clock\b"
_POD_AFTER = r"(?:\s+in\s+the\s+(?P<pods>morning|afternoon|evening|night)|\s+at\s+(?P<podn>night))"
# Words after a bare number that make it a count ("at 2 people", "around 5 stars"), not a time.
_COUNT_AFTER = (
    r"(?!\s*(?:%|(?:people|persons?|guests?|adults?|kids?|child(?:ren)?|pax|seats?|tickets?|rooms?|beds?"
    r"|bed\s?rooms?|baths?|bathrooms?|nights?|days?|weeks?|months?|years?|hours?|hrs?|minutes?|mins?|times?"
    r"|items?|bags?|stars?|percent|points?|dollars?|bucks|euros?|pounds?|units?|pieces?|copies|users?"
    r"|licen[cs]es?|of|or|more|others?|point|another|way|k|m|million|thousand|billion)\b))"
)
_ID_BEFORE = r"(?<![\w#$€£/:])(?<![A-Za-z]-)(?<!\d[.,])"  # not inside ids (INV-2041), amounts or numbers
_NUM_END = r"(?![\w]|[.,:/]\d)"


def _c(pattern: str) -> re.Pattern[str]:
    """Patterns are written in lower case and run on the lowercased message: much faster than IGNORECASE."""
    return re.compile(pattern)


# --- small date arithmetic ----------------------------------------------------------------------


def _last_day(year: int, month: int) -> date:
    return date(year, month, monthrange(year, month)[1])


def _add_months(d: date, months: int) -> date:
    index = d.year * 12 + d.month - 1 + months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(d.day, monthrange(year, month + 1)[1]))


def _monday(d: date) -> date:
    return d - timedelta(days=d.weekday())


def _quarter_start(d: date) -> date:
    return date(d.year, 3 * ((d.month - 1) // 3) + 1, 1)


def _after(today: date, weekday: int) -> date:
    """The first ``weekday`` strictly after ``today``."""
    return today + timedelta(days=(weekday - today.weekday() - 1) % 7 + 1)


def _month_day(today: date, month: int, day: int, year: int | None) -> date | None:
    """A month and day; without a year, the next one not before today."""
    try:
        if year is not None:
            return date(year, month, day)
        found = date(today.year, month, day)
        return found if found >= today else date(today.year + 1, month, day)
    except ValueError:
        return None


def _day_of_month(today: date, day: int, weekday: int | None = None) -> date | None:
    """A day of the month ("the 5th"): this month's, or the next month's that has it when it has passed;
    with a weekday ("Friday the 13th"), the first such day that falls on it within a year and a half."""
    first = today.replace(day=1)
    for ahead in range(18 if weekday is not None else 3):
        month = _add_months(first, ahead)
        if day <= monthrange(month.year, month.month)[1] and (ahead or day >= today.day):
            found = month.replace(day=day)
            if weekday is None or found.weekday() == weekday:
                return found
    return _day_of_month(today, day) if weekday is not None else None


def _shift(d: date, n: int, unit: str) -> date:
    unit = unit.lower().rstrip("s")
    if unit == "day":
        return d + timedelta(days=n)
    if unit == "week":
        return d + timedelta(weeks=n)
    return _add_months(d, n * (12 if unit == "year" else 1))


def _count(word: str) -> int | None:
    """A count in digits, words ("twenty-one"), "a"/"an", or "a couple of"."""
    word = " ".join(word.lower().replace("-", " ").split())
    if word.isdigit():
        return int(word)
    if word in ("a", "an"):
        return 1
    if word.endswith("couple of"):
        return 2
    if word in _UNITS:
        return _UNITS[word]
    tens, _, unit = word.partition(" ")
    if tens in _TENS and (not unit or unit in _UNITS):
        return _TENS[tens] + (_UNITS[unit] if unit else 0)
    return None


def _ordinal(word: str) -> int | None:
    word = word.lower().replace("-", " ")
    tens, _, unit = word.partition(" ")
    if unit:
        return {"twenty": 20, "thirty": 30}[tens] + _ORDINALS[unit]
    return _ORDINALS.get(word)


# --- dates and times: pieces ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Clock:
    """A time as said: ``period`` is am/pm, a part of the day, "24h", or None when unstated."""

    hour: int
    minute: int
    period: str | None
    offset: int = 0  # minutes added once the hour is placed ("quarter to 5" is 5 less 15)

    def resolve(self, hint: str | None = None) -> time:
        period = self.period or hint
        h = self.hour
        if period == "24h" or h > 12:
            pass
        elif period == "am":
            h = 0 if h == 12 else h
        elif period in ("pm", "afternoon", "evening"):
            h = h if h == 12 else h + 12
        elif period == "morning":
            pass  # 12 stays noon, so "quarter to 12 in the morning" is 11:45
        elif period == "night":
            h = 0 if h == 12 else h + 12 if h >= 5 else h
        elif period is None and 1 <= h <= 6:  # a bare "at 3" is in business hours: 15:00
            h += 12
        total = (h * 60 + self.minute + self.offset) % (24 * 60)
        return time(total // 60, total % 60)


@dataclass(slots=True)
class _Atom:
    start: int
    end: int
    kind: str  # "date" | "time" | "range" | "joined" (a date and a time sharing words)
    value: Any  # date | _Clock | (date | None, date | None) | (_Atom, _Atom)
    hint: str | None = None  # the part of the day a date names ("tonight"), for a bare hour next to it


_Handler = Callable[[re.Match[str], date, str], "_Atom | None"]  # a match in the lowercased text, today, the text


def _atom(m: re.Match[str], kind: str, value: Any, group: int | str = 0, hint: str | None = None) -> _Atom:
    return _Atom(m.start(group), m.end(group), kind, value, hint)


def _said(m: re.Match[str], group: str, text: str) -> str:
    """A group as written in the original text (matches run on the lowercased text)."""
    return text[m.start(group) : m.end(group)] if m.group(group) is not None else ""


def _wordlike_ok(m: re.Match[str], group: str, text: str) -> bool:
    """False for a lowercase "sat", "sun", "may"... that is probably just a word."""
    word = _said(m, group, text).rstrip(".")
    return word.lower() not in _WORDLIKE or not word.islower()


def _day_value(m: re.Match[str]) -> int | None:
    if m.group("dayw"):
        return _ordinal(m.group("dayw"))
    day = int(m.group("day"))
    return day if 1 <= day <= 31 else None


def _relative_word(m: re.Match[str], today: date, text: str) -> _Atom:
    word = " ".join(m.group(0).split())
    days = {"yesterday": -1, "tomorrow": 1, "tmrw": 1, "tmr": 1}
    if word == "day after tomorrow":
        offset = 2
    elif word == "day before yesterday":
        offset = -2
    else:
        offset = days.get(word, 0)
    hint = "evening" if word == "tonight" else word.split()[-1] if word.startswith("this ") else None
    return _atom(m, "date", today + timedelta(days=offset), hint=hint)


def _weekday(m: re.Match[str], today: date, text: str) -> _Atom | None:
    if not _wordlike_ok(m, "wd", text):
        return None
    wd = _WEEKDAYS[m.group("wd").rstrip(".")]
    week = m.group("wk") or m.group("wkpre") or ""
    mod = " ".join((m.group("mod") or "").split())
    if week:
        shift = {"this": 0, "next": 1, "last": -1}[week]
        found = _monday(today) + timedelta(weeks=shift, days=wd)
    elif mod == "this":
        found = today if wd == today.weekday() else _after(today, wd)
    elif mod in ("last", "past"):
        found = _after(today, wd) - timedelta(weeks=1)
        found = found - timedelta(weeks=1) if found >= today else found
    else:
        found = _after(today, wd)
    if m.group("after"):
        found += timedelta(weeks=1)
    return _atom(m, "date", found)


def _month_day_atom(m: re.Match[str], today: date, text: str) -> _Atom | None:
    if not _wordlike_ok(m, "wd", text):
        return None
    month_word = _said(m, "month", text).rstrip(".")
    if month_word == "may" and not (m.group("suf") or m.group("year") or m.group("dayw")):
        return None  # "I may 2..." is not May 2
    if month_word.lower() in _WORDLIKE - {"may"} and month_word.islower() and not m.group("suf"):
        return None
    day = _day_value(m)
    year = int(m.group("year")) if m.group("year") else None
    found = _month_day(today, _MONTHS[month_word.lower()], day, year) if day else None
    return _atom(m, "date", found) if found else None


def _day_of_rel_month(m: re.Match[str], today: date, text: str) -> _Atom | None:
    day = _day_value(m)
    if day is None:
        return None
    rel = m.group("rel")
    if rel == "the":
        found = _day_of_month(today, day)
    else:
        month = _add_months(today.replace(day=1), 0 if rel in ("this", "current") else 1)
        found = month.replace(day=day) if day <= monthrange(month.year, month.month)[1] else None
    return _atom(m, "date", found) if found else None


def _the_nth(m: re.Match[str], today: date, text: str) -> _Atom | None:
    if not _wordlike_ok(m, "wd", text):
        return None
    weekday = _WEEKDAYS[m.group("wd").rstrip(".")] if m.group("wd") else None
    found = _day_of_month(today, int(m.group("day")), weekday)
    return _atom(m, "date", found) if found else None


def _numeric_date(m: re.Match[str], today: date, text: str) -> _Atom | None:
    year_text = m.group("year")
    year = None if year_text is None else int(year_text) + (2000 if len(year_text) == 2 else 0)
    found = _month_day(today, int(m.group("m")), int(m.group("d")), year) if 1 <= int(m.group("m")) <= 12 else None
    return _atom(m, "date", found) if found else None


def _in_n_units(m: re.Match[str], today: date, text: str) -> _Atom | None:
    n = _count(m.group("n"))
    if n is None:
        return None
    sign = -1 if (m.groupdict().get("dir") or "") == "ago" else 1
    return _atom(m, "date", _shift(today, sign * n, m.group("unit")))


def _next_unit(m: re.Match[str], today: date, text: str) -> _Atom:
    unit = m.group("unit")
    if m.group("rel") == "next":
        found = {
            "week": _monday(today) + timedelta(weeks=1),
            "month": _add_months(today.replace(day=1), 1),
            "quarter": _add_months(_quarter_start(today), 3),
            "year": date(today.year + 1, 1, 1),
        }[unit]
        return _atom(m, "date", found)
    start = {
        "week": _monday(today) - timedelta(weeks=1),
        "month": _add_months(today.replace(day=1), -1),
        "quarter": _add_months(_quarter_start(today), -3),
        "year": date(today.year - 1, 1, 1),
    }[unit]
    return _atom(m, "range", (start, _period_end(start, unit)))


def _period_end(d: date, unit: str) -> date:
    """The last day of the week, month, quarter or year that ``d`` falls in."""
    if unit == "week":
        return _monday(d) + timedelta(days=6)
    if unit == "month":
        return _last_day(d.year, d.month)
    if unit == "quarter":
        start = _quarter_start(d)
        return _last_day(start.year, start.month + 2)
    return date(d.year, 12, 31)


def _this_unit(m: re.Match[str], today: date, text: str) -> _Atom:
    return _atom(m, "range", (today, _period_end(today, m.group("unit"))))


def _weekend(m: re.Match[str], today: date, text: str) -> _Atom:
    saturday = _monday(today) + timedelta(days=5, weeks=1 if (m.group("rel") or "") == "next" else 0)
    return _atom(m, "range", (max(saturday, today), saturday + timedelta(days=1)))


def _edge(m: re.Match[str], today: date, text: str) -> _Atom | None:
    """Edges of a period: "end of the month", "start of next week", "year-end", "EOM"."""
    abbr = m.group("abbr") or ""
    if abbr:
        which, unit, rel = "end", {"d": "day", "w": "week", "m": "month", "q": "quarter", "y": "year"}[abbr[2]], ""
    else:
        which = m.group("which") or "end"
        unit = m.group("unit") or m.group("unit2")
        rel = m.group("rel") or m.group("rel2") or ""
    if unit == "day":
        return _atom(m, "date", today) if which == "end" and rel in ("", "this") else None
    anchor = today
    if rel in ("next", "coming"):
        anchor = _shift(today, 1, "month" if unit == "month" else "week" if unit == "week" else "year")
        if unit == "quarter":
            anchor = _add_months(_quarter_start(today), 3)
    elif rel == "last":
        anchor = _shift(today, -1, "month" if unit == "month" else "week" if unit == "week" else "year")
        if unit == "quarter":
            anchor = _add_months(_quarter_start(today), -3)
    if unit == "week":
        monday = _monday(anchor)
        found = {"end": monday + timedelta(days=4), "middle": monday + timedelta(days=2)}.get(which, monday)
        if which == "end" and not rel and found < today:
            found += timedelta(weeks=1)  # "end of week" said on a weekend means the coming Friday
    else:
        first = {"month": anchor.replace(day=1), "quarter": _quarter_start(anchor), "year": date(anchor.year, 1, 1)}[
            unit
        ]
        if which == "end":
            found = _period_end(first, unit)
        elif which == "middle":
            found = first.replace(day=15) if unit == "month" else _add_months(first, 1 if unit == "quarter" else 6)
        else:
            found = first
    return _atom(m, "date", found)


def _month_edge(m: re.Match[str], today: date, text: str) -> _Atom | None:
    """Edges of a named month: "end of December", "mid-March", "beginning of May 2027"."""
    word = _said(m, "month", text).rstrip(".")
    if word.lower() in _WORDLIKE and word.islower():
        return None
    month = _MONTHS[word.lower()]
    which = "middle" if m.group("mid") else m.group("which")
    year = int(m.group("year")) if m.group("year") else None
    day = {"end": monthrange(year or today.year, month)[1], "middle": 15}.get(which, 1)
    found = _month_day(today, month, day, year)
    if found and year is None and which == "end":
        found = found.replace(day=monthrange(found.year, month)[1])
    return _atom(m, "date", found) if found else None


def _next_n(m: re.Match[str], today: date, text: str) -> _Atom | None:
    n = _count(m.group("n"))
    if n is None:
        return None
    if m.groupdict().get("back"):
        return _atom(m, "range", (_shift(today, -n, m.group("unit")), today))
    return _atom(m, "range", (today, _shift(today, n, m.group("unit"))))


def _clock_hour(word: str) -> int:
    return int(word) if word.isdigit() else _HOUR_WORDS[word]


def _period(m: re.Match[str]) -> str | None:
    groups = m.groupdict()
    ampm = groups.get("ampm") or groups.get("ampm2")
    if ampm:
        return "am" if ampm == "a" else "pm"
    return (groups.get("pods") or groups.get("podn") or groups.get("pod") or "") or None


def _one_is_a_word(text: str, start: int) -> bool:
    """True for the pronoun in "the one in the evening", "this one", "which one"."""
    return _DETERMINER_BEFORE.search(text, max(0, start - 10), start) is not None


_DETERMINER_BEFORE = _c(r"\b(?:the|this|that|which|any|no|each|every|another|a)\s+$")


def _time_hm(m: re.Match[str], today: date, text: str) -> _Atom | None:
    hour_text = m.group("h")
    period = _period(m)
    if period is None and (hour_text.startswith("0") or int(hour_text) == 0):
        period = "24h"  # "06:30" was written on a 24-hour clock
    if period in ("am", "pm") and not 1 <= int(hour_text) <= 12:
        period = "24h"
    return _atom(m, "time", _Clock(int(hour_text), int(m.group("m")), period))


def _time_hour(m: re.Match[str], today: date, text: str) -> _Atom | None:
    """An hour with its period: "9am", "one pm", "5 o'clock", "6 in the evening", "evening 7", "afternoon 12:30"."""
    if m.group("h") == "one" and _one_is_a_word(m.string, m.start("h")):
        return None  # "the one in the evening"
    hour = _clock_hour(m.group("h"))
    minute = int(m.groupdict().get("m") or 0)
    if hour > 23:
        return None
    period = _period(m)
    if period is None and m.group("h").startswith("0") and hour:
        period = "24h"
    return _atom(m, "time", _Clock(hour, minute, period))


def _time_fraction(m: re.Match[str], today: date, text: str) -> _Atom | None:
    """Times said around an hour: "half past 11", "quarter to 5", "20 minutes past 3"."""
    direction = m.group("dir")
    if m.group("half"):
        if direction not in ("past", "after"):
            return None
        minutes = 30
    elif m.group("quarter"):
        minutes = 15
    else:
        if m.group("mins").isdigit() and not m.group("minw"):
            return None  # "5 to 6" is a range of numbers
        minutes = _count(m.group("mins")) or 0
        if not 0 < minutes < 60:
            return None
    offset = minutes if direction in ("past", "after") else -minutes
    return _atom(m, "time", _Clock(_clock_hour(m.group("h")), 0, _period(m), offset))


def _time_noon(m: re.Match[str], today: date, text: str) -> _Atom:
    word = m.group("nm")
    return _atom(m, "time", _Clock(0 if word == "midnight" else 12, 0, "24h"))


def _time_after_word(m: re.Match[str], today: date, text: str) -> _Atom | None:
    """A bare hour after "at", "around", "until"...: the span is the hour alone ("at 9" gives "9")."""
    word = m.group("h")
    if word == "one" and _ONE_AFTER.match(m.string, m.end("h")):
        return None
    hour = _clock_hour(word)
    return _atom(m, "time", _Clock(hour, 0, "24h" if hour > 12 else None), group="h")


_ONE_AFTER = _c(r"\s+(?:of|another|time|day|thing)\b")

_Gate = tuple[frozenset[str], ...]


@dataclass(frozen=True, slots=True)
class _Rule:
    """A pattern, what to make of a match, and the words a message needs for the pattern to be worth running.

    ``needs`` is a cheap pre-test: each of its sets must share a word with the message (digits count one
    by one), so most patterns are never run on most messages.
    """

    pattern: re.Pattern[str]
    handler: _Handler
    needs: _Gate


def _g(*groups: Iterable[str]) -> _Gate:
    return tuple(frozenset(g) for g in groups)


_LEXEME = re.compile(r"[^\W\d_]+|\d|[@/:$€£,-]")
_DIGITS = frozenset("0123456789")
_PERIODS = frozenset({"day", "days", "week", "weeks", "month", "months", "quarter", "year", "years"})


@dataclass(frozen=True, slots=True)
class _Msg:
    """A message as the patterns read it: lowercased (same length, so offsets hold) and its words."""

    text: str
    low: str
    lexemes: frozenset[str]


def _msg(text: str) -> _Msg:
    low = text.lower()
    if len(low) != len(text):  # a few characters lowercase to two ("İ"); keep offsets aligned
        low = "".join(ch.lower()[0] for ch in text)
    return _Msg(text, low, frozenset(_LEXEME.findall(low)))


def _admits(needs: _Gate, lexemes: frozenset[str]) -> bool:
    return not any(map(lexemes.isdisjoint, needs))


_DATE_RULES = (
    _Rule(
        _c(
            r"\b(?:day\s+after\s+tomorrow|day\s+before\s+yesterday|later\s+today|today|tonight|tomorrow|tmrw|tmr"
            r"|yesterday|this\s+(?:morning|afternoon|evening))\b"
        ),
        _relative_word,
        _g({"today", "tonight", "tomorrow", "tmrw", "tmr", "yesterday", "this"}),
    ),
    _Rule(
        _c(
            r"\b(?:(?P<wkpre>this|next|last)\s+week(?:'s)?\s+(?:on\s+)?)?"
            rf"(?:(?P<mod>this\s+coming|next|this|coming|last|past)\s+)?{_WEEKDAY}"
            r"(?:\s+(?:(?:of\s+)?(?P<wk>this|next|last)\s+week\b|(?P<after>after\s+next)\b))?"
        ),
        _weekday,
        _g(_WEEKDAYS),
    ),
    _Rule(
        _c(rf"\b(?:{_WEEKDAY},?\s+(?:the\s+)?)?{_MONTH}\s+(?:the\s+)?{_DAY}{_YEAR}"),
        _month_day_atom,
        _g(_MONTHS, _DIGITS | _ORDINALS.keys()),
    ),
    _Rule(
        _c(rf"\b(?:{_WEEKDAY},?\s+(?:the\s+)?)?{_DAY}\s+(?:of\s+)?{_MONTH}{_YEAR}"),
        _month_day_atom,
        _g(_MONTHS, _DIGITS | _ORDINALS.keys()),
    ),
    _Rule(
        _c(rf"\b{_DAY_ORD}\s+of\s+(?:the\s+)?(?P<rel>this|next|current|coming|following|the)\s+month\b"),
        _day_of_rel_month,
        _g({"month"}, _DIGITS | _ORDINALS.keys()),
    ),
    _Rule(
        _c(
            rf"\b(?:{_WEEKDAY},?\s+)?the\s+(?P<day>3[01]|[12]\d|0?[1-9])(?:st|nd|rd|th)\b"
            r"(?!\s+(?:of\s+(?:them|those|these|us|all|each)|one|ones|option|choice|floor|place|time|item|row|line"
            r"|result|entry|person|guest|ticket|room|seat|candidate|attempt|try|century|grade|edition|version)\b)"
        ),
        _the_nth,
        _g({"the"}, _DIGITS),
    ),
    _Rule(
        _c(r"(?<![\w/.-])(?P<year>\d{4})([-/])(?P<m>\d{1,2})\2(?P<d>\d{1,2})(?![\w/]|[.-]\d)"),
        _numeric_date,
        _g(_DIGITS, {"-", "/"}),
    ),
    _Rule(
        _c(r"(?<![\w/.$#-])(?P<m>\d{1,2})/(?P<d>\d{1,2})(?:/(?P<year>\d{4}|\d{2}))?(?![\w/]|[.,-]\d)"),
        _numeric_date,
        _g(_DIGITS, {"/"}),
    ),
    _Rule(
        _c(rf"\bin\s+(?P<n>{_COUNT}|an?|a\s+couple\s+of)\s+(?P<unit>days?|weeks?|months?|years?)\b"),
        _in_n_units,
        _g({"in"}, _PERIODS),
    ),
    _Rule(
        _c(
            rf"\b(?P<n>{_COUNT}|an?|a\s+couple\s+of)\s+(?P<unit>days?|weeks?|months?|years?)\s+"
            r"(?:from\s+(?:now|today)|(?P<dir>ago))\b"
        ),
        _in_n_units,
        _g({"ago", "from"}, _PERIODS),
    ),
    _Rule(
        _c(r"\b(?P<rel>next|last)\s+(?P<unit>week|month|quarter|year)\b"), _next_unit, _g({"next", "last"}, _PERIODS)
    ),
    _Rule(
        _c(r"\b(?:this|current|rest\s+of\s+(?:the|this))\s+(?P<unit>week|month|quarter|year)\b"),
        _this_unit,
        _g({"this", "current", "rest"}, _PERIODS),
    ),
    _Rule(_c(r"\b(?:(?P<rel>this|next|coming)\s+)?weekend\b"), _weekend, _g({"weekend"})),
    _Rule(
        _c(
            r"\b(?P<which>end|beginning|start|middle)\s+of\s+(?:the\s+)?(?:(?P<rel>this|next|last|current|coming)\s+)?"
            r"(?P<unit>day|week|month|quarter|year)\b"
            r"|\b(?:(?P<rel2>this|next)\s+)?(?P<unit2>week|month|quarter|year)(?:-|\s+)end\b"
            r"|\b(?P<abbr>eo[dwmqy])\b"
        ),
        _edge,
        _g({"end", "beginning", "start", "middle", "eod", "eow", "eom", "eoq", "eoy"}),
    ),
    _Rule(
        _c(rf"\b(?:(?P<which>end|beginning|start|middle)\s+of\s+|(?P<mid>mid)-?\s*){_MONTH}(?:\s+(?P<year>\d{{4}}))?"),
        _month_edge,
        _g({"end", "beginning", "start", "middle", "mid"}, _MONTHS),
    ),
    _Rule(
        _c(
            r"(?:\b(?P<dir>next|coming)|(?<=the\s)(?P<back>past|last|previous))"  # "last 7 days" alone is a verb
            rf"\s+(?P<n>{_COUNT}|couple\s+of)\s+(?P<unit>days?|weeks?|months?)\b"
        ),
        _next_n,
        _g({"next", "coming", "past", "last", "previous"}, _PERIODS),
    ),
    _Rule(_c(rf"\bwithin\s+(?P<n>{_COUNT}|an?)\s+(?P<unit>days?|weeks?|months?)\b"), _next_n, _g({"within"}, _PERIODS)),
)

_HOUR12 = rf"(?P<h>1[0-2]|0?[1-9]|{_HOUR_WORD})(?:(?<=\d)(?![\d:]|[.,]\d)|(?<=[a-z])\b)"
_TIME_RULES = (
    _Rule(
        _c(rf"(?<![\w:.$])(?P<h>[01]?\d|2[0-3]):(?P<m>[0-5]\d)(?::[0-5]\d)?(?![\d:]|\.\d)(?:\s*{_AMPM})?{_POD_AFTER}?"),
        _time_hm,
        _g({":"}),
    ),
    _Rule(
        _c(rf"(?<![\w.:$#-]){_HOUR12}(?:(?:{_OCLOCK})?\s*{_AMPM}|{_OCLOCK}){_POD_AFTER}?"),
        _time_hour,
        _g({"am", "pm", "m", "clock", "oclock"}),
    ),
    _Rule(_c(rf"(?<![\w.:$#-]){_HOUR12}{_POD_AFTER}"), _time_hour, _g(_PART_OF_DAY)),
    _Rule(
        _c(
            rf"\b(?P<pod>morning|afternoon|evening|night)\s+(?P<h>[01]?\d|2[0-3]|{_HOUR_WORD})"
            rf"(?::(?P<m>[0-5]\d))?(?![\w:]|[.,]\d)(?:\s*{_AMPM})?{_COUNT_AFTER}"
        ),
        _time_hour,
        _g(_PART_OF_DAY),
    ),
    _Rule(
        _c(
            r"\b(?:(?P<half>half)|(?P<quarter>quarter)|(?P<mins>\d{1,2}|five|ten|twenty|twenty[\s-]five)"
            rf"(?P<minw>\s+minutes?)?)\s+(?P<dir>past|after|to|till|til|of|before)\s+{_HOUR12}"
            rf"(?:\s*{_AMPM}|{_OCLOCK})?{_POD_AFTER}?"
        ),
        _time_fraction,
        _g(
            {"half", "quarter", "minute", "minutes", "five", "ten", "twenty"},
            {"past", "after", "to", "till", "til", "of", "before"},
        ),
    ),
    _Rule(
        _c(r"\b(?:12\s+)?(?P<nm>noon|midday|mid-day|midnight)\b"), _time_noon, _g({"noon", "midday", "mid", "midnight"})
    ),
    _Rule(
        _c(
            r"(?:\b(?:at|around|until|till|til|before|after)|@)\s+(?:around\s+|about\s+|approximately\s+)?"
            rf"(?P<h>2[0-3]|1\d|0?[1-9]|{_HOUR_WORD})\b(?![:/]\d|[.,]\d){_COUNT_AFTER}"
        ),
        _time_after_word,
        _g({"at", "around", "until", "till", "til", "before", "after", "@"}),
    ),
)

_RULES = _DATE_RULES + _TIME_RULES

# After a date, what may stand before its time ("Friday at 9", "tomorrow evening, around 7").
_DATE_TIME_GAP = _c(
    r"\s*,?\s*(?:in\s+the\s+)?(?:(?P<pod>morning|afternoon|evening|night)\s*,?\s*)?"
    r"(?:at|@|around|about|by|for|from)?\s*(?:around\s+|about\s+)?"
)
_TIME_DATE_GAP = _c(r"\s*,?\s*(?:on|for)?\s*(?:the\s+)?")
_RANGE_OPERATOR = _c(
    r"\b(?P<op>before|by|no\s+later\s+than|not\s+later\s+than|prior\s+to|not\s+after|earlier\s+than"
    r"|after|from|starting(?:\s+(?:on|from))?|not\s+before|later\s+than)\s+(?:on\s+)?(?:the\s+)?$"
)
_UNTIL_GAP = _c(r"\s*(?:to|till|til|until|through|thru|-|–)\s*")
_BETWEEN = _c(r"\bbetween\s+$")
_AND_GAP = _c(r"\s+and\s+")


def _date_atoms(msg: _Msg, today: date) -> list[_Atom]:
    found: list[_Atom] = []
    for rule in _RULES:
        if _admits(rule.needs, msg.lexemes):
            for m in rule.pattern.finditer(msg.low):
                try:
                    atom = rule.handler(m, today, msg.text)
                except (ValueError, OverflowError):  # "in 9999999 years" is beyond the calendar
                    continue
                if atom is not None:
                    found.append(atom)
    # "this evening 6:30": the part of the day belongs to the date and to the time both.
    found += [
        _Atom(day.start, clock.end, "joined", (day, clock))
        for day in found
        if day.kind == "date" and day.hint
        for clock in found
        if clock.kind == "time" and day.start < clock.start < day.end < clock.end
    ]
    return _longest_first(found)


def _longest_first(items: list[_Atom]) -> list[_Atom]:
    """Non-overlapping items, longer ones first, earlier on a tie; returned in text order."""
    return _disjoint(sorted(items, key=lambda a: (a.start - a.end, a.start)))


_Extent = TypeVar("_Extent", _Atom, Span)


def _disjoint(preferred: Iterable[_Extent]) -> list[_Extent]:
    """Keeps each item, best first, that overlaps none kept before it; returns them in text order."""
    starts: list[int] = []
    ends: list[int] = []
    kept: list[_Extent] = []
    for item in preferred:
        i = bisect_right(starts, item.start)
        if (i and ends[i - 1] > item.start) or (i < len(starts) and starts[i] < item.end):
            continue
        starts.insert(i, item.start)
        ends.insert(i, item.end)
        kept.insert(i, item)
    return kept


def _span(text: str, start: int, end: int, kind: str, value: Any, parts: tuple[Span, ...] = ()) -> Span:
    return Span(start, end, kind, value, text[start:end], parts)


def find_dates(text: str, now: datetime) -> list[Span]:
    """Dates, times, dates with times, and date ranges, read relative to ``now`` (aware).

    Kinds: "date" (a ``date``), "time" (a ``time``), "datetime" (aware, in ``now``'s zone) and
    "range" (``(start, end)``, either ``None`` when open).
    """
    spans = _find_dates(_msg(text), now)
    return sorted(spans + _month_ranges(text, now, spans), key=lambda span: span.start)


_IN_MONTH = re.compile(
    rf"\b(?:in|during|throughout|over|for)\s+(?:the\s+month\s+of\s+)?{_MONTH}(?!\s*[\d,.])", re.IGNORECASE
)


def _month_ranges(text: str, now: datetime, taken: list[Span]) -> list[Span]:
    """"closing in December": the whole month, this year or, once past, next year."""
    out: list[Span] = []
    for match in _IN_MONTH.finditer(text):
        start, end = match.start("month"), match.end("month")
        if any(span.start < end and start < span.end for span in taken):
            continue
        month = _MONTHS[match.group("month").lower().rstrip(".")]
        year = now.year if month >= now.month else now.year + 1
        first = date(year, month, 1)
        last = (date(year + (month == 12), month % 12 + 1, 1)) - timedelta(days=1)
        out.append(_span(text, start, end, "range", (max(first, now.date()) if month == now.month else first, last)))
    return out


def _find_dates(msg: _Msg, now: datetime) -> list[Span]:
    text, low = msg.text, msg.low
    atoms = _date_atoms(msg, now.date())
    spans: list[Span] = []
    i = 0
    while i < len(atoms):
        atom = atoms[i]
        nxt = atoms[i + 1] if i + 1 < len(atoms) else None
        gap = low[atom.end : nxt.start] if nxt else ""
        if nxt and atom.kind == "date" and nxt.kind == "time" and (g := _DATE_TIME_GAP.fullmatch(gap)):
            spans.append(_datetime(text, now, atom, nxt, atom.hint or (g.group("pod") or "") or None))
            i += 2
            continue
        if nxt and atom.kind == "time" and nxt.kind == "date" and _TIME_DATE_GAP.fullmatch(gap):
            spans.append(_datetime(text, now, nxt, atom, nxt.hint))
            i += 2
            continue
        if atom.kind == "joined":
            spans.append(_datetime(text, now, atom.value[0], atom.value[1], atom.value[0].hint))
        elif atom.kind == "time":
            spans.append(_span(text, atom.start, atom.end, "time", atom.value.resolve()))
        elif atom.kind == "range":
            spans.append(_span(text, atom.start, atom.end, "range", atom.value))
        elif (
            nxt
            and nxt.kind == "date"
            and _AND_GAP.fullmatch(gap)
            and (b := _BETWEEN.search(low, max(0, atom.start - 10), atom.start))
        ):
            parts = (
                _span(text, atom.start, atom.end, "date", atom.value),
                _span(text, nxt.start, nxt.end, "date", nxt.value),
            )
            spans.append(_span(text, b.start(), nxt.end, "range", (atom.value, nxt.value), parts))
            i += 2
            continue
        else:
            spans.append(_open_range_or_date(msg, atom, nxt, gap))
        i += 1
    return spans


def _datetime(text: str, now: datetime, day: _Atom, clock: _Atom, hint: str | None) -> Span:
    at = clock.value.resolve(hint)
    value = datetime(day.value.year, day.value.month, day.value.day, at.hour, at.minute, tzinfo=now.tzinfo)
    parts = tuple(
        sorted(
            (
                _span(text, day.start, day.end, "date", day.value),
                _span(text, clock.start, clock.end, "time", at),
            ),
            key=lambda s: s.start,
        )
    )
    start, end = min(day.start, clock.start), max(day.end, clock.end)
    return _span(text, start, end, "datetime", value, parts)


def _open_range_or_date(msg: _Msg, atom: _Atom, nxt: _Atom | None, gap: str) -> Span:
    """A date after "before"/"by" or "after"/"from" is an open range; "from X to Y" stays two dates."""
    text = msg.text
    op = _RANGE_OPERATOR.search(msg.low, max(0, atom.start - 24), atom.start)
    if op is None:
        return _span(text, atom.start, atom.end, "date", atom.value)
    word = " ".join(op.group("op").split())
    if word.startswith(("after", "from", "starting", "not before", "later")):
        if word == "from" and nxt and nxt.kind == "date" and _UNTIL_GAP.fullmatch(gap):
            return _span(text, atom.start, atom.end, "date", atom.value)
        return _span(text, atom.start, atom.end, "range", (atom.value, None))
    return _span(text, atom.start, atom.end, "range", (None, atom.value))


# --- money, numbers, durations, emails ----------------------------------------------------------

_AMOUNT = r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"
_MULT = r"(?:(?P<mult>k|mm|m|bn)(?![a-z])|\s*(?P<multw>thousand|million|billion|grand)\b)"
_CURRENCY_AFTER = r"\s*(?P<curw>dollars?|bucks|usd|eur|euros?|pounds?|gbp|cents?)\b"
_MULTIPLIERS = {
    "k": 1000, "thousand": 1000, "grand": 1000, "m": 10**6, "mm": 10**6, "million": 10**6,
    "bn": 10**9, "billion": 10**9,
}  # fmt: skip
_CURRENCY_WORDS = {
    "dollar",
    "dollars",
    "bucks",
    "usd",
    "eur",
    "euro",
    "euros",
    "pound",
    "pounds",
    "gbp",
    "cent",
    "cents",
}
_MONEY_PATTERNS = (
    (
        _c(rf"(?<!\w)(?P<cur>us\$|\$|€|£|usd|eur|gbp)\s?{_AMOUNT}(?![\d])(?![.,]\d){_MULT}?(?:{_CURRENCY_AFTER})?"),
        _g({"$", "€", "£", "usd", "eur", "gbp"}),
    ),
    (_c(rf"{_ID_BEFORE}{_AMOUNT}(?![.,]\d){_MULT}?{_CURRENCY_AFTER}"), _g(_DIGITS, _CURRENCY_WORDS)),
    (_c(rf"{_ID_BEFORE}{_AMOUNT}(?![.,]\d){_MULT}(?!\w)"), _g(_DIGITS, {"k", "m", "mm", "bn", *_MULTIPLIERS})),
    (_c(r"(?<![\w.,#$€£/:])(?<![A-Za-z]-)\d{1,3}(?:,\d{3})+(?:\.\d+)?(?!\w|[.,]\d)"), _g(_DIGITS, {","})),
)
_CURRENCY_NEXT = _c(_CURRENCY_AFTER)


def _as_number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


# A sign before an amount: a minus, a Unicode minus or an en dash written against it ("-30000", "−5", "-$5,000",
# "$-5") or the word "minus" or "negative". It counts only at the start or after a space or an opening bracket, and
# never after a number ("5-10", "10 -20" and "10 minus 2" are ranges and sums), so ids (SUP-17), dates (2026-12-01)
# and phone numbers (555-0100) keep their numbers as they were.
_SIGN_BEFORE = _c(r"(?:^|(?<=[\s(\[{=:;,]))(?:(?:us\$|[$€£])?[-−–]|(?:minus|negative)\s+)$")
_NUMBER_BEFORE = _c(r"(?:^|(?<=[^\w-]))(?:us\$|[$€£])?\d[\d,.]*(?:k|m|mm|bn)?\s+$")


def _signed(msg: _Msg, spans: list[Span]) -> list[Span]:
    """Spans read with their sign: a minus before them, or an amount of money alone in brackets ("(5,000)",
    as accountants write a negative). The span grows to take in the sign, so the words are read once."""
    out: list[Span] = []
    for span in spans:
        sign = _SIGN_BEFORE.search(msg.low, max(0, span.start - 12), span.start)
        if sign is not None and not _NUMBER_BEFORE.search(msg.low, max(0, sign.start() - 24), sign.start()):
            kind = "money" if span.kind == "number" and _CURRENCY_SYMBOL.search(sign.group(0)) else span.kind
            span = _span(msg.text, sign.start(), span.end, kind, -span.value)
        elif span.kind == "money" and msg.low[span.start - 1 : span.start] == "(" and msg.low.startswith(")", span.end):
            span = _span(msg.text, span.start - 1, span.end + 1, "money", -span.value)
        out.append(span)
    return out


_CURRENCY_SYMBOL = _c(r"[$€£]")


def find_money(text: str) -> list[Span]:
    """Amounts of money: with a currency ("$3,000", "500 usd", "ninety bucks"), a multiplier
    ("120k", "1.5 million", "two thousand") or thousands separators ("2,000")."""
    msg = _msg(text)
    return _find_money(msg, _word_numbers(msg))


def _find_money(msg: _Msg, words: list[tuple[int, int, int, int]]) -> list[Span]:
    text = msg.text
    found: list[_Atom] = []
    for pattern, needs in _MONEY_PATTERNS:
        if not _admits(needs, msg.lexemes):
            continue
        for m in pattern.finditer(msg.low):
            groups = m.groupdict()
            amount = Decimal((groups.get("num") or m.group(0)).replace(",", ""))
            amount *= _MULTIPLIERS.get((groups.get("mult") or groups.get("multw") or ""), 1)
            if (groups.get("curw") or "").startswith("cent"):
                amount /= 100
            found.append(_Atom(m.start(), m.end(), "money", _as_number(amount)))
    for start, end, value, scale in words:
        currency = _CURRENCY_NEXT.match(msg.low, end)
        if currency:
            cents = currency.group("curw").startswith("cent")
            found.append(_Atom(start, currency.end(), "money", _as_number(Decimal(value) / (100 if cents else 1))))
        elif scale >= 1000 and not msg.low.startswith("a ", start):  # not "thanks a million"
            found.append(_Atom(start, end, "money", value))
    return _signed(msg, [_span(text, a.start, a.end, "money", a.value) for a in _longest_first(found)])


_NUMBER_TOKEN = _alt([*_UNITS, *_TENS, "hundred", "thousand", "million", "billion", "and", "a", "couple", "dozen"])
_WORD_NUMBER_RUN = _c(rf"\b(?:{_NUMBER_TOKEN})(?:[\s-]+(?:{_NUMBER_TOKEN}))*\b(?!-(?:{_ORD_WORD}))")
_NUMBER_TOKENS = _c(rf"\b(?:{_NUMBER_TOKEN})\b")
_SCALES = {"thousand": 10**3, "million": 10**6, "billion": 10**9}
_NUMBER_NEEDS = _g({*_UNITS, *_TENS, "hundred", *_SCALES, "couple", "dozen"})


def _word_numbers(msg: _Msg) -> list[tuple[int, int, int, int]]:
    """Numbers in words, as (start, end, value, largest scale said): "one thousand two hundred and ninety"."""
    found: list[tuple[int, int, int, int]] = []
    if not _admits(_NUMBER_NEEDS, msg.lexemes):
        return found
    for run in _WORD_NUMBER_RUN.finditer(msg.low):
        tokens = [(t.start(), t.end(), t.group(0)) for t in _NUMBER_TOKENS.finditer(msg.low, run.start(), run.end())]
        i = 0
        while i < len(tokens):
            parsed = _parse_word_number([w for _, _, w in tokens[i:]])
            if parsed is None:
                i += 1
                continue
            used, value, scale = parsed
            found.append((tokens[i][0], tokens[i + used - 1][1], value, scale))
            i += used
    return found


def _parse_word_number(words: list[str]) -> tuple[int, int, int] | None:
    """The longest well-formed number at the start of ``words``: (words used, value, largest scale)."""
    if len(words) >= 2 and words[0] == "a" and words[1] in ("couple", "dozen"):
        return 2, 2 if words[1] == "couple" else 12, 0
    if words[0] == "zero":
        return 1, 0, 0
    total, group, last, top, hundred = 0, 0, "", 0, False
    best: tuple[int, int, int] | None = None
    for k, word in enumerate(words):
        if word == "a" and not last:
            group, last = 1, "a"
            continue
        if word == "and" and last in ("hundred", "scale"):
            last = "and"
            continue
        if word in _UNITS and word != "zero" and last in ("", "tens", "hundred", "scale", "and"):
            if last == "tens" and _UNITS[word] > 9:
                break
            group, last = group + _UNITS[word], "unit"
        elif word in _TENS and last in ("", "hundred", "scale", "and"):
            group, last = group + _TENS[word], "tens"
        elif word == "hundred" and last in ("unit", "a") and not hundred and group < 100:
            group, last, hundred = group * 100, "hundred", True
        elif word in _SCALES and last in ("unit", "tens", "hundred", "a") and (not top or _SCALES[word] < top):
            top = top or _SCALES[word]
            total, group, last, hundred = total + group * _SCALES[word], 0, "scale", False
        else:
            break
        best = (k + 1, total + group, top)
    return best


def _as_digits(m: re.Match[str]) -> int | float:
    return _as_number(Decimal(m.group("num")))


_NUMBER_DIGITS = _c(rf"{_ID_BEFORE}(?P<num>\d+(?:\.\d+)?){_NUM_END}")
_ONE_WAY = _c(r"[\s-]+(?:way|of|another|on\s+one)\b")


def find_numbers(text: str) -> list[Span]:
    """Plain numbers in digits or words ("2", "3.5", "twenty-one", "two hundred", "a couple"); never parts
    of ids. Amounts said with thousands separators or "thousand" and up are money (see :func:`find_money`)."""
    msg = _msg(text)
    return _find_numbers(msg, _word_numbers(msg))


def _find_numbers(msg: _Msg, words: list[tuple[int, int, int, int]]) -> list[Span]:
    text, low = msg.text, msg.low
    found = []
    if not _DIGITS.isdisjoint(msg.lexemes):
        found = [_span(text, m.start(), m.end(), "number", _as_digits(m)) for m in _NUMBER_DIGITS.finditer(low)]
    for start, end, value, scale in words:
        if scale:
            continue
        if low[start:end] == "one" and (_one_is_a_word(low, start) or _ONE_WAY.match(low, end)):
            continue
        found.append(_span(text, start, end, "number", value))
    return _signed(msg, sorted(found, key=lambda s: s.start))


_DURATION_PATTERNS = (
    (
        _c(
            rf"(?<![\w.$])(?P<n>\d+(?:\.\d+)?|{_NUM_WORD}|an?|(?:a\s+)?couple\s+of|(?:\d+|one|an?)\s+and\s+a\s+half)"
            r"\s*-?\s*(?P<unit>hours?|hrs?|h|minutes?|mins?)(?![a-z])"
            r"(?:\s*(?:and\s+)?(?P<half>a\s+half)\b"
            rf"|\s*(?:and\s+)?(?P<n2>\d{{1,2}}|{_NUM_WORD})\s*-?\s*(?:minutes?|mins?|m)(?![a-z])"
            r"|(?<=h)(?P<n3>\d{1,2})(?!\w))?"
        ),
        _g({"hour", "hours", "hr", "hrs", "h", "minute", "minutes", "min", "mins"}),
    ),
    (
        _c(
            r"\b(?P<halfhour>half\s+an?\s+hour|a\s+half[\s-]hour|half[\s-]hour)\b"
            r"|\b(?P<quarter>(?:a\s+)?quarter\s+(?:of\s+)?an?\s+hour|(?:a\s+)?quarter[\s-]hour)\b"
        ),
        _g({"half", "quarter"}, {"hour"}),
    ),
)


def _duration_minutes(m: re.Match[str]) -> int | None:
    groups = m.groupdict()
    if groups.get("halfhour"):
        return 30
    if groups.get("quarter"):
        return 15
    count = groups["n"]
    half = " and a half" in " ".join(count.split())
    if half:
        count = count.split()[0]
    if re.fullmatch(r"\d+(?:\.\d+)?", count):
        amount = Decimal(count)
    elif groups["unit"] == "h":
        return None  # "an h" is not a duration
    else:
        amount = Decimal(_count(count) or 0)
    if half or groups.get("half"):
        amount += Decimal("0.5")
    hours = groups["unit"].startswith("h")
    minutes = amount * 60 if hours else amount
    extra = groups.get("n2") or groups.get("n3")
    if extra:
        minutes += _count(extra) or 0
    return int(minutes.to_integral_value()) if minutes > 0 else None


def find_durations(text: str) -> list[Span]:
    """Lengths of time in minutes: "30 minutes", "an hour", "1.5 hours", "half an hour", "1h30"."""
    return _find_durations(_msg(text))


def _find_durations(msg: _Msg) -> list[Span]:
    text = msg.text
    found: list[_Atom] = []
    for pattern, needs in _DURATION_PATTERNS:
        if not _admits(needs, msg.lexemes):
            continue
        for m in pattern.finditer(msg.low):
            minutes = _duration_minutes(m)
            if minutes is not None:
                found.append(_Atom(m.start(), m.end(), "duration", minutes))
    return _signed(msg, [_span(text, a.start, a.end, "duration", a.value) for a in _longest_first(found)])


_EMAIL = _c(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")


def find_emails(text: str) -> list[Span]:
    """Email addresses (a simple RFC 5322 subset: local@domain.tld)."""
    return _find_emails(_msg(text))


def _find_emails(msg: _Msg) -> list[Span]:
    if "@" not in msg.lexemes:
        return []
    return [
        _span(msg.text, m.start(), m.end(), "email", msg.text[m.start() : m.end()]) for m in _EMAIL.finditer(msg.low)
    ]


_PRIORITY = {"email": 0, "date": 1, "datetime": 1, "time": 1, "range": 1, "duration": 2, "money": 3, "number": 4}


def find_values(text: str, now: datetime) -> list[Span]:
    """Every value above, without overlaps, in text order.

    On overlap an email wins over a date or time, which wins over a duration, then money, then a number;
    within one kind the longer span wins.
    """
    return list(_values(text, now))


@lru_cache(maxsize=256)
def _values(text: str, now: datetime) -> tuple[Span, ...]:
    """``find_values``, remembered for the last messages: the interpreter asks again for each action it weighs,
    and spans are immutable."""
    msg = _msg(text)
    words = _word_numbers(msg)
    dates = _find_dates(msg, now)
    candidates = [
        *_find_emails(msg),
        *dates,
        *_month_ranges(text, now, dates),
        *_find_durations(msg),
        *_find_money(msg, words),
        *_find_numbers(msg, words),
    ]
    return tuple(_disjoint(sorted(candidates, key=lambda s: (_PRIORITY[s.kind], s.start - s.end, s.start))))


# --- choices --------------------------------------------------------------------------------------

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")
_JOINER = re.compile(r"[\s_-]*")
_SUFFIXES = (
    ("ification", "ify"), ("ations", ""), ("ation", ""), ("ions", ""), ("ion", ""), ("ings", ""), ("ing", ""),
    ("ied", "y"), ("ies", "y"), ("ed", ""), ("es", ""), ("s", ""), ("al", ""),
)  # fmt: skip
_FUZZY_CUTOFF = 85.0
_FUZZY_MIN = 6  # shorter words are too easily one letter from another ("lost", "last")


@lru_cache(maxsize=1 << 16)
def _stem(word: str) -> str:
    """A crude stem, enough to meet "negotiating", "negotiated" and "negotiation" in one place."""
    word = word.lower()
    for suffix, replacement in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not (suffix == "s" and word.endswith("ss")):
            word = word[: -len(suffix)] + replacement
            break
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    if len(word) > 3 and word.endswith("y"):
        word = word[:-1] + "i"
    return word


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def _stems(text: str) -> tuple[str, ...]:
    return tuple(_stem(w) for w in _WORD.findall(text))


def match_choice(text: str, choices: Sequence[str]) -> str | None:
    """The choice a word or phrase means, in the choice's own spelling, or None when none is close.

    Tried in order: the same words ignoring case, "_" and "-"; the same word stems ("negotiating" for
    "negotiation"); a single choice named within a longer text; a phrase naming part of one choice only
    ("premium" for "Premium Economy"); and a near spelling (rapidfuzz ratio of at least 85).
    """
    words = _words(text)
    if not words or not choices:
        return None
    for key in (_words, _stems):
        wanted = tuple(key(text))
        hits = {c for c in choices if tuple(key(c)) == wanted}
        if len(hits) == 1:
            return hits.pop()
        if hits:
            return next(c for c in choices if c in hits)
    named = {s.value for s in find_choices(text, choices)}
    if len(named) == 1:
        return str(named.pop())
    stems = set(_stems(text))
    partial = [c for c in choices if stems and stems < set(_stems(c))]
    if len(partial) == 1:
        return partial[0]
    phrase = " ".join(words)
    if len(phrase) < 4:
        return None
    scored = sorted(((fuzz.ratio(phrase, " ".join(_words(c))), c) for c in choices), key=lambda p: -p[0])
    best_score, best = scored[0]
    if best_score < _FUZZY_CUTOFF or (len(scored) > 1 and scored[1][0] == best_score):
        return None
    return best


def find_choices(text: str, choices: Sequence[str]) -> list[Span]:
    """Each mention of a choice in ``text`` (whole words, word forms, longest choice first).

    The span's value is the choice as spelled in ``choices``; words may be joined by spaces, "_" or "-".
    """
    tokens = list(_WORD.finditer(text))
    stems = [_stem(t.group(0)) for t in tokens]
    wanted, single, tails = _choice_index(tuple(choices))
    spans: list[Span] = []
    i = 0
    while i < len(tokens):
        for choice_stems, choice in wanted:
            n = len(choice_stems)
            if tuple(stems[i : i + n]) == choice_stems and all(
                _JOINER.fullmatch(text, tokens[j].end(), tokens[j + 1].start()) for j in range(i, i + n - 1)
            ):
                spans.append(_span(text, tokens[i].start(), tokens[i + n - 1].end(), "choice", choice))
                i += n
                break
        else:
            word = tokens[i].group(0)
            if len(word) >= _FUZZY_MIN and (near := _nearest(word.lower(), single)) is not None:
                spans.append(_span(text, tokens[i].start(), tokens[i].end(), "choice", near))
            elif (tail := tails.get(stems[i])) is not None:  # "won" for "closed_won"
                spans.append(_span(text, tokens[i].start(), tokens[i].end(), "choice", tail))
            i += 1
    return spans


@lru_cache(maxsize=1024)
def _choice_index(choices: tuple[str, ...]) -> _ChoiceIndex:
    """The choices' stems, longest first; the single words long enough for a near spelling; and the compound
    choices told by their last word alone, "won" for "closed_won" (unless a choice is that word itself, or two
    compounds end in it). Computed once per list of choices: a catalog's enums are the same on every message."""
    wanted = sorted(((_stems(c), c) for c in choices if _WORD.search(c)), key=lambda p: -len(p[0]))
    single = [(c.lower(), c) for c in choices if len(c) >= _FUZZY_MIN and _WORD.fullmatch(c)]
    ends: dict[str, list[str]] = {}
    for stems, choice in wanted:
        if len(stems) > 1:
            ends.setdefault(stems[-1], []).append(choice)
    whole = {stems[0] for stems, _ in wanted if len(stems) == 1}
    tails = {end: found[0] for end, found in ends.items() if len(found) == 1 and end not in whole}
    return tuple(wanted), tuple(single), tails


_ChoiceIndex = tuple[tuple[tuple[tuple[str, ...], str], ...], tuple[tuple[str, str], ...], dict[str, str]]


@lru_cache(maxsize=8192)
def _nearest(word: str, candidates: tuple[tuple[str, str], ...]) -> str | None:
    """The one candidate spelled like ``word`` but for a typo (ratio >= 85), else None."""
    scored = [(fuzz.ratio(word, low), choice) for low, choice in candidates]
    close = [choice for score, choice in scored if score >= _FUZZY_CUTOFF]
    return close[0] if len(close) == 1 else None
