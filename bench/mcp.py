"""The MCP server's cost: tool listing for the demo catalog and a 2,000-action catalog, and a read call's overhead
over the same read through the HTTP API.

    python bench/mcp.py [--reads N] [--lists N] [--json]

Everything runs against ``sayso serve``'s real application under Uvicorn on loopback, with a sayso token:

* listing: ``tools/list`` on ``/mcp`` (the SDK's stateless streamable HTTP), for the demo workspace and for the
  same workspace with its catalog replaced by the demo's actions plus generated ones up to 2,000 (the catalog
  of ``bench/interpret.py``). The request is the one the official MCP client sends (recorded once from it,
  then replayed byte for byte), so the figure is the server's (authentication, the SDK's transport and
  dispatch, serialising the tools) plus one loopback HTTP exchange; the client's own parsing is left out.
* read overhead: ``tools/call crm.find_deals {owner: alice, stage: proposal}`` on ``/mcp`` next to
  ``POST /v1/actions/crm.find_deals`` with the same arguments, interleaved call by call on one HTTP
  connection each, so noise falls on both alike. The overhead is the difference of the medians.

Targets (issue 17): listing under 50 ms for both catalogs; a read's overhead under 2 ms. Medians and p99 are
reported side by side.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# This file is named like the SDK: its folder leaves the import path, the repository joins it (tests.servers).
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() != HERE)]

import anyio  # noqa: E402
import httpx  # noqa: E402
import httpx2  # noqa: E402
from mcp import Client  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

from sayso import Clock, Workspace  # noqa: E402
from sayso.catalog import Catalog  # noqa: E402
from sayso.clock import parse_time  # noqa: E402
from sayso.serve import app as serve_app  # noqa: E402
from sayso.serve.auth import Tokens  # noqa: E402
from tests.servers import serving  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_interpret", HERE / "interpret.py")
assert _spec is not None and _spec.loader is not None
_interpret = sys.modules["bench_interpret"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_interpret)
big_catalog: Callable[[], Catalog] = _interpret.big_catalog  # the catalog of bench/interpret.py

NOW = "2026-11-25T09:00"
READ = {"owner": "alice", "stage": "proposal"}
TARGET_LIST_MS = 50.0
TARGET_READ_OVERHEAD_MS = 2.0


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _figures(values: list[float]) -> dict[str, float]:
    return {"median_ms": round(statistics.median(values), 3), "p99_ms": round(_p99(values), 3), "n": len(values)}


@contextmanager
def served(root: Path, catalog: Catalog | None) -> Iterator[tuple[str, str]]:
    """The app for ``root`` under Uvicorn (its catalog replaced by ``catalog`` when given): its URL and a token."""
    ws = Workspace.load(root)
    token = Tokens(ws.store, Clock(parse_time(NOW, "UTC"))).create("alice")[1]
    ws.close()
    original = serve_app.Service.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        if catalog is not None:
            self.ws.__dict__["catalog"] = catalog  # after the workspace's own checks: its systems stay the demo's

    serve_app.Service.__init__ = init  # type: ignore[method-assign]
    try:
        application = serve_app.create_app(root, now=NOW)
    finally:
        serve_app.Service.__init__ = original  # type: ignore[method-assign]
    with serving(application) as url:
        yield url, token


def recorded(url: str, token: str) -> dict[str, tuple[dict[str, str], bytes]]:
    """The requests the official client sends for ``tools/list`` and the read's ``tools/call``, by method."""
    seen: dict[str, tuple[dict[str, str], bytes]] = {}

    async def hook(request: httpx2.Request) -> None:
        payload = json.loads(request.content or b"{}")
        if isinstance(payload, dict) and payload.get("method") in ("tools/list", "tools/call"):
            seen[str(payload["method"])] = (dict(request.headers), bytes(request.content))

    async def run() -> None:
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60,
                                      event_hooks={"request": [hook]}) as http, \
                Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client:
            await client.list_tools(cache_mode="bypass")
            result = await client.call_tool("crm.find_deals", READ)
            assert not result.is_error, result

    anyio.run(run)
    return seen


def _timed(call: Callable[[], httpx.Response]) -> float:
    started = time.perf_counter()
    response = call()
    elapsed = (time.perf_counter() - started) * 1e3
    assert response.status_code == 200, response.text[:300]
    return elapsed


def _replay(http: httpx.Client, url: str, request: tuple[dict[str, str], bytes]) -> Callable[[], httpx.Response]:
    headers = {k: v for k, v in request[0].items() if k.lower() not in ("content-length", "host")}
    return lambda: http.post(f"{url}/mcp", content=request[1], headers=headers)


def listing(root: Path, catalog: Catalog | None, times: int) -> dict[str, Any]:
    with served(root, catalog) as (url, token):
        requests = recorded(url, token)
        with httpx.Client(timeout=60) as http:
            call = _replay(http, url, requests["tools/list"])
            tools = len(call().json()["result"]["tools"])
            for _ in range(5):
                _timed(call)
            figures = _figures([_timed(call) for _ in range(times)])
    return {"tools": tools, **figures}


def reads(root: Path, times: int) -> dict[str, Any]:
    with served(root, None) as (url, token):
        requests = recorded(url, token)
        with httpx.Client(timeout=60) as mcp_http, httpx.Client(timeout=60) as api_http:
            mcp = _replay(mcp_http, url, requests["tools/call"])
            api = lambda: api_http.post(f"{url}/v1/actions/crm.find_deals", json={"args": READ},  # noqa: E731
                                        headers={"Authorization": f"Bearer {token}"})
            for _ in range(20):
                _timed(mcp)
                _timed(api)
            mcp_ms: list[float] = []
            api_ms: list[float] = []
            for _ in range(times):
                mcp_ms.append(_timed(mcp))
                api_ms.append(_timed(api))
    mcp_f, api_f = _figures(mcp_ms), _figures(api_ms)
    return {"mcp": mcp_f, "api": api_f,
            "overhead_median_ms": round(mcp_f["median_ms"] - api_f["median_ms"], 3),
            "overhead_p99_ms": round(mcp_f["p99_ms"] - api_f["p99_ms"], 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--reads", type=int, default=300, help="timed read calls per path (default 300)")
    parser.add_argument("--lists", type=int, default=100, help="timed listings per catalog (default 100)")
    parser.add_argument("--json", action="store_true", help="end with one line of JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ws"
        Workspace.init(root, demo=True, reference=date(2026, 11, 25))
        toml = root / "sayso.toml"  # one person calls thousands of times a minute: no rate limit in the way
        toml.write_text(toml.read_text() + "\n[serve]\nrate_per_minute = 100000000\n")
        demo = listing(root, None, args.lists)
        big = listing(root, big_catalog(), args.lists)
        read = reads(root, args.reads)
    rows = [("tools/list, demo catalog", f"{demo['tools']} tools", demo),
            ("tools/list, 2,000-action catalog", f"{big['tools']} tools", big),
            ("read through /mcp (tools/call)", "crm.find_deals", read["mcp"]),
            ("read through the API (POST /v1/actions)", "crm.find_deals", read["api"])]
    print(f"{'what':<42} {'size':<16} {'median ms':>10} {'p99 ms':>10}")
    for what, size, figures in rows:
        print(f"{what:<42} {size:<16} {figures['median_ms']:>10.2f} {figures['p99_ms']:>10.2f}")
    print(f"{'read overhead of /mcp over the API':<42} {'':<16} {read['overhead_median_ms']:>10.2f} "
          f"{read['overhead_p99_ms']:>10.2f}")
    met = {"list_demo_under_50ms": demo["median_ms"] < TARGET_LIST_MS,
           "list_2000_under_50ms": big["median_ms"] < TARGET_LIST_MS,
           "read_overhead_under_2ms": read["overhead_median_ms"] < TARGET_READ_OVERHEAD_MS}
    print("targets: " + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in met.items()))
    if args.json:
        print(json.dumps({"list_demo": demo, "list_2000": big, "read": read, "targets": met}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
