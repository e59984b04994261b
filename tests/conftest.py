"""Shared fixtures: demo workspaces on SQLite and (when configured) PostgreSQL,
a CLI runner, and a switch that blocks any network call leaving this machine."""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from sayso import Clock, Pipeline, Workspace
from sayso.catalog import Catalog
from sayso.cli import app
from sayso.clock import parse_time

R = date(2026, 11, 25)
CLOCK_AHEAD_DAYS = os.environ.get("SAYSO_TEST_CLOCK_AHEAD_DAYS", "")
_CLOCK_AHEAD = Path(__file__).parent / "clock_ahead"
NOW = "2026-11-25T09:00"
PG_URL = os.environ.get("SAYSO_TEST_DATABASE_URL", "")



def pytest_configure(config: pytest.Config) -> None:
    """``SAYSO_TEST_CLOCK_AHEAD_DAYS=365 pytest`` runs the suite with the wall clock a year ahead, in this
    process and in every Python child (tests/clock_ahead/sitecustomize.py): no test may read today's date."""
    if CLOCK_AHEAD_DAYS:
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_CLOCK_AHEAD), os.environ.get("PYTHONPATH")]))
        sys.path.insert(0, str(_CLOCK_AHEAD))
        import sitecustomize  # noqa: F401  (moves this process's clock)


def pytest_report_header(config: pytest.Config) -> str | None:
    return f"wall clock moved {CLOCK_AHEAD_DAYS} days ahead" if CLOCK_AHEAD_DAYS else None


_real_connect = socket.socket.connect


def _guarded_connect(self: socket.socket, address: Any) -> Any:
    """Tests may talk to this machine only: live vendor calls fail loudly."""
    host = address[0] if isinstance(address, tuple) else None
    if host is not None:
        try:
            ip = ipaddress.ip_address(socket.gethostbyname(host))
        except (OSError, ValueError):
            ip = None
        if ip is None or not ip.is_loopback:
            raise RuntimeError(f"live network call blocked in tests: {address!r}")
    return _real_connect(self, address)


@pytest.fixture(autouse=True)
def _no_live_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)


def _create_pg_database() -> str:
    import psycopg

    name = f"sayso_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = PG_URL.rpartition("/")
    return f"{base}/{name}"


def _drop_pg_database(url: str) -> None:
    import psycopg

    name = url.rpartition("/")[2]
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgresql" and not PG_URL:
        pytest.skip("PostgreSQL not configured: set SAYSO_TEST_DATABASE_URL (.ci/run does)")
    return str(request.param)


def demo_catalog_with(root: Path, file: str, actions: str) -> Catalog:
    """The demo workspace's catalog with one more action file (YAML) beside its own."""
    Workspace.init(root, demo=True, reference=R)
    (root / "actions" / file).write_text(actions)
    ws = Workspace.load(root)
    try:
        return ws.catalog
    finally:
        ws.close()


def make_demo(root: Path, backend: str = "sqlite") -> tuple[Path, str | None]:
    Workspace.init(root, demo=True, reference=R)
    pg = None
    if backend == "postgresql":
        pg = _create_pg_database()
        toml = (root / "sayso.toml").read_text().replace('url = "sqlite:///state.db"', f'url = "{pg}"')
        (root / "sayso.toml").write_text(toml)
    return root, pg


@pytest.fixture
def demo_root(tmp_path: Path, backend: str, _close_workspaces: None) -> Iterator[Path]:
    root, pg = make_demo(tmp_path / "ws", backend)
    yield root
    while _OPEN:
        _OPEN.pop().close()
    if pg:
        _drop_pg_database(pg)


@pytest.fixture
def sqlite_root(tmp_path: Path) -> Path:
    return make_demo(tmp_path / "ws")[0]


_OPEN: list[Workspace] = []


@pytest.fixture(autouse=True)
def _close_workspaces() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def pipeline_for(root: Path, user: str = "alice", now: str = NOW) -> Pipeline:
    """A pipeline on a workspace that is closed when the test ends."""
    ws = Workspace.load(root)
    _OPEN.append(ws)
    return Pipeline(ws, Clock(parse_time(now, ws.directory.get(user).timezone)))


def sayso(root: Path | None, *args: str, env: dict[str, str] | None = None,
          check: bool = False) -> subprocess.CompletedProcess[str]:
    """Run the real command line in a child process."""
    command = [sys.executable, "-m", "sayso", *args]
    if root is not None:
        command += ["--workspace", str(root)]
    full_env = {**os.environ, **(env or {})}
    done = subprocess.run(command, capture_output=True, text=True, env=full_env, timeout=120)
    if check and done.returncode != 0:
        raise AssertionError(f"{command} failed ({done.returncode}): {done.stderr}{done.stdout}")
    return done


def sayso_json(root: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    done = sayso(root, *args, "--json", env=env)
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, f"expected one JSON line, got {done.stdout!r} / {done.stderr!r}"
    return done.returncode, json.loads(lines[0])


def cli(*args: str, env: dict[str, str] | None = None, input: str | None = None) -> Result:
    """Run the command line in this process through Typer's CliRunner: standard output and standard error
    apart, and no terminal (standard input is ``input``)."""
    return CliRunner().invoke(app, list(args), env=env, input=input)
