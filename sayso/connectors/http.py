"""Any HTTP API as a system: operations (method, path template, where each parameter goes) declared
in a YAML file, written by hand or by ``sayso import openapi``.

    [systems.shop]
    kind = "http"
    base_url = "https://api.shop.example/v1"
    allowed_hosts = ["api.shop.example"]        # every request to another host is refused before it is sent
    operations = "operations/shop.yaml"
    honours_idempotency_key = true             # only if the API dedupes writes by Idempotency-Key
    bearer_secret = "shop_token"               # or api_key_header + api_key_secret, or OAuth2 client credentials

Every write sends the step's idempotency key as ``Idempotency-Key``. Only an API that dedupes by it
makes a retry safe, so the guarantee is ``idempotent`` when the workspace says the API honours the
header and ``at_least_once`` otherwise (after a crash such a step is reported, never repeated).
Redirects are followed for reads only, to allowed hosts only; a non-2xx answer is a
:class:`~sayso.errors.ConnectorError` with the status and a trimmed body, secrets masked.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote, urlsplit

from ..errors import ConfigurationError, ConnectorError, InvalidArguments, OutcomeUnknown, WorkspaceError
from . import ConnectorRegistry, SystemContext
from ._common import Settings, is_loopback, require_extra
from ._operations import (
    ORIGIN_PARAMS,
    DeclaredSystem,
    Entry,
    action_operation,
    action_where,
    actions_using,
    check_keys,
    check_settings,
    load_operations,
    operations_path,
    origin_values,
)
from .base import Change, Effect, Guarantee, Record
from .provenance import stable_id, why_fields

if TYPE_CHECKING:
    import httpx

__all__ = ["HttpOperation", "HttpParam", "HttpSystem", "load_http_operations", "register"]

_SETTINGS = {
    "kind", "base_url", "allowed_hosts", "operations", "honours_idempotency_key", "timeout", "allow_http",
    "why_headers", "bearer_secret", "api_key_header", "api_key_secret", "token_url", "client_id",
    "client_secret_secret", "scopes", "token_auth",
}
_OP_KEYS = {"kind", "method", "path", "params", "record", "description", "search"}
_PARAM_KEYS = {"in", "name", "json", "items"}
_RECORD_KEYS = {"type", "id", "title", "items"}
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")
LOCATIONS = ("path", "query", "header", "body")
ITEM_TYPES = ("string", "integer", "number", "boolean")
_MAX_RECORDS = 500
_MAX_REDIRECTS = 3
_SHOWN_BODY = 300
_Scalar = str | int | float | bool | None


@dataclass(frozen=True)
class HttpParam:
    """Where one argument goes: ``location`` (path, query, header, body) under its ``wire`` name.
    ``json``: the argument is JSON text, sent parsed; ``items``: a list's items converted to this type."""

    name: str
    location: str
    wire: str
    json: bool = False
    items: str | None = None


@dataclass(frozen=True)
class RecordSpec:
    """How an answer reads as records: the list under ``items`` (a dotted path), their type, id and title."""

    type: str
    id: str | None = None
    title: str | None = None
    items: str | None = None


@dataclass(frozen=True)
class HttpOperation:
    name: str
    kind: Literal["read", "write"]
    method: str
    path: str
    params: Mapping[str, HttpParam] = field(default_factory=dict)
    record: RecordSpec | None = None
    search: bool = False

    @property
    def placeholders(self) -> list[str]:
        return re.findall(r"{([^{}/]+)}", self.path)

    def default_location(self) -> str:
        return "query" if self.method in ("GET", "HEAD", "DELETE") else "body"

    def parts(self, args: Mapping[str, Any], origin: Mapping[str, Any] | None, key: str | None
              ) -> tuple[str, list[tuple[str, _Scalar]], dict[str, str], dict[str, Any]]:
        """The filled path, query, headers and JSON body for these arguments."""
        values = dict(args)
        sayso = origin_values(origin, key)
        values.update({name: sayso[name] for name in self.params if name.startswith("_")})
        path = self.path
        query: list[tuple[str, _Scalar]] = []
        headers: dict[str, str] = {}
        body: dict[str, Any] = {}
        for name, value in values.items():
            if value is None:
                continue
            param = self.params.get(name) or HttpParam(name, self.default_location(), name)
            value = _converted(self.name, param, value)
            if param.location == "path":
                path = path.replace("{" + param.wire + "}", quote(str(value), safe=""))
            elif param.location == "query":
                items = value if isinstance(value, list) else [value]
                query.extend((param.wire, _text(v)) for v in items)
            elif param.location == "header":
                headers[param.wire] = _header(_text(value))
            else:
                body[param.wire] = value
        missing = re.findall(r"{([^{}/]+)}", path)
        if missing:
            raise InvalidArguments(f"{self.name}: the path needs {', '.join(missing)}")
        return path, query, headers, body


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value)


def _header(value: str) -> str:
    """A header value in printable ASCII: anything else (accents, line breaks) percent-encoded."""
    return quote(value[:1000], safe=" !\"#$&'()*+,-./:;<=>?@[]^_`{|}~")


def _converted(operation: str, param: HttpParam, value: Any) -> Any:
    if param.json and isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise InvalidArguments(f"{operation}: {param.name} must be JSON") from None
    if param.items and isinstance(value, list):
        kinds: dict[str, Callable[[Any], Any]] = {"integer": int, "number": float, "boolean": _boolean, "string": str}
        kind = kinds[param.items]
        try:
            return [kind(v) for v in value]
        except ValueError:
            raise InvalidArguments(f"{operation}: every item of {param.name} must be a {param.items}") from None
    return value


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "1", "yes"):
        return True
    if str(value).lower() in ("false", "0", "no"):
        return False
    raise ValueError(value)


def _param(entry: Entry, name: str, spec: Any) -> HttpParam:
    if isinstance(spec, str):
        spec = {"in": spec}
    if not isinstance(spec, dict):
        raise entry.error(f"parameter {name}: give its location (path, query, header, body) or a mapping")
    line = spec.get("__line__")
    clean = {k: v for k, v in spec.items() if k != "__line__"}
    unknown = sorted(set(clean) - _PARAM_KEYS)
    if unknown:
        raise entry.error(f"parameter {name}: unknown keys {unknown} (known: {', '.join(sorted(_PARAM_KEYS))})", line)
    location = clean.get("in")
    if location not in LOCATIONS:
        raise entry.error(f"parameter {name}: `in` must be one of {', '.join(LOCATIONS)}", line)
    if name.startswith("_") and name not in ORIGIN_PARAMS:
        raise entry.error(f"unknown sayso parameter {name} (known: {', '.join(ORIGIN_PARAMS)})", line)
    items = clean.get("items")
    if items is not None and items not in ITEM_TYPES:
        raise entry.error(f"parameter {name}: items must be one of {', '.join(ITEM_TYPES)}", line)
    return HttpParam(name, str(location), str(clean.get("name", name)), bool(clean.get("json", False)), items)


def _parse(entry: Entry) -> HttpOperation:
    check_keys(entry, _OP_KEYS, ("method", "path"))
    method = str(entry.data["method"]).upper()
    if method not in _METHODS:
        raise entry.error(f"method must be one of {', '.join(_METHODS)}")
    path = entry.data["path"]
    if not isinstance(path, str) or not path.startswith("/") or "://" in path:
        raise entry.error("path must start with / (it is added to the system's base_url)")
    kind = entry.data.get("kind", "read" if method in ("GET", "HEAD") else "write")
    if kind not in ("read", "write"):
        raise entry.error("kind must be read or write")
    raw = entry.data.get("params") or {}
    if not isinstance(raw, dict):
        raise entry.error("params must map each parameter to its location")
    params = {str(n): _param(entry, str(n), s) for n, s in raw.items() if n != "__line__"}
    if kind == "read" and any(n.startswith("_") for n in params):
        raise entry.error("reads cannot send who asked (_asked_by...): only writes know it")
    op_record = entry.mapping("record", _RECORD_KEYS, ("type",))
    record = RecordSpec(**{k: str(v) for k, v in op_record.items()}) if op_record else None
    search = entry.data.get("search", False)
    if search is not False and (search is not True or kind != "read" or record is None or "text" not in params):
        raise entry.error("search: true needs a read with a record mapping and a `text` parameter")
    op = HttpOperation(entry.name, kind, method, path, params, record, search)
    wires = {p.wire for p in params.values() if p.location == "path"}
    unplaced = [p for p in op.placeholders if p not in wires]
    if unplaced:
        raise entry.error(f"the path's {', '.join('{' + p + '}' for p in unplaced)} is not a parameter "
                          "with `in: path`")
    stray = sorted(p.name for p in params.values() if p.location == "path" and p.wire not in op.placeholders)
    if stray:
        raise entry.error(f"path parameters {stray} do not appear in the path {path}")
    return op


def load_http_operations(path: Path) -> dict[str, HttpOperation]:
    """Every operation of a file, each checked; the first problem names its file and line."""
    return {entry.name: _parse(entry) for entry in load_operations(path)}


def check_actions(system: str, operations: Mapping[str, HttpOperation], root: Path) -> None:
    """The workspace's actions on ``system`` name declared operations of their own kind and declare
    every parameter the operation's path needs."""
    for item in actions_using(root, system):
        op = action_operation(system, item, operations)
        needed = sorted(p.name for p in op.params.values() if p.location == "path" and not p.name.startswith("_"))
        missing = [p for p in needed if p not in item.params.model_fields]
        if missing:
            file, line = action_where(item)
            raise WorkspaceError(f"action {item.name} does not declare {', '.join(missing)}, which operation "
                                 f"{op.name}'s path needs", file=file, line=line)


def _dig(data: Any, dotted: str | None) -> Any:
    for part in (dotted or "").split("."):
        if part and isinstance(data, dict):
            data = data.get(part)
    return data


def _trimmed(text: str, size: int = _SHOWN_BODY) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= size else flat[: size - 1] + "…"


class HttpStatusError(ConnectorError):
    """The API answered with a status other than 2xx."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class _ClientCredentials:
    """An OAuth2 access token from the client-credentials grant, kept until shortly before it expires."""

    def __init__(self, token_url: str, client_id: str, secret: str, scopes: list[str], style: str) -> None:
        self.token_url = token_url
        self.client_id = client_id
        self.secret = secret
        self.scopes = scopes
        self.style = style  # "basic": HTTP Basic (RFC 6749's default); "body": in the form
        self.token: str | None = None
        self._until = 0.0
        self._lock = threading.Lock()

    def forget(self) -> None:
        with self._lock:
            self.token = None

    def current(self, system: HttpSystem) -> str:
        with self._lock:
            if self.token is None or time.monotonic() >= self._until:
                self.token, lifetime = self._fetch(system)
                self._until = time.monotonic() + max(lifetime - 30, 0)
            return self.token

    def _fetch(self, system: HttpSystem) -> tuple[str, float]:
        import httpx

        form = {"grant_type": "client_credentials"}
        if self.scopes:
            form["scope"] = " ".join(self.scopes)
        headers = {"Accept": "application/json"}
        if self.style == "body":
            form.update(client_id=self.client_id, client_secret=self.secret)
        else:
            pair = f"{self.client_id}:{self.secret}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        try:
            response = system.client.post(self.token_url, data=form, headers=headers)
        except httpx.HTTPError as exc:
            raise ConnectorError(f"{system.name}: the token endpoint could not be reached ({type(exc).__name__})"
                                 ) from None
        if not response.is_success:
            raise HttpStatusError(system.redact(f"{system.name}: the token endpoint answered {response.status_code}: "
                                                f"{_trimmed(response.text)}"), status=response.status_code)
        try:
            data = response.json()
            token = str(data["access_token"])
            lifetime = float(data.get("expires_in") or 3600)
        except (ValueError, KeyError, TypeError):
            raise ConnectorError(f"{system.name}: the token endpoint's answer has no access_token") from None
        return token, lifetime


class HttpSystem(DeclaredSystem[HttpOperation]):
    """An HTTP API reached through httpx, with the operations its YAML file declares."""

    def __init__(self, name: str, client: httpx.Client, base_url: str, operations: Mapping[str, HttpOperation], *,
                 honours_idempotency_key: bool = False, headers: Mapping[str, str] | None = None,
                 oauth: _ClientCredentials | None = None, secrets: tuple[str, ...] = (),
                 why_headers: bool = True) -> None:
        super().__init__(name, operations)
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.guarantee = Guarantee.IDEMPOTENT if honours_idempotency_key else Guarantee.AT_LEAST_ONCE
        self._auth_headers = dict(headers or {})
        self._oauth = oauth
        self._secrets = tuple(s for s in secrets if s)
        self._why_headers = why_headers

    def __repr__(self) -> str:
        return f"HttpSystem({self.name!r}, {self.base_url!r})"

    def redact(self, text: str) -> str:
        """``text`` with every secret this system holds (the access token too) masked."""
        for secret in (*self._secrets, self._oauth.token if self._oauth else None):
            if secret:
                text = text.replace(secret, "***")
        return text

    def _credentials(self) -> dict[str, str]:
        headers = dict(self._auth_headers)
        if self._oauth is not None:
            headers["Authorization"] = f"Bearer {self._oauth.current(self)}"
        return headers

    def _call(self, op: HttpOperation, args: Mapping[str, Any], origin: Mapping[str, Any] | None = None,
              key: str | None = None) -> tuple[httpx.Response, str]:
        """Send one operation; its answer (2xx) and the path it went to."""
        import httpx

        path, query, headers, body = op.parts(args, origin, key)
        if op.kind == "write" and key is not None:
            headers["Idempotency-Key"] = key
        why = why_fields(origin)
        if self._why_headers and why:
            headers.update({f"X-Sayso-{name}": _header(str(why[field]))
                            for name, field in (("Asked-By", "asked_by"), ("Conversation", "conversation"),
                                                ("Request", "request")) if field in why})
        where = f"{self.name}.{op.name}: {op.method} {path}"
        for attempt in (1, 2):
            request = self.client.build_request(op.method, self.base_url + path, params=query,
                                                headers={**headers, **self._credentials()},
                                                json=body if body or op.method in ("POST", "PUT", "PATCH") else None)
            try:
                response = self._follow(request, op)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:  # nothing was sent
                raise ConnectorError(f"{where}: cannot connect ({type(exc).__name__})") from None
            except httpx.HTTPError as exc:
                # A write cut off after it was sent may have happened: say so, so nobody simply tries again.
                unsure = " (it may or may not have taken effect: check the system before trying again)"
                what = "timed out" if isinstance(exc, httpx.TimeoutException) else \
                    f"failed: {type(exc).__name__}: {self.redact(str(exc))}"
                failure = OutcomeUnknown if op.kind == "write" else ConnectorError
                raise failure(f"{where} {what}" + (unsure if op.kind == "write" else "")) from None
            if response.status_code == 401 and self._oauth is not None and attempt == 1:
                self._oauth.forget()  # revoked or expired early: one new token, one more try
                continue
            break
        if not response.is_success:
            reason = f" {response.reason_phrase}" if response.reason_phrase else ""
            shown = self.redact(_trimmed(response.text))
            raise HttpStatusError(f"{where} answered {response.status_code}{reason}: {shown}".rstrip(": "),
                                  status=response.status_code)
        return response, path

    def _follow(self, request: httpx.Request, op: HttpOperation) -> httpx.Response:
        """Send, following a read's redirects to allowed hosts (the client's hook refuses the others);
        credentials are not carried to another host."""
        response = self.client.send(request)
        hops = 0
        while response.is_redirect:
            target = response.headers.get("location", "")
            if op.kind != "read" or hops == _MAX_REDIRECTS or response.next_request is None:
                raise ConnectorError(f"{self.name}.{op.name}: {request.method} {request.url.path} answered "
                                     f"{response.status_code}, a redirect to {target!r}, which sayso does not follow")
            following = response.next_request
            if following.url.host != request.url.host:
                for header in (*self._auth_headers, "Authorization"):
                    following.headers.pop(header, None)
            response.close()
            response = self.client.send(following)
            hops += 1
        return response

    @staticmethod
    def _payload(response: httpx.Response) -> Any:
        if not response.content:
            return None
        if "json" in response.headers.get("content-type", ""):
            try:
                return response.json()
            except ValueError:
                pass
        return response.text[:2000]

    def _records(self, op: HttpOperation, data: Any) -> list[Record]:
        spec = op.record
        found = _dig(data, spec.items if spec else None)
        rows = found if isinstance(found, list) else [] if found is None else [found]
        records = []
        for i, row in enumerate(rows[:_MAX_RECORDS]):
            attrs = row if isinstance(row, dict) else {"value": row}
            record_id = attrs.get(spec.id) if spec and spec.id else None
            title = attrs.get(spec.title) if spec and spec.title else None
            records.append(Record(type=spec.type if spec else "Item", id=str(record_id if record_id is not None
                                                                            else i + 1),
                                  title="" if title is None else str(title),
                                  attrs={k: v for k, v in attrs.items() if not spec or k != spec.id}, system=self.name))
        return records

    def read(self, operation: str, args: dict[str, Any]) -> list[Record]:
        op = self._operation(operation, "read")
        response, _ = self._call(op, args)
        return self._records(op, self._payload(response))

    def preview(self, operation: str, args: dict[str, Any]) -> list[Change]:
        """What the request will send: an API cannot be asked what a write would change."""
        op = self._operation(operation, "write")
        path, _, _, body = op.parts(args, None, None)
        target = next((str(args[p.name]) for p in op.params.values() if p.location == "path" and p.name in args),
                      "(new)")
        after = None if op.method == "DELETE" else {**body} or dict(args)
        return [Change(record_type=op.record.type if op.record else op.name, record_id=target,
                       title=f"{op.method} {path}", before=None if op.method == "POST" else {}, after=after)]

    def execute(
        self, operation: str, args: dict[str, Any], *, key: str, origin: dict[str, Any] | None = None
    ) -> Effect:
        op = self._operation(operation, "write")
        response, path = self._call(op, args, origin, key)
        data = self._payload(response)
        body = data if isinstance(data, dict) else {}
        spec = op.record
        record_id = body.get(spec.id) if spec and spec.id else None
        if record_id is None:
            record_id = next((args[p.name] for p in op.params.values() if p.location == "path" and p.name in args),
                             None)
        shown_id = str(record_id) if record_id is not None else stable_id(key, 12)
        title = body.get(spec.title) if spec and spec.title else None
        created = op.method == "POST"
        change = Change(
            record_type=spec.type if spec else op.name, record_id=shown_id, title="" if title is None else str(title),
            before=None if created else ({} if op.method != "DELETE" else dict(args)),
            after=None if op.method == "DELETE" else (body or dict(args)),
        )
        result: dict[str, Any] = {"status": response.status_code}
        if record_id is not None:
            result["id"] = record_id
        if response.headers.get("location"):
            result["location"] = response.headers["location"]
        summary = f"{op.method} {path}: {response.status_code}" + (f", id {record_id}" if record_id is not None else "")
        return Effect(key=key, operation=operation, changes=[change], result=result, summary=summary)

    def lookup(self, key: str) -> Effect | None:
        """Nothing to ask: an API that honours the key answers a retry with the first result instead."""
        return None

    def close(self) -> None:
        self.client.close()


def _url(system: str, setting: str, value: Any, allowed: set[str], allow_http: bool) -> str:
    if not isinstance(value, str):
        raise ConfigurationError(f"system {system!r}: `{setting}` must be a URL")
    parts = urlsplit(value)
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host:
        raise ConfigurationError(f"system {system!r}: `{setting}` must be an http(s) URL, not {value!r}")
    if parts.username or parts.password:
        raise ConfigurationError(f"system {system!r}: `{setting}` must not hold credentials; use a *_secret setting")
    if host not in allowed:
        raise ConfigurationError(f"system {system!r}: the host of `{setting}` ({host}) is not in allowed_hosts")
    if parts.scheme == "http" and not (allow_http or is_loopback(host)):
        raise ConfigurationError(f"system {system!r}: `{setting}` is plain http to {host}; use https "
                                 "(or allow_http = true)")
    return value


def _auth(name: str, settings: Mapping[str, Any], context: SystemContext, allowed: set[str], allow_http: bool
          ) -> tuple[dict[str, str], _ClientCredentials | None, list[str]]:
    """The fixed headers, the OAuth2 client, and every secret to mask, from the auth settings."""
    ways = [w for w, keys in (("bearer", ("bearer_secret",)), ("api key", ("api_key_header", "api_key_secret")),
                              ("oauth2", ("token_url", "client_id", "client_secret_secret")))
            if any(k in settings for k in keys)]
    if len(ways) > 1:
        raise ConfigurationError(f"system {name!r}: choose one way to authenticate, not {' and '.join(ways)}")
    if "bearer_secret" in settings:
        token = context.secret(str(settings["bearer_secret"]))
        return {"Authorization": f"Bearer {token}"}, None, [token]
    if ways == ["api key"]:
        if "api_key_header" not in settings or "api_key_secret" not in settings:
            raise ConfigurationError(f"system {name!r}: an API key needs api_key_header and api_key_secret")
        key = context.secret(str(settings["api_key_secret"]))
        return {str(settings["api_key_header"]): key}, None, [key]
    if ways == ["oauth2"]:
        missing = [k for k in ("token_url", "client_id", "client_secret_secret") if k not in settings]
        if missing:
            raise ConfigurationError(f"system {name!r}: OAuth2 client credentials need {', '.join(missing)}")
        token_url = _url(name, "token_url", settings["token_url"], allowed, allow_http)
        secret = context.secret(str(settings["client_secret_secret"]))
        scopes = settings.get("scopes", [])
        scopes = scopes.split() if isinstance(scopes, str) else [str(s) for s in scopes]
        style = str(settings.get("token_auth", "basic"))
        if style not in ("basic", "body"):
            raise ConfigurationError(f"system {name!r}: token_auth must be basic or body")
        return {}, _ClientCredentials(token_url, str(settings["client_id"]), secret, scopes, style), [secret]
    return {}, None, []


def _create(name: str, settings: Mapping[str, Any], context: SystemContext) -> HttpSystem:
    require_extra(name, "http", "httpx", "httpx")
    import httpx

    check_settings(name, settings, _SETTINGS)
    base = settings.get("base_url")
    base_host = urlsplit(base).hostname if isinstance(base, str) else None
    raw_hosts = settings.get("allowed_hosts", [base_host] if base_host else [])
    if not isinstance(raw_hosts, list) or not all(isinstance(h, str) for h in raw_hosts):
        raise ConfigurationError(f"system {name!r}: allowed_hosts must be a list of host names")
    allowed = {h.lower() for h in raw_hosts}
    allow_http = bool(settings.get("allow_http", False))
    base_url = _url(name, "base_url", base, allowed, allow_http)
    operations = load_http_operations(operations_path(context.root, name, settings))
    check_actions(name, operations, context.root)
    headers, oauth, secrets = _auth(name, settings, context, allowed, allow_http)
    timeout = Settings(name, settings, kind="http").seconds()

    def allowed_only(request: httpx.Request) -> None:
        # Every request passes here before any I/O: the API's, the token's, and each redirect's.
        if request.url.host.lower() not in allowed:
            raise ConnectorError(f"{name}: refused to send {request.method} to {request.url.host}, "
                                 "which is not in allowed_hosts")

    client = httpx.Client(timeout=timeout, follow_redirects=False, event_hooks={"request": [allowed_only]},
                          headers={"User-Agent": "sayso", "Accept": "application/json"})
    return HttpSystem(name, client, base_url, operations, headers=headers, oauth=oauth, secrets=tuple(secrets),
                      honours_idempotency_key=bool(settings.get("honours_idempotency_key", False)),
                      why_headers=bool(settings.get("why_headers", True)))


def register(registry: ConnectorRegistry) -> None:
    """Add the kind ``http``."""
    registry.add("http", _create)
