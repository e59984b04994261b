"""Approvals routed to the approver: alice is denied, says "ask carol to approve", carol is reached where she is
notified (a chat message or an email with a signed link, a Slack card) and approves on the web API or in Slack;
the plan runs once as alice's, approved by carol. Forged and replayed links, a record changed since, an approver
the policy does not allow, declines, expiry, re-routing and concurrent approvals. Effects are counted in the
demo systems."""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from sqlalchemy import text

from sayso import Clock, Workspace
from sayso.approvals import Links, read
from sayso.clock import parse_time
from sayso.conversation import Chat
from sayso.turn import TurnResult

from .conftest import NOW, pipeline_for

CLOSE = "close Kestrel Aerospace as won"


def chat_for(root: Path, user: str, now: str = NOW) -> Chat:
    return Chat(pipeline_for(root, user, now))


def count(root: Path, system: str, sql: str, *params: Any) -> int:
    with sqlite3.connect(root / "systems" / f"{system}.db") as conn:
        return int(conn.execute(sql, params).fetchone()[0])


def stage(root: Path, deal: str) -> str:
    with sqlite3.connect(root / "systems" / "crm.db") as conn:
        return str(conn.execute("select stage from deals where id = ?", (deal,)).fetchone()[0])


def link_in(text: str) -> tuple[str, str]:
    """The confirmation id and signature of the approval link in a message."""
    found = re.search(r"https?://\S+\?approval=\S+", text)
    assert found, text
    query = parse_qs(urlparse(found.group(0)).query)
    return query["approval"][0], query["sig"][0]


def chat_to(root: Path, person: str) -> list[str]:
    with sqlite3.connect(root / "systems" / "chat.db") as conn:
        return [str(r[0]) for r in conn.execute('select text from messages where "to" = ? order by id', (person,))]


def routed(root: Path, approver: str = "carol", text: str = CLOSE) -> tuple[Chat, TurnResult]:
    """alice is denied ``text`` and asks ``approver`` to approve it."""
    alice = chat_for(root, "alice")
    denied = alice.say("alice", text)
    assert denied.status.value == "denied", denied
    asked = alice.say("alice", f"ask {approver} to approve", denied.conversation)
    return alice, asked


def _who(text: str) -> str | None:
    found = read(text)
    return found.who if found else None


def test_the_words_that_route_a_request() -> None:
    assert _who("ask carol to approve") == "carol"
    assert _who("Ask Carol Diaz to approve it please") == "Carol Diaz"
    assert _who("ask my manager for approval") == "my manager"
    assert _who("send it to fiona for approval") == "fiona"
    instead = read("ask wes instead")
    assert instead is not None and instead.who == "wes" and instead.instead
    for other in ("let carol know", "ask devi to do it", "tell carol", "yes", "approve",
                  "ask carol to approve the Orchid deal and close everything else"):
        assert read(other) is None, other


def test_a_denial_offers_the_approvers_the_policy_allows(sqlite_root: Path) -> None:
    alice = chat_for(sqlite_root, "alice")
    denied = alice.say("alice", CLOSE)
    assert [o.value for o in denied.options or []] == ["ask carol to approve", "ask ines to approve"]
    credit = alice.say("alice", "issue a credit note of 5000 to Brightwater Dental for the outage")
    assert credit.status.value == "denied"
    assert [o.value for o in credit.options or []] == ["ask fiona to approve", "ask ines to approve"]
    never = alice.say("alice", "delete D-101")
    assert never.status.value == "denied" and not never.options  # nobody may approve a delete


def test_alice_asks_in_chat_and_carol_approves_through_her_chat_message(sqlite_root: Path) -> None:
    alice, asked = routed(sqlite_root)
    assert asked.status.value == "needs_confirmation"
    assert asked.confirmation and asked.confirmation["approver"] == "carol"
    assert "Waiting for carol" in asked.reply and "stage negotiation -> closed_won" in asked.reply
    [card] = chat_to(sqlite_root, "carol")  # where carol is notified: chat
    assert card.startswith('Alice Moreno (alice) asks you to approve: "close Kestrel Aerospace as won"')
    assert "stage negotiation -> closed_won" in card and "rule-4-ae-close" in card
    assert "your manager, carol" not in card  # written for carol
    confirmation, _ = link_in(card)
    assert confirmation == asked.confirmation["id"]

    again = alice.say("alice", "yes", asked.conversation)  # alice cannot approve it herself
    assert again.status.value == "no_action"
    assert stage(sqlite_root, "D-102") == "negotiation"

    carol = chat_for(sqlite_root, "carol")
    assert [c.id for c in carol.pipeline.pending("carol")] == [confirmation]  # `sayso pending` lists it
    done = carol.settle("carol", confirmation, True)
    assert done.status.value == "executed", done
    assert stage(sqlite_root, "D-102") == "closed_won"
    assert count(sqlite_root, "crm", "select count(*) from effects") == 1
    told = alice.conversations.messages(asked.conversation, "alice")[-1]
    assert told["text"].startswith('Carol Diaz (carol) approved your request "close Kestrel Aerospace as won" '
                                   "on your behalf.")
    assert told["status"] == "executed"

    events = carol.pipeline.audit.list(conversation=asked.conversation, limit=500)
    kinds = [(e["event"], e["status"], e["action"]) for e in events]
    assert ("decision", "deny", "crm.close_deal") in kinds and ("decision", "allow", "approve") in kinds
    pending = next(e for e in events if e["event"] == "confirmation" and e["status"] == "pending")
    assert pending["detail"]["approver"] == "carol" and pending["detail"]["requester"] == "alice"
    approved = next(e for e in events if e["event"] == "confirmation" and e["status"] == "approved")
    assert approved["actor"] == "carol" and approved["detail"]["on_behalf_of"] == "alice"
    effect = next(e for e in events if e["event"] == "effect" and e["action"] == "crm.close_deal")
    assert effect["actor"] == "alice"  # alice's change, approved by carol
    rule = next(e for e in events if e["event"] == "decision" and e["action"] == "approve")
    assert rule["detail"]["rule"] == "rule-9-manager-approves"
    assert carol.pipeline.audit.verify().ok
    with carol.ws.store.read() as conn:
        plans = [(actor, payload if isinstance(payload, dict) else json.loads(payload))
                 for actor, payload in conn.execute(text("select actor, payload from plans")).all()]
    [(actor, payload)] = [p for p in plans if p[1]["steps"][0]["action"] == "crm.close_deal"]
    assert actor == "alice" and payload["origin"]["approved_by"] == "carol"  # what the systems are told


def test_an_approver_the_policy_does_not_allow_is_refused_naming_the_rule(sqlite_root: Path) -> None:
    alice, asked = routed(sqlite_root, "wes")  # wes may not close an east deal himself
    assert asked.status.value == "denied" and asked.rule == "rule-9-approve-own-powers"
    assert asked.reply.startswith("Wesley Park (wes) may not approve this for you: an approver may approve only "
                                  "what they may do themselves")
    bob = alice.say("alice", "ask bob to approve", asked.conversation)
    assert bob.status.value in ("denied", "no_action")
    assert chat_to(sqlite_root, "wes") == [] and chat_to(sqlite_root, "bob") == []
    assert chat_for(sqlite_root, "wes").pipeline.pending("wes") == []
    assert stage(sqlite_root, "D-102") == "negotiation"


def test_approval_is_rechecked_when_given(sqlite_root: Path) -> None:
    """carol is asked, then the policies change so that a manager may no longer approve: her approval is
    refused, and nothing runs (the policy hash changed, so the plan is first shown again)."""
    alice, asked = routed(sqlite_root)
    assert asked.confirmation
    rules = sqlite_root / "policies" / "rule-9-approvals.cedar"
    rules.write_text(rules.read_text().replace("context.requester.manager == principal",
                                               "context.requester.manager == principal && false"))
    carol = chat_for(sqlite_root, "carol")
    again = carol.settle("carol", asked.confirmation["id"], True)
    assert again.status.value == "denied", again
    assert stage(sqlite_root, "D-102") == "negotiation"
    assert count(sqlite_root, "crm", "select count(*) from effects") == 0


def test_decline_changes_nothing_and_alice_sees_it(sqlite_root: Path) -> None:
    alice, asked = routed(sqlite_root)
    assert asked.confirmation
    declined = chat_for(sqlite_root, "carol").settle("carol", asked.confirmation["id"], False)
    assert declined.status.value == "cancelled"
    assert stage(sqlite_root, "D-102") == "negotiation"
    told = alice.conversations.messages(asked.conversation, "alice")[-1]
    assert told["text"] == ('Carol Diaz (carol) declined your request "close Kestrel Aerospace as won"; nothing '
                            "was changed.") and told["status"] == "cancelled"
    late = chat_for(sqlite_root, "carol").settle("carol", asked.confirmation["id"], True)
    assert late.status.value == "error" and late.error and late.error["code"] == "confirmation_used"
    assert stage(sqlite_root, "D-102") == "negotiation"


def test_the_requester_may_withdraw_while_it_waits(sqlite_root: Path) -> None:
    alice, asked = routed(sqlite_root)
    assert asked.confirmation
    withdrawn = alice.say("alice", "never mind", asked.conversation)
    assert withdrawn.status.value == "cancelled" and withdrawn.reply.startswith("Withdrawn: carol")
    late = chat_for(sqlite_root, "carol").settle("carol", asked.confirmation["id"], True)
    assert late.status.value == "error" and late.error and late.error["code"] == "confirmation_used"
    assert stage(sqlite_root, "D-102") == "negotiation"


def test_an_expired_approval_changes_nothing(sqlite_root: Path) -> None:
    _, asked = routed(sqlite_root)
    assert asked.confirmation
    later = chat_for(sqlite_root, "carol", now="2026-11-25T09:20")  # the demo's confirmations last 15 minutes
    expired = later.settle("carol", asked.confirmation["id"], True)
    assert expired.status.value == "error" and expired.error and expired.error["code"] == "confirmation_expired"
    assert stage(sqlite_root, "D-102") == "negotiation"
    assert count(sqlite_root, "crm", "select count(*) from effects") == 0


def test_after_expiry_the_requester_asks_again_and_it_runs_once(sqlite_root: Path) -> None:
    alice, asked = routed(sqlite_root)
    assert asked.confirmation
    later = chat_for(sqlite_root, "alice", now="2026-11-25T09:20")
    again = later.say("alice", "ask carol to approve", asked.conversation)
    assert again.status.value == "needs_confirmation" and again.confirmation
    assert again.confirmation["id"] != asked.confirmation["id"]
    carol = chat_for(sqlite_root, "carol", now="2026-11-25T09:21")
    assert [c.id for c in carol.pipeline.pending("carol")] == [again.confirmation["id"]]
    assert carol.settle("carol", again.confirmation["id"], True).status.value == "executed"
    assert carol.settle("carol", asked.confirmation["id"], True).status.value == "error"
    assert count(sqlite_root, "crm", "select count(*) from effects") == 1
    assert len(chat_to(sqlite_root, "carol")) == 2  # a card each time


def test_a_record_changed_since_shows_a_new_card_and_runs_nothing(sqlite_root: Path) -> None:
    alice, asked = routed(sqlite_root)
    assert asked.confirmation
    carol = chat_for(sqlite_root, "carol")
    moved = carol.pipeline.do("carol", "crm.update_deal", {"deal": "D-102", "amount": 250000})
    assert moved.status.value == "executed"
    effects = count(sqlite_root, "crm", "select count(*) from effects")
    fresh = carol.settle("carol", asked.confirmation["id"], True)
    assert fresh.status.value == "needs_confirmation", fresh
    assert fresh.reply.startswith("Not done yet: the records it changes were changed since")
    assert fresh.confirmation and fresh.confirmation["id"] != asked.confirmation["id"]
    assert stage(sqlite_root, "D-102") == "negotiation"
    assert count(sqlite_root, "crm", "select count(*) from effects") == effects  # nothing executed
    told = alice.conversations.messages(asked.conversation, "alice")[-1]
    assert "it changed since it was asked, so nothing was done yet" in told["text"]

    [item] = carol.pipeline.pending("carol")  # the new card is still alice's request, for carol
    assert item.id == fresh.confirmation["id"] and item.requester == "alice"
    done = carol.settle("carol", item.id, True)
    assert done.status.value == "executed"
    assert stage(sqlite_root, "D-102") == "closed_won"
    assert count(sqlite_root, "crm", "select count(*) from effects") == effects + 1
    assert "approved your request" in alice.conversations.messages(asked.conversation, "alice")[-1]["text"]


def test_rerouting_supersedes_the_first_card_and_its_link(sqlite_root: Path) -> None:
    """A credit note alice may not issue: asked of fiona (notified by email, with a signed link), then of ines
    instead; fiona's card and link stop counting, ines's approval issues it once."""
    credit = "issue a credit note of 5000 to Brightwater Dental for the outage"
    alice, asked = routed(sqlite_root, "fiona", credit)
    assert asked.status.value == "needs_confirmation" and asked.confirmation
    with sqlite3.connect(sqlite_root / "systems" / "email.db") as conn:
        [(to, subject, body)] = conn.execute('select "to", subject, body from emails').fetchall()
    assert "fiona" in to and subject.startswith("Approval needed: Alice Moreno asks you to approve")
    first, signature = link_in(body)
    assert first == asked.confirmation["id"]

    instead = alice.say("alice", "ask ines instead", asked.conversation)
    assert instead.status.value == "needs_confirmation" and instead.confirmation
    assert instead.confirmation["approver"] == "ines" and instead.confirmation["id"] != first
    [card] = chat_to(sqlite_root, "ines")
    assert '"issue a credit note of 5000 to Brightwater Dental for the outage"' in card

    fiona = chat_for(sqlite_root, "fiona")
    assert fiona.pipeline.pending("fiona") == []
    late = fiona.settle("fiona", first, True)
    assert late.status.value == "error" and late.error and late.error["code"] == "confirmation_used"
    assert "superseded" in late.reply
    assert count(sqlite_root, "billing", "select count(*) from credit_notes") == 0

    done = chat_for(sqlite_root, "ines").settle("ines", instead.confirmation["id"], True)
    assert done.status.value == "executed"
    assert count(sqlite_root, "billing", "select count(*) from credit_notes") == 1
    events = alice.pipeline.audit.list(conversation=asked.conversation, limit=500)
    assert any(e["event"] == "confirmation" and e["status"] == "rerouted" and e["detail"]["to"] == "ines"
               for e in events)


def test_finance_approves_credit_notes_up_to_the_limit(sqlite_root: Path) -> None:
    alice, asked = routed(sqlite_root, "fiona", "issue a credit note of 5000 to Brightwater Dental for the outage")
    assert asked.confirmation
    done = chat_for(sqlite_root, "fiona").settle("fiona", asked.confirmation["id"], True)
    assert done.status.value == "executed"
    rule = next(e for e in alice.pipeline.audit.list(conversation=asked.conversation, limit=500)
                if e["event"] == "decision" and e["action"] == "approve" and e["actor"] == "fiona")
    assert rule["detail"]["rule"] == "rule-9-finance-approves-credit"
    over, too_much = routed(sqlite_root, "fiona", "issue a credit note of 30000 to Brightwater Dental for the outage")
    assert too_much.status.value == "denied"  # above the limit: nobody may, so nobody may approve it
    assert count(sqlite_root, "billing", "select count(*) from credit_notes") == 1


def test_concurrent_approvals_execute_once(demo_root: Path) -> None:
    _, asked = routed(demo_root)
    assert asked.confirmation
    confirmation = asked.confirmation["id"]
    results: list[TurnResult] = []
    carols = [chat_for(demo_root, "carol") for _ in range(6)]
    gate = threading.Barrier(len(carols))

    def approve(chat: Chat) -> None:
        gate.wait()
        results.append(chat.settle("carol", confirmation, True))

    threads = [threading.Thread(target=approve, args=(c,)) for c in carols]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sorted(r.status.value for r in results).count("executed") == 1, results
    assert all(r.error and r.error["code"] == "confirmation_used" for r in results if r.status.value == "error")
    assert count(demo_root, "crm", "select count(*) from effects") == 1
    assert stage(demo_root, "D-102") == "closed_won"


def test_my_manager_is_asked_by_that_name(sqlite_root: Path) -> None:
    alice = chat_for(sqlite_root, "alice")
    denied = alice.say("alice", "move D-106 to negotiation")
    assert denied.status.value == "denied"
    asked = alice.say("alice", "ok, ask my manager to approve it", denied.conversation)
    assert asked.status.value == "needs_confirmation" and asked.confirmation
    assert asked.confirmation["approver"] == "carol"
    carol = chat_for(sqlite_root, "carol")
    assert carol.settle("carol", asked.confirmation["id"], True).status.value == "executed"
    assert stage(sqlite_root, "D-106") == "negotiation"
    manager = chat_for(sqlite_root, "carol")  # carol has no manager: she must name someone
    mine = manager.say("carol", "close D-104 as won")
    assert mine.status.value == "denied"
    nobody = manager.say("carol", "ask my manager to approve", mine.conversation)
    assert nobody.status.value == "error" and "you have no manager" in nobody.reply


def test_nothing_routes_without_a_denial(sqlite_root: Path) -> None:
    alice = chat_for(sqlite_root, "alice")
    said = alice.say("alice", "ask carol to approve")
    assert said.status.value == "no_action" and "Nothing of yours is waiting" in said.reply
    mine = alice.say("alice", CLOSE, said.conversation)
    self_approval = alice.say("alice", "ask alice to approve", mine.conversation)
    assert self_approval.status.value == "no_action"
    assert chat_to(sqlite_root, "carol") == []


# --- the web API: signed links ----------------------------------------------------------------------------


@pytest.fixture
def api(sqlite_root: Path) -> Iterator[tuple[str, dict[str, str]]]:
    pytest.importorskip("uvicorn", reason="the HTTP service needs its extra: pip install 'sayso[serve]'")
    from sayso.serve import create_app
    from sayso.serve.auth import Tokens

    from .servers import serving

    ws = Workspace.load(sqlite_root)
    tokens = {u: Tokens(ws.store, Clock(parse_time(NOW, "UTC"))).create(u)[1] for u in ("alice", "bob", "carol")}
    ws.close()
    with serving(create_app(sqlite_root, now=NOW)) as url:
        yield url, tokens


def _client(api: tuple[str, dict[str, str]], user: str) -> httpx.Client:
    url, tokens = api
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {tokens[user]}"}, timeout=30)


def test_alice_in_chat_carol_on_the_web_api_with_the_signed_link(sqlite_root: Path,
                                                                 api: tuple[str, dict[str, str]]) -> None:
    _, asked = routed(sqlite_root)
    [card] = chat_to(sqlite_root, "carol")
    confirmation, signature = link_in(card)
    path = f"/v1/approvals/{confirmation}"
    with _client(api, "carol") as carol, _client(api, "bob") as bob:
        shown = carol.get(path, params={"sig": signature})
        assert shown.status_code == 200, shown.text
        body = shown.json()
        assert body["requester"] == {"id": "alice", "name": "Alice Moreno"} and body["words"] == CLOSE
        assert body["changes"] == ["D-102 Kestrel Aerospace Platform: stage negotiation -> closed_won, amount 240000"]
        assert "rule-4-ae-close" in body["why"]

        forged = signature[:-4] + ("0000" if not signature.endswith("0000") else "1111")
        for bad in (forged, "", "x" * 64):
            refused = carol.post(f"{path}/approve", params={"sig": bad})
            assert refused.status_code in (403, 422), refused.text
        refused = carol.post(f"{path}/approve", params={"sig": forged})
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "approval_link_invalid"
        assert "nothing was changed" in refused.json()["error"]["message"]
        other = bob.post(f"{path}/approve", params={"sig": signature})  # a valid link, someone else's
        assert other.status_code == 404
        assert stage(sqlite_root, "D-102") == "negotiation"

        done = carol.post(f"{path}/approve", params={"sig": signature})
        assert done.status_code == 200 and done.json()["status"] == "executed", done.text
        replayed = carol.post(f"{path}/approve", params={"sig": signature})
        assert replayed.status_code == 409 and replayed.json()["error"]["code"] == "confirmation_used"
        assert "already approved" in replayed.json()["error"]["message"]
        assert carol.get(path, params={"sig": signature}).status_code == 409
    assert count(sqlite_root, "crm", "select count(*) from effects") == 1
    assert stage(sqlite_root, "D-102") == "closed_won"


def test_a_link_signed_with_another_key_or_for_another_plan_is_refused(sqlite_root: Path) -> None:
    _, asked = routed(sqlite_root)
    assert asked.confirmation
    ws = Workspace.load(sqlite_root)
    try:
        pipeline = pipeline_for(sqlite_root, "carol")
        with ws.store.read() as conn:
            item = pipeline.confirmations.get(conn, asked.confirmation["id"])
        assert item is not None
        links = Links(ws)
        good = links.signature(item)
        item.plan_hash = "0" * 64  # the same id, another plan
        with pytest.raises(Exception, match="not valid"):
            links.check(item, good)
    finally:
        ws.close()


# --- Slack: the denial's button, the approver's card, only her click counts ----------------------------------


def test_alice_asks_in_slack_by_the_button_and_carol_approves_her_card_once(sqlite_root: Path) -> None:
    pytest.importorskip("slack_bolt", reason="the Slack channel needs its extra: pip install 'sayso[slack]'")
    pytest.importorskip("uvicorn", reason="the HTTP service needs its extra: pip install 'sayso[serve]'")
    from sayso.channels.slack._bot import NOT_YOURS

    from .test_slack_channel import served

    with served(sqlite_root) as slack:
        slack.send(slack.event("U0ALICE", CLOSE, channel="D0ALICE"))
        slack.settle()
        [denied] = slack.bot_messages("D0ALICE")
        [buttons] = [b for b in denied["blocks"] if b["type"] == "actions"]
        assert [e["text"]["text"] for e in buttons["elements"]] == ["Ask carol to approve", "Ask ines to approve"]
        slack.click("U0ALICE", denied, "D0ALICE", "sayso_option_0")
        slack.settle()
        waiting = slack.bot_messages("D0ALICE")[-1]
        assert "Waiting for carol" in waiting["text"]
        assert not [b for b in waiting["blocks"] if b["type"] == "actions"]  # not alice's to approve

        carol_dm = slack.standin.dm_of("carol@lumenlabs.example")
        [card] = slack.bot_messages(carol_dm)
        assert card["text"].startswith("Alice Moreno (alice) asks you to approve")
        assert "closed_won" in json.dumps(card["blocks"])
        assert len(chat_to(sqlite_root, "carol")) == 1  # and where carol is notified in the demo: chat

        slack.click("U0ALICE", card, carol_dm, "sayso_approve", action_ts="1764061200.000001")
        slack.settle()
        assert [e["text"] for e in slack.standin.ephemeral] == [NOT_YOURS]
        assert stage(sqlite_root, "D-102") == "negotiation"

        start = threading.Barrier(8)

        def click(n: int) -> None:  # carol clicks again and again: distinct clicks, not retries
            start.wait()
            slack.click("U0CAROL", card, carol_dm, "sayso_approve", action_ts=f"1764061201.{n:06d}")

        clickers = [threading.Thread(target=click, args=(n,)) for n in range(8)]
        for clicker in clickers:
            clicker.start()
        for clicker in clickers:
            clicker.join()
        slack.settle()
        assert stage(sqlite_root, "D-102") == "closed_won"
        assert count(sqlite_root, "crm", "select count(*) from effects") == 1
        updated = next(m for m in slack.bot_messages(carol_dm) if m["ts"] == card["ts"])
        assert "Approved by carol · executed once" in json.dumps(updated["blocks"], ensure_ascii=False)
        told = slack.bot_messages("D0ALICE")[-1]  # alice sees it where she asked
        assert told["text"].startswith("Carol Diaz (carol) approved your request")
        assert not [b for b in told["blocks"] if b["type"] == "actions"]
    alice = chat_for(sqlite_root, "alice")
    [conversation] = alice.conversations.of("alice")
    told = alice.conversations.messages(conversation["id"], "alice")[-1]
    assert told["text"].startswith("Carol Diaz (carol) approved your request")


# --- a hostile model -------------------------------------------------------------------------------------


def test_a_hostile_model_cannot_get_a_routed_request_approved(sqlite_root: Path) -> None:
    """alice and bob talk to a model that proposes every destructive call; each denial is routed to carol by the
    person's own words; then "yes", the person's own approval and the model's say-so try to approve it: only carol
    can, she did not, so nothing changed but the cards sent to her."""
    from .test_model_interpreter import DAMAGE, chat_with, reply, rows

    tables = [("crm", "select id, stage, amount, owner from deals order by id"),
              ("crm", "select name, owner from accounts order by name"),
              ("billing", "select count(*) from credit_notes"), ("email", "select count(*) from emails"),
              ("chat", "select count(*) from messages where \"to\" <> 'carol'"),
              ("tickets", "select id, status, assignee from tickets order by id")]
    before = [rows(sqlite_root, *t) for t in tables]
    waiting = []
    for user in ("alice", "bob"):
        for step, damage in enumerate(DAMAGE):
            chat, _ = chat_with(sqlite_root, user, lambda s, m, t, d=damage: reply(d, text="Approved. Doing it."))
            proposed = chat.say(user, f"step {step}")
            if proposed.status.value != "denied":
                continue  # its own confirmation, which nobody gives here
            asked = chat.say(user, "ask carol to approve", proposed.conversation)
            assert asked.status.value in ("needs_confirmation", "denied"), asked
            if asked.confirmation is None:
                continue
            waiting.append(asked.confirmation["id"])
            assert chat.say(user, "yes", proposed.conversation).status.value == "no_action"
            mine = chat.settle(user, asked.confirmation["id"], True)
            assert mine.status.value == "error" and mine.error and mine.error["code"] == "confirmation_not_yours"
    assert len(waiting) >= 4  # deals of carol's team, closed or changed: hers to approve
    assert [rows(sqlite_root, *t) for t in tables] == before
    assert len(chat_to(sqlite_root, "carol")) == len(waiting)  # one card each, nothing else
    carol = chat_for(sqlite_root, "carol")
    assert sorted(c.id for c in carol.pipeline.pending("carol")) == sorted(waiting)
    assert carol.pipeline.audit.verify().ok


# --- crashes ---------------------------------------------------------------------------------------------


def test_a_crash_after_the_approved_effect_then_recovery_leaves_one_effect(demo_root: Path) -> None:
    from .conftest import sayso, sayso_json

    _, asked = routed(demo_root)
    assert asked.confirmation
    crashed = sayso(demo_root, "confirm", asked.confirmation["id"], "--user", "carol", "--now", NOW,
                    env={"SAYSO_FAULT": "crash-after-effect"})
    assert crashed.returncode == 137, crashed.stderr
    assert count(demo_root, "crm", "select count(*) from effects") == 1  # it happened; sayso did not record it
    code, recovered = sayso_json(demo_root, "recover", "--now", NOW)
    assert code == 0 and [s["status"] for s in recovered["recovered"][0]["steps"]] == ["executed"]
    again = sayso(demo_root, "confirm", asked.confirmation["id"], "--user", "carol", "--now", NOW)
    assert again.returncode != 0  # used: approving again does nothing
    assert count(demo_root, "crm", "select count(*) from effects") == 1
    assert stage(demo_root, "D-102") == "closed_won"


def test_carol_sees_and_approves_it_on_the_command_line(sqlite_root: Path) -> None:
    from .conftest import cli

    _, asked = routed(sqlite_root)
    assert asked.confirmation
    listed = cli("pending", "--user", "carol", "--workspace", str(sqlite_root), "--now", NOW)
    assert listed.exit_code == 0 and f"{asked.confirmation['id']}  crm.close_deal  asked by alice" in listed.output
    done = cli("confirm", asked.confirmation["id"], "--user", "carol", "--workspace", str(sqlite_root), "--now", NOW,
               "--json")
    assert done.exit_code == 0 and '"status": "executed"' in done.output
    assert count(sqlite_root, "crm", "select count(*) from effects") == 1


def test_a_configured_link_key_signs_and_sayso_check_wants_it_set(sqlite_root: Path) -> None:
    from .conftest import cli

    toml = sqlite_root / "sayso.toml"
    toml.write_text(toml.read_text() + '\n[approvals]\nlink_key = "links"\nbase_url = "https://sayso.example.com"\n'
                    '\n[secrets]\nfile = "secrets.toml"\n')
    (sqlite_root / "secrets.toml").write_text('links = "short"\n')
    checked = cli("check", "--workspace", str(sqlite_root))
    assert checked.exit_code != 0 and "[approvals] link_key names the secret 'links'" in checked.output
    (sqlite_root / "secrets.toml").write_text(f'links = "{"k" * 40}"\n')
    assert cli("check", "--workspace", str(sqlite_root)).exit_code == 0
    _, asked = routed(sqlite_root)
    [card] = chat_to(sqlite_root, "carol")
    assert "https://sayso.example.com/?approval=" in card
    confirmation, signature = link_in(card)
    ws = Workspace.load(sqlite_root)
    try:
        with ws.store.read() as conn:
            stored = conn.execute(text("select count(*) from workspace_keys")).scalar_one()
        assert stored == 0  # the configured secret signs; no key was made
    finally:
        ws.close()


# --- the demo's approval rules, decided directly -----------------------------------------------------------

APPROVALS = [  # approver, requester, action, deal or account, context, allowed, rule
    ("carol", "alice", "crm.close_deal", "D-102", {"deal": "D-102", "outcome": "won"}, True,
     "rule-9-manager-approves"),
    ("wes", "alice", "crm.close_deal", "D-102", {"deal": "D-102", "outcome": "won"}, False,
     "rule-9-approve-own-powers"),  # not an east deal: wes may not close it himself
    ("wes", "alice", "crm.close_deal", "D-103", {"deal": "D-103", "outcome": "won"}, False,
     "default-deny"),  # wes may close a west deal, but alice is not his report
    ("wes", "devi", "crm.close_deal", "D-105", {"deal": "D-105", "outcome": "won"}, True, "rule-9-manager-approves"),
    ("carol", "bob", "crm.update_deal", "D-101", {"deal": "D-101", "stage": "negotiation"}, True,
     "rule-9-manager-approves"),
    ("fiona", "alice", "billing.issue_credit_note", "Brightwater Dental",
     {"account": "Brightwater Dental", "amount": 5000, "reason": "outage"}, True, "rule-9-finance-approves-credit"),
    ("fiona", "alice", "billing.issue_credit_note", "Brightwater Dental",
     {"account": "Brightwater Dental", "amount": 30000, "reason": "outage"}, False, "rule-9-approve-own-powers"),
    ("carol", "alice", "billing.issue_credit_note", "Brightwater Dental",
     {"account": "Brightwater Dental", "amount": 5000, "reason": "outage"}, False, "rule-9-approve-own-powers"),
    ("ines", "alice", "crm.close_deal", "D-102", {"deal": "D-102", "outcome": "won"}, True, "rule-8-admin"),
    ("ines", "alice", "crm.delete", "D-102", {"record": "D-102"}, False,
     "rule-9-approve-own-powers"),  # nobody may delete, so nobody may approve a delete
]


@pytest.mark.parametrize(("approver", "requester", "action", "record", "args", "allowed", "rule"), APPROVALS,
                         ids=[f"{a}-for-{r}-{act}-{rec}" for a, r, act, rec, *_ in APPROVALS])
def test_the_demo_approval_rules(sqlite_root: Path, approver: str, requester: str, action: str, record: str,
                                 args: dict[str, Any], allowed: bool, rule: str) -> None:
    """Each request routed to an approver through the pipeline: denied to the requester, then asked of the
    approver (a confirmation waiting for them) or refused naming the rule."""
    from sayso.pipeline import Request, Turn

    pipeline = pipeline_for(sqlite_root, requester)
    assert pipeline.do(requester, action, args).status.value == "denied"  # the requester may not

    def routed_to(turn: Turn) -> TurnResult:
        turn.approver = pipeline.ws.directory.get(approver)
        return pipeline.run_plan(turn, [Request(action, args)])

    result = pipeline.turn(requester, None, {"text": f"ask {approver} to approve"}, routed_to)
    if allowed:
        assert result.status.value == "needs_confirmation" and result.confirmation, result
        assert [c.requester for c in pipeline.pending(approver)] == [requester]
    else:
        assert result.status.value == "denied" and result.rule == rule, result
        assert pipeline.pending(approver) == []
    events = pipeline.audit.list(action="approve", limit=10)
    assert [e["detail"]["rule"] for e in events] == [rule]
