"""The engine's own overhead per executed low-risk step, on SQLite, next to a LangGraph graph.

    python bench/overhead.py [--turns N] [--warmup N] [--json] [--profile] [--dir PATH]

Three things run side by side in the same process, interleaved in rounds so that
machine noise (other programs, CPU frequency, disk) falls on all of them alike:

* sayso: ``Pipeline.do("alice", "chat.send", {"to": "carol", ...})`` on a fresh demo
  workspace whose ``chat`` system is an in-memory connector (kind ``bench.null``),
  so each turn is validation, grounding, a Cedar policy decision, the guard, the
  durable plan, the effect ledger and the hash-chained audit, and nothing else.
  The time spent inside the connector's ``execute`` is measured there and
  subtracted: what is left is the engine's own overhead.
* LangGraph: a StateGraph doing the same steps (interpret stub, policy, confirm,
  execute, audit) compiled with its ``SqliteSaver`` checkpointer, a fresh thread per
  turn; once with LangGraph's default durability ("async") and once with "sync"
  (every checkpoint written before the next node runs, as sayso does). The
  interpreter stub's and the null execute's own time are subtracted the same way.
* A durable SQLite commit: ``BEGIN IMMEDIATE; INSERT; COMMIT`` in WAL mode with
  ``synchronous=FULL``, the floor under any durable step.

Synchronous commits per step are counted on every SQLite connection with
``sqlite3.Connection.set_trace_callback`` (COMMIT statements, plus writes made
outside a transaction, which SQLite commits on their own) in a separate, untimed
pass, so the tracing costs no engine any time. For sayso the timed pass is also
counted with ``Store.commits`` (SQLAlchemy's commit event); the two must agree.

Needs the ``bench`` extra for the LangGraph side: ``pip install -e ".[bench]"``.
Without it the LangGraph rows are skipped.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import json
import math
import operator
import os
import platform
import pstats
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal, TypedDict

import sayso
from sayso import Change, Clock, Connector, Effect, Guarantee, Pipeline, TurnStatus, Workspace
from sayso.connectors import SystemContext, registry

NULL_KIND = "bench.null"
Durability = Literal["sync", "async", "exit"]
REFERENCE = date(2026, 11, 25)
USER = "alice"
ACTION = "chat.send"
SAYSO_DIR = Path(sayso.__file__).resolve().parent

# Targets from the issue: median under 2 ms, at most 4 synchronous commits per step,
# at least 4 times faster than the LangGraph graph.
TARGET_MEDIAN_MS = 2.0
TARGET_COMMITS = 4.0
TARGET_RATIO = 4.0


# --- measuring --------------------------------------------------------------------------------


@dataclass
class Series:
    """Per-turn times of one engine, in seconds, with what was excluded from them."""

    name: str
    times: list[float] = field(default_factory=list)
    excluded: list[float] = field(default_factory=list)
    commits_per_step: float | None = None
    commits_note: str = ""

    def stats(self) -> dict[str, Any]:
        ordered = sorted(self.times)
        if not ordered:
            return {"median_ms": None, "p99_ms": None, "mean_ms": None, "min_ms": None, "n": 0,
                    "excluded_median_ms": None, "commits_per_step": self.commits_per_step}
        rank = max(0, math.ceil(0.99 * len(ordered)) - 1)  # nearest-rank p99
        return {
            "median_ms": round(statistics.median(ordered) * 1e3, 4),
            "p99_ms": round(ordered[rank] * 1e3, 4),
            "mean_ms": round(statistics.fmean(ordered) * 1e3, 4),
            "min_ms": round(ordered[0] * 1e3, 4),
            "n": len(ordered),
            "excluded_median_ms": round(statistics.median(self.excluded) * 1e3, 4) if self.excluded else 0.0,
            "commits_per_step": self.commits_per_step,
        }


class CommitCounter:
    """Counts durable SQLite commits from statement traces, over any number of connections.

    A ``COMMIT`` (or ``END``) ends a write transaction; a write statement run outside
    any transaction is committed by SQLite on its own, so it counts as one too.
    """

    _WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER")

    def __init__(self) -> None:
        self.commits = 0
        self.enabled = False

    def attach(self, conn: sqlite3.Connection) -> None:
        in_transaction = [False]

        def trace(sql: str) -> None:
            if not self.enabled:
                return
            words = sql.split(None, 1)
            head = words[0].upper() if words else ""
            if head == "BEGIN":
                in_transaction[0] = True
            elif head in ("COMMIT", "END"):
                in_transaction[0] = False
                self.commits += 1
            elif head == "ROLLBACK" and "TO" not in sql.upper().split():
                in_transaction[0] = False
            elif head in self._WRITES and not in_transaction[0]:
                self.commits += 1

        conn.set_trace_callback(trace)

    @contextmanager
    def counting(self) -> Iterator[None]:
        self.enabled = True
        try:
            yield
        finally:
            self.enabled = False


class NullSystem:
    """An in-memory target system: records each effect once per key and returns at once.

    ``spent`` accumulates the time spent inside it, so callers can subtract it.
    """

    def __init__(self) -> None:
        self.effects: dict[str, Effect] = {}
        self.spent = 0.0

    def apply(self, operation: str, args: Mapping[str, Any], key: str) -> Effect:
        start = time.perf_counter()
        effect = self.effects.get(key)
        if effect is None:
            message = f"m{len(self.effects) + 1}"
            effect = Effect(key=key, operation=operation, summary=f"sent to {args.get('to')}",
                            result={"id": message},
                            changes=[Change(record_type="Message", record_id=message, after=dict(args))])
            self.effects[key] = effect
        self.spent += time.perf_counter() - start
        return effect


class NullConnector(Connector):
    """The ``bench.null`` connector kind: writes go to a :class:`NullSystem`."""

    guarantee = Guarantee.IDEMPOTENT
    record_types: frozenset[str] = frozenset()

    def __init__(self, system: NullSystem) -> None:
        self.system = system

    def execute(
        self, operation: str, args: dict[str, Any], *, key: str, origin: dict[str, Any] | None = None
    ) -> Effect:
        return self.system.apply(operation, args, key)

    def lookup(self, key: str) -> Effect | None:
        return self.system.effects.get(key)

    def compensate(self, effect: Effect, *, key: str) -> Effect:
        self.system.effects.pop(effect.key, None)
        return Effect(key=key, operation=f"undo {effect.operation}", summary="unsent")


# --- the engines --------------------------------------------------------------------------------


class Engine:
    """One thing being timed: ``turn(i)`` returns (seconds, seconds to exclude)."""

    series: Series

    def turn(self, i: int) -> tuple[float, float]:
        raise NotImplementedError

    def reset(self) -> None:
        """Forget what the warmup counted."""

    def count_commits(self, turns: int, start: int) -> None:
        """Run ``turns`` untimed turns with commit tracing on; sets commits per step."""

    def close(self) -> None:
        pass


class SaysoEngine(Engine):
    def __init__(self, root: Path) -> None:
        self.system = NullSystem()
        registry.add(NULL_KIND, self._factory)
        Workspace.init(root, demo=True, reference=REFERENCE)
        toml = root / "sayso.toml"
        text = toml.read_text()
        head = text.find("[systems.chat]")
        if head < 0:
            raise SystemExit("the demo workspace has no [systems.chat]; cannot point it at bench.null")
        end = text.find("\n[", head + 1)
        end = len(text) if end < 0 else end + 1
        toml.write_text(text[:head] + f'[systems.chat]\nkind = "{NULL_KIND}"\n\n' + text[end:])
        self.ws = Workspace.load(root)
        kind = self.ws.settings.systems.get("chat", {}).get("kind")
        if kind != NULL_KIND:
            raise SystemExit(f"the chat system's kind is {kind!r}, not {NULL_KIND!r}")
        self.pipeline = Pipeline(self.ws, Clock())
        self.store = self.ws.store
        self.series = Series("sayso (engine only)")
        self.commits_in_timed = 0

    def _factory(self, name: str, settings: Mapping[str, Any], context: SystemContext) -> Connector:
        return NullConnector(self.system)

    def do(self, i: int) -> None:
        result = self.pipeline.do(USER, ACTION, {"to": "carol", "text": f"hello {i}"})
        if result.status is not TurnStatus.EXECUTED:
            raise SystemExit(f"sayso turn {i} ended {result.status.value}, not executed: {result.reply}"
                             + (f" {result.error}" if result.error else ""))

    def reset(self) -> None:
        self.commits_in_timed = 0

    def turn(self, i: int) -> tuple[float, float]:
        spent, commits = self.system.spent, self.store.commits
        start = time.perf_counter()
        self.do(i)
        elapsed = time.perf_counter() - start
        self.commits_in_timed += self.store.commits - commits
        return elapsed, self.system.spent - spent

    def count_commits(self, turns: int, start: int) -> None:
        from sqlalchemy import event

        counter = CommitCounter()
        engine = self.store.engine
        engine.dispose()  # pooled connections predate the trace; new ones get it on connect

        def on_connect(dbapi_conn: Any, _record: Any) -> None:
            counter.attach(dbapi_conn)

        event.listen(engine, "connect", on_connect)
        try:
            before = self.store.commits
            with counter.counting():
                for i in range(start, start + turns):
                    self.do(i)
            counted = self.store.commits - before
        finally:
            event.remove(engine, "connect", on_connect)
            engine.dispose()
        timed = self.commits_in_timed / max(1, len(self.series.times))
        self.series.commits_per_step = round(counter.commits / turns, 3)
        self.series.commits_note = (f"sqlite trace {counter.commits / turns:g}/step; "
                                    f"Store.commits {counted / turns:g}/step (timed pass {timed:g}/step)")
        if counter.commits != counted:
            print(f"warning: sayso commit counts disagree: trace {counter.commits}, Store.commits {counted}",
                  file=sys.stderr)

    def verify(self) -> str:
        check = self.pipeline.audit.verify()
        if check.ok:
            return f"audit chain ok ({check.count} records)"
        return f"AUDIT CHAIN BROKEN at seq {check.bad_seq}: {check.problem}"

    def close(self) -> None:
        self.ws.close()


class GraphState(TypedDict, total=False):
    user: str
    text: str
    turn: int
    action: str
    args: dict[str, Any]
    allowed: bool
    risk: str
    approved: bool
    effect: dict[str, Any]
    status: str
    audit: Annotated[list[dict[str, Any]], operator.add]


ROLES = {"alice": "account_executive", "carol": "sales_manager"}
ALLOWED = {ACTION: {"account_executive", "sales_manager", "sdr"}}
RISK = {ACTION: "low"}


class LangGraphEngine(Engine):
    def __init__(self, path: Path, durability: Durability) -> None:
        from langgraph.checkpoint.sqlite import SqliteSaver
        from langgraph.graph import END, START, StateGraph

        self.durability = durability
        self.system = NullSystem()
        self.excluded = 0.0
        self.conn = sqlite3.connect(str(path), check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")  # as sayso's store: every commit reaches the disk
        self.counter = CommitCounter()
        self.counter.attach(self.conn)
        saver = SqliteSaver(self.conn)
        saver.setup()

        def interpret(state: GraphState) -> dict[str, Any]:
            start = time.perf_counter()  # the interpreter is a stub; its own time is excluded
            out = {"action": ACTION, "args": {"to": "carol", "text": state["text"]}}
            self.excluded += time.perf_counter() - start
            return out

        def policy(state: GraphState) -> dict[str, Any]:
            allowed = ROLES.get(state["user"], "") in ALLOWED.get(state["action"], set())
            return {"allowed": allowed, "risk": RISK.get(state["action"], "high"),
                    "audit": [{"event": "decision", "status": "allow" if allowed else "deny",
                               "action": state["action"], "args": state["args"]}]}

        def confirm(state: GraphState) -> dict[str, Any]:
            approved = state["risk"] == "low"
            return {"approved": approved,
                    "audit": [{"event": "confirmation", "status": "auto" if approved else "pending"}]}

        def execute(state: GraphState) -> dict[str, Any]:
            key = hashlib.sha256(json.dumps([state["turn"], state["action"], state["args"]],
                                            sort_keys=True).encode()).hexdigest()[:40]
            before = self.system.spent
            effect = self.system.apply(state["action"].split(".", 1)[1], state["args"], key)
            self.excluded += self.system.spent - before
            return {"effect": effect.model_dump(mode="json"),
                    "audit": [{"event": "effect", "status": "ok", "key": key}]}

        def audit(state: GraphState) -> dict[str, Any]:
            if state.get("effect"):
                status = "executed"
            else:
                status = "pending" if state.get("allowed") else "denied"
            return {"status": status, "audit": [{"event": "turn", "status": status}]}

        graph = StateGraph(GraphState)
        graph.add_node("interpret", interpret)
        graph.add_node("policy", policy)
        graph.add_node("confirm", confirm)
        graph.add_node("execute", execute)
        graph.add_node("audit", audit)
        graph.add_edge(START, "interpret")
        graph.add_edge("interpret", "policy")
        graph.add_conditional_edges("policy", lambda s: "confirm" if s["allowed"] else "audit")
        graph.add_conditional_edges("confirm", lambda s: "execute" if s["approved"] else "audit")
        graph.add_edge("execute", "audit")
        graph.add_edge("audit", END)
        self.graph = graph.compile(checkpointer=saver)
        label = "default" if durability == "async" else "like sayso"
        self.series = Series(f"langgraph (durability={durability}, {label})")

    def do(self, i: int) -> None:
        config: Any = {"configurable": {"thread_id": f"{self.durability}-{i}"}}
        state: GraphState = {"user": USER, "text": f"hello {i}", "turn": i, "audit": []}
        out = self.graph.invoke(state, config, durability=self.durability)
        if out.get("status") != "executed":
            raise SystemExit(f"langgraph turn {i} ended {out.get('status')!r}, not executed")

    def turn(self, i: int) -> tuple[float, float]:
        excluded = self.excluded
        start = time.perf_counter()
        self.do(i)
        elapsed = time.perf_counter() - start
        return elapsed, self.excluded - excluded

    def count_commits(self, turns: int, start: int) -> None:
        before = self.counter.commits
        with self.counter.counting():
            for i in range(start, start + turns):
                self.do(i)
            # invoke waits for durability="async" writes before it returns; a moment more for a straggler
            time.sleep(0.05)
        counted = self.counter.commits - before
        self.series.commits_per_step = round(counted / turns, 3)
        self.series.commits_note = f"sqlite trace {counted / turns:g}/step"

    def close(self) -> None:
        self.conn.close()


class CommitBaseline(Engine):
    """One durable SQLite commit: BEGIN IMMEDIATE; INSERT; COMMIT, WAL, synchronous=FULL."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(str(path), isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
        self.series = Series("sqlite durable commit (WAL, sync=FULL)")
        self.series.commits_per_step = 1.0
        self.series.commits_note = "one by construction"

    def turn(self, i: int) -> tuple[float, float]:
        start = time.perf_counter()
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.execute("INSERT INTO t (v) VALUES (?)", (f"hello {i}",))
        self.conn.execute("COMMIT")
        return time.perf_counter() - start, 0.0

    def close(self) -> None:
        self.conn.close()


# --- running ------------------------------------------------------------------------------------


def run_rounds(engines: list[Engine], turns: int, warmup: int, chunk: int) -> None:
    """Warm every engine up, then time ``turns`` turns each, interleaved ``chunk`` at a time."""
    for engine in engines:
        for i in range(warmup):
            engine.turn(i)
        engine.reset()
    gc.collect()
    done = 0
    while done < turns:
        size = min(chunk, turns - done)
        for engine in engines:
            for i in range(warmup + done, warmup + done + size):
                elapsed, excluded = engine.turn(i)
                engine.series.times.append(max(0.0, elapsed - excluded))
                engine.series.excluded.append(excluded)
        done += size


def profile_sayso(engine: SaysoEngine, turns: int, start: int, top: int) -> str:
    """cProfile ``turns`` sayso turns; the top functions by cumulative time, per turn."""
    profiler = cProfile.Profile()
    profiler.enable()
    for i in range(start, start + turns):
        engine.do(i)
    profiler.disable()
    stats = pstats.Stats(profiler)
    rows: list[tuple[float, int, str]] = []
    everything: list[tuple[float, int, str]] = []
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    for (filename, line, name), (_cc, calls, own, cumulative, _callers) in raw.items():
        label = f"{name} ({_short(filename)}:{line})"
        everything.append((own, calls, label))
        try:
            Path(filename).resolve().relative_to(SAYSO_DIR)
        except (ValueError, OSError):
            continue
        rows.append((cumulative, calls, label))
    lines = [f"cProfile over {turns} sayso turns (profiler overhead inflates absolute times; compare shares)",
             f"  top {top} sayso functions by cumulative time:",
             f"  {'ms/turn':>8}  {'calls/turn':>10}  function"]
    for cumulative, calls, label in sorted(rows, reverse=True)[:top]:
        lines.append(f"  {cumulative / turns * 1e3:8.3f}  {calls / turns:10.1f}  {label}")
    lines.append(f"  top {top} functions anywhere by own time (where the Python time goes):")
    lines.append(f"  {'ms/turn':>8}  {'calls/turn':>10}  function")
    for own, calls, label in sorted(everything, reverse=True)[:top]:
        lines.append(f"  {own / turns * 1e3:8.3f}  {calls / turns:10.1f}  {label}")
    return "\n".join(lines)


def _short(filename: str) -> str:
    for marker in ("site-packages/", "/work/main/", "lib/python3"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def filesystem_of(path: Path) -> str:
    """The file system type holding ``path`` (Linux, best effort)."""
    try:
        mounts = [line.split() for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return "unknown"
    best, kind = "", "unknown"
    target = str(path.resolve())
    for parts in mounts:
        if len(parts) >= 3 and (target == parts[1] or target.startswith(parts[1].rstrip("/") + "/")) \
                and len(parts[1]) >= len(best):
            best, kind = parts[1], parts[2]
    return kind


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    parser.add_argument("--turns", type=int, default=500, help="timed turns per engine (default 500)")
    parser.add_argument("--warmup", type=int, default=50, help="untimed turns per engine first (default 50)")
    parser.add_argument("--chunk", type=int, default=50, help="turns per engine per round (default 50)")
    parser.add_argument("--count-turns", type=int, default=50,
                        help="untimed turns per engine traced to count commits (default 50)")
    parser.add_argument("--json", action="store_true", help="end with one line of JSON holding the figures")
    parser.add_argument("--profile", action="store_true",
                        help="also cProfile sayso turns and print the top functions by cumulative time")
    parser.add_argument("--profile-turns", type=int, default=200, help="turns to profile (default 200)")
    parser.add_argument("--top", type=int, default=10, help="functions to list with --profile (default 10)")
    parser.add_argument("--no-langgraph", action="store_true", help="skip the LangGraph rows")
    parser.add_argument("--dir", type=Path, default=None,
                        help="where the temporary databases go (default: the system temp dir); "
                             "use a real disk, not tmpfs, for meaningful commit times")
    args = parser.parse_args(argv)
    if args.turns < 1 or args.warmup < 0 or args.chunk < 1 or args.count_turns < 1:
        parser.error("--turns, --chunk and --count-turns must be positive and --warmup not negative")
    return args


def _fmt(value: float | None, width: int, digits: int = 3) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import langgraph  # noqa: F401
        from langgraph.checkpoint.sqlite import SqliteSaver  # noqa: F401
        have_langgraph = not args.no_langgraph
        missing = "" if have_langgraph else "skipped (--no-langgraph)"
    except ImportError as exc:
        have_langgraph, missing = False, f"not installed ({exc.name}); pip install -e '.[bench]'"

    if args.dir is not None:
        args.dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sayso-bench-", dir=args.dir,
                                     ignore_cleanup_errors=True) as tmp:
        base = Path(tmp)
        fs = filesystem_of(base)
        sayso_engine = SaysoEngine(base / "ws")
        engines: list[Engine] = [sayso_engine]
        graphs: dict[str, LangGraphEngine] = {}
        if have_langgraph:
            modes: tuple[Durability, ...] = ("async", "sync")
            for mode in modes:
                graphs[mode] = LangGraphEngine(base / f"langgraph-{mode}.sqlite", mode)
                engines.append(graphs[mode])
        baseline = CommitBaseline(base / "baseline.sqlite")
        engines.append(baseline)
        try:
            started = time.perf_counter()
            run_rounds(engines, args.turns, args.warmup, args.chunk)
            wall = time.perf_counter() - started
            first = args.warmup + args.turns
            for engine in engines:
                engine.count_commits(args.count_turns, first)
            audit_state = sayso_engine.verify()
            profile = profile_sayso(sayso_engine, args.profile_turns, first + args.count_turns, args.top) \
                if args.profile else ""
        finally:
            for engine in engines:
                engine.close()

    s = sayso_engine.series.stats()
    ratio = ratio_sync = None
    if "async" in graphs and s["median_ms"]:
        ratio = round(graphs["async"].series.stats()["median_ms"] / s["median_ms"], 2)
        ratio_sync = round(graphs["sync"].series.stats()["median_ms"] / s["median_ms"], 2)

    import sqlalchemy

    versions = f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, " \
               f"SQLAlchemy {sqlalchemy.__version__}, sayso {sayso.__version__}"
    if have_langgraph:
        from importlib.metadata import version

        versions += f", langgraph {version('langgraph')}, langgraph-checkpoint-sqlite " \
                    f"{version('langgraph-checkpoint-sqlite')}"
    print(f"sayso engine overhead per executed low-risk step ({ACTION}), SQLite, "
          f"{args.turns} timed turns + {args.warmup} warmup per engine, "
          f"interleaved in rounds of {args.chunk}")
    print(f"{versions}; {os.cpu_count()} CPUs; temp files on {fs}; {wall:.1f} s timed")
    if fs in ("tmpfs", "ramfs"):
        print("note: tmpfs makes fsync free; commit times mean little here (use --dir on a real disk)")
    print()
    print(f"{'engine':<44} {'median ms':>10} {'p99 ms':>9} {'mean ms':>9} {'excl. ms':>9} "
          f"{'commits/step':>13}")
    for engine in engines:
        st = engine.series.stats()
        print(f"{engine.series.name:<44} {_fmt(st['median_ms'], 10)} {_fmt(st['p99_ms'], 9)} "
              f"{_fmt(st['mean_ms'], 9)} {_fmt(st['excluded_median_ms'], 9)} "
              f"{_fmt(st['commits_per_step'], 13, 2)}")
    if not have_langgraph:
        print(f"{'langgraph':<44} {missing}")
    print()
    print("excl. ms: median time per turn spent in the connector / interpreter stub, already subtracted")
    print("commits/step: synchronous SQLite commits per step, counted with sqlite3 set_trace_callback "
          "(COMMIT statements + autocommitted writes) in an untimed pass")
    for engine in engines:
        if engine.series.commits_note and engine is not baseline:
            print(f"  {engine.series.name}: {engine.series.commits_note}")
    print(f"sayso: {audit_state}")
    commit_ms = baseline.series.stats()["median_ms"]
    if commit_ms and s["median_ms"] and s["commits_per_step"]:
        floor = commit_ms * s["commits_per_step"]
        print(f"sayso: {s['commits_per_step']:g} commits x {commit_ms:.3f} ms = {floor:.3f} ms of the "
              f"{s['median_ms']:.3f} ms median is the durable-commit floor; the rest is Python")
    if ratio is not None:
        print(f"ratio langgraph median / sayso median: {ratio:.2f}x (durability=async, LangGraph's default), "
              f"{ratio_sync:.2f}x (durability=sync)")
    print()
    checks = [
        (f"median under {TARGET_MEDIAN_MS:g} ms",
         s["median_ms"] is not None and s["median_ms"] < TARGET_MEDIAN_MS),
        (f"at most {TARGET_COMMITS:g} commits per step",
         s["commits_per_step"] is not None and s["commits_per_step"] <= TARGET_COMMITS),
    ]
    if ratio is not None and ratio_sync is not None:
        checks.append((f"at least {TARGET_RATIO:g}x faster than LangGraph (both durabilities)",
                       min(ratio, ratio_sync) >= TARGET_RATIO))
    print("targets: " + "; ".join(f"{name}: {'met' if ok else 'MISSED'}" for name, ok in checks))
    if profile:
        print()
        print(profile)
    if args.json:
        def pick(engine: Engine | None) -> dict[str, Any] | None:
            return engine.series.stats() if engine is not None else None

        print(json.dumps({
            "turns": args.turns, "warmup": args.warmup, "filesystem": fs,
            "sayso": pick(sayso_engine),
            "langgraph": pick(graphs.get("async")),
            "langgraph_sync": pick(graphs.get("sync")),
            "sqlite_commit": pick(baseline),
            "ratio": ratio, "ratio_sync": ratio_sync,
            "commit_counting": "sqlite3 set_trace_callback: COMMIT statements + autocommitted writes",
            "targets": {name: ok for name, ok in checks},
            "audit": audit_state,
        }, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
