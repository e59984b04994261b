"""Approvals routed to the approver: "ask carol to approve" after a denial.

When the policy denies a request but names someone who may do it ("your manager, carol, may do this"), the
requester can ask that person to approve it. That makes a *routed confirmation*: a confirmation of the exact
plan, given by the approver, for the requester (``confirmations.approver`` is carol, ``requester`` alice), kept
with who asked, in which words and why it needs the approver (table ``approvals``). The requester's turn ends
``needs_confirmation``, waiting for carol; "ask wes instead" re-routes it (the first one is superseded).

The approver is reached where they are notified (``sayso.notify``: a chat message or an email, sent as the
requester's own message, through the pipeline), with a link to the web page signed with the workspace's key
(``Links``), and, when the workspace has a Slack app, a card with Approve / Decline in their direct messages.

Who may approve what is policy (``Action::"approve"``, ``decide_approval``), re-checked when the approver
answers; the approved plan runs once, as the requester's, "approved by carol on behalf of alice", and the
requester sees the outcome in the conversation they asked in.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from . import reply as replies
from .catalog import Catalog
from .confirmation import Confirmation, Confirmations
from .connectors import Change
from .directory import Directory, Person
from .errors import ApprovalLinkInvalid, ConfirmationError, SaysoError, UnknownUser, WorkspaceError
from .notify import notification
from .policy import Decision, Entity
from .policy_schema import APPROVE
from .store import schema
from .turn import Option, TurnResult, TurnStatus
from .words import read as read_words
from .workspace import Workspace

if TYPE_CHECKING:
    from .conversation import Chat, ConversationState
    from .pipeline import Pipeline, Turn

__all__ = ["Ask", "Links", "approvers", "by_link", "card", "decide_approval", "read", "route", "settled"]

log = logging.getLogger("sayso")

_WHO = r"(?P<who>my manager|@?[\w.@'-]+(?: [\w.'-]+)?)"
_TAIL = r"(?:\s+(?P<instead>instead))?[\s.!]*(?:please|thanks|thank you)?[\s.!]*$"
_ASK = re.compile(r"^(?:(?:ok(?:ay)?|then|please|so)[\s,]+)*(?:"
                  r"(?:ask|get|have)\s+" + _WHO + r"\s+(?:to\s+(?:approve|sign off on)(?:\s+(?:it|this|that))?"
                  r"|for\s+(?:(?:an?|his|her|their|the)\s+)?(?:approval|sign[- ]?off))"
                  r"|(?:send|route|forward|take)\s+(?:it|this|that)\s+to\s+" + _WHO.replace("who", "who2") +
                  r"\s+(?:for\s+(?:approval|sign[- ]?off)|to\s+approve)"
                  r"|(?:ask|try|route it to|send it to)\s+" + _WHO.replace("who", "who3") + r"(?=\s+instead)"
                  r")" + _TAIL, re.I)
_LINK_KEY = "approval_links"
_OFFERED = 3
_CANDIDATES = 10  # of those who could do it, how many are asked whether they may approve it (two checks each)


@dataclass(frozen=True)
class Ask:
    """ "ask carol to approve": who is asked, and whether it replaces the one asked before ("instead")."""

    who: str
    instead: bool = False


def read(text: str) -> Ask | None:
    """The approver a message asks for, when it is one of these requests; None otherwise."""
    said = text.strip()
    if len(said) > 80:
        return None
    found = _ASK.match(said)
    if found is None:
        return None
    who = found.group("who") or found.group("who2") or found.group("who3")
    return Ask(who.strip(), bool(found.group("instead")))


def decide_approval(ws: Workspace, *, approver: Person, requester: Person, action: str, resource: Entity,
                    context: dict[str, Any], explain: bool = True) -> Decision:
    """May ``approver`` approve ``action`` on ``resource`` for ``requester``? ``Action::"approve"`` over the same
    resource, its context the request's arguments plus what is asked, for whom, and whether the approver may do
    it themselves (decided now, by the same policies)."""
    own = ws.policies.decide(principal=approver, action=action, resource=resource, context=context,
                             directory=ws.directory, explain=False)
    asked = {**context, "request_action": action, "requester": Entity("User", requester.id),
             "approver_may": own.allowed}
    return ws.policies.decide(principal=approver, action=APPROVE, resource=resource, context=asked,
                              directory=ws.directory, explain=explain)


def approvers(ws: Workspace, *, requester: Person, action: str, resource: Entity, context: dict[str, Any],
              could: tuple[str, ...]) -> list[Option]:
    """ "Ask carol to approve" for a denied request: the people who may do it (their manager first) and whom the
    policy lets approve it for the requester now, at most three."""
    people = [p for p in dict.fromkeys(([requester.manager] if requester.manager in could else []) + list(could))
              if p and p != requester.id and p in ws.directory][:_CANDIDATES]
    found: list[Option] = []
    for person in people:
        if len(found) == _OFFERED:
            break
        if decide_approval(ws, approver=ws.directory.get(person), requester=requester, action=action,
                           resource=resource, context=context, explain=False).allowed:
            found.append(Option(label=f"Ask {person} to approve", value=f"ask {person} to approve"))
    return found


# --- signed links -------------------------------------------------------------------------------------------


class Links:
    """Links to the web page that carry an HMAC-SHA256 of the confirmation's id, its approver, its plan's hash
    and its expiry, with the workspace's key: the secret ``[approvals] link_key`` names, else a random key made
    once and kept in the state database (so every process signs alike)."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def _key(self) -> bytes:
        name = self.ws.settings.approvals.link_key
        if name is not None:
            value = self.ws.secrets.get(name)
            if not value:
                raise WorkspaceError(f"[approvals] link_key names the secret {name!r}, which is not set "
                                     "(environment or secrets file)", file=str(self.ws.root / "sayso.toml"))
            return value.encode()
        table = schema.workspace_keys
        with self.ws.store.read() as conn:
            found = conn.execute(select(table.c.value).where(table.c.name == _LINK_KEY)).scalar()
        if found is None:
            try:
                with self.ws.store.write() as conn:
                    conn.execute(insert(table).values(name=_LINK_KEY, value=secrets.token_hex(32)))
            except IntegrityError:  # another process made it first: theirs is the key
                pass
            with self.ws.store.read() as conn:
                found = conn.execute(select(table.c.value).where(table.c.name == _LINK_KEY)).scalar_one()
        return str(found).encode()

    def signature(self, item: Confirmation) -> str:
        bound = "\n".join([item.id, item.approver, item.plan_hash, item.expires_at.isoformat()])
        return hmac.new(self._key(), bound.encode(), hashlib.sha256).hexdigest()

    def url(self, item: Confirmation) -> str:
        base = self.ws.settings.approvals.base_url.rstrip("/") + "/"
        return f"{base}?{urlencode({'approval': item.id, 'sig': self.signature(item)})}"

    def check(self, item: Confirmation | None, signature: str) -> Confirmation:
        """The confirmation a link names, when its signature is sayso's for it as it is now; refused
        (``approval_link_invalid``) otherwise: a forged link, or one for another approver, plan or expiry."""
        if item is None or not isinstance(signature, str) or not hmac.compare_digest(
                self.signature(item), signature[:128]):
            raise ApprovalLinkInvalid("this approval link is not valid: it was not made by sayso for this "
                                      "request; nothing was changed")
        return item


def by_link(ws: Workspace, confirmations: Confirmations, confirmation: str, signature: str,
            person: Person) -> dict[str, Any]:
    """The card an approval link shows ``person``, when the link is sayso's, theirs, and still usable: a link
    for someone else's (or no) confirmation reads as unknown; a forged one is refused; a used, re-routed or
    expired one says so. Nothing is changed either way."""
    with ws.store.read() as conn:
        item = confirmations.get(conn, confirmation) if isinstance(confirmation, str) and len(
            confirmation) <= 64 else None
        routed = conn.execute(select(schema.approvals.c.confirmation).where(
            schema.approvals.c.confirmation == confirmation)).first() is not None
    if item is None or item.approver != person.id or not routed:
        raise ConfirmationError(f"no confirmation {confirmation!r}", code="confirmation_unknown")
    Links(ws).check(item, signature)
    with ws.store.read() as conn:
        confirmations.usable(conn, confirmation, person.id)  # used, re-routed or expired: it says which
    return card(ws, item)


# --- the routing ----------------------------------------------------------------------------------------------


def _approver(who: str, person: Person, directory: Directory) -> Person:
    if who.lower() == "my manager":
        if person.manager is None or person.manager not in directory:
            raise UnknownUser("you have no manager in the directory; name the person to ask")
        return directory.get(person.manager)
    return directory.resolve(who)


def route(chat: Chat, turn: Turn, state: ConversationState, text: str) -> TurnResult | None:
    """ "ask carol to approve" (or "ask wes instead"): the denied request routed to an approver; None for any
    other message."""
    ask = read(text)
    if ask is None:
        if state.routed and state.pending is None:
            said = read_words(text)
            if said is not None and said.kind == "decline":
                return _withdraw(chat.pipeline, turn, state)
        return None
    if ask.instead and not state.routed and not re.search(r"approv|sign", text, re.I):
        return None  # "ask wes instead" with nothing routed: not about an approval (a delegation, say)
    pipeline, ws, person = chat.pipeline, chat.ws, turn.person
    approver = _approver(ask.who, person, ws.directory)
    store, table = ws.store, schema.approvals
    previous = None
    if state.routed:
        with store.read() as conn:
            item = pipeline.confirmations.get(conn, state.routed)
            row = conn.execute(select(table).where(table.c.confirmation == state.routed)).first()
        if item is not None and row is not None and item.status == "pending":
            previous = (item, row)
    denied = state.last_denied if (state.last_request or {}).get("status") == TurnStatus.DENIED.value else None
    if approver.id == person.id:
        return _say(pipeline, turn, TurnStatus.NO_ACTION, "You cannot approve your own request: ask someone who may.")
    if previous is not None and (ask.instead or denied is None):
        if previous[0].approver == approver.id and previous[0].expires_at > pipeline.clock.now():
            return _say(pipeline, turn, TurnStatus.NO_ACTION,
                        f"It is already waiting for {approver.name} ({approver.id}).")
        steps = [{"action": s["action"], "args": s["args"]} for s in previous[0].plan["steps"]]
        words, replaces = str(previous[1].words), previous[0]
    elif denied is not None and denied.get("steps"):
        steps, words, replaces = list(denied["steps"]), str(denied["text"]), None
    else:
        return _say(pipeline, turn, TurnStatus.NO_ACTION, "Nothing of yours is waiting for someone's approval: "
                    "ask for something first, and if it is not yours to do, ask who may to approve it.")
    if replaces is not None:  # the first approver's card and link stop counting before the new one is made
        try:
            with store.write() as conn:
                pipeline.confirmations.settle(conn, replaces, "superseded")
                pipeline.audit.append(conn, [turn.event("confirmation", "rerouted",
                                                        replaces.plan["steps"][0]["action"], id=replaces.id,
                                                        approver=replaces.approver, to=approver.id)])
        except ConfirmationError:  # answered a moment ago: its outcome is in this conversation
            state.routed = None
            return _say(pipeline, turn, TurnStatus.NO_ACTION, f"{replaces.approver} has just answered it; "
                        "nothing was asked of anyone else.")
        state.routed = None
    from .pipeline import Request  # the pipeline imports this module's decide_approval: imported here

    turn.approver = approver
    turn.request = {"text": text, "words": words, "approver": approver.id}
    result = pipeline.run_plan(turn, [Request(s["action"], s["args"]) for s in steps])
    if result.status is TurnStatus.DENIED:
        result.reply = (f"{approver.name} ({approver.id}) may not approve this for you: "
                        f"{result.reply.removeprefix('Not done: ')}")
        return result
    if result.status is not TurnStatus.NEEDS_CONFIRMATION or not result.confirmation:
        return result  # allowed by now, or a question: the usual outcome
    with store.read() as conn:
        item = pipeline.confirmations.get(conn, str(result.confirmation["id"]))
    assert item is not None
    why = _for_approver(str(denied["reply"])) if denied and replaces is None else str(
        previous[1].why if previous else "")
    with store.write() as conn:
        conn.execute(insert(table).values(
            confirmation=item.id, requester=person.id, approver=approver.id, conversation=turn.conversation,
            words=words[:4000], why=why[:2000], rule=str((denied or {}).get("rule") or (
                previous[1].rule if previous else "")), replaces=replaces.id if replaces else None,
            created_at=pipeline.clock.now().isoformat()))
    state.routed, state.pending = item.id, None
    shown = card(ws, item)
    _notify(pipeline, turn, item, shown)
    result.confirmation = {**result.confirmation, "approver": approver.id, "requester": person.id}
    result.reply = (f"Asked {approver.name} ({approver.id}) to approve it: \"{words[:200]}\"\n"
                    + "\n".join(_change_lines(shown)) +
                    f"\nWaiting for {approver.id}; you will see the outcome here "
                    f"(it expires {item.expires_at.isoformat()}).")
    return result


def _withdraw(pipeline: Pipeline, turn: Turn, state: ConversationState) -> TurnResult | None:
    """ "never mind" while a request waits for its approver: the requester takes it back; their card and link
    stop counting. None when it is no longer waiting (the words are then read as usual)."""
    with pipeline.ws.store.write() as conn:
        item = pipeline.confirmations.get(conn, state.routed or "")
        if item is None or item.status != "pending":
            state.routed = None
            return None
        pipeline.confirmations.settle(conn, item, "cancelled")
        action = item.plan["steps"][0]["action"]
        pipeline.audit.append(conn, [turn.event("turn", "received", request=turn.request),
                                     turn.event("confirmation", "withdrawn", action, id=item.id,
                                                approver=item.approver),
                                     turn.event("turn", TurnStatus.CANCELLED.value, action)])
    state.routed = None
    return TurnResult(status=TurnStatus.CANCELLED, reply=f"Withdrawn: {item.approver} can no longer approve it; "
                      "nothing was changed.")


def _for_approver(reason: str) -> str:
    """A denial as the approver reads it: the rule, without who else could."""
    reason = reason.removeprefix("Not done: ")
    return re.sub(r";\s*(?:your manager, [\w.@-]+, may do this|[\w.@, -]+ could|nobody may do this through sayso)"
                  r"(?=\.?\s*\(rule)", "", reason)


def _say(pipeline: Pipeline, turn: Turn, status: TurnStatus, reply: str) -> TurnResult:
    pipeline.close(turn, [turn.event("turn", "received", request=turn.request), *turn.prelude,
                          turn.event("turn", status.value)])
    return TurnResult(status=status, reply=reply)


def _notify(pipeline: Pipeline, turn: Turn, item: Confirmation, shown: dict[str, Any]) -> None:
    """The card reaches the approver where they are notified: as the requester's own message (chat or email,
    through the pipeline: policy, executor, audit), and on Slack with buttons when the workspace has the app."""
    ws = pipeline.ws
    approver = ws.directory.get(item.approver)
    link = Links(ws).url(item)
    text = card_text(shown) + f"\nApprove or decline: {link}\n(or `sayso confirm {item.id}`; expires " \
                              f"{item.expires_at.isoformat()})"
    action, args = notification(approver, text[:3900], ws.catalog,
                                subject=f"Approval needed: {shown['requester']['name']} asks you to approve")
    said = f"asked {approver.id} to approve {item.id}"
    sent = pipeline.do(turn.person.id, action, args, conversation=turn.conversation, said=said,
                       turn_id="t_" + hashlib.sha256(item.id.encode()).hexdigest()[:16])
    if sent.status is not TurnStatus.EXECUTED:
        log.warning("the approval card for %s could not be sent: %s", item.id, sent.reply)
    if "slack" in ws.settings.channels:
        try:
            from .channels.slack import notify_approver

            notify_approver(ws, approver, card_text(shown), {"id": item.id,
                                                             "expires_at": item.expires_at.isoformat()})
        except SaysoError as exc:  # the card went by chat or email already; Slack is a second way
            log.warning("the approval card for %s did not reach Slack: %s", item.id, exc.message)


def _change_lines(shown: dict[str, Any]) -> list[str]:
    lines = [f"- {s['label']}: {s['args']}" for s in shown["steps"]]
    return lines + [f"  {c}" for c in shown["changes"]]


def card(ws: Workspace, item: Confirmation) -> dict[str, Any]:
    """What the approver is shown: who asked, their words, the exact change, why it needs the approver."""
    with ws.store.read() as conn:
        row = conn.execute(select(schema.approvals).where(schema.approvals.c.confirmation == item.id)).first()
    requester = ws.directory.get(item.requester)
    catalog: Catalog = ws.catalog
    steps, changes = [], []
    for step in item.plan["steps"]:
        action = catalog.get(step["action"]) if step["action"] in catalog else None
        args = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in step["args"].items() if k != "origin")
        steps.append({"action": step["action"], "label": replies.label(action) if action else step["action"],
                      "args": args, "risk": step.get("risk")})
        if action is not None and action.preview:
            try:
                found: list[Change] = ws.connector(action.connector).preview(action.operation, step["args"])
            except SaysoError:
                found = []
            changes += [replies.change_line(c) for c in found]
    return {"id": item.id, "status": item.status, "expires_at": item.expires_at.isoformat(),
            "requester": {"id": requester.id, "name": requester.name},
            "approver": item.approver, "words": str(row.words) if row else "", "why": str(row.why) if row else "",
            "rule": str(row.rule) if row else "", "conversation": item.conversation, "steps": steps,
            "changes": changes, "plan_hash": item.plan_hash}


def card_text(shown: dict[str, Any]) -> str:
    requester = shown["requester"]
    lines = [f"{requester['name']} ({requester['id']}) asks you to approve: \"{shown['words'][:300]}\""]
    lines += _change_lines(shown)
    if shown["why"]:
        lines.append(f"It needs you because it was not theirs to do: {shown['why'][:400]}")
    return "\n".join(lines)


def settled(pipeline: Pipeline, turn: Turn, confirmation: str, result: TurnResult, approve: bool) -> None:
    """After an approver answered a routed confirmation: a new card keeps its routing, and the requester sees
    the outcome in the conversation they asked in."""
    table = schema.approvals
    with pipeline.ws.store.read() as conn:
        row = conn.execute(select(table).where(table.c.confirmation == confirmation)).first()
    if row is None:
        return
    fresh = result.confirmation["id"] if result.status is TurnStatus.NEEDS_CONFIRMATION and \
        result.confirmation else None
    if fresh:
        with pipeline.ws.store.write() as conn:
            conn.execute(insert(table).values(
                confirmation=fresh, requester=row.requester, approver=row.approver, conversation=row.conversation,
                words=row.words, why=row.why, rule=row.rule, replaces=confirmation,
                created_at=pipeline.clock.now().isoformat()))
    from .conversation import Conversations  # the conversation layer calls into this module: imported here

    conversations = Conversations(pipeline)
    state = conversations.load(row.conversation, row.requester)
    if state is None:
        return
    who = turn.person
    if not approve:
        said = f"{who.name} ({who.id}) declined your request \"{row.words[:200]}\"; nothing was changed."
    elif result.status is TurnStatus.EXECUTED:
        said = f"{who.name} ({who.id}) approved your request \"{row.words[:200]}\" on your behalf.\n{result.reply}"
    elif fresh:
        said = (f"{who.name} ({who.id}) was shown your request \"{row.words[:200]}\" again: it changed since it "
                f"was asked, so nothing was done yet; still waiting for {who.id}.")
    else:
        said = f"{who.name} ({who.id}) answered your request \"{row.words[:200]}\": {result.reply}"
    if state.routed == confirmation:
        state.routed = fresh
    data = {**result.to_json(), "reply": said}
    data.pop("confirmation", None)  # the approver's to give, not the requester's
    if fresh:
        data["confirmation"] = {**(result.confirmation or {}), "approver": row.approver, "requester": row.requester}
    status = result.status.value if approve else TurnStatus.CANCELLED.value
    conversations.save(row.conversation, state, [
        {"role": "sayso", "user_id": row.requester, "turn": turn.turn, "text": said, "status": status,
         "data": data}])
    if "slack" in pipeline.ws.settings.channels:
        try:
            from .channels.slack import notify_requester

            notify_requester(pipeline.ws, row.conversation, TurnResult.model_validate({**data, "status": status}))
        except SaysoError as exc:  # the conversation has it; Slack is where they may be looking
            log.warning("the outcome of %s did not reach Slack: %s", confirmation, exc.message)
