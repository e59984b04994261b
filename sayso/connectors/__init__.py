"""Connectors are plugins: each kind is registered through the entry point
group ``sayso.connectors``; the built-in demo systems register the same way.

A plugin's entry point names a function ``register(registry)`` that calls
``registry.add(kind, factory)``; the factory gets the system's settings from
``sayso.toml`` and a :class:`SystemContext`, and returns a :class:`Connector`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..directory import Directory
from ..errors import ConfigurationError
from ..plugins import PluginRegistry
from .base import Change, Connector, Effect, Guarantee, Record

__all__ = [
    "Change",
    "Connector",
    "ConnectorFactory",
    "ConnectorRegistry",
    "Effect",
    "Guarantee",
    "Record",
    "SystemContext",
    "registry",
]


@dataclass
class SystemContext:
    """What a connector factory may use: the workspace folder, directory and secrets."""

    root: Path
    directory: Directory
    secrets: Mapping[str, str] = field(default_factory=dict)

    def secret(self, name: str) -> str:
        try:
            return self.secrets[name]
        except KeyError:
            raise ConfigurationError(f"secret {name!r} is not set (environment or secrets file)") from None


# Built-ins go through the same ``register`` hook as third-party plugins.
_DEFAULT_PLUGINS = ("sayso.connectors.demo", "sayso.connectors.mcp", "sayso.connectors.caldav",
                    "sayso.connectors.jira", "sayso.connectors.slack", "sayso.connectors.sql",
                    "sayso.connectors.http", "sayso.connectors.smtp", "sayso.connectors.salesforce")

ConnectorFactory = Callable[[str, Mapping[str, Any], SystemContext], Connector]


class ConnectorRegistry(PluginRegistry[ConnectorFactory]):
    """Connector kinds by name, filled from entry points (``sayso.connectors``) on first use."""

    def __init__(self) -> None:
        super().__init__("sayso.connectors", _DEFAULT_PLUGINS, "connector kind")

    def kinds(self) -> list[str]:
        return self.names()

    def create(self, name: str, settings: Mapping[str, Any], context: SystemContext) -> Connector:
        factory = self.factory(str(settings.get("kind", "")), where=f"system {name!r} has ")
        connector = factory(name, settings, context)
        connector.name = name
        return connector


registry = ConnectorRegistry()
