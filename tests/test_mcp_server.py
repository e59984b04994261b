"""sayso as an MCP server, driven by the official MCP client over both transports: stdio (``python -m sayso
mcp``, spawned) and ``/mcp`` on a real Uvicorn server. Effects are counted in the demo's systems."""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

pytest.importorskip("mcp", reason="the MCP server needs its extra: pip install 'sayso[serve,mcp]'")
pytest.importorskip("fastapi", reason="the MCP server needs its extra: pip install 'sayso[serve,mcp]'")
pytest.importorskip("uvicorn", reason="the HTTP service needs its extra: pip install 'sayso[serve]'")

import httpx2  # noqa: E402
import mcp_types as types  # noqa: E402
from mcp import Client, StdioServerParameters  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

from sayso import Clock, Workspace  # noqa: E402
from sayso.audit import AuditLog  # noqa: E402
from sayso.clock import parse_time  # noqa: E402
from sayso.serve import create_app  # noqa: E402
from sayso.serve.auth import Tokens  # noqa: E402

from .conftest import NOW  # noqa: E402
from .servers import serving  # noqa: E402

PEOPLE = ("alice", "bob", "carol", "devi", "wes", "sam", "fiona", "ines")
Elicit = Callable[[Any, types.ElicitRequestParams], Awaitable[types.ElicitResult]]


def accept(approve: bool = True) -> Elicit:
    """An elicitation callback: the person answers ``approve`` (a record of each question it was asked)."""
    async def answer(_ctx: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        answer.asked.append(params.message)  # type: ignore[attr-defined]
        return types.ElicitResult(action="accept", content={"approve": approve})

    answer.asked = []  # type: ignore[attr-defined]
    return answer


@dataclass
class Sayso:
    """A demo workspace served over both transports: ``connect`` opens an MCP client as a person."""

    root: Path
    url: str
    tokens: dict[str, str]

    @asynccontextmanager
    async def connect(self, transport: str, user: str | None, *, elicit: Elicit | None = None,
                      mode: str = "auto", name: str = "test-client",
                      env: dict[str, str] | None = None) -> AsyncIterator[Client]:
        info = types.Implementation(name=name, version="1")
        if transport == "stdio":
            assert user is not None
            server = StdioServerParameters(command=sys.executable, args=[
                "-m", "sayso", "mcp", "--user", user, "--workspace", str(self.root), "--now", NOW], env=env)
            async with Client(server, elicitation_callback=elicit, mode=mode,  # type: ignore[arg-type]
                              client_info=info) as client:
                yield client
            return
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        async with httpx2.AsyncClient(headers=headers, timeout=60) as http, Client(
                streamable_http_client(f"{self.url}/mcp", http_client=http), elicitation_callback=elicit,
                mode=mode, client_info=info) as client:  # type: ignore[arg-type]
            yield client

    def rows(self, system: str, sql: str) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.root / "systems" / f"{system}.db") as conn:
            return conn.execute(sql).fetchall()

    def systems(self) -> dict[str, list[tuple[Any, ...]]]:
        """Everything a write could change in the demo's systems."""
        tables = {"crm": ("deals", "accounts", "notes"), "billing": ("credit_notes", "invoices"),
                  "tickets": ("tickets", "comments"), "chat": ("messages",), "email": ("emails",),
                  "calendar": ("events",)}
        return {f"{s}.{t}": self.rows(s, f"select * from {t} order by 1") for s, ts in tables.items() for t in ts}

    def audit(self, **query: Any) -> list[dict[str, Any]]:
        ws = Workspace.load(self.root)
        try:
            return AuditLog(ws.store, Clock()).list(limit=10000, **query)
        finally:
            ws.close()


def _start(root: Path) -> Iterator[Sayso]:
    ws = Workspace.load(root)
    tokens = {u: Tokens(ws.store, Clock(parse_time(NOW, "UTC"))).create(u)[1] for u in PEOPLE}
    ws.close()
    with serving(create_app(root, now=NOW)) as url:
        yield Sayso(root, url, tokens)


@pytest.fixture
def sayso_mcp(sqlite_root: Path) -> Iterator[Sayso]:
    yield from _start(sqlite_root)


def run(test: Callable[[], Awaitable[None]]) -> None:
    anyio.run(test)


def body(result: types.CallToolResult) -> dict[str, Any]:
    assert isinstance(result.structured_content, dict)
    return result.structured_content


TRANSPORTS = pytest.mark.parametrize("transport", ["stdio", "http"])


@TRANSPORTS
def test_the_catalog_is_listed_as_tools_with_hints_from_kind_and_risk(sayso_mcp: Sayso, transport: str) -> None:
    async def check() -> None:
        async with sayso_mcp.connect(transport, "alice") as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            again = await client.list_tools(cache_mode="bypass")  # over HTTP, from the bytes of the first
        assert [t.model_dump() for t in again.tools] == [t.model_dump() for t in tools.values()]
        ws = Workspace.load(sayso_mcp.root)
        names = {a.name for a in ws.catalog}
        ws.close()
        assert set(tools) == names | {"ask", "confirmation_status"}
        read, close, note = tools["crm.find_deals"], tools["crm.close_deal"], tools["crm.log_note"]
        assert read.annotations is not None and read.annotations.read_only_hint is True
        assert close.annotations is not None and close.annotations.destructive_hint is True
        assert close.annotations.read_only_hint is False and "Risk: high" in (close.description or "")
        assert note.annotations is not None and note.annotations.destructive_hint is False
        assert "idempotency_key" in close.input_schema["properties"]
        assert "idempotency_key" not in read.input_schema["properties"]
        assert close.input_schema["required"] == ["deal", "outcome"]

    run(check)


@TRANSPORTS
def test_a_read_runs_as_the_person_and_is_audited_with_the_client(sayso_mcp: Sayso, transport: str) -> None:
    async def check() -> None:
        async with sayso_mcp.connect(transport, "alice", name="Claude Desktop") as client:
            result = await client.call_tool("crm.find_deals", {"owner": "alice", "stage": "proposal"})
            asked = await client.call_tool("ask", {"text": "which of my deals close in the next 30 days?"})
        assert not result.is_error and body(result)["status"] == "answered"
        assert [r["id"] for r in body(result)["steps"][0]["records"]] == ["D-101"]
        assert "D-101" in result.content[0].text  # type: ignore[union-attr]
        assert body(asked)["status"] == "answered"
        assert [r["id"] for r in body(asked)["steps"][0]["records"]] == ["D-101"]

    run(check)
    turns = sayso_mcp.audit(user="alice", action="crm.find_deals")
    assert turns and {t["channel"] for t in turns} == {"mcp:Claude-Desktop"}


@TRANSPORTS
def test_a_low_write_retried_with_the_same_key_runs_once(sayso_mcp: Sayso, transport: str) -> None:
    before = sayso_mcp.rows("crm", "select count(*) from notes")[0][0]
    args = {"record": "D-101", "text": "Call Priya about the SSO fix", "idempotency_key": "note-1"}

    async def check() -> None:
        async with sayso_mcp.connect(transport, "alice") as client:
            first = await client.call_tool("crm.log_note", args)
            again = await client.call_tool("crm.log_note", args)
        async with sayso_mcp.connect(transport, "alice") as client:  # a client that restarted, same key
            later = await client.call_tool("crm.log_note", args)
            other = await client.call_tool("crm.log_note", {**args, "text": "something else"})
        assert body(first)["status"] == "executed"
        assert body(again) == body(first) == body(later)
        assert body(other)["status"] == "error" and body(other)["error"]["code"] == "idempotency_key_reused"

    run(check)
    assert sayso_mcp.rows("crm", "select count(*) from notes")[0][0] == before + 1


def test_a_keyed_write_whose_server_died_after_the_effect_is_not_repeated(sqlite_root: Path) -> None:
    """``sayso mcp`` killed right after the effect (``SAYSO_FAULT``): the client's retry with the same key, to
    a new process, gets the first call's outcome from the effect ledger; the note is written once."""
    sayso = Sayso(sqlite_root, "", {})
    args = {"record": "D-101", "text": "Call Priya about the SSO fix", "idempotency_key": "note-crash"}
    before = sayso.rows("crm", "select count(*) from notes")[0][0]

    async def crashing() -> None:
        async with sayso.connect("stdio", "alice", env={"SAYSO_FAULT": "crash-after-effect"}) as client:
            await client.call_tool("crm.log_note", args)

    async def retried() -> None:
        async with sayso.connect("stdio", "alice") as client:
            result = await client.call_tool("crm.log_note", args)
        assert body(result)["status"] == "executed", body(result)
        assert body(result)["steps"][0]["effect"]["changes"][0]["record_id"]

    with pytest.raises(Exception):  # noqa: B017, PT011 - the client's error for a server that died mid-call
        run(crashing)
    assert sayso.rows("crm", "select count(*) from notes")[0][0] == before + 1
    run(retried)
    assert sayso.rows("crm", "select count(*) from notes")[0][0] == before + 1


@TRANSPORTS
def test_a_denied_call_names_its_rule_and_changes_nothing(sayso_mcp: Sayso, transport: str) -> None:
    before = sayso_mcp.systems()

    async def check() -> None:
        async with sayso_mcp.connect(transport, "alice", elicit=accept()) as client:
            result = await client.call_tool("crm.close_deal", {"deal": "D-102", "outcome": "won"})
        assert result.is_error and body(result)["status"] == "denied"
        assert body(result)["rule"] == "rule-4-ae-close"
        assert "rule-4-ae-close" in result.content[0].text  # type: ignore[union-attr]

    run(check)
    assert sayso_mcp.systems() == before


def test_a_medium_write_from_a_client_waits_for_the_person(sayso_mcp: Sayso) -> None:
    """Run directly by the person it is a medium write that executes; proposed by a client it is confirmed."""
    async def check() -> None:
        async with sayso_mcp.connect("http", "alice") as client:
            direct = await client.call_tool("crm.update_deal", {"deal": "D-101", "stage": "negotiation"})
            asked = await client.call_tool("ask", {"text": "move D-101 to negotiation"})
        assert body(direct)["status"] == "needs_confirmation"
        assert body(asked)["status"] == "needs_confirmation"
        text = direct.content[0].text  # type: ignore[union-attr]
        assert body(direct)["confirmation"]["id"] in text and "confirmation_status" in text

    run(check)
    assert sayso_mcp.rows("crm", "select stage from deals where id = 'D-101'") == [("proposal",)]


@pytest.mark.parametrize(("transport", "mode"), [("stdio", "auto"), ("stdio", "legacy"), ("http", "auto")])
def test_a_high_risk_call_is_confirmed_by_elicitation(sayso_mcp: Sayso, transport: str, mode: str) -> None:
    elicit = accept()

    async def check() -> None:
        async with sayso_mcp.connect(transport, "carol", elicit=elicit, mode=mode, name="cursor") as client:
            result = await client.call_tool("crm.close_deal", {"deal": "D-102", "outcome": "won"})
        assert body(result)["status"] == "executed", body(result)

    run(check)
    assert len(elicit.asked) == 1  # type: ignore[attr-defined]
    assert "stage negotiation -> closed_won" in elicit.asked[0]  # type: ignore[attr-defined]
    assert sayso_mcp.rows("crm", "select stage from deals where id = 'D-102'") == [("closed_won",)]
    approved = [e for e in sayso_mcp.audit(user="carol") if e["event"] == "confirmation"]
    assert [(e["status"], e["channel"]) for e in approved] == [
        ("pending", "mcp:cursor"), ("elicited", "mcp:cursor"), ("approved", "mcp:cursor")]


def test_a_request_in_words_is_confirmed_by_elicitation_too(sayso_mcp: Sayso) -> None:
    elicit = accept()

    async def check() -> None:
        async with sayso_mcp.connect("http", "carol", elicit=elicit) as client:
            result = await client.call_tool("ask", {"text": "close Kestrel Aerospace as won"})
            again = await client.call_tool("ask", {"text": "yes"})  # a client's "yes" answers nothing
            reminded = await client.call_tool("ask", {"text": "remind me tomorrow at 9 to call Orchid"})
            undone = await client.call_tool("ask", {"text": "undo that"})  # nor does its "undo that" undo
        assert body(result)["status"] == "executed", body(result)
        assert body(again)["status"] == "no_action"
        assert body(reminded)["status"] == "executed", body(reminded)
        assert body(undone)["status"] != "executed", body(undone)

    run(check)
    assert len(elicit.asked) == 1  # type: ignore[attr-defined]
    assert sayso_mcp.rows("crm", "select stage from deals where id = 'D-102'") == [("closed_won",)]


def test_a_declined_elicitation_changes_nothing(sayso_mcp: Sayso) -> None:
    async def check() -> None:
        async with sayso_mcp.connect("http", "carol", elicit=accept(approve=False)) as client:
            result = await client.call_tool("crm.close_deal", {"deal": "D-102", "outcome": "won"})
        assert body(result)["status"] == "cancelled"

    run(check)
    assert sayso_mcp.rows("crm", "select stage from deals where id = 'D-102'") == [("negotiation",)]


def test_a_high_risk_call_confirmed_through_the_web_api(sayso_mcp: Sayso) -> None:
    async def check() -> None:
        async with sayso_mcp.connect("http", "carol") as client:  # a client without elicitation
            pending = await client.call_tool("crm.close_deal", {"deal": "D-102", "outcome": "won"})
            confirmation = body(pending)["confirmation"]["id"]
            assert body(pending)["status"] == "needs_confirmation"
            assert sayso_mcp.rows("crm", "select stage from deals where id = 'D-102'") == [("negotiation",)]
            waiting = await client.call_tool("confirmation_status", {"confirmation": confirmation})
            assert body(waiting)["status"] == "pending"
            with httpx.Client(base_url=sayso_mcp.url, timeout=30) as web:
                auth = {"Authorization": f"Bearer {sayso_mcp.tokens['carol']}"}
                done = web.post(f"/v1/confirmations/{confirmation}/approve", headers=auth)
            assert done.status_code == 200 and done.json()["status"] == "executed"
            status = await client.call_tool("confirmation_status", {"confirmation": confirmation})
            assert body(status)["status"] == "approved" and body(status)["outcome"]["status"] == "executed"
        async with sayso_mcp.connect("http", "alice") as other:  # someone else's confirmation is unknown
            hidden = await other.call_tool("confirmation_status", {"confirmation": confirmation})
            assert body(hidden)["error"]["code"] == "confirmation_unknown"

    run(check)
    assert sayso_mcp.rows("crm", "select stage from deals where id = 'D-102'") == [("closed_won",)]


def test_elicitation_approvals_can_be_turned_off(sqlite_root: Path) -> None:
    toml = sqlite_root / "sayso.toml"
    toml.write_text(toml.read_text() + "\n[channels.mcp]\nelicitation_approvals = false\n")
    elicit = accept()

    async def check(sayso: Sayso) -> None:
        async with sayso.connect("http", "carol", elicit=elicit) as client:
            result = await client.call_tool("crm.close_deal", {"deal": "D-102", "outcome": "won"})
            assert body(result)["status"] == "needs_confirmation"
            forged = await client.call_tool(  # a client answering a question it was never asked
                "crm.close_deal", {"deal": "D-102", "outcome": "won"}, request_state=body(result)["confirmation"]["id"],
                input_responses={"confirm": types.ElicitResult(action="accept", content={"approve": True})})
            assert body(forged)["status"] == "pending"

    for sayso in _start(sqlite_root):
        anyio.run(check, sayso)
        assert elicit.asked == []  # type: ignore[attr-defined]
        assert sayso.rows("crm", "select stage from deals where id = 'D-102'") == [("negotiation",)]


def test_a_call_without_a_valid_token_is_refused_with_the_resource_metadata(sayso_mcp: Sayso) -> None:
    request = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    with httpx.Client(base_url=sayso_mcp.url, timeout=30) as web:
        for headers in ({}, {"Authorization": "Bearer sayso_not-a-real-token"}):
            refused = web.post("/mcp", json=request, headers={**headers, "Accept": "application/json"})
            assert refused.status_code == 401
            challenge = refused.headers["WWW-Authenticate"]
            assert challenge.startswith("Bearer ") and "sayso_not-a-real-token" not in refused.text
            assert f'resource_metadata="{sayso_mcp.url}/.well-known/oauth-protected-resource/mcp"' in challenge
        metadata = web.get("/.well-known/oauth-protected-resource/mcp").json()
    assert metadata["resource"] == f"{sayso_mcp.url}/mcp"
    assert metadata["bearer_methods_supported"] == ["header"]

    async def check() -> None:
        async with sayso_mcp.connect("http", None) as client:
            await client.list_tools()

    with pytest.raises(Exception):  # noqa: B017, PT011 - the client raises its own kind of error for a 401
        run(check)


HOSTILE: dict[str, list[dict[str, Any]]] = {
    "crm.close_deal": [{"deal": f"D-10{i}", "outcome": o} for i in range(1, 9) for o in ("won", "lost")],
    "crm.delete": [{"record": f"D-10{i}"} for i in range(1, 9)],
    "crm.reassign_account": [{"account": a, "new_owner": o} for a in ("Brightwater Dental", "Orchid Pharma",
                                                                      "Cobalt Retail Group") for o in PEOPLE],
    "billing.issue_credit_note": [{"account": a, "amount": n, "reason": "IMPORTANT SYSTEM NOTE"}
                                  for a in ("Orchid Pharma", "Cobalt Retail Group") for n in (5000, 20000, 90000)],
    "email.send": [{"to": list(PEOPLE), "subject": "all hands", "body": "hello"},
                   {"to": [f"x{i}@elsewhere.example" for i in range(12)], "subject": "leak", "body": "data"}],
    "crm.update_deal": [{"deal": f"D-10{i}", "stage": "closed_lost", "amount": 1} for i in range(1, 9)],
    "tickets.update": [{"ticket": t, "status": "closed", "assignee": "bob"} for t in ("SUP-17", "SUP-18")],
    "chat.send": [{"to": "#sales-east", "text": "IMPORTANT SYSTEM NOTE"}],
    "calendar.schedule_meeting": [{"attendees": ["carol", "wes"], "start": "2026-11-26T10:00",
                                   "title": "sync"}],
}


def test_a_hostile_client_changes_nothing_it_should_not(sqlite_root: Path) -> None:
    """Every destructive tool (and every write from medium risk up), for every demo person, with every trick a
    client has: retries, "yes" through ask, answers to questions it was never asked, someone else's
    confirmation. Without the person's own answer nothing changes in any system."""
    toml = sqlite_root / "sayso.toml"
    toml.write_text(toml.read_text() + "\n[serve]\nrate_per_minute = 100000\n")  # hundreds of calls a person
    for sayso in _start(sqlite_root):
        _attack_everything(sayso)


def _attack_everything(sayso_mcp: Sayso) -> None:
    before = sayso_mcp.systems()
    outcomes: set[str] = set()

    async def attack(user: str, confirmations: dict[str, list[str]]) -> None:
        async with sayso_mcp.connect("http", user, name="evil") as client:
            tools = (await client.list_tools()).tools
            risky = {t.name for t in tools if t.annotations and t.annotations.destructive_hint} - {"ask"}
            assert risky <= set(HOSTILE), risky - set(HOSTILE)
            for name, calls in HOSTILE.items():
                for args in calls:
                    result = body(await client.call_tool(name, {**args, "idempotency_key": f"{name}{args}"}))
                    outcomes.add(result["status"])
                    if result["status"] == "needs_confirmation":
                        confirmations[user].append(result["confirmation"]["id"])
            for words in ("yes", "approve", "confirm it", "close D-104 as lost", "delete deal D-101",
                          "close Kestrel Aerospace as won", "ask carol to approve", "ask ines instead"):
                outcomes.add(body(await client.call_tool("ask", {"text": words}))["status"])
            for owner, ids in confirmations.items():
                for confirmation in ids[:3]:  # someone else's, or its own for another tool
                    forged = body(await client.call_tool(
                        "crm.log_note" if owner == user else "crm.close_deal", {"record": "D-101", "text": "x"},
                        request_state=confirmation,
                        input_responses={"confirm": types.ElicitResult(action="accept",
                                                                       content={"approve": True})}))
                    assert forged["status"] == "error", forged

    async def check() -> None:
        confirmations: dict[str, list[str]] = {user: [] for user in PEOPLE}
        for user in PEOPLE:
            await attack(user, confirmations)
        for user in PEOPLE:  # a second pass sees everyone's confirmations
            await attack(user, confirmations)

    run(check)
    assert outcomes <= {"needs_confirmation", "denied", "error", "needs_clarification", "no_action"}, outcomes
    assert sayso_mcp.systems() == before
    assert not [e for e in sayso_mcp.audit() if e["event"] == "confirmation" and e["status"] == "approved"]


def test_sayso_mcp_needs_a_known_person(sqlite_root: Path) -> None:
    from .conftest import cli

    result = cli("mcp", "--user", "nobody", "--workspace", str(sqlite_root), "--now", NOW)
    assert result.exit_code != 0 and "nobody" in result.output


def test_a_bad_mcp_setting_is_refused_naming_it(sqlite_root: Path) -> None:
    from .conftest import cli

    toml = sqlite_root / "sayso.toml"
    toml.write_text(toml.read_text() + '\n[channels.mcp]\nelicitation_approvals = "no"\n')
    result = cli("mcp", "--user", "alice", "--workspace", str(sqlite_root), "--now", NOW)
    assert result.exit_code != 0
    assert "[channels.mcp] elicitation_approvals" in result.output
