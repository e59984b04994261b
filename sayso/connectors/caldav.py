"""A calendar over CalDAV (kind ``caldav``): reminders and meetings as VEVENTs in one calendar.

The operations and their arguments are the demo calendar's (``remind``, ``schedule_meeting``),
so a workspace switches its ``[systems.calendar]`` by configuration alone. Each event's UID is
derived from the step's idempotency key (``stable_id(key)@sayso``) and so is its resource name;
the event is created with ``If-None-Match: *`` after a look-up by UID, so a retried step finds
its event instead of making a second one (``Guarantee.IDEMPOTENT``). The event's DESCRIPTION
says who asked, in what words, in which conversation.

Settings (``[systems.<name>]``): ``url``, ``username``, ``password_secret``, ``calendar`` (a
display name or a URL path; default: the account's first calendar), ``timezone`` (for times
when no person of the directory asks; default UTC), ``timeout`` (seconds, default 30).
See docs/connectors/caldav.md.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit

from ..clock import zone
from ..directory import Directory
from ..errors import ConfigurationError, ConnectorError, InvalidArguments, SaysoError
from . import ConnectorRegistry, SystemContext
from ._common import Settings, is_loopback, parse_args, require_extra, short
from .base import Change, Connector, Effect, Guarantee, Record
from .operations import Params, Remind, ScheduleMeeting
from .provenance import stable_id, why_fields, why_text

__all__ = ["CalDAVCalendar", "register"]

T = TypeVar("T")

_SETTINGS = frozenset({"kind", "url", "username", "password_secret", "calendar", "timezone", "timeout"})
_ADDRESS = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_PRODID = "-//sayso//caldav connector//EN"

_WRITES: dict[str, type[Params]] = {"remind": Remind, "schedule_meeting": ScheduleMeeting}


def _uid(key: str) -> str:
    """The event UID for an idempotency key: the same key, the same event."""
    return f"{stable_id(key)}@sayso"


class CalDAVCalendar(Connector):
    """Reminders and meetings in one CalDAV calendar, one VEVENT per step, named by its key."""

    # The resource name and UID come from the key, the create carries If-None-Match: *, and
    # the UID is looked up first: the server itself refuses a second event for one key.
    guarantee = Guarantee.IDEMPOTENT
    record_types = frozenset({"Event"})

    def __init__(
        self,
        name: str,
        *,
        url: str,
        directory: Directory,
        username: str | None = None,
        password: str | None = None,
        calendar: str | None = None,
        timezone: str = "UTC",
        timeout: float = 30,
    ) -> None:
        self.name = name
        self.url = url
        self.username = username
        self._password = password
        self.calendar_setting = calendar
        self.timezone = timezone
        self.timeout = timeout
        self._directory = directory
        self._lock = threading.RLock()
        self._client: Any = None
        self._calendar: Any = None

    def __repr__(self) -> str:
        return f"CalDAVCalendar(name={self.name!r}, url={self.url!r}, calendar={self.calendar_setting!r})"

    # --- the server ----------------------------------------------------------------

    def _call(self, doing: str, run: Callable[[], T]) -> T:
        """Run one exchange with the server; its failures become ConnectorError, without secrets."""
        from caldav.lib import error as dav

        try:
            return run()
        except SaysoError:
            raise
        except dav.AuthorizationError as exc:
            who = f"user {self.username!r}" if self.username else "an anonymous user"
            raise ConnectorError(
                f"{self.name}: the CalDAV server at {self.url} refused {who} while trying to {doing} "
                f"({self._clean(exc)})"
            ) from None
        except (dav.DAVError, OSError, ValueError) as exc:
            raise ConnectorError(
                f"{self.name}: could not {doing} on the CalDAV server at {self.url}: "
                f"{type(exc).__name__}: {self._clean(exc)}"
            ) from None

    def _clean(self, exc: BaseException) -> str:
        text = " ".join(str(exc).split())
        if self._password:
            text = text.replace(self._password, "[redacted]")
        return short(text, 300)

    def _collection(self) -> Any:
        """The calendar, found once: by URL path, by display name, or the account's first one."""
        with self._lock:
            if self._calendar is None:
                self._calendar = self._call("find the calendar", self._find_calendar)
            return self._calendar

    def _find_calendar(self) -> Any:
        from caldav.davclient import DAVClient

        options: dict[str, Any] = {"url": self.url, "username": self.username, "password": self._password,
                                   "timeout": self.timeout}
        client: Any = DAVClient(**options)
        self._client = client
        wanted = self.calendar_setting
        if wanted and (wanted.startswith("/") or "://" in wanted):
            return client.calendar(url=client.url.join(wanted))
        calendars = _first(client.principal(), "get_calendars", "calendars")()
        if not wanted:
            if not calendars:
                raise ConfigurationError(
                    f"{self.name}: the CalDAV account at {self.url} has no calendar; create one or set "
                    "calendar = \"/path/to/calendar/\""
                )
            return calendars[0]
        names = {str(c.get_display_name()): c for c in calendars}
        if wanted not in names:
            known = ", ".join(sorted(names)) or "none"
            raise ConfigurationError(f"{self.name}: no calendar named {wanted!r} at {self.url} (there are: {known})")
        return names[wanted]

    def _find(self, uid: str) -> Any:
        """The calendar object with this UID, or None."""
        from caldav.lib import error as dav

        calendar = self._collection()

        def search() -> Any:
            try:
                return _first(calendar, "get_event_by_uid", "event_by_uid")(uid)
            except dav.NotFoundError:
                return None

        return self._call(f"look up event {uid}", search)

    # --- events ----------------------------------------------------------------------

    def _zone_of(self, person_id: str | None) -> str:
        if person_id is not None and person_id in self._directory:
            return self._directory.get(person_id).timezone
        return self.timezone

    def _in_zone(self, value: datetime, tz: str) -> datetime:
        """A time in the asking person's zone: a naive one is read there, an aware one moved there."""
        return value.replace(tzinfo=zone(tz)) if value.tzinfo is None else value.astimezone(zone(tz))

    def _address(self, operation: str, who: str) -> tuple[str, str | None]:
        """(email, name) of an attendee given as a person id or an email address."""
        if "@" in who:
            if not _ADDRESS.fullmatch(who):
                raise InvalidArguments(f"calendar.{operation}: {who!r} is not a valid email address")
            return who, None
        person = self._directory.get(who)
        if not _ADDRESS.fullmatch(person.email):
            raise InvalidArguments(f"calendar.{operation}: {who!r} has no valid email address in the directory")
        return person.email, person.name

    def _ics(self, operation: str, args: Mapping[str, Any], key: str, origin: Mapping[str, Any] | None) -> str:
        """The iCalendar text of the event a step creates."""
        import icalendar

        params = parse_args(_WRITES[operation], args, f"calendar.{operation}")
        actor = str(origin.get("actor")) if origin and origin.get("actor") else None
        event = icalendar.Event()
        event.add("uid", _uid(key))
        event.add("dtstamp", datetime.now(UTC))
        tz = self._zone_of(actor)
        if isinstance(params, Remind):
            if actor is None:
                raise InvalidArguments("calendar.remind: a reminder needs the person it is for (origin actor)")
            self._directory.get(actor)
            event.add("dtstart", self._in_zone(params.at, tz))
            event.add("summary", params.text)
            alarm = icalendar.Alarm()
            alarm.add("action", "DISPLAY")
            alarm.add("description", params.text)
            alarm.add("trigger", timedelta(0))
            event.add_component(alarm)
            kind = "reminder"
        else:
            assert isinstance(params, ScheduleMeeting)
            start = self._in_zone(params.start, tz)
            event.add("dtstart", start)
            event.add("dtend", start + timedelta(minutes=params.duration))
            event.add("summary", params.title)
            if actor is not None and actor in self._directory and self._directory.get(actor).email:
                person = self._directory.get(actor)
                event.add("organizer", f"mailto:{person.email}", parameters={"CN": person.name})
            seen: set[str] = set()
            for who in params.attendees:
                email, name = self._address(operation, who)
                if email.lower() in seen:
                    continue
                seen.add(email.lower())
                shown = {"CN": name} if name else {}
                event.add("attendee", f"mailto:{email}", parameters={
                    **shown, "CUTYPE": "INDIVIDUAL", "ROLE": "REQ-PARTICIPANT", "PARTSTAT": "NEEDS-ACTION",
                    "RSVP": "TRUE",
                })
            kind = "meeting"
        why = why_text(origin)
        if why:
            event.add("description", why)
        fields = why_fields(origin)
        marks = {
            "X-SAYSO-OPERATION": operation, "X-SAYSO-KIND": kind, "X-SAYSO-KEY": key,
            "X-SAYSO-REQUESTED-BY": actor, "X-SAYSO-CONVERSATION": fields.get("conversation"),
            "X-SAYSO-RELATED": ", ".join(map(str, fields.get("related") or [])),
        }
        for mark, value in marks.items():
            if value:
                event.add(mark, value)
        calendar = icalendar.Calendar()
        calendar.add("prodid", _PRODID)
        calendar.add("version", "2.0")
        calendar.add_component(event)
        calendar.add_missing_timezones()
        return bytes(calendar.to_ical()).decode()

    def _person_of(self, address: str) -> str:
        """A directory id for an attendee's address, or the address itself."""
        email = address.removeprefix("mailto:").removeprefix("MAILTO:")
        for person in self._directory:
            if person.email and person.email.lower() == email.lower():
                return person.id
        return email

    def _parse(self, ics: str) -> Any:
        import icalendar

        events = icalendar.Calendar.from_ical(ics).walk("VEVENT")
        if not events:
            raise ValueError("the calendar object holds no VEVENT")
        return events[0]

    def _attrs(self, event: Any) -> dict[str, Any]:
        """An event as the demo calendar shows one: owner, attendees, start, end, title, kind."""
        start = event.get("dtstart")
        end = event.get("dtend")
        owner = str(event.get("x-sayso-requested-by")) if event.get("x-sayso-requested-by") else None
        kind = str(event.get("x-sayso-kind") or "event")
        attendees = event.get("attendee") or []
        if not isinstance(attendees, list):
            attendees = [attendees]
        listed = [self._person_of(str(a)) for a in attendees]
        if kind == "reminder" and owner:
            listed = [owner]
        attrs: dict[str, Any] = {
            "owner": owner, "attendees": listed,
            "start": start.dt.isoformat() if start else None,
            "end": (end or start).dt.isoformat() if (end or start) else None,
            "title": str(event.get("summary") or ""), "kind": kind,
        }
        return {k: v for k, v in attrs.items() if v is not None}

    def _effect(self, key: str, event: Any, url: str) -> Effect:
        uid = str(event.get("uid"))
        operation = str(event.get("x-sayso-operation") or "")
        attrs = self._attrs(event)
        title = attrs.get("title", "")
        if attrs.get("kind") == "reminder":
            summary = f"reminder for {attrs.get('owner')} at {attrs.get('start')}: {short(title)!r}"
        else:
            summary = f"scheduled {title!r} at {attrs.get('start')} with {', '.join(attrs.get('attendees', []))}"
        change = Change(record_type="Event", record_id=uid, title=title, after=attrs, version=1)
        return Effect(key=key, operation=operation, changes=[change], summary=summary,
                      result={"id": uid, "uid": uid, "url": url})

    def _found_effect(self, key: str, found: Any, operation: str | None = None) -> Effect:
        effect = self._call("read the event", lambda: self._effect(key, self._parse(str(found.data)), str(found.url)))
        if operation is not None and effect.operation != operation:
            raise InvalidArguments(f"key {key!r} was used for {effect.operation!r}, not {operation!r}")
        return effect

    # --- the connector interface ---------------------------------------------------

    def execute(
        self, operation: str, args: dict[str, Any], *, key: str, origin: dict[str, Any] | None = None
    ) -> Effect:
        if operation not in _WRITES:
            raise InvalidArguments(f"{self.name} has no operation {operation!r} (it has: remind, schedule_meeting)")
        ics = self._ics(operation, args, key, origin)
        uid = _uid(key)
        with self._lock:
            found = self._find(uid)
            if found is not None:  # the same key again: its event, not a second one
                return self._found_effect(key, found, operation)
            calendar = self._collection()
            url = str(calendar.url.join(f"{stable_id(key)}.ics"))
            headers = {"If-None-Match": "*", "Content-Type": "text/calendar; charset=utf-8"}
            response = self._call(f"create event {uid}", lambda: self._client.put(url, ics, headers))
            if response.status in (409, 412):  # made meanwhile under this key: that one stands
                found = self._find(uid)
                if found is None:
                    raise ConnectorError(f"{self.name}: the server refused event {uid} ({response.status}) "
                                         "but has no event with that UID")
                return self._found_effect(key, found, operation)
            if response.status >= 400:
                raise ConnectorError(f"{self.name}: the CalDAV server refused event {uid}: "
                                     f"{response.status} {response.reason}")
            return self._call("read the event", lambda: self._effect(key, self._parse(ics), url))

    def lookup(self, key: str) -> Effect | None:
        with self._lock:
            found = self._find(_uid(key))
            return None if found is None else self._found_effect(key, found)

    def compensate(self, effect: Effect, *, key: str) -> Effect:
        """Delete the event a step created; an event already gone counts as deleted."""
        if effect.operation not in _WRITES:
            raise NotImplementedError(f"{self.name} cannot undo {effect.operation!r}")
        uid = str(effect.result.get("uid") or _uid(effect.key))
        with self._lock:
            found = self._find(uid)
            if found is not None:
                response = self._call(f"delete event {uid}", lambda: self._client.delete(str(found.url)))
                if response.status >= 400 and response.status != 404:
                    raise ConnectorError(f"{self.name}: the CalDAV server did not delete event {uid}: "
                                         f"{response.status} {response.reason}")
        before = effect.changes[0].after if effect.changes else None
        title = effect.changes[0].title if effect.changes else ""
        change = Change(record_type="Event", record_id=uid, title=title, before=before, after=None)
        return Effect(key=key, operation=f"undo:{effect.operation}", changes=[change],
                      result={"id": uid, "undoes": effect.key}, summary=f"undo: deleted {uid} {title!r}")

    def _record(self, found: Any) -> Record:
        event = self._parse(str(found.data))
        attrs = self._attrs(event)
        sequence = int(event.get("sequence") or 0)
        return Record(type="Event", id=str(event.get("uid")), title=attrs.get("title", ""),
                      attrs={**attrs, "url": str(found.url)}, version=sequence + 1, system=self.name)

    def get(self, record_type: str, record_id: str) -> Record | None:
        if record_type != "Event":
            return None
        with self._lock:
            found = self._find(record_id)
            return None if found is None else self._call("read the event", lambda: self._record(found))

    def search(self, record_type: str, text: str, *, limit: int = 10) -> list[Record]:
        """Events whose SUMMARY contains ``text`` (as the server matches text), exact titles first."""
        needle = text.strip()
        if record_type != "Event" or not needle or limit < 1:
            return []
        with self._lock:
            calendar = self._collection()
            found = self._call("search events", lambda: calendar.search(event=True, summary=needle))
            records = self._call("read the events", lambda: [self._record(f) for f in found])
        scored = [r.model_copy(update={"score": 100.0 if r.title.lower() == needle.lower() else 90.0})
                  for r in records]
        return sorted(scored, key=lambda r: -(r.score or 0))[:limit]

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
                self._calendar = None


def _create(name: str, settings: Mapping[str, Any], context: SystemContext) -> CalDAVCalendar:
    require_extra(name, "caldav", "the caldav package", "caldav", "icalendar")
    read = Settings(name, settings, kind="caldav")
    read.refuse_unknown(_SETTINGS)
    url = read.required_text("url")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise read.error(f"url must be an http:// or https:// URL, not {url!r}")
    if parts.username or parts.password:
        raise read.error("put no credentials in url; use username and password_secret")
    username = read.text("username")
    secret_name = read.text("password_secret")
    if secret_name and not username:
        raise read.error("password_secret needs a username")
    password = context.secret(secret_name) if secret_name else None
    if password and parts.scheme == "http" and not is_loopback(parts.hostname):
        raise read.error(f"refusing to send a password over plain http to {parts.hostname}; use https")
    timezone = read.text("timezone") or "UTC"
    try:
        zone(timezone)
    except InvalidArguments:
        raise read.error(f"unknown time zone {timezone!r}") from None
    return CalDAVCalendar(
        name, url=url, directory=context.directory, username=username, password=password,
        calendar=read.text("calendar"), timezone=timezone, timeout=read.seconds(),
    )


def register(registry: ConnectorRegistry) -> None:
    """Add the kind ``caldav``."""
    registry.add("caldav", _create)


def _first(target: Any, *names: str) -> Any:
    """The first of ``names`` the caldav object has (caldav 1.x/2.0 and 3.x name some methods differently)."""
    for name in names:
        found = getattr(target, name, None)
        if found is not None:
            return found
    raise ConnectorError(f"this caldav library has none of {', '.join(names)}")
