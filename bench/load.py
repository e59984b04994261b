"""HTTP load on a real Uvicorn server: read turns, direct actions and actions said in messages.

    python bench/load.py [--clients 16] [--seconds 20] [--workers 1] [--json] [--profile]

The server is ``sayso serve`` in a child process (``--workers`` Uvicorn worker processes), on a
fresh demo workspace (SQLite, the offline interpreter) with the rate limit relaxed; the
load comes from this process, so the two do not share a GIL but do share the machine's
cores. Each scenario runs ``--clients`` threads, each with its own keep-alive
``httpx.Client`` and (for messages) its own conversation, sending one request after
another for ``--seconds`` (closed loop, after ``--warmup`` untimed seconds):

* read: ``POST /v1/conversations/{id}/messages`` "which of my deals close in the next 30 days?"
* action: ``POST /v1/actions/chat.send`` ``{"args": {"to": "carol", "text": "load test N"}}``
* said: ``POST /v1/conversations/{id}/messages`` "tell carol load test N"

and, shorter, two floors: ``GET /healthz`` (Uvicorn, FastAPI and the client, nothing of
sayso's) and ``GET /v1/me`` (plus the token lookup). Executed actions are counted again
in the demo chat system's ``systems/chat.db`` after each scenario. ``--profile`` then
times the pieces of a request in this process (token lookup, the turn, the action) and
lists the top functions under cProfile.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import math
import os
import platform
import pstats
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import httpx

import sayso
from sayso import Clock, Workspace
from sayso.clock import parse_time
from sayso.serve.auth import Tokens

NOW = "2026-11-25T09:00"
REFERENCE = date(2026, 11, 25)
USERS = ("alice", "bob", "ines", "sam")  # the senders; carol receives
READ = "which of my deals close in the next 30 days?"

# Targets from the issue, on this machine with the load generator on it too.
TARGET_READS = 300.0  # read turns per second
TARGET_ACTIONS = 100.0  # executed actions per second
TARGET_P99_MS = 100.0


# --- the server -----------------------------------------------------------------------------


def make_workspace(root: Path) -> dict[str, str]:
    """A fresh demo workspace with the rate limit relaxed; a token per user."""
    Workspace.init(root, demo=True, reference=REFERENCE)
    with (root / "sayso.toml").open("a") as toml:
        toml.write("\n[serve]\nrate_per_minute = 10000000\n")
    ws = Workspace.load(root)
    try:
        tokens = Tokens(ws.store, Clock(parse_time(NOW, "UTC")))
        return {user: tokens.create(user)[1] for user in USERS}
    finally:
        ws.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """``sayso serve`` in a child process (with ``workers`` worker processes), until ``stop``."""

    def __init__(self, root: Path, workers: int = 1, threads: int | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (root.parent / "server.log").open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sayso", "serve", "--workspace", str(root), "--port", str(self.port),
             "--now", NOW, "--workers", str(workers), *(["--threads", str(threads)] if threads else [])],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited ({self.process.returncode}); see {self.log.name}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError("the server did not start within 60 s")

    def roots(self) -> dict[str, int]:
        """The process to account CPU time to (with its worker processes), by name."""
        return {"sayso": self.process.pid}

    def cpu_seconds(self) -> float:
        """User + system CPU time the server and its worker processes have used so far (Linux /proc)."""
        parents: dict[int, int] = {}
        ticks: dict[int, int] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:  # gone meanwhile
                continue
            pid = int(stat.parent.name)
            parents[pid], ticks[pid] = int(fields[1]), int(fields[11]) + int(fields[12])
        tree, total = {self.process.pid}, 0
        for pid in sorted(parents):  # children have larger pids than their parents here (no pid wrap)
            if pid in tree or parents[pid] in tree:
                tree.add(pid)
                total += ticks[pid]
        return total / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


# --- the load --------------------------------------------------------------------------------


@dataclass
class Scenario:
    name: str
    describe: str
    request: Callable[[httpx.Client, str, int], httpx.Response]  # (client, conversation, n)
    expect: str | None  # the turn status every response must have; None: any 200
    conversation: bool = False  # each client its own conversation
    effects: bool = False  # each success is one message in chat.db
    floor: bool = False  # a floor, run for --floor-seconds, with no target


def _say(text: str) -> Callable[[httpx.Client, str, int], httpx.Response]:
    def request(client: httpx.Client, conversation: str, n: int) -> httpx.Response:
        return client.post(f"/v1/conversations/{conversation}/messages", json={"text": text.format(n=n)})
    return request


SCENARIOS = [
    Scenario("healthz", "floor: GET /healthz",
             lambda c, _conv, _n: c.get("/healthz"), None, floor=True),
    Scenario("me", "floor: GET /v1/me (+ token lookup)", lambda c, _conv, _n: c.get("/v1/me"), None, floor=True),
    Scenario("read", "read turn (message)", _say(READ), "answered", conversation=True),
    Scenario("action", "action: POST /v1/actions/chat.send",
             lambda c, _conv, n: c.post("/v1/actions/chat.send",
                                        json={"args": {"to": "carol", "text": f"load test {n}"}}),
             "executed", effects=True),
    Scenario("said", 'action said: "tell carol load test N"', _say("tell carol load test {n}"), "executed",
             conversation=True, effects=True),
]


@dataclass
class Result:
    scenario: Scenario
    latencies: list[float] = field(default_factory=list)  # seconds, timed window only
    errors: Counter[str] = field(default_factory=Counter)
    successes: int = 0  # warmup included: what chat.db must show
    wall: float = 0.0
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    effects_counted: int | None = None

    def stats(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        n = len(ordered)

        def rank(q: float) -> float | None:
            return round(ordered[max(0, math.ceil(q * n) - 1)] * 1e3, 2) if n else None

        return {
            "requests": n, "per_s": round(n / self.wall, 1) if self.wall else None,
            "p50_ms": round(statistics.median(ordered) * 1e3, 2) if n else None,
            "p99_ms": rank(0.99), "max_ms": rank(1.0), "errors": sum(self.errors.values()),
            "error_kinds": dict(self.errors), "seconds": round(self.wall, 2),
            "server_cpu_cores": round(self.server_cpu / self.wall, 2) if self.wall else None,
            "server_cpu_ms_per_request": round(self.server_cpu / n * 1e3, 2) if n else None,
            "client_cpu_cores": round(self.client_cpu / self.wall, 2) if self.wall else None,
            "executed": self.successes if self.scenario.effects else None,
            "effects_counted": self.effects_counted,
        }


def chat_messages(root: Path) -> int:
    with sqlite3.connect(root / "systems" / "chat.db") as conn:
        return int(conn.execute("select count(*) from messages").fetchone()[0])


def run(scenario: Scenario, server: Server, tokens: dict[str, str], root: Path, clients: int,
        seconds: float, warmup: float) -> Result:
    """``clients`` threads sending ``scenario``'s request in a closed loop: warmup, then timed."""
    result = Result(scenario)
    lock = threading.Lock()
    sessions = []
    for i in range(clients):
        user = USERS[i % len(USERS)]
        client = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {tokens[user]}"},
                              timeout=60)
        conversation = client.post("/v1/conversations").json()["id"] if scenario.conversation else ""
        sessions.append((client, conversation))
    effects_before = chat_messages(root)
    start = threading.Barrier(clients + 1)
    times: dict[str, float] = {}

    def worker(index: int) -> None:
        client, conversation = sessions[index]
        latencies: list[float] = []
        errors: Counter[str] = Counter()
        successes = 0
        n = index * 10_000_000
        start.wait()
        while True:
            began = time.perf_counter()
            if began >= times["end"]:
                break
            n += 1
            try:
                response = scenario.request(client, conversation, n)
                took = time.perf_counter() - began
                if response.status_code != 200:
                    kind = f"HTTP {response.status_code} {_code(response)}"
                elif scenario.expect and response.json().get("status") != scenario.expect:
                    kind = f"status {response.json().get('status')}"
                else:
                    kind = ""
            except httpx.HTTPError as exc:
                took, kind = time.perf_counter() - began, type(exc).__name__
            successes += not kind
            if began >= times["timed"]:
                latencies.append(took)
                if kind:
                    errors[kind] += 1
        with lock:
            result.latencies.extend(latencies)
            result.errors.update(errors)
            result.successes += successes

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    now = time.perf_counter()
    times["timed"], times["end"] = now + warmup, now + warmup + seconds
    start.wait()
    time.sleep(max(times["timed"] - time.perf_counter(), 0))
    cpu_server, cpu_client, began = server.cpu_seconds(), time.process_time(), time.perf_counter()
    for thread in threads:
        thread.join()
    result.wall = time.perf_counter() - began
    result.server_cpu = server.cpu_seconds() - cpu_server
    result.client_cpu = time.process_time() - cpu_client
    for client, _ in sessions:
        client.close()
    if scenario.effects:
        result.effects_counted = chat_messages(root) - effects_before
    return result


def _code(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error", {}).get("code", ""))
    except ValueError:
        return ""


# --- where the time goes ---------------------------------------------------------------------


def profile(root: Path, tokens: dict[str, str], turns: int, top: int) -> dict[str, Any]:
    """The route handlers' work, in this process on a fresh workspace: pieces timed, then cProfiled."""
    from sayso.serve import create_app

    service = create_app(root, now=NOW).state.service
    header = f"Bearer {tokens['alice']}"
    person = service.auth.person(header)
    conversations = {name: service.chat(person).new(person.id) for name in ("read", "said")}
    counter = iter(range(10**9))

    def read() -> None:
        chat = service.chat(person)
        chat.conversations.get(conversations["read"], person.id)
        assert chat.say(person.id, READ, conversations["read"]).status.value == "answered"

    def action() -> None:
        result = service.pipeline(person).do(person.id, "chat.send", {"to": "carol", "text": f"p {next(counter)}"})
        assert result.status.value == "executed"

    def said() -> None:
        chat = service.chat(person)
        chat.conversations.get(conversations["said"], person.id)
        assert chat.say(person.id, f"tell carol p {next(counter)}", conversations["said"]).status.value == "executed"

    def load_conversation() -> None:
        assert service.chat(person).conversations.load(conversations["read"], person.id) is not None

    pieces: dict[str, Callable[[], None]] = {
        "token lookup (Authenticator.person)": lambda: service.auth.person(header),
        "conversation load (Conversations.load)": load_conversation,
        "read turn (Chat.say)": read,
        "direct action (Pipeline.do)": action,
        "said action (Chat.say)": said,
    }
    timings: dict[str, dict[str, float]] = {}
    for name, piece in pieces.items():
        for _ in range(max(turns // 10, 5)):  # warm caches and the conversation
            piece()
        commits = service.ws.store.commits
        took = []
        for _ in range(turns):
            began = time.perf_counter()
            piece()
            took.append(time.perf_counter() - began)
        took.sort()
        timings[name] = {"median_ms": round(statistics.median(took) * 1e3, 3),
                         "p99_ms": round(took[max(0, math.ceil(0.99 * len(took)) - 1)] * 1e3, 3),
                         "commits": round((service.ws.store.commits - commits) / turns, 2)}
    listings = {}
    for name in ("read turn (Chat.say)", "direct action (Pipeline.do)", "said action (Chat.say)"):
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(turns):
            pieces[name]()
        profiler.disable()
        listings[name] = _top(profiler, turns, top)
    service.ws.close()
    return {"pieces": timings, "profiles": listings, "turns": turns}


def _top(profiler: cProfile.Profile, turns: int, top: int) -> dict[str, list[tuple[str, float, float]]]:
    stats = pstats.Stats(profiler, stream=io.StringIO())
    rows = [(f"{_short(file)}:{line}({func})", tt / turns * 1e3, ct / turns * 1e3)
            for (file, line, func), (_cc, _nc, tt, ct, _callers) in stats.stats.items()]  # type: ignore[attr-defined]
    sayso_dir = str(Path(sayso.__file__).resolve().parent)
    own = [r for r, (file, _l, _f) in zip(rows, stats.stats, strict=True) if file.startswith(sayso_dir)]  # type: ignore[attr-defined]
    by_cum = sorted(own, key=lambda r: -r[2])[:top]
    by_own = sorted(rows, key=lambda r: -r[1])[:top]
    return {"sayso_by_cumulative": [(n, round(t, 3), round(c, 3)) for n, t, c in by_cum],
            "anywhere_by_own_time": [(n, round(t, 3), round(c, 3)) for n, t, c in by_own]}


def _short(filename: str) -> str:
    for marker in ("site-packages/", "/work/main/", "lib/python3"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


# --- report ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument("--workers", type=int, default=1,
                        help="server processes (default 1; more need PostgreSQL, see bench/scale.py)")
    parser.add_argument("--threads", type=int, default=None,
                        help="requests each worker works on at once (default: sayso serve's)")
    parser.add_argument("--seconds", type=float, default=20, help="timed seconds per scenario (default 20)")
    parser.add_argument("--warmup", type=float, default=2, help="untimed seconds per scenario first (default 2)")
    parser.add_argument("--floor-seconds", type=float, default=5,
                        help="timed seconds for each floor (healthz, me); 0 skips them (default 5)")
    parser.add_argument("--only", choices=[s.name for s in SCENARIOS], action="append",
                        help="run only this scenario (repeatable)")
    parser.add_argument("--json", action="store_true", help="end with one line of JSON holding the figures")
    parser.add_argument("--profile", action="store_true",
                        help="also time the handlers' pieces in-process and cProfile them")
    parser.add_argument("--profile-turns", type=int, default=300, help="turns per piece with --profile")
    parser.add_argument("--top", type=int, default=15, help="functions to list with --profile (default 15)")
    parser.add_argument("--dir", type=Path, default=None, help="where the temporary workspace goes")
    args = parser.parse_args(argv)
    if args.clients < 1 or args.workers < 1 or args.seconds <= 0 or args.warmup < 0 or args.floor_seconds < 0:
        parser.error("--clients and --seconds must be positive, --warmup and --floor-seconds not negative")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    chosen = [s for s in SCENARIOS if (args.only and s.name in args.only)
              or (not args.only and (not s.floor or args.floor_seconds > 0))]
    results: list[Result] = []
    profiled: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory(prefix="sayso-load-", dir=args.dir, ignore_cleanup_errors=True) as tmp:
        root = Path(tmp) / "ws"
        tokens = make_workspace(root)
        server = Server(root, args.workers, args.threads)
        try:
            for scenario in chosen:
                seconds = args.floor_seconds if scenario.floor else args.seconds
                print(f"running {scenario.name}: {args.clients} clients, {args.warmup:g} s warmup + {seconds:g} s",
                      file=sys.stderr, flush=True)
                results.append(run(scenario, server, tokens, root, args.clients, seconds, args.warmup))
        finally:
            server.stop()
        if args.profile:
            print("profiling in-process", file=sys.stderr, flush=True)
            other = Path(tmp) / "profiled"
            profiled = profile(other, make_workspace(other), args.profile_turns, args.top)

    workers = "one Uvicorn worker" if args.workers == 1 else f"{args.workers} Uvicorn workers"
    if args.threads:
        workers += f" of {args.threads} threads"
    print(f"sayso HTTP load: {workers} (sayso serve, child process), {args.clients} closed-loop "
          f"clients (threads, httpx keep-alive) in this process, demo workspace on SQLite, offline interpreter")
    print(f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, httpx {httpx.__version__}, "
          f"sayso {sayso.__version__}; {os.cpu_count()} CPUs; {args.warmup:g} s warmup per scenario")
    print()
    print(f"{'scenario':<40} {'requests':>8} {'per s':>7} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} "
          f"{'srv CPU':>7} {'srv ms/req':>10} {'client CPU':>10}")
    for r in results:
        s = r.stats()
        print(f"{r.scenario.describe:<40} {s['requests']:>8} {s['per_s']:>7} {_num(s['p50_ms'])} "
              f"{_num(s['p99_ms'])} {s['errors']:>6} {s['server_cpu_cores']:>7} "
              f"{_num(s['server_cpu_ms_per_request'], 10)} {s['client_cpu_cores']:>10}")
    print()
    print("per s: completed requests per second of the timed window; p50/p99: client-side latency (nearest rank);")
    print("srv CPU / client CPU: cores busy in the server process / in this load generator (1.0 = one core)")
    for r in results:
        if r.errors:
            print(f"  {r.scenario.name} errors: {dict(r.errors)}")
        if r.scenario.effects:
            same = "agrees" if r.effects_counted == r.successes else "DISAGREES"
            print(f"  {r.scenario.name}: {r.successes} executed responses (warmup included), "
                  f"{r.effects_counted} new messages in chat.db: {same}")
    by_name = {r.scenario.name: r.stats() for r in results}
    checks: list[tuple[str, bool]] = []
    if "read" in by_name:
        checks.append((f"read turns >= {TARGET_READS:g}/s", (by_name["read"]["per_s"] or 0) >= TARGET_READS))
    for name in ("action", "said"):
        if name in by_name:
            checks.append((f"{name} executed >= {TARGET_ACTIONS:g}/s",
                           (by_name[name]["per_s"] or 0) >= TARGET_ACTIONS))
    for name in ("read", "action", "said"):
        if name in by_name:
            checks.append((f"{name} p99 < {TARGET_P99_MS:g} ms", (by_name[name]["p99_ms"] or 1e9) < TARGET_P99_MS))
    checks.append(("no errors", all(not r.errors for r in results if not r.scenario.floor)))
    checks.append(("effects agree", all(r.effects_counted == r.successes for r in results if r.scenario.effects)))
    print()
    print("targets: " + "; ".join(f"{name}: {'met' if ok else 'MISSED'}" for name, ok in checks))
    if profiled:
        print()
        print(f"in-process, no HTTP ({profiled['turns']} calls each, after warmup), alice:")
        print(f"  {'piece':<40} {'median ms':>9} {'p99 ms':>8} {'commits':>8}")
        for name, t in profiled["pieces"].items():
            print(f"  {name:<40} {t['median_ms']:>9.3f} {t['p99_ms']:>8.3f} {t['commits']:>8}")
        for name, listing in profiled["profiles"].items():
            print()
            print(f"cProfile, {name}: ms per call (own, cumulative)")
            print("  sayso functions by cumulative time:")
            for fn, own_ms, cum_ms in listing["sayso_by_cumulative"]:
                print(f"    {own_ms:8.3f} {cum_ms:8.3f}  {fn}")
            print("  functions anywhere by own time:")
            for fn, own_ms, cum_ms in listing["anywhere_by_own_time"]:
                print(f"    {own_ms:8.3f} {cum_ms:8.3f}  {fn}")
    if args.json:
        print(json.dumps({"clients": args.clients, "seconds": args.seconds, "warmup": args.warmup,
                          "workers": args.workers, "scenarios": by_name, "targets": dict(checks), "profile": profiled,
                          "cpus": os.cpu_count()}, sort_keys=True))
    return 0


def _num(value: float | None, width: int = 7) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.1f}"


if __name__ == "__main__":
    sys.exit(main())
