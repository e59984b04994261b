"""bench/workbench.py and examples/workbench: the WorkBench company's workspace, scored outcome-centred.

The sandbox's data is not in the repository: it is found through $SAYSO_WORKBENCH_DATA, else at
../shared/benchmarks/workbench-dev/data beside the repository (as in CI); without it these tests skip.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from typer.testing import CliRunner

from sayso.cli import app

ROOT = Path(__file__).resolve().parent.parent


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


wb = _load("bench_workbench", ROOT / "bench" / "workbench.py")
DATA = wb.default_data()
needs_data = pytest.mark.skipif(
    DATA is None or not (DATA / "processed").is_dir(),
    reason="WorkBench's sandbox is not here: set SAYSO_WORKBENCH_DATA or put it at "
           "../shared/benchmarks/workbench-dev/data beside the repository",
)


def _tasks() -> list[dict[str, Any]]:
    assert DATA is not None
    with (DATA.parent / "tasks.jsonl").open() as lines:
        return [json.loads(line) for line in lines if line.strip()]


def _sample() -> list[dict[str, Any]]:
    """One task per gold tool (and per updated field), plus one with an empty answer and one with many calls."""
    seen: set[str] = set()
    sample = []
    for task in _tasks():
        keys = {wb.parse_call(c)[0] + str(wb.parse_call(c)[1].get("field", "")) for c in task["answer"]} or {"none"}
        if keys - seen or len(task["answer"]) > 5 and "many" not in seen:
            seen |= keys | ({"many"} if len(task["answer"]) > 5 else set())
            sample.append(task)
    return sample


def test_gold_calls_parse_into_tool_and_arguments() -> None:
    call = 'calendar.update_event.func(event_id="00000020", field="event_name", new_value="casual catch-up")'
    assert wb.parse_call(call) == ("calendar.update_event",
                                   {"event_id": "00000020", "field": "event_name", "new_value": "casual catch-up"})
    assert wb.as_action(*wb.parse_call(call)) == ("calendar.rename_event",
                                                  {"event": "00000020", "name": "casual catch-up"})
    with pytest.raises(ValueError):
        wb.parse_call("print('x')")


def test_states_compare_case_aside_without_new_rows_ids_and_send_times() -> None:
    original = {t: [] for t in wb.COMPARED} | {"emails": [{"email_id": "00000001", "subject": "Hi"}]}
    ids = {t: set() for t in wb.COMPARED} | {"emails": {"00000001"}}
    mine = {t: [] for t in wb.COMPARED} | {"emails": [
        {"email_id": "00000001", "subject": "HI"},
        {"email_id": "00000777", "subject": "New", "sent_datetime": "2026-01-01 10:00:00"}]}
    gold = {t: [] for t in wb.COMPARED} | {"emails": [
        {"email_id": "00000001", "subject": "hi"},
        {"email_id": "00000002", "subject": "new", "sent_datetime": "2023-11-30 00:00:00"}]}
    assert wb.normalised(mine, ids) == wb.normalised(gold, ids)
    assert wb.normalised(mine, ids) != wb.normalised(original, ids)


@needs_data
def test_the_example_workspace_is_built_from_the_csvs_and_passes_check(tmp_path: Path) -> None:
    assert DATA is not None
    root = wb.build.build(DATA, tmp_path / "atlas")
    done = CliRunner().invoke(app, ["check", "--workspace", str(root)])
    assert done.exit_code == 0, done.output
    assert "21 people" in done.output
    names = {a["name"] for a in json.loads(CliRunner().invoke(app, ["actions", "--json", "--workspace",
                                                                   str(root)]).output)}
    tools = json.loads((DATA.parent / "tools.json").read_text())
    for tool in (t for t in tools if t["side_effects"]):  # every tool with side effects has an action
        if tool["name"] in wb._PLAIN:
            assert wb._PLAIN[tool["name"]][0] in names
        else:
            assert any(c.tool == tool["name"] and c.action in names for c in wb.build.FIELD_CHANGES), tool["name"]
    with pytest.raises(FileExistsError):
        wb.build.build(DATA, root)


@needs_data
def test_oracle_applies_the_gold_through_the_pipeline_and_scores_all_correct() -> None:
    assert DATA is not None
    sample = _sample()
    assert len(sample) >= 15
    report, outcomes = wb.run(sample, DATA, oracle=True)
    assert report["n"] == len(sample)
    assert report["correct"] == 1.0, [o for o in outcomes if o.verdict != "correct"]
    assert report["unwanted_side_effects"] == 0.0 and report["errors"] == 0
    assert report["asked_to_confirm"] > 0  # deletes confirm, and got their one "yes"
    assert set(report["by_domain"]) >= {"calendar", "email", "analytics", "project_management",
                                        "customer_relationship_manager", "multi_domain"}


@needs_data
def test_a_wrong_change_is_an_unwanted_side_effect_and_no_change_is_no_action(tmp_path: Path) -> None:
    assert DATA is not None
    bench = wb.Bench(DATA, tmp_path)
    try:
        answer = ['calendar.delete_event.func(event_id="00000256")']
        bench.reset()
        assert bench.verdict(answer) == "no_action"
        assert bench.verdict([]) == "correct"
        done = bench.pipeline.do("sam", "calendar.delete_event", {"event": "00000013"})
        bench.pipeline.confirm("sam", done.confirmation["id"] if done.confirmation else "")
        assert bench.verdict(answer) == "unwanted"  # another event went
        assert bench.verdict([]) == "unwanted"  # any change where none was wanted
        bench.reset()
        done = bench.pipeline.do("sam", "calendar.delete_event", {"event": "00000256"})
        bench.pipeline.confirm("sam", done.confirmation["id"] if done.confirmation else "")
        assert bench.verdict(answer) == "correct"
    finally:
        bench.close()


@needs_data
def test_offline_tasks_run_in_process_through_chat(capsys: pytest.CaptureFixture[str]) -> None:
    assert DATA is not None
    assert wb.main(["--data", str(DATA), "--limit", "2", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["n"] == 2 and figures["mode"] == "chat"
    for key in ("correct", "unwanted_side_effects", "no_action", "asked", "by_domain"):
        assert key in figures


def test_the_split_by_template_keeps_each_template_in_one_half() -> None:
    tasks = [{"base_template": f"template {t}", "query": f"q{t}-{i}"} for t in range(40) for i in range(3)]
    halves: dict[str, set[str]] = {}
    for task in tasks:
        halves.setdefault(task["base_template"], set()).add(wb.half_of(task))
    assert all(len(h) == 1 for h in halves.values())
    assert {h for hs in halves.values() for h in hs} == {"dev", "held"}
