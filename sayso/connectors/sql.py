"""Any SQL database as a system: its operations are parameterised SQL declared in a YAML file.

    [systems.inventory]
    kind = "sql"
    url = "postgresql://app@db.internal/inventory"  # a SQLAlchemy URL; sqlite:///x.db is in the workspace
    password_secret = "inventory_password"            # optional: the password, kept out of the URL
    operations = "operations/inventory.yaml"

Arguments are bound as named parameters (``:price``), never formatted into the text. Writes are
``transactional``: the statement and a row of ``sayso_effects`` (the key, the operation, the
effect and the why) commit together in the target database, so :meth:`SqlSystem.lookup` is exact
and a retried key returns the stored effect without running anything again. A write may name a
``version`` column: its statement binds ``:expected``, and when no row matches, nothing changes
and the step fails with a version conflict.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from uuid import UUID

from sqlalchemy import Column, Connection, MetaData, String, Table, Text, event, insert, inspect, select, text, update
from sqlalchemy.engine import URL, Engine, create_engine, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, NoSuchModuleError, SQLAlchemyError

from ..errors import ConfigurationError, ConnectorError, InvalidArguments, UnknownRecord, WorkspaceError
from . import ConnectorRegistry, SystemContext
from ._operations import (
    ORIGIN_PARAMS,
    READ_PARAMS,
    DeclaredSystem,
    Entry,
    action_operation,
    actions_using,
    check_keys,
    check_settings,
    load_operations,
    operations_path,
    origin_values,
)
from .base import Change, Effect, Guarantee, Record
from .provenance import why_fields

__all__ = ["SqlOperation", "SqlSystem", "register"]

_SETTINGS = {"kind", "url", "password_secret", "operations"}
_READ_KEYS = {"kind", "sql", "description", "record", "search", "limit"}
_WRITE_KEYS = {"kind", "sql", "description", "record", "version", "before"}
_RECORD_KEYS = {"type", "id", "title", "version"}
_READ_VERBS = {"select", "with", "values", "table", "show", "explain"}
_VERBS = {"insert": "created", "update": "updated", "delete": "deleted"}
_DEFAULT_LIMIT = 200

_ledger = MetaData()
_effects = Table(
    "sayso_effects", _ledger,
    Column("key", String(200), primary_key=True),
    Column("operation", String(200), nullable=False),
    Column("effect", Text, nullable=False),
    Column("why", Text, nullable=False),
    Column("at", String(40), nullable=False),
)


@dataclass(frozen=True)
class RecordSpec:
    """Which columns make a row a record: its type, id, title and version."""

    type: str
    id: str
    title: str | None = None
    version: str | None = None


@dataclass(frozen=True)
class SqlOperation:
    """One declared operation: its SQL, the parameters it binds and how its rows read."""

    name: str
    kind: Literal["read", "write"]
    sql: str
    params: frozenset[str]
    record: RecordSpec | None = None
    search: bool = False
    limit: int = _DEFAULT_LIMIT
    version: str | None = None
    before: str | None = None
    where: str = ""

    @property
    def verb(self) -> str:
        return _first_word(self.sql)


def _first_word(sql: str) -> str:
    match = re.match(r"\s*(\w+)", _strip_literals(sql))
    return match.group(1).lower() if match else ""


def _strip_literals(sql: str) -> str:
    """The SQL without its comments and quoted strings, for telling statements apart."""
    return re.sub(r"--[^\n]*|/\*.*?\*/|'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"", " ", sql, flags=re.S)


def _bound(entry: Entry, sql: str) -> frozenset[str]:
    """The named parameters a statement binds, as SQLAlchemy will bind them; one statement only."""
    if ";" in _strip_literals(sql).strip().rstrip(";"):
        raise entry.error("sql must be one statement (a ';' separates two)")
    return frozenset(text(sql).compile().params)


def _parse(entry: Entry) -> SqlOperation:
    kind = entry.data.get("kind")
    if kind not in ("read", "write"):
        raise entry.error("kind must be read or write")
    check_keys(entry, _READ_KEYS if kind == "read" else _WRITE_KEYS, ("kind", "sql"))
    sql = entry.data["sql"]
    if not isinstance(sql, str) or not sql.strip():
        raise entry.error("sql must be a statement")
    params = set(_bound(entry, sql))
    raw_record = entry.mapping("record", _RECORD_KEYS, ("type", "id"))
    record = RecordSpec(**{k: str(v) for k, v in raw_record.items()}) if raw_record else None
    verb = _first_word(sql)
    if kind == "read":
        if verb not in _READ_VERBS:
            raise entry.error(f"a read must be a query (SELECT ...), not {verb.upper() or 'this'}")
        origin = sorted(p for p in params if p.startswith("_") and p not in READ_PARAMS)
        if origin:
            raise entry.error(f"reads cannot bind {', '.join(':' + p for p in origin)} (a read may bind "
                              f"{', '.join(':' + p for p in READ_PARAMS)})")
        search = entry.data.get("search", False)
        if not isinstance(search, bool):
            raise entry.error("search must be true or false")
        if search and (record is None or "text" not in params):
            raise entry.error("a search needs a record mapping and binds :text")
        limit = entry.data.get("limit", _DEFAULT_LIMIT)
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise entry.error("limit must be a positive whole number")
        return SqlOperation(entry.name, "read", sql, frozenset(params), record, search, limit,
                            where=f"{entry.file}:{entry.line}")
    if verb in _READ_VERBS - {"with"}:
        raise entry.error(f"a write must change something (INSERT, UPDATE, DELETE...), not {verb.upper()}")
    before = entry.data.get("before")
    if before is not None:
        if not isinstance(before, str) or _first_word(before) not in _READ_VERBS:
            raise entry.error("before must be a query (SELECT ...) reading the rows before the write")
        params |= _bound(entry, before)
    version = entry.data.get("version")
    if version is not None:
        if not isinstance(version, str) or not version:
            raise entry.error("version must name a column")
        if "expected" not in params:
            raise entry.error(f"version: {version} needs the statement to bind :expected "
                              f"(... WHERE {version} = :expected)")
    unknown = sorted(p for p in params if p.startswith("_") and p not in ORIGIN_PARAMS)
    if unknown:
        raise entry.error(f"unknown sayso parameters {unknown} (known: {', '.join(ORIGIN_PARAMS)})")
    return SqlOperation(entry.name, "write", sql, frozenset(params), record, version=version,
                        before=before, where=f"{entry.file}:{entry.line}")


def load_sql_operations(path: Path) -> dict[str, SqlOperation]:
    """Every operation of a file, each checked; the first problem names its file and line."""
    return {entry.name: _parse(entry) for entry in load_operations(path)}


def check_actions(system: str, operations: Mapping[str, SqlOperation], root: Path) -> None:
    """The workspace's actions on ``system`` name declared operations of their own kind, and
    declare every parameter the operation's SQL binds."""
    for item in actions_using(root, system):
        op = action_operation(system, item, operations)
        missing = sorted(p for p in op.params if not p.startswith("_") and p not in item.params.model_fields)
        if missing:
            raise WorkspaceError(
                f"operation {op.name} binds {', '.join(':' + p for p in missing)}, which action {item.name} "
                f"({item.source}) does not declare", file=op.where.rpartition(":")[0],
                line=int(op.where.rpartition(":")[2]),
            )


def _jsonable(value: Any) -> Any:
    """A column value as JSON data (numbers stay numbers, times become ISO text)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


class VersionConflict(ConnectorError):
    """The record changed since the version the write expected; nothing was changed."""

    code = "version_conflict"


class SqlSystem(DeclaredSystem[SqlOperation]):
    """A database reached through SQLAlchemy, with the operations its YAML file declares."""

    guarantee = Guarantee.TRANSACTIONAL  # the effect and its key commit in one transaction of the target

    def __init__(self, name: str, engine: Engine, operations: Mapping[str, SqlOperation],
                 secrets: tuple[str, ...] = ()) -> None:
        super().__init__(name, operations)
        self._engine = engine
        self._secrets = tuple(s for s in secrets if s)
        self._sqlite = engine.dialect.name == "sqlite"
        self._ledger_ready = False
        self._ledger_lock = threading.Lock()
        if self._sqlite:
            event.listen(engine, "connect", _sqlite_autocommit_driver)
            event.listen(engine, "begin", _sqlite_begin)

    def __repr__(self) -> str:
        return f"SqlSystem({self.name!r}, {self._engine.url.render_as_string(hide_password=True)!r})"

    # --- plumbing -------------------------------------------------------------------

    def _failure(self, exc: SQLAlchemyError, operation: str) -> ConnectorError:
        """The database's own words, first line only, with any secret taken out."""
        orig = getattr(exc, "orig", None)
        message = str(orig if orig is not None else exc).strip().splitlines()[0][:300]
        for secret in self._secrets:
            message = message.replace(secret, "***")
        return ConnectorError(f"{self.name}.{operation}: the database said: {message}")

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A transaction that writes; on SQLite it takes the write lock at once (BEGIN IMMEDIATE)."""
        with self._engine.connect() as conn:
            conn.execution_options(sayso_write=True)
            with conn.begin():
                yield conn

    def _bind(self, op: SqlOperation, sql: str, args: Mapping[str, Any],
              origin: Mapping[str, Any] | None, key: str | None) -> dict[str, Any]:
        """The values of the parameters ``sql`` binds: arguments (None when left out) and who asked."""
        names = text(sql).compile().params
        sayso = origin_values(origin, key)
        values: dict[str, Any] = {}
        for name in names:
            value = sayso[name] if name.startswith("_") else args.get(name)
            if isinstance(value, list | dict) and self._sqlite:
                value = json.dumps(value)  # SQLite has no arrays: json_each(:ids) reads the list
            values[name] = value
        return values

    def _rows(self, conn: Connection, sql: str, values: Mapping[str, Any], limit: int | None = None
              ) -> list[dict[str, Any]]:
        result = conn.execute(text(sql), dict(values))
        rows = result.fetchmany(limit) if limit else result.fetchall()
        return [{str(k): _jsonable(v) for k, v in row._mapping.items()} for row in rows]

    def _record(self, op: SqlOperation, row: Mapping[str, Any], index: int) -> Record:
        spec = op.record
        if spec is None:
            return Record(type="Row", id=str(index + 1), attrs=dict(row), system=self.name)
        version = row.get(spec.version) if spec.version else None
        hidden = {spec.id, spec.version}
        return Record(
            type=spec.type, id=str(row.get(spec.id, index + 1)),
            title=str(row.get(spec.title) or "") if spec.title else "",
            attrs={k: v for k, v in row.items() if k not in hidden},
            version=int(version) if isinstance(version, int | float) else 0, system=self.name,
        )

    def _ensure_ledger(self) -> None:
        """Create ``sayso_effects`` in the target once; another process creating it meanwhile is fine."""
        if self._ledger_ready:
            return
        with self._ledger_lock:
            if self._ledger_ready:
                return
            try:
                _ledger.create_all(self._engine, checkfirst=True)
            except SQLAlchemyError as exc:
                if not inspect(self._engine).has_table("sayso_effects"):
                    raise self._failure(exc, "create sayso_effects") from exc
            self._ledger_ready = True

    # --- reads ----------------------------------------------------------------------

    def read(self, operation: str, args: dict[str, Any]) -> list[Record]:
        return self.read_as(operation, args)

    def read_as(self, operation: str, args: dict[str, Any], *, origin: dict[str, Any] | None = None) -> list[Record]:
        """A read; with ``origin``, its ``:_now``, ``:_today`` and ``:_asked_by...`` are the clock and the reader."""
        op = self._operation(operation, "read")
        try:
            with self._engine.connect() as conn:
                rows = self._rows(conn, op.sql, self._bind(op, op.sql, args, origin, None), op.limit)
        except SQLAlchemyError as exc:
            raise self._failure(exc, operation) from exc
        return [self._record(op, row, i) for i, row in enumerate(rows)]

    def get(self, record_type: str, record_id: str) -> Record | None:
        return next((r for r in self.search(record_type, record_id) if r.id == record_id), None)

    # --- writes ---------------------------------------------------------------------

    def _apply(self, conn: Connection, op: SqlOperation, args: Mapping[str, Any],
               origin: Mapping[str, Any] | None, key: str | None) -> Effect:
        """Run one write in the caller's transaction and describe what it changed; a write that
        matches no row changes nothing and raises (a version conflict when the write is versioned)."""
        spec = op.record
        before: dict[str, dict[str, Any]] = {}
        if op.before is not None:
            rows = self._rows(conn, op.before, self._bind(op, op.before, args, origin, key))
            before = {str(row.get(spec.id)) if spec else str(i + 1): row for i, row in enumerate(rows)}
            if op.version is not None:
                self._check_version(op, args, before)
        result = conn.execute(text(op.sql), self._bind(op, op.sql, args, origin, key))
        rows = [{str(k): _jsonable(v) for k, v in r._mapping.items()} for r in result] if result.returns_rows else []
        count = len(rows) if result.returns_rows else result.rowcount
        if count == 0:
            if op.version is not None:
                raise self._conflict(op, args)
            raise UnknownRecord(f"{self.name}.{op.name} changed nothing: no row matched {_shown(args)}")
        kind = spec.type if spec else "Row"
        verb = _VERBS.get(op.verb, "changed")
        if not rows:  # no RETURNING: the rows read before, with the arguments that name their columns
            rows = [{**row, **{k: v for k, v in args.items() if k in row}} for row in before.values()] or [dict(args)]
        changes = []
        for i, row in enumerate(rows):
            record_id = str(row.get(spec.id, i + 1)) if spec else str(i + 1)
            version = row.get(op.version) if op.version else None
            prior = before.get(record_id, {})  # {}: not created, though what it was is not known
            changes.append(Change(
                record_type=kind, record_id=record_id,
                title=str(row.get(spec.title) or "") if spec and spec.title else "",
                before=None if verb == "created" else (prior or row if verb == "deleted" else prior),
                after=None if verb == "deleted" else row,
                version=int(version) if isinstance(version, int) else None,
            ))
        ids = [c.record_id for c in changes]
        outcome: dict[str, Any] = {"rows": count, "ids": ids}
        if len(ids) == 1:
            outcome["id"] = ids[0]
        one = changes[0]
        summary = f"{verb} {kind} {one.record_id}" + (f" ({one.title})" if one.title else "")
        if count > 1:
            summary = f"{verb} {count} {kind} rows"
        return Effect(key=key or "", operation=op.name, changes=changes, result=outcome, summary=summary)

    def _check_version(self, op: SqlOperation, args: Mapping[str, Any], before: Mapping[str, Any]) -> None:
        """With a ``before`` query, say precisely why a versioned write cannot go ahead."""
        assert op.version is not None
        if not before:
            raise UnknownRecord(f"{self.name}.{op.name}: no row matched {_shown(args)}; nothing was changed")
        for record_id, row in before.items():
            if row.get(op.version) != args.get("expected"):
                raise self._conflict(op, args, record_id, row.get(op.version))

    def _conflict(self, op: SqlOperation, args: Mapping[str, Any], record_id: str | None = None,
                  current: Any = None) -> VersionConflict:
        kind = op.record.type if op.record else "row"
        which = f"{kind} {record_id}" if record_id is not None else f"{kind} ({_shown(args)})"
        now = f"it is at version {current}" if current is not None else "it changed since, or is gone"
        return VersionConflict(f"{self.name}.{op.name}: version conflict on {which}: expected version "
                               f"{args.get('expected')}, {now}; nothing was changed")

    def preview(self, operation: str, args: dict[str, Any]) -> list[Change]:
        """What ``execute`` would change now: the same statement, in a transaction rolled back."""
        op = self._operation(operation, "write")
        try:
            with self._engine.connect() as conn:
                conn.execution_options(sayso_write=True)
                transaction = conn.begin()
                try:
                    return self._apply(conn, op, args, None, None).changes
                finally:
                    transaction.rollback()
        except SQLAlchemyError as exc:
            raise self._failure(exc, operation) from exc

    def execute(
        self, operation: str, args: dict[str, Any], *, key: str, origin: dict[str, Any] | None = None
    ) -> Effect:
        op = self._operation(operation, "write")
        self._ensure_ledger()
        now = datetime.now(UTC).isoformat()
        try:
            with self._write() as conn:
                stored = self._stored(conn, key)
                if stored is not None:
                    return self._replay(stored, operation)
                try:  # the key first: a second process with the same key waits here, then fails
                    conn.execute(insert(_effects).values(key=key, operation=operation, effect="", at=now,
                                                         why=json.dumps(why_fields(origin), default=str)))
                except IntegrityError:
                    raise _SameKey from None
                effect = self._apply(conn, op, args, origin, key)
                conn.execute(update(_effects).where(_effects.c.key == key).values(effect=effect.model_dump_json()))
                return effect
        except _SameKey:
            stored = self.lookup(key)
            if stored is None:
                raise ConnectorError(f"{self.name}.{operation}: key {key!r} was being written by another process "
                                     "that did not finish; try again") from None
            return self._replay(stored, operation)
        except SQLAlchemyError as exc:
            raise self._failure(exc, operation) from exc

    @staticmethod
    def _stored(conn: Connection, key: str) -> Effect | None:
        found = conn.execute(select(_effects.c.effect).where(_effects.c.key == key)).scalar_one_or_none()
        return Effect.model_validate_json(found) if found else None

    def _replay(self, stored: Effect, operation: str) -> Effect:
        """The effect already recorded under a key; a key names one operation only."""
        if stored.operation != operation:
            raise InvalidArguments(f"key {stored.key!r} was used for {stored.operation!r}, not {operation!r}")
        return stored

    def lookup(self, key: str) -> Effect | None:
        self._ensure_ledger()
        try:
            with self._engine.connect() as conn:
                return self._stored(conn, key)
        except SQLAlchemyError as exc:
            raise self._failure(exc, "lookup") from exc

    def close(self) -> None:
        self._engine.dispose()


class _SameKey(Exception):
    """Another transaction committed this key while ours waited."""


def _shown(args: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in args.items()) or "(no arguments)"


def _sqlite_autocommit_driver(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own transaction handling is off, so that _sqlite_begin decides how a transaction starts.
    dbapi_connection.isolation_level = None


def _sqlite_begin(conn: Connection) -> None:
    immediate = conn.get_execution_options().get("sayso_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _engine(system: str, settings: Mapping[str, Any], context: SystemContext) -> tuple[Engine, tuple[str, ...]]:
    raw = settings.get("url")
    if not isinstance(raw, str) or not raw:
        raise ConfigurationError(f"system {system!r}: `url` must be a database URL (sqlite:///..., postgresql://...)")
    try:
        url: URL = make_url(raw)
    except ArgumentError:
        raise ConfigurationError(f"system {system!r}: `url` is not a database URL") from None
    secrets: tuple[str, ...] = ()
    if url.password is not None:
        secrets = (str(url.password),)
    if settings.get("password_secret"):
        password = context.secret(str(settings["password_secret"]))
        url = url.set(password=password)
        secrets = (password,)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if not database or database == ":memory:":
            raise ConfigurationError(f"system {system!r}: a SQLite system needs a file (sqlite:///systems/x.db)")
        path = Path(database) if Path(database).is_absolute() else context.root / database
        if not path.exists():
            raise ConfigurationError(f"system {system!r}: no SQLite database at {path}")
        url = url.set(database=str(path))
    try:
        engine = create_engine(url, pool_pre_ping=True)
    except (NoSuchModuleError, ModuleNotFoundError) as exc:
        hint = ' (pip install "sayso[postgres]")' if url.get_backend_name() == "postgresql" else ""
        raise ConfigurationError(f"system {system!r}: no driver for {url.drivername}: {exc}{hint}") from None
    return engine, secrets


def _create(name: str, settings: Mapping[str, Any], context: SystemContext) -> SqlSystem:
    check_settings(name, settings, _SETTINGS)
    operations = load_sql_operations(operations_path(context.root, name, settings))
    check_actions(name, operations, context.root)
    engine, secrets = _engine(name, settings, context)
    return SqlSystem(name, engine, operations, secrets)


def register(registry: ConnectorRegistry) -> None:
    """Add the kind ``sql``."""
    registry.add("sql", _create)
