"""Setting up, listing, changing and cancelling instructions in words.

A message whose trigger clause :func:`split_trigger` recognises becomes an instruction: its
request goes to the interpreter like any other, its records and the condition's subject are
grounded, and the policy is asked now, as the person. What they may not do, what is critical or
a time in the past is refused with the reason, and nothing is stored; a record they may not read
is not found, in the same words as one that does not exist.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, time
from typing import Any

from ..audit import AuditEvent
from ..catalog import Tier
from ..clock import zone
from ..connectors import Record
from ..directory import Person
from ..errors import InvalidArguments
from ..grounding import Focus
from ..interpreter import Interpretation
from ..interpreter.offline.schema import params_of
from ..pipeline import Pipeline, Turn
from ..turn import StepResult, StepStatus, TurnResult, TurnStatus
from .runner import CHECK_EVERY
from .store import ACTIVE, Instruction, InstructionBook, new_id
from .triggers import (
    Split,
    parse_condition,
    parse_schedule,
    parse_when,
    record_label,
    split_trigger,
    state_matches,
    when_text,
)

__all__ = ["Standing"]

Interpret = Callable[[str, list[Record]], Interpretation]

_NOTIFY_ME = re.compile(r"^(?:please\s+)?(?:(?:ping|remind|tell|notify|message|alert|nudge|dm|text|email)\s+me"
                        r"|let\s+me\s+know|give\s+me\s+a\s+(?:shout|ping|heads[- ]up))\b\s*(?P<about>.*?)[.!]?$", re.I)
_DELIVER = re.compile(r"^(?:please\s+)?(?:post|send|share|put)\s+(?P<what>.+?)\s+(?:in|to|into|on)\s+"
                      r"(?P<to>#[\w-]+)[.!]?$", re.I)
_SEND_ME = re.compile(r"^(?:please\s+)?(?:send|email|message|dm|post|give|show)\s+me\s+(?P<what>.+?)[.!]?$", re.I)
_LIST = re.compile(r"^\s*(?:what\s+(?:am\s+i|are\s+you)\s+(?:watching|tracking|keeping\s+an\s+eye\s+on|"
                   r"doing\s+for\s+me|waiting\s+for)|(?:list|show)(?:\s+me)?\s+(?:all\s+)?(?:my\s+)?(?:standing\s+)?(?:instructions|"
                   r"watches|schedules|follow-?ups|automations|reminders\s+you\s+(?:keep|have))|what\s+(?:instructions|"
                   r"watches|schedules|follow-?ups)\s+(?:do\s+i\s+have|are\s+(?:there|set\s+up|active))|what\s+have\s+i\s+"
                   r"set\s+up)\b.*$", re.I)
_CANCEL = re.compile(r"^\s*(?:please\s+)?(?:stop|cancel|delete|remove|drop|turn\s+off|forget)\s+(?P<what>.+?)[.!]?\s*$",
                     re.I)
_CHANGE = re.compile(r"^\s*(?:actually,?\s+)?(?:make\s+(?:it|that)|change\s+(?:it|that)\s+to|move\s+(?:it|that)\s+to|"
                     r"do\s+it)\s+(?P<when>.+?)(?:\s+instead)?[.!]?\s*$", re.I)
_INSTRUCTION_WORDS = re.compile(r"\b(?:check|watch|watching|instruction|schedule|reminder|follow-?up|ping|"
                                r"it|that|one|every|each)s?\b", re.I)
_STOP = frozenset("the my that this a an of on for in to it check watch watching instruction schedule reminder "
                  "followup follow up ping one".split())


class Standing:
    """The conversation's way to standing instructions."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.ws = pipeline.ws
        self.book = InstructionBook(pipeline.ws.store)

    # --- entry -----------------------------------------------------------------------------------------------

    def handle(self, turn: Turn, text: str, focus: Focus, interpret: Interpret,
               last: str | None = None) -> TurnResult | None:
        """The turn's result when ``text`` sets up or manages an instruction, else None; ``last`` is the
        instruction this conversation spoke of last ("make it Thursday instead")."""
        person = turn.person
        if _LIST.match(text):
            return self._list(turn, person)
        change = _CHANGE.match(text)
        if change and self._latest(person, turn.conversation, last) is not None:
            return self._change(turn, person, change["when"], last)
        cancel = _CANCEL.match(text)
        if cancel and (_INSTRUCTION_WORDS.search(cancel["what"]) or cancel["what"].lower().startswith("watching")):
            found = self._cancel(turn, person, cancel["what"], last)
            if found is not None:
                return found
        split = split_trigger(text)
        if split is None:
            return None
        try:
            return self._create(turn, person, split, text, focus, interpret)
        except _Denied as exc:
            self.pipeline.close(turn, [turn.event("turn", "received", request=turn.request), *turn.prelude,
                                       turn.event("instruction", "refused", None, rule=exc.rule, reason=exc.message),
                                       turn.event("turn", TurnStatus.DENIED.value)])
            return TurnResult(status=TurnStatus.DENIED, reply=exc.message, rule=exc.rule)

    # --- creation --------------------------------------------------------------------------------------------

    def _create(self, turn: Turn, person: Person, split: Split, text: str, focus: Focus,
                interpret: Interpret) -> TurnResult:
        now = self.pipeline.clock.now()
        tz = person.timezone
        trigger: dict[str, Any] = {}
        watched: list[Record] = []
        if split.kind == "at":
            at = parse_when(split.clause, now, tz)
            if at <= now:
                raise InvalidArguments(f"{split.clause!r} ({when_text(at.isoformat(), tz)}) has already passed")
            trigger, due, when = {"at": at.isoformat()}, at, f"on {when_text(at.isoformat(), tz)}"
        elif split.kind == "every":
            schedule = parse_schedule(split.clause, tz)
            due = schedule.next_after(now)
            trigger, when = {"schedule": schedule.model_dump()}, f"{schedule.describe()} ({tz}), first on " \
                                                                f"{when_text(due.isoformat(), tz)}"
        elif split.kind == "watch":
            trigger, due, when, watched = self._condition(person, split.clause, now, focus)
        else:
            found = interpret(split.clause, focus.records)
            action = found.steps[0].action if found.steps else None
            if action is None or action not in self.ws.catalog or not self.ws.catalog.get(action).is_write:
                raise InvalidArguments(f"I could not tell which action {split.clause!r} waits for")
            trigger = {"action": action, "conversation": turn.conversation, "since": now.isoformat()}
            due, when = None, f"after {action} runs in this conversation"
        action_name, args, doing = self._request(person, split.request, trigger, focus, watched, interpret)
        item = Instruction(
            id=new_id(), owner=person.id, conversation=turn.conversation, kind=split.kind, words=text.strip(),
            summary=f"{when}: {doing}", trigger=trigger, action=action_name, args=args,
            next_due=due.isoformat() if due else None, created_at=now.isoformat(), updated_at=now.isoformat())
        self.book.add(item)
        reply = f"Okay. {item.summary[0].upper()}{item.summary[1:]}. (Instruction {item.id}; \"stop it\" cancels it.)"
        return self._done(turn, "created", item, reply, TurnStatus.EXECUTED)

    def _condition(self, person: Person, clause: str, now: datetime,
                   focus: Focus) -> tuple[dict[str, Any], datetime, str, list[Record]]:
        cond = parse_condition(clause)
        deadline = parse_when(cond.deadline, now, person.timezone, default=time(0, 0)) if cond.deadline else None
        if deadline is not None and deadline <= now:
            raise InvalidArguments(f"the deadline {cond.deadline!r} has already passed")
        if cond.mode in ("unchanged", "not_state") and deadline is None:
            raise InvalidArguments("by when? say e.g. \"if D-104 hasn't moved by Friday\"")
        record, record_type = self._subject(person, cond.subject, focus)
        by = f" by {when_text(deadline.isoformat(), person.timezone)}" if deadline else ""
        if record is None:  # "if an invoice goes overdue": any record of a type
            assert record_type is not None
            if cond.mode != "becomes" or not cond.state:
                raise InvalidArguments(f"for any {record_type}, say which state to watch for (\"goes overdue\")")
            read, field = self._lister(person, record_type, cond.state)
            lister = self.ws.catalog.get(read["action"])
            current = self.pipeline.reader(person).keep(
                self.ws.connector(lister.connector).read(lister.operation, read["args"]), lister)
            trigger: dict[str, Any] = {"mode": "becomes", "record": None, "type": record_type, "state": cond.state,
                                       "field": field, "read": read, "seen": sorted(r.id for r in current),
                       "deadline": deadline.isoformat() if deadline else None}
            return trigger, now + CHECK_EVERY, f"whenever a{'n' if record_type[0] in 'AEIOU' else ''} " \
                                               f"{record_type} becomes {cond.state}{by}", []
        watched_field = next((f for f in ("stage", "status") if f in record.attrs), None)
        field = watched_field or ""
        name = record_label(record)
        trigger = {"mode": cond.mode, "record": {"type": record.type, "id": record.id, "title": record.title},
                   "field": watched_field, "baseline": record.attrs.get(field) if field else record.version,
                   "state": cond.state, "deadline": deadline.isoformat() if deadline else None}
        if cond.mode == "becomes":
            assert cond.state is not None
            if watched_field is None:
                raise InvalidArguments(f"I cannot tell whether {record.id} is {cond.state}: it has no status")
            if state_matches(record.attrs.get(field), cond.state):
                raise InvalidArguments(f"{name} is already {record.attrs.get(field)}")
            return trigger, now + CHECK_EVERY, f"when {name} is {cond.state}{by}", [record]
        if cond.mode == "changes":
            return trigger, now + CHECK_EVERY, f"when {name} changes{by}", [record]
        assert deadline is not None
        now_in = f"in {record.attrs.get(field)}" if field == "stage" else f"{field} {record.attrs.get(field)}"
        state = f"still {now_in}" if cond.mode == "unchanged" else f"not {cond.state}"
        on = when_text(deadline.isoformat(), person.timezone)
        return trigger, deadline, f"on {on}, if {name} is {state}", [record]

    def _subject(self, person: Person, words: str, focus: Focus) -> tuple[Record | None, str | None]:
        """The record a condition is about ("the Orchid deal", "SUP-17", "it"), or a type for "an invoice".

        Only what the person may read is searched: a record they may not read is not found, in the same
        words as one that does not exist, so watching cannot tell them it exists or what it says."""
        reader = self.pipeline.reader(person)
        missing = InvalidArguments(f"I could not find {words!r}")
        types = list(focus.types) + sorted({t for name in self.ws.settings.systems
                                            for t in self.ws.connector(name).record_types} - set(focus.types))
        lowered = words.lower().strip()
        named_type = next((t for t in types if re.search(rf"\b{t.lower()}s?\b", lowered)), None)
        if re.match(r"^(?:an?|any|some|one\s+of\s+(?:my|the))\s+", lowered) and named_type:
            return None, named_type
        if lowered in ("it", "that", "this", "that one", "this one") or re.fullmatch(r"(?:that|this)\s+\w+", lowered):
            pool = [r for r in focus.records if named_type is None or r.type == named_type]
            if not pool:
                raise InvalidArguments(f"which record is {words!r}? name it (e.g. D-104)")
            now = [r for r in reader.find(pool[0].type, pool[0].id) if r.ref() == pool[0].ref()]
            if not now:
                raise missing
            return now[0], None
        name = re.sub(r"^(?:the|my|our)\s+", "", lowered)
        if named_type:
            name = re.sub(rf"\s*\b{named_type.lower()}s?\b\s*", " ", name).strip()
        candidates: list[Record] = []
        for record_type in [named_type] if named_type else types:
            candidates += [r for r in reader.find(record_type, name) if (r.score or 0) >= 85]
        exact = [r for r in candidates if (r.score or 0) >= 100]
        best = exact or candidates
        ids = {r.ref() for r in best}
        if not best:
            raise missing
        if len(ids) > 1:
            listed = ", ".join(f"{r.id} {r.title}".strip() for r in best[:5])
            raise InvalidArguments(f"{words!r} could be {listed}: name one by its id")
        return best[0], None

    def _lister(self, person: Person, record_type: str, state: str) -> tuple[dict[str, Any], str]:
        """A read action that lists records of ``record_type`` in ``state`` (by an enum parameter)."""
        stem = record_type.lower()
        for action in self.ws.catalog:
            if action.is_write or stem not in action.name.lower():
                continue
            for param in params_of(action):
                for choice in param.enum:
                    if state_matches(choice, state):
                        args = {param.name: choice}
                        checked = self.pipeline.check(person.id, action.name, args)
                        if checked.decision is None or not checked.decision.allowed:
                            raise InvalidArguments(f"you may not list {record_type} records ({action.name})")
                        return {"action": action.name, "args": args}, param.name
        raise InvalidArguments(f"no action lists {record_type} records by {state!r}")

    def _request(self, person: Person, words: str, trigger: dict[str, Any], focus: Focus, watched: list[Record],
                 interpret: Interpret) -> tuple[str | None, dict[str, Any], str]:
        """What to do when it fires: a message to the person, or an action checked now as them."""
        notify = _NOTIFY_ME.match(words)
        if notify and not re.match(r"^\s*(?:to|that)\s+\w", notify["about"] or ""):
            about = re.sub(r"^(?:about|of)\s+", "", (notify["about"] or "").strip())
            if about and about.lower() not in ("it", "that", "then", "about it"):
                trigger["text"] = about
            where = "by email" if person.notify == "email" and "email.send" in self.ws.catalog else "in chat"
            return None, {}, f"I will message you {where}"
        if watched:  # "tell the account owner": of the watched record
            words = re.sub(r"\b(?:the\s+|its\s+)?(?P<rel>account\s+owner|owner|assignee)\b(?!\s+(?:of|on|for)\b)",
                           lambda m: self._related(person, watched[0], m["rel"]) or m[0], words, count=1)
        deliver = _DELIVER.match(words)
        if deliver:
            delivered = self._delivery(person, deliver["what"], deliver["to"], trigger, focus, interpret)
            if delivered is not None:
                return delivered
        send = _SEND_ME.match(words)
        records = watched + focus.records
        found = interpret(f"show {send['what']}" if send else words, records)
        if found.trust != "person":  # a model's proposal: its writes are confirmed when it fires, as in a chat
            trigger["confirm_from"] = "low" if found.trust == "untrusted" else str(
                getattr(self.ws.settings.interpreter, "confirm_model_writes", "medium"))
        if found.kind == "question" and found.steps and found.param:
            step = found.steps[0]
            action = self.ws.catalog.get(step.action)
            if any(p.name == found.param and p.kind == "text" for p in params_of(action)):
                trigger["compose"] = found.param  # composed when it fires: what happened and why
                args = {**step.args, found.param: "(written when it fires)"}
                return self._checked(person, step.action, args, focus, watched, drop=found.param)
        if found.kind != "plan" or not found.steps:
            question = found.question or "what should I do then?"
            raise InvalidArguments(f"I could not set that up: {question}")
        if len(found.steps) > 1:
            raise InvalidArguments("an instruction does one thing; set up one per action")
        step = found.steps[0]
        return self._checked(person, step.action, dict(step.args), focus, watched)

    def _related(self, person: Person, record: Record, relation: str) -> str | None:
        """The person a relation of a record names: its owner or assignee, or its account's owner."""
        if not relation.startswith("account"):
            value = record.attrs.get(relation.strip())
            return value if isinstance(value, str) and value in self.ws.directory else None
        if record.type == "Account":
            owner = record.attrs.get("owner")
            return owner if isinstance(owner, str) and owner in self.ws.directory else None
        name = record.attrs.get("account") or record.attrs.get("related")
        if not isinstance(name, str):
            return None
        accounts = [r for r in self.pipeline.reader(person).find("Account", name) if (r.score or 0) >= 85]
        owner = accounts[0].attrs.get("owner") if accounts else None
        return owner if isinstance(owner, str) and owner in self.ws.directory else None

    def _delivery(self, person: Person, what: str, target: str, trigger: dict[str, Any], focus: Focus,
                  interpret: Interpret) -> tuple[str, dict[str, Any], str] | None:
        """"post the pipeline in #sales-east": a read whose answer is posted where it was asked to go;
        both the read and the post are checked now as the person."""
        found = interpret(f"show {what}", focus.records)
        if found.kind != "plan" or len(found.steps) != 1:
            return None
        step = found.steps[0]
        if step.action not in self.ws.catalog or self.ws.catalog.get(step.action).is_write:
            return None
        action, args, doing = self._checked(person, step.action, dict(step.args), focus, [])
        post = self._checked(person, "chat.send", {"to": target, "text": "(written when it fires)"}, focus, [],
                             drop="text")
        trigger["deliver"] = {"action": "chat.send", "args": post[1], "param": "text"}
        return action, args, f"{doing} and post the answer to {target}"

    def _checked(self, person: Person, action: str, args: dict[str, Any], focus: Focus, watched: list[Record],
                 drop: str | None = None) -> tuple[str, dict[str, Any], str]:
        scope = Focus(records=watched + focus.records, last_list=focus.last_list, types=focus.types)
        checked = self.pipeline.check(person.id, action, args, scope)
        if checked.question is not None:
            raise InvalidArguments(f"I could not set that up: {checked.question.question}")
        if checked.tier is Tier.CRITICAL:
            raise InvalidArguments(f"{action} is critical: nothing critical ever runs from an instruction")
        if checked.decision is None or not checked.decision.allowed:
            rule = checked.decision.rule if checked.decision else "default-deny"
            reason = checked.decision.reason if checked.decision else ""
            raise _Denied(f"you may not {action} ({rule}{': ' + reason if reason else ''}), so I cannot do it "
                          "for you later either", rule)
        stored = {k: v for k, v in checked.args.items() if k != drop}
        confirm = " (it is high risk: I will ask you to confirm when it fires)" if checked.tier >= Tier.HIGH else ""
        shown = ", ".join(f"{k}={v}" for k, v in stored.items() if k != "description")
        return action, stored, f"I will run {action}" + (f" ({shown})" if shown else "") + confirm

    # --- managing --------------------------------------------------------------------------------------------

    def _list(self, turn: Turn, person: Person) -> TurnResult:
        active = self.book.of(person.id, status=ACTIVE)
        if not active:
            reply = "You have no standing instructions."
        else:
            reply = "\n".join([f"You have {len(active)} standing instruction{'s' if len(active) > 1 else ''}:"] +
                              [f"- {i.id}: {i.summary} (you said \"{i.words}\")" for i in active])
        events = [turn.event("turn", "received", request=turn.request), *turn.prelude,
                  turn.event("turn", TurnStatus.ANSWERED.value)]
        self.pipeline.close(turn, events)
        step = StepResult(action="instructions.list", args={}, risk="none", status=StepStatus.EXECUTED,
                          records=[i.brief() for i in active])
        return TurnResult(status=TurnStatus.ANSWERED, reply=reply, steps=[step])

    def _latest(self, person: Person, conversation: str, last: str | None) -> Instruction | None:
        mine = [i for i in self.book.of(person.id, status=ACTIVE) if i.conversation == conversation]
        spoken = [i for i in mine if i.id == last]
        return spoken[0] if spoken else (mine[-1] if mine else None)

    def _cancel(self, turn: Turn, person: Person, what: str, last: str | None) -> TurnResult | None:
        active = self.book.of(person.id, status=ACTIVE)
        lowered = what.lower()
        if re.fullmatch(r"(?:it|that|that one|this one|this)", lowered.strip()):
            latest = self._latest(person, turn.conversation, last)
            chosen = [latest] if latest else []
        else:
            words = {w for w in re.findall(r"[a-z0-9-]+", lowered.removeprefix("watching")) if w not in _STOP}
            chosen = [i for i in active if i.id in lowered or (words and words <= _vocabulary(i, person.timezone))]
        if not chosen:
            return TurnResult(status=TurnStatus.NO_ACTION, reply=f"No standing instruction of yours matches "
                              f"{what!r}. \"What am I watching?\" lists them.") if active else None
        if len(chosen) > 1:
            listed = "; ".join(f"{i.id}: {i.summary}" for i in chosen)
            return TurnResult(status=TurnStatus.NEEDS_CLARIFICATION,
                              reply=f"Which one? {listed}. Say \"stop <id>\".")
        item = self.book.cancel(chosen[0].id, person.id, self.pipeline.clock.now())
        return self._done(turn, "cancelled", item, f"Cancelled {item.id}: {item.summary}.", TurnStatus.EXECUTED)

    def _change(self, turn: Turn, person: Person, words: str, last: str | None) -> TurnResult:
        item = self._latest(person, turn.conversation, last)
        assert item is not None
        now = self.pipeline.clock.now()
        tz = person.timezone
        trigger = dict(item.trigger)
        if item.kind == "every":
            old = parse_schedule("every day", tz).model_validate(trigger["schedule"])
            new = parse_schedule(f"every {words}", tz)
            said_time = bool(re.search(r"\d|noon|morning|afternoon|evening", words))
            said_day = new.freq != "daily" or "day" in words.lower()
            merged = old.model_copy(update={
                **({"hour": new.hour, "minute": new.minute} if said_time else {}),
                **({"freq": new.freq, "weekdays": new.weekdays, "monthday": new.monthday} if said_day else {})})
            trigger["schedule"] = merged.model_dump()
            due = merged.next_after(now)
            summary = f"{merged.describe()} ({tz}), first on {when_text(due.isoformat(), tz)}"
        else:
            old_due = datetime.fromisoformat(item.next_due) if item.next_due else now
            default = old_due.astimezone(zone(tz)).time() if item.kind == "at" else time(0, 0)
            moment = parse_when(words, now, tz, default=default)
            if item.kind == "at" and not re.search(r"day|tomorrow|tonight|week|month|\d+(?:st|nd|rd|th)|/|"
                                                   r"jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec", words.lower()):
                moment = datetime.combine(old_due.astimezone(zone(tz)).date(), moment.timetz())
            if moment <= now:
                raise InvalidArguments(f"{words!r} has already passed")
            if item.kind == "at":
                trigger["at"] = moment.isoformat()
                due = moment
            elif item.kind == "watch":
                trigger["deadline"] = moment.isoformat()
                due = moment if trigger.get("mode") in ("unchanged", "not_state") else now + CHECK_EVERY
            else:
                raise InvalidArguments("a follow-up waits for an action, not a time")
            summary = re.sub(r"(?:on|by) \w{3} \w{3} \d{2} \d{2}:\d{2}", f"{'by' if ' by ' in item.summary else 'on'} "
                             f"{when_text(moment.isoformat(), tz)}", item.summary.split(": ")[0], count=1)
        summary = f"{summary}: {item.summary.split(': ', 1)[1]}" if ": " in item.summary else summary
        changed = self.book.update(item, trigger=trigger, next_due=due.isoformat(), summary=summary,
                                   updated_at=now.isoformat())
        return self._done(turn, "changed", changed, f"Changed {changed.id}: {changed.summary}.", TurnStatus.EXECUTED)

    # --- records -----------------------------------------------------------------------------------------------

    def _done(self, turn: Turn, what: str, item: Instruction, reply: str, status: TurnStatus) -> TurnResult:
        events: list[AuditEvent] = [
            turn.event("turn", "received", request=turn.request), *turn.prelude,
            turn.event("instruction", what, item.action, instruction=item.id, kind=item.kind, words=item.words,
                       summary=item.summary, trigger=item.trigger, args=item.args, next_due=item.next_due),
            turn.event("turn", status.value)]
        self.pipeline.close(turn, events)
        action = {"created": "instructions.create", "cancelled": "instructions.cancel",
                  "changed": "instructions.change"}[what]
        step = StepResult(action=action, args={}, risk="none", status=StepStatus.EXECUTED,
                          effect={"summary": reply, "result": item.brief()})
        return TurnResult(status=status, reply=reply, steps=[step])


class _Denied(InvalidArguments):
    code = "denied"

    def __init__(self, message: str, rule: str) -> None:
        super().__init__(message)
        self.rule = rule


def _vocabulary(item: Instruction, tz: str) -> set[str]:
    words = set(re.findall(r"[a-z0-9-]+", f"{item.words} {item.summary} {item.id}".lower()))
    if item.next_due:
        day = datetime.fromisoformat(item.next_due).astimezone(zone(tz))
        words |= {day.strftime("%A").lower(), day.strftime("%a").lower()}
    record = (item.trigger.get("record") or {})
    words |= set(re.findall(r"[a-z0-9-]+", f"{record.get('id', '')} {record.get('title', '')}".lower()))
    return words | {w.removesuffix("s") for w in words}

