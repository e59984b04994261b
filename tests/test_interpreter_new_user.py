"""What a new user says on the demo, over many generated phrasings (offline interpreter), and the same
mechanisms on a catalog of another shape.

- A verb of work on a record that exists ("assign", "reassign", "give ... to", "hand") with a thing named
  indefinitely ("a ticket") asks which one; it makes nothing new unless the thing is given to someone ("give devi a
  task") or said to be about something.
- "give devi a meeting with carol": the thing the action makes ("a meeting", "a call", "a follow-up") after a person
  is what is made, not a message to that person: everyone named is invited.
- A length ("30 minutes", "an hour") is the meeting's duration, never its title; with nothing else to make a title
  from, the title is asked for.
- "tell carl the renewal is signed", carl unknown: the words after the name are the message, and the name is asked
  about with the nearest people ("Did you mean Carol?"), the message kept.
- What is told to someone else is carried, never acted on: "tell carl we won the Orchid deal" closes nothing, and
  "tell devi what the Orchid deal's stage is" never changes the deal: the message to devi is proposed and what it
  should say is asked ("ask devi what ..." sends the question itself).
- A request not to act ("I don't want to reserve it yet", "not yet", "don't book it") never moves toward a write,
  whatever interpreter proposed one; a request after it ("not yet, but can you find cheaper ones?") still counts.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

import sayso
from sayso.catalog import Catalog
from sayso.clock import parse_time
from sayso.demo.catalog import catalog as demo
from sayso.directory import Directory
from sayso.interpreter import Context, Interpretation, ProposedStep
from sayso.interpreter.guesses import decline_guesses, refuses
from sayso.interpreter.offline import OfflineInterpreter

from .conftest import demo_catalog_with
from .test_instructions import chat_as, messages_to
from .test_interpreter_follow_up import HOTELS

DIRECTORY = Directory.load(Path(sayso.__file__).resolve().parent / "demo" / "files" / "directory.yaml")
ALICE = DIRECTORY.get("alice")
NOW = parse_time("2026-11-25T09:00", ALICE.timezone)
INTERPRETER = OfflineInterpreter()

# A field-service company's jobs: other names, other parameters, the same shapes (make, change, find).
JOBS = """\
actions:
  - name: jobs.create_job
    description: Create a job for a technician.
    kind: write
    connector: tickets
    operation: create
    risk: low
    params:
      summary: {type: string, required: true, description: "What the job is"}
      technician: {type: string, person: true, description: "Who does it"}
  - name: jobs.update_job
    description: Change a job's technician or state.
    kind: write
    connector: tickets
    operation: update
    risk: medium
    params:
      job: {type: string, required: true, record: Ticket, description: "The job"}
      technician: {type: string, person: true, description: "Who does it"}
      state: {type: string, enum: [waiting, done], description: "Where the job is"}
  - name: jobs.find_jobs
    description: Find jobs by technician or state.
    kind: read
    connector: tickets
    operation: find
    risk: none
    params:
      technician: {type: string, person: true, description: "Who does it"}
      state: {type: string, enum: [waiting, done], description: "Where the job is"}
"""


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    return demo_catalog_with(tmp_path_factory.mktemp("jobs") / "ws", "jobs.yaml", JOBS)


def _interpret(text: str, catalog: Catalog = demo, context: Context | None = None) -> Interpretation:
    return INTERPRETER.interpret(text, context or Context(now=NOW, directory=DIRECTORY), catalog, ALICE)


def _actions(found: Interpretation) -> list[str]:
    return [s.action for s in found.steps]


# --- a verb of work on an existing record, with a thing named indefinitely -------------------------------------

LEADS = ["", "please ", "can you ", "I need to "]
EXISTING = [f"{lead}{verb} {thing} to {who}" for lead, verb, thing, who in itertools.product(
    LEADS, ["assign", "reassign", "give", "hand"], ["a ticket", "a task", "a follow-up"], ["devi", "sam"])]


def test_enough_existing_record_phrasings_are_generated() -> None:
    assert len(EXISTING) >= 90 and len(set(EXISTING)) == len(EXISTING)


@pytest.mark.parametrize("text", EXISTING)
def test_an_existing_record_verb_with_an_indefinite_thing_asks_which_one(text: str) -> None:
    found = _interpret(text)
    assert found.kind == "question" and _actions(found) == ["tickets.update"], (text, found)
    assert found.param == "ticket", (text, found)
    assert found.steps[0].args.get("assignee") in ("devi", "sam"), (text, found)


@pytest.mark.parametrize("text", ["give devi a task to call Lena", "give sam a follow-up to check the export",
                                  "hand bob a task to call Grace tomorrow", "create a ticket and assign it to devi",
                                  "add a task for devi to call Lena"])
def test_a_thing_given_to_someone_or_said_to_be_made_is_made(text: str) -> None:
    assert _actions(_interpret(text))[:1] == ["tickets.create"], text


@pytest.mark.parametrize("text", [f"{lead}{verb} a job to {who}" for lead, verb, who in itertools.product(
    ["", "please ", "could you "], ["assign", "reassign", "give", "hand"], ["devi", "sam"])])
def test_the_same_on_another_catalog(jobs: Catalog, text: str) -> None:
    found = _interpret(text, jobs)
    assert found.kind == "question" and _actions(found) == ["jobs.update_job"], (text, found)
    assert found.param == "job", (text, found)


def test_making_one_on_another_catalog_still_makes(jobs: Catalog) -> None:
    assert _actions(_interpret("give devi a job to fix the boiler", jobs))[:1] == ["jobs.create_job"]


# --- the thing made after the person it is for --------------------------------------------------------------------

GIVE = [f"{lead}{verb} {first} {thing} with {other} {when}" for lead, verb, first, thing, other, when in
        itertools.product(["", "please ", "can you "], ["give", "get", "set"], ["devi", "sam"],
                          ["a meeting", "a call", "a 30 minute meeting", "a quick sync"],
                          ["carol", "wes and carol"], ["tomorrow at 3pm", "on friday at 10"])]


def test_enough_meeting_phrasings_are_generated() -> None:
    assert len(GIVE) >= 200 and len(set(GIVE)) == len(GIVE)


@pytest.mark.parametrize("text", GIVE)
def test_everyone_named_for_a_meeting_is_invited(text: str) -> None:
    found = _interpret(text)
    assert _actions(found) == ["calendar.schedule_meeting"], (text, found)
    step = found.steps[0]
    first = "devi" if " devi " in text else "sam"
    others = ["wes", "carol"] if "wes and carol" in text else ["carol"]
    assert sorted(step.args["attendees"]) == sorted([first, *others]), (text, found)
    title = step.args.get("title", "")
    assert not any(name in title.lower() for name in ("devi", "sam", "carol", "wes", "minute")), (text, found)


@pytest.mark.parametrize("text", ["tell wes the demo went well", "tell devi the export works again",
                                  "let carol know the Orchid renewal is signed"])
def test_words_said_to_a_person_are_still_the_message(text: str) -> None:
    found = _interpret(text)
    assert _actions(found) == ["chat.send"] and found.steps[0].args.get("text"), (text, found)


@pytest.mark.parametrize("text", ["send carol a message", "ping devi a message", "message bob a new message"])
def test_the_thing_sent_is_not_what_it_says(text: str) -> None:
    found = _interpret(text)
    assert found.kind == "question" and found.param == "text", (text, found)


# --- a length is the meeting's duration, never its title -------------------------------------------------------

LENGTHS = [f"{lead}{verb} {length} with {who} {when}" for lead, verb, length, who, when in itertools.product(
    ["", "please ", "could you ", "can you "], ["book", "schedule", "set up"],
    ["30 minutes", "an hour", "45 mins", "half an hour", "2 hours"], ["carol", "bob"],
    ["tomorrow at 3pm", "on friday at 10"])]


def test_enough_length_phrasings_are_generated() -> None:
    assert len(LENGTHS) >= 200 and len(set(LENGTHS)) == len(LENGTHS)


@pytest.mark.parametrize("text", LENGTHS)
def test_a_length_is_the_duration_and_the_title_is_asked_for(text: str) -> None:
    found = _interpret(text)
    assert _actions(found) == ["calendar.schedule_meeting"], (text, found)
    step = found.steps[0]
    assert step.args.get("duration") in (30, 45, 60, 120), (text, found)
    assert "title" not in step.args, (text, found)
    assert found.kind == "question" and found.param == "title", (text, found)


@pytest.mark.parametrize("text", ["book a 30 minute meeting with carol tomorrow at 3pm",
                                  "schedule an hour-long sync with bob on friday at 10",
                                  "book 30 minutes with carol tomorrow at 3pm to review the Orchid renewal"])
def test_a_meeting_named_besides_its_length_is_titled_by_its_words(text: str) -> None:
    found = _interpret(text)
    assert _actions(found) == ["calendar.schedule_meeting"], (text, found)
    title = found.steps[0].args.get("title", "")
    assert title and not any(ch.isdigit() for ch in title) and "hour" not in title.lower(), (text, found)


# --- a request not to act -------------------------------------------------------------------------------------

# The hotels catalog of tests/test_interpreter_follow_up.py (HOTELS): a search, and the reservation it leads to.
SHOWN = [{"role": "assistant", "text": "I found 3 hotels. The first is the Grand at 4 stars. Shall I reserve it?"}]


@pytest.fixture(scope="module")
def hotels(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    return demo_catalog_with(tmp_path_factory.mktemp("hotels") / "ws", "stays.yaml", HOTELS)


REFUSALS = [f"{ack}{no}{it}{tail}" for ack, no, it, tail in itertools.product(
    ["", "No, ", "Hmm, ", "Thanks, but "],
    ["I don't want to reserve", "don't book", "please don't reserve", "I'd rather not book", "let's not reserve",
     "we don't need to book", "I do not want to book"],
    [" it", " the room", " that hotel"], ["", " yet", " now", " just yet."])]


def test_enough_refusals_are_generated() -> None:
    assert len(REFUSALS) >= 300 and len(set(REFUSALS)) == len(REFUSALS)


@pytest.mark.parametrize("text", REFUSALS)
def test_a_refusal_after_a_search_never_moves_to_the_write(hotels: Catalog, text: str) -> None:
    context = Context(now=NOW, directory=DIRECTORY, pending_action="stays.search_hotels", history=SHOWN)
    found = _interpret(text, hotels, context)
    writes = [a for a in _actions(found) if hotels.get(a).is_write]
    assert not writes, (text, found)


@pytest.mark.parametrize("text", ["not yet", "No, not yet.", "not now", "Not right now, thanks."])
def test_not_yet_after_a_search_is_nothing(hotels: Catalog, text: str) -> None:
    context = Context(now=NOW, directory=DIRECTORY, pending_action="stays.search_hotels", history=SHOWN)
    assert _interpret(text, hotels, context).kind == "none", text


@pytest.mark.parametrize("text", [f"{no}{verb}" for no, verb in itertools.product(
    ["", "please ", "no, ", "I don't want to ", "let's not ", "we don't need to "],
    ["move the Orchid deal to negotiation", "close SUP-17", "email carol the renewal terms",
     "issue a credit note of 2,000 to Orchid Pharma for the outage", "reassign Juniper Schools to bob"])
    if no not in ("", "please ", "no, ")])
def test_a_refusal_on_the_demo_proposes_no_write(text: str) -> None:
    found = _interpret(text)
    assert not [a for a in _actions(found) if demo.get(a).is_write], (text, found)


@pytest.mark.parametrize("text", ["No, not yet. Can you reserve it for 2 nights from Friday?",
                                  "Not now, but reserve the Grand for 2 nights on Friday.",
                                  "I don't want that one. I do want the Grand for 2 nights on Friday."])
def test_a_request_after_a_refusal_still_counts(hotels: Catalog, text: str) -> None:
    assert not refuses(text, hotels), text


@pytest.mark.parametrize("text", ["tell devi not to book it", "send carol a message saying don't reserve it",
                                  "move the Orchid deal to negotiation, don't wait",
                                  "remind me not to call Lena tomorrow at 9"])
def test_a_negation_inside_a_request_is_not_a_refusal(text: str) -> None:
    assert not refuses(text, demo), text
    assert [a for a in _actions(_interpret(text)) if demo.get(a).is_write], text


@pytest.mark.parametrize("text", ["don't forget to email carol the deck", "don't hesitate to call me",
                                  "please don't wait, book it"])
def test_a_negation_that_asks_is_not_a_refusal(text: str) -> None:
    assert not refuses(text, demo), text


# A model (or any interpreter) that proposes the write anyway: the checks withhold it.
@pytest.mark.parametrize("text", ["I don't want to reserve it yet", "don't book it", "not yet", "let's not do that",
                                  "no need to book it, thanks", "hold off on the reservation"])
def test_a_proposed_write_for_a_refusal_is_withheld_whatever_proposed_it(hotels: Catalog, text: str) -> None:
    proposed = Interpretation(kind="plan", steps=[ProposedStep(action="stays.reserve_hotel",
                                                               args={"hotel": "the Grand", "nights": 2})])
    found = decline_guesses(proposed, text, hotels)
    assert found.kind == "none" and not found.steps, (text, found)


# --- a message to someone sayso does not know -----------------------------------------------------------------

UNKNOWN = [f"{verb} {who} {said}" for verb, who, said in itertools.product(
    ["tell", "ping", "message", "please tell"], ["carl", "zoe", "tomas", "priyanka"],
    ["the renewal is signed", "the demo went well", "we won the Orchid deal", "the export works again",
     "we closed the Kestrel deal"])]


def test_enough_unknown_addressee_phrasings_are_generated() -> None:
    assert len(UNKNOWN) >= 80 and len(set(UNKNOWN)) == len(UNKNOWN)


@pytest.mark.parametrize("text", UNKNOWN)
def test_the_message_to_an_unknown_name_is_taken(text: str) -> None:
    who, said = text.removeprefix("please ").split(" ", 2)[1:]
    found = _interpret(text)
    assert _actions(found) == ["chat.send"], (text, found)
    assert found.steps[0].args == {"to": who, "text": said}, (text, found)


def test_an_email_to_an_unknown_name_takes_the_body_and_a_subject_from_it() -> None:
    found = _interpret("email carl the renewal is signed")
    assert _actions(found) == ["email.send"], found
    assert found.steps[0].args == {"to": ["carl"], "body": "the renewal is signed", "subject": "the renewal is signed"}


def test_in_a_chat_the_unknown_name_is_asked_about_and_the_message_kept(sqlite_root: Path) -> None:
    chat = chat_as(sqlite_root, "alice")
    asked = chat.say("alice", "tell carl the renewal is signed")
    assert asked.status.value == "needs_clarification", asked.reply
    assert [o.value for o in asked.options or []] == ["carol"] and asked.question == {
        "param": "to", "step": 0, "about": "carl"}
    assert asked.steps[0].args["text"] == "the renewal is signed"
    done = chat.say("alice", "1", asked.conversation)
    assert done.status.value == "executed", done.reply
    assert messages_to(sqlite_root, "carol") == ["the renewal is signed"]


# --- what is told to someone else is carried, never acted on ----------------------------------------------------

TELLS = [f"{lead}{verb} {who}{know} {wh} {what}" for lead, verb, who, know, wh, what in itertools.product(
    ["", "please ", "can you "], ["tell", "let", "email", "ping"], ["devi", "wes"], [""],
    ["what", "which stage", "how much"],
    ["the Orchid deal's stage is", "the Orchid deal is in", "the Kestrel deal is worth", "SUP-17's status is"])]
TELLS = [t.replace("let devi ", "let devi know ").replace("let wes ", "let wes know ") for t in TELLS]


def test_enough_told_questions_are_generated() -> None:
    assert len(TELLS) >= 250 and len(set(TELLS)) == len(TELLS)


@pytest.mark.parametrize("text", TELLS)
def test_a_question_told_to_someone_is_a_message_never_a_change(text: str) -> None:
    found = _interpret(text)
    assert _actions(found) in (["chat.send"], ["email.send"]), (text, found)
    assert found.kind == "question" and found.param in ("text", "body"), (text, found)
    assert found.steps[0].args.get("to") in ("devi", "wes", ["devi"], ["wes"]), (text, found)


@pytest.mark.parametrize("text", [f"{verb} {who} {said}" for verb, who, said in itertools.product(
    ["tell", "ping", "please tell"], ["devi", "carl"],
    ["we won the Orchid deal", "the Kestrel deal is closed", "SUP-17 can be closed", "the customer signed today",
     "Orchid is in negotiation now"])])
def test_news_told_to_someone_changes_nothing(text: str) -> None:
    found = _interpret(text)
    assert _actions(found) == ["chat.send"], (text, found)
    assert found.steps[0].args["text"] == text.split(" ", 3 if text.startswith("please") else 2)[-1], (text, found)


@pytest.mark.parametrize("text", ["ask devi what the Orchid deal's stage is", "ask carol when she is free",
                                  "ask wes whether the Cobalt deal is still on"])
def test_a_question_asked_of_someone_is_the_message(text: str) -> None:
    found = _interpret(text)
    assert _actions(found) == ["chat.send"] and found.steps[0].args.get("text"), (text, found)


@pytest.mark.parametrize("text", ["tell me what the Orchid deal's stage is",
                                  "let me know which deals close this month"])
def test_telling_me_is_still_a_question(text: str) -> None:
    found = _interpret(text)
    assert not [a for a in _actions(found) if demo.get(a).is_write], (text, found)
