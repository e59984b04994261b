"""The demo's close limit holds against every way of moving the amount around it (docs/policies.md,
"The amount rule"): no sequence of alice's own requests and confirmations closes D-102 (240,000), by
direct actions or in chat; each escape is denied by a named rule, changes nothing, and points to carol,
who still may."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from sayso.cli import app
from sayso.conversation import Chat

from .conftest import NOW, pipeline_for

DEALS = "select id, amount, stage, close_date, owner, version from deals order by id"


def deals(root: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(root / "systems" / "crm.db") as conn:
        return conn.execute(DEALS).fetchall()


def deal(root: Path, deal_id: str) -> tuple[int, str]:
    [row] = [(r[1], r[2]) for r in deals(root) if r[0] == deal_id]
    return row


def cli(root: Path, *args: str) -> dict[str, Any]:
    done = CliRunner().invoke(app, [*args, "--workspace", str(root), "--now", NOW, "--json"])
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def do(root: Path, user: str, action: str, **args: Any) -> dict[str, Any]:
    return cli(root, "do", "--user", user, "--action", action, "--args", json.dumps(args))


def run(root: Path, user: str, action: str, **args: Any) -> dict[str, Any]:
    """Do it, and confirm it as the same person when it asks: all a person can do on their own."""
    out = do(root, user, action, **args)
    if out["status"] == "needs_confirmation":
        out = cli(root, "confirm", out["confirmation"]["id"], "--user", user)
    return out


def test_alice_cannot_close_d102_by_any_direct_sequence(sqlite_root: Path) -> None:
    root = sqlite_root
    escapes: list[tuple[str, dict[str, Any], str]] = [
        ("crm.close_deal", {"deal": "D-102", "outcome": "won"}, "rule-4-ae-close"),
        # lower, then close
        ("crm.update_deal", {"deal": "D-102", "amount": 1000}, "rule-4-ae-keep-above-limit"),
        ("crm.update_deal", {"deal": "D-102", "amount": 100_000}, "rule-4-ae-keep-above-limit"),
        ("crm.update_deal", {"deal": "D-102", "amount": 90_000, "stage": "proposal"}, "rule-4-ae-keep-above-limit"),
        # reopen a closed deal, or change it after the close
        ("crm.update_deal", {"deal": "D-108", "stage": "negotiation"}, "rule-4-ae-update"),
        ("crm.update_deal", {"deal": "D-108", "amount": 240_000}, "rule-4-ae-update"),
        ("crm.update_deal", {"deal": "D-108", "close_date": "2027-01-15"}, "rule-4-ae-update"),
    ]
    for action, args, rule in escapes:
        before = deals(root)
        out = run(root, "alice", action, **args)
        assert (out["status"], out["rule"]) == ("denied", rule), (action, args, out)
        assert "carol" in out["reply"], out["reply"]
        assert deals(root) == before, (action, args)

    # What alice may do stays possible, and still leads nowhere: above the limit stays above it.
    assert run(root, "alice", "crm.update_deal", deal="D-102", amount=100_001)["status"] == "executed"
    assert run(root, "alice", "crm.update_deal", deal="D-102", amount=1000)["rule"] == "rule-4-ae-keep-above-limit"
    assert run(root, "alice", "crm.update_deal", deal="D-102", close_date="2026-12-01")["status"] == "executed"
    assert run(root, "alice", "crm.close_deal", deal="D-102", outcome="won")["rule"] == "rule-4-ae-close"

    # Close a deal within the limit (her own confirmation), then try to raise, move or reopen it.
    assert run(root, "alice", "crm.close_deal", deal="D-101", outcome="won")["status"] == "executed"
    for args in ({"amount": 240_000}, {"stage": "negotiation"}, {"close_date": "2027-06-30"}):
        before = deals(root)
        out = run(root, "alice", "crm.update_deal", deal="D-101", **args)
        assert (out["status"], out["rule"]) == ("denied", "rule-4-ae-update"), out
        assert deals(root) == before
    assert deal(root, "D-101") == (48_000, "closed_won")
    assert deal(root, "D-102") == (100_001, "negotiation")
    assert deal(root, "D-108") == (9_500, "closed_won")


def test_alice_cannot_close_d102_in_chat_and_carol_can(sqlite_root: Path) -> None:
    root = sqlite_root
    alice = Chat(pipeline_for(root, "alice"))
    conversation = None
    tries = [
        ("set the Kestrel Aerospace amount to 1000", "rule-4-ae-keep-above-limit"),
        ("close Kestrel Aerospace as won", "rule-4-ae-close"),
        ("set the Kestrel Aerospace amount to 90000 and close it as won", "rule-4-ae-keep-above-limit"),
        # one plan, decided step after step: the raise is decided on the deal the close leaves behind
        ("close the Brightwater deal as won and set its amount to 240000", "rule-4-ae-update"),
        ("move the Juniper deal to negotiation", "rule-4-ae-update"),
        ("set the Juniper amount to 240000", "rule-4-ae-update"),
    ]
    for text, rule in tries:
        before = deals(root)
        result = alice.say("alice", text, conversation)
        conversation = result.conversation
        if result.status.value == "needs_confirmation":
            result = alice.say("alice", "yes", conversation)
        assert (result.status.value, result.rule) == ("denied", rule), (text, result.reply)
        assert "carol" in result.reply
        assert deals(root) == before, text
    assert deal(root, "D-102") == (240_000, "negotiation")
    assert deal(root, "D-101") == (48_000, "proposal")

    # Within the limit, a plan that sets the amount first is decided on the amount it sets.
    both = alice.say("alice", "set the Brightwater amount to 50000 and close it as won", conversation)
    assert both.status.value == "needs_confirmation", both.reply
    assert alice.say("alice", "yes", both.conversation).status.value == "executed"
    assert deal(root, "D-101") == (50_000, "closed_won")

    # Someone else's approval: carol may lower, reopen and close.
    carol = Chat(pipeline_for(root, "carol"))
    assert carol.say("carol", "move the Juniper deal to negotiation").status.value == "executed"
    assert deal(root, "D-108") == (9_500, "negotiation")
    assert carol.say("carol", "set the Kestrel Aerospace amount to 90000").status.value == "executed"
    asked = carol.say("carol", "close Kestrel Aerospace as won")
    assert asked.status.value == "needs_confirmation", asked.reply
    assert carol.say("carol", "yes", asked.conversation).status.value == "executed"
    assert deal(root, "D-102") == (90_000, "closed_won")
