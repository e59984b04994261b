"""The executor: approved plans run as durable, idempotent steps.

A plan is written to the state database (with its steps, each keyed by its
idempotency key) before anything runs, and held under a lease by one process.
Each step's effect is applied by its connector with the key, then recorded in
the effect ledger with its audit records in one transaction: two commits for
a one-step plan. After a crash, ``recover`` takes plans whose lease is free
(expired, or held by a dead process on this host), asks each connector to look
the key up before any retry, and records what happened instead of repeating
it. A connector that cannot look keys up gets ``outcome_unknown``, surfaced to
the person, never a silent retry.

``SAYSO_FAULT=crash-after-effect`` makes the process exit (status 137) right
after the first effect is applied and before it is recorded, so tests can
prove exactly-once from outside.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import Connection, Text, and_, bindparam, cast, or_, select, update

from .audit import AuditEvent, AuditLog
from .clock import Clock
from .connectors import Effect
from .errors import ConfigurationError, OutcomeUnknown, RequestError, SaysoError
from .store.schema import plans, steps
from .turn import StepResult, StepStatus
from .workspace import Workspace

__all__ = ["Executor", "Plan", "PlannedStep", "Unreadable", "step_key"]

log = logging.getLogger("sayso")

LEASE_SECONDS = 60.0
_HOST = socket.gethostname()

# Built once: the hot path only binds values (statement construction dominated the per-step cost).
_INSERT_PLAN = plans.insert()
_INSERT_STEPS = steps.insert()
_FINISH_STEP = update(steps).where(steps.c.key == bindparam("b_key")).values(
    status=bindparam("b_status"), effect=bindparam("b_effect"), error=bindparam("b_error"), at=bindparam("b_at"))
_SKIP_STEP = update(steps).where(steps.c.key == bindparam("b_key")).values(status=StepStatus.SKIPPED.value)
_SET_PLAN = update(plans).where(plans.c.id == bindparam("b_id")).values(
    status=bindparam("b_status"), lease_owner=bindparam("b_owner"), lease_until=bindparam("b_until"))


def step_key(conversation: str, turn: str, index: int, action: str, args: dict[str, Any]) -> str:
    """The idempotency key of one step: the same step of the same turn, the same key."""
    canonical = json.dumps([conversation, turn, index, action, args], sort_keys=True, separators=(",", ":"),
                           default=str)
    return "sk_" + hashlib.sha256(canonical.encode()).hexdigest()[:40]


@dataclass
class PlannedStep:
    index: int
    action: str
    connector: str
    operation: str
    args: dict[str, Any]
    risk: str
    key: str
    shown_args: dict[str, Any] = field(default_factory=dict)


@dataclass
class Plan:
    id: str
    conversation: str
    turn: str
    actor: str
    channel: str
    steps: list[PlannedStep]
    origin: dict[str, Any] = field(default_factory=dict)

    def payload(self) -> dict[str, Any]:
        # Shallow copies: the payload is only serialised (asdict's deep copy cost a tenth of a step).
        return {**vars(self), "steps": [dict(vars(s)) for s in self.steps], "origin": dict(self.origin)}

    @classmethod
    def from_payload(cls, data: Any) -> Plan:
        """The plan stored as ``data``, checked field by field: a damaged payload raises
        ``ConfigurationError`` (``plan_unreadable``) instead of failing somewhere later."""
        try:
            plan = _PLAN.validate_python(data)
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(str(part) for part in problem["loc"]) or "the payload"
            raise ConfigurationError(f"its stored payload cannot be read ({where}: {problem['msg']})",
                                     code="plan_unreadable") from None
        if not plan.steps:
            raise ConfigurationError("its stored payload cannot be read (it has no steps)", code="plan_unreadable")
        return plan


_PLAN = TypeAdapter(Plan)


@dataclass
class Unreadable:
    """A plan recovery could not read: skipped, audited, marked ``unreadable`` and left to an operator."""

    id: str
    conversation: str
    turn: str
    reason: str


FinalEvents = Callable[[list[StepResult]], list[AuditEvent]]


class Executor:
    def __init__(self, workspace: Workspace, audit: AuditLog, clock: Clock) -> None:
        self.workspace = workspace
        self.audit = audit
        self.clock = clock
        self.owner = f"{_HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        # A finishing step takes the next number of the store's sequence: the order of execution, for undo.
        self._finish_step = _FINISH_STEP.values(seq=workspace.store.next_step_seq())

    # --- running ---------------------------------------------------------------

    def run(
        self, plan: Plan, *, before: Sequence[AuditEvent], after: FinalEvents,
        prepare: Callable[[Connection], None] | None = None,
        hold: Callable[[Callable[[Connection], Any]], None] | None = None,
    ) -> list[StepResult]:
        """Persist the plan with ``before`` events, run its steps, and record ``after`` with the last one.

        ``prepare`` runs in the same transaction as the plan's insertion (e.g. claiming its confirmation),
        so either both happen or neither does. ``hold`` takes the last step's record instead of writing it,
        for a caller that writes it in a transaction of its own a moment later (the conversation's save);
        until then the plan is ``running`` under this process's lease, as after a crash right after the effect.
        """
        now = self.clock.now().isoformat()
        with self.workspace.store.write() as conn:
            if prepare is not None:
                prepare(conn)
            self.audit.append(conn, before)
            store = self.workspace.store  # nothing reads these writes' results: on PostgreSQL, sent with the commit
            store.execute_at_commit(conn, _INSERT_PLAN, [{
                "id": plan.id, "conversation": plan.conversation, "turn": plan.turn, "actor": plan.actor,
                "status": "running", "lease_owner": self.owner, "lease_until": time.time() + LEASE_SECONDS,
                "payload": plan.payload(), "created_at": now,
            }])
            store.execute_at_commit(conn, _INSERT_STEPS, [
                {"key": s.key, "plan_id": plan.id, "idx": s.index, "actor": plan.actor, "action": s.action,
                 "status": StepStatus.PENDING.value, "at": now}
                for s in plan.steps
            ])
        return self._run_steps(plan, {}, after, recovering=False, hold=hold)

    def _run_steps(
        self, plan: Plan, done: dict[str, StepResult], after: FinalEvents, *, recovering: bool,
        hold: Callable[[Callable[[Connection], Any]], None] | None = None,
    ) -> list[StepResult]:
        results: list[StepResult] = []
        failed = False
        for position, item in enumerate(plan.steps):
            last = position == len(plan.steps) - 1
            if item.key in done:
                results.append(done[item.key])
                continue
            if failed:
                results.append(self._result(item, StepStatus.SKIPPED))
                continue
            events, status, effect, error = self._apply(plan, item, recovering=recovering)
            result = self._result(item, status, effect=effect, error=error)
            results.append(result)
            failed = status is not StepStatus.EXECUTED
            finishing = last or failed
            skipped = [self._result(s, StepStatus.SKIPPED) for s in plan.steps[position + 1:]] if failed else []
            finished = {"b_key": item.key, "b_status": status.value, "b_error": error,
                        "b_at": self.clock.now().isoformat(), "b_effect": effect.model_dump(mode="json") if effect
                        else None}
            lease: dict[str, Any]
            if finishing:
                lease = {"b_id": plan.id, "b_status": "failed" if failed else "done", "b_owner": None, "b_until": None}
            else:
                lease = {"b_id": plan.id, "b_status": "running", "b_owner": self.owner,
                         "b_until": time.time() + LEASE_SECONDS}
            skipping = [{"b_key": s.key} for s in plan.steps[position + 1:]] if failed else []
            closing = events + (after(results + skipped) if finishing else [])
            record = partial(self._record_step, finished, skipping, lease, closing)
            if finishing and hold is not None:
                hold(record)
            else:
                with self.workspace.store.write() as conn:
                    record(conn)
            if finishing:
                return results + skipped
        return results

    def _record_step(self, finished: dict[str, Any], skipped: list[dict[str, Any]], lease: dict[str, Any],
                     events: list[AuditEvent], conn: Connection) -> None:
        """A step's outcome in the effect ledger, the plan's lease or end, and their audit records (the last
        statements of their transaction: on PostgreSQL, sent with its commit)."""
        store = self.workspace.store
        store.execute_at_commit(conn, self._finish_step, [finished])
        store.execute_at_commit(conn, _SKIP_STEP, skipped)
        store.execute_at_commit(conn, _SET_PLAN, [lease])
        self.audit.append(conn, events)

    def _apply(
        self, plan: Plan, item: PlannedStep, *, recovering: bool
    ) -> tuple[list[AuditEvent], StepStatus, Effect | None, str | None]:
        connector = self.workspace.connector(item.connector)
        guarantee = connector.guarantee_for(item.operation)
        base = {"actor": plan.actor, "conversation": plan.conversation, "turn": plan.turn,
                "channel": plan.channel, "action": item.action}
        call: dict[str, Any] = {"connector": item.connector, "operation": item.operation, "idempotency_key": item.key,
                "guarantee": guarantee.value, "request": item.args}
        effect: Effect | None = None
        if recovering:
            if not guarantee.can_lookup:
                note = f"{item.connector} cannot tell whether the step happened before the crash"
                return ([AuditEvent("call", status=StepStatus.OUTCOME_UNKNOWN.value, detail={**call, "note": note},
                                    **base)], StepStatus.OUTCOME_UNKNOWN, None, note)
            effect = connector.lookup(item.key)
            call["recovered"] = effect is not None
        try:
            if effect is None:
                effect = connector.execute(item.operation, item.args, key=item.key, origin=plan.origin)
        except (SaysoError, NotImplementedError, OSError, ValueError) as exc:
            message = exc.message if isinstance(exc, SaysoError) else str(exc)
            log.warning("step %s of plan %s failed: %s", item.action, plan.id, message,
                        extra={"conversation": plan.conversation})
            code = exc.code if isinstance(exc, SaysoError) else "connector_failed"
            if isinstance(exc, OutcomeUnknown):  # sent, then cut off: neither failed nor done, and never retried
                return ([AuditEvent("call", status=StepStatus.OUTCOME_UNKNOWN.value,
                                    detail={**call, "note": message}, **base)], StepStatus.OUTCOME_UNKNOWN, None,
                        message)
            return ([AuditEvent("call", status="failed", detail=call, **base),
                     AuditEvent("error", status="failed", detail={"code": code, "message": message,
                                                                  "invalid_request": isinstance(exc, RequestError)},
                                **base)], StepStatus.FAILED, None, message)
        if os.environ.get("SAYSO_FAULT") == "crash-after-effect":
            os._exit(137)
        detail = {"connector": item.connector, "idempotency_key": item.key, "summary": effect.summary,
                  "changes": [c.model_dump(mode="json") for c in effect.changes], "result": effect.result}
        return ([AuditEvent("call", status="ok", detail=call, **base),
                 AuditEvent("effect", status="ok", detail=detail, **base)], StepStatus.EXECUTED, effect, None)

    @staticmethod
    def _result(item: PlannedStep, status: StepStatus, *, effect: Effect | None = None,
                error: str | None = None) -> StepResult:
        return StepResult(
            action=item.action, args=item.shown_args or item.args, risk=item.risk, status=status,
            effect=effect.model_dump(mode="json", exclude={"key"}) if effect else None, error=error,
        )

    # --- recovery --------------------------------------------------------------

    def recover(self) -> tuple[list[tuple[Plan, list[StepResult]]], list[Unreadable]]:
        """Finish every unfinished plan that no live process holds; a plan that cannot be read is
        skipped (marked ``unreadable``, audited, returned) and the others go on."""
        finished = []
        unreadable = []
        with self.workspace.store.read() as conn:
            rows = conn.execute(select(plans.c.id, plans.c.lease_owner, plans.c.lease_until)
                                .where(plans.c.status == "running")).all()
        for row in rows:
            if not self.lease_free(row.lease_owner, row.lease_until):
                continue
            with self.workspace.store.write() as conn:
                claimed = conn.execute(update(plans).where(and_(
                    plans.c.id == row.id, plans.c.status == "running",
                    or_(plans.c.lease_owner.is_(None), plans.c.lease_owner == row.lease_owner),
                )).values(lease_owner=self.owner, lease_until=time.time() + LEASE_SECONDS)).rowcount
                if not claimed:
                    continue
                try:
                    plan = self._stored_plan(conn, row.id)
                    done = self._done_steps(conn, row.id)
                except (ConfigurationError, ValueError, TypeError) as exc:
                    unreadable.append(self._set_aside(conn, row.id, exc))
                    continue
            log.info("recovering plan %s (%d steps)", plan.id, len(plan.steps),
                     extra={"conversation": plan.conversation})
            closing: FinalEvents = partial(self._recovered, plan)
            results = self._run_steps(plan, done, closing, recovering=True)
            finished.append((plan, results))
        return finished, unreadable

    def _set_aside(self, conn: Connection, plan_id: str, exc: Exception) -> Unreadable:
        """Mark a plan that cannot be read ``unreadable`` (never retried: what ran cannot be told) and audit
        it, in the claim's transaction."""
        reason = exc.message if isinstance(exc, SaysoError) else f"its stored record cannot be read ({exc})"
        row = conn.execute(select(plans.c.conversation, plans.c.turn, plans.c.actor)
                           .where(plans.c.id == plan_id)).one()
        conn.execute(update(plans).where(plans.c.id == plan_id).values(status="unreadable", lease_owner=None,
                                                                       lease_until=None))
        self.audit.append(conn, [AuditEvent("error", row.actor, StepStatus.FAILED.value, None, row.conversation,
                                            row.turn, "recovery", {"code": "plan_unreadable", "plan": plan_id,
                                                                   "message": reason})])
        log.error("plan %s skipped by recovery: %s", plan_id, reason, extra={"conversation": row.conversation})
        return Unreadable(plan_id, row.conversation, row.turn, reason)

    def plan(self, plan_id: str) -> Plan:
        """The stored plan ``plan_id``, checked (``plan_unreadable`` when damaged)."""
        with self.workspace.store.read() as conn:
            return self._stored_plan(conn, plan_id)

    def _stored_plan(self, conn: Connection, plan_id: str) -> Plan:
        """A stored plan, read as text so that a damaged payload is an error of its own, not the driver's;
        a plan naming a system the workspace no longer has cannot run either."""
        text = conn.execute(select(cast(plans.c.payload, Text)).where(plans.c.id == plan_id)).scalar_one()
        try:
            data = json.loads(text)
        except (TypeError, ValueError):
            raise ConfigurationError("its stored payload is not JSON", code="plan_unreadable") from None
        plan = Plan.from_payload(data)
        missing = sorted({s.connector for s in plan.steps} - set(self.workspace.settings.systems))
        if missing:
            raise ConfigurationError(f"its steps use systems that sayso.toml no longer has: {', '.join(missing)}",
                                     code="plan_unreadable")
        return plan

    @staticmethod
    def _recovered(plan: Plan, results: list[StepResult]) -> list[AuditEvent]:
        """The turn's closing record, written by recovery in the crashed turn's place."""
        ok = all(r.status is StepStatus.EXECUTED for r in results)
        return [AuditEvent("turn", plan.actor, "executed" if ok else "failed", plan.steps[0].action,
                           plan.conversation, plan.turn, plan.channel, {"recovered": True})]

    def lease_free(self, owner: str | None, until: float | None) -> bool:
        """Whether a lease may be taken: none, expired, or held by a dead process on this host."""
        if owner is None or until is None or until < time.time():
            return True
        host, _, rest = owner.partition(":")
        pid = rest.partition(":")[0]
        if host != _HOST or not pid.isdigit() or int(pid) == os.getpid():
            return False
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def _done_steps(self, conn: Connection, plan_id: str) -> dict[str, StepResult]:
        done: dict[str, StepResult] = {}
        for row in conn.execute(select(steps).where(and_(steps.c.plan_id == plan_id,
                                                         steps.c.status != StepStatus.PENDING.value))):
            done[row.key] = StepResult(action=row.action, args={}, risk="", status=StepStatus(row.status),
                                       effect=row.effect, error=row.error)
        return done

    # --- undo ------------------------------------------------------------------

    def last_undoable(self, actor: str, undoable: Callable[[str], bool]) -> Any:
        """The actor's executed step that finished last (by ``seq``; a step the migration left unnumbered
        counts as older than every numbered one) whose action ``undoable`` allows undoing, or None."""
        latest = (steps.c.seq.is_(None), steps.c.seq.desc(), steps.c.at.desc(), steps.c.idx.desc())
        with self.workspace.store.read() as conn:
            rows = conn.execute(select(steps).where(and_(steps.c.actor == actor,
                                                         steps.c.status == StepStatus.EXECUTED.value))
                                .order_by(*latest).limit(50)).all()
        return next((r for r in rows if undoable(r.action)), None)

    def undo(self, row: Any, *, channel: str, before: Sequence[AuditEvent],
             after: Callable[[StepResult], list[AuditEvent]]) -> StepResult | None:
        """Compensate the step in ``row`` (once per key in the target), then claim it (``executed`` ->
        ``undone``) and write ``before``, the undo's effect and ``after(result)`` in one transaction.

        None when another undo claimed the step first: it wrote the records, this one writes nothing.
        """
        with self.workspace.store.read() as conn:
            plan = self._stored_plan(conn, row.plan_id)
        item = next(s for s in plan.steps if s.key == row.key)
        connector = self.workspace.connector(item.connector)
        effect = Effect.model_validate(row.effect)
        undone = connector.compensate(effect, key=f"{row.key}:undo")
        detail = {"connector": item.connector, "idempotency_key": f"{row.key}:undo", "undoes": row.key,
                  "summary": undone.summary, "changes": [c.model_dump(mode="json") for c in undone.changes]}
        result = StepResult(action=item.action, args=item.args, risk=item.risk, status=StepStatus.UNDONE,
                            effect=undone.model_dump(mode="json", exclude={"key"}))
        with self.workspace.store.write() as conn:
            claimed = conn.execute(update(steps).where(and_(steps.c.key == row.key,
                                                            steps.c.status == StepStatus.EXECUTED.value))
                                   .values(status=StepStatus.UNDONE.value)).rowcount
            if not claimed:
                return None
            self.audit.append(conn, [*before, AuditEvent("effect", plan.actor, StepStatus.UNDONE.value, item.action,
                                                         plan.conversation, plan.turn, channel, detail),
                                     *after(result)])
        return result
