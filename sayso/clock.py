"""The clock: real time, or pinned by ``--now`` for tests and demos.

A time without an offset is read in the acting person's time zone, or in UTC
where no person acts; an explicit offset always wins.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import InvalidArguments

__all__ = ["Clock", "parse_time", "zone"]


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidArguments(f"unknown time zone {name!r}") from exc


def parse_time(text: str, tz: str | None = None) -> datetime:
    """Parse an ISO 8601 time; a naive one is read in ``tz`` (UTC when None). ``InvalidArguments`` for a text
    that is not one, or a time outside what UTC can hold."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise InvalidArguments(f"not an ISO 8601 time: {text!r}") from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone(tz))
    try:  # every time is compared in UTC: one that has no UTC equivalent (year 1 or 9999 at the edge) is refused
        value.astimezone(UTC)
    except (OverflowError, ValueError) as exc:
        raise InvalidArguments(f"the time {text.strip()!r} is out of range once converted to UTC") from exc
    return value


class Clock:
    """Tells the time; pinned clocks move forward only when told to."""

    def __init__(self, pinned: datetime | None = None) -> None:
        if pinned is not None and pinned.tzinfo is None:
            raise ValueError("a pinned time needs a time zone")
        self._pinned = pinned

    @classmethod
    def from_option(cls, now: str | None, tz: str | None = None) -> Clock:
        return cls(parse_time(now, tz) if now else None)

    @property
    def pinned(self) -> bool:
        return self._pinned is not None

    def now(self) -> datetime:
        return self._pinned if self._pinned is not None else datetime.now(UTC)

    def advance(self, delta: timedelta) -> None:
        if self._pinned is not None:
            self._pinned = self._pinned + delta

    def now_in(self, tz: str | None) -> datetime:
        return self.now().astimezone(zone(tz))
