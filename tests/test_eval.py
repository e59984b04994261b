"""The project's own conversations on the demo workspace, run as ``sayso eval`` runs them.

The set must stay at least 97% correct, and only the known limitations listed in
evals/README.md may fail: a new failure is a regression.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sayso.evaluation import compare, load_cases, run_cases
from sayso.turn import TurnResult, TurnStatus

from .leaks import Watch

CASES = Path(__file__).resolve().parent.parent / "evals" / "demo.jsonl"
KNOWN = {
    "writes-update-end-of-month",
    "writes-update-amount-commas",
    "writes-meeting-hour-la",
    "ref-contact-then-account",
    "no-action-sports",
}


def test_demo_conversations_are_understood() -> None:
    cases = load_cases(CASES)
    assert len(cases) >= 150
    watch = Watch()
    report = run_cases(cases, observe=watch)
    assert watch.replies >= report.turns and watch.found == []  # every reply is written for a person
    failed = {f.case for f in report.failures}
    assert report.accuracy >= 0.97, report.failures
    assert failed <= KNOWN, [f for f in report.failures if f.case not in KNOWN]
    categories = set(report.by_category)
    for needed in ("reads", "writes", "policy", "confirmation", "clarification", "references", "compound",
                   "no_action", "untrusted"):
        assert needed in categories


def test_every_demo_action_is_covered() -> None:
    from sayso.demo.catalog import catalog

    said = set()
    for case in load_cases(CASES):
        for turn in case.turns:
            if turn.expect.action:
                said.add(turn.expect.action)
            said.update(step.get("action") for step in turn.expect.steps or [])
    assert {a.name for a in catalog} <= said


def test_compare_names_what_differs() -> None:
    from sayso.evaluation import Expect

    result = TurnResult(status=TurnStatus.ANSWERED, reply="x")
    assert compare(Expect(status="answered"), result) == []
    problems = compare(Expect(status="executed", action="crm.update_deal"), result)
    assert any(p.startswith("status") for p in problems) and any(p.startswith("action") for p in problems)


def test_eval_command_reports_and_rejects_bad_files(tmp_path: Path) -> None:
    one = tmp_path / "one.jsonl"
    one.write_text(json.dumps({"id": "hello", "category": "no_action", "user": "alice",
                               "turns": [{"say": "thanks!", "expect": {"status": "no_action"}}]}) + "\n")
    done = subprocess.run([sys.executable, "-m", "sayso", "eval", str(one), "--json"], capture_output=True,
                          text=True, timeout=120)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert (report["conversations"], report["correct"]) == (1, 1)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"id": "x", "user": "alice", "turns": []}\n')
    done = subprocess.run([sys.executable, "-m", "sayso", "eval", str(broken), "--json"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2 and "broken.jsonl:1" in done.stdout


def test_eval_reports_the_dev_and_test_halves_apart(tmp_path: Path) -> None:
    from sayso.evaluation import half_of

    from .conftest import cli

    ids = [f"thanks-{n}" for n in range(8)]
    cases = tmp_path / "cases.jsonl"
    cases.write_text("".join(json.dumps({"id": i, "category": "no_action", "user": "alice", "turns": [
        {"say": "thanks!", "expect": {"status": "no_action"}}]}) + "\n" for i in ids))
    report = json.loads(cli("eval", str(cases), "--json").stdout.strip().splitlines()[-1])
    dev = [i for i in ids if half_of(i) == "dev"]
    assert report["halves"]["dev"]["total"] == len(dev) and report["halves"]["test"]["total"] == 8 - len(dev)
    assert 0 < len(dev) < 8 and half_of("thanks-0") == half_of("thanks-0")
    only = json.loads(cli("eval", str(cases), "--json", "--half", "test").stdout.strip().splitlines()[-1])
    assert only["conversations"] == 8 - len(dev) and set(only["halves"]) == {"test"}


def test_eval_sweeps_the_offline_interpreters_weights(tmp_path: Path) -> None:
    from .conftest import cli

    cases = tmp_path / "cases.jsonl"
    cases.write_text(json.dumps({"id": "deals", "category": "reads", "user": "alice", "now": "2026-11-25T09:00",
                                 "turns": [{"say": "list my deals",
                                            "expect": {"status": "answered", "action": "crm.find_deals"}}]}) + "\n")
    plain = json.loads(cli("eval", str(cases), "--json").stdout.strip().splitlines()[-1])
    assert plain["correct"] == 1
    # no words are strong enough for any action when the threshold is this high: the same request is not done
    swept = json.loads(cli("eval", str(cases), "--json", "--weights", "min_score=1000").stdout.strip().splitlines()[-1])
    assert swept["correct"] == 0
    wrong = cli("eval", str(cases), "--json", "--weights", "no_such_weight=1")
    assert wrong.exit_code == 3 and "no weight 'no_such_weight'" in wrong.stdout
