"""``sayso import openapi``: an OpenAPI 3 document becomes actions on an ``http`` system.

The document (OpenAPI 3.0 or 3.1, JSON or YAML, a file or an http(s) URL) gives one action per
operation, named ``<prefix>.<operationId in snake_case>`` (or method and path when there is no
operationId). GET operations are reads (risk none); the other methods are writes (risk medium),
DELETE critical. Path, query and header parameters and the top-level properties of a JSON request
body become the action's parameters, with their types, required flags, enums, defaults and
descriptions; local ``$ref`` are resolved. Three files change in the workspace:

    actions/<prefix>.yaml       the actions, for people to review and adjust (risk, examples...)
    operations/<prefix>.yaml    how each operation is sent: method, path, where each parameter goes
    sayso.toml                  [systems.<prefix>] appended (kind http, base_url, allowed_hosts), the
                                document's security schemes as commented settings

Importing the same prefix again is refused unless ``force`` is given.
"""

from __future__ import annotations

import json
import keyword
import re
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import yaml
from pydantic import BaseModel

from .catalog import Catalog, load_yaml_actions
from .config import load_settings
from .errors import ConfigurationError, WorkspaceError

__all__ = ["Imported", "convert", "import_openapi", "load_document"]

_METHODS = ("get", "put", "post", "delete", "patch")
_SKIPPED_HEADERS = {"accept", "content-type", "authorization", "idempotency-key"}
_TITLES = ("name", "title", "display_name", "displayName", "label", "summary", "subject", "email")
_LISTS = ("items", "data", "results", "records", "entries", "values", "content")
_RESERVED = set(dir(BaseModel))
_PREFIX = re.compile(r"[a-z][a-z0-9_]*")


@dataclass
class Converted:
    """What one document gives: the two YAML texts, the sayso.toml table and what was left out."""

    actions_yaml: str
    operations_yaml: str
    toml: str
    actions: list[str]
    skipped: list[str] = field(default_factory=list)
    base_url: str = ""
    hosts: list[str] = field(default_factory=list)


@dataclass
class Imported:
    """What an import wrote."""

    prefix: str
    actions: list[str]
    written: list[Path]
    toml_added: bool
    skipped: list[str]
    base_url: str
    hosts: list[str]


def _snake(text: str) -> str:
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", text)
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", text)
    return re.sub(r"[^0-9a-zA-Z]+", "_", text).strip("_").lower()


def _camel(text: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^0-9a-zA-Z]+", text) if part) or "Item"


def _one_line(text: Any, size: int = 200) -> str:
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= size else flat[: size - 1] + "…"


def _unique(name: str, taken: set[str], suffix: str = "") -> str:
    if name in taken and suffix:
        name = f"{name}_{suffix}"
    base, n = name, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name


def _param_name(wire: str) -> str:
    """A parameter's name as an action parameter: snake_case, never a sayso (``_``) or pydantic name."""
    name = _snake(wire) or "param"
    if name[0].isdigit():
        name = f"p_{name}"
    if name in _RESERVED or keyword.iskeyword(name):
        name += "_"
    return name


# --- reading the document ------------------------------------------------------------------------


def load_document(source: str) -> tuple[dict[str, Any], str]:
    """The parsed document, and the URL relative server URLs are read against ('' for a file)."""
    if source.startswith(("http://", "https://")):
        try:
            import httpx
        except ImportError:
            raise ConfigurationError('reading a document from a URL needs httpx: pip install "sayso[http]"') from None
        try:
            response = httpx.get(source, timeout=30, follow_redirects=True)
        except httpx.HTTPError as exc:
            raise WorkspaceError(f"cannot fetch the document: {type(exc).__name__}", file=source) from None
        if not response.is_success:
            raise WorkspaceError(f"fetching the document answered {response.status_code}", file=source)
        body, base = response.text, str(response.url)
    else:
        try:
            body, base = Path(source).read_text(), ""
        except (FileNotFoundError, IsADirectoryError):
            raise WorkspaceError("no such file", file=source) from None
    try:
        document = json.loads(body) if body.lstrip().startswith("{") else yaml.safe_load(body)
    except json.JSONDecodeError as exc:
        raise WorkspaceError(f"not valid JSON: {exc.msg}", file=source, line=exc.lineno) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise WorkspaceError(f"not valid YAML: {exc}", file=source, line=mark.line + 1 if mark else None) from None
    if not isinstance(document, dict):
        raise WorkspaceError("not an OpenAPI document (expected a mapping at the top)", file=source)
    version = str(document.get("openapi", ""))
    if "swagger" in document:
        raise WorkspaceError("this is Swagger 2.0; only OpenAPI 3.0 and 3.1 are read (convert it first)", file=source)
    if not version.startswith("3."):
        raise WorkspaceError("not an OpenAPI 3 document: it has no `openapi: 3.x` field", file=source)
    if not isinstance(document.get("paths"), dict) or not document["paths"]:
        raise WorkspaceError("the document has no paths, so no operations to import", file=source)
    return document, base


class _Schemas:
    """Resolves local ``$ref`` and flattens a schema to what an action parameter can hold."""

    def __init__(self, document: dict[str, Any], source: str) -> None:
        self.document = document
        self.source = source

    def resolve(self, node: Any, seen: frozenset[str] = frozenset()) -> tuple[dict[str, Any], str | None]:
        """The node with its ``$ref`` followed (siblings of a 3.1 ``$ref`` kept), and the last ref's name."""
        name = None
        while isinstance(node, dict) and "$ref" in node:
            ref = str(node["$ref"])
            if not ref.startswith("#/"):
                raise WorkspaceError(f"$ref {ref!r} points outside the document; only local references "
                                     "(#/components/...) are resolved", file=self.source)
            if ref in seen:
                return {}, ref.rsplit("/", 1)[-1]  # a recursive schema: deeper levels are free-form
            seen = seen | {ref}
            target: Any = self.document
            for part in ref[2:].split("/"):
                part = part.replace("~1", "/").replace("~0", "~")
                if not isinstance(target, dict) or part not in target:
                    raise WorkspaceError(f"$ref {ref!r} does not resolve", file=self.source)
                target = target[part]
            siblings = {k: v for k, v in node.items() if k != "$ref"}
            node = {**target, **siblings} if isinstance(target, dict) else target
            name = ref.rsplit("/", 1)[-1]
        return (node if isinstance(node, dict) else {}), name

    def simple(self, node: Any, seen: frozenset[str] = frozenset()) -> tuple[dict[str, Any], str | None]:
        """One schema: refs resolved, ``allOf`` merged, a nullable ``anyOf``/``oneOf``/type list reduced
        to its one non-null choice."""
        schema, name = self.resolve(node, seen)
        if "allOf" in schema:
            merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
            properties: dict[str, Any] = dict(merged.get("properties", {}))
            required = list(merged.get("required", []))
            for part in schema["allOf"]:
                piece, piece_name = self.simple(part, seen)
                name = name or piece_name
                properties.update(piece.get("properties", {}))
                required.extend(piece.get("required", []))
                for key, value in piece.items():
                    merged.setdefault(key, value)
            merged.update(properties=properties, required=required)
            if properties:
                merged.setdefault("type", "object")
            schema = merged
        for choice in ("anyOf", "oneOf"):
            if choice in schema:
                options = [o for o in schema[choice] if self.resolve(o, seen)[0].get("type") != "null"]
                if len(options) == 1:
                    inner, inner_name = self.simple(options[0], seen)
                    rest = {k: v for k, v in schema.items() if k != choice}
                    return {**inner, **rest}, name or inner_name
                return {k: v for k, v in schema.items() if k != choice}, name
        kind = schema.get("type")
        if isinstance(kind, list):
            kinds = [k for k in kind if k != "null"]
            schema = {**schema, "type": kinds[0] if len(kinds) == 1 else None}
        if "const" in schema and "enum" not in schema:
            schema = {**schema, "enum": [schema["const"]]}
        return schema, name


def _field(schemas: _Schemas, schema: dict[str, Any], *, required: bool, description: Any
           ) -> tuple[dict[str, Any], dict[str, Any]]:
    """An action parameter's YAML spec, and what its operation parameter needs (``json``, ``items``)."""
    kind = schema.get("type") or ("object" if "properties" in schema else None)
    extra: dict[str, Any] = {}
    if kind == "string":
        kind = {"date": "date", "date-time": "datetime"}.get(str(schema.get("format")), "string")
    elif kind == "array":
        items, _ = schemas.simple(schema.get("items", {}))
        item_kind = items.get("type")
        if item_kind in ("integer", "number", "boolean"):
            extra["items"] = item_kind
        elif item_kind not in ("string", None) or "properties" in items:
            kind, extra["json"] = "string", True
    elif kind == "object":
        kind, extra["json"] = "string", True
    elif kind not in ("integer", "number", "boolean"):
        kind = "string"
    spec: dict[str, Any] = {"type": kind}
    if required:
        spec["required"] = True
    enum = schema.get("enum")
    scalar = (str, int, float, bool)
    if (isinstance(enum, list) and kind in ("string", "integer", "number", "boolean") and not extra
            and all(isinstance(v, scalar) for v in enum if v is not None)):
        spec["enum"] = [v for v in enum if v is not None]
    default = schema.get("default")
    if not required and isinstance(default, scalar) and not extra and kind != "array":
        spec["default"] = default
    text = _one_line(description or schema.get("description") or schema.get("title"))
    if extra.get("json"):
        text = f"{text} (JSON)".strip()
    if text:
        spec["description"] = text
    return spec, extra


def _record(schemas: _Schemas, operation: dict[str, Any], fallback: str) -> dict[str, Any] | None:
    """How the operation's JSON answer reads as records: type, id and title (and the list's key)."""
    responses = {str(status): answer for status, answer in (operation.get("responses") or {}).items()}
    for status in sorted(responses):
        if not status.startswith("2"):
            continue
        response, _ = schemas.resolve(responses[status])
        content = response.get("content") or {}
        media = next((m for m in content if "json" in m), None)
        if media is None:
            continue
        schema, name = schemas.simple((content[media] or {}).get("schema", {}))
        items_key = None
        if schema.get("type") == "array":
            schema, name = schemas.simple(schema.get("items", {}))
        elif "properties" in schema:
            lists = {k: v for k, v in schema["properties"].items() if schemas.simple(v)[0].get("type") == "array"}
            items_key = next((k for k in _LISTS if k in lists), next(iter(lists), None) if len(lists) == 1 else None)
            if items_key is not None:
                schema, name = schemas.simple(lists[items_key].get("items", {}))
        properties = schema.get("properties") or {}
        record: dict[str, Any] = {"type": _camel(name or fallback)}
        ident = "id" if "id" in properties else next((p for p in properties if p.lower().endswith("id")), None)
        title = next((p for p in _TITLES if p in properties),
                     next((p for p in properties if _snake(p).endswith(("_name", "_title"))), None))
        if ident:
            record["id"] = ident
        if title:
            record["title"] = title
        if items_key:
            record["items"] = items_key
        return record
    return None


def _body(schemas: _Schemas, operation: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """The JSON request body's object schema (None when there is no body), or why it cannot be sent."""
    if "requestBody" not in operation:
        return None, None
    body, _ = schemas.resolve(operation["requestBody"])
    content = body.get("content") or {}
    media = next((m for m in content if "json" in m), None)
    if media is None:
        if not content:
            return None, None
        return None, f"its request body is {', '.join(content)}, not JSON"
    schema, _ = schemas.simple((content[media] or {}).get("schema", {}))
    if schema.get("type", "object") != "object":
        return None, "its JSON request body is not an object"
    return schema, None


def _servers(document: dict[str, Any], base: str) -> str:
    servers = document.get("servers") or []
    if not servers or not isinstance(servers[0], dict) or not servers[0].get("url"):
        return ""
    server = servers[0]
    url = str(server["url"])
    for name, variable in (server.get("variables") or {}).items():
        url = url.replace("{" + name + "}", str((variable or {}).get("default", "")))
    return urljoin(base, url) if base else url


def _security(document: dict[str, Any], prefix: str, base_url: str) -> tuple[list[str], list[str]]:
    """Commented sayso.toml settings for the document's security schemes, and hosts they need."""
    lines: list[str] = []
    hosts: list[str] = []
    schemes = ((document.get("components") or {}).get("securitySchemes") or {})
    for scheme_name, scheme in schemes.items():
        if not isinstance(scheme, dict):
            continue
        kind = scheme.get("type")
        if kind == "http" and str(scheme.get("scheme", "")).lower() == "bearer":
            lines += [f"# The document's security scheme {scheme_name!r}: HTTP bearer. Set the secret, then uncomment:",
                      f'# bearer_secret = "{prefix}_token"']
        elif kind == "apiKey" and scheme.get("in") == "header":
            lines += [f"# The document's security scheme {scheme_name!r}: an API key header. Set the secret, then "
                      "uncomment:", f"# api_key_header = {json.dumps(str(scheme.get('name', 'X-API-Key')))}",
                      f'# api_key_secret = "{prefix}_api_key"']
        elif kind == "oauth2" and "clientCredentials" in (scheme.get("flows") or {}):
            flow = scheme["flows"]["clientCredentials"]
            token_url = urljoin(base_url, str(flow.get("tokenUrl", "")))
            host = urlsplit(token_url).hostname
            if host:
                hosts.append(host)
            scopes = list((flow.get("scopes") or {}).keys())
            lines += [f"# The document's security scheme {scheme_name!r}: OAuth2 client credentials. Set the "
                      "client id and secret, then uncomment:",
                      f"# token_url = {json.dumps(token_url)}", '# client_id = "..."',
                      f'# client_secret_secret = "{prefix}_client_secret"', f"# scopes = {json.dumps(scopes)}"]
        else:
            lines.append(f"# The document's security scheme {scheme_name!r} ({kind}) has no sayso setting; "
                         "see docs/connectors/http.md")
    return lines, hosts


def convert(document: dict[str, Any], *, prefix: str, base_url: str | None = None, source: str = "",
            base: str = "", operations_file: str = "") -> Converted:
    """The actions, operations and sayso.toml table for one parsed document."""
    schemas = _Schemas(document, source)
    url = base_url or _servers(document, base)
    if not url:
        raise WorkspaceError("the document names no server; give the API's address with --base-url", file=source)
    host = urlsplit(url).hostname
    if urlsplit(url).scheme not in ("http", "https") or not host:
        raise WorkspaceError(f"the base URL {url!r} is not an absolute http(s) URL; give one with --base-url",
                             file=source)
    actions: list[dict[str, Any]] = []
    operations: dict[str, Any] = {}
    skipped: list[str] = []
    names: set[str] = set()
    for path, item in document["paths"].items():
        item, _ = schemas.resolve(item)
        shared = item.get("parameters") or []
        for method in _METHODS:
            if method not in item:
                continue
            operation = item[method] or {}
            where = f"{method.upper()} {path}"
            body, problem = _body(schemas, operation)
            if problem:
                skipped.append(f"{where}: {problem}")
                continue
            op_name = _unique(_snake(str(operation.get("operationId") or "")) or _snake(f"{method} {path}"), names)
            params, wire = _parameters(schemas, shared, operation, body, where, skipped)
            kind = "read" if method == "get" else "write"
            description = _one_line(operation.get("summary") or operation.get("description")) or where
            if operation.get("deprecated"):
                description = f"(deprecated) {description}"
            action: dict[str, Any] = {
                "name": f"{prefix}.{op_name}", "description": description, "kind": kind,
                "risk": "none" if kind == "read" else "critical" if method == "delete" else "medium",
                "connector": prefix, "operation": op_name,
            }
            if params:
                action["params"] = params
            actions.append(action)
            entry: dict[str, Any] = {"kind": kind, "method": method.upper(), "path": path}
            if wire:
                entry["params"] = wire
            record = _record(schemas, operation, op_name)
            if record:
                entry["record"] = record
            operations[op_name] = entry
    if not actions:
        raise WorkspaceError("no operation of the document could be imported: " + "; ".join(skipped), file=source)
    info = document.get("info") or {}
    header = (f"# Imported from {source or 'an OpenAPI document'} ({_one_line(info.get('title'), 80)} "
              f"{_one_line(info.get('version'), 20)}) by `sayso import openapi`.\n")
    actions_yaml = header + "# Review each action's risk and description; add examples.\n" + yaml.safe_dump(
        {"actions": actions}, sort_keys=False, allow_unicode=True, width=120)
    operations_yaml = header + "# How each operation is sent (docs/connectors/http.md).\n" + yaml.safe_dump(
        {"operations": operations}, sort_keys=False, allow_unicode=True, width=120)
    auth, auth_hosts = _security(document, prefix, url)
    hosts = list(dict.fromkeys([host, *auth_hosts]))
    lines = [
        "", header.rstrip(), f"[systems.{prefix}]", 'kind = "http"', f"base_url = {json.dumps(url)}",
        f"allowed_hosts = {json.dumps(hosts)}", f"operations = {json.dumps(operations_file)}",
        "# Only if the API dedupes writes by their Idempotency-Key header (then a retry after a crash is safe):",
        "# honours_idempotency_key = true", *auth,
    ]
    return Converted(actions_yaml, operations_yaml, "\n".join(lines) + "\n", [a["name"] for a in actions],
                     skipped, url, hosts)


def _parameters(schemas: _Schemas, shared: list[Any], operation: dict[str, Any], body: dict[str, Any] | None,
                where: str, skipped: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The action's parameters and where the operation sends each."""
    declared: dict[tuple[str, str], dict[str, Any]] = {}
    for raw in [*shared, *(operation.get("parameters") or [])]:  # the operation's own win
        param, _ = schemas.resolve(raw)
        if "name" in param and "in" in param:
            declared[(str(param["name"]), str(param["in"]))] = param
    params: dict[str, Any] = {}
    wire: dict[str, Any] = {}
    taken: set[str] = set()
    for (name, location), param in declared.items():
        if location == "cookie" or (location == "header" and name.lower() in _SKIPPED_HEADERS):
            if param.get("required") and location == "cookie":
                skipped.append(f"{where}: the required cookie {name!r} is not sent")
            continue
        schema, _ = schemas.simple(param.get("schema") or {})
        spec, extra = _field(schemas, schema, required=bool(param.get("required")) or location == "path",
                             description=param.get("description"))
        own = _unique(_param_name(name), taken, location)
        params[own] = spec
        wire[own] = _wire(location, name, own, extra)
    if body is not None:
        required = set(body.get("required") or [])
        for name, raw in (body.get("properties") or {}).items():
            schema, _ = schemas.simple(raw)
            if schema.get("readOnly"):
                continue
            spec, extra = _field(schemas, schema, required=name in required, description=schema.get("description"))
            own = _unique(_param_name(name), taken, "body")
            params[own] = spec
            wire[own] = _wire("body", name, own, extra)
    return params, wire


def _wire(location: str, name: str, own: str, extra: dict[str, Any]) -> Any:
    if name == own and not extra:
        return location
    return {"in": location, **({"name": name} if name != own else {}), **extra}


# --- writing the workspace -----------------------------------------------------------------------


def _check(converted: Converted, prefix: str) -> None:
    """Load what was generated, as the workspace will, before anything is written."""
    from .connectors.http import load_http_operations

    with tempfile.TemporaryDirectory() as folder:
        actions, operations = Path(folder) / f"{prefix}.yaml", Path(folder) / "operations.yaml"
        actions.write_text(converted.actions_yaml)
        operations.write_text(converted.operations_yaml)
        load_yaml_actions(actions, Catalog())
        load_http_operations(operations)


def import_openapi(source: str, root: Path, *, prefix: str | None = None, base_url: str | None = None,
                   force: bool = False) -> Imported:
    """Import one document into the workspace at ``root``; see the module's docstring."""
    toml_path = root / "sayso.toml"
    settings = load_settings(toml_path)
    document, base = load_document(source)
    chosen = prefix or _snake(str((document.get("info") or {}).get("title") or "")) or "api"
    if not _PREFIX.fullmatch(chosen):
        raise WorkspaceError(f"the prefix {chosen!r} must be lowercase letters, digits and _, starting with a letter"
                             + ("" if prefix else "; choose one with --prefix"))
    if not settings.catalog.paths:
        raise WorkspaceError("sayso.toml [catalog] paths is empty: there is no folder for the actions",
                             file=str(toml_path))
    actions_path = root / settings.catalog.paths[0] / f"{chosen}.yaml"
    operations_path = root / "operations" / f"{chosen}.yaml"
    has_system = chosen in settings.systems
    if not force:
        for existing in (actions_path, operations_path):
            if existing.exists():
                raise WorkspaceError(f"{existing.relative_to(root)} already exists (imported before?); "
                                     "use --force to replace it")
        if has_system:
            raise WorkspaceError(f"sayso.toml already has [systems.{chosen}]; use another --prefix, or --force "
                                 "to replace the imported files", file=str(toml_path))
    converted = convert(document, prefix=chosen, base_url=base_url, source=source, base=base,
                        operations_file=str(operations_path.relative_to(root)))
    _check(converted, chosen)
    for path, content in ((actions_path, converted.actions_yaml), (operations_path, converted.operations_yaml)):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    if not has_system:
        text = toml_path.read_text()
        addition = ("" if text.endswith("\n") or not text else "\n") + converted.toml
        tomllib.loads(text + addition)  # still valid TOML before it is written
        with toml_path.open("a") as toml:
            toml.write(addition)
    return Imported(chosen, converted.actions, [actions_path, operations_path], not has_system, converted.skipped,
                    converted.base_url, converted.hosts)
