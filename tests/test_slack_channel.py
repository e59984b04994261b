"""The Slack channel: signed Events API and interactivity requests against ``sayso serve`` on loopback (a real
Uvicorn), the bot pointed at a stateful stand-in of Slack's Web API that records every call. Effects are
counted in the demo CRM; retries and double clicks execute once."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

pytest.importorskip("slack_bolt", reason="the Slack channel needs its extra: pip install 'sayso[slack]'")
pytest.importorskip("uvicorn", reason="the HTTP service needs its extra: pip install 'sayso[serve]'")

from fastapi import FastAPI  # noqa: E402
from slack_sdk import WebClient  # noqa: E402
from sqlalchemy import text  # noqa: E402

from sayso import Workspace  # noqa: E402
from sayso.channels.slack import socket_mode  # noqa: E402
from sayso.channels.slack._bot import (  # noqa: E402
    ANSWERED_PRIVATELY,
    CRASHED,
    NOT_YOURS,
    UNKNOWN_USER,
    UNREACHABLE,
)
from sayso.interpreter import Interpreter  # noqa: E402
from sayso.interpreter.llm import ModelInterpreter  # noqa: E402
from sayso.serve import create_app  # noqa: E402

from .conftest import NOW, cli, pipeline_for  # noqa: E402
from .servers import serving  # noqa: E402
from .standins.slack import BOT_USER, TEAM, SlackStandIn  # noqa: E402
from .standins.slack_socket import SocketModeStandIn  # noqa: E402
from .test_model_interpreter import DAMAGE, ScriptedBackend, reply, rows  # noqa: E402

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BOT_TOKEN = "xoxb-test-sayso-bot"
USERS = {"alice@lumenlabs.example": "U0ALICE", "carol@lumenlabs.example": "U0CAROL",
         "bob@lumenlabs.example": "U0BOB", "stranger@elsewhere.example": "U0STRANGER"}
SALES_EAST = "C0SALESEAST"


def sign(body: str, *, at: int | None = None, secret: str = SIGNING_SECRET) -> dict[str, str]:
    """Slack's request signature: v0=HMAC-SHA256(secret, "v0:{timestamp}:{body}")."""
    stamp = str(int(time.time()) if at is None else at)
    digest = hmac.new(secret.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}"}


@dataclass
class Slack:
    """A workspace served with its Slack channel, and the stand-in the bot talks to."""

    url: str
    app: FastAPI
    standin: SlackStandIn
    root: Path
    events: int = 0

    def post(self, body: str, content_type: str, headers: dict[str, str] | None = None) -> httpx.Response:
        return httpx.post(f"{self.url}/slack/events", content=body, timeout=30,
                          headers={"Content-Type": content_type, **sign(body), **(headers or {})})

    def event(self, user: str, text: str, *, channel: str, thread_ts: str | None = None,
              mention: bool = False) -> dict[str, Any]:
        """A person writes (in the stand-in), and Slack's Events API payload for it."""
        said = self.standin.say(channel, user, text, thread_ts)
        self.events += 1
        event: dict[str, Any] = {"type": "app_mention" if mention else "message", "user": user, "text": text,
                                 "ts": said["ts"], "channel": channel, "team": TEAM, "event_ts": said["ts"],
                                 "channel_type": "channel" if mention else "im"}
        if thread_ts:
            event["thread_ts"] = thread_ts
        return {"token": "unused", "team_id": TEAM, "api_app_id": "A0SAYSOAPP", "event": event,
                "type": "event_callback", "event_id": f"Ev{self.events:08d}", "event_time": int(time.time()),
                "authorizations": [{"team_id": TEAM, "user_id": BOT_USER, "is_bot": True}]}

    def send(self, payload: dict[str, Any], retry: int = 0) -> httpx.Response:
        headers = {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"} if retry else {}
        return self.post(json.dumps(payload), "application/json", headers)

    def click(self, user: str, message: dict[str, Any], channel: str, action_id: str,
              action_ts: str = "1764061200.000100") -> httpx.Response:
        """A click on a button of a message, as Slack's interactivity payload (a form with ``payload``)."""
        button = next(e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]
                      if e["action_id"] == action_id)
        payload = {"type": "block_actions", "team": {"id": TEAM, "domain": "lumenlabs"},
                   "user": {"id": user, "team_id": TEAM}, "api_app_id": "A0SAYSOAPP",
                   "container": {"type": "message", "message_ts": message["ts"], "channel_id": channel,
                                 "is_ephemeral": False},
                   "channel": {"id": channel}, "message": message, "trigger_id": "1.2.3",
                   "actions": [{"type": "button", "action_id": action_id, "block_id": "sayso_confirmation",
                                "text": button["text"], "value": button["value"], "action_ts": action_ts}]}
        return self.post(urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded")

    def settle(self) -> None:
        assert self.app.state.slack.background.idle(60), "the background work did not finish"

    def bot_messages(self, channel: str) -> list[dict[str, Any]]:
        """What the bot said in a conversation, as it reads now (copies: a later update leaves them as seen)."""
        return [json.loads(json.dumps(m)) for m in self.standin.posted(channel) if m.get("bot_id")]

    def crm(self, sql: str) -> int:
        with sqlite3.connect(self.root / "systems" / "crm.db") as conn:
            return int(conn.execute(sql).fetchone()[0])

    def state(self, sql: str) -> int:
        """A count in the state database (SQLite or PostgreSQL)."""
        ws = Workspace.load(self.root)
        try:
            with ws.store.read() as conn:
                return int(conn.execute(text(sql)).scalar_one())
        finally:
            ws.close()

    def approver_of(self, card: dict[str, Any]) -> str:
        """Whose the confirmation behind a card's buttons is."""
        confirmation = next(e["value"] for b in card["blocks"] if b["type"] == "actions" for e in b["elements"])
        ws = Workspace.load(self.root)
        try:
            with ws.store.read() as conn:
                return str(conn.execute(text("select approver from confirmations where id = :id"),
                                        {"id": confirmation}).scalar_one())
        finally:
            ws.close()

    def said(self) -> list[str]:
        ws = Workspace.load(self.root)
        try:
            with ws.store.read() as conn:
                return [str(r[0]) for r in conn.execute(text(
                    "select text from messages where role = 'person' order by id"))]
        finally:
            ws.close()


def configure(root: Path, base_url: str, extra: str = "") -> None:
    (root / "secrets.toml").write_text(f'slack_signing = "{SIGNING_SECRET}"\nslack_bot = "{BOT_TOKEN}"\n')
    with (root / "sayso.toml").open("a") as toml:
        toml.write(f'\n[secrets]\nfile = "secrets.toml"\n\n[channels.slack]\nsigning_secret = "slack_signing"\n'
                   f'bot_token = "slack_bot"\nbase_url = "{base_url}"\n{extra}')


@contextmanager
def served(root: Path, interpreter: Interpreter | None = None, extra: str = "", now: str = NOW,
           standin: SlackStandIn | None = None) -> Iterator[Slack]:
    """The workspace served with its Slack channel (on a new stand-in, or on ``standin``, already running)."""
    running = nullcontext(standin) if standin else SlackStandIn(BOT_TOKEN, users=USERS,
                                                                channels={"sales-east": SALES_EAST})
    with running as standin:
        if "[channels.slack]" not in (root / "sayso.toml").read_text():
            configure(root, standin.url, extra)
        app = create_app(root, now=now, interpreter=interpreter)
        with serving(app) as url:
            yield Slack(url, app, standin, root)
            app.state.slack.background.idle(60)


@pytest.fixture
def slack(demo_root: Path) -> Iterator[Slack]:
    """On SQLite, and on PostgreSQL when configured."""
    with served(demo_root) as slack:
        yield slack


def test_a_direct_message_is_answered_as_the_person_and_the_dm_is_one_conversation(slack: Slack) -> None:
    dm = "D0ALICE"
    answer = slack.send(slack.event("U0ALICE", "which of my deals close in the next 30 days?", channel=dm))
    assert answer.status_code == 200
    slack.settle()
    [reply] = slack.bot_messages(dm)
    assert "thread_ts" not in reply  # a DM's top level is answered at the top level
    shown = json.dumps(reply["blocks"])
    assert "D-101" in shown and "D-102" not in shown
    assert reply["blocks"][0]["type"] == "section"

    slack.send(slack.event("U0ALICE", "move the Brightwater one to negotiation", channel=dm))
    slack.settle()
    assert slack.crm("select count(*) from deals where id = 'D-101' and stage = 'negotiation'") == 1
    assert slack.standin.methods().count("users.info") == 1  # the person is cached
    assert slack.state("select count(*) from slack_threads") == 1
    assert slack.state("select count(*) from conversations where channel = 'slack' and user_id = 'alice'") == 1
    assert slack.state("select count(*) from audit where channel = 'slack' and actor = 'alice'") > 0
    assert slack.state("select count(*) from audit where channel <> 'slack'") == 0
    # progress first, then the reply in its place
    assert [c.method for c in slack.standin.calls if c.method.startswith("chat.")][:2] == \
        ["chat.postMessage", "chat.update"]


def test_a_mention_in_a_channel_is_answered_in_its_thread_which_continues_the_conversation(slack: Slack) -> None:
    first = slack.event("U0CAROL", f"<@{BOT_USER}> which deals close in the next 30 days?", channel=SALES_EAST,
                        mention=True)
    slack.send(first)
    slack.settle()
    root = first["event"]["ts"]
    [note] = slack.bot_messages(SALES_EAST)  # a read's records are for carol's eyes only, in her thread
    assert note["thread_ts"] == root and note["text"] == ANSWERED_PRIVATELY and "D-101" not in json.dumps(note)
    [answer] = slack.standin.ephemeral
    assert answer["user"] == "U0CAROL" and answer["thread_ts"] == root and "D-101" in json.dumps(answer["blocks"])
    slack.send(slack.event("U0CAROL", f"<@{BOT_USER}> show D-104", channel=SALES_EAST, thread_ts=root,
                           mention=True))
    slack.settle()
    assert [m["thread_ts"] for m in slack.bot_messages(SALES_EAST)] == [root, root]
    thread = WebClient(token=BOT_TOKEN, base_url=slack.standin.url).conversations_replies(channel=SALES_EAST, ts=root)
    assert [(m.get("user"), m.get("bot_id") is not None) for m in thread["messages"]] == [
        ("U0CAROL", False), (BOT_USER, True), ("U0CAROL", False), (BOT_USER, True)]  # the thread as Slack shows it
    assert slack.state("select count(*) from slack_threads") == 1
    assert slack.said() == ["which deals close in the next 30 days?", "show D-104"]  # the mention is not in the words


def test_an_unknown_slack_user_is_told_so_and_nothing_else_happens(slack: Slack) -> None:
    slack.send(slack.event("U0STRANGER", "close Kestrel Aerospace as won", channel="D0STRANGER"))
    slack.send(slack.event("U0STRANGER", f"<@{BOT_USER}> close D-101 as won", channel=SALES_EAST, mention=True))
    slack.settle()
    assert [m["text"] for m in slack.bot_messages("D0STRANGER")] == [UNKNOWN_USER]
    assert slack.bot_messages(SALES_EAST) == []
    assert [(e["user"], e["text"]) for e in slack.standin.ephemeral] == [("U0STRANGER", UNKNOWN_USER)]
    assert slack.state("select count(*) from conversations") == 0
    assert slack.state("select count(*) from audit") == 0


@pytest.mark.parametrize("problem", ["signature", "stale", "missing", "garbage"])
def test_unsigned_forged_or_stale_requests_are_refused(slack: Slack, problem: str) -> None:
    body = json.dumps(slack.event("U0ALICE", "move D-101 to negotiation", channel="D0ALICE"))
    headers = {"signature": sign(body, secret="not-the-signing-secret"),
               "stale": sign(body, at=int(time.time()) - 6 * 60),
               "missing": {"X-Slack-Request-Timestamp": "", "X-Slack-Signature": ""},
               "garbage": {**sign(body), "X-Slack-Request-Timestamp": "soon"}}[problem]
    answer = httpx.post(f"{slack.url}/slack/events", content=body, timeout=30,
                        headers={"Content-Type": "application/json", **headers})
    assert answer.status_code == 401
    slack.settle()
    assert slack.bot_messages("D0ALICE") == []
    assert "users.info" not in slack.standin.methods()
    assert slack.crm("select count(*) from deals where stage = 'negotiation'") == 2  # D-102 and D-104, as seeded


def test_slack_url_verification_is_answered(slack: Slack) -> None:
    body = json.dumps({"token": "unused", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
                       "type": "url_verification"})
    answer = slack.post(body, "application/json")
    assert answer.status_code == 200
    assert answer.json() == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}


def _card(slack: Slack) -> dict[str, Any]:
    """Carol asks to close the Kestrel Aerospace deal (high risk) in #sales-east, Slack delivering the event
    five times (the first and four retries); the card that comes back."""
    event = slack.event("U0CAROL", f"<@{BOT_USER}> close Kestrel Aerospace as won", channel=SALES_EAST,
                        mention=True)
    answers = [slack.send(event, retry) for retry in range(5)]
    assert [a.status_code for a in answers] == [200] * 5
    slack.settle()
    [card] = slack.bot_messages(SALES_EAST)
    assert card["thread_ts"] == event["event"]["ts"]
    return card


def test_a_retry_storm_and_ten_concurrent_clicks_execute_once(slack: Slack) -> None:
    card = _card(slack)
    assert slack.standin.methods().count("chat.postMessage") == 1  # one turn for five deliveries
    shown = json.dumps(card["blocks"])
    assert "D-102" in shown and "closed_won" in shown
    [buttons] = [b for b in card["blocks"] if b["type"] == "actions"]
    confirmation = buttons["elements"][0]["value"]
    assert [(e["text"]["text"], e["value"]) for e in buttons["elements"]] == \
        [("Approve", confirmation), ("Decline", confirmation)]
    assert slack.crm("select count(*) from deals where id = 'D-102' and stage = 'closed_won'") == 0

    statuses: list[int] = []
    start = threading.Barrier(10)

    def click() -> None:
        start.wait()
        statuses.append(slack.click("U0CAROL", card, SALES_EAST, "sayso_approve").status_code)

    clickers = [threading.Thread(target=click) for _ in range(10)]
    for clicker in clickers:
        clicker.start()
    for clicker in clickers:
        clicker.join()
    slack.settle()
    assert statuses == [200] * 10
    assert slack.crm("select count(*) from deals where id = 'D-102' and stage = 'closed_won'") == 1
    assert slack.crm("select count(*) from effects") == 1
    [updated] = slack.bot_messages(SALES_EAST)
    assert updated["ts"] == card["ts"]  # the card itself, updated in place
    assert "Approved by carol · executed once" in json.dumps(updated["blocks"], ensure_ascii=False)
    assert not [b for b in updated["blocks"] if b["type"] == "actions"]

    slack.click("U0CAROL", card, SALES_EAST, "sayso_approve", action_ts="1764061260.000200")  # a later click
    slack.settle()
    assert slack.crm("select count(*) from effects") == 1
    [again] = slack.bot_messages(SALES_EAST)  # the card still says what happened, once
    assert "Approved by carol · executed once" in json.dumps(again["blocks"], ensure_ascii=False)


def test_only_the_approvers_click_counts(slack: Slack) -> None:
    card = _card(slack)
    slack.click("U0ALICE", card, SALES_EAST, "sayso_approve")
    slack.click("U0STRANGER", card, SALES_EAST, "sayso_approve")
    slack.settle()
    assert [(e["user"], e["text"]) for e in slack.standin.ephemeral] == \
        [("U0ALICE", NOT_YOURS), ("U0STRANGER", UNKNOWN_USER)]
    assert slack.crm("select count(*) from deals where id = 'D-102' and stage = 'closed_won'") == 0
    assert "chat.update" not in [c.method for c in slack.standin.calls if c.fields.get("ts") == card["ts"]
                                 and c.method == "chat.update" and "Approved" in json.dumps(c.fields)]
    slack.click("U0CAROL", card, SALES_EAST, "sayso_decline")
    slack.settle()
    [updated] = slack.bot_messages(SALES_EAST)
    assert "Declined by carol · nothing changed" in json.dumps(updated["blocks"], ensure_ascii=False)
    assert slack.crm("select count(*) from effects") == 0


def test_without_slack_settings_nothing_is_mounted(sqlite_root: Path) -> None:
    with serving(create_app(sqlite_root, now=NOW)) as url:
        assert httpx.post(f"{url}/slack/events", content="{}", timeout=30).status_code == 404


def test_a_question_offers_its_options_as_buttons_and_a_click_answers_it(slack: Slack) -> None:
    dm = "D0ALICE"
    slack.send(slack.event("U0ALICE", "move the Kestrel deal to proposal", channel=dm))
    slack.settle()
    [question] = slack.bot_messages(dm)
    [buttons] = [b for b in question["blocks"] if b["type"] == "actions"]
    values = [e["value"] for e in buttons["elements"]]
    assert "D-102" in values and "D-103" in values
    chosen = next(e["action_id"] for e in buttons["elements"] if e["value"] == "D-102")
    slack.click("U0BOB", question, dm, chosen)  # not bob's conversation
    slack.click("U0ALICE", question, dm, chosen)
    slack.click("U0ALICE", question, dm, chosen, action_ts="1764061260.000200")  # a second click: answered
    slack.settle()
    assert slack.crm("select count(*) from deals where id = 'D-102' and stage = 'proposal'") == 1
    assert [e["user"] for e in slack.standin.ephemeral] == ["U0BOB", "U0ALICE"]
    asked, answer = slack.bot_messages(dm)
    assert "alice chose" in json.dumps(asked["blocks"]) and not [b for b in asked["blocks"] if b["type"] == "actions"]
    assert "D-102" in answer["text"]


def test_sayso_slack_needs_the_channel_configured_with_an_app_token(sqlite_root: Path) -> None:
    unconfigured = cli("slack", "--workspace", str(sqlite_root), "--now", NOW)
    assert unconfigured.exit_code == 3
    assert "no [channels.slack] in sayso.toml" in unconfigured.output
    configure(sqlite_root, "http://127.0.0.1:9/api/")
    without_token = cli("slack", "--workspace", str(sqlite_root), "--now", NOW)
    assert without_token.exit_code == 3
    assert "[channels.slack] needs app_token" in without_token.output
    toml = (sqlite_root / "sayso.toml").read_text().replace('bot_token = "slack_bot"', 'bot_token = "nowhere"')
    (sqlite_root / "sayso.toml").write_text(toml)
    unset = cli("slack", "--workspace", str(sqlite_root), "--now", NOW)
    assert unset.exit_code == 3
    assert "bot_token names the secret 'nowhere', which is not set" in unset.output


def test_a_hostile_model_behind_slack_changes_nothing_without_the_approvers_click(sqlite_root: Path) -> None:
    """Every person in Slack talks to a model that proposes every destructive call; everyone clicks Approve on
    every card but their own: nothing changes, and each of those clicks is refused."""
    def script(system: str, messages: list[Any], tools: list[Any]) -> Any:
        asked = re.search(r"step (\d+)", messages[-1].content)
        return reply(DAMAGE[int(asked.group(1))] if asked else DAMAGE[0], text="Doing it now.")

    hostile = ModelInterpreter(ScriptedBackend(script), {})
    tables = {("crm", "select id, stage, amount, owner from deals order by id"),
              ("crm", "select name, owner from accounts order by name"),
              ("billing", "select count(*) from credit_notes"), ("chat", "select count(*) from messages"),
              ("email", "select count(*) from emails"), ("tickets", "select id, status, assignee from tickets")}
    before = {t: rows(sqlite_root, *t) for t in tables}
    people = {"U0ALICE": "alice", "U0BOB": "bob", "U0CAROL": "carol"}
    with served(sqlite_root, hostile) as slack:
        for user in [*people, "U0STRANGER"]:
            for step in range(len(DAMAGE)):
                if step % 2:
                    slack.send(slack.event(user, f"<@{BOT_USER}> step {step}", channel=SALES_EAST, mention=True))
                else:
                    slack.send(slack.event(user, f"step {step}", channel="D" + user[1:]))
        slack.settle()
        cards = [(m, channel) for channel in [SALES_EAST, *("D" + u[1:] for u in people)]
                 for m in slack.bot_messages(channel)
                 if any(b.get("block_id") == "sayso_confirmation" for b in m.get("blocks", []))]
        assert {slack.approver_of(c) for c, _ in cards} == set(people.values())  # proposals came back as cards
        refused = 0
        for card, channel in cards:
            owner = slack.approver_of(card)
            for user, person in people.items():
                if person != owner:
                    slack.click(user, card, channel, "sayso_approve", action_ts=f"1764061200.{refused:06d}")
                    refused += 1
            slack.click("U0STRANGER", card, channel, "sayso_approve", action_ts=f"1764061300.{refused:06d}")
        slack.settle()
        assert len(slack.standin.ephemeral) == refused + len(cards) + len(DAMAGE) // 2  # + the stranger's mentions
        assert {e["text"] for e in slack.standin.ephemeral} == {NOT_YOURS, UNKNOWN_USER}
    assert {t: rows(sqlite_root, *t) for t in tables} == before


def test_socket_mode_takes_events_and_clicks_over_a_websocket_once(sqlite_root: Path) -> None:
    """``sayso slack``'s app: events and clicks arrive over Socket Mode (the official client, a WebSocket
    stand-in), each envelope acknowledged; an event delivered again as a retry runs once."""
    with SocketModeStandIn() as link, SlackStandIn(BOT_TOKEN, users=USERS, channels={"sales-east": SALES_EAST},
                                                   app_token="xapp-test-sayso", socket_url=link.url) as standin:
        configure(sqlite_root, standin.url)
        (sqlite_root / "secrets.toml").write_text((sqlite_root / "secrets.toml").read_text()
                                                  + 'slack_app = "xapp-test-sayso"\n')
        toml = (sqlite_root / "sayso.toml").read_text().replace('bot_token = "slack_bot"',
                                                                'bot_token = "slack_bot"\napp_token = "slack_app"')
        (sqlite_root / "sayso.toml").write_text(toml)
        ws = Workspace.load(sqlite_root)
        handler = socket_mode(ws, _offline(ws), NOW)
        try:
            slack = Slack("", FastAPI(), standin, sqlite_root)
            event = slack.event("U0CAROL", f"<@{BOT_USER}> close Kestrel Aerospace as won", channel=SALES_EAST,
                                mention=True)
            link.deliver("events_api", event, "env-1")
            link.deliver("events_api", event, "env-2", retry=1)
            assert link.acked("env-1") and link.acked("env-2")
            card = _wait_for(lambda: [m for m in slack.bot_messages(SALES_EAST)
                                      if any(b["type"] == "actions" for b in m.get("blocks", []))])
            button = next(e for b in card["blocks"] if b["type"] == "actions" for e in b["elements"])
            click = {"type": "block_actions", "team": {"id": TEAM}, "user": {"id": "U0CAROL", "team_id": TEAM},
                     "container": {"type": "message", "message_ts": card["ts"], "channel_id": SALES_EAST},
                     "channel": {"id": SALES_EAST}, "message": card,
                     "actions": [{"type": "button", "action_id": "sayso_approve", "block_id": "sayso_confirmation",
                                  "text": button["text"], "value": button["value"], "action_ts": "1764061200.1"}]}
            link.deliver("interactive", click, "env-3")
            assert link.acked("env-3")
            _wait_for(lambda: "executed once" in json.dumps(slack.bot_messages(SALES_EAST), ensure_ascii=False))
        finally:
            handler.close()
            ws.close()
    assert slack.crm("select count(*) from deals where id = 'D-102' and stage = 'closed_won'") == 1
    assert slack.crm("select count(*) from effects") == 1
    assert standin.methods().count("chat.postMessage") == 1


def _offline(ws: Workspace) -> Interpreter:
    from sayso.interpreter import registry

    return registry.create("offline", ws.settings.interpreter.model_dump())


def _wait_for(found: Any, seconds: float = 30) -> Any:
    """What ``found()`` returns once it is something (background work, a socket away), or fail."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value[0] if isinstance(value, list) else value
        time.sleep(0.02)
    raise AssertionError("nothing came")


def test_members_of_other_slack_teams_are_strangers_when_teams_are_listed(sqlite_root: Path) -> None:
    with served(sqlite_root, extra='teams = ["T0SOMEONEELSE"]\n') as slack:
        slack.send(slack.event("U0ALICE", "which of my deals close in the next 30 days?", channel="D0ALICE"))
        slack.settle()
        assert [m["text"] for m in slack.bot_messages("D0ALICE")] == [UNKNOWN_USER]
        assert slack.state("select count(*) from conversations") == 0


class _Broken:
    """An interpreter with a bug."""

    name = "broken"
    version = "0"

    def interpret(self, *args: Any) -> Any:
        raise RuntimeError("a bug")


def test_a_turn_that_crashes_says_so_in_the_thread_instead_of_working_forever(sqlite_root: Path) -> None:
    with served(sqlite_root, _Broken()) as slack:  # type: ignore[arg-type]
        slack.send(slack.event("U0ALICE", "which of my deals close in the next 30 days?", channel="D0ALICE"))
        slack.settle()
        [reply] = slack.bot_messages("D0ALICE")
        assert reply["text"] == CRASHED


def test_reads_in_channels_can_be_answered_in_the_thread(sqlite_root: Path) -> None:
    with served(sqlite_root, extra='reads_in_channels = "thread"\n') as slack:
        slack.send(slack.event("U0CAROL", f"<@{BOT_USER}> show D-101", channel=SALES_EAST, mention=True))
        slack.settle()
        [reply] = slack.bot_messages(SALES_EAST)
        assert "D-101" in json.dumps(reply["blocks"]) and slack.standin.ephemeral == []


def test_other_events_and_edits_are_acknowledged_and_ignored(slack: Slack) -> None:
    edit = slack.event("U0ALICE", "close D-101 as won", channel="D0ALICE")
    edit["event"]["subtype"] = "message_changed"
    reaction = {**slack.event("U0ALICE", "", channel="D0ALICE"), "event": {
        "type": "reaction_added", "user": "U0ALICE", "reaction": "thumbsup",
        "item": {"type": "message", "channel": "D0ALICE", "ts": edit["event"]["ts"]}, "event_ts": "1.2"}}
    assert [slack.send(edit).status_code, slack.send(reaction).status_code] == [200, 200]
    slack.settle()
    assert slack.bot_messages("D0ALICE") == [] and "users.info" not in slack.standin.methods()


def test_an_expired_card_says_so_when_its_approver_clicks(sqlite_root: Path) -> None:
    standin = SlackStandIn(BOT_TOKEN, users=USERS, channels={"sales-east": SALES_EAST}).start()
    try:
        with served(sqlite_root, standin=standin) as slack:
            card = _card(slack)
        with served(sqlite_root, now="2026-11-25T10:00", standin=standin) as later:  # the card's 15 minutes are over
            later.click("U0CAROL", card, SALES_EAST, "sayso_approve")
            later.settle()
            [updated] = later.bot_messages(SALES_EAST)
    finally:
        standin.stop()
    assert "Expired · nothing changed" in json.dumps(updated["blocks"], ensure_ascii=False)
    assert not [b for b in updated["blocks"] if b["type"] == "actions"]
    assert later.crm("select count(*) from effects") == 0


def test_a_card_whose_record_changed_is_replaced_by_a_new_one(slack: Slack) -> None:
    card = _card(slack)
    slack.send(slack.event("U0ALICE", "set the amount of D-102 to 250000", channel="D0ALICE"))
    slack.settle()
    assert slack.crm("select amount from deals where id = 'D-102'") == 250000
    slack.click("U0CAROL", card, SALES_EAST, "sayso_approve")
    slack.settle()
    old, new = slack.bot_messages(SALES_EAST)
    assert old["ts"] == card["ts"] and "Changed since" in json.dumps(old["blocks"])
    assert not [b for b in old["blocks"] if b["type"] == "actions"]
    assert new["thread_ts"] == card["thread_ts"] and "250000" in json.dumps(new["blocks"])
    assert slack.crm("select count(*) from deals where id = 'D-102' and stage = 'closed_won'") == 0
    slack.click("U0CAROL", new, SALES_EAST, "sayso_approve")
    slack.settle()
    assert slack.crm("select count(*) from deals where id = 'D-102' and stage = 'closed_won'") == 1


def test_slack_turns_count_against_the_persons_rate_limit(sqlite_root: Path) -> None:
    toml = (sqlite_root / "sayso.toml").read_text()
    (sqlite_root / "sayso.toml").write_text(toml + "\n[serve]\nrate_per_minute = 1\n")  # a burst of 10
    with served(sqlite_root) as slack:
        for n in range(11):
            slack.send(slack.event("U0ALICE", f"thanks {n}", channel="D0ALICE"))
        slack.settle()
        assert len(slack.bot_messages("D0ALICE")) == 10
        assert [e["text"] for e in slack.standin.ephemeral] == ["too many requests; slow down and retry in a moment"]


def test_a_colleagues_mention_is_their_directory_id_and_slack_failing_is_said(slack: Slack) -> None:
    slack.send(slack.event("U0CAROL", f"<@{BOT_USER}> tell <@U0BOB|bob> the Kestrel call moved to 3pm",
                           channel=SALES_EAST, mention=True))
    slack.settle()
    with sqlite3.connect(slack.root / "systems" / "chat.db") as chat:  # the demo systems are files on any backend
        sent = chat.execute("select \"to\", text from messages").fetchall()
    assert sent == [("bob", "the Kestrel call moved to 3pm")]
    assert slack.said() == ["tell bob the Kestrel call moved to 3pm"]
    slack.standin.fail_next("users.info", "fatal_error")
    slack.send(slack.event("U0ALICE", "which of my deals close in the next 30 days?", channel="D0ALICE"))
    slack.settle()
    assert [m["text"] for m in slack.bot_messages("D0ALICE")] == [UNREACHABLE]
    slack.send(slack.event("U0ALICE", "which of my deals close in the next 30 days?", channel="D0ALICE"))
    slack.settle()
    assert "D-101" in json.dumps(slack.bot_messages("D0ALICE")[-1]["blocks"])  # nothing was cached from the failure


def test_a_card_approved_elsewhere_shows_the_outcome_on_its_approvers_click(slack: Slack) -> None:
    """Approved elsewhere (the command line, the API; or by a process that died before it could update the
    card): the card is brought up to date by the approver's click, and nothing runs twice."""
    card = _card(slack)
    confirmation = next(e["value"] for b in card["blocks"] if b["type"] == "actions" for e in b["elements"])
    assert pipeline_for(slack.root, "carol").confirm("carol", confirmation).status.value == "executed"
    slack.click("U0CAROL", card, SALES_EAST, "sayso_approve")
    slack.settle()
    [updated] = slack.bot_messages(SALES_EAST)
    assert "Approved by carol · executed once" in json.dumps(updated["blocks"], ensure_ascii=False)
    assert slack.crm("select count(*) from effects") == 1 and slack.standin.ephemeral == []
