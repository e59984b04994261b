"""Connectors are plugins: each kind is registered through the entry point
group ``sayso.connectors``; the built-in demo systems register the same way.

A plugin's entry point names a function ``register(registry)`` that calls
``registry.add(kind, factory)``; the factory gets the system's settings from
``sayso.toml`` and a :class:`SystemContext`, and returns a :class:`Connector`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import import_module
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from ..directory import Directory
from ..errors import ConfigurationError
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
_DEFAULT_PLUGINS = ("sayso.connectors.demo",)

ConnectorFactory = Callable[[str, Mapping[str, Any], SystemContext], Connector]


class ConnectorRegistry:
    """Connector kinds by name, filled from entry points on first use."""

    def __init__(self) -> None:
        self._kinds: dict[str, ConnectorFactory] = {}
        self._loaded = False

    def add(self, kind: str, factory: ConnectorFactory) -> None:
        self._kinds[kind] = factory

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for module in _DEFAULT_PLUGINS:
            import_module(module).register(self)
        for point in entry_points(group="sayso.connectors"):
            point.load()(self)

    def kinds(self) -> list[str]:
        self._load()
        return sorted(self._kinds)

    def create(self, name: str, settings: Mapping[str, Any], context: SystemContext) -> Connector:
        self._load()
        kind = str(settings.get("kind", ""))
        if kind not in self._kinds:
            known = ", ".join(sorted(self._kinds)) or "none"
            raise ConfigurationError(
                f"system {name!r} has unknown connector kind {kind!r} (installed: {known})"
            )
        connector = self._kinds[kind](name, settings, context)
        connector.name = name
        return connector


registry = ConnectorRegistry()
