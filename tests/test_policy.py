"""The demo's eight rules, decided by the Cedar policy files, and the engine around them."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import sayso.demo
from sayso.catalog import Catalog
from sayso.cli import app
from sayso.directory import Directory, Person
from sayso.errors import WorkspaceError
from sayso.policy import DEFAULT_DENY, Decision, Entity, PolicyEngine
from sayso.policy_schema import PolicySchema
from sayso.workspace import Workspace

from .conftest import pipeline_for

POLICIES = Path(sayso.demo.__file__).parent / "files" / "policies"

PEOPLE = [
    Person(id="alice", name="Alice Moreno", role="account_executive", team="east", manager="carol"),
    Person(id="bob", name="Bob Chen", role="sdr", team="east", manager="carol"),
    Person(id="carol", name="Carol Diaz", role="sales_manager", team="east"),
    Person(id="devi", name="Devi Rao", role="account_executive", team="west", manager="wes"),
    Person(id="wes", name="Wesley Park", role="sales_manager", team="west"),
    Person(id="sam", name="Sam Okafor", role="support_engineer", team="support"),
    Person(id="fiona", name="Fiona Grant", role="finance", team="finance"),
    Person(id="ines", name="Ines Kowalski", role="admin", team="revops"),
]
TEAMS = {p.id: p.team for p in PEOPLE}
ROLES = {p.id: p.role for p in PEOPLE}


def user(person_id: str) -> Entity:
    return Entity("User", person_id)


def deal(deal_id: str, owner: str, amount: int, stage: str, account: str) -> Entity:
    attrs = {
        "owner": user(owner),
        "owner_team": TEAMS[owner],
        "amount": amount,
        "stage": stage,
        "account": account,
    }
    return Entity("Deal", deal_id, attrs)


def account(name: str, owner: str, region: str, industry: str) -> Entity:
    attrs = {"owner": user(owner), "owner_team": TEAMS[owner], "region": region, "industry": industry}
    return Entity("Account", name, attrs)


def ticket(key: str, project: str, assignee: str, priority: str) -> Entity:
    attrs = {"project": project, "status": "open", "priority": priority, "assignee": user(assignee)}
    return Entity("Ticket", key, attrs)


D101 = deal("D-101", "alice", 48_000, "proposal", "Brightwater Dental")
D102 = deal("D-102", "alice", 240_000, "negotiation", "Kestrel Aerospace")
D104 = deal("D-104", "devi", 96_000, "negotiation", "Orchid Pharma")
D105 = deal("D-105", "devi", 132_000, "prospecting", "Tallgrass Energy")
D107 = deal("D-107", "wes", 310_000, "qualification", "Cobalt Retail Group")
D108 = deal("D-108", "alice", 9_500, "closed_won", "Juniper Schools")
BRIGHTWATER = account("Brightwater Dental", "alice", "east", "healthcare")
ORCHID = account("Orchid Pharma", "devi", "west", "pharma")
JUNIPER = account("Juniper Schools", "alice", "east", "education")
CONTACT = Entity("Contact", "Priya Shah", {"account": "Brightwater Dental"})
SUP17 = ticket("SUP-17", "SUPPORT", "sam", "high")
SALES5 = ticket("SALES-5", "SALES", "alice", "medium")
SALES = Entity("Project", "SALES")
SUPPORT = Entity("Project", "SUPPORT")
CAROL = user("carol")
SALES_EAST = Entity("Channel", "#sales-east")


def system(name: str) -> Entity:
    return Entity("System", name)


def reassign_to(new_owner: str) -> dict[str, Any]:
    return {
        "new_owner": new_owner,
        "new_owner_team": TEAMS[new_owner],
        "new_owner_role": ROLES[new_owner],
    }


@pytest.fixture(scope="module")
def engine() -> PolicyEngine:
    return PolicyEngine.load(POLICIES)


@pytest.fixture(scope="module")
def directory() -> Directory:
    return Directory(PEOPLE, ["#sales-east", "#sales-west", "#support", "#finance", "#deal-desk"])


def decide(
    engine: PolicyEngine,
    directory: Directory,
    who: str,
    action: str,
    resource: Entity,
    context: dict[str, Any] | None = None,
    explain: bool = True,
) -> Decision:
    return engine.decide(
        principal=directory.get(who),
        action=action,
        resource=resource,
        context=context or {},
        directory=directory,
        explain=explain,
    )


# (who, action, resource, context, allowed, rule)
CASES: list[tuple[str, str, Entity, dict[str, Any], bool, str]] = [
    # 1. everyone reads accounts, deals, contacts and tickets; invoices: finance, sales managers, admin
    ("alice", "crm.find_deals", system("crm"), {"owner": "alice"}, True, "rule-1-read"),
    ("bob", "crm.get", D102, {"record": "D-102"}, True, "rule-1-read"),
    ("sam", "crm.get", BRIGHTWATER, {"record": "Brightwater Dental"}, True, "rule-1-read"),
    ("fiona", "crm.get", CONTACT, {"record": "Priya Shah"}, True, "rule-1-read"),
    ("devi", "tickets.get", SUP17, {"ticket": "SUP-17"}, True, "rule-1-read"),
    ("fiona", "tickets.find", system("tickets"), {"project": "SUPPORT"}, True, "rule-1-read"),
    ("wes", "chat.history", system("chat"), {"limit": 20}, True, "rule-1-read"),
    ("ines", "crm.get", D107, {"record": "D-107"}, True, "rule-1-read"),
    ("carol", "billing.list_invoices", system("billing"), {}, True, "rule-1-invoices"),
    ("fiona", "billing.list_invoices", system("billing"), {"status": "overdue"}, True, "rule-1-invoices"),
    ("ines", "billing.list_invoices", system("billing"), {}, True, "rule-8-admin"),
    ("alice", "billing.list_invoices", system("billing"), {}, False, DEFAULT_DENY),
    ("sam", "billing.list_invoices", system("billing"), {"account": "Orchid Pharma"}, False, DEFAULT_DENY),
    # 2. anyone creates tasks, logs notes, sets reminders, sends messages
    ("bob", "tickets.create", SALES, {"project": "SALES", "title": "Call Priya"}, True, "rule-2-everyone"),
    ("sam", "tickets.create", SUPPORT, {"project": "SUPPORT", "title": "SSO"}, True, "rule-2-everyone"),
    ("sam", "crm.log_note", D101, {"record": "D-101", "text": "SSO fixed"}, True, "rule-2-everyone"),
    ("fiona", "calendar.remind", system("calendar"), {"text": "close books"}, True, "rule-2-everyone"),
    (
        "devi",
        "calendar.schedule_meeting",
        system("calendar"),
        {"attendees": ["wes"]},
        True,
        "rule-2-everyone",
    ),
    ("alice", "chat.send", CAROL, {"to": CAROL, "text": "Kestrel"}, True, "rule-2-everyone"),
    ("devi", "chat.send", SALES_EAST, {"to": SALES_EAST, "text": "hi"}, True, "rule-2-everyone"),
    ("bob", "email.send", system("email"), {"to": ["priya@brightwater.example"]}, True, "rule-2-everyone"),
    ("alice", "tickets.comment", SUP17, {"ticket": "SUP-17", "text": "thanks"}, True, "rule-2-everyone"),
    # 3. an sdr moves any deal between prospecting and qualification, and no further
    ("bob", "crm.update_deal", D105, {"deal": "D-105", "stage": "qualification"}, True, "rule-3-sdr-stage"),
    ("bob", "crm.update_deal", D107, {"deal": "D-107", "stage": "prospecting"}, True, "rule-3-sdr-stage"),
    ("bob", "crm.update_deal", D105, {"deal": "D-105", "stage": "proposal"}, False, "rule-3-sdr-stage"),
    ("bob", "crm.update_deal", D101, {"deal": "D-101", "stage": "qualification"}, False, "rule-3-sdr-stage"),
    (
        "bob",
        "crm.update_deal",
        D105,
        {"deal": "D-105", "stage": "qualification", "amount": 150_000},
        False,
        "rule-3-sdr-stage",
    ),
    (
        "bob",
        "crm.update_deal",
        D105,
        {"deal": "D-105", "close_date": "2027-03-01"},
        False,
        "rule-3-sdr-stage",
    ),
    ("bob", "crm.close_deal", D105, {"deal": "D-105", "outcome": "won"}, False, DEFAULT_DENY),
    ("bob", "billing.issue_credit_note", ORCHID, {"amount": 1_000, "reason": "x"}, False, DEFAULT_DENY),
    # 4. an account executive updates their own deals and closes them up to 100,000
    ("alice", "crm.update_deal", D101, {"deal": "D-101", "stage": "negotiation"}, True, "rule-4-ae-update"),
    ("alice", "crm.update_deal", D102, {"deal": "D-102", "amount": 250_000}, True, "rule-4-ae-update"),
    ("alice", "crm.update_deal", D104, {"deal": "D-104", "stage": "proposal"}, False, "rule-4-ae-update"),
    (
        "devi",
        "crm.update_deal",
        D104,
        {"deal": "D-104", "close_date": "2026-12-15"},
        True,
        "rule-4-ae-update",
    ),
    ("devi", "crm.update_deal", D101, {"deal": "D-101", "stage": "negotiation"}, False, "rule-4-ae-update"),
    ("alice", "crm.close_deal", D101, {"deal": "D-101", "outcome": "won"}, True, "rule-4-ae-close"),
    ("alice", "crm.close_deal", D102, {"deal": "D-102", "outcome": "won"}, False, "rule-4-ae-close"),
    ("devi", "crm.close_deal", D104, {"deal": "D-104", "outcome": "lost"}, True, "rule-4-ae-close"),
    ("devi", "crm.close_deal", D105, {"deal": "D-105", "outcome": "won"}, False, "rule-4-ae-close"),
    ("alice", "crm.reassign_account", JUNIPER, reassign_to("bob"), False, DEFAULT_DENY),
    # ... but not around the close limit: closed deals are not theirs to change, above the limit stays above
    ("alice", "crm.update_deal", D108, {"deal": "D-108", "stage": "negotiation"}, False, "rule-4-ae-update"),
    ("alice", "crm.update_deal", D108, {"deal": "D-108", "amount": 240_000}, False, "rule-4-ae-update"),
    ("alice", "crm.update_deal", D102, {"deal": "D-102", "amount": 1_000}, False, "rule-4-ae-keep-above-limit"),
    (
        "alice",
        "crm.update_deal",
        D102,
        {"deal": "D-102", "amount": 100_000},
        False,
        "rule-4-ae-keep-above-limit",
    ),
    ("alice", "crm.update_deal", D102, {"deal": "D-102", "amount": 100_001}, True, "rule-4-ae-update"),
    ("alice", "crm.update_deal", D101, {"deal": "D-101", "amount": 40_000}, True, "rule-4-ae-update"),
    ("devi", "crm.update_deal", D105, {"deal": "D-105", "amount": 90_000}, False, "rule-4-ae-keep-above-limit"),
    # 5. a sales manager updates or closes their team's deals, and reassigns within the team
    ("carol", "crm.close_deal", D102, {"deal": "D-102", "outcome": "won"}, True, "rule-5-manager-deals"),
    ("carol", "crm.update_deal", D101, {"deal": "D-101", "amount": 50_000}, True, "rule-5-manager-deals"),
    ("wes", "crm.close_deal", D102, {"deal": "D-102", "outcome": "won"}, False, "rule-5-manager-deals"),
    ("carol", "crm.update_deal", D102, {"deal": "D-102", "amount": 1_000}, True, "rule-5-manager-deals"),
    ("carol", "crm.update_deal", D108, {"deal": "D-108", "stage": "negotiation"}, True, "rule-5-manager-deals"),
    ("wes", "crm.close_deal", D107, {"deal": "D-107", "outcome": "won"}, True, "rule-5-manager-deals"),
    ("carol", "crm.reassign_account", JUNIPER, reassign_to("bob"), True, "rule-5-manager-reassign"),
    ("carol", "crm.reassign_account", JUNIPER, reassign_to("devi"), False, "rule-5-manager-reassign"),
    ("wes", "crm.reassign_account", JUNIPER, reassign_to("devi"), False, "rule-5-manager-reassign"),
    ("wes", "crm.reassign_account", ORCHID, reassign_to("wes"), True, "rule-5-manager-reassign"),
    # 6. finance issues credit notes up to 25,000; nobody issues a larger one
    (
        "fiona",
        "billing.issue_credit_note",
        ORCHID,
        {"amount": 20_000, "reason": "x"},
        True,
        "rule-6-finance-credit",
    ),
    (
        "fiona",
        "billing.issue_credit_note",
        ORCHID,
        {"amount": 25_000, "reason": "x"},
        True,
        "rule-6-finance-credit",
    ),
    (
        "fiona",
        "billing.issue_credit_note",
        ORCHID,
        {"amount": 30_000, "reason": "x"},
        False,
        "rule-6-credit-limit",
    ),
    (
        "ines",
        "billing.issue_credit_note",
        ORCHID,
        {"amount": 30_000, "reason": "x"},
        False,
        "rule-6-credit-limit",
    ),
    ("ines", "billing.issue_credit_note", ORCHID, {"amount": 20_000, "reason": "x"}, True, "rule-8-admin"),
    ("carol", "billing.issue_credit_note", ORCHID, {"amount": 2_000, "reason": "x"}, False, DEFAULT_DENY),
    # 7. a support engineer updates and reassigns SUPPORT tickets
    (
        "sam",
        "tickets.update",
        SUP17,
        {"ticket": "SUP-17", "status": "closed"},
        True,
        "rule-7-support-tickets",
    ),
    (
        "sam",
        "tickets.update",
        SUP17,
        {"ticket": "SUP-17", "assignee": "ines"},
        True,
        "rule-7-support-tickets",
    ),
    (
        "sam",
        "tickets.update",
        SALES5,
        {"ticket": "SALES-5", "status": "closed"},
        False,
        "rule-7-support-tickets",
    ),
    ("alice", "tickets.update", SUP17, {"ticket": "SUP-17", "priority": "low"}, False, DEFAULT_DENY),
    # 8. admin does what the other roles may; no one deletes an account or a deal
    ("ines", "crm.close_deal", D102, {"deal": "D-102", "outcome": "won"}, True, "rule-8-admin"),
    ("ines", "crm.reassign_account", JUNIPER, reassign_to("devi"), True, "rule-8-admin"),
    ("ines", "tickets.update", SALES5, {"ticket": "SALES-5", "assignee": "bob"}, True, "rule-8-admin"),
    ("ines", "crm.delete", D107, {"record": "D-107"}, False, "rule-8-no-delete"),
    ("ines", "crm.delete", BRIGHTWATER, {"record": "Brightwater Dental"}, False, "rule-8-no-delete"),
    ("alice", "crm.delete", D101, {"record": "D-101"}, False, "rule-8-no-delete"),
]


@pytest.mark.parametrize(
    ("who", "action", "resource", "context", "allowed", "rule"),
    CASES,
    ids=[f"{c[0]}-{c[1]}-{c[2].id}-{'allow' if c[4] else 'deny'}" for c in CASES],
)
def test_the_demo_rules(
    engine: PolicyEngine,
    directory: Directory,
    who: str,
    action: str,
    resource: Entity,
    context: dict[str, Any],
    allowed: bool,
    rule: str,
) -> None:
    decision = decide(engine, directory, who, action, resource, context)
    assert (decision.allowed, decision.rule) == (allowed, rule), decision.reason
    assert decision.reason.endswith(".")
    assert decision.policy_hash == engine.hash
    if allowed:
        assert decision.could == ()


def test_a_denied_close_names_the_rule_and_the_manager_who_may(
    engine: PolicyEngine, directory: Directory
) -> None:
    decision = decide(engine, directory, "alice", "crm.close_deal", D102, {"deal": "D-102", "outcome": "won"})
    assert not decision.allowed
    assert decision.rule == "rule-4-ae-close"
    assert decision.reason == (
        "account executives may close their own deals when the amount is at most 100,000; "
        "your manager, carol, may do this."
    )
    assert decision.could == ("carol", "ines")
    allowed = decide(engine, directory, "carol", "crm.close_deal", D102, {"deal": "D-102", "outcome": "won"})
    assert allowed.allowed and "sales managers" in allowed.reason


def test_a_deny_names_others_when_the_manager_cannot(engine: PolicyEngine, directory: Directory) -> None:
    decision = decide(
        engine, directory, "alice", "crm.update_deal", D104, {"deal": "D-104", "stage": "proposal"}
    )
    assert decision.could == ("devi", "wes", "ines")
    assert decision.reason.endswith("; devi, wes or ines could.")
    credit = decide(engine, directory, "carol", "billing.issue_credit_note", ORCHID, {"amount": 2_000})
    assert credit.reason == "no rule lets your role, sales_manager, do this; fiona or ines could."


def test_a_forbid_says_no_one_may(engine: PolicyEngine, directory: Directory) -> None:
    delete = decide(engine, directory, "ines", "crm.delete", D107, {"record": "D-107"})
    assert delete.reason == "no one may delete an account or a deal through sayso."
    assert delete.could == ()
    credit = decide(engine, directory, "fiona", "billing.issue_credit_note", ORCHID, {"amount": 30_000})
    assert credit.reason == "no one may issue a credit note above 25,000 through sayso."


def test_without_explain_a_deny_only_gives_the_rule(engine: PolicyEngine, directory: Directory) -> None:
    decision = decide(engine, directory, "alice", "crm.close_deal", D102, {"outcome": "won"}, explain=False)
    assert decision == Decision(
        False,
        "rule-4-ae-close",
        "account executives may close their own deals when the amount is at most 100,000.",
        engine.hash,
    )


def test_as_dict(engine: PolicyEngine, directory: Directory) -> None:
    decision = decide(engine, directory, "bob", "crm.close_deal", D101, {"outcome": "won"})
    assert decision.as_dict() == {
        "allowed": False,
        "rule": DEFAULT_DENY,
        "reason": "no rule lets your role, sdr, do this; your manager, carol, may do this.",
        "policy_hash": engine.hash,
        "could": ["alice", "carol", "ines"],
        "errors": [],
    }


def test_an_evaluation_error_is_a_deny_that_says_so(engine: PolicyEngine, directory: Directory) -> None:
    no_amount = Entity("Deal", "D-999", {"owner": user("alice"), "owner_team": "east", "stage": "proposal"})
    decision = decide(engine, directory, "alice", "crm.close_deal", no_amount, {"outcome": "won"})
    assert not decision.allowed
    assert decision.rule == "rule-4-ae-close"
    assert "the policy check failed" in decision.reason
    assert "`rule-4-ae-close`" in decision.reason and "amount" in decision.reason
    float_amount = decide(engine, directory, "fiona", "billing.issue_credit_note", ORCHID, {"amount": 20.5})
    assert (float_amount.allowed, float_amount.rule) == (False, "rule-6-credit-limit")  # the forbid failed too
    assert "could not be evaluated, so it applies" in float_amount.reason


def test_rules_for_an_action(engine: PolicyEngine) -> None:
    assert [(rule, effect) for rule, effect, _ in engine.rules_for("crm.close_deal")] == [
        ("rule-4-ae-close", "permit"),
        ("rule-5-manager-deals", "permit"),
        ("rule-8-admin", "permit"),
    ]
    assert [rule for rule, _, _ in engine.rules_for("crm.delete")] == ["rule-8-admin", "rule-8-no-delete"]
    assert engine.rules_for("crm.delete")[1] == (
        "rule-8-no-delete",
        "forbid",
        "no one may delete an account or a deal through sayso",
    )
    assert engine.rules_for("no.such_action") == [
        ("rule-8-admin", "permit", "admins may do everything the other roles may")
    ]


def test_the_demo_policies_have_no_problems() -> None:
    assert PolicyEngine.problems(POLICIES) == []


def test_decisions_are_deterministic(engine: PolicyEngine, directory: Directory) -> None:
    again = PolicyEngine.load(POLICIES)
    for who, action, resource, context, _, _ in CASES:
        first = decide(engine, directory, who, action, resource, context)
        assert decide(engine, directory, who, action, resource, context) == first
        assert decide(again, directory, who, action, resource, context) == first


def test_context_values_reach_the_policies(tmp_path: Path, directory: Directory) -> None:
    (tmp_path / "context.cedar").write_text(
        '@id("ctx")\n@reason("context as Cedar sees it")\n'
        'permit (principal, action == Action::"chat.send", resource)\n'
        'when { context.to == User::"carol" && context.tags.contains("x") && context.day == "2026-11-25"\n'
        "       && context.urgent && context.count == 2 && !(context has skipped) };\n"
    )
    engine = PolicyEngine.load(tmp_path)
    context = {
        "to": CAROL,
        "tags": ["x", "y"],
        "day": date(2026, 11, 25),
        "urgent": True,
        "count": 2,
        "skipped": None,
    }
    assert decide(engine, directory, "bob", "chat.send", CAROL, context).allowed
    assert not decide(engine, directory, "bob", "chat.send", CAROL, {**context, "count": 3}).allowed


def test_a_principal_outside_the_directory_is_still_decided(
    engine: PolicyEngine, directory: Directory
) -> None:
    guest = Person(id="gina", name="Gina", role="account_executive", team="east", manager="carol")
    mine = deal("D-900", "alice", 1_000, "proposal", "Brightwater Dental")
    decision = engine.decide(
        principal=guest, action="crm.close_deal", resource=mine, context={}, directory=directory
    )
    assert decision.rule == "rule-4-ae-close"
    assert decision.reason.endswith("your manager, carol, may do this.")
    assert decision.could == ("alice", "carol", "ines")


# --- loading ----------------------------------------------------------------------------

GOOD = '@id("ok")\n@reason("fine")\npermit (principal, action == Action::"crm.get", resource);\n'


def test_a_load_error_names_the_file_and_the_line(tmp_path: Path) -> None:
    (tmp_path / "a.cedar").write_text(GOOD)
    (tmp_path / "b.cedar").write_text(
        "// a comment; with a semicolon\n"
        '@id("first")\n@reason("a reason; with a semicolon")\n'
        "permit (principal, action, resource);\n"
        "\n"
        '@id("broken")\n@reason("oops")\n'
        "permit (principal, action == , resource);\n"
    )
    with pytest.raises(WorkspaceError) as caught:
        PolicyEngine.load(tmp_path)
    assert caught.value.file == str(tmp_path / "b.cedar")
    assert caught.value.line == 6
    assert "b.cedar:6: not a valid Cedar policy" in str(caught.value)


def test_a_missing_semicolon_is_reported_where_its_policy_starts(tmp_path: Path) -> None:
    (tmp_path / "p.cedar").write_text(
        GOOD + '\n\n@id("last")\n@reason("r")\npermit (principal, action, resource)\n'
    )
    [problem] = PolicyEngine.problems(tmp_path)
    assert (Path(problem.file or ""), problem.line) == (tmp_path / "p.cedar", 6)


def test_problems_lists_every_problem(tmp_path: Path) -> None:
    (tmp_path / "a.cedar").write_text(
        GOOD
        + 'permit (principal, action == Action::"crm.get", resource);\n'
        + '@id("ok")\n@reason("again")\npermit (principal, action, resource);\n'
        + '@id("no-reason")\nforbid (principal, action, resource);\n'
        + '@id("tpl")\n@reason("r")\npermit (principal == ?principal, action, resource);\n'
    )
    (tmp_path / "b.cedar").write_text("permit (principal, action resource);\n")
    found = [(Path(p.file or "").name, p.line, p.message) for p in PolicyEngine.problems(tmp_path)]
    assert [(file, line) for file, line, _ in found] == [
        ("a.cedar", 4),
        ("a.cedar", 4),
        ("a.cedar", 5),
        ("a.cedar", 8),
        ("a.cedar", 10),
        ("b.cedar", 1),
    ]
    messages = " | ".join(message for _, _, message in found)
    for expected in (
        "no @id",
        "'ok' is already used at",
        "no @reason",
        "templates",
        "not a valid Cedar policy",
    ):
        assert expected in messages


def test_an_empty_or_missing_folder_is_a_problem(tmp_path: Path) -> None:
    [empty] = PolicyEngine.problems(tmp_path)
    assert "no policies" in empty.message
    (tmp_path / "notes.cedar").write_text("// nothing here yet\n")
    with pytest.raises(WorkspaceError, match="no policies"):
        PolicyEngine.load(tmp_path)
    [missing] = PolicyEngine.problems(tmp_path / "absent")
    assert "missing" in missing.message


def test_the_hash_follows_the_files(tmp_path: Path) -> None:
    folder = tmp_path / "policies"
    shutil.copytree(POLICIES, folder)
    first = PolicyEngine.load(folder).hash
    assert first == PolicyEngine.load(POLICIES).hash
    assert len(first) == 64 and int(first, 16) >= 0
    rule6 = folder / "rule-6-finance.cedar"
    rule6.write_text(rule6.read_text().replace("25000", "20000"))
    changed = PolicyEngine.load(folder).hash
    assert changed != first
    rule6.rename(folder / "rule-6-credit.cedar")
    assert PolicyEngine.load(folder).hash not in (first, changed)


# --- validation against the workspace's schema, and forbids that cannot be evaluated ------------------------

MISSPELT = (
    "// a limit with a typo\n"
    '@id("big-deals")\n@reason("no one may close a deal above 200,000 through sayso")\n'
    'forbid (principal, action == Action::"crm.close_deal", resource is Deal)\n'
    "when { resource.ammount > 200000 };\n"
)


def test_check_names_a_misspelt_attribute_with_file_and_line(sqlite_root: Path) -> None:
    (sqlite_root / "policies" / "zz-limit.cedar").write_text(MISSPELT)
    done = CliRunner().invoke(app, ["check", "--workspace", str(sqlite_root)])
    assert done.exit_code == 3, done.output
    assert f"{sqlite_root / 'policies' / 'zz-limit.cedar'}:2" in done.output.replace("\n", "")
    assert "attribute `ammount` on entity type `Deal` not found (did you mean `amount`?)" in done.output
    assert "`big-deals`" in done.output
    with pytest.raises(WorkspaceError, match="ammount"):  # and at load: the workspace does not run on it
        Workspace.load(sqlite_root).policies  # noqa: B018


def test_validation_names_unknown_actions_context_and_type_errors(sqlite_root: Path) -> None:
    (sqlite_root / "policies" / "zz-more.cedar").write_text(
        '@id("typo-action")\n@reason("r")\nforbid (principal, action == Action::"crm.close_dael", resource);\n'
        '@id("typo-context")\n@reason("r")\n'
        'forbid (principal, action == Action::"billing.issue_credit_note", resource)\n'
        "when { context.amont > 1000 };\n"
        '@id("text-as-number")\n@reason("r")\n'
        'forbid (principal, action == Action::"crm.update_deal", resource is Deal)\n'
        'when { resource.stage > 3 };\n'
    )
    found = [(Path(p.file or "").name, p.line, p.message) for p in Workspace.load(sqlite_root).check()]
    assert [(file, line) for file, line, _ in found][:1] == [("zz-more.cedar", 1)]
    text = " | ".join(message for _, _, message in found)
    assert 'unrecognized action `Action::"crm.close_dael"`' in text
    assert "`amont` in context" in text and "did you mean `amount`?" in text
    assert {line for _, line, _ in found} == {1, 4, 8}


def test_the_demo_policies_match_the_demo_schema(sqlite_root: Path) -> None:
    ws = Workspace.load(sqlite_root)
    schema = ws.policy_schema()
    assert PolicyEngine.problems(POLICIES, schema) == []
    assert schema.open_types == frozenset()
    deal_attrs = schema.json[""]["entityTypes"]["Deal"]["shape"]["attributes"]
    assert deal_attrs["amount"] == {"type": "Long", "required": True}
    assert deal_attrs["owner"] == {"type": "Entity", "name": "User", "required": True}


def test_a_forbid_that_cannot_be_evaluated_denies(tmp_path: Path, directory: Directory) -> None:
    (tmp_path / "p.cedar").write_text(
        '@id("all")\n@reason("anyone may do anything")\npermit (principal, action, resource);\n' + MISSPELT
    )
    engine = PolicyEngine.load(tmp_path)  # no schema: the engine alone, as a workspace that skipped validation
    decision = decide(engine, directory, "carol", "crm.close_deal", D102, {"deal": "D-102", "outcome": "won"})
    assert (decision.allowed, decision.rule) == (False, "big-deals")
    assert "could not be evaluated, so it applies" in decision.reason
    assert "`big-deals`" in decision.reason and "ammount" in decision.reason
    assert decision.could == ()  # it fails for everyone, so no one could
    assert decision.as_dict()["errors"] == list(decision.errors) and len(decision.errors) == 1
    quiet = decide(engine, directory, "carol", "crm.close_deal", D102, {"outcome": "won"}, explain=False)
    assert (quiet.allowed, quiet.rule) == (False, "big-deals")
    assert decide(engine, directory, "carol", "crm.log_note", D102, {"text": "hi"}).allowed


def test_attributes_of_undeclared_record_types_are_not_checked() -> None:
    catalog = Catalog()
    catalog.extend_from_module("sayso.demo.catalog")
    schema = PolicySchema.build(catalog, {}, reads={"chat.history": ["Message"]})  # no system declares its records
    assert schema.open_types >= {"Deal", "Account", "Ticket"}
    assert PolicyEngine.problems(POLICIES, schema) == []


def test_a_forbid_that_fails_at_run_time_denies_and_the_audit_records_why(sqlite_root: Path) -> None:
    (sqlite_root / "policies" / "zz-overflow.cedar").write_text(  # valid for the schema; overflows on 240,000
        '@id("scaled-limit")\n@reason("no one may close a deal above the scaled limit")\n'
        'forbid (principal, action == Action::"crm.close_deal", resource is Deal)\n'
        "when { resource.amount * 100000000000000 > 9000000000000000000 };\n"
    )
    assert Workspace.load(sqlite_root).check() == []
    pipeline = pipeline_for(sqlite_root, "carol")
    result = pipeline.do("carol", "crm.close_deal", {"deal": "D-102", "outcome": "won"})
    assert (result.status.value, result.rule) == ("denied", "scaled-limit"), result.reply
    assert "could not be evaluated, so it applies" in result.reply
    [decision] = [r for r in pipeline.audit.list(conversation=result.conversation) if r["event"] == "decision"]
    assert decision["status"] == "deny" and decision["detail"]["rule"] == "scaled-limit"
    assert "overflow" in decision["detail"]["errors"][0]
