"""Short, key-free descriptions of a model server's failures, shared by the backends."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

_IDENTIFIER = re.compile(r"[A-Za-z0-9_.\-]{1,48}")
_REASONS = {
    401: "the API key was refused",
    403: "access was denied",
    404: "no such model or path",
    408: "the request timed out",
    413: "the request is too large",
    429: "rate limit or quota reached",
}
# The server's own words help for these (a model without tool support, a context too long);
# for authentication errors they may quote part of the key, so they are left out.
_SHOW_MESSAGE = {400, 404, 413, 422}


def display_url(url: str) -> str:
    """The URL without credentials, query or fragment: safe for a message."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path.rstrip('/')}" if parts.scheme else url


def describe_status(status: int, body: Any) -> str:
    """What an HTTP error status means, with the vendor's error code when it is a plain identifier."""
    reason = _REASONS.get(status) or ("server error" if status >= 500 else "request refused")
    error = body.get("error", body) if isinstance(body, dict) else None
    if isinstance(error, dict):
        code = error.get("code") or error.get("type")
        if isinstance(code, str) and _IDENTIFIER.fullmatch(code):
            reason = f"{reason} ({code})"
        message = error.get("message")
        if status in _SHOW_MESSAGE and isinstance(message, str) and message.strip():
            reason = f"{reason}: {' '.join(message.split())[:160]}"
    return reason


def scrub(text: str, *secrets: str | None) -> str:
    """``text`` with every secret (and any 8-character piece of it) masked."""
    for secret in secrets:
        if not secret or len(secret) < 8:
            continue
        text = text.replace(secret, "***")
        for start in range(0, len(secret) - 7):
            text = text.replace(secret[start:start + 8], "***")
    return text


def explain(client: Any, exc: Exception, server: str, timeout: float, key: str) -> str:
    """Why a call through an official client (``openai`` or ``anthropic``, which name their errors alike)
    failed, in words that name the server and never the key."""
    if isinstance(exc, client.APITimeoutError):
        text = f"{server} did not answer within {timeout:g} s"
    elif isinstance(exc, client.APIConnectionError):
        text = f"{server} could not be reached"
    elif isinstance(exc, client.APIStatusError):
        text = f"{server} answered HTTP {exc.status_code}: {describe_status(exc.status_code, exc.body)}"
    else:
        text = f"{server} sent a reply that could not be read ({type(exc).__name__})"
    return scrub(text, key)
