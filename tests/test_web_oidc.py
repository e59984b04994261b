"""Sign-in with an identity provider on the web page: the authorization-code flow with PKCE, run by the
page's own JavaScript in real headless Chromium, against a tiny OIDC provider written here (on 127.0.0.1)
and the real ``sayso serve`` in a child process.

The provider publishes a discovery document and a JWKS (an RSA key made here), signs alice in at once at
``/authorize`` and, at ``/token``, checks the PKCE ``code_verifier`` against the stored challenge before it
signs an ID token. sayso discovers the endpoints itself and verifies the ID token against the JWKS.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from sayso import Workspace

from . import test_web as web
from .conftest import NOW, R
from .servers import free_port

pytest.importorskip("jwt", reason="OIDC needs the serve extra: pip install 'sayso[serve]'")

import jwt  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402
from jwt.algorithms import RSAAlgorithm  # noqa: E402

# The browser fixtures and helpers of the web page's test: ``page`` opens this module's ``site``.
browser = web.browser
page = web.page
Site = web.Site
needs_browser = pytest.mark.skipif(web._why_skip() is not None, reason=web._why_skip() or "")

CLIENT_ID = "sayso-web"
USER = "alice"
KID = "test-key"


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


class Provider:
    """A minimal OIDC provider: discovery, JWKS, an /authorize that consents for alice, a PKCE-checking /token."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.url = ""
        self.redirect_uris: set[str] = set()
        self.origins: set[str] = set()  # the web origins allowed to call /token from a page (CORS)
        self.codes: dict[str, dict[str, str]] = {}
        self.issued: list[str] = []  # every code and token handed out: none may reach sayso's log
        self.authorizations: list[dict[str, str]] = []
        self.exchanges: list[dict[str, str]] = []
        self.refusals: list[str] = []
        self.discoveries = 0
        self.forge_state = False  # answer with a state the page did not send
        self.foreign_code = False  # answer with a code bound to someone else's PKCE challenge
        self.forge_nonce = False  # sign an ID token made for another sign-in
        self.lock = threading.Lock()

    def reset(self) -> None:
        with self.lock:
            self.forge_state = self.foreign_code = self.forge_nonce = False
            self.authorizations.clear()
            self.exchanges.clear()
            self.refusals.clear()

    def mint(self, *, lifetime: int = 300, **claims: Any) -> str:
        now = int(time.time())
        payload = {"iss": self.url, "aud": CLIENT_ID, "sub": "u-alice", "iat": now, "exp": now + lifetime,
                   "preferred_username": USER, "email": "alice@lumenlabs.example", **claims}
        token = jwt.encode(payload, self.key, algorithm="RS256", headers={"kid": KID})
        self.issued.append(token)
        return token

    def discovery(self) -> dict[str, Any]:
        return {"issuer": self.url, "authorization_endpoint": f"{self.url}/authorize",
                "token_endpoint": f"{self.url}/token", "jwks_uri": f"{self.url}/jwks",
                "response_types_supported": ["code"], "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"], "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["none"]}

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**jwk, "kid": KID, "use": "sig", "alg": "RS256"}]}

    def authorize(self, query: dict[str, str]) -> tuple[int, dict[str, str], dict[str, Any]]:
        """Consent at once for alice: a redirect back with a code bound to the request's PKCE challenge."""
        with self.lock:
            self.authorizations.append(query)
            redirect = query.get("redirect_uri", "")
            if (query.get("response_type") != "code" or query.get("client_id") != CLIENT_ID
                    or redirect not in self.redirect_uris or query.get("code_challenge_method") != "S256"
                    or len(query.get("code_challenge", "")) != 43 or not query.get("state")
                    or not query.get("nonce")):
                return 400, {}, {"error": "invalid_request"}
            code = secrets.token_urlsafe(24)
            # An attacker's code, injected into this person's answer, is bound to the attacker's challenge.
            challenge = _s256(secrets.token_urlsafe(32)) if self.foreign_code else query["code_challenge"]
            self.codes[code] = {"challenge": challenge, "nonce": query["nonce"], "redirect_uri": redirect}
            self.issued.append(code)
            answer = {"code": code, "state": "forged-" + secrets.token_urlsafe(8) if self.forge_state
                      else query["state"], "iss": self.url}
            return 302, {"Location": f"{redirect}?{urlencode(answer)}"}, {}

    def token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.exchanges.append(form)
            grant = self.codes.pop(form.get("code", ""), None)  # a code works once
            if form.get("grant_type") != "authorization_code" or grant is None:
                self.refusals.append("code")
            elif form.get("client_id") != CLIENT_ID or form.get("redirect_uri") != grant["redirect_uri"]:
                self.refusals.append("client")
            elif "client_secret" in form:
                self.refusals.append("client_secret")  # a public client has none to send
            elif _s256(form.get("code_verifier", "")) != grant["challenge"]:
                self.refusals.append("code_verifier")
            else:
                id_token = self.mint(nonce="replayed" if self.forge_nonce else grant["nonce"])
                access = self.mint(aud="https://api.lumenlabs.example")
                return 200, {"access_token": access, "id_token": id_token, "token_type": "Bearer",
                             "expires_in": 300, "scope": "openid profile email"}
            return 400, {"error": "invalid_grant", "error_description": "the grant was refused"}


def _handler(provider: Provider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, body: dict[str, Any] | None, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            origin = self.headers.get("Origin")
            if origin in provider.origins:  # like a real provider: only the registered web origins
                self.send_header("Access-Control-Allow-Origin", origin)
                self.send_header("Access-Control-Allow-Headers", "Content-Type, Accept")
                self.send_header("Vary", "Origin")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 - the http.server name
            parts = urlsplit(self.path)
            if parts.path == "/.well-known/openid-configuration":
                with provider.lock:
                    provider.discoveries += 1
                self._send(200, provider.discovery())
            elif parts.path == "/jwks":
                self._send(200, provider.jwks())
            elif parts.path == "/authorize":
                status, headers, body = provider.authorize({k: v[0] for k, v in parse_qs(parts.query).items()})
                self._send(status, body or None, headers)
            else:
                self._send(404, {"error": "not_found"})

        def do_POST(self) -> None:  # noqa: N802
            if urlsplit(self.path).path != "/token":
                self._send(404, {"error": "not_found"})
                return
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            status, body = provider.token({k: v[0] for k, v in parse_qs(raw).items()})
            self._send(status, body)

        def do_OPTIONS(self) -> None:  # noqa: N802 - a CORS preflight, should the browser send one
            self._send(204, None, {"Access-Control-Allow-Methods": "POST"})

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    idp = Provider()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(idp))
    idp.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="oidc-provider", daemon=True)
    thread.start()
    try:
        yield idp
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _log(site: Site) -> str:
    return (site.root.parent / "serve.log").read_text()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, provider: Provider) -> Iterator[Site]:
    """The demo workspace with OIDC sign-in set up, served by the real ``sayso serve`` on loopback."""
    root = Workspace.init(tmp_path_factory.mktemp("oidc") / "ws", demo=True, reference=R)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    provider.redirect_uris.add(f"{url}/auth/callback")
    provider.origins.add(url)
    with (root / "sayso.toml").open("a") as toml:  # no endpoints: sayso discovers them from the issuer
        toml.write(f'\n[serve]\noidc_issuer = "{provider.url}"\noidc_audience = "{CLIENT_ID}"\n'
                   f'oidc_jwks_url = "{provider.url}/jwks"\noidc_client_id = "{CLIENT_ID}"\n')
    env = {**os.environ, "SAYSO_LOG": "info", "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    log = (root.parent / "serve.log").open("w")
    command = [sys.executable, "-m", "sayso", "serve", "--workspace", str(root), "--port", str(port), "--now", NOW]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if _get(f"{url}/healthz")[0] == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sayso serve did not start:\n{(root.parent / 'serve.log').read_text()}")
            time.sleep(0.1)
        yield Site(root, url, {})
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


@pytest.fixture(autouse=True)
def _fresh_provider(provider: Provider) -> None:
    provider.reset()


def _storage(page: Any, key: str) -> Any:
    return page.evaluate("(key) => sessionStorage.getItem(key)", key)


def _sign_in_button(page: Any, provider: Provider) -> Any:
    return page.get_by_role("button", name=f"Sign in with {urlsplit(provider.url).netloc}")


def _sign_in_with_the_provider(page: Any, provider: Provider) -> None:
    """By keyboard: the sign-in button has the focus when the page opens; Enter starts the flow."""
    from playwright.sync_api import expect

    button = _sign_in_button(page, provider)
    expect(button).to_be_focused()
    page.keyboard.press("Enter")


@needs_browser
def test_alice_signs_in_with_the_identity_provider_and_chats(page: Any, site: Site, provider: Provider) -> None:
    from playwright.sync_api import expect

    expect(page.get_by_label("Access token")).to_be_visible()  # the token form stays beside it
    _sign_in_with_the_provider(page, provider)
    expect(page.locator("#who")).to_contain_text("Alice")
    expect(page.get_by_label("Message")).to_be_focused()
    expect(page).to_have_url(f"{site.url}/")  # the code is gone from the address bar

    (asked,) = provider.authorizations
    assert asked["scope"] == "openid profile email" and asked["client_id"] == CLIENT_ID
    assert asked["redirect_uri"] == f"{site.url}/auth/callback" and asked["code_challenge_method"] == "S256"
    assert len({asked["state"], asked["nonce"], asked["code_challenge"]}) == 3
    (exchange,) = provider.exchanges
    assert provider.refusals == [] and "client_secret" not in exchange
    assert _s256(exchange["code_verifier"]) == asked["code_challenge"]
    token = _storage(page, "sayso.token")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["aud"] == CLIENT_ID and claims["nonce"] == asked["nonce"]  # the ID token is the bearer
    assert _storage(page, "sayso.oidc") is None and _storage(page, "sayso.via") == "oidc"

    answer = web._say(page, "which of my deals close in the next 30 days?")
    expect(answer).to_have_attribute("data-status", "answered")
    expect(answer.locator("tbody tr").first).to_contain_text("Brightwater Expansion")
    web._screenshot(page, "web-oidc.png")

    page.reload()  # the session survives a reload in this tab
    expect(page.locator("#who")).to_contain_text("Alice")

    page.get_by_role("button", name="Sign out").click()
    expect(_sign_in_button(page, provider)).to_be_focused()
    assert _storage(page, "sayso.token") is None and _storage(page, "sayso.via") is None

    log = _log(site)
    assert "GET /v1/me 200" in log and "POST /v1/conversations" in log  # the log is there, and ...
    leaked = [value for value in provider.issued if value in log]
    assert leaked == [] and "code=" not in log  # ... holds no code and no token


@needs_browser
def test_an_answer_with_another_state_is_refused(page: Any, site: Site, provider: Provider) -> None:
    from playwright.sync_api import expect

    provider.forge_state = True
    _sign_in_with_the_provider(page, provider)
    expect(page.locator("#notice")).to_contain_text("its state differs")
    expect(page.locator("#app")).to_be_hidden()
    expect(_sign_in_button(page, provider)).to_be_focused()
    expect(page).to_have_url(f"{site.url}/")
    assert len(provider.authorizations) == 1 and provider.exchanges == []  # the code was never redeemed
    assert _storage(page, "sayso.token") is None and _storage(page, "sayso.oidc") is None

    # A provider's error, or a link made to look like one, shows only its code, never the link's text.
    page.goto(f"{site.url}/auth/callback?error=access_denied&error_description=Call+0800+555+now")
    expect(page.locator("#notice")).to_contain_text("did not sign you in (access_denied)")
    expect(page.locator("#notice")).not_to_contain_text("0800")
    expect(page.locator("#app")).to_be_hidden()
    web._screenshot(page, "web-oidc-signin.png")


@needs_browser
def test_a_code_redeemed_with_another_verifier_is_refused(page: Any, site: Site, provider: Provider) -> None:
    from playwright.sync_api import expect

    provider.foreign_code = True  # the code in the answer is bound to someone else's code_challenge
    _sign_in_with_the_provider(page, provider)
    expect(page.locator("#notice")).to_contain_text("refused the sign-in (invalid_grant)")
    expect(page.locator("#app")).to_be_hidden()
    assert provider.refusals == ["code_verifier"]
    assert _storage(page, "sayso.token") is None and _storage(page, "sayso.oidc") is None


@needs_browser
def test_an_id_token_made_for_another_sign_in_is_refused(page: Any, site: Site, provider: Provider) -> None:
    from playwright.sync_api import expect

    provider.forge_nonce = True  # a valid, signed ID token, but not the answer to this tab's nonce
    _sign_in_with_the_provider(page, provider)
    expect(page.locator("#notice")).to_contain_text("does not carry this sign-in's nonce")
    expect(page.locator("#app")).to_be_hidden()
    assert len(provider.exchanges) == 1 and provider.refusals == []
    assert _storage(page, "sayso.token") is None


@needs_browser
def test_an_expired_sign_in_returns_to_the_sign_in_page(page: Any, site: Site, provider: Provider) -> None:
    from playwright.sync_api import expect

    _sign_in_with_the_provider(page, provider)
    expect(page.locator("#who")).to_contain_text("Alice")
    # well past the server's 30 seconds of leeway, and expired for the browser too, whose clock the suite's
    # clock-ahead run does not move (a year back from the moved clock)
    expired = provider.mint(lifetime=-400 * 86400)
    page.evaluate("(token) => sessionStorage.setItem('sayso.token', token)", expired)
    page.reload()
    expect(page.locator("#notice")).to_contain_text(f"Your sign-in with {urlsplit(provider.url).netloc} has expired")
    expect(page.locator("#app")).to_be_hidden()
    expect(_sign_in_button(page, provider)).to_be_focused()
    assert _storage(page, "sayso.token") is None


def test_the_sign_in_config_is_public_and_holds_no_secret(site: Site, provider: Provider) -> None:
    status, text = _get(f"{site.url}/v1/auth/config")  # no token
    assert status == 200
    config = json.loads(text)["oidc"]
    assert config == {"issuer": provider.url, "client_id": CLIENT_ID, "scopes": "openid profile email",
                      "authorization_endpoint": f"{provider.url}/authorize", "token_endpoint": f"{provider.url}/token",
                      "token": "id_token", "redirect_path": "/auth/callback", "params": {}}
    assert provider.discoveries >= 1  # the endpoints were discovered from the issuer, not configured
    assert not any(word in text.lower() for word in ("secret", "private", "-----begin", "password"))
    assert _get(f"{site.url}/v1/me")[0] == 401  # while everything else still needs a token
    status, page_html = _get(f"{site.url}/auth/callback?code=x&state=y")
    assert status == 200 and 'id="oidc-signin"' in page_html


def test_sign_in_settings_must_be_safe_and_discovery_must_match(provider: Provider) -> None:
    from sayso.config import ServeSettings
    from sayso.errors import ConfigurationError, SystemFailure
    from sayso.serve.auth import OidcLogin

    base: dict[str, Any] = {"oidc_issuer": "https://id.example", "oidc_audience": CLIENT_ID,
                            "oidc_jwks_url": "https://id.example/jwks", "oidc_client_id": CLIENT_ID}
    refused = {
        "the client id": {"oidc_audience": "https://api.example"},  # an ID token's audience is the client id
        "openid": {"oidc_scopes": "profile email"},
        "oidc_issuer must be an https URL": {"oidc_issuer": "http://id.example"},
        "oidc_token_endpoint must be an https URL": {"oidc_token_endpoint": "http://id.example/token"},
        "may not set": {"oidc_authorize_params": {"state": "fixed"}},
    }
    for why, change in refused.items():
        with pytest.raises(ConfigurationError, match=why):
            OidcLogin(ServeSettings(**{**base, **change}))

    # Configured endpoints need no discovery; an access token for an API audience is the bearer instead.
    access = OidcLogin(ServeSettings(**{**base, "oidc_audience": "https://api.example", "oidc_login_token":
                                        "access_token", "oidc_authorization_endpoint": "https://id.example/auth",
                                        "oidc_token_endpoint": "https://id.example/token",
                                        "oidc_authorize_params": {"audience": "https://api.example"}}))
    config = access.config()
    assert config["token"] == "access_token" and config["params"] == {"audience": "https://api.example"}
    assert config["authorization_endpoint"] == "https://id.example/auth"

    # A discovery document that names another issuer is refused, and not fetched again at once.
    other = OidcLogin(ServeSettings(**{**base, "oidc_issuer": f"{provider.url}/", "oidc_jwks_url": None,
                                       "oidc_public_key": "unused"}))
    before = provider.discoveries
    with pytest.raises(SystemFailure, match="another issuer"):
        other.config()
    with pytest.raises(SystemFailure, match="try again shortly"):
        other.config()
    assert provider.discoveries == before + 1
