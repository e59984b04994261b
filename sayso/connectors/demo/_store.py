"""What every demo system shares: one SQLite file, typed tables and an effects ledger.

A system keeps its records and its ``effects`` table in the same file and writes
both in one transaction, so an effect and its idempotency key commit together
(``Guarantee.TRANSACTIONAL``). Operations are plain functions over a :class:`Tx`;
a subclass of :class:`DemoSystem` lists its tables, reads, writes and undos.

Writers of one file queue for it: the threads of a process on the system's lock,
and processes (several ``sayso serve``, the CLI beside a server) on an
``flock`` of ``<file>-writer`` taken before ``BEGIN IMMEDIATE``, as the state
store's writers do. Left to SQLite's busy handler, a writer that found the file
locked slept in steps of up to 100 ms, in no order, and under load an unlucky
one waited far longer than the writes ahead of it took.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel
from rapidfuzz import fuzz, process

from ...directory import Directory, Person
from ...errors import ConnectorError, InvalidArguments, UnknownRecord, WorkspaceError
from .._common import parse_args
from ..base import Change, Connector, Effect, Guarantee, Record

P = TypeVar("P", bound=BaseModel)
R = TypeVar("R")

# Column types of Table.columns.
TEXT, INTEGER, OPTIONAL = "TEXT NOT NULL", "INTEGER NOT NULL", "TEXT"

_LEDGER = """
CREATE TABLE IF NOT EXISTS effects (
    key TEXT PRIMARY KEY, operation TEXT NOT NULL, effect TEXT NOT NULL, at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, next INTEGER NOT NULL);
"""


def quote(name: str) -> str:
    """An SQL identifier, quoted: columns such as ``to`` and ``end`` are keywords."""
    return f'"{name}"'


def words(*parts: object) -> str:
    """The lowercase words of ``parts``, each after a space, so ``LIKE '% word%'`` finds a word prefix.

    A word is a run of letters and digits: never a space, quote, backslash or control character,
    which lets the word index's triggers split ``words`` as a JSON list (see :meth:`Table.ddl`).
    """
    tokens = re.findall(r"[^\W_]+", " ".join(str(p) for p in parts if p is not None).lower())
    return "".join(f" {token}" for token in tokens)


def _each_word(column: str) -> str:
    """SQL for the words of a ``words`` column, one row each: ``' a b'`` read as ``'["a","b"]'``."""
    return f"""json_each('["' || replace(substr({column}, 2), ' ', '","') || '"]')"""


def iso(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def _show(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return "none" if value is None else str(value)


def describe(change: Change) -> str:
    """One change in words: ``D-101 stage proposal -> negotiation``; a field shown for context,
    the same before and after, appears once: ``amount 240,000``."""
    if change.before is None:
        return f"created {change.record_id} {change.title!r}"
    if change.after is None:
        return f"deleted {change.record_id} {change.title!r}"
    before = change.before
    fields = ", ".join(
        f"{k} {_show(v)}" if k in before and before[k] == v else f"{k} {_show(before.get(k))} -> {_show(v)}"
        for k, v in change.after.items()
    )
    return f"{change.record_id} {fields}"


@dataclass(frozen=True)
class Table:
    """One record type kept in one SQL table; ``columns`` are the record's attributes.

    Every table also has ``id``, ``words`` (for search), ``origin`` (who asked for a
    record sayso created) and ``version`` (1, then one more on every change).
    """

    type: str
    name: str
    columns: Mapping[str, str]  # attribute -> SQL type
    title: str | None = "name"  # the column that names a record for people; None: its id
    search: tuple[str, ...] = ()  # more columns whose words find a record
    lists: frozenset[str] = frozenset()  # JSON lists
    flags: frozenset[str] = frozenset()  # 0/1 in SQL, booleans in attrs

    @property
    def searched(self) -> tuple[str, ...]:
        """The columns whose words find a record: its title, then ``search``."""
        return tuple(c for c in (self.title, *self.search) if c)

    def words_of(self, values: Mapping[str, Any]) -> str:
        """The ``words`` column of a record with these values."""
        return words(*(values.get(c) for c in self.searched))

    def ddl(self) -> str:
        """The table and what search reads instead of scanning it: indexes on ``id`` regardless of
        case and on the lowercase title, and the word index ``<name>_words`` (one row per word and
        record, so a word prefix is a range of it), which triggers keep in step with ``words``
        inside the writing transaction, whoever writes."""
        name = self.name
        columns = "".join(f"    {quote(c)} {kind},\n" for c, kind in self.columns.items())
        sql = (
            f"CREATE TABLE IF NOT EXISTS {name} (\n    id TEXT PRIMARY KEY,\n{columns}"
            "    words TEXT NOT NULL DEFAULT '',\n    origin TEXT,\n"
            "    version INTEGER NOT NULL DEFAULT 1\n);\n"
            f"CREATE INDEX IF NOT EXISTS {name}_id ON {name} (id COLLATE NOCASE);\n"
        )
        if self.title:
            sql += f"CREATE INDEX IF NOT EXISTS {name}_title ON {name} (lower({quote(self.title)}));\n"
        add = f"INSERT OR IGNORE INTO {name}_words (word, id)\n" \
            f"        SELECT value, new.id FROM {_each_word('new.words')} WHERE value <> '';\n"
        remove = f"DELETE FROM {name}_words\n" \
            f"        WHERE id = old.id AND word IN (SELECT value FROM {_each_word('old.words')});\n"
        sql += (
            f"CREATE TABLE IF NOT EXISTS {name}_words (\n"
            "    word TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (word, id)\n) WITHOUT ROWID;\n"
            f"CREATE TRIGGER IF NOT EXISTS {name}_words_insert AFTER INSERT ON {name} BEGIN\n    {add}END;\n"
            f"CREATE TRIGGER IF NOT EXISTS {name}_words_delete AFTER DELETE ON {name} BEGIN\n    {remove}END;\n"
            f"CREATE TRIGGER IF NOT EXISTS {name}_words_update AFTER UPDATE OF id, words ON {name} BEGIN\n"
            f"    {remove}    {add}END;\n"
        )
        return sql

    def encode(self, column: str, value: Any) -> Any:
        if value is None:
            return None
        if column in self.lists:
            return json.dumps(value)
        if column in self.flags:
            return int(bool(value))
        return value

    def decode(self, column: str, value: Any) -> Any:
        if value is None:
            return None
        if column in self.lists:
            return json.loads(value)
        if column in self.flags:
            return bool(value)
        return value

    def attrs(self, row: sqlite3.Row) -> dict[str, Any]:
        return {c: self.decode(c, row[c]) for c in self.columns if row[c] is not None}

    def attribute_types(self) -> dict[str, str]:
        """The attributes a policy sees on this table's records (``Connector.record_attributes``): lists are
        not passed to policies."""
        kinds = {INTEGER: "Long", TEXT: "String", OPTIONAL: "String?"}
        return {c: "Boolean" if c in self.flags else kinds[kind] for c, kind in self.columns.items()
                if c not in self.lists}

    def title_of(self, row: sqlite3.Row) -> str:
        return str(row[self.title] if self.title else row["id"])

    def record(self, row: sqlite3.Row, system: str) -> Record:
        return Record(
            type=self.type, id=row["id"], title=self.title_of(row), attrs=self.attrs(row),
            version=row["version"], system=system,
        )


@dataclass
class Outcome:
    """What a write did: its changes, a sentence for people and a result for programs."""

    changes: list[Change]
    summary: str
    result: dict[str, Any] = field(default_factory=dict)


def updated(change: Change | None, record_id: str) -> Outcome:
    """The outcome of an update of one record; ``None`` means it already had those values."""
    if change is None:
        return Outcome([], f"{record_id} unchanged: it already has those values", {"id": record_id})
    return Outcome([change], describe(change), {"id": record_id, "version": change.version})


@dataclass
class Tx:
    """One operation's view of a system: its connection and tables, the directory, and
    the ``origin`` and idempotency ``key`` of the write (None for reads and previews)."""

    conn: sqlite3.Connection
    system: str
    tables: Mapping[str, Table]
    directory: Directory
    origin: Mapping[str, Any] | None = None
    key: str | None = None

    @property
    def actor(self) -> str | None:
        actor = (self.origin or {}).get("actor")
        return str(actor) if actor else None

    def person(self, person_id: str) -> Person:
        """A person of the directory; raises ``UnknownUser`` for anyone else."""
        return self.directory.get(person_id)

    def find(self, table: Table, record_id: str) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.conn.execute(
            f"SELECT * FROM {table.name} WHERE id = ?", (record_id,)
        ).fetchone()
        return row

    def row(self, table: Table, record_id: str) -> sqlite3.Row:
        row = self.find(table, record_id)
        if row is None:
            raise UnknownRecord(f"{self.system} has no {table.type} {record_id!r}")
        return row

    def find_any(self, tables: Sequence[Table], record_id: str) -> tuple[Table, sqlite3.Row]:
        """The record with ``record_id`` in the first of ``tables`` that has one."""
        for table in tables:
            row = self.find(table, record_id)
            if row is not None:
                return table, row
        kinds = " or ".join(t.type for t in tables)
        raise UnknownRecord(f"{self.system} has no {kinds} {record_id!r}")

    def records(
        self,
        table: Table,
        where: str = "1",
        params: Sequence[Any] | Mapping[str, Any] = (),
        *,
        order: str = "id",
        limit: int | None = None,
    ) -> list[Record]:
        sql = f"SELECT * FROM {table.name} WHERE {where} ORDER BY {order}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [table.record(row, self.system) for row in self.conn.execute(sql, params)]

    def next_number(self, counter: str) -> int:
        """The next number of a sequence (CN-1, CN-2, ...); numbers are never reused."""
        row = self.conn.execute(
            "INSERT INTO counters (name, next) VALUES (?, 2)"
            " ON CONFLICT (name) DO UPDATE SET next = next + 1 RETURNING next - 1",
            (counter,),
        ).fetchone()
        return int(row[0])

    def start_counter(self, counter: str, first: int) -> None:
        self.conn.execute("INSERT OR REPLACE INTO counters (name, next) VALUES (?, ?)", (counter, first))

    def create(self, table: Table, record_id: str, values: Mapping[str, Any]) -> Change:
        """Insert a record, stamped with the origin of the write."""
        columns = [c for c in table.columns if values.get(c) is not None]
        search = table.words_of(values)
        origin = None if self.origin is None else json.dumps(dict(self.origin), sort_keys=True)
        names = ", ".join(quote(c) for c in ["id", *columns, "words", "origin"])
        marks = ", ".join(["?"] * (len(columns) + 3))
        self.conn.execute(
            f"INSERT INTO {table.name} ({names}) VALUES ({marks})",
            [record_id, *(table.encode(c, values[c]) for c in columns), search, origin],
        )
        title = str(values[table.title]) if table.title else record_id
        after = {c: values[c] for c in columns}
        return Change(record_type=table.type, record_id=record_id, title=title, after=after, version=1)

    def update(
        self, table: Table, record_id: str, values: Mapping[str, Any], *, context: Sequence[str] = ()
    ) -> Change | None:
        """Set ``values`` on a record and bump its version; None if nothing differs. The
        ``context`` columns join the change unchanged, for people reading it."""
        row = self.row(table, record_id)
        changed = {c: v for c, v in values.items() if table.decode(c, row[c]) != v}
        if not changed:
            return None
        shown = {c: table.decode(c, row[c]) for c in context}
        sets = "".join(f"{quote(c)} = ?, " for c in changed)
        params = [table.encode(c, v) for c, v in changed.items()]
        if changed.keys() & set(table.searched):  # renamed: its words follow, and the word index with them
            sets += "words = ?, "
            params.append(table.words_of({**{c: table.decode(c, row[c]) for c in table.searched}, **changed}))
        self.conn.execute(
            f"UPDATE {table.name} SET {sets}version = version + 1 WHERE id = ?", [*params, record_id]
        )
        return Change(
            record_type=table.type, record_id=record_id, title=table.title_of(row),
            before={**{c: table.decode(c, row[c]) for c in changed}, **shown}, after={**changed, **shown},
            version=row["version"] + 1,
        )

    def delete(self, table: Table, record_id: str) -> Change:
        row = self.row(table, record_id)
        self.conn.execute(f"DELETE FROM {table.name} WHERE id = ?", (record_id,))
        return Change(
            record_type=table.type, record_id=record_id, title=table.title_of(row),
            before=table.attrs(row), version=row["version"],
        )

    def restore(self, change: Change) -> Change | None:
        """Put back the ``before`` values of an update (``unchanged_since`` has checked it first)."""
        return self.update(self.tables[change.record_type], change.record_id, change.before or {})

    def unchanged_since(self, effect: Effect) -> None:
        """Refuse to undo ``effect`` if a record it wrote has changed since, in any field: edited outside
        sayso (its version is not the one the last recorded write left), or by a later write that was not
        itself undone. Raises ``InvalidArguments`` (``record_changed``); reads only."""
        left: dict[tuple[str, str], Change] = {}
        for change in effect.changes:
            if change.after is not None and change.version is not None and change.record_type in self.tables:
                ref = (change.record_type, change.record_id)
                if ref not in left or change.version > (left[ref].version or 0):
                    left[ref] = change
        for (record_type, record_id), change in left.items():
            table = self.tables[record_type]
            row = self.find(table, record_id)
            if row is None:
                raise InvalidArguments(f"{record_id} no longer exists; not undone", code="record_changed")
            later = self._later_writes(effect.key, record_type, record_id)
            keys = {e.key for e in later}
            paired = {e.key for e in later if e.result.get("undoes") in keys} \
                | {str(e.result["undoes"]) for e in later if e.result.get("undoes") in keys}
            expected = max([c.version or 0 for e in later for c in e.changes
                            if (c.record_type, c.record_id) == (record_type, record_id)], default=change.version)
            if row["version"] == expected and keys <= paired:
                continue
            after = change.after or {}
            moved = [f"{c} is now {_show(table.decode(c, row[c]))}" for c in after
                     if c in table.columns and table.decode(c, row[c]) != after[c]]
            what = ", ".join(moved) or "another of its fields was changed"
            raise InvalidArguments(f"{record_id} changed since ({what}: version {row['version']}, this step left "
                                   f"{change.version}); not undone", code="record_changed")

    def _later_writes(self, key: str, record_type: str, record_id: str) -> list[Effect]:
        """The writes recorded in this system's ledger after the one under ``key`` that changed a record."""
        rows = self.conn.execute(
            "SELECT e.effect FROM effects e, json_each(e.effect, '$.changes') c"
            " WHERE e.rowid > (SELECT rowid FROM effects WHERE key = ?)"
            " AND json_extract(c.value, '$.record_type') = ? AND json_extract(c.value, '$.record_id') = ?"
            " ORDER BY e.rowid", (key, record_type, record_id)).fetchall()
        return [Effect.model_validate_json(row[0]) for row in rows]


Undo = Callable[[Tx, Effect], Outcome]


def restore_all(tx: Tx, effect: Effect) -> Outcome:
    """Undo an update: every changed record gets its ``before`` values back."""
    changes = [c for c in (tx.restore(change) for change in effect.changes) if c is not None]
    return Outcome(changes, "undo: " + ("; ".join(map(describe, changes)) or "nothing to change"))


def remove_created(tx: Tx, effect: Effect) -> Outcome:
    """Undo a create by deleting what it created."""
    changes = [tx.delete(tx.tables[c.record_type], c.record_id) for c in effect.changes]
    return Outcome(changes, "undo: " + "; ".join(map(describe, changes)))


def mark_created(values: Mapping[str, Any]) -> Undo:
    """Undo a create by setting ``values`` (status void, cancelled, deleted) on what it created."""

    def undo(tx: Tx, effect: Effect) -> Outcome:
        found = (tx.update(tx.tables[c.record_type], c.record_id, values) for c in effect.changes)
        changes = [c for c in found if c is not None]
        return Outcome(changes, "undo: " + ("; ".join(map(describe, changes)) or "nothing to change"))

    return undo


@dataclass(frozen=True)
class Op(Generic[P, R]):
    """One operation of a system: the model of its arguments and the function that runs it."""

    params: type[P]
    run: Callable[[Tx, P], R]

    def __call__(self, tx: Tx, operation: str, args: Mapping[str, Any]) -> R:
        return self.run(tx, parse_args(self.params, args, operation))


def open_database(path: Path, schema: str, *, create: bool = True) -> sqlite3.Connection:
    """Open a system's file in WAL mode, with its schema. Seeding creates the file (``create``); a
    workspace's system must find it: missing or not a database, it is a ``WorkspaceError`` naming the
    file, never an empty system made in its place."""
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
    elif not path.is_file():
        raise WorkspaceError("the system's database is missing; `sayso init --demo` seeds one", file=str(path))
    mode = "rwc" if create else "rw"  # rw: SQLite never creates the file, even if it goes meanwhile
    try:
        conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode={mode}", uri=True, check_same_thread=False,
                               isolation_level=None)
    except sqlite3.Error as exc:
        raise WorkspaceError(f"cannot open the system's database: {exc}", file=str(path)) from None
    try:
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.executescript(schema)
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise WorkspaceError(f"not a usable SQLite database: {exc}", file=str(path)) from None
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """Commit what the block wrote, or nothing at all if it raised."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if conn.in_transaction:  # SQLite may have rolled back already (disk full, I/O error)
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


# Search reads indexes only (see Table.ddl); these bound the work of one search at any size.
_TOP = "\U0010ffff"  # above every character of a word (a noncharacter): "kes" <= word < "kes" + _TOP
_COMMON = 5_000  # a word prefix held by more records than this counts as common; counting stops here
_VOCABULARY = 5_000  # at most this many indexed words are compared with one word of a misspelled name
_SCORED = 500  # at most this many records are scored for a misspelled name
_ALIKE = 70  # fuzz.ratio from which an indexed word is spelled like a word of the query
_HIDDEN = 50  # a search for a person reads this many more rows, for the ones they may not read


def _anything(record: Record) -> bool:
    """Every record: a search for no one in particular."""
    return True


def _exact(tx: Tx, table: Table, text: str, limit: int) -> list[Record]:
    """Records whose id (in any case) or title (in any ASCII case) is ``text``."""
    by_name = f" OR lower({quote(table.title)}) = lower(:text)" if table.title else ""
    return tx.records(table, f"id = :text COLLATE NOCASE{by_name}", {"text": text}, limit=limit)


def _prefixed(tx: Tx, table: Table, tokens: Sequence[str], limit: int) -> list[Record]:
    """Records with, for each token, a word starting with it, by id. The range of the word index
    for the rarest token picks the rows; the ``LIKE`` test of every token checks just those."""
    index = f"{table.name}_words"
    counted = f"SELECT count(*) FROM (SELECT 1 FROM {index} WHERE word >= ? AND word < ? LIMIT {_COMMON})"
    held = {token: int(tx.conn.execute(counted, (token, token + _TOP)).fetchone()[0]) for token in tokens}
    rarest = min(tokens, key=lambda token: (held[token], -len(token)))
    if held[rarest] == 0:
        return []
    where = f"id IN (SELECT id FROM {index} WHERE word >= :lo AND word < :hi)"
    where += "".join(f" AND words LIKE :w{i}" for i in range(len(tokens)))
    params = {"lo": rarest, "hi": rarest + _TOP, **{f"w{i}": f"% {token}%" for i, token in enumerate(tokens)}}
    return tx.records(table, where, params, limit=limit)


def _spelled_like(tx: Tx, table: Table, token: str) -> list[str]:
    """Indexed words spelled like ``token``, closest first: of the words sharing its first two
    characters (a loose index scan visits each distinct word once), those starting with it, then
    those with a fuzz.ratio of _ALIKE or more, highest first."""
    if len(token) < 2:
        return []
    index = f"{table.name}_words"
    distinct = f"""WITH RECURSIVE vocabulary(word) AS (
        SELECT min(word) FROM {index} WHERE word >= :lo AND word < :hi
        UNION ALL
        SELECT (SELECT min(word) FROM {index} WHERE word > vocabulary.word AND word < :hi)
        FROM vocabulary WHERE vocabulary.word IS NOT NULL LIMIT {_VOCABULARY}
    ) SELECT word FROM vocabulary WHERE word IS NOT NULL"""
    vocabulary = [row[0] for row in tx.conn.execute(distinct, {"lo": token[:2], "hi": token[:2] + _TOP})]
    closeness = {word: (word.startswith(token), fuzz.ratio(token, word)) for word in vocabulary}
    alike = [word for word, (starts, ratio) in closeness.items() if starts or ratio >= _ALIKE]
    return sorted(alike, key=closeness.__getitem__, reverse=True)


def _holders(tx: Tx, table: Table, alike: Sequence[str]) -> tuple[int, list[str]]:
    """How many records hold one of the words ``alike`` (counting stops at _COMMON), and up to
    _SCORED of them, those holding the first words first."""
    index = f"{table.name}_words"
    held: dict[str, None] = {}
    for word in alike:
        if len(held) >= _SCORED:
            break
        ids = tx.conn.execute(f"SELECT id FROM {index} WHERE word = ? LIMIT ?", (word, _SCORED - len(held)))
        held.update(dict.fromkeys(row[0] for row in ids))
    if len(held) < _SCORED:
        return len(held), list(held)
    counted = f"SELECT count(*) FROM (SELECT DISTINCT id FROM {index}"
    counted += f" WHERE word IN (SELECT value FROM json_each(?)) LIMIT {_COMMON})"
    return int(tx.conn.execute(counted, (json.dumps(list(alike)),)).fetchone()[0]), list(held)


def _close(tx: Tx, table: Table, text: str, tokens: Sequence[str], limit: int) -> list[Record]:
    """Records whose title has a WRatio of 85 or more with ``text``, best first, among at most
    _SCORED records holding a word spelled like one of ``tokens``: first those of the token held
    by the fewest records (a name's telling word), each token's closest words first."""
    holders = [_holders(tx, table, alike) for alike in (_spelled_like(tx, table, token) for token in tokens) if alike]
    rarest_first = sorted(holders, key=lambda counted: counted[0])
    chosen = list(dict.fromkeys(record_id for _, ids in rarest_first for record_id in ids))[:_SCORED]
    if not chosen:
        return []
    title = quote(table.title) if table.title else "id"
    named = f"SELECT id, {title} FROM {table.name} WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id"
    names = {row[0]: str(row[1]).lower() for row in tx.conn.execute(named, (json.dumps(chosen),))}
    hits = process.extract(text.lower(), names, scorer=fuzz.WRatio, score_cutoff=85, limit=limit)
    where = "id IN (SELECT value FROM json_each(?))"
    found = {r.id: r for r in tx.records(table, where, (json.dumps([key for _, _, key in hits]),))}
    return [found[key].model_copy(update={"score": round(score, 1)}) for _, score, key in hits]


class DemoSystem(Connector):
    """A demo system on its own SQLite file: one connection, used under a lock."""

    guarantee = Guarantee.TRANSACTIONAL
    tables: ClassVar[tuple[Table, ...]] = ()
    reads: ClassVar[Mapping[str, Op[Any, list[Record]]]] = {}
    writes: ClassVar[Mapping[str, Op[Any, Outcome]]] = {}
    undos: ClassVar[Mapping[str, Undo]] = {}

    def __init__(self, name: str, path: Path, directory: Directory) -> None:
        self.name = name
        self.path = path
        self._directory = directory
        self._types = {table.type: table for table in self.tables}
        self.record_attributes = {table.type: table.attribute_types() for table in self.tables}
        self._lock = threading.Lock()
        self._conn = open_database(path, self.schema(), create=False)
        self._writer: int | None = None  # the fd of <file>-writer, opened at the first write

    @classmethod
    def schema(cls) -> str:
        return _LEDGER + "".join(table.ddl() for table in cls.tables)

    @staticmethod
    def populate(tx: Tx, reference: date) -> None:
        """Write this system's Lumen Labs records, dated from ``reference`` (none by default)."""

    @contextmanager
    def _session(self) -> Iterator[sqlite3.Connection]:
        """The connection, held under the lock; SQLite failures become ``ConnectorError``."""
        with self._lock:
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise ConnectorError(f"{self.name} ({self.path.name}): {exc}") from exc

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """Hold ``<file>-writer`` (under the session's lock): writers of other processes wait their turn here."""
        if self._writer is None:
            try:
                self._writer = os.open(self.path.with_name(f"{self.path.name}-writer"), os.O_RDWR | os.O_CREAT, 0o600)
            except OSError:  # a read-only folder: SQLite's busy handler still orders the writers
                yield
                return
        fcntl.flock(self._writer, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._writer, fcntl.LOCK_UN)

    def _tx(self, origin: Mapping[str, Any] | None = None, key: str | None = None) -> Tx:
        return Tx(self._conn, self.name, self._types, self._directory, origin, key)

    def _operation(self, ops: Mapping[str, Op[Any, R]], operation: str) -> Op[Any, R]:
        if operation not in ops:
            known = ", ".join(sorted(ops)) or "none"
            raise InvalidArguments(f"{self.name} has no operation {operation!r} (it has: {known})")
        return ops[operation]

    def _stored(self, key: str) -> Effect | None:
        row = self._conn.execute("SELECT effect FROM effects WHERE key = ?", (key,)).fetchone()
        return None if row is None else Effect.model_validate_json(row[0])

    def _replay(self, key: str, operation: str) -> Effect | None:
        """The effect already recorded under ``key``, if any; a key names one operation only."""
        stored = self._stored(key)
        if stored is not None and stored.operation != operation:
            raise InvalidArguments(f"key {key!r} was used for {stored.operation!r}, not {operation!r}")
        return stored

    def _record(self, key: str, operation: str, outcome: Outcome) -> Effect:
        effect = Effect(
            key=key, operation=operation, changes=outcome.changes, result=outcome.result,
            summary=outcome.summary,
        )
        self._conn.execute(
            "INSERT INTO effects (key, operation, effect, at) VALUES (?, ?, ?, ?)",
            (key, operation, effect.model_dump_json(), datetime.now(UTC).isoformat()),
        )
        return effect

    def get(self, record_type: str, record_id: str) -> Record | None:
        table = self._types.get(record_type)
        if table is None:
            return None
        with self._session():
            row = self._tx().find(table, record_id)
        return None if row is None else table.record(row, self.name)

    def search(self, record_type: str, text: str, *, limit: int = 10) -> list[Record]:
        return self.search_visible(record_type, text, _anything, limit=limit)

    def search_visible(self, record_type: str, text: str, keep: Callable[[Record], bool], *,
                       limit: int = 10) -> list[Record]:
        """Exact id or name first (score 100, alone); then names with every word as a word
        prefix (90), articles and the type's own name aside; then close spellings (WRatio >= 85).
        Each stage reads indexes, never the whole table, so its cost barely grows with the table;
        each keeps what ``keep`` accepts before it decides, reading up to _HIDDEN more rows for it."""
        table = self._types.get(record_type)
        needle = text.strip()
        if table is None or not needle or limit < 1:
            return []
        noise = {"the", "a", "an", table.type.lower(), f"{table.type.lower()}s"}  # "the Kestrel deal"
        tokens = list(dict.fromkeys(token for token in words(needle).split() if token not in noise))
        wide = limit if keep is _anything else limit + _HIDDEN
        with self._session():
            tx = self._tx()
            exact = [r for r in _exact(tx, table, needle, wide) if keep(r)][:limit]
            if exact:
                return [r.model_copy(update={"score": 100.0}) for r in exact]
            found = [r for r in (_prefixed(tx, table, tokens, wide) if tokens else []) if keep(r)][:limit]
            if found:
                return [r.model_copy(update={"score": 90.0}) for r in found]
            return [r for r in _close(tx, table, needle, tokens, wide) if keep(r)][:limit]

    def read(self, operation: str, args: dict[str, Any]) -> list[Record]:
        return self.read_as(operation, args)

    def read_as(self, operation: str, args: dict[str, Any], *, origin: dict[str, Any] | None = None) -> list[Record]:
        op = self._operation(self.reads, operation)
        with self._session():
            return op(self._tx(origin), operation, args)

    def preview(self, operation: str, args: dict[str, Any]) -> list[Change]:
        """The changes ``execute`` would make now: the same code, in a transaction rolled back."""
        op = self._operation(self.writes, operation)
        with self._session() as conn:
            conn.execute("BEGIN")
            try:
                return op(self._tx(), operation, args).changes
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")

    def execute(
        self, operation: str, args: dict[str, Any], *, key: str, origin: dict[str, Any] | None = None
    ) -> Effect:
        op = self._operation(self.writes, operation)
        with self._session() as conn, self._writing(), transaction(conn):  # the key check too, against others
            done = self._replay(key, operation)
            if done is not None:
                return done
            return self._record(key, operation, op(self._tx(origin, key), operation, args))

    def lookup(self, key: str) -> Effect | None:
        with self._session():
            return self._stored(key)

    def compensate(self, effect: Effect, *, key: str) -> Effect:
        """Undo a recorded effect once; recorded under ``key`` like any write."""
        operation = f"undo:{effect.operation}"
        with self._session() as conn, self._writing(), transaction(conn):
            done = self._replay(key, operation)
            if done is not None:
                return done
            original = self._stored(effect.key)
            if original is None:
                raise UnknownRecord(f"{self.name} has no effect with key {effect.key!r}")
            undo = self.undos.get(original.operation)
            if undo is None:
                raise NotImplementedError(f"{self.name} cannot undo {original.operation!r}")
            earlier = conn.execute(
                "SELECT key FROM effects WHERE json_extract(effect, '$.result.undoes') = ?", (original.key,)
            ).fetchone()
            if earlier is not None:
                undone = f"{original.operation} {original.key!r} was already undone by {earlier[0]!r}"
                raise InvalidArguments(undone)
            tx = self._tx(None, key)
            tx.unchanged_since(original)
            outcome = undo(tx, original)
            outcome.result["undoes"] = original.key
            return self._record(key, operation, outcome)

    def close(self) -> None:
        with self._lock:
            self._conn.close()
            if self._writer is not None:
                os.close(self._writer)
                self._writer = None
