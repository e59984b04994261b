"""nginx (Debian's package) in front of 3 ``sayso serve`` processes on one PostgreSQL database, as
docs/operations.md configures it: reads, writes and confirmations across processes, health and readiness
through the load balancer, a graceful stop that finishes the turn in flight, and a short fault run (kill -9)
with every acknowledged write counted once in the target system. Loopback only."""

from __future__ import annotations

import functools
import importlib.util
import json
import signal
import sqlite3
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

pytest.importorskip("fastapi", reason="the HTTP service needs its extra: pip install 'sayso[serve]'")
pytest.importorskip("uvicorn", reason="the HTTP service needs its extra: pip install 'sayso[serve]'")

from sqlalchemy import select  # noqa: E402

from sayso import Workspace  # noqa: E402
from sayso.store import schema  # noqa: E402

from .conftest import sayso  # noqa: E402
from .processes import chat_messages, client, pg_workspace, tokens_for  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _load(name: str) -> ModuleType:
    """A module of bench/ (the cluster the benchmark runs, and its fault run)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


cluster_module = _load("cluster")
if cluster_module.nginx_binary() is None:
    pytest.skip("nginx is not installed: apt-get install nginx-light (.ci/run installs it)", allow_module_level=True)

USERS = ("alice", "bob", "carol")
# Every process of the cluster runs this at start: a step whose arguments say "slow" takes 3 s, and says when it
# began in the file named by SAYSO_TEST_SLOW, so a test can stop a process while the step is in flight.
_SLOW_HOOK = """
import json, os, time
from pathlib import Path
import sayso.executor
_run_steps = sayso.executor.Executor._run_steps
def _slow(self, plan, *args, **kwargs):
    if "slow" in json.dumps([step.args for step in plan.steps]):
        Path(os.environ["SAYSO_TEST_SLOW"]).write_text(str(os.getpid()))
        time.sleep(3)
    return _run_steps(self, plan, *args, **kwargs)
sayso.executor.Executor._run_steps = _slow
"""


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    for made in pg_workspace(tmp_path_factory.mktemp("scale") / "ws"):
        toml = made / "sayso.toml"
        toml.write_text(toml.read_text() + "\n[serve]\nrate_per_minute = 1000000\n")
        yield made


@pytest.fixture(scope="module")
def tokens(root: Path) -> dict[str, str]:
    return tokens_for(root, USERS)


@pytest.fixture(scope="module")
def cluster(root: Path) -> Iterator[Any]:
    hook = root.parent / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(_SLOW_HOOK)
    env = {"PYTHONPATH": str(hook), "SAYSO_TEST_SLOW": str(root.parent / "slow")}
    running = cluster_module.Cluster(root, 3, env=env)
    try:
        yield running
    finally:
        running.stop()


def crm_effects(root: Path, operation: str) -> int:
    with sqlite3.connect(root / "systems" / "crm.db") as conn:
        return int(conn.execute("select count(*) from effects where operation = ?", (operation,)).fetchone()[0])


def test_health_and_readiness_through_nginx(cluster: Any) -> None:
    assert httpx.get(f"{cluster.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{cluster.url}/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    assert "x-request-id" in ready.headers


def test_reads_writes_and_a_confirmation_across_processes(cluster: Any, root: Path, tokens: dict[str, str]) -> None:
    before = chat_messages(root)
    with client(cluster.url, tokens["alice"]) as alice:
        conversation = alice.post("/v1/conversations").json()["id"]
        for n in range(6):  # keep-alive to nginx; nginx spreads the requests over the processes
            read = alice.post(f"/v1/conversations/{conversation}/messages",
                              json={"text": "which of my deals close in the next 30 days?"})
            assert read.status_code == 200 and read.json()["status"] == "answered", read.text
            sent = alice.post("/v1/actions/chat.send", json={"args": {"to": "carol", "text": f"scale {n}"}})
            assert sent.status_code == 200 and sent.json()["status"] == "executed", sent.text
        shown = alice.get(f"/v1/conversations/{conversation}").json()
        assert len(shown["messages"]) == 12  # every turn, whichever process ran it
    assert chat_messages(root) == before + 6

    urls = [cluster.process_url(i) for i in range(3)]
    with client(urls[0], tokens["carol"]) as first, client(urls[1], tokens["carol"]) as second, \
            client(urls[2], tokens["carol"]) as third:
        conversation = first.post("/v1/conversations").json()["id"]
        asked = first.post(f"/v1/conversations/{conversation}/messages",
                           json={"text": "close Kestrel Aerospace as won"}).json()
        assert asked["status"] == "needs_confirmation"
        confirmation = asked["confirmation"]["id"]
        assert [c["id"] for c in third.get("/v1/confirmations").json()] == [confirmation]
        done = second.post(f"/v1/confirmations/{confirmation}/approve")  # created on one, approved on another
        assert done.status_code == 200 and done.json()["status"] == "executed", done.text
        again = third.post(f"/v1/confirmations/{confirmation}/approve")
        assert again.status_code == 409 and again.json()["error"]["code"] == "confirmation_used"
        assert first.get(f"/v1/conversations/{conversation}").json()["pending"] is None
    assert crm_effects(root, "close_deal") == 1


def test_a_stopped_process_finishes_the_turn_in_flight_and_releases_its_plan(
        cluster: Any, root: Path, tokens: dict[str, str]) -> None:
    marker = root.parent / "slow"
    marker.unlink(missing_ok=True)
    before = chat_messages(root)
    answers: list[httpx.Response] = []

    def send() -> None:
        with client(cluster.process_url(1), tokens["bob"]) as bob:
            answers.append(bob.post("/v1/actions/chat.send", json={"args": {"to": "carol", "text": "slow one"}},
                                    headers={"Idempotency-Key": "graceful-1"}))

    sender = threading.Thread(target=send)
    sender.start()
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert time.monotonic() < deadline, "the slow step never began"
        time.sleep(0.02)
    # SIGTERM while the step runs: it finishes and is answered, then the process exits (Uvicorn, once stopped,
    # raises the signal it caught again, so the status may say SIGTERM)
    assert cluster.terminate(1) in (0, -signal.SIGTERM)
    sender.join(60)
    assert len(answers) == 1 and answers[0].status_code == 200, answers
    assert answers[0].json()["status"] == "executed"
    assert chat_messages(root) == before + 1
    ws = Workspace.load(root)
    try:
        plans = schema.plans
        with ws.store.read() as conn:
            left = conn.execute(select(plans.c.id).where(plans.c.status == "running")).all()
    finally:
        ws.close()
    assert left == []  # no plan left under the stopped process's lease
    with client(cluster.url, tokens["bob"]) as bob:  # nginx sends everything to the two others meanwhile
        for _ in range(4):
            assert bob.get("/v1/me").status_code == 200
    cluster.start(1)
    cluster.wait_ready(1)
    verified = sayso(root, "audit", "verify")
    assert verified.returncode == 0 and "intact" in verified.stdout


def test_concurrent_writes_from_three_processes_keep_one_audit_chain(
        cluster: Any, root: Path, tokens: dict[str, str]) -> None:
    before = chat_messages(root)
    answers: list[int] = []

    def write(index: int, user: str) -> None:
        with client(cluster.process_url(index), tokens[user]) as each:
            for n in range(8):
                text = f"chain {index}-{user}-{n}"
                sent = each.post("/v1/actions/chat.send", json={"args": {"to": "carol", "text": text}})
                answers.append(sent.status_code)

    writers = [threading.Thread(target=write, args=(index, user)) for index in range(3) for user in ("alice", "bob")]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(120)
    assert answers == [200] * 48
    assert chat_messages(root) == before + 48
    ws = Workspace.load(root)
    try:
        audit = schema.audit
        with ws.store.read() as conn:
            seqs = [row.seq for row in conn.execute(select(audit.c.seq).order_by(audit.c.seq))]
    finally:
        ws.close()
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # one line: no gap, no fork
    verified = sayso(root, "audit", "verify")
    assert verified.returncode == 0 and "intact" in verified.stdout, verified.stdout


@pytest.fixture
def fault_root(tmp_path: Path) -> Iterator[Path]:
    yield from pg_workspace(tmp_path / "ws")


def test_a_short_fault_run_loses_nothing_and_runs_nothing_twice(fault_root: Path) -> None:
    """bench/scale.py --faults, bounded: 15 s, a kill -9 every 3 s, 8 clients reading, writing and confirming,
    and standing instructions falling due meanwhile in the processes being killed."""
    scale = _load("scale")
    tokens = scale.make_workspace_tokens(fault_root)
    found = scale.fault_run(fault_root, tokens, seconds=15, clients=8, kill_every=3, seed=18)
    assert found["kills"] >= 3
    assert found["writes_acknowledged"] > 0 and found["confirmations_approved"] > 0
    assert (found["lost"], found["duplicates"], found["stuck_keys"]) == (0, 0, 0), found
    assert found["instructions_due"] == 6  # each fired exactly once, counted in the chat system
    assert (found["instructions_fired_once"], found["instructions_missed"], found["instructions_fired_twice"]) == (
        6, 0, 0), found
    assert found["audit_verify"], found["audit_output"]


class Stream:
    """A server-sent event stream of ``conversation``, read in a thread until it has seen ``dones`` turns done:
    its events as (stage, data), in order."""

    def __init__(self, url: str, token: str, conversation: str, dones: int) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.changed = threading.Condition()
        self.ready = threading.Event()
        self._args = (url, token, conversation, dones)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        url, token, conversation, dones = self._args
        with client(url, token) as reader, reader.stream(
                "GET", f"/v1/conversations/{conversation}/events", params={"timeout": 120}) as stream:
            stage = ""
            for line in stream.iter_lines():
                if line.startswith(": connected"):
                    self.ready.set()
                elif line.startswith("event: "):
                    stage = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    with self.changed:
                        self.events.append((stage, json.loads(line.removeprefix("data: "))))
                        self.changed.notify_all()
                    if sum(s == "done" for s, _ in self.events) >= dones:
                        return

    def wait(self, enough: Callable[[list[tuple[str, dict[str, Any]]]], bool]) -> list[tuple[str, dict[str, Any]]]:
        with self.changed:
            assert self.changed.wait_for(lambda: enough(self.events), timeout=60), self.events
            return list(self.events)


def _stages(events: list[tuple[str, dict[str, Any]]], turn: str) -> Counter[str]:
    """The stages that reached a stream for ``turn`` (progress events name their turn, as done does)."""
    return Counter(stage for stage, data in events if data.get("turn", {}).get("turn") == turn)


def test_a_turns_stages_reach_a_stream_through_nginx_whichever_process_runs_it(cluster: Any,
                                                                               tokens: dict[str, str]) -> None:
    token = tokens["bob"]
    ask = {"text": "which of my deals close in the next 30 days?"}
    with client(cluster.process_url(0), token) as first:  # the stages of one turn, stream and turn on one process
        conversation = first.post("/v1/conversations").json()["id"]
        local = Stream(cluster.process_url(0), token, conversation, dones=1)
        assert local.ready.wait(30)
        turn = first.post(f"/v1/conversations/{conversation}/messages", json=ask).json()["turn"]
        one_turn = _stages(local.wait(lambda e: _stages(e, turn)["done"] == 1), turn)
    assert one_turn["interpreting"] == 1 and one_turn["done"] == 1 and len(one_turn) > 2

    with client(cluster.url, token) as bob:
        conversation = bob.post("/v1/conversations").json()["id"]
    stream = Stream(cluster.url, token, conversation, dones=6)  # through nginx, on one of the three processes
    assert stream.ready.wait(30)
    turns: list[str] = []
    for _ in range(2):  # each process runs a turn, twice (the first round lets the stream's announcement spread)
        for index in range(3):
            with client(cluster.process_url(index), token) as direct:
                said = direct.post(f"/v1/conversations/{conversation}/messages", json=ask).json()
            assert said["status"] == "answered"
            turns.append(said["turn"])
            stream.wait(functools.partial(_has_done, said["turn"]))
    # every stage of the second round's turns reached the stream, the two other processes' as well as its own
    events = stream.wait(lambda e: all(_stages(e, turn) == one_turn for turn in turns[3:]))
    assert [data["turn"]["turn"] for stage, data in events if stage == "done"] == turns  # each done once, in order


def _has_done(turn: str, events: list[tuple[str, dict[str, Any]]]) -> bool:
    return _stages(events, turn)["done"] == 1
