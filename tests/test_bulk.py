"""Requests about many records (sayso/bulk.py): a read as the person, then one step per record, confirmed as
one plan when the change asks for it and run once; never a change to records the words do not name.

The company is examples/workbench's, built from a small sandbox written here (no WorkBench data needed), on
a clock pinned to 2023-11-30. Phrasings are generated; every one must change exactly the records meant or
nothing at all, and the core ones must change them. A model that proposes the wrong thing gets the same
treatment (the checks run in the pipeline, whichever interpreter proposed the plan).
"""

from __future__ import annotations

import csv
import importlib.util
import itertools
import sqlite3
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import pytest

from sayso import Workspace
from sayso.bulk import narrow
from sayso.catalog import Catalog
from sayso.clock import Clock
from sayso.connectors import Record
from sayso.conversation import Chat
from sayso.directory import Person
from sayso.interpreter import Context, Interpretation, ProposedStep
from sayso.pipeline import Pipeline

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2023, 11, 30, tzinfo=UTC)
PEOPLE = ("kofi.mensah", "yuki.tanaka", "raj.patel", "lena.schmidt")


def _build() -> ModuleType:
    spec = importlib.util.spec_from_file_location("workbench_build", ROOT / "examples" / "workbench" / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _write(path: Path, rows: list[dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _sandbox(data: Path) -> None:
    """Tasks of kofi and yuki in each list, some overdue; meetings on Friday Dec 1 and later; emails."""
    tasks, n = [], itertools.count(1)
    for who, (lst, due) in itertools.product(("kofi.mensah", "yuki.tanaka"), [
            ("In Progress", "2023-12-15"), ("In Progress", "2023-11-20"), ("Backlog", "2023-11-10"),
            ("Backlog", "2023-12-20"), ("In Review", "2023-12-05")]):
        tasks.append({"task_id": f"{next(n):08d}", "task_name": f"task {lst} {due} {who}", "list_name": lst,
                      "assigned_to_email": f"{who}@atlas.com", "due_date": due, "board": "Back end"})
    events = [{"event_id": f"{i:08d}", "event_name": name, "participant_email": f"{who}@atlas.com",
               "event_start": start, "duration": "30"} for i, (name, who, start) in enumerate([
                   ("sync up", "raj.patel", "2023-12-01 09:00:00"), ("review", "yuki.tanaka", "2023-12-01 14:00:00"),
                   ("planning", "raj.patel", "2023-12-01 16:00:00"), ("retro", "raj.patel", "2023-12-04 10:00:00"),
                   ("old sync", "raj.patel", "2023-11-20 10:00:00"), ("lunch", "kofi.mensah", "2023-12-05 12:00:00"),
               ], 1)]
    emails = [{"email_id": f"{i:08d}", "inbox/outbox": "inbox", "sender/recipient": f"{who}@atlas.com",
               "subject": f"note {i}", "sent_datetime": sent, "body": "hello"} for i, (who, sent) in enumerate([
                   ("yuki.tanaka", "2023-11-28 10:00:00"), ("yuki.tanaka", "2023-11-29 11:00:00"),
                   ("yuki.tanaka", "2023-11-01 09:00:00"), ("raj.patel", "2023-11-29 12:00:00")], 1)]
    customers = [{"customer_id": f"{i:08d}", "assigned_to_email": f"{who}@atlas.com", "customer_name": name,
                  "customer_email": "", "customer_phone": "", "last_contact_date": "2023-11-01",
                  "product_interest": product, "status": status, "follow_up_by": "", "notes": ""}
                 for i, (who, name, product, status) in enumerate([
                     ("lena.schmidt", "Avery Jones", "Hardware", "Lead"),
                     ("lena.schmidt", "Riley Smith", "Hardware", "Lead"),
                     ("lena.schmidt", "Quinn Lee", "Software", "Lead"),
                     ("raj.patel", "Jaden Martin", "Hardware", "Lead")], 1)]
    analytics = [{"date_of_visit": "2023-11-20", "visitor_id": "0001", "page_views": "3",
                  "session_duration_seconds": "20", "traffic_source": "direct", "user_engaged": "True"}]
    processed = data / "processed"
    _write(processed / "project_tasks.csv", tasks)
    _write(processed / "calendar_events.csv", events)
    _write(processed / "emails.csv", emails)
    _write(processed / "customer_relationship_manager_data.csv", customers)
    _write(processed / "analytics_data.csv", analytics)
    (data / "raw").mkdir(parents=True, exist_ok=True)
    (data / "raw" / "email_addresses.csv").write_text("".join(f"{p}@atlas.com\n" for p in PEOPLE))


@pytest.fixture
def atlas(tmp_path: Path) -> Iterator[Path]:
    data = tmp_path / "data"
    _sandbox(data)
    root = _build().build(data, tmp_path / "atlas")
    yield root


def _chat(root: Path, interpreter: object | None = None) -> tuple[Chat, Workspace]:
    ws = Workspace.load(root)
    return Chat(Pipeline(ws, Clock(NOW)), interpreter), ws  # type: ignore[arg-type]


def _rows(root: Path, sql: str) -> list[tuple[str, ...]]:
    db = sqlite3.connect(root / "systems" / "workbench.db")
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def _tasks(root: Path) -> dict[str, tuple[str, str]]:
    return {r[0]: (r[1], r[2]) for r in _rows(root, "select task_id, list_name, assigned_to_email from project_tasks")}


MOVE = [  # kofi's two in-progress tasks (00000001, 00000002) go to In Review; nothing else changes
    "move all of kofi's tasks that are in progress to in review",
    "Move all of kofi's tasks that are in progress to in review",
    "can you move all of kofi's tasks that are in progress to in review?",
    "please move all of kofi's in progress tasks to in review",
    "move every one of kofi's tasks that are in progress to in review",
    "kofi is done: move all of his tasks that are in progress to in review",
    "I need all of kofi's tasks that are in progress moved to in review",
    "could you move each of kofi's in-progress tasks to review",
    "move all tasks of kofi that are in progress to in review",
    "Move all kofi's tasks in progress to in review please",
]


@pytest.mark.parametrize("text", MOVE)
def test_many_records_change_exactly_or_not_at_all(atlas: Path, text: str) -> None:
    chat, ws = _chat(atlas)
    try:
        before = _tasks(atlas)
        result = chat.say("sam", text)
        after = _tasks(atlas)
        wanted = {**before, "00000001": ("In Review", before["00000001"][1]),
                  "00000002": ("In Review", before["00000002"][1])}
        assert after in (before, wanted), (text, result.reply)
    finally:
        ws.close()


def test_most_phrasings_of_a_bulk_move_are_done(atlas: Path) -> None:
    chat, ws = _chat(atlas)
    done = 0
    try:
        for text in MOVE:
            before = _tasks(atlas)
            chat.say("sam", text)
            after = _tasks(atlas)
            if after != before:
                done += 1
                for key in ("00000001", "00000002"):  # back, for the next phrasing
                    ws.connector("workbench").close()
                    db = sqlite3.connect(atlas / "systems" / "workbench.db")
                    db.execute("update project_tasks set list_name = 'In Progress' where task_id = ?", (key,))
                    db.commit()
                    db.close()
        assert done >= 6, done
    finally:
        ws.close()


@pytest.mark.parametrize(("text", "owner"), [
    ("reassign all of kofi's in progress tasks to yuki", "yuki.tanaka@atlas.com"),
    ("Reassign all of kofi's tasks that are in progress to yuki.", "yuki.tanaka@atlas.com"),
    ("I need to reassign all of kofi's in progress tasks to raj. Can you do that?", "raj.patel@atlas.com"),
])
def test_the_new_value_is_the_one_after_to_not_whose_records_they_are(atlas: Path, text: str, owner: str) -> None:
    chat, ws = _chat(atlas)
    try:
        result = chat.say("sam", text)
        assert result.status.value == "executed", result.reply
        tasks = _tasks(atlas)
        assert {k for k, v in tasks.items() if v[1] == owner and k <= "00000005"} == {"00000001", "00000002"}
        assert tasks["00000003"][1] == "kofi.mensah@atlas.com"  # kofi's backlog task stays his
    finally:
        ws.close()


def test_overdue_narrows_what_the_read_cannot(atlas: Path) -> None:
    chat, ws = _chat(atlas)
    try:
        result = chat.say("sam", "move all of yuki's overdue tasks in the backlog to in progress")
        assert result.status.value == "executed", result.reply
        assert [s.args["task"] for s in result.steps] == ["00000008"]  # due Nov 10; not the one due Dec 20
        assert _tasks(atlas)["00000009"][0] == "Backlog"
    finally:
        ws.close()


def test_a_bulk_delete_is_confirmed_as_one_plan_and_runs_each_step_once(atlas: Path) -> None:
    chat, ws = _chat(atlas)
    try:
        asked = chat.say("sam", "cancel my meetings on Friday after 11")
        assert asked.status.value == "needs_confirmation", asked.reply
        assert sorted(s.args["event"] for s in asked.steps) == ["00000002", "00000003"]
        assert len(_rows(atlas, "select * from calendar_events")) == 6  # nothing yet
        done = chat.say("sam", "yes", conversation=asked.conversation)
        assert done.status.value == "executed"
        again = chat.say("sam", "yes", conversation=asked.conversation)
        assert again.status.value == "no_action"
        left = {r[0] for r in _rows(atlas, "select event_id from calendar_events")}
        assert left == {"00000001", "00000004", "00000005", "00000006"}
    finally:
        ws.close()


def test_future_meetings_leave_the_past_alone(atlas: Path) -> None:
    chat, ws = _chat(atlas)
    try:
        asked = chat.say("sam", "Cancel all future meetings with raj")
        assert sorted(s.args["event"] for s in asked.steps) == ["00000001", "00000003", "00000004"], asked.reply
    finally:
        ws.close()


def test_a_range_looks_back_and_my_is_no_filter_where_no_record_names_me(atlas: Path) -> None:
    chat, ws = _chat(atlas)
    try:
        asked = chat.say("sam", "Delete all my emails from yuki from the last 5 days")
        assert sorted(s.args["email"] for s in asked.steps) == ["00000001", "00000002"], asked.reply
    finally:
        ws.close()


def test_nothing_matching_changes_nothing_and_says_so(atlas: Path) -> None:
    chat, ws = _chat(atlas)
    try:
        before = _tasks(atlas)
        result = chat.say("sam", "move all of raj's tasks that are in progress to in review")
        assert result.status.value == "no_action" and "nothing to change" in result.reply
        assert _tasks(atlas) == before
    finally:
        ws.close()


def test_a_question_about_many_records_only_reads(atlas: Path) -> None:
    chat, ws = _chat(atlas)
    try:
        before = _tasks(atlas)
        result = chat.say("sam", "are all of kofi's tasks that are in progress in review yet?")
        assert result.status.value in ("answered", "no_action")
        assert _tasks(atlas) == before
    finally:
        ws.close()


class _Proposes:
    """A model that proposes one fixed step, whatever it is asked (and the same over any catalog)."""

    name, version = "fixed-model", "1"

    def __init__(self, step: ProposedStep, read: ProposedStep | None = None) -> None:
        self.step, self.read = step, read

    def interpret(self, text: str, context: Context, catalog: Catalog, person: Person) -> Interpretation:
        for step in (self.step, self.read):
            if step is not None and step.action in catalog:
                return Interpretation(kind="plan", trust="model", steps=[step])
        return Interpretation(kind="none", reason="out_of_scope", trust="model")


def test_a_models_single_change_for_many_records_is_not_run_on_one(atlas: Path) -> None:
    model = _Proposes(ProposedStep(action="tasks.move", args={"task": "00000001", "list": "In Review"},
                                   mentions={"list": "in review"}, confidence=0.9))
    chat, ws = _chat(atlas, model)
    try:
        before = _tasks(atlas)
        result = chat.say("sam", "move all of kofi's tasks that are in progress to in review")
        assert _tasks(atlas) == before  # the model's read of the filter is not a read of tasks: nothing
        assert result.status.value == "no_action", result.reply
    finally:
        ws.close()


def test_a_models_write_whose_verb_the_request_does_not_say_is_not_run(atlas: Path) -> None:
    model = _Proposes(ProposedStep(action="tasks.delete", args={"task": "00000001"}, confidence=0.9))
    chat, ws = _chat(atlas, model)
    try:
        before = _tasks(atlas)
        result = chat.say("sam", "move all of kofi's tasks that are in progress to in review")
        assert result.status.value == "no_action" and _tasks(atlas) == before
    finally:
        ws.close()


def _record(start: str, due: str = "") -> Record:
    return Record(type="Event", id=start, attrs={"event_start": start, **({"due_date": due} if due else {})})


def test_narrow_by_day_time_range_future_and_overdue() -> None:
    records = [_record("2023-12-01 09:00:00"), _record("2023-12-01 14:00:00"), _record("2023-11-28 10:00:00"),
               _record("2023-12-04 10:00:00", "2023-11-01")]
    ids = lambda found: [r.id[:16] for r in found]  # noqa: E731
    assert ids(narrow(records, "my meetings on Friday after 11", NOW)) == ["2023-12-01 14:00"]
    assert ids(narrow(records, "my meetings on Friday before 11", NOW)) == ["2023-12-01 09:00"]
    assert ids(narrow(records, "from the last 5 days", NOW)) == ["2023-11-28 10:00"]
    assert ids(narrow(records, "all future meetings", NOW)) == ["2023-12-01 09:00", "2023-12-01 14:00",
                                                               "2023-12-04 10:00"]
    assert ids(narrow(records, "overdue ones", NOW)) == ["2023-12-04 10:00"]
    assert narrow(records, "all of them", NOW) == records


def _events(root: Path) -> dict[str, tuple[str, str]]:
    return {r[0]: (r[1], r[2]) for r in _rows(root, "select event_id, event_name, event_start from calendar_events")}


NEXT = [  # raj's next meeting is 00000001 (Dec 1, 09:00); 00000005 is past, 00000003 and 00000004 later
    "Cancel my next meeting with raj",
    "cancel my next meeting with raj please",
    "I need to cancel my next meeting with raj. Can you do that for me please?",
    "could you cancel my upcoming meeting with raj?",
    "please delete my next meeting with raj",
    "Can you cancel my next meeting with raj",
]


@pytest.mark.parametrize("text", NEXT)
def test_a_position_picks_one_record_by_its_time(atlas: Path, text: str) -> None:
    chat, ws = _chat(atlas)
    try:
        before = _events(atlas)
        asked = chat.say("sam", text)
        if asked.status.value == "needs_confirmation":
            assert [s.args["event"] for s in asked.steps] == ["00000001"], asked.reply
            chat.say("sam", "yes", conversation=asked.conversation)
        after = _events(atlas)
        assert after in (before, {k: v for k, v in before.items() if k != "00000001"}), text
        assert text != NEXT[0] or "00000001" not in after
    finally:
        ws.close()


def test_the_last_record_on_a_day_and_the_latest_email(atlas: Path) -> None:
    chat, ws = _chat(atlas)
    try:
        done = chat.say("sam", "Change the name of the last event on December 1 to wrap up")
        assert done.status.value == "executed", done.reply
        assert _events(atlas)["00000003"][0] == "wrap up" and _events(atlas)["00000002"][0] == "review"
        asked = chat.say("sam", "Delete my last email from yuki")
        assert [s.args["email"] for s in asked.steps] == ["00000002"], asked.reply
    finally:
        ws.close()


def test_a_position_over_another_kind_of_record_is_not_taken_for_this_one(atlas: Path) -> None:
    chat, ws = _chat(atlas)
    try:
        before = _rows(atlas, "select * from emails")
        chat.say("sam", "Send an email to attendees of the first event on December 1. Title it with the event "
                        "name and tell them 'Remember to attend this event.'")
        assert _rows(atlas, "select * from emails where inbox_outbox = 'inbox'") == before
    finally:
        ws.close()


def test_a_models_record_for_a_position_is_replaced_by_the_one_at_that_position(atlas: Path) -> None:
    wrong = ProposedStep(action="calendar.delete_event", args={"event": "00000004"}, confidence=0.9)
    chat, ws = _chat(atlas, _Proposes(wrong))
    try:
        before = _events(atlas)
        said = chat.say("sam", "cancel my next meeting with raj")  # no read of which meetings: nothing
        assert said.status.value == "no_action" and _events(atlas) == before, said.reply
        chat = Chat(chat.pipeline, _Proposes(wrong, ProposedStep(  # type: ignore[arg-type]
            action="calendar.find_events", args={"participant": "raj.patel"}, mentions={"participant": "raj"})))
        asked = chat.say("sam", "cancel my next meeting with raj")
        assert [s.args["event"] for s in asked.steps] == ["00000001"], asked.reply
    finally:
        ws.close()


@pytest.mark.parametrize(("text", "arg", "values"), [
    ("forward email 00000001 to kofi and raj", "to", ["kofi.mensah@atlas.com", "raj.patel@atlas.com"]),
    ("please forward email 00000001 to kofi, raj and lena", "to",
     ["kofi.mensah@atlas.com", "raj.patel@atlas.com", "lena.schmidt@atlas.com"]),
    ("move tasks 00000001 and 00000002 to in review", "task", ["00000001", "00000002"]),
    ("Forward the latest email from yuki to kofi and raj", "to", ["kofi.mensah@atlas.com", "raj.patel@atlas.com"]),
])
def test_several_values_become_several_steps(atlas: Path, text: str, arg: str, values: list[str]) -> None:
    chat, ws = _chat(atlas)
    try:
        result = chat.say("sam", text)
        assert [s.args[arg] for s in result.steps] == values, result.reply
        assert result.status.value == "executed"
    finally:
        ws.close()


def test_a_word_after_and_that_is_not_a_value_is_not_a_step(atlas: Path) -> None:
    chat, ws = _chat(atlas)
    try:
        result = chat.say("sam", "forward email 00000001 to kofi and thanks")
        assert [s.args["to"] for s in result.steps] == ["kofi.mensah@atlas.com"], result.reply
    finally:
        ws.close()


@pytest.mark.parametrize(("text", "start"), [
    ("move my first meeting with kofi on December 5 by 1 hour", "2023-12-05 13:00:00"),
    ("please move my first meeting with kofi on December 5 by 30 minutes", "2023-12-05 12:30:00"),
    ("move my first meeting with kofi on December 5 earlier by 30 minutes", "2023-12-05 11:30:00"),
])
def test_a_change_by_a_duration_moves_the_records_own_time(atlas: Path, text: str, start: str) -> None:
    chat, ws = _chat(atlas)
    try:
        before = _events(atlas)
        result = chat.say("sam", text)
        assert result.status.value == "executed", result.reply
        assert _events(atlas) == {**before, "00000006": (before["00000006"][0], start)}
    finally:
        ws.close()


@pytest.mark.parametrize("text", ["kofi's in progress tasks", "show all of kofi's tasks that are in progress",
                                  "list every task of kofi's in the backlog", "my meetings on Friday after 11",
                                  "what are all of kofi's tasks that are in progress?"])
def test_a_list_of_many_records_only_reads(atlas: Path, text: str) -> None:
    chat, ws = _chat(atlas)
    try:
        before, events = _tasks(atlas), _events(atlas)
        result = chat.say("sam", text)
        assert result.status.value in ("answered", "no_action", "needs_clarification"), result.reply
        assert _tasks(atlas) == before and _events(atlas) == events
    finally:
        ws.close()
