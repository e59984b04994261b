"""The web page in a real headless Chromium, against a real Uvicorn server on the demo workspace.

Playwright never downloads a browser here: it drives the system's Chromium
(``apt-get install chromium``), and the tests skip, saying why, without it.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sayso import Clock, Workspace

from .conftest import NOW, R
from .servers import serving

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = shutil.which("chromium")
TIMEOUT_MS = 30_000  # generous: a turn runs the whole pipeline, and CI machines are slow
XSS = "<img src=x onerror=alert(1)>"


def _why_skip() -> str | None:
    if CHROMIUM is None:
        return "chromium is not installed (apt-get install chromium); Playwright must not download one"
    if importlib.util.find_spec("playwright") is None:
        return "playwright is not installed (pip install 'sayso[test]')"
    try:
        importlib.import_module("sayso.serve").create_app  # noqa: B018 - the check is the attribute lookup
    except (ImportError, AttributeError) as exc:
        return f"sayso.serve.create_app is not importable yet ({exc})"
    try:
        importlib.import_module("sayso.serve.auth").Tokens  # noqa: B018
    except (ImportError, AttributeError) as exc:
        return f"sayso.serve.auth.Tokens is not importable yet ({exc})"
    return None


pytestmark = pytest.mark.skipif(_why_skip() is not None, reason=_why_skip() or "")


@dataclass
class Site:
    root: Path
    url: str
    tokens: dict[str, str]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The demo workspace served by Uvicorn in a thread, with a token for carol and one for alice."""
    from sayso.serve import create_app
    from sayso.serve.auth import Tokens

    root = Workspace.init(tmp_path_factory.mktemp("web") / "ws", demo=True, reference=R)
    ws = Workspace.load(root)
    try:
        tokens = Tokens(ws.store, Clock.from_option(NOW, "America/New_York"))
        issued = {user: tokens.create(user, days=0, label="web test")[1] for user in ("carol", "alice")}
    finally:
        ws.close()

    with serving(create_app(root, now=NOW)) as url:
        yield Site(root, url, issued)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any, site: Site) -> Iterator[Any]:
    """A fresh page (its own sessionStorage) that fails the test on any script error or dialog."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    problems: list[str] = []
    tab.on("pageerror", lambda exc: problems.append(f"script error: {exc}"))

    def on_dialog(dialog: Any) -> None:
        problems.append(f"dialog: {dialog.message}")
        dialog.dismiss()

    tab.on("dialog", on_dialog)
    tab.goto(site.url)
    try:
        yield tab
    finally:
        context.close()
    assert problems == []


def _sign_in(page: Any, token: str, name: str) -> None:
    """Sign in with the keyboard alone: the token field, then Enter."""
    from playwright.sync_api import expect

    field = page.get_by_label("Access token")
    field.focus()
    page.keyboard.type(token)
    page.keyboard.press("Enter")
    expect(page.locator("#who")).to_contain_text(name)
    expect(page.get_by_label("Message")).to_be_focused()


def _new_conversation(page: Any) -> None:
    from playwright.sync_api import expect

    page.get_by_role("button", name="New conversation").click()
    expect(page.get_by_role("heading", name="New conversation")).to_be_visible()
    expect(page.locator("#messages > li")).to_have_count(0)
    expect(page.locator("#conversation-list button[aria-current='true']")).to_have_count(1)


def _say(page: Any, text: str) -> Any:
    """Type a message and press Enter; returns the locator of sayso's reply to it."""
    from playwright.sync_api import expect

    replies = page.locator("#messages > li.sayso")
    before = replies.count()
    box = page.get_by_label("Message")
    box.focus()
    page.keyboard.type(text)
    page.keyboard.press("Enter")
    expect(replies).to_have_count(before + 1)
    return replies.nth(before)


def _screenshot(page: Any, name: str) -> None:
    """A picture of the page in tests/artifacts/, for people reviewing a change."""
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / name
    shot.unlink(missing_ok=True)
    page.screenshot(path=str(shot), full_page=True)
    assert shot.is_file() and shot.stat().st_size > 0


def _crm(root: Path, query: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(root / "systems" / "crm.db")) as conn:
        return conn.execute(query).fetchall()


def test_carol_confirms_a_close_and_the_timeline_shows_rule_and_effect(page: Any, site: Site) -> None:
    from playwright.sync_api import expect

    _sign_in(page, site.tokens["carol"], "Carol")
    _new_conversation(page)

    asked = _say(page, "close Kestrel Aerospace as won")
    expect(asked).to_have_attribute("data-status", "needs_confirmation")
    card = asked.locator(".card")
    expect(card.locator(".step")).to_have_text("Close a deal as won or lost: deal D-102, outcome won (high risk)")
    expect(card).not_to_contain_text("crm.close_deal")  # action names stay in the API's fields
    expect(card.locator(".changes li")).to_contain_text(
        "D-102 Kestrel Aerospace Platform: stage negotiation → closed_won")
    assert _crm(site.root, "SELECT stage FROM deals WHERE id = 'D-102'") == [("negotiation",)]

    _screenshot(page, "web-confirmation.png")

    page.reload()  # the stored conversation comes back with the card still waiting
    card = page.locator("#messages .card").last
    expect(card).to_contain_text("stage negotiation → closed_won")
    card.get_by_role("button", name="Approve").click()
    done = page.locator("#messages > li.sayso").last
    expect(done).to_have_attribute("data-status", "executed")
    expect(done).to_contain_text("executed")
    expect(done).to_contain_text("Done")
    expect(card.get_by_role("button", name="Approve")).to_be_disabled()
    expect(card.locator(".outcome")).to_have_text(re.compile("You approved this.|Approved by carol."))

    timeline = page.locator("#timeline")
    expect(timeline.locator("li[data-event='decision']").first).to_contain_text("rule-5-manager-deals")
    expect(timeline.locator("li[data-event='confirmation']").last).to_contain_text("approved by carol")
    expect(timeline.locator("li[data-event='effect']")).to_contain_text(
        "in crm: D-102 stage negotiation -> closed_won")
    expect(timeline.locator("li[data-event='turn']").first).to_contain_text("close Kestrel Aerospace as won")

    page.reload()  # after a reload the settled card no longer offers its buttons, and says who approved
    card = page.locator("#messages .card").last
    expect(card.locator(".outcome")).to_have_text("Approved by carol.")
    expect(card.get_by_role("button", name="Approve")).to_be_disabled()

    # Counted in the target system, not in sayso's own log: one close, one effect.
    assert _crm(site.root, "SELECT stage FROM deals WHERE id = 'D-102'") == [("closed_won",)]
    assert _crm(site.root, "SELECT count(*) FROM effects WHERE operation = 'close_deal'") == [(1,)]


def test_a_correction_replaces_the_card_and_says_so(page: Any, site: Site) -> None:
    from playwright.sync_api import expect

    _sign_in(page, site.tokens["carol"], "Carol")
    _new_conversation(page)
    asked = _say(page, "close the Meridian deal as won")
    first = asked.locator(".card")
    expect(first.get_by_role("button", name="Approve")).to_be_enabled()
    changed = _say(page, "actually make it lost")
    expect(changed).to_have_attribute("data-status", "needs_confirmation")
    card = changed.locator(".card")
    expect(card.locator(".changed")).to_have_text("Changed the outcome from won to lost.")
    expect(card.locator(".changes li")).to_contain_text("stage proposal → closed_lost")
    expect(first.get_by_role("button", name="Approve")).to_be_disabled()
    expect(first.locator(".outcome")).to_have_text("Replaced by a changed request: use the newest card.")
    expect(page.locator("#timeline li[data-event='confirmation']")).to_contain_text(["superseded"])
    # The conversation is labelled by its first request; the activity shows its newest entry.
    expect(page.locator("#conversation-list button[aria-current='true'] .title")).to_have_text(
        "close the Meridian deal as won")
    expect(page.locator("#chat-heading")).to_have_text("close the Meridian deal as won")  # not "Conversation"
    at_end = "(() => { const t = document.getElementById('timeline'); " \
             "return t.scrollTop + t.clientHeight >= t.scrollHeight - 2; })()"
    assert page.evaluate(at_end)
    _screenshot(page, "web-correction.png")

    page.reload()  # the replaced card still says why it cannot be used; the new one can be answered
    first = page.locator("#messages .card").first
    expect(first.locator(".outcome")).to_have_text("Replaced by a changed request: use the newest card.")
    expect(page.get_by_role("heading", name="close the Meridian deal as won")).to_be_visible()
    page.locator("#messages .card").last.get_by_role("button", name="Decline").click()
    expect(page.locator("#messages > li.sayso").last).to_have_attribute("data-status", "cancelled")
    assert _crm(site.root, "SELECT stage FROM deals WHERE id = 'D-106'") == [("proposal",)]  # neither card ran


def test_a_read_is_a_table_and_conversations_belong_to_their_person(page: Any, site: Site) -> None:
    from playwright.sync_api import expect

    _sign_in(page, site.tokens["alice"], "Alice")
    answer = _say(page, "which of my deals close in the next 30 days?")
    expect(answer).to_have_attribute("data-status", "answered")
    table = answer.locator("table")
    expect(table.locator("caption")).to_contain_text("Found 1 deal")
    expect(table.locator("thead th")).to_contain_text(["id", "title", "account", "amount", "stage", "close date"])
    expect(table.locator("tbody tr")).to_have_count(1)
    expect(table.locator("tbody tr").first).to_contain_text("Brightwater Expansion")
    expect(table.locator("thead")).not_to_contain_text("words")
    # The first message started the conversation, and titles it.
    expect(page.locator("#chat-heading")).to_have_text("which of my deals close in the next 30 days?")

    _screenshot(page, "web-chat.png")

    # Signing out forgets the token; carol signing in sees none of alice's conversations.
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("Access token")).to_be_focused()
    assert page.evaluate("sessionStorage.getItem('sayso.token')") is None
    _sign_in(page, site.tokens["carol"], "Carol")
    expect(page.locator("#messages")).not_to_contain_text("Brightwater Expansion")
    expect(page.locator("#chat-heading")).not_to_have_text("which of my deals close in the next 30 days?")


def test_options_decline_denial_and_errors_by_keyboard(page: Any, site: Site) -> None:
    from playwright.sync_api import expect

    _sign_in(page, site.tokens["alice"], "Alice")
    _new_conversation(page)
    question = _say(page, "close the Brightwater deal")
    expect(question).to_have_attribute("data-status", "needs_clarification")
    expect(question).to_contain_text("Which outcome")
    lost = question.get_by_role("button", name="lost")
    lost.focus()
    page.keyboard.press("Enter")  # sends the option's value as the next message
    expect(page.locator("#messages > li.person").last).to_have_text(re.compile(r"lost$"))
    asked = page.locator("#messages > li.sayso").last
    expect(asked).to_have_attribute("data-status", "needs_confirmation")
    expect(asked.locator(".changes li")).to_contain_text("D-101 Brightwater Expansion: stage proposal → closed_lost")
    asked.get_by_role("button", name="Decline").focus()
    page.keyboard.press("Space")
    cancelled = page.locator("#messages > li.sayso").last
    expect(cancelled).to_have_attribute("data-status", "cancelled")
    expect(page.locator("#timeline li[data-event='confirmation']").last).to_contain_text("declined by alice")
    assert _crm(site.root, "SELECT stage FROM deals WHERE id = 'D-101'") == [("proposal",)]

    denied = _say(page, "close Kestrel Aerospace as won")
    expect(denied).to_have_attribute("data-status", "denied")
    expect(denied.locator(".rule")).to_have_text("Rule: rule-4-ae-close")
    expect(page.locator("#timeline li[data-event='decision']").last).to_contain_text("deny by rule rule-4-ae-close")

    failed = _say(page, "move the contract to negotiation")  # an error turn is shown, not lost
    expect(failed).to_have_attribute("data-status", "error")
    expect(failed.locator(".rule")).to_contain_text("Error: ")


def test_text_from_people_is_text_never_markup(page: Any, site: Site) -> None:
    from playwright.sync_api import expect

    _sign_in(page, site.tokens["carol"], "Carol")
    _new_conversation(page)
    _say(page, XSS)
    mine = page.locator("#messages > li.person").last
    expect(mine.locator(".text")).to_have_text(XSS)
    expect(page.locator("#timeline li[data-event='turn']").first).to_contain_text(XSS)
    assert page.locator("img").count() == 0

    page.reload()  # the stored conversation is rendered as text too
    expect(page.locator("#messages > li.person").last.locator(".text")).to_have_text(XSS)
    assert page.locator("img").count() == 0


def test_a_bad_token_is_refused(page: Any) -> None:
    from playwright.sync_api import expect

    page.get_by_label("Access token").fill("sayso_" + "x" * 43)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#notice")).to_contain_text("That token was not accepted.")
    expect(page.locator("#app")).to_be_hidden()


def test_an_approval_routed_to_carol_by_the_button_and_approved_from_her_link(page: Any, browser: Any,
                                                                             site: Site) -> None:
    """alice is denied, presses "Ask carol to approve"; carol opens the signed link of the message she got,
    signs in and approves on the card; alice sees the outcome in her conversation."""
    from urllib.parse import parse_qs, urlparse

    from playwright.sync_api import expect

    _sign_in(page, site.tokens["alice"], "Alice")
    _new_conversation(page)
    denied = _say(page, "move D-106 to negotiation")
    expect(denied).to_have_attribute("data-status", "denied")
    denied.get_by_role("button", name="Ask carol to approve").click()
    waiting = page.locator("#messages > li.sayso").last
    expect(waiting).to_have_attribute("data-status", "needs_confirmation")
    expect(waiting).to_contain_text("Waiting for carol.")
    expect(waiting.get_by_role("button", name="Approve")).to_have_count(0)  # carol's to give, not alice's

    with closing(sqlite3.connect(site.root / "systems" / "chat.db")) as conn:
        [(text,)] = conn.execute("""select text from messages where "to" = 'carol' and text like '%approval=%'
                                    order by id desc limit 1""").fetchall()
    link = parse_qs(urlparse(re.search(r"https?://\S+", text).group(0)).query)  # type: ignore[union-attr]
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        carol = context.new_page()
        carol.goto(f"{site.url}/?approval={link['approval'][0]}&sig={link['sig'][0]}")
        _sign_in(carol, site.tokens["carol"], "Carol")
        card = carol.locator("#messages .card[data-approval]")
        expect(card).to_contain_text("Alice Moreno asks you to approve")
        expect(card).to_contain_text("move D-106 to negotiation")
        expect(card.locator(".changes li")).to_contain_text("D-106 Meridian Core Add-on: stage proposal -> negotiation")
        card.get_by_role("button", name="Approve").click()
        expect(card.locator(".outcome")).to_contain_text("Done")
        assert _crm(site.root, "SELECT stage FROM deals WHERE id = 'D-106'") == [("negotiation",)]
        card.get_by_role("button", name="Approve").is_disabled()
    finally:
        context.close()
    page.reload()
    expect(page.locator("#messages > li.sayso").last).to_contain_text(
        "Carol Diaz (carol) approved your request \"move D-106 to negotiation\" on your behalf.")
