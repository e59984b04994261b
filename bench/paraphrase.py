"""Paraphrase stability: does the interpretation stay the same when the same request is said in other words?

    python bench/paraphrase.py [--half test|dev|all] [--limit N] [--examples K] [--json]

Every user turn of ``evals/demo.jsonl`` (the test half by default: conversations whose id
hashes to "test", as ``sayso eval --half`` splits them) is rewritten by rules the team did
not tune on, and each rewrite is read with the same context as the original (``now`` in the
person's time zone, the demo directory, nothing pending, as ``bench/interpret.py`` reads
turns). A rewrite is stable when its interpretation has the same kind, the same actions
and the same arguments (free text, a message or a title, only needs to be there: a typo
inside it changes it rightly). Rules:

* ``polite``: "please ..." before a command;
* ``could_you``: a command as a polite question ("could you ...?");
* ``please_after``: "..., please" after a command;
* ``synonym``: one word for another of the same meaning ("show" / "display", "deal" /
  "opportunity", "create" / "make");
* ``typo``: two letters swapped in the longest plain word (never a name);
* ``order``: a date or time at the end moved to the front ("tomorrow at 9am, remind me ...").

Turns of fewer than three words (replies like "yes") are left out.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sayso
from sayso.catalog import Catalog
from sayso.demo.catalog import catalog as demo_catalog
from sayso.directory import Directory, Person
from sayso.evaluation import user_turns
from sayso.interpreter import Context, Interpretation, Interpreter
from sayso.interpreter.values import find_values

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "evals" / "demo.jsonl"
DIRECTORY_FILE = Path(sayso.__file__).resolve().parent / "demo" / "files" / "directory.yaml"

_QUESTION_START = re.compile(r"^\s*(?:who|what|what's|whats|which|when|where|why|how|is|are|do|does|did|can|could|"
                             r"would|will|any|anything|has|have)\b", re.I)
_POLITE_START = re.compile(r"^\s*(?:please|pls|can you|could you|would you|kindly)\b", re.I)
SYNONYMS = {
    "show": "display", "display": "show", "list": "show", "find": "look up", "create": "make", "make": "create",
    "delete": "remove", "remove": "delete", "schedule": "set up", "deal": "opportunity", "deals": "opportunities",
    "ticket": "issue", "tickets": "issues", "meeting": "call", "message": "note", "tell": "inform",
    "move": "change", "bump": "raise", "pull": "bring", "email": "mail",
}
_SYNONYM = re.compile(r"\b(" + "|".join(sorted(SYNONYMS, key=len, reverse=True)) + r")\b")


@dataclass(frozen=True)
class Turn:
    case: str
    text: str
    person: Person
    context: Context


def _command(text: str) -> bool:
    return not _QUESTION_START.match(text) and not _POLITE_START.match(text) and not text.rstrip().endswith("?")


def polite(text: str) -> str | None:
    return f"please {text[:1].lower()}{text[1:]}" if _command(text) else None


def could_you(text: str) -> str | None:
    return f"could you {text[:1].lower()}{text[1:].rstrip('.!')}?" if _command(text) else None


def please_after(text: str) -> str | None:
    return f"{text.rstrip('.!')}, please" if _command(text) else None


def synonym(text: str) -> str | None:
    found = _SYNONYM.search(text)  # lowercase words only: "Meeting" in a name stays
    if found is None:
        return None
    return text[:found.start()] + SYNONYMS[found.group(1)] + text[found.end():]


def typo(text: str) -> str | None:
    quoted = [(m.start(), m.end()) for m in re.finditer(r"[\"“'‘][^\"”'’]+[\"”'’]", text)]
    words = [m for m in re.finditer(r"\b[a-z]{6,}\b", text) if not any(a <= m.start() < b for a, b in quoted)]
    if not words:
        return None
    word = max(words, key=lambda m: (len(m.group()), -m.start()))
    w = word.group()
    middle = len(w) // 2
    swapped = w[:middle - 1] + w[middle] + w[middle - 1] + w[middle + 1:]
    return None if swapped == w else text[:word.start()] + swapped + text[word.end():]


def order(text: str, context: Context) -> str | None:
    core = text.rstrip(" .!?")
    spans = [s for s in find_values(core, context.now) if s.kind in ("date", "datetime", "time")]
    if not spans or spans[-1].end != len(core):
        return None
    span = spans[-1]
    start = span.start
    before = re.search(r"\b(?:on|at|by|for)\s+$", core[:start])
    if before:
        start = before.start()
    rest = core[:start].rstrip(" ,")
    if len(rest.split()) < 2:
        return None
    return f"{core[start:]}, {rest[:1].lower()}{rest[1:]}{text[len(core):]}"


RULES: dict[str, Callable[[str, Context], str | None]] = {
    "polite": lambda t, _: polite(t),
    "could_you": lambda t, _: could_you(t),
    "please_after": lambda t, _: please_after(t),
    "synonym": lambda t, _: synonym(t),
    "typo": lambda t, _: typo(t),
    "order": order,
}


def load_turns(path: Path = CASES, half: str = "test") -> list[Turn]:
    """The user turns of the conversations of ``half`` ("all" for every one), each read as a first turn."""
    directory = Directory.load(DIRECTORY_FILE)
    return [Turn(case.id, turn.say, person, Context(now=now, directory=directory))
            for case, turn, person, now in user_turns(path, directory, half=half) if len(turn.say.split()) >= 3]


def signature(found: Interpretation, catalog: Catalog) -> tuple[Any, ...]:
    """What must stay the same: the kind, each step's action and arguments. Free text (a message, a title) is
    the person's own words, which a typo or a synonym inside it changes: only that it is there must stay."""
    steps = []
    for step in found.steps:
        texts = {p.name for p in params_of(catalog.get(step.action))} if step.action in catalog else set()
        args = {k: ("<text>" if k in texts else v) for k, v in step.args.items()}
        steps.append((step.action, json.dumps(args, sort_keys=True, default=str)))
    return found.kind, tuple(steps)


def params_of(action: Any) -> list[Any]:
    from sayso.interpreter.offline.schema import params_of as params

    return [p for p in params(action) if p.kind == "text"]


@dataclass
class Report:
    tried: Counter[str] = field(default_factory=Counter)
    same: Counter[str] = field(default_factory=Counter)
    changed: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        rules = {name: {"n": self.tried[name], "same": self.same[name],
                        "stability": round(self.same[name] / self.tried[name], 4) if self.tried[name] else None}
                 for name in RULES}
        total, same = sum(self.tried.values()), sum(self.same.values())
        return {"paraphrases": total, "same": same, "stability": round(same / total, 4) if total else None,
                "rules": rules}


def run(interpreter: Interpreter, turns: Iterable[Turn], catalog: Catalog = demo_catalog,
        rules: Sequence[str] = tuple(RULES)) -> Report:
    """Every rule on every turn it applies to, each paraphrase compared with the original's interpretation."""
    report = Report()
    for turn in turns:
        original = signature(interpreter.interpret(turn.text, turn.context, catalog, turn.person), catalog)
        for name in rules:
            said = RULES[name](turn.text, turn.context)
            if said is None or said == turn.text:
                continue
            again = signature(interpreter.interpret(said, turn.context, catalog, turn.person), catalog)
            report.tried[name] += 1
            if again == original:
                report.same[name] += 1
            else:
                report.changed.append({"rule": name, "say": turn.text, "paraphrase": said,
                                       "before": original, "after": again})
    return report


def human(report: Report, examples: int) -> str:
    figures = report.as_dict()
    lines = [f"paraphrase stability: {figures['same']}/{figures['paraphrases']} ({figures['stability']:.1%}) "
             "interpretations unchanged"]
    for name, fig in figures["rules"].items():
        share = f"{fig['stability']:.1%}" if fig["stability"] is not None else "-"
        lines.append(f"  {name:<13} {fig['same']:>4}/{fig['n']:<4} {share}")
    for change in report.changed[:examples]:
        lines.append(f"  [{change['rule']}] {change['say']!r} -> {change['paraphrase']!r}")
        lines.append(f"      before {change['before']}")
        lines.append(f"      after  {change['after']}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--half", choices=("test", "dev", "all"), default="test",
                        help="which conversations of evals/demo.jsonl (default: the test half)")
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="the first N turns only")
    parser.add_argument("--examples", type=int, default=10, metavar="K", help="print K changed interpretations")
    parser.add_argument("--json", action="store_true", help="end with one line of JSON")
    args = parser.parse_args(argv)
    from sayso.interpreter.offline import OfflineInterpreter

    turns = load_turns(half=args.half)[:args.limit]
    report = run(OfflineInterpreter(), turns)
    print(human(report, args.examples))
    if args.json:
        print(json.dumps(report.as_dict() | {"half": args.half, "turns": len(turns)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
