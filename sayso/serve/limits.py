"""Per-person rate limits, shared by every ``sayso serve`` process of a workspace on one host.

Each person has a token bucket: ``rate`` requests a minute, a burst of a tenth of
that (at least 10). The buckets live in a small memory-mapped file in the
workspace (``.sayso-serve-limits``), so the workers of ``sayso serve --workers N``
and any other ``sayso serve`` on the same workspace draw from the same bucket:
a person gets ``rate`` requests a minute in all, whichever process answers.
Taking a token is a few microseconds: a thread lock, an ``flock`` of the file,
and two reads and a write of 24 bytes. Times are ``time.monotonic()``, one
clock for every process of the machine.

Processes on other hosts (several hosts on one PostgreSQL database) have their
own file each: there the limit is per host. Should the file be unusable (a
read-only folder) or full (more than 4,096 people have called), the process
keeps those buckets in its own memory and says so in its log.
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

from ..errors import RateLimited

__all__ = ["FILE_NAME", "Buckets"]

log = logging.getLogger("sayso.serve")

FILE_NAME = ".sayso-serve-limits"
_SLOT = struct.Struct("<Qdd")  # the person's id hash (0: free), tokens left, when they were counted
_SLOTS = 4096
_SIZE = _SLOT.size * _SLOTS


class Buckets:
    """Token buckets by person id, in the shared file at ``path`` (None: in this process only)."""

    def __init__(self, rate_per_minute: int, path: Path | None = None) -> None:
        self.rate = max(rate_per_minute, 1) / 60.0
        self.burst = float(max(rate_per_minute // 10, 10))
        self._lock = threading.Lock()
        self._local: dict[str, tuple[float, float]] = {}
        self._fd: int | None = None
        self._map: mmap.mmap | None = None
        self._full = False
        if path is not None:
            try:
                self._open(path)
            except OSError as exc:
                log.warning("rate limits are kept per process: cannot use %s (%s)", path, exc.strerror)

    def _open(self, path: Path) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                if os.fstat(fd).st_size < _SIZE:
                    os.ftruncate(fd, _SIZE)  # zeros: every slot free
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
            self._map = mmap.mmap(fd, _SIZE)
        except OSError:
            os.close(fd)
            raise
        self._fd = fd

    @property
    def shared(self) -> bool:
        return self._map is not None

    def take(self, who: str) -> None:
        """Take one request from ``who``'s bucket; ``RateLimited`` when it is empty (nothing is taken)."""
        now = time.monotonic()
        with self._lock:
            allowed = self._take_shared(who, now) if self._map is not None else None
            if allowed is None:
                allowed = self._take_local(who, now)
        if not allowed:
            raise RateLimited("too many requests; slow down and retry in a moment")

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
