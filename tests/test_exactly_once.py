"""Exactly-once, proven from outside: crash the real CLI right after an effect,
recover, and count the effects in the target system's own storage."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import NOW, sayso, sayso_json

CRASH = {"SAYSO_FAULT": "crash-after-effect"}

# (system, user, action, args, SQL counting the effect in the target system, expected count after)
CASES: list[tuple[str, str, str, dict[str, Any], str, int]] = [
    ("crm", "alice", "crm.update_deal", {"deal": "D-101", "stage": "negotiation"},
     "select count(*) from deals where id = 'D-101' and stage = 'negotiation' and version = 2", 1),
    ("crm", "alice", "crm.log_note", {"record": "D-101", "text": "called Priya"},
     "select count(*) from notes", 1),
    ("billing", "fiona", "billing.issue_credit_note", {"account": "Orchid Pharma", "amount": 2000,
                                                       "reason": "outage"},
     "select count(*) from credit_notes", 1),
    ("tickets", "alice", "tickets.create", {"title": "Follow up", "assignee": "devi", "due": "2026-12-01"},
     "select count(*) from tickets where project = 'SALES'", 2),
    ("chat", "alice", "chat.send", {"to": "carol", "text": "the Orchid deal slipped"},
     "select count(*) from messages", 1),
    ("email", "alice", "email.send", {"to": ["devi"], "subject": "Orchid", "body": "renewal terms attached"},
     "select count(*) from emails", 1),
    ("calendar", "alice", "calendar.remind", {"at": "2026-11-27T09:00", "text": "call Priya"},
     "select count(*) from events", 1),
]


def target_count(root: Path, system: str, sql: str) -> int:
    with sqlite3.connect(root / "systems" / f"{system}.db") as conn:
        return int(conn.execute(sql).fetchone()[0])


@pytest.mark.parametrize(("system", "user", "action", "args", "sql", "expected"), CASES,
                         ids=[c[2] for c in CASES])
def test_crash_after_effect_then_recover_leaves_one_effect(
    demo_root: Path, system: str, user: str, action: str, args: dict[str, Any], sql: str, expected: int
) -> None:
    command = ["do", "--user", user, "--action", action, "--args", json.dumps(args), "--now", NOW]
    if action == "billing.issue_credit_note":  # high risk: the crash comes on its confirmation
        code, asked = sayso_json(demo_root, *command)
        assert asked["status"] == "needs_confirmation", asked
        crashed = sayso(demo_root, "confirm", asked["confirmation"]["id"], "--user", user, "--now", NOW,
                        env=CRASH)
    else:
        crashed = sayso(demo_root, *command, env=CRASH)
    assert crashed.returncode == 137, crashed.stderr
    assert target_count(demo_root, system, sql) == expected  # the effect happened, sayso did not record it

    code, recovered = sayso_json(demo_root, "recover", "--now", NOW)
    assert code == 0
    assert len(recovered["recovered"]) == 1
    step = recovered["recovered"][0]["steps"][0]
    assert step["status"] == "executed"
    assert target_count(demo_root, system, sql) == expected  # looked up, not repeated

    code, again = sayso_json(demo_root, "recover", "--now", NOW)
    assert again["recovered"] == []
    assert target_count(demo_root, system, sql) == expected
    effects = [json.loads(line) for line in sayso(demo_root, "audit", "list", "--json").stdout.splitlines()]
    assert [e for e in effects if e["event"] == "effect" and e["action"] == action and e["status"] == "ok"]
    assert sayso(demo_root, "audit", "verify").returncode == 0


def test_same_confirmation_twice_concurrently_executes_once(demo_root: Path) -> None:
    code, asked = sayso_json(demo_root, "do", "--user", "carol", "--action", "crm.close_deal", "--args",
                             '{"deal": "D-102", "outcome": "won"}', "--now", NOW)
    assert asked["status"] == "needs_confirmation"
    command = [sys.executable, "-m", "sayso", "confirm", asked["confirmation"]["id"], "--user", "carol",
               "--now", NOW, "--json", "--workspace", str(demo_root)]
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    outputs = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    statuses = sorted(o["status"] for o in outputs)
    assert statuses.count("executed") == 1, outputs
    assert all(o["error"]["code"] == "confirmation_used" for o in outputs if o["status"] == "error")
    assert target_count(demo_root, "crm", "select count(*) from effects") == 1
    assert target_count(demo_root, "crm", "select count(*) from deals where id='D-102' and stage='closed_won'") == 1
