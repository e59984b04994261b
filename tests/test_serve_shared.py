"""What the ``sayso serve`` processes share beyond the database rows: a token revocation reaches every process
on the host at once (the epoch file) and every host within ``CACHE_SECONDS`` (the database's epoch); rate limits
are one bucket per person on the host (SQLite) or across hosts (PostgreSQL). Real processes where it matters: a
``sayso serve --workers 2`` and the real ``sayso token revoke``."""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytest.importorskip("fastapi", reason="the HTTP service needs its extra: pip install 'sayso[serve]'")
pytest.importorskip("uvicorn", reason="the HTTP service needs its extra: pip install 'sayso[serve]'")

from sqlalchemy import text, update  # noqa: E402

from sayso import Clock, Workspace  # noqa: E402
from sayso.clock import parse_time  # noqa: E402
from sayso.errors import RateLimited, Unauthorized  # noqa: E402
from sayso.serve import auth  # noqa: E402
from sayso.serve.auth import EPOCH_FILE, Tokens  # noqa: E402
from sayso.serve.limits import Buckets  # noqa: E402
from sayso.store import PostgresStore, Store, schema  # noqa: E402

from .conftest import NOW, PG_URL, _create_pg_database, _drop_pg_database, sayso  # noqa: E402
from .test_serve_workers import client, free_port, serve  # noqa: E402

NO_PG = "PostgreSQL not configured: set SAYSO_TEST_DATABASE_URL (.ci/run does)"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped afterwards."""
    if not PG_URL:
        pytest.skip(NO_PG)
    url = _create_pg_database()
    try:
        yield url
    finally:
        _drop_pg_database(url)


@pytest.fixture
def two_hosts(pg_url: str) -> Iterator[tuple[Store, Store]]:
    """Two store handles on one PostgreSQL database, as two hosts would have."""
    first, second = Store.open(pg_url), Store.open(pg_url)
    try:
        yield first, second
    finally:
        first.dispose()
        second.dispose()


# --- revocation -----------------------------------------------------------------------------------------------


def test_a_revocation_reaches_every_process_of_the_host_at_once_and_other_hosts_by_the_database(
        sqlite_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth, "CACHE_SECONDS", 3600.0)  # the database's epoch is read once: only the file can tell
    ws = Workspace.load(sqlite_root)
    clock = Clock(parse_time(NOW, "UTC"))
    here = Tokens(ws.store, clock, shared=sqlite_root / EPOCH_FILE)
    beside = Tokens(ws.store, clock, shared=sqlite_root / EPOCH_FILE)  # another process on this host
    away = Tokens(ws.store, clock, shared=sqlite_root.parent / "elsewhere")  # a process on another host
    try:
        token_id, token = here.create("alice")
        _, other = here.create("bob")
        for tokens in (here, beside, away):
            assert tokens.user_for(token) == "alice" and tokens.user_for(other) == "bob"
        assert here.revoke(token_id)
        for tokens in (here, beside):
            with pytest.raises(Unauthorized):
                tokens.user_for(token)
            assert tokens.user_for(other) == "bob"  # only the revoked token is refused
        assert away.user_for(token) == "alice"  # another host: until it next reads the database's epoch
        monkeypatch.setattr(auth, "CACHE_SECONDS", 0.0)
        with pytest.raises(Unauthorized):
            away.user_for(token)
        assert away.user_for(other) == "bob"
        assert not here.revoke("tok_missing")
    finally:
        for tokens in (here, beside, away):
            tokens.close()
        ws.close()


def test_without_the_file_a_revocation_still_reaches_the_host_through_the_database(
        sqlite_root: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(auth, "CACHE_SECONDS", 3600.0)
    ws = Workspace.load(sqlite_root)
    clock = Clock(parse_time(NOW, "UTC"))
    with caplog.at_level(logging.WARNING, logger="sayso"):
        blind = Tokens(ws.store, clock, shared=sqlite_root / "missing" / EPOCH_FILE)  # cannot be made
    assert "within 3600 s, not at once" in caplog.text
    server = Tokens(ws.store, clock, shared=sqlite_root / EPOCH_FILE)
    try:
        token_id, token = server.create("alice")
        assert server.user_for(token) == "alice"
        assert blind.revoke(token_id)
        assert server.user_for(token) == "alice"  # the revoker could not raise the host's epoch...
        monkeypatch.setattr(auth, "CACHE_SECONDS", 0.0)
        with pytest.raises(Unauthorized):  # ...the database's epoch tells, at the next reading of it
            server.user_for(token)
    finally:
        server.close()
        ws.close()


def _hook(folder: Path) -> dict[str, str]:
    """An environment whose Python processes (the server and the workers it spawns) read the database's epoch
    only once an hour: then only the host's epoch file can tell them of a revocation at once."""
    folder.mkdir()
    (folder / "sitecustomize.py").write_text("import sayso.serve.auth\nsayso.serve.auth.CACHE_SECONDS = 3600.0\n")
    return {"PYTHONPATH": os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH", "")) if p)}


def _answering_process(connection: httpx.Response, server_port: int) -> int:
    """The id of the process holding the server's end of the connection ``connection`` came on."""
    client_port = connection.extensions["network_stream"].get_extra_info("client_addr")[1]
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, remote = (int(address.rsplit(":", 1)[1], 16) for address in fields[1:3])
            if (local, remote) == (server_port, client_port):
                inodes.add(f"socket:[{fields[9]}]")
    for fd in Path("/proc").glob("[0-9]*/fd/*"):
        try:
            if os.readlink(fd) in inodes:
                return int(fd.parent.parent.name)
        except OSError:
            continue
    raise AssertionError(f"no process holds the server's end of port {client_port}")


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="finds which worker answers through /proc (Linux)")
def test_a_token_revoked_on_the_command_line_is_refused_by_every_worker_at_once(tmp_path: Path,
                                                                                sqlite_root: Path) -> None:
    ws = Workspace.load(sqlite_root)
    try:
        tokens = Tokens(ws.store, Clock(parse_time(NOW, "UTC")))
        token_id, token = tokens.create("alice")
        _, other = tokens.create("bob")
    finally:
        ws.close()
    server = serve(sqlite_root, "--workers", "2", env={**_hook(tmp_path / "hook"), "SAYSO_LOG": "info"})
    kept: dict[str, dict[int, httpx.Client]] = {"alice": {}, "bob": {}}  # person -> worker -> a kept-alive client
    try:
        port = int(server.url.rsplit(":", 1)[1])
        for person, bearer in (("alice", token), ("bob", other)):
            for _ in range(40):  # new connections until the person has one on each worker; each stays with its worker
                fresh = client(server.url, bearer)
                answer = fresh.get("/v1/me")
                assert answer.status_code == 200 and answer.json()["id"] == person
                worker = _answering_process(answer, port)
                if worker in kept[person]:
                    fresh.close()
                else:
                    kept[person][worker] = fresh
                if len(kept[person]) == 2:
                    break
        assert kept["alice"].keys() == kept["bob"].keys() and len(kept["alice"]) == 2, "one worker got every connection"
        assert server.process.pid not in kept["alice"]
        for alice in kept["alice"].values():  # remembered, and trusted for the hour the hook allows
            assert alice.get("/v1/me").json()["id"] == "alice"

        revoked = sayso(sqlite_root, "token", "revoke", token_id)
        assert revoked.returncode == 0, revoked.stderr

        for worker, alice in kept["alice"].items():
            for _ in range(3):
                refused = alice.get("/v1/me")
                assert refused.status_code == 401, (worker, refused.text)
                assert refused.json()["error"]["code"] == "unauthorized"
            assert _answering_process(refused, port) == worker
            assert kept["bob"][worker].get("/v1/me").json()["id"] == "bob"  # only the revoked token is refused
        for _ in range(6):  # new connections too, wherever the kernel puts them
            with client(server.url, token) as fresh:
                assert fresh.get("/v1/me").status_code == 401
    finally:
        for workers in kept.values():
            for each in workers.values():
                each.close()
        server.stop()
    assert server.process.returncode == 0


def test_a_revocation_on_one_host_is_refused_on_another_within_the_bound(two_hosts: tuple[Store, Store],
                                                                         tmp_path: Path) -> None:
    first, second = two_hosts
    clock = Clock(parse_time(NOW, "UTC"))
    here = Tokens(first, clock, shared=tmp_path / "host-a")
    there = Tokens(second, clock, shared=tmp_path / "host-b")
    try:
        token_id, token = here.create("alice")
        _, other = here.create("bob")
        assert there.user_for(token) == "alice" and there.user_for(other) == "bob"
        assert here.revoke(token_id)
        with pytest.raises(Unauthorized):
            here.user_for(token)
        deadline = time.monotonic() + auth.CACHE_SECONDS + 10  # generous: a loaded machine may be slow
        while True:
            try:
                there.user_for(token)
            except Unauthorized:
                break
            assert time.monotonic() < deadline, "the other host still trusts a revoked token"
            time.sleep(0.05)
        assert there.user_for(other) == "bob"
    finally:
        here.close()
        there.close()


# --- rate limits ----------------------------------------------------------------------------------------------


def test_hosts_on_one_postgresql_draw_from_one_bucket(two_hosts: tuple[Store, Store], tmp_path: Path) -> None:
    first, second = two_hosts
    a = Buckets(60, tmp_path / "host-a", store=first)  # a burst of 10, then 1 a second
    b = Buckets(60, tmp_path / "host-b", store=second)
    who, someone = f"alice-{uuid.uuid4().hex[:6]}", f"bob-{uuid.uuid4().hex[:6]}"
    try:
        assert a.shared and b.shared
        for bucket in (a, b) * 5:
            bucket.take(who)
        with pytest.raises(RateLimited):
            b.take(who)  # the 11th, across both hosts
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
    finally:
        a.close()
        b.close()


def test_when_the_database_fails_the_host_file_limits_and_the_log_says_so_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("psycopg", reason="needs the PostgreSQL driver: pip install 'sayso[postgres]'")
    gone = PostgresStore(f"postgresql://postgres@127.0.0.1:{free_port()}/nothing")  # nothing listens there
    down = Buckets(60, tmp_path / "limits", store=gone)
    beside = Buckets(60, tmp_path / "limits")  # the host's file, as a SQLite workspace keeps it
    try:
        with caplog.at_level(logging.WARNING, logger="sayso.serve"):
            for bucket in (down, beside) * 5:
                bucket.take("alice")
            with pytest.raises(RateLimited):  # still limited: the host's file counted all ten
                down.take("alice")
        warned = [r for r in caplog.records if "counted on this host" in r.getMessage()]
        assert len(warned) == 1
    finally:
        down.close()
        beside.close()
        gone.dispose()


def test_a_sqlite_workspace_keeps_its_buckets_in_the_host_file(sqlite_root: Path) -> None:
    ws = Workspace.load(sqlite_root)
    try:
        buckets = Buckets(60, sqlite_root / "limits", store=ws.store)
        beside = Buckets(60, sqlite_root / "limits")
        for bucket in (buckets, beside) * 5:
            bucket.take("alice")
        with pytest.raises(RateLimited):
            buckets.take("alice")
        with ws.store.read() as conn:
            assert conn.execute(schema.rate_buckets.select()).first() is None
        buckets.close()
        beside.close()
    finally:
        ws.close()

