"""Prompt size per turn for a model interpreter: the demo catalog and a 2,000-action catalog.

For each demo turn (evals/demo.jsonl), the model interpreter builds its system
prompt and picks the most relevant actions as tools (the offline ranking, up to
``max_tools``, within a budget of about 4,000 tokens). This script measures the
prompt each turn would send, in estimated tokens (characters / 4, the usual
rule of thumb for English and JSON; a real tokenizer differs by a few percent),
and whether the demo action the offline interpreter picks is among the tools
offered (if it is not, the model cannot call it).

    python bench/prompt.py [--max-tools N] [--json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sayso.catalog import Catalog  # noqa: E402
from sayso.demo.catalog import catalog as demo_catalog  # noqa: E402
from sayso.directory import Person  # noqa: E402
from sayso.interpreter import Context  # noqa: E402
from sayso.interpreter.llm import PROMPT_BUDGET, _system_prompt, estimate_tokens, tools_for  # noqa: E402
from sayso.interpreter.llm.backend import api_name  # noqa: E402
from sayso.interpreter.offline import OfflineInterpreter  # noqa: E402


def _load_interpret_bench() -> Any:
    spec = importlib.util.spec_from_file_location("bench_interpret", ROOT / "bench" / "interpret.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_interpret"] = module
    spec.loader.exec_module(module)
    return module


def measure(catalog: Catalog, texts: list[str], max_tools: int) -> dict[str, Any]:
    person = Person(id="alice", name="Alice Moreno", role="account_executive", team="east",
                    timezone="America/New_York")
    context = Context(now=datetime(2026, 11, 25, 9, 0, tzinfo=ZoneInfo("America/New_York")))
    offline = OfflineInterpreter()
    sizes: list[int] = []
    counts: list[int] = []
    offered = 0
    wanted = 0
    for text in texts:
        system = _system_prompt(person, context, catalog)
        tools = tools_for(text, catalog, max_tools=max_tools, system=system)
        size = estimate_tokens(system) + sum(estimate_tokens(json.dumps(
            {"name": t.name, "description": t.description, "parameters": t.parameters})) for t in tools)
        size += estimate_tokens(text)
        sizes.append(size)
        counts.append(len(tools))
        found = offline.interpret(text, context, demo_catalog, person)
        if found.steps:
            wanted += 1
            offered += api_name(found.steps[0].action) in {t.name for t in tools}
    ordered = sorted(sizes)
    return {"actions": len(catalog), "turns": len(texts), "median_tokens": statistics.median(sizes),
            "p99_tokens": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], "max_tokens": max(sizes),
            "median_tools": statistics.median(counts), "budget": PROMPT_BUDGET,
            "demo_action_offered": round(offered / wanted, 4) if wanted else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-tools", type=int, default=24)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    bench = _load_interpret_bench()
    texts = [t.text for t in bench.demo_turns()]
    rows = [("demo", measure(demo_catalog, texts, args.max_tools)),
            ("demo + generated", measure(bench.big_catalog(), texts, args.max_tools))]
    print(f"{'catalog':<18} {'actions':>7} {'turns':>5} {'median tok':>10} {'p99 tok':>8} {'max tok':>8} "
          f"{'tools':>5} {'demo action offered':>20}")
    for name, row in rows:
        print(f"{name:<18} {row['actions']:>7} {row['turns']:>5} {row['median_tokens']:>10.0f} {row['p99_tokens']:>8} "
              f"{row['max_tokens']:>8} {row['median_tools']:>5.0f} {row['demo_action_offered']:>20.1%}")
    if args.json:
        print(json.dumps({name: row for name, row in rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
