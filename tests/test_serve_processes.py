"""Several ``sayso serve`` processes on one workspace share only the state database: idempotency keys, rate
limits (PostgreSQL), turns' progress for event streams, plan leases and the token revocation epoch. Tested on real
processes on loopback (PostgreSQL where several serve at once); effects are counted in the demo chat system's own
file."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("fastapi", reason="the HTTP service needs its extra: pip install 'sayso[serve]'")
pytest.importorskip("uvicorn", reason="the HTTP service needs its extra: pip install 'sayso[serve]'")

from sqlalchemy import select, text, update  # noqa: E402

from sayso import Clock, Workspace  # noqa: E402
from sayso.clock import parse_time  # noqa: E402
from sayso.errors import RateLimited, Unauthorized  # noqa: E402
from sayso.serve import auth  # noqa: E402
from sayso.serve.auth import Tokens  # noqa: E402
from sayso.serve.limits import Buckets  # noqa: E402
from sayso.store import PostgresStore, Store, schema  # noqa: E402

from .conftest import NOW, cli, sayso  # noqa: E402
from .processes import (  # noqa: E402
    USERS,
    Served,
    chat_messages,
    client,
    pg_database,
    pg_workspace,
    serve,
    tokens_for,
)
from .servers import free_port  # noqa: E402

STARTED = re.compile(r"process \d+ ready")


@pytest.fixture
def pg_root(tmp_path: Path) -> Iterator[Path]:
    yield from pg_workspace(tmp_path / "ws")


@pytest.fixture
def pair(pg_root: Path) -> Iterator[tuple[Served, Served, dict[str, str]]]:
    """Two separate ``sayso serve`` processes on one workspace on PostgreSQL."""
    tokens = tokens_for(pg_root)
    first = serve(pg_root, name="a")
    try:
        second = serve(pg_root, name="b")
        try:
            yield first, second, tokens
        finally:
            second.stop()
    finally:
        first.stop()


def audit(root: Path) -> list[dict[str, Any]]:
    ws = Workspace.load(root)
    try:
        a = schema.audit
        with ws.store.read() as conn:
            rows = conn.execute(select(a.c.event, a.c.status, a.c.turn, a.c.detail).order_by(a.c.seq)).all()
    finally:
        ws.close()
    return [{"event": e, "status": s, "turn": t, "detail": d if isinstance(d, dict) else json.loads(d)}
            for e, s, t, d in rows]


def test_an_idempotency_key_retried_against_another_process_runs_once(
        pair: tuple[Served, Served, dict[str, str]], pg_root: Path) -> None:
    a, b, tokens = pair
    send = {"args": {"to": "carol", "text": "one and only"}}
    with client(a.url, tokens["alice"]) as on_a, client(b.url, tokens["alice"]) as on_b:
        first = on_a.post("/v1/actions/chat.send", json=send, headers={"Idempotency-Key": "k-1"})
        again = on_b.post("/v1/actions/chat.send", json=send, headers={"Idempotency-Key": "k-1"})
        assert first.status_code == 200 and first.json()["status"] == "executed"
        assert again.json() == first.json() and again.headers.get("idempotent-replay") == "true"
        assert chat_messages(pg_root) == 1

        answers: list[httpx.Response] = []

        def post(on: httpx.Client) -> None:
            answers.append(on.post("/v1/actions/chat.send", json={"args": {"to": "carol", "text": "raced"}},
                                   headers={"Idempotency-Key": "k-2"}))

        with client(a.url, tokens["alice"]) as a2, client(b.url, tokens["alice"]) as b2:
            racers = [threading.Thread(target=post, args=(on,)) for on in (on_a, on_b, a2, b2)]
            for racer in racers:
                racer.start()
            for racer in racers:
                racer.join(30)
    assert len(answers) == 4 and {r.status_code for r in answers} <= {200, 409}
    done = [r.json() for r in answers if r.status_code == 200]
    assert done and all(body == done[0] for body in done)
    assert chat_messages(pg_root) == 2


def test_the_rate_limit_is_one_bucket_across_processes(pg_root: Path) -> None:
    toml = pg_root / "sayso.toml"
    toml.write_text(toml.read_text() + "\n[serve]\nrate_per_minute = 60\n")  # a burst of 10, then 1 a second
    tokens = tokens_for(pg_root)
    a = serve(pg_root, name="a")
    try:
        b = serve(pg_root, name="b")
        try:
            with client(a.url, tokens["alice"]) as on_a, client(b.url, tokens["alice"]) as on_b:
                codes = [on.get("/v1/me").status_code for _ in range(7) for on in (on_a, on_b)]
                assert codes[0] == 200 and 429 in codes  # 14 requests, 7 to each: only one bucket empties
                assert codes.count(200) <= 12
                with client(b.url, tokens["bob"]) as bob:
                    assert bob.get("/v1/me").status_code == 200  # per person
        finally:
            b.stop()
    finally:
        a.stop()


def test_a_turn_run_by_one_process_reaches_a_listener_on_another(
        pair: tuple[Served, Served, dict[str, str]]) -> None:
    a, b, tokens = pair
    with client(a.url, tokens["alice"]) as on_a:
        conversation = on_a.post("/v1/conversations").json()["id"]
        events: list[tuple[str, dict[str, Any]]] = []
        ready = threading.Event()

        def listen() -> None:
            with client(b.url, tokens["alice"]) as on_b, on_b.stream(
                    "GET", f"/v1/conversations/{conversation}/events", params={"timeout": 20}) as stream:
                stage = ""
                for line in stream.iter_lines():
                    if line.startswith(": connected"):
                        ready.set()
                    elif line.startswith("event: "):
                        stage = line.removeprefix("event: ")
                    elif line.startswith("data: "):
                        events.append((stage, json.loads(line.removeprefix("data: "))))
                        if stage == "done":
                            return

        listener = threading.Thread(target=listen)
        listener.start()
        assert ready.wait(15)
        said = on_a.post(f"/v1/conversations/{conversation}/messages", json={"text": "show my open deals"}).json()
        listener.join(20)
    assert said["status"] == "answered"
    # the stages come through PostgreSQL's notifications (tests/test_scale.py counts them), the done at the latest
    # from the conversation's messages
    assert [stage for stage, _ in events][-1:] == ["done"]
    assert all(data["turn"]["turn"] == said["turn"] for _, data in events)
    turn = events[-1][1]["turn"]
    assert turn["turn"] == said["turn"] and turn["conversation"] == conversation
    assert turn["status"] == "answered" and turn["reply"] == said["reply"]


def test_uvicorns_workers_recover_a_crashed_plan_once_and_audit_every_turn_once(pg_root: Path) -> None:
    tokens = tokens_for(pg_root)
    crashed = sayso(pg_root, "do", "--user", "alice", "--action", "chat.send", "--args",
                    json.dumps({"to": "carol", "text": "sent before the crash"}), "--now", NOW,
                    env={"SAYSO_FAULT": "crash-after-effect"})
    assert crashed.returncode == 137 and chat_messages(pg_root) == 1
    server = serve(pg_root, "--workers", "2", env={"SAYSO_LOG": "info"})
    try:
        deadline = time.monotonic() + 60
        while len(STARTED.findall(server.log.read_text())) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(STARTED.findall(server.log.read_text())) == 2, server.log.read_text()
        # both processes recovered at start; one took the crashed plan, and looked its key up: no second message
        assert chat_messages(pg_root) == 1
        recovered = [r for r in audit(pg_root) if r["detail"].get("recovered") is True]
        assert [(r["event"], r["status"]) for r in recovered] == [("call", "ok"), ("turn", "executed")]

        results: list[dict[str, Any]] = []

        def talk(user: str, n: int) -> None:
            for i in range(5):  # a new connection each time, so the kernel spreads them over the processes
                with client(server.url, tokens[user]) as fresh:
                    conversation = fresh.post("/v1/conversations").json()["id"]
                    results.append(fresh.post(f"/v1/conversations/{conversation}/messages",
                                              json={"text": f"tell carol worker test {n}-{i}"}).json())

        talkers = [threading.Thread(target=talk, args=(USERS[n % 2], n)) for n in range(4)]
        for talker in talkers:
            talker.start()
        for talker in talkers:
            talker.join(60)
    finally:
        server.stop()
    assert server.process.returncode == 0
    assert len(results) == 20 and {r["status"] for r in results} == {"executed"}
    assert chat_messages(pg_root) == 1 + 20
    records = audit(pg_root)
    for result in results:  # each turn: received, then exactly one closing record, in one chain
        mine = [r for r in records if r["turn"] == result["turn"] and r["event"] == "turn"]
        assert [r["status"] for r in mine] == ["received", "executed"]
    verified = sayso(pg_root, "audit", "verify")
    assert verified.returncode == 0 and "intact" in verified.stdout


def test_several_processes_on_a_sqlite_workspace_are_refused_before_listening(sqlite_root: Path) -> None:
    result = cli("serve", "--workspace", str(sqlite_root), "--workers", "2", "--port", str(free_port()))
    assert result.exit_code != 0
    assert "several processes need the state database on PostgreSQL" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_cached_token_still_expires_and_revoking_clears_the_cache(sqlite_root: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    ws = Workspace.load(sqlite_root)
    try:
        clock = Clock(parse_time(NOW, "UTC"))
        here, elsewhere = Tokens(ws.store, clock), Tokens(ws.store, clock)  # elsewhere: another process
        token_id, token = here.create("alice", days=1)
        assert here.user_for(token) == "alice"
        here.revoke(token_id)
        with pytest.raises(Unauthorized):  # revoked in this process: at once
            here.user_for(token)
        other_id, other = here.create("bob", days=1)
        assert here.user_for(other) == "bob"
        monkeypatch.setattr(auth, "CACHE_SECONDS", 3600.0)
        assert elsewhere.user_for(other) == "bob"
        here.revoke(other_id)
        assert elsewhere.user_for(other) == "bob"  # another process: until it next reads the database's epoch
        monkeypatch.setattr(auth, "CACHE_SECONDS", 0.0)
        with pytest.raises(Unauthorized):
            elsewhere.user_for(other)
        monkeypatch.setattr(auth, "CACHE_SECONDS", 3600.0)
        _, late = here.create("alice", days=1)
        assert here.user_for(late) == "alice"
        clock.advance(timedelta(days=2))
        with pytest.raises(Unauthorized):  # remembered, but expired: expiry is checked on every request
            here.user_for(late)
    finally:
        ws.close()


def test_a_token_revoked_on_the_command_line_is_refused_by_running_processes(pg_root: Path) -> None:
    ws = Workspace.load(pg_root)
    try:
        tokens = Tokens(ws.store, Clock(parse_time(NOW, "UTC")))
        token_id, token = tokens.create("alice")
        _, other = tokens.create("bob")
    finally:
        ws.close()
    servers = [serve(pg_root, name=f"p{n}") for n in range(2)]
    try:
        for server in servers:  # remembered by each process
            with client(server.url, token) as alice:
                assert alice.get("/v1/me").json()["id"] == "alice"
        revoked = sayso(pg_root, "token", "revoke", token_id)
        assert revoked.returncode == 0, revoked.stderr
        deadline = time.monotonic() + auth.CACHE_SECONDS + 20  # the bound, and generous room for a loaded machine
        for server in servers:
            with client(server.url, token) as alice, client(server.url, other) as bob:
                while (refused := alice.get("/v1/me")).status_code == 200:
                    assert time.monotonic() < deadline, "a process still trusts a revoked token"
                    time.sleep(0.05)
                assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
                assert bob.get("/v1/me").json()["id"] == "bob"  # only the revoked token is refused
    finally:
        for server in servers:
            server.stop()


def test_event_streams_hold_no_worker_thread(sqlite_root: Path) -> None:
    tokens = tokens_for(sqlite_root)
    server = serve(sqlite_root, "--threads", "1")  # one request worked on at a time: a waiting stream must not hold it
    try:
        with client(server.url, tokens["alice"]) as alice:
            conversation = alice.post("/v1/conversations").json()["id"]
            streams = [client(server.url, tokens["alice"]) for _ in range(3)]
            opened = [s.stream("GET", f"/v1/conversations/{conversation}/events", params={"timeout": 30})
                      for s in streams]
            try:
                for stream in opened:
                    assert next(stream.__enter__().iter_lines()).startswith(": connected")
                said = alice.post(f"/v1/conversations/{conversation}/messages", json={"text": "show my open deals"})
                assert said.status_code == 200 and said.json()["status"] == "answered"
            finally:
                for stream, owner in zip(opened, streams, strict=True):
                    stream.__exit__(None, None, None)
                    owner.close()
    finally:
        server.stop()


# --- rate limits, by the Buckets themselves ----------------------------------------------------------------


@pytest.fixture
def two_hosts() -> Iterator[tuple[Store, Store]]:
    """Two store handles on one PostgreSQL database, as two processes (or hosts) have."""
    for url in pg_database():
        first, second = Store.open(url), Store.open(url)
        try:
            yield first, second
        finally:
            first.dispose()
            second.dispose()


def test_processes_on_one_postgresql_draw_from_one_bucket(two_hosts: tuple[Store, Store]) -> None:
    first, second = two_hosts
    a, b = Buckets(60, store=first), Buckets(60, store=second)  # a burst of 10, then 1 a second
    who, someone = f"alice-{uuid.uuid4().hex[:6]}", f"bob-{uuid.uuid4().hex[:6]}"
    assert a.shared and b.shared
    for bucket in (a, b) * 5:
        bucket.take(who)
    with pytest.raises(RateLimited):
        b.take(who)  # the 11th, across both
    with pytest.raises(RateLimited):
        a.take(who)
    a.take(someone)  # another person has a bucket of their own
    b.take(someone)
    with first.engine.begin() as conn:  # as though the last take were five seconds ago
        conn.execute(update(schema.rate_buckets).where(schema.rate_buckets.c.who == who)
                     .values(at=schema.rate_buckets.c.at - 5))
    b.take(who)  # refilled, by the database's clock
    with second.engine.connect() as conn:
        level = conn.execute(schema.rate_buckets.select().where(schema.rate_buckets.c.who == who)).one().level
    assert 4.0 <= level < 10.0
    with first.engine.connect() as conn:  # unlogged: a take writes no WAL and waits for no disk
        kind = conn.execute(text("select relpersistence from pg_class where relname = 'rate_buckets'")).scalar()
    assert kind == "u"


def test_when_the_database_fails_the_process_limits_and_the_log_says_so_once(
        caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("psycopg", reason="needs the PostgreSQL driver: pip install 'sayso[postgres]'")
    gone = PostgresStore(f"postgresql://postgres@127.0.0.1:{free_port()}/nothing")  # nothing listens there
    down = Buckets(60, store=gone)
    try:
        with caplog.at_level(logging.WARNING, logger="sayso.serve"):
            for _ in range(10):
                down.take("alice")
            with pytest.raises(RateLimited):  # still limited: this process counted all ten
                down.take("alice")
        warned = [r for r in caplog.records if "counted in this process" in r.getMessage()]
        assert len(warned) == 1
    finally:
        gone.dispose()


def test_a_sqlite_workspace_keeps_its_buckets_in_the_process(sqlite_root: Path) -> None:
    ws = Workspace.load(sqlite_root)
    try:
        buckets = Buckets(60, store=ws.store)
        assert not buckets.shared
        for _ in range(10):
            buckets.take("alice")
        with pytest.raises(RateLimited):
            buckets.take("alice")
        buckets.take("bob")
        with ws.store.read() as conn:
            assert conn.execute(schema.rate_buckets.select()).first() is None
    finally:
        ws.close()


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from pg_database()


def test_processes_starting_together_on_a_fresh_postgresql_create_the_schema_once(pg_url: str) -> None:
    stores: list[Store] = [PostgresStore(pg_url) for _ in range(4)]  # not migrated yet
    failures: list[BaseException] = []
    gate = threading.Barrier(len(stores))

    def migrate(store: Store) -> None:
        gate.wait()
        try:
            store.migrate()
        except BaseException as exc:  # noqa: BLE001 - collected, and the test shows it
            failures.append(exc)

    racers = [threading.Thread(target=migrate, args=(store,)) for store in stores]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(60)
    try:
        assert failures == []
        with stores[0].read() as conn:
            assert conn.execute(text("select count(*) from alembic_version")).scalar() == 1
    finally:
        for store in stores:
            store.dispose()
