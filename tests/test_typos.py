"""Typo-tolerant record names (sayso/grounding.py): a misspelt name finds the record the right spelling finds,
or a question when another record comes near; never another record, never one of two picked silently; only
records the person may read are ever considered. Typos are generated from the demo's deal names."""

from __future__ import annotations

from pathlib import Path

import pytest

from sayso.conversation import Chat
from sayso.demo.catalog import catalog
from sayso.grounding import ground

from .conftest import pipeline_for

DEALS = {"Brightwater": "D-101", "Orchid": "D-104", "Tallgrass": "D-105", "Meridian": "D-106", "Cobalt": "D-107",
         "Juniper": "D-108"}


def _typos(word: str) -> list[str]:
    """One slip each: an interior letter dropped, two neighbours swapped, a letter doubled."""
    w = word.lower()
    out = {w[:i] + w[i + 1:] for i in range(1, len(w) - 1)}
    out |= {w[:i] + w[i + 1] + w[i] + w[i + 2:] for i in range(1, len(w) - 2)}
    out |= {w[:i] + w[i] + w[i:] for i in range(1, len(w))}
    return sorted(out - {w})


CASES = [(typo, deal) for name, deal in DEALS.items() for typo in _typos(name)]


def test_generated_typos_find_the_record_or_ask_never_another(sqlite_root: Path) -> None:
    pipeline = pipeline_for(sqlite_root, "devi")
    find = pipeline.reader(pipeline.ws.directory.get("devi")).find
    action = catalog.get("crm.update_deal")
    found, asked = 0, 0
    assert len(CASES) > 90
    for typo, deal in CASES:
        grounded = ground(action, {"deal": f"the {typo} deal", "stage": "proposal"}, directory=pipeline.ws.directory,
                          find=find)
        if grounded.question is not None:
            asked += 1
            assert deal in [o.value for o in grounded.question.options], typo
        else:
            assert grounded.args["deal"] == deal, typo
            found += 1
    assert found >= 0.8 * len(CASES), (found, asked)


def test_a_typo_near_two_records_is_a_question(sqlite_root: Path) -> None:
    pipeline = pipeline_for(sqlite_root, "devi")
    find = pipeline.reader(pipeline.ws.directory.get("devi")).find
    grounded = ground(catalog.get("crm.update_deal"), {"deal": "the kestrl deal", "stage": "proposal"},
                      directory=pipeline.ws.directory, find=find)
    assert grounded.question is not None
    assert {o.value for o in grounded.question.options} == {"D-102", "D-103"}


@pytest.mark.parametrize("text", ["moev the orchd deal to porposal", "move the orchd deal to proposal",
                                  "please mvoe the orchid deal to porposal"])
def test_the_demo_request_with_typos_works(sqlite_root: Path, text: str) -> None:
    chat = Chat(pipeline_for(sqlite_root, "devi"))
    result = chat.say("devi", text)
    assert [(s.action, s.args.get("deal"), s.args.get("stage")) for s in result.steps] == [
        ("crm.update_deal", "D-104", "proposal")], result.reply
