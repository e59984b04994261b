"""Email over SMTP (kind ``smtp``): the demo email's ``send``, through any SMTP server.

The Message-ID is derived from the step's idempotency key, the ``X-Sayso-*`` headers say who
asked and where, and the body ends with the request in the person's words. SMTP cannot be asked
afterwards whether a message went out, so the guarantee is ``at_least_once``: after a crash
during a send, ``sayso recover`` marks the step ``outcome_unknown`` and tells the person instead
of sending again. Sent mail cannot be recalled, so there is no undo.

Settings (``[systems.<name>]``): ``host``, ``port``, ``starttls``, ``ssl``, ``username``,
``password_secret``, ``sender`` (an address, or ``"person"`` for the asking person's own),
``timeout`` (seconds, default 30), ``ca_file`` (a CA bundle to trust, relative to the workspace).
See docs/connectors/smtp.md.
"""

from __future__ import annotations

import re
import smtplib
import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import formataddr, formatdate
from pathlib import Path
from typing import Any

from ..directory import Directory, Person
from ..errors import ConnectorError, InvalidArguments, OutcomeUnknown
from . import ConnectorRegistry, SystemContext
from ._common import Settings, is_loopback, parse_args
from .base import Change, Connector, Effect, Guarantee
from .demo._messaging import message_id
from .operations import SendEmail
from .provenance import why_fields, why_text

__all__ = ["SmtpEmail", "register"]

_SETTINGS = frozenset(
    {"kind", "host", "port", "starttls", "ssl", "username", "password_secret", "sender", "timeout", "ca_file"}
)
_ADDRESS = re.compile(r"[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[^@\s<>,;\"]+")


def _one_line(text: str, size: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= size else flat[: size - 1] + "…"


class SmtpEmail(Connector):
    """Sends one message per step through an SMTP server, one connection per message."""

    # An SMTP server cannot be asked whether it accepted a message: a send cut by a crash has
    # an unknown outcome, which recovery reports instead of sending the message twice.
    guarantee = Guarantee.AT_LEAST_ONCE

    def __init__(
        self,
        name: str,
        *,
        host: str,
        port: int,
        sender: str,
        directory: Directory,
        starttls: bool = False,
        use_ssl: bool = False,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30,
        ca_file: Path | None = None,
    ) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.sender = sender
        self.starttls = starttls
        self.use_ssl = use_ssl
        self.username = username
        self._password = password
        self.timeout = timeout
        self.ca_file = ca_file
        self._directory = directory

    def __repr__(self) -> str:
        return f"SmtpEmail(name={self.name!r}, host={self.host!r}, port={self.port}, sender={self.sender!r})"

    # --- the message -----------------------------------------------------------------

    def _recipients(self, recipients: list[str]) -> list[str]:
        addresses: list[str] = []
        for recipient in recipients:
            address = recipient.strip() if "@" in recipient else self._directory.get(recipient).email
            if not _ADDRESS.fullmatch(address):
                raise InvalidArguments(f"email.send: {recipient!r} has no valid email address")
            if address.lower() not in (a.lower() for a in addresses):
                addresses.append(address)
        return addresses

    def _asker(self, origin: Mapping[str, Any] | None) -> Person | None:
        actor = (origin or {}).get("actor")
        return self._directory.get(str(actor)) if actor and str(actor) in self._directory else None

    def _from(self, asker: Person | None) -> tuple[str, str, str | None]:
        """(envelope sender, From header, Reply-To header or None)."""
        if self.sender == "person":
            if asker is None or not _ADDRESS.fullmatch(asker.email):
                who = asker.id if asker else "no known person"
                raise InvalidArguments(f"email.send: mail goes out from the asking person, and {who} has no email")
            return asker.email, formataddr((asker.name, asker.email)), None
        if asker is None:
            return self.sender, self.sender, None
        reply_to = asker.email if _ADDRESS.fullmatch(asker.email) else None
        return self.sender, formataddr((f"{asker.name} via sayso", self.sender)), reply_to

    def _message(self, p: SendEmail, to: list[str], key: str, origin: Mapping[str, Any] | None) -> EmailMessage:
        asker = self._asker(origin)
        _, sender, reply_to = self._from(asker)
        message = EmailMessage()
        try:
            message["From"] = sender
            message["To"] = ", ".join(to)
            if reply_to:
                message["Reply-To"] = reply_to
            message["Subject"] = p.subject
        except ValueError:
            raise InvalidArguments("email.send: the subject must be one line") from None
        message["Date"] = formatdate(usegmt=True)
        message["Message-ID"] = message_id(key)
        fields = why_fields(origin)
        requested_by = f"{asker.name} ({asker.id})" if asker else fields.get("asked_by")
        headers = {
            "X-Sayso-Requested-By": requested_by,
            "X-Sayso-Conversation": fields.get("conversation"),
            "X-Sayso-Turn": fields.get("turn"),
            "X-Sayso-Request": _one_line(str(fields["request"])) if "request" in fields else None,
            "X-Sayso-Related": ", ".join(map(str, fields.get("related") or [])),
        }
        for header, value in headers.items():
            if value:
                message[header] = _one_line(str(value))
        why = why_text(origin)
        message.set_content(f"{p.body.rstrip()}\n\n-- \n{why}\n" if why else p.body)
        return message

    # --- the server ------------------------------------------------------------------

    def _where(self) -> str:
        return f"{self.name}: the SMTP server at {self.host}:{self.port}"

    def _clean(self, text: object) -> str:
        shown = " ".join((text.decode(errors="replace") if isinstance(text, bytes) else str(text)).split())
        if self._password:
            shown = shown.replace(self._password, "[redacted]")
        return shown[:300]

    def _send(self, message: EmailMessage, envelope: str, to: list[str]) -> dict[str, tuple[int, bytes]]:
        """Hand the message over; the recipients the server refused, if it took the others."""
        context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        sending = False
        try:
            if self.use_ssl:
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            try:
                if self.starttls:
                    smtp.starttls(context=context)
                if self.username and self._password is not None:
                    smtp.login(self.username, self._password)
                sending = True
                refused = smtp.send_message(message, from_addr=envelope, to_addrs=to)
            finally:
                try:
                    smtp.quit()
                except (smtplib.SMTPException, OSError):
                    smtp.close()
        except smtplib.SMTPAuthenticationError as exc:
            raise ConnectorError(f"{self._where()} refused the login of {self.username!r}: "
                                 f"{exc.smtp_code} {self._clean(exc.smtp_error)}") from None
        except smtplib.SMTPRecipientsRefused as exc:
            refusals = "; ".join(f"{a}: {code} {self._clean(text)}" for a, (code, text) in exc.recipients.items())
            raise ConnectorError(f"{self._where()} refused every recipient ({refusals}); nothing was sent") from None
        except smtplib.SMTPNotSupportedError as exc:
            raise ConnectorError(f"{self._where()} lacks what its settings ask for: {self._clean(exc)}") from None
        except smtplib.SMTPResponseException as exc:
            raise ConnectorError(f"{self._where()} answered {exc.smtp_code} {self._clean(exc.smtp_error)}; "
                                 "nothing was sent") from None
        except (smtplib.SMTPException, OSError) as exc:
            maybe = "; the message may or may not have been sent" if sending else ""
            failure = OutcomeUnknown if sending else ConnectorError
            raise failure(f"{self._where()} failed: {type(exc).__name__}: {self._clean(exc)}{maybe}") from None
        return refused

    # --- the connector interface -----------------------------------------------------

    def execute(
        self, operation: str, args: dict[str, Any], *, key: str, origin: dict[str, Any] | None = None
    ) -> Effect:
        if operation != "send":
            raise InvalidArguments(f"{self.name} has no operation {operation!r} (it has: send)")
        p = parse_args(SendEmail, args, "email.send")
        to = self._recipients(p.to)
        envelope = self._from(self._asker(origin))[0]
        message = self._message(p, to, key, origin)
        refused = self._send(message, envelope, to)
        header = str(message["Message-ID"])
        result: dict[str, Any] = {"id": header, "message_id": header}
        summary = f"emailed {', '.join(to)}: {_one_line(p.subject, 60)!r}"
        if refused:
            result["refused"] = {address: f"{code} {self._clean(text)}" for address, (code, text) in refused.items()}
            summary += f" (refused: {', '.join(refused)})"
        values = {"to": to, "subject": p.subject, "body": p.body, "sender": envelope, "message_id": header}
        change = Change(record_type="Email", record_id=header.strip("<>"), title=p.subject, after=values, version=1)
        return Effect(key=key, operation=operation, changes=[change], result=result, summary=summary)


def _create(name: str, settings: Mapping[str, Any], context: SystemContext) -> SmtpEmail:
    read = Settings(name, settings, kind="smtp")
    read.refuse_unknown(_SETTINGS)
    host = read.required_text("host")
    starttls, use_ssl = read.flag("starttls"), read.flag("ssl")
    if starttls and use_ssl:
        raise read.error("choose starttls (port 587) or ssl (port 465), not both")
    port = settings.get("port", 465 if use_ssl else 587 if starttls else 25)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise read.error("port must be a number from 1 to 65535")
    username = read.text("username")
    secret_name = read.text("password_secret")
    if bool(username) != bool(secret_name):
        raise read.error("username and password_secret go together")
    password = context.secret(secret_name) if secret_name else None
    if password is not None and not (starttls or use_ssl) and not is_loopback(host):
        raise read.error(f"refusing to send a password unencrypted to {host}; set starttls = true or ssl = true")
    sender = read.required_text("sender")
    if sender != "person" and not _ADDRESS.fullmatch(sender):
        raise read.error(f"sender must be an email address or \"person\", not {sender!r}")
    timeout = read.seconds()
    ca_name = read.text("ca_file")
    ca_file = context.root / ca_name if ca_name else None
    if ca_file is not None and not ca_file.is_file():
        raise read.error(f"ca_file {str(ca_file)!r} does not exist")
    return SmtpEmail(
        name, host=host, port=port, sender=sender, directory=context.directory, starttls=starttls,
        use_ssl=use_ssl, username=username, password=password, timeout=timeout, ca_file=ca_file,
    )


def register(registry: ConnectorRegistry) -> None:
    """Add the kind ``smtp``."""
    registry.add("smtp", _create)
