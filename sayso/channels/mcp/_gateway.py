"""What the MCP channel does, apart from the protocol: the catalog as tools, and each call run through the
pipeline as the person the client acts for.

An AI client is treated like a language model: what it asks for is a proposal, never the person's word. A
catalog tool runs as a one-step plan with writes from ``medium`` risk up confirmed by the person (the
``model-proposal`` rule); ``ask`` goes through the interpreter with every interpretation marked as a model's, in
a conversation of its own (so that a "yes" from the client never answers a pending confirmation). Turns are
audited with the channel ``mcp`` (``mcp:<client name>`` when the client names itself). A write called with an
``idempotency_key`` runs once per person, key and arguments (the HTTP API's ``Idempotency-Key`` mechanism,
under keys of their own); a retry gets the first outcome.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, ValidationError

from ...audit import AuditEvent
from ...catalog import Action, Tier
from ...conversation import Chat
from ...directory import Person
from ...errors import ConfigurationError, SaysoError
from ...interpreter import Context, Interpretation, Interpreter
from ...pipeline import Pipeline, Request, Turn
from ...turn import TurnResult, TurnStatus
from ...workspace import Workspace

__all__ = ["ASK", "STATUS", "Gateway", "McpSettings", "hints", "tool_list"]

ASK = "ask"
STATUS = "confirmation_status"
KEY_PARAM = "idempotency_key"
_KEY_PREFIX = "mcp:"  # idempotency keys of MCP calls, apart from the HTTP API's
_CLIENT = re.compile(r"[^A-Za-z0-9._-]+")
_FAILED = {TurnStatus.ERROR.value, TurnStatus.DENIED.value, TurnStatus.FAILED.value}


def top_tier(action: Action) -> Tier:
    """The highest risk the action can reach, whatever its arguments."""
    tiers = [action.risk.tier, *(c.tier for c in action.risk.when)]
    return max(tiers, key=lambda t: t.rank)


def hints(action: Action) -> dict[str, Any]:
    """MCP tool annotations from the action's kind and risk."""
    if not action.is_write:
        return {"readOnlyHint": True, "destructiveHint": False, "idempotentHint": True, "openWorldHint": True}
    return {"readOnlyHint": False, "destructiveHint": top_tier(action) >= Tier.HIGH or not action.undo,
            "idempotentHint": False, "openWorldHint": True}


def _describe(action: Action) -> str:
    risk = action.risk
    words = f"Risk: {risk.tier.value}"
    raised = sorted({c.tier.value for c in risk.when if c.tier > risk.tier})
    if raised:
        words += f" (up to {raised[-1]} depending on the arguments)"
    text = f"{action.description.strip()} {words}."
    if action.is_write:
        text += (" Writes of medium risk or more wait for the person's confirmation; pass idempotency_key to "
                 "retry safely.")
    return text


def tool_list(actions: Iterable[Action]) -> list[dict[str, Any]]:
    """The tools, as the ``tools`` of an MCP ``tools/list`` result: every action, then ``ask`` and
    ``confirmation_status``."""
    tools = []
    for action in actions:
        schema = action.json_schema()
        if action.is_write:
            schema.setdefault("properties", {})[KEY_PARAM] = {
                "type": "string", "maxLength": 200,
                "description": "Retry safely: the same key with the same arguments runs once and returns the "
                               "first outcome"}
        schema.setdefault("type", "object")
        tools.append({"name": action.name, "description": _describe(action), "inputSchema": schema,
                      "annotations": hints(action)})
    tools.append({"name": ASK, "description": "Ask sayso in words (\"which of my deals close this month?\", "
                  "\"move D-101 to negotiation\"). It is interpreted, checked against the person's permissions "
                  "and run like any request; writes of medium risk or more wait for the person's confirmation.",
                  "inputSchema": {"type": "object", "properties": {"text": {
                      "type": "string", "maxLength": 4000, "description": "The request, in words"}},
                      "required": ["text"]},
                  "annotations": {"readOnlyHint": False, "destructiveHint": True, "idempotentHint": False,
                                  "openWorldHint": True}})
    tools.append({"name": STATUS, "description": "The status of a confirmation sayso is waiting for (pending, "
                  "approved, cancelled, superseded, expired), and the outcome once approved.",
                  "inputSchema": {"type": "object", "properties": {"confirmation": {
                      "type": "string", "maxLength": 64, "description": "The confirmation's id (cf_...)"}},
                      "required": ["confirmation"]},
                  "annotations": {"readOnlyHint": True, "destructiveHint": False, "idempotentHint": True,
                                  "openWorldHint": False}})
    return tools


class McpSettings(BaseModel):
    """``[channels.mcp]`` in ``sayso.toml``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    enabled: bool = True  # /mcp on sayso serve
    elicitation_approvals: bool = True  # confirmations may be answered through the client
    approve_url: str = ""  # the web page, named where a confirmation waits

    @classmethod
    def of(cls, ws: Workspace) -> McpSettings:
        try:
            return cls.model_validate(ws.settings.channels.get("mcp", {}))
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(str(p) for p in problem["loc"])
            raise ConfigurationError(f"sayso.toml [channels.mcp] {where}: {problem['msg']}") from None


class _Proposals:
    """The workspace's interpreter, with whatever it reads marked as a model's proposal: the words come from an
    AI client, not from the person."""

    def __init__(self, inner: Interpreter) -> None:
        self.inner = inner
        self.name = inner.name
        self.version = inner.version

    def interpret(self, text: str, context: Context, catalog: Any, person: Person) -> Interpretation:
        found = self.inner.interpret(text, context, catalog, person)
        if found.trust == "person":
            found.trust = "model"
        return found

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class _ClientChat(Chat):
    """A chat whose writes are confirmed from ``medium`` up at least, whatever the interpreter's settings,
    and whose "undo that" is read as any request (a client's words never undo at once)."""

    undo_in_words = False

    def _confirm_from(self, found: Interpretation) -> Tier | None:
        own = super()._confirm_from(found)
        return Tier.MEDIUM if own is None or own > Tier.MEDIUM else own


@dataclass
class Called:
    """A tool call's outcome: the turn's result as JSON, and the confirmation it waits for, if any."""

    body: dict[str, Any]
    confirmation: str | None = None

    @property
    def failed(self) -> bool:
        return str(self.body.get("status")) in _FAILED


class Gateway:
    """Tool calls for one workspace: the listing, made once, and each call run as a person through a client.

    ``service`` is the HTTP service's ``Service`` (clock, interpreter, idempotency outcomes), also under
    ``sayso mcp`` over stdio.
    """

    def __init__(self, service: Any) -> None:
        from ...serve.idempotency import Keys

        self.service = service
        self.ws: Workspace = service.ws
        self.keys = Keys(self.ws.store, service.outcome)
        settings = McpSettings.of(self.ws)
        self.elicitation = settings.elicitation_approvals
        self.approve_url = settings.approve_url.rstrip("/")
        self.tools = tool_list(self.ws.catalog)
        self.listing = {"tools": self.tools}
        self._interpreter = _Proposals(service.interpreter)
        self._chats: dict[tuple[str | None, str], _ClientChat] = {}
        self._lock = threading.Lock()

    # --- who and how ------------------------------------------------------------------

    @staticmethod
    def channel(client: str | None) -> str:
        """The audit's channel for a client: ``mcp``, or ``mcp:<its name>``."""
        name = _CLIENT.sub("-", client or "").strip("-")[:40]
        return f"mcp:{name}" if name else "mcp"

    def chat(self, person: Person, client: str | None) -> _ClientChat:
        """The chat (and pipeline) for the person's time zone and the client, made once."""
        key = (person.timezone, self.channel(client))
        chat = self._chats.get(key)
        if chat is None:
            with self._lock:
                chat = self._chats.get(key) or _ClientChat(
                    Pipeline(self.ws, self.service.clock(person), channel=key[1]), self._interpreter)
                self._chats[key] = chat
        return chat

    # --- calls ------------------------------------------------------------------------

    def call(self, person: Person, client: str | None, name: str, arguments: dict[str, Any]) -> Called:
        """Run one tool call as ``person``; errors come back as the turn's ``error``, never raised."""
        try:
            if name == ASK:
                text = arguments.get("text")
                if not isinstance(text, str) or not text.strip():
                    return Called(_error("invalid_arguments", "ask needs text: the request, in words"))
                result = self.chat(person, client).say(person.id, text)
                return _called(result.to_json())
            if name == STATUS:
                return Called(self.status(person, str(arguments.get("confirmation", ""))))
            return self._act(person, client, name, arguments)
        except SaysoError as exc:
            return Called(_error(exc.code, exc.message))

    def _act(self, person: Person, client: str | None, name: str, arguments: dict[str, Any]) -> Called:
        args = dict(arguments)
        key = args.pop(KEY_PARAM, None)
        pipeline = self.chat(person, client).pipeline
        self.ws.catalog.get(name)  # an unknown tool: an error, before any key is taken

        def run(turn_id: str) -> JSONResponse:
            def body(turn: Turn) -> TurnResult:
                turn.confirm_from = Tier.MEDIUM  # proposed by an AI client: the person confirms
                return pipeline.run_plan(turn, [Request(name, args)])

            request = {"action": name, "args": args}
            return JSONResponse(pipeline.turn(person.id, None, request, body, turn_id=turn_id).to_json())

        if key is not None and not isinstance(key, str):
            return Called(_error("invalid_arguments", "idempotency_key is a string"))
        answer = self.keys.run(person.id, _KEY_PREFIX + key if key else None, {"tool": name, "args": args}, run,
                               at=self.service.clock(person).now().isoformat())
        return _called(json.loads(bytes(answer.body)))

    def status(self, person: Person, confirmation: str) -> dict[str, Any]:
        """A confirmation's status for its approver or requester, with its plan's outcome once approved."""
        pipeline = self.chat(person, None).pipeline
        with self.ws.store.read() as conn:
            item = pipeline.confirmations.get(conn, confirmation) if 0 < len(confirmation) <= 64 else None
        if item is None or person.id not in (item.approver, item.requester):
            return _error("confirmation_unknown", "no such confirmation")
        status = item.status
        if status == "pending" and pipeline.clock.now() >= item.expires_at:
            status = "expired"
        body: dict[str, Any] = {"confirmation": item.id, "status": status, "approver": item.approver,
                                "expires_at": item.expires_at.isoformat(),
                                "actions": [s["action"] for s in item.plan["steps"]]}
        if status == "approved":
            try:
                body["outcome"] = pipeline.outcome(str(item.plan["id"])).to_json()
            except SaysoError:
                body["outcome"] = None
        body["reply"] = f"Confirmation {item.id} is {status}."
        return body

    def status_called(self, person: Person, confirmation: str) -> Called:
        """``status`` as a tool call's outcome, still waiting when the confirmation is pending."""
        body = self.status(person, confirmation)
        return Called(body, confirmation if body.get("status") == "pending" else None)

    def settle(self, person: Person, client: str | None, tool: str, confirmation: str, approve: bool) -> Called:
        """The person's answer to a confirmation, given through the client (elicitation): counted only for a
        confirmation of theirs that a call of this tool through MCP is waiting for, and audited as such; when
        ``[channels.mcp] elicitation_approvals = false``, not counted at all (the status is returned)."""
        if not self.elicitation:
            return self.status_called(person, confirmation)
        chat = self.chat(person, client)
        with self.ws.store.read() as conn:
            item = chat.pipeline.confirmations.get(conn, confirmation)
        steps = item.plan.get("steps", []) if item is not None else []
        if (item is None or item.approver != person.id or not str(item.plan.get("channel", "")).startswith("mcp")
                or tool not in (ASK, *(s.get("action") for s in steps))):
            return Called(_error("confirmation_unknown", "no such confirmation"))
        chat.pipeline.audit.record([AuditEvent(
            "confirmation", person.id, "elicited", steps[0].get("action") if steps else None, item.conversation,
            None, chat.pipeline.channel, {"id": item.id, "answer": "approve" if approve else "decline",
                                          "plan_hash": item.plan_hash})])
        return _called(chat.settle(person.id, confirmation, approve).to_json())

    def pending_note(self, called: Called) -> str:
        """Where the person approves a confirmation the client could not ask about."""
        where = [f"`sayso confirm {called.confirmation}`"]
        if self.approve_url:
            where.insert(0, f"the web page ({self.approve_url}/)")
        where.append(f"POST /v1/confirmations/{called.confirmation}/approve")
        return (f"Waiting for the person's confirmation {called.confirmation}: approve it with "
                + ", ".join(where) + f"; the {STATUS} tool tells the outcome.")


def _called(body: dict[str, Any]) -> Called:
    pending = body.get("confirmation") if body.get("status") == TurnStatus.NEEDS_CONFIRMATION.value else None
    return Called(body, str(pending["id"]) if isinstance(pending, dict) and "id" in pending else None)


def _error(code: str, message: str) -> dict[str, Any]:
    return {"status": TurnStatus.ERROR.value, "reply": message, "steps": [],
            "error": {"code": code, "message": message}}
