"""Scaling out the standard way: nginx in front of 1, 2 and 3 ``sayso serve`` processes on PostgreSQL.

    python bench/scale.py [--clients 16] [--seconds 15] [--processes 1 2 3] [--baseline REV]
                          [--generator python|wrk|both] [--rounds N] [--json]
    python bench/scale.py --faults [--seconds 60] [--kill-every 4]

Throughput: for each number of processes, a fresh demo workspace whose state database is a fresh PostgreSQL
database (``--database-url``, by default the local one), nginx (bench/cluster.py) in front, and bench/load.py's
closed-loop clients through nginx: read turns ("which of my deals close in the next 30 days?") and executed
actions (``POST /v1/actions/chat.send``, each counted again in the demo chat system). The baseline, in the same
run, is ``sayso serve --workers 2`` on SQLite from the commit ``--baseline`` (by default the one before the
balancer was removed), unpacked with ``git archive`` into a temporary folder. Loopback only.

Each figure is taken twice (``--generator both``): with bench/load.py's Python clients (threads of this
process, which take a good share of the 2 cores themselves) and with wrk (Debian's, in C; bench/scale.lua), and
each says what it ran beside: the CPU each sayso process, nginx, PostgreSQL and the generator used, the whole
machine's, and the load average (other work on the machine shows there).

``--faults``: 3 processes behind nginx; every ``--kill-every`` seconds one at random is killed with SIGKILL
and started again, while ``--clients`` clients send reads, writes (``chat.send``, each with its own
Idempotency-Key, retried with it until answered) and confirmations (an ``email.send`` to 11 people, approved
with a key of its own) for ``--seconds``. At the end: every acknowledged write exists exactly once in the
target systems (counted there), nothing ran twice, every key resolves, and ``sayso audit verify`` passes.
Standing instructions too: a process started ``s`` seconds into the run has its clock pinned ``s`` minutes
later, and instructions set beforehand fall due every 2 minutes of that clock; they fire in the ``sayso serve``
processes (claimed in the database) while processes die. After a rolling restart onto the window's last minute,
every one of them has sent its message to carol exactly once (counted in the chat system).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cluster  # noqa: E402
import load  # noqa: E402

from sayso import Clock, Workspace  # noqa: E402
from sayso.clock import parse_time  # noqa: E402
from sayso.conversation import Chat  # noqa: E402
from sayso.pipeline import Pipeline  # noqa: E402
from sayso.serve.auth import Tokens  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
USERS = ("alice", "bob", "ines", "sam")
BASELINE = "6a3e53a"  # the last commit with sayso serve's own balancer (--workers 2 on SQLite)
WRK = shutil.which("wrk") or "/usr/bin/wrk"
RECIPIENTS = [f"list{i}@example.com" for i in range(11)]  # more than 10: high risk, needs a confirmation


# --- workspaces on PostgreSQL ------------------------------------------------------------------------------


def create_database(base_url: str) -> str:
    import psycopg

    name = f"sayso_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{base_url.rpartition('/')[0]}/{name}"


def drop_database(base_url: str, url: str) -> None:
    import psycopg

    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rpartition("/")[2]}" WITH (FORCE)')


def make_workspace(root: Path, database: str | None) -> dict[str, str]:
    """A fresh demo workspace (state on ``database``, else SQLite) with the rate limit relaxed; a token each."""
    Workspace.init(root, demo=True, reference=date(2026, 11, 25))
    toml = root / "sayso.toml"
    text = toml.read_text()
    if database:
        text = text.replace('url = "sqlite:///state.db"', f'url = "{database}"')
    toml.write_text(text)
    return make_workspace_tokens(root)


def make_workspace_tokens(root: Path) -> dict[str, str]:
    """The rate limit of the workspace at ``root`` relaxed for load; a token for each user."""
    toml = root / "sayso.toml"
    toml.write_text(toml.read_text() + "\n[serve]\nrate_per_minute = 10000000\n")
    ws = Workspace.load(root)
    try:
        tokens = Tokens(ws.store, Clock(parse_time(cluster.NOW, "UTC")))
        return {user: tokens.create(user)[1] for user in USERS}
    finally:
        ws.close()


# Run by the baseline's Python: a demo workspace on SQLite, the rate limit relaxed, a token for each user.
BASELINE_WORKSPACE = f"""
import json, sys
from datetime import date, timedelta
from pathlib import Path
from sayso import Clock, Workspace
from sayso.clock import parse_time
from sayso.serve.auth import Tokens
root = Path(sys.argv[1])
Workspace.init(root, demo=True, reference=date(2026, 11, 25))
(root / "sayso.toml").write_text((root / "sayso.toml").read_text() + "\\n[serve]\\nrate_per_minute = 10000000\\n")
ws = Workspace.load(root)
tokens = Tokens(ws.store, Clock(parse_time(sys.argv[2], "UTC")))
print(json.dumps({{user: tokens.create(user)[1] for user in {USERS!r}}}))
ws.close()
"""


# --- throughput ---------------------------------------------------------------------------------------------


def measure(server: Any, tokens: dict[str, str], root: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Each scenario under each generator: throughput, latency, effects, and where the CPU went."""
    figures: dict[str, Any] = {}
    for generator in args.generators:
        for name in ("read", "action"):
            print(f"  {generator} {name}: {args.clients} clients, {args.warmup:g} s warmup + {args.seconds:g} s",
                  file=sys.stderr, flush=True)
            run = functools.partial(_python, name, server) if generator == "python" else functools.partial(
                _wrk, name, server.url)
            figures[f"{generator} {name}"] = _accounted(server, functools.partial(run, tokens, root, args))
    return figures


def _accounted(server: Any, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``run()``'s figures, with the CPU each process used meanwhile (cores: CPU seconds per second), the
    generator's own, the whole machine's, and the load average as the run began."""
    load_average = os.getloadavg()[0]
    roots = server.roots()
    before, machine = cluster.cpu_seconds(roots), cluster.machine_cpu()
    mine, children = time.process_time(), _children_cpu()
    began = time.monotonic()
    figures: dict[str, Any] = run()
    wall = time.monotonic() - began
    after, machine_after = cluster.cpu_seconds(roots), cluster.machine_cpu()
    cores = {name: round((after[name] - before[name]) / wall, 2) for name in after if name in before}
    generator = (time.process_time() - mine) + (_children_cpu() - children)  # python's threads, or wrk
    cores["generator"] = round(generator / wall, 2)
    cores["machine"] = round((machine_after[0] - machine[0]) / wall, 2)
    figures.update(cores=cores, load_average=round(load_average, 2),
                   cpus=round((machine_after[1] - machine[1]) / wall))
    return figures


def _children_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _python(name: str, server: Any, tokens: dict[str, str], root: Path, args: argparse.Namespace) -> dict[str, Any]:
    """bench/load.py's closed-loop clients (threads of this process, httpx)."""
    scenario = next(s for s in load.SCENARIOS if s.name == name)
    stats = load.run(scenario, server, tokens, root, args.clients, args.seconds, args.warmup).stats()
    stats["effects_ok"] = stats["effects_counted"] == stats["executed"] if name == "action" else None
    return dict(stats)


WRK_SCRIPT = Path(__file__).resolve().parent / "scale.lua"


def _wrk(name: str, url: str, tokens: dict[str, str], root: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The same scenario from wrk (Debian's, C): one thread per client, so each is a closed loop with its own
    token and conversation as bench/load.py's are (bench/scale.lua). Executed actions are counted again in
    chat.db: each once, and as many as were answered "executed" plus at most the requests still in flight
    when wrk stopped (wrk drops them unanswered; the server finishes them)."""
    owners = [tokens[USERS[i % len(USERS)]] for i in range(args.clients)]
    conversations = []
    if name == "read":
        for token in owners:
            made = httpx.post(f"{url}/v1/conversations", headers={"Authorization": f"Bearer {token}"}, timeout=30)
            conversations.append(made.json()["id"])
    env = {**os.environ, "SAYSO_WRK_KIND": name, "SAYSO_WRK_TOKENS": ",".join(owners),
           "SAYSO_WRK_CONVERSATIONS": ",".join(conversations)}

    def wrk(seconds: float, run: str) -> dict[str, Any]:
        env["SAYSO_WRK_RUN"] = run
        command = [WRK, f"-t{args.clients}", f"-c{args.clients}", f"-d{max(round(seconds), 1)}s", "--timeout", "60s",
                   "--latency", "-s", str(WRK_SCRIPT), url]
        ran = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        return dict(json.loads(ran.stdout.strip().splitlines()[-1]))

    wrk(args.warmup, uuid.uuid4().hex[:8])
    run = uuid.uuid4().hex[:8]
    found = wrk(args.seconds, run)
    time.sleep(1)  # the requests wrk dropped at its end finish on the server
    sent = _counts(root, "chat", f"select text from messages where text like 'wrk test {run} %'")
    counted = sum(sent.values())
    executed = found["good"] if name == "action" else None
    twice = sum(n - 1 for n in sent.values() if n > 1)
    seconds = found["duration_us"] / 1e6
    return {
        "requests": found["requests"], "per_s": round(found["good"] / seconds, 1),
        "p50_ms": round(found["p50_us"] / 1e3, 2), "p99_ms": round(found["p99_us"] / 1e3, 2),
        "max_ms": round(found["max_us"] / 1e3, 2), "errors": found["bad"] + found["socket_errors"],
        "seconds": round(seconds, 2), "executed": executed, "effects_counted": counted if name == "action" else None,
        "effects_ok": (twice == 0 and executed is not None and executed <= counted <= executed + args.clients)
        if name == "action" else None,
    }


def start_baseline(args: argparse.Namespace, tmp: Path) -> tuple[Any, dict[str, str], Path]:
    """Today's ``--workers 2`` on SQLite, from ``args.baseline``, unpacked (``git archive``) beside the run and
    started: (its server, its tokens, its workspace)."""
    source = tmp / "baseline-src"
    source.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", args.baseline], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive.stdout, check=True)
    # A bare virtual environment that sees this one's packages but not its editable install of sayso (whose
    # finder would win over PYTHONPATH, in the server and in the worker processes it spawns).
    venv = tmp / "baseline-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    packages = next(p for p in map(Path, sys.path) if p.name == "site-packages" and p.is_dir())
    for site in (venv / "lib").glob("python*/site-packages"):
        (site / "packages.pth").write_text(f"{packages}\n")
    root = tmp / "baseline" / "ws"
    root.parent.mkdir()
    # The workspace is made by the baseline's own code: this checkout's migrations are newer than it knows.
    made = subprocess.run([str(venv / "bin" / "python"), "-c", BASELINE_WORKSPACE, str(root), cluster.NOW],
                          cwd=tmp, env={**os.environ, "PYTHONPATH": str(source)}, capture_output=True, text=True)
    if made.returncode:
        raise RuntimeError(f"the baseline's workspace could not be made: {made.stderr[-2000:]}")
    tokens = json.loads(made.stdout)
    os.environ["PYTHONPATH"] = str(source)
    executable, sys.executable = sys.executable, str(venv / "bin" / "python")  # load.Server runs sys.executable
    here = Path.cwd()
    os.chdir(tmp)  # `python -m` looks in the current folder first: not this checkout's sayso
    try:
        server = load.Server(root, workers=2)
    finally:
        os.chdir(here)
        sys.executable = executable
        os.environ.pop("PYTHONPATH")
    return server, tokens, root


def throughput(args: argparse.Namespace) -> int:
    """Every setup started first, then measured in turn, ``--rounds`` times (so each round sees the machine as
    the others do: the setups are measured close together, and a slow minute of a shared machine falls on
    all of them), and each figure reported as its median over the rounds."""
    setups: list[tuple[str, Any, dict[str, str], Path]] = []
    databases: list[str] = []
    with tempfile.TemporaryDirectory(prefix="sayso-scale-", ignore_cleanup_errors=True) as tmp_name:
        tmp = Path(tmp_name)
        try:
            if args.baseline:
                print(f"baseline: sayso serve --workers 2 on SQLite at {args.baseline}", file=sys.stderr, flush=True)
                setups.append((f"baseline {args.baseline}: --workers 2, SQLite, no nginx", *start_baseline(args, tmp)))
            for count in args.processes:
                print(f"{count} process(es) behind nginx, PostgreSQL", file=sys.stderr, flush=True)
                databases.append(database := create_database(args.database_url))
                root = tmp / f"pg{count}" / "ws"
                root.parent.mkdir()
                tokens = make_workspace(root, database)
                threads = ("--threads", str(args.threads)) if args.threads else ()
                label = f"nginx + {count} process(es), PostgreSQL{f', {args.threads} threads' if threads else ''}"
                setups.append((label, cluster.Cluster(root, count, extra=threads), tokens, root))
            rounds: dict[str, list[dict[str, Any]]] = {label: [] for label, *_ in setups}
            for number in range(1, args.rounds + 1):
                for label, server, tokens, root in setups:
                    print(f"round {number}/{args.rounds}: {label}", file=sys.stderr, flush=True)
                    rounds[label].append(measure(server, tokens, root, args))
        finally:
            for _, server, _, _ in setups:
                server.stop()
            for database in databases:
                drop_database(args.database_url, database)
    rows = [(label, _median_figures(found)) for label, found in rounds.items()]
    report(rows, args)
    if args.rounds > 1:
        print()
        print(f"each round ({args.rounds}), reads/s (p99 ms):")
        for label, found in rounds.items():
            for generator in args.generators:
                each = ", ".join(f"{r[f'{generator} read']['per_s']} ({r[f'{generator} read']['p99_ms']})"
                                 for r in found)
                print(f"  {label} / {generator}: {each}")
    if args.json:
        print(json.dumps({name: figures for name, figures in rows}, sort_keys=True))
    return 0


def _median_figures(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One setup's figures over its rounds: each number its median (p99 too: the median round's tail), errors
    summed, effects ok only when every round's were."""
    merged: dict[str, Any] = {}
    for key in rounds[0]:
        runs = [r[key] for r in rounds]
        figures: dict[str, Any] = {}
        for name, first in runs[0].items():
            values = [run[name] for run in runs]
            if name == "cores":
                figures[name] = {who: round(statistics.median(v[who] for v in values), 2) for who in first}
            elif name == "errors":
                figures[name] = sum(values)
            elif name == "effects_ok":
                figures[name] = None if first is None else all(values)
            elif isinstance(first, int | float) and not isinstance(first, bool):
                figures[name] = round(statistics.median(values), 2)
            else:
                figures[name] = first
        merged[key] = figures
    return merged


def report(rows: list[tuple[str, dict[str, Any]]], args: argparse.Namespace) -> None:
    """The table: per setup and generator, throughput and latency, then where the CPU went."""
    print(f"sayso scale-out: {args.clients} closed-loop clients, {args.warmup:g} s warmup + {args.seconds:g} s per "
          f"figure, offline interpreter, {os.cpu_count()} CPUs shared by the load generator, nginx, PostgreSQL "
          "and sayso (and by whoever else uses the machine: see the load average)")
    print()
    print(f"{'setup':<48} {'generator':<9} {'reads/s':>7} {'p50':>6} {'p99':>6} {'actions/s':>9} {'p50':>6} "
          f"{'p99':>6} {'errors':>6} {'effects':>7} {'load':>5}")
    for name, figures in rows:
        for generator in args.generators:
            read, action = figures[f"{generator} read"], figures[f"{generator} action"]
            print(f"{name:<48} {generator:<9} {read['per_s']:>7} {read['p50_ms']:>6} {read['p99_ms']:>6} "
                  f"{action['per_s']:>9} {action['p50_ms']:>6} {action['p99_ms']:>6} "
                  f"{read['errors'] + action['errors']:>6} {'ok' if action['effects_ok'] else 'NO':>7} "
                  f"{read['load_average']:>5}")
    print("p50/p99: milliseconds as the generator saw them; effects ok: every executed action is in chat.db once "
          "(python: as many as answered; wrk: plus those in flight when it stopped); load: the 1-minute load "
          "average as the read figure began")
    print()
    print("where the CPU went during the read figures, in cores (CPU seconds per second) and CPU ms per read turn:")
    for name, figures in rows:
        for generator in args.generators:
            read = figures[f"{generator} read"]
            rate = read["per_s"] or 1
            parts = ", ".join(f"{who} {cores:.2f} ({cores * 1e3 / rate:.1f} ms)" for who, cores in read["cores"].items()
                              if who != "machine")
            print(f"  {name} / {generator}: {parts}; machine {read['cores']['machine']:.2f} of {read['cpus']}")
    print("postgres: every process of that name on the machine (the bench's backends, and any other use of the "
          "server); generator: bench/load.py's threads in this process, or wrk")


# --- faults -------------------------------------------------------------------------------------------------


@dataclass
class Ledger:
    """What the clients were told, and what they never got an answer for."""

    acknowledged: dict[str, str] = field(default_factory=dict)  # Idempotency-Key -> the text or subject it wrote
    stuck: list[str] = field(default_factory=list)  # keys that never resolved
    confirmed: dict[str, str] = field(default_factory=dict)  # approval key -> the email's subject
    reads: int = 0
    read_errors: Counter[str] = field(default_factory=Counter)
    retries: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _keyed(client: httpx.Client, path: str, body: dict[str, Any], key: str, deadline: float,
           ledger: Ledger) -> httpx.Response | None:
    """POST with ``key`` until it is answered for good (not a transport error, a 5xx or a retry in progress);
    None when ``deadline`` passes first."""
    while time.monotonic() < deadline:
        try:
            response = client.post(path, json=body, headers={"Idempotency-Key": key})
        except httpx.TransportError:
            response = None
        if response is not None and response.status_code < 500 and not (
                response.status_code == 409 and response.json().get("error", {}).get("code") ==
                "idempotency_in_progress"):
            return response
        with ledger.lock:
            ledger.retries += 1
        time.sleep(0.2)
    return None


def _client_loop(index: int, url: str, token: str, end: float, settle: float, ledger: Ledger) -> None:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        conversation = ""
        n = 0
        while time.monotonic() < end:
            n += 1
            kind = ("read", "write", "write", "confirm")[n % 4]
            if kind == "read":
                try:
                    if not conversation:
                        conversation = client.post("/v1/conversations").json()["id"]
                    answer = client.post(f"/v1/conversations/{conversation}/messages",
                                         json={"text": "which of my deals close in the next 30 days?"})
                    ok = answer.status_code == 200
                    problem = "" if ok else f"HTTP {answer.status_code}"
                except (httpx.TransportError, ValueError, KeyError) as exc:
                    ok, problem, conversation = False, type(exc).__name__, ""
                with ledger.lock:
                    ledger.reads += ok
                    if problem:
                        ledger.read_errors[problem] += 1
                continue
            key = f"k{index}-{n}-{uuid.uuid4().hex[:6]}"
            if kind == "write":
                text = f"fault run {key}"
                answer = _keyed(client, "/v1/actions/chat.send", {"args": {"to": "carol", "text": text}}, key,
                                settle, ledger)
                with ledger.lock:
                    if answer is not None and answer.status_code == 200 and answer.json()["status"] == "executed":
                        ledger.acknowledged[key] = text
                    elif answer is None:
                        ledger.stuck.append(key)
                continue
            subject = f"fault run {key}"
            asked = _keyed(client, "/v1/actions/email.send",
                           {"args": {"to": RECIPIENTS, "subject": subject, "body": "b"}}, key, settle, ledger)
            if asked is None:
                with ledger.lock:
                    ledger.stuck.append(key)
                continue
            confirmation = (asked.json().get("confirmation") or {}).get("id")
            if asked.status_code != 200 or not confirmation:
                continue
            approval = f"{key}-yes"
            done = _keyed(client, f"/v1/confirmations/{confirmation}/approve", {}, approval, settle, ledger)
            with ledger.lock:
                if done is None:
                    ledger.stuck.append(approval)
                elif done.status_code == 200 and done.json()["status"] == "executed":
                    ledger.confirmed[approval] = subject


MINUTES_PER_SECOND = 1  # in a fault run, a process started s seconds in has its clock pinned s minutes later
INSTRUCTION = "fault instruction {n}"


def schedule_instructions(root: Path, seconds: float) -> list[str]:
    """Standing instructions due during a fault run of ``seconds``: one every 2 minutes of the run's clock
    (``MINUTES_PER_SECOND``), up to four fifths of it; each sends carol its own text. Firings run in the
    ``sayso serve`` processes (``instructions_every_seconds = 1``); confirmations last a day, because the
    processes' clocks differ by up to the run's length. The texts of the instructions."""
    toml = root / "sayso.toml"
    text = toml.read_text().replace("confirmation_ttl_minutes = 15", "confirmation_ttl_minutes = 1440")
    toml.write_text(text + "instructions_every_seconds = 1\n")  # the last section is [serve]
    count = max(int(seconds * MINUTES_PER_SECOND * 0.8 / 2), 1)
    ws = Workspace.load(root)
    try:
        chat = Chat(Pipeline(ws, Clock(parse_time(cluster.NOW, "UTC")), channel="api"))
        texts = []
        for n in range(1, count + 1):
            said = chat.say("alice", f"in {2 * n} minutes, tell carol {INSTRUCTION.format(n=n)}")
            if said.status.value != "executed":
                raise RuntimeError(f"the instruction was not set: {said.reply}")
            texts.append(INSTRUCTION.format(n=n))
        return texts
    finally:
        ws.close()


def _clock_at(elapsed: float) -> str:
    at = parse_time(cluster.NOW, "UTC") + timedelta(minutes=int(elapsed * MINUTES_PER_SECOND))
    return at.strftime("%Y-%m-%dT%H:%M")


def _counts(root: Path, system: str, sql: str) -> Counter[str]:
    with sqlite3.connect(root / "systems" / f"{system}.db") as conn:
        return Counter(row[0] for row in conn.execute(sql))


def fault_run(root: Path, tokens: dict[str, str], *, seconds: float, clients: int, kill_every: float,
              seed: int | None = None, log: Any = None) -> dict[str, Any]:
    """The fault run on the workspace at ``root`` (state on PostgreSQL): its figures and findings."""
    rng = random.Random(seed)
    instructions = schedule_instructions(root, seconds)
    running = cluster.Cluster(root, 3)
    ledger = Ledger()
    kills = 0
    try:
        started = time.monotonic()
        end, settle = started + seconds, started + seconds + 90
        threads = [threading.Thread(target=_client_loop, args=(i, running.url, tokens[USERS[i % len(USERS)]], end,
                                                               settle, ledger)) for i in range(clients)]
        for thread in threads:
            thread.start()
        while time.monotonic() + kill_every < end:
            time.sleep(kill_every)
            victim = rng.randrange(3)
            running.kill(victim)
            kills += 1
            running.now = _clock_at(time.monotonic() - started)
            if log:
                print(f"  {time.monotonic() - started:5.1f} s: killed process {victim}; started again at "
                      f"{running.now}", file=log, flush=True)
            running.start(victim)
        for index in range(3):
            running.wait_ready(index)
        for thread in threads:
            thread.join(150)
        # A rolling restart (SIGTERM, as a deployment does) onto the window's last minute: every instruction is
        # due by then; their firings, and any that a killed process held, are the processes' to finish.
        in_window = sum(_instructions_sent(root).values())
        running.now = _clock_at(seconds)
        for index in range(3):
            running.terminate(index)
            running.start(index)
            running.wait_ready(index)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(_instructions_sent(root)) < len(instructions):
            time.sleep(0.5)
        time.sleep(2)  # a firing twice would show by now
    finally:
        running.stop()
    fired = _instructions_sent(root)
    texts = _counts(root, "chat", "select text from messages where text like 'fault run %'")
    subjects = _counts(root, "email", "select subject from emails where subject like 'fault run %'")
    acked = Counter(texts[text] for text in ledger.acknowledged.values())
    approved = Counter(subjects[subject] for subject in ledger.confirmed.values())
    verified = subprocess.run([sys.executable, "-m", "sayso", "audit", "verify", "--workspace", str(root)],
                              capture_output=True, text=True)
    return {
        "seconds": seconds, "clients": clients, "kills": kills, "reads": ledger.reads,
        "read_errors": dict(ledger.read_errors), "retries": ledger.retries,
        "writes_acknowledged": len(ledger.acknowledged), "confirmations_approved": len(ledger.confirmed),
        "lost": acked[0] + approved[0],  # acknowledged, and not in the target system
        "duplicates": sum(n - 1 for n in [*texts.values(), *subjects.values()] if n > 1),  # anything twice
        "instructions_due": len(instructions),
        "instructions_fired_in_window": in_window,  # before the rolling restart
        "instructions_fired_once": sum(fired[text] == 1 for text in instructions),
        "instructions_missed": sum(fired[text] == 0 for text in instructions),
        "instructions_fired_twice": sum(max(fired[text] - 1, 0) for text in instructions),
        "stuck_keys": len(ledger.stuck),
        "audit_verify": verified.returncode == 0 and "intact" in verified.stdout,
        "audit_output": verified.stdout.strip()[-300:],
    }


def _instructions_sent(root: Path) -> Counter[str]:
    return _counts(root, "chat", "select text from messages where text like 'fault instruction %'")


def faults(args: argparse.Namespace) -> int:
    failed = 0
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="sayso-faults-", ignore_cleanup_errors=True) as tmp:
            database = create_database(args.database_url)
            try:
                root = Path(tmp) / "ws"
                tokens = make_workspace(root, database)
                print(f"fault run {run + 1}/{args.runs}: {args.clients} clients, {args.seconds:g} s, a kill -9 "
                      f"every {args.kill_every:g} s", file=sys.stderr, flush=True)
                found = fault_run(root, tokens, seconds=args.seconds, clients=args.clients,
                                  kill_every=args.kill_every, log=sys.stderr)
            finally:
                drop_database(args.database_url, database)
        ok = (found["lost"] == 0 and found["duplicates"] == 0 and found["stuck_keys"] == 0
              and found["instructions_fired_once"] == found["instructions_due"] and found["audit_verify"])
        failed += not ok
        print(f"run {run + 1}: {found['kills']} kills; {found['writes_acknowledged']} writes and "
              f"{found['confirmations_approved']} confirmations acknowledged, {found['reads']} reads "
              f"(read errors {found['read_errors'] or 0}); {found['retries']} retries; lost {found['lost']}, "
              f"duplicates {found['duplicates']}, stuck keys {found['stuck_keys']}; instructions due "
              f"{found['instructions_due']}, fired once {found['instructions_fired_once']} "
              f"({found['instructions_fired_in_window']} while processes were being killed), missed "
              f"{found['instructions_missed']}, twice {found['instructions_fired_twice']}; audit verify "
              f"{'passes' if found['audit_verify'] else 'FAILS'}: {'ok' if ok else 'FAILED'}")
        if args.json:
            print(json.dumps(found, sort_keys=True))
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="timed seconds per figure (default 15), or of a fault run (default 60)")
    parser.add_argument("--warmup", type=float, default=2, help="untimed seconds per figure first (default 2)")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 3], help="process counts (1 2 3)")
    parser.add_argument("--threads", type=int, default=None, help="sayso serve --threads for each process")
    parser.add_argument("--baseline", default=BASELINE, help=f"the commit measured as the baseline ({BASELINE}); "
                        "'' for none")
    parser.add_argument("--database-url", default=os.environ.get(
        "SAYSO_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="a PostgreSQL database on which to create (and drop) the bench's own")
    parser.add_argument("--faults", action="store_true", help="the fault run instead of the throughput figures")
    parser.add_argument("--kill-every", type=float, default=4, help="seconds between kills in --faults (4)")
    parser.add_argument("--runs", type=int, default=1, help="consecutive fault runs (default 1)")
    parser.add_argument("--rounds", type=int, default=1, help="measure every setup this many times, in turn, and "
                        "report each figure's median (default 1)")
    parser.add_argument("--generator", choices=["python", "wrk", "both"], default="both",
                        help="the load: bench/load.py's Python clients, wrk (Debian's, in C, bench/scale.lua), or "
                        "each in turn (default)")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args(argv)
    if cluster.nginx_binary() is None:
        parser.error("nginx is not installed: apt-get install nginx-light")
    if args.faults:
        args.seconds = args.seconds or 60
        return faults(args)
    args.seconds = args.seconds or 15
    args.generators = ["python", "wrk"] if args.generator == "both" else [args.generator]
    if "wrk" in args.generators and not os.access(WRK, os.X_OK):
        parser.error("wrk is not installed: apt-get install wrk")
    return throughput(args)


if __name__ == "__main__":
    sys.exit(main())
