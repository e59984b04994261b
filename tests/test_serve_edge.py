"""The edge of the HTTP server against a real Uvicorn on loopback: the body limit holds on the stream
(``Transfer-Encoding: chunked`` declares no length), and a caller without a valid token is refused before the
server reads its body. Each test sends far more than the limit through a raw socket and shows the answer comes
back, and the connection is closed, long before the body is finished."""

from __future__ import annotations

import select
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

pytest.importorskip("fastapi", reason="the HTTP service needs its extra: pip install 'sayso[serve]'")
pytest.importorskip("uvicorn", reason="the HTTP service needs its extra: pip install 'sayso[serve]'")

from .test_serve import Api, start  # noqa: E402

CHUNK = 64 * 1024
TOTAL = 32 * 1024 * 1024  # sent at most; the limit is 256 KiB


@pytest.fixture
def api(sqlite_root: Path) -> Iterator[Api]:
    yield from start(sqlite_root)


def send_chunked(url: str, path: str, token: str | None) -> tuple[int, bytes, int]:
    """POST up to ``TOTAL`` bytes to ``path`` in chunks, stopping as soon as an answer can be read or the server
    stops taking the body; the answer's status, its raw bytes, and how many body bytes were sent."""
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    head = [f"POST {path} HTTP/1.1", f"Host: {parts.netloc}", "Content-Type: application/json",
            "Transfer-Encoding: chunked"]
    if token:
        head.append(f"Authorization: Bearer {token}")
    piece = b"%x\r\n" % CHUNK + b" " * CHUNK + b"\r\n"
    sent = 0
    with socket.create_connection((parts.hostname, parts.port), timeout=60) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        while sent < TOTAL and not select.select([sock], [], [], 0)[0]:
            try:
                sock.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):  # the server closed its end
                break
            sent += CHUNK
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0
    return status, answer, sent


def test_a_chunked_body_over_the_limit_is_refused_on_the_stream(api: Api) -> None:
    status, answer, sent = send_chunked(api.url, "/v1/conversations/c_any/messages", api.tokens["alice"])
    assert status == 413, answer[:300]
    assert b'"code": "input_too_large"' in answer and b"connection: close" in answer.lower()
    assert sent < TOTAL  # the server stopped reading: the body was never finished


def test_a_caller_without_a_valid_token_is_refused_before_the_body_is_read(api: Api) -> None:
    for token in (None, "sayso_" + "x" * 43):
        status, answer, sent = send_chunked(api.url, "/v1/actions/chat.send", token)
        assert status == 401, answer[:300]
        assert b'"code": "unauthorized"' in answer and b"www-authenticate: bearer" in answer.lower()
        assert sent < TOTAL


def test_a_chunked_body_within_the_limit_is_served(api: Api) -> None:
    def body() -> Iterator[bytes]:
        yield b'{"args": {"to": "bob", '
        yield b'"text": "hi"}}'

    with api.client("alice") as alice:
        done = alice.post("/v1/actions/chat.send", content=body(), headers={"Content-Type": "application/json"})
        assert done.status_code == 200 and done.json()["status"] == "executed"
        assert api.chat_messages() == 1
    with httpx.Client(base_url=api.url) as anyone:  # no body: the route itself answers, as before
        assert anyone.get("/v1/me").status_code == 401
