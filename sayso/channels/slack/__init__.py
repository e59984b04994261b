"""The Slack channel: people talk to sayso in Slack, by direct message or by mentioning it in a channel.

Configured by ``[channels.slack]`` in sayso.toml (the names of the signing secret and bot token secrets);
without it nothing is mounted. ``sayso serve`` answers Slack's Events API and interactivity at
``/slack/events``, each request's signature checked (``X-Slack-Signature``, a 5-minute timestamp window);
``sayso slack`` runs the same app over Socket Mode, for a company without a public URL. Needs the extra:
``pip install "sayso[slack]"``. The manifest to paste into Slack is in docs/channels/slack.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...directory import Person
from ...errors import ConfigurationError, ConnectorError
from ...interpreter import Interpreter
from ...plugins import PluginRegistry
from ...turn import TurnResult, TurnStatus
from ...workspace import Workspace
from .. import ChannelFactory

if TYPE_CHECKING:
    from slack_bolt.adapter.socket_mode import SocketModeHandler

__all__ = ["SlackChannel", "notify_approver", "notify_requester", "register", "socket_mode"]


def _bolt() -> None:
    try:
        import slack_bolt  # noqa: F401
    except ImportError:
        raise ConfigurationError('the Slack channel needs its extra: pip install "sayso[slack]"') from None


class SlackChannel:
    """Mounts ``/slack/events`` on ``sayso serve`` when the workspace configures Slack."""

    name = "slack"

    def mount(self, app: Any, service: Any) -> None:
        from ._bot import slack_config

        config = slack_config(service.ws)
        if config is None:
            return
        _bolt()
        from ._bot import SlackBot
        from ._http import mount

        mount(app, SlackBot(service.ws, service.interpreter, service.now, config, limit=service.buckets.take))


def socket_mode(ws: Workspace, interpreter: Interpreter, now: str | None) -> SocketModeHandler:
    """The app over Socket Mode, connected (needs ``app_token`` in ``[channels.slack]``); ``close()`` stops it.
    ``sayso slack`` runs it until interrupted."""
    from ._bot import slack_config

    config = slack_config(ws)
    if config is None:
        raise ConfigurationError("no [channels.slack] in sayso.toml: see docs/channels/slack.md")
    if not config.app_token:
        raise ConfigurationError("[channels.slack] needs app_token (the name of the secret holding the app-level "
                                 "token, xapp-...) for Socket Mode: see docs/channels/slack.md")
    _bolt()
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    from ._bot import SlackBot

    try:  # the API's per-person rate limit, when the serve extra is there to count it
        from ...serve.limits import Buckets

        limit = Buckets(ws.settings.serve.rate_per_minute, store=ws.store).take
    except ImportError:
        limit = None
    bot = SlackBot(ws, interpreter, now, config, http=False, limit=limit)
    handler = SocketModeHandler(bot.app, config.app_token, web_client=bot.client)
    handler.connect()  # type: ignore[no-untyped-call]
    return handler


def notify_approver(ws: Workspace, approver: Person, text: str, confirmation: dict[str, Any]) -> None:
    """A routed confirmation's card, with Approve / Decline, in the approver's direct messages with the app
    (sayso.approvals); their click is handled like any card's: only the approver's counts. Nothing happens
    without ``[channels.slack]``; ``ConnectorError`` when Slack refuses or cannot be reached."""
    from ._bot import slack_config

    config = slack_config(ws)
    if config is None:
        return
    _bolt()
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError

    from ._blocks import render, text_of

    client = WebClient(token=config.bot_token, base_url=config.base_url, timeout=10)
    result = TurnResult(status=TurnStatus.NEEDS_CONFIRMATION, reply=text, confirmation=confirmation)
    try:
        user = client.users_lookupByEmail(email=approver.email)["user"]["id"]
        channel = client.conversations_open(users=user)["channel"]["id"]
        client.chat_postMessage(channel=channel, text=text_of(result), blocks=render(result))
    except SlackApiError as exc:
        raise ConnectorError(f"Slack refused the approval card: {exc.response.get('error')}") from None
    except OSError as exc:
        raise ConnectorError(f"Slack could not be reached: {exc}") from None


def notify_requester(ws: Workspace, conversation: str, result: TurnResult) -> None:
    """What the approver's answer came to, in the Slack thread the requester asked in (sayso.approvals);
    nothing when that conversation is not a Slack one. ``ConnectorError`` when Slack refuses."""
    from ._bot import slack_config

    config = slack_config(ws)
    if config is None:
        return
    from sqlalchemy import select

    from ...store import schema

    table = schema.slack_threads
    with ws.store.read() as conn:
        row = conn.execute(select(table.c.channel, table.c.thread_ts).where(
            table.c.conversation == conversation)).first()
    if row is None:
        return
    _bolt()
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError

    from ._blocks import render, text_of

    client = WebClient(token=config.bot_token, base_url=config.base_url, timeout=10)
    try:
        client.chat_postMessage(channel=row.channel, thread_ts=row.thread_ts or None, text=text_of(result),
                                blocks=render(result))
    except SlackApiError as exc:
        raise ConnectorError(f"Slack refused the outcome: {exc.response.get('error')}") from None
    except OSError as exc:
        raise ConnectorError(f"Slack could not be reached: {exc}") from None


def register(registry: PluginRegistry[ChannelFactory]) -> None:
    registry.add("slack", SlackChannel)
