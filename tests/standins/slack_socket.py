"""A stand-in for Slack's Socket Mode endpoint: a WebSocket server on 127.0.0.1 (RFC 6455, text frames,
ping/pong) that sends envelopes as Slack does and records the acknowledgements the app sends back.

The flow is Slack's (docs.slack.dev/apis/events-api/using-socket-mode): the app calls
``apps.connections.open`` with its app-level token (the Web API stand-in answers with :attr:`url`), opens the
WebSocket, receives ``{"type": "hello"}``, then envelopes ``{"envelope_id", "type": "events_api" |
"interactive", "payload", "accepts_response_payload", "retry_attempt", "retry_reason"}``, and answers each
with ``{"envelope_id": ...}``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import struct
import threading
import time
from typing import Any, Self

__all__ = ["SocketModeStandIn"]

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def _frame(opcode: int, payload: bytes) -> bytes:
    """A frame from the server: final, unmasked."""
    head = bytes([0x80 | opcode])
    if len(payload) < 126:
        return head + bytes([len(payload)]) + payload
    if len(payload) < 1 << 16:
        return head + bytes([126]) + struct.pack("!H", len(payload)) + payload
    return head + bytes([127]) + struct.pack("!Q", len(payload)) + payload


def _exactly(conn: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = conn.recv(count - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


class SocketModeStandIn:
    """Slack's side of Socket Mode for one app connection at a time."""

    def __init__(self) -> None:
        self.acks: list[dict[str, Any]] = []
        self._server = socket.create_server(("127.0.0.1", 0))
        self._conn: socket.socket | None = None
        self._connected = threading.Event()
        self._send = threading.Lock()
        self._done = False

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self._server.getsockname()[1]}/link/?ticket=test"

    def __enter__(self) -> Self:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done = True
        self._server.close()
        if self._conn is not None:
            self._conn.close()

    def _accept(self) -> None:
        while not self._done:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = conn.recv(4096)
            if not chunk:
                return
            request += chunk
        headers = {k.strip().lower(): v.strip() for k, _, v in
                   (line.partition(":") for line in request.decode().split("\r\n")[1:] if ":" in line)}
        accept = base64.b64encode(hashlib.sha1((headers["sec-websocket-key"] + _GUID).encode()).digest()).decode()
        conn.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Accept: {accept}\r\n\r\n").encode())
        self._conn = conn
        self._write(1, json.dumps({"type": "hello", "num_connections": 1,
                                   "connection_info": {"app_id": "A0SAYSOAPP"}}).encode())
        self._connected.set()
        try:
            while True:
                first, second = _exactly(conn, 2)
                opcode, length = first & 0x0F, second & 0x7F
                if length == 126:
                    length = struct.unpack("!H", _exactly(conn, 2))[0]
                elif length == 127:
                    length = struct.unpack("!Q", _exactly(conn, 8))[0]
                mask = _exactly(conn, 4) if second & 0x80 else b"\0\0\0\0"
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(_exactly(conn, length)))
                if opcode == 1:
                    self.acks.append(json.loads(payload))
                elif opcode == 9:
                    self._write(10, payload)
                elif opcode == 8:
                    self._write(8, payload[:2])
                    return
        except (ConnectionError, OSError):
            return

    def _write(self, opcode: int, payload: bytes) -> None:
        assert self._conn is not None
        with self._send:
            self._conn.sendall(_frame(opcode, payload))

    def deliver(self, kind: str, payload: dict[str, Any], envelope: str, retry: int = 0) -> None:
        """Slack sends one envelope (``events_api`` or ``interactive``) over the open connection."""
        assert self._connected.wait(30), "the app did not connect"
        self._write(1, json.dumps({"envelope_id": envelope, "type": kind, "payload": payload,
                                   "accepts_response_payload": kind != "events_api", "retry_attempt": retry,
                                   "retry_reason": "timeout" if retry else ""}).encode())

    def acked(self, envelope: str, timeout: float = 30) -> bool:
        """Whether the app acknowledged ``envelope`` (waiting up to ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(a.get("envelope_id") == envelope for a in self.acks):
                return True
            time.sleep(0.01)
        return False
