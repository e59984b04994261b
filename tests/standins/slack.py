"""A stateful stand-in for the few Slack Web API methods sayso uses, served on 127.0.0.1.

It is not Slack: it keeps channels, direct messages and messages in memory, so that a test can
count what a connector did in the target system itself. Requests and answers follow Slack's
documented shapes (docs.slack.dev/reference/methods): a method is ``POST /api/<method>`` with a
form or JSON body and ``Authorization: Bearer <token>``; every answer has ``ok``; a failure is
``{"ok": false, "error": "<code>"}`` with HTTP 200, and a rate limit is HTTP 429 with
``Retry-After``.

Methods: auth.test, apps.connections.open (with the app-level token), users.lookupByEmail, users.info,
conversations.open, conversations.list,
conversations.history (``include_all_metadata``, ``oldest``/``latest``, cursors), conversations.replies,
chat.postMessage (with ``metadata``, ``thread_ts`` and ``blocks``), chat.update, chat.postEphemeral (kept
apart in ``ephemeral``: only its user sees it) and chat.delete.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from ._server import StandInServer, send_json

__all__ = ["Call", "SlackStandIn"]

TEAM, BOT_USER, BOT_ID, APP_ID = "T0LUMENLAB", "U0SAYSOBOT", "B0SAYSOBOT", "A0SAYSOAPP"


@dataclass
class Call:
    """One request as the stand-in received it."""

    method: str
    headers: dict[str, str]
    fields: dict[str, Any]


@dataclass
class _Failure:
    error: str
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


def _cursor(offset: int) -> str:
    return base64.b64encode(f"offset:{offset}".encode()).decode()


def _offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    return int(base64.b64decode(cursor).decode().partition(":")[2])


def _json(value: Any) -> Any:
    """A field a form body carries as JSON text and a JSON body as itself."""
    return json.loads(value) if isinstance(value, str) else value


def _true(value: Any) -> bool:
    return str(value).lower() in ("1", "true")


class SlackStandIn(StandInServer):
    """Slack's Web API for one workspace, in memory.

    ``users`` maps email addresses to user ids; ``channels`` maps channel names (without ``#``)
    to ids; the bot is a member of the channels in ``member_of`` (all of them by default).
    """

    def __init__(self, token: str, *, users: Mapping[str, str] | None = None,
                 channels: Mapping[str, str] | None = None, member_of: set[str] | None = None,
                 app_token: str | None = None, socket_url: str | None = None) -> None:
        self.token = token
        self.app_token, self.socket_url = app_token, socket_url  # apps.connections.open, for Socket Mode
        self.users = dict(users or {})
        self.channels = dict(channels or {})
        self.member_of = set(self.channels.values()) if member_of is None else set(member_of)
        self.messages: dict[str, list[dict[str, Any]]] = {cid: [] for cid in self.channels.values()}
        self.calls: list[Call] = []
        self.ephemeral: list[dict[str, Any]] = []
        self._failures: dict[str, list[_Failure]] = {}
        self._cuts: list[str] = []
        self._lock = threading.Lock()
        self._last_ts = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    # --- what tests look at ----------------------------------------------------

    def fail_next(self, method: str, error: str, *, status: int = 200, retry_after: int | None = None) -> None:
        """The next call of ``method`` fails with ``error`` (HTTP ``status``; 429 carries Retry-After)."""
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        self._failures.setdefault(method, []).append(_Failure(error, status, headers))

    def cut_next(self, method: str) -> None:
        """The next call of ``method`` is carried out, but its answer is lost: the connection closes."""
        self._cuts.append(method)

    def posted(self, channel: str | None = None) -> list[dict[str, Any]]:
        """Every message in the workspace (or in one conversation), oldest first."""
        with self._lock:
            found = [m for cid, ms in self.messages.items() if channel in (None, cid) for m in ms]
        return sorted(found, key=lambda m: float(m["ts"]))

    def dm_of(self, email: str) -> str:
        """The id of the bot's direct message with the user of this email (opened or not)."""
        return "D" + self.users[email][1:]

    def methods(self) -> list[str]:
        return [c.method for c in self.calls]

    # --- serving ---------------------------------------------------------------

    def serve(self, request: BaseHTTPRequestHandler) -> None:
        url = urlsplit(request.path)
        method = url.path.removeprefix("/api/")
        body = request.rfile.read(int(request.headers.get("Content-Length") or 0)).decode()
        fields: dict[str, Any] = dict(parse_qsl(url.query))
        if request.headers.get_content_type() == "application/json" and body:
            fields.update(json.loads(body))
        elif body:
            fields.update(parse_qsl(body))
        headers = {k: v for k, v in request.headers.items()}
        with self._lock:
            self.calls.append(Call(method, headers, fields))
            status, extra, answer = self._answer(method, headers, fields)
            cut = method in self._cuts
            if cut:
                self._cuts.remove(method)
        if cut:
            request.close_connection = True
            return
        send_json(request, status, answer, extra)

    def _answer(self, method: str, headers: Mapping[str, str],
                fields: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any]]:
        auth = headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else fields.get("token")
        if not token:
            return 200, {}, {"ok": False, "error": "not_authed"}
        if token != (self.app_token if method == "apps.connections.open" else self.token):
            return 200, {}, {"ok": False, "error": "invalid_auth"}
        queued = self._failures.get(method)
        if queued:
            failure = queued.pop(0)
            return failure.status, failure.headers, {"ok": False, "error": failure.error}
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            return 200, {}, {"ok": False, "error": "unknown_method"}
        return 200, {}, handler(fields)

    def _auth_test(self, fields: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": "https://lumenlabs.slack.com/", "team": "Lumen Labs", "user": "sayso",
                "team_id": TEAM, "user_id": BOT_USER, "bot_id": BOT_ID, "is_enterprise_install": False}

    def _users_lookupByEmail(self, fields: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        email = str(fields.get("email", ""))
        if email not in self.users:
            return {"ok": False, "error": "users_not_found"}
        user = self.users[email]
        name = email.partition("@")[0]
        return {"ok": True, "user": {
            "id": user, "team_id": TEAM, "name": name, "deleted": False, "real_name": name.title(),
            "tz": "America/New_York", "profile": {"real_name": name.title(), "display_name": name, "email": email},
            "is_admin": False, "is_bot": False, "is_app_user": False, "updated": 1764061200,
        }}

    def _apps_connections_open(self, fields: dict[str, Any]) -> dict[str, Any]:
        if self.socket_url is None:
            return {"ok": False, "error": "not_allowed_token_type"}
        return {"ok": True, "url": self.socket_url}

    def _users_info(self, fields: dict[str, Any]) -> dict[str, Any]:
        user = str(fields.get("user", ""))
        email = next((e for e, u in self.users.items() if u == user), None)
        if email is None:
            return {"ok": False, "error": "user_not_found"}
        name = email.partition("@")[0]
        return {"ok": True, "user": {
            "id": user, "team_id": TEAM, "name": name, "deleted": False, "real_name": name.title(),
            "tz": "America/New_York", "profile": {"real_name": name.title(), "display_name": name, "email": email},
            "is_admin": False, "is_bot": False, "is_app_user": False, "updated": 1764061200,
        }}

    def _conversations_open(self, fields: dict[str, Any]) -> dict[str, Any]:
        users = [u for u in str(fields.get("users", "")).split(",") if u]
        if not users:
            return {"ok": False, "error": "users_list_not_supplied"}
        if len(users) > 1 or users[0] not in self.users.values():
            return {"ok": False, "error": "user_not_found"}
        channel = "D" + users[0][1:]
        if channel in self.messages:
            return {"ok": True, "no_op": True, "already_open": True, "channel": {"id": channel}}
        self.messages[channel] = []
        return {"ok": True, "channel": {"id": channel}}

    def _conversations_list(self, fields: dict[str, Any]) -> dict[str, Any]:
        listed = [
            {"id": cid, "name": name, "is_channel": True, "is_group": False, "is_im": False, "is_archived": False,
             "is_general": False, "name_normalized": name, "is_member": cid in self.member_of, "is_private": False,
             "is_mpim": False, "topic": {"value": "", "creator": "", "last_set": 0},
             "purpose": {"value": "", "creator": "", "last_set": 0}, "num_members": 8}
            for name, cid in sorted(self.channels.items())
        ]
        start, limit = _offset(fields.get("cursor")), int(fields.get("limit") or 100)
        page = listed[start:start + limit]
        more = start + limit < len(listed)
        return {"ok": True, "channels": page,
                "response_metadata": {"next_cursor": _cursor(start + limit) if more else ""}}

    def _known(self, channel: str) -> dict[str, Any] | None:
        """The error for a conversation the bot cannot use, or None."""
        if channel not in self.messages:
            return {"ok": False, "error": "channel_not_found"}
        if not channel.startswith("D") and channel not in self.member_of:
            return {"ok": False, "error": "not_in_channel"}
        return None

    def _chat_postMessage(self, fields: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        channel = str(fields.get("channel", ""))
        problem = self._known(channel)
        if problem:
            return problem
        if not fields.get("text"):
            return {"ok": False, "error": "no_text"}
        now = max(time.time(), self._last_ts + 0.000001)
        self._last_ts = now
        message: dict[str, Any] = {
            "type": "message", "text": str(fields["text"]), "user": BOT_USER, "bot_id": BOT_ID, "app_id": APP_ID,
            "team": TEAM, "ts": f"{now:.6f}",
            "bot_profile": {"id": BOT_ID, "app_id": APP_ID, "name": "sayso", "deleted": False, "team_id": TEAM},
        }
        metadata = fields.get("metadata")
        if isinstance(metadata, str):
            metadata = json.loads(metadata)
        if metadata:
            message["metadata"] = metadata
        if fields.get("thread_ts"):
            message["thread_ts"] = str(fields["thread_ts"])
        if fields.get("blocks"):
            message["blocks"] = _json(fields["blocks"])
        self.messages[channel].append(message)
        return {"ok": True, "channel": channel, "ts": message["ts"], "message": dict(message)}

    def _conversations_history(self, fields: dict[str, Any]) -> dict[str, Any]:
        channel = str(fields.get("channel", ""))
        problem = self._known(channel)
        if problem:
            return problem
        oldest, latest = float(fields.get("oldest") or 0), float(fields.get("latest") or "inf")
        inclusive = _true(fields.get("inclusive"))
        kept = [
            m for m in reversed(self.messages[channel])
            if (oldest <= float(m["ts"]) if inclusive else oldest < float(m["ts"]))
            and (float(m["ts"]) <= latest if inclusive else float(m["ts"]) < latest)
        ]
        start, limit = _offset(fields.get("cursor")), min(int(fields.get("limit") or 100), 999)
        page = kept[start:start + limit]
        if not _true(fields.get("include_all_metadata")):
            page = [{k: v for k, v in m.items() if k != "metadata"} for m in page]
        more = start + limit < len(kept)
        answer: dict[str, Any] = {"ok": True, "messages": page, "has_more": more, "pin_count": 0}
        if more:
            answer["response_metadata"] = {"next_cursor": _cursor(start + limit)}
        return answer

    def _chat_update(self, fields: dict[str, Any]) -> dict[str, Any]:
        channel, ts = str(fields.get("channel", "")), str(fields.get("ts", ""))
        found = self._own_message(channel, ts, "cant_update_message")
        if "ok" in found:
            return found
        if "text" in fields:
            found["text"] = str(fields["text"])
        if fields.get("blocks"):
            found["blocks"] = _json(fields["blocks"])
        found["edited"] = {"user": BOT_USER, "ts": f"{max(time.time(), float(ts)):.6f}"}
        return {"ok": True, "channel": channel, "ts": ts, "text": found["text"], "message": dict(found)}

    def _chat_postEphemeral(self, fields: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        channel, user = str(fields.get("channel", "")), str(fields.get("user", ""))
        problem = self._known(channel)
        if problem:
            return problem
        if user not in self.users.values():
            return {"ok": False, "error": "user_not_found"}
        if not fields.get("text") and not fields.get("blocks"):
            return {"ok": False, "error": "no_text"}
        now = max(time.time(), self._last_ts + 0.000001)
        self._last_ts = now
        self.ephemeral.append({"channel": channel, "user": user, "text": str(fields.get("text", "")),
                               "thread_ts": fields.get("thread_ts"), "message_ts": f"{now:.6f}",
                               "blocks": _json(fields["blocks"]) if fields.get("blocks") else None})
        return {"ok": True, "message_ts": f"{now:.6f}"}

    def _conversations_replies(self, fields: dict[str, Any]) -> dict[str, Any]:
        channel, ts = str(fields.get("channel", "")), str(fields.get("ts", ""))
        problem = self._known(channel)
        if problem:
            return problem
        thread = self._in_thread(channel, ts)
        if not thread:
            return {"ok": False, "error": "thread_not_found"}
        return {"ok": True, "messages": thread, "has_more": False}

    def thread(self, channel: str, ts: str) -> list[dict[str, Any]]:
        """A thread's messages, its first one included, oldest first."""
        with self._lock:
            return [dict(m) for m in self._in_thread(channel, ts)]

    def _in_thread(self, channel: str, ts: str) -> list[dict[str, Any]]:
        return [m for m in self.messages.get(channel, []) if ts in (m["ts"], m.get("thread_ts"))]

    def _own_message(self, channel: str, ts: str, refused: str) -> dict[str, Any]:
        """The app's own message ``ts`` in ``channel``, or Slack's error for it (a dict with ``ok``: false):
        unknown channel, ``message_not_found``, or ``refused`` for someone else's message."""
        problem = self._known(channel)
        if problem:
            return problem
        found = next((m for m in self.messages[channel] if m["ts"] == ts), None)
        if found is None:
            return {"ok": False, "error": "message_not_found"}
        if found.get("bot_id") != BOT_ID:
            return {"ok": False, "error": refused}
        return found

    def _chat_delete(self, fields: dict[str, Any]) -> dict[str, Any]:
        channel, ts = str(fields.get("channel", "")), str(fields.get("ts", ""))
        found = self._own_message(channel, ts, "cant_delete_message")
        if "ok" in found:
            return found
        self.messages[channel].remove(found)
        return {"ok": True, "channel": channel, "ts": ts}

    def say(self, channel: str, user: str, text: str, thread_ts: str | None = None) -> dict[str, Any]:
        """A person writes in a conversation (in a thread of it, with ``thread_ts``); a DM is opened if needed."""
        with self._lock:
            self.messages.setdefault(channel, [])
            now = max(time.time(), self._last_ts + 0.000001)
            self._last_ts = now
            message = {"type": "message", "user": user, "text": text, "ts": f"{now:.6f}", "team": TEAM}
            if thread_ts:
                message["thread_ts"] = thread_ts
            self.messages[channel].append(message)
        return message
