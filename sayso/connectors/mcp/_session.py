"""One MCP client session, run on a private event loop in a background thread.

The connector interface is synchronous and the MCP SDK is async. Each connector owns one thread with
its own asyncio loop; one task there holds the ``mcp.Client`` open (entered and left in that same task,
as anyio requires) until :meth:`Session.close`. Calls from any thread are scheduled on that loop and
waited for, with a bound.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from ...errors import ConfigurationError, ConnectorError, SaysoError

if TYPE_CHECKING:
    from mcp import Client

__all__ = ["Session", "explain"]

log = logging.getLogger("sayso")

T = TypeVar("T")

# Time for a closing session to end the server (stdio) or the HTTP session, beyond which it is abandoned.
_CLOSE_SECONDS = 5.0


def explain(exc: BaseException) -> str:
    """A one-line reason from an exception, through anyio's exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    message = getattr(exc, "message", None)
    if isinstance(exc, OSError) and exc.strerror:
        message = exc.strerror
    return str(message or exc or type(exc).__name__)


def _leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


@dataclass
class _Running:
    """One started session: its loop and thread, the task holding the client, and how to stop it."""

    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    stop: asyncio.Event
    ended: concurrent.futures.Future[None]  # set when the holding task has left the client
    holder: concurrent.futures.Future[None] | None = None
    client: Client | None = None


class Session:
    """A lazily started MCP client session; ``open_client`` builds the (not yet entered) client."""

    def __init__(self, system: str, open_client: Callable[[], Client], *, timeout: float, start_timeout: float,
                 what: str) -> None:
        self.system = system
        self._open_client = open_client
        self._timeout = timeout
        self._start_timeout = start_timeout
        self._what = what  # "command 'python'" or "URL http://...": for messages, never a secret
        self._lock = threading.Lock()
        self._running: _Running | None = None

    def call(self, work: Callable[[Client], Awaitable[T]]) -> T:
        """Run ``work(client)`` on the session's loop and return its result (starting the session if needed)."""
        client, loop = self._start()
        future = asyncio.run_coroutine_threadsafe(_awaited(work(client)), loop)
        try:
            return future.result(self._timeout + 5)  # the client's own read timeout fires first
        except TimeoutError:
            future.cancel()
            raise

    def _start(self) -> tuple[Client, asyncio.AbstractEventLoop]:
        with self._lock:
            running = self._running
            if running is not None and running.client is not None and not running.ended.done():
                return running.client, running.loop
            self._shutdown()  # a session whose server went away is started again
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name=f"sayso-mcp-{self.system}", daemon=True)
            running = _Running(loop, thread, asyncio.Event(), concurrent.futures.Future())
            self._running = running
            thread.start()
            ready: concurrent.futures.Future[Client] = concurrent.futures.Future()
            running.holder = asyncio.run_coroutine_threadsafe(self._hold(running, ready), loop)
            try:
                running.client = ready.result(self._start_timeout)
            except TimeoutError:
                self._shutdown()
                raise ConnectorError(
                    f"{self.system}: the MCP server ({self._what}) did not complete the handshake within "
                    f"{self._start_timeout:g}s") from None
            except Exception as exc:
                self._shutdown()
                raise self._start_error(exc) from None
            atexit.register(self.close)
            return running.client, loop

    def _start_error(self, exc: BaseException) -> SaysoError:
        leaf = _leaf(exc)
        if isinstance(leaf, FileNotFoundError | PermissionError | NotADirectoryError):
            return ConfigurationError(f"system {self.system!r}: cannot start the MCP server ({self._what}): "
                                      f"{explain(leaf)}")
        return ConnectorError(f"{self.system}: cannot connect to the MCP server ({self._what}): {explain(leaf)}")

    async def _hold(self, running: _Running, ready: concurrent.futures.Future[Client]) -> None:
        """Enter the client, hand it over, and keep it open until asked to stop (same task throughout)."""
        try:
            async with self._open_client() as client:
                ready.set_result(client)
                await running.stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else RuntimeError(explain(exc)))
            elif not running.stop.is_set():
                log.warning("%s: the MCP session ended: %s", self.system, explain(exc))
            if not isinstance(exc, Exception):
                raise
        finally:
            running.ended.set_result(None)

    def close(self) -> None:
        """End the session: the stdio server is stopped, the HTTP session ended; safe to call twice."""
        with self._lock:
            self._shutdown()
        atexit.unregister(self.close)

    def _shutdown(self) -> None:
        running, self._running = self._running, None
        if running is None:
            return
        loop = running.loop
        if not running.ended.done():
            if running.client is not None:  # a clean end: leave the client as it was entered
                loop.call_soon_threadsafe(running.stop.set)
            elif running.holder is not None:  # still starting: stop where it is
                running.holder.cancel()
            try:
                running.ended.result(_CLOSE_SECONDS)
            except TimeoutError:
                log.warning("%s: the MCP session did not end within %gs", self.system, _CLOSE_SECONDS)
        loop.call_soon_threadsafe(loop.stop)
        running.thread.join(_CLOSE_SECONDS)
        if not running.thread.is_alive():
            loop.close()


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable


def client_for_stdio(command: str, args: list[str], env: dict[str, str], cwd: str, timeout: float) -> Client:
    """An MCP client that starts ``command`` and speaks over its stdin and stdout."""
    import sys

    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client

    params = StdioServerParameters(command=command, args=args, env=env or None, cwd=cwd)
    return Client(stdio_client(params, errlog=sys.stderr), read_timeout_seconds=timeout, cache=None)


def client_for_http(url: str, headers: dict[str, str], timeout: float) -> Client:
    """An MCP client over streamable HTTP; the headers (secrets resolved) go with every request."""
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    http: Any = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(timeout, read=max(timeout, 300.0)))
    return Client(_ClosingTransport(streamable_http_client(url, http_client=http), http), read_timeout_seconds=timeout,
                  cache=None)


class _ClosingTransport:
    """The streamable HTTP transport, and the httpx client it was given closed after it."""

    def __init__(self, transport: Any, http: Any) -> None:
        self._transport = transport
        self._http = http

    async def __aenter__(self) -> Any:
        return await self._transport.__aenter__()

    async def __aexit__(self, *exc: Any) -> None:
        try:
            await self._transport.__aexit__(*exc)
        finally:
            await self._http.aclose()
