"""Who is calling the HTTP API: sayso access tokens, or OIDC JWTs when configured.

A sayso token is ``sayso_`` and 43 URL-safe characters. The store keeps only its
SHA-256, so checking one is an indexed lookup by hash. A process remembers a
token it found live, by hash, under the current revocation epoch, and trusts it
while that epoch is current; expiry is still checked on every request. Every
revocation raises the epoch in the database, in the revocation's own
transaction. The process that revoked refuses the token at once; every other
process, on this host or another, reads the database's epoch at most
``CACHE_SECONDS`` after its last reading of it, so it refuses the token at most
``CACHE_SECONDS`` after the revocation committed. The database is the one place
processes share: nothing is shared through files on a host. An OIDC JWT is
verified against the issuer's keys (a JWKS URL, or a static PEM key) and its
claim is mapped to a person in the directory. Every failure is ``Unauthorized``
and no message or log line ever contains a token.

``OidcLogin`` tells the web page how to sign a person in with the identity
provider (authorization code with PKCE, as a public client): the page runs the
flow and sends the token it gets back as its bearer token; the server holds no
client secret.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import secrets
import threading
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.ed448 import Ed448PublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from sqlalchemy import bindparam, select, update

from ..clock import Clock
from ..config import ServeSettings
from ..directory import Directory, Person
from ..errors import ConfigurationError, InvalidArguments, SystemFailure, Unauthorized
from ..store import Store, schema
from ..workspace import Workspace

__all__ = ["Authenticator", "OidcLogin", "OidcVerifier", "Tokens", "Unauthorized"]

log = logging.getLogger("sayso")

PREFIX = "sayso_"
_TOKEN = re.compile(r"sayso_[A-Za-z0-9_-]{43}")
_INVALID = "invalid or expired token"
_LEEWAY_SECONDS = 30  # clock skew allowed between sayso and the identity provider
# The longest a process goes without reading the database's revocation epoch while it answers requests: the
# bound for a revocation made by another process to reach this one.
CACHE_SECONDS = 1.0
_CACHE_SIZE = 10_000
_PublicKey = RSAPublicKey | EllipticCurvePublicKey | Ed25519PublicKey | Ed448PublicKey
_DISCOVERY_RETRY_SECONDS = 10.0  # after a failed discovery, answer from the failure this long
_DISCOVERY_MAX_BYTES = 1 << 20
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}
# Parameters the page sets itself on the authorization request; the settings may not override them.
_FLOW_PARAMS = {"response_type", "client_id", "redirect_uri", "scope", "state", "nonce", "code_challenge",
                "code_challenge_method"}


_LOOKUP = select(schema.tokens.c.user_id, schema.tokens.c.expires_at, schema.tokens.c.revoked_at).where(
    schema.tokens.c.hash == bindparam("b_hash"))
_EPOCH = select(schema.token_epoch.c.epoch).where(schema.token_epoch.c.id == 1)
_RAISE_EPOCH = (update(schema.token_epoch).where(schema.token_epoch.c.id == 1)
                .values(epoch=schema.token_epoch.c.epoch + 1))


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).replace(microsecond=0).isoformat()


class Tokens:
    """sayso access tokens: created for a person, shown once, stored as a hash, revocable. A revocation reaches
    other processes through the database's epoch, within ``CACHE_SECONDS``."""

    def __init__(self, store: Store, clock: Clock, *, default_days: int = 90) -> None:
        self.store = store
        self.clock = clock
        self.default_days = default_days
        # token hash -> (user id, expiry or None, database epoch when it was looked up)
        self._live: dict[str, tuple[str, datetime | None, int]] = {}
        self._live_lock = threading.Lock()
        self._epoch = -1  # the database's epoch when last read (-1: never)
        self._epoch_read = -math.inf  # monotonic time at which that reading began
        self._epoch_lock = threading.Lock()

    def create(self, user_id: str, *, days: int | None = None, label: str | None = None) -> tuple[str, str]:
        """A new token for ``user_id``: (its id, the token). ``days`` None = the default, 0 = never expires."""
        days = self.default_days if days is None else days
        if days < 0:
            raise InvalidArguments("a token's lifetime is a number of days, 0 for never")
        token_id = "tok_" + secrets.token_hex(8)
        token = PREFIX + secrets.token_urlsafe(32)
        now = self.clock.now()
        with self.store.write() as conn:
            conn.execute(schema.tokens.insert().values(
                id=token_id, user_id=user_id, hash=_hash(token), created_at=_iso(now),
                expires_at=_iso(now + timedelta(days=days)) if days else None, label=label,
            ))
        return token_id, token

    def list(self, user_id: str) -> list[dict[str, Any]]:
        """A person's tokens, oldest first, without the tokens or their hashes."""
        t = schema.tokens
        query = (select(t.c.id, t.c.user_id, t.c.label, t.c.created_at, t.c.expires_at, t.c.revoked_at)
                 .where(t.c.user_id == user_id).order_by(t.c.created_at, t.c.id))
        with self.store.read() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def revoke(self, token_id: str) -> bool:
        """Revoke a token; False when there is no such token. Revoking twice keeps the first time.

        On return this process refuses the token; the database's epoch is raised in the same transaction as the
        revocation, for every other process."""
        t = schema.tokens
        with self.store.write() as conn:
            conn.execute(update(t).where(t.c.id == token_id, t.c.revoked_at.is_(None))
                         .values(revoked_at=_iso(self.clock.now())))
            found = conn.execute(select(t.c.id).where(t.c.id == token_id)).first() is not None
            if found:
                conn.execute(_RAISE_EPOCH)
        with self._live_lock:
            self._live.clear()
        return found

    def user_for(self, token: str) -> str:
        """The id of the person a live token belongs to."""
        if not _TOKEN.fullmatch(token):
            raise Unauthorized(_INVALID)
        digest = _hash(token)
        if time.monotonic() - self._epoch_read >= CACHE_SECONDS:
            self._read_epoch()
        # The epoch is read before the token is looked up, so a revocation that the lookup misses raises it past
        # what is remembered with it.
        epoch = self._epoch
        live = self._live.get(digest)
        if live is None or live[2] != epoch:
            with self.store.read() as conn:
                row = conn.execute(_LOOKUP, {"b_hash": digest}).first()
            if row is None or row.revoked_at is not None:
                raise Unauthorized(_INVALID)
            expires = datetime.fromisoformat(row.expires_at) if row.expires_at is not None else None
            live = (str(row.user_id), expires, epoch)
            with self._live_lock:
                if len(self._live) >= _CACHE_SIZE:
                    self._live.clear()
                self._live[digest] = live
        if live[1] is not None and self.clock.now() >= live[1]:
            raise Unauthorized(_INVALID)
        return live[0]

    def _read_epoch(self) -> None:
        """Read the database's revocation epoch (one thread at a time; the others wait for its answer)."""
        with self._epoch_lock:
            started = time.monotonic()
            if started - self._epoch_read < CACHE_SECONDS:  # another thread has just read it
                return
            with self.store.read() as conn:
                self._epoch = int(conn.execute(_EPOCH).scalar_one())
            self._epoch_read = started


class OidcVerifier:
    """Verifies an identity provider's JWTs (signature, iss, aud, exp, nbf) and maps them to a person."""

    def __init__(self, settings: ServeSettings) -> None:
        if not (settings.oidc_issuer and settings.oidc_audience):
            raise ConfigurationError("[serve] OIDC needs both oidc_issuer and oidc_audience")
        if bool(settings.oidc_jwks_url) == bool(settings.oidc_public_key):
            raise ConfigurationError("[serve] OIDC needs exactly one of oidc_jwks_url and oidc_public_key")
        # Only public-key algorithms: "none" or a shared secret (HS*) would let anyone mint tokens.
        weak = [a for a in settings.oidc_algorithms if a.lower() == "none" or a.upper().startswith("HS")]
        if weak or not settings.oidc_algorithms:
            raise ConfigurationError(f"[serve] oidc_algorithms must be public-key algorithms, not {weak}")
        self.settings = settings
        self.algorithms = list(settings.oidc_algorithms)
        # The key for a token: from the identity provider's published keys (cached), or the one static key.
        self._key_for: Callable[[str], _PublicKey | jwt.PyJWK]
        if settings.oidc_jwks_url:
            client = jwt.PyJWKClient(settings.oidc_jwks_url, cache_keys=True, timeout=10)
            self._key_for = client.get_signing_key_from_jwt
        else:
            key = _load_key(str(settings.oidc_public_key))
            self._key_for = lambda _token: key

    def user_for(self, token: str, directory: Directory) -> str:
        """The directory id of the person a valid JWT names."""
        s = self.settings
        try:
            claims = jwt.decode(
                token, self._key_for(token), algorithms=self.algorithms, audience=s.oidc_audience, issuer=s.oidc_issuer,
                leeway=_LEEWAY_SECONDS, options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.PyJWKClientConnectionError as exc:
            log.warning("cannot fetch the OIDC keys: %s", exc)
            raise SystemFailure("cannot fetch the identity provider's keys") from None
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            log.debug("OIDC token rejected: %s", type(exc).__name__)
            raise Unauthorized(_INVALID) from None
        person = _match(claims.get(s.oidc_user_claim), directory)
        if person is None:
            log.info("OIDC token names no person in the directory (claim %s)", s.oidc_user_claim)
            raise Unauthorized("the token names no person in the sayso directory")
        return person.id


class OidcLogin:
    """How the web page signs a person in: the authorization-code flow with PKCE, as a public client.

    Everything here is public (it is served without a token): the issuer, the client id, the endpoints,
    the scopes and which token the page sends. The endpoints come from the settings or, when unset, from
    ``{issuer}/.well-known/openid-configuration``, fetched on first use and kept.
    """

    REDIRECT_PATH = "/auth/callback"

    def __init__(self, settings: ServeSettings) -> None:
        issuer, client = settings.oidc_issuer, settings.oidc_client_id
        if not (issuer and client):
            raise ConfigurationError("[serve] OIDC sign-in needs oidc_issuer and oidc_client_id")
        if "openid" not in settings.oidc_scopes.split():
            raise ConfigurationError(f"[serve] oidc_scopes must include openid, not {settings.oidc_scopes!r}")
        if settings.oidc_login_token == "id_token" and settings.oidc_audience != client:
            raise ConfigurationError(
                "[serve] the page sends the ID token, whose audience is the client id: set oidc_audience to "
                "oidc_client_id, or oidc_login_token = \"access_token\" with the API's audience")
        reserved = sorted(_FLOW_PARAMS & set(settings.oidc_authorize_params))
        if reserved:
            raise ConfigurationError(f"[serve] oidc_authorize_params may not set {reserved}: the page sets them")
        for name in ("oidc_issuer", "oidc_authorization_endpoint", "oidc_token_endpoint"):
            problem = _endpoint_problem(getattr(settings, name))
            if getattr(settings, name) is not None and problem:
                raise ConfigurationError(f"[serve] {name} {problem}")
        self.settings = settings
        self._endpoints: tuple[str, str] | None = None
        if settings.oidc_authorization_endpoint and settings.oidc_token_endpoint:
            self._endpoints = (settings.oidc_authorization_endpoint, settings.oidc_token_endpoint)
        self._failed_at = -_DISCOVERY_RETRY_SECONDS
        self._lock = threading.Lock()

    def config(self) -> dict[str, Any]:
        """What the page needs to run the flow; raises ``SystemFailure`` when discovery fails."""
        s = self.settings
        authorize, token = self.endpoints()
        return {"issuer": s.oidc_issuer, "client_id": s.oidc_client_id, "authorization_endpoint": authorize,
                "token_endpoint": token, "scopes": s.oidc_scopes, "token": s.oidc_login_token,
                "redirect_path": self.REDIRECT_PATH, "params": dict(s.oidc_authorize_params)}

    def endpoints(self) -> tuple[str, str]:
        """The authorization and token endpoints: configured, else discovered once."""
        with self._lock:
            if self._endpoints is None:
                if time.monotonic() - self._failed_at < _DISCOVERY_RETRY_SECONDS:
                    raise SystemFailure("cannot reach the identity provider to sign in; try again shortly")
                try:
                    self._endpoints = self._discover()
                except SystemFailure:
                    self._failed_at = time.monotonic()
                    raise
            return self._endpoints

    def _discover(self) -> tuple[str, str]:
        s = self.settings
        url = f"{str(s.oidc_issuer).rstrip('/')}/.well-known/openid-configuration"
        try:
            request = urllib.request.Request(url, headers={"Accept": "application/json"})
            with urllib.request.urlopen(request, timeout=10) as response:  # the issuer: https, or this machine
                document = json.loads(response.read(_DISCOVERY_MAX_BYTES + 1)[:_DISCOVERY_MAX_BYTES])
        except (OSError, ValueError) as exc:
            log.warning("cannot read the OIDC discovery document %s: %s", url, type(exc).__name__)
            raise SystemFailure("cannot reach the identity provider to sign in; try again shortly") from None
        if not isinstance(document, dict) or document.get("issuer") != s.oidc_issuer:
            found = document.get("issuer") if isinstance(document, dict) else None
            log.warning("the OIDC discovery document %s names issuer %r, not %r", url, found, s.oidc_issuer)
            raise SystemFailure("the identity provider's discovery document names another issuer")
        methods = document.get("code_challenge_methods_supported")
        if isinstance(methods, list) and "S256" not in methods:
            log.warning("the identity provider does not offer PKCE with S256 (%s)", methods)
            raise SystemFailure("the identity provider does not support PKCE (S256)")
        found_endpoints = []
        for key, configured in (("authorization_endpoint", s.oidc_authorization_endpoint),
                                ("token_endpoint", s.oidc_token_endpoint)):
            value = configured or document.get(key)
            problem = _endpoint_problem(value)
            if problem:
                log.warning("the OIDC discovery document %s: %s %s", url, key, problem)
                raise SystemFailure(f"the identity provider's discovery document has no usable {key}")
            found_endpoints.append(str(value))
        return found_endpoints[0], found_endpoints[1]


def _endpoint_problem(url: Any) -> str | None:
    """Why ``url`` cannot be the issuer or an endpoint that codes and tokens go to, or None."""
    if not isinstance(url, str) or not url:
        return "is missing"
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return None
    if parts.scheme == "http" and parts.hostname in _LOOPBACK:
        return None
    return f"must be an https URL (plain http only on this machine), not {url!r}"


def _load_key(pem: str) -> _PublicKey:
    try:
        key = load_pem_public_key(pem.encode())
    except ValueError as exc:
        raise ConfigurationError(f"[serve] oidc_public_key is not a PEM public key: {exc}") from None
    if not isinstance(key, _PublicKey):
        raise ConfigurationError("[serve] oidc_public_key must be an RSA, EC or EdDSA key")
    return key


def _match(value: Any, directory: Directory) -> Person | None:
    """A person by exact id, else by email when the claim holds one (and only one person has it)."""
    if not isinstance(value, str) or not value:
        return None
    if value in directory:
        return directory.get(value)
    if "@" in value:
        found = [p for p in directory if p.email and p.email.lower() == value.lower()]
        if len(found) == 1:
            return found[0]
    return None


class Authenticator:
    """Turns an ``Authorization`` header into the person making the request."""

    def __init__(self, ws: Workspace, clock: Clock) -> None:
        settings = ws.settings.serve
        self.ws = ws
        self.tokens = Tokens(ws.store, clock, default_days=settings.token_days)
        configured = settings.oidc_jwks_url or settings.oidc_public_key or settings.oidc_issuer
        self.oidc = OidcVerifier(settings) if configured else None
        self.login = OidcLogin(settings) if settings.oidc_client_id else None

    def person(self, authorization: str | None) -> Person:
        """``Bearer sayso_...`` is a sayso token; any other bearer token is an OIDC JWT when OIDC is set up."""
        scheme, _, credentials = (authorization or "").strip().partition(" ")
        credentials = credentials.strip()
        if scheme.lower() != "bearer" or not credentials:
            raise Unauthorized("send an access token: Authorization: Bearer TOKEN")
        directory = self.ws.directory
        if credentials.startswith(PREFIX):
            user_id = self.tokens.user_for(credentials)
        elif self.oidc is not None:
            user_id = self.oidc.user_for(credentials, directory)
        else:
            raise Unauthorized(_INVALID)
        if user_id not in directory:
            log.info("a valid token names %s, who is no longer in the directory", user_id)
            raise Unauthorized(_INVALID)
        return directory.get(user_id)
