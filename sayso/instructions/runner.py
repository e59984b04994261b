"""Running due instructions: each firing acts once, as its creator, checked again when it fires.

A firing is a row keyed by the instruction and its scheduled time (and, for a watch over many
records, the record), claimed in the same transaction that moves the instruction on. Its work
runs under a turn id derived from that key, so the idempotency keys of its steps are fixed: a
crash mid-firing is finished by the executor's recovery (the effect is looked up, not repeated)
and a firing that never reached its plan runs again with the same keys. A schedule that missed
several ticks while sayso was down fires once, for the latest missed time, and says it ran late.

This is sayso's own durable-work mechanism rather than DBOS: the state database already holds
plans with leases, keyed steps and recovery; a second engine would split the record of what
ran in two.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, select

from ..audit import AuditEvent
from ..catalog import Tier
from ..clock import Clock
from ..connectors import Record
from ..connectors.provenance import stable_id
from ..directory import Person
from ..errors import SaysoError
from ..executor import LEASE_SECONDS
from ..notify import notification
from ..pipeline import Pipeline, Request, Turn
from ..store.schema import plans, steps
from ..turn import TurnResult, TurnStatus
from ..workspace import Workspace
from .store import Instruction, InstructionBook
from .triggers import Schedule, record_label, state_matches, when_text

__all__ = ["CHECK_EVERY", "LATE_AFTER", "Runner", "notification"]

log = logging.getLogger("sayso")

CHECK_EVERY = timedelta(minutes=1)  # watches on a condition are checked at least this often
LATE_AFTER = timedelta(minutes=2)  # a firing this long after its time says it ran late
CHANNEL = "instruction"


class Runner:
    """Runs what is due; ``tick(to)`` with a pinned clock makes time move in tests and operations."""

    def __init__(self, workspace: Workspace, clock: Clock | None = None) -> None:
        self.ws = workspace
        self.clock = clock or Clock()
        self.book = InstructionBook(workspace.store)

    def tick(self, to: datetime | None = None) -> list[dict[str, Any]]:
        """Run everything due up to ``to`` (now by default) and return what happened, one entry each."""
        now = to or self.clock.now()
        pipeline = Pipeline(self.ws, Clock(now) if to is not None or self.clock.pinned else None, channel=CHANNEL)
        pipeline.recover()  # a firing cut by a crash after its effect: looked up, not repeated
        reports = self._reconcile(pipeline)
        for item in self.book.due(now):
            try:
                reports += self._handle(pipeline, item, now)
            except SaysoError as exc:
                log.warning("instruction %s failed: %s", item.id, exc.message)
                reports.append({"instruction": item.id, "status": "failed", "reply": exc.message})
        return reports

    # --- kinds --------------------------------------------------------------------------------------------

    def _handle(self, pipeline: Pipeline, item: Instruction, now: datetime) -> list[dict[str, Any]]:
        trigger = item.trigger
        if item.kind == "at":
            at = datetime.fromisoformat(trigger["at"])
            return [self._fire(pipeline, item, at, now, f"{item.id}@{at.isoformat()}",
                               {"status": "done", "next_due": None}, self._message(item, None, now))]
        if item.kind == "every":
            schedule = Schedule.model_validate(trigger["schedule"])
            due = datetime.fromisoformat(item.next_due or now.isoformat())
            scheduled = schedule.last_at_or_before(now, due - timedelta(seconds=1)) or due
            following = schedule.next_after(now)
            return [self._fire(pipeline, item, scheduled, now, f"{item.id}@{scheduled.isoformat()}",
                               {"next_due": following.isoformat()}, self._message(item, None, now))]
        if item.kind == "watch":
            return self._watch(pipeline, item, now)
        return self._follow_up(pipeline, item, now)

    def _watch(self, pipeline: Pipeline, item: Instruction, now: datetime) -> list[dict[str, Any]]:
        t = item.trigger
        deadline = datetime.fromisoformat(t["deadline"]) if t.get("deadline") else None
        if t.get("record") is None:
            return self._watch_any(pipeline, item, now, deadline)
        record = self._read(t["record"]["type"], t["record"]["id"])
        if record is None or self._hidden(pipeline, item, record):  # hidden since: as if it were gone
            return [self._end(pipeline, item, "suspended", f"{t['record']['id']} can no longer be found")]
        field = t.get("field")
        value = record.attrs.get(field) if field else record.version
        mode = t["mode"]
        if mode in ("unchanged", "not_state"):  # checked once, at the deadline
            holds = value == t.get("baseline") if mode == "unchanged" else not state_matches(value, t["state"])
            if holds:
                assert deadline is not None
                return [self._fire(pipeline, item, deadline, now, f"{item.id}@{deadline.isoformat()}",
                                   {"status": "done", "next_due": None}, self._message(item, record, now))]
            why = (f"{record.id} moved ({field} {t.get('baseline')} -> {value}) before the deadline"
                   if mode == "unchanged" else f"{record.id} is {value} before the deadline")
            return [self._end(pipeline, item, "done", why + "; nothing was sent")]
        met = state_matches(value, t["state"]) if mode == "becomes" else value != t.get("baseline")
        if met:
            return [self._fire(pipeline, item, now, now, f"{item.id}@met",
                               {"status": "done", "next_due": None}, self._message(item, record, now, value))]
        if deadline is not None and now >= deadline:
            return [self._end(pipeline, item, "expired", f"{record.id} was not {t.get('state') or 'changed'} by "
                              f"{when_text(deadline.isoformat(), self._tz(item))}", tell=True)]
        self.book.update(item, next_due=(now + CHECK_EVERY).isoformat())
        return []

    def _watch_any(self, pipeline: Pipeline, item: Instruction, now: datetime,
                   deadline: datetime | None) -> list[dict[str, Any]]:
        t = item.trigger
        person = self.ws.directory.get(item.owner)
        checked = pipeline.check(person.id, t["read"]["action"], dict(t["read"]["args"]))
        if checked.decision is None or not checked.decision.allowed:
            return [self._end(pipeline, item, "suspended", "you may no longer read "
                              f"{t['type']} records ({checked.decision.rule if checked.decision else 'unknown'})",
                              tell=True)]
        action = checked.action
        found = pipeline.reader(person).keep(self.ws.connector(action.connector).read(action.operation, checked.args),
                                             action)
        seen = set(t.get("seen") or [])
        reports = []
        for record in found:
            if record.id in seen:
                continue
            seen.add(record.id)
            key = f"{item.id}@{record.id}"
            reports.append(self._fire(pipeline, item, now, now, key, {"trigger": {**t, "seen": sorted(seen)}},
                                      self._message(item, record, now, record.attrs.get(t.get("field") or ""))))
            item = self.book.get(item.id)
        if deadline is not None and now >= deadline:
            reports.append(self._end(pipeline, self.book.get(item.id), "done", "the watch reached its end"))
        else:
            self.book.update(self.book.get(item.id), next_due=(now + CHECK_EVERY).isoformat(),
                             trigger={**t, "seen": sorted(seen)})
        return reports

    def _follow_up(self, pipeline: Pipeline, item: Instruction, now: datetime) -> list[dict[str, Any]]:
        t = item.trigger
        query = select(steps.c.key, steps.c.effect, steps.c.at).select_from(
            steps.join(plans, plans.c.id == steps.c.plan_id)).where(and_(
                steps.c.action == t["action"], steps.c.status == "executed", plans.c.conversation == t["conversation"],
                steps.c.at >= t["since"])).order_by(steps.c.at).limit(1)
        with self.ws.store.read() as conn:
            row = conn.execute(query).first()
        if row is None:
            return []
        effect = row.effect or {}
        message = self._message(item, None, now, after=str(effect.get("summary") or t["action"]))
        return [self._fire(pipeline, item, now, now, f"{item.id}@{row.key}", {"status": "done", "next_due": None},
                           message, after=effect)]

    # --- one firing -----------------------------------------------------------------------------------------

    def _fire(self, pipeline: Pipeline, item: Instruction, scheduled: datetime, now: datetime, key: str,
              moves: dict[str, Any], message: str, after: dict[str, Any] | None = None) -> dict[str, Any]:
        turn = f"t_{stable_id(key, 16)}"
        late = now - scheduled > LATE_AFTER
        if late:
            due = when_text(scheduled.isoformat(), self._tz(item))
            message = f"(Sent late: this was due {due}, when sayso was not running.) {message}"
        values = {**moves, "fired": item.fired + 1, "updated_at": now.isoformat()}
        if not self.book.claim(key, item, scheduled.isoformat(), now.isoformat(), turn, late, values,
                               self._lease(pipeline)):
            return {"instruction": item.id, "key": key, "status": "already_fired"}
        return self._run(pipeline, item, key, turn, scheduled, late, message, after)

    def _run(self, pipeline: Pipeline, item: Instruction, key: str, turn: str, scheduled: datetime, late: bool,
             message: str, after: dict[str, Any] | None = None) -> dict[str, Any]:
        if item.owner not in self.ws.directory:
            self.book.finish(key, "suspended", {"reply": f"{item.owner} is no longer in the directory"})
            self.book.update(self.book.get(item.id), status="suspended", note="its creator left the directory")
            return {"instruction": item.id, "key": key, "status": "suspended"}
        person = self.ws.directory.get(item.owner)
        status, result = self._act(pipeline, item, person, turn, message, after)
        if status == "denied":
            status = "suspended"
            why = result.reply
            self.book.update(self.book.get(item.id), status="suspended", note=why)
            self._tell(pipeline, item, person, f"turn:{turn}:suspended",
                       f"I suspended your instruction {item.id} (\"{item.words}\"): {why}")
        elif status in ("error", "failed"):
            self._tell(pipeline, item, person, f"turn:{turn}:failed",
                       f"Your instruction {item.id} (\"{item.words}\") could not run: {result.reply}")
        elif status == "needs_confirmation" and result.confirmation:
            self._tell(pipeline, item, person, f"turn:{turn}:confirm",
                       f"Your instruction {item.id} (\"{item.words}\") wants to: {result.reply} Approve it with "
                       f"confirmation {result.confirmation['id']} (`sayso confirm {result.confirmation['id']}`, "
                       "or in the web chat), or decline it.")
        outcome = {"status": status, "reply": result.reply, "turn": turn, "late": late,
                   "scheduled_for": scheduled.isoformat(), "steps": [s.model_dump(mode="json") for s in result.steps]}
        self.book.finish(key, status, outcome)
        pipeline.audit.record([AuditEvent("instruction", person.id, "fired", item.action, item.conversation, turn,
                                          CHANNEL, {"instruction": item.id, "key": key, "words": item.words,
                                                    "summary": item.summary, "outcome": status, "late": late,
                                                    "scheduled_for": scheduled.isoformat()})])
        return {"instruction": item.id, "key": key, **outcome}

    def _act(self, pipeline: Pipeline, item: Instruction, person: Person, turn: str, message: str,
             after: dict[str, Any] | None) -> tuple[str, TurnResult]:
        if item.action is None:  # "ping me": a message to the owner, where they live
            action, args = notification(person, message, self.ws.catalog, subject=f"sayso: {item.summary[:80]}")
            result = self._once(pipeline, person.id, action, args, item, turn)
            return result.status.value, result
        args = dict(item.args)
        compose = item.trigger.get("compose")
        if compose:
            args[compose] = message
        if after and "description" in args:
            args["description"] = f"{args['description']}\nFollows: {after.get('summary', '')}"[:2000]
        result = self._once(pipeline, person.id, item.action, args, item, turn)
        deliver = item.trigger.get("deliver")
        if result.status is TurnStatus.ANSWERED and deliver:  # "post the pipeline in #sales-east"
            posted = {**deliver["args"], deliver["param"]: f"{result.reply}\n({message})"}
            sent = self._once(pipeline, person.id, deliver["action"], posted, item, f"{turn}n")
            return ("executed" if sent.status is TurnStatus.EXECUTED else sent.status.value), sent
        if result.status is TurnStatus.ANSWERED:  # a read: its answer goes to the owner
            action, nargs = notification(person, f"{message}\n{result.reply}", self.ws.catalog,
                                         subject=f"sayso: {item.summary[:80]}")
            sent = self._once(pipeline, person.id, action, nargs, item, f"{turn}n")
            return ("executed" if sent.status is TurnStatus.EXECUTED else sent.status.value), sent
        return result.status.value, result

    def _once(self, pipeline: Pipeline, user: str, action: str, args: dict[str, Any], item: Instruction,
              turn: str) -> TurnResult:
        """Run a step under a fixed turn id, unless a plan of that turn already exists (a firing resumed
        after a crash): then its recorded outcome stands."""
        with self.ws.store.read() as conn:
            row = conn.execute(select(plans.c.status).where(plans.c.turn == turn)).first()
        if row is not None:
            status = TurnStatus.EXECUTED if row.status == "done" else TurnStatus.FAILED
            return TurnResult(status=status, reply=f"already {row.status} before a restart", turn=turn)
        confirm_from = item.trigger.get("confirm_from")
        if confirm_from and action == item.action:  # a model proposed it: confirmed when it fires, as in a chat

            def body(t: Turn) -> TurnResult:
                t.confirm_from = Tier(confirm_from)
                return pipeline.run_plan(t, [Request(action, args)])

            return pipeline.turn(user, item.conversation, {"action": action, "args": args, "text": item.words},
                                 body, turn_id=turn)
        return pipeline.do(user, action, args, conversation=item.conversation, said=item.words, turn_id=turn)

    def _tell(self, pipeline: Pipeline, item: Instruction, person: Person, key: str, text: str) -> None:
        action, args = notification(person, text, self.ws.catalog, subject="sayso: about your instruction")
        try:
            self._once(pipeline, person.id, action, args, item, f"t_{stable_id(key, 16)}")
        except SaysoError as exc:
            log.warning("could not tell %s about instruction %s: %s", person.id, item.id, exc.message)

    def _end(self, pipeline: Pipeline, item: Instruction, status: str, note: str, *,
             tell: bool = False) -> dict[str, Any]:
        now = pipeline.clock.now().isoformat()
        self.book.update(item, status=status, note=note, next_due=None, updated_at=now)
        pipeline.audit.record([AuditEvent("instruction", item.owner, status, item.action, item.conversation, None,
                                          CHANNEL, {"instruction": item.id, "words": item.words, "note": note})])
        if tell and item.owner in self.ws.directory:
            self._tell(pipeline, item, self.ws.directory.get(item.owner), f"{item.id}:{status}",
                       f"Your instruction {item.id} (\"{item.words}\") is {status}: {note}.")
        return {"instruction": item.id, "status": status, "reply": note}

    # --- after a crash ----------------------------------------------------------------------------------------

    def _reconcile(self, pipeline: Pipeline) -> list[dict[str, Any]]:
        """Firings left ``running`` by a crash: finish them with the same turn ids (so the same keys). A firing
        whose lease a live process holds is that process's to finish, wherever it runs."""
        reports = []
        for row in self.book.running():
            if not self.book.take_over(row["key"], self._lease(pipeline), pipeline.executor.lease_free):
                continue
            item = self.book.get(row["instruction"])
            scheduled = datetime.fromisoformat(row["scheduled_for"])
            record = None
            t = item.trigger
            if t.get("record"):
                record = self._read(t["record"]["type"], t["record"]["id"])
            message = self._message(item, record, pipeline.clock.now())
            reports.append(self._run(pipeline, item, row["key"], row["turn"], scheduled, bool(row["late"]),
                                     message))
        return reports

    # --- helpers ----------------------------------------------------------------------------------------------

    @staticmethod
    def _lease(pipeline: Pipeline) -> dict[str, Any]:
        """A running firing's lease: this process's executor, for as long as a plan's."""
        return {"owner": pipeline.executor.owner, "until": time.time() + LEASE_SECONDS}

    def _read(self, record_type: str, record_id: str) -> Any:
        for connector in self.ws.connectors_for(record_type):
            found = connector.get(record_type, record_id)
            if found is not None:
                return found
        return None

    def _hidden(self, pipeline: Pipeline, item: Instruction, record: Record) -> bool:
        """May the owner no longer read the record they watch? (Who left the directory is handled on firing.)"""
        directory = self.ws.directory
        return item.owner in directory and not pipeline.reader(directory.get(item.owner)).may_read(record)

    def _tz(self, item: Instruction) -> str:
        return self.ws.directory.get(item.owner).timezone if item.owner in self.ws.directory else "UTC"

    def _message(self, item: Instruction, record: Any, now: datetime, value: Any = None, after: str = "") -> str:
        """What the owner reads when it fires: what happened, and why they are told (their own words)."""
        t = item.trigger
        asked = when_text(item.created_at, self._tz(item))
        why = f"You asked on {asked}: \"{item.words}\" (instruction {item.id})."
        if item.kind == "watch" and record is not None:
            name = record_label(record)
            field = t.get("field") or "version"
            mode = t.get("mode")
            if mode == "unchanged":
                where = f"in {t.get('baseline')}" if field == "stage" else f"{field} {t.get('baseline')}"
                what = f"{name} hasn't moved since {asked} (still {where})."
            elif mode == "not_state":
                what = f"{name} is still not {t.get('state')} ({field}: {record.attrs.get(field)})."
            elif mode == "changes":
                what = f"{name} changed: {field} {t.get('baseline')} -> {value}."
            else:
                what = f"{name} is now {value if value is not None else t.get('state')}."
            return f"{what} {why}"
        if item.kind == "after":
            return f"Done: {after}. {why}"
        return f"Reminder: {t.get('text') or item.words}. {why}"
