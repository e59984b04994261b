"""Nobody learns through sayso what they may not read (safety property 9): searches, the options of a
question, the subject of a standing instruction, errors and read answers show only records the person may
read, and a hidden record reads exactly as a missing one. Reading a kind one may not read at all stays
denied, naming its rule."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sayso.errors import SaysoError
from sayso.pipeline import Pipeline
from sayso.turn import TurnResult

from .conftest import pipeline_for
from .test_instructions import book, chat_as, tick

# A workspace rule used below to hide records that everyone may read in the demo: an sdr sees only the
# deals and accounts of their own team (bob is east; D-103, D-104, D-107 and their accounts are west).
OWN_TEAM = """
@id("test-own-team")
@reason("sdrs see only the deals and accounts of their own team")
forbid (principal, action, resource)
when { principal.role == "sdr" && resource has owner_team && resource.owner_team != principal.team };
"""


def shown(result: TurnResult) -> tuple[str, str, Any, Any, list[str]]:
    """Everything a person sees of a turn, but its ids."""
    return (result.status.value, result.reply, result.error, result.rule, [o.label for o in result.options or []])


def say(root: Path, user: str, text: str) -> TurnResult:
    return chat_as(root, user).say(user, text)


@pytest.fixture
def own_team(sqlite_root: Path) -> Iterator[Path]:
    (sqlite_root / "policies" / "test-own-team.cedar").write_text(OWN_TEAM)
    yield sqlite_root


# --- standing instructions: the subject search ------------------------------------------------------------------


@pytest.mark.parametrize(("sent", "subject"), [
    (["message devi: acquisition budget is 5M", "message devi: the acquisition closes Friday"],
     "the acquisition message"),
    (["message devi: the merger budget is 5M"], "the merger message"),
    (["message devi: the merger budget is 5M"], "M-1"),
    (["email devi about the acquisition: budget is 5M", "email devi about the acquisition plan: see attached"],
     "the acquisition email"),
    (["email devi about the merger: budget is 5M"], "E-1"),
    (["remind me Friday at 9 about the merger call", "remind me Monday at 9 about the merger call with legal"],
     "the merger call"),
    (["remind me Friday at 9 about the merger call"], "EV-1"),
])
def test_watching_someone_elses_private_records_reads_as_if_none_existed(sqlite_root: Path, sent: list[str],
                                                                         subject: str) -> None:
    words = f"when {subject} changes, ping me"
    before = say(sqlite_root, "alice", words)  # nothing of the kind exists yet
    for text in sent:
        assert say(sqlite_root, "carol", text).status.value == "executed"
    after = say(sqlite_root, "alice", words)  # carol's, to devi or for herself: alice may not read them
    assert shown(after) == shown(before)
    assert after.status.value == "error" and after.reply == f"I could not find {subject!r}"
    assert book(sqlite_root).of() == []


def test_the_people_a_message_is_between_may_watch_it(sqlite_root: Path) -> None:
    say(sqlite_root, "carol", "message devi: the merger budget is 5M")
    for user in ("devi", "carol"):
        made = say(sqlite_root, user, "when M-1 changes, ping me")
        assert made.status.value == "executed", made.reply
        assert "M-1 the merger budget is 5M" in made.reply
    for user, text in (("devi", "message carol: the merger is off"), ("carol", "message wes: the merger is on")):
        assert say(sqlite_root, user, text).status.value == "executed"
    asked = say(sqlite_root, "devi", "when the merger message changes, ping me")
    assert asked.status.value == "error"
    assert "M-1" in asked.reply and "M-2" in asked.reply  # her own two: she may read both
    assert "M-3" not in asked.reply and "is on" not in asked.reply  # carol's to wes is not hers


def test_a_hidden_exact_name_does_not_stop_the_search_before_what_the_person_may_read(sqlite_root: Path) -> None:
    assert say(sqlite_root, "alice", "message bob: acquisition budget").status.value == "executed"  # M-1, hers
    words = "when the acquisition message changes, ping me"
    before = say(sqlite_root, "alice", words)
    assert say(sqlite_root, "carol", "message devi: acquisition").status.value == "executed"  # M-2: an exact name
    after = say(sqlite_root, "alice", words)
    assert after.status.value == before.status.value == "executed"
    assert re.sub(r"in_\w+", "", after.reply) == re.sub(r"in_\w+", "", before.reply)
    assert "When M-1 acquisition budget changes" in after.reply


def test_an_instruction_over_http_finds_nothing_hidden(sqlite_root: Path) -> None:
    serve = pytest.importorskip("tests.test_serve", reason="the HTTP service needs its extra")
    for api in serve.start(sqlite_root):
        with api.client("alice") as alice, api.client("carol") as carol, api.client("bob") as bob:
            conversation = alice.post("/v1/conversations").json()["id"]
            before = serve.say(alice, conversation, "when the acquisition message changes, ping me").json()
            talk = carol.post("/v1/conversations").json()["id"]
            for text in ("message devi: acquisition budget is 5M", "message devi: the acquisition closes Friday"):
                assert serve.say(carol, talk, text).json()["status"] == "executed"
            after = serve.say(alice, conversation, "when the acquisition message changes, ping me").json()
            asked = serve.say(bob, bob.post("/v1/conversations").json()["id"],
                              "when the acquisition message changes, ping me").json()
            for response in (after, asked):
                assert response["status"] == "error"
                assert {k: response[k] for k in ("reply", "error")} == {k: before[k] for k in ("reply", "error")}
                assert "5M" not in str(response) and "M-1" not in str(response)
            assert alice.get("/v1/instructions").json() == []


def test_a_watched_record_that_becomes_hidden_is_as_if_it_were_gone(sqlite_root: Path) -> None:
    made = say(sqlite_root, "bob", "when D-107 changes, ping me")
    assert made.status.value == "executed", made.reply
    (sqlite_root / "policies" / "test-own-team.cedar").write_text(OWN_TEAM)
    fired = tick(sqlite_root, "2026-11-25T15:00")["fired"]
    assert [(f["status"], f["reply"]) for f in fired] == [("suspended", "D-107 can no longer be found")]


# --- grounding, questions and answers ---------------------------------------------------------------------------


@pytest.mark.parametrize(("hidden", "missing"), [
    ("show me D-103", "show me D-999"),
    ("move D-103 to qualification", "move D-999 to qualification"),
    ("show me the Orchid Renewal deal", "show me the Oxbow Renewal deal"),
    ("log a note on Cobalt Retail Group: called them", "log a note on Cobalt Dental Group: called them"),
])
def test_a_hidden_record_reads_as_a_missing_one(own_team: Path, hidden: str, missing: str) -> None:
    not_there = shown(say(own_team, "bob", missing))
    there = shown(say(own_team, "bob", hidden))
    assert there[0] == "error" and there[2]["code"] == "unknown_record"
    wrong, right = _difference(missing, hidden)
    assert repr(there) == repr(not_there).replace(wrong, right)


def test_direct_actions_ground_only_what_the_person_may_read(own_team: Path) -> None:
    pipeline = pipeline_for(own_team, "bob")
    hidden = pipeline.do("bob", "crm.get", {"record": "D-103"})
    missing = pipeline.do("bob", "crm.get", {"record": "D-999"})
    assert (hidden.status, hidden.reply.replace("D-103", "D-999"), hidden.error["code"] if hidden.error else None) \
        == (missing.status, missing.reply, missing.error["code"] if missing.error else None)
    explained = _explain_error(pipeline, "bob", "crm.update_deal", {"deal": "D-107", "stage": "qualification"})
    assert explained == "no deal matches 'D-107'"


def test_options_of_a_question_never_list_hidden_records(own_team: Path) -> None:
    everyone = say(own_team, "alice", "show me Kestrel")
    assert everyone.status.value == "needs_clarification"
    assert {o.value for o in everyone.options or []} >= {"D-102", "D-103"}
    asked = say(own_team, "bob", "show me Kestrel")
    assert asked.status.value == "needs_clarification"
    values = {o.value for o in asked.options or []}
    assert values == {"D-102", "Kestrel Aerospace"}
    assert "Analytics" not in asked.reply and "devi" not in asked.reply
    one = say(own_team, "bob", "show me the Kestrel deal")  # alice's one only: no question at all
    assert one.status.value == "answered" and [r["id"] for r in one.steps[0].records] == ["D-102"]


def test_read_answers_list_only_what_the_person_may_read(own_team: Path) -> None:
    everyone = say(own_team, "alice", "show deals in qualification")
    assert {r["id"] for r in everyone.steps[0].records} == {"D-103", "D-107"}
    bob = say(own_team, "bob", "show deals in qualification")
    assert bob.status.value == "answered" and bob.steps[0].records == []
    assert "D-103" not in bob.reply and "Cobalt" not in bob.reply


def test_chat_history_and_confirmations_name_no_one_elses_messages(sqlite_root: Path) -> None:
    say(sqlite_root, "carol", "message devi: acquisition budget is 5M")
    for user in ("alice", "ines"):  # an admin too: a direct message is its sender's and its recipient's
        read = say(sqlite_root, user, "show the chat history")
        assert read.status.value == "answered"
        assert "acquisition" not in read.reply and all(r["id"] != "M-1" for r in read.steps[0].records)
    own = say(sqlite_root, "devi", "show the chat history")
    assert [r["id"] for r in own.steps[0].records] == ["M-1"]


def test_reading_a_kind_one_may_not_read_is_still_denied_naming_its_rule(sqlite_root: Path) -> None:
    denied = say(sqlite_root, "alice", "show the overdue invoices")
    assert denied.status.value == "denied" and denied.rule == "default-deny"
    assert "(rule default-deny)" in denied.reply and "INV-" not in denied.reply
    watched = say(sqlite_root, "alice", "if an invoice goes overdue, ping me")
    assert watched.status.value == "error" and "may not list Invoice records" in watched.reply
    allowed = say(sqlite_root, "carol", "show the overdue invoices")
    assert allowed.status.value == "answered"
    assert {r["id"] for r in allowed.steps[0].records} == {"INV-2041", "INV-2044"}


def _difference(a: str, b: str) -> tuple[str, str]:
    """The one word two sentences differ by."""
    pairs = [(x, y) for x, y in zip(a.split(), b.split(), strict=True) if x != y]
    assert len(pairs) == 1, pairs
    return pairs[0]


def _explain_error(pipeline: Pipeline, user: str, action: str, args: dict[str, Any]) -> str:
    try:
        pipeline.explain(user, action, args)
    except SaysoError as exc:
        return exc.message
    raise AssertionError("explain found a hidden record")
