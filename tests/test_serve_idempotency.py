"""An Idempotency-Key whose process died: real ``sayso serve`` processes crash (``SAYSO_FAULT``) right after an
effect, and a retry on another process gets the request's real outcome, with the effect counted once in the
target system; a key taken by a process that died before anything ran is released and runs once."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

pytest.importorskip("fastapi", reason="the HTTP service needs its extra: pip install 'sayso[serve]'")
pytest.importorskip("uvicorn", reason="the HTTP service needs its extra: pip install 'sayso[serve]'")

from .conftest import NOW  # noqa: E402
from .processes import chat_messages, client, serve, tokens_for  # noqa: E402

CRASH = {"SAYSO_FAULT": "crash-after-effect"}


def keys(root: Path) -> dict[str, int]:
    with sqlite3.connect(root / "state.db") as conn:
        return dict(conn.execute("select key, status from idempotency").fetchall())


def test_a_key_whose_process_died_after_the_effect_answers_the_real_outcome(sqlite_root: Path) -> None:
    tokens = tokens_for(sqlite_root)
    direct = {"args": {"to": "carol", "text": "sent once"}}
    said = {"text": "tell carol it shipped"}
    survivor = serve(sqlite_root, name="survivor")  # up before the crashes: its recovery at start found nothing
    try:
        crashing = serve(sqlite_root, name="crashing-1", env=CRASH)
        with client(crashing.url, tokens["alice"]) as alice, pytest.raises(httpx.TransportError):
            alice.post("/v1/actions/chat.send", json=direct, headers={"Idempotency-Key": "k-direct"})
        assert crashing.process.wait(30) == 137
        assert chat_messages(sqlite_root) == 1 and keys(sqlite_root) == {"k-direct": 0}  # done, never answered
        with client(survivor.url, tokens["alice"]) as alice:
            # the plan is still running under the dead process's lease: the retry finishes it (its step looked up
            # in the chat system, not repeated) and answers what it came to
            sent = alice.post("/v1/actions/chat.send", json=direct, headers={"Idempotency-Key": "k-direct"})
        assert sent.status_code == 200, sent.text  # it was 409 idempotency_in_progress, forever

        crashing = serve(sqlite_root, name="crashing-2", env=CRASH)
        with client(crashing.url, tokens["alice"]) as alice:
            conversation = alice.post("/v1/conversations").json()["id"]
            with pytest.raises(httpx.TransportError):
                alice.post(f"/v1/conversations/{conversation}/messages", json=said,
                           headers={"Idempotency-Key": "k-said"})
        assert crashing.process.wait(30) == 137
        assert chat_messages(sqlite_root) == 2 and keys(sqlite_root)["k-said"] == 0
        with client(survivor.url, tokens["alice"]) as alice:
            told = alice.post(f"/v1/conversations/{conversation}/messages", json=said,
                              headers={"Idempotency-Key": "k-said"})
            for answer in (sent, told):
                assert answer.status_code == 200, answer.text
                assert answer.headers.get("idempotent-replay") == "true"
                body = answer.json()
                assert body["status"] == "executed" and [s["action"] for s in body["steps"]] == ["chat.send"]
                assert body["steps"][0]["status"] == "executed" and body["steps"][0]["effect"]["changes"]
            assert told.json()["conversation"] == conversation
            again = [alice.post("/v1/actions/chat.send", json=direct, headers={"Idempotency-Key": "k-direct"}),
                     alice.post(f"/v1/conversations/{conversation}/messages", json=said,
                                headers={"Idempotency-Key": "k-said"})]
            assert [a.json() for a in again] == [sent.json(), told.json()]
    finally:
        survivor.stop()
    assert chat_messages(sqlite_root) == 2  # each effect once
    assert keys(sqlite_root) == {"k-direct": 200, "k-said": 200}


def crash_holding(root: Path, body: str) -> str:
    """Run ``body`` in a child process that holds ``keys`` and ``chat`` on the workspace and dies (137) where
    ``body`` calls ``die()``; what it printed."""
    script = textwrap.dedent(f"""
        import os
        from pathlib import Path

        from sayso import Workspace
        from sayso.clock import Clock
        from sayso.conversation import Chat
        from sayso.pipeline import Pipeline
        from sayso.serve.idempotency import Keys

        ws = Workspace.load(Path({str(root)!r}))
        keys = Keys(ws.store, lambda turn, plan: None)
        chat = Chat(Pipeline(ws, Clock.from_option({NOW!r}, "UTC"), channel="api"))

        def die():
            os._exit(137)
    """) + textwrap.dedent(body)
    died = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert died.returncode == 137, died.stderr
    return died.stdout.strip()


def test_a_key_whose_process_died_before_answering_is_released_or_answered_from_what_ran(
        sqlite_root: Path) -> None:
    tokens = tokens_for(sqlite_root)
    request = {"args": {"to": "carol", "text": "after the crash"}}
    # took the key, then died before running anything
    crash_holding(sqlite_root, f"""
        keys.run("alice", "k-nothing", {{"action": "chat.send", "args": {json.dumps(request["args"])}}},
                 lambda turn: die(), at={NOW!r})
    """)
    # ran the turn to the end and saved its reply, then died before storing the key's answer
    conversation = crash_holding(sqlite_root, f"""
        conversation = chat.new("alice")
        print(conversation, flush=True)
        keys.run("alice", "k-saved", {{"conversation": conversation, "text": "tell carol the reply is saved"}},
                 lambda turn: (chat.say("alice", "tell carol the reply is saved", conversation, turn_id=turn),
                               die()), at={NOW!r})
    """)
    assert keys(sqlite_root) == {"k-nothing": 0, "k-saved": 0} and chat_messages(sqlite_root) == 1
    server = serve(sqlite_root)
    try:
        with client(server.url, tokens["alice"]) as alice:
            answers = [alice.post("/v1/actions/chat.send", json=request, headers={"Idempotency-Key": "k-nothing"})
                       for _ in range(3)]
            other = alice.post("/v1/actions/chat.send", json={"args": {"to": "carol", "text": "else"}},
                               headers={"Idempotency-Key": "k-nothing"})
            saved = alice.post(f"/v1/conversations/{conversation}/messages",
                               json={"text": "tell carol the reply is saved"}, headers={"Idempotency-Key": "k-saved"})
            shown = alice.get(f"/v1/conversations/{conversation}").json()
    finally:
        server.stop()
    assert answers[0].status_code == 200 and answers[0].json()["status"] == "executed", answers[0].text
    assert answers[0].headers.get("idempotent-replay") is None  # it ran, now
    assert [a.json() for a in answers[1:]] == [answers[0].json()] * 2
    assert all(a.headers.get("idempotent-replay") == "true" for a in answers[1:])
    assert other.status_code == 422
    assert saved.status_code == 200 and saved.headers.get("idempotent-replay") == "true", saved.text
    assert saved.json()["status"] == "executed" and saved.json()["conversation"] == conversation
    assert saved.json()["reply"] == shown["messages"][-1]["text"]
    assert saved.json()["turn"] == shown["messages"][-1]["turn"]
    assert chat_messages(sqlite_root) == 2  # one for each request
