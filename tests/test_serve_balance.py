"""Least-connections balancing of ``sayso serve --workers N`` (``sayso.serve.balance``), on real processes.

Which worker holds a connection is read from the kernel: the worker processes' descriptors (``/proc/PID/fd``)
matched to the server side of each TCP connection (``/proc/net/tcp``), keyed by the client's port."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

pytest.importorskip("fastapi", reason="the HTTP service needs its extra: pip install 'sayso[serve]'")
pytest.importorskip("uvicorn", reason="the HTTP service needs its extra: pip install 'sayso[serve]'")
if not Path("/proc/net/tcp").exists():
    pytest.skip("reads which process holds a connection from Linux's /proc", allow_module_level=True)

from sayso.serve.balance import Board  # noqa: E402

from .test_serve_workers import Served, chat_messages, client, serve, tokens_for  # noqa: E402

JOINED = re.compile(r"worker (\d+) balances connections")


@pytest.fixture
def root(sqlite_root: Path) -> Path:
    toml = sqlite_root / "sayso.toml"
    toml.write_text(toml.read_text() + "\n[serve]\nrate_per_minute = 100000\n")
    return sqlite_root


@pytest.fixture
def server(root: Path) -> Iterator[Served]:
    served = serve(root, "--workers", "2", env={"SAYSO_LOG": "info"})
    try:
        wait_for(lambda: len(joined(served)) == 2, "both workers to join the balancing", served)
        yield served
    finally:
        os.kill(served.process.pid, signal.SIGCONT)  # should a test have stopped it
        served.stop()
    assert served.process.returncode == 0
    assert "Traceback" not in served.log.read_text()


def wait_for(condition: Callable[[], bool], what: str, served: Served) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited in vain for {what}: {served.log.read_text()[-3000:]}")
        time.sleep(0.05)


def joined(served: Served) -> list[int]:
    """The pids of the workers that joined the balancing, in order."""
    return [int(pid) for pid in JOINED.findall(served.log.read_text())]


def port_of(served: Served) -> int:
    return int(served.url.rsplit(":", 1)[1])


def tcp(port: int) -> list[tuple[int, str, str]]:
    """The server side of the connections to ``port``: (client port, state, socket inode; "0" until accepted)."""
    rows = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] != "0A":  # not the listening socket
                rows.append((int(fields[2].rsplit(":", 1)[1], 16), fields[3], fields[9]))
    return rows


def holders(port: int, pids: list[int]) -> dict[int, int]:
    """Client port -> the pid of the worker holding that open connection to ``port``."""
    owner = {}
    for pid in pids:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:  # gone
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                owner[target[len("socket:["):-1]] = pid
    return {client_port: owner[inode] for client_port, state, inode in tcp(port) if state == "01" and inode in owner}


def quiet(port: int) -> bool:
    """Whether no connection to ``port`` is open (or half-closed) on the server's side."""
    return all(state == "06" for _, state, _ in tcp(port))  # TIME_WAIT at most


def first_request(url: str, token: str, into: dict[int, httpx.Client], codes: list[int]) -> None:
    """A new keep-alive client and its first request; remembered by its local port."""
    fresh = client(url, token)
    response = fresh.get("/v1/me")
    codes.append(response.status_code)
    into[response.extensions["network_stream"].get_extra_info("client_addr")[1]] = fresh


def connect(url: str, tokens: dict[str, str], n: int) -> dict[int, httpx.Client]:
    """``n`` new keep-alive clients, connecting at once, each after its first answer."""
    clients: dict[int, httpx.Client] = {}
    codes: list[int] = []
    threads = [threading.Thread(target=first_request, args=(url, tokens[("alice", "bob")[i % 2]], clients, codes))
               for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert codes == [200] * n and len(clients) == n
    return clients


def test_connections_are_balanced_even_when_one_worker_accepts_them_all(server: Served, root: Path) -> None:
    tokens = tokens_for(root)
    port = port_of(server)
    first, second = joined(server)
    wait_for(lambda: quiet(port), "the readiness check's connection to close", server)
    os.kill(second, signal.SIGSTOP)  # only the first worker can accept now
    clients: dict[int, httpx.Client] = {}
    codes: list[int] = []
    threads = [threading.Thread(target=first_request, args=(server.url, tokens[("alice", "bob")[i % 2]], clients,
                                                            codes)) for i in range(16)]
    try:
        for thread in threads:
            thread.start()
        # every connection accepted (none waiting with inode 0), and the first worker keeps half: the other half
        # waits, already sent, in the stopped worker's queue
        wait_for(lambda: len(tcp(port)) == 16 and all(inode != "0" for _, _, inode in tcp(port))
                 and Counter(holders(port, [first]).values()) == {first: 8},
                 "the first worker to accept all 16 connections and keep 8", server)
    finally:
        os.kill(second, signal.SIGCONT)
    for thread in threads:
        thread.join(60)
    try:
        assert codes == [200] * 16
        placed = holders(port, [first, second])
        assert sorted(placed) == sorted(clients)
        split = Counter(placed.values())
        assert set(split) == {first, second} and abs(split[first] - split[second]) <= 1
        # the connections handed over carry on: more requests on each, a POST with a body among them, on the
        # same connection (the same client port) and on the same worker
        for number, (client_port, each) in enumerate(clients.items()):
            for _ in range(3):
                assert each.get("/v1/me").status_code == 200
            sent = each.post("/v1/actions/chat.send", json={"args": {"to": "carol", "text": f"{number} " + "x" * 3000}})
            assert sent.status_code == 200 and sent.json()["status"] == "executed"
            assert sent.extensions["network_stream"].get_extra_info("client_addr")[1] == client_port
        assert holders(port, [first, second]) == placed
        assert chat_messages(root) == 16
    finally:
        for each in clients.values():
            each.close()
    assert "keeps a connection" not in server.log.read_text()


def test_a_killed_worker_is_not_sent_connections_and_its_replacement_is(server: Served, root: Path) -> None:
    tokens = tokens_for(root)
    port = port_of(server)
    survivor, victim = joined(server)
    wait_for(lambda: quiet(port), "the readiness check's connection to close", server)
    clients = connect(server.url, tokens, 4)
    assert Counter(holders(port, [survivor, victim]).values()) == {survivor: 2, victim: 2}
    # the parent stopped, the killed worker stays a zombie, and nothing replaces it: its slot still says it
    # holds 2 connections, fewer than the survivor will
    os.kill(server.process.pid, signal.SIGSTOP)
    more: dict[int, httpx.Client] = {}
    late: dict[int, httpx.Client] = {}
    try:
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: _state(victim) in ("Z", ""), "the killed worker to die", server)
        more = connect(server.url, tokens, 6)
        for each in clients.values():  # those on the killed worker reconnect, to the survivor
            assert each.get("/v1/me").status_code == 200
        open_now = holders(port, [survivor, victim])
        assert len(open_now) == 10 and set(open_now.values()) == {survivor}
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
    try:
        assert "keeps a connection" not in server.log.read_text()  # the survivor never tried the dead worker
        wait_for(lambda: len(joined(server)) == 3, "a new worker to replace the killed one", server)
        replacement = joined(server)[2]
        late = connect(server.url, tokens, 8)
        placed = holders(port, [survivor, replacement])
        assert Counter(placed[p] for p in late) == {replacement: 8}  # the new worker held none: all 8 go there
        assert Counter(placed.values()) == {survivor: 10, replacement: 8}
        for each in [*clients.values(), *more.values(), *late.values()]:
            assert each.get("/v1/me").status_code == 200
    finally:
        for each in [*clients.values(), *more.values(), *late.values()]:
            each.close()


def _state(pid: int) -> str:
    """A process's state letter ("Z": a zombie), "" when it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return ""


_CLAIM = """
import sys
from pathlib import Path
from sayso.serve.balance import Board
board = Board(Path(sys.argv[1]))
print(board.claim(), flush=True)
sys.stdin.read()
"""


@contextlib.contextmanager
def other_worker(path: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """Another process holding a slot of the board at ``path`` until it is killed; with that slot."""
    with subprocess.Popen([sys.executable, "-c", _CLAIM, str(path)], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            yield process, int(process.stdout.readline())
        finally:
            process.kill()
            process.wait()


def test_the_board_places_by_least_connections_and_frees_a_dead_workers_slot(tmp_path: Path) -> None:
    path = tmp_path / "board"
    here = os.getpid()
    with other_worker(path) as (other, theirs):
        board = Board(path)
        try:
            mine = board.claim()
            assert mine != theirs
            assert board.live() == {here: 0, other.pid: 0}
            assert board.place() is None  # 1 here against 0 there: stays
            assert board.place() == (theirs, other.pid)  # 2 here would be more than 0 + 1: goes there
            assert board.live() == {here: 1, other.pid: 1}
            board.undo(theirs, other.pid)  # the hand-off failed: it is counted here again
            assert board.live() == {here: 2, other.pid: 0}
            other.kill()
            other.wait()
            assert board.live() == {here: 2}  # its lock went with it: what its slot says does not count
            assert board.place() is None  # 3 here, and no live worker to send to
            board.closed()
            assert board.live() == {here: 2}
            with other_worker(path) as (again, slot):
                assert slot == theirs  # the dead worker's slot is free again
                assert board.live() == {here: 2, again.pid: 0}
        finally:
            board.close()
