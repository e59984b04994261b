"""Real ``sayso serve`` child processes on loopback for the tests that need several: start one, wait for it,
stop it (SIGTERM) or kill it; tokens for the demo people; effects counted in the demo chat system's own file."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from sayso import Clock, Workspace
from sayso.clock import parse_time
from sayso.serve.auth import Tokens

from .conftest import NOW, PG_URL, _create_pg_database, _drop_pg_database, make_demo
from .servers import free_port

USERS = ("alice", "bob")
NO_PG = "PostgreSQL not configured: set SAYSO_TEST_DATABASE_URL (.ci/run does)"


@dataclass
class Served:
    """One ``sayso serve`` child process."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path
    port: int

    def stop(self) -> None:
        """SIGTERM, as a process manager stops it: it finishes what it was doing and exits."""
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start(root: Path, *extra: str, name: str = "server", env: dict[str, str] | None = None,
          port: int | None = None) -> Served:
    """A ``sayso serve`` of ``root`` in a child process, without waiting for it."""
    port = port or free_port()
    log = root.parent / f"{name}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "sayso", "serve", "--workspace", str(root), "--port", str(port), "--now", NOW,
             *extra], stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    return Served(process, f"http://127.0.0.1:{port}", log, port)


def ready(served: Served, seconds: float = 60) -> Served:
    """Wait until ``served`` answers its readiness check (which asks the database)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if served.process.poll() is not None:
            raise AssertionError(f"the server exited ({served.process.returncode}): {served.log.read_text()}")
        try:
            if httpx.get(f"{served.url}/readyz", timeout=2).status_code == 200:
                return served
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    served.stop()
    raise AssertionError(f"the server did not start: {served.log.read_text()}")


def serve(root: Path, *extra: str, name: str = "server", env: dict[str, str] | None = None) -> Served:
    """A ``sayso serve`` of ``root``, ready."""
    return ready(start(root, *extra, name=name, env=env))


def tokens_for(root: Path, users: tuple[str, ...] = USERS) -> dict[str, str]:
    ws = Workspace.load(root)
    try:
        tokens = Tokens(ws.store, Clock(parse_time(NOW, "UTC")))
        return {user: tokens.create(user)[1] for user in users}
    finally:
        ws.close()


def client(url: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def chat_messages(root: Path) -> int:
    """Messages in the demo chat system: every executed ``chat.send`` is one, counted in the target system."""
    with sqlite3.connect(root / "systems" / "chat.db") as conn:
        return int(conn.execute("select count(*) from messages").fetchone()[0])


def pg_workspace(root: Path) -> Iterator[Path]:
    """A demo workspace at ``root`` whose state database is a fresh PostgreSQL one, dropped afterwards."""
    if not PG_URL:
        pytest.skip(NO_PG)
    _, url = make_demo(root, "postgresql")
    assert url is not None
    try:
        yield root
    finally:
        _drop_pg_database(url)


def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped afterwards."""
    if not PG_URL:
        pytest.skip(NO_PG)
    url = _create_pg_database()
    try:
        yield url
    finally:
        _drop_pg_database(url)
