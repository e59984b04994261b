"""The command line as users and programs meet it: JSON shape, exit codes, audit tools."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

from .conftest import NOW, sayso, sayso_json


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
