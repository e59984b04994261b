"""``sayso.toml``: a workspace's settings, validated, with secrets kept apart.

Secrets never live in ``sayso.toml`` itself: they come from environment
variables named under ``[secrets.env]`` or from a TOML file named by
``[secrets] file``, and connectors refer to them by name.
"""

from __future__ import annotations

import os
import re
import tomllib
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import WorkspaceError

MIN_SECRET_CHARS = 4  # a shorter secret cannot be redacted without mangling every record

__all__ = ["GuardSettings", "Settings", "load_settings", "read_text"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WorkspaceInfo(_Section):
    name: str = "sayso workspace"
    reference_day: date | None = None
    demo: bool = False


class StoreSettings(_Section):
    url: str = "sqlite:///state.db"


class CatalogSettings(_Section):
    modules: list[str] = Field(default_factory=list)
    paths: list[str] = Field(default_factory=lambda: ["actions"])


class GuardSettings(_Section):
    confirm_medium: bool = False
    allow_critical: bool = False
    confirmation_ttl_minutes: int = Field(default=15, gt=0, le=7 * 24 * 60)


class LimitSettings(_Section):
    max_text_chars: int = Field(default=4000, gt=0)
    max_args_bytes: int = Field(default=65536, gt=0)


class InterpreterSettings(BaseModel):
    """Which interpreter reads messages (``offline`` needs no model); other keys go to it."""

    model_config = ConfigDict(extra="allow")
    name: str = "offline"


class ServeSettings(_Section):
    """``sayso serve``: who may call the API (sayso tokens, or OIDC JWTs when configured) and its limits."""

    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    oidc_jwks_url: str | None = None
    oidc_public_key: str | None = None  # PEM, a static key instead of a JWKS URL
    oidc_user_claim: str = "preferred_username"  # holds a directory id, or a person's email
    oidc_algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"])
    # Sign-in on the web page (authorization code with PKCE, a public client: no client secret anywhere).
    oidc_client_id: str | None = None  # set: the page offers "Sign in with <issuer>"
    oidc_scopes: str = "openid profile email"
    oidc_login_token: Literal["id_token", "access_token"] = "id_token"  # the bearer the page sends
    oidc_authorization_endpoint: str | None = None  # unset: from {issuer}/.well-known/openid-configuration
    oidc_token_endpoint: str | None = None  # unset: discovered, as above
    oidc_authorize_params: dict[str, str] = Field(default_factory=dict)  # e.g. Auth0's audience
    rate_per_minute: int = Field(default=600, gt=0)  # per person
    max_body_bytes: int = Field(default=262144, gt=0)
    cors_origins: list[str] = Field(default_factory=list)
    token_days: int = Field(default=90, ge=0)  # default expiry of new tokens; 0 = never
    instructions_every_seconds: float = Field(default=15.0, ge=0)  # run due standing instructions; 0 = a worker does


class AuditSettings(_Section):
    """Checkpoints of the audit chain's head, kept outside the database (docs/operations.md#the-audit-log)."""

    checkpoints: str | None = None  # a file, relative to the workspace; best on append-only storage elsewhere
    checkpoint_key: str | None = None  # the name of a secret: checkpoints carry an HMAC-SHA256 with it


class ApprovalSettings(_Section):
    """Approvals routed to the approver (docs/security.md#approvals-routed-to-the-approver)."""

    link_key: str | None = None  # the name of a secret that signs approval links; unset: a key kept in the store
    base_url: str = "http://127.0.0.1:8000/"  # where the web page is, for the links in approval emails


class SecretSettings(_Section):
    file: str | None = None
    env: dict[str, str] = Field(default_factory=dict)


class Settings(_Section):
    workspace: WorkspaceInfo = Field(default_factory=WorkspaceInfo)
    store: StoreSettings = Field(default_factory=StoreSettings)
    catalog: CatalogSettings = Field(default_factory=CatalogSettings)
    guard: GuardSettings = Field(default_factory=GuardSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    interpreter: InterpreterSettings = Field(default_factory=InterpreterSettings)
    secrets: SecretSettings = Field(default_factory=SecretSettings)
    serve: ServeSettings = Field(default_factory=ServeSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    approvals: ApprovalSettings = Field(default_factory=ApprovalSettings)
    systems: dict[str, dict[str, Any]] = Field(default_factory=dict)
    channels: dict[str, dict[str, Any]] = Field(default_factory=dict)  # [channels.<name>], read by each channel

    @model_validator(mode="before")
    @classmethod
    def _interpreter_shorthand(cls, data: Any) -> Any:
        """``interpreter = "openai"`` and ``model = "..."`` at the top level mean the [interpreter] section."""
        if isinstance(data, dict):
            data = dict(data)
            section = data.get("interpreter")
            if isinstance(section, str):
                section = {"name": section}
            if "model" in data:
                section = {**(section or {}), "model": data.pop("model")}
            if section is not None:
                data["interpreter"] = section
        return data

    def database_url(self, root: Path) -> str:
        """The state database URL; a relative SQLite path is inside the workspace."""
        url = os.environ.get("SAYSO_DATABASE_URL") or self.store.url
        if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
            return f"sqlite:///{(root / url.removeprefix('sqlite:///')).resolve()}"
        return url

    def load_secrets(self, root: Path) -> dict[str, str]:
        """Every secret by name. Each must be a string of at least four characters (or empty):
        anything else could not be kept out of the audit log, so it is refused, naming where it is."""
        found: dict[str, str] = {}
        if self.secrets.file:
            path = root / self.secrets.file
            try:
                text = read_text(path, "the secrets file")
                data = tomllib.loads(text)
            except tomllib.TOMLDecodeError as exc:
                raise WorkspaceError(f"not valid TOML: {exc}", file=str(path), line=_toml_line(exc)) from None
            for name, value in data.items():
                if not isinstance(value, str):
                    kind = _TOML_KINDS.get(type(value), "a date or time")
                    fix = ("give each value a name of its own" if isinstance(value, list | dict)
                           else f'quote it: {name} = "..."')
                    raise WorkspaceError(f"secret {name!r} is {kind}; a secret must be a string ({fix})",
                                         file=str(path), line=_key_line(text, name))
                _check_secret(name, value, file=str(path), line=_key_line(text, name))
                found[name] = value
        for name, variable in self.secrets.env.items():
            if variable in os.environ:
                _check_secret(name, os.environ[variable], file=f"${variable} ([secrets.env] in sayso.toml)")
                found[name] = os.environ[variable]
        return found


_TOML_KINDS = {bool: "a boolean", int: "an integer", float: "a float", list: "a list", dict: "a table"}


def _check_secret(name: str, value: str, *, file: str, line: int | None = None) -> None:
    if 0 < len(value) < MIN_SECRET_CHARS:
        raise WorkspaceError(f"secret {name!r} is shorter than {MIN_SECRET_CHARS} characters, too short to be kept "
                             "out of the audit log", file=file, line=line)


def read_text(path: Path, what: str, *, missing: str = "") -> str:
    """A workspace file's text; a missing, unreadable or binary file is a ``WorkspaceError`` naming it
    (``what is missing`` then ``missing``, a hint), never a traceback."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WorkspaceError(f"{what} is missing{missing}", file=str(path)) from None
    except UnicodeDecodeError as exc:
        raise WorkspaceError(f"{what} is not UTF-8 text (byte {exc.start}); is it a binary file?",
                             file=str(path)) from None
    except OSError as exc:
        raise WorkspaceError(f"cannot read {what}: {exc.strerror or exc}", file=str(path)) from None


def _toml_line(exc: tomllib.TOMLDecodeError) -> int | None:
    match = re.search(r"line (\d+)", str(exc))
    return int(match.group(1)) if match else None


def load_settings(path: Path) -> Settings:
    """Read and validate ``sayso.toml``; each problem names the file and, where it can, the line."""
    text = read_text(path, "the workspace settings file", missing="; `sayso init DIR` makes a workspace")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise WorkspaceError(f"not valid TOML: {exc}", file=str(path), line=_toml_line(exc)) from None
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return_line = _key_line(text, str(first["loc"][-1])) if first["loc"] else None
        raise WorkspaceError(f"{where}: {first['msg']}", file=str(path), line=return_line) from None


def _key_line(text: str, key: str) -> int | None:
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith(f"{key} ") or stripped.startswith(f"{key}=") or stripped == f"[{key}]":
            return number
    return None
