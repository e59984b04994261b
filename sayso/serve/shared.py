"""Small files that the ``sayso serve`` processes of one host share through ``mmap``.

A file is made at its size full of zeros, under an ``flock`` so that two
processes starting together agree on it. Writers change it under the same
``flock``; what each file holds, and who may read it without the lock, is up to
its user (``sayso.serve.limits``: rate-limit buckets; ``HostCounter``: the
token revocation epoch of ``sayso.serve.auth``).
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
from pathlib import Path

__all__ = ["HostCounter", "map_file"]

_COUNTER = struct.Struct("<Q")


def map_file(path: Path, size: int) -> tuple[int, mmap.mmap]:
    """The open file at ``path`` (made, zero-filled, when missing or short) and a shared map of its ``size``
    bytes. Raises ``OSError`` when it cannot be made or mapped."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.fstat(fd).st_size < size:
                os.ftruncate(fd, size)  # zeros
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
        return fd, mmap.mmap(fd, size)
    except OSError:
        os.close(fd)
        raise


class HostCounter:
    """A counter that every process of the host sees: read without a lock, raised under the file's lock.

    A read is one aligned 8-byte load from shared memory, a fraction of a microsecond. A read that races a
    raise sees the old value or the new one; once ``bump`` has returned, every read on the host sees the new
    value (or a later one).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd, self._map = map_file(path, _COUNTER.size)

    def value(self) -> int:
        return int(_COUNTER.unpack_from(self._map)[0])

    def bump(self) -> int:
        """Add one; the new value."""
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            value = _COUNTER.unpack_from(self._map)[0] + 1
            _COUNTER.pack_into(self._map, 0, value)
            return int(value)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if not self._map.closed:
            self._map.close()
            os.close(self._fd)
