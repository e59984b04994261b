"""A minus sign is read, and an amount the schema forbids is refused with a clear error on every channel
(chat, `sayso do`, HTTP) before anything changes. Effects are counted in the demo's CRM and billing databases."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from sayso import Clock, Workspace
from sayso.cli import app
from sayso.clock import parse_time
from sayso.conversation import Chat
from sayso.errors import WorkspaceError

from .conftest import NOW, pipeline_for
from .servers import serving


def rows(root: Path, system: str, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(root / "systems" / f"{system}.db") as conn:
        return conn.execute(sql).fetchall()


def untouched(root: Path) -> None:
    assert rows(root, "crm", "select amount, version from deals where id = 'D-101'") == [(48000, 1)]
    assert rows(root, "crm", "select count(*) from effects") == [(0,)]
    assert rows(root, "billing", "select count(*) from credit_notes") == [(0,)]


@pytest.mark.parametrize("text", ["set the Brightwater amount to -30000", "set the Brightwater amount to minus 30k",
                                  "set the Brightwater amount to \u221230,000"])
def test_a_negative_deal_amount_in_chat_is_refused(sqlite_root: Path, text: str) -> None:
    result = Chat(pipeline_for(sqlite_root, "alice")).say("alice", text)
    assert result.status.value == "error" and result.error and result.error["code"] == "invalid_arguments"
    assert result.reply == "I could not do that: the amount must be positive; -30000 was given."
    assert result.error["message"] == "crm.update_deal: amount must be positive; -30000 was given"
    untouched(sqlite_root)


@pytest.mark.parametrize(("text", "amount"), [
    ("issue a credit note of -5 to Orchid Pharma", -5),
    ("issue a credit note of (5,000) to Orchid Pharma for the outage", -5000),
])
def test_a_negative_credit_note_is_refused_before_any_question(sqlite_root: Path, text: str, amount: int) -> None:
    result = Chat(pipeline_for(sqlite_root, "fiona")).say("fiona", text)
    assert result.status.value == "error" and result.error and result.error["code"] == "invalid_arguments"
    assert result.reply == f"I could not do that: the amount must be positive; {amount} was given."
    untouched(sqlite_root)


def test_a_missing_argument_is_still_asked_for(sqlite_root: Path) -> None:
    asked = Chat(pipeline_for(sqlite_root, "fiona")).say("fiona", "issue a credit note of 5 to Orchid Pharma")
    assert asked.status.value == "needs_clarification" and asked.question == {"param": "reason", "step": 0}


@pytest.mark.parametrize(("user", "action", "args"), [
    ("alice", "crm.update_deal", {"deal": "D-101", "amount": -30000}),
    ("fiona", "billing.issue_credit_note", {"account": "Orchid Pharma", "amount": -5, "reason": "outage"}),
])
def test_sayso_do_refuses_a_negative_amount(sqlite_root: Path, user: str, action: str, args: dict[str, Any]) -> None:
    done = CliRunner().invoke(app, ["do", "-u", user, "-a", action, "--args", json.dumps(args), "--now", NOW,
                                    "--json", "--workspace", str(sqlite_root)])
    assert done.exit_code == 2
    answer = json.loads(done.stdout)
    assert answer["status"] == "error" and answer["error"]["code"] == "invalid_arguments"
    assert answer["reply"] == f"{action}: amount must be positive; {args['amount']} was given"
    untouched(sqlite_root)


@pytest.fixture
def served(sqlite_root: Path) -> Iterator[tuple[str, dict[str, str]]]:
    pytest.importorskip("uvicorn", reason="the HTTP service needs its extra: pip install 'sayso[serve]'")
    from sayso.serve import create_app
    from sayso.serve.auth import Tokens

    ws = Workspace.load(sqlite_root)
    tokens = {u: Tokens(ws.store, Clock(parse_time(NOW, "UTC"))).create(u)[1] for u in ("alice", "fiona")}
    ws.close()
    with serving(create_app(sqlite_root, now=NOW)) as url:
        yield url, tokens


def test_http_refuses_a_negative_amount(sqlite_root: Path, served: tuple[str, dict[str, str]]) -> None:
    url, tokens = served
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {tokens['fiona']}"}, timeout=30) as fiona:
        direct = fiona.post("/v1/actions/billing.issue_credit_note",
                            json={"args": {"account": "Orchid Pharma", "amount": -5, "reason": "outage"}})
        assert direct.status_code == 400 and direct.json()["error"]["code"] == "invalid_arguments"
        assert "amount must be positive; -5 was given" in direct.json()["error"]["message"]
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {tokens['alice']}"}, timeout=30) as alice:
        conversation = alice.post("/v1/conversations").json()["id"]
        said = alice.post(f"/v1/conversations/{conversation}/messages",
                          json={"text": "set the Brightwater amount to -30000"})
        assert said.status_code == 400 and said.json()["error"]["code"] == "invalid_arguments"
    untouched(sqlite_root)


GOODWILL = """
actions:
  - name: billing.goodwill_credit
    kind: write
    connector: billing
    operation: issue_credit_note
    resource: {type: Account, param: account}
    risk: medium
    params:
      account: {type: string, required: true, record: Account}
      amount: {type: integer, required: true, gt: 0, lte: 10000}
      reason: {type: string, required: true}
"""


def test_a_yaml_action_bounds_its_numbers(sqlite_root: Path) -> None:
    (sqlite_root / "actions" / "goodwill.yaml").write_text(GOODWILL)
    (sqlite_root / "policies" / "goodwill.cedar").write_text(
        '@id("goodwill")\n@reason("finance gives goodwill")\npermit(principal, action == '
        'Action::"billing.goodwill_credit", resource) when { principal.role == "finance" };\n')
    pipeline = pipeline_for(sqlite_root, "fiona")
    schema = pipeline.ws.catalog.get("billing.goodwill_credit").json_schema()["properties"]["amount"]
    assert (schema["exclusiveMinimum"], schema["maximum"]) == (0, 10000)
    for amount, said in ((-50000, "must be positive; -50000"), (20000, "must be at most 10000; 20000")):
        refused = pipeline.do("fiona", "billing.goodwill_credit",
                              {"account": "Orchid Pharma", "amount": amount, "reason": "outage"})
        assert refused.status.value == "error" and said in refused.reply
    untouched(sqlite_root)


def test_a_bound_on_a_text_parameter_is_named(sqlite_root: Path) -> None:
    (sqlite_root / "actions" / "goodwill.yaml").write_text(GOODWILL.replace("Account}", "Account, gt: 0}"))
    ws = Workspace.load(sqlite_root)
    try:
        with pytest.raises(WorkspaceError, match=r"goodwill.yaml:10: .*parameter 'account': gt, gte, lt and lte"):
            _ = ws.catalog
    finally:
        ws.close()
