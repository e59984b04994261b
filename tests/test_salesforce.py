"""The Salesforce connector: against Salesforce's documented answers (recorded, replayed in process
through a requests adapter), against a stateful HTTPS stand-in of the REST API on loopback, and
through the real CLI across a crash."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

import sayso.demo as demo_package
from sayso.connectors import SystemContext, registry
from sayso.connectors.provenance import stable_id, why_text
from sayso.connectors.salesforce import Salesforce, soql_literal
from sayso.directory import Directory
from sayso.errors import ConfigurationError, ConnectorError, InvalidArguments, UnknownRecord, UnknownUser

from .standins.salesforce import SalesforceStandIn
from .switch import crash_then_recover, switch_system

pytest.importorskip("simple_salesforce", reason="the Salesforce connector needs simple-salesforce (sayso[salesforce])")
pytest.importorskip("cryptography", reason="the Salesforce stand-in makes its TLS certificate with cryptography")
import requests  # noqa: E402  (simple-salesforce's HTTP client, present when it is)
from simple_salesforce.api import Salesforce as Client  # noqa: E402

RECORDED = Path(__file__).parent / "recorded" / "salesforce"
SESSION = "00DHs000000sayso!AQ4AQ-SECRET-session-id"
ORIGIN = {"actor": "alice", "actor_name": "Alice Moreno", "conversation": "c_7", "turn": 1,
          "request": "log a note on the Brightwater deal: called Priya", "related": ["006Hs00000Bw1qAIAR"]}
DIRECTORY = Directory.load(Path(demo_package.__file__).parent / "files" / "directory.yaml")
DEAL = "006Hs00000Bw1qAIAR"


def recorded(name: str) -> Any:
    return json.loads((RECORDED / name).read_text())


# --- (a) recorded answers, replayed in process ------------------------------------------


Handler = Callable[[requests.PreparedRequest], tuple[int, Any]]


class Replay(requests.adapters.BaseAdapter):
    """Answers each request with ``handler`` (status, JSON body) and keeps it: no socket is opened."""

    def __init__(self, handler: Handler) -> None:
        super().__init__()
        self.handler = handler
        self.seen: list[requests.PreparedRequest] = []

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        self.seen.append(request)
        status, body = self.handler(request)
        response = requests.Response()
        response.status_code, response.url, response.request = status, str(request.url), request
        response._content = b"" if body is None else json.dumps(body).encode()
        response.headers["Content-Type"] = "application/json;charset=UTF-8"
        return response

    def close(self) -> None:
        """Nothing to release."""


def replaying(handler: Handler, **settings: Any) -> tuple[Salesforce, Replay]:
    replay = Replay(handler)
    session = requests.Session()
    session.mount("https://", replay)
    client = Client(session_id=SESSION, instance_url="https://lumenlabs.my.salesforce.com", session=session)
    return Salesforce("crm", client, DIRECTORY, secrets=(SESSION,), **settings), replay


def soql(request: requests.PreparedRequest) -> str:
    return parse_qs(urlsplit(str(request.url)).query).get("q", [""])[0]


def test_a_recorded_opportunity_reads_as_a_demo_deal() -> None:
    crm, replay = replaying(lambda request: (200, recorded("query_opportunity_200.json")))
    [deal] = crm.read("find_deals", {"owner": "alice", "stage": "proposal", "closing_before": "2026-12-31"})
    [request] = replay.seen
    assert request.headers["Authorization"] == f"Bearer {SESSION}"
    assert urlsplit(str(request.url)).path == "/services/data/v59.0/query/"
    query = soql(request)
    assert "FROM Opportunity WHERE Owner.Email = 'alice@lumenlabs.example'" in query
    assert "StageName = 'Proposal/Price Quote'" in query and "CloseDate <= 2026-12-31" in query
    assert (deal.type, deal.id, deal.title) == ("Deal", DEAL, "Brightwater Expansion")
    assert deal.attrs == {"name": "Brightwater Expansion", "account": "Brightwater Dental", "amount": 48000,
                          "stage": "proposal", "close_date": "2026-12-15", "owner": "alice"}
    assert deal.version > 0


def test_a_note_is_an_upsert_on_the_external_id_and_carries_the_why() -> None:
    key = "sk_note"

    def salesforce(request: requests.PreparedRequest) -> tuple[int, Any]:
        if request.method == "GET" and "FROM Task" in soql(request):
            return 200, recorded("query_empty_200.json")
        if request.method == "GET":
            return 200, recorded("query_opportunity_200.json")
        return 201, recorded("upsert_created_201.json")

    crm, replay = replaying(salesforce)
    effect = crm.execute("log_note", {"record": DEAL, "text": "called Priya"}, key=key, origin=ORIGIN)
    upsert = replay.seen[-1]
    assert upsert.method == "PATCH"
    assert urlsplit(str(upsert.url)).path == f"/services/data/v59.0/sobjects/Task/Sayso_Key__c/{stable_id(key)}"
    body = json.loads(upsert.body or b"{}")
    assert body == {"Subject": "Note: called Priya", "Status": "Completed", "WhatId": DEAL,
                    "Description": f"called Priya\n\n{why_text(ORIGIN)}"}
    assert f"Sayso_Key__c = '{stable_id(key)}'" in soql(replay.seen[0])  # asked before writing
    assert effect.result == {"id": "00THs00000XyZ12MAB"} and effect.changes[0].record_type == "Note"


def test_an_upsert_that_updated_the_first_one_answers_its_id() -> None:
    crm, replay = replaying(lambda request: (200, recorded("upsert_updated_200.json")
                                             if request.method == "PATCH" else recorded("query_empty_200.json")))
    assert crm._upsert("sk_again", {"Subject": "x"}) == "00THs00000XyZ12MAB"


@pytest.mark.parametrize(("status", "body", "words"), [
    (400, "error_400_picklist.json", ["400", "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                                      "Stage: bad value for restricted picklist field: Negotiating", "(StageName)"]),
    (400, "error_400_invalid_field.json", ["INVALID_FIELD", "No such column 'Sayso_Key__c'"]),
    (401, "error_401.json", ["401", "INVALID_SESSION_ID: Session expired or invalid"]),
    (400, "error_400_malformed_query.json", ["MALFORMED_QUERY"]),
])
def test_a_salesforce_error_body_is_explained_without_the_session(status: int, body: str, words: list[str]) -> None:
    crm, _ = replaying(lambda request: (status, recorded(body)))
    with pytest.raises(ConnectorError) as caught:
        crm.read("find_deals", {})
    message = caught.value.message
    assert all(w in message for w in words), message
    assert SESSION not in message and SESSION not in repr(crm)


def test_a_missing_record_is_unknown_and_an_unreachable_instance_is_a_connector_error() -> None:
    crm, _ = replaying(lambda request: (200, recorded("query_empty_200.json")))
    assert crm.get("Deal", DEAL) is None
    with pytest.raises(UnknownRecord):
        crm.execute("update_deal", {"deal": DEAL, "stage": "negotiation"}, key="sk_gone")

    def down(request: requests.PreparedRequest) -> tuple[int, Any]:
        raise requests.ConnectionError("connection refused")

    crm, _ = replaying(down)
    with pytest.raises(ConnectorError, match="did not answer"):
        crm.read("find_deals", {})


def test_soql_literals_are_escaped() -> None:
    assert soql_literal("Harbor & Finch's \\ deal") == "'Harbor & Finch\\'s \\\\ deal'"


# --- (b) a stateful HTTPS stand-in on loopback ------------------------------------------


@pytest.fixture
def cloud() -> Iterator[SalesforceStandIn]:
    stand_in = SalesforceStandIn(session_id=SESSION)
    with stand_in.running():
        yield stand_in


def connect(cloud: SalesforceStandIn, tmp_path: Path, **settings: Any) -> Salesforce:
    context = SystemContext(tmp_path, DIRECTORY, {"sf_session": SESSION})
    connector = registry.create("crm", {"kind": "salesforce", "instance_url": cloud.url,
                                        "session_id_secret": "sf_session", "ca_bundle": str(cloud.ca_file),
                                        **settings}, context)
    assert isinstance(connector, Salesforce)
    return connector


def test_an_update_patches_values_and_key_together_once(cloud: SalesforceStandIn, tmp_path: Path) -> None:
    crm = connect(cloud, tmp_path)
    deal = cloud.deal("D-101")
    effect = crm.execute("update_deal", {"deal": deal, "stage": "negotiation", "amount": 52000}, key="sk_u")
    [patch] = cloud.calls("PATCH", rf"/services/data/v59.0/sobjects/Opportunity/{deal}")
    assert patch["headers"]["Authorization"] == f"Bearer {SESSION}"
    assert patch["body"] == {"StageName": "Negotiation/Review", "Amount": 52000, "Sayso_Key__c": stable_id("sk_u")}
    assert effect.changes[0].before == {"stage": "proposal", "amount": 48000}
    assert effect.changes[0].after == {"stage": "negotiation", "amount": 52000}
    again = crm.execute("update_deal", {"deal": deal, "stage": "negotiation", "amount": 52000}, key="sk_u")
    assert len(cloud.calls("PATCH", rf".*/Opportunity/{deal}")) == 1 and again.result["recovered"] is True
    found = crm.lookup("sk_u")
    assert found is not None and found.operation == "update_deal"
    assert found.changes[0].after == {"stage": "negotiation", "amount": 52000, "close_date": "2026-12-15"}
    assert crm.lookup("sk_never") is None


def test_a_note_retried_after_a_lost_answer_is_one_task(cloud: SalesforceStandIn, tmp_path: Path) -> None:
    crm = connect(cloud, tmp_path)
    deal = cloud.deal("D-101")
    cloud.fail_once("PATCH", r".*/sobjects/Task/Sayso_Key__c/.*", after=True)  # written; the answer is lost
    with pytest.raises(ConnectorError, match="UNKNOWN_EXCEPTION"):
        crm.execute("log_note", {"record": deal, "text": "called Priya"}, key="sk_n", origin=ORIGIN)
    effect = crm.execute("log_note", {"record": deal, "text": "called Priya"}, key="sk_n", origin=ORIGIN)
    [task] = cloud.tasks()
    assert effect.result["id"] == task["Id"] and task["Sayso_Key__c"] == stable_id("sk_n")
    assert task["WhatId"] == deal and task["Status"] == "Completed"
    assert task["Description"] == f"called Priya\n\n{why_text(ORIGIN)}"
    found = crm.lookup("sk_n")
    assert found is not None and (found.operation, found.result["id"]) == ("log_note", task["Id"])


def test_the_same_key_upserted_twice_leaves_one_task(cloud: SalesforceStandIn, tmp_path: Path) -> None:
    """Even past the connector's own check, Salesforce dedupes an upsert on the external id."""
    crm = connect(cloud, tmp_path)
    first = crm._upsert("sk_twice", {"Subject": "Send contract", "Status": "Not Started"})
    second = crm._upsert("sk_twice", {"Subject": "Send contract", "Status": "Not Started"})
    assert first == second and len(cloud.tasks()) == 1


def test_a_task_is_assigned_dated_and_found(cloud: SalesforceStandIn, tmp_path: Path) -> None:
    crm = connect(cloud, tmp_path)
    deal = cloud.deal("D-104")
    effect = crm.execute("create_task", {"subject": "Send the renewal terms", "record": deal, "assignee": "devi",
                                         "due": "2026-12-01", "priority": "high"}, key="sk_t", origin=ORIGIN)
    [task] = cloud.tasks()
    assert (task["OwnerId"], task["ActivityDate"], task["Priority"], task["Status"], task["WhatId"]) == \
        (cloud.user("devi"), "2026-12-01", "High", "Not Started", deal)
    assert why_text(ORIGIN) in task["Description"]
    found = crm.lookup("sk_t")
    assert found is not None and found.operation == "create_task" and found.result == effect.result
    assert found.changes[0].after["assignee"] == "devi"


def test_undo_restores_deletes_and_refuses_what_it_cannot_know(cloud: SalesforceStandIn, tmp_path: Path) -> None:
    crm = connect(cloud, tmp_path, close_reason_field="Loss_Reason__c")
    deal = cloud.deal("D-104")
    closed = crm.execute("close_deal", {"deal": deal, "outcome": "lost", "reason": "budget cut"}, key="sk_close")
    record = cloud.record("Opportunity", deal)
    assert (record["StageName"], record["Loss_Reason__c"], record["IsClosed"]) == ("Closed Lost", "budget cut", True)
    with pytest.raises(InvalidArguments, match="already closed_lost"):
        crm.execute("close_deal", {"deal": deal, "outcome": "won"}, key="sk_close_again")
    undone = crm.compensate(closed, key="sk_close:undo")
    assert (record["StageName"], record["Loss_Reason__c"]) == ("Negotiation/Review", None)
    assert crm.compensate(closed, key="sk_close:undo").result["id"] == undone.result["id"] == deal

    moved = crm.execute("update_deal", {"deal": deal, "amount": 99000}, key="sk_amount")
    record["Amount"] = 101000.0  # someone changed it in Salesforce since
    with pytest.raises(InvalidArguments, match="changed since"):
        crm.compensate(moved, key="sk_amount:undo")

    recovered = crm.lookup("sk_amount")  # as recovery finds it: the record that carries the key, as it is now
    assert recovered is not None and recovered.changes[0].before == {}
    with pytest.raises(InvalidArguments, match="earlier values were not kept"):
        crm.compensate(recovered, key="sk_amount:undo2")

    note = crm.execute("log_note", {"record": deal, "text": "legal review done"}, key="sk_note", origin=ORIGIN)
    crm.compensate(note, key="sk_note:undo")
    assert cloud.tasks() == []

    account = crm.search("Account", "Orchid Pharma")[0].id
    given = crm.execute("reassign_account", {"account": account, "new_owner": "wes"}, key="sk_give")
    assert cloud.record("Account", account)["OwnerId"] == cloud.user("wes")
    crm.compensate(given, key="sk_give:undo")
    assert cloud.record("Account", account)["OwnerId"] == cloud.user("devi")


def test_without_a_reason_field_the_reason_joins_the_description(cloud: SalesforceStandIn, tmp_path: Path) -> None:
    crm = connect(cloud, tmp_path)
    deal = cloud.deal("D-106")
    effect = crm.execute("close_deal", {"deal": deal, "outcome": "won", "reason": "signed"}, key="sk_won")
    assert cloud.record("Opportunity", deal)["Description"] == "Close reason: signed"
    assert effect.changes[0].after == {"stage": "closed_won", "description": "Close reason: signed", "amount": 75000}


def test_reads_speak_the_demo_vocabulary(cloud: SalesforceStandIn, tmp_path: Path) -> None:
    crm = connect(cloud, tmp_path)
    [exact] = crm.search("Deal", "brightwater expansion")
    assert (exact.id, exact.score) == (cloud.deal("D-101"), 100.0)
    assert {r.title for r in crm.search("Deal", "the Kestrel deal")} == {"Kestrel Aerospace Platform",
                                                                         "Kestrel Analytics Pilot"}
    assert [r.title for r in crm.search("Deal", "Orchid")] == ["Orchid Renewal"]  # by its account's name
    [by_id] = crm.search("Deal", cloud.deal("D-102"))
    assert by_id.score == 100.0 and by_id.attrs["owner"] == "alice"
    assert [r.title for r in crm.read("find_deals", {"owner": "devi", "stage": "negotiation"})] == ["Orchid Renewal"]
    assert [r.title for r in crm.read("find_deals", {"account": "kestrel aerospace"})] == \
        ["Kestrel Aerospace Platform"]
    account = crm.search("Account", "Orchid Pharma")[0]
    [got] = crm.read("get", {"record": account.id})
    assert got.attrs["contacts"] == ["Lena Ortiz", "Raj Patel"] and got.attrs["owner"] == "devi"
    [contact] = crm.search("Contact", "Priya Shah")
    assert contact.attrs["email"] == "priya.shah@brightwaterdental.example"
    with pytest.raises(UnknownRecord):
        crm.read("get", {"record": "006Hs0000000099999"})


def test_settings_and_failures_are_reported(cloud: SalesforceStandIn, tmp_path: Path) -> None:
    crm = connect(cloud, tmp_path, stages={"negotiation": "Negotiating"})
    with pytest.raises(ConnectorError, match="INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"):
        crm.execute("update_deal", {"deal": cloud.deal("D-101"), "stage": "negotiation"}, key="sk_bad")
    with pytest.raises(UnknownUser):
        crm.execute("create_task", {"subject": "x", "assignee": "nobody"}, key="sk_who")
    with pytest.raises(InvalidArguments, match="give a stage"):
        crm.execute("update_deal", {"deal": cloud.deal("D-101")}, key="sk_nothing")
    wrong = SystemContext(tmp_path, DIRECTORY, {"sf_session": "00Dwrong!session"})
    bad = registry.create("crm", {"kind": "salesforce", "instance_url": cloud.url, "session_id_secret": "sf_session",
                                  "ca_bundle": str(cloud.ca_file)}, wrong)
    with pytest.raises(ConnectorError, match="INVALID_SESSION_ID") as caught:
        bad.read("find_deals", {})
    assert "00Dwrong!session" not in caught.value.message
    context = SystemContext(tmp_path, DIRECTORY, {})
    with pytest.raises(ConfigurationError, match="needs session_id_secret"):
        registry.create("crm", {"kind": "salesforce", "instance_url": cloud.url}, context)
    with pytest.raises(ConfigurationError, match="needs instance_url"):
        registry.create("crm", {"kind": "salesforce", "session_id_secret": "sf_session"}, context)
    untrusting = connect(cloud, tmp_path, ca_bundle="")  # the stand-in's CA is not trusted: TLS refuses
    with pytest.raises(ConnectorError, match="SSLError"):
        untrusting.read("find_deals", {})


def test_an_org_without_the_key_field_is_told_so(tmp_path: Path) -> None:
    stand_in = SalesforceStandIn(session_id=SESSION, key_field=None)
    with stand_in.running():
        crm = connect(stand_in, tmp_path)
        with pytest.raises(ConnectorError, match="No such column 'Sayso_Key__c'"):
            crm.execute("log_note", {"record": stand_in.deal("D-101"), "text": "x"}, key="sk_nofield")
        assert stand_in.tasks() == []


# --- (c) the real CLI, crashed right after the effect ---------------------------------


def use_salesforce(root: Path, cloud: SalesforceStandIn) -> dict[str, str]:
    """Point the demo workspace's CRM at the stand-in (seeded with the demo's deals under Salesforce ids)."""
    switch_system(root, "crm", f'kind = "salesforce"\ninstance_url = "{cloud.url}"\n'
                  f'session_id_secret = "sf_session"\nca_bundle = "{cloud.ca_file}"\n', {"sf_session": "SAYSO_TEST_SF"})
    return {"SAYSO_TEST_SF": SESSION}


@pytest.mark.parametrize(("action", "args"), [
    ("crm.update_deal", {"deal": "Brightwater Expansion", "stage": "negotiation"}),
    ("crm.log_note", {"record": "Brightwater Expansion", "text": "called Priya"}),
], ids=["update_deal", "log_note"])
def test_crash_after_the_effect_then_recover_leaves_one_effect(
    demo_root: Path, cloud: SalesforceStandIn, action: str, args: dict[str, Any]
) -> None:
    env = use_salesforce(demo_root, cloud)
    deal = cloud.deal("D-101")

    def effects() -> int:
        if action == "crm.update_deal":
            return len(cloud.calls("PATCH", rf".*/sobjects/Opportunity/{deal}"))
        return len(cloud.tasks())

    crash_then_recover(demo_root, "alice", action, args, env, effects, secret=SESSION)
    if action == "crm.update_deal":
        assert cloud.record("Opportunity", deal)["StageName"] == "Negotiation/Review"
    else:
        assert "Alice Moreno (alice)" in cloud.tasks()[0]["Description"]
