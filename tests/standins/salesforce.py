"""A small Salesforce on 127.0.0.1, over HTTPS with a throwaway certificate authority: the REST
endpoints sayso's ``salesforce`` connector reaches through simple-salesforce, with the request and
response shapes of Salesforce's documentation, and records kept in memory so tests can count them.

Endpoints (under ``/services/data/v<version>``): ``query`` (a SOQL subset: SELECT fields and
relationship fields such as ``Owner.Email`` FROM one object, WHERE with AND, OR, NOT, parentheses,
= != < <= > >= LIKE IN, ORDER BY, LIMIT), ``sobjects/<Object>/<Id>`` (GET, PATCH, DELETE), and
upsert by external id, ``PATCH sobjects/<Object>/<Field>/<value>``. Users, Accounts, Contacts and
Opportunities are seeded from the demo CRM (``D-101`` becomes an Opportunity with its own Salesforce
id: see :meth:`SalesforceStandIn.deal`). Error bodies come from ``tests/recorded/salesforce``.
"""

from __future__ import annotations

import copy
import datetime as dt
import ipaddress
import json
import re
import ssl
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from sayso.connectors.demo._crm import ACCOUNTS, CONTACTS, DEALS

from ._server import ApiError, RestStandIn

RECORDED = Path(__file__).resolve().parent.parent / "recorded" / "salesforce"
REFERENCE = dt.date(2026, 11, 25)

PEOPLE = [("alice", "Alice Moreno"), ("bob", "Bob Chen"), ("carol", "Carol Diaz"), ("devi", "Devi Rao"),
          ("wes", "Wesley Park"), ("sam", "Sam Okafor"), ("fiona", "Fiona Grant"), ("ines", "Ines Kowalski")]
STAGES = {"Prospecting": False, "Qualification": False, "Needs Analysis": False, "Proposal/Price Quote": False,
          "Negotiation/Review": False, "Closed Won": True, "Closed Lost": True}  # name -> closed
DEMO_STAGES = {"prospecting": "Prospecting", "qualification": "Qualification", "proposal": "Proposal/Price Quote",
               "negotiation": "Negotiation/Review", "closed_won": "Closed Won", "closed_lost": "Closed Lost"}
UNEXPECTED = [{"message": "An unexpected error occurred.", "errorCode": "UNKNOWN_EXCEPTION"}]
PREFIXES = {"User": "005", "Account": "001", "Contact": "003", "Opportunity": "006", "Task": "00T"}


def recorded(name: str) -> Any:
    return json.loads((RECORDED / name).read_text())


class SalesforceError(ApiError):
    """An error answer of Salesforce: its status and body (a list of errors)."""


def _error(status: int, code: str, message: str, fields: list[str] | None = None) -> SalesforceError:
    item: dict[str, Any] = {"message": message, "errorCode": code}
    if fields is not None:
        item["fields"] = fields
    return SalesforceError(status, [item])


class SalesforceStandIn(RestStandIn):
    """Objects by type and id, and a threaded HTTPS server speaking Salesforce's REST API."""

    fault_answer = UNEXPECTED

    def __init__(self, *, session_id: str = "00DHs000000sayso!AQ4AQFake.session.for.tests",
                 key_field: str | None = "Sayso_Key__c", version: str = "59.0") -> None:
        super().__init__()
        self.session_id = session_id
        self.key_field = key_field
        self.version = version
        self.fields: dict[str, set[str]] = {
            "User": {"Id", "Name", "Email", "IsActive", "SystemModstamp"},
            "Account": {"Id", "Name", "Industry", "BillingState", "OwnerId", "Description", "SystemModstamp"},
            "Contact": {"Id", "Name", "Title", "Email", "AccountId", "SystemModstamp"},
            "Opportunity": {"Id", "Name", "Amount", "StageName", "CloseDate", "IsClosed", "IsWon", "Description",
                            "AccountId", "OwnerId", "SystemModstamp", "Loss_Reason__c"},
            "Task": {"Id", "Subject", "Description", "Status", "ActivityDate", "Priority", "WhatId", "WhoId",
                     "OwnerId", "IsClosed", "SystemModstamp"},
        }
        if key_field:
            for name in ("Account", "Opportunity", "Task"):
                self.fields[name].add(key_field)
        self.objects: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in self.fields}
        self._numbers = 0
        self._clock = dt.datetime(2026, 11, 25, 8, 0, tzinfo=dt.UTC)
        self._folder = tempfile.TemporaryDirectory(prefix="sf-standin-")
        self.ca_file = Path(self._folder.name) / "ca.pem"
        self.bot = self._insert("User", {"Name": "sayso integration", "Email": "sayso-bot@lumenlabs.example",
                                         "IsActive": True})
        self.deals: dict[str, str] = {}
        self._seed()

    # --- what tests look at ---------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def deal(self, demo_id: str) -> str:
        """The Salesforce id of a demo deal (``D-101`` -> ``006...``)."""
        return self.deals[demo_id]

    def tasks(self) -> list[dict[str, Any]]:
        return list(self.objects["Task"].values())

    def record(self, sobject: str, record_id: str) -> dict[str, Any]:
        return self.objects[sobject][record_id]

    def user(self, person: str) -> str:
        return next(i for i, u in self.objects["User"].items() if u["Email"] == f"{person}@lumenlabs.example")

    # --- state --------------------------------------------------------------------------

    def _stamp(self) -> str:
        self._clock += dt.timedelta(seconds=1)
        return self._clock.strftime("%Y-%m-%dT%H:%M:%S.000+0000")

    def _insert(self, sobject: str, values: dict[str, Any]) -> str:
        self._numbers += 1
        record_id = f"{PREFIXES[sobject]}Hs{self._numbers:013d}"
        record = {field: None for field in self.fields[sobject]}
        record.update(values, Id=record_id, SystemModstamp=self._stamp())
        self._derive(sobject, record)
        self.objects[sobject][record_id] = record
        return record_id

    def _derive(self, sobject: str, record: dict[str, Any]) -> None:
        if sobject == "Opportunity":
            record["IsClosed"] = STAGES.get(str(record.get("StageName")), False)
            record["IsWon"] = record.get("StageName") == "Closed Won"
        if sobject == "Task":
            record["IsClosed"] = record.get("Status") == "Completed"
            record["OwnerId"] = record.get("OwnerId") or self.bot
            record["Priority"] = record.get("Priority") or "Normal"

    def _seed(self) -> None:
        users = {pid: self._insert("User", {"Name": name, "Email": f"{pid}@lumenlabs.example", "IsActive": True})
                 for pid, name in PEOPLE}
        accounts = {}
        for name, owner, industry, region in ACCOUNTS:
            accounts[name] = self._insert("Account", {"Name": name, "OwnerId": users[owner], "Industry": industry,
                                                      "BillingState": region})
        for account, name, title in CONTACTS:
            email = name.lower().replace(" ", ".") + "@" + re.sub(r"[^a-z]", "", account.lower()) + ".example"
            self._insert("Contact", {"Name": name, "Title": title, "Email": email, "AccountId": accounts[account]})
        for demo_id, name, account, amount, stage, days, owner in DEALS:
            self.deals[demo_id] = self._insert("Opportunity", {
                "Name": name, "AccountId": accounts[account], "Amount": float(amount),
                "StageName": DEMO_STAGES[stage], "CloseDate": (REFERENCE + dt.timedelta(days=days)).isoformat(),
                "OwnerId": users[owner]})

    def _check(self, sobject: str, values: dict[str, Any], record_id: str | None = None) -> None:
        for field in values:
            if field not in self.fields[sobject] or field in ("Id", "SystemModstamp", "IsClosed", "IsWon"):
                raise _error(400, "INVALID_FIELD", f"No such column '{field}' on sobject of type {sobject}")
        stage = values.get("StageName")
        if stage is not None and stage not in STAGES:
            raise _error(400, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                         f"Stage: bad value for restricted picklist field: {stage}", ["StageName"])
        for field in ("OwnerId", "AccountId", "WhatId", "WhoId"):
            target = values.get(field)
            if target is not None and not any(target in objects for objects in self.objects.values()):
                raise _error(400, "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [field])
        key = self.key_field
        if key and values.get(key) is not None:
            for other in self.objects[sobject].values():
                if other.get(key) == values[key] and other["Id"] != record_id:
                    raise _error(400, "DUPLICATE_VALUE", f"duplicate value found: {key} duplicates value on record"
                                                         f" with id: {other['Id']}", [key])

    def _shown(self, sobject: str, record: dict[str, Any]) -> dict[str, Any]:
        url = f"/services/data/v{self.version}/sobjects/{sobject}/{record['Id']}"
        return {"attributes": {"type": sobject, "url": url}, **copy.deepcopy(record)}

    def _find(self, record_id: str) -> tuple[str, dict[str, Any]] | None:
        for sobject, records in self.objects.items():
            if record_id in records:
                return sobject, records[record_id]
        return None

    # --- endpoints ------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        prefix = f"/services/data/v{self.version}"
        if not path.startswith(prefix):
            raise _error(404, "NOT_FOUND", "The requested resource does not exist")
        rest = path[len(prefix):]
        if method == "GET" and rest in ("/query", "/query/", "/queryAll", "/queryAll/"):
            return 200, self.query(query.get("q", [""])[0])
        parts = [unquote(p) for p in rest.strip("/").split("/")]
        if len(parts) < 2 or parts[0] != "sobjects" or parts[1] not in self.objects:
            name = parts[1] if len(parts) > 1 else ""
            raise _error(404, "NOT_FOUND", f"The requested resource does not exist{': ' + name if name else ''}")
        sobject = parts[1]
        if len(parts) == 4 and method == "PATCH":
            return self.upsert(sobject, parts[2], parts[3], body or {})
        if len(parts) != 3:
            raise _error(404, "NOT_FOUND", "The requested resource does not exist")
        record = self.objects[sobject].get(parts[2])
        if record is None:
            raise _error(404, "NOT_FOUND", "The requested resource does not exist")
        if method == "GET":
            return 200, self._shown(sobject, record)
        if method == "PATCH":
            values = dict(body or {})
            self._check(sobject, values, record["Id"])
            record.update(values, SystemModstamp=self._stamp())
            self._derive(sobject, record)
            return 204, None
        if method == "DELETE":
            del self.objects[sobject][record["Id"]]
            return 204, None
        raise _error(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed. Allowed are GET,PATCH,DELETE")

    def upsert(self, sobject: str, field: str, value: str, values: dict[str, Any]) -> tuple[int, Any]:
        if field != self.key_field or field not in self.fields[sobject]:
            raise _error(404, "NOT_FOUND", f"Provided external ID field does not exist or is not accessible: {field}")
        if field in values and values[field] != value:
            raise _error(400, "INVALID_FIELD", f"The value of {field} in the body does not match the URL")
        matches = [r for r in self.objects[sobject].values() if r.get(field) == value]
        if len(matches) > 1:
            return 300, [f"/services/data/v{self.version}/sobjects/{sobject}/{r['Id']}" for r in matches]
        if matches:
            record = matches[0]
            self._check(sobject, values, record["Id"])
            record.update(values, SystemModstamp=self._stamp())
            self._derive(sobject, record)
            return 200, {"id": record["Id"], "success": True, "errors": [], "created": False}
        self._check(sobject, values)
        record_id = self._insert(sobject, {**values, field: value})
        return 201, {"id": record_id, "success": True, "errors": [], "created": True}

    def query(self, soql: str) -> dict[str, Any]:
        select = _Soql(soql, self).run()
        return {"totalSize": len(select), "done": True, "records": select}

    # --- the server -----------------------------------------------------------------------

    def _certificates(self) -> tuple[Path, Path]:
        """A CA (written to ``ca_file``, for the client to trust) and a server certificate for 127.0.0.1."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        # OpenSSL checks validity against the machine's real clock, which the suite's clock-ahead run does
        # not move: a window of years either side holds under both.
        now = dt.datetime.now(dt.UTC)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sayso test CA")])
        ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
              .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=800))
              .not_valid_after(now + dt.timedelta(days=800))
              .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
              .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                           content_commitment=False, key_encipherment=False, data_encipherment=False,
                                           key_agreement=False, encipher_only=False, decipher_only=False),
                             critical=True)
              .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
              .sign(ca_key, hashes.SHA256()))
        key = ec.generate_private_key(ec.SECP256R1())
        server = (x509.CertificateBuilder()
                  .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
                  .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
                  .not_valid_before(now - dt.timedelta(days=800)).not_valid_after(now + dt.timedelta(days=800))
                  .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                 critical=False)
                  .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                  .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                  .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                                 critical=False)
                  .sign(ca_key, hashes.SHA256()))
        folder = Path(self._folder.name)
        self.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        (folder / "server.pem").write_bytes(server.public_bytes(serialization.Encoding.PEM))
        (folder / "server.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                              serialization.PrivateFormat.PKCS8,
                                                              serialization.NoEncryption()))
        return folder / "server.pem", folder / "server.key"

    def authorized(self, header: str | None) -> bool:
        return header == f"Bearer {self.session_id}"

    def refused(self) -> Any:
        return recorded("error_401.json")

    def tls(self) -> ssl.SSLContext:
        certificate, key = self._certificates()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certificate, key)
        return context

    def stop(self) -> None:
        super().stop()
        self._folder.cleanup()


# --- SOQL, the part the connector writes -------------------------------------------------

_TOKEN = re.compile(r"\s*(?:'((?:[^'\\]|\\.)*)'|(\d{4}-\d{2}-\d{2})(?![\w:])|(-?\d+(?:\.\d+)?)(?![\w-])"
                    r"|(<=|>=|!=|<>|=|<|>)|([(),])|([A-Za-z_][\w.]*))")


class _Soql:
    """SELECT fields FROM object [WHERE condition] [ORDER BY field [ASC|DESC], ...] [LIMIT n]."""

    def __init__(self, text: str, store: SalesforceStandIn) -> None:
        self.store = store
        self.tokens: list[tuple[str, Any]] = []
        position = 0
        while position < len(text.rstrip()):
            match = _TOKEN.match(text, position)
            if match is None:
                raise _error(400, "MALFORMED_QUERY", f"unexpected token: '{text[position:].split()[0]}'")
            string, day, number, op, punct, word = match.groups()
            if string is not None:
                self.tokens.append(("str", string))  # escapes stay: LIKE needs to tell \% from %
            elif day is not None:
                self.tokens.append(("date", day))
            elif number is not None:
                self.tokens.append(("num", float(number)))
            elif op is not None:
                self.tokens.append(("op", "!=" if op == "<>" else op))
            elif punct is not None:
                self.tokens.append((punct, punct))
            else:
                self.tokens.append(("word", word))
            position = match.end()
        self.i = 0

    def _peek(self, word: str | None = None) -> bool:
        if self.i >= len(self.tokens):
            return False
        kind, value = self.tokens[self.i]
        return word is None or (kind == "word" and str(value).upper() == word)

    def _take(self, kind: str | None = None) -> tuple[str, Any]:
        if self.i >= len(self.tokens):
            raise _error(400, "MALFORMED_QUERY", "unexpected end of query")
        token = self.tokens[self.i]
        if kind is not None and token[0] != kind:
            raise _error(400, "MALFORMED_QUERY", f"unexpected token: '{token[1]}'")
        self.i += 1
        return token

    def _expect(self, word: str) -> None:
        kind, value = self._take("word")
        if str(value).upper() != word:
            raise _error(400, "MALFORMED_QUERY", f"unexpected token: '{value}'")

    def run(self) -> list[dict[str, Any]]:
        self._expect("SELECT")
        fields = [str(self._take("word")[1])]
        while self.tokens[self.i][0] == ",":
            self.i += 1
            fields.append(str(self._take("word")[1]))
        self._expect("FROM")
        sobject = str(self._take("word")[1])
        if sobject not in self.store.objects:
            raise _error(400, "INVALID_TYPE", f"sObject type '{sobject}' is not supported.")
        for field in fields:
            self._path(sobject, field)
        test = self._or(sobject) if self._peek("WHERE") and self._take() else (lambda record: True)
        order: list[tuple[str, bool]] = []
        if self._peek("ORDER"):
            self.i += 1
            self._expect("BY")
            while True:
                field = str(self._take("word")[1])
                self._path(sobject, field)
                descending = False
                if self._peek("ASC") or self._peek("DESC"):
                    descending = str(self._take()[1]).upper() == "DESC"
                order.append((field, descending))
                if self.i < len(self.tokens) and self.tokens[self.i][0] == ",":
                    self.i += 1
                    continue
                break
        limit = None
        if self._peek("LIMIT"):
            self.i += 1
            limit = int(self._take("num")[1])
        if self.i != len(self.tokens):
            raise _error(400, "MALFORMED_QUERY", f"unexpected token: '{self.tokens[self.i][1]}'")
        rows = [r for r in self.store.objects[sobject].values() if test(r)]
        for field, descending in reversed(order):
            rows.sort(key=lambda r, f=field: (self._value(sobject, r, f) is None, str(self._value(sobject, r, f))),
                      reverse=descending)
        return [self._select(sobject, r, fields) for r in rows[:limit]]

    def _path(self, sobject: str, path: str) -> None:
        names = path.split(".")
        if len(names) == 1:
            if names[0] not in self.store.fields[sobject]:
                raise _error(400, "INVALID_FIELD", f"No such column '{names[0]}' on entity '{sobject}'.")
            return
        if f"{names[0]}Id" not in self.store.fields[sobject]:
            raise _error(400, "INVALID_FIELD", f"Didn't understand relationship '{names[0]}' in field path.")

    def _value(self, sobject: str, record: dict[str, Any], path: str) -> Any:
        names = path.split(".")
        if len(names) == 1:
            return record.get(names[0])
        found = self.store._find(str(record.get(f"{names[0]}Id") or ""))
        return None if found is None else found[1].get(names[1])

    def _select(self, sobject: str, record: dict[str, Any], fields: list[str]) -> dict[str, Any]:
        url = f"/services/data/v{self.store.version}/sobjects/{sobject}/{record['Id']}"
        row: dict[str, Any] = {"attributes": {"type": sobject, "url": url}}
        for path in fields:
            names = path.split(".")
            if len(names) == 1:
                row[names[0]] = copy.deepcopy(record.get(names[0]))
                continue
            found = self.store._find(str(record.get(f"{names[0]}Id") or ""))
            if found is None:
                row[names[0]] = None
                continue
            related = row.get(names[0]) or {"attributes": {
                "type": found[0], "url": f"/services/data/v{self.store.version}/sobjects/{found[0]}/{found[1]['Id']}"}}
            related[names[1]] = found[1].get(names[1])
            row[names[0]] = related
        return row

    def _or(self, sobject: str) -> Any:
        tests = [self._and(sobject)]
        while self._peek("OR"):
            self.i += 1
            tests.append(self._and(sobject))
        return lambda record: any(t(record) for t in tests)

    def _and(self, sobject: str) -> Any:
        tests = [self._not(sobject)]
        while self._peek("AND"):
            self.i += 1
            tests.append(self._not(sobject))
        return lambda record: all(t(record) for t in tests)

    def _not(self, sobject: str) -> Any:
        if self._peek("NOT"):
            self.i += 1
            inner = self._not(sobject)
            return lambda record: not inner(record)
        if self.tokens[self.i][0] == "(":
            self.i += 1
            inner = self._or(sobject)
            self._take(")")
            return inner
        return self._comparison(sobject)

    def _literal(self) -> Any:
        kind, value = self._take()
        if kind == "str":
            return ("str", value)
        if kind in ("date", "num"):
            return (kind, value)
        if kind == "word" and str(value).lower() in ("true", "false", "null"):
            return ("word", {"true": True, "false": False, "null": None}[str(value).lower()])
        raise _error(400, "MALFORMED_QUERY", f"unexpected token: '{value}'")

    def _comparison(self, sobject: str) -> Any:
        field = str(self._take("word")[1])
        self._path(sobject, field)
        if self._peek("LIKE"):
            self.i += 1
            kind, pattern = self._literal()
            regex = re.compile(_like(str(pattern)), re.IGNORECASE | re.DOTALL)
            return lambda record: isinstance(v := self._value(sobject, record, field), str) and bool(
                regex.fullmatch(v))
        if self._peek("IN"):
            self.i += 1
            self._take("(")
            values = [self._literal()]
            while self.tokens[self.i][0] == ",":
                self.i += 1
                values.append(self._literal())
            self._take(")")
            wanted = [_plain(v) for v in values]
            return lambda record: _fold(self._value(sobject, record, field)) in [_fold(w) for w in wanted]
        op = str(self._take("op")[1])
        value = _plain(self._literal())

        def compare(record: dict[str, Any]) -> bool:
            have = self._value(sobject, record, field)
            if op in ("=", "!="):
                same = _fold(have) == _fold(value)
                return same if op == "=" else not same
            if have is None or value is None:
                return False
            return bool({"<": have < value, "<=": have <= value, ">": have > value, ">=": have >= value}[op])

        return compare


def _plain(literal: tuple[str, Any]) -> Any:
    kind, value = literal
    if kind == "str":
        return re.sub(r"\\(.)", r"\1", str(value))
    return value


def _fold(value: Any) -> Any:
    """SOQL compares text regardless of case."""
    return value.lower() if isinstance(value, str) else value


def _like(pattern: str) -> str:
    """A LIKE pattern as a regular expression: % any run, _ one character, \\% and \\_ themselves."""
    out = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if char == "%" else "." if char == "_" else re.escape(char))
        i += 1
    return "".join(out)
