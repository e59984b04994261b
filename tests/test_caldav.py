"""The CalDAV calendar against a real Radicale server on 127.0.0.1: events, their UIDs, times,
attendees and the why; one event per key across retries and a crash; look-up; undo; errors."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from sayso.connectors import Connector, SystemContext, registry
from sayso.connectors.provenance import stable_id
from sayso.directory import Directory
from sayso.errors import ConfigurationError, ConnectorError, InvalidArguments, UnknownUser

from .conftest import NOW, sayso
from .servers import free_port
from .switch import crash_then_recover, switch_system

caldav = pytest.importorskip("caldav", reason="the CalDAV connector needs sayso[caldav]")
pytest.importorskip("radicale", reason="these tests run a Radicale CalDAV server (the test extra has it)")

USER, PASSWORD = "sayso", "Cal-pw-93kq7"
NEW_YORK, LOS_ANGELES = ZoneInfo("America/New_York"), ZoneInfo("America/Los_Angeles")
ORIGIN = {"actor": "alice", "actor_name": "Alice Moreno", "conversation": "c_cal1", "turn": "t_1",
          "request": "remind me Friday at 9 to call Priya", "related": ["D-101"]}


@pytest.fixture(scope="module")
def radicale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Radicale server with one user (htpasswd, plain) and no rights restrictions."""
    folder = tmp_path_factory.mktemp("radicale")
    (folder / "users").write_text(f"{USER}:{PASSWORD}\n")
    port = free_port()
    (folder / "config").write_text(
        f"[server]\nhosts = 127.0.0.1:{port}\n"
        f"[auth]\ntype = htpasswd\nhtpasswd_filename = {folder / 'users'}\nhtpasswd_encryption = plain\ndelay = 0.01\n"
        "[rights]\ntype = authenticated\n"
        f"[storage]\nfilesystem_folder = {folder / 'collections'}\n"
        "[logging]\nlevel = warning\n"
    )
    log = (folder / "log").open("w")
    server = subprocess.Popen([sys.executable, "-m", "radicale", "--config", str(folder / "config")],
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"Radicale did not start: {(folder / 'log').read_text()}") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


def dav(url: str) -> Any:
    return caldav.DAVClient(url=url, username=USER, password=PASSWORD, timeout=10)


@pytest.fixture
def calendar_path(radicale: str) -> str:
    """A fresh calendar for each test, so counts on the server are this test's own."""
    cal_id = uuid.uuid4().hex[:12]
    with dav(radicale) as client:
        client.principal().make_calendar(name=f"Team {cal_id}", cal_id=cal_id)
    return f"/{USER}/{cal_id}/"


def server_events(radicale: str, path: str) -> list[Any]:
    """The VEVENTs on the server, read by a client of our own (not the connector)."""
    import icalendar

    with dav(radicale) as client:
        calendar = client.calendar(url=client.url.join(path))
        objects = (getattr(calendar, "get_events", None) or calendar.events)()
        return [icalendar.Calendar.from_ical(o.data).walk("VEVENT")[0] for o in objects]


@pytest.fixture
def directory(sqlite_root: Path) -> Directory:
    return Directory.load(sqlite_root / "directory.yaml")


def connect(radicale: str, directory: Directory, **settings: Any) -> Connector:
    base: dict[str, Any] = {"kind": "caldav", "url": radicale, "username": USER, "password_secret": "cal_pw"}
    context = SystemContext(Path("."), directory, {"cal_pw": PASSWORD})
    return registry.create("calendar", {**base, **settings}, context)


def test_remind_makes_an_event_in_the_persons_zone_with_alarm_and_why(
    radicale: str, calendar_path: str, directory: Directory
) -> None:
    calendar = connect(radicale, directory, calendar=calendar_path)
    effect = calendar.execute("remind", {"at": "2026-11-27T09:00:00", "text": "call Priya"},
                              key="sk_remind1", origin=ORIGIN)
    (event,) = server_events(radicale, calendar_path)
    assert str(event["uid"]) == f"{stable_id('sk_remind1')}@sayso" == effect.result["uid"]
    start = event["dtstart"].dt
    assert start == datetime(2026, 11, 27, 9, 0, tzinfo=NEW_YORK)  # a naive time: in Alice's zone
    assert event["dtstart"].params["TZID"] == "America/New_York"
    assert str(event["summary"]) == "call Priya"
    (alarm,) = event.walk("VALARM")
    assert alarm["trigger"].dt == timedelta(0)
    description = str(event["description"])
    assert "Alice Moreno (alice)" in description and "remind me Friday at 9 to call Priya" in description
    assert "c_cal1" in description and "D-101" in description
    assert str(event["x-sayso-requested-by"]) == "alice"
    after = effect.changes[0].after or {}
    assert after["start"] == "2026-11-27T09:00:00-05:00" and after["owner"] == "alice"
    assert effect.operation == "remind" and "reminder for alice" in effect.summary
    calendar.close()


def test_meeting_invites_people_and_contacts_in_the_organizers_zone(
    radicale: str, calendar_path: str, directory: Directory
) -> None:
    calendar = connect(radicale, directory, calendar=calendar_path)
    origin = {**ORIGIN, "actor": "devi", "actor_name": "Devi Rao", "request": "meet carol and Priya at 10"}
    args = {"attendees": ["carol", "priya.shah@orchid.example", "carol"], "start": "2026-11-27T10:00",
            "duration": 45, "title": "Orchid renewal"}
    effect = calendar.execute("schedule_meeting", args, key="sk_meet1", origin=origin)
    (event,) = server_events(radicale, calendar_path)
    assert str(event["uid"]) == f"{stable_id('sk_meet1')}@sayso"
    assert event["dtstart"].dt == datetime(2026, 11, 27, 10, 0, tzinfo=LOS_ANGELES)  # Devi's zone
    assert event["dtend"].dt - event["dtstart"].dt == timedelta(minutes=45)
    attendees = event["attendee"] if isinstance(event["attendee"], list) else [event["attendee"]]
    assert [str(a) for a in attendees] == ["mailto:carol@lumenlabs.example", "mailto:priya.shah@orchid.example"]
    assert attendees[0].params["CN"] == "Carol Diaz"
    assert str(event["organizer"]) == "mailto:devi@lumenlabs.example"
    assert "Devi Rao (devi)" in str(event["description"]) and "meet carol and Priya at 10" in str(event["description"])
    assert not event.walk("VALARM")
    after = effect.changes[0].after or {}
    assert after["attendees"] == ["carol", "priya.shah@orchid.example"]
    assert after["start"] == "2026-11-27T10:00:00-08:00" and after["end"] == "2026-11-27T10:45:00-08:00"
    # An explicit offset is the same instant, shown in the organizer's zone.
    calendar.execute("schedule_meeting", {**args, "start": "2026-11-27T18:00:00+00:00"}, key="sk_meet2", origin=origin)
    starts = sorted(e["dtstart"].dt for e in server_events(radicale, calendar_path))
    assert starts == [datetime(2026, 11, 27, 10, 0, tzinfo=LOS_ANGELES)] * 2
    calendar.close()


def test_a_retried_key_leaves_exactly_one_event(radicale: str, calendar_path: str, directory: Directory) -> None:
    args = {"at": "2026-11-27T09:00:00", "text": "call Priya"}
    first = connect(radicale, directory, calendar=calendar_path)
    effect = first.execute("remind", args, key="sk_retry", origin=ORIGIN)
    assert first.execute("remind", args, key="sk_retry", origin=ORIGIN) == effect
    second = connect(radicale, directory, calendar=calendar_path)  # another process, say, after a restart
    assert second.execute("remind", args, key="sk_retry", origin=ORIGIN) == effect
    assert len(server_events(radicale, calendar_path)) == 1
    with pytest.raises(InvalidArguments, match="was used for 'remind'"):
        second.execute("schedule_meeting", {"attendees": ["carol"], "start": "2026-11-27T10:00", "title": "x"},
                       key="sk_retry", origin=ORIGIN)
    assert len(server_events(radicale, calendar_path)) == 1
    first.close()
    second.close()


def test_lookup_finds_the_event_by_its_key_after_the_fact(
    radicale: str, calendar_path: str, directory: Directory
) -> None:
    writer = connect(radicale, directory, calendar=calendar_path)
    effect = writer.execute("remind", {"at": "2026-11-27T09:00", "text": "call Priya"}, key="sk_look", origin=ORIGIN)
    writer.close()
    reader = connect(radicale, directory, calendar=calendar_path)
    assert reader.guarantee.can_lookup
    assert reader.lookup("sk_look") == effect
    assert reader.lookup("sk_never_ran") is None
    record = reader.get("Event", effect.result["uid"])
    assert record is not None and record.title == "call Priya" and record.attrs["kind"] == "reminder"
    assert [r.id for r in reader.search("Event", "call Priya")] == [effect.result["uid"]]
    assert reader.search("Event", "nothing like it") == []
    reader.close()


def test_undo_deletes_the_event_once(radicale: str, calendar_path: str, directory: Directory) -> None:
    calendar = connect(radicale, directory, calendar=calendar_path)
    kept = calendar.execute("remind", {"at": "2026-11-27T09:00", "text": "keep"}, key="sk_keep", origin=ORIGIN)
    effect = calendar.execute("schedule_meeting", {"attendees": ["carol"], "start": "2026-11-27T10:00",
                                                   "title": "Orchid"}, key="sk_undo", origin=ORIGIN)
    assert len(server_events(radicale, calendar_path)) == 2
    undone = calendar.compensate(effect, key="sk_undo:undo")
    assert [str(e["uid"]) for e in server_events(radicale, calendar_path)] == [kept.result["uid"]]
    assert undone.changes[0].after is None and undone.changes[0].before == effect.changes[0].after
    assert undone.result["undoes"] == "sk_undo"
    assert calendar.compensate(effect, key="sk_undo:undo") == undone  # again: nothing more to delete
    assert calendar.lookup("sk_undo") is None
    assert len(server_events(radicale, calendar_path)) == 1
    calendar.close()


def test_bad_requests_are_refused_before_anything_is_written(
    radicale: str, calendar_path: str, directory: Directory
) -> None:
    calendar = connect(radicale, directory, calendar=calendar_path)
    with pytest.raises(UnknownUser):
        calendar.execute("schedule_meeting", {"attendees": ["nobody"], "start": "2026-11-27T10:00", "title": "x"},
                         key="sk_bad1", origin=ORIGIN)
    with pytest.raises(InvalidArguments, match="not a valid email"):
        calendar.execute("schedule_meeting", {"attendees": ["bad@address"], "start": "2026-11-27T10:00",
                                              "title": "x"}, key="sk_bad2", origin=ORIGIN)
    with pytest.raises(InvalidArguments, match="needs the person"):
        calendar.execute("remind", {"at": "2026-11-27T09:00", "text": "x"}, key="sk_bad3", origin=None)
    with pytest.raises(InvalidArguments, match="duration"):
        calendar.execute("schedule_meeting", {"attendees": ["carol"], "start": "2026-11-27T10:00", "title": "x",
                                              "duration": 0}, key="sk_bad4", origin=ORIGIN)
    with pytest.raises(InvalidArguments, match="no operation"):
        calendar.execute("cancel", {}, key="sk_bad5", origin=ORIGIN)
    assert server_events(radicale, calendar_path) == []
    calendar.close()


@pytest.mark.parametrize(("settings", "message"), [
    ({"url": None}, "needs url"),
    ({"url": "ftp://127.0.0.1/"}, "http:// or https://"),
    ({"url": "http://sayso:pw@127.0.0.1/"}, "no credentials in url"),
    ({"url": "http://calendar.example.com/"}, "plain http"),
    ({"colour": "blue"}, "unknown caldav setting"),
    ({"timezone": "Mars/Olympus"}, "unknown time zone"),
    ({"timeout": 0}, "timeout"),
    ({"username": None}, "password_secret needs a username"),
    ({"password_secret": "not_set"}, "'not_set' is not set"),
], ids=["no-url", "scheme", "credentials-in-url", "password-over-http", "unknown-key", "timezone", "timeout",
        "no-username", "missing-secret"])
def test_bad_settings_are_configuration_errors(
    radicale: str, directory: Directory, settings: dict[str, Any], message: str
) -> None:
    base: dict[str, Any] = {"kind": "caldav", "url": radicale, "username": USER, "password_secret": "cal_pw"}
    chosen = {k: v for k, v in {**base, **settings}.items() if v is not None}
    context = SystemContext(Path("."), directory, {"cal_pw": PASSWORD})
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        registry.create("calendar", chosen, context)


def test_an_unknown_calendar_name_is_a_configuration_error(radicale: str, calendar_path: str,
                                                           directory: Directory) -> None:
    calendar = connect(radicale, directory, calendar="No such calendar")
    with pytest.raises(ConfigurationError, match="no calendar named 'No such calendar'"):
        calendar.execute("remind", {"at": "2026-11-27T09:00", "text": "x"}, key="sk_nocal", origin=ORIGIN)
    calendar.close()


def test_server_failures_are_connector_errors_without_the_password(
    radicale: str, calendar_path: str, directory: Directory
) -> None:
    unreachable = connect(f"http://127.0.0.1:{free_port()}/", directory, calendar=calendar_path, timeout=5)
    with pytest.raises(ConnectorError) as caught:
        unreachable.execute("remind", {"at": "2026-11-27T09:00", "text": "x"}, key="sk_down", origin=ORIGIN)
    assert PASSWORD not in str(caught.value) and "127.0.0.1" in str(caught.value)
    assert PASSWORD not in repr(unreachable)
    wrong = "Wrong-pw-51x"
    context = SystemContext(Path("."), directory, {"cal_pw": wrong})
    refused = registry.create("calendar", {"kind": "caldav", "url": radicale, "username": USER,
                                           "password_secret": "cal_pw", "calendar": calendar_path}, context)
    with pytest.raises(ConnectorError, match="refused user 'sayso'") as caught:
        refused.lookup("sk_any")
    assert wrong not in str(caught.value) and PASSWORD not in str(caught.value)
    assert server_events(radicale, calendar_path) == []


def switch_calendar(root: Path, radicale: str, path: str) -> None:
    """The demo workspace's calendar, moved to CalDAV by editing sayso.toml alone."""
    switch_system(root, "calendar", f'kind = "caldav"\nurl = "{radicale}"\nusername = "{USER}"\n'
                  f'password_secret = "calendar_password"\ncalendar = "{path}"\n',
                  {"calendar_password": "SAYSO_TEST_CALDAV_PASSWORD"})


def test_crash_after_the_event_then_recover_leaves_one_event(
    demo_root: Path, radicale: str, calendar_path: str
) -> None:
    switch_calendar(demo_root, radicale, calendar_path)
    env = {"SAYSO_TEST_CALDAV_PASSWORD": PASSWORD}
    assert sayso(demo_root, "check", env=env).returncode == 0
    step = crash_then_recover(demo_root, "alice", "calendar.remind", {"at": "2026-11-27T09:00", "text": "call Priya"},
                              env, lambda: len(server_events(radicale, calendar_path)), secret=PASSWORD)
    (event,) = server_events(radicale, calendar_path)
    assert step["effect"]["result"]["uid"] == str(event["uid"])
    assert "Alice Moreno (alice)" in str(event["description"])
    assert event["dtstart"].dt == datetime(2026, 11, 27, 9, 0, tzinfo=NEW_YORK)

    undone = sayso(demo_root, "undo", "--user", "alice", "--now", NOW, env=env)
    assert undone.returncode == 0, undone.stderr
    assert server_events(radicale, calendar_path) == []
    audit = sayso(demo_root, "audit", "list", "--json", env=env).stdout
    assert '"calendar.remind"' in audit and PASSWORD not in audit
