"""bench/paraphrase.py: the rules that say a request in other words, and the stability it reports."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from sayso.catalog import Catalog
from sayso.directory import Person
from sayso.interpreter import Context, Interpretation, ProposedStep
from sayso.interpreter.offline import OfflineInterpreter

SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "paraphrase.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_paraphrase", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


bench = _load()


def test_the_rules_rewrite_commands_and_leave_names_quotes_and_questions_alone() -> None:
    turn = bench.load_turns(half="all")[0]
    assert bench.polite("move the Brightwater one to negotiation") == "please move the Brightwater one to negotiation"
    assert bench.polite("what's in negotiation?") is None and bench.could_you("please close it") is None
    assert bench.could_you("close the Kestrel deal") == "could you close the Kestrel deal?"
    assert bench.please_after("close the Kestrel deal.") == "close the Kestrel deal, please"
    assert bench.synonym("show my deals") == "display my deals" and bench.synonym("Show Meeting") is None
    assert bench.typo("escalate 'Brightwater negotiation' to Carolina") == \
        "esclaate 'Brightwater negotiation' to Carolina"
    assert bench.typo("ping Carolina") is None
    assert bench.order("remind me to call Grace tomorrow at 9am", turn.context) == \
        "tomorrow at 9am, remind me to call Grace"
    assert bench.order("remind me tomorrow to call Grace", turn.context) is None


def test_only_the_test_half_is_read_by_default_and_short_replies_are_left_out() -> None:
    from sayso.evaluation import half_of

    turns = bench.load_turns()
    assert turns and all(half_of(t.case) == "test" and len(t.text.split()) >= 3 for t in turns)
    assert {t.case for t in bench.load_turns(half="dev")}.isdisjoint({t.case for t in turns})


class FirstWord:
    """An interpreter whose action is the message's first word: any rewrite of the start changes it."""

    name, version = "first-word", "1"

    def interpret(self, text: str, context: Context, catalog: Catalog, person: Person) -> Interpretation:
        return Interpretation(kind="plan", steps=[ProposedStep(action=text.split()[0].lower())])


def test_stability_counts_interpretations_that_stay_the_same() -> None:
    turns = bench.load_turns()[:30]
    report = bench.run(FirstWord(), turns, rules=["polite", "please_after"])
    figures = report.as_dict()
    tried = figures["rules"]["polite"]["n"]
    assert tried > 0 and figures["rules"]["polite"]["same"] == 0  # "please" is now the first word
    assert figures["rules"]["please_after"]["same"] == figures["rules"]["please_after"]["n"] > 0
    assert figures["paraphrases"] == tried + figures["rules"]["please_after"]["n"]
    assert len(report.changed) == tried and report.changed[0]["rule"] == "polite"


def test_the_offline_interpreter_on_a_bounded_sample() -> None:
    turns = bench.load_turns()[:40]
    figures = bench.run(OfflineInterpreter(), turns).as_dict()
    assert figures["paraphrases"] >= 80 and set(figures["rules"]) == set(bench.RULES)
    assert 0 < figures["same"] <= figures["paraphrases"]
    assert figures["rules"]["polite"]["stability"] >= 0.9  # "please" before a command changes nothing
