"""Progress of turns, by conversation, for server-sent event streams, across every process of a workspace.

A stream is a listener in the process it is connected to: an asyncio queue on that process's event loop (a
stream holds no thread while it waits), to which turns, run in worker threads, publish thread-safely.

A turn may run on another process than the stream (behind a load balancer, the next request of the same
person goes wherever it goes). On PostgreSQL the processes tell each other through ``LISTEN``/``NOTIFY`` on one
channel (``CHANNEL``), and only about conversations someone listens to:

- a process with a stream on a conversation announces it (``listen``), again every ``ANNOUNCE_SECONDS`` while
  the stream lasts (so a process started later learns of it, and the announcement of a process killed with
  its streams expires), and says ``unlisten`` when its last stream on it ends; a process that starts asks the
  others to announce theirs (``hello``);
- a turn publishes its stages to this process's streams, and sends them with ``pg_notify`` only when another
  process has announced a stream on its conversation. A turn with no stream anywhere costs nothing more.

Notifications are best effort (a turn that starts in the moment a stream opens on another process may reach
it with only its ``done``): each stream also reads the conversation's finished turns from the state database
(``Service.done_since``), so every turn's ``done`` arrives, whichever process ran it and however large it is
(a notification carries at most ``NOTIFY_MAX_BYTES``). On SQLite (one process per workspace) the listeners are
this process's only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections import defaultdict
from typing import Any

from sqlalchemy import text

from ..store import Store

__all__ = ["ANNOUNCE_SECONDS", "CHANNEL", "NOTIFY_MAX_BYTES", "Events", "Listener"]

log = logging.getLogger("sayso.serve")

CHANNEL = "sayso_events"
ANNOUNCE_SECONDS = 10.0  # a stream's announcement is repeated this often, and expires after three times that
NOTIFY_MAX_BYTES = 7900  # PostgreSQL's limit on a notification's payload is 8000 bytes
_RECONNECT_SECONDS = 1.0
_NOTIFY = text("select pg_notify(:channel, :payload)")

Listener = tuple[asyncio.AbstractEventLoop, "asyncio.Queue[dict[str, Any]]"]


class Events:
    """This process's streams by conversation, and (with a PostgreSQL ``store``) the other processes'."""

    def __init__(self, store: Store | None = None) -> None:
        self.listeners: dict[str, list[Listener]] = defaultdict(list)
        self.lock = threading.Lock()
        self.origin = uuid.uuid4().hex  # this process, in its notifications
        self._remote: dict[str, dict[str, float]] = {}  # conversation -> {origin: when its announcement expires}
        self._store = store if store is not None and store.engine.dialect.name == "postgresql" else None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if self._store is not None:
            self._thread = threading.Thread(target=self._listen, name="sayso-events", daemon=True)
            self._thread.start()

    @property
    def shared(self) -> bool:
        """Whether turns run by other processes send their stages here too (PostgreSQL)."""
        return self._store is not None

    def publish(self, conversation: str, event: dict[str, Any]) -> None:
        """``event`` to every stream on ``conversation``: this process's, and the others' through the database."""
        self._deliver(conversation, event)
        if self._store is not None and self._listened_elsewhere(conversation):
            self._notify({"kind": "event", "conversation": conversation, "event": event})

    def listening(self, conversation: str) -> bool:
        """Whether a stream on ``conversation`` is open here or (as far as announced) on another process."""
        return bool(self.listeners.get(conversation)) or self._listened_elsewhere(conversation)

    def subscribe(self, conversation: str) -> Listener:
        """A new listener, on the running event loop (``announce`` it to the other processes next)."""
        listener: Listener = (asyncio.get_running_loop(), asyncio.Queue())
        with self.lock:
            self.listeners[conversation].append(listener)
        return listener

    def announce(self, conversation: str) -> None:
        """Tell the other processes that a stream here listens to ``conversation`` (a database round trip)."""
        if self._store is not None:
            self._notify({"kind": "listen", "conversation": conversation})

    def unsubscribe(self, conversation: str, listener: Listener) -> None:
        with self.lock:
            mine = self.listeners.get(conversation, [])
            if listener in mine:
                mine.remove(listener)
            last = not mine
            if last:
                self.listeners.pop(conversation, None)
        if last and self._store is not None:
            threading.Thread(target=self._notify, args=({"kind": "unlisten", "conversation": conversation},),
                             daemon=True).start()  # not on the event loop

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(_RECONNECT_SECONDS * 3)

    # --- between processes ----------------------------------------------------------------------------------

    def _deliver(self, conversation: str, event: dict[str, Any]) -> None:
        with self.lock:
            for loop, listener in self.listeners.get(conversation, []):
                try:
                    loop.call_soon_threadsafe(listener.put_nowait, event)
                except RuntimeError:  # its loop has closed: the stream is gone
                    continue

    def _listened_elsewhere(self, conversation: str) -> bool:
        others = self._remote.get(conversation)
        if not others:
            return False
        now = time.monotonic()
        return any(until > now for until in list(others.values()))

    def _notify(self, message: dict[str, Any]) -> None:
        assert self._store is not None
        payload = json.dumps({**message, "origin": self.origin}, default=str, separators=(",", ":"))
        if len(payload.encode()) > NOTIFY_MAX_BYTES:  # a large done: the streams read it from the database
            return
        try:
            with self._store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(_NOTIFY, {"channel": CHANNEL, "payload": payload})
        except Exception as exc:  # noqa: BLE001 - best effort: the streams still read each done from the database
            log.warning("could not notify the other processes: %s", type(exc).__name__)

    def _receive(self, payload: str) -> None:
        try:
            message = json.loads(payload)
            kind, origin = message["kind"], message["origin"]
        except (ValueError, KeyError, TypeError):
            return
        if origin == self.origin:
            return
        conversation = str(message.get("conversation", ""))
        if kind == "event" and isinstance(message.get("event"), dict):
            self._deliver(conversation, message["event"])
        elif kind == "listen":
            with self.lock:
                self._remote.setdefault(conversation, {})[origin] = time.monotonic() + 3 * ANNOUNCE_SECONDS
        elif kind == "unlisten":
            with self.lock:
                others = self._remote.get(conversation, {})
                others.pop(origin, None)
                if not others:
                    self._remote.pop(conversation, None)
        elif kind == "hello":
            self._announce_all()

    def _announce_all(self) -> None:
        """Announce every conversation this process has a stream on; forget expired announcements."""
        with self.lock:
            mine = [c for c, listeners in self.listeners.items() if listeners]
            now = time.monotonic()
            for conversation in list(self._remote):
                live = {o: until for o, until in self._remote[conversation].items() if until > now}
                if live:
                    self._remote[conversation] = live
                else:
                    del self._remote[conversation]
        for conversation in mine:
            self._notify({"kind": "listen", "conversation": conversation})

    def _listen(self) -> None:
        """The thread that listens on ``CHANNEL`` with a connection of its own, reconnecting when it drops."""
        import psycopg

        assert self._store is not None
        url = self._store.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        down = False
        while not self._stop.is_set():
            try:
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    if down:
                        log.warning("listening to the other processes' events again")
                        down = False
                    self._notify({"kind": "hello"})
                    self._announce_all()
                    announce_at = time.monotonic() + ANNOUNCE_SECONDS
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=1.0):
                            self._receive(note.payload)
                        if time.monotonic() >= announce_at:
                            self._announce_all()
                            announce_at = time.monotonic() + ANNOUNCE_SECONDS
            except Exception as exc:  # noqa: BLE001 - the database went away: try again shortly
                if not down:
                    log.warning("not listening to the other processes' events: %s", type(exc).__name__)
                    down = True
                self._stop.wait(_RECONNECT_SECONDS)
