"""Never act on a guess, over many generated phrasings: a value the interpreter cannot determine is asked for.

- A time only calendars could give ("at the earliest time I'm free tomorrow", "after my last meeting") is
  asked for; it never becomes a default hour.
- A quoted name after "called", "named", "titled" is a new record's name whole, not its first word.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

import sayso
from sayso.catalog import Catalog
from sayso.clock import parse_time
from sayso.demo.catalog import catalog as demo
from sayso.directory import Directory
from sayso.interpreter import Context, Interpretation
from sayso.interpreter.offline import OfflineInterpreter
from sayso.text import close_quotes

from .conftest import demo_catalog_with
from .test_instructions import chat_as, rows

DIRECTORY = Directory.load(Path(sayso.__file__).resolve().parent / "demo" / "files" / "directory.yaml")
ALICE = DIRECTORY.get("alice")
CONTEXT = Context(now=parse_time("2026-11-25T09:00", ALICE.timezone), directory=DIRECTORY)
INTERPRETER = OfflineInterpreter()


def _interpret(text: str, catalog: Catalog = demo) -> Interpretation:
    return INTERPRETER.interpret(text, CONTEXT, catalog, ALICE)


# --- times to work out --------------------------------------------------------------------------------------------

OPENERS = ["schedule a meeting with bob", "set up a 30 minute call with devi", "book a meeting with carol",
           "can you put a meeting with bob in my calendar", "please schedule time with devi"]
COMPUTED = ["at the earliest time I'm free", "at the first available slot", "in my next free slot",
            "whenever she's free", "when we're both free", "after my last meeting", "right after my standup",
            "before my first meeting", "as soon as possible", "sometime", "at a convenient time",
            "at the earliest time that I am available"]
DAYS = ["tomorrow", "on Friday", "next Monday", ""]
TIMES = [(f"{opener} {computed} {day}".strip(), computed)
         for opener, computed, day in itertools.product(OPENERS, COMPUTED, DAYS)]


def test_enough_time_phrasings_are_generated() -> None:
    assert len(TIMES) >= 200 and len({text for text, _ in TIMES}) == len(TIMES)


@pytest.mark.parametrize(("text", "computed"), TIMES)
def test_a_time_to_work_out_is_asked_for_never_defaulted(text: str, computed: str) -> None:
    found = _interpret(text)
    assert found.kind == "question", (text, found)
    assert found.param == "start" and found.steps and "start" not in found.steps[0].args, (text, found)
    assert found.steps[0].action == "calendar.schedule_meeting"
    assert computed.split()[-1] in (found.question or ""), found.question  # the words it cannot work out


@pytest.mark.parametrize("text", [f"{opener} {day} at 3pm" for opener in OPENERS
                                  for day in ("tomorrow", "on Friday", "next Monday")])
def test_a_time_said_is_still_taken(text: str) -> None:
    found = _interpret(text)
    start = next((s.args.get("start") for s in found.steps), None)
    assert start is not None and "T15:00" in start, (text, found)


@pytest.mark.parametrize("said", ["call bob after my last meeting", "book the room as soon as possible"])
@pytest.mark.parametrize("form", ["remind me tomorrow at 5pm: {}", "remind me tomorrow at 5pm to '{}'",
                                  'remind me tomorrow at 5pm saying "{}"'])
def test_a_time_to_work_out_inside_the_persons_text_is_only_text(form: str, said: str) -> None:
    found = _interpret(form.format(said))
    assert found.kind == "plan", found
    assert found.steps[0].args == {"at": "2026-11-26T17:00:00-05:00", "text": said}


# --- quoted names ---------------------------------------------------------------------------------------------------

EVENTS = """\
actions:
  - name: events.plan
    description: Plan an event (a party, an offsite, a launch) on a day.
    examples:
      - "plan an event called launch party on Friday"
    kind: write
    connector: tickets
    operation: create
    risk: low
    params:
      name: {type: string, required: true, description: "The event's name"}
      day: {type: date, required: true, description: "The day it takes place"}
"""


@pytest.fixture(scope="module")
def events_catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    return demo_catalog_with(tmp_path_factory.mktemp("events") / "ws", "events.yaml", EVENTS)


NAMES = ["Catch up on overdue tasks", "Review of the budget", "Q4 planning with the team", "Sync up",
         "Launch party at the office"]
QUOTES = {"single": "'{}'", "double": '"{}"', "curly": "“{}”"}


def _name_cases() -> list[tuple[str, str]]:
    cases = []
    for n, (cue, style, where) in enumerate(itertools.product(
            ("called", "named", "titled", "and call it"), QUOTES, ("before the day", "after the day"))):
        name = NAMES[n % len(NAMES)]
        quoted = f"{cue} {QUOTES[style].format(name)}"
        text = f"plan an event {quoted} on Friday" if where == "before the day" else \
            f"plan an event on Friday {quoted}"
        cases.append((text, name))
    return cases


NAME_CASES = _name_cases()


@pytest.mark.parametrize(("text", "name"), NAME_CASES)
def test_a_quoted_name_is_taken_whole(events_catalog: Catalog, text: str, name: str) -> None:
    found = _interpret(text, events_catalog)
    assert found.kind == "plan" and found.steps[0].action == "events.plan", (text, found)
    args: dict[str, Any] = found.steps[0].args
    assert args["name"] == name and args["day"] == "2026-11-27", (text, args)


# --- people matched only by a near spelling -------------------------------------------------------------------------

# (said, who it is near, the value "yes" chooses) over the demo's directory and its CRM contacts (email only)
CONTACTS = [("Tom Beckett", "Tom Becker", "tom.becker@kestrelaerospace.example"),
            ("Tom Bekcer", "Tom Becker", "tom.becker@kestrelaerospace.example"),
            ("Priya Shaw", "Priya Shah", "priya.shah@brightwaterdental.example")]
PEOPLE = [("carl", "Carol", "carol"), ("Devii", "Devi", "devi"), ("Wesly", "Wesley", "wes")]
EMAILS = ["email {} about the renewal saying the terms are ready", "send {} an email titled 'Renewal' saying hi",
          "could you email {} that the terms are ready?"]
MESSAGES = ["message {} that the demo went well", "ping {}: the demo went well",
            "can you message {} that I am late?"]
# Forms where a name nobody has is not yet read as the addressee: a question all the same, nothing sent
TELLS = ["tell {} the demo went well", "sayso, can you tell {} that I am late?",
         "could you let {} know that I am late?"]
NEAR = [(form, *who) for form in EMAILS for who in CONTACTS + PEOPLE] + [
    (form, *who) for form in MESSAGES for who in PEOPLE]


def _sent(root: Path) -> int:
    return len(rows(root, "email", "select id from emails")) + len(rows(root, "chat", "select id from messages"))


@pytest.mark.parametrize(("form", "said", "near", "value"), NEAR)
def test_a_recipient_spelt_near_someone_is_asked_about_never_picked(
        sqlite_root: Path, form: str, said: str, near: str, value: str) -> None:
    chat = chat_as(sqlite_root, "alice")
    before = _sent(sqlite_root)
    result = chat.say("alice", form.format(said))
    assert result.status.value == "needs_clarification", (form, said, result.reply)
    assert "Did you mean" in result.reply and near in result.reply and said in result.reply, result.reply
    assert _sent(sqlite_root) == before  # nothing was sent on the guess
    assert [o.value for o in result.options or []] == [value]
    after = chat.say("alice", "yes", conversation=result.conversation)
    assert after.status.value in ("executed", "needs_confirmation"), after.reply


@pytest.mark.parametrize("form", TELLS)
@pytest.mark.parametrize("said", [said for said, _, _ in PEOPLE])
def test_an_unknown_addressee_of_a_message_is_asked_about(sqlite_root: Path, form: str, said: str) -> None:
    before = _sent(sqlite_root)
    result = chat_as(sqlite_root, "alice").say("alice", form.format(said))
    assert result.status.value == "needs_clarification", (form, said, result.reply)
    assert _sent(sqlite_root) == before


@pytest.mark.parametrize("form", EMAILS + MESSAGES + TELLS)
@pytest.mark.parametrize("said", ["carol", "Devi", "wes"])
def test_a_recipient_spelt_out_is_not_asked_about(sqlite_root: Path, form: str, said: str) -> None:
    result = chat_as(sqlite_root, "alice").say("alice", form.format(said))
    assert result.status.value in ("executed", "needs_confirmation"), (form, said, result.reply)


# --- a polite request to tell someone something sends it ---------------------------------------------------------

POLITE = ["can you", "could you", "would you", "can you please", "could you please", "please"]
ADDRESS = ["", "sayso, ", "hey sayso, ", "hi sayso, "]
SAYINGS = [("tell carol {}", "the demo went well"), ("tell carol that {}", "the numbers are in"),
           ("let carol know {}", "the demo went well"), ("let carol know that {}", "I am running late")]
POLITE_TELLS = [(f"{address}{polite} {form.format(said)}?", said)
                for address, polite, (form, said) in itertools.product(ADDRESS, POLITE, SAYINGS)]


@pytest.mark.parametrize(("text", "said"), POLITE_TELLS)
def test_a_polite_request_to_tell_someone_sends_the_message(text: str, said: str) -> None:
    found = _interpret(text)
    assert found.kind == "plan" and len(found.steps) == 1, (text, found)
    step = found.steps[0]
    assert step.action in ("chat.send", "email.send"), (text, step)
    to = step.args.get("to")
    assert to in ("carol", ["carol"]) and said in (step.args.get("text") or step.args.get("body") or ""), (text, step)


# --- a write that makes something new needs words of making ---------------------------------------------------------

HANDOVERS = [f"{verb} {thing} {to} {who}" for verb, to in (("give", "to"), ("hand", "over to"), ("assign", "to"),
                                                             ("reassign", "to"), ("move", "to"))
             for thing in ("D-101", "D-104", "the Orchid deal") for who in ("devi", "bob")]
MAKES = [("create a task for devi to call Grace Nolan by Friday", "tickets.create"),
         ("add a follow-up for bob next Tuesday", "tickets.create"),
         ("open a ticket for the Orchid export bug", "tickets.create"),
         ("make me a task to call Grace Nolan tomorrow", "tickets.create"),
         ("schedule a meeting with bob tomorrow at 3pm", "calendar.schedule_meeting"),
         ("set up a meeting with devi on Friday at 10am", "calendar.schedule_meeting"),
         ("can you set me up a meeting with devi on Friday at 10am?", "calendar.schedule_meeting"),
         ("book 30 minutes with carol tomorrow at 2pm", "calendar.schedule_meeting"),
         ("remind me tomorrow at 5pm to send the contract", "calendar.remind"),
         ("email bob saying the contract is signed", "email.send"),
         ("tell devi the demo went well", "chat.send")]


def _creates(action: str) -> bool:
    entry = demo.get(action)
    return entry.is_write and not any(
        spec.get("x-record") and name in entry.json_schema().get("required", [])
        for name, spec in entry.json_schema().get("properties", {}).items())


@pytest.mark.parametrize("text", HANDOVERS)
def test_handing_a_record_over_never_makes_a_new_one(text: str) -> None:
    found = _interpret(text)
    assert not any(_creates(s.action) for s in found.steps), (text, found)
    assert found.kind in ("plan", "question"), found


@pytest.mark.parametrize(("text", "action"), MAKES)
def test_words_of_making_still_make(text: str, action: str) -> None:
    found = _interpret(text)
    assert found.steps and found.steps[0].action == action, (text, found)


# --- a quotation left open runs to the end ------------------------------------------------------------------------

OPEN_QUOTES = ["'{}", '"{}', "“{}", "‘{}"]
SAID = ["the demo went well", "it's done, thanks to Bob's team", "see you at 3pm tomorrow", "is it signed?"]
OPEN_FORMS = [("send carol a message saying {}", "chat.send", "text"), ("tell carol {}", "chat.send", "text"),
              ("message carol: {}", "chat.send", "text"), ("email bob saying {}", "email.send", "body"),
              ("email bob titled 'Renewal' saying {}", "email.send", "body"),
              ("remind me tomorrow at 5pm to {}", "calendar.remind", "text")]
OPEN_CASES = [(form.format(quote.format(said)), action, param, said)
              for (form, action, param), quote, said in itertools.product(OPEN_FORMS, OPEN_QUOTES, SAID)]


@pytest.mark.parametrize(("text", "action", "param", "said"), OPEN_CASES)
def test_an_unclosed_quote_is_taken_verbatim_to_the_end(text: str, action: str, param: str, said: str) -> None:
    found = _interpret(text)
    assert found.steps and found.steps[0].action == action, (text, found)
    assert found.steps[0].args.get(param) == said, (text, found.steps[0].args)


@pytest.mark.parametrize("quote", OPEN_QUOTES)
@pytest.mark.parametrize("title", ["Call Grace about the renewal", "Q4 planning: the team's goals"])
def test_an_unclosed_quoted_title_is_taken_whole(quote: str, title: str) -> None:
    found = _interpret(f"create a task titled {quote.format(title)}")
    assert found.steps and found.steps[0].action == "tickets.create", found
    assert found.steps[0].args.get("title") == title, found.steps[0].args


@pytest.mark.parametrize("quote", OPEN_QUOTES)
def test_an_unclosed_subject_is_its_own_text_and_the_body_is_asked_for(quote: str) -> None:
    found = _interpret(f"email bob titled {quote.format('Renewal terms')}")
    assert found.kind == "question" and found.param == "body", found
    assert found.steps[0].args.get("subject") == "Renewal terms", found.steps[0].args


@pytest.mark.parametrize("text", ["it's Bob's deal", "the boys' game is on", "say 'hi' to carol", 'say "hi"'])
def test_text_with_its_quotes_closed_is_left_as_it_is(text: str) -> None:
    assert close_quotes(text) == text


# --- a thing named as a new one chooses what is made ----------------------------------------------------------------

# (the request with its thing, the action that makes it): a verb of handing over and a verb inside the text it carries
# ("call Grace") never choose the action; the thing named as a new one does
THINGS = [("a task", "tickets.create"), ("a new task", "tickets.create"), ("a follow-up", "tickets.create"),
          ("another ticket", "tickets.create"), ("a reminder", "calendar.remind")]
GIVERS = ["give {who} {thing} to call Grace", "give {who} {thing} to call Grace tomorrow at 4pm",
          "hand {who} {thing} to call Grace", "please give {who} {thing} to chase Lena about the PO",
          "can you give {who} {thing} to book the room?"]
GIVEN = [(form.format(who="devi", thing=thing), action)
         for form, (thing, action) in itertools.product(GIVERS, THINGS)]


@pytest.mark.parametrize(("text", "action"), GIVEN)
def test_the_thing_named_as_new_chooses_what_is_made(text: str, action: str) -> None:
    found = _interpret(text)
    assert found.steps and found.steps[0].action == action, (text, found)
    args = found.steps[0].args
    said = args.get("title") or args.get("text") or ""
    assert said.split()[0] in ("call", "chase", "book"), (text, args)  # "a task to" is not part of the title
    if action == "tickets.create":
        assert args.get("assignee") == "devi", (text, args)


# --- a meeting's time is never a default hour ------------------------------------------------------------------------

MEETINGS = ["schedule a meeting with bob", "set up a meeting with devi and carol", "book a call with carol",
            "can you put a meeting with bob in my calendar", "give devi a meeting with carol",
            "please set up time with devi about the Orchid renewal"]
MEETING_DAYS = ["tomorrow", "on Friday", "next Monday", "on December 3"]


@pytest.mark.parametrize(("opener", "day"), list(itertools.product(MEETINGS, MEETING_DAYS)))
def test_a_meeting_day_without_an_hour_asks_what_time(opener: str, day: str) -> None:
    found = _interpret(f"{opener} {day}")
    assert found.kind == "question" and found.param == "start", (opener, day, found)
    assert found.steps[0].action == "calendar.schedule_meeting" and "start" not in found.steps[0].args
    assert day.split()[-1] in (found.question or ""), found.question  # the day it understood


# --- a write that makes something new is proposed only when asked to make it ----------------------------------------

PASSES = [f"{verb} {thing} {to} {who}" for verb, to in (("pass", "to"), ("hand off", "to"), ("transfer", "to"),
                                                          ("move", "over to"), ("shift", "to"), ("route", "to"),
                                                          ("bounce", "to"), ("hand", "to"))
          for thing in ("D-101", "SUP-17", "the Orchid deal") for who in ("devi", "bob")]


@pytest.mark.parametrize("text", PASSES)
def test_no_word_of_making_makes_nothing(text: str) -> None:
    found = _interpret(text)
    assert not any(_creates(s.action) for s in found.steps), (text, found)


# --- an answer of an hour keeps the day the request said --------------------------------------------------------------

ASKED_DAYS = [("tomorrow", "2026-11-26"), ("on Friday", "2026-11-27"), ("next Monday", "2026-11-30")]
ASKING = ["schedule a meeting with bob {} at the earliest time I'm free about the renewal",
          "set up a meeting with devi {} about the Orchid renewal", "book a call with carol {} about the demo",
          "can you put a meeting with bob in my calendar {} about the renewal?"]
HOURS = [("2pm", "14:00"), ("at 3", "15:00"), ("half past 10", "10:30"), ("11:15am", "11:15")]


@pytest.mark.parametrize(("form", "day", "hour"), [
    (form, day, hour) for form, day, hour in itertools.product(ASKING, ASKED_DAYS, HOURS)])
def test_an_hour_answered_keeps_the_day_said(sqlite_root: Path, form: str, day: tuple[str, str],
                                             hour: tuple[str, str]) -> None:
    chat = chat_as(sqlite_root, "alice")
    asked = chat.say("alice", form.format(day[0]))
    assert asked.status.value == "needs_clarification", (form, asked.reply)
    answered = chat.say("alice", hour[0], conversation=asked.conversation)
    starts = [s.args.get("start") for s in answered.steps or [] if s.action == "calendar.schedule_meeting"]
    assert starts and starts[0].startswith(f"{day[1]}T{hour[1]}"), (form, day, hour, answered.reply, starts)


@pytest.mark.parametrize("answer", ["Monday at 2pm", "tomorrow at 2pm", "December 3 at 2pm"])
def test_a_day_in_the_answer_wins_over_the_day_said(sqlite_root: Path, answer: str) -> None:
    chat = chat_as(sqlite_root, "alice")
    asked = chat.say("alice", "schedule a meeting with bob on Friday about the renewal")
    answered = chat.say("alice", answer, conversation=asked.conversation)
    starts = [s.args.get("start") for s in answered.steps or [] if s.action == "calendar.schedule_meeting"]
    assert starts and not starts[0].startswith("2026-11-27"), (answer, answered.reply, starts)


@pytest.mark.parametrize("said", ["give devi a task to call Grace tomorrow", "give wes a ticket to book the venue"])
def test_a_word_after_to_is_a_verb_not_the_thing_named(said: str) -> None:
    """A word of a thing's kind said bare names that thing ("a cab" for a ride), but not after "to": "a task to
    call Grace" names a task, and "call" is what the task is about, not a call to schedule."""
    found = _interpret(said)
    assert found.steps and found.steps[0].action == "tickets.create", found
