"""Running ``sayso serve``: one process, or Uvicorn's own multi-process mode (``--workers N``).

A ``sayso serve`` process is stateless between requests: everything two processes must agree on lives in the
state database (conversations, plans and their leases, confirmations, idempotency keys, the audit chain, tokens
and their revocation epoch, and on PostgreSQL the rate-limit buckets). So the standard ways to run several
apply unchanged: several processes behind the load balancer the company has (nginx, HAProxy, a cloud or
Kubernetes load balancer; docs/operations.md), or, on one host without one, ``--workers N``: Uvicorn's own
supervisor starts N processes on one socket and restarts one that dies. Either way several processes need
PostgreSQL; a SQLite workspace is served by one process (its rate limits are counted in that process).

On SIGTERM a process stops accepting connections, finishes the requests in flight (at most
``GRACE_SECONDS``), then closes its workspace; a plan it could not finish is taken over through its lease by
the next process that starts (``Pipeline.recover``).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from ..errors import ConfigurationError
from ..interpreter import Interpreter, registry
from ..workspace import Workspace
from .app import create_app

__all__ = ["ENV", "GRACE_SECONDS", "factory", "serve"]

log = logging.getLogger("sayso.serve")

ENV = "SAYSO_SERVE_OPTIONS"  # the options, as JSON, from ``sayso serve --workers N`` to each of its processes
GRACE_SECONDS = 30  # how long a stopping process lets the requests in flight finish


class _ConversationDefault(logging.Filter):
    """Every record names its conversation ("-" when there is none), as in the CLI."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "conversation"):
            record.conversation = "-"
        return True


def interpreter_for(ws: Workspace, name: str | None, model: str | None) -> Interpreter | None:
    """The interpreter named on the command line (with its model), else None: the workspace's own."""
    if not (name or model):
        return None
    settings = ws.settings.interpreter.model_dump()
    if model:
        settings["model"] = model
    return registry.create(name or str(settings.get("name", "offline")), settings)


def _application(options: dict[str, Any]) -> FastAPI:
    root = Path(options["root"])
    ws = Workspace.load(root)
    try:
        engine = interpreter_for(ws, options.get("interpreter"), options.get("model"))
    finally:
        ws.close()
    return create_app(root, now=options.get("now"), interpreter=engine, threads=options.get("threads"))


def factory() -> FastAPI:
    """The application of one of ``--workers N``'s processes (Uvicorn's factory, options from ``ENV``)."""
    if not logging.getLogger().handlers:  # a spawned process: log as the CLI does
        handler = logging.StreamHandler(sys.stderr)
        handler.addFilter(_ConversationDefault())
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(conversation)s] %(message)s"))
        logging.basicConfig(level=os.environ.get("SAYSO_LOG", "WARNING").upper(), handlers=[handler])
    application = _application(json.loads(os.environ[ENV]))
    log.info("process %d ready", os.getpid())
    return application


def serve(root: Path, *, host: str, port: int, workers: int = 1, now: str | None = None,
          interpreter: str | None = None, model: str | None = None, threads: int | None = None) -> None:
    """Serve the workspace at ``root`` until SIGTERM or SIGINT, in one process or ``workers``; raises a
    ``SaysoError`` before listening when the workspace cannot be served (so, as it is, by several processes)."""
    import uvicorn

    options = {"root": str(root), "now": now, "interpreter": interpreter, "model": model, "threads": threads}
    if workers == 1:
        uvicorn.run(_application(options), host=host, port=port, log_level="warning",
                    timeout_graceful_shutdown=GRACE_SECONDS)
        return
    ws = Workspace.load(root)
    try:
        problems = ws.check()
        if problems:
            raise problems[0]
        if ws.store.engine.dialect.name != "postgresql":
            raise ConfigurationError("several processes need the state database on PostgreSQL ([store] url in "
                                     "sayso.toml); a SQLite workspace is served by one process")
        interpreter_for(ws, interpreter, model)
    finally:
        ws.close()
    from uvicorn.supervisors import Multiprocess

    os.environ[ENV] = json.dumps(options)
    config = uvicorn.Config("sayso.serve.run:factory", factory=True, host=host, port=port, workers=workers,
                            log_level="warning", timeout_graceful_shutdown=GRACE_SECONDS)
    # As uvicorn.run(workers=N), with the socket made here: Uvicorn's own has protocol 0, so asyncio does not set
    # TCP_NODELAY on the connections it accepts, and a response written in two parts waits ~40 ms for the
    # client's delayed ACK.
    Multiprocess(config, sockets=[_listen(host, port)]).run()


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigurationError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock
