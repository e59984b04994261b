"""What the stand-ins share: a threaded stdlib HTTP server on 127.0.0.1 that hands every request to one
method, JSON answers, and (for REST APIs) a record of every request and failures set in advance."""

from __future__ import annotations

import json
import re
import ssl
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

__all__ = ["ApiError", "RestStandIn", "StandInServer", "send_json"]


class StandInServer:
    """A server on a free port of 127.0.0.1 (HTTPS when :meth:`tls` gives a context) whose every
    request, whatever its method, goes to :meth:`serve`, each on a thread of its own."""

    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def serve(self, request: BaseHTTPRequestHandler) -> None:
        raise NotImplementedError

    def tls(self) -> ssl.SSLContext | None:
        """The server side of TLS, for a stand-in that speaks HTTPS."""
        return None

    def start(self) -> Self:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                owner.serve(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve  # noqa: N815 (http.server's naming)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
                """Quiet: tests read what the stand-in recorded instead."""

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = self.tls()
        if context is not None:
            server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    @contextmanager
    def running(self) -> Iterator[Self]:
        self.start()
        try:
            yield self
        finally:
            self.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "start the stand-in first"
        return int(self._server.server_address[1])


def send_json(request: BaseHTTPRequestHandler, status: int, answer: Any,
              headers: Mapping[str, str] | None = None) -> None:
    """Answer with ``answer`` as JSON (no body at all for None)."""
    payload = b"" if answer is None else json.dumps(answer).encode()
    request.send_response(status)
    if payload:
        request.send_header("Content-Type", "application/json;charset=UTF-8")
    request.send_header("Content-Length", str(len(payload)))
    for name, value in (headers or {}).items():
        request.send_header(name, value)
    request.end_headers()
    request.wfile.write(payload)


class ApiError(Exception):
    """An error answer of the API, raised by a handler: its status and its documented body."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


class RestStandIn(StandInServer):
    """A REST API in memory: every request is recorded in ``requests`` (method, path, query, JSON body,
    headers) and answered by :meth:`handle`, unless :meth:`authorized` refuses it or :meth:`fail_once`
    set a failure for it."""

    fault_answer: Any = None  # the body of a failure set with fail_once

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.faults: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def authorized(self, header: str | None) -> bool:
        raise NotImplementedError

    def refused(self) -> Any:
        """The body of the API's 401."""
        raise NotImplementedError

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        raise NotImplementedError

    def fail_once(self, method: str, pattern: str, status: int = 500, *, after: bool = False) -> None:
        """The next matching request fails with ``status``: before it is applied, or ``after`` it was
        applied (an answer lost on the way back)."""
        self.faults.append({"method": method, "pattern": pattern, "status": status, "after": after})

    def _fault(self, method: str, path: str) -> dict[str, Any] | None:
        for fault in self.faults:
            if fault["method"] == method and re.fullmatch(fault["pattern"], path):
                self.faults.remove(fault)
                return fault
        return None

    def calls(self, method: str, pattern: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] == method and re.fullmatch(pattern, r["path"])]

    def serve(self, request: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(request.path)
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        with self.lock:
            self.requests.append({"method": request.command, "path": parts.path, "query": parse_qs(parts.query),
                                  "body": body, "headers": dict(request.headers.items())})
            fault = self._fault(request.command, parts.path)
            if not self.authorized(request.headers.get("Authorization")):
                status, answer = 401, self.refused()
            elif fault is not None and not fault["after"]:
                status, answer = fault["status"], self.fault_answer
            else:
                try:
                    status, answer = self.handle(request.command, parts.path, parse_qs(parts.query), body)
                except ApiError as exc:
                    status, answer = exc.status, exc.body
                if fault is not None:
                    status, answer = fault["status"], self.fault_answer
        send_json(request, status, answer)
