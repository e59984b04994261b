"""The pipeline of one turn: validation, grounding, policy, guard, confirmation,
executor and audit, in that order, with data flowing one way.

``Pipeline.run_plan`` takes the steps a person asked for (from ``sayso do``, or
from an interpreter) and ends in exactly one turn status. A confirmation
resumes the same pipeline later, possibly in another process: the stored plan
is planned again from its arguments, so a changed record, rule or plan needs a
new confirmation.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, select

from . import reply as replies
from .audit import AuditEvent, AuditLog, Redactor
from .catalog import Action, Tier
from .clock import Clock
from .confirmation import Confirmation, Confirmations
from .connectors import Change, Record
from .directory import Person
from .errors import ConfigurationError, ConfirmationError, InputTooLarge, RequestError, SaysoError, SystemFailure
from .executor import Executor, Plan, PlannedStep, step_key
from .grounding import Clarification, Focus, Grounded, ground
from .guard import CRITICAL_RULE, Guard, Verdict
from .policy import Decision, Entity
from .store import schema
from .text import check_text, printable
from .tracing import mark, span
from .turn import StepResult, StepStatus, TurnResult, TurnStatus
from .visibility import Reader, record_entity
from .workspace import Workspace

__all__ = ["Pipeline", "Request", "Turn"]

log = logging.getLogger("sayso")


@dataclass
class Request:
    """One step a person asked for: an action and its arguments, before grounding."""

    action: str
    args: dict[str, Any]


@dataclass
class _Step:
    """One step after validation, grounding, policy and guard."""

    index: int
    action: Action
    args: dict[str, Any]
    grounded: Grounded
    tier: Tier
    decision: Decision | None = None
    verdict: Verdict = Verdict.RUN
    records: list[Record] = field(default_factory=list)
    denied: Decision | None = None  # the requester's own deny, when ``decision`` is an approver's (sayso.approvals)

    def versions(self) -> dict[str, int]:
        return {r.ref(): r.version for r in self.grounded.records.values()}


@dataclass
class _Turn:
    person: Person
    conversation: str
    turn: str
    channel: str
    request: Any
    focus: Focus | None = None  # the conversation's records, for "it" and "the first one"
    prelude: list[AuditEvent] = field(default_factory=list)  # e.g. the interpretation, audited with the turn
    records: list[Record] = field(default_factory=list)  # what grounding found, for the next turn's focus
    confirm_from: Tier | None = None  # writes at or above this tier ask for confirmation (model proposals)
    approver: Person | None = None  # asked to approve what the policy denies this person (sayso.approvals)
    tainted: bool = False  # the reply holds text read from systems (an answer a model phrased from records)
    progress: Callable[[str], None] | None = None  # told each stage as it starts (server-sent events)
    # The turn's closing writes, held for the transaction that saves its conversation (``Chat.say``):
    # one commit fewer per turn. None: each is written at once, in a transaction of its own.
    later: list[Callable[[Connection], Any]] | None = None

    def stage(self, name: str) -> None:
        """A stage starts: told to the progress listener, and (with the ``otel`` extra) a span event."""
        if self.progress is not None:
            self.progress(name)
        mark(name)

    def event(self, event: str, status: str, action: str | None = None, **detail: Any) -> AuditEvent:
        return AuditEvent(event, self.person.id, status, action, self.conversation, self.turn, self.channel,
                          detail)

    def flush(self, conn: Connection) -> None:
        """Write what the turn held, in order, inside the caller's transaction."""
        while self.later:
            self.later.pop(0)(conn)


Turn = _Turn


@dataclass
class Checked:
    """What one step would be, checked now: grounded arguments, risk, the policy's decision."""

    action: Action
    args: dict[str, Any]
    tier: Tier
    decision: Decision | None
    verdict: Verdict
    question: Any
    records: list[Record]


def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


class Pipeline:
    """Runs turns against one workspace; cheap to keep, safe to share across turns."""

    def __init__(self, workspace: Workspace, clock: Clock | None = None, *, channel: str = "cli") -> None:
        self.ws = workspace
        self.clock = clock or Clock()
        self.channel = channel
        self.audit = AuditLog(workspace.store, self.clock, Redactor(workspace.secrets.values()))
        self.guard = Guard(workspace.settings.guard)
        self.confirmations = Confirmations(
            workspace.store, self.clock, workspace.settings.guard.confirmation_ttl_minutes
        )
        self.executor = Executor(workspace, self.audit, self.clock)

    # --- entry points ------------------------------------------------------------

    def do(self, user: str, action: str, args: Any, *, conversation: str | None = None,
           said: str | None = None, turn_id: str | None = None) -> TurnResult:
        """A direct action: everything but interpretation (``sayso do``); ``said`` keeps the person's words.
        ``turn_id`` fixes the turn's id (and so its steps' idempotency keys), for work that may be retried."""
        request: dict[str, Any] = {"action": action, "args": args}
        if said:
            request["text"] = said
        return self._guarded(user, conversation, request,
                             lambda turn: self.run_plan(turn, [Request(action, args)]), turn_id=turn_id)

    def confirm(self, user: str, confirmation_id: str) -> TurnResult:
        request = {"confirm": confirmation_id}
        return self._guarded(user, None, request, lambda turn: self._confirm(turn, confirmation_id))

    def cancel(self, user: str, confirmation_id: str) -> TurnResult:
        request = {"cancel": confirmation_id}
        return self._guarded(user, None, request, lambda turn: self._cancel(turn, confirmation_id))

    def undo(self, user: str) -> TurnResult:
        return self._guarded(user, None, {"undo": "last"}, self._undo)

    def explain(self, user: str, action: str, args: Any) -> dict[str, Any]:
        """What the policy would decide, without doing or recording anything."""
        person = self.ws.directory.get(user)
        step = self._prepare(person, 0, Request(action, args))
        if step.grounded.question:
            return {"allowed": None, "question": step.grounded.question.question,
                    "options": [o.model_dump() for o in step.grounded.question.options]}
        assert step.decision is not None
        return {**step.decision.as_dict(), "action": action, "args": step.args, "risk": step.tier.value,
                "guard": step.verdict.value}

    def pending(self, user: str) -> list[Confirmation]:
        self.ws.directory.get(user)
        return self.confirmations.pending(user)

    def recover(self) -> list[TurnResult]:
        """Finish what crashed processes left: one result per plan, ``failed`` with code ``plan_unreadable``
        for a plan whose stored record cannot be read (skipped, audited, left to an operator)."""
        results = []
        finished, unreadable = self.executor.recover()
        for plan, steps in finished:
            status = TurnStatus.EXECUTED if all(s.status is StepStatus.EXECUTED for s in steps) \
                else TurnStatus.FAILED
            results.append(TurnResult(status=status, reply=f"recovered plan {plan.id}: " + "; ".join(
                f"{s.action} {s.status.value}" for s in steps), steps=steps, conversation=plan.conversation,
                turn=plan.turn))
        for item in unreadable:
            message = (f"plan {item.id} skipped: {item.reason}; it is marked unreadable and not retried, "
                       f"since what ran cannot be told (conversation {item.conversation})")
            results.append(TurnResult(status=TurnStatus.FAILED, reply=message, conversation=item.conversation,
                                      turn=item.turn, error={"code": "plan_unreadable", "message": message}))
        return results

    def outcome(self, plan_id: str) -> TurnResult:
        """What a plan came to, from the effect ledger: the answer of a request whose process ended before it
        could give it. A step undone since still counts as executed."""
        plan = self.executor.plan(plan_id)
        with self.ws.store.read() as conn:
            rows = conn.execute(select(schema.steps).where(schema.steps.c.plan_id == plan_id)).all()
        ledger = {row.key: row for row in rows}
        results = []
        for item in plan.steps:
            row = ledger[item.key]
            effect = {k: v for k, v in row.effect.items() if k != "key"} if isinstance(row.effect, dict) else None
            status = StepStatus.EXECUTED if row.status == StepStatus.UNDONE.value else StepStatus(row.status)
            results.append(StepResult(action=item.action, args=item.shown_args or item.args, risk=item.risk,
                                      status=status, effect=effect, error=row.error))
        ok = all(r.status is StepStatus.EXECUTED for r in results)
        said = replies.effects(results, {a.name: a for a in self.ws.catalog})
        return TurnResult(status=TurnStatus.EXECUTED if ok else TurnStatus.FAILED, reply=said,
                          steps=results, conversation=plan.conversation, turn=plan.turn)

    # --- the turn ----------------------------------------------------------------

    def turn(self, user: str, conversation: str | None, request: Any,
             body: Callable[[Turn], TurnResult], *, turn_id: str | None = None) -> TurnResult:
        """Run ``body`` as one audited turn of ``user`` (the conversation layer's entry point)."""
        return self._guarded(user, conversation, request, body, turn_id=turn_id)

    def confirm_in(self, turn: Turn, confirmation_id: str) -> TurnResult:
        return self._confirm(turn, confirmation_id)

    def cancel_in(self, turn: Turn, confirmation_id: str) -> TurnResult:
        return self._cancel(turn, confirmation_id)

    def supersede_in(self, turn: Turn, confirmation_id: str, why: str) -> bool:
        """A pending confirmation replaced by an amended plan: it can no longer be approved, by the person who
        asked or by whoever was asked to approve it. False when it was no longer pending or is not theirs."""
        try:
            with self.ws.store.write() as conn:
                item = self.confirmations.get(conn, confirmation_id)
                if item is None or item.status != "pending" or turn.person.id not in (item.requester, item.approver):
                    return False
                self.confirmations.settle(conn, item, "superseded")
                self.audit.append(conn, [turn.event("confirmation", "superseded", item.plan["steps"][0]["action"],
                                                    id=item.id, why=[why])])
        except ConfirmationError:
            return False
        return True

    def undo_in(self, turn: Turn, only: Collection[str] | None = None) -> TurnResult:
        """Undo the person's last undoable step, or with ``only``, the last one of those actions."""
        return self._undo(turn, only)

    def close(self, turn: Turn, events: list[AuditEvent]) -> None:
        """Record a turn's closing audit records: at once, or with the conversation when the turn holds its
        writes (``turn.later``)."""
        if turn.later is None:
            self.audit.record(events)
        else:
            turn.later.append(lambda conn: self.audit.append(conn, events))

    def _record(self, turn: Turn, events: list[AuditEvent]) -> None:
        """Write what the turn held, then ``events``, in one transaction."""
        with self.ws.store.write() as conn:
            turn.flush(conn)
            self.audit.append(conn, events)

    def _guarded(self, user: str, conversation: str | None, request: Any, body: Any,
                 turn_id: str | None = None) -> TurnResult:
        """Run ``body(turn)``; a request error ends the turn as ``error`` and is audited."""
        conversation = conversation or _new_id("c")
        turn_id = turn_id or _new_id("t")
        try:
            check_text([user, conversation, request])
            person = self.ws.directory.get(user)
        except SaysoError as exc:  # recorded as it came, a lone surrogate written out
            user, conversation = printable(str(user)), printable(conversation)
            self.audit.record([AuditEvent("error", user[:128], "error", None, conversation, turn_id,
                                          self.channel, {"request": printable(request), **exc.as_dict()})])
            return TurnResult.from_error(exc, conversation=conversation, turn=turn_id)
        turn = _Turn(person, conversation, turn_id, self.channel, request)
        try:
            self._check_text(request)
            result: TurnResult = body(turn)
        except (RequestError, ConfigurationError) as exc:
            self._record(turn, [turn.event("turn", "received", request=request), *turn.prelude,
                                turn.event("error", "error", **exc.as_dict())])
            result = TurnResult.from_error(exc)
        except SystemFailure as exc:  # a system failed while answering a read; nothing was written
            self._record(turn, [turn.event("turn", "received", request=request), *turn.prelude,
                                turn.event("error", TurnStatus.FAILED.value, **exc.as_dict())])
            result = TurnResult(status=TurnStatus.FAILED, reply=exc.message, error=exc.as_dict())
        except BaseException:
            if turn.later:  # what already happened is still recorded (an executed step above all)
                self._record(turn, [])
            raise
        if turn.later:  # held, but no conversation took them
            self._record(turn, [])
        result.conversation, result.turn = turn.conversation, turn_id
        return result

    def run_plan(self, turn: _Turn, requests: Sequence[Request]) -> TurnResult:
        """Plan, check and run the steps of one turn."""
        received = turn.event("turn", "received", request=turn.request)
        events = [received, *turn.prelude]
        turn.stage("grounding")
        steps = []
        reader = self.reader(turn.person)
        with span("ground_and_decide", steps=len(requests)):
            for i, request in enumerate(requests):
                step = self._prepare(turn.person, i, request, turn.focus, reader)
                turn.records.extend(step.grounded.records.values())
                steps.append(step)
                if step.grounded.question:
                    break
            self._decide_in_order(turn.person, steps)
            if turn.approver is not None:
                self._approve_for(turn.approver, turn.person, steps)
        for step in steps:
            events.append(turn.event("grounding", "ok" if not step.grounded.question else "ambiguous",
                                     step.action.name, **step.grounded.describe()))
            if step.grounded.question:
                return self._clarify(turn, events, step, step.grounded.question)
        turn.stage("checking")
        for step in steps:
            assert step.decision is not None
            events += self._decision_events(turn, step)
        denied = next((s for s in steps if s.decision and not s.decision.allowed), None)
        refused = next((s for s in steps if s.verdict is Verdict.REFUSE), None)
        if denied is not None or refused is not None:
            return self._deny(turn, events, steps, denied or refused)  # type: ignore[arg-type]
        reads = [s for s in steps if not s.action.is_write]
        for step in reads:
            step.records = reader.keep(self.ws.connector(step.action.connector).read_as(
                step.action.operation, step.args, origin={"actor": turn.person.id, "actor_name": turn.person.name,
                                                          "conversation": turn.conversation, "turn": turn.turn,
                                                          "actor_email": turn.person.email,
                                                          "now": self.clock.now_in(turn.person.timezone).isoformat()}),
                step.action)
            events.append(turn.event("call", "ok", step.action.name, connector=step.action.connector,
                                     operation=step.action.operation, request=step.args,
                                     records=[r.ref() for r in step.records]))
        writes = [s for s in steps if s.action.is_write]
        if not writes:
            results = [self._read_result(s) for s in steps]
            reply = "\n".join(replies.records(s.action, [_record_dict(r) for r in s.records]) for s in steps)
            events.append(turn.event("turn", TurnStatus.ANSWERED.value))
            self.close(turn, events)
            return TurnResult(status=TurnStatus.ANSWERED, reply=reply, steps=results)
        plan = self._plan(turn, writes)
        if turn.approver is not None and any(s.denied for s in steps):
            turn.stage("awaiting_confirmation")
            return self._ask(turn, events, steps, plan, approver=turn.approver)
        turn.stage("awaiting_confirmation" if self.guard.plan_verdict(s.tier for s in writes) is Verdict.CONFIRM
                   or (turn.confirm_from is not None and any(s.tier >= turn.confirm_from for s in writes))
                   else "executing")
        proposed = turn.confirm_from is not None and any(s.tier >= turn.confirm_from for s in writes)
        if self.guard.plan_verdict(s.tier for s in writes) is Verdict.CONFIRM:
            return self._ask(turn, events, steps, plan)
        if proposed:  # a model proposed it: the person confirms what will run, whatever its tier
            events.append(turn.event("decision", "confirm", writes[0].action.name, rule="model-proposal",
                                     reason=f"proposed by an interpreter ({turn.channel}); writes from "
                                            f"{turn.confirm_from.value if turn.confirm_from else ''} risk up "
                                            "are confirmed by the person"))
            return self._ask(turn, events, steps, plan, note="Proposed by a language model, so it needs your "
                             "confirmation:")
        return self._execute(turn, events, steps, plan)

    def _prepare(self, person: Person, index: int, request: Request, focus: Focus | None = None,
                 reader: Reader | None = None) -> _Step:
        """Validate, ground, decide and weigh one requested step (no side effects); names are looked up
        among the records ``person`` may read."""
        action = self.ws.catalog.get(request.action)
        self._check_size(request.args)
        params = action.validate(action.complete(request.args, self.clock.now_in(person.timezone)))
        find = (reader or self.reader(person)).find
        grounded = ground(action, action.request(params), directory=self.ws.directory, find=find, focus=focus)
        if grounded.question:
            return _Step(index, action, grounded.args, grounded, action.risk.tier)
        args = action.request(action.validate(grounded.args))
        tier = action.risk.evaluate(args)
        resource, context = self._policy_inputs(action, grounded, args)
        decision = self.ws.policies.decide(principal=person, action=action.name, resource=resource,
                                           context=context, directory=self.ws.directory)
        return _Step(index, action, args, grounded, tier, decision, self.guard.verdict(tier))

    def _decide_in_order(self, person: Person, steps: list[_Step]) -> None:
        """Decide a step on a record that earlier steps of the plan change as they will leave it (their previews).

        Each step runs after the ones before it, so a plan that closes a deal and then raises its amount is
        decided on a closed deal, not on the open one the plan started from.
        """
        after: dict[str, dict[str, Any]] = {}  # record ref -> attributes the earlier steps set
        for position, step in enumerate(steps):
            refs = {r.ref() for r in step.grounded.records.values()}
            if step.decision is not None and refs & after.keys():
                resource, context = self._policy_inputs(step.action, step.grounded, step.args, after)
                step.decision = self.ws.policies.decide(principal=person, action=step.action.name,
                                                        resource=resource, context=context,
                                                        directory=self.ws.directory)
            later = {r.ref() for s in steps[position + 1:] for r in s.grounded.records.values()}
            if (step.action.is_write and step.action.preview and refs & later and step.decision is not None
                    and step.decision.allowed):
                connector = self.ws.connector(step.action.connector)
                for change in connector.preview(step.action.operation, step.args):
                    ref = f"{change.record_type}:{change.record_id}"
                    after[ref] = {**after.get(ref, {}), **(change.after or {})}

    def _approve_for(self, approver: Person, requester: Person, steps: list[_Step]) -> None:
        """Each step the policy denies ``requester``, decided instead on whether ``approver`` may approve it for
        them (``Action::"approve"``, sayso.approvals), with the deny kept for the audit."""
        from .approvals import decide_approval  # approvals builds on the pipeline: imported here

        for step in steps:
            if step.decision is None or step.decision.allowed:
                continue
            resource, context = self._policy_inputs(step.action, step.grounded, step.args)
            step.denied = step.decision
            step.decision = decide_approval(self.ws, approver=approver, requester=requester,
                                            action=step.action.name, resource=resource, context=context)

    def check(self, user: str, action: str, args: dict[str, Any], focus: Focus | None = None) -> Checked:
        """Validate, ground, decide and weigh one step as ``user`` would run it now, doing and recording
        nothing (standing instructions check what they will do when they are set up)."""
        step = self._prepare(self.ws.directory.get(user), 0, Request(action, args), focus)
        return Checked(step.action, step.args, step.tier, step.decision, step.verdict, step.grounded.question,
                       list(step.grounded.records.values()))

    def never(self, turn: _Turn, action: str, args: dict[str, Any]) -> TurnResult | None:
        """The turn denied, when no value of the arguments still missing could let the person do ``action``
        (no permit for it can apply to their role): said before any question about those arguments."""
        decision = self.ws.policies.never(principal=turn.person, action=action, directory=self.ws.directory)
        if decision is None:
            return None
        events = [turn.event("turn", "received", request=turn.request), *turn.prelude,
                  turn.event("decision", "deny", action, rule=decision.rule, reason=decision.reason,
                             policy_hash=decision.policy_hash, args=args, missing=True),
                  turn.event("turn", TurnStatus.DENIED.value, action, rule=decision.rule, reason=decision.reason)]
        self.close(turn, events)
        return TurnResult(status=TurnStatus.DENIED, reply=f"Not done: {decision.reason} (rule {decision.rule})",
                          rule=decision.rule, steps=[StepResult(action=action, args=args, risk="none",
                                                                status=StepStatus.SKIPPED)])

    def look(self, turn: _Turn, action: str, args: dict[str, Any]) -> list[Record] | None:
        """Run one read of ``action`` for the turn's person, before the turn's plan is made (the records a
        condition or a request about many records depends on): validated, grounded, decided like any step,
        audited with the turn, answering only with records the person may read. None when the read is
        unclear (a name matched several) or not allowed; then nothing is read."""
        reader = self.reader(turn.person)
        try:
            step = self._prepare(turn.person, 0, Request(action, args), turn.focus, reader)
        except RequestError as exc:  # a name that matches nobody, an invalid value: nothing to read
            turn.prelude.append(turn.event("call", "skipped", action, request=args, error=exc.message))
            return None
        if step.action.is_write or step.grounded.question or step.decision is None or not step.decision.allowed:
            turn.prelude.append(turn.event("call", "skipped", action, request=args))
            return None
        records = reader.keep(self.ws.connector(step.action.connector).read_as(
            step.action.operation, step.args, origin={"actor": turn.person.id, "conversation": turn.conversation,
                                                      "turn": turn.turn}), step.action)
        turn.prelude.append(turn.event("call", "ok", action, connector=step.action.connector,
                                       operation=step.action.operation, request=step.args,
                                       records=[r.ref() for r in records]))
        return records

    def reader(self, person: Person) -> Reader:
        """What ``person`` may read: every search and answer on their behalf goes through one (there is no
        other way to search), so a record they may not read is never named to them."""
        return Reader(self.ws, person)

    def _policy_inputs(self, action: Action, grounded: Grounded, args: dict[str, Any],
                       after: Mapping[str, Mapping[str, Any]] | None = None) -> tuple[Entity, dict[str, Any]]:
        """The resource entity and the context a policy sees for one step; ``after`` holds the attributes
        earlier steps of the plan set, by record ref."""
        directory = self.ws.directory
        spec = action.resource
        record = grounded.records.get(spec.param) if spec.param else None
        if record is not None:
            resource = record_entity(record.type, record.id,
                                     {**record.attrs, **(after or {}).get(record.ref(), {})}, directory)
        elif spec.param and spec.param in grounded.channels:
            resource = Entity("Channel", grounded.channels[spec.param])
        elif spec.param and spec.param in grounded.people:
            resource = Entity("User", grounded.people[spec.param][0].id)
        elif spec.param and args.get(spec.param) is not None:
            resource = Entity(spec.type, str(args[spec.param]))
        else:
            resource = Entity("System", action.connector)
        context: dict[str, Any] = {}
        for key, value in args.items():
            if isinstance(value, bool | int | str):
                context[key] = value
            elif isinstance(value, float):
                context[key] = int(value) + (0 if value.is_integer() else 1)
            elif isinstance(value, list):
                context[key] = [str(v) for v in value]
        for key, people in grounded.people.items():
            if len(people) == 1:
                context[f"{key}_team"] = people[0].team
                context[f"{key}_role"] = people[0].role
        return resource, context

    def _plan(self, turn: _Turn, writes: list[_Step], plan_id: str | None = None) -> Plan:
        items = [PlannedStep(
            index=s.index, action=s.action.name, connector=s.action.connector, operation=s.action.operation,
            args=s.args, risk=s.tier.value, key=step_key(turn.conversation, turn.turn, s.index, s.action.name,
                                                         s.args),
        ) for s in writes]
        related = sorted({r.id for s in writes for r in s.grounded.records.values()})
        origin = {"actor": turn.person.id, "actor_name": turn.person.name, "conversation": turn.conversation,
                  "turn": turn.turn, "request": _request_text(turn.request), "related": related,
                  "actor_email": turn.person.email, "now": self.clock.now_in(turn.person.timezone).isoformat()}
        return Plan(plan_id or _new_id("pl"), turn.conversation, turn.turn, turn.person.id, turn.channel,
                    items, origin)

    def _decision_event(self, turn: _Turn, step: _Step) -> AuditEvent:
        assert step.decision is not None
        return turn.event("decision", "allow" if step.decision.allowed else "deny", step.action.name,
                          rule=step.decision.rule, reason=step.decision.reason,
                          policy_hash=step.decision.policy_hash, risk=step.tier.value, guard=step.verdict.value,
                          args=step.args, **({"errors": list(step.decision.errors)} if step.decision.errors else {}))

    def _decision_events(self, turn: _Turn, step: _Step) -> list[AuditEvent]:
        """A step's decision; for a step routed to an approver, the requester's deny, then the approval's."""
        if step.denied is None:
            return [self._decision_event(turn, step)]
        assert step.decision is not None
        return [turn.event("decision", "deny", step.action.name, rule=step.denied.rule, reason=step.denied.reason,
                           policy_hash=step.denied.policy_hash, args=step.args, routed=True),
                turn.event("decision", "allow" if step.decision.allowed else "deny", "approve",
                           rule=step.decision.rule, reason=step.decision.reason,
                           policy_hash=step.decision.policy_hash, request_action=step.action.name,
                           risk=step.tier.value, args=step.args)]

    # --- outcomes ----------------------------------------------------------------

    def _clarify(self, turn: _Turn, events: list[AuditEvent], step: _Step,
                 question: Clarification) -> TurnResult:
        events.append(turn.event("turn", TurnStatus.NEEDS_CLARIFICATION.value, step.action.name,
                                 question=question.question, options=[o.value for o in question.options]))
        self.close(turn, events)
        return TurnResult(status=TurnStatus.NEEDS_CLARIFICATION, reply=question.question + " " + "; ".join(
            o.label for o in question.options), options=question.options,
            question={"param": question.param, "step": step.index,
                      **({"about": question.about} if question.about else {})},
            steps=[StepResult(action=step.action.name, args=step.args, risk=step.tier.value,
                              status=StepStatus.PENDING)])

    def _deny(self, turn: _Turn, events: list[AuditEvent], steps: list[_Step], step: _Step) -> TurnResult:
        assert step.decision is not None
        if step.decision.allowed:  # allowed by policy, refused by the guard's critical tier
            rule, reason = CRITICAL_RULE, self.guard.refusal(step.action.name)
        else:
            rule, reason = step.decision.rule, step.decision.reason
        events.append(turn.event("turn", TurnStatus.DENIED.value, step.action.name, rule=rule, reason=reason))
        self.close(turn, events)
        results = [StepResult(action=s.action.name, args=s.args, risk=s.tier.value, status=StepStatus.SKIPPED)
                   for s in steps]
        offers = None
        if not step.decision.allowed and step.denied is None and turn.approver is None:
            from .approvals import approvers

            resource, context = self._policy_inputs(step.action, step.grounded, step.args)
            offers = approvers(self.ws, requester=turn.person, action=step.action.name, resource=resource,
                               context=context, could=step.decision.could) or None
        return TurnResult(status=TurnStatus.DENIED, reply=f"Not done: {reason} (rule {rule})", rule=rule,
                          steps=results, options=offers)

    def _ask(self, turn: _Turn, events: list[AuditEvent], steps: list[_Step], plan: Plan,
             note: str = "", approver: Person | None = None) -> TurnResult:
        """A confirmation of ``plan``, given by its own person, or by ``approver`` for them (a routed one)."""
        writes = [s for s in steps if s.action.is_write]
        changes: list[Change] = []
        for step in writes:
            connector = self.ws.connector(step.action.connector)
            changes.extend(connector.preview(step.action.operation, step.args) if step.action.preview else [])
        versions = {ref: v for s in writes for ref, v in s.versions().items()}
        payload = plan.payload()
        with self.ws.store.write() as conn:
            item = self.confirmations.create(
                conn, approver=(approver or turn.person).id, requester=plan.actor, conversation=turn.conversation,
                plan=payload, policy_hash=self.ws.policies.hash, versions=versions,
            )
            events.append(turn.event("confirmation", "pending", writes[0].action.name, id=item.id,
                                     plan_hash=item.plan_hash, approver=item.approver, requester=item.requester,
                                     expires_at=item.expires_at.isoformat(),
                                     changes=[c.model_dump(mode="json") for c in changes]))
            events.append(turn.event("turn", TurnStatus.NEEDS_CONFIRMATION.value, writes[0].action.name))
            self.audit.append(conn, events)
        results = [self._read_result(s) if not s.action.is_write else StepResult(
            action=s.action.name, args=s.args, risk=s.tier.value, status=StepStatus.PENDING,
            effect={"preview": [c.model_dump(mode="json") for c in changes
                                if s.action.preview]} if s.action.preview else None)
            for s in steps]
        lines = [note] if note else []
        lines.append("This needs your confirmation:")
        for step in writes:
            lines.append(f"- {replies.label(step.action)}: {_args_text(step.args)} ({step.tier.value} risk)")
        lines += [f"  {replies.change_line(c)}" for c in changes]
        lines.append(f"Say \"yes\" to go ahead or \"no\" to drop it (or `sayso confirm {item.id}`; "
                     f"expires {item.expires_at.isoformat()}).")
        return TurnResult(status=TurnStatus.NEEDS_CONFIRMATION, reply="\n".join(lines), steps=results,
                          confirmation={"id": item.id, "expires_at": item.expires_at.isoformat()})

    def _execute(self, turn: _Turn, events: list[AuditEvent], steps: list[_Step], plan: Plan,
                 confirmation: Confirmation | None = None) -> TurnResult:
        final: dict[str, TurnResult] = {}
        actions = {s.action.name: s.action for s in steps}

        def after(results: list[StepResult]) -> list[AuditEvent]:
            ok = all(r.status is StepStatus.EXECUTED for r in results)
            status = TurnStatus.EXECUTED if ok else TurnStatus.FAILED
            final["result"] = TurnResult(status=status, reply=replies.effects(results, actions), steps=results)
            return [turn.event("turn", status.value, plan.steps[0].action)]

        def claim(conn: Connection) -> None:
            if confirmation is not None:
                self.confirmations.settle(conn, confirmation, "approved")

        with span("execute", plan=plan.id, steps=len(plan.steps)):
            written = self.executor.run(plan, before=events, after=after, prepare=claim,
                                        hold=turn.later.append if turn.later is not None else None)
        result = final["result"]
        reads = {s.index: self._read_result(s) for s in steps if not s.action.is_write}
        ordered = [reads.get(s.index) or written.pop(0) for s in steps]
        result.steps = [r for r in ordered if r is not None]
        if reads:
            result.reply = "\n".join([replies.records(s.action, [_record_dict(r) for r in s.records])
                                      for s in steps if not s.action.is_write] + [result.reply])
        return result

    # --- confirmations ------------------------------------------------------------

    def _confirm(self, turn: _Turn, confirmation_id: str) -> TurnResult:
        result = self._approve(turn, confirmation_id)
        self._routed(turn, confirmation_id, result, approve=True)
        return result

    def _routed(self, turn: _Turn, confirmation_id: str, result: TurnResult, *, approve: bool) -> None:
        """A confirmation routed to an approver, answered: the requester is told (sayso.approvals)."""
        from .approvals import settled

        settled(self, turn, confirmation_id, result, approve)

    def _approve(self, turn: _Turn, confirmation_id: str) -> TurnResult:
        with self.ws.store.read() as conn:
            item = self.confirmations.usable(conn, confirmation_id, turn.person.id)
        turn.conversation = item.conversation
        stored = Plan.from_payload(item.plan)
        routed = item.requester != item.approver  # approved for someone else: their plan, their policy, re-checked
        owner = self.ws.directory.get(item.requester) if routed else turn.person
        original = _Turn(owner, stored.conversation, stored.turn, turn.channel, turn.request)
        reader = self.reader(owner)
        steps = [self._prepare(owner, s.index, Request(s.action, s.args), reader=reader) for s in stored.steps]
        self._decide_in_order(owner, steps)
        if routed:
            self._approve_for(turn.person, owner, steps)
        events = [turn.event("turn", "received", request=turn.request)]
        events += [e for s in steps if s.decision is not None for e in self._decision_events(turn, s)]
        blocked = next((s for s in steps if s.grounded.question or (s.decision and not s.decision.allowed)
                        or s.verdict is Verdict.REFUSE), None)
        if blocked is not None:
            with self.ws.store.write() as conn:
                self.confirmations.settle(conn, item, "cancelled")
            if blocked.grounded.question:
                return self._clarify(turn, events, blocked, blocked.grounded.question)
            return self._deny(turn, events, steps, blocked)
        versions = {ref: v for s in steps for ref, v in s.versions().items()}
        replanned = self._plan(original, steps, plan_id=stored.id)
        changed = []
        if versions != item.versions:
            changed.append("the records it changes were changed since")
        if self.ws.policies.hash != item.policy_hash:
            changed.append("the policies changed since")
        if [(s.action, s.args) for s in replanned.steps] != [(s.action, s.args) for s in stored.steps]:
            changed.append("the plan changed since")
        if changed:
            with self.ws.store.write() as conn:
                self.confirmations.settle(conn, item, "superseded")
                self.audit.append(conn, [turn.event("confirmation", "superseded", stored.steps[0].action,
                                                    id=item.id, why=changed)])
            fresh = _Turn(turn.person, item.conversation, turn.turn, turn.channel, turn.request)
            mine = _Turn(owner, item.conversation, turn.turn, turn.channel, turn.request)
            note = f"Not done yet: {' and '.join(changed)}, so here is the plan again."
            return self._ask(fresh, events, steps, self._plan(mine, steps), note=note,
                             approver=turn.person if routed else None)
        events.append(turn.event("confirmation", "approved", stored.steps[0].action, id=item.id,
                                 plan_hash=item.plan_hash, approver=turn.person.id,
                                 **({"on_behalf_of": item.requester} if routed else {})))
        if routed:  # the systems are told too: the requester's change, approved by the approver
            stored.origin = {**stored.origin, "approved_by": turn.person.id, "approved_by_name": turn.person.name}
        return self._execute(turn, events, steps, stored, confirmation=item)

    def _cancel(self, turn: _Turn, confirmation_id: str) -> TurnResult:
        with self.ws.store.write() as conn:
            item = self.confirmations.usable(conn, confirmation_id, turn.person.id)
            self.confirmations.settle(conn, item, "cancelled")
            turn.conversation = item.conversation
            self.audit.append(conn, [
                turn.event("turn", "received", request=turn.request),
                turn.event("confirmation", "cancelled", item.plan["steps"][0]["action"], id=item.id),
                turn.event("turn", TurnStatus.CANCELLED.value, item.plan["steps"][0]["action"]),
            ])
        steps = [StepResult(action=s["action"], args=s["args"], risk=s["risk"], status=StepStatus.SKIPPED)
                 for s in item.plan["steps"]]
        result = TurnResult(status=TurnStatus.CANCELLED, reply="Cancelled; nothing was changed.", steps=steps)
        if item.requester != item.approver:
            self._routed(turn, confirmation_id, result, approve=False)
        return result

    def _undo(self, turn: _Turn, only: Collection[str] | None = None) -> TurnResult:
        catalog = self.ws.catalog
        row = self.executor.last_undoable(turn.person.id, lambda name: name in catalog and catalog.get(name).undo
                                          and (only is None or name in only))
        received = turn.event("turn", "received", request=turn.request)
        if row is None:
            self.audit.record([received, turn.event("turn", TurnStatus.NO_ACTION.value)])
            return TurnResult(status=TurnStatus.NO_ACTION, reply="Nothing of yours can be undone."
                              if only is None else "I found nothing of that kind of yours to undo.")
        result = self.executor.undo(row, channel=turn.channel, before=[received], after=lambda done: [
            turn.event("turn", TurnStatus.EXECUTED.value, done.action, undone=row.key)])
        if result is None:  # another undo of the same step (at the same moment) won: it alone took effect
            self.audit.record([received, turn.event("turn", TurnStatus.NO_ACTION.value, row.action,
                                                    already_undone=row.key)])
            return TurnResult(status=TurnStatus.NO_ACTION, reply="Nothing undone: that step was already undone "
                              "by another request.")
        undone = replies.label(catalog.get(result.action)) if result.action in catalog else "your last change"
        return TurnResult(status=TurnStatus.EXECUTED, reply=f"Undone: {undone[0].lower()}{undone[1:]}.",
                          steps=[result])

    # --- helpers -----------------------------------------------------------------

    def _check_text(self, request: Any) -> None:
        limit = self.ws.settings.limits.max_text_chars
        if isinstance(request, dict) and len(str(request.get("text", ""))) > limit:
            raise InputTooLarge(f"the message is {len(str(request['text']))} characters; the limit is {limit}")

    def _check_size(self, value: Any) -> None:
        limits = self.ws.settings.limits
        size = len(json.dumps(value, default=str))
        if size > limits.max_args_bytes:
            raise InputTooLarge(f"the request is {size} bytes; the limit is {limits.max_args_bytes}")

    @staticmethod
    def _read_result(step: _Step) -> StepResult:
        return StepResult(action=step.action.name, args=step.args, risk=step.tier.value,
                          status=StepStatus.EXECUTED, records=[_record_dict(r) for r in step.records])


def _record_dict(record: Record) -> dict[str, Any]:
    return {"type": record.type, "id": record.id, "title": record.title, **record.attrs,
            "version": record.version}


def _request_text(request: Any) -> str:
    if isinstance(request, dict) and "words" in request:  # a request routed to an approver: what was asked
        return str(request["words"])
    if isinstance(request, dict) and "text" in request:
        return str(request["text"])
    return json.dumps(request, sort_keys=True, default=str)


def _args_text(args: dict[str, Any]) -> str:
    """Arguments as a person reads them: "deal D-102, outcome won" (long text is kept short)."""
    return ", ".join(f"{k.replace('_', ' ')} {_short(v)}" for k, v in args.items() if k not in ("origin",))


def _short(value: Any) -> str:
    said = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
    return said if len(said) <= 80 else said[:77] + "..."
