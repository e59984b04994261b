"""The connector interface: how sayso reads from and writes to one system.

A connector is a small class with a handful of methods. Writes always carry
an idempotency key; a connector that can look a key up lets the executor
recover after a crash without repeating an effect.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

__all__ = ["Change", "Connector", "Effect", "Guarantee", "Record"]


class Guarantee(StrEnum):
    """What a connector can promise about one write, strongest first."""

    TRANSACTIONAL = "transactional"  # effect and key committed together in the target
    IDEMPOTENT = "idempotent"  # the target dedupes by key
    VERIFIABLE = "verifiable"  # the key can be looked up after the fact
    AT_LEAST_ONCE = "at_least_once"  # nothing can be known after a crash

    @property
    def can_lookup(self) -> bool:
        return self is not Guarantee.AT_LEAST_ONCE


class Record(BaseModel):
    """One record in a system, with the attributes policies may look at."""

    type: str
    id: str
    title: str = ""
    attrs: dict[str, Any] = Field(default_factory=dict)
    version: int = 0
    system: str = ""
    score: float | None = None

    def ref(self) -> str:
        return f"{self.type}:{self.id}"


class Change(BaseModel):
    """What a write will do (a preview) or did (an effect): one record, before and after."""

    record_type: str
    record_id: str
    title: str = ""
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    version: int | None = None


class Effect(BaseModel):
    """The result of one applied write, as the target system reports it."""

    key: str
    operation: str
    changes: list[Change] = Field(default_factory=list)
    result: dict[str, Any] = Field(default_factory=dict)
    summary: str = ""


class Connector:
    """Base class: override what the system supports; the rest says it cannot."""

    name: str = "connector"
    guarantee: Guarantee = Guarantee.AT_LEAST_ONCE
    record_types: frozenset[str] = frozenset()
    record_attributes: Mapping[str, Mapping[str, str]] = {}
    """The attributes policies may read, by record type: ``String``, ``Long`` or ``Boolean``, ``?`` when
    optional. Types left out are not checked against the policies (docs/policies.md, "Validation")."""

    def guarantee_for(self, operation: str) -> Guarantee:
        """The guarantee of one write operation: ``guarantee`` unless the system's operations differ
        (an MCP server's tools, say, where only some are idempotent)."""
        return self.guarantee

    def get(self, record_type: str, record_id: str) -> Record | None:
        return None

    def search(self, record_type: str, text: str, *, limit: int = 10) -> list[Record]:
        """Plausible records of a type for ``text``, best first, each with a ``score``
        (100 for an exact id or name)."""
        return []

    def search_visible(self, record_type: str, text: str, keep: Callable[[Record], bool], *,
                       limit: int = 10) -> list[Record]:
        """``search`` among the records ``keep`` accepts (those a person may read), as if the others did not
        exist. A search that returns an exact match alone overrides this to filter before it stops there:
        a hidden exact match must not hide the near matches a missing one would have let through."""
        return [r for r in self.search(record_type, text, limit=limit) if keep(r)]

    def read(self, operation: str, args: dict[str, Any]) -> list[Record]:
        raise NotImplementedError(f"{self.name} has no read operation {operation!r}")

    def read_as(self, operation: str, args: dict[str, Any], *, origin: dict[str, Any] | None = None) -> list[Record]:
        """A read on behalf of the person in ``origin`` (who asks, in which conversation). Systems that show
        each person only their own data (direct messages) override it; by default it is ``read``."""
        return self.read(operation, args)

    def preview(self, operation: str, args: dict[str, Any]) -> list[Change]:
        return []

    def execute(
        self, operation: str, args: dict[str, Any], *, key: str, origin: dict[str, Any] | None = None
    ) -> Effect:
        """Apply one write once per ``key``; ``origin`` says who asked, in what words, where."""
        raise NotImplementedError(f"{self.name} has no write operation {operation!r}")

    def lookup(self, key: str) -> Effect | None:
        """The effect recorded under ``key``, or None if there is none."""
        return None

    def compensate(self, effect: Effect, *, key: str) -> Effect:
        raise NotImplementedError(f"{self.name} cannot undo {effect.operation!r}")

    def close(self) -> None:
        """Release connections; called once when the engine closes."""
