"""Per-person rate limits, one bucket per person across every ``sayso serve`` process of a workspace.

Each person has a token bucket: ``rate`` requests a minute, a burst of a tenth of
that (at least 10). Where the buckets live depends on the workspace's store:

- **PostgreSQL** (any number of processes, on any number of hosts): in the
  ``rate_buckets`` table, so every process draws from the same bucket. Taking a
  token is one atomic statement (an upsert that refills the bucket by the
  database's clock and takes one only where one is left), a round trip to the
  database; the table is unlogged, so it writes no WAL and waits for no disk.
  Should the database call fail, the request is limited by this process's own
  buckets instead, the log says so once, and the database is tried again after
  ``DATABASE_RETRY_SECONDS``.
- **SQLite** (one ``sayso serve`` process per workspace): in the process's
  memory. Several processes on one SQLite workspace would each allow ``rate``
  a minute; run several processes on PostgreSQL (docs/operations.md).
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from ..errors import RateLimited
from ..store import Store

__all__ = ["DATABASE_RETRY_SECONDS", "Buckets"]

log = logging.getLogger("sayso.serve")

DATABASE_RETRY_SECONDS = 5.0  # after a failed database call, this process's buckets limit requests this long

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
    """Token buckets by person id: in ``store``'s database when it is PostgreSQL, else in this process."""

    def __init__(self, rate_per_minute: int, *, store: Store | None = None) -> None:
        self.rate = max(rate_per_minute, 1) / 60.0
        self.burst = float(max(rate_per_minute // 10, 10))
        self._lock = threading.Lock()
        self._local: dict[str, tuple[float, float]] = {}
        self._store = store if store is not None and store.engine.dialect.name == "postgresql" else None
        self._database_down = False
        self._retry_at = 0.0  # monotonic time before which the database is not asked again

    @property
    def shared(self) -> bool:
        """Whether other processes draw from the same buckets (the database's)."""
        return self._store is not None

    def take(self, who: str) -> None:
        """Take one request from ``who``'s bucket; ``RateLimited`` when it is empty (nothing is taken)."""
        allowed = self._take_database(who) if self._store is not None else None
        if allowed is None:
            with self._lock:
                allowed = self._take_local(who, time.monotonic())
        if not allowed:
            raise RateLimited("too many requests; slow down and retry in a moment")

    def _take_database(self, who: str) -> bool | None:
        """As ``_take_local``, in the database; None when it cannot be asked (this process's buckets answer)."""
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
                    log.warning("rate limits are counted in this process until the database answers again: %s",
                                type(exc).__name__)
            return None
        if self._database_down:
            with self._lock:
                if self._database_down:
                    self._database_down = False
                    log.warning("rate limits are counted in the database again")
        return taken is not None

    def _take_local(self, who: str, now: float) -> bool:
        level, then = self._local.get(who, (self.burst, now))
        level = min(self.burst, level + max(now - then, 0.0) * self.rate)
        if level < 1.0:
            return False
        self._local[who] = (level - 1.0, now)
        return True
