"""The SGD benchmark's adapter and scorer (bench/sgd.py), on hand-made services and cases."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from sayso.catalog import Catalog, Tier
from sayso.directory import Person
from sayso.interpreter import Context, Interpretation, ProposedStep

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "bench" / "sgd.py"


def _load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_sgd", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


sgd = _load_bench()

SERVICES: list[dict[str, Any]] = [
    {
        "service_name": "Tables_1",
        "description": "Find restaurants and book tables",
        "slots": [
            {"name": "city", "description": "City of the restaurant", "is_categorical": False, "possible_values": []},
            {"name": "restaurant", "description": "Name of the restaurant", "is_categorical": False,
             "possible_values": []},
            {"name": "party_size", "description": "Number of people", "is_categorical": True,
             "possible_values": ["1", "2", "3", "4"]},
            {"name": "date", "description": "Date of the booking", "is_categorical": False, "possible_values": []},
            {"name": "phone", "description": "Phone number", "is_categorical": False, "possible_values": []},
        ],
        "intents": [
            {"name": "FindPlaces", "description": "Find restaurants in a city", "is_transactional": False,
             "required_slots": ["city"], "optional_slots": {"party_size": "dontcare"}, "result_slots": ["phone"]},
            {"name": "BookTable", "description": "Book a table at a restaurant", "is_transactional": True,
             "required_slots": ["restaurant", "date"], "optional_slots": {"party_size": "2"}, "result_slots": []},
        ],
    },
    {
        "service_name": "Feeds_2",
        "description": "Read data feeds",
        "slots": [
            {"name": "json", "description": "The feed's format", "is_categorical": True,
             "possible_values": ["compact", "pretty"]},
        ],
        "intents": [
            {"name": "FindPlaces", "description": "Find feeds near you", "is_transactional": False,
             "required_slots": [], "optional_slots": {"json": "compact"}, "result_slots": []},
        ],
    },
]


def _case(
    utterance: str,
    gold: str,
    prev: str = "NONE",
    slots: dict[str, str] | None = None,
    canonical: dict[str, str] | None = None,
    not_verbatim: dict[str, list[str]] | None = None,
    service: str = "Tables_1",
) -> dict[str, Any]:
    return {
        "dialogue_id": "1_00000", "turn_index": 0, "service": service, "utterance": utterance,
        "prev_system_utterance": "", "gold_active_intent": gold, "prev_active_intent": prev,
        "intent_in_turn": gold != prev, "user_acts": [], "gold_slots": slots or {},
        "gold_slots_canonical": canonical if canonical is not None else dict(slots or {}),
        "informed_not_verbatim": not_verbatim or {}, "requested_slots": [], "n_frames_in_turn": 1,
        "seen_service": False,
    }


CASES = [
    _case("Find me a place to eat in San Jose", "FindPlaces", slots={"city": "San Jose"}),
    _case("Book Sino for the 2nd of March", "BookTable", "FindPlaces",
          slots={"restaurant": "Sino", "date": "2nd of March"},
          canonical={"restaurant": "Sino Restaurant", "date": "2019-03-02"}),
    _case("Four of us, please", "BookTable", "BookTable", not_verbatim={"party_size": ["4"]}),
    _case("No, that's all, thanks", "NONE", "BookTable"),
    _case("Show me pretty feeds", "FindPlaces", slots={"json": "pretty"}, service="Feeds_2"),
]


class Fake:
    """An interpreter that answers from a function of (text, context, catalog)."""

    name = "fake"
    version = "1"

    def __init__(self, answer: Callable[[str, Context, Catalog], Interpretation]) -> None:
        self.answer = answer
        self.seen: list[tuple[str, Context, Catalog]] = []

    def interpret(self, text: str, context: Context, catalog: Catalog, person: Person) -> Interpretation:
        self.seen.append((text, context, catalog))
        return self.answer(text, context, catalog)


def _oracle(cases: list[dict[str, Any]]) -> Fake:
    """Answers each case's gold: a plan with the gold intent and slots, or a decline for NONE."""
    by_text = {c["utterance"]: c for c in cases}

    def answer(text: str, context: Context, catalog: Catalog) -> Interpretation:
        case = by_text[text]
        if case["gold_active_intent"] == "NONE":
            return Interpretation(kind="none", reason="decline")
        action = f"{case['service']}.{case['gold_active_intent']}"
        assert action in catalog
        return Interpretation(kind="plan", steps=[ProposedStep(action=action, mentions=case["gold_slots"])])

    return Fake(answer)


def _plan(action: str, args: dict[str, Any] | None = None, mentions: dict[str, str] | None = None) -> Interpretation:
    return Interpretation(kind="plan", steps=[ProposedStep(action=action, args=args or {}, mentions=mentions or {})])


def _score(cases: list[dict[str, Any]], fake: Fake, setting: str = "own") -> dict[str, Any]:
    report: dict[str, Any] = sgd.run_cases(fake, SERVICES, cases, setting).report()
    return report


# --- the schema as a catalog -----------------------------------------------------------------


def test_schema_becomes_a_catalog_of_typed_actions() -> None:
    catalog = sgd.build_catalog(SERVICES)
    assert [a.name for a in catalog] == ["Feeds_2.FindPlaces", "Tables_1.BookTable", "Tables_1.FindPlaces"]

    book = catalog.get("Tables_1.BookTable")
    assert book.kind == "write" and book.risk.tier == Tier.LOW
    assert catalog.get("Tables_1.FindPlaces").kind == "read"
    assert (book.connector, book.resource.type, book.examples) == ("sgd", "System", [])
    assert book.description == "Book a table at a restaurant. Find restaurants and book tables."
    alone = sgd.build_catalog(SERVICES, "intent").get("Tables_1.BookTable").description
    assert alone == "Book a table at a restaurant."

    schema = book.json_schema()
    assert set(schema["properties"]) == {"restaurant", "date", "party_size"}  # result slots are not parameters
    assert sorted(schema["required"]) == ["date", "restaurant"]
    assert schema["properties"]["date"]["description"] == "Date of the booking"
    fields = book.params.model_fields
    assert fields["party_size"].default is None and not fields["party_size"].is_required()

    book.validate({"restaurant": "Sino", "date": "tomorrow", "party_size": "3"})
    with pytest.raises(Exception, match="party_size"):
        book.validate({"restaurant": "Sino", "date": "tomorrow", "party_size": "12"})
    with pytest.raises(Exception, match="phone"):
        book.validate({"restaurant": "Sino", "date": "tomorrow", "phone": "555"})  # extra="forbid"
    with pytest.raises(Exception, match="date"):
        book.validate({"restaurant": "Sino"})


def test_categorical_slots_are_literal_enums_and_odd_names_keep_their_slot_name() -> None:
    catalog = sgd.build_catalog(SERVICES)
    party = catalog.get("Tables_1.FindPlaces").json_schema()["properties"]["party_size"]
    assert party["anyOf"][0]["enum"] == ["1", "2", "3", "4"]
    feeds = catalog.get("Feeds_2.FindPlaces")
    # a slot named like a BaseModel method gets another field name, with the slot's name as its alias
    assert list(feeds.json_schema()["properties"]) == ["json"]
    assert feeds.validate({"json": "pretty"}) is not None
    for key in ("json", *feeds.params.model_fields):
        pred = sgd.predict(_plan("Feeds_2.FindPlaces", mentions={key: "pretty"}), "NONE", catalog)
        assert pred.slots == {"json": ("pretty",)}


def test_own_setting_sees_its_service_only_and_all_sees_every_service() -> None:
    own = sgd.Catalogs(SERVICES, "own")
    tables = own.for_service("Tables_1")
    assert [a.name for a in tables] == ["Tables_1.BookTable", "Tables_1.FindPlaces"]
    assert own.for_service("Tables_1") is tables  # built once per service
    everything = sgd.Catalogs(SERVICES, "all")
    assert len(everything.for_service("Tables_1")) == 3
    assert everything.for_service("Feeds_2") is everything.for_service("Tables_1")


def test_each_case_is_read_with_its_previous_intent_pending() -> None:
    fake = _oracle(CASES)
    sgd.run_cases(fake, SERVICES, CASES)
    contexts = [context for _, context, _ in fake.seen]
    assert [c.pending_action for c in contexts] == [
        None, "Tables_1.FindPlaces", "Tables_1.BookTable", "Tables_1.BookTable", None,
    ]
    assert all(c.now.year == 2019 and c.now.month == 3 and c.now.utcoffset() is not None for c in contexts)


def test_the_systems_last_words_are_the_history() -> None:
    """A turn after "How about Sino?" is read with those words as the assistant's; a first turn has none."""
    cases = [dict(CASES[0]), dict(CASES[1], prev_system_utterance="How about Sino? It is in San Jose.")]
    fake = _oracle(cases)
    sgd.run_cases(fake, SERVICES, cases)
    histories = [context.history for _, context, _ in fake.seen]
    assert histories == [[], [{"role": "assistant", "text": "How about Sino? It is in San Jose."}]]


# --- from an interpretation to a dialogue state -----------------------------------------------


def test_interpretations_map_to_dialogue_states() -> None:
    catalog = sgd.build_catalog(SERVICES)
    step = ProposedStep(action="Tables_1.BookTable", args={"restaurant": "Sino", "date": "2019-03-02"},
                        mentions={"date": "the 2nd"})
    plan = sgd.predict(Interpretation(kind="plan", steps=[step]), "FindPlaces", catalog)
    assert (plan.intent, plan.outcome) == ("BookTable", "plan")
    assert plan.slots == {"date": ("the 2nd", "2019-03-02"), "restaurant": ("Sino",)}
    asking = sgd.predict(Interpretation(kind="question", steps=[step], param="date"), "NONE", catalog)
    assert asking.intent == "BookTable"

    declined = sgd.predict(Interpretation(kind="none", reason="decline"), "BookTable", catalog)
    assert (declined.intent, declined.slots) == ("NONE", {})
    for other in (
        Interpretation(kind="none", reason="thanks"),
        Interpretation(kind="none", reason="smalltalk"),
        Interpretation(kind="reply", reason="affirm"),
        Interpretation(kind="reply", reason="negate"),
        Interpretation(kind="question", question="Which one?"),
    ):
        carried = sgd.predict(other, "BookTable", catalog)
        assert (carried.intent, carried.slots) == ("BookTable", {}), other
        assert carried.outcome.startswith("carry:")

    answer = Interpretation(kind="reply", reason="answer", steps=[ProposedStep(
        action="Tables_1.BookTable", args={"date": "2019-03-02"}, mentions={"date": "Saturday"})])
    filled = sgd.predict(answer, "BookTable", catalog)
    assert (filled.intent, filled.outcome, filled.slots) == ("BookTable", "carry:reply:answer",
                                                             {"date": ("Saturday", "2019-03-02")})
    assert sgd.predict(answer, "FindPlaces", catalog).slots == {}  # a reply for another action: no slots


# --- scoring ----------------------------------------------------------------------------------


@pytest.mark.parametrize("setting", ["own", "all"])
def test_an_interpreter_answering_gold_scores_one_everywhere(setting: str) -> None:
    report = _score(CASES, _oracle(CASES), setting)
    assert report["n"] == len(CASES)
    for key in ("intent_accuracy", "slot_precision", "slot_recall", "slot_f1", "no_action_precision",
                "no_action_recall"):
        assert report[key] == 1.0, key
    assert report["errors"] == 0
    assert all(fig["intent_accuracy"] == 1.0 for fig in report["per_service"].values())
    if setting == "all":
        assert report["service_accuracy"] == 1.0


def test_always_declining_gives_the_share_of_no_action_turns() -> None:
    report = _score(CASES, Fake(lambda *_: Interpretation(kind="none", reason="decline")))
    assert report["predicted_none"] == len(CASES)
    assert report["gold_none"] == 1
    assert report["no_action_precision"] == pytest.approx(1 / len(CASES))
    assert report["no_action_recall"] == 1.0
    assert report["intent_accuracy"] == pytest.approx(1 / len(CASES))
    assert report["slot_recall"] == 0.0
    assert report["slot_precision"] is None  # nothing predicted
    assert report["slot_f1"] is None


def test_no_action_precision_is_absent_without_gold_none_turns_and_null_when_nothing_is_predicted_none() -> None:
    without = [c for c in CASES if c["gold_active_intent"] != "NONE"]
    assert "no_action_precision" not in _score(without, _oracle(without))
    first = CASES[0]
    carry = Fake(lambda *_: _plan("Tables_1.FindPlaces"))
    report = _score([first, CASES[3]], carry)
    assert report["predicted_none"] == 0
    assert report["no_action_precision"] is None
    assert report["no_action_recall"] == 0.0


def test_carry_over_keeps_the_previous_intent() -> None:
    report = _score(CASES[1:4], Fake(lambda *_: Interpretation(kind="reply", reason="affirm")))
    # case 1: FindPlaces -> BookTable (wrong), case 2: BookTable kept (right), case 3: gold NONE (wrong)
    assert report["intent_accuracy"] == pytest.approx(1 / 3)
    assert report["outcomes"] == {"carry": 3}


def test_slots_match_as_said_or_canonical_ignoring_case_and_spaces() -> None:
    case = CASES[1]
    said = Fake(lambda *_: _plan("Tables_1.BookTable", mentions={"restaurant": " sino ", "date": "2ND OF MARCH"}))
    assert _score([case], said)["slot_f1"] == 1.0
    canonical = Fake(lambda *_: _plan("Tables_1.BookTable", args={"restaurant": "Sino Restaurant",
                                                                  "date": "2019-03-02"}))
    assert _score([case], canonical)["slot_f1"] == 1.0
    # a mention that is off is saved by an argument in canonical form
    mixed = Fake(lambda *_: _plan("Tables_1.BookTable", args={"date": "2019-03-02"}, mentions={"date": "on the 2nd"}))
    report = _score([case], mixed)
    assert (report["slot_precision"], report["slot_recall"]) == (1.0, 0.5)
    wrong = Fake(lambda *_: _plan("Tables_1.BookTable", mentions={"restaurant": "Sino Express", "city": "Paris"}))
    report = _score([case], wrong)
    assert (report["slot_precision"], report["slot_recall"], report["slot_f1"]) == (0.0, 0.0, 0.0)
    assert report["slots_predicted"] == 2 and report["slots_gold"] == 2


def test_predictions_for_slots_given_in_other_words_are_ignored() -> None:
    case = CASES[2]  # "Four of us": party_size 4 was informed, but not verbatim
    fake = Fake(lambda *_: _plan("Tables_1.BookTable", args={"party_size": "4"}, mentions={"party_size": "Four"}))
    report = _score([case], fake)
    assert report["slots_ignored"] == 1
    assert report["slots_predicted"] == 0 and report["slots_gold"] == 0
    assert report["slot_precision"] is None
    extra = Fake(lambda *_: _plan("Tables_1.BookTable", mentions={"party_size": "Four", "city": "Four"}))
    report = _score([case], extra)
    assert (report["slots_ignored"], report["slots_predicted"], report["slot_precision"]) == (1, 1, 0.0)


def test_in_the_all_setting_intent_names_are_compared_without_the_service() -> None:
    wrong_service = Fake(lambda *_: _plan("Feeds_2.FindPlaces"))
    report = _score([CASES[0]], wrong_service, "all")
    assert report["intent_accuracy"] == 1.0
    assert report["service_accuracy"] == 0.0


def test_a_crashing_interpreter_is_counted_and_carried_over() -> None:
    def crash(*_: Any) -> Interpretation:
        raise ValueError("boom")

    run = sgd.run_cases(Fake(crash), SERVICES, CASES[1:3])
    report = run.report()
    assert report["errors"] == 2 and "boom" in run.errors[0]
    assert report["intent_accuracy"] == 0.5


def test_failure_examples_are_sampled_per_kind() -> None:
    fake = Fake(lambda *_: _plan("Tables_1.FindPlaces", mentions={"city": "Paris"}))
    run = sgd.run_cases(fake, SERVICES, CASES, failures=1)
    text = sgd.failures_report(run.failures)
    for kind in ("wrong intent", "missed none", "missed slot", "wrong value", "spurious slot"):
        assert f"--- {kind}:" in text
    assert all(len(kept) == 1 for kept in run.failures.kept.values())


# --- the command line ------------------------------------------------------------------------


@pytest.fixture
def data(tmp_path: Path) -> tuple[Path, Path]:
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(SERVICES))
    cases = tmp_path / "cases.jsonl"
    cases.write_text("".join(json.dumps(c) + "\n" for c in CASES))
    return schema, cases


EXPECTED_KEYS = {"n", "intent_accuracy", "slot_precision", "slot_recall", "slot_f1", "no_action_precision"}


def test_main_ends_with_one_json_line(data: tuple[Path, Path], capsys: pytest.CaptureFixture[str],
                                      tmp_path: Path) -> None:
    schema, cases = data
    dump = tmp_path / "dump.jsonl"
    argv = ["--schema", str(schema), "--cases", str(cases), "--setting", "all", "--json", "--limit", "4",
            "--failures", "2", "--dump", str(dump)]
    assert sgd.main(argv, interpreter=_oracle(CASES)) == 0
    out = capsys.readouterr().out.strip().splitlines()
    figures = json.loads(out[-1])
    assert EXPECTED_KEYS <= set(figures)
    assert figures["n"] == 4 and figures["intent_accuracy"] == 1.0 and figures["setting"] == "all"
    assert "intent accuracy" in "\n".join(out[:-1])
    assert len(dump.read_text().splitlines()) == 4


def test_command_line_with_the_offline_interpreter(data: tuple[Path, Path]) -> None:
    try:
        from sayso.interpreter.offline import OfflineInterpreter  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"sayso.interpreter.offline is not available yet: {exc}")
    schema, cases = data
    for setting in ("own", "all"):
        done = subprocess.run(
            [sys.executable, str(SCRIPT), "--schema", str(schema), "--cases", str(cases), "--setting", setting,
             "--json", "--limit", "50"],
            capture_output=True, text=True, check=True, cwd=ROOT,
        )
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        assert EXPECTED_KEYS <= set(figures)
        assert figures["n"] == len(CASES) and figures["errors"] == 0


# --- halves and weights -------------------------------------------------------------------------


def test_the_report_splits_whole_services_into_a_tuned_and_a_held_half(data: tuple[Path, Path],
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    schema, cases = data
    assert sgd.main(["--schema", str(schema), "--cases", str(cases), "--json"], interpreter=_oracle(CASES)) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    expected: dict[str, int] = {}
    for case in CASES:
        half = sgd.service_half(case["service"])
        expected[half] = expected.get(half, 0) + 1
    assert {name: fig["n"] for name, fig in figures["halves"].items()} == expected
    assert sum(expected.values()) == len(CASES)


def test_the_half_option_reads_only_that_halfs_services(data: tuple[Path, Path]) -> None:
    schema, cases = data
    for half in ("tuned", "held"):
        read = list(sgd.read_cases(cases, half=half))  # type: ignore[arg-type]
        assert [c["utterance"] for c in read] == [c["utterance"] for c in CASES
                                                 if sgd.service_half(c["service"]) == half]


def test_weights_change_the_offline_interpreter_and_are_reported(data: tuple[Path, Path],
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    schema, cases = data
    argv = ["--schema", str(schema), "--cases", str(cases), "--json"]
    assert sgd.main(argv) == 0
    plain = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert sgd.main([*argv, "--weights", "min_score=1000", "--weights", "evidence.choice=0"]) == 0
    swept = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert swept["weights"] == ["min_score=1000", "evidence.choice=0"]
    # no words are strong enough to start an action now: only turns that go on with the pending one are plans
    started = [c for c in CASES if c["prev_active_intent"] == "NONE"]
    assert swept["outcomes"].get("plan", 0) + swept["outcomes"].get("question", 0) \
        <= len(CASES) - len(started) < plain["outcomes"].get("plan", 0) + plain["outcomes"].get("question", 0)


def test_an_unknown_weight_is_a_configuration_error() -> None:
    from sayso.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="no weight 'min_scor'"):
        sgd.make_interpreter("offline", ["min_scor=1"])


def test_camel_case_intent_names_count_as_words_of_the_action() -> None:
    """"Tables_1.FindPlaces" names a verb and an object, as "crm.find_deals" does; the "1" says nothing."""
    from sayso.interpreter.offline.ranking import index_for

    index = index_for(sgd.build_catalog(SERVICES))
    finding = index.by_name["Tables_1.FindPlaces"].terms
    booking = index.by_name["Tables_1.BookTable"].terms
    from sayso.interpreter.offline.words import stem

    assert {"find", stem("places")} <= set(finding) and {"book", stem("table")} <= set(booking)
    assert not any(term.strip("~#").isdigit() for term in (*finding, *booking))


BANK = {
    "service_name": "Bank_9",
    "description": "Manage bank accounts",
    "slots": [{"name": "account_type", "description": "Type of the account", "is_categorical": True,
               "possible_values": ["checking", "savings"]}],
    "intents": [{"name": "CheckBalance", "description": "Get the balance of an account", "is_transactional": False,
                 "required_slots": [], "optional_slots": {"account_type": "checking"}, "result_slots": []}],
}


@pytest.mark.parametrize(("said", "slot"), [
    ("check my balance", None),  # "check" names CheckBalance; it is not the "checking" account
    ("please check the balance", None),
    ("check my savings balance", "savings"),
    ("what's the balance in my checking account?", "checking"),  # the value itself, said in full
])
def test_a_word_of_the_actions_name_is_not_a_value_unless_it_is_the_value(said: str, slot: str | None) -> None:
    from sayso.interpreter.offline import OfflineInterpreter

    catalog = sgd.build_catalog([BANK])
    found = OfflineInterpreter().interpret(said, Context(now=sgd.NOW), catalog, sgd.PERSON)
    assert found.steps and found.steps[0].action == "Bank_9.CheckBalance"
    assert found.steps[0].args.get("account_type") == slot


@pytest.mark.parametrize("said", [
    "That one sounds perfect. Can you book a table there?",  # the polite request is its own sentence
    "that looks good, could you book a table for me?",
    "Yes, that is the one. I want to book a table now.",  # the request leads its own sentence
    "Great. Please book a table at that restaurant.",
])
def test_after_a_search_a_request_in_a_later_sentence_is_a_request(said: str) -> None:
    """What the dialogue was doing (a search) goes on only until a sentence of the turn asks for something else."""
    from sayso.interpreter.offline import OfflineInterpreter

    catalog = sgd.build_catalog(SERVICES[:1])
    context = Context(now=sgd.NOW, pending_action="Tables_1.FindPlaces")
    found = OfflineInterpreter().interpret(said, context, catalog, sgd.PERSON)
    assert found.steps and found.steps[0].action == "Tables_1.BookTable"


@pytest.mark.parametrize("said", [
    "That one sounds perfect. Can you tell me at what time they open?",  # a polite question still asks
    "Hello. Could you find restaurants in Paris?",
    "that looks good, can you tell me which restaurants are in Paris?",
])
def test_a_polite_question_in_a_later_sentence_stays_a_question(said: str) -> None:
    from sayso.interpreter.offline import OfflineInterpreter

    catalog = sgd.build_catalog(SERVICES[:1])
    context = Context(now=sgd.NOW, pending_action="Tables_1.FindPlaces")
    found = OfflineInterpreter().interpret(said, context, catalog, sgd.PERSON)
    assert all(step.action != "Tables_1.BookTable" for step in found.steps)


@pytest.mark.parametrize("said", [
    "I want to know which restaurants there are in Paris.",
    "Tell me the restaurants in Paris.",
    "Hello! I'd like to know what restaurants are in Paris",
    "Hi. Please tell me the restaurants in Paris.",
])
def test_a_request_for_information_reads(said: str) -> None:
    """"tell me ...", "I want to know ..." ask about state: a read, never the write whose words are near."""
    from sayso.interpreter.offline import OfflineInterpreter

    catalog = sgd.build_catalog(SERVICES[:1])
    found = OfflineInterpreter().interpret(said, Context(now=sgd.NOW), catalog, sgd.PERSON)
    assert found.steps and all(step.action == "Tables_1.FindPlaces" for step in found.steps)


def test_a_write_whose_object_is_not_chosen_yet_leans_to_the_search() -> None:
    """"a table at some nice restaurant": nothing chosen to book yet, so the search comes first; a weight
    of 0 (``write_unchosen``) turns the lean off."""
    from sayso.interpreter.offline import OfflineInterpreter
    from sayso.interpreter.offline.weights import DEFAULT

    catalog = sgd.build_catalog(SERVICES[:1])
    said = "I want a table at some nice restaurant"
    found = OfflineInterpreter().interpret(said, Context(now=sgd.NOW), catalog, sgd.PERSON)
    off = OfflineInterpreter(weights=DEFAULT.with_("write_unchosen=0")).interpret(
        said, Context(now=sgd.NOW), catalog, sgd.PERSON)
    assert found.steps and found.steps[0].action == "Tables_1.FindPlaces"
    assert off.steps and off.steps[0].action == "Tables_1.BookTable"
    chosen = OfflineInterpreter().interpret("I want to book a table at Bourbon Steak on friday",
                                            Context(now=sgd.NOW), catalog, sgd.PERSON)
    assert chosen.steps and chosen.steps[0].action == "Tables_1.BookTable"


def test_small_talk_then_a_request_is_the_request_and_small_talk_alone_is_not() -> None:
    from sayso.interpreter.offline import OfflineInterpreter

    catalog = sgd.build_catalog(SERVICES[:1])
    asked = OfflineInterpreter().interpret("Hey, how are you doing? Can you find restaurants in Paris?",
                                           Context(now=sgd.NOW), catalog, sgd.PERSON)
    chat = OfflineInterpreter().interpret("Hey, how are you doing?", Context(now=sgd.NOW), catalog, sgd.PERSON)
    assert [s.action for s in asked.steps] == ["Tables_1.FindPlaces"] and asked.steps[0].args == {"city": "Paris"}
    assert chat.kind == "none" and not chat.steps


def test_a_wh_question_in_the_last_sentence_never_writes() -> None:
    from sayso.interpreter.offline import OfflineInterpreter

    catalog = sgd.build_catalog(SERVICES[:1])
    found = OfflineInterpreter().interpret("I'm hungry. Which restaurants can I book a table at in Paris?",
                                           Context(now=sgd.NOW), catalog, sgd.PERSON)
    assert all(step.action != "Tables_1.BookTable" for step in found.steps)


def test_a_verb_that_starts_a_later_sentence_is_a_verb_not_a_name() -> None:
    """"That's the one. Book it for friday.": "Book" is capitalized because it starts a sentence, not because
    it is a name, so it still asks for the booking."""
    from sayso.interpreter.offline import OfflineInterpreter

    catalog = sgd.build_catalog(SERVICES[:1])
    context = Context(now=sgd.NOW, pending_action="Tables_1.FindPlaces")
    found = OfflineInterpreter().interpret("That is the one I meant. Book it for friday.", context, catalog,
                                           sgd.PERSON)
    assert found.steps and found.steps[0].action == "Tables_1.BookTable"


def _after_search(said: str, offered: str) -> Interpretation:
    from sayso.interpreter.offline import OfflineInterpreter

    catalog = sgd.build_catalog(SERVICES[:1])
    context = Context(now=sgd.NOW, pending_action="Tables_1.FindPlaces",
                      history=[{"role": "assistant", "text": offered}])
    return OfflineInterpreter().interpret(said, context, catalog, sgd.PERSON)


@pytest.mark.parametrize("said", ["Yes, please.", "Sure, that sounds good.", "yes for 2 people", "That works."])
def test_yes_to_an_offer_to_do_the_write_goes_on_to_it_and_asks_what_it_needs(said: str) -> None:
    """"Would you like to book a table?" after a search: taking the offer asks for the booking, and the
    booking still asks for what it lacks (never acts on a guess)."""
    found = _after_search(said, "Salt House is in Paris. Would you like to book a table there?")
    assert found.kind == "question" and found.steps[0].action == "Tables_1.BookTable"


@pytest.mark.parametrize(("said", "offered"), [
    ("Sure, that sounds good.", "How about Salt House in Paris?"),  # a result offered, not the booking
    ("Yes, please.", "Salt House is in Paris."),
    ("No, not now.", "Would you like to book a table there?"),
    ("Yes, another one please.", "Would you like to book a table there?"),
])
def test_taking_a_searchs_result_or_declining_the_offer_does_not_write(said: str, offered: str) -> None:
    found = _after_search(said, offered)
    assert all(step.action != "Tables_1.BookTable" for step in found.steps)


@pytest.mark.parametrize("said", [
    "Yes, that's the one. Cast it on my phone.",  # a verb the catalog does not know, done to what was shown
    "I like that one, can you sort it out for friday?",
])
def test_taking_a_searchs_result_and_asking_for_something_done_to_it_goes_on_to_the_write(said: str) -> None:
    found = _after_search(said, "How about Salt House in Paris?")
    assert found.steps and found.steps[0].action == "Tables_1.BookTable"


@pytest.mark.parametrize("said", [
    "That one sounds good. What is their phone number?",  # a question about it
    "That one is fine, thanks, that is all.",  # closing
    "Yes, make it in Paris.",  # a value the search takes: the search, refined
])
def test_taking_a_searchs_result_without_asking_for_it_to_be_done_stays_with_the_search(said: str) -> None:
    found = _after_search(said, "How about Salt House in Paris?")
    assert all(step.action != "Tables_1.BookTable" for step in found.steps)


EVENTS = {
    "service_name": "Shows_3",
    "description": "The comprehensive portal to find and reserve seats at events near you",
    "slots": [
        {"name": "category", "description": "Type of event", "is_categorical": True,
         "possible_values": ["Music", "Sports"]},
        {"name": "event_name", "description": "Name of event", "is_categorical": False, "possible_values": []},
        {"name": "date", "description": "Date of occurrence of event", "is_categorical": False, "possible_values": []},
        {"name": "number_of_seats", "description": "Number of seats to find event tickets for",
         "is_categorical": True, "possible_values": ["1", "2", "3", "4"]},
        {"name": "city_of_event", "description": "City where event is happening", "is_categorical": False,
         "possible_values": []},
    ],
    "intents": [
        {"name": "FindEvents", "description": "Find events in a given city", "is_transactional": False,
         "required_slots": ["category", "city_of_event"], "optional_slots": {"date": "dontcare"},
         "result_slots": []},
        {"name": "BuyEventTickets", "description": "Buy tickets for an event", "is_transactional": True,
         "required_slots": ["event_name", "number_of_seats", "date", "city_of_event"], "optional_slots": {},
         "result_slots": []},
    ],
}


def test_a_request_that_says_neither_look_nor_change_looks_first_when_the_write_is_incomplete() -> None:
    """"I'd like a table at a restaurant in Paris": no verb of looking or changing, and the booking lacks what it
    needs, so the search comes first (``write_unsaid``; 0 turns the lean off); a complete booking stays one."""
    from sayso.interpreter.offline import OfflineInterpreter
    from sayso.interpreter.offline.weights import DEFAULT

    catalog = sgd.build_catalog(SERVICES[:1])
    said = "I'd like a table at a restaurant in Paris."
    found = OfflineInterpreter().interpret(said, Context(now=sgd.NOW), catalog, sgd.PERSON)
    off = OfflineInterpreter(weights=DEFAULT.with_("write_unsaid=0")).interpret(
        said, Context(now=sgd.NOW), catalog, sgd.PERSON)
    assert [s.action for s in found.steps] == ["Tables_1.FindPlaces"]
    assert off.steps and off.steps[0].action == "Tables_1.BookTable"
    complete = OfflineInterpreter().interpret("A table for 2 at Salt House on friday", Context(now=sgd.NOW),
                                              catalog, sgd.PERSON)
    assert complete.steps and complete.steps[0].action == "Tables_1.BookTable"


def test_the_search_a_lean_prefers_is_about_the_catalog_when_another_actions_arguments_fit() -> None:
    """"go to a Concert on the 3rd of March": the search's own words are weak (a capital counts less), but the
    arguments fit the purchase, so the turn is about this catalog: the search, not "out of scope"."""
    from sayso.interpreter.offline import OfflineInterpreter

    catalog = sgd.build_catalog([EVENTS])
    found = OfflineInterpreter().interpret("I would like to go to a Concert on the 3rd of March.",
                                           Context(now=sgd.NOW), catalog, sgd.PERSON)
    assert found.steps and found.steps[0].action == "Shows_3.FindEvents"


def test_i_would_before_the_request_is_not_the_request() -> None:
    found = _after_search("That sounds good. I'd like to sort it out now.", "How about Salt House in Paris?")
    assert found.steps and found.steps[0].action == "Tables_1.BookTable"


def test_can_i_have_it_done_after_taking_a_result_asks_for_it() -> None:
    found = _after_search("I like it! Can we sort it out for friday?", "How about Salt House in Paris?")
    assert found.steps and found.steps[0].action == "Tables_1.BookTable"


@pytest.mark.parametrize("said", ["Fine, get it.", "OK, get that one.", "Great. Get it."])
def test_a_verb_whose_object_is_the_result_acts_on_it_even_one_that_can_mean_finding(said: str) -> None:
    """"get it" after a search was answered: the result itself is what is asked for, so the write that follows
    the search is asked for (and still asks what it lacks), though "get" alone can mean "find"."""
    found = _after_search(said, "How about Salt House in Paris?")
    assert found.steps and found.steps[0].action == "Tables_1.BookTable"


@pytest.mark.parametrize(("said", "making"), [
    ("let's go ahead with that appointment", True), ("go ahead and set up the call", True),
    ("set me up with a table", True), ("give D-101 to devi", False), ("move ahead the due date", False),
])
def test_go_ahead_is_a_word_of_making(said: str, making: bool) -> None:
    """"go ahead (with) ..." asks to proceed with making what the dialogue is about, like "set up": a write that
    makes something new may be proposed for it (a create needs a word of making: tests/test_no_guessing.py)."""
    from sayso.interpreter.offline import _MAKING

    assert bool(_MAKING.search(said)) is making


def test_a_write_still_pending_needs_no_new_word_of_making() -> None:
    """The write asked for turns earlier and still missing arguments is already asked for: "one table on the
    5th" goes on with it, though it says no word of making."""
    from sayso.interpreter.offline import OfflineInterpreter

    catalog = sgd.build_catalog(SERVICES[:1])
    context = Context(now=sgd.NOW, pending_action="Tables_1.BookTable",
                      history=[{"role": "assistant", "text": "What day would you like the table?"}])
    found = OfflineInterpreter().interpret("one table on the 5th", context, catalog, sgd.PERSON)
    assert found.steps and found.steps[0].action == "Tables_1.BookTable"
