"""Unknown people and records become a question with the nearest readable matches, never an action on a guess:
a misspelt name is offered (bounded), an answer by number or name fills it and the plan goes on, a name near
nothing is said plainly with nothing changed, a customer contact an email can reach is asked for by address,
and a record the person may not read is never offered (it reads exactly like a missing one)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sayso.grounding import OFFERED
from sayso.turn import TurnResult

from .conftest import pipeline_for
from .test_instructions import chat_as, rows
from .test_privacy import OWN_TEAM, shown

PEOPLE = {"alice": "Alice", "bob": "Bob", "carol": "Carol", "devi": "Devi", "wes": "Wesley", "sam": "Sam",
          "fiona": "Fiona", "ines": "Ines"}
DEALS = {"D-101": "Brightwater", "D-102": "Kestrel Aerospace", "D-104": "Orchid"}


def _typos(word: str) -> list[str]:
    """Generated slips of one word: a letter dropped, two swapped, one doubled (the first letter kept)."""
    out = {word[:i] + word[i + 1:] for i in range(2, len(word))}
    out |= {word[:i] + word[i + 1] + word[i] + word[i + 2:] for i in range(1, len(word) - 1)}
    out |= {word[:i] + word[i] + word[i:] for i in range(1, len(word))}
    return sorted(w for w in out if w.lower() != word.lower() and len(w) >= 3)[::2]  # every other: enough


def _offered(result: TurnResult) -> list[str]:
    return [o.value for o in result.options or []]


@pytest.mark.parametrize(("person", "typo"), [(p, t) for p, name in PEOPLE.items() for t in _typos(name)])
def test_a_misspelt_person_is_found_or_offered_never_an_error(sqlite_root: Path, person: str, typo: str) -> None:
    result = pipeline_for(sqlite_root).do("alice", "crm.find_deals", {"owner": typo})
    if result.status.value == "answered":
        assert result.steps[0].args["owner"] == person  # found by the directory's own tolerance
        return
    assert result.status.value == "needs_clarification", (typo, result.reply)
    assert person in _offered(result) and len(_offered(result)) <= OFFERED
    assert result.reply.startswith(f"I could not find a person called {typo!r}. Did you mean")


@pytest.mark.parametrize(("deal", "typo"), [(d, t) for d, name in DEALS.items() for t in _typos(name.split()[0])])
def test_a_misspelt_record_is_found_or_offered_never_an_error(sqlite_root: Path, deal: str, typo: str) -> None:
    before = rows(sqlite_root, "crm", "SELECT id, stage FROM deals ORDER BY id")
    result = pipeline_for(sqlite_root).do("alice", "crm.update_deal", {"deal": typo, "stage": "qualification"})
    if result.status.value != "needs_clarification":  # one record alone near: that one, never another
        assert result.status.value in ("executed", "denied") and result.steps[0].args["deal"] == deal, result.reply
        return
    assert deal in _offered(result) and len(_offered(result)) <= max(OFFERED, 4), (typo, result.reply)
    assert rows(sqlite_root, "crm", "SELECT id, stage FROM deals ORDER BY id") == before


def test_two_near_records_are_both_offered_and_none_picked(sqlite_root: Path) -> None:
    result = pipeline_for(sqlite_root).do("alice", "crm.get", {"record": "Orchard"})
    assert result.status.value == "needs_clarification"
    assert result.reply.startswith("I could not find a deal, account or contact called 'Orchard'. Did you mean")
    assert _offered(result) == ["D-104", "Orchid Pharma"]


@pytest.mark.parametrize(("action", "args", "code"), [
    ("crm.update_deal", {"deal": "Zebra", "stage": "qualification"}, "unknown_record"),
    ("crm.update_deal", {"deal": "Qwxyz Holdings", "stage": "qualification"}, "unknown_record"),
    ("crm.get", {"record": "Umbrella"}, "unknown_record"),
    ("crm.reassign_account", {"account": "Orchid Pharma", "new_owner": "Dave"}, "unknown_user"),
    ("crm.reassign_account", {"account": "Orchid Pharma", "new_owner": "Xavier Quinn"}, "unknown_user"),
    ("crm.update_deal", {"deal": "D-999", "stage": "qualification"}, "unknown_record"),  # ids are never typos
])
def test_a_name_near_nothing_is_said_plainly_and_nothing_changes(sqlite_root: Path, action: str,
                                                                   args: dict[str, Any], code: str) -> None:
    before = rows(sqlite_root, "crm", "SELECT id, stage, owner FROM deals ORDER BY id")
    result = pipeline_for(sqlite_root).do("alice", action, args)
    assert (result.status.value, result.error["code"] if result.error else None, result.options) == \
        ("error", code, None)
    assert rows(sqlite_root, "crm", "SELECT id, stage, owner FROM deals ORDER BY id") == before


@pytest.mark.parametrize(("said", "reply"), [
    ("close the Zebra deal", "I could not do that: no deal matches 'Zebra deal'. Nothing was changed."),
    ("ping zoe that the demo is ready", "I could not do that: no person matches 'zoe'. Nothing was changed."),
])
def test_in_a_chat_a_name_near_nothing_says_nothing_was_changed(sqlite_root: Path, said: str, reply: str) -> None:
    before = rows(sqlite_root, "crm", "SELECT id, stage FROM deals ORDER BY id")
    result = chat_as(sqlite_root, "alice").say("alice", said)
    assert (result.status.value, result.reply, result.options) == ("error", reply, None)
    assert rows(sqlite_root, "crm", "SELECT id, stage FROM deals ORDER BY id") == before
    assert rows(sqlite_root, "chat", "SELECT count(*) FROM messages") == [(0,)]


@pytest.mark.parametrize("answer", ["1", "Brightwater Expansion"])
def test_answering_with_a_number_or_a_name_fills_the_record_and_goes_on(sqlite_root: Path, answer: str) -> None:
    chat = chat_as(sqlite_root, "alice")
    asked = chat.say("alice", "move the Brightwood deal to negotiation")
    assert asked.status.value == "needs_clarification" and _offered(asked) == ["D-101"]
    done = chat.say("alice", answer, asked.conversation)
    assert done.status.value == "executed", done.reply
    assert rows(sqlite_root, "crm", "SELECT stage FROM deals WHERE id = 'D-101'") == [("negotiation",)]


def test_answering_a_person_question_fills_that_person(sqlite_root: Path) -> None:
    pipeline = pipeline_for(sqlite_root)
    asked = pipeline.do("alice", "crm.reassign_account", {"account": "Brightwater Dental", "new_owner": "carl"})
    assert asked.status.value == "needs_clarification" and _offered(asked) == ["carol"]
    assert asked.question == {"param": "new_owner", "step": 0, "about": "carl"}


def test_an_unknown_email_recipient_is_asked_for_by_address(sqlite_root: Path) -> None:
    chat = chat_as(sqlite_root, "alice")
    asked = chat.say("alice", "email Jane Doe the renewal terms")
    assert asked.status.value == "needs_clarification" and not asked.options
    assert "What is their email address?" in asked.reply
    assert rows(sqlite_root, "email", "SELECT count(*) FROM emails") == [(0,)]
    done = chat.say("alice", "jane@acme.example", asked.conversation)
    assert done.status.value == "executed", done.reply
    assert rows(sqlite_root, "email", "SELECT \"to\" FROM emails") == [('["jane@acme.example"]',)]


def test_a_misspelt_email_recipient_offers_people_and_the_address(sqlite_root: Path) -> None:
    asked = pipeline_for(sqlite_root).do("alice", "email.send", {"to": ["Bob Chan"], "subject": "s", "body": "b"})
    assert asked.status.value == "needs_clarification" and _offered(asked) == ["bob"]
    assert "or what is their email address?" in asked.reply


def test_a_customer_contact_in_a_meeting_is_a_question_then_the_answer_replaces_only_them(sqlite_root: Path) -> None:
    chat = chat_as(sqlite_root, "alice")
    asked = chat.say("alice", "schedule a meeting with Tom Becker tomorrow at 10 about the security review")
    assert asked.status.value == "needs_clarification", asked.reply
    assert asked.reply.startswith("C-203 Tom Becker (contact, Kestrel Aerospace) is a contact, not a person in the "
                                  "directory")
    assert rows(sqlite_root, "calendar", "SELECT count(*) FROM events") == [(0,)]
    done = chat.say("alice", "carol", asked.conversation)
    assert done.status.value == "executed", done.reply
    assert done.steps[0].args["attendees"] == ["carol"]


# --- privacy: what is offered is what the person may read -------------------------------------------------------


@pytest.fixture
def own_team(sqlite_root: Path) -> Path:
    (sqlite_root / "policies" / "test-own-team.cedar").write_text(OWN_TEAM)
    return sqlite_root


def test_a_hidden_record_is_never_offered_and_reads_like_a_missing_one(own_team: Path) -> None:
    seen = pipeline_for(own_team, "alice").do("alice", "crm.get", {"record": "Orchard"})
    assert _offered(seen) == ["D-104", "Orchid Pharma"]  # alice may read the west's records
    bob = pipeline_for(own_team, "bob")
    hidden = bob.do("bob", "crm.get", {"record": "Orchard"})  # near only to west records bob may not read
    missing = bob.do("bob", "crm.get", {"record": "Zqxvw"})
    assert shown(hidden) == shown(missing)[:1] + (missing.reply.replace("Zqxvw", "Orchard"),) + (
        {k: v.replace("Zqxvw", "Orchard") for k, v in (missing.error or {}).items()},) + shown(missing)[3:]
    assert hidden.status.value == "error"
    near = bob.do("bob", "crm.get", {"record": "Brightwood"})  # bob's own team's record is offered
    assert _offered(near) == ["D-101", "Brightwater Dental"]
