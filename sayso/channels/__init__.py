"""Channels: the ways people reach sayso besides the command line and the HTTP API (Slack, MCP clients).

A channel is a plugin, found like connectors and interpreters: a module with ``register(registry)`` that
calls ``registry.add(name, factory)``, built-ins listed in ``CHANNELS`` and others through the
``sayso.channels`` entry point group. ``sayso serve`` mounts every registered channel on its app
(``Channel.mount``); a channel that is not configured in the workspace mounts nothing. A channel with a
process of its own (``sayso slack`` in Socket Mode, ``sayso mcp`` over stdio) adds its command there.
Every channel runs turns through the same pipeline as the API, as the person it has authenticated.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from ..plugins import PluginRegistry

__all__ = ["CHANNELS", "Channel", "ChannelFactory"]


class Channel(Protocol):
    """One way in, mounted on the HTTP service."""

    name: str

    def mount(self, app: Any, service: Any) -> None:
        """Add this channel's routes to ``app`` (a FastAPI app) serving ``service``; nothing when unconfigured."""


ChannelFactory = Callable[[], Channel]

CHANNELS: PluginRegistry[ChannelFactory] = PluginRegistry("sayso.channels", what="channel",
                                                          builtin=("sayso.channels.mcp", "sayso.channels.slack"))
