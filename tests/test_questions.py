"""A question proposes reads only, whatever interpreter read it: the offline one, a model proposing a write,
and ``sayso interpret``; polite commands still write; a proposal with no evidence asks. Also a seeded sample
of bench/questions.py's generated set (demo catalog, and WorkBench's when its data is here)."""

from __future__ import annotations

import importlib.util
import json
import os
import random
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest

from sayso.catalog import Catalog
from sayso.conversation import Chat
from sayso.demo.catalog import catalog as demo
from sayso.directory import Person
from sayso.interpreter import Context, Interpretation, ProposedStep

from .conftest import NOW, cli, pipeline_for
from .test_interpreter import interpret

ROOT = Path(__file__).resolve().parent.parent


def _bench() -> Any:
    spec = importlib.util.spec_from_file_location("bench_questions", ROOT / "bench" / "questions.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def writes(found: Interpretation, catalog: Catalog = demo) -> list[str]:
    return [s.action for s in found.steps if catalog.get(s.action).is_write]


@pytest.mark.parametrize(("user", "text", "read"), [
    ("alice", "is the Brightwater deal in negotiation yet?", "crm.get"),
    ("sam", "is SUP-17 still open?", "tickets.get"),
    ("sam", "did anyone assign SUP-17?", "tickets.get"),
    ("alice", "has D-101 been closed?", "crm.get"),
    ("alice", "tell me whether D-104 is in negotiation", "crm.get"),
    ("alice", "shoudl we move D-101 to negotiation?", "crm.get"),
])
def test_a_question_becomes_the_read_of_its_record(user: str, text: str, read: str) -> None:
    found = interpret(text, user)
    assert found.kind == "plan" and not writes(found)
    assert [s.action for s in found.steps] == [read]
    assert found.reason == "question" and found.notice and "changed nothing" in found.notice


@pytest.mark.parametrize(("user", "text", "action"), [
    ("alice", "can you move the Brightwater deal to negotiation?", "crm.update_deal"),
    ("sam", "could you please close SUP-17?", "tickets.update"),
    ("sam", "would you mind closing SUP-17?", "tickets.update"),
    ("alice", "move D-101 to negotiation", "crm.update_deal"),
])
def test_a_polite_command_still_writes(user: str, text: str, action: str) -> None:
    assert writes(interpret(text, user)) == [action]


def test_no_evidence_for_any_action_asks_instead_of_acting() -> None:
    found = interpret("what's the status of SUP-17?", "sam")
    assert found.kind != "plan" or all(s.confidence > 0 for s in found.steps)
    assert not writes(found)


class _WrongModel:
    """A model that proposes moving D-101 whatever it is asked."""

    name, version = "wrong-model", "1"

    def interpret(self, text: str, context: Context, catalog: Catalog, person: Person) -> Interpretation:
        return Interpretation(kind="plan", trust="model", steps=[ProposedStep(
            action="crm.update_deal", args={"deal": "D-101", "stage": "negotiation"}, confidence=0.9)])


def test_a_models_write_for_a_question_is_not_run(sqlite_root: Path) -> None:
    chat = Chat(pipeline_for(sqlite_root, "alice"), _WrongModel())
    asked = chat.say("alice", "is the Brightwater deal in negotiation yet?")
    assert asked.status.value == "answered" and asked.steps[0].action == "crm.get"
    with sqlite3.connect(sqlite_root / "systems" / "crm.db") as db:
        assert db.execute("select stage from deals where id = 'D-101'").fetchall() == [("proposal",)]
    event = next(e for e in chat.pipeline.audit.list(conversation=asked.conversation)
                 if e["event"] == "interpretation")
    assert event["detail"]["reason"] == "question" and "crm.update_deal" in event["detail"]["notice"]
    moved = chat.say("alice", "please move the Brightwater deal to negotiation")
    assert moved.status.value == "needs_confirmation"  # a write a model proposed asks first


def test_interpret_shows_the_steps_after_the_checks(sqlite_root: Path) -> None:
    done = cli("interpret", "--workspace", str(sqlite_root), "--user", "alice", "--now", NOW, "--json",
               "is the Brightwater deal in negotiation yet?")
    data = json.loads(done.stdout)
    assert data["kind"] == "plan" and [s["action"] for s in data["steps"]] == ["crm.get"]


def test_a_generated_sample_of_questions_never_writes(tmp_path: Path) -> None:
    bench = _bench()
    data = Path(os.environ.get("SAYSO_WORKBENCH_DATA", bench.DEFAULT_DATA))
    cases, catalogs = bench.generate(15, data, tmp_path)
    sample = random.Random(15).sample(cases, 150)
    failures: list[str] = []
    figures = bench.run(sample, catalogs, failures)
    assert figures.questions == 150
    assert figures.question_writes == 0 and figures.model_writes == 0, failures
    assert figures.commands >= 20 and figures.command_writes >= 0.9 * figures.commands, failures
