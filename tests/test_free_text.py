"""Text that goes to people is taken exactly, over many generated phrasings of the same requests.

Quoted text is verbatim; "saying ...", "that ...", "titled ...", "and title it ..." split the
message into its parts; none of the request's own words ("send", "email", "titled",
"saying", "that") leak into a body, a subject, a title or a chat message.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

import sayso
from sayso.clock import parse_time
from sayso.demo.catalog import catalog as demo
from sayso.directory import Directory
from sayso.interpreter import Context
from sayso.interpreter.offline import OfflineInterpreter

DIRECTORY = Directory.load(Path(sayso.__file__).resolve().parent / "demo" / "files" / "directory.yaml")
ALICE = DIRECTORY.get("alice")
CONTEXT = Context(now=parse_time("2026-11-25T09:00", ALICE.timezone), directory=DIRECTORY)
INTERPRETER = OfflineInterpreter()

SUBJECTS = ["Renewal terms", "Q4 plan", "Follow-up from the demo"]
BODIES = ["the updated terms are attached", "see you at 3", "please send the signed contract back"]


def _quoted(value: str, style: str) -> str:
    return {"double": f'"{value}"', "single": f"'{value}'", "curly": f"“{value}”", "bare": value}[style]


def _email_cases() -> list[tuple[str, str, str]]:
    openers = ["email bob", "send an email to bob", "send bob an email", "please email bob",
               "can you send bob an email"]
    subject_labels = ["titled {}", "with the subject {}", "with subject {}", "with the title {}", "and title it {}"]
    body_labels = ["saying {}", "saying that {}", "with the body {}", "and the body {}"]
    cases = []
    for n, (opener, s_label, b_label, style) in enumerate(itertools.product(
            openers, subject_labels, body_labels, ("double", "single", "curly", "bare"))):
        subject, body = SUBJECTS[n % 3], BODIES[n // 3 % 3]
        said_subject = s_label.format(_quoted(subject, style))
        said_body = b_label.format(_quoted(body, style))
        if style == "bare" and b_label.startswith("and the body"):
            continue  # "... and the body the updated terms": not how anyone says it without quotes
        subject_first = not s_label.startswith("and ")
        parts = [said_subject, said_body] if subject_first else [said_body, said_subject]
        cases.append((f"{opener} {parts[0]} {parts[1]}", subject, body))
    return cases


EMAILS = _email_cases()


def _step(text: str) -> tuple[str, dict[str, Any]]:
    found = INTERPRETER.interpret(text, CONTEXT, demo, ALICE)
    assert found.kind == "plan" and len(found.steps) == 1, (text, found)
    return found.steps[0].action, found.steps[0].args


def test_enough_email_phrasings_are_generated() -> None:
    assert len(EMAILS) >= 300 and len({text for text, _, _ in EMAILS}) == len(EMAILS)


@pytest.mark.parametrize(("text", "subject", "body"), EMAILS)
def test_an_emails_subject_and_body_are_taken_exactly(text: str, subject: str, body: str) -> None:
    assert _step(text) == ("email.send", {"to": ["bob"], "subject": subject, "body": body})


MEETINGS = [
    (f"{opener} {label.format(_quoted(title, style))}{tail}", title)
    for opener, tail in (("schedule a meeting with bob tomorrow at 3pm", ""),
                         ("set up a meeting with bob on Friday at 10am", ""))
    for label in ("titled {}", "called {}", "and title it {}", "named {}")
    for style in ("double", "single", "bare")
    for title in ("Pipeline review", "Q4 planning")
] + [
    (f"{verb} a meeting {label.format(_quoted(title, style))} with bob {when}", title)
    for verb in ("schedule", "book")
    for label in ("titled {}", "called {}")
    for style in ("double", "single", "bare")
    for title in ("Pipeline review", "Kestrel sync")
    for when in ("tomorrow at 3pm", "on Friday at 10am")
]


@pytest.mark.parametrize(("text", "title"), MEETINGS)
def test_a_meetings_title_is_taken_exactly(text: str, title: str) -> None:
    action, args = _step(text)
    assert action == "calendar.schedule_meeting" and args["title"] == title and args["attendees"] == ["bob"]


MESSAGES = [
    (template.format(_quoted(body, style)), body)
    for template in ("tell bob that {}", "let bob know that {}", "message bob saying {}",
                     "send bob a message saying that {}", "ping bob: {}", "tell bob {}",
                     "send a message to bob saying {}")
    for style in ("bare", "double", "single")
    for body in ("the Cobalt demo went well", "Kestrel slipped a week", "we need the signed contract")
    if style == "bare" or "saying" in template or ":" in template
]


@pytest.mark.parametrize(("text", "body"), MESSAGES)
def test_a_chat_messages_text_is_taken_exactly(text: str, body: str) -> None:
    assert _step(text) == ("chat.send", {"to": "bob", "text": body})


def test_labels_inside_quotes_are_text_not_labels() -> None:
    said = "email bob saying 'the subject is closed, titled or not' and title it \"Closure\""
    assert _step(said)[1] == {"to": ["bob"], "subject": "Closure", "body": "the subject is closed, titled or not"}


def test_apostrophes_are_not_quotes() -> None:
    assert _step("tell bob that it's Carol's turn now")[1] == {"to": "bob", "text": "it's Carol's turn now"}


@pytest.mark.parametrize("to", ["Jinsoo", "jinsoo.kim@atlas.example"])
def test_the_labels_words_are_neither_the_addressee_nor_the_text(to: str) -> None:
    """The WorkBench phrasing: "send an email to X saying '...' and title it '...'" (the body was the subject)."""
    said = f"send an email to {to} saying 'Can we move the sync to Friday?' and title it 'Sync'"
    assert _step(said) == ("email.send", {"to": [to], "subject": "Sync", "body": "Can we move the sync to Friday?"})
    assert _step(f"email {to} saying the deck is ready")[1]["to"] == [to]


@pytest.mark.parametrize("courtesy", [", please", " please", ", thanks", ", thank you!", " pls"])
def test_courtesy_at_the_end_is_not_part_of_any_argument(courtesy: str) -> None:
    assert _step(f"tell bob that the demo went well{courtesy}")[1] == {"to": "bob", "text": "the demo went well"}
    action, args = _step(f"create a task for devi to send the quote by Friday{courtesy}")
    assert action == "tickets.create" and args["due"] == "2026-11-27" and args["title"] == "send the quote"
    found = INTERPRETER.interpret(f"let carol know{courtesy}", CONTEXT, demo, ALICE)
    assert found.kind == "question" and found.param == "text"  # not a message saying "please"


@pytest.mark.parametrize("opener", ["could you", "can you", "would you please", "please", "could you please"])
def test_a_polite_request_is_the_request(opener: str) -> None:
    assert _step(f"{opener} move the Brightwater deal to negotiation?") == \
        ("crm.update_deal", {"deal": "Brightwater deal", "stage": "negotiation"})
    action, args = _step(f"{opener} create a follow-up for devi next Tuesday?")
    assert action == "tickets.create" and args["title"] == "Follow-up" and args["due"] == "2026-12-01"
    # "can you tell me which ...?" still asks
    assert _step(f"{opener} tell me which deals are in negotiation?")[0] == "crm.find_deals"
