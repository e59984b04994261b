"""Typed value extraction for the offline interpreter: kinds, values and verbatim span texts.

The reference moment is the demo's: Wednesday 2026-11-25 09:00 in New York.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from sayso.interpreter.values import (
    Span,
    find_choices,
    find_dates,
    find_durations,
    find_emails,
    find_money,
    find_numbers,
    find_values,
    match_choice,
)

NY = ZoneInfo("America/New_York")
NOW = datetime(2026, 11, 25, 9, 0, tzinfo=NY)
TODAY = NOW.date()


def D(month: int, day: int, year: int = 2026) -> date:
    return date(year, month, day)


def DT(month: int, day: int, hour: int, minute: int = 0, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=NY)


def only(spans: list[Span], text: str) -> Span:
    assert len(spans) == 1, spans
    span = spans[0]
    assert text[span.start : span.end] == span.text
    return span


DATES: list[tuple[str, date, str]] = [
    ("today", D(11, 25), "today"),
    ("What's on tonight?", D(11, 25), "tonight"),
    ("tomorrow", D(11, 26), "tomorrow"),
    ("see the weather for the day after tomorrow", D(11, 27), "day after tomorrow"),
    ("day after tomorrow", D(11, 27), "day after tomorrow"),
    ("yesterday", D(11, 24), "yesterday"),
    ("anything available later today?", D(11, 25), "later today"),
    ("Friday", D(11, 27), "Friday"),
    ("next Tuesday", D(12, 1), "next Tuesday"),
    ("leaving on Tuesday", D(12, 1), "Tuesday"),
    ("next Wednesday", D(12, 2), "next Wednesday"),
    ("Wednesday", D(12, 2), "Wednesday"),
    ("this Friday", D(11, 27), "this Friday"),
    ("this Wednesday", D(11, 25), "this Wednesday"),
    ("next friday", D(11, 27), "next friday"),
    ("Sunday this week", D(11, 29), "Sunday this week"),
    ("Monday next week", D(11, 30), "Monday next week"),
    ("wednesday next week", D(12, 2), "wednesday next week"),
    ("next week on Friday", D(12, 4), "next week on Friday"),
    ("the Friday after next", D(12, 4), "Friday after next"),
    ("last Friday", D(11, 20), "last Friday"),
    ("Can we do Sat?", D(11, 28), "Sat"),
    ("end of month", D(11, 30), "end of month"),
    ("end of the month", D(11, 30), "end of the month"),
    ("month end", D(11, 30), "month end"),
    ("month-end", D(11, 30), "month-end"),
    ("end of week", D(11, 27), "end of week"),
    ("end of the week", D(11, 27), "end of the week"),
    ("end of next week", D(12, 4), "end of next week"),
    ("end of quarter", D(12, 31), "end of quarter"),
    ("end of year", D(12, 31), "end of year"),
    ("end of next month", D(12, 31), "end of next month"),
    ("beginning of next month", D(12, 1), "beginning of next month"),
    ("start of next month", D(12, 1), "start of next month"),
    ("EOD", D(11, 25), "EOD"),
    ("end of December", D(12, 31), "end of December"),
    ("mid-January", D(1, 15, 2027), "mid-January"),
    ("next month", D(12, 1), "next month"),
    ("next week", D(11, 30), "next week"),
    ("next year", D(1, 1, 2027), "next year"),
    ("in 3 days", D(11, 28), "in 3 days"),
    ("in two weeks", D(12, 9), "in two weeks"),
    ("3 days from now", D(11, 28), "3 days from now"),
    ("in a week", D(12, 2), "in a week"),
    ("a week from today", D(12, 2), "a week from today"),
    ("in a couple of days", D(11, 27), "in a couple of days"),
    ("in 3 months", D(2, 25, 2027), "in 3 months"),
    ("2 weeks ago", D(11, 11), "2 weeks ago"),
    ("December 19", D(12, 19), "December 19"),
    ("Dec 19th", D(12, 19), "Dec 19th"),
    ("Dec. 19", D(12, 19), "Dec. 19"),
    ("19 December", D(12, 19), "19 December"),
    ("the 19th of December", D(12, 19), "19th of December"),
    ("December first", D(12, 1), "December first"),
    ("the twenty-first of December", D(12, 21), "twenty-first of December"),
    ("March 10th", D(3, 10, 2027), "March 10th"),
    ("I need a car until march 12th.", D(3, 12, 2027), "march 12th"),
    ("I will fly out 1st of March from Las Vegas", D(3, 1, 2027), "1st of March"),
    ("13th of march", D(3, 13, 2027), "13th of march"),
    ("12/19", D(12, 19), "12/19"),
    ("12/19/2027", D(12, 19, 2027), "12/19/2027"),
    ("2026-12-19", D(12, 19), "2026-12-19"),
    ("December 19, 2026", D(12, 19), "December 19, 2026"),
    ("March 10th 2019", D(3, 10, 2019), "March 10th 2019"),
    ("5th of March 2019", D(3, 5, 2019), "5th of March 2019"),
    ("Friday, December 18", D(12, 18), "Friday, December 18"),
    ("November 25", D(11, 25), "November 25"),
    ("November 24", D(11, 24, 2027), "November 24"),
    ("May 5th", D(5, 5, 2027), "May 5th"),
    ("the 5th", D(12, 5), "the 5th"),
    ("check in on the 9th", D(12, 9), "the 9th"),
    ("the 25th", D(11, 25), "the 25th"),
    ("the 30th", D(11, 30), "the 30th"),
    ("the 31st", D(12, 31), "the 31st"),
    ("Friday the 18th", D(12, 18), "Friday the 18th"),
    ("I'd like it until the 13th of this month.", D(11, 13), "13th of this month"),
    ("1st of this month", D(11, 1), "1st of this month"),
    ("the 5th of next month", D(12, 5), "5th of next month"),
    ("until the 11th of the month", D(12, 11), "11th of the month"),
]


@pytest.mark.parametrize(("text", "value", "surface"), DATES)
def test_dates(text: str, value: date, surface: str) -> None:
    span = only([s for s in find_dates(text, NOW) if s.kind == "date"], text)
    assert (span.value, span.text) == (value, surface)


TIMES: list[tuple[str, time, str]] = [
    ("at 9", time(9), "9"),
    ("at 3", time(15), "3"),
    ("at 12", time(12), "12"),
    ("at 17", time(17), "17"),
    ("around 7", time(7), "7"),
    ("9am", time(9), "9am"),
    ("9 a.m.", time(9), "9 a.m."),
    ("9:30 pm", time(21, 30), "9:30 pm"),
    ("at 10:15", time(10, 15), "10:15"),
    ("leave at 5:15 pm.", time(17, 15), "5:15 pm"),
    ("1:30", time(13, 30), "1:30"),
    ("07:30", time(7, 30), "07:30"),
    ("17:15", time(17, 15), "17:15"),
    ("noon", time(12), "noon"),
    ("12 noon", time(12), "12 noon"),
    ("midnight", time(0), "midnight"),
    ("half past 11 in the morning", time(11, 30), "half past 11 in the morning"),
    ("half past 7 in the evening", time(19, 30), "half past 7 in the evening"),
    ("morning 11:15", time(11, 15), "morning 11:15"),
    ("quarter to 5", time(16, 45), "quarter to 5"),
    ("quarter to 7", time(6, 45), "quarter to 7"),
    ("quarter to 12 in the morning", time(11, 45), "quarter to 12 in the morning"),
    ("quarter to 1 in the afternoon", time(12, 45), "quarter to 1 in the afternoon"),
    ("quarter past 3 in the afternoon", time(15, 15), "quarter past 3 in the afternoon"),
    ("around a quarter past 9 in the morning", time(9, 15), "quarter past 9 in the morning"),
    ("20 minutes past 3", time(15, 20), "20 minutes past 3"),
    ("5 in the evening", time(17), "5 in the evening"),
    ("12 in the afternoon", time(12), "12 in the afternoon"),
    ("6 pm", time(18), "6 pm"),
    ("evening 7", time(19), "evening 7"),
    ("evening 4:30", time(16, 30), "evening 4:30"),
    ("afternoon 12:30", time(12, 30), "afternoon 12:30"),
    ("afternoon 3", time(15), "afternoon 3"),
    ("night 8", time(20), "night 8"),
    ("6:30 pm", time(18, 30), "6:30 pm"),
    ("12:30 in the afternoon", time(12, 30), "12:30 in the afternoon"),
    ("one pm", time(13), "one pm"),
    ("twelve PM", time(12), "twelve PM"),
    ("eleven in the morning", time(11), "eleven in the morning"),
    ("six in the evening", time(18), "six in the evening"),
    ('2 o"clock in the afternoon', time(14), '2 o"clock in the afternoon'),
    ("5 o'clock", time(17), "5 o'clock"),
    ("8 o'clock in the night", time(20), "8 o'clock in the night"),
    ("it needs to be at seven", time(7), "seven"),
]


@pytest.mark.parametrize(("text", "value", "surface"), TIMES)
def test_times(text: str, value: time, surface: str) -> None:
    span = only(find_dates(text, NOW), text)
    assert (span.kind, span.value, span.text) == ("time", value, surface)


DATETIMES: list[tuple[str, datetime, str]] = [
    ("tomorrow at 9", DT(11, 26, 9), "tomorrow at 9"),
    ("Friday at 9am", DT(11, 27, 9), "Friday at 9am"),
    ("December 19 at 3 pm", DT(12, 19, 15), "December 19 at 3 pm"),
    ("next Tuesday 10:30", DT(12, 1, 10, 30), "next Tuesday 10:30"),
    ("tonight at 8", DT(11, 25, 20), "tonight at 8"),
    ("tomorrow morning at 9", DT(11, 26, 9), "tomorrow morning at 9"),
    ("tomorrow evening at 7", DT(11, 26, 19), "tomorrow evening at 7"),
    ("Call me at 9 tomorrow", DT(11, 26, 9), "9 tomorrow"),
    ("3 pm on Friday", DT(11, 27, 15), "3 pm on Friday"),
    ("Tuesday at noon", DT(12, 1, 12), "Tuesday at noon"),
    ("a table for this evening 6:30", DT(11, 25, 18, 30), "this evening 6:30"),
    ("for one on the 12th at 12:15 in the afternoon?", DT(12, 12, 12, 15), "the 12th at 12:15 in the afternoon"),
    ("the 1st of march at 13:30", DT(3, 1, 13, 30, 2027), "1st of march at 13:30"),
]


@pytest.mark.parametrize(("text", "value", "surface"), DATETIMES)
def test_datetimes(text: str, value: datetime, surface: str) -> None:
    span = only(find_dates(text, NOW), text)
    assert (span.kind, span.value, span.text) == ("datetime", value, surface)
    assert span.value.tzinfo is NY


def test_a_datetime_keeps_its_date_and_time_as_parts() -> None:
    text = "book it for the 12th at 12:15 in the afternoon"
    (span,) = find_dates(text, NOW)
    assert [(p.kind, p.value, p.text) for p in span.parts] == [
        ("date", D(12, 12), "the 12th"),
        ("time", time(12, 15), "12:15 in the afternoon"),
    ]
    assert all(text[p.start : p.end] == p.text for p in span.parts)


RANGES: list[tuple[str, tuple[date | None, date | None], str]] = [
    ("in the next 30 days", (TODAY, D(12, 25)), "next 30 days"),
    ("next 30 days", (TODAY, D(12, 25)), "next 30 days"),
    ("within 30 days", (TODAY, D(12, 25)), "within 30 days"),
    ("within a week", (TODAY, D(12, 2)), "within a week"),
    ("over the next two weeks", (TODAY, D(12, 9)), "next two weeks"),
    ("in the past 7 days", (D(11, 18), TODAY), "past 7 days"),
    ("this week", (TODAY, D(11, 29)), "this week"),
    ("this month", (TODAY, D(11, 30)), "this month"),
    ("this weekend", (D(11, 28), D(11, 29)), "this weekend"),
    ("last month", (D(10, 1), D(10, 31)), "last month"),
    ("before Friday", (None, D(11, 27)), "Friday"),
    ("by Friday", (None, D(11, 27)), "Friday"),
    ("by the end of the month", (None, D(11, 30)), "end of the month"),
    ("after December 1", (D(12, 1), None), "December 1"),
    ("from December 1", (D(12, 1), None), "December 1"),
    ("between Dec 1 and Dec 15", (D(12, 1), D(12, 15)), "between Dec 1 and Dec 15"),
    ("between the 1st and the 15th", (D(12, 1), D(12, 15)), "between the 1st and the 15th"),
]


@pytest.mark.parametrize(("text", "value", "surface"), RANGES)
def test_ranges(text: str, value: tuple[date | None, date | None], surface: str) -> None:
    span = only(find_dates(text, NOW), text)
    assert (span.kind, span.value, span.text) == ("range", value, surface)


def test_from_a_date_to_another_is_two_dates() -> None:
    text = "I need the car from March 4th till 7th of March"
    assert [(s.kind, s.value, s.text) for s in find_dates(text, NOW)] == [
        ("date", D(3, 4, 2027), "March 4th"),
        ("date", D(3, 7, 2027), "7th of March"),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "Close D-101 and SUP-17",
        "Pay INV-2041 now",
        "a table for 2 people",
        "the amount is $3,000",
        "I need 3 rooms",
        "pick the 2nd option",
        "I may 2",
        "we sat down",
        "look at one of them",
        "at 2 people",
        "around 4 stars",
        "raise it by 3",
        "see you in Dec.",
        "5 to 6 guests",
        "the one in the evening",
        "my stay will last 7 days",
        "10/32",
    ],
)
def test_no_date_where_there_is_none(text: str) -> None:
    assert find_dates(text, NOW) == []


@pytest.mark.parametrize(
    ("now", "text", "value"),
    [
        # The same instant is already Thursday in Tokyo.
        (datetime(2026, 11, 25, 20, 0, tzinfo=NY), "today", D(11, 25)),
        (datetime(2026, 11, 26, 10, 0, tzinfo=ZoneInfo("Asia/Tokyo")), "today", D(11, 26)),
        (
            datetime(2026, 11, 26, 10, 0, tzinfo=ZoneInfo("Asia/Tokyo")),
            "tomorrow at 9",
            datetime(2026, 11, 27, 9, 0, tzinfo=ZoneInfo("Asia/Tokyo")),
        ),
        (
            datetime(2026, 11, 25, 6, 0, tzinfo=ZoneInfo("America/Los_Angeles")),
            "Friday at 4:30 pm",
            datetime(2026, 11, 27, 16, 30, tzinfo=ZoneInfo("America/Los_Angeles")),
        ),
        # Daylight saving time starts in New York on 2026-03-08.
        (datetime(2026, 3, 7, 9, 0, tzinfo=NY), "tomorrow at 9", datetime(2026, 3, 8, 9, 0, tzinfo=NY)),
    ],
)
def test_relative_to_the_persons_zone(now: datetime, text: str, value: Any) -> None:
    (span,) = find_dates(text, now)
    assert span.value == value
    if isinstance(value, datetime):
        assert span.value.tzinfo is now.tzinfo
        assert span.value.utcoffset() == value.utcoffset()


def test_dst_offset_is_the_local_one() -> None:
    (span,) = find_dates("tomorrow at 9", datetime(2026, 3, 7, 9, 0, tzinfo=NY))
    assert span.value.utcoffset() == timedelta(hours=-4)


MONEY: list[tuple[str, int | float, str]] = [
    ("$3,000", 3000, "$3,000"),
    ("3,000 dollars", 3000, "3,000 dollars"),
    ("120k", 120000, "120k"),
    ("120K", 120000, "120K"),
    ("$1.5m", 1500000, "$1.5m"),
    ("1.5 million", 1500000, "1.5 million"),
    ("2,000", 2000, "2,000"),
    ("$49.99", 49.99, "$49.99"),
    ("USD 500", 500, "USD 500"),
    ("500 usd", 500, "500 usd"),
    ("€40", 40, "€40"),
    ("£1,200.50", 1200.5, "£1,200.50"),
    ("3 grand", 3000, "3 grand"),
    ("50 cents", 0.5, "50 cents"),
    ("ten dollars", 10, "ten dollars"),
    ("two thousand", 2000, "two thousand"),
    (
        "transfer one thousand two hundred and ninety dollars",
        1290,
        "one thousand two hundred and ninety dollars",
    ),
]


@pytest.mark.parametrize(("text", "value", "surface"), MONEY)
def test_money(text: str, value: int | float, surface: str) -> None:
    span = only(find_money(text), text)
    assert (span.kind, span.value, span.text) == ("money", value, surface)
    assert type(span.value) is type(value)


@pytest.mark.parametrize("text", ["D-101", "SUP-17", "INV-2041", "2 people", "thanks a million", "room 12"])
def test_no_money_where_there_is_none(text: str) -> None:
    assert find_money(text) == []


NUMBERS: list[tuple[str, int | float, str]] = [
    ("2", 2, "2"),
    ("two", 2, "two"),
    ("twenty", 20, "twenty"),
    ("twenty-five", 25, "twenty-five"),
    ("a couple", 2, "a couple"),
    ("a couple of rooms", 2, "a couple"),
    ("a dozen", 12, "a dozen"),
    ("one hundred and five", 105, "one hundred and five"),
    ("3.5", 3.5, "3.5"),
    ("2 people", 2, "2"),
    ("a table for 3", 3, "3"),
    ("I have 0 bags to check", 0, "0"),
    ("a 5-star hotel", 5, "5"),
    ("I need one", 1, "one"),
]


@pytest.mark.parametrize(("text", "value", "surface"), NUMBERS)
def test_numbers(text: str, value: int | float, surface: str) -> None:
    span = only(find_numbers(text), text)
    assert (span.kind, span.value, span.text) == ("number", value, surface)
    assert type(span.value) is type(value)


@pytest.mark.parametrize(
    "text", ["D-101", "SUP-17", "INV-2041", "ticket #4521", "a one way flight", "this one", "no one", "$49.99", "19th"]
)
def test_no_number_where_there_is_none(text: str) -> None:
    assert find_numbers(text) == []


DURATIONS: list[tuple[str, int, str]] = [
    ("30 minutes", 30, "30 minutes"),
    ("30 min", 30, "30 min"),
    ("an hour", 60, "an hour"),
    ("1.5 hours", 90, "1.5 hours"),
    ("90 mins", 90, "90 mins"),
    ("half an hour", 30, "half an hour"),
    ("1h", 60, "1h"),
    ("1h30", 90, "1h30"),
    ("2 hours 30 minutes", 150, "2 hours 30 minutes"),
    ("an hour and a half", 90, "an hour and a half"),
    ("a 45-minute call", 45, "45-minute"),
    ("two hours", 120, "two hours"),
    ("a quarter of an hour", 15, "a quarter of an hour"),
]


@pytest.mark.parametrize(("text", "value", "surface"), DURATIONS)
def test_durations(text: str, value: int, surface: str) -> None:
    span = only(find_durations(text), text)
    assert (span.kind, span.value, span.text) == ("duration", value, surface)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("mail bob.smith+crm@example.co.uk.", "bob.smith+crm@example.co.uk"),
        ("Ask Dana@Acme.io about it", "Dana@Acme.io"),
    ],
)
def test_emails(text: str, value: str) -> None:
    span = only(find_emails(text), text)
    assert (span.kind, span.value, span.text) == ("email", value, value)


def test_no_email_in_a_handle() -> None:
    assert find_emails("ping @dana or bob@localhost") == []


VALUES: list[tuple[str, list[tuple[str, Any, str]]]] = [
    (
        "Book a table for 2 people tomorrow at 7pm and email bob@example.com",
        [
            ("number", 2, "2"),
            ("datetime", DT(11, 26, 19), "tomorrow at 7pm"),
            ("email", "bob@example.com", "bob@example.com"),
        ],
    ),
    (
        "Set INV-2041 to $3,000 by Friday",
        [("money", 3000, "$3,000"), ("range", (None, D(11, 27)), "Friday")],
    ),
    ("Call me in 30 minutes", [("duration", 30, "30 minutes")]),
    ("a table for 2 at 9", [("number", 2, "2"), ("time", time(9), "9")]),
    ("meet mar10@example.com", [("email", "mar10@example.com", "mar10@example.com")]),
    (
        "move D-101 to negotiation, 120k, close end of the month",
        [("money", 120000, "120k"), ("date", D(11, 30), "end of the month")],
    ),
    (
        "I want to make a restaurant reservation for 2 people at half past 11 in the morning.",
        [("number", 2, "2"), ("time", time(11, 30), "half past 11 in the morning")],
    ),
    (
        'Book me a table for 2 at 5 o"clock in the evening on the 5th of March.',
        [("number", 2, "2"), ("datetime", DT(3, 5, 17, year=2027), '5 o"clock in the evening on the 5th of March')],
    ),
    ("an hour-long meeting for 3.5 people", [("duration", 60, "an hour"), ("number", 3.5, "3.5")]),
]


@pytest.mark.parametrize(("text", "expected"), VALUES)
def test_find_values(text: str, expected: list[tuple[str, Any, str]]) -> None:
    spans = find_values(text, NOW)
    assert [(s.kind, s.value, s.text) for s in spans] == expected
    assert all(text[s.start : s.end] == s.text for s in spans)
    assert all(a.end <= b.start for a, b in zip(spans, spans[1:], strict=False))


SIGNED: list[tuple[str, list[tuple[str, Any, str]]]] = [
    ("set the Brightwater amount to -30000", [("number", -30000, "-30000")]),
    ("issue a credit note of -5 to Orchid Pharma", [("number", -5, "-5")]),
    ("set it to minus 300", [("number", -300, "minus 300")]),
    ("negative five", [("number", -5, "negative five")]),
    ("minus two thousand dollars", [("money", -2000, "minus two thousand dollars")]),
    ("amount \u22125,000", [("money", -5000, "\u22125,000")]),  # the Unicode minus sign
    ("amount \u20135,000", [("money", -5000, "\u20135,000")]),  # an en dash written as a minus
    ("-$5,000", [("money", -5000, "-$5,000")]),
    ("$-5,000", [("money", -5000, "$-5,000")]),
    ("$-5", [("money", -5, "$-5")]),
    ("-120k", [("money", -120000, "-120k")]),
    ("-3.5", [("number", -3.5, "-3.5")]),
    ("amount:-7", [("number", -7, "-7")]),
    ("(5,000)", [("money", -5000, "(5,000)")]),  # an accountant's negative
    ("a refund of ($2,500.50)", [("money", -2500.5, "($2,500.50)")]),
    ("from -10 to -20", [("number", -10, "-10"), ("number", -20, "-20")]),
    ("D-104 -5", [("number", -5, "-5")]),  # an id before the minus is not a number: no range
    ("-30 minutes", [("duration", -30, "-30 minutes")]),
]


@pytest.mark.parametrize(("text", "expected"), SIGNED)
def test_negative_values_keep_their_sign(text: str, expected: list[tuple[str, Any, str]]) -> None:
    spans = find_values(text, NOW)
    assert [(s.kind, s.value, s.text) for s in spans] == expected
    assert all(text[s.start : s.end] == s.text for s in spans)


UNSIGNED: list[tuple[str, list[tuple[str, Any, str]]]] = [
    ("5-10 people", [("number", 5, "5"), ("number", 10, "10")]),
    ("between 10 - 20", [("number", 10, "10"), ("number", 20, "20")]),
    ("between 10 -20", [("number", 10, "10"), ("number", 20, "20")]),
    ("$10 -$20", [("money", 10, "$10"), ("money", 20, "$20")]),
    ("500 minus 300", [("number", 500, "500"), ("number", 300, "300")]),
    ("2026-12-01", [("date", D(12, 1), "2026-12-01")]),
    ("close it 2026-12-01", [("date", D(12, 1), "2026-12-01")]),
    ("SUP-17 D-104 INV-2041 UTC-5 covid-19", []),
    ("call 555-0100", [("number", 555, "555"), ("number", 100, "0100")]),
    ("(555) 123-4567", [("number", 555, "555"), ("number", 123, "123"), ("number", 4567, "4567")]),
    ("- 5 tickets", [("number", 5, "5")]),  # a list's dash, apart from the number
    ("(5 people)", [("number", 5, "5")]),  # brackets make a negative of money only
    ("a 45-minute call", [("duration", 45, "45-minute")]),
]


@pytest.mark.parametrize(("text", "expected"), UNSIGNED)
def test_ranges_ids_dates_and_phones_have_no_sign(text: str, expected: list[tuple[str, Any, str]]) -> None:
    assert [(s.kind, s.value, s.text) for s in find_values(text, NOW)] == expected


def test_the_sign_is_read_by_each_finder() -> None:
    assert [s.value for s in find_money("credit -$5,000 and (2,000)")] == [-5000, -2000]
    assert [s.value for s in find_numbers("move it -3 and minus four")] == [-3, -4]
    assert [s.value for s in find_durations("-30 minutes")] == [-30]


def test_spans_compare_without_their_parts() -> None:
    assert find_values("2", NOW) == [Span(0, 1, "number", 2, "2")]


STAGES = ["prospecting", "qualification", "proposal", "negotiation", "closed_won", "closed_lost"]


@pytest.mark.parametrize(
    ("text", "choices", "expected"),
    [
        ("negotiating", STAGES, "negotiation"),
        ("negotiation", STAGES, "negotiation"),
        ("Negotiations", STAGES, "negotiation"),
        ("negotation", STAGES, "negotiation"),
        ("closed won", STAGES, "closed_won"),
        ("closed-won", STAGES, "closed_won"),
        ("Closed Won", STAGES, "closed_won"),
        ("qualified", STAGES, "qualification"),
        ("proposed", STAGES, "proposal"),
        ("won", ["won", "lost"], "won"),
        ("Economy", ["Economy", "Premium Economy", "Business"], "Economy"),
        ("premium economy", ["Economy", "Premium Economy", "Business"], "Premium Economy"),
        ("premium", ["Economy", "Premium Economy", "Business"], "Premium Economy"),
        ("true", ["True", "False"], "True"),
        ("FALSE", ["True", "False"], "False"),
        ("move it to negotiation please", STAGES, "negotiation"),
        ("closed", STAGES, None),
        ("banana", STAGES, None),
        ("maybe", ["True", "False"], None),
        ("tree", ["True", "False"], None),
        ("", STAGES, None),
        ("won", [], None),
    ],
)
def test_match_choice(text: str, choices: list[str], expected: str | None) -> None:
    assert match_choice(text, choices) == expected


@pytest.mark.parametrize(
    ("text", "choices", "expected"),
    [
        (
            "move Acme to negotiating, then Globex to closed-won",
            STAGES,
            [("negotiating", "negotiation"), ("closed-won", "closed_won")],
        ),
        (
            "fly Premium Economy, not economy",
            ["Economy", "Premium Economy", "Business"],
            [("Premium Economy", "Premium Economy"), ("economy", "Economy")],
        ),
        ("the deal was won", ["won", "lost"], [("won", "won")]),
        ("it won't matter", ["won", "lost"], []),
        ("is that true?", ["True", "False"], [("true", "True")]),
        ("still in negotation", STAGES, [("negotation", "negotiation")]),
        ("nothing here", STAGES, []),
    ],
)
def test_find_choices(text: str, choices: list[str], expected: list[tuple[str, str]]) -> None:
    spans = find_choices(text, choices)
    assert [(s.text, s.value) for s in spans] == expected
    assert all(s.kind == "choice" and text[s.start : s.end] == s.text for s in spans)
