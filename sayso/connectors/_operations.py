"""What the generic connectors (``sql``, ``http``) share: a YAML file of operations read with its
line numbers and checked key by key, the catalog actions that use a system, the ``_asked_by``-style
parameters filled from the origin, and the scoring of records found for grounding.

A problem in an operations file is a :class:`~sayso.errors.WorkspaceError` naming the file and
line, raised when the connector is created (``sayso check`` creates every connector).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import yaml
from rapidfuzz import fuzz

from ..catalog import Action, Catalog, load_yaml_actions
from ..catalog import _LineLoader as LineLoader  # the catalog's loader, which keeps each mapping's line
from ..config import load_settings, read_text
from ..errors import ConfigurationError, InvalidArguments, WorkspaceError
from .base import Connector, Record
from .provenance import why_fields

__all__ = [
    "ORIGIN_PARAMS",
    "READ_PARAMS",
    "DeclaredSystem",
    "Entry",
    "action_operation",
    "actions_using",
    "check_keys",
    "check_settings",
    "load_operations",
    "origin_values",
    "scored",
]

# Parameters a read may bind too: the clock and who is reading (NULL in grounding's searches, which no one asks).
READ_PARAMS = ("_asked_by", "_asked_by_name", "_asked_by_email", "_now", "_today")
# Parameters sayso fills itself, from who asked and why: never from the request's arguments.
ORIGIN_PARAMS = ("_asked_by", "_asked_by_name", "_asked_by_email", "_request", "_conversation", "_turn", "_key",
                 "_now", "_today")


class _Typed(Protocol):
    @property
    def type(self) -> str: ...


class Declared(Protocol):
    """What :class:`DeclaredSystem` reads of an operation: its name, kind, and how it searches."""

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def record(self) -> _Typed | None: ...

    @property
    def search(self) -> bool: ...


OpT = TypeVar("OpT", bound=Declared)


class Entry:
    """One operation's mapping from the file, with where it was written."""

    def __init__(self, name: str, data: Mapping[str, Any], file: str) -> None:
        self.name = name
        self.line = int(data.get("__line__", 1))
        self.file = file
        self.data = {k: v for k, v in data.items() if k != "__line__"}

    def error(self, message: str, line: int | None = None) -> WorkspaceError:
        return WorkspaceError(f"operation {self.name}: {message}", file=self.file, line=line or self.line)

    def mapping(self, key: str, allowed: Iterable[str], required: Iterable[str] = ()) -> dict[str, Any] | None:
        """The sub-mapping under ``key`` (``record:``...), its keys checked; None when absent."""
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self.error(f"{key} must be a mapping")
        line = int(value.get("__line__", self.line))
        clean = {k: v for k, v in value.items() if k != "__line__"}
        unknown = sorted(set(clean) - set(allowed))
        if unknown:
            raise self.error(f"{key} has unknown keys {unknown} (known: {', '.join(sorted(allowed))})", line)
        missing = [k for k in required if k not in clean]
        if missing:
            raise self.error(f"{key} is missing {', '.join(missing)}", line)
        return clean


def check_keys(entry: Entry, allowed: Iterable[str], required: Iterable[str]) -> None:
    unknown = sorted(set(entry.data) - set(allowed))
    if unknown:
        raise entry.error(f"unknown keys {unknown} (known: {', '.join(sorted(allowed))})")
    missing = [k for k in required if k not in entry.data]
    if missing:
        raise entry.error(f"missing {', '.join(missing)}")


def check_settings(system: str, settings: Mapping[str, Any], known: Iterable[str]) -> None:
    unknown = sorted(set(settings) - set(known))
    if unknown:
        raise ConfigurationError(f"system {system!r}: unknown settings {unknown} (known: {', '.join(sorted(known))})")


def operations_path(root: Path, system: str, settings: Mapping[str, Any]) -> Path:
    """The operations file a system's ``operations`` setting names, inside the workspace."""
    value = settings.get("operations")
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"system {system!r}: `operations` must name a YAML file "
                                 f"(e.g. operations/{system}.yaml)")
    return root / value


def load_operations(path: Path) -> list[Entry]:
    """The entries under ``operations:`` (a mapping of name to operation) of one YAML file."""
    file = str(path)
    text = read_text(path, "the operations file")
    try:
        data = yaml.load(text, Loader=LineLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise WorkspaceError(f"not valid YAML: {exc}", file=file, line=mark.line + 1 if mark else None) from None
    operations = data.get("operations") if isinstance(data, dict) else None
    if not isinstance(operations, dict):
        raise WorkspaceError("expected a mapping of operation names under 'operations'", file=file, line=1)
    entries = []
    for name, body in operations.items():
        if name == "__line__":
            continue
        if not isinstance(body, dict):
            raise WorkspaceError(f"operation {name}: must be a mapping", file=file, line=operations["__line__"])
        entries.append(Entry(str(name), body, file))
    return entries


def actions_using(root: Path, system: str) -> list[Action]:
    """The YAML catalog actions of a workspace that name ``system``, for checking them against its
    operations. A workspace whose own files are broken reports that itself, so this finds none."""
    try:
        settings = load_settings(root / "sayso.toml")
        catalog = Catalog()
        for folder in settings.catalog.paths:
            path = root / folder
            files = sorted(path.glob("*.yaml")) + sorted(path.glob("*.yml")) if path.is_dir() else []
            for file in files:
                load_yaml_actions(file, catalog)
    except WorkspaceError:
        return []
    return [item for item in catalog if item.connector == system]


def action_where(item: Action) -> tuple[str | None, int | None]:
    """The file and line an action was declared at (``source`` is ``file:line``)."""
    file, _, line = item.source.rpartition(":")
    return (file, int(line)) if file and line.isdigit() else (item.source or None, None)


def action_operation(system: str, item: Action, operations: Mapping[str, OpT]) -> OpT:
    """The declared operation a catalog action names, of the action's own kind."""
    file, line = action_where(item)
    op = operations.get(item.operation)
    if op is None:
        known = ", ".join(sorted(operations)) or "none"
        raise WorkspaceError(f"action {item.name}: system {system!r} has no operation {item.operation!r} "
                             f"(it has: {known})", file=file, line=line)
    if op.kind != item.kind:
        raise WorkspaceError(f"action {item.name} is a {item.kind} but operation {op.name} is a {op.kind}",
                             file=file, line=line)
    return op


def origin_values(origin: Mapping[str, Any] | None, key: str | None) -> dict[str, Any]:
    """The values of :data:`ORIGIN_PARAMS` for one write (None for what is unknown, e.g. in a preview)."""
    why = why_fields(origin)
    now = str((origin or {}).get("now") or "")
    return {
        "_asked_by": why.get("asked_by"),
        "_asked_by_name": why.get("asked_by_name"),
        "_asked_by_email": (origin or {}).get("actor_email") or None,
        "_now": now or None,  # sayso's clock (pinned by --now), ISO 8601 in the acting person's time zone
        "_today": now[:10] or None,
        "_request": why.get("request"),
        "_conversation": why.get("conversation"),
        "_turn": why.get("turn"),
        "_key": key,
    }


def scored(records: Sequence[Record], text: str, limit: int) -> list[Record]:
    """Records for grounding, best first: an exact id or title (any case) alone with score 100;
    otherwise titles with a WRatio of 85 or more."""
    needle = text.strip().casefold()
    exact = [r for r in records if needle in (r.id.casefold(), r.title.casefold())]
    if exact:
        return [r.model_copy(update={"score": 100.0}) for r in exact[:limit]]
    close = [(fuzz.WRatio(needle, r.title.casefold()), r) for r in records if r.title]
    best = sorted((pair for pair in close if pair[0] >= 85), key=lambda pair: -pair[0])
    return [r.model_copy(update={"score": round(score, 1)}) for score, r in best[:limit]]


class DeclaredSystem(Connector, Generic[OpT]):
    """A system whose operations a file declares (``sql``, ``http``): an operation is found by name and
    kind, and a search runs every read marked ``search: true`` for the record type."""

    def __init__(self, name: str, operations: Mapping[str, OpT]) -> None:
        self.name = name
        self._operations = dict(operations)
        self.record_types = frozenset(op.record.type for op in operations.values() if op.search and op.record)

    def _operation(self, operation: str, kind: str) -> OpT:
        op = self._operations.get(operation)
        if op is None or op.kind != kind:
            known = ", ".join(sorted(n for n, o in self._operations.items() if o.kind == kind)) or "none"
            raise InvalidArguments(f"{self.name} has no {kind} operation {operation!r} (it has: {known})")
        return op

    def search(self, record_type: str, text: str, *, limit: int = 10) -> list[Record]:
        return self.search_visible(record_type, text, lambda record: True, limit=limit)

    def search_visible(self, record_type: str, text: str, keep: Callable[[Record], bool], *,
                       limit: int = 10) -> list[Record]:
        """Every read marked ``search`` for the type, scored once what ``keep`` refuses is left out."""
        found: list[Record] = []
        for op in self._operations.values():
            if op.search and op.record is not None and op.record.type == record_type:
                found.extend(r for r in self.read(op.name, {"text": text}) if keep(r))
        return scored(found, text, limit)
