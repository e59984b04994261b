"""Conversations: what was said, what it was about, and what waits for an answer.

A conversation belongs to one person. Its state lives in the state database
(table ``conversations``: focus, last list shown, pending confirmation or
clarification, last denial; table ``messages``: every message), so it survives
restarts and any process can serve the next turn.

``Chat.say`` is one conversational turn: the interpreter proposes from the
person's words and this state; the pipeline grounds, decides, confirms and
executes; the state is then updated from what happened. Only the person's
own message is ever interpreted: records read from systems go into the focus
as ids, names and attributes, never as text to follow.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, PrivateAttr
from sqlalchemy import bindparam, insert, select, update

from . import approvals
from . import reply as replies
from .amend import amend, carry
from .catalog import Action, Tier
from .clock import Clock
from .conditions import settle
from .connectors import Record
from .directory import Person
from .errors import SaysoError, UnknownConversation
from .grounding import Focus, check_names, in_focus
from .instructions import Standing
from .interpreter import Context, FocusItem, Interpretation, Interpreter, registry
from .interpreter.guesses import decline_guesses
from .interpreter.offline.schema import Param, params_of
from .interpreter.values import find_values
from .notify import notification, route
from .pipeline import Pipeline, Request, Turn
from .store import schema
from .tracing import span
from .turn import Option, StepResult, StepStatus, TurnResult, TurnStatus
from .words import Said, cancel_action, delegate_to, undo_matches
from .words import read as read_words

__all__ = ["Chat", "ConversationState", "Conversations", "Pending"]

_FOCUS_SIZE = 10
_ORDINALS = {"first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4,
             "fifth": 5, "5th": 5, "last": -1}
_THE_ONE = re.compile(r"\bthe\s+((?:[A-Za-z][\w&'-]*\s+){0,2}?[A-Za-z][\w&'-]*)\s+one\b", re.I)
_ORDINAL = re.compile(r"\bthe\s+(first|second|third|fourth|fifth|last|1st|2nd|3rd|4th|5th)\b(?!\s+(?:of|time|week))",
                      re.I)
_RELATED = ("owner", "assignee", "account", "manager")  # what a denied request's records keep, for "its owner"
_LIST_SIZE = 50
# Built once: each turn only binds values (building statements with .values() cost more than running them).
_conversations, _messages = schema.conversations, schema.messages
_LOAD = select(_conversations.c.user_id, _conversations.c.state).where(_conversations.c.id == bindparam("b_id"))
_SAVE_STATE = update(_conversations).where(_conversations.c.id == bindparam("b_id")).values(
    state=bindparam("b_state"), updated_at=bindparam("b_at"))
_ADD_MESSAGES = insert(_messages).inline()  # no RETURNING: nothing reads the new ids


class Pending(BaseModel):
    kind: Literal["confirmation", "clarification"]
    confirmation: str | None = None
    mode: Literal["record", "value", "action", "fields"] | None = None
    param: str | None = None
    step: int = 0
    steps: list[dict[str, Any]] = Field(default_factory=list)  # [{"action", "args"}], the person's words
    options: list[Option] = Field(default_factory=list)
    text: str = ""  # what the person asked, for the audit and for context
    original: str = ""  # what they first asked, when a correction amended it since
    about: str | None = None  # the one name of a list the question is about ("Tom Becker" of the attendees)


class ConversationState(BaseModel):
    focus: list[Record] = Field(default_factory=list)  # most recent first
    last_list: list[Record] = Field(default_factory=list)
    pending: Pending | None = None
    last_denied: dict[str, Any] | None = None
    last_request: dict[str, Any] | None = None  # {"text", "status", "reply"} of the last turn
    last_read: dict[str, Any] | None = None  # {"action", "args"} of the last read answered
    history: list[dict[str, str]] = Field(default_factory=list)  # recent messages, for model interpreters
    people: list[str] = Field(default_factory=list)  # for "him", "her": most recent first
    last_steps: list[dict[str, Any]] = Field(default_factory=list)  # the last plan denied or done, for "actually"
    instruction: str | None = None  # the standing instruction spoken of last, for "make it Thursday instead"
    routed: str | None = None  # the confirmation this person asked someone else to approve (sayso.approvals)
    _settled: bool = PrivateAttr(default=False)  # this turn answered the pending confirmation (never saved)


def _slim(record: Record) -> Record:
    """What the focus keeps of a record: id, name and short plain attributes (never long text)."""
    attrs = {k: v for k, v in record.attrs.items()
             if isinstance(v, str | int | float | bool) and not (isinstance(v, str) and len(v) > 80)}
    return Record(type=record.type, id=record.id, title=record.title[:120], attrs=attrs, version=record.version,
                  system=record.system)


class Conversations:
    """The conversations table and its messages."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.store = pipeline.ws.store
        self.clock: Clock = pipeline.clock

    def create(self, user: str, channel: str, conversation: str | None = None) -> str:
        conversation = conversation or f"c_{uuid.uuid4().hex[:16]}"
        now = self.clock.now().isoformat()
        with self.store.write() as conn:
            conn.execute(insert(schema.conversations).values(
                id=conversation, user_id=user, channel=channel, created_at=now, updated_at=now,
                state=ConversationState().model_dump(mode="json")))
        return conversation

    def load(self, conversation: str, user: str) -> ConversationState | None:
        """The state of ``user``'s conversation; None when there is none by that id; another person's
        conversation raises, with the same message as a missing one."""
        with self.store.read() as conn:
            row = conn.execute(_LOAD, {"b_id": conversation}).first()
        if row is None:
            return None
        if row.user_id != user:
            raise UnknownConversation(f"no conversation {conversation!r}")
        return ConversationState.model_validate(row.state)

    def get(self, conversation: str, user: str) -> ConversationState:
        state = self.load(conversation, user)
        if state is None:
            raise UnknownConversation(f"no conversation {conversation!r}")
        return state

    def save(self, conversation: str, state: ConversationState, messages: list[dict[str, Any]],
             turn: Turn | None = None) -> None:
        """Save the state and new messages; with ``turn``, in the same transaction as what the turn held."""
        now = self.clock.now().isoformat()
        with self.store.write() as conn:
            if turn is not None:
                turn.flush(conn)
            # Nothing reads these writes' results: on PostgreSQL they go with the commit, in its round trip.
            self.store.execute_at_commit(conn, _SAVE_STATE, [
                {"b_id": conversation, "b_state": state.model_dump(mode="json"), "b_at": now}])
            self.store.execute_at_commit(conn, _ADD_MESSAGES, [
                {"status": None, "data": None, **message, "conversation": conversation, "at": now}
                for message in messages])

    def messages(self, conversation: str, user: str, limit: int = 200) -> list[dict[str, Any]]:
        self.get(conversation, user)
        with self.store.read() as conn:
            rows = conn.execute(select(schema.messages).where(schema.messages.c.conversation == conversation)
                                .order_by(schema.messages.c.id.desc()).limit(limit)).mappings().all()
        return [dict(row) for row in reversed(rows)]

    def of(self, user: str) -> list[dict[str, Any]]:
        """``user``'s conversations, newest first, each with its title: the first thing they asked in it."""
        table, said = schema.conversations, schema.messages
        first = (select(said.c.text).where(said.c.conversation == table.c.id, said.c.role == "person")
                 .order_by(said.c.id).limit(1).scalar_subquery())
        with self.store.read() as conn:
            rows = conn.execute(select(table.c.id, table.c.channel, table.c.created_at, table.c.updated_at,
                                       first.label("title"))
                                .where(table.c.user_id == user).order_by(table.c.created_at.desc())).mappings()
            return [{**row, "title": _title(row["title"])} for row in rows]


class Chat:
    """Conversational turns over one pipeline."""

    undo_in_words = True  # "undo that" undoes at once; a channel whose words are a model's turns it off

    def __init__(self, pipeline: Pipeline, interpreter: Interpreter | None = None) -> None:
        self.pipeline = pipeline
        self.ws = pipeline.ws
        if interpreter is None:  # the workspace's own choice ([interpreter] in sayso.toml), else offline
            settings = self.ws.settings.interpreter.model_dump()
            interpreter = registry.create(str(settings.get("name", "offline")), settings)
        self.interpreter = interpreter
        self.conversations = Conversations(pipeline)
        self.standing = Standing(pipeline)

    def new(self, user: str) -> str:
        person = self.ws.directory.get(user)
        return self.conversations.create(person.id, self.pipeline.channel)

    def say(self, user: str, text: str, conversation: str | None = None,
            progress: Callable[[str], None] | None = None, turn_id: str | None = None) -> TurnResult:
        """One message from ``user``: interpreted, grounded, decided, confirmed or executed, remembered.
        ``progress`` is told each stage as it starts (interpreting, grounding, checking, executing...);
        ``turn_id`` fixes the turn's id, for a request that may be retried."""
        conversation = conversation or f"c_{uuid.uuid4().hex[:16]}"

        def body(turn: Turn) -> TurnResult:
            turn.progress = progress
            turn.later = []  # the turn's closing records are written with the conversation, in one commit
            turn.stage("interpreting")
            state = self.conversations.load(conversation, turn.person.id)
            if state is None:
                self.conversations.create(turn.person.id, self.pipeline.channel, conversation)
                state = ConversationState()
            messages: list[dict[str, Any]] = [
                {"role": "person", "user_id": turn.person.id, "turn": turn.turn, "text": text}]
            try:
                result = self._turn(turn, state, text)
            except SaysoError as exc:
                state.pending = None
                messages.append({"role": "sayso", "user_id": turn.person.id, "turn": turn.turn,
                                 "text": exc.message, "status": TurnStatus.ERROR.value, "data": exc.as_dict()})
                self.conversations.save(conversation, state, messages, turn)
                raise
            state.last_request = {"text": text, "status": result.status.value, "reply": result.reply[:500]}
            state.history = (state.history + [{"role": "user", "text": text[:1000]},
                                              {"role": "assistant", "text": _summary(result, turn.tainted),
                                               "tainted": "yes" if turn.tainted else ""}])[-12:]
            messages.append({"role": "sayso", "user_id": turn.person.id, "turn": turn.turn, "text": result.reply,
                             "status": result.status.value, "data": result.to_json()})
            self.conversations.save(conversation, state, messages, turn)
            return result

        with span("turn", user=user, conversation=conversation, channel=self.pipeline.channel):
            result = self.pipeline.turn(user, conversation, {"text": text}, body, turn_id=turn_id)
        if result.status is TurnStatus.ERROR and result.reply:  # the code and the message stay in `error`
            result.reply = replies.error_reply(result.reply)
            if (result.error or {}).get("code") in ("unknown_record", "unknown_user"):  # a name near nothing:
                result.reply += " Nothing was changed."  # grounding comes before any step runs
        return result

    def settle(self, user: str, confirmation: str, approve: bool) -> TurnResult:
        """Approve or decline a confirmation from outside the chat (a button, the API), and keep the
        conversation it belongs to in step: the answer and its outcome join its messages."""
        result = (self.pipeline.confirm if approve else self.pipeline.cancel)(user, confirmation)
        if result.conversation is None or result.error:
            return result
        try:
            state = self.conversations.load(result.conversation, user)
        except UnknownConversation:  # approved for someone else: their conversation is told (sayso.approvals)
            return result
        if state is None:
            return result
        if state.pending is not None and state.pending.confirmation == confirmation:
            state.pending = None
        said = f"{'approve' if approve else 'decline'} {confirmation}"
        state.last_request = {"text": said, "status": result.status.value, "reply": result.reply[:500]}
        self.conversations.save(result.conversation, state, [
            {"role": "person", "user_id": user, "turn": result.turn, "text": said},
            {"role": "sayso", "user_id": user, "turn": result.turn, "text": result.reply,
             "status": result.status.value, "data": result.to_json()}])
        return result

    # --- one turn ---------------------------------------------------------------------

    def _turn(self, turn: Turn, state: ConversationState, text: str) -> TurnResult:
        routed = approvals.route(self, turn, state, text)  # "ask carol to approve", before any interpreter
        if routed is not None:
            return routed
        said = read_words(text)
        if said is not None:
            answered = self._words(turn, state, said)
            if answered is not None:
                return answered
        answered = self._fields(turn, state, text)
        if answered is not None:
            return answered
        delegated = self._delegate(turn, state, text)
        if delegated is not None:
            return delegated
        corrected = self._correct(turn, state, text)
        if corrected is not None:
            return corrected
        waiting = state.pending if state.pending and state.pending.kind == "confirmation" else None
        result = self._request(turn, state, text)
        if waiting is not None and state.pending is None and not state._settled:
            state.pending = waiting  # an unrelated request leaves the card in place, and says so
            result.reply += ("\nYour earlier request is still waiting for your confirmation: "
                             f"\"{waiting.text[:120]}\" (say \"yes\" to do it or \"no\" to drop it).")
        return result

    def _words(self, turn: Turn, state: ConversationState, said: Said) -> TurnResult | None:
        """Everyday answers, the same whatever the interpreter: approve or decline what is pending, undo,
        or cancel a meeting; None when the words are to be interpreted as usual."""
        pending = state.pending
        if said.kind in ("affirm", "decline") and pending is not None and pending.kind == "confirmation" \
                and pending.confirmation:
            state.pending = None
            approve = said.kind == "affirm"
            return (self.pipeline.confirm_in if approve else self.pipeline.cancel_in)(turn, pending.confirmation)
        if said.kind == "affirm" and pending is None:
            return self._say(turn, TurnStatus.NO_ACTION, "Nothing is waiting for your answer.")
        if said.kind == "undo" and self.undo_in_words:
            kinds = undo_matches(self.ws.catalog, said.what)
            if said.what and not kinds:
                return self._say(turn, TurnStatus.NO_ACTION, f"I cannot undo a {said.what}.")
            state.pending = None
            return self.pipeline.undo_in(turn, None if not said.what else {a.name for a in kinds})
        if said.kind == "cancel" and cancel_action(self.ws.catalog, said.what) is None:
            return self._say(turn, TurnStatus.NO_ACTION, f"I cannot cancel a {said.what}: none of the connected "
                             "systems lets me do that. You can cancel it in your calendar.")
        return None

    def _delegate(self, turn: Turn, state: ConversationState, text: str) -> TurnResult | None:
        """"ask devi to do it", "tell its owner to do it" after a denial: a message to that person, written
        for them, carrying who asked, what, on which record and why it was not done. None for other words."""
        denied = state.last_denied
        who = delegate_to(text)
        if who is None or not denied:
            return None
        records = denied.get("records") or []
        relation = re.fullmatch(r"(?:its|the|their|the record'?s|the deal'?s|the ticket'?s|the account'?s)?\s*"
                                r"(?P<rel>(?:deal\s+|account\s+)?owner|assignee)", who, re.I)
        recipient: str
        if relation is not None:
            if not records:
                return self._say(turn, TurnStatus.NO_ACTION, "Whose owner? Name the person to ask.")
            rel = relation.group("rel").lower().replace("deal ", "")
            direct = records[0].get(rel.split()[-1]) if rel in ("owner", "assignee") else None
            recipient = str(direct) if isinstance(direct, str) and direct in self.ws.directory \
                else f"{rel} of {records[0]['id']}"
        elif re.fullmatch(r"(?:my|our)\s+(?:manager|boss|lead)", who, re.I):
            if turn.person.manager is None:
                return self._say(turn, TurnStatus.NO_ACTION, "You have no manager in the directory; name the "
                                 "person to ask.")
            recipient = turn.person.manager
        elif who.lower() in ("him", "her", "them") and state.people:
            recipient = state.people[0]
        else:
            recipient = who
        people = self.ws.directory.find(recipient) if recipient in self.ws.directory or " of " not in recipient \
            else []
        to = [people[0].id] if len(people) == 1 else []
        message = delegation_note(turn.person, denied, to)
        target = to[0] if to else recipient
        step: dict[str, Any] = {"action": "chat.send", "args": {"to": target, "text": message}}
        if to:  # where they live (devi reads email), with a subject that says what is asked of them
            action, args = notification(self.ws.directory.get(to[0]), message, self.ws.catalog,
                                        subject=f"Could you do this for {turn.person.name}?")
            step = {"action": action, "args": args}
        turn.prelude.append(turn.event("interpretation", "delegation", step["action"], words=text, to=target,
                                       denied=denied.get("rule")))
        return self._run(turn, state, [step], text)

    def _correct(self, turn: Turn, state: ConversationState, text: str, weak: bool = False) -> TurnResult | None:
        """"actually make it 2,500" with a confirmation or a question pending, or right after a denial: the
        plan amended and checked again from the start (grounding, policy, risk); a pending confirmation is
        superseded. Right after a change was made, it says how to change it instead. None when the message
        is not a correction."""
        pending = state.pending
        last = state.last_request or {}
        if pending is not None:
            if not pending.steps or pending.mode == "action":
                return None
            steps, origin = pending.steps, pending.original or pending.text
        elif state.last_steps and last.get("status") in (TurnStatus.DENIED.value, TurnStatus.EXECUTED.value):
            steps, origin = state.last_steps, str(last.get("text", ""))
        else:
            return None
        now = self.pipeline.clock.now_in(turn.person.timezone)
        amended = amend(steps, text, self.ws.catalog, self.ws.directory, now, strong=pending is None and not weak)
        if amended is None or (pending is None and amended.problem):
            return None
        if amended.problem and pending is not None:
            return self._say(turn, TurnStatus.NO_ACTION, f"I could not change that: {amended.problem}. "
                             + _still_waiting(pending))
        if pending is None and last.get("status") == TurnStatus.EXECUTED.value:
            name = amended.changed[0][0].replace("_", " ")
            return self._say(turn, TurnStatus.NO_ACTION, f"That was already done, so I changed nothing. To change "
                             f"the {name}, say \"undo that\" and ask again, or ask for the change itself.")
        changed = amended.sentence(self.ws.directory)
        turn.prelude.append(turn.event("interpretation", "correction", amended.steps[-1]["action"], words=text,
                                       changed=[{"param": p, "before": b, "after": a} for p, b, a in amended.changed],
                                       of=pending.confirmation if pending is not None else "last request"))
        try:
            result = self._run(turn, state, amended.steps, f"{origin} ({changed[:-1].lower()})")
            if state.pending is not None:
                state.pending.original = origin
        except SaysoError as exc:
            state.pending = pending
            if pending is None:
                raise
            return self._say(turn, TurnStatus.NO_ACTION, f"I could not change that: "
                             f"{replies.error_text(exc.message)}. " + _still_waiting(pending))
        action = self.ws.catalog.get(amended.steps[-1]["action"])
        grounded = result.steps[-1].args if result.steps else {}
        titles = {r.id: r.title for r in turn.records}
        records = {name: f"{grounded[name]} {titles.get(str(grounded[name]), '')}".strip()
                   for name, _, _ in amended.changed if name in action.marked("x-record") and name in grounded}
        changed = amended.sentence(self.ws.directory, records)
        if pending is not None and pending.kind == "confirmation" and pending.confirmation:
            self.pipeline.supersede_in(turn, pending.confirmation, f"amended: {changed}")
            state._settled = True
        result.reply = f"{changed}\n{result.reply}"
        return result

    def _request(self, turn: Turn, state: ConversationState, text: str) -> TurnResult:
        standing = self._standing(turn, state, text)
        if standing is not None:
            return standing
        context = self._context(state, turn.person)
        words = text
        with span("interpret", interpreter=self.interpreter.name, conversation=turn.conversation):
            found = self.interpreter.interpret(text, context, self.ws.catalog, turn.person)
            named = self._named_in_focus(state, text, found)
            if named is not None:  # "close the export one" after a list of tickets: the ticket is meant
                words = named
                found = self.interpreter.interpret(words, context, self.ws.catalog, turn.person)
        found = decline_guesses(found, words, self.ws.catalog)  # whichever interpreter proposed it
        found = settle(found, words, interpreter=self.interpreter, context=context, catalog=self.ws.catalog,
                       person=turn.person, look=lambda action, args: self.pipeline.look(turn, action, args))
        first = found.steps[0].action if found.steps else None
        turn.prelude.append(turn.event("interpretation", found.kind, first, **found.audit(),
                                       **({"words": words} if words != text else {})))
        turn.confirm_from = self._confirm_from(found)
        result = self._outcome(turn, state, text, found)
        actions = self.ws.catalog
        if found.notice:  # an interpreter's note ("... (crm.update_deal not run)") in words too
            result.reply = f"{replies.without_action_names(found.notice, actions)}\n{result.reply}"
        if result.status is TurnStatus.NEEDS_CLARIFICATION:  # options an interpreter named by action
            result.reply = replies.without_action_names(result.reply, actions)
            for option in result.options or []:
                option.label = replies.without_action_names(option.label, actions)
        if result.status is TurnStatus.ANSWERED and getattr(self.interpreter, "answer_reads", False):
            self._answer_with_model(turn, text, result)
        return result

    def _standing(self, turn: Turn, state: ConversationState, text: str) -> TurnResult | None:
        """Work for later ("every Monday at 8 ...", "if D-104 hasn't moved by Friday, ping me"), or listing,
        changing and cancelling it; None for an ordinary message. An answer to a question is never one."""
        if state.pending is not None and state.pending.kind == "clarification":
            return None
        focus = Focus(records=state.focus, last_list=state.last_list, types=self.ws.catalog.record_types())

        def interpret(words: str, records: list[Record]) -> Interpretation:
            context = self._context(state, turn.person)
            seen = {(r.type, r.id) for r in records}
            context.focus = [_item(r) for r in records] + [f for f in context.focus if (f.type, f.id) not in seen]
            found = self.interpreter.interpret(words, context, self.ws.catalog, turn.person)
            first = found.steps[0].action if found.steps else None
            turn.prelude.append(turn.event("interpretation", found.kind, first, words=words, **found.audit()))
            return found

        result = self.standing.handle(turn, text, focus, interpret, state.instruction)
        if result is not None:
            state.pending = None
            made = [s.effect["result"]["id"] for s in result.steps if s.effect and "id" in s.effect.get("result", {})]
            state.instruction = made[0] if made else state.instruction
        return result

    def _confirm_from(self, found: Interpretation) -> Tier | None:
        """From which risk tier writes ask for confirmation in this turn, because of who proposed them."""
        if found.trust == "untrusted":
            return Tier.LOW  # the context held text from systems: every write is confirmed
        if found.trust == "model":
            return Tier(str(getattr(self.ws.settings.interpreter, "confirm_model_writes", "medium")))
        return None

    def _answer_with_model(self, turn: Turn, text: str, result: TurnResult) -> None:
        """The model phrases the answer to a read from its records, in a call with no tools."""
        records = [r for step in result.steps for r in (step.records or [])]
        answer = getattr(self.interpreter, "answer", None)
        if not records or answer is None:
            return
        try:
            said, detail = answer(text, records, turn.person)
        except SaysoError as exc:
            self.pipeline.close(turn, [turn.event("interpretation", "answer_failed", None, error=exc.message)])
            return
        self.pipeline.close(turn, [turn.event("interpretation", "answer", result.steps[0].action,
                                              interpreter=self.interpreter.name, reply=said, **detail)])
        if said:
            result.reply = said
            turn.tainted = True

    def _outcome(self, turn: Turn, state: ConversationState, text: str, found: Interpretation) -> TurnResult:
        pending = state.pending
        if found.kind == "reply":
            return self._reply(turn, state, found, pending, text)
        if pending is not None and pending.kind == "confirmation" and found.kind in ("plan", "question"):
            state.pending = None  # a new request: the old confirmation stays listed in `sayso pending`
        if found.kind == "none":
            if found.reason == "decline" and pending is not None:
                state.pending = None
                if pending.kind == "confirmation" and pending.confirmation:
                    state._settled = True
                    return self.pipeline.cancel_in(turn, pending.confirmation)
            return self._say(turn, TurnStatus.NO_ACTION, found.reply or "Nothing to do.")
        steps: list[dict[str, Any]] = [{"action": s.action, "args": dict(s.args)} for s in found.steps]
        if found.kind == "plan" and steps:
            self._fill_reference(state, steps, "", text)
        last = state.last_request or {}
        if found.kind == "question" and pending is None and last.get("status") == TurnStatus.DENIED.value:
            corrected = self._correct(turn, state, text, weak=True)  # "change the amount to 15000": as a new
            if corrected is not None:  # request it is incomplete; it completes the request just denied
                return corrected
        if found.kind == "question":
            param = found.param
            denied = self.pipeline.never(turn, steps[-1]["action"], steps[-1]["args"]) if param and steps else None
            if denied is not None:  # permission before questions: no answer could make it allowed
                return denied
            if param is not None and steps:
                self.ws.catalog.get(steps[-1]["action"]).check_given(steps[-1]["args"])
                check_names(self.ws.catalog.get(steps[-1]["action"]), steps[-1]["args"],
                            directory=self.ws.directory, find=self.pipeline.reader(turn.person).find)
            if param is not None and steps and (self._fill_reference(state, steps, param, text)
                                                or self._fill_context(turn.person, state, steps, param, text)):
                return self._run(turn, state, steps, text)
            chosen = self._chosen_by_focus(state, steps[-1], found.options) if param is None and steps else None
            if chosen is not None:  # "the SSO one" right after a list of tickets: the ticket action
                steps[-1] = {"action": chosen.name, "args": carry(
                    steps[-1]["args"], chosen, text, self.ws.directory,
                    self.pipeline.clock.now_in(turn.person.timezone))}
                return self._run(turn, state, steps, text)
            question = found.question or "Could you say more?"
            if param is None and steps:
                question = self._look_around(turn, state, steps[-1]) + question
            options = found.options
            if param is not None and not options and steps:  # "Which account?" right after a list: those
                options = self._shown_options(state, steps[-1]["action"], param)
                question += (" " + "; ".join(o.label for o in options)) if options else ""
            state.pending = Pending(kind="clarification", mode="value" if param else "action", param=param,
                                    step=max(len(steps) - 1, 0), steps=steps, options=options, text=text)
            return self._ask(turn, question, options, steps, param)
        return self._run(turn, state, steps, text)

    def _reply(self, turn: Turn, state: ConversationState, found: Interpretation,
               pending: Pending | None, text: str) -> TurnResult:
        if pending is None:
            return self._say(turn, TurnStatus.NO_ACTION, "Nothing is waiting for an answer.")
        state.pending = None
        if pending.kind == "confirmation" and pending.confirmation:
            state._settled = True
            if found.reason == "affirm":
                return self.pipeline.confirm_in(turn, pending.confirmation)
            return self.pipeline.cancel_in(turn, pending.confirmation)
        if found.reason == "negate":
            return self._say(turn, TurnStatus.CANCELLED, "Okay, dropped; nothing was changed.")
        steps = pending.steps
        target = steps[pending.step]
        if pending.mode == "action" and found.value:
            chosen = self.ws.catalog.get(found.value)
            steps[pending.step] = {"action": chosen.name, "args": carry(
                target["args"], chosen, pending.text, self.ws.directory,
                self.pipeline.clock.now_in(turn.person.timezone))}
        elif pending.param:
            value: Any = found.value
            if found.steps and pending.param in found.steps[0].args:
                value = found.steps[0].args[pending.param]
                for key, extra in found.steps[0].args.items():  # more values said in the same answer
                    target["args"].setdefault(key, extra)
            before = target["args"].get(pending.param)
            if isinstance(before, list) and pending.about in before and not isinstance(value, list):
                value = [value if v == pending.about else v for v in before]  # only the name asked about
            target["args"][pending.param] = self._on_the_day_said(turn, target["action"], pending, value, text)
        return self._run(turn, state, steps, pending.text)

    def _on_the_day_said(self, turn: Turn, action: str, pending: Pending, value: Any, answer: str) -> Any:
        """"2pm" to "What time tomorrow?" (or to a time sayso could not work out "tomorrow"): the day the request
        said is kept, the answer gives only the hour. Kept only when the request said exactly one day and the
        answer says none."""
        param = next((p for p in params_of(self.ws.catalog.get(action)) if p.name == pending.param), None)
        if param is None or param.kind != "datetime" or not isinstance(value, str) or not answer:
            return value
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            return value
        now = self.pipeline.clock.now_in(turn.person.timezone)
        said = find_values(answer, now)
        if not any(v.kind == "time" for v in said) or any(v.kind in ("date", "datetime", "range") for v in said):
            return value
        days = {v.value for v in find_values(pending.original or pending.text, now) if v.kind == "date"}
        if len(days) != 1:
            return value
        day = days.pop()
        return when.replace(year=day.year, month=day.month, day=day.day).isoformat()

    def _run(self, turn: Turn, state: ConversationState, steps: list[dict[str, Any]], text: str) -> TurnResult:
        steps[:] = [route(s, text, turn.person, self.ws.directory, self.ws.catalog) for s in steps]
        for step in steps:
            self._fill_origin(turn, step, text)
        unchanged = self._unchanged(steps)
        if unchanged is not None:  # "bump the SSO one to urgent": a change that names nothing to change
            index, question = unchanged
            state.pending = Pending(kind="clarification", mode="fields", step=index, steps=steps, text=text)
            return self._ask(turn, question, [], steps[:index + 1], None)
        missing = self._missing(steps)
        if missing is not None:  # asked as a question, never an error: "What should the reason be?"
            index, param = missing
            state.pending = Pending(kind="clarification", mode="value", param=param.name, step=index, steps=steps,
                                    options=[Option(label=v, value=v) for v in param.enum], text=text)
            return self._ask(turn, replies.question_for(param), state.pending.options, steps[:index + 1],
                             param.name)
        turn.focus = Focus(records=state.focus, last_list=state.last_list, types=self.ws.catalog.record_types())
        result = self.pipeline.run_plan(turn, [Request(s["action"], s["args"]) for s in steps])
        self._remember(turn, state, result, steps, text)
        return result

    def _unchanged(self, steps: list[dict[str, Any]]) -> tuple[int, str] | None:
        """A change of a record that gives none of the values it could change (every one optional): the
        question that asks for them, naming each with its choices."""
        for index, step in enumerate(steps):
            action = self.ws.catalog.get(step["action"])
            params = params_of(action)
            records = [p for p in params if p.kind == "record"]
            values = [p for p in params if p.kind != "record" and p.name not in ("description", "origin")]
            if not action.is_write or not records or len(values) < 2 or any(p.required for p in values) \
                    or any(step["args"].get(p.name) not in (None, "", []) for p in values) \
                    or any(step["args"].get(p.name) in (None, "") for p in records if p.required):
                continue
            named = [p.name.replace("_", " ") + (f" ({', '.join(e.replace('_', ' ') for e in p.enum)})"
                                                 if p.enum else "") for p in values]
            return index, f"What should change: the {', the '.join(named[:-1])} or the {named[-1]}?"
        return None

    def _fields(self, turn: Turn, state: ConversationState, text: str) -> TurnResult | None:
        """The answer to "What should change: ...?": the values it gives fill the waiting step; None when it
        gives none (a new request)."""
        pending = state.pending
        if pending is None or pending.mode != "fields" or not pending.steps:
            return None
        step = pending.steps[pending.step]
        action = self.ws.catalog.get(step["action"])
        filled = carry(step["args"], action, text, self.ws.directory, self.pipeline.clock.now_in(turn.person.timezone))
        if filled == step["args"]:
            return None
        pending.steps[pending.step] = {**step, "args": filled}
        turn.prelude.append(turn.event("interpretation", "answer", action.name, words=text,
                                       filled=sorted(set(filled) - set(step["args"]))))
        return self._run(turn, state, pending.steps, pending.text)

    def _missing(self, steps: list[dict[str, Any]]) -> tuple[int, Param] | None:
        """The first required argument no step has yet (one with a default of its own is not missing)."""
        for index, step in enumerate(steps):
            action = self.ws.catalog.get(step["action"])
            defaults = action.marked("x-default")
            for param in params_of(action):
                if param.required and param.name not in defaults and step["args"].get(param.name) in (None, "", []):
                    return index, param
        return None

    # --- context ----------------------------------------------------------------------

    def _context(self, state: ConversationState, person: Person) -> Context:
        pending = state.pending
        return Context(
            now=self.pipeline.clock.now_in(person.timezone),
            focus=[_item(r) for r in state.focus],
            last_list=[_item(r) for r in state.last_list],
            pending=pending.kind if pending else None,
            pending_param=pending.param if pending else None,
            pending_action=pending.steps[pending.step]["action"] if pending and pending.steps else None,
            pending_options=pending.options if pending else [],
            last_denied=state.last_denied,
            last_read=state.last_read,
            people=state.people,
            history=[{"role": m["role"], "text": m["text"]} for m in state.history[-6:]],
            tainted=any(m.get("tainted") for m in state.history[-6:]),
            directory=self.ws.directory,
        )

    def _remember(self, turn: Turn, state: ConversationState, result: TurnResult, steps: list[dict[str, Any]],
                  text: str) -> None:
        touched = [_slim(r) for r in turn.records]
        listed: list[Record] = []
        for step in result.steps:
            for data in step.records or []:
                listed.append(_slim(Record(type=data["type"], id=data["id"], title=data.get("title", ""),
                                           attrs={k: v for k, v in data.items()
                                                  if k not in ("type", "id", "title", "version")},
                                           version=data.get("version", 0))))
        if listed:
            state.last_list = listed[:_LIST_SIZE]
        fresh = list({r.ref(): r for r in listed[:1] + touched}.values())  # one record shown: "it" is that one
        if len(listed) > 1:
            fresh = touched  # a list is reached by "the first one", not by "it"
        seen = {r.ref() for r in fresh}
        state.focus = (fresh + [r for r in state.focus if r.ref() not in seen])[:_FOCUS_SIZE]
        people = [v for r in fresh[:1] for k, v in r.attrs.items() if k in ("owner", "assignee")]
        for step in result.steps:
            for value in step.args.values():
                people += [v for v in (value if isinstance(value, list) else [value]) if isinstance(v, str)]
        people = [p for p in dict.fromkeys(people) if p in self.ws.directory and p != turn.person.id]
        if people:
            state.people = (people + [p for p in state.people if p not in people])[:_FOCUS_SIZE]
        if result.status is TurnStatus.NEEDS_CONFIRMATION and result.confirmation:
            state.pending = Pending(kind="confirmation", confirmation=result.confirmation["id"], steps=steps,
                                    text=text)
        elif result.status is TurnStatus.NEEDS_CLARIFICATION and result.question:
            offered = self._offered(turn, result)
            seen = {r.ref() for r in state.focus}  # records offered as options were shown: "and the deal?" names
            state.focus = (state.focus + [r for r in offered if r.ref() not in seen])[:_FOCUS_SIZE]  # one, last
            state.pending = Pending(kind="clarification", mode="record", param=result.question.get("param"),
                                    step=int(result.question.get("step", 0)), steps=steps,
                                    options=result.options or [], text=text, about=result.question.get("about"))
        else:
            state.pending = None
        if result.status is TurnStatus.ANSWERED and result.steps:
            state.last_read = {"action": result.steps[0].action, "args": result.steps[0].args}
        if result.status in (TurnStatus.DENIED, TurnStatus.EXECUTED) and all(s.get("action") for s in steps):
            state.last_steps = [{"action": s["action"], "args": dict(s["args"])} for s in steps]
        if result.status is TurnStatus.DENIED:
            state.last_denied = {"text": text, "action": result.steps[0].action if result.steps else None,
                                 "rule": result.rule, "reply": result.reply,
                                 "steps": [{"action": s.action, "args": s.args} for s in result.steps],
                                 "options": [o.value for o in result.options or []],
                                 "records": [{"type": r.type, "id": r.id, "title": r.title,
                                              **{k: v for k, v in r.attrs.items() if k in _RELATED}}
                                             for r in touched[:3]]}

    def _named_in_focus(self, state: ConversationState, text: str, found: Interpretation) -> str | None:
        """"the SSO one" right after a list, read by the interpreter as a kind of record the list does not
        hold (a deal where the list showed tickets): the words again with that record's id in their place
        ("close SUP-17"), so the action fits the record; None when the reading fits. The person's own
        words stay what the audit records."""
        if not state.last_list or not found.steps or (state.pending is not None
                                                      and state.pending.kind == "clarification"):
            return None
        match = _THE_ONE.search(text)
        if match is None or match.group(1).lower() in _ORDINALS or match.group(1).lower() in ("other", "same"):
            return None
        types = "|".join(dict.fromkeys(r.type for r in state.last_list))
        hits = in_focus(Focus(last_list=state.last_list), types, match.group(1))
        if len(hits) != 1:
            return None
        wanted = {t for v in self.ws.catalog.get(found.steps[-1].action).marked("x-record").values()
                  for t in str(v).split("|")}
        if not wanted or hits[0].type in wanted or any(t.lower() in hits[0].attrs for t in wanted):
            return None  # it fits, or the record points at one that does (an invoice's account)
        return text[:match.start()] + hits[0].id + text[match.end():]

    def _fill_reference(self, state: ConversationState, steps: list[dict[str, Any]], param: str, text: str) -> bool:
        """A record the interpreter asks for although the words point at one just shown: "... to the first
        one" after a list fills the record parameter with that item (grounding follows a link when the list
        holds other things: an invoice's account)."""
        action = self.ws.catalog.get(steps[-1]["action"])
        said = _ORDINAL.search(text)
        if said is None or not state.last_list:
            return False
        word = said.group(1).lower()
        ordinal = "@-1" if word == "last" else f"@{_ORDINALS[word]}"
        records = action.marked("x-record")
        for name in records:  # "the first one" is never "it", whatever the interpreter made of it
            if str(steps[-1]["args"].get(name, "")).startswith("@it"):
                steps[-1]["args"][name] = ordinal
        if param not in records:
            return False
        steps[-1]["args"][param] = ordinal
        return True

    def _chosen_by_focus(self, state: ConversationState, step: dict[str, Any],
                         options: list[Option]) -> Action | None:
        """Of the actions a question offers, the only one whose kind of record the words name among the
        records the conversation just showed ("the SSO one" after a list of tickets is a ticket)."""
        catalog = self.ws.catalog
        if len(options) < 2 or not all(o.value in catalog for o in options):
            return None
        named = [v for k, v in step["args"].items() if isinstance(v, str)
                 and k in catalog.get(step["action"]).marked("x-record")]
        if not named:
            return None
        focus = Focus(records=state.focus, last_list=state.last_list, types=catalog.record_types())
        fits = []
        for option in options:
            action = catalog.get(option.value)
            for types in action.marked("x-record").values():
                try:
                    hits = in_focus(focus, str(types), named[0])
                except SaysoError:
                    hits = []
                if hits:
                    fits.append(action)
                    break
        return fits[0] if len(fits) == 1 else None

    def _shown_options(self, state: ConversationState, action_name: str, param: str) -> list[Option]:
        """The records just shown that could fill a record parameter, as options: the records of its kind, or
        the ones the list's items point at (after a list of invoices, their accounts)."""
        types = self.ws.catalog.get(action_name).marked("x-record").get(param)
        if types is None:
            return []
        wanted = str(types).split("|")
        shown = [r for r in state.last_list if r.type in wanted]
        options = [Option(label=f"{r.id} {r.title}".strip() if r.title not in ("", r.id) else r.id, value=r.id)
                   for r in shown]
        if not options:
            linked = [str(r.attrs[t.lower()]) for r in state.last_list for t in wanted
                      if isinstance(r.attrs.get(t.lower()), str)]
            options = [Option(label=v, value=v) for v in dict.fromkeys(linked)]
        return options[:_FOCUS_SIZE] if len(options) > 1 else []

    def _offered(self, turn: Turn, result: TurnResult) -> list[Record]:
        """The records a question offered as its options (a grounding question: "which one do you mean?")."""
        param = (result.question or {}).get("param")
        if not result.options or not result.steps or not isinstance(param, str):
            return []
        types = self.ws.catalog.get(result.steps[-1].action).marked("x-record").get(param)
        if types is None:
            return []
        reader = self.pipeline.reader(turn.person)
        found: list[Record] = []
        for option in result.options[:_FOCUS_SIZE]:
            for record_type in str(types).split("|"):
                found += [_slim(r) for r in reader.find(record_type, option.value) if r.id == option.value]
        return found

    def _fill_context(self, person: Person, state: ConversationState, steps: list[dict[str, Any]], param: str,
                      text: str) -> bool:
        """Text the person did not spell out but the conversation holds: "let carol know" right after a
        denial sends what was asked and why it was not done; "... and remind me Friday" reminds of the rest."""
        step = steps[-1]
        action = self.ws.catalog.get(step["action"])
        params = params_of(action)
        spec = next((p for p in params if p.name == param), None)
        if spec is None or spec.kind != "text" or not action.is_write:
            return False
        if len(steps) > 1:
            step["args"][param] = f"Follow up: {text}"[:1000]
            return True
        if re.search(r"\b(?:too|as well|also)\W*$", text, re.I) and state.last_request:
            step["args"][param] = f"Follow up: {state.last_request['text']}"[:1000]  # "remind me Thursday too"
            return True
        # Only a request that names no more than whom to tell ("let carol know", "email wes") takes its text from
        # the conversation: one that says more ("book 30 minutes with carol tomorrow at 3pm") gave its own.
        given = [p for p in params if p.name in step["args"]]
        addressed = bool(given) and all(p.kind in ("person", "recipient") for p in given)
        if not addressed or len([w for w in text.split() if len(w) > 2]) > 6:
            return False
        denied, last = state.last_denied, state.last_request
        if denied and last and last.get("status") == TurnStatus.DENIED.value:
            to = [str(step["args"][p.name]) for p in params if p.kind in ("person", "recipient")
                  and p.name in step["args"]]
            message = (f"{person.name} asked: \"{denied['text']}\". It was not done: "
                       f"{_for_recipient(denied['reply'].replace('Not done: ', ''), to, person.name)}")
        elif last and last.get("text"):
            message = f"{person.name} asked: \"{last['text']}\". Outcome: {last.get('reply', '')}"
        else:
            return False
        step["args"][param] = message[:1000]
        for other in params_of(action):
            if other.kind == "text" and other.required and other.name not in step["args"]:
                step["args"][other.name] = f"From {person.name}: {denied['text'] if denied else last['text']}"[:300]
        return True

    def _fill_origin(self, turn: Turn, step: dict[str, Any], text: str) -> None:
        """A task made from a conversation says who asked and why (its description, when it has one)."""
        action = self.ws.catalog.get(step["action"])
        if not action.is_write or "description" in step["args"]:
            return
        if any(p.name == "description" and p.kind == "text" for p in params_of(action)):
            step["args"]["description"] = (f"Asked by {turn.person.name} ({turn.person.id}) in conversation "
                                           f"{turn.conversation}: \"{text}\"")[:2000]

    def _look_around(self, turn: Turn, state: ConversationState, step: dict[str, Any]) -> str:
        """A bare name ("Orchid"): find what it names, keep it in focus, and say what was found."""
        action = self.ws.catalog.get(step["action"])
        found: list[Record] = []
        reader = self.pipeline.reader(turn.person)
        for param, types in action.marked("x-record").items():
            value = step["args"].get(param)
            if isinstance(value, str) and not value.startswith("@"):
                for record_type in str(types).split("|"):
                    found += [r for r in reader.find(record_type, value) if (r.score or 0) >= 85]
        if not found:
            return ""
        fresh = [_slim(r) for r in found[:5]]
        seen = {r.ref() for r in fresh}
        state.focus = (fresh + [r for r in state.focus if r.ref() not in seen])[:_FOCUS_SIZE]
        return "I found " + "; ".join(f"{r.id} {r.title}".strip() if r.title != r.id else r.id
                                      for r in fresh) + ". "

    # --- replies that need no system --------------------------------------------------

    def _say(self, turn: Turn, status: TurnStatus, reply: str) -> TurnResult:
        self.pipeline.close(turn, [turn.event("turn", "received", request=turn.request), *turn.prelude,
                                   turn.event("turn", status.value)])
        return TurnResult(status=status, reply=reply)

    def _ask(self, turn: Turn, question: str, options: list[Option], steps: list[dict[str, Any]],
             param: str | None) -> TurnResult:
        self.pipeline.close(turn, [turn.event("turn", "received", request=turn.request), *turn.prelude,
                                   turn.event("turn", TurnStatus.NEEDS_CLARIFICATION.value, question=question,
                                              options=[o.value for o in options])])
        step = steps[-1] if steps else None
        results = [] if step is None else [StepResult(
            action=step["action"], args=step["args"], risk=self.ws.catalog.get(step["action"]).risk.tier.value,
            status=StepStatus.PENDING)]
        return TurnResult(status=TurnStatus.NEEDS_CLARIFICATION, reply=question, options=options or None,
                          question={"param": param, "step": len(steps) - 1} if steps else None, steps=results)


def _title(text: str | None) -> str | None:
    """A conversation's label: its first request, on one line, shortened."""
    if not text:
        return None
    line = " ".join(text.split())
    return line if len(line) <= 80 else line[:77].rstrip() + "..."


def _still_waiting(pending: Pending) -> str:
    what = "confirmation" if pending.kind == "confirmation" else "answer"
    return f"Your request \"{pending.text[:120]}\" is still waiting for your {what}."


def _summary(result: TurnResult, tainted: bool) -> str:
    """What a model may be told of an earlier turn: its outcome, actions and record ids, never the text of
    records (a reply phrased by a model from records is kept, and marks the history as untrusted)."""
    if tainted:
        return result.reply[:1000]
    ids = [str(r.get("id")) for step in result.steps for r in (step.records or [])][:20]
    actions = ", ".join(dict.fromkeys(step.action for step in result.steps)) or "nothing"
    said = f"[{result.status.value}] {actions}"
    if ids:
        said += ": " + ", ".join(ids)
    if result.rule:
        said += f" (rule {result.rule})"
    return said


def delegation_note(sender: Person, denied: dict[str, Any], to: list[str]) -> str:
    """What a person asked and could not do, written for the one asked to do it instead."""
    records = denied.get("records") or []
    on = "; ".join(f"{r['id']} {r['title']}".strip() if r.get("title") not in (None, "", r["id"]) else str(r["id"])
                   for r in records)
    reason = re.sub(r"^Not done:\s*", "", str(denied.get("reply", "")))
    reason = re.sub(r"\s*\(rule [^)]*\)\s*$", "", reason).strip().rstrip(".")
    said = f"Could you do this for {sender.name}: \"{denied['text']}\""
    if on:
        said += f" ({on})"
    return (f"{said}? {sender.name} may not do it: {_for_recipient(reason, to, sender.name)}.")[:1000]


def _for_recipient(reason: str, to: list[str], sender: str = "") -> str:
    """A reason written for the requester, rewritten for the person it is sent to: "your manager, carol,
    may do this" reads "as their manager, you may do this" to carol and "their manager, carol, ..." to others."""
    def turn(match: re.Match[str]) -> str:
        whose = f"{sender}'s" if sender else "their"
        return f"as {whose} manager, you may do this" if match.group(1) in to else match.group(0).replace(
            "your manager", f"{whose} manager")
    said = re.sub(r"your manager, ([\w.@-]+), may do this", turn, reason)

    def could(match: re.Match[str]) -> str:
        names = re.split(r",\s*|\s+or\s+", match.group(1))
        if not any(n in to for n in names):
            return match.group(0)
        others = [n for n in names if n not in to]
        return "you could" + (f" (so could {' or '.join(others)})" if others else "")
    return re.sub(r"((?:[\w.@-]+, )*[\w.@-]+(?: or [\w.@-]+)?) could$", could, said)


def _item(record: Record) -> FocusItem:
    return FocusItem(type=record.type, id=record.id, title=record.title, attrs=record.attrs)
