"""MCP servers as systems: tools imported as actions, run through the real CLI, against a published
server (mcp-server-time) and a stateful one written here (tests/mcp_server_example.py), over stdio and
streamable HTTP; effects are counted in the server's own file."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp", reason="the MCP SDK is the optional extra sayso[mcp]")

from sayso import Workspace  # noqa: E402
from sayso.catalog import Tier  # noqa: E402
from sayso.connectors import Guarantee  # noqa: E402
from sayso.connectors.mcp import McpConnector, derive_risk, import_actions, snake_case  # noqa: E402
from sayso.errors import ConfigurationError, ConnectorError  # noqa: E402

from .conftest import NOW, sayso, sayso_json  # noqa: E402
from .mcp_server_example import effects, notes  # noqa: E402
from .servers import free_port  # noqa: E402

EXAMPLE = Path(__file__).with_name("mcp_server_example.py")
CRASH = {"SAYSO_FAULT": "crash-after-effect"}
DIRECTORY = """\
people:
  - {id: ines, name: Ines Kowalski, email: ines@example.com, role: admin, timezone: Europe/London}
channels: []
"""
NOTES_RISK = """\
prefix = "notes"
default_write_risk = "medium"
risk = { add_note = "low", tag_note = "low", archive_note = "medium" }
trust_idempotent = ["set_pinned"]
"""


@pytest.fixture(autouse=True)
def _notes_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """The secret the workspace passes to the notes server (environment, as [secrets.env] says)."""
    monkeypatch.setenv("NOTES_TOKEN_FOR_SAYSO", "s3cret-token")


def make_workspace(root: Path, systems: str) -> Path:
    Workspace.init(root)
    (root / "directory.yaml").write_text(DIRECTORY)
    with (root / "sayso.toml").open("a") as toml:
        toml.write('\n[secrets.env]\nnotes_token = "NOTES_TOKEN_FOR_SAYSO"\n\n' + systems)
    return root


def stdio_system(name: str, store: Path, extra: str = "") -> str:
    return (f'[systems.{name}]\nkind = "mcp"\ncommand = {json.dumps(sys.executable)}\n'
            f'args = [{json.dumps(str(EXAMPLE))}, "--store", {json.dumps(str(store))}]\n'
            'env = { NOTES_TOKEN = "{secret:notes_token}" }\n' + extra + "\n")


def http_system(name: str, url: str, extra: str = "") -> str:
    return (f'[systems.{name}]\nkind = "mcp"\nurl = "{url}"\n'
            'headers = { Authorization = "Bearer {secret:notes_token}" }\n' + extra + "\n")


@pytest.fixture
def http_notes(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The example server over streamable HTTP (Uvicorn on 127.0.0.1), in a child process."""
    store, port = tmp_path / "http-notes.jsonl", free_port()
    server = subprocess.Popen([sys.executable, str(EXAMPLE), "--store", str(store), "--port", str(port)])
    try:
        for _ in range(300):  # readiness, not a timing assertion
            if server.poll() is not None:
                raise AssertionError(f"the example server exited with {server.returncode}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp", store
    finally:
        server.terminate()
        server.wait(timeout=10)


def do(root: Path, action: str, args: dict[str, Any]) -> dict[str, Any]:
    code, result = sayso_json(root, "do", "--user", "ines", "--action", action, "--args", json.dumps(args),
                              "--now", NOW)
    return result


# --- (a) a published server: mcp-server-time ---------------------------------------------------------


def test_time_server_tools_become_actions_and_answer_with_real_data(tmp_path: Path) -> None:
    pytest.importorskip("mcp_server_time", reason="the published mcp-server-time package")
    root = make_workspace(tmp_path / "ws", f'[systems.clock]\nkind = "mcp"\nprefix = "time"\n'
                          f'command = {json.dumps(sys.executable)}\n'
                          'args = ["-m", "mcp_server_time", "--local-timezone", "Europe/London"]\n')
    code, imported = sayso_json(root, "import", "mcp", "--system", "clock")
    assert code == 0, imported
    assert {a["name"]: (a["kind"], a["risk"]) for a in imported["actions"]} == {
        "time.get_current_time": ("read", "none"), "time.convert_time": ("read", "none")}
    assert Path(imported["path"]) == root / "actions" / "time.yaml"
    assert "readOnlyHint=true" in Path(imported["path"]).read_text()  # the reason is in the reviewed file

    answer = do(root, "time.convert_time", {"source_timezone": "Asia/Tokyo", "time": "09:30",
                                            "target_timezone": "Europe/London"})
    assert answer["status"] == "answered", answer
    [record] = answer["steps"][0]["records"]
    assert record["source.timezone"] == "Asia/Tokyo" and record["target.timezone"] == "Europe/London"
    # 09:30 in Tokyo (UTC+9, no DST) is 00:30 in London in winter or 01:30 in summer: real conversion
    assert record["target.datetime"][11:16] in ("00:30", "01:30")
    assert record["source.datetime"][11:16] == "09:30"
    assert record["trust"] == "untrusted"


# --- (b) a stateful server written here, over stdio and streamable HTTP ------------------------------


@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_notes_server_imported_tiers_and_writes_through_the_cli(
    tmp_path: Path, transport: str, request: pytest.FixtureRequest
) -> None:
    if transport == "http":
        url, store = request.getfixturevalue("http_notes")
        system = http_system("notes_server", url, NOTES_RISK)
        token = "Bearer s3cret-token"
    else:
        store = tmp_path / "notes.jsonl"
        system = stdio_system("notes_server", store, NOTES_RISK)
        token = "s3cret-token"
    root = make_workspace(tmp_path / "ws", system)

    code, imported = sayso_json(root, "import", "mcp", "--system", "notes_server")
    assert code == 0, imported
    assert imported["skipped"] == [{"tool": "bulk_add", "reason": "parameter 'items' is of type array, which "
                                                                  "YAML actions cannot declare"}]
    ws = Workspace.load(root)
    tiers = {a.name: (a.kind, a.risk.tier.value, a.operation) for a in ws.catalog}
    assert tiers == {
        "notes.list_notes": ("read", "none", "list_notes"),
        "notes.count_notes": ("read", "none", "countNotes"),
        "notes.broken": ("read", "none", "broken"),
        "notes.add_note": ("write", "low", "add_note"),  # additive: the workspace's low stands
        "notes.set_pinned": ("write", "medium", "set_pinned"),  # not destructive: default_write_risk
        "notes.slow_add": ("write", "medium", "slow_add"),
        "notes.delete_notes": ("write", "high", "delete_notes"),  # destructive
        "notes.tag_note": ("write", "high", "tag_note"),  # no annotations: destructive by MCP's default,
        # which raises the workspace's low
        "notes.archive_note": ("write", "medium", "archive_note"),  # claims read-only; the workspace says medium
    }
    assert effects(store) == []  # importing lists tools; it calls none

    added = do(root, "notes.add_note", {"text": "call Priya", "tag": "todo"})
    assert added["status"] == "executed", added
    [effect] = effects(store)
    assert effect["op"] == "add_note" and effect["args"] == {"text": "call Priya", "tag": "todo"}
    assert effect["why"]["asked_by"] == "ines" and effect["why"]["conversation"] == added["conversation"]
    assert effect["key"].startswith("sk_") and effect["token"] == token

    connector = ws.connector("notes_server")  # a read in-process (reads through the CLI: the time server test)
    try:
        listed = connector.read("list_notes", {"contains": "Priya"})
    finally:
        ws.close()
    assert [(r.id, r.title, r.attrs["tag"], r.attrs["trust"]) for r in listed] == [
        ("N-1", "call Priya", "todo", "untrusted")]

    asked = do(root, "notes.delete_notes", {"tag": "todo"})
    assert asked["status"] == "needs_confirmation", asked
    assert len(effects(store)) == 1  # nothing happens before the confirmation
    code, confirmed = sayso_json(root, "confirm", asked["confirmation"]["id"], "--user", "ines", "--now", NOW)
    assert confirmed["status"] == "executed", confirmed
    assert [e["op"] for e in effects(store)] == ["add_note", "delete_notes"]
    assert notes(store) == {}
    assert b"s3cret-token" not in (root / "state.db").read_bytes()  # the audit and the ledger never hold it


# --- (c) crash after the effect ----------------------------------------------------------------------


def test_crash_after_effect_is_outcome_unknown_and_never_called_again(tmp_path: Path) -> None:
    store = tmp_path / "notes.jsonl"
    root = make_workspace(tmp_path / "ws", stdio_system("notes_server", store, NOTES_RISK))
    ws = Workspace.load(root)
    try:
        import_actions(ws, "notes_server")  # as `sayso import mcp` does (the CLI is used above)
    finally:
        ws.close()

    crashed = sayso(root, "do", "--user", "ines", "--action", "notes.add_note", "--args", '{"text": "once"}',
                    "--now", NOW, env=CRASH)
    assert crashed.returncode == 137, crashed.stderr
    assert [e["op"] for e in effects(store)] == ["add_note"]  # it happened; sayso did not record it
    # A tool the workspace trusts and the server marks idempotent may be called again after a crash.
    crashed = sayso(root, "do", "--user", "ines", "--action", "notes.set_pinned", "--args",
                    '{"id": "N-1", "pinned": true}', "--now", NOW, env=CRASH)
    assert crashed.returncode == 137, crashed.stderr

    code, recovered = sayso_json(root, "recover", "--now", NOW)
    assert code == 0
    steps = {r["steps"][0]["action"]: r["steps"][0]["status"] for r in recovered["recovered"]}
    assert steps == {"notes.add_note": "outcome_unknown", "notes.set_pinned": "executed"}
    assert [e["op"] for e in effects(store)].count("add_note") == 1  # not called again
    assert [e["op"] for e in effects(store)].count("set_pinned") == 2  # called again, to the same end
    assert notes(store)["N-1"].pinned is True


# --- risk, in-process ------------------------------------------------------------------------------


def test_annotations_only_raise_the_workspace_tier() -> None:
    from mcp.types import ToolAnnotations

    def risk(hints: ToolAnnotations | None, override: Tier | None = None, default: Tier = Tier.LOW) -> tuple[str, str]:
        found = derive_risk(hints, override=override, default_write=default)
        return found.kind, found.tier.value

    assert risk(ToolAnnotations(read_only_hint=True)) == ("read", "none")
    assert risk(ToolAnnotations(read_only_hint=True), Tier.MEDIUM) == ("write", "medium")
    assert risk(ToolAnnotations(read_only_hint=True), Tier.NONE) == ("read", "none")
    assert risk(None, Tier.NONE) == ("write", "high")
    assert risk(ToolAnnotations(destructive_hint=True), Tier.LOW) == ("write", "high")
    assert risk(ToolAnnotations(destructive_hint=False)) == ("write", "low")
    assert risk(ToolAnnotations(destructive_hint=False), Tier.CRITICAL) == ("write", "critical")
    assert derive_risk(ToolAnnotations(read_only_hint=True), override=None, default_write=Tier.LOW,
                       trust_read_only=False).kind == "write"
    assert [snake_case(n) for n in ("getCurrentTime", "get-current-time", "HTTPStatus", "a.b")] == [
        "get_current_time", "get_current_time", "http_status", "a_b"]


def test_allow_list_guarantees_and_the_why_in_process(tmp_path: Path) -> None:
    store = tmp_path / "notes.jsonl"
    root = make_workspace(tmp_path / "ws", stdio_system(
        "notes_server", store, 'tools = ["list_notes", "set_pinned", "add_note", "gone"]\n'
                               'trust_idempotent = ["set_pinned"]\n'))
    ws = Workspace.load(root)
    try:
        done = import_actions(ws, "notes_server")
        assert [a["name"] for a in done.actions] == ["notes_server.list_notes", "notes_server.add_note",
                                                     "notes_server.set_pinned"]
        assert done.skipped == [("gone", "listed in tools, but the server does not offer it")]
        connector = ws.connector("notes_server")
        assert isinstance(connector, McpConnector)
        assert "s3cret" not in repr(connector)
        assert connector.guarantee_for("set_pinned") is Guarantee.IDEMPOTENT
        assert connector.guarantee_for("add_note") is Guarantee.AT_LEAST_ONCE
        with pytest.raises(ConfigurationError, match="'delete_notes' is not in"):
            connector.execute("delete_notes", {"tag": "x"}, key="sk_1")
        effect = connector.execute("add_note", {"text": "hi"}, key="sk_2",
                                   origin={"actor": "ines", "request": "note hi", "related": ["D-1"]})
        assert effect.result["output"]["id"] == "N-1" and effect.result["trust"] == "untrusted"
        [line] = effects(store)
        assert line["key"] == "sk_2"
        assert line["why"] == {"asked_by": "ines", "request": "note hi", "related": ["D-1"]}
    finally:
        ws.close()
    assert effects(store)[0]["token"] == "s3cret-token"


def test_import_replaces_only_its_own_file(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "ws", stdio_system("notes_server", tmp_path / "notes.jsonl"))
    mine = root / "actions" / "notes_server.yaml"
    mine.write_text("# written by hand\nactions: []\n")
    refused = sayso(root, "import", "mcp", "--system", "notes_server")  # a child process: the server needs real pipes
    assert refused.returncode == 3 and "not written by `sayso import mcp`" in refused.stderr
    assert mine.read_text() == "# written by hand\nactions: []\n"
    mine.unlink()
    for _ in range(2):  # its own file, it refreshes
        sayso(root, "import", "mcp", "--system", "notes_server", check=True)
    assert mine.read_text().startswith("# Actions imported from the MCP system 'notes_server'")


# --- (d) failures ------------------------------------------------------------------------------------


def test_failures_are_clear_errors(tmp_path: Path) -> None:
    store = tmp_path / "notes.jsonl"
    closed = free_port()
    root = make_workspace(tmp_path / "ws", stdio_system("notes_server", store) + "\n".join([
        '[systems.missing]\nkind = "mcp"\ncommand = "/nonexistent/mcp-server"\n',
        f'[systems.quits]\nkind = "mcp"\ncommand = {json.dumps(sys.executable)}\nargs = ["-c", "pass"]\n',
        f'[systems.nobody]\nkind = "mcp"\nurl = "http://127.0.0.1:{closed}/mcp"\ntimeout = 5\n',
        '[systems.both]\nkind = "mcp"\ncommand = "x"\nurl = "http://127.0.0.1:1/mcp"\n',
        '[systems.typo]\nkind = "mcp"\ncomand = "x"\n',
        '[systems.unset]\nkind = "mcp"\nurl = "http://127.0.0.1:1/mcp"\n'
        'headers = { Authorization = "Bearer {secret:not_set}" }\n',
        '[systems.crm]\nkind = "demo.crm"\n',
        stdio_system("impatient", store, "timeout = 1\n"),
    ]))
    ws = Workspace.load(root)
    try:
        with pytest.raises(ConfigurationError, match="cannot start the MCP server .*/nonexistent/mcp-server"):
            import_actions(ws, "missing")
        with pytest.raises(ConnectorError, match="quits: cannot connect to the MCP server"):
            ws.connector("quits").read("anything", {})
        with pytest.raises(ConnectorError, match="nobody: cannot connect to the MCP server"):
            ws.connector("nobody").read("anything", {})
        with pytest.raises(ConfigurationError, match="set either command"):
            ws.connector("both")
        with pytest.raises(ConfigurationError, match=r"\[systems.typo\] comand: Extra inputs"):
            ws.connector("typo")
        with pytest.raises(ConfigurationError, match="secret 'not_set' is not set"):
            ws.connector("unset")
        with pytest.raises(ConfigurationError, match="kind 'demo.crm', not an MCP server"):
            import_actions(ws, "crm")

        notes_server = ws.connector("notes_server")
        with pytest.raises(ConnectorError, match="MCP tool 'broken' failed: .*the note store is locked"):
            notes_server.read("broken", {})
        with pytest.raises(ConnectorError, match="MCP tool 'broken' failed: .*disk full"):
            notes_server.read("broken", {"reason": "disk full"})
        with pytest.raises(ConnectorError, match="has no tool 'vanished'"):
            notes_server.read("vanished", {})
        with pytest.raises(ConnectorError, match="'tag_note' is not a read-only tool for this workspace"):
            notes_server.read("tag_note", {"id": "N-1", "tag": "x"})
        assert notes_server.read("countNotes", {})[0].attrs["text"] == "0 notes"  # the session is still fine
        assert effects(store) == []

        with pytest.raises(ConnectorError, match="slow_add.* timed out .*may or may not have taken effect"):
            ws.connector("impatient").execute("slow_add", {"text": "late", "seconds": 3}, key="sk_slow")
        assert [e["op"] for e in effects(store)] == ["slow_add"]  # it did: why a cut-off write says so
    finally:
        ws.close()
