"""Several server processes on one workspace: ``sayso serve --workers N``, and separate ``sayso serve``
processes. What they share (idempotency keys, rate limits, finished turns for event streams, plan leases)
is tested on real processes on loopback; effects are counted in the demo chat system's own file."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("fastapi", reason="the HTTP service needs its extra: pip install 'sayso[serve]'")
pytest.importorskip("uvicorn", reason="the HTTP service needs its extra: pip install 'sayso[serve]'")

from sayso import Clock, Workspace  # noqa: E402
from sayso.clock import parse_time  # noqa: E402
from sayso.errors import Unauthorized  # noqa: E402
from sayso.serve import auth  # noqa: E402
from sayso.serve.auth import Tokens  # noqa: E402
from sayso.serve.limits import Buckets  # noqa: E402

from .conftest import NOW, sayso  # noqa: E402
from .servers import free_port  # noqa: E402

USERS = ("alice", "bob")


@dataclass
class Served:
    """One ``sayso serve`` child process."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def serve(root: Path, *extra: str, name: str = "server", env: dict[str, str] | None = None) -> Served:
    port = free_port()
    log = root.parent / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "sayso", "serve", "--workspace", str(root), "--port", str(port), "--now", NOW,
             *extra], stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    served = Served(process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited ({process.returncode}): {log.read_text()}")
        try:
            if httpx.get(f"{served.url}/healthz", timeout=1).status_code == 200:
                return served
        except httpx.TransportError:
            time.sleep(0.1)
    served.stop()
    raise AssertionError(f"the server did not start: {log.read_text()}")


def tokens_for(root: Path) -> dict[str, str]:
    ws = Workspace.load(root)
    try:
        tokens = Tokens(ws.store, Clock(parse_time(NOW, "UTC")))
        return {user: tokens.create(user)[1] for user in USERS}
    finally:
        ws.close()


def client(url: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def chat_messages(root: Path) -> int:
    with sqlite3.connect(root / "systems" / "chat.db") as conn:
        return int(conn.execute("select count(*) from messages").fetchone()[0])


def audit(root: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(root / "state.db") as conn:
        rows = conn.execute("select event, status, turn, detail from audit order by seq").fetchall()
    return [{"event": e, "status": s, "turn": t, "detail": json.loads(d)} for e, s, t, d in rows]


@pytest.fixture
def pair(sqlite_root: Path) -> Iterator[tuple[Served, Served, dict[str, str]]]:
    """Two separate ``sayso serve`` processes on one workspace."""
    tokens = tokens_for(sqlite_root)
    first = serve(sqlite_root, name="a")
    try:
        second = serve(sqlite_root, name="b")
        try:
            yield first, second, tokens
        finally:
            second.stop()
    finally:
        first.stop()


def test_an_idempotency_key_retried_against_another_process_runs_once(
        pair: tuple[Served, Served, dict[str, str]], sqlite_root: Path) -> None:
    a, b, tokens = pair
    send = {"args": {"to": "carol", "text": "one and only"}}
    with client(a.url, tokens["alice"]) as on_a, client(b.url, tokens["alice"]) as on_b:
        first = on_a.post("/v1/actions/chat.send", json=send, headers={"Idempotency-Key": "k-1"})
        again = on_b.post("/v1/actions/chat.send", json=send, headers={"Idempotency-Key": "k-1"})
        assert first.status_code == 200 and first.json()["status"] == "executed"
        assert again.json() == first.json() and again.headers.get("idempotent-replay") == "true"
        assert chat_messages(sqlite_root) == 1

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
    assert chat_messages(sqlite_root) == 2


def test_the_rate_limit_is_one_bucket_across_processes(sqlite_root: Path) -> None:
    toml = sqlite_root / "sayso.toml"
    toml.write_text(toml.read_text() + "\n[serve]\nrate_per_minute = 60\n")  # a burst of 10, then 1 a second
    tokens = tokens_for(sqlite_root)
    a = serve(sqlite_root, name="a")
    try:
        b = serve(sqlite_root, name="b")
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
    assert [stage for stage, _ in events] == ["done"]  # the stages before it stay with the process that ran it
    turn = events[0][1]["turn"]
    assert turn["turn"] == said["turn"] and turn["conversation"] == conversation
    assert turn["status"] == "answered" and turn["reply"] == said["reply"]


def test_workers_share_one_socket_and_every_turn_is_audited_once(sqlite_root: Path) -> None:
    tokens = tokens_for(sqlite_root)
    crashed = sayso(sqlite_root, "do", "--user", "alice", "--action", "chat.send", "--args",
                    json.dumps({"to": "carol", "text": "sent before the crash"}), "--now", NOW,
                    env={"SAYSO_FAULT": "crash-after-effect"})
    assert crashed.returncode == 137 and chat_messages(sqlite_root) == 1
    server = serve(sqlite_root, "--workers", "2", env={"SAYSO_LOG": "info"})
    try:
        deadline = time.monotonic() + 60
        while server.log.read_text().count("worker process") < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert server.log.read_text().count("worker process") == 2, server.log.read_text()
        workers = [p for p in Path("/proc").glob("[0-9]*/stat")
                   if _parent(p) == server.process.pid and "spawn_main" in _command(p.parent)]
        assert len(workers) == 2
        # both workers recovered at start; one took the crashed plan, and looked its key up: no second message
        assert chat_messages(sqlite_root) == 1
        recovered = [r for r in audit(sqlite_root) if r["detail"].get("recovered") is True]
        assert [(r["event"], r["status"]) for r in recovered] == [("call", "ok"), ("turn", "executed")]

        results: list[dict[str, Any]] = []

        def talk(user: str, n: int) -> None:
            for i in range(5):  # a new connection each time, so the kernel spreads them over the workers
                with client(server.url, tokens[user]) as fresh:
                    conversation = fresh.post("/v1/conversations").json()["id"]
                    results.append(fresh.post(f"/v1/conversations/{conversation}/messages",
                                              json={"text": f"tell carol worker test {n}-{i}"}).json())

        talkers = [threading.Thread(target=talk, args=(USERS[n % 2], n)) for n in range(4)]
        for talker in talkers:
            talker.start()
        for talker in talkers:
            talker.join(60)
        keyed: list[httpx.Response] = []

        def keyed_send() -> None:
            with client(server.url, tokens["bob"]) as fresh:
                keyed.append(fresh.post("/v1/actions/chat.send", json={"args": {"to": "carol", "text": "once"}},
                                        headers={"Idempotency-Key": "w-1"}))

        senders = [threading.Thread(target=keyed_send) for _ in range(6)]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join(30)
    finally:
        server.stop()
    assert server.process.returncode == 0
    assert len(results) == 20 and {r["status"] for r in results} == {"executed"}
    assert {r.status_code for r in keyed} <= {200, 409} and any(r.status_code == 200 for r in keyed)
    assert chat_messages(sqlite_root) == 1 + 20 + 1
    records = audit(sqlite_root)
    for result in results:  # each turn: received, then exactly one closing record, in one chain
        mine = [r for r in records if r["turn"] == result["turn"] and r["event"] == "turn"]
        assert [r["status"] for r in mine] == ["received", "executed"]
    verified = sayso(sqlite_root, "audit", "verify")
    assert verified.returncode == 0 and "intact" in verified.stdout


def _parent(stat: Path) -> int:
    try:
        return int(stat.read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def _command(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


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
        monkeypatch.setattr(auth, "CACHE_SECONDS", 0.05)
        assert elsewhere.user_for(other) == "bob"
        here.revoke(other_id)  # revoked by another process: once what it remembers is older than CACHE_SECONDS
        time.sleep(0.1)
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


def test_buckets_in_one_file_are_shared(tmp_path: Path) -> None:
    first, second = Buckets(60, tmp_path / "limits"), Buckets(60, tmp_path / "limits")
    assert first.shared and second.shared
    for bucket in (first, second) * 5:  # ten: the burst
        bucket.take("alice")
    with pytest.raises(Exception, match="too many requests"):
        second.take("alice")
    first.take("bob")
    alone = Buckets(60, tmp_path / "missing" / "limits")  # cannot be created: this process only
    assert not alone.shared
    for _ in range(10):
        alone.take("alice")
    for bucket in (first, second, alone):
        bucket.close()


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
