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


class Session:
    """A lazily started MCP client session; ``open_client`` builds the (not yet entered) client."""

    def __init__(self, system: str, open_client: Callable[[], Client], *, timeout: float, what: str) -> None:
        self.system = system
        self._open_client = open_client
        self._timeout = timeout
        self._what = what  # "command 'python'" or "URL http://...": for messages, never a secret
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._holder: concurrent.futures.Future[None] | None = None
        self._stop: asyncio.Event | None = None
        self._client: Client | None = None

    def call(self, work: Callable[[Client], Awaitable[T]]) -> T:
        """Run ``work(client)`` on the session's loop and return its result (starting the session if needed)."""
        client, loop = self._start()
        future = asyncio.run_coroutine_threadsafe(_awaited(work(client)), loop)
        try:
            return future.result(self._timeout + 5)  # the client's own read timeout fires first
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise ConnectorError(f"{self.system}: the MCP server did not answer within {self._timeout:g}s") from None

    def _start(self) -> tuple[Client, asyncio.AbstractEventLoop]:
        with self._lock:
            if self._client is not None and self._loop is not None and self._holder is not None \
                    and not self._holder.done():
                return self._client, self._loop
            self._shutdown()  # a session whose server went away is started again
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name=f"sayso-mcp-{self.system}", daemon=True)
            thread.start()
            self._loop, self._thread = loop, thread
            ready: concurrent.futures.Future[Client] = concurrent.futures.Future()
            self._holder = asyncio.run_coroutine_threadsafe(self._hold(ready), loop)
            try:
                self._client = ready.result(self._timeout)
            except concurrent.futures.TimeoutError:
                self._shutdown()
                raise ConnectorError(
                    f"{self.system}: the MCP server ({self._what}) did not complete the handshake within "
                    f"{self._timeout:g}s") from None
            except Exception as exc:
                self._shutdown()
                raise self._start_error(exc) from None
            atexit.register(self.close)
            return self._client, loop

    def _start_error(self, exc: BaseException) -> SaysoError:
        leaf = _leaf(exc)
        if isinstance(leaf, FileNotFoundError | PermissionError | NotADirectoryError):
            return ConfigurationError(f"system {self.system!r}: cannot start the MCP server ({self._what}): "
                                      f"{explain(leaf)}")
        return ConnectorError(f"{self.system}: cannot connect to the MCP server ({self._what}): {explain(leaf)}")

    async def _hold(self, ready: concurrent.futures.Future[Client]) -> None:
        """Enter the client, hand it over, and keep it open until asked to stop (same task throughout)."""
        self._stop = asyncio.Event()
        try:
            async with self._open_client() as client:
                ready.set_result(client)
                await self._stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else RuntimeError(explain(exc)))
            else:
                log.warning("%s: the MCP session ended: %s", self.system, explain(exc))
            if not isinstance(exc, Exception):
                raise

    def close(self) -> None:
        """End the session: the stdio server is stopped, the HTTP session ended; safe to call twice."""
        with self._lock:
            self._shutdown()
        atexit.unregister(self.close)

    def _shutdown(self) -> None:
        loop, thread, holder, stop = self._loop, self._thread, self._holder, self._stop
        self._loop = self._thread = self._holder = self._stop = self._client = None
        if loop is None:
            return
        if holder is not None and not holder.done():
            if stop is not None:
                loop.call_soon_threadsafe(stop.set)
            try:
                holder.result(_CLOSE_SECONDS)
            except concurrent.futures.TimeoutError:
                holder.cancel()
            except BaseException as exc:  # noqa: BLE001 - a failing close must not hide the caller's work
                log.debug("%s: closing the MCP session: %s", self.system, explain(exc))
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(_CLOSE_SECONDS)
        if thread is None or not thread.is_alive():
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
