"""docs/adopting.md: its worked example runs as written, and the catalog features it documents work
(person parameters that bind an email, sayso's clock and the acting person in SQL, deletes, enum labels,
record id patterns, relative defaults and date directions, conditions and bulk requests declined)."""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from sayso.catalog import Catalog, RiskRule, load_yaml_actions
from sayso.cli import app
from sayso.directory import Person
from sayso.errors import WorkspaceError
from sayso.interpreter import Context, Interpretation, ProposedStep
from sayso.interpreter.offline import OfflineInterpreter

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "adopting.md"
NOW = "2026-11-25T09:00"
_BLOCK = re.compile(r"```\w*\n(?:#|--|//) file: (?P<name>[^\n]+)\n(?P<body>.*?)```", re.S)


def _files() -> dict[str, str]:
    """The worked example's files, as the page shows them (each block opens with a ``file:`` line)."""
    return {m.group("name").strip(): m.group("body") for m in _BLOCK.finditer(DOC.read_text())}


def _invoke(*args: str, stdin: str | None = None) -> str:
    done = CliRunner().invoke(app, list(args), input=stdin)
    assert done.exit_code == 0, done.output
    return done.output


@pytest.fixture
def ridgeway(tmp_path: Path) -> Path:
    """docs/adopting.md's steps: init, the table, the people imported, the files written."""
    root = tmp_path / "ridgeway"
    _invoke("init", str(root))
    files = _files()
    assert set(files) == {"setup.sql", "people.csv", "sayso.toml (append)", "operations/jobs.yaml",
                          "actions/jobs.yaml", "policies/jobs.cedar"}
    (root / "systems").mkdir()
    with sqlite3.connect(root / "systems" / "jobs.db") as db:
        db.executescript(files["setup.sql"])
    db.close()
    (tmp_path / "people.csv").write_text(files["people.csv"])
    _invoke("directory", "import", str(tmp_path / "people.csv"), "--workspace", str(root))
    with (root / "sayso.toml").open("a") as toml:
        toml.write("\n" + files["sayso.toml (append)"])
    for name in ("operations/jobs.yaml", "actions/jobs.yaml", "policies/jobs.cedar"):
        (root / name).parent.mkdir(exist_ok=True)
        (root / name).write_text(files[name])
    return root


def _job(root: Path, job_id: str) -> dict[str, str]:
    with sqlite3.connect(root / "systems" / "jobs.db") as db:
        db.row_factory = sqlite3.Row
        row = db.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
    db.close()
    return dict(row) if row else {}


def test_the_worked_example_checks_and_runs_a_request_in_words(ridgeway: Path) -> None:
    out = _invoke("check", "--workspace", str(ridgeway))
    assert "3 people, 4 actions, 1 systems" in out
    said = _invoke("chat", "--user", "sam", "--now", NOW, "--json", "--workspace", str(ridgeway),
                   stdin="set job 100002 to in progress\n")
    turn = json.loads(said.strip().splitlines()[-1])
    assert turn["status"] == "executed", turn
    assert turn["steps"][0]["args"] == {"job": "100002", "status": "in_progress"}  # id pattern, label
    assert _job(ridgeway, "100002")["status"] == "in_progress"


def test_person_binds_email_and_writes_see_the_clock_and_who_asked(ridgeway: Path) -> None:
    out = _invoke("do", "--user", "sam", "--now", NOW, "--action", "jobs.open", "--workspace", str(ridgeway),
                  "--args", json.dumps({"title": "Check the heat pump", "assignee": "Priya"}))
    assert out.startswith("executed")
    job = _job(ridgeway, "100003")
    assert job["assignee_email"] == "priya@ridgeway.example"  # bind: email, not the directory id
    assert job["created_at"] == "2026-11-25 09:00:00"  # :_now is the pinned clock (London, in November: UTC)
    assert job["created_by"] == "sam@ridgeway.example"  # :_asked_by_email
    assert job["due_date"] == "2026-11-26"  # default_to: tomorrow


def test_a_read_sees_who_is_reading_and_the_clock(ridgeway: Path) -> None:
    said = _invoke("chat", "--user", "priya", "--now", NOW, "--json", "--workspace", str(ridgeway),
                   stdin="what jobs do I have?\n")
    turn = json.loads(said.strip().splitlines()[-1])
    assert turn["status"] == "answered" and [r["id"] for r in turn["steps"][0]["records"]] == ["100001"]
    later = _invoke("chat", "--user", "priya", "--now", "2026-12-02T09:00", "--json", "--workspace",
                    str(ridgeway), stdin="what jobs do I have?\n")
    assert json.loads(later.strip().splitlines()[-1])["steps"][0]["records"] == []  # due before :_today


def test_delete_asks_first_and_removes_the_row_once_confirmed(ridgeway: Path) -> None:
    out = _invoke("do", "--user", "sam", "--now", NOW, "--action", "jobs.delete", "--workspace", str(ridgeway),
                  "--args", '{"job": "100001"}')
    assert out.startswith("needs_confirmation") and "100001 Boiler service at Elm Street: deleted" in out
    assert _job(ridgeway, "100001")  # nothing yet
    confirmation = re.search(r"sayso confirm (cf_\w+)", out)
    assert confirmation is not None
    _invoke("confirm", confirmation.group(1), "--user", "sam", "--now", NOW, "--workspace", str(ridgeway))
    assert _job(ridgeway, "100001") == {}


def test_an_enum_label_is_stored_as_its_value_and_a_stranger_word_is_refused(ridgeway: Path) -> None:
    args = ["do", "--user", "sam", "--now", NOW, "--action", "jobs.set_status", "--workspace", str(ridgeway)]
    assert _invoke(*args, "--args", '{"job": "100001", "status": "Finished"}').startswith("executed")
    assert _job(ridgeway, "100001")["status"] == "done"
    done = CliRunner().invoke(app, [*args, "--args", '{"job": "100001", "status": "stuck"}'])
    assert done.exit_code != 0 and "status" in done.output
    assert _job(ridgeway, "100001")["status"] == "done"


# --- the catalog's metadata, checked where it is declared -----------------------------------------


def _catalog(tmp_path: Path, params: str, extra: str = "") -> Catalog:
    path = tmp_path / "a.yaml"
    path.write_text(f"""actions:
  - name: jobs.plan
    description: Plan a repair job for a technician.
    kind: write
    risk: low
    connector: jobs
    operation: plan
    params:
{params}
{extra}""")
    catalog = Catalog()
    load_yaml_actions(path, catalog)
    return catalog


@pytest.mark.parametrize(("spec", "problem"), [
    ("{type: string, bind: email}", "bind is for person parameters"),
    ("{type: string, person: true, bind: phone}", "bind is for person parameters"),
    ("{type: string, enum: [open], labels: {shut: [closed]}}", "not in its enum: shut"),
    ("{type: string, labels: {open: [new]}}", "labels map enum values"),
    ("{type: string, id_pattern: '\\d{6}'}", "id_pattern is for record parameters"),
    ("{type: string, record: Job, id_pattern: '(\\d'}", "not a regular expression"),
    ("{type: date, default_to: someday}", "default_to must be one of"),
    ("{type: date, required: true, default_to: today}", "a required parameter has no default"),
    ("{type: date, direction: sideways}", "direction must be past, future or either"),
])
def test_bad_metadata_names_the_file_and_line(tmp_path: Path, spec: str, problem: str) -> None:
    with pytest.raises(WorkspaceError, match=problem) as caught:
        _catalog(tmp_path, f"      x: {spec}")
    assert caught.value.file == str(tmp_path / "a.yaml") and caught.value.line == 9  # the parameter's line


def test_relative_defaults_fill_at_the_time_of_the_request(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path, "      start: {type: date, default_to: yesterday}\n"
                                 "      end: {type: date, default_to: 'param:start'}\n"
                                 "      at: {type: datetime, default_to: now}")
    now = datetime(2023, 11, 30, 0, 0, tzinfo=ZoneInfo("UTC"))
    action = catalog.get("jobs.plan")
    assert action.complete({}, now) == {"start": "2023-11-29", "end": "2023-11-29", "at": "2023-11-30T00:00:00+00:00"}
    assert action.complete({"start": "2023-11-01"}, now)["end"] == "2023-11-01"


def test_risk_rises_for_a_recipient_outside_the_company() -> None:
    rule = RiskRule.model_validate({"tier": "low", "when": [{"arg": "to", "not_endswith": "@atlas.com",
                                                             "tier": "high"}]})
    assert rule.evaluate({"to": "raj.patel@atlas.com"}).value == "low"
    assert rule.evaluate({"to": "RAJ@Atlas.com"}).value == "low"
    assert rule.evaluate({"to": "someone@example.org"}).value == "high"
    assert rule.evaluate({"to": ["raj.patel@atlas.com", "x@example.org"]}).value == "high"


# --- the offline interpreter reads the metadata, and does not act on a guess -----------------------

PARAMS = """      job: {type: string, record: Job, id_pattern: '\\d{6}'}
      title: {type: string}
      status: {type: string, enum: [open, in_progress, done], labels: {in_progress: [in progress], done: [finished]}}
      when: {type: date%s}"""
SAM = Person(id="sam", name="Sam Ortiz", role="manager", team="ops")


def _read(tmp_path: Path, text: str, direction: str = "") -> tuple[str, dict[str, object], str]:
    catalog = _catalog(tmp_path, PARAMS % (f", direction: {direction}" if direction else ""))
    context = Context(now=datetime(2023, 11, 30, 0, 0, tzinfo=ZoneInfo("UTC")))
    found = OfflineInterpreter().interpret(text, context, catalog, SAM)
    args = found.steps[0].args if found.steps else {}
    return found.kind, dict(args), str(found.reason or "")


def test_dates_without_a_year_follow_the_parameter_or_the_words(tmp_path: Path) -> None:
    assert _read(tmp_path, "plan job 123456 for December 2", "past")[1]["when"] == "2022-12-02"
    assert _read(tmp_path, "plan job 123456 for September 27", "future")[1]["when"] == "2024-09-27"
    assert _read(tmp_path, "plan job 123456 since September 27")[1]["when"] == "2023-09-27"  # "since" looks back
    assert _read(tmp_path, "plan job 123456 by March 3")[1]["when"] == "2024-03-03"  # "by" looks ahead
    assert _read(tmp_path, "plan job 123456 for September 27 2024", "past")[1]["when"] == "2024-09-27"  # a year


def test_an_id_of_the_records_format_is_the_record_not_a_number(tmp_path: Path) -> None:
    kind, args, _ = _read(tmp_path, "plan job 004512 as finished")
    assert kind == "plan" and args["job"] == "004512" and args["status"] == "done"


def test_two_values_for_one_parameter_take_the_one_after_to_or_none(tmp_path: Path) -> None:
    assert _read(tmp_path, "plan job 123456 from open to in progress")[1]["status"] == "in_progress"
    assert "status" not in _read(tmp_path, "plan job 123456 open in progress")[1]


def test_a_change_under_a_condition_or_to_many_records_is_declined(tmp_path: Path) -> None:
    assert _read(tmp_path, "if it rains on Friday, plan job 123456") == ("none", {}, "condition")
    kind, _, reason = _read(tmp_path, "can you check if job 123456 is open? If so, plan it as done")
    assert kind != "plan" and reason in ("question", "condition")  # checked, never planned on a guess
    assert _read(tmp_path, "plan all of priya's jobs as done") == ("none", {}, "bulk")
    kind, args, _ = _read(tmp_path, "plan job 123456 if you can, titled 'if all jobs slip'")
    assert kind == "plan" and args["job"] == "123456"  # politeness and quoted words are not conditions


def test_a_name_with_weekly_in_it_is_not_a_schedule() -> None:
    from sayso.instructions.triggers import split_trigger

    assert split_trigger("change the name of the last event on December 4 to weekly summary") is None
    assert split_trigger("rename it to daily standup notes") is None
    weekly = split_trigger("post the pipeline in #sales-east weekly")
    assert weekly is not None and weekly.clause == "weekly"
    daily = split_trigger("post the pipeline in #sales-east daily at 9")
    assert daily is not None and daily.clause == "daily at 9"


def test_a_capitalised_first_verb_is_not_part_of_a_record_name(tmp_path: Path) -> None:
    kind, args, _ = _read(tmp_path, "Plan Boiler service as finished")
    assert kind == "plan" and args["job"] == "Boiler service"  # not "Plan Boiler service"


class _Proposes:
    """An interpreter (a model, say) that proposes one fixed plan whatever it is told."""

    name = "fixed"
    version = "1"

    def __init__(self, step: ProposedStep) -> None:
        self.step = step

    def interpret(self, text: str, context: Context, catalog: Catalog, person: Person) -> Interpretation:
        return Interpretation(kind="plan", steps=[self.step], interpreter=self.name, trust="person")


def test_any_interpreters_change_under_a_condition_is_not_made(ridgeway: Path) -> None:
    from sayso import Workspace
    from sayso.clock import Clock
    from sayso.conversation import Chat
    from sayso.pipeline import Pipeline

    ws = Workspace.load(ridgeway)
    try:
        step = ProposedStep(action="jobs.set_status", args={"job": "100001", "status": "done"})
        chat = Chat(Pipeline(ws, Clock(datetime(2026, 11, 25, 9, 0, tzinfo=ZoneInfo("UTC")))), _Proposes(step))
        result = chat.say("sam", "if the boiler part has arrived, mark job 100001 as done")
        # the condition cannot be read in this workspace: said, and nothing done
        assert result.status.value == "no_action" and "only if 'the boiler part has arrived'" in result.reply
        assert "did nothing" in result.reply
        result = chat.say("sam", "mark all of priya's jobs as done")
        assert result.status.value == "no_action" and "several records" in result.reply
        assert _job(ridgeway, "100001")["status"] == "open"
        assert chat.say("sam", "mark job 100001 as done").status.value == "executed"
    finally:
        ws.close()
