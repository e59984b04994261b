"""MCP servers as sayso systems: kind ``mcp``, over stdio or streamable HTTP (the official ``mcp`` SDK).

A server's tools reach the catalog through ``sayso import mcp --system NAME``, which writes
``actions/<prefix>.yaml`` from the server's tool list (parameters from each input schema, risk from
the annotations, never below what the workspace says). The connector then calls the tools:
``docs/connectors/mcp.md``.
"""

from __future__ import annotations

from .. import ConnectorRegistry
from ._connector import KEY_META, WHY_META, McpConnector, McpSettings, ToolRisk, create, derive_risk, snake_case
from ._import import Imported, import_actions

__all__ = [
    "KEY_META",
    "WHY_META",
    "Imported",
    "McpConnector",
    "McpSettings",
    "ToolRisk",
    "derive_risk",
    "import_actions",
    "register",
    "snake_case",
]


def register(registry: ConnectorRegistry) -> None:
    """Add the kind ``mcp``."""
    registry.add("mcp", create)
