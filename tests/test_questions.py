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
from sayso.interpreter.questions import is_question

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


# Polite requests are requests: "can you / could you / would you ...?", "please ...?" may write, whatever the
# verb ("could you tell devi nice job?" sends a message). Generated: every courtesy around every command.
_COMMANDS = [
    ("fiona", "tell devi nice job", {"chat.send", "email.send"}),
    ("alice", "tell carol the contract is signed", {"chat.send", "email.send"}),
    ("alice", "let carol know the Brightwater deal moved", {"chat.send"}),
    ("sam", "message devi that SUP-17 is fixed", {"chat.send"}),
    ("sam", "remind me to call Orchid tomorrow", {"calendar.remind"}),
    ("sam", "close SUP-17", {"tickets.update"}),
    ("alice", "move D-101 to negotiation", {"crm.update_deal"}),
    ("alice", "move the Brightwater deal to negotiation", {"crm.update_deal"}),
    ("alice", "send devi an email saying the contract is signed", {"email.send"}),
    ("alice", "log a note on D-101 saying call back monday", {"crm.log_note"}),
]
_COURTESIES = ["can you {}?", "could you {}?", "would you {}?", "could you please {}?", "can you please {}",
               "please {}?", "hey, could you {}?", "Could you kindly {}?", "will you {}?", "can u {}",
               "could you just {}?", "ok so would you please {}?"]
# Asking sayso to inform the speaker is a question, whatever the courtesy around it.
_ASKING = ["can you tell me whether {r} is {v}?", "could you tell me if {r} is {v}?", "can you check if {r} is {v}?",
           "could you let me know whether {r} is {v}?", "can you say whether {r} is {v}?",
           "would you tell us if {r} is {v}?", "can you find out whether {r} is {v}?", "could you see if {r} is {v}?",
           "can you tell if {r} is {v}?", "could you show me whether {r} is {v}?", "could you tell me who owns {r}?"]
_STATES = [("alice", "D-101", "in negotiation"), ("alice", "the Brightwater deal", "in proposal"),
           ("sam", "SUP-17", "closed"), ("sam", "SUP-17", "assigned to devi"), ("alice", "D-104", "closed won")]


def test_generated_polite_requests_write() -> None:
    failures = []
    for (user, command, actions), courtesy in ((c, p) for c in _COMMANDS for p in _COURTESIES):
        text = courtesy.format(command)
        assert not is_question(text, demo), text
        found = interpret(text, user)
        if found.kind not in ("plan", "question") or not writes(found) or not set(writes(found)) <= actions:
            failures.append(f"{text!r}: {found.kind} {writes(found)}")
    assert failures == []


def test_generated_questions_of_sayso_never_write() -> None:
    failures = []
    for (user, record, value), asking in ((s, a) for s in _STATES for a in _ASKING):
        text = asking.format(r=record, v=value)
        found = interpret(text, user)
        if not is_question(text, demo) or writes(found):
            failures.append(f"{text!r}: {found.kind} {writes(found)}")
    assert failures == []


@pytest.mark.parametrize("text", [
    "could you check if D-101 is in proposal? If so, move it to negotiation",
    "can you check whether SUP-17 is open? if so, close it",
    "Is D-101 in proposal? If so, please move it to negotiation.",
    "can you see if Brightwater has any overdue tasks and if so remind me to chase them tomorrow",
])
def test_check_then_if_so_asks_and_never_writes(text: str) -> None:
    # Asked to check first, sayso answers and leaves the follow-up to the person (on WorkBench, running the
    # follow-up on the check's strength made unwanted changes on 7% of tasks: see bench/README.md); a follow-up
    # said as a request of its own ("... If so, please move it") is a condition, evaluated by the chat.
    found = interpret(text, "alice")
    assert not writes(found)
    assert found.kind == "plan" or found.reason == "condition"


def test_a_check_then_if_so_answers_and_says_the_follow_up_was_not_done(sqlite_root: Path) -> None:
    said = Chat(pipeline_for(sqlite_root, "alice")).say(
        "alice", "could you check if D-101 is in proposal? If so, move it to negotiation")
    assert said.status.value != "executed" and "changed nothing" in said.reply
    assert "ask me to move it to negotiation" in said.reply
    with sqlite3.connect(sqlite_root / "systems" / "crm.db") as db:
        assert db.execute("select stage from deals where id = 'D-101'").fetchall() == [("proposal",)]


def test_if_so_followed_by_a_question_still_asks() -> None:
    assert is_question("is D-101 in proposal? if so, who owns it?", demo)


@pytest.mark.parametrize(("user", "text", "system", "sql"), [
    ("fiona", "could you tell devi nice job?", "email", "select count(*) from emails"),
    ("alice", "can you let carol know the Brightwater deal moved?", "chat", "select count(*) from messages"),
    ("sam", "would you please close SUP-17?", "tickets", "select count(*) from tickets where status = 'closed'"),
])
def test_a_polite_request_is_carried_out_in_the_target_system(sqlite_root: Path, user: str, text: str, system: str,
                                                              sql: str) -> None:
    def count() -> int:
        with sqlite3.connect(sqlite_root / "systems" / f"{system}.db") as db:
            return int(db.execute(sql).fetchone()[0])

    before = count()
    done = Chat(pipeline_for(sqlite_root, user)).say(user, text)
    assert done.status.value in ("executed", "needs_confirmation"), done.reply
    if done.status.value == "executed":
        assert count() == before + 1
