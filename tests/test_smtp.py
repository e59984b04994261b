"""Email over SMTP against a real aiosmtpd server on 127.0.0.1: recipients, the key-derived
Message-ID and the why; AUTH PLAIN and LOGIN; STARTTLS and TLS with a certificate made here;
refusals; and a crash during a send surfaced as outcome_unknown, never sent twice."""

from __future__ import annotations

import json
import re
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest

from sayso.connectors import Connector, SystemContext, registry
from sayso.connectors.provenance import stable_id, why_text
from sayso.directory import Directory
from sayso.errors import ConfigurationError, ConnectorError, InvalidArguments, UnknownUser

from .conftest import NOW, sayso, sayso_json
from .servers import free_port
from .switch import switch_system

pytest.importorskip("aiosmtpd", reason="these tests run an aiosmtpd SMTP server (the test extra has it)")
from aiosmtpd.controller import Controller  # noqa: E402
from aiosmtpd.smtp import AuthResult, LoginPassword  # noqa: E402

USER, PASSWORD = "sayso", "Smtp-pw-48ze1"
ORIGIN = {"actor": "alice", "actor_name": "Alice Moreno", "conversation": "c_mail1", "turn": "t_1",
          "request": "email Devi and Priya the renewal terms", "related": ["D-101", "A-7"]}
ARGS = {"to": ["devi", "priya.shah@orchid.example"], "subject": "Orchid renewal", "body": "Terms attached."}


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    tls: bool
    login: str | None


@dataclass
class Inbox:
    """An aiosmtpd handler that keeps every message it accepts, and refuses one domain."""

    messages: list[Received] = field(default_factory=list)
    mechanisms: list[str] = field(default_factory=list)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if address.endswith("@blocked.example"):
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.original_content, policy=default)
        assert isinstance(message, EmailMessage)
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        tls = session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None  # STARTTLS, TLS
        self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message, tls, login))
        return "250 Message accepted for delivery"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        self.mechanisms.append(mechanism)
        good = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
            USER.encode(), PASSWORD.encode())
        return AuthResult(success=good, handled=False, auth_data=auth_data)


@dataclass
class Server:
    port: int
    inbox: Inbox


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    """Start SMTP servers on 127.0.0.1 for one test; ``auth=True`` offers AUTH (PLAIN, LOGIN)."""
    started: list[Controller] = []

    def start(*, auth: bool = False, **options: Any) -> Server:
        inbox = Inbox()
        port = free_port()
        if auth:
            options = {"authenticator": inbox.authenticate, "auth_require_tls": False, **options}
        controller = Controller(inbox, hostname="127.0.0.1", port=port, **options)
        controller.start()
        started.append(controller)
        return Server(port, inbox)

    yield start
    for controller in started:
        controller.stop()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, and its key (made with cryptography)."""
    x509 = pytest.importorskip("cryptography.x509", reason="the TLS tests make a certificate with cryptography")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sayso test SMTP")])
    now = datetime.now(UTC)  # OpenSSL checks validity on the real clock, which the clock-ahead run does not move
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=800)).not_valid_after(now + timedelta(days=800))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(IPv4Address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    return folder / "cert.pem", folder / "key.pem"


@pytest.fixture
def directory(sqlite_root: Path) -> Directory:
    return Directory.load(sqlite_root / "directory.yaml")


def connect(directory: Directory, port: int, root: Path = Path("."), **settings: Any) -> Connector:
    base: dict[str, Any] = {"kind": "smtp", "host": "127.0.0.1", "port": port, "sender": "sayso@lumenlabs.example"}
    context = SystemContext(root, directory, {"smtp_pw": PASSWORD})
    return registry.create("email", {**base, **settings}, context)


def test_send_delivers_one_message_carrying_its_key_and_why(serve: Callable[..., Server], directory: Directory) -> None:
    server = serve()
    email = connect(directory, server.port)
    effect = email.execute("send", ARGS, key="sk_mail1", origin=ORIGIN)
    (got,) = server.inbox.messages
    assert got.mail_from == "sayso@lumenlabs.example"
    assert got.rcpt_tos == ["devi@lumenlabs.example", "priya.shah@orchid.example"]
    message = got.message
    assert message["Message-ID"] == f"<{stable_id('sk_mail1')}@sayso>" == effect.result["message_id"]
    assert message["Subject"] == "Orchid renewal"
    assert message["To"] == "devi@lumenlabs.example, priya.shah@orchid.example"
    assert message["From"] == "Alice Moreno via sayso <sayso@lumenlabs.example>"
    assert message["Reply-To"] == "alice@lumenlabs.example"
    assert message["X-Sayso-Requested-By"] == "Alice Moreno (alice)"
    assert message["X-Sayso-Conversation"] == "c_mail1"
    assert message["X-Sayso-Request"] == "email Devi and Priya the renewal terms"
    assert message["X-Sayso-Related"] == "D-101, A-7"
    body = message.get_content()
    assert body.startswith("Terms attached.") and body.rstrip().endswith(why_text(ORIGIN))
    assert effect.changes[0].after == {"to": got.rcpt_tos, "subject": "Orchid renewal", "body": "Terms attached.",
                                       "sender": "sayso@lumenlabs.example", "message_id": message["Message-ID"]}
    assert effect.summary == "emailed devi@lumenlabs.example, priya.shah@orchid.example: 'Orchid renewal'"
    assert not email.guarantee.can_lookup and email.lookup("sk_mail1") is None  # SMTP cannot be asked


def test_mail_can_go_out_from_the_asking_person(serve: Callable[..., Server], directory: Directory) -> None:
    server = serve()
    email = connect(directory, server.port, sender="person")
    email.execute("send", {**ARGS, "to": ["carol"]}, key="sk_mail2", origin=ORIGIN)
    (got,) = server.inbox.messages
    assert got.mail_from == "alice@lumenlabs.example"
    assert got.message["From"] == "Alice Moreno <alice@lumenlabs.example>" and got.message["Reply-To"] is None
    with pytest.raises(InvalidArguments, match="from the asking person"):
        email.execute("send", ARGS, key="sk_mail3", origin=None)
    assert len(server.inbox.messages) == 1


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_login_then_send_and_a_wrong_password_is_refused_without_showing_it(
    serve: Callable[..., Server], directory: Directory, mechanism: str
) -> None:
    other = "LOGIN" if mechanism == "PLAIN" else "PLAIN"
    server = serve(auth=True, auth_exclude_mechanism=[other])
    email = connect(directory, server.port, username=USER, password_secret="smtp_pw")
    email.execute("send", ARGS, key="sk_auth", origin=ORIGIN)
    assert server.inbox.mechanisms == [mechanism]
    assert [m.login for m in server.inbox.messages] == [USER]
    wrong = "Not-the-pw-17"
    context = SystemContext(Path("."), directory, {"smtp_pw": wrong})
    refused = registry.create("email", {"kind": "smtp", "host": "127.0.0.1", "port": server.port, "username": USER,
                                        "password_secret": "smtp_pw", "sender": "sayso@lumenlabs.example"}, context)
    with pytest.raises(ConnectorError, match="refused the login of 'sayso'") as caught:
        refused.execute("send", ARGS, key="sk_auth2", origin=ORIGIN)
    assert wrong not in str(caught.value) and PASSWORD not in str(caught.value)
    assert wrong not in repr(refused)
    assert len(server.inbox.messages) == 1


@pytest.mark.parametrize("mode", ["starttls", "ssl"])
def test_tls_with_a_certificate_the_workspace_trusts(
    serve: Callable[..., Server], directory: Directory, certificate: tuple[Path, Path], tmp_path: Path, mode: str
) -> None:
    cert, key = certificate
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    if mode == "starttls":
        server = serve(auth=True, tls_context=server_tls, require_starttls=True, auth_require_tls=True)
    else:
        server = serve(auth=True, ssl_context=server_tls)
    (tmp_path / "smtp-ca.pem").write_bytes(cert.read_bytes())
    settings = {mode: True, "username": USER, "password_secret": "smtp_pw"}
    email = connect(directory, server.port, tmp_path, ca_file="smtp-ca.pem", **settings)
    email.execute("send", ARGS, key=f"sk_{mode}", origin=ORIGIN)
    (got,) = server.inbox.messages
    assert got.tls and got.login == USER
    untrusted = connect(directory, server.port, **settings)  # the system's CAs only: the certificate is refused
    with pytest.raises(ConnectorError, match="CERTIFICATE_VERIFY_FAILED"):
        untrusted.execute("send", ARGS, key=f"sk_{mode}2", origin=ORIGIN)
    assert len(server.inbox.messages) == 1


def test_refused_recipients(serve: Callable[..., Server], directory: Directory) -> None:
    server = serve()
    email = connect(directory, server.port)
    effect = email.execute("send", {**ARGS, "to": ["devi", "x@blocked.example"]}, key="sk_some", origin=ORIGIN)
    assert effect.result["refused"] == {"x@blocked.example": "550 5.1.1 no such mailbox"}
    assert [m.rcpt_tos for m in server.inbox.messages] == [["devi@lumenlabs.example"]]
    with pytest.raises(ConnectorError, match="refused every recipient.*nothing was sent"):
        email.execute("send", {**ARGS, "to": ["x@blocked.example"]}, key="sk_none", origin=ORIGIN)
    assert len(server.inbox.messages) == 1


def test_bad_requests_send_nothing(serve: Callable[..., Server], directory: Directory) -> None:
    server = serve()
    email = connect(directory, server.port)
    with pytest.raises(UnknownUser):
        email.execute("send", {**ARGS, "to": ["nobody"]}, key="sk_b1", origin=ORIGIN)
    with pytest.raises(InvalidArguments, match="no valid email address"):
        email.execute("send", {**ARGS, "to": ["not@an address"]}, key="sk_b2", origin=ORIGIN)
    with pytest.raises(InvalidArguments, match="one line"):
        email.execute("send", {**ARGS, "subject": "Hi\nBcc: everyone@lumenlabs.example"}, key="sk_b3", origin=ORIGIN)
    with pytest.raises(InvalidArguments, match="to"):
        email.execute("send", {**ARGS, "to": []}, key="sk_b4", origin=ORIGIN)
    with pytest.raises(InvalidArguments, match="no operation"):
        email.execute("recall", {}, key="sk_b5", origin=ORIGIN)
    assert server.inbox.messages == []


@pytest.mark.parametrize(("settings", "message"), [
    ({"host": None}, "needs host"),
    ({"sender": None}, "needs sender"),
    ({"sender": "not an address"}, "sender must be an email address"),
    ({"starttls": True, "ssl": True}, "not both"),
    ({"starttls": "yes"}, "starttls must be true or false"),
    ({"port": 70000}, "port must be"),
    ({"username": USER}, "go together"),
    ({"username": USER, "password_secret": "unset"}, "'unset' is not set"),
    ({"host": "smtp.example.com", "username": USER, "password_secret": "smtp_pw"}, "unencrypted"),
    ({"ca_file": "missing.pem"}, "does not exist"),
    ({"timeout": -1}, "timeout"),
    ({"helo": "x"}, "unknown smtp setting"),
], ids=["no-host", "no-sender", "bad-sender", "tls-twice", "flag-type", "port", "user-alone", "missing-secret",
        "password-in-clear", "ca-file", "timeout", "unknown-key"])
def test_bad_settings_are_configuration_errors(directory: Directory, settings: dict[str, Any], message: str) -> None:
    base: dict[str, Any] = {"kind": "smtp", "host": "127.0.0.1", "port": 2525, "sender": "sayso@lumenlabs.example"}
    chosen = {k: v for k, v in {**base, **settings}.items() if v is not None}
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        registry.create("email", chosen, SystemContext(Path("."), directory, {"smtp_pw": PASSWORD}))


def test_an_unreachable_server_is_a_connector_error_without_the_password(directory: Directory) -> None:
    email = connect(directory, free_port(), username=USER, password_secret="smtp_pw", timeout=5)
    with pytest.raises(ConnectorError, match="127.0.0.1") as caught:
        email.execute("send", ARGS, key="sk_down", origin=ORIGIN)
    assert PASSWORD not in str(caught.value) and "may or may not" not in str(caught.value)


def switch_email(root: Path, port: int) -> None:
    """The demo workspace's email, moved to SMTP by editing sayso.toml alone."""
    switch_system(root, "email", f'kind = "smtp"\nhost = "127.0.0.1"\nport = {port}\nusername = "{USER}"\n'
                  'password_secret = "smtp_password"\nsender = "sayso@lumenlabs.example"\n',
                  {"smtp_password": "SAYSO_TEST_SMTP_PASSWORD"})


def test_crash_during_a_send_is_outcome_unknown_and_never_sent_again(
    demo_root: Path, serve: Callable[..., Server]
) -> None:
    server = serve(auth=True)
    switch_email(demo_root, server.port)
    env = {"SAYSO_TEST_SMTP_PASSWORD": PASSWORD}
    args = json.dumps({"to": ["devi"], "subject": "Orchid", "body": "renewal terms attached"})
    crashed = sayso(demo_root, "do", "--user", "alice", "--action", "email.send", "--args", args, "--now", NOW,
                    env={**env, "SAYSO_FAULT": "crash-after-effect"})
    assert crashed.returncode == 137, crashed.stderr
    (got,) = server.inbox.messages  # it went out; sayso did not record it
    assert got.rcpt_tos == ["devi@lumenlabs.example"] and got.login == USER
    assert got.message["X-Sayso-Requested-By"] == "Alice Moreno (alice)"

    code, recovered = sayso_json(demo_root, "recover", "--now", NOW, env=env)
    assert code == 0 and len(recovered["recovered"]) == 1
    step = recovered["recovered"][0]["steps"][0]
    assert step["status"] == "outcome_unknown"
    assert "cannot tell whether" in step["error"]  # said to the person, not guessed
    assert len(server.inbox.messages) == 1  # not sent again

    code, again = sayso_json(demo_root, "recover", "--now", NOW, env=env)
    assert again["recovered"] == [] and len(server.inbox.messages) == 1
    records = [json.loads(line) for line in sayso(demo_root, "audit", "list", "--json", env=env).stdout.splitlines()]
    assert any(r["event"] == "call" and r["status"] == "outcome_unknown" and r["action"] == "email.send"
               for r in records)
    assert PASSWORD not in json.dumps(records)
    stored = b"".join(p.read_bytes() for p in demo_root.glob("state.db*"))
    assert PASSWORD.encode() not in stored
