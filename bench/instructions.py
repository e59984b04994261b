"""How many standing instructions one worker keeps, and how late firings are.

Two measurements on a fresh demo workspace (SQLite state, demo systems), one process:

1. Watches: N active watches ("when D-10x is archived", "when SUP-17 is archived", spread over the demo's
   deals and tickets, none met) all due at once; one `Runner.tick` checks them all. Reported: the
   time one pass over N watches takes and checks per second, against the target of N = 10,000 checked
   at least once a minute (60 s of budget per pass), for two passes (the second finds warm caches).
2. Firings: M delayed actions ("tomorrow at 9, tell carol ...") due at the same minute; one tick fires
   them all. Reported: the delay from due time to each firing (median, p99), firings per second.

    python bench/instructions.py [--watches 10000] [--firings 200]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

from sayso import Workspace
from sayso.clock import parse_time
from sayso.instructions import Instruction, InstructionBook, Runner
from sayso.instructions.store import new_id

R = date(2026, 11, 25)
NOW = parse_time("2026-11-25T14:00")  # 09:00 in New York
DEALS = [f"D-10{i}" for i in range(1, 9)]
TICKETS = ["SUP-17", "SUP-18", "SALES-5"]


def _watch(i: int, at: datetime) -> Instruction:
    record = DEALS[i % len(DEALS)] if i % 2 else TICKETS[i % len(TICKETS)]
    kind, field, state = ("Deal", "stage", "archived") if record.startswith("D") else ("Ticket", "status", "archived")
    return Instruction(
        id=new_id(), owner="alice", conversation=f"c_bench_{i % 50}", kind="watch", words=f"when {record} is {state}",
        summary=f"when {record} is {state}: I will message you in chat",
        trigger={"mode": "becomes", "record": {"type": kind, "id": record, "title": record}, "field": field,
                 "baseline": None, "state": state, "deadline": None},
        action=None, args={}, next_due=at.isoformat(), created_at=at.isoformat(), updated_at=at.isoformat())


def _delayed(i: int, at: datetime) -> Instruction:
    return Instruction(
        id=new_id(), owner="alice", conversation=f"c_bench_{i % 50}", kind="at",
        words=f"tomorrow at 9, tell carol note {i}", summary="tell carol", trigger={"at": at.isoformat()},
        action="chat.send", args={"to": "carol", "text": f"note {i}"}, next_due=at.isoformat(),
        created_at=(at - timedelta(days=1)).isoformat(), updated_at=(at - timedelta(days=1)).isoformat())


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def watches(n: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "ws"
        Workspace.init(root, demo=True, reference=R)
        ws = Workspace.load(root)
        book = InstructionBook(ws.store)
        started = time.perf_counter()
        for i in range(n):
            book.add(_watch(i, NOW))
        print(f"set up {n} watches in {time.perf_counter() - started:.1f} s")
        runner = Runner(ws)
        for number, at in enumerate((NOW, NOW + timedelta(minutes=1)), start=1):
            started = time.perf_counter()
            fired = runner.tick(at)
            took = time.perf_counter() - started
            print(f"pass {number}: checked {n} watches in {took:.2f} s = {n / took:,.0f} checks/s "
                  f"({took / 60:.0%} of the one-minute budget; fired {len(fired)})")
        ws.close()


def firings(m: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "ws"
        Workspace.init(root, demo=True, reference=R)
        ws = Workspace.load(root)
        book = InstructionBook(ws.store)
        for i in range(m):
            book.add(_delayed(i, NOW))
        runner = Runner(ws)
        delays: list[float] = []
        started = time.perf_counter()
        original = runner._run  # noqa: SLF001 - timing each firing from outside

        def timed(*args: object, **kwargs: object) -> object:
            result = original(*args, **kwargs)  # type: ignore[arg-type]
            delays.append((time.perf_counter() - started) * 1000)
            return result

        runner._run = timed  # type: ignore[method-assign]
        fired = runner.tick(NOW)
        took = time.perf_counter() - started
        ok = sum(1 for f in fired if f["status"] == "executed")
        print(f"fired {ok}/{m} delayed actions due at the same minute in {took:.2f} s = {m / took:,.0f} firings/s; "
              f"delay from due time: median {statistics.median(delays):.0f} ms, "
              f"p99 {_percentile(delays, 0.99):.0f} ms, "
              f"max {max(delays):.0f} ms (plus the worker's look interval, 15 s by default)")
        ws.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--watches", type=int, default=10_000)
    parser.add_argument("--firings", type=int, default=200)
    options = parser.parse_args()
    watches(options.watches)
    firings(options.firings)


if __name__ == "__main__":
    main()
