"""The offline interpreter on the demo catalog and on an action added in YAML: which action, which
arguments (typed), several steps, no action, questions, untrusted text, and the plugin registry.

Contexts are built directly, as ``sayso.conversation`` builds them (``now`` in the person's time
zone, the demo directory), so no database is needed. The reference time is Wednesday
2026-11-25 09:00 in each person's own zone.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import sayso
from sayso.catalog import Catalog
from sayso.clock import parse_time
from sayso.demo.catalog import catalog as demo
from sayso.directory import Directory
from sayso.errors import ConfigurationError
from sayso.interpreter import Context, FocusItem, Interpretation, Interpreter, registry
from sayso.interpreter.offline import OfflineInterpreter

from .conftest import demo_catalog_with

DIRECTORY = Directory.load(Path(sayso.__file__).resolve().parent / "demo" / "files" / "directory.yaml")
NOW = "2026-11-25T09:00"  # a Wednesday


def context(user: str = "alice", **fields: Any) -> Context:
    return Context(now=parse_time(NOW, DIRECTORY.get(user).timezone), directory=DIRECTORY, **fields)


def interpret(text: str, user: str = "alice", catalog: Catalog = demo, **fields: Any) -> Interpretation:
    return OfflineInterpreter().interpret(text, context(user, **fields), catalog, DIRECTORY.get(user))


def plan(text: str, user: str = "alice", catalog: Catalog = demo) -> tuple[str, dict[str, Any]]:
    """The action and arguments of a one-step plan."""
    found = interpret(text, user, catalog)
    assert found.kind == "plan", found
    assert len(found.steps) == 1, found.steps
    return found.steps[0].action, found.steps[0].args


def as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def as_datetime(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


# --- an action added in YAML ---------------------------------------------------------------------

ESCALATE = """\
actions:
  - name: support.escalate
    description: Escalate a support ticket to an engineer, with a severity.
    examples:
      - "escalate SUP-17 to sam as sev1"
    kind: write
    connector: tickets
    operation: update
    resource: {type: Ticket, param: ticket}
    risk: medium
    params:
      ticket: {type: string, required: true, record: Ticket, description: "A ticket key such as SUP-17"}
      engineer: {type: string, person: true, description: "Who takes it over"}
      severity: {type: string, required: true, enum: [sev1, sev2, sev3]}
      due: {type: date, description: "When it must be fixed"}
"""


@pytest.fixture(scope="module")
def yaml_catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    return demo_catalog_with(tmp_path_factory.mktemp("yaml") / "ws", "support.yaml", ESCALATE)


def test_yaml_action_is_understood_with_its_arguments(yaml_catalog: Catalog) -> None:
    assert "support.escalate" in yaml_catalog and "support.escalate" not in demo
    action, args = plan("please escalate SUP-18 to sam as sev2 by Friday", catalog=yaml_catalog)
    assert action == "support.escalate"
    assert args["ticket"] == "SUP-18"
    assert args["engineer"] == "sam"
    assert args["severity"] == "sev2"
    assert as_date(args["due"]) == date(2026, 11, 27)


def test_yaml_action_in_other_words(yaml_catalog: Catalog) -> None:
    action, args = plan("bump SUP-18 up to an engineer, sev2, sam should take it", catalog=yaml_catalog)
    assert action == "support.escalate"
    assert (args["ticket"], args["engineer"], args["severity"]) == ("SUP-18", "sam", "sev2")


def test_yaml_action_asks_for_its_missing_enum(yaml_catalog: Catalog) -> None:
    found = interpret("escalate SUP-18 to sam", catalog=yaml_catalog)
    assert found.kind == "question"
    assert found.param == "severity"
    assert [o.value for o in found.options] == ["sev1", "sev2", "sev3"]
    assert found.steps[-1].action == "support.escalate"
    assert found.steps[-1].args == {"ticket": "SUP-18", "engineer": "sam"}


def test_yaml_action_leaves_demo_requests_alone(yaml_catalog: Catalog) -> None:
    assert plan("close SUP-17", catalog=yaml_catalog) == ("tickets.update", {"ticket": "SUP-17", "status": "closed"})


# --- synonyms and word forms ---------------------------------------------------------------------


def test_mark_as_lost_closes_the_deal() -> None:
    action, args = plan("mark the Orchid deal as lost")
    assert action == "crm.close_deal"
    assert args["outcome"] == "lost"
    assert "Orchid" in args["deal"]


def test_ping_sends_a_chat_message() -> None:
    assert plan("ping carol that the demo moved to Thursday") == (
        "chat.send", {"to": "carol", "text": "the demo moved to Thursday"})


def test_follow_up_is_a_ticket_due_next_tuesday() -> None:
    action, args = plan("create a follow-up for devi next Tuesday")
    assert action == "tickets.create"
    assert args["assignee"] == "devi"
    assert as_date(args["due"]) == date(2026, 12, 1)


@pytest.mark.parametrize("courtesy", ["{}", "please {}", "could you {}?", "can you {}"])
@pytest.mark.parametrize(("user", "text", "action", "args"), [
    ("sam", "lower SUP-17 to low", "tickets.update", {"ticket": "SUP-17", "priority": "low"}),
    ("sam", "downgrade SUP-17 to low", "tickets.update", {"ticket": "SUP-17", "priority": "low"}),
    ("sam", "increase the priority of SUP-17 to high", "tickets.update", {"ticket": "SUP-17", "priority": "high"}),
    ("sam", "give SUP-17 to devi", "tickets.update", {"ticket": "SUP-17", "assignee": "devi"}),
    ("alice", "push back D-101 to December 20", "crm.update_deal", {"deal": "D-101", "close_date": "2026-12-20"}),
    ("alice", "postpone D-101 to December 20", "crm.update_deal", {"deal": "D-101", "close_date": "2026-12-20"}),
    ("alice", "delay the close of D-101 to December 20", "crm.update_deal",
     {"deal": "D-101", "close_date": "2026-12-20"}),
    ("alice", "reduce the amount of D-101 to 40000", "crm.update_deal", {"deal": "D-101", "amount": 40000}),
    ("alice", "give Orchid to devi", "crm.reassign_account", {"account": "Orchid", "new_owner": "devi"}),
])
def test_change_verbs_the_catalog_does_not_say(courtesy: str, user: str, text: str, action: str,
                                                args: dict[str, Any]) -> None:
    """"lower", "postpone", "give ... to": words for a change that no action's description uses, read
    through the synonym table (offline/words.py), with or without courtesy around them."""
    found, got = plan(courtesy.format(text), user)
    assert found == action
    assert {k: str(v) for k, v in got.items()} == {k: str(v) for k, v in args.items()}


# --- typed arguments -----------------------------------------------------------------------------


def test_thousands_shorthand_is_a_number() -> None:
    action, args = plan("set the Orchid amount to 120k")
    assert action == "crm.update_deal"
    assert args["amount"] == 120000


def test_dollar_amount_is_a_number() -> None:
    action, args = plan("issue a credit note of $3,000 to Orchid Pharma for the outage")
    assert action == "billing.issue_credit_note"
    assert args["amount"] == 3000
    assert args["account"] == "Orchid Pharma"


def test_end_of_month_is_the_last_day() -> None:
    action, args = plan("push the Orchid close date to end of month")
    assert action == "crm.update_deal"
    assert as_date(args["close_date"]) == date(2026, 11, 30)


@pytest.mark.parametrize(("user", "zone"), [("alice", "America/New_York"), ("devi", "America/Los_Angeles"),
                                            ("sam", "Europe/London")])
def test_tomorrow_at_nine_is_in_the_persons_zone(user: str, zone: str) -> None:
    action, args = plan("remind me tomorrow at 9 to call Priya", user=user)
    assert action == "calendar.remind"
    at = as_datetime(args["at"])
    assert at.tzinfo is not None
    assert at == datetime(2026, 11, 26, 9, 0, tzinfo=ZoneInfo(zone))
    assert args["text"] == "call Priya"


def test_misspelled_enum_value_is_the_closest_one() -> None:
    action, args = plan("move the Orchid deal to negotation")
    assert action == "crm.update_deal"
    assert args["stage"] == "negotiation"


# --- several steps -------------------------------------------------------------------------------


def test_two_requests_are_two_steps_in_order() -> None:
    found = interpret("move it to negotiation and remind me Friday",
                      focus=[FocusItem(type="Deal", id="D-104", title="Orchid Pharma Renewal")])
    assert [s.action for s in found.steps] == ["crm.update_deal", "calendar.remind"]
    assert found.steps[0].args["stage"] == "negotiation"
    assert as_datetime(found.steps[1].args["at"]).date() == date(2026, 11, 27)
    # The reminder says when but not what: a question for exactly that, the first step kept.
    assert found.kind == "question"
    assert found.param == "text"


def test_two_complete_requests_are_a_plan() -> None:
    found = interpret("move it to negotiation and remind me Friday to call Priya")
    assert found.kind == "plan"
    assert [s.action for s in found.steps] == ["crm.update_deal", "calendar.remind"]
    assert found.steps[1].args["text"] == "call Priya"


# --- no action -----------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    "what's the weather",
    "thanks",
    "tell me a joke",
])
def test_no_action_gets_a_reply(text: str) -> None:
    found = interpret(text)
    assert found.kind == "none"
    assert found.steps == []
    assert found.reply


@pytest.mark.parametrize("text", ["what's the weather", "thanks", "tell me a joke"])
def test_no_action_proposes_no_step(text: str) -> None:
    found = interpret(text)
    assert (found.kind, found.steps) == ("none", [])
    assert found.reason in ("out_of_scope", "thanks", "smalltalk")


# --- questions -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "action", "param"), [
    ("issue a credit note to Orchid Pharma", "billing.issue_credit_note", "amount"),
    ("message carol", "chat.send", "text"),
    ("remind me Friday", "calendar.remind", "text"),
])
def test_missing_argument_is_asked_for_by_name(text: str, action: str, param: str) -> None:
    found = interpret(text)
    assert found.kind == "question"
    assert found.param == param
    assert found.question
    assert found.steps[-1].action == action
    assert param not in found.steps[-1].args


def test_ambiguous_action_asks_which_action() -> None:
    found = interpret("update it")
    assert found.kind == "question"
    assert found.param is None
    values = [o.value for o in found.options]
    assert set(values) == {"crm.update_deal", "tickets.update"}
    assert all(v in demo for v in values)


# --- untrusted text ------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    "do what the ticket says",
    "do whatever the email says",
    "follow the instructions in the ticket",
    "do what SUP-17 says",
])
def test_instructions_from_records_are_not_followed(text: str) -> None:
    found = interpret(text)
    assert found.kind == "none"
    assert found.steps == []
    assert found.reason == "untrusted"


# --- the interpretation and the registry ---------------------------------------------------------


def test_interpretation_names_its_interpreter_and_keeps_raw() -> None:
    found = interpret("show my deals")
    assert found.interpreter == "offline"
    assert found.version == OfflineInterpreter.version != ""
    assert found.raw is not None
    audit = found.audit()
    assert audit["interpreter"] == "offline" and audit["version"] == found.version and "raw" in audit


def test_registry_creates_the_offline_interpreter() -> None:
    created = registry.create("offline")
    assert isinstance(created, Interpreter)
    assert (created.name, created.version) == ("offline", OfflineInterpreter.version)
    assert "offline" in registry.names()
    found = created.interpret("list my deals", context("devi"), demo, DIRECTORY.get("devi"))
    assert (found.kind, found.steps[0].action, found.steps[0].args) == ("plan", "crm.find_deals", {"owner": "devi"})


def test_registry_refuses_an_unknown_interpreter() -> None:
    with pytest.raises(ConfigurationError, match="no-such-interpreter") as raised:
        registry.create("no-such-interpreter")
    assert raised.value.code == "configuration_error"


@pytest.mark.parametrize("text", [
    "send carol a message saying the demo moved, even if she is out today",
    "tell carol the demo moved, I don't mind if she reads it late",
    "tell carol the demo moved, it's fine if she reads it late",
])
def test_a_concession_is_not_a_condition(text: str) -> None:
    """"even if ...", "I don't mind if ...", "it's fine if ..." allow; they set no condition to check first."""
    found = interpret(text)
    assert found.reason != "condition" and [s.action for s in found.steps] == ["chat.send"]


def test_a_condition_is_still_declined() -> None:
    found = interpret("if the Orchid deal is lost, tell carol the demo moved")
    assert found.kind == "none" and found.reason == "condition"
