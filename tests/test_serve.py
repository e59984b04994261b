"""The HTTP API against a real Uvicorn server on loopback: every endpoint, who may see and answer what,
idempotent retries, limits and progress events. Effects are counted in the target systems."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("fastapi", reason="the HTTP service needs its extra: pip install 'sayso[serve]'")
pytest.importorskip("uvicorn", reason="the HTTP service needs its extra: pip install 'sayso[serve]'")

from sayso import Clock, Workspace  # noqa: E402
from sayso.audit import AuditLog  # noqa: E402
from sayso.clock import parse_time  # noqa: E402
from sayso.serve import create_app  # noqa: E402
from sayso.serve.auth import Tokens  # noqa: E402

from .conftest import NOW  # noqa: E402
from .servers import serving  # noqa: E402

USERS = ("alice", "bob", "carol", "ines", "sam")


@dataclass
class Api:
    url: str
    tokens: dict[str, str]
    root: Path

    def client(self, user: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def crm(self, sql: str) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.root / "systems" / "crm.db") as conn:
            return conn.execute(sql).fetchall()

    def chat_messages(self) -> int:
        with sqlite3.connect(self.root / "systems" / "chat.db") as conn:
            return int(conn.execute("select count(*) from messages").fetchone()[0])


def start(root: Path) -> Iterator[Api]:
    ws = Workspace.load(root)
    tokens = {u: Tokens(ws.store, Clock(parse_time(NOW, "UTC"))).create(u)[1] for u in USERS}
    ws.close()
    with serving(create_app(root, now=NOW)) as url:
        yield Api(url, tokens, root)


@pytest.fixture
def api(sqlite_root: Path) -> Iterator[Api]:
    yield from start(sqlite_root)


def say(client: httpx.Client, conversation: str, text: str, **headers: str) -> httpx.Response:
    return client.post(f"/v1/conversations/{conversation}/messages", json={"text": text}, headers=headers)


def test_the_api_docs_work_offline_and_the_favicon_is_served(api: Api) -> None:
    with api.client(None) as anyone:
        docs = anyone.get("/docs")
        assert docs.status_code == 200 and "swagger-ui-bundle.js" in docs.text
        assert "cdn" not in docs.text.lower() and "https://" not in docs.text  # every asset from this server
        for asset in ("/static-offline-docs/swagger-ui-bundle.js", "/static-offline-docs/swagger-ui.css"):
            assert anyone.get(asset).status_code == 200, asset
        assert anyone.get("/redoc").status_code == 200
        icon = anyone.get("/favicon.ico")
        assert icon.status_code == 200 and icon.headers["content-type"] == "image/png"
        assert "/favicon.ico" not in anyone.get("/openapi.json").json()["paths"]


def test_health_needs_no_token_everything_else_does(api: Api) -> None:
    with api.client(None) as anyone:
        assert anyone.get("/healthz").json() == {"status": "ok"}
        assert anyone.get("/readyz").status_code == 200
        for method, path in (("GET", "/v1/actions"), ("POST", "/v1/conversations"), ("GET", "/v1/audit"),
                             ("GET", "/v1/confirmations"), ("GET", "/v1/me")):
            response = anyone.request(method, path)
            assert response.status_code == 401, path
            assert response.json()["error"]["code"] == "unauthorized"
        bad = anyone.get("/v1/me", headers={"Authorization": "Bearer sayso_not-a-real-token"})
        assert bad.status_code == 401 and "sayso_not-a-real-token" not in bad.text
        spec = anyone.get("/openapi.json").json()
        assert "/v1/conversations/{conversation}/messages" in spec["paths"]


def test_a_conversation_over_http(api: Api) -> None:
    with api.client("alice") as alice:
        assert alice.get("/v1/me").json()["id"] == "alice"
        conversation = alice.post("/v1/conversations").json()["id"]
        first = say(alice, conversation, "which of my deals close in the next 30 days?")
        assert first.status_code == 200 and first.json()["status"] == "answered"
        assert [r["id"] for r in first.json()["steps"][0]["records"]] == ["D-101"]
        moved = say(alice, conversation, "move the Brightwater one to negotiation").json()
        assert moved["status"] == "executed" and moved["conversation"] == conversation
        assert api.crm("select stage from deals where id = 'D-101'") == [("negotiation",)]
        shown = alice.get(f"/v1/conversations/{conversation}").json()
        assert [m["role"] for m in shown["messages"]] == ["person", "sayso", "person", "sayso"]
        assert [(c["id"], c["title"]) for c in alice.get("/v1/conversations").json()] == [
            (conversation, "which of my deals close in the next 30 days?")]  # labelled by its first request
        timeline = alice.get(f"/v1/conversations/{conversation}/timeline").json()
        assert {"interpretation", "decision", "effect"} <= {e["event"] for e in timeline}
        assert {a["name"] for a in alice.get("/v1/actions").json()} >= {"crm.update_deal", "chat.send"}


def test_another_persons_conversation_and_confirmation_do_not_exist(api: Api) -> None:
    with api.client("carol") as carol, api.client("bob") as bob, api.client("alice") as alice:
        conversation = carol.post("/v1/conversations").json()["id"]
        asked = say(carol, conversation, "close Kestrel Aerospace as won").json()
        assert asked["status"] == "needs_confirmation"
        confirmation = asked["confirmation"]["id"]
        for response in (bob.get(f"/v1/conversations/{conversation}"),
                         say(bob, conversation, "yes"),
                         bob.get(f"/v1/conversations/{conversation}/timeline"),
                         alice.post(f"/v1/confirmations/{confirmation}/approve"),
                         alice.post(f"/v1/confirmations/{confirmation}/decline")):
            assert response.status_code == 404, response.text
            assert response.json()["error"]["code"] in ("conversation_unknown", "confirmation_unknown")
        assert bob.get("/v1/confirmations").json() == []
        assert [c["id"] for c in carol.get("/v1/confirmations").json()] == [confirmation]
        assert api.crm("select stage from deals where id = 'D-102'") == [("negotiation",)]
        done = carol.post(f"/v1/confirmations/{confirmation}/approve").json()
        assert done["status"] == "executed"
        after = carol.get(f"/v1/conversations/{conversation}").json()
        assert after["pending"] is None and after["messages"][-1]["status"] == "executed"
        again = carol.post(f"/v1/confirmations/{confirmation}/approve")
        assert again.status_code == 409 and again.json()["error"]["code"] == "confirmation_used"
        assert api.crm("select stage from deals where id = 'D-102'") == [("closed_won",)]
        assert api.crm("select count(*) from effects where operation = 'close_deal'") == [(1,)]


def test_decline_cancels_and_changes_nothing(api: Api) -> None:
    with api.client("carol") as carol:
        conversation = carol.post("/v1/conversations").json()["id"]
        asked = say(carol, conversation, "close Kestrel Aerospace as won").json()
        declined = carol.post(f"/v1/confirmations/{asked['confirmation']['id']}/decline").json()
        assert declined["status"] == "cancelled"
        assert api.crm("select stage from deals where id = 'D-102'") == [("negotiation",)]


def test_the_caller_is_the_token_never_the_body(api: Api) -> None:
    with api.client("alice") as alice:
        forged = alice.post("/v1/actions/crm.close_deal",
                            json={"args": {"deal": "D-102", "outcome": "won"}, "user": "carol", "actor": "carol"})
        assert forged.json()["status"] == "denied" and forged.json()["rule"] == "rule-4-ae-close"
        conversation = alice.post("/v1/conversations", json={"user": "carol"}).json()["id"]
        said = alice.post(f"/v1/conversations/{conversation}/messages",
                          json={"text": "close Kestrel Aerospace as won", "user": "carol"}).json()
        assert said["status"] == "denied"
        assert api.crm("select stage from deals where id = 'D-102'") == [("negotiation",)]


def test_a_retried_post_runs_once(api: Api) -> None:
    with api.client("alice") as alice:
        conversation = alice.post("/v1/conversations").json()["id"]
        first = say(alice, conversation, "tell carol the demo went well", **{"Idempotency-Key": "k-1"})
        second = say(alice, conversation, "tell carol the demo went well", **{"Idempotency-Key": "k-1"})
        assert first.json()["status"] == "executed", (first.json()["reply"], first.json().get("options"))
        assert second.json() == first.json()
        assert second.headers.get("idempotent-replay") == "true"
        assert api.chat_messages() == 1
        other = say(alice, conversation, "tell carol something else", **{"Idempotency-Key": "k-1"})
        assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_key_reused"
        direct = [alice.post("/v1/actions/chat.send", json={"args": {"to": "bob", "text": "hi"}},
                             headers={"Idempotency-Key": "k-2"}) for _ in range(3)]
        assert len({json.dumps(r.json(), sort_keys=True) for r in direct}) == 1
        assert api.chat_messages() == 2
    with api.client("bob") as bob:  # keys are per caller: bob's k-1 is his own
        conversation = bob.post("/v1/conversations").json()["id"]
        told = say(bob, conversation, "tell carol the numbers are in", **{"Idempotency-Key": "k-1"})
        assert told.json()["status"] == "executed"


def test_limits_and_errors_are_json_and_change_nothing(api: Api) -> None:
    with api.client("alice") as alice:
        conversation = alice.post("/v1/conversations").json()["id"]
        long = say(alice, conversation, "x" * 5000)
        assert long.status_code == 413 and long.json()["error"]["code"] == "input_too_large"
        huge = alice.post(f"/v1/conversations/{conversation}/messages", content=b"{" + b" " * 300000 + b"}",
                          headers={"Content-Type": "application/json"})
        assert huge.status_code == 413
        broken = alice.post(f"/v1/conversations/{conversation}/messages", content=b"{not json",
                            headers={"Content-Type": "application/json"})
        assert broken.status_code == 422 and broken.json()["error"]["code"] == "invalid_request"
        unknown = alice.post("/v1/actions/crm.nope", json={"args": {}})
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_action"
        missing = alice.get("/v1/no/such/path")
        assert missing.status_code == 404 and "error" in missing.json()
        record = say(alice, conversation, "close the Zebra deal")
        assert record.status_code == 404 and record.json()["error"]["code"] == "unknown_record"
        assert alice.get("/v1/conversations/c_nope").status_code == 404
        assert api.crm("select count(*) from effects") == [(0,)]


def test_audit_shows_a_person_their_own_and_an_admin_everything(api: Api) -> None:
    with api.client("alice") as alice, api.client("bob") as bob, api.client("ines") as ines:
        for client in (alice, bob):
            conversation = client.post("/v1/conversations").json()["id"]
            say(client, conversation, "show my deals")
        mine = alice.get("/v1/audit").json()
        assert mine and {r["actor"] for r in mine} == {"alice"}
        assert {r["actor"] for r in alice.get("/v1/audit", params={"user": "bob"}).json()} == {"alice"}
        everyone = {r["actor"] for r in ines.get("/v1/audit").json()}
        assert {"alice", "bob"} <= everyone
        assert {r["actor"] for r in ines.get("/v1/audit", params={"user": "bob"}).json()} == {"bob"}


def test_progress_is_streamed_as_server_sent_events(api: Api) -> None:
    with api.client("alice") as alice:
        conversation = alice.post("/v1/conversations").json()["id"]
        stages: list[str] = []
        ready = threading.Event()

        def listen() -> None:
            with api.client("alice") as listener, listener.stream(
                    "GET", f"/v1/conversations/{conversation}/events", params={"timeout": 20}) as stream:
                for line in stream.iter_lines():
                    if line.startswith(": connected"):
                        ready.set()
                    if line.startswith("event: "):
                        stages.append(line.removeprefix("event: "))
                        if stages[-1] == "done":
                            return

        thread = threading.Thread(target=listen)
        thread.start()
        assert ready.wait(10)
        assert say(alice, conversation, "move the Brightwater deal to negotiation").json()["status"] == "executed"
        thread.join(20)
        assert stages[:2] == ["interpreting", "grounding"] and stages[-1] == "done"
        assert "executing" in stages


def test_rate_limit_per_person(sqlite_root: Path) -> None:
    toml = (sqlite_root / "sayso.toml").read_text() + "\n[serve]\nrate_per_minute = 60\n"
    (sqlite_root / "sayso.toml").write_text(toml)
    for api in start(sqlite_root):
        with api.client("alice") as alice, api.client("bob") as bob:
            codes = [alice.get("/v1/me").status_code for _ in range(20)]
            assert 429 in codes and codes[0] == 200
            limited = next(r for r in (alice.get("/v1/me") for _ in range(3)) if r.status_code == 429)
            assert limited.json()["error"]["code"] == "rate_limited"
            assert bob.get("/v1/me").status_code == 200  # per person


def test_standing_instructions_over_http_are_the_callers_own(api: Api) -> None:
    with api.client("alice") as alice, api.client("bob") as bob:
        conversation = alice.post("/v1/conversations").json()["id"]
        made = say(alice, conversation, "if the Orchid deal hasn't moved by Friday, ping me").json()
        assert made["status"] == "executed" and made["steps"][0]["action"] == "instructions.create"
        listed = alice.get("/v1/instructions").json()
        assert [i["id"] for i in listed] == [made["steps"][0]["effect"]["result"]["id"]]
        assert bob.get("/v1/instructions").json() == []
        foreign = bob.post(f"/v1/instructions/{listed[0]['id']}/cancel")
        assert foreign.status_code == 404 and foreign.json()["error"]["code"] == "instruction_unknown"
        cancelled = alice.post(f"/v1/instructions/{listed[0]['id']}/cancel", headers={"Idempotency-Key": "c-1"})
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        again = alice.post(f"/v1/instructions/{listed[0]['id']}/cancel", headers={"Idempotency-Key": "c-1"})
        assert again.json() == cancelled.json()  # a retried POST: the stored answer
        assert alice.get("/v1/instructions").json() == []
        assert [i["status"] for i in alice.get("/v1/instructions", params={"all": "true"}).json()] == ["cancelled"]


def test_text_with_a_nul_character_is_a_request_error_on_either_store(demo_root: Path) -> None:
    """PostgreSQL's text cannot hold NUL: a message or an action's argument saying one was a 500 there (the
    turn failed saving its state). It is refused where the request enters, on both stores alike, audited as it
    came (NUL written out), and nothing is done."""
    for api in start(demo_root):
        with api.client("alice") as alice:
            conversation = alice.post("/v1/conversations").json()["id"]
            for path, body in ((f"/v1/conversations/{conversation}/messages", {"text": "tell bob hi\x00there"}),
                               ("/v1/actions/chat.send", {"args": {"to": "bob", "text": "a\x00b"}})):
                refused = alice.post(path, json=body)
                assert refused.status_code == 400, refused.text
                assert refused.json()["error"]["code"] == "invalid_arguments"
                assert "NUL character (\\u0000)" in refused.json()["error"]["message"]
            audited = [r for r in alice.get("/v1/audit").json() if r["event"] == "error"]
            assert [r["detail"]["request"] for r in audited] == [
                {"text": "tell bob hi\\u0000there"},
                {"action": "chat.send", "args": {"to": "bob", "text": "a\\u0000b"}}]
            fine = say(alice, conversation, "which of my deals close in the next 30 days?")
            assert fine.status_code == 200 and fine.json()["status"] == "answered"
        assert api.chat_messages() == 0


def test_text_that_is_not_unicode_and_times_out_of_range_are_request_errors(api: Api) -> None:
    surrogate = b'"hi \\ud800"'  # JSON's spelling of a lone surrogate: a str no UTF-8 encoder takes
    with api.client("alice") as alice:
        conversation = alice.post("/v1/conversations").json()["id"]
        for path, body in ((f"/v1/conversations/{conversation}/messages", b'{"text": ' + surrogate + b"}"),
                           ("/v1/actions/chat.send", b'{"args": {"to": "bob", "text": ' + surrogate + b"}}"),
                           ("/v1/actions/chat.send", b'{"args": {' + surrogate + b': "x"}}')):
            refused = alice.post(path, content=body, headers={"Content-Type": "application/json"})
            assert refused.status_code == 400, refused.text
            assert refused.json()["error"]["code"] == "invalid_arguments"
            assert "\\ud800" in refused.json()["error"]["message"]
        audited = [r for r in alice.get("/v1/audit").json() if r["event"] == "error"]
        assert len(audited) == 3 and all(r["detail"]["code"] == "invalid_arguments" for r in audited)
        assert audited[0]["detail"]["request"] == {"text": "hi \\ud800"}  # as it came, written out
        for since in ("9999-12-31T23:59:59", "0001-01-01T00:00:00+23:59", "yesterday"):
            wrong = alice.get("/v1/audit", params={"since": since})
            assert wrong.status_code == 400 and wrong.json()["error"]["code"] == "invalid_arguments", since
        assert len(alice.get("/v1/audit", params={"since": "2026-11-25T00:00+00:00"}).json()) == 3
    assert api.chat_messages() == 0
    ws = Workspace.load(api.root)
    try:
        assert AuditLog(ws.store, Clock()).verify().ok
    finally:
        ws.close()
