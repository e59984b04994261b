"""Who is calling the HTTP API: sayso tokens (stored hashed, expiring, revocable) and OIDC JWTs
verified against a static key or a JWKS served on this machine."""

from __future__ import annotations

import hashlib
import json
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from sayso import Clock, Workspace
from sayso.config import ServeSettings
from sayso.errors import ConfigurationError, SystemFailure
from sayso.serve.auth import Authenticator, OidcVerifier, Tokens, Unauthorized

from .conftest import _OPEN, sayso

ISSUER = "https://id.lumenlabs.example"
AUDIENCE = "sayso-api"
INVALID = "invalid or expired token"


def _workspace(root: Path) -> Workspace:
    ws = Workspace.load(root)
    _OPEN.append(ws)
    return ws


def _stored(root: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(root / "state.db") as conn:
        return conn.execute("select id, user_id, hash, expires_at, revoked_at from tokens").fetchall()


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(key: rsa.RSAPrivateKey) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def _jwt(key: rsa.RSAPrivateKey, *, kid: str = "k1", lifetime: int = 300, **claims: Any) -> str:
    now = int(time.time())
    payload = {"iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + lifetime, "sub": "u-1",
               "preferred_username": "alice", **claims}
    return jwt.encode(payload, key, algorithm="RS256", headers={"kid": kid})


def _static(key: rsa.RSAPrivateKey, **overrides: Any) -> ServeSettings:
    return ServeSettings(**{"oidc_issuer": ISSUER, "oidc_audience": AUDIENCE, "oidc_public_key": _pem(key),
                            **overrides})


# --- sayso tokens ---------------------------------------------------------------------


def test_a_token_names_its_person_and_only_its_hash_is_stored(sqlite_root: Path) -> None:
    tokens = Tokens(_workspace(sqlite_root).store, Clock())
    token_id, token = tokens.create("alice", label="laptop")
    assert token.startswith("sayso_") and len(token) == len("sayso_") + 43
    assert tokens.user_for(token) == "alice"

    rows = _stored(sqlite_root)
    assert [(r[0], r[1]) for r in rows] == [(token_id, "alice")]
    assert rows[0][2] == hashlib.sha256(token.encode()).hexdigest()
    dump = "\n".join(sqlite3.connect(sqlite_root / "state.db").iterdump())
    assert token not in dump and token.removeprefix("sayso_") not in dump

    second_id, second = tokens.create("alice")
    assert second != token and second_id != token_id


def test_expired_revoked_unknown_and_malformed_tokens_look_alike(sqlite_root: Path) -> None:
    clock = Clock(datetime(2026, 11, 25, 9, tzinfo=UTC))
    tokens = Tokens(_workspace(sqlite_root).store, clock)
    _, short = tokens.create("alice", days=1)
    _, forever = tokens.create("alice", days=0)
    revoked_id, revoked = tokens.create("bob")
    assert tokens.user_for(short) == "alice"

    assert tokens.revoke(revoked_id) is True
    clock.advance(timedelta(days=1))
    bad = [short, revoked, "sayso_" + "A" * 43, "sayso_short", "sayso_" + "!" * 43, "", "eyJhbGciOi.x.y"]
    for token in bad:
        with pytest.raises(Unauthorized) as caught:
            tokens.user_for(token)
        assert caught.value.message == INVALID and caught.value.http_status == 401
        assert caught.value.code == "unauthorized"

    clock.advance(timedelta(days=3650))
    assert tokens.user_for(forever) == "alice"


def test_the_default_lifetime_and_revocation_is_idempotent(sqlite_root: Path) -> None:
    clock = Clock(datetime(2026, 11, 25, 9, tzinfo=UTC))
    tokens = Tokens(_workspace(sqlite_root).store, clock, default_days=90)
    token_id, token = tokens.create("carol")
    (item,) = tokens.list("carol")
    assert item["expires_at"] == "2027-02-23T09:00:00+00:00"

    assert tokens.revoke(token_id) is True
    first = tokens.list("carol")[0]["revoked_at"]
    clock.advance(timedelta(hours=1))
    assert tokens.revoke(token_id) is True
    assert tokens.list("carol")[0]["revoked_at"] == first
    assert tokens.revoke("tok_nope") is False


def test_list_shows_ids_and_dates_never_tokens(sqlite_root: Path) -> None:
    tokens = Tokens(_workspace(sqlite_root).store, Clock())
    first_id, first = tokens.create("alice", label="laptop")
    second_id, second = tokens.create("alice", days=0)
    tokens.create("bob")
    items = tokens.list("alice")
    by_id = {i["id"]: i for i in items}  # created in the same second: the order between them is not defined
    assert set(by_id) == {first_id, second_id}
    assert set(items[0]) == {"id", "user_id", "label", "created_at", "expires_at", "revoked_at"}
    assert by_id[first_id]["label"] == "laptop" and by_id[second_id]["expires_at"] is None
    text = json.dumps(items)
    assert first not in text and second not in text and hashlib.sha256(first.encode()).hexdigest() not in text


def test_cli_creates_lists_and_revokes(sqlite_root: Path) -> None:
    done = sayso(sqlite_root, "token", "create", "--user", "alice", "--label", "ci", "--expires", "7", check=True)
    lines = done.stdout.rstrip("\n").splitlines()
    token = lines[-1]
    assert token.startswith("sayso_") and len(token) == 49
    assert "shown once" in done.stdout and token not in done.stderr

    listed = sayso(sqlite_root, "token", "list", "--user", "alice", "--json", check=True).stdout
    assert token not in listed
    (item,) = json.loads(listed)["tokens"]
    assert item["label"] == "ci" and item["revoked_at"] is None and item["expires_at"]
    assert Tokens(_workspace(sqlite_root).store, Clock()).user_for(token) == "alice"

    assert "Revoked" in sayso(sqlite_root, "token", "revoke", item["id"], check=True).stdout
    (item,) = json.loads(sayso(sqlite_root, "token", "list", "--user", "alice", "--json").stdout)["tokens"]
    assert item["revoked_at"]
    with pytest.raises(Unauthorized):
        Tokens(_workspace(sqlite_root).store, Clock()).user_for(token)

    assert sayso(sqlite_root, "token", "revoke", "tok_nope").returncode == 2
    unknown = sayso(sqlite_root, "token", "create", "--user", "nobody")
    assert unknown.returncode == 2 and "sayso_" not in unknown.stdout


# --- OIDC -----------------------------------------------------------------------------


@pytest.fixture
def jwks_url(rsa_key: rsa.RSAPrivateKey, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A JWKS endpoint on 127.0.0.1, like an identity provider's."""
    jwk = json.loads(RSAAlgorithm.to_jwk(rsa_key.public_key()))
    body = json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server name
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    server.shutdown()
    server.server_close()
    thread.join()


def test_oidc_with_a_static_key(sqlite_root: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    directory = _workspace(sqlite_root).directory
    verifier = OidcVerifier(_static(rsa_key))
    assert verifier.user_for(_jwt(rsa_key), directory) == "alice"
    assert verifier.user_for(_jwt(rsa_key, preferred_username="Carol@LumenLabs.example"), directory) == "carol"
    by_email = OidcVerifier(_static(rsa_key, oidc_user_claim="email"))
    assert by_email.user_for(_jwt(rsa_key, email="devi@lumenlabs.example"), directory) == "devi"


def test_oidc_with_a_jwks_url(sqlite_root: Path, rsa_key: rsa.RSAPrivateKey, jwks_url: str) -> None:
    directory = _workspace(sqlite_root).directory
    settings = ServeSettings(oidc_issuer=ISSUER, oidc_audience=AUDIENCE, oidc_jwks_url=jwks_url)
    verifier = OidcVerifier(settings)
    assert verifier.user_for(_jwt(rsa_key), directory) == "alice"
    assert verifier.user_for(_jwt(rsa_key, preferred_username="bob@lumenlabs.example"), directory) == "bob"
    with pytest.raises(Unauthorized):
        verifier.user_for(_jwt(rsa_key, kid="other"), directory)


def test_an_unreachable_identity_provider_is_a_system_failure(sqlite_root: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = ServeSettings(oidc_issuer=ISSUER, oidc_audience=AUDIENCE, oidc_jwks_url=f"http://127.0.0.1:{port}/")
    with pytest.raises(SystemFailure, match="identity provider"):
        OidcVerifier(settings).user_for(_jwt(rsa_key), _workspace(sqlite_root).directory)


def test_oidc_rejects_what_it_should(sqlite_root: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    directory = _workspace(sqlite_root).directory
    verifier = OidcVerifier(_static(rsa_key))
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    good = _jwt(rsa_key)
    header, payload, signature = good.split(".")
    unsigned = jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 300,
                           "preferred_username": "alice"}, "", algorithm="none")
    shared = jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 300,
                         "preferred_username": "alice"}, "s" * 64, algorithm="HS256")
    rejected = {
        "wrong issuer": _jwt(rsa_key, iss="https://evil.example"),
        "wrong audience": _jwt(rsa_key, aud="another-app"),
        "expired": _jwt(rsa_key, lifetime=-3600),
        "not yet valid": _jwt(rsa_key, nbf=int(time.time()) + 3600),
        "bad signature": _jwt(stranger),
        "tampered": f"{header}.{payload[:-2]}AA.{signature}",
        "alg none": unsigned,
        "HS256": shared,
        "garbage": "not-a-jwt",
        "unknown user": _jwt(rsa_key, preferred_username="mallory"),
        "unknown email": _jwt(rsa_key, preferred_username="mallory@lumenlabs.example"),
        "no claim": _jwt(rsa_key, preferred_username=None),
    }
    for why, token in rejected.items():
        with pytest.raises(Unauthorized) as caught:
            verifier.user_for(token, directory)
        assert token not in caught.value.message, why


def test_oidc_settings_must_be_safe(rsa_key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(ConfigurationError, match="oidc_audience"):
        OidcVerifier(ServeSettings(oidc_issuer=ISSUER, oidc_public_key=_pem(rsa_key)))
    with pytest.raises(ConfigurationError, match="exactly one"):
        OidcVerifier(ServeSettings(oidc_issuer=ISSUER, oidc_audience=AUDIENCE))
    with pytest.raises(ConfigurationError, match="public-key"):
        OidcVerifier(_static(rsa_key, oidc_algorithms=["RS256", "HS256"]))
    with pytest.raises(ConfigurationError, match="PEM"):
        OidcVerifier(_static(rsa_key, oidc_public_key="-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----"))


# --- the Authorization header ---------------------------------------------------------


def test_authenticator_reads_the_bearer_header(sqlite_root: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    pem = _pem(rsa_key).replace("\n", "\\n")
    with (sqlite_root / "sayso.toml").open("a") as toml:
        toml.write(f'\n[serve]\noidc_issuer = "{ISSUER}"\noidc_audience = "{AUDIENCE}"\noidc_public_key = "{pem}"\n')
    ws = _workspace(sqlite_root)
    auth = Authenticator(ws, Clock())
    _, token = Tokens(ws.store, Clock()).create("carol")

    assert auth.person(f"Bearer {token}").id == "carol"
    assert auth.person(f"bearer  {token} ").id == "carol"
    assert auth.person(f"Bearer {_jwt(rsa_key)}").id == "alice"
    for header in (None, "", "Bearer", "Bearer ", f"Basic {token}", token, "Basic YWxpY2U6c2VjcmV0"):
        with pytest.raises(Unauthorized) as caught:
            auth.person(header)
        assert token not in caught.value.message
    with pytest.raises(Unauthorized, match=INVALID):
        auth.person("Bearer sayso_" + "A" * 43)


def test_without_oidc_only_sayso_tokens_work(sqlite_root: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    ws = _workspace(sqlite_root)
    auth = Authenticator(ws, Clock())
    assert auth.oidc is None
    with pytest.raises(Unauthorized, match=INVALID):
        auth.person(f"Bearer {_jwt(rsa_key)}")


def test_a_token_stops_working_when_its_person_leaves_the_directory(sqlite_root: Path) -> None:
    ws = _workspace(sqlite_root)
    _, token = Tokens(ws.store, Clock()).create("ghost")
    with pytest.raises(Unauthorized, match=INVALID):
        Authenticator(ws, Clock()).person(f"Bearer {token}")
