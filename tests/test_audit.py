"""The audit log under attack: secrets that JSON escaping could hide, secrets given as lists, and a chain
truncated, emptied, replaced or rewritten behind a consistent head (caught by checkpoints kept outside the
database), or a detail with a key given twice."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import text
from typer.testing import CliRunner, Result

from sayso.audit import Redactor
from sayso.cli import app
from sayso.workspace import Workspace

from .conftest import _OPEN, NOW

# Every character JSON escapes (quote, backslash, the named controls, a bare control), one outside ASCII,
# and the separators JavaScript once treated as newlines.
SECRETS = {
    "quote_secret": 'pa"ss-wo"rd-1',
    "backslash_secret": "C:\\keys\\prod-2",
    "newline_secret": "line-one\nline-two-3",
    "controls_secret": "tab\there\rcr\bbs\fff-4",
    "bare_control_secret": "bell\x07\x00\x1fend-5",
    "unicode_secret": "pässwörd-€-6\u2028",
}


@pytest.fixture(autouse=True)
def _close_what_the_cli_opens(monkeypatch: pytest.MonkeyPatch) -> None:
    """Commands run in this process: each workspace they load is closed with the test's (conftest's list)."""
    load = Workspace.load.__func__  # type: ignore[attr-defined]

    def tracked(cls: type[Workspace], root: Path) -> Workspace:
        ws: Workspace = load(cls, root)
        _OPEN.append(ws)
        return ws

    monkeypatch.setattr(Workspace, "load", classmethod(tracked))


def cli(*args: str, root: Path | None = None) -> Result:
    """Run the command line in this process (Typer's CliRunner)."""
    full = [*args, "--workspace", str(root)] if root is not None else list(args)
    return CliRunner().invoke(app, full, catch_exceptions=False)


def _said(result: Result) -> str:
    """Standard error as one line (however the terminal wrapped it)."""
    return " ".join(result.stderr.split())


def _history(root: Path, *texts: str) -> None:
    for words in texts:
        done = cli("do", "--user", "alice", "--action", "chat.send", "--args",
                   json.dumps({"to": "carol", "text": words}), "--now", NOW, root=root)
        assert done.exit_code == 0, done.output


def _sql(root: Path, statement: str, **params: Any) -> list[Any]:
    """Run SQL on the workspace's state database (SQLite or PostgreSQL), as an attacker with access would."""
    ws = Workspace.load(root)
    try:
        with ws.store.engine.begin() as conn:
            result = conn.execute(text(statement), params)
            return list(result) if result.returns_rows else []
    finally:
        ws.close()


def _append_to_toml(root: Path, extra: str) -> None:
    toml = root / "sayso.toml"
    toml.write_text(toml.read_text() + "\n" + extra + "\n")


# --- item 3: secrets ---------------------------------------------------------------------------------


def _forms(secret: str) -> set[str]:
    """The secret as it could read in any text made from the audit: raw, JSON-escaped either way, URL-encoded,
    or as Python's repr and ascii write it (an error message quoting a value)."""
    return {secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1], repr(secret)[1:-1],
            ascii(secret)[1:-1], quote(secret, safe="")}


def _strings(value: Any) -> Iterator[str]:
    """Every string, key and number in a JSON value."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif value is not None:
        yield str(value)


def test_secrets_with_every_json_escape_never_reach_the_audit(demo_root: Path) -> None:
    lines = [f"{name} = {json.dumps(value)}" for name, value in SECRETS.items()]  # JSON escapes are TOML's
    (demo_root / "secrets.toml").write_text("\n".join(lines) + "\n")
    _append_to_toml(demo_root, '[secrets]\nfile = "secrets.toml"')
    for secret in SECRETS.values():
        cli("do", "--user", "alice", "--action", "chat.send", "--args",  # in a message's text
            json.dumps({"to": "carol", "text": f"the key is {secret}!"}), "--now", NOW, root=demo_root)
        cli("do", "--user", "alice", "--action", "crm.get", "--args",  # in a record id: the error names it
            json.dumps({"record": f"D-{secret}"}), "--now", NOW, root=demo_root)
        cli("do", "--user", "alice", "--action", "chat.send", "--args",  # in an argument's name
            json.dumps({"to": "carol", "text": "hi", f"x{secret}": 1}), "--now", NOW, root=demo_root)
        cli("do", "--user", f"u{secret}", "--action", "crm.get", "--args",  # in the actor: an unknown user
            json.dumps({"record": "D-101"}), "--now", NOW, root=demo_root)
    exported = cli("audit", "export", root=demo_root)
    assert exported.exit_code == 0
    rows = [json.loads(line) for line in exported.stdout.splitlines()]
    assert len(rows) > 4 * len(SECRETS) and "[redacted]" in exported.stdout
    found = [value for row in rows for value in _strings(row)]
    stored = [str(row) for row in _sql(demo_root, "select * from audit")]
    for secret in SECRETS.values():
        for form in _forms(secret):
            assert form not in exported.stdout, form
            assert not any(form in value for value in found), form
            assert not any(form in row for row in stored), form
    assert cli("audit", "verify", root=demo_root).exit_code == 0


def test_the_redactor_looks_inside_strings_keys_numbers_and_objects() -> None:
    redact = Redactor([*SECRETS.values(), "918273"])

    class Failure(Exception):
        pass

    for secret in SECRETS.values():
        detail = {"text": f"<{secret}>", f"k{secret}": [f"{secret}{secret}"], "error": Failure(f"bad {secret}"),
                  1: {"deep": (secret,)}, "url": f"https://x.example/?q={quote(secret, safe='')}"}
        canonical = redact.canonical(detail)
        assert not any(form in canonical for form in _forms(secret)), canonical
        assert json.loads(canonical)["text"] == "<[redacted]>"
    assert json.loads(redact.canonical({"pin": 4918273, "amount": 120}))["pin"] == "[redacted]"
    secret = SECRETS["quote_secret"]
    assert json.loads(redact.canonical({f"a{secret}": 1, "a[redacted]": 2})) == {"a[redacted]": 1, "a[redacted]'": 2}
    assert redact.canonical({"amount": 120, "note": "fine"}) == '{"amount":120,"note":"fine"}'


@pytest.mark.parametrize(("value", "kind"), [('["first-secret", "second-secret"]', "a list"),
                                             ("{ user = 'someone-long' }", "a table"),
                                             ("123456789", "an integer")])
def test_a_secret_that_is_not_a_string_is_refused_naming_file_and_key(
        sqlite_root: Path, value: str, kind: str) -> None:
    (sqlite_root / "secrets.toml").write_text(f'fine = "a-good-secret"\ncrm_token = {value}\n')
    _append_to_toml(sqlite_root, '[secrets]\nfile = "secrets.toml"')
    checked = cli("check", root=sqlite_root)
    assert checked.exit_code == 3
    assert "secrets.toml:2" in checked.output and "'crm_token'" in checked.output
    assert f"is {kind}; a secret must be a string" in checked.output
    done = cli("do", "--user", "alice", "--action", "chat.send", "--args", '{"to": "carol", "text": "hi"}',
               root=sqlite_root)
    assert done.exit_code == 3 and "must be a string" in done.output
    assert _sql(sqlite_root, "select count(*) from audit")[0][0] == 0


def test_a_secret_too_short_to_redact_is_refused(sqlite_root: Path) -> None:
    (sqlite_root / "secrets.toml").write_text('pin = "123"\n')
    _append_to_toml(sqlite_root, '[secrets]\nfile = "secrets.toml"')
    checked = cli("check", root=sqlite_root)
    assert checked.exit_code == 3 and "secrets.toml:1" in checked.output and "shorter than 4" in checked.output


# --- item 9: truncation, replacement, rewriting ------------------------------------------------------


def _checkpoint(root: Path, *extra: str) -> Result:
    return cli("audit", "checkpoint", "--now", NOW, *extra, root=root)


def _truncate_to(root: Path, seq: int, *, ledger_too: bool = True) -> None:
    """Remove every record after ``seq`` and point the head at it: the chain alone stays consistent. With
    ``ledger_too`` the effect ledger is emptied as well, so that nothing in the database tells."""
    last = _sql(root, "select hash from audit where seq = :seq", seq=seq)
    _sql(root, "delete from audit where seq > :seq", seq=seq)
    _sql(root, "update audit_head set seq = :seq, hash = :hash", seq=seq, hash=last[0][0] if last else "")
    if ledger_too:
        _sql(root, "delete from steps")


def test_records_removed_behind_a_consistent_head_show_against_the_effect_ledger(demo_root: Path) -> None:
    _history(demo_root, "one", "two")
    _truncate_to(demo_root, 3, ledger_too=False)
    done = cli("audit", "verify", root=demo_root)
    assert done.exit_code == 1
    said = _said(done)
    assert said.startswith("broken: step sk_") and "(chat.send, executed at 2026-11-25T09:00:00" in said
    assert "is in the effect ledger but its call record is not in the chain: records were removed" in said


def test_removing_the_last_records_behind_a_consistent_head_fails_verify_against(
        demo_root: Path, tmp_path: Path) -> None:
    points = tmp_path / "outside" / "checkpoints.jsonl"
    _history(demo_root, "one", "two")
    assert _checkpoint(demo_root, "-o", str(points)).exit_code == 0
    assert cli("audit", "verify", "--against", str(points), root=demo_root).stdout.endswith(
        "chain intact, 1 checkpoint matches\n")
    head = _sql(demo_root, "select seq from audit_head")[0][0]
    _truncate_to(demo_root, 3)
    assert cli("audit", "verify", root=demo_root).exit_code == 0  # nothing in the database can tell
    done = cli("audit", "verify", "--against", str(points), root=demo_root)
    assert done.exit_code == 1
    assert f"broken at seq 4: records 4 to {head} are missing: the chain has 3" in _said(done)
    # A truncated chain is never checkpointed: the file keeps its one line.
    refused = _checkpoint(demo_root, "-o", str(points))
    assert refused.exit_code == 1 and _said(refused).endswith("; no checkpoint written")
    assert len(points.read_text().splitlines()) == 1


def test_an_emptied_table_with_a_reset_head_fails_verify_against(demo_root: Path, tmp_path: Path) -> None:
    points = tmp_path / "checkpoints.jsonl"
    _history(demo_root, "one")
    assert _checkpoint(demo_root, "-o", str(points)).exit_code == 0
    _truncate_to(demo_root, 0)
    assert cli("audit", "verify", root=demo_root).exit_code == 0
    done = cli("audit", "verify", "--against", str(points), root=demo_root)
    assert done.exit_code == 1 and "records 1 to" in _said(done) and "the chain has 0" in _said(done)


def test_a_deleted_state_database_is_not_a_silent_new_chain(sqlite_root: Path) -> None:
    _append_to_toml(sqlite_root, '[audit]\ncheckpoints = "audit-checkpoints.jsonl"')
    _history(sqlite_root, "one", "two")
    assert _checkpoint(sqlite_root).exit_code == 0  # to [audit] checkpoints
    assert cli("audit", "verify", root=sqlite_root).stdout.endswith("1 checkpoint matches\n")
    for file in sqlite_root.glob("state.db*"):
        file.unlink()
    done = cli("audit", "verify", root=sqlite_root)  # a new, empty database
    assert done.exit_code == 1 and "are missing: the chain has 0" in _said(done)
    _history(sqlite_root, *["again"] * 6)  # the new chain grows past the checkpoint
    done = cli("audit", "verify", root=sqlite_root)
    assert done.exit_code == 1 and "not the checkpointed chain" in _said(done)


def _row_hash(prev: str, row: dict[str, Any]) -> str:
    """The chain's hash, as docs/security.md gives it (what an attacker who rewrites the chain computes)."""
    fields = [row[k] for k in ("seq", "id", "at", "actor", "channel", "conversation", "turn", "event", "action",
                               "status")]
    canonical = [json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False) for v in
                 (fields, row["detail"])]
    return hashlib.sha256(f"{prev}\n{canonical[0]}\n{canonical[1]}".encode()).hexdigest()


def test_a_consistently_rewritten_chain_fails_verify_against(sqlite_root: Path, tmp_path: Path) -> None:
    points = tmp_path / "checkpoints.jsonl"
    _history(sqlite_root, "one", "two")
    assert _checkpoint(sqlite_root, "-o", str(points)).exit_code == 0
    rows = [json.loads(line) for line in cli("audit", "export", root=sqlite_root).stdout.splitlines()]
    rows[2]["status"] = "denied"
    prev = ""
    for row in rows:
        row["hash"] = prev = _row_hash(prev, row)
        _sql(sqlite_root, "update audit set status = :status, prev_hash = :prev, hash = :hash where seq = :seq",
             status=row["status"], prev=row["prev_hash"] if row["seq"] == 1 else rows[row["seq"] - 2]["hash"],
             hash=row["hash"], seq=row["seq"])
    _sql(sqlite_root, "update audit_head set hash = :hash", hash=prev)
    assert cli("audit", "verify", root=sqlite_root).exit_code == 0  # consistent: the chain alone cannot tell
    done = cli("audit", "verify", "--against", str(points), root=sqlite_root)
    assert done.exit_code == 1 and f"broken at seq {len(rows)}: differs from the checkpoint at" in _said(done)
    assert "the chain was rewritten" in _said(done)


def test_signed_checkpoints_cannot_be_forged(sqlite_root: Path, tmp_path: Path) -> None:
    points = tmp_path / "checkpoints.jsonl"
    (sqlite_root / "secrets.toml").write_text('audit_key = "k3y-for-checkpoints-0123456789abcdef"\n')
    _append_to_toml(sqlite_root, '[secrets]\nfile = "secrets.toml"\n\n[audit]\ncheckpoint_key = "audit_key"')
    _history(sqlite_root, "one", "two")
    assert _checkpoint(sqlite_root, "-o", str(points)).exit_code == 0
    line = json.loads(points.read_text())
    assert len(line["mac"]) == 64
    _truncate_to(sqlite_root, 3)  # and lower the checkpoint to match, without the key
    forged = {**line, "seq": 3, "hash": _sql(sqlite_root, "select hash from audit_head")[0][0]}
    points.write_text(json.dumps(forged) + "\n")
    done = cli("audit", "verify", "--against", str(points), root=sqlite_root)
    assert done.exit_code == 1 and "not signed with the workspace's checkpoint key" in _said(done)
    del forged["mac"]
    points.write_text(json.dumps(forged) + "\n")
    done = cli("audit", "verify", "--against", str(points), root=sqlite_root)
    assert done.exit_code == 1 and "not signed" in _said(done)


def test_checkpoint_lines_may_go_through_syslog(sqlite_root: Path, tmp_path: Path) -> None:
    _history(sqlite_root, "one")
    printed = _checkpoint(sqlite_root, "-o", "-")
    assert printed.exit_code == 0 and json.loads(printed.stdout)["seq"] > 0
    log = tmp_path / "syslog"
    log.write_text(f"Nov 25 09:00:00 host sayso-audit[42]: {printed.stdout}")
    assert cli("audit", "verify", "--against", str(log), root=sqlite_root).exit_code == 0
    log.write_text(f"Nov 25 09:00:00 host sayso-audit[42]: {printed.stdout.strip()}\nnot json at all\n")
    done = cli("audit", "verify", "--against", str(log), root=sqlite_root)
    assert done.exit_code == 1 and "line 2 is not a checkpoint" in _said(done)


def test_missing_checkpoints_are_a_configuration_error(sqlite_root: Path, tmp_path: Path) -> None:
    done = cli("audit", "verify", "--against", str(tmp_path / "nowhere.jsonl"), root=sqlite_root)
    assert done.exit_code == 3 and "no checkpoint file" in _said(done)
    done = _checkpoint(sqlite_root)
    assert done.exit_code == 3 and "name the checkpoint file" in _said(done)
    (tmp_path / "emptied.jsonl").write_text("")  # every checkpoint removed
    done = cli("audit", "verify", "--against", str(tmp_path / "emptied.jsonl"), root=sqlite_root)
    assert done.exit_code == 1 and "holds no checkpoints" in _said(done)


def test_a_detail_with_a_key_given_twice_fails_verify(demo_root: Path) -> None:
    _history(demo_root, "one")
    seq, detail = next((s, d) for s, d, e in _sql(demo_root, "select seq, detail, event from audit order by seq")
                       if e == "call")
    original = detail if isinstance(detail, dict) else json.loads(detail)
    # The same object to Python (the last one wins), another to a parser where the first one wins.
    first = sorted(original)[0]
    doubled = json.dumps({first: "mallory"})[:-1] + ", " + json.dumps(original)[1:]
    assert json.loads(doubled) == original
    _sql(demo_root, "update audit set detail = :detail where seq = :seq", detail=doubled, seq=seq)
    done = cli("audit", "verify", root=demo_root)
    assert done.exit_code == 1
    assert f"(seq {seq}): its detail is ambiguous JSON (the key {first!r} appears twice)" in _said(done)


def test_a_checkpoint_key_must_be_a_long_secret(sqlite_root: Path) -> None:
    _append_to_toml(sqlite_root, '[secrets]\nfile = "secrets.toml"\n\n[audit]\ncheckpoint_key = "audit_key"')
    (sqlite_root / "secrets.toml").write_text('other = "not-the-key"\n')
    checked = cli("check", root=sqlite_root)
    assert checked.exit_code == 3 and "checkpoint_key names the secret 'audit_key', which is not set" in " ".join(
        checked.output.split())
    (sqlite_root / "secrets.toml").write_text('audit_key = "too-short-a-key"\n')
    checked = cli("check", root=sqlite_root)
    assert checked.exit_code == 3 and "shorter than 32 characters" in checked.output
    assert _checkpoint(sqlite_root, "-o", "-").exit_code == 3
