"""Grounding over a large CRM: ``DemoSystem.search`` and ``ground`` on indexes, next to the old scans.

    python bench/grounding.py [--records N] [--runs R] [--baseline-runs B] [--json] [--rebuild]

Builds (once per N, cached in the temp folder) a demo CRM file with N deals and N/10
accounts whose names are combinations of word lists drawn with a fixed seed, the eight
Lumen Labs deals and nine accounts among them. Then times, for seven kinds of query
(exact id, exact name, one-word prefix, two-word prefix, misspelling, no match, and a
common word that thousands of deals hold, the slowest case), each through
``Crm.search`` and through ``sayso.grounding.ground`` for ``crm.update_deal`` (the way
``Pipeline`` calls it), and the same with the scanning search sayso had before the
word index (``baseline_search`` below, a copy of it), on the same file.

Every kind cycles through a pool of different queries drawn from the data. The old
search reads the whole table for a misspelling, seconds at a million deals, hence its
separate, smaller ``--baseline-runs``. For the queries both ran, the script also
checks that they found the same records with the same scores.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import date, timedelta
from pathlib import Path
from typing import Any, TypeVar

from rapidfuzz import fuzz, process

from sayso import Workspace
from sayso.connectors import Record
from sayso.connectors.demo._crm import ACCOUNT, ACCOUNTS, DEAL, DEALS, Crm
from sayso.connectors.demo._store import Table, Tx, open_database, quote, transaction, words
from sayso.directory import Directory
from sayso.errors import UnknownRecord
from sayso.grounding import ground

R = TypeVar("R")

REFERENCE = date(2026, 11, 25)
GENERATOR = "1"  # bump when the generated data changes, so cached files are rebuilt
KINDS = ("exact id", "exact name", "one-word prefix", "two-word prefix", "misspelling", "no match", "common word")
POOL = 50  # different queries per kind

# Names are drawn from these lists: a compound ("Stone" + "bridge") or a standalone word, an
# industry word, sometimes a company form; a deal is its account's first word or two and a kind.
HEADS = (
    "Amber Arrow Ash Aspen Bay Birch Black Blue Bold Bramble Brook Cedar Clear Cloud Copper Coral Crest Crystal "
    "Deep Dune Eagle East Elm Ember Fair Fern Fire Frost Glen Gold Granite Green Grey High Holly Iron Ivy Lake "
    "Lark Laurel Maple Marsh Meadow Mill Mist Moon Moss North Oak Ocean Pine Quarry Rain Raven Red Ridge River "
    "Rock Rose Sage Salt Sand Shadow Silver Sky Snow South Spring Star Steel Stone Storm Summer Sun Swift Thorn "
    "Timber True West White Wild Willow Wind Winter Wolf"
).split()
TAILS = (
    "bank beam bell bend bridge brook burn crest croft dale eagle field fire ford forge gate glen grove hall "
    "harbor haven hill hollow hurst land light line mark mere mill moor mount point pond port reach ridge rock "
    "run shire shore side spring stone vale view wall water way well wick wind wood worth"
).split()
STANDALONE = (
    "Acme Albion Altair Apex Arcadia Argent Atlas Aurora Avalon Axiom Beacon Boreal Calypso Canopy Cardinal "
    "Cascade Catalyst Centaur Cirrus Citadel Clarity Compass Condor Cornerstone Corvid Cypress Delta Dynamo "
    "Echo Eclipse Elevate Emerald Envoy Equinox Falcon Fathom Fjord Fulcrum Galileo Garnet Gemini Halcyon "
    "Helios Heron Horizon Indigo Insight Jasper Keystone Kinetic Lattice Legacy Lumina Lynx Magnolia Mariner "
    "Mercury Monarch Nimbus Nova Obsidian Olympus Onyx Orbit Osprey Pacific Paragon Pelican Pinnacle Polaris "
    "Prism Quantum Quartz Radiant Redwood Sapphire Sentinel Sequoia Sierra Solstice Sparrow Spectrum Summit "
    "Tandem Tempest Titan Topaz Trident Tundra Unity Vanguard Vector Velocity Vertex Vista Voyager Zenith Zephyr"
).split()
INDUSTRIES = (
    "Aerospace Analytics Apparel Architects Automotive Bakery Bank Biotech Brewing Capital Chemicals Clinic "
    "Construction Consulting Credit Dairy Data Dental Design Devices Diagnostics Distribution Education Electric "
    "Energy Engineering Farms Finance Fitness Foods Freight Furniture Games Genomics Health Hospitality Hotels "
    "Insurance Labs Legal Logistics Machinery Manufacturing Marine Media Medical Metals Mining Motors Networks "
    "Optics Packaging Pharma Plastics Power Publishing Realty Retail Robotics Schools Security Shipping Software "
    "Solar Steel Studios Systems Telecom Textiles Therapeutics Transport Travel Utilities Ventures Wellness Wines"
).split()
FORMS = ("Group", "Holdings", "Partners", "Inc", "Co", "LLC", "Ltd", "International", "Collective", "Cooperative")
KINDS_OF_DEAL = (
    "Expansion", "Renewal", "Pilot", "Platform", "Rollout", "Add-on", "Upgrade", "Migration", "Field Ops",
    "Integration", "Support Plan", "Licenses", "Security Review", "Data Warehouse", "Onboarding", "Seats",
    "Cloud Move", "Analytics Suite", "Training", "Enterprise Tier", "Phase 2", "Multi-year", "Upsell",
    "Consolidation", "Replacement", "POS Refresh", "Core Add-on", "District Pilot", "Proof of Concept", "API Access",
)
OWNERS = ("alice", "bob", "carol", "devi", "wes")
STAGES = ("prospecting", "qualification", "proposal", "negotiation", "closed_won", "closed_lost")
# The demo's own names stay unique, so "Kestrel" still means the two demo accounts.
RESERVED = {w for name, *_ in ACCOUNTS for w in words(name).split()}


def account_names(count: int, rng: random.Random) -> list[str]:
    """``count`` distinct company names, none using a word of the demo accounts."""
    names: dict[str, None] = {}
    firsts = [h + t for h in HEADS for t in TAILS if h.lower() != t and (h + t).lower() not in RESERVED]
    firsts += [s for s in STANDALONE if s.lower() not in RESERVED]
    while len(names) < count:
        name = f"{rng.choice(firsts)} {rng.choice(INDUSTRIES)}"
        if rng.random() < 0.3:
            name += f" {rng.choice(FORMS)}"
        names.setdefault(name)
    return list(names)


def deal_name(account: str, rng: random.Random) -> str:
    parts = account.split()
    short = " ".join(parts[:2]) if rng.random() < 0.35 else parts[0]
    name = f"{short} {rng.choice(KINDS_OF_DEAL)}"
    return f"{name} {rng.randint(2025, 2029)}" if rng.random() < 0.2 else name


def _row(table: Table, record_id: str, values: dict[str, Any]) -> tuple[Any, ...]:
    return (record_id, *(values.get(c) for c in table.columns), table.words_of(values))


def build(path: Path, deals: int) -> None:
    """A CRM file with ``deals`` deals (the eight demo ones among them) and a tenth as many accounts,
    written with the CRM's own schema, so its triggers fill the word index as they would in use."""
    rng = random.Random(20261125)
    path.unlink(missing_ok=True)
    conn = open_database(path, Crm.schema())
    conn.execute("PRAGMA cache_size = -1000000")  # 1 GB: the word index grows in word order, not in insert order
    with closing(conn), transaction(conn):
        Crm.populate(Tx(conn, "crm", {t.type: t for t in Crm.tables}, Directory([])), REFERENCE)
        names = account_names(max(deals // 10 - len(ACCOUNTS), 1), rng)
        accounts = [
            _row(ACCOUNT, name, {"name": name, "owner": rng.choice(OWNERS), "industry": name.split()[1].lower(),
                                 "region": rng.choice(("east", "west"))})
            for name in names
        ]
        columns = ", ".join(quote(c) for c in ("id", *ACCOUNT.columns, "words"))
        conn.executemany(f"INSERT INTO accounts ({columns}) VALUES ({', '.join('?' * (len(ACCOUNT.columns) + 2))})",
                         accounts)
        columns = ", ".join(quote(c) for c in ("id", *DEAL.columns, "words"))
        insert = f"INSERT INTO deals ({columns}) VALUES ({', '.join('?' * (len(DEAL.columns) + 2))})"

        def generated() -> Iterator[tuple[Any, ...]]:
            for number in range(1000, 1000 + deals - len(DEALS)):
                account = rng.choice(names)
                values = {
                    "name": deal_name(account, rng), "account": account, "amount": rng.randint(5, 500) * 1000,
                    "stage": rng.choice(STAGES), "owner": rng.choice(OWNERS),
                    "close_date": (REFERENCE + timedelta(days=rng.randint(-90, 365))).isoformat(),
                }
                yield _row(DEAL, f"D-{number}", values)

        conn.executemany(insert, generated())


def cached(deals: int, rebuild: bool) -> Path:
    """The CRM file for ``deals`` deals, built unless the temp folder has it for this schema."""
    key = hashlib.sha256(f"{GENERATOR}\n{Crm.schema()}".encode()).hexdigest()[:12]
    path = Path(tempfile.gettempdir()) / "sayso-bench-grounding" / f"crm-{deals}-{key}.db"
    if rebuild or not path.exists():
        started = time.perf_counter()
        print(f"building {path} ({deals:,} deals)...", file=sys.stderr, flush=True)
        build(path.with_suffix(".tmp"), deals)
        path.with_suffix(".tmp").rename(path)
        print(f"built in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    return path


def baseline_search(conn: sqlite3.Connection, table: Table, text: str, limit: int = 10) -> list[Record]:
    """``DemoSystem.search`` as it was before the word index: a copy of it, scans and all."""
    needle = text.strip()
    if not needle or limit < 1:
        return []
    tx = Tx(conn, "crm", {t.type: t for t in Crm.tables}, Directory([]))
    by_name = f" OR lower({quote(table.title)}) = lower(:text)" if table.title else ""
    # "+id": the old schema had no index on id regardless of case, so this OR scanned the table;
    # the unary plus keeps SQLite from using the new one here.
    exact = tx.records(table, f"+id = :text COLLATE NOCASE{by_name}", {"text": needle}, limit=limit)
    if exact:
        return [r.model_copy(update={"score": 100.0}) for r in exact]
    noise = {"the", "a", "an", table.type.lower(), f"{table.type.lower()}s"}
    tokens = [token for token in words(needle).split() if token not in noise]
    if tokens:
        where = " AND ".join(f"words LIKE :w{i}" for i in range(len(tokens)))
        patterns = {f"w{i}": f"% {token}%" for i, token in enumerate(tokens)}
        found = tx.records(table, where, patterns, limit=limit)
        if found:
            return [r.model_copy(update={"score": 90.0}) for r in found]
    candidates = {r.id: r for r in tx.records(table)}
    names = {record_id: r.title.lower() for record_id, r in candidates.items()}
    hits = process.extract(needle.lower(), names, scorer=fuzz.WRatio, score_cutoff=85, limit=limit)
    return [candidates[found].model_copy(update={"score": round(score, 1)}) for _, score, found in hits]


def misspell(word: str, rng: random.Random) -> str:
    """``word`` with one letter past the second dropped, doubled or swapped with the next."""
    while True:
        i = rng.randrange(2, len(word) - 1)
        typo = rng.choice((word[:i] + word[i + 1:], word[:i] + word[i] + word[i:],
                           word[:i] + word[i + 1] + word[i] + word[i + 2:]))
        if typo != word:  # swapping "oo" changes nothing
            return typo


def queries(path: Path, deals: int) -> dict[str, list[str]]:
    """For each kind, POOL queries drawn from the file's deals (always the same for a file)."""
    rng = random.Random(7)
    pool: dict[str, list[str]] = {kind: [] for kind in KINDS}
    with closing(sqlite3.connect(path)) as conn:
        while min(len(found) for found in pool.values()) < POOL:
            number = rng.randrange(1000, 1000 + deals - len(DEALS))
            record_id, name = conn.execute("SELECT id, name FROM deals WHERE id = ?", (f"D-{number}",)).fetchone()
            first, second = name.split()[:2]
            pool["exact id"].append(record_id.lower())
            pool["exact name"].append(name)
            pool["one-word prefix"].append(first[: max(4, len(first) - 2)])
            pool["two-word prefix"].append(f"{first[: max(4, len(first) - 3)]} {second[:4]}")
            if len(first) >= 6:
                pool["misspelling"].append(f"{misspell(first, rng)} {second}")
            pool["no match"].append(f"{rng.choice(('Zorvex', 'Quillon', 'Yarrowby', 'Xantha'))} Blint")
            pool["common word"].append(rng.choice(KINDS_OF_DEAL).split()[0])  # thousands of deals each
    return {kind: found[:POOL] for kind, found in pool.items()}


def stats(samples: list[float]) -> dict[str, float] | None:
    """Median and p99 (nearest rank) in ms; None when nothing ran."""
    if not samples:
        return None
    ordered = sorted(samples)
    p99 = ordered[-(-len(ordered) * 99 // 100) - 1]
    return {"median_ms": statistics.median(ordered), "p99_ms": p99, "n": len(ordered)}


def timed(run: Callable[[str], R], pool: list[str], runs: int) -> tuple[list[float], list[R]]:
    """``run`` over ``runs`` queries of ``pool`` in turn: the ms each took, and what each returned."""
    samples, results = [], []
    for i in range(runs):
        query = pool[i % len(pool)]
        started = time.perf_counter()
        result = run(query)
        samples.append((time.perf_counter() - started) * 1000)
        results.append(result)
    return samples, results


def measure(ws: Workspace, path: Path, pool: dict[str, list[str]], runs: int, baseline_runs: int) -> dict[str, Any]:
    """Every kind of query through the new search, ``ground`` over it, the old search, ``ground`` over that."""
    crm = ws.connector("crm")
    action = ws.catalog.get("crm.update_deal")
    old = sqlite3.connect(path)
    old.row_factory = sqlite3.Row

    def find(record_type: str, text: str) -> list[Record]:  # as Pipeline._find
        return [r for c in ws.connectors_for(record_type) for r in c.search(record_type, text)]

    def find_old(record_type: str, text: str) -> list[Record]:
        return baseline_search(old, DEAL, text) if record_type == "Deal" else []

    def grounding(finder: Callable[[str, str], list[Record]]) -> Callable[[str], str]:
        def run(text: str) -> str:
            try:
                grounded = ground(action, {"deal": text, "stage": "negotiation"}, directory=ws.directory,
                                  find=finder)
            except UnknownRecord:
                return "none"
            return "question" if grounded.question else "one"

        return run

    def ranked(records: list[Record]) -> list[tuple[str, float | None]]:
        return [(r.id, r.score) for r in records]

    figures: dict[str, Any] = {}
    with closing(old):
        for kind, queries_of_kind in pool.items():
            print(f"timing {kind}...", file=sys.stderr, flush=True)
            timed(lambda q: crm.search("Deal", q), queries_of_kind, min(runs, 20))  # warm the page cache
            new, found = timed(lambda q: crm.search("Deal", q), queries_of_kind, runs)
            new_ground, outcomes = timed(grounding(find), queries_of_kind, runs)
            old_search, old_found = timed(lambda q: baseline_search(old, DEAL, q), queries_of_kind, baseline_runs)
            old_ground, _ = timed(grounding(find_old), queries_of_kind, baseline_runs)
            pairs = list(zip(found, old_found, strict=False))  # the old search ran the first queries only
            figures[kind] = {
                "example": queries_of_kind[0],
                "search": stats(new), "ground": stats(new_ground),
                "baseline_search": stats(old_search), "baseline_ground": stats(old_ground),
                "same": sum(ranked(a) == ranked(b) for a, b in pairs),
                "same_best": sum(ranked(a)[:1] == ranked(b)[:1] for a, b in pairs),
                "compared": len(pairs),
                "matches_median": statistics.median(len(r) for r in found),
                "grounded": {o: outcomes.count(o) for o in ("one", "question", "none") if o in outcomes},
            }
    return figures


def _cell(figures: dict[str, float] | None) -> str:
    return "-" if figures is None else f"{figures['median_ms']:.2f} / {figures['p99_ms']:.2f}"


def report(figures: dict[str, Any], args: argparse.Namespace) -> None:
    print(f"\n{args.records:,} deals; Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}; "
          f"{args.runs} runs per kind (old search: {args.baseline_runs})\n")
    head = ("query kind", "example", "search ms", "old search ms", "ground ms", "old ground ms", "same", "best",
            "ground gave")
    rows = [head, tuple("-" * len(h) for h in head)]
    for kind, f in figures.items():
        cells = [_cell(f[key]) for key in ("search", "baseline_search", "ground", "baseline_ground")]
        same, best = (f"{f['same']}/{f['compared']}", f"{f['same_best']}/{f['compared']}") if f["compared"] else "--"
        gave = ", ".join(f"{outcome} {n}" for outcome, n in f["grounded"].items())
        rows.append((kind, repr(f["example"]), *cells, same, best, gave))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    slowest = max(f["ground"]["median_ms"] for f in figures.values())
    print("\nms: median / p99 (nearest rank). same: the old and the new search found the same records with the"
          "\nsame scores in the same order (for the queries both ran); best: the same first record and score."
          "\nground gave: one record, a question listing several, or no match (UnknownRecord).")
    print(f"target, a median under 20 ms through ground for every kind: {'met' if slowest < 20 else 'NOT met'}"
          f" (slowest median {slowest:.2f} ms)")
    if args.json:
        print(json.dumps({"records": args.records, "runs": args.runs, "baseline_runs": args.baseline_runs,
                          "sqlite": sqlite3.sqlite_version, "kinds": figures}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000, help="deals in the CRM (default 1,000,000)")
    parser.add_argument("--runs", type=int, default=200, help="timed queries per kind and path (default 200)")
    parser.add_argument("--baseline-runs", type=int, default=3,
                        help="timed queries per kind and path for the old search (default 3; 0 skips it)")
    parser.add_argument("--json", action="store_true", help="end with one line of JSON")
    parser.add_argument("--rebuild", action="store_true", help="build the CRM file even when cached")
    args = parser.parse_args(argv)
    if args.records < len(DEALS) + 1 or args.runs < 1:
        parser.error(f"--records must be over {len(DEALS)} and --runs at least 1")

    path = cached(args.records, args.rebuild)
    pool = queries(path, args.records)
    with tempfile.TemporaryDirectory() as folder:
        root = Workspace.init(Path(folder) / "ws", demo=True, reference=REFERENCE)
        toml = (root / "sayso.toml").read_text().replace('path = "systems/crm.db"', f'path = "{path}"')
        (root / "sayso.toml").write_text(toml)
        ws = Workspace.load(root)
        try:
            figures = measure(ws, path, pool, args.runs, args.baseline_runs)
        finally:
            ws.close()
    report(figures, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
