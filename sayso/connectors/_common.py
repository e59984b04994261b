"""What the built-in connectors share: reading a system's settings, checking an operation's arguments,
telling a loopback host, and naming the extra to install when a vendor's package is missing.

Every problem is said the same way by every connector: a setting's problem is a
:class:`~sayso.errors.ConfigurationError` that names the system (``system 'calendar': timeout must be
...``); arguments that do not fit an operation are :class:`~sayso.errors.InvalidArguments` listing
each problem.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from importlib.util import find_spec
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ..errors import ConfigurationError, InvalidArguments

__all__ = ["Settings", "is_loopback", "parse_args", "require_extra", "short"]

P = TypeVar("P", bound=BaseModel)


class Settings:
    """One system's table of ``sayso.toml``, read with errors that name the system and the setting.

    ``kind`` names the connector in a missing setting's message; ``where`` starts every message
    (by default ``system '<name>'``).
    """

    def __init__(self, system: str, values: Mapping[str, Any], *, kind: str, where: str | None = None) -> None:
        self.system = system
        self.values = values
        self.kind = kind
        self.where = where or f"system {system!r}"

    def error(self, message: str) -> ConfigurationError:
        return ConfigurationError(f"{self.where}: {message}")

    def refuse_unknown(self, known: frozenset[str]) -> None:
        """A misspelt setting is an error, not a default silently taken."""
        unknown = sorted(set(self.values) - known)
        if unknown:
            raise self.error(f"unknown {self.kind} setting(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")

    def text(self, key: str) -> str | None:
        """A non-empty string, stripped; None when the setting is absent."""
        value = self.values.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.error(f"{key} must be a non-empty string")
        return value.strip()

    def required_text(self, key: str) -> str:
        value = self.text(key)
        if value is None:
            raise self.error(f"the {self.kind} connector needs {key} = \"...\"")
        return value

    def flag(self, key: str, default: bool = False) -> bool:
        value = self.values.get(key, default)
        if not isinstance(value, bool):
            raise self.error(f"{key} must be true or false")
        return value

    def seconds(self, key: str = "timeout", default: float = 30) -> float:
        """A positive number of seconds (a whole number or not)."""
        value = self.values.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise self.error(f"{key} must be a positive number of seconds")
        return float(value)

    def count(self, key: str, default: int) -> int:
        """A positive whole number."""
        value = self.values.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise self.error(f"{key} must be a positive whole number")
        return value

    def names(self, key: str) -> dict[str, str]:
        """A table of names (``[systems.<name>.<key>]``, such as a project or status mapping), as strings."""
        return {str(k): str(v) for k, v in dict(self.values.get(key) or {}).items()}


def parse_args(model: type[P], args: Mapping[str, Any], where: str) -> P:
    """``args`` checked against an operation's model; every problem listed after ``where``
    (``chat.send: text: String should have at least 1 character``)."""
    try:
        return model.model_validate(dict(args))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, error['loc'])) or 'arguments'}: {error['msg']}" for error in exc.errors()
        )
        raise InvalidArguments(f"{where}: {problems}") from None


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address: plain text there never leaves the machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require_extra(system: str, extra: str, what: str, *modules: str) -> None:
    """Refuse to create a system whose vendor package is missing, naming the extra that brings it.
    Connectors import their vendor's package lazily, so that ``import sayso`` stays light."""
    if any(find_spec(module) is None for module in modules):
        raise ConfigurationError(f'system {system!r} needs {what}: pip install "sayso[{extra}]"')


def short(text: str, size: int = 60) -> str:
    """``text`` cut to ``size`` characters, for one-line summaries."""
    return text if len(text) <= size else text[: size - 1] + "…"
