"""The command line as users and programs meet it: JSON shape, exit codes, audit tools."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

import sayso as sayso_package

from .conftest import NOW, cli, make_demo, sayso, sayso_json


def test_do_json_shape_and_exit_codes(sqlite_root: Path) -> None:
    code, out = sayso_json(sqlite_root, "do", "--user", "alice", "--action", "crm.update_deal", "--args",
                           '{"deal": "Brightwater", "stage": "negotiation"}', "--now", NOW)
    assert code == 0 and out["status"] == "executed"
    step = out["steps"][0]
    assert {"action", "args", "risk", "status", "effect"} <= set(step)
    assert step["risk"] == "medium" and step["args"]["deal"] == "D-101"
    assert step["effect"]["changes"][0]["before"]["stage"] == "proposal"

    code, out = sayso_json(sqlite_root, "do", "--user", "alice", "--action", "crm.close_deal", "--args",
                           '{"deal": "D-102", "outcome": "won"}', "--now", NOW)
    assert code == 0 and out["status"] == "denied" and out["rule"] == "rule-4-ae-close"

    code, out = sayso_json(sqlite_root, "do", "--user", "alice", "--action", "crm.get", "--args", "{oops")
    assert code == 2 and out["status"] == "error" and out["error"]["code"] == "invalid_arguments"

    code, out = sayso_json(sqlite_root, "confirm", "cf_nope", "--user", "carol")
    assert code == 2 and out["error"]["code"] == "confirmation_unknown"


def test_read_returns_records_and_a_table(sqlite_root: Path) -> None:
    code, out = sayso_json(sqlite_root, "do", "--user", "carol", "--action", "billing.list_invoices", "--args",
                           '{"status": "overdue"}')
    assert out["status"] == "answered"
    assert sorted(r["id"] for r in out["steps"][0]["records"]) == ["INV-2041", "INV-2044"]
    text = sayso(sqlite_root, "do", "--user", "carol", "--action", "billing.list_invoices", "--args",
                 '{"status": "overdue"}').stdout
    assert "INV-2041" in text and "INV-2044" in text
    code, out = sayso_json(sqlite_root, "do", "--user", "alice", "--action", "billing.list_invoices")
    assert out["status"] == "denied" and out["steps"][0]["records"] is None


def test_confirm_flow_and_pending(sqlite_root: Path) -> None:
    code, asked = sayso_json(sqlite_root, "do", "--user", "carol", "--action", "crm.close_deal", "--args",
                             '{"deal": "Kestrel Aerospace Platform", "outcome": "won"}', "--now", NOW)
    assert asked["status"] == "needs_confirmation"
    pending = json.loads(sayso(sqlite_root, "pending", "--user", "carol", "--json", "--now", NOW).stdout)
    assert [p["id"] for p in pending] == [asked["confirmation"]["id"]]
    code, out = sayso_json(sqlite_root, "confirm", asked["confirmation"]["id"], "--user", "alice", "--now", NOW)
    assert code == 2 and out["error"]["code"] == "confirmation_not_yours"
    code, out = sayso_json(sqlite_root, "confirm", asked["confirmation"]["id"], "--user", "carol", "--now", NOW)
    assert code == 0 and out["status"] == "executed"
    rows = [json.loads(line) for line in sayso(sqlite_root, "audit", "list", "--json", "--conversation",
                                               asked["conversation"]).stdout.splitlines()]
    events = [r["event"] for r in rows]
    for event in ("turn", "grounding", "decision", "confirmation", "call", "effect"):
        assert event in events, events
    effect = next(r for r in rows if r["event"] == "effect")
    assert effect["status"] == "ok" and effect["actor"] == "carol"
    assert effect["detail"]["changes"][0]["before"]["stage"] == "negotiation"
    assert effect["detail"]["changes"][0]["after"]["stage"] == "closed_won"
    assert all(r["at"].endswith("Z") for r in rows)
    shown = json.loads(sayso(sqlite_root, "audit", "show", effect["id"]).stdout)
    assert shown["hash"] and shown["id"] == effect["id"]


def test_policy_check_explains_without_doing(sqlite_root: Path) -> None:
    out = json.loads(sayso(sqlite_root, "policy", "check", "--user", "bob", "--action", "crm.update_deal",
                           "--args", '{"deal": "D-105", "stage": "proposal"}', "--json").stdout)
    assert out["allowed"] is False and out["rule"].startswith("rule-3")
    out = json.loads(sayso(sqlite_root, "policy", "check", "--user", "bob", "--action", "crm.update_deal",
                           "--args", '{"deal": "D-105", "stage": "qualification"}', "--json").stdout)
    assert out["allowed"] is True
    with sqlite3.connect(sqlite_root / "systems" / "crm.db") as conn:
        assert conn.execute("select stage from deals where id='D-105'").fetchone()[0] == "prospecting"
    assert json.loads(sayso(sqlite_root, "audit", "list", "--json").stdout or "null") is None


def _tamper(root: Path, sql: str) -> None:
    with sqlite3.connect(root / "state.db") as conn:
        conn.execute(sql)


def _some_history(root: Path) -> None:
    for text in ("one", "two", "three"):
        sayso(root, "do", "--user", "alice", "--action", "chat.send", "--args",
              json.dumps({"to": "carol", "text": text}), check=True)


def test_audit_verify_detects_an_edit(sqlite_root: Path) -> None:
    _some_history(sqlite_root)
    assert sayso(sqlite_root, "audit", "verify").returncode == 0
    _tamper(sqlite_root, "update audit set status = 'denied' where seq = 5")
    done = sayso(sqlite_root, "audit", "verify")
    assert done.returncode == 1 and "seq 5" in done.stderr


def test_audit_verify_detects_removal_and_reordering(sqlite_root: Path, tmp_path: Path) -> None:
    _some_history(sqlite_root)
    _tamper(sqlite_root, "delete from audit where seq = (select max(seq) from audit)")
    assert sayso(sqlite_root, "audit", "verify").returncode == 1
    other = tmp_path / "other"
    sayso(None, "init", "--demo", str(other), check=True)
    _some_history(other)
    _tamper(other, "update audit set seq = -1 where seq = 2")
    _tamper(other, "update audit set seq = 2 where seq = 3")
    _tamper(other, "update audit set seq = 3 where seq = -1")
    assert sayso(other, "audit", "verify").returncode == 1


def test_audit_export_is_jsonl(sqlite_root: Path, tmp_path: Path) -> None:
    _some_history(sqlite_root)
    target = tmp_path / "audit.jsonl"
    assert sayso(sqlite_root, "audit", "export", "--output", str(target)).returncode == 0
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
    assert all(r["hash"] for r in rows)


def test_secrets_never_reach_the_audit(sqlite_root: Path) -> None:
    secret = "s3cr3t-Value-42"
    toml = sqlite_root / "sayso.toml"
    toml.write_text(toml.read_text() + '\n[secrets]\nfile = "secrets.toml"\n')
    (sqlite_root / "secrets.toml").write_text(f'smtp_password = "{secret}"\n')
    sayso(sqlite_root, "do", "--user", "alice", "--action", "chat.send", "--args",
          json.dumps({"to": "carol", "text": f"the password is {secret}"}), check=True)
    sayso(sqlite_root, "do", "--user", "alice", "--action", "crm.get", "--args",
          json.dumps({"record": "D-101", "api_key": secret}))
    exported = sayso(sqlite_root, "audit", "export").stdout
    assert exported and secret not in exported
    assert "[redacted]" in exported
    with sqlite3.connect(sqlite_root / "state.db") as conn:
        stored = "\n".join(str(row) for row in conn.execute("select * from audit"))
    assert stored and secret not in stored


def test_undo_from_cli(sqlite_root: Path) -> None:
    sayso(sqlite_root, "do", "--user", "alice", "--action", "crm.log_note", "--args",
          '{"record": "D-101", "text": "called"}', check=True)
    code, out = sayso_json(sqlite_root, "undo", "--user", "alice")
    assert code == 0 and out["status"] == "executed" and out["steps"][0]["status"] == "undone"
    with sqlite3.connect(sqlite_root / "systems" / "crm.db") as conn:
        assert conn.execute("select count(*) from notes").fetchone()[0] == 0


def test_demo_tour_plays_the_first_conversation(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    done = sayso(None, "demo", "--tour", "--workspace", str(root))
    assert done.returncode == 0, done.stderr
    assert "denied" in done.stdout and "needs your confirmation" in done.stdout and "chain intact" in done.stdout
    with sqlite3.connect(root / "systems" / "crm.db") as conn:
        assert conn.execute("select stage from deals where id = 'D-102'").fetchone()[0] == "closed_won"
        assert conn.execute("select stage from deals where id = 'D-101'").fetchone()[0] == "negotiation"


def test_demo_chats_on_standard_input(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "sayso", "demo", "--workspace", str(tmp_path / "demo"), "--json"],
                          input="which of my deals close in the next 30 days?\n/as carol\nthanks\n",
                          capture_output=True, text=True, timeout=120)
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["status"] for line in lines] == ["answered", "info", "no_action"]
    assert [r["id"] for r in lines[0]["steps"][0]["records"]] == ["D-101"]


def test_text_from_people_is_never_terminal_markup(sqlite_root: Path) -> None:
    done = sayso(sqlite_root, "do", "--user", "alice", "--action", "chat.send", "--args",
                 json.dumps({"to": "carol", "text": "[/red] [bold]see [link]"}))
    assert done.returncode == 0, done.stderr
    assert "[/red] [bold]see [link]" in done.stdout


def test_the_clock_ahead_switch_moves_the_wall_clock_of_children_too() -> None:
    # .ci/run runs the whole suite a second time with SAYSO_TEST_CLOCK_AHEAD_DAYS=365: this proves the switch
    # reaches a child process (a sayso command), not only the test's own process.
    code = "from datetime import UTC, datetime; import time; print(datetime.now(UTC).isoformat(), time.time())"

    def child(**env: str) -> tuple[datetime, float]:
        base = {k: v for k, v in os.environ.items() if k not in ("SAYSO_TEST_CLOCK_AHEAD_DAYS", "PYTHONPATH")}
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**base, **env},
                              timeout=60)
        moved, stamp = done.stdout.split()
        return datetime.fromisoformat(moved), float(stamp)

    real, _ = child()
    moved, stamp = child(SAYSO_TEST_CLOCK_AHEAD_DAYS="365", PYTHONPATH=str(Path(__file__).parent / "clock_ahead"))
    assert timedelta(days=364) < moved - real < timedelta(days=366)
    assert abs(stamp - moved.timestamp()) < 60  # time.time() moved with datetime.now()


def _long_demo(tmp_path: Path) -> Path:
    """A demo workspace under a path longer than a terminal line (as macOS's temporary folders are)."""
    return make_demo(tmp_path / ("a-temporary-folder-with-a-long-name-" * 3) / "ws")[0]


def test_errors_are_one_unwrapped_line_with_their_kinds_exit_code(tmp_path: Path) -> None:
    root = _long_demo(tmp_path)
    narrow = {"COLUMNS": "30"}
    (root / "sayso.toml").write_text((root / "sayso.toml").read_text() + "\n[guard]\nconfirm_medium = maybe\n")
    done = cli("check", "--workspace", str(root), env=narrow)
    assert done.exit_code == 3 and done.stdout == ""
    assert done.stderr.startswith(f"error [workspace_invalid]: {root / 'sayso.toml'}:")
    assert done.stderr.count("\n") == 1  # one line, however narrow the terminal and long the path
    listed = cli("actions", "--workspace", str(root), "--json", env=narrow)  # --json: the error as JSON
    assert listed.exit_code == 3 and json.loads(listed.stdout)["error"]["code"] == "workspace_invalid"

    root = _long_demo(tmp_path / "other")
    for args, code, kind in [
        (["do", "--user", "alice", "--action", "crm.nope"], "unknown_action", 2),
        (["confirm", "cf_nope", "--user", "carol"], "confirmation_unknown", 2),
        (["pending", "--user", "zed"], "unknown_user", 2),
        (["do", "--user", "alice", "--action", "crm.get", "--now", "soon"], "invalid_arguments", 2),
        (["demo", "--now", "soon"], "invalid_arguments", 2),  # raised outside any try of its own
    ]:
        done = cli(*args, "--workspace", str(root), env=narrow)
        assert done.exit_code == kind, (args, done.stdout, done.stderr)
        assert done.stderr.startswith(f"error [{code}]: ") and done.stderr.count("\n") == 1, done.stderr
    usage = cli("do", "--workspace", str(root))  # Typer's own usage errors keep their exit status
    assert usage.exit_code == 2 and "--user" in usage.stderr


def test_version() -> None:
    done = cli("--version")
    assert done.exit_code == 0 and done.stdout == f"sayso {sayso_package.__version__}\n"


def test_demo_never_deletes_what_it_did_not_make(tmp_path: Path) -> None:
    folder = tmp_path / "x"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep")
    for force in ([], ["--force"]):
        done = cli("demo", "--workspace", str(folder), "--tour", *force, input="")
        assert done.exit_code == 3 and "is not empty and is not a sayso workspace" in done.stderr
        assert [p.name for p in folder.iterdir()] == ["notes.txt"] and (folder / "notes.txt").read_text() == "keep"
    refused = cli("init", str(folder), "--force")
    assert refused.exit_code == 3 and [p.name for p in folder.iterdir()] == ["notes.txt"]

    helped = cli("demo", "--help", env={"COLUMNS": "300"})
    assert "a new temporary folder" in helped.stdout and "else the current folder" not in helped.stdout


def _moved(root: Path) -> str:
    with sqlite3.connect(root / "systems" / "crm.db") as conn:
        return str(conn.execute("select stage from deals where id = 'D-101'").fetchone()[0])


def test_a_workspace_is_replaced_only_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_demo(tmp_path / "ws")[0]
    (root / "notes.txt").write_text("keep")
    sayso(root, "do", "--user", "alice", "--action", "crm.update_deal", "--args",
          '{"deal": "D-101", "stage": "negotiation"}', "--now", NOW, check=True)
    for args in (["demo", "--workspace", str(root), "--tour"], ["init", "--demo", str(root)]):
        done = cli(*args, input="")  # no terminal: never replaced without --force
        assert done.exit_code == 3 and "use --force to replace it" in done.stderr
        assert _moved(root) == "negotiation" and (root / "state.db").exists()

    monkeypatch.setattr("sayso.cli._can_ask", lambda: True)  # a person at a terminal is asked
    declined = cli("init", "--demo", str(root), input="n\n")
    assert "Replace it?" in declined.stdout and declined.exit_code == 3 and _moved(root) == "negotiation"
    accepted = cli("init", "--demo", str(root), "--now", NOW, input="y\n")
    assert accepted.exit_code == 0 and _moved(root) == "proposal"
    assert (root / "notes.txt").read_text() == "keep" and not (root / "state.db").exists()

    monkeypatch.setattr("sayso.cli._can_ask", lambda: False)
    sayso(root, "do", "--user", "alice", "--action", "crm.update_deal", "--args",
          '{"deal": "D-101", "stage": "negotiation"}', "--now", NOW, check=True)
    done = cli("demo", "--workspace", str(root), "--tour", "--force", input="")
    assert done.exit_code == 0 and "chain intact" in done.stdout
    assert (root / "notes.txt").read_text() == "keep"
    assert _moved(root) == "negotiation"  # the tour's own move, on fresh data


def test_one_clock_setting_reaches_every_command(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    pinned = {"SAYSO_NOW": NOW}
    assert cli("init", "--demo", str(root), env=pinned).exit_code == 0
    assert "reference_day = \"2026-11-25\"" in (root / "sayso.toml").read_text()
    ws = ["--workspace", str(root)]
    asked = cli("do", "--user", "carol", "--action", "crm.close_deal", "--args",
                '{"deal": "D-102", "outcome": "won"}', "--json", *ws, env=pinned)
    confirmation = json.loads(asked.stdout)["confirmation"]
    assert confirmation["expires_at"] == "2026-11-25T09:15:00-05:00"
    listed = cli("pending", "--user", "carol", "--json", *ws, env=pinned)
    assert [p["id"] for p in json.loads(listed.stdout)] == [confirmation["id"]]

    later = cli("pending", "--user", "carol", "--now", "2026-11-25T10:00", *ws, env=pinned)  # --now wins
    assert later.exit_code == 0
    assert later.stdout == ("Nothing waits for carol (1 confirmation expired; the newest at "
                            "2026-11-25T09:15:00-05:00, and the clock reads 2026-11-25T10:00:00-05:00).\n")
    later = cli("pending", "--user", "carol", "--now", "2026-11-25T10:00", "--json", *ws, env=pinned)
    assert json.loads(later.stdout) == []  # the JSON stays a list of what can still be confirmed

    done = cli("confirm", confirmation["id"], "--user", "carol", "--json", *ws, env=pinned)
    assert json.loads(done.stdout)["status"] == "executed"
    rows = [json.loads(line) for line in cli("audit", "list", "--json", *ws).stdout.splitlines()]
    assert {r["at"] for r in rows} == {"2026-11-25T14:00:00Z"}
    assert cli("pending", "--user", "carol", *ws, env=pinned).stdout == "Nothing waits for carol.\n"
