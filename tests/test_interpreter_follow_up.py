"""What follows a read, and questions inside requests, over many generated phrasings (offline interpreter).

- With a read under way, its follow-up write asked for by the write's own verb ("can you buy them for me?", "I'd
  like to make a purchase") is that write; not in a wh-question or a refusal, and the read's own verbs ("find")
  keep the read.
- Once a read was answered, a quantity or a choice only its follow-up write takes ("Fine, 3 please.") goes on to
  that write; a date or a place does not, nor a question.
- A wh-clause after a verb of looking or telling ("let's see how much ...", "can you tell me what ...") asks:
  it never proposes a write.
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
from sayso.interpreter import Context, Interpretation
from sayso.interpreter.offline import OfflineInterpreter

from .conftest import demo_catalog_with

DIRECTORY = Directory.load(Path(sayso.__file__).resolve().parent / "demo" / "files" / "directory.yaml")
ALICE = DIRECTORY.get("alice")
NOW = parse_time("2026-11-25T09:00", ALICE.timezone)
INTERPRETER = OfflineInterpreter()

SHOWS = """\
actions:
  - name: shows.find_shows
    description: Find shows and concerts in a city.
    kind: read
    connector: tickets
    operation: find
    risk: none
    params:
      city: {type: string, required: true, description: "The city the show is in"}
      day: {type: date, required: false, description: "The day of the show"}
  - name: shows.buy_tickets
    description: Buy tickets for a show.
    kind: write
    connector: tickets
    operation: create
    risk: low
    params:
      show: {type: string, required: true, description: "The show's name"}
      seats: {type: integer, required: true, description: "How many seats"}
      city: {type: string, required: true, description: "The city the show is in"}
"""
# Both actions' descriptions end with their service's, which names both verbs: the read is about reserving too.
HOTELS = """\
actions:
  - name: stays.search_hotels
    description: Find a hotel at a given location. A service for searching and reserving rooms in hotels.
    kind: read
    connector: tickets
    operation: find
    risk: none
    params:
      place: {type: string, required: true, description: "Where the hotel is"}
  - name: stays.reserve_hotel
    description: Reserve a selected hotel for given dates. A service for searching and reserving rooms in hotels.
    kind: write
    connector: tickets
    operation: create
    risk: low
    params:
      hotel: {type: string, required: true, description: "The hotel's name"}
      check_in: {type: date, required: true, description: "The first night"}
      nights: {type: integer, required: true, description: "How many nights"}
      place: {type: string, required: true, description: "Where the hotel is"}
"""
SHOWN = [{"role": "assistant", "text": "I found 4 shows. The first is Blue Lights at the Apollo."}]


@pytest.fixture(scope="module")
def shows(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    return demo_catalog_with(tmp_path_factory.mktemp("shows") / "ws", "shows.yaml", SHOWS)


@pytest.fixture(scope="module")
def hotels(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    return demo_catalog_with(tmp_path_factory.mktemp("hotels") / "ws", "stays.yaml", HOTELS)


def _after_search(text: str, catalog: Catalog, history: list[dict[str, str]] | None = None,
                  read: str = "shows.find_shows") -> Interpretation:
    context = Context(now=NOW, directory=DIRECTORY, pending_action=read,
                      history=SHOWN if history is None else history)
    return INTERPRETER.interpret(text, context, catalog, ALICE)


def _actions(found: Interpretation) -> list[str]:
    return [s.action for s in found.steps]


# --- the write a read leads to, asked for by its own verb ------------------------------------------------------

ACKS = ["", "That sounds like a good hotel. ", "Great, thanks. ", "Yes, I believe that would do. "]
ASKS = ["Can you reserve a room for me?", "I want to reserve it.", "I'd like to make a reservation.",
        "Can we get a reservation please.", "please book a room there", "I want to book two rooms."]
NAMED = [ack + ask for ack, ask in itertools.product(ACKS, ASKS)]


def test_enough_follow_up_phrasings_are_generated() -> None:
    assert len(NAMED) >= 20 and len(set(NAMED)) == len(NAMED)


@pytest.mark.parametrize("text", NAMED)
def test_the_follow_up_write_named_by_its_verb_is_where_the_dialogue_goes(hotels: Catalog, text: str) -> None:
    found = _after_search(text, hotels, read="stays.search_hotels")
    assert _actions(found)[:1] == ["stays.reserve_hotel"], (text, found)
    assert found.kind == "question", (text, found)  # what it still needs is asked for, nothing runs yet


@pytest.mark.parametrize("text", ["Can you find other hotels in Boston?", "Can you look for hotels in Boston?",
                                  "What would it cost to reserve a room?", "Which of them can I reserve?"])
def test_a_search_or_a_question_keeps_away_from_the_write(hotels: Catalog, text: str) -> None:
    found = _after_search(text, hotels, read="stays.search_hotels")
    assert "stays.reserve_hotel" not in _actions(found), (text, found)


# --- a value only the follow-up write takes -----------------------------------------------------------------

QUANTITIES = [f"{ack}{n}{tail}" for ack, n, tail in itertools.product(
    ["Fine, ", "Sounds good, ", "Yes, ", ""], ["2", "3", "four"], [" please.", " for me.", ""])]


@pytest.mark.parametrize("text", QUANTITIES)
def test_a_quantity_only_the_follow_up_takes_goes_on_to_it(shows: Catalog, text: str) -> None:
    found = _after_search(text, shows)
    assert _actions(found)[:1] == ["shows.buy_tickets"], (text, found)
    assert found.kind == "question", (text, found)


@pytest.mark.parametrize("text", ["Fine, 3 please.", "4 for me."])
def test_a_quantity_before_the_read_was_answered_does_not_move_on(shows: Catalog, text: str) -> None:
    found = _after_search(text, shows, history=[])
    assert "shows.buy_tickets" not in _actions(found), (text, found)


@pytest.mark.parametrize("text", ["Fine, on Friday please.", "In Boston please.", "3 please?"])
def test_a_date_a_place_or_a_question_stays_with_the_read(shows: Catalog, text: str) -> None:
    found = _after_search(text, shows)
    assert "shows.buy_tickets" not in _actions(found), (text, found)


# --- a question inside a request -----------------------------------------------------------------------------

LEADS = ["let's see", "can you tell me", "could you check", "show me", "I wonder", "please find out",
         "Okay. Let's see"]
WH = ["how much we invoiced Orchid", "what deals bob has closing this month", "which tickets are open",
      "who owns the Kestrel account", "what I sent to carol", "when the Orchid deal closes",
      "how many tickets devi has"]
EMBEDDED = [f"{lead} {wh}" for lead, wh in itertools.product(LEADS, WH)]


def test_enough_embedded_questions_are_generated() -> None:
    assert len(EMBEDDED) >= 40 and len(set(EMBEDDED)) == len(EMBEDDED)


@pytest.mark.parametrize("text", EMBEDDED)
def test_a_question_inside_a_request_never_writes(text: str) -> None:
    found = INTERPRETER.interpret(text, Context(now=NOW, directory=DIRECTORY), demo, ALICE)
    writes = [s.action for s in found.steps if demo.get(s.action).is_write]
    assert not writes, (text, found)


@pytest.mark.parametrize("text", ["tell devi what we decided", "let devi know what we decided",
                                  "ask carol when she is free"])
def test_telling_someone_else_what_still_sends(text: str) -> None:
    found = INTERPRETER.interpret(text, Context(now=NOW, directory=DIRECTORY), demo, ALICE)
    assert _actions(found)[:1] == ["chat.send"], (text, found)
