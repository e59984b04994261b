"""Interpretation speed of the offline interpreter: the demo catalog, and a 2,000-action catalog.

    python bench/interpret.py [--runs N] [--json]

Times ``OfflineInterpreter().interpret(text, context, catalog, person)`` over every user
turn of ``evals/demo.jsonl`` (each read as it would open a conversation: ``now`` in the
person's time zone, the demo directory, no focus and nothing pending), against:

* the Lumen Labs demo catalog (19 actions);
* the same 19 actions plus 1,981 generated ones (systems x verbs x objects, each with a
  description, examples and typed parameters: record markers, people, enums, dates, times,
  money), built as real ``Action``s with ``pydantic.create_model``. The generated systems
  are other departments' tools (HR, hosting, procurement...), so they share verbs and
  parameter names with the demo but not its records.

The demo and the large catalog take turns, turn by turn, so machine noise falls on both
alike. One untimed pass comes first: it warms the caches and gives the top action of each
turn in each catalog, so the report can say how often the large catalog keeps the demo
catalog's answer. The first call on a catalog builds its index; it is timed apart, and the
index build alone is timed too. Targets from the issue: a median under 10 ms per turn on
the demo catalog and under 30 ms on 2,000 actions. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import random
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, create_model

import sayso
from sayso.catalog import Action, Catalog, ResourceSpec, RiskRule, Tier
from sayso.demo.catalog import catalog as demo_catalog
from sayso.directory import Directory, Person
from sayso.evaluation import user_turns
from sayso.interpreter import Context, Interpretation
from sayso.interpreter.offline import OfflineInterpreter
from sayso.interpreter.offline.ranking import CatalogIndex

ROOT = Path(__file__).resolve().parent.parent
TURNS_FILE = ROOT / "evals" / "demo.jsonl"
DIRECTORY_FILE = Path(sayso.__file__).resolve().parent / "demo" / "files" / "directory.yaml"
BIG_SIZE = 2000
SEED = 20261125
# Targets from the issue: median milliseconds per turn.
TARGET_DEMO_MS = 10.0
TARGET_BIG_MS = 30.0


# --- the generated catalog ----------------------------------------------------------------------

# (system, what people call it, objects). None of the objects is one of the demo's records (deals,
# accounts, tickets, invoices...): a large catalog is other departments' tools next to them.
SYSTEMS: list[tuple[str, str, list[str]]] = [
    ("hr", "the HR system", ["employee", "leave request", "performance review", "job opening", "onboarding plan",
                             "org chart"]),
    ("payroll", "payroll", ["payslip", "bonus", "expense claim", "salary adjustment", "timesheet", "pay run"]),
    ("inventory", "inventory", ["product", "stock item", "warehouse bin", "purchase order", "supplier",
                                "stock count"]),
    ("shipping", "shipping", ["parcel", "delivery", "return label", "carrier pickup", "freight quote", "manifest"]),
    ("procurement", "procurement", ["vendor", "requisition", "supply contract", "quote request", "catalog item",
                                    "purchase approval"]),
    ("marketing", "the marketing platform", ["campaign", "newsletter", "landing page", "audience segment",
                                             "webinar", "coupon"]),
    ("hosting", "the hosting console", ["server", "database", "backup", "domain", "certificate", "load balancer"]),
    ("devops", "the delivery platform", ["pipeline", "build", "release", "incident", "alert rule",
                                         "feature flag"]),
    ("legal", "the legal workspace", ["nda", "policy document", "compliance check", "trademark", "legal hold",
                                      "matter"]),
    ("facilities", "facilities", ["room booking", "parking permit", "maintenance request", "visitor badge", "desk",
                                  "floor plan"]),
    ("it", "the IT service desk", ["laptop", "license", "access request", "password reset", "vpn profile",
                                   "device"]),
    ("finance", "the finance system", ["budget", "journal entry", "vendor payment", "purchase card", "tax filing",
                                       "ledger"]),
    ("analytics", "analytics", ["dashboard", "report", "metric", "data export", "forecast", "saved query"]),
    ("docs", "the document store", ["document", "folder", "template", "wiki page", "shared drive", "signature"]),
    ("learning", "the learning portal", ["course", "enrollment", "certification", "training session", "quiz",
                                         "learning path"]),
    ("travel", "travel booking", ["trip", "flight booking", "hotel booking", "travel request", "car rental",
                                  "visa application"]),
    ("events", "events", ["conference", "booth", "sponsorship", "registration", "speaker", "agenda"]),
    ("partners", "the partner portal", ["partner", "referral", "commission", "co-marketing plan", "partner tier",
                                        "reseller"]),
    ("surveys", "surveys", ["survey", "survey response", "feedback form", "nps score", "panel", "questionnaire"]),
    ("projects", "project planning", ["project", "milestone", "sprint", "roadmap", "risk log", "status report"]),
    ("assets", "asset tracking", ["vehicle", "equipment", "tool", "warranty", "maintenance schedule",
                                  "asset tag"]),
    ("security", "the security console", ["vulnerability", "audit finding", "access review", "api key",
                                          "firewall rule", "security exception"]),
    ("social", "social media", ["post", "scheduled post", "social profile", "mention", "hashtag", "ad set"]),
    ("knowledge", "the knowledge base", ["article", "faq", "glossary term", "runbook", "how-to guide",
                                         "release note"]),
    ("recruiting", "recruiting", ["candidate", "interview", "offer letter", "job posting", "scorecard",
                                  "talent pool"]),
    ("fleet", "fleet management", ["driver", "route", "fuel card", "inspection", "trip log", "depot"]),
    ("lab", "the lab system", ["sample", "experiment", "protocol", "instrument", "reagent", "lab notebook"]),
    ("compliance", "compliance", ["control", "evidence", "certification audit", "risk register",
                                  "policy attestation", "regulator filing"]),
    ("support_portal", "the customer portal", ["portal user", "knowledge widget", "chatbot flow", "canned answer",
                                               "satisfaction survey", "service level"]),
    ("billing_ops", "subscription operations", ["subscription", "price plan", "usage record", "discount code",
                                                "dunning rule", "tax rate"]),
]
STATUS_SETS: list[tuple[str, ...]] = [
    ("draft", "active", "paused", "archived"),
    ("requested", "approved", "rejected", "withdrawn"),
    ("planned", "in_progress", "done", "blocked"),
    ("open", "pending", "resolved", "escalated"),
    ("new", "scheduled", "completed", "cancelled"),
]
PRIORITIES = ("low", "normal", "high", "urgent")
FORMATS = ("csv", "xlsx", "pdf")
PEOPLE = ("maria", "tom", "li", "omar", "grace")


@dataclass
class Verb:
    """One kind of action, the same for every object: how it reads, its risk, and its parameters."""

    name: str
    kind: Literal["read", "write"]
    tier: Tier
    description: str  # {object}, {objects}, {system}
    examples: tuple[str, ...]  # also {prefix}, {status}, {person}
    params: tuple[str, ...]  # from PARAMS below
    required: tuple[str, ...] = ()


VERBS = [
    Verb("find", "read", Tier.NONE, "Find {objects} in {system} by status, owner or date.",
         ("show {objects} that are {status}", "find {objects} owned by {person}"),
         ("status", "owner", "created_after", "created_before")),
    Verb("get", "read", Tier.NONE, "Show one {object} from {system}.",
         ("show {prefix}-12", "open the {object} {prefix}-4"), ("record",), ("record",)),
    Verb("create", "write", Tier.LOW, "Create a new {object} in {system}.",
         ("create a {object} called spring kickoff", "new {object} for {person} due next Friday"),
         ("title", "owner", "due", "priority", "details"), ("title",)),
    Verb("update", "write", Tier.MEDIUM, "Change a {object}'s status, owner, priority or due date.",
         ("set {prefix}-7 to {status}", "change the owner of {prefix}-3 to {person}"),
         ("record", "status", "owner", "priority", "due"), ("record",)),
    Verb("delete", "write", Tier.CRITICAL, "Delete a {object} from {system} for good.",
         ("delete {prefix}-9", "remove the {object} {prefix}-21"), ("record",), ("record",)),
    Verb("approve", "write", Tier.HIGH, "Approve a pending {object}.",
         ("approve {prefix}-4", "sign off on {prefix}-15"), ("record", "comment"), ("record",)),
    Verb("cancel", "write", Tier.MEDIUM, "Cancel a {object} and say why.",
         ("cancel {prefix}-2 because plans changed",), ("record", "reason"), ("record",)),
    Verb("archive", "write", Tier.LOW, "Archive an old {object} so it no longer shows in lists.",
         ("archive {prefix}-5",), ("record",), ("record",)),
    Verb("assign", "write", Tier.MEDIUM, "Assign a {object} to a person in {system}.",
         ("assign {prefix}-8 to {person}", "hand {prefix}-11 over to {person}"),
         ("record", "assignee"), ("record", "assignee")),
    Verb("export", "read", Tier.NONE, "Export {objects} from {system} to a file.",
         ("export all {objects} as csv", "download {objects} created since March"),
         ("format", "created_after"), ("format",)),
    Verb("schedule", "write", Tier.LOW, "Schedule a {object} for a date and time.",
         ("schedule {prefix}-6 for Monday at 10",), ("record", "at", "duration"), ("record", "at")),
    Verb("price", "write", Tier.HIGH, "Set the cost of a {object} in dollars.",
         ("set the cost of {prefix}-1 to 5k", "price {prefix}-13 at $1,200"), ("record", "amount"),
         ("record", "amount")),
]


def plural(noun: str) -> str:
    head, _, last = noun.rpartition(" ")
    if last.endswith("y") and last[-2:-1] not in "aeiou":
        last = last[:-1] + "ies"
    elif last.endswith(("s", "sh", "ch", "x")):
        last += "es"
    else:
        last += "s"
    return f"{head} {last}".strip()


def _prefix(system: str, obj: str, taken: set[str]) -> str:
    """An id prefix like HRLR for the HR system's leave requests, unique in the catalog."""
    base = (system.replace("_", "")[:3] + "".join(w[0] for w in obj.replace("-", " ").split())).upper()
    prefix, n = base, 2
    while prefix in taken or prefix in ("D", "SUP", "SALES", "FIN"):
        prefix, n = f"{base}{chr(ord('A') + n)}", n + 1
    taken.add(prefix)
    return prefix


def _field(param: str, required: bool, obj: str, record_type: str, prefix: str, statuses: tuple[str, ...]) -> Any:
    """(annotation, FieldInfo) of one generated parameter."""
    specs: dict[str, tuple[Any, str, dict[str, Any] | None]] = {
        "record": (str, f"A {obj} by id ({prefix}-12) or name", {"x-record": record_type}),
        "status": (Literal[statuses], f"Status of the {obj}", None),
        "owner": (str, f"Who owns the {obj}", {"x-person": True}),
        "assignee": (str, f"Who takes the {obj} over", {"x-person": True}),
        "created_after": (date, "Created on or after", None),
        "created_before": (date, "Created on or before", None),
        "due": (date, "Due date", None),
        "at": (datetime, "When it takes place", None),
        "duration": (int, "Minutes", None),
        "priority": (Literal[PRIORITIES], "low, normal, high or urgent", None),
        "title": (str, f"Short title of the {obj}", None),
        "details": (str, "Longer description", None),
        "comment": (str, "A comment for the record", None),
        "reason": (str, "Why it is cancelled", None),
        "format": (Literal[FORMATS], "File format", None),
        "amount": (int, "Amount in USD", None),
    }
    annotation, description, extra = specs[param]
    if not required:
        annotation = annotation | None
    return annotation, Field(... if required else None, description=description, json_schema_extra=extra)


def synthetic_actions(count: int, seed: int = SEED) -> list[Action]:
    """``count`` generated actions, always the same ones for the same count and seed."""
    combos = [(s, title, obj, verb) for s, title, objects in SYSTEMS for obj in objects for verb in VERBS]
    if count > len(combos):
        raise ValueError(f"at most {len(combos)} synthetic actions (asked for {count})")
    chosen = sorted(random.Random(seed).sample(range(len(combos)), count))
    taken: set[str] = set()
    prefixes = {(s, obj): _prefix(s, obj, taken) for s, _, objects in SYSTEMS for obj in objects}
    actions = []
    for n in chosen:
        system, title, obj, verb = combos[n]
        snake = obj.replace(" ", "_").replace("-", "_")
        name = f"{system}.{verb.name}_{snake if verb.name != 'find' else plural(obj).replace(' ', '_')}"
        record_type = "".join(w.capitalize() for w in obj.replace("-", " ").split())
        prefix = prefixes[(system, obj)]
        statuses = STATUS_SETS[hash_index(system, len(STATUS_SETS))]
        words = {"object": obj, "objects": plural(obj), "system": title, "prefix": prefix,
                 "status": statuses[1], "person": PEOPLE[n % len(PEOPLE)]}
        fields = {p: _field(p, p in verb.required, obj, record_type, prefix, statuses) for p in verb.params}
        model = create_model(f"Params_{name.replace('.', '_')}", __config__=ConfigDict(extra="forbid"), **fields)
        actions.append(Action(
            name=name,
            description=verb.description.format(**words),
            params=model,
            kind=verb.kind,
            risk=RiskRule(tier=verb.tier),
            connector=system,
            operation=f"{verb.name}_{snake}",
            resource=ResourceSpec(record_type, "record") if "record" in verb.params else ResourceSpec("System"),
            examples=[e.format(**words) for e in verb.examples],
            source="bench.interpret",
        ))
    return actions


def hash_index(text: str, size: int) -> int:
    """A stable small number from ``text`` (``hash`` of a str changes between runs)."""
    return sum(text.encode()) % size


def big_catalog(size: int = BIG_SIZE) -> Catalog:
    demo = list(demo_catalog)
    return Catalog([*demo, *synthetic_actions(size - len(demo))])


# --- the turns ----------------------------------------------------------------------------------


@dataclass
class Turn:
    text: str
    person: Person
    context: Context


def demo_turns(path: Path = TURNS_FILE) -> list[Turn]:
    """Every user turn of the demo conversations, each with the context a conversation's first turn gets."""
    directory = Directory.load(DIRECTORY_FILE)
    return [Turn(turn.say, person, Context(now=now, directory=directory))
            for _, turn, person, now in user_turns(path, directory)]


# --- measuring ----------------------------------------------------------------------------------


@dataclass
class Series:
    name: str
    actions: int
    target_ms: float
    times: list[float] = field(default_factory=list)
    first_call_ms: float = 0.0
    index_build_ms: float = 0.0
    tops: list[str | None] = field(default_factory=list)

    def stats(self) -> dict[str, Any]:
        ordered = sorted(self.times)
        rank = max(0, math.ceil(0.99 * len(ordered)) - 1)  # nearest-rank p99
        median = statistics.median(ordered) * 1e3
        return {
            "actions": self.actions,
            "turns": len(self.tops),
            "n": len(ordered),
            "median_ms": round(median, 3),
            "p99_ms": round(ordered[rank] * 1e3, 3),
            "mean_ms": round(statistics.fmean(ordered) * 1e3, 3),
            "max_ms": round(ordered[-1] * 1e3, 3),
            "target_ms": self.target_ms,
            "met": median < self.target_ms,
            "first_call_ms": round(self.first_call_ms, 1),
            "index_build_ms": round(self.index_build_ms, 1),
        }


def _top(found: Interpretation) -> str | None:
    return found.steps[0].action if found.steps else None


def _clock(fn: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def _builds(actions: list[Action], times: int = 3) -> float:
    """Median milliseconds of building the interpreter's index of ``actions`` from scratch."""
    return statistics.median(_clock(lambda: CatalogIndex(Catalog(actions)))[0] for _ in range(times)) * 1e3


def measure(runs: int, progress: bool = True) -> tuple[list[Series], float, float, list[Turn]]:
    interpreter = OfflineInterpreter()
    turns = demo_turns()
    # The process's very first call: imports and caches the interpreter loads on first use (dates...).
    cold_ms = _clock(lambda: interpreter.interpret(turns[0].text, turns[0].context, demo_catalog,
                                                   turns[0].person))[0] * 1e3
    generated, big = _clock(big_catalog)
    catalogs = [(Catalog(list(demo_catalog)), TARGET_DEMO_MS, "demo"), (big, TARGET_BIG_MS, f"{len(big):,} actions")]
    series = []
    for catalog, target, name in catalogs:
        # A fresh Catalog object has no index yet: its first call builds it.
        one = Series(name, len(catalog), target)
        one.first_call_ms = _clock(lambda c=catalog: interpreter.interpret(turns[0].text, turns[0].context, c,
                                                                           turns[0].person))[0] * 1e3
        one.index_build_ms = _builds(list(catalog))
        series.append(one)
    for one, (catalog, _, _) in zip(series, catalogs, strict=True):  # untimed pass: warm caches, top actions
        one.tops = [_top(interpreter.interpret(t.text, t.context, catalog, t.person)) for t in turns]
    for run in range(runs):
        if progress:
            print(f"run {run + 1}/{runs}...", file=sys.stderr, flush=True)
        for turn in turns:
            for one, (catalog, _, _) in zip(series, catalogs, strict=True):
                started = time.perf_counter()
                interpreter.interpret(turn.text, turn.context, catalog, turn.person)
                one.times.append(time.perf_counter() - started)
    return series, cold_ms, generated * 1e3, turns


def agreement(demo: Series, big: Series, turns: list[Turn]) -> dict[str, Any]:
    """How often the large catalog gives a turn the same top action as the demo catalog, and what else."""
    names = {a.name for a in demo_catalog}
    changed: dict[str, int] = {"to a generated action": 0, "to another demo action": 0, "to no action": 0,
                               "from no action": 0}
    examples = []
    for turn, small, large in zip(turns, demo.tops, big.tops, strict=True):
        if small == large:
            continue
        if small is None:
            changed["from no action"] += 1
        elif large is None:
            changed["to no action"] += 1
        elif large in names:
            changed["to another demo action"] += 1
        else:
            changed["to a generated action"] += 1
        examples.append({"say": turn.text, "demo": small, "big": large})
    same = len(turns) - len(examples)
    return {"same": same, "turns": len(turns), "fraction": round(same / len(turns), 4), "changed": changed,
            "examples": examples}


# --- reporting ----------------------------------------------------------------------------------


def _rows(rows: list[tuple[str, ...]]) -> Iterator[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        yield "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()


def report(series: list[Series], agreed: dict[str, Any], cold_ms: float, generated_ms: float, runs: int,
           show: int) -> dict[str, Any]:
    figures = {s.name: s.stats() for s in series}
    print(f"\noffline interpreter {OfflineInterpreter.version}; Python {platform.python_version()}; "
          f"{runs} timed runs over {agreed['turns']} demo turns\n")
    head = ("catalog", "actions", "turns", "median ms", "p99 ms", "target", "met", "first call ms",
            "index build ms")
    rows = [head, tuple("-" * len(h) for h in head)]
    for name, f in figures.items():
        rows.append((name, f"{f['actions']:,}", str(f["turns"]), f"{f['median_ms']:.2f}", f"{f['p99_ms']:.2f}",
                     f"< {f['target_ms']:.0f} ms", "yes" if f["met"] else "NO", f"{f['first_call_ms']:.0f}",
                     f"{f['index_build_ms']:.0f}"))
    for line in _rows(rows):
        print(line)
    print("\nmedian and p99 (nearest rank) per turn after the first call; first call: the first interpret on a"
          "\nfresh catalog (index build + one turn); index build: CatalogIndex alone, median of 3."
          f"\nthe process's very first interpret (lazy imports, caches): {cold_ms:.0f} ms;"
          f" generating the large catalog: {generated_ms:.0f} ms")
    changed = ", ".join(f"{k} {v}" for k, v in agreed["changed"].items() if v)
    print(f"\ntop action as with the demo catalog alone: {agreed['same']}/{agreed['turns']} turns "
          f"({agreed['fraction']:.1%}){'; changed: ' + changed if changed else ''}")
    for example in agreed["examples"][:show]:
        print(f"  {example['say']!r}: {example['demo']} -> {example['big']}")
    return {"catalogs": figures, "agreement": agreed, "cold_first_call_ms": round(cold_ms, 1),
            "generate_ms": round(generated_ms, 1), "runs": runs, "python": platform.python_version(),
            "interpreter": f"offline {OfflineInterpreter.version}",
            "targets_met": all(f["met"] for f in figures.values())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="timed passes over the demo turns (default 10)")
    parser.add_argument("--json", action="store_true", help="end with one line of JSON")
    parser.add_argument("--changes", type=int, default=10, metavar="K",
                        help="list K turns whose top action the large catalog changes (default 10)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    series, cold_ms, generated_ms, turns = measure(args.runs)
    agreed = agreement(series[0], series[1], turns)
    figures = report(series, agreed, cold_ms, generated_ms, args.runs, args.changes)
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
