"""Model interpreters end to end: the real OpenAI and Anthropic clients, configured in sayso.toml, talking
to a local server that answers in each API's documented format; `sayso chat --json` drives the turns."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import NOW
from .fake_models import Call, FakeModelServer, Reply

KEY = "sk-test-0123456789abcdef"


def configure(root: Path, name: str, base_url: str, **extra: Any) -> None:
    lines = [f'name = "{name}"', 'model = "test-model"', f'base_url = "{base_url}"', 'api_key_env = "SAYSO_TEST_KEY"',
             "timeout_seconds = 5"] + [f"{k} = {json.dumps(v)}" for k, v in extra.items()]
    toml = (root / "sayso.toml").read_text() + "\n[interpreter]\n" + "\n".join(lines) + "\n"
    (root / "sayso.toml").write_text(toml)


def chat(root: Path, user: str, *said: str) -> list[dict[str, Any]]:
    done = subprocess.run([sys.executable, "-m", "sayso", "chat", "--workspace", str(root), "--user", user, "--now",
                           NOW, "--json"], input="\n".join(said) + "\n", capture_output=True, text=True, timeout=120,
                          env={**os.environ, "SAYSO_TEST_KEY": KEY})
    out = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(out) == len(said), done.stderr
    return out


def last_user_text(body: dict[str, Any]) -> str:
    content = body["messages"][-1]["content"]
    if isinstance(content, list):  # Anthropic content blocks
        return " ".join(block.get("text", "") for block in content if isinstance(block, dict))
    return str(content)


def script(body: dict[str, Any]) -> Reply:
    text = last_user_text(body)
    if not body.get("tools"):
        return Reply(text="SUP-18 is about Orchid's export timing out.")
    if "Brightwater" in text:
        return Reply(calls=[Call("crm__update_deal", {"deal": "Brightwater", "stage": "negotiation"})])
    if "note" in text:
        return Reply(calls=[Call("crm__log_note", {"record": "D-104", "text": "legal review done"})])
    return Reply(text="I can help with deals, tickets and messages.")


@pytest.mark.parametrize("api", ["openai", "anthropic"])
def test_chat_through_a_model_server(sqlite_root: Path, api: str) -> None:
    with FakeModelServer(script) as server:
        configure(sqlite_root, api, server.openai_url if api == "openai" else server.url)
        out = chat(sqlite_root, "alice", "move Brightwater to negotiation", "yes", "add a note on Orchid",
                   "what's the weather?")
        received = list(server.received)
    assert [o["status"] for o in out] == ["needs_confirmation", "executed", "executed", "no_action"]
    assert out[3]["reply"] == "I can help with deals, tickets and messages."
    with sqlite3.connect(sqlite_root / "systems" / "crm.db") as conn:
        assert conn.execute("select stage from deals where id = 'D-101'").fetchone() == ("negotiation",)
        assert conn.execute("select count(*) from notes").fetchone() == (1,)
    # "yes" never went to the model: three requests for four messages
    assert len(received) == 3
    first = received[0]
    if api == "openai":
        assert first.body["messages"][0]["role"] == "system" and first.headers["authorization"] == f"Bearer {KEY}"
        assert all(t["type"] == "function" for t in first.body["tools"])
    else:
        assert "system" in first.body
        sent = first.headers.get("x-api-key") or first.headers.get("authorization", "").removeprefix("Bearer ")
        assert sent == KEY
        assert all("input_schema" in t for t in first.body["tools"])
    audit = subprocess.run([sys.executable, "-m", "sayso", "audit", "list", "--workspace", str(sqlite_root), "--json"],
                           capture_output=True, text=True, timeout=120)
    assert KEY not in audit.stdout and "test-model" in audit.stdout


def test_an_unreachable_model_falls_back_and_says_so(sqlite_root: Path) -> None:
    configure(sqlite_root, "openai", "http://127.0.0.1:9/v1")
    out = chat(sqlite_root, "alice", "which of my deals close in the next 30 days?")
    assert out[0]["status"] == "answered" and "could not be reached" in out[0]["reply"]
    assert KEY not in json.dumps(out)


def test_check_names_a_model_interpreter_without_a_model(sqlite_root: Path) -> None:
    toml = (sqlite_root / "sayso.toml").read_text() + '\n[interpreter]\nname = "anthropic"\n'
    (sqlite_root / "sayso.toml").write_text(toml)
    done = subprocess.run([sys.executable, "-m", "sayso", "check", "--workspace", str(sqlite_root)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "needs a model" in done.stdout + done.stderr
