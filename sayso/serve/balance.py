"""Least-connections balancing of the workers of ``sayso serve --workers N``.

Uvicorn's workers share one listening socket, and the kernel gives each new connection to whichever worker
accepts first; a worker that wakes accepts everything waiting. Clients keep their connections alive, so a
connection stays on its worker for its life, and 16 clients split 10/6 as easily as 8/8. Each worker runs on
about one core (the GIL), so the clients of the busier one wait longer: 48 ms a turn against 28 ms, measured.

So the workers pass freshly accepted connections to each other, before reading a byte of them:

- the parent makes a private directory (``prepared``) and names it to the workers in ``ENV``. Each worker has a
  slot in a small memory-mapped file there (``Board``): its pid and the connections it holds. It holds a
  ``lockf`` lock on its slot for its life; the kernel drops the lock when the process dies, however it dies
  (SIGKILL, and before its parent reaps it), so a slot whose lock can be taken is free, whatever it says.
  Every change to the counts is made under an ``flock`` of the whole file.
- each worker listens on a Unix datagram socket ``<pid>.sock`` in that directory.
- when a worker accepts a connection it counts it; when it then holds more than the least-loaded live worker
  + 1, it moves the count to that worker and sends it the socket's descriptor (``SCM_RIGHTS``), then closes its
  own. Closing one descriptor of a socket that another process also holds leaves the TCP connection open, and
  asyncio calls ``connection_made`` before it starts reading, so nothing was read or written yet. The other
  worker serves the connection as if it had accepted it (``loop.connect_accepted_socket``), and never hands
  it on.
- should the hand-off fail (the target died a moment ago, its queue is full), the worker keeps the connection:
  a client is never dropped for balance. Only a target dying with a descriptor still in its queue loses that
  connection.
- a worker starts accepting once all N workers have joined (at most ``JOIN_SECONDS``), so that the first
  clients are not all on the worker that was ready first; a worker whose listening socket closes (it is
  stopping) leaves the board, and a connection still handed to it then is closed after its first response,
  so that a busy client cannot keep a stopping worker alive.

The hooks are Uvicorn's public ones: the event loop (``Config(loop=LOOP)``), whose ``create_server`` is given
Uvicorn's protocol factory (``_Connection`` wraps each protocol it makes). WebSocket upgrades must be off
(``Config(ws="none")``; sayso has no WebSocket routes): an upgrade swaps the transport's protocol, and the
connection would no longer be counted when it closes. Not with TLS, whose handshake reads before
``connection_made``; ``sayso serve`` speaks plain HTTP.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import errno
import fcntl
import json
import logging
import os
import shutil
import socket
import struct
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .shared import map_file

__all__ = ["ENV", "JOIN_SECONDS", "LOOP", "Board", "Loop", "prepared"]

log = logging.getLogger("sayso.serve")

ENV = "SAYSO_SERVE_BALANCE"  # JSON from the parent to its workers: {"directory": ..., "workers": N}
LOOP = "sayso.serve.balance:Loop"  # for uvicorn.Config(loop=...)
JOIN_SECONDS = 5.0  # how long a starting worker waits for the others before it accepts connections anyway
BOARD = "board"
_SLOT = struct.Struct("<qq")  # pid (0: free), connections held
SLOTS = 256
_SIZE = _SLOT.size * SLOTS
_WATCH_SECONDS = 0.5  # how often a worker checks whether its listening socket was closed


@contextlib.contextmanager
def prepared(workers: int) -> Iterator[Path]:
    """In the parent: a private directory for the board and the workers' sockets, named in ``ENV`` for the
    workers it starts meanwhile, and removed after."""
    directory = Path(tempfile.mkdtemp(prefix="sayso-serve-"))
    os.environ[ENV] = json.dumps({"directory": str(directory), "workers": workers})
    try:
        yield directory
    finally:
        os.environ.pop(ENV, None)
        shutil.rmtree(directory, ignore_errors=True)


class Board:
    """The workers' slots in the shared file at ``path``: who is alive and how many connections each holds."""

    def __init__(self, path: Path) -> None:
        self._fd, self._map = map_file(path, _SIZE)  # zeros at first: every slot free
        self.slot: int | None = None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _try_lock(self, slot: int) -> bool:
        """Take ``slot``'s life lock; False when a live process holds it."""
        try:
            fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, slot * _SLOT.size)
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EAGAIN):
                return False
            raise
        return True

    def _alive(self, slot: int) -> bool:
        """Whether another process holds ``slot`` (never ask about our own: the test would release it)."""
        if not self._try_lock(slot):
            return True
        fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, slot * _SLOT.size)
        return False

    def _read(self, slot: int) -> tuple[int, int]:
        pid, count = _SLOT.unpack_from(self._map, slot * _SLOT.size)
        return int(pid), int(count)

    def _write(self, slot: int, pid: int, count: int) -> None:
        _SLOT.pack_into(self._map, slot * _SLOT.size, pid, max(count, 0))

    def claim(self) -> int:
        """Take the first free slot for this process, for its life; ``OSError`` when there is none."""
        with self._locked():
            for slot in range(SLOTS):
                if self._try_lock(slot):
                    self._write(slot, os.getpid(), 0)
                    self.slot = slot
                    return slot
        raise OSError(errno.ENOSPC, f"all {SLOTS} worker slots are taken")

    def live(self) -> dict[int, int]:
        """Connections by pid of the live workers, this one included."""
        with self._locked():
            return {pid: count for slot, (pid, count) in enumerate(self._slots())
                    if pid and (slot == self.slot or self._alive(slot))}

    def _slots(self) -> Iterator[tuple[int, int]]:
        return _SLOT.iter_unpack(self._map)

    def place(self) -> tuple[int, int] | None:
        """Count one more connection here; when this worker then holds more than the least-loaded live worker
        + 1, move the count to that worker instead and return its (slot, pid)."""
        assert self.slot is not None
        with self._locked():
            me, mine = self._read(self.slot)
            mine += 1
            others = sorted((count, slot, pid) for slot, (pid, count) in enumerate(self._slots())
                            if pid and slot != self.slot)
            for count, slot, pid in others:
                if mine <= count + 1:
                    break
                if self._alive(slot):
                    self._write(self.slot, me, mine - 1)
                    self._write(slot, pid, count + 1)
                    return slot, pid
                self._write(slot, 0, 0)  # dead: free it, and look further
            self._write(self.slot, me, mine)
            return None

    def undo(self, slot: int, pid: int) -> None:
        """The connection ``place`` moved to ``slot`` stays here after all."""
        assert self.slot is not None
        with self._locked():
            them, count = self._read(slot)
            if them == pid:
                self._write(slot, pid, count - 1)
            me, mine = self._read(self.slot)
            self._write(self.slot, me, mine + 1)

    def closed(self) -> None:
        """One connection of this worker closed."""
        assert self.slot is not None
        with self._locked():
            me, mine = self._read(self.slot)
            self._write(self.slot, me, mine - 1)

    def leave(self) -> None:
        """Free this worker's slot: no more connections are sent here."""
        if self.slot is None:
            return
        with self._locked():
            self._write(self.slot, 0, 0)
            fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, self.slot * _SLOT.size)
        self.slot = None

    def close(self) -> None:
        self.leave()
        self._map.close()
        os.close(self._fd)


class _Worker:
    """This process's part in the balancing: its slot, its Unix socket, and the connections handed to it."""

    def __init__(self, loop: asyncio.AbstractEventLoop, directory: Path,
                 protocol: Callable[[], asyncio.BaseProtocol]) -> None:
        self.loop = loop
        self.directory = directory
        self.protocol = protocol  # Uvicorn's: an HTTP protocol for one connection
        self.board: Board | None = None
        self.inbox: socket.socket | None = None
        self.server: asyncio.Server | None = None  # the listening one, once it is made
        self.retired = False
        self.handed_in: set[_Connection] = set()  # open connections that another worker accepted
        self._adopting: set[asyncio.Task[Any]] = set()
        self._watch: asyncio.TimerHandle | None = None

    def _path(self, pid: int) -> str:
        return str(self.directory / f"{pid}.sock")

    def start(self) -> None:
        """Listen on the Unix socket, then take a slot (so that a worker in the board can always be sent to).
        Raises ``OSError``; ``close`` undoes what was done."""
        self.inbox = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.inbox.setblocking(False)
        path = self._path(os.getpid())
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # left by a killed process whose pid this one has now
        self.inbox.bind(path)
        self.loop.add_reader(self.inbox.fileno(), self._receive)
        self.board = Board(self.directory / BOARD)
        self.board.claim()
        self._watch = self.loop.call_later(_WATCH_SECONDS, self._check_serving)

    async def joined(self, workers: int) -> None:
        """Wait until ``workers`` workers are on the board, or ``JOIN_SECONDS`` have passed."""
        assert self.board is not None
        deadline = time.monotonic() + JOIN_SECONDS
        while len(self.board.live()) < workers and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    # -- sending --------------------------------------------------------------------------------------------

    def hand_off(self, transport: asyncio.BaseTransport) -> bool:
        """Count a connection just accepted; send it to a less loaded worker where it should go there. False:
        it stays here (and is counted here)."""
        assert self.board is not None and self.inbox is not None
        if self.retired:
            return False
        target = self.board.place()
        if target is None:
            return False
        slot, pid = target
        sock = transport.get_extra_info("socket")
        try:
            self.inbox.sendmsg([b"c"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [sock.fileno()]))],
                               0, self._path(pid))
        except OSError as exc:
            self.board.undo(slot, pid)
            log.info("worker %d keeps a connection: worker %d did not take it (%s)", os.getpid(), pid,
                     exc.strerror or exc)
            return False
        return True

    # -- receiving ------------------------------------------------------------------------------------------

    def _receive(self) -> None:
        assert self.inbox is not None
        while True:
            try:
                _, fds, _, _ = socket.recv_fds(self.inbox, 16, 4)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("worker %d cannot receive connections from the others: %s", os.getpid(), exc)
                return
            for fd in fds:
                self._adopt(fd)

    def _adopt(self, fd: int) -> None:
        try:
            sock = socket.socket(fileno=fd)
        except OSError:
            os.close(fd)
            self._lost()
            return
        task = self.loop.create_task(
            self.loop.connect_accepted_socket(lambda: _Connection(self, handed_in=True), sock))
        self._adopting.add(task)

        def done(task: asyncio.Task[Any]) -> None:
            self._adopting.discard(task)
            if not task.cancelled() and task.exception() is not None:
                log.warning("worker %d could not serve a connection handed to it: %s", os.getpid(), task.exception())
                sock.close()
                self._lost()

        task.add_done_callback(done)

    def _lost(self) -> None:
        if self.board is not None and self.board.slot is not None:
            self.board.closed()

    def closed(self, connection: _Connection) -> None:
        self.handed_in.discard(connection)
        self._lost()

    # -- stopping -------------------------------------------------------------------------------------------

    def _check_serving(self) -> None:
        if self.server is not None and not self.server.is_serving():
            self.retire()
        else:
            self._watch = self.loop.call_later(_WATCH_SECONDS, self._check_serving)

    def retire(self) -> None:
        """The listening socket is closed (Uvicorn is stopping this worker): leave the board, and close the
        connections that were handed in after Uvicorn asked its connections to close, after their response."""
        self.retired = True
        if self.board is not None:
            self.board.leave()
        for connection in list(self.handed_in):
            connection.shutdown()

    def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
        if self.board is not None:
            self.board.close()
            self.board = None
        if self.inbox is not None:
            with contextlib.suppress(ValueError, RuntimeError):  # the loop may be closing
                self.loop.remove_reader(self.inbox.fileno())
            self.inbox.close()
            self.inbox = None
            with contextlib.suppress(OSError):
                os.unlink(self._path(os.getpid()))


class _Connection(asyncio.Protocol):
    """One connection of a balancing worker: placed when accepted and counted while open; everything else is
    Uvicorn's HTTP protocol's, made only when the connection stays."""

    def __init__(self, worker: _Worker, *, handed_in: bool = False) -> None:
        self._worker = worker
        self._handed_in = handed_in
        self._inner: asyncio.Protocol | None = None
        self._close_after_request = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self._handed_in and self._worker.hand_off(transport):
            transport.close()  # this process's descriptor only: the connection lives on in the other worker
            return
        inner = self._worker.protocol()
        assert isinstance(inner, asyncio.Protocol)
        self._inner = inner
        if self._handed_in:
            self._worker.handed_in.add(self)
            self._close_after_request = self._worker.retired
        inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._inner is not None:
            self._worker.closed(self)
            self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        assert self._inner is not None
        self._inner.data_received(data)
        if self._close_after_request:
            self._close_after_request = False
            self.shutdown()

    def eof_received(self) -> bool | None:
        assert self._inner is not None
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        assert self._inner is not None
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        assert self._inner is not None
        self._inner.resume_writing()

    def shutdown(self) -> None:
        """Close after the response in progress (at once when there is none), as Uvicorn's shutdown does."""
        shutdown = getattr(self._inner, "shutdown", None)
        if shutdown is not None:
            shutdown()


class Loop(asyncio.SelectorEventLoop):
    """A worker's event loop (``uvicorn.Config(loop=LOOP)``): the TCP server it makes balances its connections
    with the other workers named in ``ENV``."""

    def __init__(self) -> None:
        super().__init__()
        self._worker: _Worker | None = None

    async def create_server(self, protocol_factory: Callable[[], asyncio.BaseProtocol], *args: Any,
                            **kwargs: Any) -> asyncio.Server:
        sock = kwargs.get("sock")
        options = os.environ.get(ENV)
        if (self._worker is not None or options is None or kwargs.get("ssl") is not None
                or not isinstance(sock, socket.socket) or sock.family not in (socket.AF_INET, socket.AF_INET6)):
            return await super().create_server(protocol_factory, *args, **kwargs)
        settings = json.loads(options)
        worker = _Worker(self, Path(settings["directory"]), protocol_factory)
        try:
            worker.start()
        except OSError as exc:
            worker.close()
            log.warning("worker %d does not balance connections with the others: %s", os.getpid(), exc)
            return await super().create_server(protocol_factory, *args, **kwargs)
        self._worker = worker
        await worker.joined(int(settings["workers"]))
        log.info("worker %d balances connections through %s", os.getpid(), worker.directory)
        worker.server = await super().create_server(lambda: _Connection(worker), *args, **kwargs)
        return worker.server

    def close(self) -> None:
        if self._worker is not None:
            self._worker.close()
            self._worker = None
        super().close()
