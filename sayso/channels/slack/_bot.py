"""The Slack app: bolt listeners that acknowledge at once and run the turn in the background.

Every delivery is acknowledged within Slack's 3 seconds (``process_before_response`` with lazy listeners: the
acknowledgement is all the request does) and then taken once: its key (an event's ``event_id``, a click's
payload) is inserted in ``slack_seen`` in the state database, and a key already there is a retry or a double
delivery, dropped whichever process receives it. A confirmation is also single-use in the store, so two clicks
that are not the same delivery still execute once. The person is the directory person whose email Slack gives
for the user (``users.info``, cached); a Slack user who is nobody in the directory is told so, and nothing else
happens. One Slack thread is one conversation per person in it (``slack_threads``).
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError

from ...clock import Clock
from ...conversation import Chat, Conversations
from ...directory import Person
from ...errors import ConnectorError, InputTooLarge, RateLimited, SaysoError, WorkspaceError
from ...interpreter import Interpreter
from ...pipeline import Pipeline
from ...store import schema
from ...turn import TurnResult, TurnStatus
from ...workspace import Workspace
from ._blocks import APPROVE, DECLINE, OPTION, answered_option, decided, progress, progress_done, render, text_of

__all__ = ["SlackBot", "SlackConfig", "slack_config"]

log = logging.getLogger("sayso.slack")

_MENTION = re.compile(r"<@([A-Z0-9]+)(?:\|[^>]*)?>")
UNKNOWN_USER = ("I can't match your Slack account to anyone in this workspace's directory, so I can't act for "
                "you. Ask your sayso administrator to add your work email to the directory.")
NOT_YOURS = "This is not yours to approve."
NOT_YOUR_QUESTION = "This question is not yours to answer."
ANSWERED_ALREADY = "This question has been answered already."
ANSWERED_PRIVATELY = "Answered privately: in a channel, what a read finds is shown only to whoever asked."
UNREACHABLE = "I could not check with Slack who you are just now; try again in a moment."
CRASHED = "Something went wrong on sayso's server; it is in the server's log."


class SlackSettings(BaseModel):
    """``[channels.slack]`` in sayso.toml: secrets are named, never written there."""

    model_config = ConfigDict(extra="forbid")

    signing_secret: str = Field(description="the name of the secret holding the app's signing secret")
    bot_token: str = Field(description="the name of the secret holding the bot token (xoxb-...)")
    app_token: str | None = Field(None, description="the name of the secret holding the app-level token "
                                                    "(xapp-...), for Socket Mode (`sayso slack`)")
    base_url: str = "https://slack.com/api/"
    users_cache_seconds: float = Field(600, ge=0)
    reads_in_channels: Literal["private", "thread"] = "private"
    teams: list[str] = Field(default_factory=list, description="Slack team ids whose members may act (all when "
                                                               "empty); others, e.g. in a shared channel, are "
                                                               "strangers")


class SlackConfig(BaseModel):
    """The settings with their secrets resolved."""

    signing_secret: str
    bot_token: str
    app_token: str | None
    base_url: str
    users_cache_seconds: float
    reads_in_channels: str
    teams: list[str]


def slack_config(ws: Workspace) -> SlackConfig | None:
    """The workspace's Slack channel, or None when sayso.toml has no ``[channels.slack]``."""
    section = ws.settings.channels.get("slack")
    if section is None:
        return None
    where = str(ws.root / "sayso.toml")
    try:
        settings = SlackSettings.model_validate(section)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise WorkspaceError(f"[channels.slack]: {problems}", file=where) from None
    if not settings.base_url.startswith(("https://", "http://")):
        raise WorkspaceError("[channels.slack] base_url must be an http(s) URL, such as https://slack.com/api/",
                             file=where)

    def secret(field: str, name: str | None) -> str | None:
        if name is None:
            return None
        value = ws.secrets.get(name)
        if not value:
            raise WorkspaceError(f"[channels.slack] {field} names the secret {name!r}, which is not set "
                                 "(environment or secrets file)", file=where)
        return value

    return SlackConfig(signing_secret=secret("signing_secret", settings.signing_secret) or "",
                       bot_token=secret("bot_token", settings.bot_token) or "",
                       app_token=secret("app_token", settings.app_token), base_url=settings.base_url,
                       users_cache_seconds=settings.users_cache_seconds,
                       reads_in_channels=settings.reads_in_channels, teams=settings.teams)


class _Background(ThreadPoolExecutor):
    """Bolt's executor for lazy listeners, which also knows when the work it was given is done."""

    def __init__(self) -> None:
        super().__init__(max_workers=_WORKERS, thread_name_prefix="sayso-slack")
        self._running: set[Future[Any]] = set()
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future = super().submit(fn, *args, **kwargs)
        with self._lock:
            self._running.add(future)
        future.add_done_callback(self._done)
        return future

    def _done(self, future: Future[Any]) -> None:
        with self._lock:
            self._running.discard(future)

    def idle(self, timeout: float) -> bool:
        """Wait until the work submitted so far is done; False if some still runs after ``timeout`` seconds."""
        with self._lock:
            running = list(self._running)
        return not wait(running, timeout=timeout).not_done


_WORKERS = 16
_PRUNE_EVERY = 1000  # claims between two prunings of slack_seen, in one process


def _ack(ack: Callable[..., None]) -> None:
    """The whole of the request Slack waits for."""
    ack()


class SlackBot:
    """One Slack app (``bolt``) in front of a workspace: the same pipeline as the API, as the person who wrote."""

    def __init__(self, ws: Workspace, interpreter: Interpreter, now: str | None, config: SlackConfig, *,
                 http: bool = True, limit: Callable[[str], None] | None = None) -> None:
        from slack_bolt import App
        from slack_sdk import WebClient

        self.ws = ws
        self.interpreter = interpreter
        self.now = now
        self.config = config
        self.limit = limit  # takes one turn from a person's rate budget, or raises RateLimited
        self.client = WebClient(token=config.bot_token, base_url=config.base_url, timeout=10)
        self.background = _Background()
        self._chats: dict[str, Chat] = {}
        self._people: dict[str, tuple[str | None, float]] = {}
        self._claims = 0
        self.app = App(client=self.client, signing_secret=config.signing_secret or None,
                       request_verification_enabled=http, token_verification_enabled=False,
                       process_before_response=True, listener_executor=self.background,
                       raise_error_for_unhandled_request=False)
        self.app.event("app_mention")(ack=_ack, lazy=[self._mention])
        self.app.event("message")(ack=_ack, lazy=[self._message])
        self.app.action(re.compile(f"^({APPROVE}|{DECLINE})$"))(ack=_ack, lazy=[self._decision])
        self.app.action(re.compile(f"^{OPTION}[0-9]+$"))(ack=_ack, lazy=[self._option])
        self.app.event(re.compile(".*"))(_ack)  # any other event: taken, so that Slack does not retry it
        self.app.action(re.compile(".*"))(_ack)  # a button of an older version of the app: no error shown

    # --- what every handler uses ---------------------------------------------------------------

    def chat(self, person: Person) -> Chat:
        """A chat in the person's time zone on the ``slack`` channel (one per zone, shared by threads)."""
        chat = self._chats.get(person.timezone)
        if chat is None:
            clock = Clock.from_option(self.now, person.timezone)
            chat = self._chats.setdefault(person.timezone,
                                          Chat(Pipeline(self.ws, clock, channel="slack"), self.interpreter))
        return chat

    def _at(self) -> str:
        return Clock.from_option(self.now, None).now().isoformat()

    def claim(self, key: str) -> bool:
        """Take a delivery once: True the first time ``key`` is seen (by any process), False ever after (a key
        is kept a day: Slack retries an event within minutes, and a button is clicked by a person)."""
        now = Clock.from_option(self.now, None).now()
        try:
            with self.ws.store.write() as conn:
                conn.execute(insert(schema.slack_seen).values(key=key[:200], at=now.isoformat()))
                self._claims += 1
                if self._claims % _PRUNE_EVERY == 0:
                    kept = (now - timedelta(days=1)).isoformat()
                    conn.execute(delete(schema.slack_seen).where(schema.slack_seen.c.at < kept))
        except IntegrityError:
            return False
        return True

    def person_of(self, user: str) -> Person | None:
        """The directory person of a Slack user, by the email Slack has for them (``users.info``, cached); None
        for a stranger. ``ConnectorError`` when Slack does not answer (nothing is cached then)."""
        cached = self._people.get(user)
        if cached is not None and cached[1] > time.monotonic():
            known = cached[0]
            return self.ws.directory.get(known) if known is not None and known in self.ws.directory else None
        from slack_sdk.errors import SlackApiError

        data: dict[str, Any] = {}
        try:
            data = self.client.users_info(user=user).get("user") or {}
        except SlackApiError as exc:
            if exc.response.get("error") != "user_not_found":
                raise ConnectorError(f"Slack's users.info failed: {exc.response.get('error')}") from None
        except OSError as exc:  # Slack unreachable (slack_sdk lets urllib's errors through)
            raise ConnectorError(f"Slack's users.info failed: {exc}") from None
        email = str((data.get("profile") or {}).get("email") or "").strip().lower()
        found = None
        foreign = bool(self.config.teams) and data.get("team_id") not in self.config.teams
        if email and not data.get("deleted") and not data.get("is_bot") and not foreign:
            found = next((p for p in self.ws.directory if p.email.lower() == email), None)
        self._people[user] = (found.id if found else None, time.monotonic() + self.config.users_cache_seconds)
        return found

    def conversation(self, team: str, channel: str, thread: str, person: str, *, create: bool = True) -> str | None:
        """The person's conversation in a Slack thread; a new one the first time (unless ``create`` is off)."""
        table = schema.slack_threads
        where = select(table.c.conversation).where(table.c.team == team, table.c.channel == channel,
                                                   table.c.thread_ts == thread, table.c.user_id == person)
        with self.ws.store.read() as conn:
            found = conn.execute(where).scalar()
        if found is not None or not create:
            return found
        made = f"c_{uuid.uuid4().hex[:16]}"
        try:
            with self.ws.store.write() as conn:
                conn.execute(insert(table).values(team=team, channel=channel, thread_ts=thread, user_id=person,
                                                  conversation=made, created_at=self._at()))
        except IntegrityError:  # another delivery in the same thread made it first
            with self.ws.store.read() as conn:
                return str(conn.execute(where).scalar_one())
        return made

    def say(self, person: Person, text: str, conversation: str,
            on_stage: Callable[[str], None] | None = None) -> TurnResult:
        """One turn; a request error is a result too (shown in the thread), as it is on the API."""
        limit = self.ws.settings.limits.max_text_chars
        try:
            if len(text) > limit:
                raise InputTooLarge(f"the message is {len(text)} characters; the limit is {limit}")
            return self.chat(person).say(person.id, text, conversation, progress=on_stage)
        except SaysoError as exc:
            return TurnResult.from_error(exc)

    def _progress(self, channel: str, ts: str) -> Callable[[str], None]:
        def show(stage: str) -> None:
            if stage == "executing":
                self.client.chat_update(channel=channel, ts=ts, text="Executing…", blocks=progress("executing"))
        return show

    def _answer(self, person: Person, user: str, text: str, conversation: str, channel: str,
                thread: str | None) -> None:
        """Progress in the thread, then the turn's reply in place of it; in a channel, the records a read
        answered go to ``user`` alone (unless ``reads_in_channels = "thread"``): the others there may not be
        allowed to read them."""
        posted = self.client.chat_postMessage(channel=channel, thread_ts=thread, text="Working on it…",
                                              blocks=progress("working on it"))
        ts = str(posted["ts"])
        try:
            result = self.say(person, text, conversation, self._progress(channel, ts))
        except Exception:  # a bug or a broken system must not leave "working on it" in the thread forever
            log.exception("a Slack turn failed", extra={"conversation": conversation})
            result = TurnResult(status=TurnStatus.ERROR, reply=CRASHED)
        if (result.status is TurnStatus.ANSWERED and not channel.startswith("D")
                and self.config.reads_in_channels == "private"):
            self.client.chat_postEphemeral(channel=channel, user=user, thread_ts=thread, text=text_of(result),
                                           blocks=render(result))
            self.client.chat_update(channel=channel, ts=ts, text=ANSWERED_PRIVATELY,
                                    blocks=progress_done(ANSWERED_PRIVATELY))
            return
        self.client.chat_update(channel=channel, ts=ts, text=text_of(result), blocks=render(result))

    def _tell(self, channel: str, user: str, text: str, thread: str | None, *, written: bool = False) -> None:
        """Only ``user`` sees it: a message only they see, or (``written``, in their own direct message with
        the app, where they wrote) a message that stays."""
        if written and channel.startswith("D"):
            self.client.chat_postMessage(channel=channel, thread_ts=thread, text=text)
        else:
            self.client.chat_postEphemeral(channel=channel, user=user, text=text, thread_ts=thread)

    def _who(self, user: str, channel: str, thread: str | None, *, written: bool = False) -> Person | None:
        """The person behind a Slack user; a stranger, or a Slack that does not answer, is told so (None)."""
        try:
            person = self.person_of(user)
        except ConnectorError as exc:
            log.warning("%s", exc.message)
            self._tell(channel, user, UNREACHABLE, thread, written=written)
            return None
        if person is None:
            self._tell(channel, user, UNKNOWN_USER, thread, written=written)
        return person

    def _words(self, text: str, bot: str | None) -> str:
        """What the person said: the app's own mention dropped, a colleague's mention as their directory id
        (``<@U0BOB>`` -> ``bob``); a mention of a stranger stays as Slack wrote it."""
        if bot is None:  # the leading mention of an app_mention is the app
            text = re.sub(r"^\s*<@[A-Z0-9]+(?:\|[^>]*)?>", "", text)

        def named(match: re.Match[str]) -> str:
            if match.group(1) == bot:
                return ""
            person = self.person_of(match.group(1))
            return person.id if person else match.group(0)

        return re.sub(r"\s{2,}", " ", _MENTION.sub(named, text)).strip()

    # --- listeners ----------------------------------------------------------------------------

    def _mention(self, body: dict[str, Any]) -> None:
        self._event(body)

    def _message(self, body: dict[str, Any]) -> None:
        event = body.get("event") or {}
        if event.get("channel_type") == "im" and not event.get("subtype") and not event.get("bot_id"):
            self._event(body)  # in channels, only mentions speak to sayso (app_mention)

    def _event(self, body: dict[str, Any]) -> None:
        event = body["event"]
        if not event.get("user") or not self.claim(f"event:{body.get('event_id') or event.get('ts')}"):
            return
        channel = str(event["channel"])
        direct = channel.startswith("D")
        thread = event.get("thread_ts")
        reply_in = thread or (None if direct else event["ts"])
        person = self._who(event["user"], channel, reply_in, written=True)
        if person is None:
            return
        if self.limit is not None:
            try:
                self.limit(person.id)
            except RateLimited as exc:
                self._tell(channel, event["user"], exc.message, reply_in)
                return
        team = str(body.get("team_id") or event.get("team") or "")
        conversation = self.conversation(team, channel, thread or ("" if direct else event["ts"]), person.id)
        assert conversation is not None
        bot = next((a.get("user_id") for a in body.get("authorizations") or [] if a.get("is_bot")), None)
        try:
            text = self._words(str(event.get("text") or ""), bot)
        except ConnectorError:
            self._tell(channel, event["user"], UNREACHABLE, reply_in, written=True)
            return
        self._answer(person, event["user"], text, conversation, channel, reply_in)

    def _click(self, body: dict[str, Any],
               action: dict[str, Any]) -> tuple[Person, str, str, dict[str, Any], str | None] | None:
        """The person who clicked, their Slack id, the channel, the message and its thread, for a click taken
        for the first time; None for a repeated delivery or a stranger (who is told so)."""
        user = str(body["user"]["id"])
        container = body.get("container") or {}
        message = body.get("message") or {"ts": container.get("message_ts")}
        channel = str(container.get("channel_id") or (body.get("channel") or {}).get("id"))
        payload = "|".join(str(part) for part in (
            (body.get("team") or {}).get("id"), user, channel, message.get("ts"), action.get("action_id"),
            action.get("value"), action.get("action_ts")))
        if not self.claim("click:" + hashlib.sha256(payload.encode()).hexdigest()):
            return None
        thread = message.get("thread_ts")
        person = self._who(user, channel, thread)
        return None if person is None else (person, user, channel, message, thread)

    def _decision(self, body: dict[str, Any], action: dict[str, Any]) -> None:
        """Approve or Decline on a card: only the approver's click counts; the card shows the outcome."""
        taken = self._click(body, action)
        if taken is None:
            return
        person, user, channel, message, thread = taken
        confirmation = str(action.get("value") or "")
        table = schema.confirmations
        with self.ws.store.read() as conn:
            approver = conn.execute(select(table.c.approver).where(table.c.id == confirmation)).scalar()
        if approver != person.id:  # a missing confirmation reads the same as someone else's
            self._tell(channel, user, NOT_YOURS, thread)
            return
        approve = action.get("action_id") == APPROVE
        result = self.chat(person).settle(person.id, confirmation, approve)
        if result.status is TurnStatus.ERROR:
            if (result.error or {}).get("code") == "confirmation_expired":  # nobody else will: the card says so
                self.client.chat_update(channel=channel, ts=str(message["ts"]), text=result.reply,
                                        blocks=decided(list(message.get("blocks") or []), result, person.id, approve))
            else:
                done = self._outcome(confirmation) if (result.error or {}).get("code") == "confirmation_used" else None
                if done is None:  # still running, or declined: whoever settled it updates the card
                    self._tell(channel, user, result.reply, thread)
                else:  # approved elsewhere (the web page, the CLI) or by a process that died before the card
                    self.client.chat_update(channel=channel, ts=str(message["ts"]), text=text_of(done),
                                            blocks=decided(list(message.get("blocks") or []), done, person.id,
                                                           True))
            return
        self.client.chat_update(channel=channel, ts=str(message["ts"]), text=text_of(result),
                                blocks=decided(list(message.get("blocks") or []), result, person.id, approve))
        if result.status in (TurnStatus.NEEDS_CONFIRMATION, TurnStatus.NEEDS_CLARIFICATION):
            # the record, the plan or the policy changed since: a new card (or a question) for what it is now
            self.client.chat_postMessage(channel=channel, thread_ts=thread, text=text_of(result),
                                         blocks=render(result))

    def _outcome(self, confirmation: str) -> TurnResult | None:
        """What an approved confirmation's plan came to, once it is finished; None while it runs or when the
        confirmation was not approved."""
        table, plans = schema.confirmations, schema.plans
        with self.ws.store.read() as conn:
            row = conn.execute(select(table.c.status, table.c.plan).where(table.c.id == confirmation)).first()
            plan = str(row.plan.get("id", "")) if row is not None and isinstance(row.plan, dict) else ""
            status = conn.execute(select(plans.c.status).where(plans.c.id == plan)).scalar() if plan else None
        if row is None or row.status != "approved" or status not in ("done", "failed"):
            return None
        return Pipeline(self.ws, Clock.from_option(self.now, None), channel="slack").outcome(plan)

    def _option(self, body: dict[str, Any], action: dict[str, Any]) -> None:
        """An option of a question, chosen: the person's answer in their conversation."""
        taken = self._click(body, action)
        if taken is None:
            return
        person, user, channel, message, thread = taken
        team = str((body.get("team") or {}).get("id") or "")
        key = thread or ("" if channel.startswith("D") else str(message.get("ts")))
        conversation = self.conversation(team, channel, key, person.id, create=False)
        if conversation is None:
            self._tell(channel, user, NOT_YOUR_QUESTION, thread)
            return
        value = str(action.get("value") or "")
        state = Conversations(self.chat(person).pipeline).load(conversation, person.id)
        open_question = state is not None and (state.pending is not None and value in {
            o.value for o in state.pending.options} or value in (state.last_denied or {}).get("options", []))
        if not open_question or not self.claim(f"question:{team}:{channel}:{message.get('ts')}"):
            self._tell(channel, user, ANSWERED_ALREADY, thread)  # by a button once, whichever click is first
            return
        label = str((action.get("text") or {}).get("text") or value)
        self.client.chat_update(channel=channel, ts=str(message["ts"]), text=f"{person.id} chose {label}",
                                blocks=answered_option(list(message.get("blocks") or []), person.id, label))
        self._answer(person, user, value, conversation, channel, thread)
