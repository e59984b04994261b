"""The ``mcp`` connector: an MCP server's tools, called as sayso operations.

An operation is a tool's own name. Reads call read-only tools and return their output as records;
writes call the tool once with the idempotency key and the why in the request's ``_meta``. MCP has no
way to look a call up afterwards, so a write is ``at_least_once`` (after a crash: ``outcome_unknown``,
never a silent second call), unless the workspace trusts a tool the server marks idempotent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ...catalog import Tier
from ...errors import ConfigurationError, ConnectorError, OutcomeUnknown
from .._common import require_extra
from ..base import Connector, Effect, Guarantee, Record
from ..provenance import why_fields
from ._session import Session, client_for_http, client_for_stdio, explain

if TYPE_CHECKING:
    from mcp.types import CallToolResult, Tool, ToolAnnotations

    from .. import SystemContext

__all__ = ["KEY_META", "WHY_META", "McpConnector", "McpSettings", "ToolRisk", "create", "derive_risk", "snake_case"]

WHY_META = "io.sayso/why"
KEY_META = "io.sayso/idempotency_key"
_SECRET_REF = re.compile(r"\{secret:([A-Za-z0-9_.\-]+)\}")
_MAX_TEXT = 4000  # characters of a tool's text output kept in an effect or a record


class McpSettings(BaseModel):
    """``[systems.<name>]`` for ``kind = "mcp"``; values of ``env`` and ``headers`` may hold ``{secret:NAME}``."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["mcp"] = "mcp"
    command: str | None = None  # stdio: the program that runs the server
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None  # relative to the workspace; default: the workspace folder
    url: str | None = None  # streamable HTTP: the server's endpoint
    headers: dict[str, str] = Field(default_factory=dict)
    prefix: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]*$")
    tools: list[str] | None = None  # the tools sayso may use (default: all the server lists)
    risk: dict[str, Tier] = Field(default_factory=dict)  # tool -> tier; annotations can only raise it
    default_write_risk: Tier = Tier.HIGH
    trust_read_only: bool = True  # False: every tool is a write, whatever the server says
    trust_idempotent: list[str] = Field(default_factory=list)  # tools whose idempotentHint the workspace believes
    timeout: float = Field(default=30.0, gt=0, le=600)  # seconds for each call
    start_timeout: float = Field(default=60.0, gt=0, le=600)  # seconds to start the server and shake hands


def snake_case(name: str) -> str:
    """``getCurrentTime``, ``get-current-time`` and ``Get Current Time`` all become ``get_current_time``."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name)
    return re.sub(r"[^a-z0-9]+", "_", spaced.lower()).strip("_")


@dataclass(frozen=True)
class ToolRisk:
    """How one tool enters the catalog: a read or a write, its tier, and why."""

    kind: Literal["read", "write"]
    tier: Tier
    reason: str


def derive_risk(
    annotations: ToolAnnotations | None, *, override: Tier | None, default_write: Tier, trust_read_only: bool = True
) -> ToolRisk:
    """The kind and tier of a tool. Annotations are hints from a server sayso does not control: they
    can raise the workspace's tier (its ``risk`` override, else ``default_write_risk``), never lower it.

    - ``readOnlyHint: true`` -> a read at tier none, unless the workspace gives the tool a tier above
      none (then it is a write at that tier) or sets ``trust_read_only = false``;
    - otherwise a write; ``destructiveHint`` true or absent (MCP's default) -> at least high;
      ``destructiveHint: false`` -> the workspace's tier.
    """
    read_only = bool(annotations is not None and annotations.read_only_hint) and trust_read_only
    if read_only:
        hinted, said = Tier.NONE, "read-only"
    elif annotations is None or annotations.destructive_hint is not False:
        said = "destructive" if annotations is not None and annotations.destructive_hint else "not annotated as safe"
        hinted = Tier.HIGH
    else:
        hinted, said = Tier.NONE, "additive (not destructive)"
    if override is not None:
        floor, source = override, f"workspace risk {override.value}"
    elif read_only:
        floor, source = Tier.NONE, "no workspace risk"
    else:
        floor, source = default_write, f"default_write_risk {default_write.value}"
    tier = hinted if hinted > floor else floor
    kind: Literal["read", "write"] = "read" if read_only and tier is Tier.NONE else "write"
    return ToolRisk(kind, tier, f"server says {said}; {source} -> {kind}, {tier.value}")


class McpConnector(Connector):
    """One MCP server, reached over stdio or streamable HTTP through one lazily started session."""

    guarantee = Guarantee.AT_LEAST_ONCE  # MCP cannot look a call up after the fact

    def __init__(self, name: str, settings: McpSettings, session: Session) -> None:
        self.name = name
        self.settings = settings
        self._session = session
        self._listing: dict[str, Tool] | None = None

    @property
    def prefix(self) -> str:
        return self.settings.prefix or snake_case(self.name)

    def __repr__(self) -> str:  # never the headers or the environment: they may hold secrets
        return f"McpConnector({self.name!r})"

    # --- tools -------------------------------------------------------------------

    def tools(self, *, refresh: bool = False) -> list[Tool]:
        """Every tool the server lists (all pages), in its order."""
        if self._listing is None or refresh:
            async def listing(client: Any) -> list[Tool]:
                found: list[Tool] = []
                cursor: str | None = None
                for _ in range(100):  # a server that pages forever cannot hang sayso
                    page = await client.list_tools(cursor=cursor)
                    found.extend(page.tools)
                    cursor = page.next_cursor
                    if cursor is None:
                        break
                return found

            self._listing = {t.name: t for t in self._call(listing, "tools/list")}
        return list(self._listing.values())

    def allowed(self, tool: str) -> bool:
        return self.settings.tools is None or tool in self.settings.tools

    def _tool(self, operation: str) -> Tool:
        if not self.allowed(operation):
            raise ConfigurationError(f"{self.name}: tool {operation!r} is not in [systems.{self.name}] tools")
        listing = {t.name: t for t in self.tools()}
        if operation not in listing:
            raise ConnectorError(f"{self.name}: the MCP server has no tool {operation!r} (any more); "
                                 f"run `sayso import mcp --system {self.name}` again")
        return listing[operation]

    def guarantee_for(self, operation: str) -> Guarantee:
        """``idempotent`` only for a tool the workspace trusts (``trust_idempotent``) and the server marks
        ``idempotentHint: true``; every other tool is ``at_least_once``. An untrusted tool never starts the
        server for this question."""
        if operation not in self.settings.trust_idempotent:
            return Guarantee.AT_LEAST_ONCE
        try:
            annotations = self._tool(operation).annotations
        except (ConfigurationError, ConnectorError):
            return Guarantee.AT_LEAST_ONCE
        hinted = annotations is not None and annotations.idempotent_hint is True
        return Guarantee.IDEMPOTENT if hinted else Guarantee.AT_LEAST_ONCE

    # --- reads and writes --------------------------------------------------------

    def read(self, operation: str, args: dict[str, Any]) -> list[Record]:
        """Call a tool the server still lists as read-only; its output comes back as records (data only)."""
        tool = self._tool(operation)
        claims = tool.annotations is not None and tool.annotations.read_only_hint is True
        if not (claims and self.settings.trust_read_only) or self.settings.risk.get(operation, Tier.NONE) > Tier.NONE:
            raise ConnectorError(f"{self.name}: tool {operation!r} is not a read-only tool for this workspace "
                                 f"(the server's annotations or [systems.{self.name}] risk changed); "
                                 f"run `sayso import mcp --system {self.name}` again")
        result = self._call_tool(operation, args, meta={}, write=False)
        return _records(self.name, operation, _output(result))

    def execute(
        self, operation: str, args: dict[str, Any], *, key: str, origin: dict[str, Any] | None = None
    ) -> Effect:
        """Call the tool once; the key and the why travel in ``_meta`` for a server that keeps them."""
        if not self.allowed(operation):
            raise ConfigurationError(f"{self.name}: tool {operation!r} is not in [systems.{self.name}] tools")
        meta: dict[str, Any] = {KEY_META: key}
        why = why_fields(origin)
        if why:
            meta[WHY_META] = why
        result = self._call_tool(operation, args, meta=meta, write=True)
        output = _output(result)
        text = _one_line(output if isinstance(output, str) else json.dumps(output, default=str))
        return Effect(key=key, operation=operation, summary=f"{operation}: {_short(text)}" if text else operation,
                      result={"tool": operation, "output": output, "trust": "untrusted"})

    def close(self) -> None:
        self._session.close()
        self._listing = None

    # --- calls -------------------------------------------------------------------

    def _call_tool(self, tool: str, args: dict[str, Any], *, meta: dict[str, Any], write: bool) -> CallToolResult:
        async def call(client: Any) -> CallToolResult:
            result: CallToolResult = await client.call_tool(tool, args, meta=cast(Any, meta) or None)
            return result

        result: CallToolResult = self._call(call, f"tool {tool!r}", write=write)
        if result.is_error:
            reason = _one_line(_text(result)) or "no reason given"
            raise ConnectorError(f"{self.name}: MCP tool {tool!r} failed: {_short(reason, 500)}")
        return result

    def _call(self, work: Any, what: str, *, write: bool = False) -> Any:
        from mcp import MCPError
        from mcp.types import CONNECTION_CLOSED, REQUEST_TIMEOUT

        # A write cut off after it was sent may have happened: say so, so nobody simply tries again.
        unsure = " (it may or may not have taken effect: check the system before trying again)" if write else ""
        try:
            return self._session.call(work)
        except MCPError as exc:
            note = unsure if exc.code in (CONNECTION_CLOSED, REQUEST_TIMEOUT) else ""
            failure = OutcomeUnknown if note else ConnectorError
            raise failure(f"{self.name}: MCP {what} failed: {_short(_one_line(exc.message), 500)}{note}") \
                from None
        except TimeoutError:
            raise ConnectorError(f"{self.name}: MCP {what} got no answer within {self.settings.timeout:g}s"
                                 f"{unsure}") from None
        except (ConfigurationError, ConnectorError):
            raise
        except (OSError, RuntimeError, ValueError) as exc:  # a transport failure, a validation of the answer
            raise ConnectorError(f"{self.name}: MCP {what} failed: {_short(explain(exc), 500)}{unsure}") from None


# --- outputs as data ---------------------------------------------------------------


def _text(result: CallToolResult) -> str:
    return "\n".join(str(getattr(block, "text", "")) for block in result.content
                     if getattr(block, "type", "") == "text")


def _output(result: CallToolResult) -> Any:
    """The tool's output as JSON-ready data: its structured content, else its text (parsed if it is JSON)."""
    data = result.structured_content
    if data is None:
        text = _text(result)
        if text.lstrip().startswith(("{", "[")):
            try:
                data = json.loads(text)
            except ValueError:
                data = None
        if data is None:
            return text[:_MAX_TEXT]
    if isinstance(data, dict) and set(data) == {"result"} and not isinstance(data["result"], dict | list):
        return data["result"]  # a scalar, wrapped by the server's SDK
    return data


def _flat(value: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(item, Mapping):
            flat.update(_flat(item, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = item
    return flat


def _records(system: str, tool: str, output: Any) -> list[Record]:
    """Records from a tool's output: one per item of a list (or of an object's only list), else one.
    Each is marked ``trust=untrusted``: text from another system, shown, never followed."""
    items: list[Any]
    if isinstance(output, list):
        items = output
    elif isinstance(output, dict) and len(output) == 1 and isinstance(next(iter(output.values())), list):
        items = next(iter(output.values()))
    else:
        items = [output]
    records = []
    for number, item in enumerate(items, start=1):
        attrs = _flat(item) if isinstance(item, Mapping) else {"text": item}
        ident = attrs.get("id")
        title = next((attrs[k] for k in ("title", "name", "text") if isinstance(attrs.get(k), str)), tool)
        attrs["trust"] = "untrusted"
        records.append(Record(type="ToolResult", id=str(ident) if ident is not None else f"{tool}:{number}",
                              title=_short(_one_line(str(title)), 120), attrs=attrs, system=system))
    return records


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- the factory -------------------------------------------------------------------


def _resolve(value: str, context: SystemContext) -> str:
    return _SECRET_REF.sub(lambda m: context.secret(m.group(1)), value)


def create(name: str, settings: Mapping[str, Any], context: SystemContext) -> McpConnector:
    """Build the connector from ``[systems.<name>]``; nothing starts until the first call."""
    try:
        parsed = McpSettings.model_validate(dict(settings))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigurationError(f"[systems.{name}] {where}: {first['msg']}") from None
    if (parsed.command is None) == (parsed.url is None):
        raise ConfigurationError(f"[systems.{name}]: set either command (and args) for a server over stdio, "
                                 "or url for one over streamable HTTP")
    if parsed.prefix is None and not snake_case(name):
        raise ConfigurationError(f"[systems.{name}]: set prefix, the start of the action names")
    require_extra(name, "mcp", "the MCP SDK", "mcp")
    for tool in parsed.trust_idempotent:
        if parsed.tools is not None and tool not in parsed.tools:
            raise ConfigurationError(f"[systems.{name}] trust_idempotent: {tool!r} is not in tools")
    if parsed.command is not None and parsed.headers:
        raise ConfigurationError(f"[systems.{name}]: headers are for a server over streamable HTTP (url)")
    timeout = parsed.timeout
    if parsed.command is not None:
        command, args = parsed.command, list(parsed.args)
        env = {k: _resolve(v, context) for k, v in parsed.env.items()}
        cwd = str((context.root / parsed.cwd) if parsed.cwd else context.root)
        session = Session(name, lambda: client_for_stdio(command, args, env, cwd, timeout), timeout=timeout,
                          start_timeout=parsed.start_timeout, what=f"command {command!r}")
    else:
        if parsed.args or parsed.env:
            raise ConfigurationError(f"[systems.{name}]: args and env are for a server over stdio (command)")
        url = str(parsed.url)
        if not url.startswith(("http://", "https://")):
            raise ConfigurationError(f"[systems.{name}] url: expected http:// or https://, got {url!r}")
        headers = {k: _resolve(v, context) for k, v in parsed.headers.items()}
        session = Session(name, lambda: client_for_http(url, headers, timeout), timeout=timeout,
                          start_timeout=parsed.start_timeout, what=f"URL {url.split('?')[0]}")
    return McpConnector(name, parsed, session)
