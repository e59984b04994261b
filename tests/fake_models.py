"""Fake model servers on loopback that answer in the vendors' documented formats.

``FakeModelServer`` is a real HTTP server on 127.0.0.1 that speaks OpenAI chat
completions (also the Azure deployment path) and Anthropic messages. A test
says what the "model" answers with a ``Reply`` (text, tool calls, or an HTTP
error or a delay) and reads back every request body the server received::

    with FakeModelServer(lambda body: Reply(calls=[Call("crm__find_deal", {"name": "Acme"})])) as server:
        backend = OpenAIBackend("gpt-4o-mini", base_url=server.openai_url, api_key="sk-test")
        reply = backend.complete("system", [Message("user", "find Acme")], tools)
        assert server.requests[0]["messages"][0]["role"] == "system"

The response bodies follow the formats of the OpenAI API reference ("The chat
completion object") and the Anthropic Messages API ("tool_use" content blocks,
``stop_reason``), and the error bodies each vendor documents.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "Call",
    "FakeModelServer",
    "Received",
    "Reply",
    "anthropic_error",
    "anthropic_response",
    "openai_error",
    "openai_response",
]


@dataclass(frozen=True)
class Call:
    """One tool call the fake model makes: arguments as a dict, or ``raw`` sent verbatim."""

    name: str
    arguments: dict[str, Any] | None = None
    raw: str | None = None  # OpenAI: the "arguments" string as is; Anthropic: "input" set to this string
    id: str | None = None  # generated in the vendor's style when None


@dataclass(frozen=True)
class Reply:
    """What the fake model answers to one request."""

    text: str = ""
    calls: Sequence[Call] = ()
    status: int = 200  # anything else answers with the vendor's documented error body
    error: str = ""  # the error message for a non-200 status (a default per status otherwise)
    delay: float = 0.0  # seconds to wait before answering, to make a client time out
    model: str | None = None  # the model the server reports; the request's model when None
    input_tokens: int = 25
    output_tokens: int = 9
    stop_reason: str | None = None  # finish_reason / stop_reason; derived from the calls when None
    body: Any = None  # a JSON body sent instead of the documented one (malformed-response tests)


@dataclass(frozen=True)
class Received:
    """One request as the server saw it."""

    api: str  # "openai", "azure" or "anthropic"
    path: str  # without the query string
    query: str
    headers: dict[str, str]  # lower-case names
    body: Any


Script = Callable[[Any], Reply]

_AZURE_PATH = re.compile(r"/openai/deployments/[^/]+/chat/completions")

_OPENAI_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}
_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def _id(prefix: str, length: int = 24) -> str:
    return prefix + uuid.uuid4().hex[:length]


def openai_response(reply: Reply, model: str) -> dict[str, Any]:
    """A chat completion object (``"object": "chat.completion"``) for ``reply``."""
    tool_calls = [
        {
            "id": call.id or _id("call_"),
            "type": "function",
            "function": {
                "name": call.name,
                "arguments": call.raw if call.raw is not None else json.dumps(call.arguments or {}),
            },
        }
        for call in reply.calls
    ]
    message: dict[str, Any] = {
        "role": "assistant",
        "content": reply.text or None,
        "refusal": None,
        "annotations": [],
    }
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": _id("chatcmpl-", 29),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": reply.model or model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": reply.stop_reason or ("tool_calls" if tool_calls else "stop"),
            }
        ],
        "usage": {
            "prompt_tokens": reply.input_tokens,
            "completion_tokens": reply.output_tokens,
            "total_tokens": reply.input_tokens + reply.output_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "service_tier": "default",
        "system_fingerprint": "fp_" + uuid.uuid4().hex[:10],
    }


def openai_error(status: int, message: str = "") -> dict[str, Any]:
    """OpenAI's error body: ``{"error": {"message", "type", "param", "code"}}``."""
    kind, code = _OPENAI_ERROR_TYPES.get(status, ("server_error", None))
    return {"error": {"message": message or _default_message(status), "type": kind, "param": None, "code": code}}


def anthropic_response(reply: Reply, model: str) -> dict[str, Any]:
    """A Messages API response (``"type": "message"``) with text and ``tool_use`` blocks."""
    content: list[dict[str, Any]] = []
    if reply.text:
        content.append({"type": "text", "text": reply.text})
    for call in reply.calls:
        content.append({
            "type": "tool_use",
            "id": call.id or _id("toolu_01", 22),
            "name": call.name,
            "input": call.raw if call.raw is not None else (call.arguments or {}),
        })
    return {
        "id": _id("msg_01", 22),
        "type": "message",
        "role": "assistant",
        "model": reply.model or model,
        "content": content,
        "stop_reason": reply.stop_reason or ("tool_use" if reply.calls else "end_turn"),
        "stop_sequence": None,
        "usage": {
            "input_tokens": reply.input_tokens,
            "output_tokens": reply.output_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "service_tier": "standard",
        },
    }


def anthropic_error(status: int, message: str = "") -> dict[str, Any]:
    """Anthropic's error body: ``{"type": "error", "error": {"type", "message"}, "request_id"}``."""
    kind = _ANTHROPIC_ERROR_TYPES.get(status, "api_error")
    return {
        "type": "error",
        "error": {"type": kind, "message": message or _default_message(status)},
        "request_id": _id("req_01", 22),
    }


def _default_message(status: int) -> str:
    return {
        400: "Invalid request.",
        401: "Incorrect API key provided.",
        403: "Access denied.",
        404: "The model does not exist or you do not have access to it.",
        429: "Rate limit reached for requests.",
    }.get(status, "The server had an error while processing your request.")


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 (the name http.server dispatches to)
        parts = urlsplit(self.path)
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if parts.path == "/v1/chat/completions":
            api = "openai"
        elif _AZURE_PATH.fullmatch(parts.path):
            api = "azure"
        elif parts.path == "/v1/messages":
            api = "anthropic"
        else:
            self._send(404, {"error": {"message": f"no route {parts.path}", "type": "invalid_request_error"}})
            return
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw.decode("utf-8", "replace")
        received = Received(api, parts.path, parts.query, {k.lower(): v for k, v in self.headers.items()}, body)
        reply = self.server.owner._answer(received)
        if reply.delay and self.server.owner._closing.wait(reply.delay):
            return
        model = body.get("model", "") if isinstance(body, dict) else ""
        if reply.body is not None:
            payload = reply.body
        elif reply.status != 200:
            payload = anthropic_error(reply.status, reply.error) if api == "anthropic" else openai_error(
                reply.status, reply.error)
        elif api == "anthropic":
            payload = anthropic_response(reply, model)
        else:
            payload = openai_response(reply, model)
        self._send(reply.status, payload)

    def _send(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", _id("req_"))
        self.send_header("request-id", _id("req_01", 22))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (signature of the base class)
        """Quiet: the test reads ``server.received`` instead."""


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True  # server_close() joins the handler threads: nothing outlives the test
    owner: FakeModelServer

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.owner._lock:
            self.owner._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.owner._lock:
            self.owner._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (a timeout test) closes its socket: not an error of the fake."""


class FakeModelServer:
    """A threaded HTTP server on 127.0.0.1 (a free port) playing a model, for ``with`` blocks.

    ``script`` is a function of the request body returning a ``Reply``, one ``Reply``
    for every request, or a list of replies answered in order (a test fails if more
    requests arrive). An exception in the script answers HTTP 500 and is raised again
    when the ``with`` block ends, so a broken test does not pass as "model unavailable".
    """

    def __init__(self, script: Script | Reply | Sequence[Reply]) -> None:
        self._script = script
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._errors: list[BaseException] = []
        self._connections: set[socket.socket] = set()
        self.received: list[Received] = []
        self._httpd: _Server | None = None
        self._port = 0
        self._thread: threading.Thread | None = None

    @property
    def requests(self) -> list[Any]:
        """Every request body received, in order (parsed JSON)."""
        return [r.body for r in self.received]

    @property
    def port(self) -> int:
        """The port, still known after the server closed (to test a refused connection)."""
        assert self._port, "the server has not started"
        return self._port

    @property
    def url(self) -> str:
        """Root URL: the Anthropic base URL and the Azure endpoint."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_url(self) -> str:
        """The OpenAI base URL (``/v1`` included)."""
        return f"{self.url}/v1"

    anthropic_url = url
    azure_endpoint = url

    def __enter__(self) -> FakeModelServer:
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self._port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
        if kind is None and self._errors:
            raise self._errors[0]

    def close(self) -> None:
        self._closing.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            with self._lock:
                open_connections = list(self._connections)
            for connection in open_connections:  # a client's kept-alive connection would hold its thread
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _answer(self, received: Received) -> Reply:
        with self._lock:
            index = len(self.received)
            self.received.append(received)
        try:
            script = self._script
            if isinstance(script, Reply):
                return script
            if callable(script):
                return script(received.body)
            if index >= len(script):
                raise AssertionError(f"the fake model got request {index + 1} but has {len(script)} replies")
            return script[index]
        except Exception as exc:
            with self._lock:
                self._errors.append(exc)
            return Reply(status=500, error=f"fake model script failed: {exc!r}")
