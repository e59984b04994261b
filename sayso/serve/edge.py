"""The edge of every HTTP request: a request id, the body limit on the stream, authentication before the body,
and one log line.

Plain ASGI rather than ``@app.middleware("http")``: Starlette's ``BaseHTTPMiddleware`` runs each request through
a task group and a memory stream, which cost more than a turn's policy check.

The body limit holds however the body comes. A declared ``Content-Length`` above it is refused before anything
is read; otherwise the bytes the application reads are counted as they arrive (``Transfer-Encoding: chunked``
declares no length), and the request is answered ``413`` as soon as the count passes the limit: the application
is told the client went away and reads nothing more. A request that sends a body to an authenticated route is
authenticated from its headers first, so a caller without a valid token is answered ``401`` before one byte of
its body is read. Routes that would authenticate by their body (none today: a sign-in form, a signed webhook)
belong in ``open_paths`` and read at most the limit. Every refusal that leaves a body unread closes the
connection (``Connection: close``), so the server stops receiving it.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Collection

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import InputTooLarge, SaysoError

__all__ = ["CALLER", "Edge", "request_id"]

log = logging.getLogger("sayso.serve")

CALLER = "sayso_caller"  # the request state's key for whom the edge authenticated


def request_id() -> str:
    return uuid.uuid4().hex[:12]


class _Exchange:
    """One request as the edge sees it: its id, its status, the body bytes read so far, and whether the edge has
    answered it (then whatever the application sends is dropped, and its reads are told the client went away)."""

    def __init__(self, receive: Receive, send: Send, rid: str, max_body: int) -> None:
        self._receive = receive
        self._send = send
        self.rid = rid
        self.max_body = max_body
        self.status = 500
        self.started = False
        self.answered = False
        self.received = 0

    async def send(self, message: Message) -> None:
        if self.answered:
            return
        if message["type"] == "http.response.start":
            self.started = True
            self.status = message["status"]
            message["headers"] = [*message.get("headers", ()), (b"x-request-id", self.rid.encode("latin-1"))]
        await self._send(message)

    async def receive(self) -> Message:
        """The application's ``receive``: body bytes counted, and cut off once past the limit."""
        if self.answered:
            return {"type": "http.disconnect"}
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.max_body:
                if not self.started:
                    await self.refuse(InputTooLarge(f"the request body is over the limit of {self.max_body} "
                                                    "bytes"))
                return {"type": "http.disconnect"}
        return message

    async def refuse(self, error: SaysoError) -> None:
        """Answer with ``error`` in the error shape and close the connection: the body is left unread."""
        body = json.dumps({"error": {"code": error.code, "message": error.message}}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close")]
        if error.http_status == 401:
            headers.append((b"www-authenticate", b"Bearer"))
        await self.send({"type": "http.response.start", "status": error.http_status, "headers": headers})
        await self.send({"type": "http.response.body", "body": body})
        self.answered = True


class Edge:
    """Every request: its id, the body limit (declared and counted), authentication before the body, a log line.

    ``authenticate`` takes the ``Authorization`` header (or None) and returns the caller, or raises a
    ``SaysoError`` for a caller it does not accept; it runs in the thread pool, as routes do. It is asked only
    for requests that carry a body to a path under ``/v1/`` that is not in ``open_paths``, and what it returns
    is kept in the request's state under ``CALLER`` for the route; a request without a body is authenticated
    by its route.
    """

    def __init__(self, app: ASGIApp, max_body: int, authenticate: Callable[[str | None], object],
                 open_paths: Collection[str] = ()) -> None:
        self.app = app
        self.max_body = max_body
        self.authenticate = authenticate
        self.open_paths = frozenset(open_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        rid = size = ""
        authorization: str | None = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                rid = value.decode("latin-1")[:64]
            elif name == b"content-length":
                size = value.decode("latin-1")
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"authorization":
                authorization = value.decode("latin-1")
        exchange = _Exchange(receive, send, rid or request_id(), self.max_body)
        path: str = scope["path"]
        refused = size.isdigit() and int(size) > self.max_body
        if refused:
            await exchange.refuse(InputTooLarge(f"the request is {size} bytes; the limit is {self.max_body}"))
        elif (chunked or size.strip("0")) and self._authenticates(path):
            refused = not await self._accepts(scope, authorization, exchange)
        if not refused:
            await self.app(scope, exchange.receive, exchange.send)
        if log.isEnabledFor(logging.INFO):
            parts = path.split("/")
            conversation = parts[3] if len(parts) > 3 and parts[2] == "conversations" else "-"
            log.info("%s %s %s %.1fms request=%s", scope["method"], path, exchange.status,
                     (time.perf_counter() - started) * 1000, exchange.rid, extra={"conversation": conversation})

    def _authenticates(self, path: str) -> bool:
        """Whether ``path``'s route authenticates by the ``Authorization`` header."""
        return path.startswith("/v1/") and path not in self.open_paths

    async def _accepts(self, scope: Scope, authorization: str | None, exchange: _Exchange) -> bool:
        """Whether the caller is authenticated; when not, the request is answered (and its body never read).
        Who it is stays in the request's state (``CALLER``), so the route does not ask again."""
        try:
            caller = await run_in_threadpool(self.authenticate, authorization)
        except SaysoError as exc:
            await exchange.refuse(exc)
            return False
        scope.setdefault("state", {})[CALLER] = caller
        return True
