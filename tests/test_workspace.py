"""Workspaces: init, the demo's starting data, `sayso check`, the directory, YAML actions."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from sayso import TurnStatus, Workspace
from sayso.catalog import Tier

from .conftest import cli, make_demo, pipeline_for, sayso, sayso_json


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted((root / "systems").glob("*.db")):
        import sqlite3

        with sqlite3.connect(path) as conn:
            for line in conn.iterdump():
                h.update(line.encode())
    return h.hexdigest()


def test_init_demo_is_deterministic_and_refuses_non_empty(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert sayso(None, "init", "--demo", str(a), "--now", "2026-11-25T09:00").returncode == 0
    assert sayso(None, "init", "--demo", str(b), "--now", "2026-11-25T09:00").returncode == 0
    assert _digest(a) == _digest(b)
    again = sayso(None, "init", "--demo", str(a))
    assert again.returncode == 3 and "use --force to replace it" in again.stderr
    assert sayso(None, "init", "--demo", str(a), "--force", "--now", "2026-11-25T09:00").returncode == 0
    assert _digest(a) == _digest(b)


def test_init_empty_workspace_checks_clean(tmp_path: Path) -> None:
    root = tmp_path / "empty"
    assert sayso(None, "init", str(root)).returncode == 0
    assert (root / "sayso.toml").exists() and (root / "directory.yaml").exists()
    done = sayso(root, "check")
    assert done.returncode == 0, done.stdout + done.stderr


def test_demo_checks_clean(sqlite_root: Path) -> None:
    done = sayso(sqlite_root, "check")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "8 people" in done.stdout and "19 actions" in done.stdout


def test_check_names_file_and_line(sqlite_root: Path) -> None:
    (sqlite_root / "actions" / "broken.yaml").write_text(
        "actions:\n  - name: it.reset\n    kind: write\n    connector: crm\n    operation: x\n"
        "    params:\n      user: {type: strange}\n"
    )
    (sqlite_root / "policies" / "zz-broken.cedar").write_text(
        '@id("ok")\n@reason("fine")\npermit(principal, action, resource);\n\n@id("bad")\n@reason("x")\n'
        "permit(principal, action, resource) when { principal.role == };\n"
    )
    done = sayso(sqlite_root, "check")
    assert done.returncode == 3
    assert "broken.yaml:7" in done.stdout and "unknown type 'strange'" in done.stdout
    assert "zz-broken.cedar:5" in done.stdout


def test_broken_directory_is_named(sqlite_root: Path) -> None:
    text = (sqlite_root / "directory.yaml").read_text().replace("manager: carol, timezone: America/New_York, "
                                                                 "notify: chat}", "manager: zed, timezone: "
                                                                 "America/New_York, notify: chat}", 1)
    (sqlite_root / "directory.yaml").write_text(text)
    code, out = sayso_json(sqlite_root, "do", "--user", "alice", "--action", "crm.get", "--args",
                           '{"record": "D-101"}')
    assert code == 3 and out["status"] == "error"
    assert "directory.yaml:3" in out["error"]["message"] and "zed" in out["error"]["message"]


def test_broken_toml_is_named(sqlite_root: Path) -> None:
    (sqlite_root / "sayso.toml").write_text("[guard]\nconfirm_medium = maybe\n")
    done = sayso(sqlite_root, "check")
    assert done.returncode == 3 and "sayso.toml:2" in done.stderr


def test_directory_from_csv(sqlite_root: Path, tmp_path: Path) -> None:
    csv = tmp_path / "people.csv"
    csv.write_text("id,name,email,role,team,manager,timezone,notify\n"
                   "zoe,Zoe Park,zoe@x.example,admin,ops,,Europe/Paris,chat\n")
    assert sayso(sqlite_root, "directory", "import", str(csv)).returncode == 0
    ws = Workspace.load(sqlite_root)
    assert [p.id for p in ws.directory] == ["zoe"]
    assert ws.directory.get("zoe").timezone == "Europe/Paris"


def test_yaml_action_with_risk_by_argument(sqlite_root: Path) -> None:
    (sqlite_root / "actions" / "extra.yaml").write_text("""
actions:
  - name: chat.announce
    description: Announce something to a channel
    examples: ["announce the launch in #sales-east"]
    kind: write
    connector: chat
    operation: send
    resource: {type: Recipient, param: to}
    risk:
      tier: low
      when:
        - {arg: to, startswith: "#", tier: medium}
        - {arg: urgency, gt: 5, tier: high}
    params:
      to: {type: string, required: true, recipient: true, description: "a #channel"}
      text: {type: string, required: true}
      urgency: {type: integer}
""")
    ws = Workspace.load(sqlite_root)
    action = ws.catalog.get("chat.announce")
    assert action.risk.evaluate({"to": "carol"}) is Tier.LOW
    assert action.risk.evaluate({"to": "#sales-east"}) is Tier.MEDIUM
    assert action.risk.evaluate({"to": "#sales-east", "urgency": 9}) is Tier.HIGH
    (sqlite_root / "policies" / "announce.cedar").write_text(
        '@id("announce")\n@reason("anyone may announce")\npermit(principal, action == Action::"chat.announce", '
        "resource);\n"
    )
    pipeline = pipeline_for(sqlite_root)
    done = pipeline.do("alice", "chat.announce", {"to": "#sales-east", "text": "launch!"})
    assert done.status is TurnStatus.EXECUTED, done.reply
    asked = pipeline.do("alice", "chat.announce", {"to": "#sales-east", "text": "launch!", "urgency": 9})
    assert asked.status is TurnStatus.NEEDS_CONFIRMATION
    code, listing = sayso_json(sqlite_root, "actions")
    assert code == 0
    names = {a["name"] for a in listing}
    assert "chat.announce" in names


def test_actions_json_shape(sqlite_root: Path) -> None:
    done = sayso(sqlite_root, "actions", "--json")
    items = json.loads(done.stdout)
    assert len(items) == 19
    send = next(a for a in items if a["name"] == "chat.send")
    assert send["kind"] == "write"
    assert send["risk"] == {"tier": "low", "when": [{"arg": "to", "tier": "medium", "startswith": "#"}]}
    assert send["parameters"]["required"] == ["to", "text"]
    assert {"name", "description", "kind", "risk", "parameters"} <= set(send)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_unusable_files_are_named_and_nothing_is_made_in_their_place(tmp_path: Path) -> None:
    crm = ["do", "--user", "alice", "--action", "crm.get", "--args", '{"record": "D-101"}', "--json"]
    binary = make_demo(tmp_path / "binary")[0]
    (binary / "sayso.toml").write_bytes(b"\xff\xfe\x00[workspace]\x00\x9c")
    for args in (["check"], crm):
        done = cli(*args, "--workspace", str(binary))
        assert done.exit_code == 3, done.stdout + done.stderr
        assert f"{binary / 'sayso.toml'}: the workspace settings file is not UTF-8 text" in done.stdout + done.stderr

    state = make_demo(tmp_path / "state")[0]
    (state / "state.db").write_bytes(b"garbage, not SQLite " * 20)
    before = _files(state)
    for args in (["pending", "--user", "carol"], ["audit", "verify"]):
        done = cli(*args, "--workspace", str(state))
        assert done.exit_code == 3 and done.stderr.startswith("error [configuration_error]: cannot open the state "
                                                              f"database {state / 'state.db'}: file is not")
    done = cli("recover", "--json", "--workspace", str(state))  # raised past the command, caught at the root
    assert done.exit_code == 3 and json.loads(done.stdout)["error"]["code"] == "configuration_error"
    assert _files(state) == before

    system = make_demo(tmp_path / "system")[0]
    (system / "systems" / "crm.db").write_bytes(b"garbage, not SQLite " * 20)
    before = (system / "systems" / "crm.db").read_bytes()
    done = cli(*crm, "--workspace", str(system))
    assert done.exit_code == 3 and json.loads(done.stdout)["error"]["code"] == "workspace_invalid"
    checked = cli("check", "--workspace", str(system))
    assert checked.exit_code == 3
    assert f"{system / 'systems' / 'crm.db'}: not a usable SQLite database: file is not a database" in checked.stdout
    assert (system / "systems" / "crm.db").read_bytes() == before
    assert not [p.name for p in (system / "systems").glob("crm.db-*")]


def test_a_deleted_demo_system_is_reported_not_made_empty(sqlite_root: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        (sqlite_root / "systems" / f"crm.db{suffix}").unlink(missing_ok=True)
    checked = cli("check", "--workspace", str(sqlite_root))
    assert checked.exit_code == 3
    assert f"{sqlite_root / 'systems' / 'crm.db'}: the system's database is missing" in checked.stdout
    done = cli("do", "--user", "alice", "--action", "crm.get", "--args", '{"record": "D-101"}', "--json",
               "--workspace", str(sqlite_root))
    assert done.exit_code == 3 and "crm.db: the system's database is missing" in json.loads(done.stdout)["reply"]
    assert not (sqlite_root / "systems" / "crm.db").exists()
