"""Slack as the team chat: the demo chat's ``send`` and ``history``, through Slack's Web API.

Every message sayso posts carries message metadata (``event_type: sayso_action``) with its
idempotency key and the why (who asked, their words, the conversation), and its text ends with a
short context line. A step cut by a crash is found again in the channel's history, read with
``include_all_metadata`` (``Guarantee.VERIFIABLE``); an undo deletes the message (chat.delete).

Recovery must know which conversation to read. So before posting, the connector notes the key,
the Slack channel and the time in a small journal file in the workspace (write-ahead); a lookup
then reads that channel's history since that time. A key the journal does not hold (a journal
on another machine) is looked for among the newest ``lookup_depth`` messages of the channels
named in the settings.

Settings (``[systems.<name>]``): ``token_secret`` (the name of the secret holding the bot
token), ``base_url``, ``channels`` (``"#sales-east" = "C0123..."``; other public channels are found by name),
``timeout`` (seconds), ``journal`` (a path in the workspace) and ``lookup_depth``.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping
from contextlib import closing
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import StringConstraints

from ..directory import Directory
from ..errors import ConfigurationError, ConnectorError, InvalidArguments, OutcomeUnknown
from . import ConnectorRegistry, SystemContext
from ._common import Settings, parse_args, require_extra, short
from .base import Change, Connector, Effect, Guarantee, Record
from .operations import History, SendMessage
from .provenance import why_fields

if TYPE_CHECKING:
    from slack_sdk import WebClient

__all__ = ["EVENT_TYPE", "Slack", "context_line", "register"]

EVENT_TYPE = "sayso_action"
"""The ``event_type`` of the metadata on every message sayso posts."""

_CONTEXT = "— via sayso"  # the visible context line starts with this
_SETTINGS = frozenset({"kind", "token_secret", "base_url", "channels", "timeout", "journal", "lookup_depth"})
_SKEW = 300.0  # seconds: a lookup reads from this long before the journaled time (clocks differ)
_SINCE_MOST = 5_000  # at most this many messages are read after the journaled time
_PAGE = 200  # messages per conversations.history page
_FIELD_CHARS = 1_000  # a text field of the metadata is cut to this size

# Slack's errors (the ``error`` of an ``ok: false`` body) that mean the request was wrong, in words.
_REQUEST_ERRORS = {
    "channel_not_found": "no such Slack channel, or the bot cannot see it",
    "users_not_found": "no Slack user has this email address",
    "user_not_found": "no such Slack user",
    "user_disabled": "this Slack user is deactivated",
    "is_archived": "the channel is archived",
    "msg_too_long": "the message is too long for Slack",
    "no_text": "the message has no text",
}
_AUTH_ERRORS = frozenset(
    {"not_authed", "invalid_auth", "account_inactive", "token_revoked", "token_expired", "not_allowed_token_type"}
)


class Send(SendMessage):
    """The chat's ``send``, as long as Slack takes a message (msg_too_long beyond)."""

    text: Annotated[str, StringConstraints(min_length=1, max_length=4000, pattern=r"\S")]


def context_line(origin: Mapping[str, Any] | None) -> str:
    """The last line of a posted message: ``— via sayso, asked by Alice Moreno (alice) in conversation c_1``."""
    why = why_fields(origin)
    line = _CONTEXT
    name, person = why.get("asked_by_name"), why.get("asked_by")
    if name or person:
        line += f", asked by {name} ({person})" if name and person else f", asked by {name or person}"
    if why.get("conversation"):
        line += f" in conversation {why['conversation']}"
    return line


def _without_context(text: str) -> str:
    """The words of a posted message, without sayso's context line."""
    head, _, last = text.rpartition("\n")
    return head if last.startswith(_CONTEXT) else text


def _payload(key: str, to: str, origin: Mapping[str, Any] | None) -> dict[str, Any]:
    """The metadata's ``event_payload``: the key, the recipient and the why, as flat values
    (Slack takes strings, numbers and booleans; ``related`` becomes one comma-separated string)."""
    payload: dict[str, Any] = {"idempotency_key": key, "to": to}
    for name, value in why_fields(origin).items():
        if isinstance(value, list):
            value = ", ".join(map(str, value))
        elif not isinstance(value, str | int | float | bool):
            value = str(value)
        payload[name] = short(value, _FIELD_CHARS) if isinstance(value, str) else value
    return payload


def _metadata(message: Mapping[str, Any]) -> dict[str, Any]:
    """The event payload of a message sayso posted, or ``{}``."""
    metadata = message.get("metadata")
    if not isinstance(metadata, Mapping) or metadata.get("event_type") != EVENT_TYPE:
        return {}
    payload = metadata.get("event_payload")
    return dict(payload) if isinstance(payload, Mapping) else {}


@dataclass(frozen=True)
class _Me:
    user_id: str
    bot_id: str


class _Unreachable(ConnectorError):
    """Slack could not be reached or did not answer: a post may or may not have happened."""


class _Journal:
    """Where and when each key was posted, noted just before the post (a small SQLite file)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=10)
        conn.execute("CREATE TABLE IF NOT EXISTS sent (key TEXT PRIMARY KEY, channel TEXT NOT NULL, at REAL NOT NULL)")
        return conn

    def note(self, key: str, channel: str, at: float) -> None:
        """Keep the first attempt: a later one of the same key goes to the same channel, later."""
        try:
            with closing(self._connect()) as conn, conn:
                conn.execute("INSERT OR IGNORE INTO sent (key, channel, at) VALUES (?, ?, ?)", (key, channel, at))
        except sqlite3.Error as exc:
            raise ConnectorError(f"the Slack journal {self.path} cannot be written: {exc}") from None

    def get(self, key: str) -> tuple[str, float] | None:
        if not self.path.exists():
            return None
        try:
            with closing(self._connect()) as conn:
                row = conn.execute("SELECT channel, at FROM sent WHERE key = ?", (key,)).fetchone()
        except sqlite3.Error as exc:
            raise ConnectorError(f"the Slack journal {self.path} cannot be read: {exc}") from None
        return None if row is None else (str(row[0]), float(row[1]))


class Slack(Connector):
    """A Slack workspace, reached with a bot token: ``send`` posts, ``history`` reads."""

    guarantee = Guarantee.VERIFIABLE  # the key is in each message's metadata, read back from history
    record_types = frozenset({"Message"})

    def __init__(
        self,
        name: str,
        *,
        token: str,
        token_secret: str,
        directory: Directory,
        journal: Path,
        base_url: str = "https://slack.com/api/",
        channels: Mapping[str, str] | None = None,
        timeout: int = 30,
        lookup_depth: int = 200,
    ) -> None:
        self.name = name
        self._token = token
        self._token_secret = token_secret
        self._directory = directory
        self._journal = _Journal(journal)
        self._base_url = base_url
        self._timeout = timeout
        self._depth = lookup_depth
        self._configured = {_channel_name(k): v for k, v in (channels or {}).items()}
        self._channels = dict(self._configured)
        self._listed = False
        self._dms: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"Slack({self.name!r}, base_url={self._base_url!r})"

    # --- calls -----------------------------------------------------------------

    @cached_property
    def _client(self) -> WebClient:
        from slack_sdk import WebClient

        # No automatic retries: a post retried after a cut connection could appear twice; the
        # executor retries, after looking the key up.
        return WebClient(token=self._token, base_url=self._base_url, timeout=self._timeout, retry_handlers=[])

    def _call(self, method: str, about: str = "", *, tolerate: frozenset[str] = frozenset(),
              **args: Any) -> dict[str, Any]:
        """One Web API call; an ``ok: false`` answer becomes a sayso error (unless its code is
        ``tolerate``d: then the body is returned). No message ever holds the token."""
        from slack_sdk.errors import SlackApiError, SlackClientError

        try:
            response = getattr(self._client, method.replace(".", "_"))(**args)
        except SlackApiError as exc:
            data = exc.response.data if isinstance(exc.response.data, dict) else {}
            if data.get("error") in tolerate:
                return data
            raise self._failure(method, about, exc.response.status_code, exc.response.headers, data) from None
        except (SlackClientError, OSError) as exc:  # URLError and socket timeouts are OSErrors
            reason = getattr(exc, "reason", None) or exc
            raise _Unreachable(f"{self.name}: Slack {method}{about} could not be completed: {reason}") from None
        data = response.data
        return data if isinstance(data, dict) else {}

    def _failure(self, method: str, about: str, status: int, headers: Mapping[str, Any],
                 data: Mapping[str, Any]) -> ConnectorError | InvalidArguments:
        error = str(data.get("error") or f"HTTP {status}")
        where = f"{self.name}: Slack {method}{about}"
        if status == 429 or error == "ratelimited":
            wait = next((str(v) for k, v in headers.items() if k.lower() == "retry-after"), "")
            after = f"; retry after {wait} s" if wait else ""
            return ConnectorError(f"{where} was refused: rate limited by Slack (ratelimited){after}")
        if error in _AUTH_ERRORS:
            return ConnectorError(f"{where} was refused: Slack does not accept the bot token ({error}); "
                                  f"check the secret {self._token_secret!r}")
        if error == "missing_scope":
            needed = f" {data['needed']}" if data.get("needed") else ""
            return ConnectorError(f"{where} was refused: the bot token lacks the scope{needed} (missing_scope); "
                                  "add it to the Slack app and reinstall it")
        if error == "not_in_channel":
            return ConnectorError(f"{where} was refused: the bot is not a member of the channel (not_in_channel); "
                                  "invite it there (/invite @your-app)")
        if error in _REQUEST_ERRORS:
            return InvalidArguments(f"{where}: {_REQUEST_ERRORS[error]} ({error})")
        return ConnectorError(f"{where} failed: {error}")

    @cached_property
    def _me(self) -> _Me:
        """Who the bot is (auth.test): only its own messages count in a lookup."""
        data = self._call("auth.test")
        return _Me(str(data.get("user_id", "")), str(data.get("bot_id", "")))

    # --- recipients ------------------------------------------------------------

    def _channel(self, name: str) -> str:
        """The id of a ``#channel``: from the settings, else found among the public channels by name
        (conversations.list; a private channel's id belongs in the settings)."""
        name = _channel_name(name)
        if name not in self._channels and not self._listed:
            cursor = None
            while True:
                page = self._call("conversations.list", types="public_channel", exclude_archived=True,
                                  limit=_PAGE, cursor=cursor)
                for channel in page.get("channels", []):
                    self._channels.setdefault(f"#{channel['name']}", str(channel["id"]))
                cursor = (page.get("response_metadata") or {}).get("next_cursor")
                if not cursor:
                    break
            self._listed = True
        if name not in self._channels:
            raise InvalidArguments(f"{self.name}: no Slack channel {name} (name it under "
                                   f"[systems.{self.name}.channels], or check that the bot can see it)")
        return self._channels[name]

    def _dm(self, person_id: str) -> str:
        """The id of the direct message between the bot and a person of the directory, found by
        their directory email (users.lookupByEmail) and opened (conversations.open)."""
        if person_id not in self._dms:
            person = self._directory.get(person_id)
            if not person.email:
                raise InvalidArguments(f"{self.name}: {person_id} has no email in the directory, "
                                       "so their Slack account cannot be found")
            found = self._call("users.lookupByEmail", f" for {person_id} <{person.email}>", email=person.email)
            user = str(found["user"]["id"])
            opened = self._call("conversations.open", f" with {person_id}", users=user)
            self._dms[person_id] = str(opened["channel"]["id"])
        return self._dms[person_id]

    def _conversation(self, to: str) -> str:
        return self._channel(to) if to.startswith("#") else self._dm(to)

    # --- the interface ---------------------------------------------------------

    def _send(self, operation: str, args: Mapping[str, Any]) -> Send:
        if operation != "send":
            raise InvalidArguments(f"{self.name} has no write operation {operation!r} (it has: send)")
        return parse_args(Send, args, operation)

    def preview(self, operation: str, args: dict[str, Any]) -> list[Change]:
        """What ``send`` would post, checked without calling Slack (a person must be in the directory)."""
        params = self._send(operation, args)
        if not params.to.startswith("#"):
            self._directory.get(params.to)
        return [Change(record_type="Message", record_id="(new)", title=short(params.text),
                       after={"to": params.to, "text": params.text})]

    def execute(
        self, operation: str, args: dict[str, Any], *, key: str, origin: dict[str, Any] | None = None
    ) -> Effect:
        """Post once per key: a key already posted returns the message found in the history."""
        params = self._send(operation, args)
        if self._journal.get(key) is not None:
            done = self.lookup(key)
            if done is not None:
                return done
        channel = self._conversation(params.to)
        self._journal.note(key, channel, time.time())
        text = f"{params.text}\n{context_line(origin)}"
        metadata = {"event_type": EVENT_TYPE, "event_payload": _payload(key, params.to, origin)}
        try:
            posted = self._call("chat.postMessage", f" to {params.to}", channel=channel, text=text,
                                metadata=metadata, unfurl_links=False, unfurl_media=False)
        except _Unreachable as exc:
            try:
                done = self.lookup(key)
            except ConnectorError:
                done = None
            if done is not None:
                return done
            raise OutcomeUnknown(f"{exc.message}; the message may have been posted: "
                                 f"check {params.to} before asking again") from None
        sender = why_fields(origin).get("asked_by") or "sayso"
        return _effect(key, params.to, str(posted.get("channel") or channel), str(posted["ts"]), params.text,
                       str(sender))

    def lookup(self, key: str) -> Effect | None:
        """The message posted under ``key``: read from the journaled channel since the journaled
        time, else among the newest ``lookup_depth`` messages of the configured channels."""
        noted = self._journal.get(key)
        if noted is not None:
            channel, at = noted
            return self._find(key, channel, oldest=f"{max(at - _SKEW, 0):.6f}", most=_SINCE_MOST)
        for channel in dict.fromkeys(self._configured.values()):
            found = self._find(key, channel, oldest=None, most=self._depth)
            if found is not None:
                return found
        return None

    def _find(self, key: str, channel: str, *, oldest: str | None, most: int) -> Effect | None:
        cursor, seen = None, 0
        while seen < most:
            page = self._call("conversations.history", f" of {channel}", channel=channel,
                              include_all_metadata=True, limit=min(_PAGE, most - seen), oldest=oldest,
                              cursor=cursor)
            messages = page.get("messages", [])
            for message in messages:
                payload = _metadata(message)
                if payload.get("idempotency_key") == key and self._mine(message):
                    text = _without_context(str(message.get("text", "")))
                    return _effect(key, str(payload.get("to", channel)), channel, str(message["ts"]), text,
                                   str(payload.get("asked_by") or "sayso"))
            seen += len(messages)
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not messages or not page.get("has_more") or not cursor:
                break
        return None

    def _mine(self, message: Mapping[str, Any]) -> bool:
        me = self._me
        return bool(me.bot_id and message.get("bot_id") == me.bot_id
                    or me.user_id and message.get("user") == me.user_id)

    def read_as(self, operation: str, args: dict[str, Any], *, origin: dict[str, Any] | None = None) -> list[Record]:
        return self.read(operation, args, origin=origin)

    def read(self, operation: str, args: dict[str, Any], *, origin: Mapping[str, Any] | None = None
             ) -> list[Record]:
        """``history``: the newest messages of a ``#channel``, or of the asker's own direct message
        with sayso. Another person's direct messages are never read; ``origin`` says who asks."""
        if operation != "history":
            raise InvalidArguments(f"{self.name} has no read operation {operation!r} (it has: history)")
        params = parse_args(History, args, operation)
        to = params.to
        if to is None or not to.startswith("#"):
            asker = why_fields(origin).get("asked_by")
            to = to or asker
            if to is None or asker is None:
                raise InvalidArguments(f"{self.name}: name a #channel; a direct message with sayso is read "
                                       "only for the person it belongs to, and this request does not say who asks")
            if to != asker:
                raise InvalidArguments(f"{self.name}: the direct messages of {to} with sayso are private to {to}; "
                                       "name a #channel")
        channel = self._conversation(to)
        page = self._call("conversations.history", f" of {to}", channel=channel, limit=params.limit,
                          include_all_metadata=True)
        return [self._record(to, channel, m) for m in page.get("messages", []) if m.get("type") == "message"]

    def _record(self, to: str, channel: str, message: Mapping[str, Any]) -> Record:
        text = _without_context(str(message.get("text", "")))
        sender = _metadata(message).get("asked_by") or message.get("user") or message.get("bot_id") or "unknown"
        ts = str(message.get("ts", ""))
        return Record(type="Message", id=ts, title=short(text), system=self.name,
                      attrs={"to": to, "text": text, "sender": str(sender), "channel": channel, "ts": ts})

    def compensate(self, effect: Effect, *, key: str) -> Effect:
        """Undo a post by deleting the message; one already deleted counts as undone."""
        channel, ts = effect.result.get("channel"), effect.result.get("ts")
        if effect.operation != "send" or not channel or not ts:
            raise InvalidArguments(f"{self.name} can undo only a sent message (with its channel and ts)")
        answer = self._call("chat.delete", f" of message {ts}", tolerate=frozenset({"message_not_found"}),
                            channel=channel, ts=ts)
        before = effect.changes[0].after if effect.changes else None
        to = (before or {}).get("to", channel)
        gone = "was already deleted" if answer.get("ok") is False else "deleted"
        return Effect(
            key=key, operation="undo:send", result={"undoes": effect.key, "channel": channel, "ts": ts},
            changes=[Change(record_type="Message", record_id=str(ts), title=effect.changes[0].title
                            if effect.changes else "", before=before, after=None)],
            summary=f"undo: message {ts} to {to} {gone}",
        )


def _channel_name(name: str) -> str:
    return name if name.startswith("#") else f"#{name}"


def _effect(key: str, to: str, channel: str, ts: str, text: str, sender: str) -> Effect:
    after = {"to": to, "text": text, "sender": sender, "channel": channel, "ts": ts}
    return Effect(key=key, operation="send", result={"id": ts, "channel": channel, "ts": ts},
                  changes=[Change(record_type="Message", record_id=ts, title=short(text), after=after)],
                  summary=f"sent to {to}: {short(text)!r}")


def _create(name: str, settings: Mapping[str, Any], context: SystemContext) -> Slack:
    """A Slack system from its ``sayso.toml`` table; nothing is called until the first use."""
    read = Settings(name, settings, kind="slack", where=f"system {name!r} (kind slack)")
    unknown = sorted(set(settings) - _SETTINGS)
    if unknown:
        known = ", ".join(sorted(_SETTINGS))
        raise read.error(f"unknown setting {', '.join(unknown)} (known: {known})")
    require_extra(name, "slack", "the Slack SDK", "slack_sdk")
    secret = settings.get("token_secret")
    if not isinstance(secret, str) or not secret:
        raise ConfigurationError(f"{read.where} needs token_secret: the name of the secret holding the bot token")
    base_url = settings.get("base_url", "https://slack.com/api/")
    if not isinstance(base_url, str) or not base_url.startswith(("https://", "http://")):
        raise read.error("base_url must be an http(s) URL, such as https://slack.com/api/")
    channels = settings.get("channels", {})
    if not isinstance(channels, Mapping) or not all(isinstance(v, str) and v for v in channels.values()):
        raise read.error('channels maps channel names to Slack ids ("#sales-east" = "C0123")')
    timeout, depth = read.count("timeout", 30), read.count("lookup_depth", 200)
    journal = context.root / str(settings.get("journal") or f"systems/{name}.slack-journal.db")
    return Slack(name, token=context.secret(secret), token_secret=secret, directory=context.directory,
                 journal=journal, base_url=base_url, channels=dict(channels), timeout=timeout,
                 lookup_depth=depth)


def register(registry: ConnectorRegistry) -> None:
    """Add the kind ``slack``."""
    registry.add("slack", _create)
