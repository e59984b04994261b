"""The state store: one SQLAlchemy code path for SQLite and PostgreSQL.

``Store.open(url)`` picks the subclass from the URL. The schema is created or
upgraded with Alembic on first use. Writes run in short transactions; on
SQLite each one takes the write lock up front (``BEGIN IMMEDIATE``) so two
processes never deadlock upgrading a read lock. The audit chain's records are
chained where its head is locked: on SQLite in Python, under the write lock
taken at BEGIN; on PostgreSQL in the database, by ``sayso_audit_append``
(migrations 0010 and 0011), which locks the head row ``FOR UPDATE``, chains and inserts
the records and moves the head in one statement, sent as the last thing in
the transaction, in one message with its COMMIT (``PostgresStore.write``):
the one lock every process's writes queue for is held for that statement and
the commit, with no round trip and no Python in between, and not through the
commit's flush to disk, which a second transaction in the same message waits
for before anything is answered (``_DURABLE``). Writes whose results nobody
reads (a conversation's state and messages, a plan and its steps, a step's
outcome) go in that message too (``Store.execute_at_commit``), and so does
the BEGIN of a transaction that sent nothing before: a read turn's whole
write is one round trip.

On PostgreSQL every round trip counts: a request thread that waits for the
database gives up the GIL, and to get it back waits for the other threads'
computation (up to the 5 ms switch interval each time). So reads run in
autocommit (under READ COMMITTED each statement sees its own snapshot either
way, and a transaction would only add a BEGIN and a ROLLBACK), and a pooled
connection is pinged before use only when it has been idle for a while
(``PING_AFTER_IDLE_SECONDS``), not on every checkout.

SQLite writers queue before ``BEGIN IMMEDIATE``: the threads of a process on a
lock, and processes (several ``sayso serve``, the CLI beside a server) on
an ``flock`` of ``<database>-writer``, so a writer waits for the one before it
and is woken when it finishes, instead of polling in SQLite's busy handler
(whose sleeps of up to 100 ms, in no order, made an unlucky writer wait seconds
under load).

Within a process, SQLite writes are group-committed: the writes that queue
while a transaction is open join it, each in a savepoint of its own (a write
that fails rolls back only itself), and the last of them commits for all. Every
``write()`` still returns only once that commit is on disk, so what a caller
does next (running an effect after its plan is stored, answering a request)
waits for durability exactly as before; a commit that fails fails every write
in it. One ``fsync`` then serves several turns, and the write lock is taken
once for them.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Insert,
    Sequence,
    Update,
    bindparam,
    create_engine,
    event,
    func,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.exc import DatabaseError, DisconnectionError

from ..errors import ConfigurationError
from . import schema

__all__ = ["AuditRecord", "PostgresStore", "SQLiteStore", "Store", "chain_hash", "schema"]

_MIGRATIONS = Path(__file__).parent / "migrations"
_HEAD_ROW = select(schema.audit_head.c.seq, schema.audit_head.c.hash).where(schema.audit_head.c.id == 1)
_INSERT_AUDIT = schema.audit.insert()
_SET_HEAD = update(schema.audit_head).where(schema.audit_head.c.id == 1).values(
    seq=bindparam("b_seq"), hash=bindparam("b_hash"))
_STEPS_SEQ = Sequence("steps_seq")  # PostgreSQL's; created by migration 0007
_HEAD = "0011"
_MIGRATION_LOCK = 0x5A7502  # the advisory lock key of schema upgrades on PostgreSQL
_CHAINED = "sayso_audit_records"  # Connection.info: a PostgreSQL write's audit records, chained at its commit
_AT_COMMIT = "sayso_at_commit"  # Connection.info: a PostgreSQL write's statements sent with its commit
_UNBEGUN = "sayso_unbegun"  # Connection.info: True while a PostgreSQL write's BEGIN is not yet sent
_APPEND = "select sayso_audit_append({}::json)"  # migrations 0010 and 0011: the function, its argument quoted in
# The chaining transaction commits without waiting for the disk, so the head's lock is not held through the WAL
# flush; this second transaction, in the same message, writes a WAL record (a transactional logical message,
# which nothing decodes) and so waits for the flush of everything before it, the first commit included:
# nothing is answered before it is durable, and the flushes of concurrent writers are grouped.
_DURABLE = "select pg_logical_emit_message(true, 'sayso', 'durable')"
Write = Insert | Update  # a statement Store.execute_at_commit takes
PING_AFTER_IDLE_SECONDS = 2.0  # a pooled PostgreSQL connection idle this long is pinged before it is used


@dataclass(frozen=True)
class AuditRecord:
    """An audit record ready to be chained: everything but its place in the chain (seq, previous hash, hash).

    ``detail`` is its canonical JSON text; ``payload`` is what its hash covers after the previous hash and
    its seq, as UTF-8 (``chain_hash``), made by ``sayso.audit`` so that the database never re-encodes it.
    """

    id: str
    at: str
    actor: str
    channel: str
    conversation: str | None
    turn: str | None
    event: str
    action: str | None
    status: str
    detail: str
    payload: bytes


def chain_hash(prev: str, seq: int, payload: bytes) -> str:
    """A record's hash from the previous one's, its seq and its payload; ``sayso_audit_append`` computes the
    same in SQL: ``sha256(convert_to(prev || E'\\n[' || seq, 'UTF8') || payload)``, as hex."""
    return hashlib.sha256(f"{prev}\n[{seq}".encode() + payload).hexdigest()


class Store:
    """Base store: transactions, migrations and a commit counter for benchmarks."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.commits = 0
        self._lock = threading.Lock()
        event.listen(engine, "commit", self._count_commit)

    def _count_commit(self, _conn: Connection) -> None:
        self.commits += 1

    @staticmethod
    def open(url: str) -> Store:
        if url.startswith("sqlite"):
            store: Store = SQLiteStore(url)
        elif url.startswith("postgresql"):
            store = PostgresStore(url)
        else:
            raise ConfigurationError(f"unsupported database URL {url.split(':', 1)[0]!r}: use sqlite or postgresql")
        store.migrate()
        return store

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction, committed on success."""
        with self.engine.begin() as conn:
            yield conn

    def wait_durable(self) -> None:
        """Return once everything committed so far is on disk (SQLite's commits already wait for it)."""

    def execute_at_commit(self, conn: Connection, statement: Write, params: list[dict[str, Any]]) -> None:
        """Run ``statement`` once per item of ``params`` in ``conn``'s write transaction, for a write whose
        result nothing reads (no rows, no row count, no new id) and whose rows nothing later in the transaction
        reads: here at once; on PostgreSQL at the commit, in its message, after what was sent at once."""
        if params:
            conn.execute(statement, params)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect().execution_options(sayso_read=True) as conn:
            yield conn
            conn.rollback()

    @contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """A read transaction whose statements all see one state (a SQLite read transaction already does)."""
        with self.read() as conn:
            yield conn

    def append_audit(self, conn: Connection, records: list[AuditRecord]) -> None:
        """Chain ``records`` onto the audit chain's head in ``conn``'s write transaction, and move the head:
        here at once, in Python, SQLite's write lock (held since BEGIN) ordering the appends."""
        head = conn.execute(_HEAD_ROW).one()
        seq, prev = int(head.seq), str(head.hash)
        rows = []
        for record in records:
            seq += 1
            digest = chain_hash(prev, seq, record.payload)
            # Stored as parsed JSON; canonical JSON round-trips, so verify recomputes the same text.
            rows.append({"seq": seq, "id": record.id, "at": record.at, "actor": record.actor,
                         "channel": record.channel, "conversation": record.conversation, "turn": record.turn,
                         "event": record.event, "action": record.action, "status": record.status,
                         "detail": json.loads(record.detail), "prev_hash": prev, "hash": digest})
            prev = digest
        conn.execute(_INSERT_AUDIT, rows)
        conn.execute(_SET_HEAD, {"b_seq": seq, "b_hash": prev})

    def next_step_seq(self) -> ColumnElement[int]:
        """The value that numbers a finishing step (``steps.seq``): one more than the highest, unique
        because SQLite's write lock, taken at BEGIN, lets one transaction write at a time."""
        return select(func.coalesce(func.max(schema.steps.c.seq), 0) + 1).scalar_subquery()

    def migrate(self) -> None:
        """Create or upgrade the schema to the current head (a no-op when current)."""
        try:
            with self.engine.connect() as conn:
                if inspect(conn).has_table("alembic_version"):
                    current = conn.execute(text("select version_num from alembic_version")).scalar()
                    if current == _HEAD:
                        conn.rollback()
                        return
                conn.rollback()
        except DatabaseError as exc:  # unreachable, or not a database at all (a garbage file)
            url = self.engine.url
            where = url.database if url.get_backend_name() == "sqlite" else url.render_as_string(hide_password=True)
            raise ConfigurationError(f"cannot open the state database {where}: {exc.orig}") from None
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS))
        with self._lock, self.engine.begin() as conn:
            self._one_migration_at_a_time(conn)
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    def _one_migration_at_a_time(self, conn: Connection) -> None:
        """Make processes that open a new or old database at once upgrade it one after another (SQLite's
        write lock, taken at BEGIN, already does)."""

    def dispose(self) -> None:
        self.engine.dispose()


_GROUP_MAX = 32  # writes in one commit at most, so the first of them waits a bounded time


class _Group:
    """One SQLite transaction that the writes queued while it is open join, each in a savepoint."""

    def __init__(self, conn: Connection, transaction: Any) -> None:
        self.conn = conn
        self.transaction = transaction
        self.members = 0
        self.done = threading.Event()
        self.error: BaseException | None = None


class SQLiteStore(Store):
    """A SQLite file: WAL journal, full sync on commit, write lock taken at BEGIN."""

    def __init__(self, url: str) -> None:
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        # Writers queue on locks rather than on SQLite's busy handler (see the module's docstring).
        self._writers = threading.Lock()  # the group's connection: one member's body at a time
        self._state = threading.Lock()  # guards _waiting and _group
        self._waiting = 0  # threads queued for _writers: they join the open group
        self._group: _Group | None = None
        self._owner: int | None = None  # the thread in a member's body (a nested write is a savepoint)
        database = engine.url.database
        self._lock_path = f"{database}-writer" if database and database != ":memory:" else None
        self._lock_fd: int | None = None

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # sayso issues BEGIN itself
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            deferred = conn.get_execution_options().get("sayso_read", False)
            conn.exec_driver_sql("BEGIN" if deferred else "BEGIN IMMEDIATE")

        super().__init__(engine)

    @contextmanager
    def write(self) -> Iterator[Connection]:
        me = threading.get_ident()
        if self._owner == me and self._group is not None:  # a write inside a write: a savepoint of it
            with self._group.conn.begin_nested():
                yield self._group.conn
            return
        with self._state:
            self._waiting += 1
        self._writers.acquire()
        with self._state:
            self._waiting -= 1
        group = self._group
        if group is None:
            try:
                group = self._open()
            except BaseException:
                self._writers.release()
                raise
            self._group = group
        self._owner = me
        try:
            savepoint = group.conn.begin_nested()
            yield group.conn
        except BaseException:
            self._owner = None
            try:
                if group.conn.in_nested_transaction():
                    savepoint.rollback()
            except Exception as exc:  # noqa: BLE001 - the group cannot go on; its members are told
                group.error = exc
            self._leave(group)
            raise
        self._owner = None
        try:
            savepoint.commit()
        except Exception as exc:  # noqa: BLE001
            group.error = exc
        self._leave(group)
        if group.error is not None:
            raise group.error

    def _open(self) -> _Group:
        self._lock_other_processes()
        try:
            conn = self.engine.connect()
            try:
                return _Group(conn, conn.begin())
            except BaseException:
                conn.close()
                raise
        except BaseException:
            if self._lock_fd is not None:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            raise

    def _leave(self, group: _Group) -> None:
        """A member is done: the last one commits for all; the others wait for that commit."""
        group.members += 1
        with self._state:
            last = self._waiting == 0 or group.members >= _GROUP_MAX or group.error is not None
            if last:
                self._group = None
        if not last:
            self._writers.release()
            group.done.wait()
            return
        try:
            if group.error is None:
                group.transaction.commit()
            else:
                group.transaction.rollback()
        except Exception as exc:  # noqa: BLE001
            group.error = group.error or exc
        finally:
            group.conn.close()
            if self._lock_fd is not None:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            group.done.set()
            self._writers.release()

    def _lock_other_processes(self) -> None:
        if self._lock_path is None:
            return
        if self._lock_fd is None:
            try:
                self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError:  # e.g. a read-only folder: SQLite's busy handler still orders the writers
                self._lock_path = None
                return
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)

    def dispose(self) -> None:
        super().dispose()
        with self._writers:
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None


class PostgresStore(Store):
    """PostgreSQL, for several workers sharing one database."""

    def __init__(self, url: str) -> None:
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        try:
            engine = create_engine(url, pool_size=10, max_overflow=20)
        except ImportError:
            raise ConfigurationError('PostgreSQL needs its driver: pip install "sayso[postgres]"') from None
        event.listen(engine.pool, "checkin", _idle_since)
        event.listen(engine.pool, "checkout", _ping_when_idle)
        event.listen(engine, "before_cursor_execute", _begin_first)
        # execute_at_commit's statements, compiled: (the statement, its compiled form, its values' processors)
        self._compiled: dict[tuple[int, tuple[str, ...]], tuple[Write, Any, dict[str, Any]]] = {}
        super().__init__(engine)

    def wait_durable(self) -> None:
        """The audit chain's transactions commit without waiting for the disk (``_DURABLE``): what reads them to
        tell others (``sayso audit checkpoint``) first waits for a flush, which covers every earlier commit."""
        with self.engine.begin() as conn:
            conn.exec_driver_sql(_DURABLE).close()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """Autocommit: no BEGIN and ROLLBACK around the reads (see the module's docstring)."""
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction, committed on success, in as few round trips as its statements allow.

        The connection is in the driver's autocommit mode and the transaction is begun by sayso: its BEGIN
        goes with its first statement (``_begin_first``, one more trip) or, when every statement in it is
        one whose result nobody reads (``execute_at_commit``), with the commit. At the end, the statements
        queued by ``execute_at_commit``, the chaining of the audit records appended in it and the COMMIT go
        in one message (``_commit``): one round trip. The head row's lock, which every process's appends
        wait for, is held for that statement and the commit only."""
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            records: list[AuditRecord] = []
            at_commit: list[tuple[Write, dict[str, Any]]] = []
            conn.info[_CHAINED], conn.info[_AT_COMMIT], conn.info[_UNBEGUN] = records, at_commit, True
            try:
                conn.begin()
                yield conn
                if at_commit or records or not conn.info[_UNBEGUN]:
                    self._commit(conn, at_commit, records)
                conn.commit()  # after the COMMIT sent, a no-op at the server (the driver sees no transaction)
            except BaseException:
                conn.info[_UNBEGUN] = False
                conn.rollback()  # the driver sends ROLLBACK when a transaction is open at the server
                raise
            finally:
                del conn.info[_CHAINED], conn.info[_AT_COMMIT], conn.info[_UNBEGUN]

    def execute_at_commit(self, conn: Connection, statement: Write, params: list[dict[str, Any]]) -> None:
        """Queue ``statement`` (once per item of ``params``) to be sent with the ``write`` transaction's
        commit, in the same round trip (outside one, run at once)."""
        queued = conn.info.get(_AT_COMMIT)
        if queued is None:
            super().execute_at_commit(conn, statement, params)
        else:
            queued.extend((statement, item) for item in params)

    def append_audit(self, conn: Connection, records: list[AuditRecord]) -> None:
        """Queue ``records`` to be chained at the end of the ``write`` transaction (outside one, at once)."""
        queued = conn.info.get(_CHAINED)
        if queued is None:
            conn.exec_driver_sql(_append(_driver(conn), records), execution_options={"no_parameters": True}).close()
        else:
            queued.extend(records)

    def _commit(self, conn: Connection, at_commit: list[tuple[Write, dict[str, Any]]],
                records: list[AuditRecord]) -> None:
        """The write's last statements and its COMMIT in one message: one round trip, and no Python between
        the chain's statement, which takes the head's lock, and the COMMIT, which releases it.

        In order: the BEGIN when nothing was sent yet; the statements queued by ``execute_at_commit``; with
        audit records, ``sayso_audit_append`` on them, in a transaction that commits without waiting for the
        disk (so the head's lock is not held through the WAL flush), then a second transaction (``_DURABLE``)
        that waits for the flush of everything before it, the first commit included: nothing is answered
        before it is durable, and the flushes of concurrent writers are grouped. Several statements travel
        in one message only in PostgreSQL's simple query protocol, which carries no parameters, so their
        values are quoted by the driver (psycopg's client-side binding, ``_literal``). A statement that
        fails ends the message there; the transaction is rolled back.
        """
        import psycopg

        driver = _driver(conn)
        sent = ["begin"] if conn.info[_UNBEGUN] else []
        conn.info[_UNBEGUN] = False
        if at_commit:
            quoting = psycopg.ClientCursor(driver)
            sent.extend(self._literal(quoting, statement, params) for statement, params in at_commit)
        if records:
            sent += ["set local synchronous_commit = off", _append(driver, records), "commit", _DURABLE]
        else:
            sent.append("commit")
        conn.exec_driver_sql("; ".join(sent), execution_options={"no_parameters": True}).close()

    def _literal(self, quoting: Any, statement: Write, params: dict[str, Any]) -> str:
        """``statement`` with ``params`` as one SQL text, the values quoted by psycopg's client-side binding
        (``quoting``, a ``ClientCursor``); the statement compiled once per set of parameter names (an INSERT's
        columns)."""
        key = (id(statement), tuple(params))
        found = self._compiled.get(key)
        if found is None or found[0] is not statement:
            compiled = statement.compile(dialect=self.engine.dialect, column_keys=list(params))
            processors = {name: bind.type.dialect_impl(self.engine.dialect).bind_processor(self.engine.dialect)
                          for name, bind in compiled.binds.items()}
            found = self._compiled[key] = (statement, compiled, processors)
        _, compiled, processors = found
        values = compiled.construct_params(params)
        for name, value in values.items():  # as SQLAlchemy processes them (a JSON value into the driver's Json)
            process = processors.get(name)
            if process is not None:
                values[name] = process(value)
        return str(quoting.mogrify(compiled.string, values))

    def _one_migration_at_a_time(self, conn: Connection) -> None:
        """A transaction-scoped advisory lock: several processes starting together on a fresh database (a
        deployment of N) would otherwise each create the schema, and all but one fail."""
        conn.execute(text("select pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})

    def next_step_seq(self) -> ColumnElement[int]:
        """A database sequence: concurrent transactions each take their own number without waiting."""
        return _STEPS_SEQ.next_value()

    @contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """REPEATABLE READ: under the default READ COMMITTED each statement would see later commits."""
        with self.engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
            yield conn
            conn.rollback()


def _driver(conn: Connection) -> Any:
    """The psycopg connection under ``conn``."""
    return conn.connection.driver_connection


def _append(driver: Any, records: list[AuditRecord]) -> str:
    """``sayso_audit_append`` on the records, in order, as one SQL text: their JSON (the payload the hash covers
    as hex, so that the database never re-encodes it) as a literal quoted by the driver (``psycopg.sql``)."""
    from psycopg.sql import SQL, Literal

    items = json.dumps([{
        "id": r.id, "at": r.at, "actor": r.actor, "channel": r.channel, "conversation": r.conversation,
        "turn": r.turn, "event": r.event, "action": r.action, "status": r.status, "detail": r.detail,
        "payload": r.payload.hex()} for r in records], ensure_ascii=False)
    return str(SQL(_APPEND).format(Literal(items)).as_string(driver))


def _begin_first(conn: Connection, cursor: Any, _statement: str, _params: Any, _context: Any,
                 _many: bool) -> None:
    """Before the first statement of a PostgreSQL ``write`` that is sent at once, its BEGIN."""
    if conn.info.get(_UNBEGUN):
        conn.info[_UNBEGUN] = False
        cursor.execute("begin")


def _idle_since(_dbapi_conn: Any, record: Any) -> None:
    record.info["idle_since"] = time.monotonic()


def _ping_when_idle(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
    """Ping a connection that sat in the pool long enough for the server to have gone (a restart, a failover,
    an idle timeout); a dead one is replaced by the pool. A busy pool's connections are used without the round
    trip: should the server go meanwhile, the statement fails and SQLAlchemy replaces the whole pool."""
    if time.monotonic() - record.info.get("idle_since", 0.0) < PING_AFTER_IDLE_SECONDS:
        return
    try:
        with dbapi_conn.cursor() as cursor:
            cursor.execute("select 1")
        if not dbapi_conn.autocommit:
            dbapi_conn.rollback()
    except Exception as exc:  # noqa: BLE001 - any failure: the connection is not usable
        raise DisconnectionError(f"a pooled connection is gone: {type(exc).__name__}") from exc
