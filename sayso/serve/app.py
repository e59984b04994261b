"""The FastAPI application: a router per resource, errors, idempotent POSTs, limits, progress events.

Requests are handled in FastAPI's thread pool; the workspace, its catalog,
policies, directory and systems are loaded once at start (``Service``), and each
request builds a cheap ``Pipeline`` with the caller's clock. Every route that
needs a caller gets it from one dependency, ``current_person`` (the token, then
the person's rate limit). ``create_app`` also finishes any plan a crashed
process left (``recover``) before serving. ``/docs`` and ``/redoc`` are served
from the ``fastapi-offline`` package's files: no CDN.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import anyio.to_thread
import fastapi_offline
from fastapi import APIRouter, Body, Depends, FastAPI, Header, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, Field
from sqlalchemy import bindparam, func, or_, select, text
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from .. import approvals
from ..audit import AuditEvent
from ..channels import CHANNELS
from ..clock import Clock, parse_time
from ..conversation import Chat
from ..directory import Person
from ..errors import InputTooLarge, SaysoError, UnknownConversation, http_status
from ..instructions import InstructionBook
from ..interpreter import Interpreter, registry
from ..pipeline import Pipeline
from ..store import schema
from ..turn import TurnResult, TurnStatus
from ..workspace import Workspace
from .auth import Authenticator
from .edge import CALLER, Edge
from .events import Events
from .idempotency import Keys, StillRunning
from .limits import Buckets

__all__ = ["create_app"]

log = logging.getLogger("sayso.serve")
WEB = Path(__file__).resolve().parent / "web"
FAVICON = Path(fastapi_offline.__file__).resolve().parent / "static" / "favicon.png"  # FastAPI's, MIT


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    """Every error: a stable code and a message for people."""

    error: ErrorDetail


_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": what} for status, what in (
        (400, "Invalid request"), (401, "No valid access token"),
        (403, "A forged or altered approval link"), (404, "Not found, or someone else's"),
        (409, "Conflict: a confirmation already used or expired, or a retry still running"),
        (413, "Request or message too large"), (422, "Invalid request body or parameters"),
        (429, "Too many requests"), (500, "Server error"), (502, "A system behind sayso failed"))}


class MessageIn(BaseModel):
    text: str = Field(description="What the person says")


class ActionIn(BaseModel):
    args: dict[str, Any] = Field(default_factory=dict, description="The action's arguments")


_bearer = HTTPBearer(auto_error=False, description="A sayso access token (`sayso token create`) or an OIDC token")
Auth = Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]
Key = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200,
                                   description="Retry safely: the same key returns the stored result")]
Limit = Annotated[int, Query(ge=1, le=10000)]
Seconds = Annotated[float, Query(ge=1, le=3600)]
Since = Annotated[Annotated[str, Field(max_length=64, json_schema_extra={"format": "date-time"})] | None,
                  Query(description="ISO 8601: 2026-11-25T09:00, or with an offset, 2026-11-25T09:00+01:00")]


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


class Service:
    """What the routes share: the workspace, the interpreter, authentication, limits, events."""

    def __init__(self, root: Path, now: str | None, interpreter: Interpreter | None) -> None:
        self.ws = Workspace.load(root)
        problems = self.ws.check()
        if problems:
            raise problems[0]
        for name in self.ws.settings.systems:  # connect every system once, before threads share them
            self.ws.connector(name)
        self.now = now
        settings = self.ws.settings.interpreter.model_dump()
        self.interpreter = interpreter or registry.create(str(settings.get("name", "offline")), settings)
        self.auth = Authenticator(self.ws, self.clock(None))
        self.buckets = Buckets(self.ws.settings.serve.rate_per_minute, store=self.ws.store)
        self.events = Events(self.ws.store)
        self._chats: dict[str | None, Chat] = {}
        self._owners: dict[str, str] = {}
        self.keys = Keys(self.ws.store, self.outcome)
        recovered = Pipeline(self.ws, self.clock(None), channel="api").recover()
        if recovered:
            log.warning("recovered %d plan(s) a crashed process left", len(recovered))

    def clock(self, person: Person | None) -> Clock:
        return Clock.from_option(self.now, person.timezone if person else None)

    def pipeline(self, person: Person) -> Pipeline:
        return self.chat(person).pipeline

    def chat(self, person: Person) -> Chat:
        """The chat (and its pipeline) for the caller's time zone: built once per zone, shared by requests
        (a pipeline holds no per-turn state)."""
        chat = self._chats.get(person.timezone)
        if chat is None:
            chat = Chat(Pipeline(self.ws, self.clock(person), channel="api"), self.interpreter)
            self._chats.setdefault(person.timezone, chat)
        return chat

    def done_since(self, conversation: str, after: int) -> tuple[int, list[dict[str, Any]]]:
        """The ``done`` events of the conversation's turns saved after message ``after`` (by any process), and
        the newest message id read."""
        with self.ws.store.read() as conn:
            rows = conn.execute(_SAID_SINCE, {"b_conversation": conversation, "b_after": after}).all()
        done = []
        for row in rows:
            after = max(after, row.id)
            data = row.data if isinstance(row.data, dict) else {}
            if row.status == TurnStatus.ERROR.value and "status" not in data:  # a request error: the error itself
                error = _public({"code": str(data.get("code", "error")), "message": row.text})
                data = {"status": row.status, "reply": error["message"], "steps": [], "error": error}
            done.append({"stage": "done", "turn": {**data, "conversation": conversation, "turn": row.turn}})
        return after, done

    def newest_message(self, conversation: str) -> int:
        with self.ws.store.read() as conn:
            return int(conn.execute(_NEWEST, {"b_conversation": conversation}).scalar() or 0)

    def check_owner(self, conversation: str, person: Person) -> None:
        """404 unless ``conversation`` is the caller's. A conversation never changes hands and is never
        deleted, so an owner once read is remembered."""
        owner = self._owners.get(conversation)
        if owner is None:
            with self.ws.store.read() as conn:
                owner = conn.execute(_OWNER, {"b_id": conversation}).scalar()
            if owner is not None:
                if len(self._owners) >= _OWNERS_KEPT:
                    self._owners.clear()
                self._owners[conversation] = owner
        if owner != person.id:
            raise UnknownConversation(f"no conversation {conversation!r}")

    def plan_of(self, confirmation: str, person: Person) -> str | None:
        """The id of the plan that approving ``confirmation`` runs, when it is the caller's to answer."""
        table = schema.confirmations
        with self.ws.store.read() as conn:
            stored = conn.execute(select(table.c.plan).where(table.c.id == confirmation,
                                                             table.c.approver == person.id)).scalar()
        return str(stored["id"]) if isinstance(stored, dict) and "id" in stored else None

    def outcome(self, turn: str | None, plan: str | None) -> JSONResponse | None:
        """What a request whose process is gone came to: its turn's saved reply, else the outcome of its plan
        from the effect ledger (finished by recovery first when it was left running); None when nothing of it
        ran. Raises ``StillRunning`` while a live process still holds the plan."""
        if turn is None and plan is None:
            return None
        pipeline = Pipeline(self.ws, self.clock(None), channel="api")
        ran = [_plans.c.turn == turn] if turn else []
        ran += [_plans.c.id == plan] if plan else []
        with self.ws.store.read() as conn:
            said = conn.execute(_SAID_IN, {"b_turn": turn}).first() if turn else None
            found = conn.execute(select(_plans.c.id, _plans.c.status).where(or_(*ran))).first()
        if said is not None:
            data = said.data if isinstance(said.data, dict) else {}
            if said.status == TurnStatus.ERROR.value and "status" not in data:  # a request error: the error
                result = TurnResult(status=TurnStatus.ERROR, reply=said.text, error=data)
            else:
                result = TurnResult.model_validate(data)
            result.conversation, result.turn = said.conversation, turn
            return _turn(result)
        if found is None:
            return None
        if found.status == "running":
            pipeline.recover()
            with self.ws.store.read() as conn:
                if conn.execute(select(_plans.c.status).where(_plans.c.id == found.id)).scalar() == "running":
                    raise StillRunning(found.id)
        return _turn(pipeline.outcome(found.id))

    def idempotent(self, person: Person, key: str | None, request: dict[str, Any],
                   handle: Callable[[str], JSONResponse], *, plan: str | None = None) -> JSONResponse:
        """Run ``handle`` (as the turn it is given) once per (caller, key); a retry returns what the first run
        returned, or what it came to when the process that ran it is gone."""
        return self.keys.run(person.id, key, request, handle, at=self.clock(person).now().isoformat(), plan=plan)

    def caller(self, authorization: str | None) -> Person:
        """The person the ``Authorization`` header's token names, after taking one request from their bucket."""
        person = self.auth.person(authorization)
        self.buckets.take(person.id)
        return person


_OWNER = select(schema.conversations.c.user_id).where(schema.conversations.c.id == bindparam("b_id"))
_OWNERS_KEPT = 100_000
_messages = schema.messages
_SAID_SINCE = (select(_messages.c.id, _messages.c.turn, _messages.c.text, _messages.c.status, _messages.c.data)
               .where(_messages.c.conversation == bindparam("b_conversation"), _messages.c.id > bindparam("b_after"),
                      _messages.c.role == "sayso").order_by(_messages.c.id))
_SAID_IN = select(_messages.c.conversation, _messages.c.text, _messages.c.status, _messages.c.data).where(
    _messages.c.turn == bindparam("b_turn"), _messages.c.role == "sayso")
_plans = schema.plans
_NEWEST = select(func.max(_messages.c.id)).where(_messages.c.conversation == bindparam("b_conversation"))
_OPEN_PATHS = ("/v1/auth", "/v1/auth/config")  # under /v1, the routes that need no token
_POLL_SECONDS = 0.25  # how often an event stream looks for turns another process saved
_KEEP_ALIVE_SECONDS = 15.0


def _public(error: dict[str, str]) -> dict[str, str]:
    """An error as callers see it: another person's confirmation is as missing as an unknown one."""
    if error.get("code") in ("confirmation_unknown", "confirmation_not_yours"):
        return {"code": "confirmation_unknown", "message": "no such confirmation"}
    return error


def _turn(result: TurnResult) -> JSONResponse:
    body = result.to_json()
    status = 200
    if result.status is TurnStatus.ERROR and result.error:
        body["error"] = _public(result.error)
        body["reply"] = body["error"]["message"]
        status = http_status(body["error"]["code"])
    return JSONResponse(body, status_code=status)


def _run_instructions(service: Service) -> Callable[[], None]:
    """Due standing instructions run in a background thread (``[serve] instructions_every_seconds``; 0 leaves
    them to ``sayso worker``). Firings are claimed in the database, so several processes may look at once."""
    from ..instructions import Runner

    every = service.ws.settings.serve.instructions_every_seconds
    if not every:
        return lambda: None
    done = threading.Event()
    runner = Runner(service.ws, service.clock(None))

    def loop() -> None:
        while not done.wait(every):
            try:
                runner.tick()
            except Exception:  # the loop must survive one bad pass; the log says why
                log.exception("standing instructions: a pass failed")

    threading.Thread(target=loop, name="sayso-instructions", daemon=True).start()
    return done.set


def threads_for(interpreter: Interpreter) -> int:
    """How many requests a process works on at once, by default: turns of the offline interpreter are pure
    computation, and more threads than a few only take turns on the GIL (each turn slower, the durable
    writes' lock held longer); a model interpreter's turns wait on the model, so they get many."""
    return OFFLINE_THREADS if interpreter.name == "offline" else MODEL_THREADS


OFFLINE_THREADS = 3  # bench/scale.py --threads: 3 beat 2 and 4 with two processes on two cores (docs/serve.md)
MODEL_THREADS = 40  # AnyIO's own default


# --- dependencies: the service, and the caller resolved once per request --------------------------------------


async def current_service(request: Request) -> Service:
    """The application's ``Service`` (async: nothing to wait for, so no trip through the thread pool)."""
    service: Service = request.app.state.service
    return service


Served = Annotated[Service, Depends(current_service)]


async def current_person(request: Request, service: Served, authorization: Auth = None) -> Person:
    """The person the request's access token names (401 without a valid one), after their rate limit (429):
    the edge's answer for a request with a body (it asked before reading the body), else asked here, in the
    thread pool (it may read the database)."""
    known = request.scope.get("state", {}).get(CALLER)
    if isinstance(known, Person):
        return known
    header = f"{authorization.scheme} {authorization.credentials}" if authorization else None
    return await run_in_threadpool(service.caller, header)


Caller = Annotated[Person, Depends(current_person)]

# --- health ---------------------------------------------------------------------------------------------------

health_routes = APIRouter(tags=["health"])


@health_routes.get("/healthz")
def healthz() -> dict[str, str]:  # liveness: the process answers; touches nothing else
    return {"status": "ok"}


@health_routes.get("/readyz")
def readyz(service: Served) -> JSONResponse:  # readiness: the state database answers one query
    try:
        with service.ws.store.read() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        return _error(503, "not_ready", f"the state database does not answer: {type(exc).__name__}")
    return JSONResponse({"status": "ready", "actions": len(service.ws.catalog)})


# --- people ---------------------------------------------------------------------------------------------------

people_routes = APIRouter(tags=["people"])


@people_routes.get("/v1/me")
def me(person: Caller) -> dict[str, Any]:
    return {"id": person.id, "name": person.name, "role": person.role, "team": person.team,
            "timezone": person.timezone}


@people_routes.get("/v1/auth")
def auth_info(service: Served) -> dict[str, Any]:
    serve = service.ws.settings.serve
    return {"oidc": {"issuer": serve.oidc_issuer, "audience": serve.oidc_audience} if serve.oidc_issuer
            else None}


@people_routes.get("/v1/auth/config")
def auth_config(service: Served) -> dict[str, Any]:
    """How the web page signs a person in with the identity provider (authorization code with PKCE, a
    public client), or ``{"oidc": null}`` when only tokens work. Needs no token and holds no secret."""
    login = service.auth.login
    return {"oidc": login.config() if login else None}


# --- conversations --------------------------------------------------------------------------------------------

conversation_routes = APIRouter(prefix="/v1/conversations", tags=["conversations"])


@conversation_routes.post("", status_code=201)
def new_conversation(service: Served, person: Caller, key: Key = None) -> JSONResponse:
    return service.idempotent(person, key, {"new": "conversation"}, lambda _as: JSONResponse(
        {"id": service.chat(person).new(person.id)}, status_code=201))


@conversation_routes.get("")
def conversations(service: Served, person: Caller) -> list[dict[str, Any]]:
    return service.chat(person).conversations.of(person.id)


@conversation_routes.get("/{conversation}")
def conversation(conversation: str, service: Served, person: Caller) -> dict[str, Any]:
    chat = service.chat(person)
    state = chat.conversations.get(conversation, person.id)
    messages = chat.conversations.messages(conversation, person.id)
    return {"id": conversation, "messages": [
        {"role": m["role"], "text": m["text"], "status": m["status"], "at": m["at"], "turn": m["turn"],
         "data": m["data"]} for m in messages],
        "pending": state.pending.model_dump(mode="json") if state.pending else None}


@conversation_routes.post("/{conversation}/messages")
def say(conversation: str, message: Annotated[MessageIn, Body()], service: Served, person: Caller,
        key: Key = None) -> JSONResponse:
    limit = service.ws.settings.limits.max_text_chars
    if len(message.text) > limit:
        raise InputTooLarge(f"the message is {len(message.text)} characters; the limit is {limit}")
    chat = service.chat(person)
    service.check_owner(conversation, person)  # someone else's, or none: 404 before anything

    def handle(turn: str) -> JSONResponse:
        def progress(stage: str) -> None:  # asked at each stage: a stream may open on any process meanwhile
            if service.events.listening(conversation):
                service.events.publish(conversation, {"stage": stage,
                                                      "turn": {"conversation": conversation, "turn": turn}})

        result = chat.say(person.id, message.text, conversation, progress=progress, turn_id=turn)
        response = _turn(result)
        if service.events.listening(conversation):
            service.events.publish(conversation, {"stage": "done", "turn": json.loads(bytes(response.body))})
        return response

    return service.idempotent(person, key, {"conversation": conversation, "text": message.text}, handle)


@conversation_routes.get("/{conversation}/timeline")
def timeline(conversation: str, service: Served, person: Caller) -> list[dict[str, Any]]:
    pipeline = service.pipeline(person)
    Chat(pipeline, service.interpreter).conversations.get(conversation, person.id)
    rows = pipeline.audit.list(conversation=conversation)
    return [{"at": r["at"], "event": r["event"], "status": r["status"], "action": r["action"],
             "actor": r["actor"], "detail": r["detail"]} for r in rows]


@conversation_routes.get("/{conversation}/events", response_class=StreamingResponse)
async def events(conversation: str, service: Served, person: Caller, timeout: Seconds = 300) -> StreamingResponse:
    """Server-sent events: each turn's progress (interpreting, grounding, checking, awaiting_confirmation,
    executing, done with the turn JSON). The stream ends after ``timeout`` seconds."""

    def check() -> int:
        service.check_owner(conversation, person)
        return service.newest_message(conversation)

    after = await run_in_threadpool(check)
    listener = service.events.subscribe(conversation)
    try:
        await run_in_threadpool(service.events.announce, conversation)  # to turns that other processes run
    except BaseException:
        service.events.unsubscribe(conversation, listener)
        raise

    async def stream() -> AsyncIterator[str]:
        nonlocal after
        told: set[str] = set()  # turns whose done was sent: each once, whichever way it came
        now = time.monotonic()
        end, poll, quiet = now + timeout, now + _POLL_SECONDS, now + _KEEP_ALIVE_SECONDS
        try:
            yield ": connected\n\n"
            while now < end:
                items: list[dict[str, Any]] = []
                try:
                    items.append(await asyncio.wait_for(listener[1].get(), max(min(poll, end) - now, 0.01)))
                    while not listener[1].empty():  # all that came, before a done read from the database
                        items.append(listener[1].get_nowait())
                except TimeoutError:
                    pass
                now = time.monotonic()
                if now >= poll:  # turns run by other processes, from the conversation's messages
                    after, done = await run_in_threadpool(service.done_since, conversation, after)
                    items += done
                    poll = now + _POLL_SECONDS
                for item in items:
                    turn = str(item["turn"].get("turn")) if item["stage"] == "done" else ""
                    if turn and turn in told:
                        continue
                    told.add(turn)
                    quiet = now + _KEEP_ALIVE_SECONDS
                    yield f"event: {item['stage']}\ndata: {json.dumps(item, default=str)}\n\n"
                if now >= quiet:
                    quiet = now + _KEEP_ALIVE_SECONDS
                    yield ": keep-alive\n\n"
        finally:
            service.events.unsubscribe(conversation, listener)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


# --- confirmations --------------------------------------------------------------------------------------------

confirmation_routes = APIRouter(prefix="/v1/confirmations", tags=["confirmations"])


@confirmation_routes.get("")
def confirmations(service: Served, person: Caller) -> list[dict[str, Any]]:
    return [{**c.summary(), "conversation": c.conversation, "plan": c.plan}
            for c in service.pipeline(person).pending(person.id)]


def _answer(service: Service, person: Person, confirmation: str, approve: bool, key: str | None,
            link: str | None = None) -> JSONResponse:
    """Approve or decline; with ``link``, only when that approval link is sayso's, the caller's and unused."""
    chat = service.chat(person)
    request: dict[str, Any] = {"confirmation": confirmation, "approve": approve, **({"link": link} if link else {})}

    def handle(_as: str) -> JSONResponse:
        if link is not None:
            approvals.by_link(service.ws, chat.pipeline.confirmations, confirmation, link, person)
        result = chat.settle(person.id, confirmation, approve)
        if result.conversation:
            service.events.publish(result.conversation, {"stage": "done", "turn": result.to_json()})
        return _turn(result)

    return service.idempotent(person, key, request, handle,
                              plan=service.plan_of(confirmation, person) if approve else None)


@confirmation_routes.post("/{confirmation}/approve")
def approve(confirmation: str, service: Served, person: Caller, key: Key = None) -> JSONResponse:
    return _answer(service, person, confirmation, True, key)


@confirmation_routes.post("/{confirmation}/decline")
def decline(confirmation: str, service: Served, person: Caller, key: Key = None) -> JSONResponse:
    return _answer(service, person, confirmation, False, key)


# --- approvals routed to the approver (sayso.approvals): the signed links of approval emails --------------------

approval_routes = APIRouter(prefix="/v1/approvals", tags=["confirmations"])
Signature = Annotated[str, Query(alias="sig", max_length=128, description="The signature the approval link carries")]


@approval_routes.get("/{confirmation}")
def approval(confirmation: str, sig: Signature, service: Served, person: Caller) -> dict[str, Any]:
    """The card an approval link opens: who asked, their words, the exact change, why it needs the caller."""
    return approvals.by_link(service.ws, service.pipeline(person).confirmations, confirmation, sig, person)


@approval_routes.post("/{confirmation}/approve")
def approve_link(confirmation: str, sig: Signature, service: Served, person: Caller, key: Key = None) -> JSONResponse:
    """Approve what the link names (the caller must be its approver, the link sayso's and unused)."""
    return _answer(service, person, confirmation, True, key, link=sig)


@approval_routes.post("/{confirmation}/decline")
def decline_link(confirmation: str, sig: Signature, service: Served, person: Caller, key: Key = None) -> JSONResponse:
    return _answer(service, person, confirmation, False, key, link=sig)


# --- standing instructions ------------------------------------------------------------------------------------

instruction_routes = APIRouter(prefix="/v1/instructions", tags=["instructions"])


@instruction_routes.get("")
def instructions(service: Served, person: Caller,
                      every: Annotated[bool, Query(alias="all")] = False) -> list[dict[str, Any]]:
    """The caller's standing instructions (active ones unless ``all=true``)."""
    return [i.brief() for i in InstructionBook(service.ws.store).of(person.id, status=None if every else "active")]


@instruction_routes.post("/{instruction}/cancel")
def cancel_instruction(instruction: str, service: Served, person: Caller, key: Key = None) -> JSONResponse:
    """Cancel one of the caller's instructions; another person's answers 404."""

    def handle(_as: str) -> JSONResponse:
        pipeline = service.pipeline(person)
        item = InstructionBook(service.ws.store).cancel(instruction, person.id, pipeline.clock.now())
        pipeline.audit.record([AuditEvent("instruction", person.id, "cancelled", item.action, item.conversation,
                                          None, "api", {"instruction": item.id, "words": item.words})])
        return JSONResponse(item.brief())

    return service.idempotent(person, key, {"cancel_instruction": instruction}, handle)


# --- actions and audit ----------------------------------------------------------------------------------------

action_routes = APIRouter(prefix="/v1/actions", tags=["actions"])


@action_routes.get("")
def actions(service: Served, _person: Caller) -> list[dict[str, Any]]:
    return [a.describe() for a in service.ws.catalog]


@action_routes.post("/{name}")
def act(name: str, payload: Annotated[ActionIn, Body()], service: Served, person: Caller,
        key: Key = None) -> JSONResponse:
    pipeline = service.pipeline(person)
    return service.idempotent(person, key, {"action": name, "args": payload.args},
                              lambda turn: _turn(pipeline.do(person.id, name, payload.args, turn_id=turn)))


audit_routes = APIRouter(tags=["audit"])


@audit_routes.get("/v1/audit")
def audit(service: Served, person: Caller, conversation: str | None = None, user: str | None = None,
                  action: str | None = None, since: Since = None, limit: Limit = 500) -> list[dict[str, Any]]:
    """Audit records: a person sees their own; an admin sees everyone's. ``since``: ISO 8601 (a time
    without an offset is read in the caller's time zone)."""
    if person.role != "admin":
        user = person.id
    when = parse_time(since, person.timezone) if since else None
    return service.pipeline(person).audit.list(user=user, conversation=conversation, action=action,
                                               since=when, limit=limit)


ROUTERS = (health_routes, people_routes, conversation_routes, confirmation_routes, approval_routes, instruction_routes,
           action_routes, audit_routes)

# --- the web page ---------------------------------------------------------------------------------------------

page_routes = APIRouter(include_in_schema=False)


@page_routes.get("/")
@page_routes.get("/auth/callback")  # where the identity provider sends people back
def index() -> FileResponse:
    return FileResponse(WEB / "index.html")


icon_routes = APIRouter(include_in_schema=False)


@icon_routes.get("/favicon.ico")
def favicon() -> FileResponse:
    """The icon browsers ask for (the one the API docs show), rather than a 404 in every log."""
    return FileResponse(FAVICON, media_type="image/png")


def create_app(root: Path | str, *, now: str | None = None, interpreter: Interpreter | None = None,
               threads: int | None = None) -> FastAPI:
    """The application for the workspace at ``root`` (``now`` pins the clock, as ``--now`` does; ``threads``:
    requests worked on at once, by default ``threads_for`` the interpreter)."""
    service = Service(Path(root), now, interpreter)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = threads or threads_for(service.interpreter)
        stop = _run_instructions(service)
        yield
        stop()
        service.events.close()
        service.ws.close()

    # /docs and /redoc from Swagger UI's and ReDoc's files in the fastapi-offline package: no CDN
    app = FastAPIOffline(title="sayso", version="1", summary="Say it, and it is done, safely.", lifespan=lifespan,
                         responses=_ERRORS, favicon_url="/favicon.ico",
                         description="The sayso API: conversations, confirmations, actions and the audit log. "
                                     "Every request but health checks needs `Authorization: Bearer TOKEN`.")
    app.state.service = service

    app.add_middleware(Edge, max_body=service.ws.settings.serve.max_body_bytes, authenticate=service.caller,
                       open_paths=_OPEN_PATHS)
    for name in CHANNELS.names():
        CHANNELS.factory(name)().mount(app, service)

    @app.exception_handler(SaysoError)
    async def _sayso_error(_request: Request, exc: SaysoError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 else None
        return JSONResponse({"error": _public(exc.as_dict())}, status_code=exc.http_status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return _error(422, "invalid_request", problems[:1000] or "invalid request")

    @app.exception_handler(HTTPException)
    async def _http(_request: Request, exc: HTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _crash(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return _error(500, "internal_error", "something went wrong on the server; it is in the server's log")

    for router in (*ROUTERS, icon_routes):
        app.include_router(router)
    if WEB.is_dir():
        app.mount("/static", StaticFiles(directory=WEB), name="static")
        app.include_router(page_routes)
    return app
