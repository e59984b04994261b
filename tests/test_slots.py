"""Slots of generic catalogs: dates and times by role, counts by their noun, names and places, yes/no."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field

from sayso.catalog import Catalog, Tier
from sayso.directory import Directory, Person
from sayso.interpreter import Context
from sayso.interpreter.offline import slots
from sayso.interpreter.offline.arguments import Piece, extract, find_pieces
from sayso.interpreter.offline.ranking import index_for
from sayso.interpreter.offline.schema import Param, params_of
from sayso.interpreter.offline.words import stem

NOW = datetime(2019, 3, 1, 9, 0, tzinfo=UTC)
PERSON = Person(id="user", name="User", role="user", timezone="UTC")

catalog = Catalog()


class RentCar(BaseModel):
    pickup_city: str = Field(description="City to pick up the rental car")
    pickup_date: str = Field(description="Date of rental car pickup")
    pickup_time: str = Field(description="Time of rental car pickup")
    dropoff_date: str = Field(description="Date of rental car drop-off")


class FindHotel(BaseModel):
    location: str = Field(description="City or town where the hotel is located")
    star_rating: Literal["1", "2", "3", "4", "5"] | None = Field(None, description="Star rating of the hotel")
    number_of_rooms: Literal["1", "2", "3"] | None = Field(None, description="Number of rooms to reserve")
    has_wifi: Literal["True", "False"] | None = Field(None, description="Whether the hotel has wifi")


class BookBus(BaseModel):
    from_location: str = Field(description="City where bus is leaving from")
    to_location: str = Field(description="City where bus is going to")
    travelers: Literal["1", "2", "3", "4", "5"] = Field(description="Number of travelers for journey")


class FindMovie(BaseModel):
    genre: str | None = Field(None, description="Genre of the movie")
    starring: str | None = Field(None, description="Name of actor starring in movie")
    director: str | None = Field(None, description="Name of director of the movie")


class GetRide(BaseModel):
    destination: str = Field(description="Where the ride goes")
    riders: Literal["1", "2", "3", "4"] = Field(description="Number of riders")
    shared_ride: Literal["True", "False"] | None = Field(None, description="Whether the ride is shared")


class FindEvents(BaseModel):
    city: str = Field(description="City where the event is happening")
    category: Literal["Music", "Sports"] | None = Field(None, description="Type of event")
    subcategory: str | None = Field(None, description="Subcategory of event, such as a music genre or a sport")


class Transfer(BaseModel):
    account: Literal["checking", "savings"] = Field(description="The user's account")
    amount: float = Field(description="Amount of money to transfer")
    recipient_account: Literal["checking", "savings"] | None = Field(
        None, description="The account of the recipient to transfer the money to")


class AddAlarm(BaseModel):
    alarm_time: str = Field(description="Time of the new alarm")
    alarm_name: str | None = Field(None, description="Name of the new alarm")


class PlayTrack(BaseModel):
    track_name: str = Field(description="Name of the track")
    device: Literal["TV", "Kitchen speaker", "Bedroom speaker"] | None = Field(None, description="Where to play")


class ReserveHotel(BaseModel):
    place_name: str = Field(description="Name of the accommodation")
    stay_length: str = Field(description="Length of stay in days")


def _noop(params: Any) -> dict[str, Any]:
    return {}


for _name, _model in (("cars.rent", RentCar), ("hotels.find", FindHotel), ("buses.book", BookBus),
                      ("movies.find", FindMovie), ("hotels.reserve", ReserveHotel),
                      ("taxi.get_ride", GetRide), ("events.find", FindEvents),
                      ("bank.transfer", Transfer), ("alarms.add", AddAlarm),
                      ("media.play", PlayTrack)):
    def _handler(params: Any) -> dict[str, Any]:
        return {}

    _handler.__annotations__["params"] = _model
    _handler.__doc__ = f"{_name.replace('.', ' ')}."
    catalog.action(_name, kind="write", risk=Tier.LOW, connector="test", resource="System")(_handler)


def _extract(action: str, text: str) -> tuple[dict[str, Any], dict[str, str]]:
    index = index_for(catalog)
    found = extract(text, index.by_name[action], index, Context(now=NOW), PERSON)
    return found.args, found.mentions


def _params(action: str) -> dict[str, Param]:
    return {p.name: p for p in params_of(catalog.get(action))}


def test_kinds_from_names_and_values() -> None:
    hotel = _params("hotels.find")
    assert hotel["star_rating"].kind == "number"  # a choice among digits is a count
    assert hotel["has_wifi"].kind == "bool"
    assert hotel["location"].kind == "place"
    reserve = _params("hotels.reserve")
    assert reserve["place_name"].kind == "name"  # "Name of the accommodation", not a place
    assert reserve["stay_length"].kind == "number"  # "Length of stay in days"


def test_time_and_date_split_and_end_date_by_cue() -> None:
    args, mentions = _extract("cars.rent", "I need a car in Fresno on the 2nd of March at around 12:30 until the 9th")
    assert mentions["pickup_date"] == "2nd of March" and args["pickup_date"] == "2019-03-02"
    assert mentions["pickup_time"] == "12:30" and args["pickup_time"] == "12:30"
    assert mentions["dropoff_date"] == "the 9th" and args["dropoff_date"] == "2019-03-09"
    assert mentions["pickup_city"] == "Fresno"


def test_drop_off_words_point_at_the_end_date() -> None:
    args, _ = _extract("cars.rent", "pick it up around 16:30, I'll be dropping it off on the 4th")
    assert args["pickup_time"] == "16:30"
    assert args["dropoff_date"] == "2019-03-04"
    assert "pickup_date" not in args


def test_places_by_preposition_never_discourse_words() -> None:
    args, mentions = _extract("buses.book", "Yeah, can you help me get a bus from San Diego to Long Beach?")
    assert mentions["from_location"] == "San Diego"
    assert mentions["to_location"] == "Long Beach"
    args, _ = _extract("hotels.find", "Sounds good. Can you help me find something available in that area?")
    assert "location" not in args


def test_names_by_the_parameter_word_next_to_them() -> None:
    args, _ = _extract("movies.find", "a movie starring serena altschul and directed by harry elfont")
    assert args["starring"] == "serena altschul"
    assert args["director"] == "harry elfont"


def test_names_stop_at_sentence_ends() -> None:
    args, _ = _extract("movies.find", "I feel like watching a Drama film. Maybe something by Alfred Hitchcock?")
    assert args["genre"] == "Drama"
    assert "Maybe" not in str(args)


def test_bool_from_its_word_and_negation() -> None:
    args, _ = _extract("hotels.find", "a hotel in Paris with wifi")
    assert args["has_wifi"] == "True"
    args, _ = _extract("hotels.find", "a hotel in Paris, no wi-fi needed")
    assert args["has_wifi"] == "False"


@pytest.mark.parametrize("text", [
    "I need a ride to the airport", "can you get me a ride?", "book a ride for 2 to Union Square",
    "a ride for my friends and me, please", "I'd like a ride there",
])
def test_the_actions_own_noun_answers_no_yes_no_parameter(text: str) -> None:
    args, _ = _extract("taxi.get_ride", text)
    assert "shared_ride" not in args


@pytest.mark.parametrize(("text", "value"), [
    ("a shared ride to Union Square", "True"), ("I need a ride, not shared", "False"),
    ("a ride to Union Square, sharing is fine", "True"),
])
def test_a_yes_no_parameter_is_still_answered_by_its_other_words(text: str, value: str) -> None:
    args, _ = _extract("taxi.get_ride", text)
    assert args["shared_ride"] == value


@pytest.mark.parametrize(("text", "address"), [
    ("I need a ride to 1900 University Ave #105", "1900 University Ave #105"),
    ("get me a cab for two heading to 18300 Carriage Drive", "18300 Carriage Drive"),
    ("a ride to 160 Saratoga Ave # 280, shared is fine", "160 Saratoga Ave # 280"),
    ("Can you book a ride to 12 Baker Street?", "12 Baker Street"),
    ("take me to Union Square", "Union Square"),
])
def test_a_street_address_keeps_its_house_number_and_unit(text: str, address: str) -> None:
    args, mentions = _extract("taxi.get_ride", text)
    assert args["destination"] == address
    assert mentions["destination"] == address


def test_a_number_a_parameter_counts_is_not_a_house_number() -> None:
    args, _ = _extract("taxi.get_ride", "a ride for 3 to Union Square")
    assert args == {"riders": "3", "destination": "Union Square"}


@pytest.mark.parametrize(("text", "genre"), [
    ("Can you find me a Romance movie to watch?", "Romance"),
    ("I want to watch a Comic movie", "Comic"),
    ("find me a drama film, please", "drama"),
    ("find me a movie in the Adventure category", "Adventure"),
    ("any good thriller flicks?", "thriller"),
])
def test_a_word_before_the_things_noun_is_its_kind(text: str, genre: str) -> None:
    args, mentions = _extract("movies.find", text)
    assert args.get("genre") == genre
    assert mentions["genre"] == genre
    assert "starring" not in args and "director" not in args


def test_a_kind_leaves_the_names_to_the_others() -> None:
    args, _ = _extract("movies.find", "I want to watch a Comic movie starring Gordon Tanner")
    assert args == {"genre": "Comic", "starring": "Gordon Tanner"}


@pytest.mark.parametrize(("text", "kind"), [
    ("I want to attend an electronica concert in Paris", "electronica"),
    ("show me a baseball game in Chicago", "baseball"),
    ("find me some blues shows around Austin", "blues"),
    ("I would like to see a jazz gig in Portland", "jazz"),
])
def test_a_kind_of_the_actions_thing_said_in_its_own_words(text: str, kind: str) -> None:
    args, _ = _extract("events.find", text)
    assert args["subcategory"] == kind
    assert kind not in args["city"]


@pytest.mark.parametrize("text", ["reserve a beachfront hotel for 3 days", "book me a lovely hotel for 2 days"])
def test_a_modifier_is_no_name_where_nothing_takes_a_kind(text: str) -> None:
    args, _ = _extract("hotels.reserve", text)
    assert "place_name" not in args


@pytest.mark.parametrize(("text", "place"), [
    ("find me a hotel in New York", "New York"),
    ("a hotel in New York City, please", "New York City"),
    ("I need a hotel in Foster City", "Foster City"),
    ("any hotel around Salt Lake City?", "Salt Lake City"),
    ("a hotel in the District of Columbia", "District of Columbia"),
    ("Can you find a hotel in Isle of Palms?", "Isle of Palms"),
    ("a hotel near Great Falls", "Great Falls"),
])
def test_a_name_keeps_its_words_of_conversation_and_of(text: str, place: str) -> None:
    args, mentions = _extract("hotels.find", text)
    assert args["location"] == place
    assert mentions["location"] == place


@pytest.mark.parametrize("text", ["Great. A hotel in Paris, please", "New hotel in Paris?", "a hotel in Paris. Fine"])
def test_a_capital_that_starts_a_sentence_joins_no_name(text: str) -> None:
    args, _ = _extract("hotels.find", text)
    assert args["location"] == "Paris"


@pytest.mark.parametrize(("text", "expected"), [
    ("transfer $200 to their savings account", {"recipient_account": "savings"}),
    ("send 50 dollars into Grace's checking", {"recipient_account": "checking"}),
    ("move $300 from my savings", {"account": "savings"}),
    ("transfer 1600 dollars from my savings account to their checking account",
     {"account": "savings", "recipient_account": "checking"}),
    ("transfer $75 from checking to savings", {"account": "checking", "recipient_account": "savings"}),
    ("transfer $75 using savings", {"account": "savings"}),  # no word points either way: the first
])
def test_a_value_two_parameters_share_goes_by_the_words_before_it(text: str, expected: dict[str, str]) -> None:
    args, _ = _extract("bank.transfer", text)
    assert {k: v for k, v in args.items() if k != "amount"} == expected


@pytest.mark.parametrize(("text", "name"), [
    ("add an alarm called Music practice", "Music practice"),
    ("I'd like a new alarm named Leave for home.", "Leave for home"),
    ("set an alarm at 5:15 pm called cleaning", "cleaning"),
    ("could you add an alarm titled Grocery run?", "Grocery run"),
    ("an alarm called Pick up the kids at 3 pm, please", "Pick up the kids"),
    ("I want a new alarm for 7 am. It'll be called Morning run.", "Morning run"),
])
def test_a_name_after_called_runs_to_the_end_of_its_clause(text: str, name: str) -> None:
    args, mentions = _extract("alarms.add", text)
    assert args["alarm_name"] == name
    assert mentions["alarm_name"] == name


@pytest.mark.parametrize(("action", "text", "param", "value"), [
    ("movies.find", "a movie starring Taraji P. Henson", "starring", "Taraji P. Henson"),
    ("movies.find", "anything starring Jeremy St. James?", "starring", "Jeremy St. James"),
    ("hotels.find", "a hotel in St. Helena, please", "location", "St. Helena"),
    ("hotels.find", "I need a hotel in Washington D.C. for the weekend", "location", "Washington D.C."),
    ("hotels.find", "find a hotel near Mt. Shasta", "location", "Mt. Shasta"),
])
def test_a_period_after_an_initial_stays_inside_the_name(action: str, text: str, param: str, value: str) -> None:
    args, _ = _extract(action, text)
    assert args[param] == value


def test_a_period_after_a_word_still_ends_the_name() -> None:
    args, _ = _extract("hotels.find", "a hotel in Paris. Great, thanks")
    assert args["location"] == "Paris"


@pytest.mark.parametrize("text", [
    "play it on the speaker in the kitchen", "put it on in the bedroom, please", "can you play that on the TV?",
    "cast it to my speaker in the Kitchen",
])
def test_words_of_another_parameters_choices_are_no_name(text: str) -> None:
    args, _ = _extract("media.play", text)
    assert "track_name" not in args


def test_a_name_beside_a_choices_words_is_still_a_name() -> None:
    args, _ = _extract("media.play", "play Blinding Lights in the kitchen")
    assert args["track_name"] == "Blinding Lights"


@pytest.mark.parametrize("text", [
    "I usually enjoy Music events in Austin", "we really love Sports events in Chicago",
    "I also like Music events in Denver",
    "They adore Sports events in Boston", "I love Music events in Paris",
])
def test_a_verb_after_its_subject_is_no_kind(text: str) -> None:
    args, _ = _extract("events.find", text)
    assert "subcategory" not in args


@pytest.mark.parametrize(("plural", "singular"), [
    ("games", "game"), ("notes", "note"), ("dates", "date"), ("types", "type"), ("boxes", "box"),
    ("matches", "match"), ("buses", "bus"), ("closes", "close"), ("movies", "movie"),
])
def test_a_plural_meets_its_singular(plural: str, singular: str) -> None:
    assert stem(plural) == stem(singular)


@pytest.mark.parametrize("text", ["show me baseball games in Chicago", "find baseball matches in Chicago"])
def test_a_plural_names_the_actions_thing_too(text: str) -> None:
    args, _ = _extract("events.find", text)
    assert args["subcategory"] == "baseball"


def _counts(action: str, text: str) -> dict[str, Any]:
    """``assign_counts`` alone, on the number pieces of ``text``."""
    params = params_of(catalog.get(action))
    args: dict[str, Any] = {}

    def take(param: Param, piece: Piece, value: Any) -> None:
        args[param.name] = value

    pieces = find_pieces(text, Context(now=NOW), PERSON, params)
    slots.assign_counts(text, pieces, params, args, take)
    return args


@pytest.mark.parametrize(("text", "expected"), [
    ("I need 2 hotel rooms at a 3 star hotel", {"number_of_rooms": "2", "star_rating": "3"}),
    ("a 4 star hotel", {"star_rating": "4"}),
    ("I need 3", {}),  # rooms or stars: not said
])
def test_counts_by_the_noun_after_them(text: str, expected: dict[str, Any]) -> None:
    assert _counts("hotels.find", text) == expected


def test_counts_of_people() -> None:
    assert _counts("buses.book", "4 tickets to Fresno") == {"travelers": "4"}
    assert _counts("buses.book", "a bus for two") == {"travelers": "2"}
    assert _counts("buses.book", "7 people") == {}  # not one of the listed values


def _people_in(text: str, directory: Directory) -> list[tuple[str, str]]:
    return [(p.text, p.value) for p in find_pieces(text, Context(now=NOW, directory=directory), PERSON, [])
            if p.kind == "person"]


def test_people_are_found_by_any_name_in_a_large_directory() -> None:
    # Names are looked for only when the message holds their first word: the same people must come out as
    # if every name had been tried, in any case, among many others, and in a message that is not plain ASCII.
    people = [Person(id=f"p{i}", name=f"Person{i} Surname{i}", role="user", timezone="UTC") for i in range(500)]
    people += [Person(id="devi", name="Devi Rao", role="ae", timezone="UTC"),
               Person(id="zoe", name="Zoë Lind", role="ae", timezone="UTC")]
    directory = Directory(people, [])
    assert _people_in("ask DEVI RAO and person42 surname42 about it", directory) == [
        ("DEVI RAO", "devi"), ("person42 surname42", "p42")]
    assert _people_in("ping devi", directory) == [("devi", "devi")]
    assert _people_in("ping zoë and devi — café at noon", directory) == [("zoë", "zoe"), ("devi", "devi")]
    assert _people_in("ping nobody here", directory) == []
