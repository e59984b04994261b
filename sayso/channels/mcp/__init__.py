"""sayso as an MCP server: the catalog as tools for AI clients, every call run through the pipeline as a person.

Two ways in, one server (the official ``mcp`` SDK's low-level ``Server``):

- ``/mcp`` on ``sayso serve``: streamable HTTP in the SDK's stateless mode (any worker answers any request,
  so it works behind a load balancer), authenticated exactly like the HTTP API (a sayso token or an OIDC token
  as ``Authorization: Bearer``). Without a valid token: ``401`` with ``WWW-Authenticate`` naming the protected
  resource metadata (``/.well-known/oauth-protected-resource/mcp``), per the MCP authorization spec.
- ``sayso mcp --user ID`` over stdio, as the person the operator named.

A call that waits for the person's confirmation asks them through the client when it can (elicitation: a
``2026-07-28`` client answers in a second round of the same call, an older one over stdio in the call itself),
unless ``[channels.mcp] elicitation_approvals = false``; otherwise its result says where to approve it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from ...directory import Person
from ...errors import SaysoError
from ...plugins import PluginRegistry
from ._gateway import Called, Gateway, McpSettings

__all__ = ["McpChannel", "build_server", "register", "serve_stdio"]

log = logging.getLogger("sayso.mcp")

METADATA_PATH = "/.well-known/oauth-protected-resource/mcp"
_PERSON = "sayso.person"  # the ASGI scope key the authenticated person travels in
_APPROVE_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["approve"],
    "properties": {"approve": {"type": "boolean", "title": "Approve",
                               "description": "Run exactly this change, once"}}}

Who = Callable[[Any], Person]  # the person a request acts for, from its context


def register(registry: PluginRegistry[Any]) -> None:
    registry.add("mcp", McpChannel)


def _client_name(ctx: Any) -> str | None:
    params = ctx.session.client_params
    info = getattr(params, "client_info", None) if params is not None else None
    return str(info.name) if info is not None and getattr(info, "name", None) else None


def _can_elicit(ctx: Any) -> bool:
    capabilities = ctx.session.client_capabilities
    return capabilities is not None and capabilities.elicitation is not None


def _asked(body: dict[str, Any], person: Person) -> str:
    """The elicitation's message: the exact change, and what approving means."""
    lines = [line for line in str(body.get("reply", "")).splitlines() if not line.startswith("Confirm with")]
    return "\n".join([*lines, f"Approve to run it once, as {person.name} ({person.id})."])


def build_server(gateway: Gateway, who: Who) -> Any:
    """The MCP server over ``gateway``; ``who`` names the person a request acts for."""
    import anyio.to_thread
    import mcp_types as types
    from mcp.server.lowlevel import Server
    from mcp_types.version import MODERN_PROTOCOL_VERSIONS

    def result(called: Called) -> types.CallToolResult:
        text = str(called.body.get("reply", ""))
        if called.confirmation:
            text += "\n" + gateway.pending_note(called)
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)],
                                    structured_content=called.body, is_error=called.failed)

    async def settle(ctx: Any, name: str, confirmation: str, approve: bool) -> types.CallToolResult:
        called = await anyio.to_thread.run_sync(gateway.settle, who(ctx), _client_name(ctx), name, confirmation,
                                                approve)
        return result(called)

    listing = types.ListToolsResult.model_validate(gateway.listing)

    async def list_tools(_ctx: Any, _params: Any) -> types.ListToolsResult:
        return listing

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> Any:
        person = who(ctx)
        if params.request_state is not None:  # the second round: the person's answer, through the client
            answer = (params.input_responses or {}).get("confirm")
            if not isinstance(answer, types.ElicitResult) or answer.action == "cancel":
                return result(await anyio.to_thread.run_sync(gateway.status_called, person, params.request_state))
            approve = answer.action == "accept" and bool((answer.content or {}).get("approve"))
            return await settle(ctx, params.name, params.request_state, approve)
        called = await anyio.to_thread.run_sync(gateway.call, person, _client_name(ctx), params.name,
                                                dict(params.arguments or {}))
        if not (called.confirmation and gateway.elicitation and _can_elicit(ctx)):
            return result(called)
        message = _asked(called.body, person)
        if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
            return types.InputRequiredResult(request_state=called.confirmation, input_requests={
                "confirm": types.ElicitRequest(params=types.ElicitRequestFormParams(
                    message=message, requested_schema=_APPROVE_SCHEMA))})
        if not ctx.session.can_send_request:
            return result(called)
        asked = await ctx.session.elicit_form(message, _APPROVE_SCHEMA, related_request_id=ctx.request_id)
        if asked.action == "cancel":
            return result(called)
        return await settle(ctx, params.name, called.confirmation,
                            asked.action == "accept" and bool((asked.content or {}).get("approve")))

    server = Server("sayso", version="1", instructions=(
        "sayso runs actions in the company's systems as the signed-in person, after checking their permissions. "
        "Writes of medium risk or more wait for the person's own confirmation, given in sayso or in the client's own "
        "dialog (elicitation); a model cannot approve."),
        on_list_tools=list_tools, on_call_tool=call_tool)
    server.middleware.append(_ListingOnce())
    return server


class _ListingOnce:
    """``tools/list`` answered with the SDK's own first answer, once per protocol version: the catalog is fixed
    for the life of the process, and shaping and checking 2,000 tools again on every call took half a second.
    A middleware that answers without ``call_next`` owns its result, so the cached wire form goes out as is."""

    def __init__(self) -> None:
        self.answers: dict[str, Any] = {}

    async def __call__(self, ctx: Any, call_next: Any) -> Any:
        if ctx.method != "tools/list" or (ctx.params or {}).get("cursor"):
            return await call_next(ctx)
        answer = self.answers.get(ctx.protocol_version)
        if answer is None:
            answer = self.answers[ctx.protocol_version] = await call_next(ctx)
        return answer


# --- stdio ------------------------------------------------------------------------------


def serve_stdio(root: Path, user: str, now: str | None) -> None:
    """``sayso mcp``: serve the workspace's tools over stdin/stdout as ``user`` until the client closes."""
    import anyio
    from mcp.server.stdio import stdio_server

    from ...serve.app import Service

    service = Service(root, now, None)
    try:
        person = service.ws.directory.get(user)
        server = build_server(Gateway(service), lambda _ctx: person)

        async def main() -> None:
            async with stdio_server() as (read, write):
                await server.run(read, write, server.create_initialization_options())

        anyio.run(main)
    finally:
        service.ws.close()


# --- HTTP -------------------------------------------------------------------------------


class McpChannel:
    """``/mcp`` on ``sayso serve`` (on unless ``[channels.mcp] enabled = false``)."""

    name = "mcp"

    def mount(self, app: Any, service: Any) -> None:
        if not McpSettings.of(service.ws).enabled:
            return
        try:
            from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
        except ImportError:
            log.warning('/mcp is off: the MCP server needs its extra: pip install "sayso[mcp]"')
            return
        from starlette.requests import Request
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        gateway = Gateway(service)
        server = build_server(gateway, lambda ctx: ctx.request.scope[_PERSON])
        manager = StreamableHTTPSessionManager(server, stateless=True, json_response=True)

        def metadata(request: Request) -> JSONResponse:
            """RFC 9728 protected resource metadata for ``/mcp``."""
            base = str(request.base_url).rstrip("/")
            serve = service.ws.settings.serve
            body: dict[str, Any] = {"resource": f"{base}/mcp", "resource_name": "sayso",
                                    "bearer_methods_supported": ["header"]}
            if serve.oidc_issuer:
                body["authorization_servers"] = [serve.oidc_issuer]
            return JSONResponse(body)

        app.router.routes.append(Route("/mcp", endpoint=_Authenticated(service, manager)))
        for path in (METADATA_PATH, "/.well-known/oauth-protected-resource"):
            app.router.routes.append(Route(path, endpoint=metadata, methods=["GET"]))
        inner = app.router.lifespan_context

        @asynccontextmanager
        async def lifespan(application: Any) -> AsyncIterator[Any]:
            async with manager.run(), inner(application) as state:
                yield state

        app.router.lifespan_context = lifespan


class _Authenticated:
    """``/mcp``: the caller authenticated like the HTTP API's (and rate limited), before the body is read; the
    request then goes to the SDK's stateless transport with the person in its scope. An ASGI application, so
    that the route passes every method through."""

    def __init__(self, service: Any, manager: Any) -> None:
        self.service = service
        self.manager = manager
        self.listings = _Listings()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        from starlette.concurrency import run_in_threadpool
        from starlette.requests import Request
        from starlette.responses import JSONResponse

        header = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), None)
        try:
            person = await run_in_threadpool(self.service.auth.person, header)
            await run_in_threadpool(self.service.buckets.take, person.id)
        except SaysoError as exc:
            base = str(Request(scope).base_url).rstrip("/")
            challenge = f'Bearer resource_metadata="{base}{METADATA_PATH}"'
            if header and exc.http_status == 401:
                challenge += ', error="invalid_token"'
            headers = {"WWW-Authenticate": challenge} if exc.http_status == 401 else {}
            answer = JSONResponse({"error": {"code": exc.code, "message": exc.message}},
                                  status_code=exc.http_status, headers=headers)
            await answer(scope, receive, send)
            return
        scope[_PERSON] = person
        if scope["method"] != "POST":
            await self.manager.handle_request(scope, receive, send)
            return
        await self.listings.handle(scope, receive, send, self.manager.handle_request)


class _Listings:
    """``tools/list`` over HTTP from the bytes of the SDK's first answer. The catalog is fixed for the life of the
    process and the same for everyone, but the SDK's transport shapes and encodes every answer again (over
    100 ms for 2,000 tools). The first successful JSON answer to a ``tools/list`` without a cursor is kept,
    by protocol version (header and envelope); later ones get it with their own request id. Every other
    request, and any request the cache cannot tell apart, goes to the SDK untouched."""

    def __init__(self) -> None:
        self.answers: dict[tuple[str, str], bytes] = {}

    async def handle(self, scope: Any, receive: Any, send: Any, app: Any) -> None:
        chunks = []
        while True:  # the body is bounded by the edge's limit, counted as it arrives
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        key, request_id = _listing_key(scope, body)
        answer = self.answers.get(key) if key is not None else None
        if answer is not None:
            await _json(send, b'{"jsonrpc":"2.0","id":' + json.dumps(request_id).encode() + b',"result":' + answer
                        + b"}")
            return
        sent = False

        async def replay() -> Any:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        if key is None:
            await app(scope, replay, send)
            return
        status = 0
        parts: list[bytes] = []
        headers: list[tuple[bytes, bytes]] = []

        async def keep(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status, headers[:] = message["status"], list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                parts.append(message.get("body", b""))
            await send(message)

        await app(scope, replay, keep)
        if status == 200 and (b"content-type", b"application/json") in headers:
            reply = json.loads(b"".join(parts))
            if isinstance(reply, dict) and isinstance(reply.get("result"), dict):
                self.answers[key] = json.dumps(reply["result"], separators=(",", ":")).encode()


def _listing_key(scope: Any, body: bytes) -> tuple[tuple[str, str] | None, Any]:
    """For a ``tools/list`` without a cursor: its protocol versions (header, envelope) and its request id."""
    try:
        request = json.loads(body)
    except ValueError:
        return None, None
    if not isinstance(request, dict) or request.get("method") != "tools/list":
        return None, None
    params = request.get("params") or {}
    if not isinstance(params, dict) or params.get("cursor") is not None:
        return None, None
    meta = params.get("_meta") or {}
    header = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"mcp-protocol-version"), "")
    envelope = meta.get("io.modelcontextprotocol/protocolVersion", "") if isinstance(meta, dict) else ""
    request_id = request.get("id")
    if not isinstance(request_id, str | int) or isinstance(request_id, bool):
        return None, None
    return (header, str(envelope)), request_id


async def _json(send: Any, body: bytes) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
