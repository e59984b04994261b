"""The Lumen Labs demo systems: a CRM, billing, tickets, chat, email and a calendar.

Each is real storage, its own SQLite file under the workspace (``systems/crm.db``
and so on), reached through the same connector interface as Salesforce or Jira,
and registered through the same ``register`` hook as any connector plugin.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

from ...directory import Directory
from .. import ConnectorFactory, ConnectorRegistry, SystemContext
from ._billing import Billing
from ._crm import Crm
from ._messaging import Calendar, Chat, Email
from ._store import DemoSystem, Tx, open_database, transaction
from ._tickets import Tickets

__all__ = ["register", "seed"]

SYSTEMS: dict[str, type[DemoSystem]] = {
    "crm": Crm,
    "billing": Billing,
    "tickets": Tickets,
    "chat": Chat,
    "email": Email,
    "calendar": Calendar,
}


def _factory(system: type[DemoSystem]) -> ConnectorFactory:
    def create(name: str, settings: Mapping[str, Any], context: SystemContext) -> DemoSystem:
        path = context.root / str(settings.get("path") or f"systems/{name}.db")
        return system(name, path, context.directory)

    return create


def register(registry: ConnectorRegistry) -> None:
    """Add the kinds ``demo.crm``, ``demo.billing``, ... (``settings["path"]``: the file, relative to
    the workspace; ``systems/<name>.db`` by default)."""
    for kind, system in SYSTEMS.items():
        registry.add(f"demo.{kind}", _factory(system))


def seed(root: Path, reference: date) -> None:
    """Write the Lumen Labs data into fresh ``root/systems/<system>.db`` files, replacing any there.

    Dates count from the ``reference`` day, so the data never goes stale; the same
    reference always gives the same rows.
    """
    for name, system in SYSTEMS.items():
        path = root / "systems" / f"{name}.db"
        for stale in (path, path.with_name(f"{path.name}-wal"), path.with_name(f"{path.name}-shm")):
            stale.unlink(missing_ok=True)
        conn = open_database(path, system.schema())
        try:
            with transaction(conn):
                tables = {table.type: table for table in system.tables}
                system.populate(Tx(conn, name, tables, Directory([])), reference)
        finally:
            conn.close()
