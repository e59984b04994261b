"""Requests under a condition (sayso/conditions.py): the condition is evaluated now by reads, then what to do is
done, or the "otherwise", or nothing, saying which and why; a condition sayso cannot evaluate changes nothing.
Whichever interpreter proposed the plan: a model that proposes the change anyway gets the same treatment.

The company is examples/workbench's on the small sandbox of tests/test_bulk.py (one day of analytics, 2023-11-20,
with one visit), clock pinned to 2023-11-30.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from sayso.conditions import evaluate, split
from sayso.connectors import Record
from sayso.interpreter import ProposedStep

from .test_bulk import _chat, _Proposes, _rows, atlas  # noqa: F401 (the fixture)

NOW = datetime(2023, 11, 30, tzinfo=UTC)


def _plots(root: Path) -> int:
    return len(_rows(root, "select * from plots"))


HOLDS = [  # one visit on Nov 20: "less than 5" holds, "more than 5" does not
    "If total visits was less than 5 at any time since November 1, make a line chart of total visits since "
    "November 1",
    "if total visits was less than 5 at any time since November 1 then make a line chart of total visits since "
    "November 1",
    "Make a line chart of total visits since November 1 if total visits was less than 5 at any time since "
    "November 1",
    "if total visits were below 5 at any time since November 1, please plot total visits as a line chart since "
    "November 1",
]


@pytest.mark.parametrize("text", HOLDS)
def test_a_condition_that_holds_does_what_was_asked(atlas: Path, text: str) -> None:  # noqa: F811
    chat, ws = _chat(atlas)
    try:
        done = chat.say("sam", text)
        assert _plots(atlas) == 1, done.reply
        assert "I checked" in done.reply and "yes" in done.reply
    finally:
        ws.close()


@pytest.mark.parametrize("text", [t.replace("less than", "more than").replace("below", "above") for t in HOLDS])
def test_a_condition_that_does_not_hold_does_nothing_and_says_why(atlas: Path, text: str) -> None:  # noqa: F811
    chat, ws = _chat(atlas)
    try:
        done = chat.say("sam", text)
        assert _plots(atlas) == 0
        assert done.status.value == "no_action" and "no (" in done.reply, done.reply
    finally:
        ws.close()


def test_whether_there_are_any_and_the_otherwise(atlas: Path) -> None:  # noqa: F811
    chat, ws = _chat(atlas)
    try:
        done = chat.say("sam", "If yuki has any overdue tasks, move all of yuki's overdue tasks to in review")
        assert "yes (2 found)" in done.reply, done.reply
        assert [r[1] for r in _rows(atlas, "select task_id, list_name from project_tasks where task_id in "
                                           "('00000007', '00000008', '00000009') order by task_id")] == [
            "In Review", "In Review", "Backlog"]  # 00000009 is due in December: not overdue
        done = chat.say("sam", "If raj has any overdue tasks, move all of raj's overdue tasks to in review. "
                               "Otherwise move all of kofi's tasks that are in review to completed")
        assert "no (0 found)" in done.reply, done.reply
        assert _rows(atlas, "select list_name from project_tasks where task_id = '00000005'") == [("Completed",)]
    finally:
        ws.close()


def test_a_condition_sayso_cannot_evaluate_changes_nothing(atlas: Path) -> None:  # noqa: F811
    chat, ws = _chat(atlas)
    try:
        done = chat.say("sam", "If total visits is more than 5% higher than it was on Monday, make a line chart of "
                               "total visits since November 1")
        assert _plots(atlas) == 0 and done.status.value == "no_action"
        assert "cannot check" in done.reply or "did nothing" in done.reply, done.reply
    finally:
        ws.close()


def test_a_models_change_under_a_condition_waits_for_the_condition(atlas: Path) -> None:  # noqa: F811
    plot = ProposedStep(action="analytics.create_plot", args={"metric": "total_visits", "chart": "line",
                                                              "start": "2023-11-01"}, confidence=0.95)
    read = ProposedStep(action="analytics.daily_visits", args={"start": "2023-11-01"},
                        mentions={"start": "November 1"})
    chat, ws = _chat(atlas, _Proposes(plot, read))
    try:
        chat.say("sam", "If total visits was more than 5 at any time since November 1, make a line chart of "
                        "total visits since November 1")
        assert _plots(atlas) == 0  # the model proposed the chart; the condition does not hold
    finally:
        ws.close()


@pytest.mark.parametrize(("text", "parts"), [
    ("If X was more than 3, make a chart", ("X was more than 3", "make a chart", "")),
    ("make a chart if X was more than 3", ("X was more than 3", "make a chart", "")),
    ("Was X more than 3? If so, make a chart", ("Was X more than 3", "make a chart", "")),
    ("can you check if X was more than 3? If so, make a chart", ("X was more than 3", "make a chart", "")),
    ("I think X might have been more than 3. Can you check and if so, make a chart",
     ("X was more than 3", "make a chart", "")),
    ("If kofi has any, email him. Otherwise email raj", ("kofi has any", "email him", "email raj")),
])
def test_split_finds_the_condition_the_action_and_the_otherwise(text: str, parts: tuple[str, str, str]) -> None:
    assert split(text) == parts


def _day(day: str, visits: int) -> Record:
    return Record(type="Day", id=day, title=day, attrs={"day": day, "total_visits": visits, "engaged_users": 1})


def test_evaluate_compares_any_day_or_the_latest_and_counts() -> None:
    days = [_day("2023-11-20", 3), _day("2023-11-21", 12)]
    assert evaluate("total visits was more than 10 at any time", days, NOW)[0] is True
    assert evaluate("total visits was less than 2 at any time", days, NOW)[0] is False
    assert evaluate("total visits is more than 10", days, NOW)[0] is True
    assert evaluate("total visits is less than 5", days, NOW)[0] is False  # the latest figure is 12
    assert evaluate("kofi has any overdue tasks", [], NOW)[0] is False
    assert evaluate("yuki hasn't sent me any emails", [], NOW)[0] is True
    assert evaluate("total visits is 5% higher than Monday", days, NOW)[0] is None
    assert evaluate("visits were interesting", days, NOW)[0] is None
