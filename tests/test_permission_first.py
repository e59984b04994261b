"""Permission before questions: when no value of the missing arguments could make a request allowed (no permit
for the action can apply to the person's role), the turn is denied with the rule before any question about
them, whichever interpreter proposed it; people whose role may do it are still asked."""

from __future__ import annotations

from pathlib import Path

import pytest

from sayso.catalog import Catalog
from sayso.conversation import Chat
from sayso.directory import Person
from sayso.interpreter import Context, Interpretation, ProposedStep

from .conftest import pipeline_for

ASKS = [  # each leaves the reason (or the amount) to ask for
    "issue a credit note to Brightwater Dental for 200 dollars",
    "please issue a credit note of $150 to Brightwater Dental",
    "can you credit Brightwater Dental 300 dollars?",
    "issue Brightwater Dental a credit note",
    "I need a credit note for Brightwater Dental, 80 USD",
]


@pytest.mark.parametrize("text", ASKS)
@pytest.mark.parametrize("user", ["devi", "alice", "sam"])
def test_no_question_when_no_answer_could_allow_it(sqlite_root: Path, text: str, user: str) -> None:
    chat = Chat(pipeline_for(sqlite_root, user))
    result = chat.say(user, text)
    assert result.status.value != "needs_clarification", result.reply
    if result.status.value == "denied":
        assert result.rule and "fiona" in result.reply


@pytest.mark.parametrize("text", ASKS[:2])
def test_someone_allowed_is_still_asked(sqlite_root: Path, text: str) -> None:
    chat = Chat(pipeline_for(sqlite_root, "fiona"))
    assert chat.say("fiona", text).status.value == "needs_clarification"


class _AsksForReason:
    name, version = "asking-model", "1"

    def interpret(self, text: str, context: Context, catalog: Catalog, person: Person) -> Interpretation:
        return Interpretation(kind="question", trust="model", param="reason", question="What should the reason be?",
                              steps=[ProposedStep(action="billing.issue_credit_note",
                                                  args={"account": "Brightwater Dental", "amount": 200})])


def test_a_models_question_is_not_asked_of_someone_who_may_not(sqlite_root: Path) -> None:
    chat = Chat(pipeline_for(sqlite_root, "devi"), _AsksForReason())
    result = chat.say("devi", "issue a credit note to Brightwater Dental for 200 dollars")
    assert result.status.value == "denied" and result.rule == "default-deny"
    events = [e for e in chat.pipeline.audit.list(conversation=result.conversation) if e["event"] == "decision"]
    assert events and events[-1]["status"] == "deny"
