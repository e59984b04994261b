"""``Idempotency-Key``: a POST runs once per caller and key; a retry gets the answer the first run gave.

A key is a row of the state database (its primary key: the caller and the key), written before the request
runs. It names the process that holds it (``host:pid:nonce``), until when that hold lasts (``HOLD_SECONDS``),
and what the request runs as: its turn, and the plan it runs when that is known before (an approved
confirmation). Once the request is answered the row keeps the answer: a retry with the same body gets it back
(``Idempotent-Replay: true``), a retry with another body is refused.

A retry that finds the key still held asks whether its holder can still answer. It cannot when it was a process
of this host that has ended (or this very process, started again under the same pid, as in a container), or
when the hold has lapsed. Then the key resolves from what the request really did, never by running it blindly
again: its saved reply, else its plan (finished first by recovery if a dead process left it running, each step
looked up in its system and never repeated) read from the effect ledger. When nothing of it ran, the key is
taken over, by one retry only, and the request runs once. The answer is stored like any other. A key held
before holders were recorded cannot be tied to what it did: it answers ``409 idempotency_outcome_unknown``.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

from fastapi.responses import JSONResponse
from sqlalchemy import Row, insert, select, update
from sqlalchemy.exc import IntegrityError

from ..errors import IdempotencyConflict
from ..store import Store, schema

__all__ = ["HOLD_SECONDS", "Keys", "StillRunning", "gone", "holder"]

# How long a process holds a key it runs before another may decide it will never answer (a turn that waits
# longer on a model, and has written no plan yet, could then run twice).
HOLD_SECONDS = 600.0
_HOST = socket.gethostname()
_NONCE = uuid.uuid4().hex[:8]  # this process's, so that a later process under the same pid is told apart
_TABLE = schema.idempotency

Handler = Callable[[str], JSONResponse]  # runs the request as the given turn
# What a request whose holder is gone came to, from its turn and plan: the answer, or None when nothing of it
# ran; raises ``StillRunning`` when a live process still runs its plan.
Outcome = Callable[[str | None, str | None], JSONResponse | None]


class StillRunning(Exception):
    """The request's plan is still held by a live process: its outcome is not known yet."""


def holder() -> str:
    """This process, as a key's holder: host, pid, and a nonce of this process."""
    return f"{_HOST}:{os.getpid()}:{_NONCE}"


def gone(held_by: str | None, until: float | None) -> bool:
    """Whether the holder of a key can no longer answer: its hold has lapsed, or it was a process of this host
    that has ended. A holder on another host is trusted until its hold lapses."""
    if held_by is None or until is None or until < time.time():
        return True
    host, _, rest = held_by.partition(":")
    pid, _, nonce = rest.partition(":")
    if host != _HOST or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return nonce != _NONCE
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False


def _new_turn() -> str:
    return f"t_{uuid.uuid4().hex[:16]}"


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _running() -> JSONResponse:
    return _error(409, "idempotency_in_progress", "a request with this Idempotency-Key is running; retry later")


class Keys:
    """Idempotency keys in ``store``; ``outcome`` tells what a request whose holder is gone came to."""

    def __init__(self, store: Store, outcome: Outcome) -> None:
        self.store = store
        self.outcome = outcome

    def run(self, user: str, key: str | None, request: dict[str, Any], handle: Handler, *, at: str,
            plan: str | None = None) -> JSONResponse:
        """Run ``handle`` once per (``user``, ``key``) and store its answer; a retry gets that answer. ``at``:
        when the key was first used; ``plan``: the plan the request runs, when known before it runs."""
        turn = _new_turn()
        if not key:
            return handle(turn)
        digest = hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()
        me = holder()
        try:
            with self.store.write() as conn:
                conn.execute(insert(_TABLE).values(
                    user_id=user, key=key, request_hash=digest, status=0, response={}, created_at=at, holder=me,
                    held_until=time.time() + HOLD_SECONDS, turn=turn, plan=plan))
        except IntegrityError:
            return self._again(user, key, digest, handle)
        return self._finish(user, key, me, turn, handle)

    def _finish(self, user: str, key: str, me: str, turn: str, handle: Handler) -> JSONResponse:
        """Run the request as ``turn`` under this process's hold, and store its answer."""
        mine = (_TABLE.c.user_id == user, _TABLE.c.key == key, _TABLE.c.holder == me)
        try:
            response = handle(turn)
        except Exception:
            with self.store.write() as conn:  # nothing stored: a retry may run it
                conn.execute(_TABLE.delete().where(*mine, _TABLE.c.status == 0))
            raise
        with self.store.write() as conn:
            conn.execute(update(_TABLE).where(*mine).values(
                status=response.status_code, response=json.loads(bytes(response.body)), holder=None,
                held_until=None))
        return response

    def _again(self, user: str, key: str, digest: str, handle: Handler) -> JSONResponse:
        """A key already used: its stored answer, ``409`` while its holder may still answer, else what the
        request came to (or, when nothing of it ran, the request run now)."""
        with self.store.read() as conn:
            row = conn.execute(select(_TABLE).where(_TABLE.c.user_id == user, _TABLE.c.key == key)).first()
        if row is None:  # the first run failed and let the key go a moment ago
            return _running()
        if row.request_hash != digest:
            raise IdempotencyConflict("this Idempotency-Key was used with a different request")
        if row.status != 0:
            return JSONResponse(row.response, status_code=row.status, headers={"Idempotent-Replay": "true"})
        if not gone(row.holder, row.held_until):
            return _running()
        if row.holder is None:
            answer = _error(409, "idempotency_outcome_unknown",
                            "the request with this Idempotency-Key was cut off before its outcome could be "
                            "recorded; see the audit log (GET /v1/audit) for what it did, and use a new key")
        else:
            try:
                found = self.outcome(row.turn, row.plan)
            except StillRunning:
                return _running()
            if found is None:
                return self._take_over(row, handle)
            answer = found
        with self.store.write() as conn:  # kept for every later retry; whoever stores it first, the same answer
            conn.execute(update(_TABLE).where(*self._held(row)).values(
                status=answer.status_code, response=json.loads(bytes(answer.body)), holder=None, held_until=None))
        answer.headers["Idempotent-Replay"] = "true"
        return answer

    def _take_over(self, row: Row[Any], handle: Handler) -> JSONResponse:
        """Nothing of the request ran: hold its key in this process (one retry wins) and run it, as a new turn."""
        me, turn = holder(), _new_turn()
        with self.store.write() as conn:
            taken = conn.execute(update(_TABLE).where(*self._held(row)).values(
                holder=me, held_until=time.time() + HOLD_SECONDS, turn=turn)).rowcount
        if not taken:
            return _running()
        return self._finish(row.user_id, row.key, me, turn, handle)

    @staticmethod
    def _held(row: Row[Any]) -> tuple[Any, ...]:
        """The key still unanswered and held as ``row`` saw it."""
        return (_TABLE.c.user_id == row.user_id, _TABLE.c.key == row.key, _TABLE.c.status == 0,
                _TABLE.c.holder.is_not_distinct_from(row.holder))
