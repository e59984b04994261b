"""``sayso serve --workers N``: N Uvicorn worker processes sharing one listening socket.

One Python process runs one turn's work at a time (the GIL), so a single server
uses about one core. With ``--workers N`` Uvicorn binds the socket once and
starts N worker processes; the kernel hands each new connection to one of them.
Each worker calls ``app()`` below, which builds its own application from the
options the parent left in the environment, as ``sayso serve`` builds one.

What the workers share, and how:

- everything durable (conversations, plans and the effect ledger, confirmations,
  idempotency keys, the audit chain, tokens) is in the state database; SQLite
  writers of all the processes queue on one lock file (see ``sayso.store``);
- rate limits, in a memory-mapped file in the workspace on SQLite and in the database on PostgreSQL
  (``sayso.serve.limits``); token revocations, through ``.sayso-serve-tokens`` (``sayso.serve.auth``);
- progress events: a listener receives each turn's ``done`` from the
  conversation's messages whichever worker ran it; the stages before it
  (``interpreting``, ``grounding``...) only from its own worker;
- plan leases name the process (host and pid), so recovery at a worker's start
  leaves the other workers' running plans alone and takes a dead worker's;
- connections: clients keep theirs alive, and the kernel gives a new one to whichever worker accepts first, so
  16 could split 10/6, and the clients of the busier worker wait longer. The workers balance them (least
  connections, ``sayso.serve.balance``): a worker that holds more than the least-loaded one + 1 passes a
  connection it has just accepted, before reading from it, to that worker over a Unix socket. Each worker
  starts accepting once all have started (at most ``balance.JOIN_SECONDS``).
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
from . import balance
from .app import create_app

__all__ = ["app", "check", "run"]

log = logging.getLogger("sayso.serve")

ENV = "SAYSO_SERVE_WORKER"  # the options, as JSON, from the parent to each worker


class _ConversationDefault(logging.Filter):
    """Every record names its conversation ("-" when there is none), as in the CLI."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "conversation"):
            record.conversation = "-"
        return True


def _interpreter(ws: Workspace, name: str | None, model: str | None) -> Interpreter | None:
    """The interpreter named on the command line (with its model), else None: the workspace's own."""
    if not (name or model):
        return None
    settings = ws.settings.interpreter.model_dump()
    if model:
        settings["model"] = model
    return registry.create(name or str(settings.get("name", "offline")), settings)


def app() -> FastAPI:
    """The application of one worker process (Uvicorn's factory)."""
    options: dict[str, Any] = json.loads(os.environ[ENV])
    if not logging.getLogger().handlers:  # a spawned worker: log as the CLI does
        handler = logging.StreamHandler(sys.stderr)
        handler.addFilter(_ConversationDefault())
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(conversation)s] %(message)s"))
        logging.basicConfig(level=os.environ.get("SAYSO_LOG", "WARNING").upper(), handlers=[handler])
    root = Path(options["root"])
    ws = Workspace.load(root)
    try:
        engine = _interpreter(ws, options.get("interpreter"), options.get("model"))
    finally:
        ws.close()
    application = create_app(root, now=options.get("now"), interpreter=engine, threads=options.get("threads"))
    log.info("worker process %d ready", os.getpid())
    return application


def check(root: Path, interpreter: str | None = None, model: str | None = None) -> None:
    """Check the workspace and the interpreter once, in the parent, so a broken workspace fails before any
    worker starts."""
    ws = Workspace.load(root)
    try:
        problems = ws.check()
        if problems:
            raise problems[0]
        _interpreter(ws, interpreter, model)
    finally:
        ws.close()


def run(root: Path, *, host: str, port: int, workers: int, now: str | None = None, interpreter: str | None = None,
        model: str | None = None, threads: int | None = None) -> None:
    """Serve the workspace at ``root`` with ``workers`` processes until interrupted."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    os.environ[ENV] = json.dumps({"root": str(root), "now": now, "interpreter": interpreter, "model": model,
                                  "threads": threads})
    # The workers' event loop balances their connections; WebSocket upgrades are off, as they would take a
    # connection out of its count (sayso has no WebSocket routes).
    config = uvicorn.Config("sayso.serve.workers:app", factory=True, host=host, port=port, workers=workers,
                            log_level="warning", loop=balance.LOOP, ws="none")
    # As uvicorn.run(workers=N), but the socket is made here: Uvicorn's own has protocol 0, so asyncio does not
    # set TCP_NODELAY on the connections it accepts, and a response written in two parts waited ~40 ms for the
    # client's delayed ACK.
    with balance.prepared(workers):
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
