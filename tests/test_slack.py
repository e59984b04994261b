"""The Slack connector: against Slack's documented answers (recorded, replayed on loopback), against
a stateful stand-in of the Web API, and through the real CLI across a crash."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest

from sayso.connectors import SystemContext, registry
from sayso.connectors.slack import EVENT_TYPE, Slack
from sayso.directory import Directory, Person
from sayso.errors import ConfigurationError, ConnectorError, InvalidArguments, UnknownUser

from .conftest import NOW, sayso
from .standins._server import StandInServer, send_json
from .standins.slack import SlackStandIn
from .switch import crash_then_recover, switch_system

pytest.importorskip("slack_sdk", reason="the Slack connector needs slack_sdk (sayso[slack])")

RECORDED = Path(__file__).parent / "recorded" / "slack"
TOKEN = "xoxb-1234-5678-sayso-test-SECRET"
ORIGIN = {"actor": "alice", "actor_name": "Alice Moreno", "conversation": "c_42", "turn": 3,
          "request": "post in #sales-east that Orchid renewed", "related": ["D-104", "A-7"]}
CONTEXT = "— via sayso, asked by Alice Moreno (alice) in conversation c_42"


def _people() -> Directory:
    return Directory([
        Person(id=p, name=p.title(), email=f"{p}@lumenlabs.example", role="account_executive")
        for p in ("alice", "bob", "carol")
    ] + [Person(id="nomail", name="No Mail", role="sdr")], channels=["#sales-east"])


def make(tmp_path: Path, base_url: str, **settings: Any) -> Slack:
    context = SystemContext(tmp_path, _people(), {"slack_bot_token": TOKEN})
    connector = registry.create("chat", {"kind": "slack", "token_secret": "slack_bot_token", "base_url": base_url,
                                         **settings}, context)
    assert isinstance(connector, Slack)
    return connector


# --- (a) recorded answers, replayed ----------------------------------------------


class Replay(StandInServer):
    """Serves recorded answers in order, and keeps every request it got."""

    def __init__(self, *names: str) -> None:
        self.script = [json.loads((RECORDED / f"{name}.json").read_text()) for name in names]
        self.requests: list[dict[str, Any]] = []
        self.start()
        self.url = f"http://127.0.0.1:{self.port}/api/"

    def serve(self, request: BaseHTTPRequestHandler) -> None:
        body = request.rfile.read(int(request.headers.get("Content-Length") or 0)).decode()
        kind = request.headers.get_content_type()
        fields = json.loads(body) if kind == "application/json" else dict(parse_qsl(body))
        self.requests.append({"method": request.path.removeprefix("/api/"), "fields": fields,
                              "content_type": kind, "authorization": request.headers.get("Authorization")})
        record = self.script.pop(0) if self.script else {
            "method": "?", "status": 500, "headers": {}, "body": {"ok": False, "error": "fatal_error"}}
        assert record["method"] == self.requests[-1]["method"], (record["method"], request.path)
        send_json(request, record["status"], record["body"], record["headers"])

    def methods(self) -> list[str]:
        return [r["method"] for r in self.requests]


@pytest.fixture
def replay() -> Iterator[type[Replay]]:
    opened: list[Replay] = []

    class Opened(Replay):
        def __init__(self, *names: str) -> None:
            super().__init__(*names)
            opened.append(self)

    yield Opened
    for server in opened:
        server.stop()


def test_a_post_to_a_channel_carries_the_key_and_the_why(tmp_path: Path, replay: type[Replay]) -> None:
    slack = replay("chat.postMessage")
    chat = make(tmp_path, slack.url, channels={"#sales-east": "C0SALESEAST"})
    effect = chat.execute("send", {"to": "#sales-east", "text": "Orchid renewed"}, key="sk_1", origin=ORIGIN)

    [request] = slack.requests
    assert request["method"] == "chat.postMessage"
    assert request["authorization"] == f"Bearer {TOKEN}"
    assert request["content_type"] == "application/json"
    fields = request["fields"]
    assert fields["channel"] == "C0SALESEAST"
    assert fields["text"] == f"Orchid renewed\n{CONTEXT}"
    assert fields["metadata"] == {"event_type": EVENT_TYPE, "event_payload": {
        "idempotency_key": "sk_1", "to": "#sales-east", "asked_by": "alice", "asked_by_name": "Alice Moreno",
        "request": "post in #sales-east that Orchid renewed", "conversation": "c_42", "turn": 3,
        "related": "D-104, A-7"}}
    assert TOKEN not in json.dumps(fields)
    # The answer's channel and ts become the effect (as recorded).
    assert effect.result == {"id": "1764082861.000200", "channel": "C0SALESEAST", "ts": "1764082861.000200"}
    assert effect.summary == "sent to #sales-east: 'Orchid renewed'"
    assert effect.changes[0].after == {"to": "#sales-east", "text": "Orchid renewed", "sender": "alice",
                                       "channel": "C0SALESEAST", "ts": "1764082861.000200"}


def test_a_person_is_found_by_directory_email_and_messaged_in_a_dm(tmp_path: Path, replay: type[Replay]) -> None:
    slack = replay("users.lookupByEmail", "conversations.open", "chat.postMessage")
    chat = make(tmp_path, slack.url)
    chat.execute("send", {"to": "carol", "text": "the Orchid deal slipped"}, key="sk_2", origin=ORIGIN)

    assert slack.methods() == ["users.lookupByEmail", "conversations.open", "chat.postMessage"]
    lookup, opened, post = slack.requests
    assert lookup["content_type"] == "application/x-www-form-urlencoded"
    assert lookup["fields"] == {"email": "carol@lumenlabs.example"}
    assert opened["fields"] == {"users": "U0CAROL01"}  # the id in the recorded user
    assert post["fields"]["channel"] == "D0CAROL01"  # the id in the recorded conversations.open
    assert all(r["authorization"] == f"Bearer {TOKEN}" for r in slack.requests)


def test_a_person_without_a_slack_account_is_a_clear_invalid_request(tmp_path: Path, replay: type[Replay]) -> None:
    slack = replay("users.lookupByEmail.users_not_found")
    chat = make(tmp_path, slack.url)
    with pytest.raises(InvalidArguments, match=r"carol <carol@lumenlabs.example>.*no Slack user.*users_not_found"):
        chat.execute("send", {"to": "carol", "text": "hi"}, key="sk_3", origin=ORIGIN)
    assert slack.methods() == ["users.lookupByEmail"]  # nothing posted
    with pytest.raises(InvalidArguments, match="no email in the directory"):
        chat.execute("send", {"to": "nomail", "text": "hi"}, key="sk_4")
    with pytest.raises(UnknownUser):
        chat.execute("send", {"to": "zed", "text": "hi"}, key="sk_5")
    assert slack.methods() == ["users.lookupByEmail"]


def test_a_channel_not_in_the_settings_is_found_by_name(tmp_path: Path, replay: type[Replay]) -> None:
    slack = replay("conversations.list", "chat.postMessage")
    chat = make(tmp_path, slack.url)
    chat.execute("send", {"to": "#support", "text": "Priya reported an outage"}, key="sk_6", origin=ORIGIN)
    listed, post = slack.requests
    assert listed["method"] == "conversations.list"
    assert listed["fields"]["types"] == "public_channel"
    assert listed["fields"]["exclude_archived"] == "1"
    assert post["fields"]["channel"] == "C0SUPPORT"
    with pytest.raises(InvalidArguments, match=r"no Slack channel #nowhere .*\[systems.chat.channels\]"):
        chat.execute("send", {"to": "#nowhere", "text": "hi"}, key="sk_7")
    assert slack.methods() == ["conversations.list", "chat.postMessage"]  # listed once, not again


@pytest.mark.parametrize(("recorded", "error", "words"), [
    ("chat.postMessage.not_in_channel", ConnectorError, r"not a member of the channel \(not_in_channel\).*invite"),
    ("chat.postMessage.channel_not_found", InvalidArguments, r"no such Slack channel.*\(channel_not_found\)"),
    ("chat.postMessage.invalid_auth", ConnectorError, r"does not accept the bot token \(invalid_auth\).*"
                                                      r"'slack_bot_token'"),
    ("chat.postMessage.missing_scope", ConnectorError, r"lacks the scope chat:write"),
    ("chat.postMessage.ratelimited", ConnectorError, r"rate limited by Slack \(ratelimited\); retry after 30 s"),
])
def test_a_slack_error_becomes_a_clear_sayso_error_without_the_token(
    tmp_path: Path, replay: type[Replay], recorded: str, error: type[Exception], words: str
) -> None:
    slack = replay(recorded)
    chat = make(tmp_path, slack.url, channels={"#sales-east": "C0SALESEAST"})
    with pytest.raises(error, match=words) as raised:
        chat.execute("send", {"to": "#sales-east", "text": "Orchid renewed"}, key="sk_8", origin=ORIGIN)
    assert isinstance(raised.value, ConnectorError | InvalidArguments)
    assert TOKEN not in str(raised.value) and TOKEN not in repr(raised.value)
    assert raised.value.__cause__ is None  # Slack's own exception, with the whole response, is not chained
    assert TOKEN not in repr(chat)


def test_a_lookup_pages_through_history_with_all_metadata(tmp_path: Path, replay: type[Replay]) -> None:
    key = "sk_5b0e8c1f2a7d4e6b9c3a1f0e2d4c6b8a9e7f5d3c"  # the key in the recorded message's metadata
    slack = replay("conversations.history.page1", "conversations.history.page2", "auth.test")
    chat = make(tmp_path, slack.url, channels={"#sales-east": "C0SALESEAST"})
    effect = chat.lookup(key)

    assert slack.methods() == ["conversations.history", "conversations.history", "auth.test"]
    first, second = slack.requests[:2]
    assert first["fields"]["channel"] == "C0SALESEAST"
    assert first["fields"]["include_all_metadata"] == "1"
    assert "cursor" not in first["fields"]
    assert second["fields"]["cursor"] == "bmV4dF90czoxNzY0MDgyODU1MDAwMTUw"  # the recorded next_cursor
    assert effect is not None
    assert effect.key == key and effect.operation == "send"
    assert effect.result == {"id": "1764082861.000200", "channel": "C0SALESEAST", "ts": "1764082861.000200"}
    assert effect.changes[0].after == {"to": "#sales-east", "text": "Orchid renewed", "sender": "alice",
                                       "channel": "C0SALESEAST", "ts": "1764082861.000200"}


def test_a_lookup_ignores_a_key_posted_by_another_app(tmp_path: Path, replay: type[Replay]) -> None:
    slack = replay("conversations.history.page1", "auth.test", "conversations.history.page2")
    chat = make(tmp_path, slack.url, channels={"#sales-east": "C0SALESEAST"})
    assert chat.lookup("sk_forged") is None  # in the recorded history, but from bot B0OTHERBOT
    assert slack.methods() == ["conversations.history", "auth.test", "conversations.history"]


def test_undo_deletes_the_message_and_a_gone_message_counts_as_undone(tmp_path: Path, replay: type[Replay]) -> None:
    slack = replay("chat.postMessage", "chat.delete", "chat.delete.message_not_found")
    chat = make(tmp_path, slack.url, channels={"#sales-east": "C0SALESEAST"})
    sent = chat.execute("send", {"to": "#sales-east", "text": "Orchid renewed"}, key="sk_9", origin=ORIGIN)
    undone = chat.compensate(sent, key="sk_9:undo")
    assert slack.requests[1]["fields"] == {"channel": "C0SALESEAST", "ts": "1764082861.000200"}
    assert undone.operation == "undo:send" and undone.result["undoes"] == "sk_9"
    assert undone.changes[0].before == sent.changes[0].after and undone.changes[0].after is None
    assert undone.summary == "undo: message 1764082861.000200 to #sales-east deleted"
    again = chat.compensate(sent, key="sk_9:undo2")
    assert again.summary.endswith("was already deleted")


def test_settings_are_checked_without_calling_slack(tmp_path: Path) -> None:
    context = SystemContext(tmp_path, _people(), {})
    with pytest.raises(ConfigurationError, match="secret 'slack_bot_token' is not set"):
        registry.create("chat", {"kind": "slack", "token_secret": "slack_bot_token"}, context)
    with pytest.raises(ConfigurationError, match="needs token_secret"):
        registry.create("chat", {"kind": "slack"}, context)
    with pytest.raises(ConfigurationError, match="unknown setting token"):
        registry.create("chat", {"kind": "slack", "token_secret": "t", "token": TOKEN}, context)
    with pytest.raises(ConfigurationError, match="base_url must be an http"):
        registry.create("chat", {"kind": "slack", "token_secret": "t", "base_url": "file:///etc"},
                        SystemContext(tmp_path, _people(), {"t": TOKEN}))
    assert not (tmp_path / "systems").exists()  # creating a connector writes nothing


# --- (b) a stateful stand-in ------------------------------------------------------


@pytest.fixture
def stand_in() -> Iterator[SlackStandIn]:
    users = {f"{p}@lumenlabs.example": f"U0{p.upper()}01" for p in ("alice", "bob", "carol")}
    with SlackStandIn(TOKEN, users=users, channels={"sales-east": "C0SALESEAST", "support": "C0SUPPORT"}) as api:
        yield api


def test_b_the_same_key_twice_posts_once(tmp_path: Path, stand_in: SlackStandIn) -> None:
    chat = make(tmp_path, stand_in.url)
    first = chat.execute("send", {"to": "carol", "text": "the Orchid deal slipped"}, key="sk_b1", origin=ORIGIN)
    again = chat.execute("send", {"to": "carol", "text": "the Orchid deal slipped"}, key="sk_b1", origin=ORIGIN)
    fresh = make(tmp_path, stand_in.url)  # another process, the same workspace: the journal says where to look
    third = fresh.execute("send", {"to": "carol", "text": "the Orchid deal slipped"}, key="sk_b1", origin=ORIGIN)

    [message] = stand_in.posted()
    assert message["metadata"]["event_payload"]["idempotency_key"] == "sk_b1"
    assert message["metadata"]["event_type"] == EVENT_TYPE
    assert message["text"].endswith(CONTEXT)
    assert first.result == again.result == third.result == {"id": message["ts"], "channel": "D0CAROL01",
                                                              "ts": message["ts"]}
    assert first.changes == again.changes == third.changes


def test_b_lookup_finds_a_post_only_when_it_happened(tmp_path: Path, stand_in: SlackStandIn) -> None:
    chat = make(tmp_path, stand_in.url, channels={"#sales-east": "C0SALESEAST"})
    assert chat.lookup("sk_b2") is None
    stand_in.fail_next("chat.postMessage", "fatal_error")
    with pytest.raises(ConnectorError, match="fatal_error"):
        chat.execute("send", {"to": "#sales-east", "text": "Orchid renewed"}, key="sk_b2", origin=ORIGIN)
    assert stand_in.posted() == [] and chat.lookup("sk_b2") is None  # journaled, not posted: not found
    sent = chat.execute("send", {"to": "#sales-east", "text": "Orchid renewed"}, key="sk_b2", origin=ORIGIN)
    assert chat.lookup("sk_b2") == sent
    # Without this workspace's journal (another machine), the configured channels are searched.
    elsewhere = make(tmp_path / "elsewhere", stand_in.url, channels={"#sales-east": "C0SALESEAST"})
    assert elsewhere.lookup("sk_b2") == sent
    assert len(stand_in.posted()) == 1


def test_b_a_post_whose_answer_is_lost_is_found_not_repeated(tmp_path: Path, stand_in: SlackStandIn) -> None:
    chat = make(tmp_path, stand_in.url)
    stand_in.cut_next("chat.postMessage")
    effect = chat.execute("send", {"to": "#sales-east", "text": "Orchid renewed"}, key="sk_b6", origin=ORIGIN)
    [message] = stand_in.posted()
    assert effect.result["ts"] == message["ts"]
    # Lost again, and Slack cannot be asked either: the person is told it may have been posted.
    stand_in.cut_next("chat.postMessage")
    stand_in.fail_next("conversations.history", "service_unavailable")
    with pytest.raises(ConnectorError, match="may have been posted: check carol before asking again"):
        chat.execute("send", {"to": "carol", "text": "hi"}, key="sk_b7", origin=ORIGIN)
    assert len(stand_in.posted()) == 2


def test_b_undo_deletes_from_slack(tmp_path: Path, stand_in: SlackStandIn) -> None:
    chat = make(tmp_path, stand_in.url)
    sent = chat.execute("send", {"to": "#sales-east", "text": "Orchid renewed"}, key="sk_b3", origin=ORIGIN)
    assert len(stand_in.posted("C0SALESEAST")) == 1
    chat.compensate(sent, key="sk_b3:undo")
    assert stand_in.posted() == []
    assert chat.lookup("sk_b3") is None


def test_b_history_reads_channels_and_only_the_askers_own_dm(tmp_path: Path, stand_in: SlackStandIn) -> None:
    chat = make(tmp_path, stand_in.url)
    chat.execute("send", {"to": "#sales-east", "text": "Orchid renewed"}, key="sk_b4", origin=ORIGIN)
    chat.execute("send", {"to": "carol", "text": "private note for carol"}, key="sk_b5", origin=ORIGIN)
    stand_in.say("C0SALESEAST", "U0CAROL01", "Nice work!")
    stand_in.say("D0CAROL01", "U0CAROL01", "carol's own words to sayso")

    records = chat.read("history", {"to": "#sales-east"})
    assert [(r.attrs["text"], r.attrs["sender"]) for r in records] == [("Nice work!", "U0CAROL01"),
                                                                       ("Orchid renewed", "alice")]
    reads = stand_in.methods().count("conversations.history")
    for args, origin in (({"to": "carol"}, ORIGIN), ({"to": "carol"}, None), ({}, None)):
        with pytest.raises(InvalidArguments, match="#channel"):
            chat.read("history", args, origin=origin)
    assert stand_in.methods().count("conversations.history") == reads  # carol's DM was never read

    mine = chat.read("history", {}, origin={"actor": "carol"})
    assert [r.attrs["text"] for r in mine] == ["carol's own words to sayso", "private note for carol"]
    assert mine == chat.read("history", {"to": "carol", "limit": 5}, origin={"actor": "carol"})
    with pytest.raises(InvalidArguments, match="limit"):
        chat.read("history", {"to": "#sales-east", "limit": 0})


def test_b_preview_calls_nothing(tmp_path: Path, stand_in: SlackStandIn) -> None:
    chat = make(tmp_path, stand_in.url)
    [change] = chat.preview("send", {"to": "carol", "text": "hello"})
    assert change.after == {"to": "carol", "text": "hello"}
    with pytest.raises(InvalidArguments, match="text"):
        chat.preview("send", {"to": "carol", "text": " "})
    with pytest.raises(InvalidArguments, match="cc: Extra inputs"):
        chat.preview("send", {"to": "carol", "text": "hi", "cc": "bob"})
    assert stand_in.calls == []


# --- (c, d) the real CLI, crashed after the effect ---------------------------------


def slack_workspace(root: Path, stand_in: SlackStandIn) -> dict[str, str]:
    """Switch the demo's chat to Slack by configuration alone; the environment that holds the token."""
    switch_system(root, "chat", f'kind = "slack"\ntoken_secret = "slack_bot_token"\nbase_url = "{stand_in.url}"\n'
                  'channels = { "#sales-east" = "C0SALESEAST" }\n', {"slack_bot_token": "SAYSO_TEST_SLACK_TOKEN"})
    return {"SAYSO_TEST_SLACK_TOKEN": TOKEN}


@pytest.fixture
def demo_stand_in(demo_root: Path) -> Iterator[SlackStandIn]:
    people = Directory.load(demo_root / "directory.yaml")
    users = {p.email: f"U0{p.id.upper()}01" for p in people}
    with SlackStandIn(TOKEN, users=users, channels={"sales-east": "C0SALESEAST"}) as api:
        yield api


def test_c_crash_after_the_post_then_recover_posts_once(demo_root: Path, demo_stand_in: SlackStandIn) -> None:
    env = slack_workspace(demo_root, demo_stand_in)
    crash_then_recover(demo_root, "alice", "chat.send", {"to": "carol", "text": "the Orchid deal slipped"}, env,
                       lambda: len(demo_stand_in.posted()), secret=TOKEN)  # (d): the token is not in the audit
    [message] = demo_stand_in.posted()
    assert message["metadata"]["event_payload"]["asked_by"] == "alice"
    assert demo_stand_in.methods().count("chat.postMessage") == 1  # looked up, not posted again
    audit = sayso(demo_root, "audit", "list", "--json", env=env).stdout
    [call] = [e for e in map(json.loads, audit.splitlines()) if e["event"] == "call" and e["action"] == "chat.send"]
    assert call["detail"]["guarantee"] == "verifiable"


def test_d_a_refused_token_never_shows(demo_root: Path, demo_stand_in: SlackStandIn) -> None:
    env = slack_workspace(demo_root, demo_stand_in)
    demo_stand_in.token = "xoxb-the-real-one"  # Slack now refuses ours
    done = sayso(demo_root, "do", "--user", "alice", "--action", "chat.send", "--args",
                 json.dumps({"to": "#sales-east", "text": "Orchid renewed"}), "--now", NOW, "--json", env=env)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == "failed"
    assert "invalid_auth" in done.stdout and "slack_bot_token" in done.stdout
    audit = sayso(demo_root, "audit", "list", "--json", env=env).stdout
    assert "invalid_auth" in audit
    assert demo_stand_in.posted() == []
    for text in (done.stdout, done.stderr, audit):
        assert TOKEN not in text


# --- (e) live calls are blocked ----------------------------------------------------


def test_e_pointing_at_slack_com_is_blocked_in_tests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Resolve slack.com to a public address as a machine with DNS would (this one may have none),
    # so that the call reaches socket.connect, where the tests' switch stands.
    real = socket.getaddrinfo

    def resolve(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "slack.com":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("203.0.113.7", 443))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    guarded = socket.socket.connect  # the switch (conftest); the socket it refuses is closed here, not leaked

    def connect(self: socket.socket, address: Any) -> Any:
        try:
            return guarded(self, address)
        except RuntimeError:
            self.close()
            raise

    monkeypatch.setattr(socket.socket, "connect", connect)
    context = SystemContext(tmp_path, _people(), {"slack_bot_token": TOKEN})
    chat = registry.create("chat", {"kind": "slack", "token_secret": "slack_bot_token",
                                    "channels": {"#sales-east": "C0SALESEAST"}}, context)
    with pytest.raises(RuntimeError, match="live network call blocked"):
        chat.execute("send", {"to": "#sales-east", "text": "Orchid renewed"}, key="sk_e", origin=ORIGIN)
