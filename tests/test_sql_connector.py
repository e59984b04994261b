"""The sql connector on a real SQLite file and a real PostgreSQL database: reads, writes, version
conflicts, retries by key, lookup, `sayso do` through YAML actions, and a crash after the effect
counted in the target database itself."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from sayso import Workspace
from sayso.connectors.sql import SqlSystem, VersionConflict
from sayso.errors import ConfigurationError, InvalidArguments, UnknownRecord, WorkspaceError

from .conftest import NOW, PG_URL, _create_pg_database, _drop_pg_database, sayso, sayso_json

ID_COLUMN = {"sqlite": "id INTEGER PRIMARY KEY", "postgresql": "id SERIAL PRIMARY KEY"}

OPERATIONS = """\
operations:
  find_products:
    kind: read
    search: true
    sql: >
      SELECT id, name, price, stock, version FROM products
      WHERE CAST(:text AS TEXT) IS NULL OR lower(name) LIKE '%' || lower(CAST(:text AS TEXT)) || '%'
      OR CAST(id AS TEXT) = CAST(:text AS TEXT)
      ORDER BY id
    record: {type: Product, id: id, title: name, version: version}
  set_price:
    kind: write
    before: SELECT id, name, price, version FROM products WHERE id = CAST(:product AS INTEGER)
    sql: >
      UPDATE products SET price = :price, version = version + 1, updated_by = :_asked_by,
      conversation = :_conversation
      WHERE id = CAST(:product AS INTEGER) AND version = :expected
      RETURNING id, name, price, version
    record: {type: Product, id: id, title: name}
    version: version
  add_product:
    kind: write
    sql: >
      INSERT INTO products (name, price, stock, updated_by, request)
      VALUES (:name, :price, :stock, :_asked_by, :_request) RETURNING id, name, price, stock
    record: {type: Product, id: id, title: name}
"""

ACTIONS = """\
actions:
  - name: shop.find_products
    description: Products by name
    kind: read
    connector: shop
    operation: find_products
    params:
      text: {type: string}
  - name: shop.set_price
    description: Change a product's price
    kind: write
    risk: low
    connector: shop
    operation: set_price
    resource: {type: Product, param: product}
    params:
      product: {type: string, required: true, record: Product}
      price: {type: integer, required: true}
      expected: {type: integer, required: true, description: "The version the change is based on"}
  - name: shop.add_product
    description: Add a product
    kind: write
    risk: low
    connector: shop
    operation: add_product
    params:
      name: {type: string, required: true}
      price: {type: integer, required: true}
      stock: {type: integer, default: 0}
"""

DIRECTORY = """\
people:
  - {id: alice, name: Alice Moreno, email: alice@example.com, role: admin, timezone: UTC}
channels: []
"""


class Shop:
    """A workspace whose system ``shop`` is a products table in a real database."""

    def __init__(self, root: Path, url: str) -> None:
        self.root = root
        self.url = url  # as sayso.toml has it
        self.engine = create_engine(self._absolute(url))

    def _absolute(self, url: str) -> str:
        if url.startswith("sqlite:///"):
            return f"sqlite:///{self.root / url.removeprefix('sqlite:///')}"
        return url.replace("postgresql://", "postgresql+psycopg://", 1)

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()

    def workspace(self) -> Workspace:
        ws = Workspace.load(self.root)
        OPEN.append(ws)
        return ws

    def connector(self) -> SqlSystem:
        system = self.workspace().connector("shop")
        assert isinstance(system, SqlSystem)
        return system


OPEN: list[Workspace] = []


def make_shop(root: Path, url: str, dialect: str, actions: str = ACTIONS, operations: str = OPERATIONS) -> Shop:
    Workspace.init(root)
    (root / "directory.yaml").write_text(DIRECTORY)
    (root / "operations").mkdir()
    (root / "operations" / "shop.yaml").write_text(operations)
    (root / "actions" / "shop.yaml").write_text(actions)
    with (root / "sayso.toml").open("a") as toml:
        toml.write(f'\n[systems.shop]\nkind = "sql"\nurl = "{url}"\noperations = "operations/shop.yaml"\n')
    shop = Shop(root, url)
    (root / "systems").mkdir()
    with shop.engine.begin() as conn:
        conn.execute(text(f"CREATE TABLE products ({ID_COLUMN[dialect]}, name TEXT NOT NULL UNIQUE, "
                          "price INTEGER NOT NULL, stock INTEGER NOT NULL DEFAULT 0, "
                          "version INTEGER NOT NULL DEFAULT 1, updated_by TEXT, conversation TEXT, request TEXT)"))
        conn.execute(text("INSERT INTO products (name, price, stock) VALUES ('Blue widget', 10, 5), "
                          "('Red gadget', 25, 0)"))
    return shop


@pytest.fixture
def shop(tmp_path: Path, backend: str) -> Iterator[Shop]:
    pg = _create_pg_database() if backend == "postgresql" else None
    made = make_shop(tmp_path / "ws", pg or "sqlite:///systems/shop.db", backend)
    yield made
    while OPEN:
        OPEN.pop().close()
    made.engine.dispose()
    if pg:
        _drop_pg_database(pg)


ORIGIN = {"actor": "alice", "actor_name": "Alice Moreno", "conversation": "c_1", "turn": "t_1",
          "request": "the blue widget costs 12 now", "related": ["1"]}


def test_reads_search_and_records(shop: Shop) -> None:
    system = shop.connector()
    found = system.read("find_products", {"text": "WIDGET"})
    assert [(r.type, r.id, r.title, r.version, r.attrs["price"]) for r in found] == [
        ("Product", "1", "Blue widget", 1, 10)]
    assert len(system.read("find_products", {})) == 2  # a parameter left out is bound as NULL
    assert system.record_types == {"Product"}
    exact = system.search("Product", "blue widget")
    assert [(r.id, r.score) for r in exact] == [("1", 100.0)]
    assert system.get("Product", "2") is not None and system.get("Product", "2").title == "Red gadget"  # type: ignore[union-attr]
    with pytest.raises(InvalidArguments, match="no read operation 'set_price'"):
        system.read("set_price", {})


def test_write_retry_conflict_lookup_and_the_why(shop: Shop) -> None:
    system = shop.connector()
    args = {"product": "1", "price": 12, "expected": 1}
    effect = system.execute("set_price", args, key="k-1", origin=ORIGIN)
    [change] = effect.changes
    assert (change.record_id, change.before["price"], change.after["price"], change.version) == (  # type: ignore[index]
        "1", 10, 12, 2)
    assert effect.summary == "updated Product 1 (Blue widget)"
    assert shop.scalar("SELECT version FROM products WHERE id = 1") == 2
    assert shop.scalar("SELECT updated_by FROM products WHERE id = 1") == "alice"
    assert shop.scalar("SELECT conversation FROM products WHERE id = 1") == "c_1"

    assert system.execute("set_price", args, key="k-1", origin=ORIGIN) == effect  # the same key: stored, not rerun
    assert shop.scalar("SELECT version FROM products WHERE id = 1") == 2
    assert system.lookup("k-1") == effect
    assert system.lookup("k-never") is None
    why = json.loads(shop.scalar("SELECT why FROM sayso_effects WHERE key = 'k-1'"))
    assert why["asked_by"] == "alice" and why["request"] == "the blue widget costs 12 now"

    with pytest.raises(VersionConflict, match="expected version 1, it is at version 2; nothing was changed"):
        system.execute("set_price", {"product": "1", "price": 99, "expected": 1}, key="k-2", origin=ORIGIN)
    assert shop.scalar("SELECT price FROM products WHERE id = 1") == 12
    assert system.lookup("k-2") is None
    with pytest.raises(UnknownRecord):
        system.execute("set_price", {"product": "404", "price": 1, "expected": 1}, key="k-3", origin=ORIGIN)
    with pytest.raises(InvalidArguments, match="was used for 'set_price'"):
        system.execute("add_product", {"name": "x", "price": 1, "stock": 0}, key="k-1", origin=ORIGIN)
    assert shop.scalar("SELECT count(*) FROM sayso_effects") == 1


def test_insert_preview_changes_nothing_and_database_errors_are_connector_errors(shop: Shop) -> None:
    system = shop.connector()
    [preview] = system.preview("add_product", {"name": "Green lamp", "price": 40, "stock": 2})
    assert preview.before is None and preview.after["name"] == "Green lamp"  # type: ignore[index]
    assert shop.scalar("SELECT count(*) FROM products") == 2
    effect = system.execute("add_product", {"name": "Green lamp", "price": 40, "stock": 2}, key="k-a", origin=ORIGIN)
    assert effect.result["id"] == effect.changes[0].record_id
    assert shop.scalar("SELECT request FROM products WHERE name = 'Green lamp'") == ORIGIN["request"]
    with pytest.raises(Exception, match="the database said") as failed:  # the UNIQUE name, and nothing recorded
        system.execute("add_product", {"name": "Green lamp", "price": 1, "stock": 0}, key="k-b", origin=ORIGIN)
    assert failed.type.__name__ == "ConnectorError"
    assert system.lookup("k-b") is None
    assert shop.scalar("SELECT count(*) FROM products") == 3


def test_sayso_do_through_yaml_actions(shop: Shop) -> None:
    root = shop.root
    code, added = sayso_json(root, "do", "--user", "alice", "--action", "shop.add_product", "--args",
                             '{"name": "Green lamp", "price": 40}', "--now", NOW)
    assert added["status"] == "executed", added
    assert shop.scalar("SELECT stock FROM products WHERE name = 'Green lamp'") == 0  # the action's default

    code, found = sayso_json(root, "do", "--user", "alice", "--action", "shop.find_products", "--args",
                             '{"text": "lamp"}', "--now", NOW)
    assert found["status"] == "answered"
    assert [r["title"] for r in found["steps"][0]["records"]] == ["Green lamp"]

    # "Blue widget" is grounded to the product's id through the search operation
    code, priced = sayso_json(root, "do", "--user", "alice", "--action", "shop.set_price", "--args",
                              '{"product": "Blue widget", "price": 12, "expected": 1}', "--now", NOW)
    assert priced["status"] == "executed", priced
    assert "price 10 -> 12" in priced["reply"]
    assert shop.scalar("SELECT price FROM products WHERE name = 'Blue widget'") == 12

    code, stale = sayso_json(root, "do", "--user", "alice", "--action", "shop.set_price", "--args",
                             '{"product": "Blue widget", "price": 15, "expected": 1}', "--now", NOW)
    assert stale["status"] == "failed"
    assert "version conflict" in stale["steps"][0]["error"]
    assert shop.scalar("SELECT price FROM products WHERE name = 'Blue widget'") == 12
    assert shop.scalar("SELECT count(*) FROM sayso_effects") == 2
    assert sayso(root, "check").returncode == 0


def test_crash_after_effect_then_recover_leaves_one_row(shop: Shop) -> None:
    root = shop.root
    crashed = sayso(root, "do", "--user", "alice", "--action", "shop.add_product", "--args",
                    '{"name": "Crash lamp", "price": 5}', "--now", NOW, env={"SAYSO_FAULT": "crash-after-effect"})
    assert crashed.returncode == 137, crashed.stderr
    count = "SELECT count(*) FROM products WHERE name = 'Crash lamp'"
    assert shop.scalar(count) == 1  # the effect happened; sayso did not record it

    code, recovered = sayso_json(root, "recover", "--now", NOW)
    assert code == 0
    [plan] = recovered["recovered"]
    assert plan["steps"][0]["status"] == "executed"
    assert shop.scalar(count) == 1  # looked up in sayso_effects, not repeated
    code, again = sayso_json(root, "recover", "--now", NOW)
    assert again["recovered"] == []
    assert shop.scalar(count) == 1
    assert shop.scalar("SELECT count(*) FROM sayso_effects WHERE operation = 'add_product'") == 1


# --- configuration problems: found when the connector is made, with file and line --------------------


def _problem(tmp_path: Path, operations: str = OPERATIONS, actions: str = ACTIONS) -> str:
    made = make_shop(tmp_path / "bad", "sqlite:///systems/shop.db", "sqlite", actions, operations)
    try:
        with pytest.raises(WorkspaceError) as caught:
            made.connector()
    finally:
        while OPEN:
            OPEN.pop().close()
        made.engine.dispose()
    return str(caught.value)


@pytest.mark.parametrize(("operations", "expected"), [
    (OPERATIONS.replace("    search: true\n", "    serch: true\n"),
     r"operations/shop.yaml:3: .*unknown keys \['serch'\]"),
    ("operations:\n  broken:\n    kind: read\n", r"shop.yaml:3: operation broken: missing sql"),
    ("operations:\n  x:\n    kind: read\n    sql: SELECT :_key\n", "reads cannot bind :_key"),
    ("operations:\n  x:\n    kind: write\n    sql: UPDATE t SET a = :_who\n", "unknown sayso parameters"),
    ("operations:\n  x:\n    kind: read\n    sql: DELETE FROM t\n", "a read must be a query"),
    ("operations:\n  x:\n    kind: write\n    sql: UPDATE t SET a = 1; DROP TABLE t\n", "one statement"),
    ("operations:\n  x:\n    kind: write\n    version: version\n    sql: UPDATE t SET a = 1\n", "bind :expected"),
    ("operations:\n  x:\n    kind: write\n    sql: UPDATE t SET a = 1\n    record: {type: T}\n",
     "record is missing id"),
], ids=["unknown-key", "missing-sql", "origin-in-read", "unknown-origin", "read-writes", "two-statements",
        "version-without-expected", "record-without-id"])
def test_operations_file_problems_name_file_and_line(tmp_path: Path, operations: str, expected: str) -> None:
    assert re.search(expected, _problem(tmp_path, operations=operations, actions="actions: []\n"))


def test_actions_are_checked_against_their_operations(tmp_path: Path) -> None:
    undeclared = ACTIONS.replace('      expected: {type: integer, required: true, description: "The version the '
                                 'change is based on"}\n', "")
    message = _problem(tmp_path / "a", actions=undeclared)
    assert re.search(r"operations/shop.yaml:\d+: operation set_price binds :expected, which action shop.set_price "
                     r"\(.*actions/shop.yaml:\d+\) does not declare", message), message
    unknown = ACTIONS.replace("operation: add_product", "operation: add_products")
    assert re.search(r"actions/shop.yaml:\d+: action shop.add_product: system 'shop' has no operation "
                     "'add_products'", _problem(tmp_path / "b", actions=unknown))
    wrong_kind = ACTIONS.replace("operation: find_products", "operation: add_product")
    assert "action shop.find_products is a read but operation add_product is a write" in _problem(
        tmp_path / "c", actions=wrong_kind)


def test_settings_problems_and_the_password_stays_secret(tmp_path: Path) -> None:
    made = make_shop(tmp_path / "ws", "sqlite:///systems/shop.db", "sqlite")
    toml = (made.root / "sayso.toml").read_text()
    try:
        (made.root / "sayso.toml").write_text(toml.replace('url = "sqlite:///systems/shop.db"',
                                                           'url = "sqlite:///systems/missing.db"'))
        with pytest.raises(ConfigurationError, match="no SQLite database at"):
            made.connector()
        (made.root / "sayso.toml").write_text(toml + 'pasword_secret = "x"\n')
        with pytest.raises(ConfigurationError, match=r"unknown settings \['pasword_secret'\]"):
            made.connector()
        secret = "s3cret-hunter2"
        (made.root / "secrets.toml").write_text(f'shop_password = "{secret}"\n')
        closed = toml.replace('url = "sqlite:///systems/shop.db"', 'url = "postgresql://sayso@127.0.0.1:9/shop"')
        closed = closed.replace("[systems.shop]", '[secrets]\nfile = "secrets.toml"\n\n[systems.shop]')
        (made.root / "sayso.toml").write_text(closed + 'password_secret = "shop_password"\n')
        system = made.connector()
        assert secret not in repr(system)
        with pytest.raises(Exception) as failed:
            system.read("find_products", {})
        assert failed.type.__name__ == "ConnectorError"
        assert secret not in str(failed.value)
    finally:
        while OPEN:
            OPEN.pop().close()
        made.engine.dispose()


@pytest.mark.skipif(not PG_URL, reason="PostgreSQL not configured: set SAYSO_TEST_DATABASE_URL (.ci/run does)")
def test_postgresql_url_is_used_with_psycopg(tmp_path: Path) -> None:
    pg = _create_pg_database()
    made = make_shop(tmp_path / "ws", pg, "postgresql")
    try:
        system = made.connector()
        assert system.search("Product", "Red gadget")[0].id == "2"
        assert "postgresql+psycopg" in repr(system)
    finally:
        while OPEN:
            OPEN.pop().close()
        made.engine.dispose()
        _drop_pg_database(pg)
