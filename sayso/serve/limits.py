"""Per-person rate limits, shared by every ``sayso serve`` process of a workspace.

Each person has a token bucket: ``rate`` requests a minute, a burst of a tenth of
that (at least 10). Where the buckets live depends on the workspace's store:

- **SQLite** (one host): in a small memory-mapped file in the workspace
  (``.sayso-serve-limits``), so the workers of ``sayso serve --workers N`` and
  any other ``sayso serve`` on the same workspace draw from the same bucket. Taking
  a token is a few microseconds: a thread lock, an ``flock`` of the file, and two
  reads and a write of 24 bytes. Times are ``time.monotonic()``, one clock for
  every process of the machine.
- **PostgreSQL** (several hosts may share it): in the ``rate_buckets`` table, so
  every process on every host draws from the same bucket. Taking a token is one
  atomic statement (an upsert that refills the bucket by the database's clock and
  takes one only where one is left), a round trip to the database; the table is
  unlogged, so it writes no WAL and waits for no disk. Should the database call
  fail, the request is limited by the host's file instead, the log says so once,
  and the database is tried again after ``DATABASE_RETRY_SECONDS``.

Should the file be unusable (a read-only folder) or full (more than 4,096 people
have called), the process keeps those buckets in its own memory and says so in
its log. A person gets ``rate`` requests a minute in all, whichever process
answers (per host only while the database is unreachable, or per process in
these last cases).
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import mmap
import os
import struct
import threading
import time
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from ..errors import RateLimited
from ..store import Store
from .shared import map_file

__all__ = ["DATABASE_RETRY_SECONDS", "FILE_NAME", "Buckets"]

log = logging.getLogger("sayso.serve")

FILE_NAME = ".sayso-serve-limits"
DATABASE_RETRY_SECONDS = 5.0  # after a failed database call, the host's file limits requests this long
_SLOT = struct.Struct("<Qdd")  # the person's id hash (0: free), tokens left, when they were counted
_SLOTS = 4096
_SIZE = _SLOT.size * _SLOTS

# One person's bucket on PostgreSQL, in one statement: a new person starts full and takes one; otherwise the
# bucket is refilled for the time since it was counted (the database's clock, never backwards) and one is taken
# only when one is left. No row comes back when the bucket is empty, and then nothing is changed.
_REFILLED = "least(:burst, b.level + greatest(0.0, extract(epoch from statement_timestamp())::float8 - b.at) * :rate)"
_TAKE = text(f"""
INSERT INTO rate_buckets AS b (who, level, at)
VALUES (:who, :burst - 1.0, extract(epoch from statement_timestamp())::float8)
ON CONFLICT (who) DO UPDATE SET level = {_REFILLED} - 1.0, at = extract(epoch from statement_timestamp())::float8
WHERE {_REFILLED} >= 1.0
RETURNING b.level
""")


class Buckets:
    """Token buckets by person id: in ``store``'s database when it is PostgreSQL, else in the shared file at
    ``path`` (None: in this process only)."""

    def __init__(self, rate_per_minute: int, path: Path | None = None, *, store: Store | None = None) -> None:
        self.rate = max(rate_per_minute, 1) / 60.0
        self.burst = float(max(rate_per_minute // 10, 10))
        self._lock = threading.Lock()
        self._local: dict[str, tuple[float, float]] = {}
        self._fd: int | None = None
        self._map: mmap.mmap | None = None
        self._full = False
        self._store = store if store is not None and store.engine.dialect.name == "postgresql" else None
        self._database_down = False
        self._retry_at = 0.0  # monotonic time before which the database is not asked again
        if path is not None:
            try:
                self._fd, self._map = map_file(path, _SIZE)
            except OSError as exc:
                log.warning("rate limits are kept per process: cannot use %s (%s)", path, exc.strerror)

    @property
    def shared(self) -> bool:
        """Whether other processes draw from the same buckets (the database's, or the host's file)."""
        return self._store is not None or self._map is not None

    def take(self, who: str) -> None:
        """Take one request from ``who``'s bucket; ``RateLimited`` when it is empty (nothing is taken)."""
        allowed = self._take_database(who) if self._store is not None else None
        if allowed is None:
            now = time.monotonic()
            with self._lock:
                allowed = self._take_shared(who, now) if self._map is not None else None
                if allowed is None:
                    allowed = self._take_local(who, now)
        if not allowed:
            raise RateLimited("too many requests; slow down and retry in a moment")

    def _take_database(self, who: str) -> bool | None:
        """As ``_take_local``, in the database; None when it cannot be asked (the host's file answers)."""
        assert self._store is not None
        if self._database_down and time.monotonic() < self._retry_at:
            return None
        try:
            with self._store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:  # one trip
                taken = conn.execute(_TAKE, {"who": who, "burst": self.burst, "rate": self.rate}).first()
        except SQLAlchemyError as exc:
            with self._lock:
                self._retry_at = time.monotonic() + DATABASE_RETRY_SECONDS
                if not self._database_down:
                    self._database_down = True
                    log.warning("rate limits are counted on this host until the database answers again: %s",
                                type(exc).__name__)
            return None
        if self._database_down:
            with self._lock:
                if self._database_down:
                    self._database_down = False
                    log.warning("rate limits are counted in the database again")
        return taken is not None

    def _refill(self, level: float, then: float, now: float) -> float:
        if then <= 0 or then > now:  # never counted, or counted before this machine started
            return self.burst
        return min(self.burst, level + (now - then) * self.rate)

    def _take_local(self, who: str, now: float) -> bool:
        level, then = self._local.get(who, (self.burst, now))
        level = self._refill(level, then, now)
        if level < 1.0:
            return False
        self._local[who] = (level - 1.0, now)
        return True

    def _take_shared(self, who: str, now: float) -> bool | None:
        """As ``_take_local``, in the shared file; None when the file has no room for ``who``."""
        assert self._map is not None and self._fd is not None
        key = int.from_bytes(hashlib.blake2b(who.encode(), digest_size=8).digest(), "little") or 1
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            start = key % _SLOTS
            for probe in range(_SLOTS):  # open addressing: the person's slot, or the first free one
                offset = (start + probe) % _SLOTS * _SLOT.size
                found, level, then = _SLOT.unpack_from(self._map, offset)
                if found == key or found == 0:
                    level = self._refill(level, then, now) if found else self.burst
                    if level < 1.0:
                        return False
                    _SLOT.pack_into(self._map, offset, key, level - 1.0, now)
                    return True
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        if not self._full:
            self._full = True
            log.warning("the shared rate-limit file is full: people not in it are limited per process")
        return None

    def close(self) -> None:
        with self._lock:
            if self._map is not None:
                self._map.close()
                self._map = None
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
