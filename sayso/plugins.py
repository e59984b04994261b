"""Plugins: named factories found through Python entry points.

Connectors (``sayso.connectors``) and interpreters (``sayso.interpreters``) are
plugins. A plugin module has a ``register(registry)`` function that calls
``registry.add(name, factory)``; built-in plugins register through the same
hook as third-party packages.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import import_module
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from .errors import ConfigurationError

__all__ = ["PluginRegistry"]

F = TypeVar("F")


class PluginRegistry(Generic[F]):
    """Factories by name, filled on first use from the built-in modules, then from the entry point group."""

    def __init__(self, group: str, builtin: Sequence[str], what: str) -> None:
        self.group = group
        self.builtin = tuple(builtin)
        self.what = what  # "connector kind", "interpreter": for messages
        self._factories: dict[str, F] = {}
        self._loaded = False

    def add(self, name: str, factory: F) -> None:
        self._factories[name] = factory

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for module in self.builtin:
            import_module(module).register(self)
        for point in entry_points(group=self.group):
            point.load()(self)

    def names(self) -> list[str]:
        self._load()
        return sorted(self._factories)

    def factory(self, name: str, where: str = "") -> F:
        """The factory registered as ``name``; an unknown name is a configuration error naming what exists."""
        self._load()
        if name not in self._factories:
            installed = ", ".join(self.names()) or "none"
            raise ConfigurationError(f"{where}unknown {self.what} {name!r} (installed: {installed})")
        return self._factories[name]
