"""When a standing instruction acts: the trigger clause of a sentence, read deterministically.

"every Monday at 8 send me the overdue invoices" splits into a schedule and the request
"send me the overdue invoices"; "if the Orchid deal hasn't moved by Friday, ping me" into a
condition on a record and "ping me". Only the trigger is read here; the request itself goes to
the interpreter like any other message, and the condition's subject to grounding.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field

from ..clock import zone
from ..errors import InvalidArguments
from ..interpreter.values import find_dates

__all__ = [
    "Schedule", "Split", "parse_condition", "parse_schedule", "record_label", "split_trigger", "state_matches",
    "when_text",
]

_DAYS = {
    "monday": 0, "mon": 0, "tuesday": 1, "tue": 1, "tues": 1, "wednesday": 2, "wed": 2, "thursday": 3,
    "thu": 3, "thurs": 3, "friday": 4, "fri": 4, "saturday": 5, "sat": 5, "sunday": 6, "sun": 6,
}  # fmt: skip
_DAY_NAMES = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_DEFAULT_TIME = time(9, 0)  # "every Monday", "on the 1st": at the start of the working day
_PARTS_OF_DAY = {"morning": time(9, 0), "afternoon": time(14, 0), "evening": time(18, 0), "noon": time(12, 0)}


class Schedule(BaseModel):
    """A recurring time in a person's zone: daily, on weekdays, on given days of the week, or monthly."""

    freq: Literal["daily", "weekly", "monthly"]
    weekdays: list[int] = Field(default_factory=list)  # 0 = Monday; empty = every day (daily)
    monthday: int | None = None
    hour: int = Field(default=9, ge=0, le=23)
    minute: int = Field(default=0, ge=0, le=59)
    tz: str = "UTC"

    def _matches(self, day: date) -> bool:
        if self.freq == "monthly":
            return day.day == self.monthday
        return not self.weekdays or day.weekday() in self.weekdays

    def _at(self, day: date) -> datetime:
        return datetime.combine(day, time(self.hour, self.minute), tzinfo=zone(self.tz))

    def next_after(self, moment: datetime) -> datetime:
        """The first occurrence strictly after ``moment``."""
        local = moment.astimezone(zone(self.tz)).date()
        for offset in range(0, 400):
            day = local + timedelta(days=offset)
            if self._matches(day) and self._at(day) > moment:
                return self._at(day)
        raise InvalidArguments(f"the schedule {self.describe()!r} never happens")

    def last_at_or_before(self, moment: datetime, since: datetime) -> datetime | None:
        """The latest occurrence in ``(since, moment]``, or None: missed ticks collapse into one."""
        local = moment.astimezone(zone(self.tz)).date()
        for offset in range(0, 400):
            day = local - timedelta(days=offset)
            at = self._at(day)
            if at <= since:
                return None
            if self._matches(day) and at <= moment:
                return at
        return None

    def describe(self) -> str:
        clock = f"{self.hour:02d}:{self.minute:02d}"
        if self.freq == "monthly":
            return f"on day {self.monthday} of every month at {clock}"
        if not self.weekdays:
            return f"every day at {clock}"
        if self.weekdays == [0, 1, 2, 3, 4]:
            return f"every weekday at {clock}"
        return "every " + " and ".join(_DAY_NAMES[d] for d in self.weekdays) + f" at {clock}"


@dataclass
class Split:
    """A message read as ``<trigger>, <request>``."""

    kind: Literal["every", "at", "watch", "after"]
    clause: str  # the trigger's words ("every Monday at 8", "the Orchid deal hasn't moved by Friday")
    request: str  # what to do when it fires, in the person's words


_LEAD = re.compile(r"^\s*(?P<word>if|when|whenever|once|as soon as|after)\s+(?P<clause>[^,]+?)\s*,\s*"
                   r"(?:then\s+)?(?P<rest>.+)$", re.I | re.S)
_TRAIL = re.compile(r"^(?P<rest>.+?)\s+(?P<word>if|when|whenever|once|as soon as)\s+(?P<clause>.+?)[.!]?\s*$",
                    re.I | re.S)
_EVERY = re.compile(
    r"^\s*(?P<clause>(?:(?:every|each)\s+(?:other\s+)?(?:day|morning|weekday|week|month|"
    r"(?:mon|tues?|wed(?:nes)?|thu(?:rs)?|fri|sat(?:ur)?|sun)(?:day)?s?)"
    r"(?:\s+(?:and|&)\s+(?:mon|tues?|wed(?:nes)?|thu(?:rs)?|fri|sat(?:ur)?|sun)(?:day)?s?)*"
    r"|daily|weekly|monthly|on\s+the\s+\d{1,2}(?:st|nd|rd|th)?(?:\s+of\s+(?:each|every|the)\s+month)?|"
    r"on\s+(?:mon|tues|wednes|thurs|fri|satur|sun)days)"
    r"(?:\s+on\s+the\s+\d{1,2}(?:st|nd|rd|th)?)?"
    r"(?:\s+(?:at|@)\s+(?:\d{1,2}(?::\d{2})?\s*(?:am|pm|a\.m\.|p\.m\.)?|noon|midday))?"
    r"(?:\s+in\s+the\s+(?:morning|afternoon|evening))?)"
    r"\s*,?\s+(?P<rest>.+)$", re.I | re.S)
_TRAIL_EVERY = re.compile(r"^(?P<rest>.+?)\s+(?P<clause>(?:every|each)\s+(?:other\s+)?(?:day|morning|evening|"
                          r"weekday|week|month|(?:mon|tues|wednes|thurs|fri|satur|sun)day)s?\b.*?|"
                          # "daily at 9" is a schedule; "weekly summary" is a name
                          r"(?:daily|weekly)(?:\s+(?:at|on|in|before|after)\b.*?)?|"
                          r"on\s+the\s+\d{1,2}(?:st|nd|rd|th)?\s+of\s+(?:each|every)\s+month.*?)[.!]?\s*$",
                          re.I | re.S)
_DELAY = re.compile(
    r"^\s*(?P<clause>(?:tomorrow|yesterday|tonight|later today|last\s+\w+|this (?:afternoon|evening)|"
    r"in\s+\d+\s+(?:minutes?|mins?|hours?|hrs?|days?)|(?:on\s+)?(?:next\s+)?(?:mon|tues|wednes|thurs|fri|satur|sun)day|at\s+\d{1,2}(?::\d{2})?\s*"
    r"(?:am|pm)?|on\s+\w+\s+\d{1,2}(?:st|nd|rd|th)?)(?:\s+(?:at|@)\s+\d{1,2}(?::\d{2})?\s*(?:am|pm)?|"
    r"\s+(?:morning|afternoon|evening))?)\s*,\s*(?P<rest>.+)$", re.I | re.S)


def split_trigger(text: str) -> Split | None:
    """The trigger clause and the request, or None when the message is an ordinary request.

    Delayed actions need the trigger first and a comma ("tomorrow at 9, post ..."): "remind me
    Friday at 9 to call Priya" stays an ordinary request whose time belongs to the reminder.
    """
    lead = _LEAD.match(text)
    if lead and (lead["word"].lower() == "after" or _looks_like_condition(lead["clause"])) \
            and not (lead["word"].lower() == "if" and looks_back(lead["clause"])):
        word = lead["word"].lower()
        return Split("after" if word == "after" else "watch", lead["clause"].strip(), lead["rest"].strip())
    every = _EVERY.match(text)
    if every:
        return Split("every", every["clause"].strip(), every["rest"].strip())
    delay = _DELAY.match(text)
    if delay:
        return Split("at", delay["clause"].strip(), delay["rest"].strip())
    trail_every = _TRAIL_EVERY.match(text)
    if trail_every:
        return Split("every", trail_every["clause"].strip(), trail_every["rest"].strip())
    trail = _TRAIL.match(text)
    if trail and _looks_like_condition(trail["clause"]) \
            and not (trail["word"].lower() == "if" and looks_back(trail["clause"])):
        return Split("watch", trail["clause"].strip(), trail["rest"].strip())
    return None


# "if total visits was more than 10 at any time since October 1", "if I haven't met aisha in the past 9 days":
# a condition on what has happened, evaluated now (sayso/conditions.py), not one to wait for.
_BACK = re.compile(r"\b(?:since|ago|in the (?:last|past)|during the (?:last|past)|over the (?:last|past)|"
                   r"any ?time|at any point|ever|was|were|had)\b", re.I)
_AHEAD = re.compile(r"\b(?:by|until|before)\s+(?:the\s+)?(?:end|next|tomorrow|tonight|mon|tue|wed|thu|fri|sat|sun|"
                    r"jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec|\d)", re.I)


def looks_back(clause: str) -> bool:
    """Does an "if" clause speak of what has happened, with nothing to wait for ("by Friday")?"""
    return bool(_BACK.search(clause)) and not _AHEAD.search(clause)


def _looks_like_condition(clause: str) -> bool:
    return bool(_NOT_BY.match(clause.strip()) or _BECOMES.match(clause.strip()) or _CLOSES.match(clause.strip()))


# --- schedules and times -------------------------------------------------------------------------------------


def _clock(text: str) -> time | None:
    lowered = text.lower()
    for word, value in _PARTS_OF_DAY.items():
        if re.search(rf"\b{word}\b", lowered) and not re.search(r"\d", lowered):
            return value
    if re.search(r"\bmidday\b", lowered):
        return time(12, 0)
    m = re.search(r"(?:at|@)\s+(\d{1,2})(?::(\d{2}))?\s*(am|pm|a\.m\.|p\.m\.)?", lowered)
    if not m:
        return None
    hour, minute, period = int(m[1]), int(m[2] or 0), (m[3] or "").replace(".", "")
    if hour > 23 or minute > 59 or (period and not 1 <= hour <= 12):
        raise InvalidArguments(f"{m[0].strip()!r} is not a time of day")
    if period == "pm" and hour < 12:
        hour += 12
    elif period == "am" and hour == 12:
        hour = 0
    elif not period and 1 <= hour <= 6:
        hour += 12  # "at 5" in working life means 17:00
    return time(hour, minute)


def parse_schedule(clause: str, tz: str) -> Schedule:
    """"every Monday at 8", "each weekday at 8:30", "daily", "on the 1st", "every month on the 15th at 10"."""
    lowered = clause.lower()
    at = _clock(lowered) or _DEFAULT_TIME
    monthday = re.search(r"\bon\s+the\s+(\d{1,2})(?:st|nd|rd|th)?\b", lowered)
    base = Schedule(freq="daily", hour=at.hour, minute=at.minute, tz=tz)
    if monthday or "month" in lowered:
        day = int(monthday[1]) if monthday else 1
        if not 1 <= day <= 31:
            raise InvalidArguments(f"there is no day {day} in a month")
        return base.model_copy(update={"freq": "monthly", "monthday": day})
    if re.search(r"\bweekdays?\b", lowered):
        return base.model_copy(update={"freq": "weekly", "weekdays": [0, 1, 2, 3, 4]})
    days = sorted({_DAYS[w] for w in re.findall(r"\b([a-z]+?)s?\b", lowered) if w in _DAYS}
                  | {_DAYS[w.removesuffix("s")] for w in re.findall(r"\b([a-z]+days)\b", lowered)
                     if w.removesuffix("s") in _DAYS})
    if days:
        return base.model_copy(update={"freq": "weekly", "weekdays": days})
    if "week" in lowered:
        raise InvalidArguments(f"which day of the week? ({clause!r}); say e.g. \"every Monday at 8\"")
    return base


def parse_when(clause: str, now: datetime, tz: str, *, default: time = _DEFAULT_TIME) -> datetime:
    """One moment: "tomorrow at 9", "Friday", "in 2 hours", "at 5pm" (today), in the person's zone."""
    lowered = clause.lower().strip()
    local_now = now.astimezone(zone(tz))
    m = re.search(r"\bin\s+(\d+)\s+(minute|min|hour|hr|day)s?\b", lowered)
    if m:
        unit = {"minute": "minutes", "min": "minutes", "hour": "hours", "hr": "hours", "day": "days"}[m[2]]
        return now + timedelta(**{unit: int(m[1])})
    found = find_dates(clause, local_now)
    for span in found:
        if span.kind == "datetime" and isinstance(span.value, datetime):
            return span.value
    day = next((s.value for s in found if s.kind == "date" and isinstance(s.value, date)), None)
    if day is None:
        day = next((s.value[1] for s in found if s.kind == "range" and isinstance(s.value, tuple) and s.value[1]),
                   None)
    at = _clock(lowered)
    if at is None:
        at = next((s.value for s in found if s.kind == "time" and isinstance(s.value, time)), None)
    if day is None and at is None:
        if "tonight" in lowered:
            return datetime.combine(local_now.date(), time(20, 0), tzinfo=zone(tz))
        raise InvalidArguments(f"I could not tell when {clause!r} is")
    if day is None:
        day = local_now.date()
        if "tomorrow" in lowered:
            day += timedelta(days=1)
    return datetime.combine(day, at or default, tzinfo=zone(tz))


# --- conditions ----------------------------------------------------------------------------------------------

_NEG = r"(?:hasn'?t|has\s+not|haven'?t|have\s+not|doesn'?t|does\s+not|didn'?t|did\s+not|isn'?t|is\s+not|aren'?t|" \
       r"is\s+still\s+not|still\s+hasn'?t)"
_NOT_BY = re.compile(rf"^(?P<subject>.+?)\s+{_NEG}\s+(?:been\s+|got(?:ten)?\s+|get\s+|be\s+)?(?P<verb>[\w-]+)"
                     r"(?:\s+(?:by|before|until|till)\s+(?P<when>.+))?$", re.I)
_BECOMES = re.compile(r"^(?P<subject>.+?)\s+(?:is|gets|goes|becomes|has\s+been|was|turns|moves\s+to|reaches|"
                      r"is\s+marked(?:\s+as)?|is\s+set\s+to|changes\s+to)\s+(?P<state>[\w\s-]+?)"
                      r"(?:\s+(?:by|before|until)\s+(?P<when>.+))?$", re.I)
_CLOSES = re.compile(r"^(?P<subject>.+?)\s+(?P<state>closes|is\s+closed|gets\s+paid|is\s+paid|moves|changes|"
                     r"is\s+won|is\s+lost)(?:\s+(?:by|before|until)\s+(?P<when>.+))?$", re.I)
MOVE_WORDS = frozenset({"moved", "move", "changed", "change", "progressed", "progress", "advanced", "advance",
                        "updated", "update", "budged", "budge", "touched", "touch"})


class Condition(BaseModel):
    """A condition on records, before grounding: its subject in the person's words."""

    subject: str
    mode: Literal["unchanged", "not_state", "becomes", "changes"]
    state: str | None = None
    deadline: str | None = None  # the words after "by"


def parse_condition(clause: str) -> Condition:
    text = clause.strip().rstrip(".!")
    m = _NOT_BY.match(text)
    if m:
        verb = m["verb"].lower()
        mode: Literal["unchanged", "not_state"] = "unchanged" if verb in MOVE_WORDS else "not_state"
        return Condition(subject=m["subject"], mode=mode, state=None if mode == "unchanged" else verb,
                         deadline=m["when"])
    m = _CLOSES.match(text)
    if m:
        word = m["state"].lower().split()[-1]
        if word in ("moves", "changes"):
            return Condition(subject=m["subject"], mode="changes", deadline=m["when"])
        return Condition(subject=m["subject"], mode="becomes", state={"closes": "closed"}.get(word, word),
                         deadline=m["when"])
    m = _BECOMES.match(text)
    if m:
        return Condition(subject=m["subject"], mode="becomes", state=m["state"].strip().lower(), deadline=m["when"])
    raise InvalidArguments(f"I could not read the condition {clause!r}; try e.g. \"if D-104 hasn't moved by "
                           "Friday\" or \"when SUP-17 is closed\"")


def when_text(iso: str, tz: str) -> str:
    """A moment as the person reads it: "Fri Nov 27 00:00" in their zone."""
    return datetime.fromisoformat(iso).astimezone(zone(tz)).strftime("%a %b %d %H:%M")


def state_matches(value: Any, state: str) -> bool:
    """Whether a status or stage value means the state a person named ("closed" matches closed_won)."""
    if value is None:
        return False
    have = str(value).lower().replace("-", "_").replace(" ", "_")
    want = state.lower().strip().replace("-", "_").replace(" ", "_")
    synonyms = {"won": {"closed_won"}, "lost": {"closed_lost"}, "done": {"closed", "done", "resolved"},
                "resolved": {"closed", "done", "resolved"}, "finished": {"closed", "done"},
                "closed": {"closed", "closed_won", "closed_lost", "resolved", "done"}}
    return have == want or have in synonyms.get(want, set()) or have.startswith(f"{want}_")


def record_label(record: Any) -> str:
    """"D-104 Orchid Renewal": a record's id and its name, once."""
    title = getattr(record, "title", "")
    return f"{record.id} {title}".strip() if title and title != record.id else str(record.id)
