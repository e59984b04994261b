"""``sayso import mcp``: an MCP server's tools, written once as a YAML actions file.

The file is a snapshot to review and commit, not a live mirror: sayso does not start every server at
every start to learn its actions, and a server cannot change what the workspace offers (or how risky
it says a tool is) without someone importing again and reading the diff.
"""

from __future__ import annotations

import keyword
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel

from ...catalog import Catalog, load_yaml_actions
from ...errors import ConfigurationError, WorkspaceError
from ._connector import McpConnector, derive_risk, snake_case

if TYPE_CHECKING:
    from mcp.types import Tool

    from ...workspace import Workspace

__all__ = ["Imported", "import_actions", "tool_action"]

_SIMPLE = {"string": "string", "integer": "integer", "number": "number", "boolean": "boolean"}
_FORMATS = {"date": "date", "date-time": "datetime"}
_MAX_DESCRIPTION = 300
_HEADER = "# Actions imported from the MCP system"  # how a file this import wrote begins


@dataclass
class Imported:
    """What an import wrote: the file, the actions, and the tools left out with the reason."""

    path: Path
    actions: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


class _Unsupported(Exception):
    """A tool input schema that YAML actions cannot declare."""


def import_actions(ws: Workspace, system: str) -> Imported:
    """List the tools of MCP system ``system`` and write ``<first catalog path>/<prefix>.yaml``."""
    if system not in ws.settings.systems:
        raise ConfigurationError(f"no system {system!r} in sayso.toml [systems]")
    kind = ws.settings.systems[system].get("kind")
    connector = ws.connector(system) if kind == "mcp" else None  # another kind's system is never opened here
    if not isinstance(connector, McpConnector):
        raise ConfigurationError(f"system {system!r} is of kind {kind!r}, not an MCP server (kind = \"mcp\")")
    if not ws.settings.catalog.paths:
        raise ConfigurationError("[catalog] paths is empty: there is no folder to write actions to")
    path = ws.root / ws.settings.catalog.paths[0] / f"{connector.prefix}.yaml"
    if path.exists() and not path.read_bytes().startswith(_HEADER.encode()):
        raise WorkspaceError("not written by `sayso import mcp`, which replaces only its own files: move it, or set "
                             f"another prefix for [systems.{system}]", file=str(path))
    done = Imported(path)
    tools = connector.tools(refresh=True)
    offered = {t.name for t in tools}
    for name in connector.settings.tools or []:
        if name not in offered:
            done.skipped.append((name, "listed in tools, but the server does not offer it"))
    blocks = []
    for tool in tools:
        if not connector.allowed(tool.name):
            continue
        try:
            entry, note = tool_action(connector, tool)
        except _Unsupported as exc:
            done.skipped.append((tool.name, str(exc)))
            continue
        done.actions.append(entry)
        blocks.append(f"  # {note}\n" + _indent(yaml.safe_dump([entry], sort_keys=False, allow_unicode=True)))
    server = connector.settings.command or connector.settings.url
    header = (f"{_HEADER} {system!r} ({server}) by `sayso import mcp --system "
              f"{system}`.\n# A snapshot: review it (descriptions come from the server), commit it, and import "
              "again to refresh.\n# Risk: docs/connectors/mcp.md. Tools left out: "
              + (", ".join(f"{n} ({why})" for n, why in done.skipped) or "none") + ".\n")
    text = header + "actions:" + ("\n" + "\n".join(blocks) if blocks else " []\n")
    _check(text, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return done


def tool_action(connector: McpConnector, tool: Tool) -> tuple[dict[str, Any], str]:
    """One tool as a YAML action entry, and a comment saying what its annotations were and what they led to."""
    settings = connector.settings
    risk = derive_risk(tool.annotations, override=settings.risk.get(tool.name),
                       default_write=settings.default_write_risk, trust_read_only=settings.trust_read_only)
    name = snake_case(tool.name)
    if not name:
        raise _Unsupported("its name has no letters or digits")
    entry: dict[str, Any] = {"name": f"{connector.prefix}.{name}", "description": _description(tool),
                             "kind": risk.kind, "connector": connector.name, "operation": tool.name,
                             "risk": risk.tier.value}
    params = _params(tool.input_schema)
    if params:
        entry["params"] = params
    hints = tool.annotations.model_dump(exclude_none=True, by_alias=True, exclude={"title"}) if tool.annotations else {}
    shown = ", ".join(f"{k}={str(v).lower()}" for k, v in hints.items()) or "no annotations"
    return entry, f"tool {tool.name}: {shown}; {risk.reason}"


def _description(tool: Tool) -> str:
    title = tool.title or (tool.annotations.title if tool.annotations else None)
    text = " ".join((tool.description or title or tool.name).split())
    return text if len(text) <= _MAX_DESCRIPTION else text[: _MAX_DESCRIPTION - 1] + "…"


def _params(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    properties = schema.get("properties") or {}
    if not isinstance(properties, dict):
        raise _Unsupported("its input schema has no object properties")
    required = set(schema.get("required") or [])
    params: dict[str, dict[str, Any]] = {}
    for pname, spec in properties.items():
        if not pname.isidentifier() or keyword.iskeyword(pname) or pname.startswith("_") \
                or hasattr(BaseModel, pname):
            raise _Unsupported(f"parameter {pname!r} cannot be a sayso parameter name")
        params[pname] = _param(pname, spec if isinstance(spec, dict) else {}, pname in required)
    return params


def _param(pname: str, spec: dict[str, Any], required: bool) -> dict[str, Any]:
    """A JSON Schema property as a YAML parameter spec (``docs/catalog.md``: "Parameter keys")."""
    branches = spec.get("anyOf") or spec.get("oneOf")
    if isinstance(branches, list):  # Optional[X] as pydantic writes it: X or null
        kept = [b for b in branches if not (isinstance(b, dict) and b.get("type") == "null")]
        if len(kept) != 1 or not isinstance(kept[0], dict):
            raise _Unsupported(f"parameter {pname!r} takes one of several types")
        spec = {**{k: v for k, v in spec.items() if k not in ("anyOf", "oneOf")}, **kept[0]}
    kind = spec.get("type")
    if isinstance(kind, list):  # ["string", "null"]
        kinds = [k for k in kind if k != "null"]
        kind = kinds[0] if len(kinds) == 1 else None
    if kind is None and "enum" in spec:
        kind = "string"
    out: dict[str, Any] = {}
    if kind == "string":
        out["type"] = _FORMATS.get(str(spec.get("format")), "string")
    elif kind in _SIMPLE:
        out["type"] = _SIMPLE[kind]
    elif kind == "array" and isinstance(spec.get("items"), dict) and spec["items"].get("type") == "string":
        out["type"] = "array"
    else:
        what = "a reference" if "$ref" in spec else f"of type {kind or 'unknown'}"
        raise _Unsupported(f"parameter {pname!r} is {what}, which YAML actions cannot declare")
    if required:
        out["required"] = True
    elif spec.get("default") is not None:
        out["default"] = spec["default"]
    if isinstance(spec.get("enum"), list):
        out["enum"] = list(spec["enum"])
    if spec.get("description"):
        out["description"] = " ".join(str(spec["description"]).split())
    return out


def _indent(text: str) -> str:
    return "".join(f"  {line}" if line.strip() else line for line in text.splitlines(keepends=True))


def _check(text: str, path: Path) -> None:
    """The file must load as the catalog will load it, before it replaces the one there."""
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder) / path.name
        scratch.write_text(text)
        try:
            load_yaml_actions(scratch, Catalog())
        except WorkspaceError as exc:
            raise ConfigurationError(f"the imported actions do not load: {exc.message}") from None
