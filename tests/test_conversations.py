"""The conversation set of corrections, references back and delegations (evals/conversations.jsonl), run in
process as ``sayso eval`` runs it: at least 95% right in each half, and no reply leaks an internal name."""

from __future__ import annotations

from pathlib import Path

from sayso.evaluation import half_of, halves, load_cases, run_cases

from .leaks import Watch, leaks

CASES = Path(__file__).resolve().parent.parent / "evals" / "conversations.jsonl"


def test_the_conversation_set_is_followed_and_written_for_people() -> None:
    cases = load_cases(CASES)
    assert len(cases) >= 100 and all(2 <= len(c.turns) <= 5 for c in cases)
    assert {c.category for c in cases} == {"correction", "delegation", "references"}
    assert {half_of(c.id) for c in cases} == {"dev", "test"}
    watch = Watch()
    report = run_cases(cases, observe=watch)
    assert watch.replies >= report.turns > 250
    assert watch.found == []
    for half, figures in halves(report, cases).items():
        assert figures["accuracy"] >= 0.95, (half, figures, [f.model_dump() for f in report.failures])


def test_leaks_are_found() -> None:
    assert leaks("crm.find_deals: 1 found") and leaks("Done: crm.update_deal.") and leaks("deleted=False")
    assert leaks("WARNING sayso [c_0123abcd] step failed") and leaks("{'id': 'D-101'}")
    assert leaks("Found 1 deal:\n- D-101 Brightwater Expansion: stage proposal") == []
    assert leaks("Changed the amount from 2,000 to 2,500.") == []
