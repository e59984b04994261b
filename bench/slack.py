"""The Slack channel on a real Uvicorn server: how fast Slack's requests are answered, and how long a turn takes.

    python bench/slack.py [--turns 100] [--clients 4] [--storm 10] [--json]

The server is ``create_app`` (the app ``sayso serve`` runs) in this process, on a fresh demo workspace
(SQLite, the offline interpreter, ``confirm_medium`` on so that a message to a channel asks for a
confirmation), its bot pointed at the stateful Slack stand-in of the tests (``tests/standins/slack.py``).
``--clients`` threads each run ``--turns`` / ``--clients`` rounds, one after another:

* a signed ``app_mention`` event "tell #sales-east bench N": its HTTP answer (the acknowledgement Slack
  needs within 3 s), then the time until the confirmation card is in the thread;
* a signed click on the card's Approve: its HTTP answer, then the time until the card reads "executed once";
* every ``--storm``-th round, the same click delivered ``--storm`` times at once, and the event delivered
  again as Slack's retries (``X-Slack-Retry-Num``): their answers are timed with the others.

Reported: medians and p99 of each. The demo chat system's messages are counted at the end: one per round,
whatever the retries.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import math
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sayso import Workspace  # noqa: E402
from sayso.serve import create_app  # noqa: E402
from tests.servers import serving  # noqa: E402
from tests.standins.slack import BOT_USER, TEAM, SlackStandIn  # noqa: E402

SECRET, TOKEN, CHANNEL = "bench-signing-secret-0123456789", "xoxb-bench", "C0SALESEAST"
NOW = "2026-11-25T09:00"


def sign(body: str) -> dict[str, str]:
    stamp = str(int(time.time()))
    digest = hmac.new(SECRET.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}"}


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


class Bench:
    def __init__(self, url: str, standin: SlackStandIn) -> None:
        self.url, self.standin = url, standin
        self.times: dict[str, list[float]] = {k: [] for k in ("event ack", "card shown", "click ack",
                                                               "card updated", "retry ack", "storm click ack")}
        self.lock = threading.Lock()
        self.count = 0

    def note(self, what: str, seconds: float) -> None:
        with self.lock:
            self.times[what].append(seconds * 1000)

    def post(self, client: httpx.Client, body: str, content_type: str, headers: dict[str, str] | None = None,
             what: str = "") -> None:
        start = time.perf_counter()
        answer = client.post("/slack/events", content=body,
                             headers={"Content-Type": content_type, **sign(body), **(headers or {})})
        if answer.status_code != 200:
            raise SystemExit(f"{what}: HTTP {answer.status_code} {answer.text[:200]}")
        self.note(what, time.perf_counter() - start)

    def wait(self, ts: str, done: Any, what: str, start: float) -> dict[str, Any]:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            found = [m for m in self.standin.posted(CHANNEL) if m.get("bot_id") and m.get("thread_ts") == ts]
            if found and done(found[0]):
                self.note(what, time.perf_counter() - start)
                return json.loads(json.dumps(found[0]))
            time.sleep(0.002)
        raise SystemExit(f"{what}: nothing after 60 s")

    def round(self, client: httpx.Client, n: int, storm: int) -> None:
        said = self.standin.say(CHANNEL, "U0CAROL", f"<@{BOT_USER}> tell #sales-east bench {n}")
        event = {"team_id": TEAM, "type": "event_callback", "event_id": f"EvBench{n:08d}",
                 "event_time": int(time.time()),
                 "event": {"type": "app_mention", "user": "U0CAROL", "text": said["text"], "ts": said["ts"],
                           "channel": CHANNEL, "channel_type": "channel", "team": TEAM}}
        body = json.dumps(event)
        start = time.perf_counter()
        self.post(client, body, "application/json", what="event ack")
        card = self.wait(said["ts"], lambda m: any(b["type"] == "actions" for b in m.get("blocks", [])),
                         "card shown", start)
        button = next(e for b in card["blocks"] if b["type"] == "actions" for e in b["elements"])
        payload = {"type": "block_actions", "team": {"id": TEAM}, "user": {"id": "U0CAROL"},
                   "container": {"type": "message", "message_ts": card["ts"], "channel_id": CHANNEL},
                   "channel": {"id": CHANNEL}, "message": card,
                   "actions": [{"type": "button", "action_id": button["action_id"], "value": button["value"],
                                "block_id": "sayso_confirmation", "text": button["text"],
                                "action_ts": f"{time.time():.6f}"}]}
        click = urlencode({"payload": json.dumps(payload)})
        start = time.perf_counter()
        if storm and n % storm == 0:
            threads = [threading.Thread(target=self.post, args=(httpx.Client(base_url=self.url, timeout=30), click,
                                        "application/x-www-form-urlencoded", None, "storm click ack"))
                       for _ in range(storm)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            for retry in range(1, 5):
                self.post(client, body, "application/json", {"X-Slack-Retry-Num": str(retry)}, "retry ack")
        else:
            self.post(client, click, "application/x-www-form-urlencoded", what="click ack")
        self.wait(said["ts"], lambda m: "executed once" in json.dumps(m.get("blocks", []), ensure_ascii=False),
                  "card updated", start)

    def client(self, rounds: range, storm: int) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            for n in rounds:
                self.round(client, n, storm)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=100)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--storm", type=int, default=10, help="every Nth round: the click N times at once (0: never)")
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, SlackStandIn(
            TOKEN, users={"carol@lumenlabs.example": "U0CAROL"}, channels={"sales-east": CHANNEL}) as standin:
        root = Path(folder) / "ws"
        Workspace.init(root, demo=True, reference=date(2026, 11, 25))
        (root / "secrets.toml").write_text(f'signing = "{SECRET}"\nbot = "{TOKEN}"\n')
        toml = (root / "sayso.toml").read_text().replace("confirm_medium = false", "confirm_medium = true")
        toml += (f'\n[secrets]\nfile = "secrets.toml"\n\n[channels.slack]\nsigning_secret = "signing"\n'
                 f'bot_token = "bot"\nbase_url = "{standin.url}"\n')
        (root / "sayso.toml").write_text(toml)
        app = create_app(root, now=NOW)
        with serving(app) as url:
            bench = Bench(url, standin)
            per = max(1, options.turns // options.clients)
            threads = [threading.Thread(target=bench.client, args=(range(i * per + 1, (i + 1) * per + 1),
                                                                   options.storm))
                       for i in range(options.clients)]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.perf_counter() - started
            app.state.slack.background.idle(60)
        with sqlite3.connect(root / "systems" / "chat.db") as conn:
            sent = int(conn.execute("select count(*) from messages where text like 'bench %'").fetchone()[0])
    rounds = per * options.clients
    report: dict[str, Any] = {"rounds": rounds, "clients": options.clients, "storm": options.storm,
                              "seconds": round(elapsed, 1), "executed": sent, "exactly_once": sent == rounds,
                              "ms": {}}
    print(f"{rounds} rounds, {options.clients} clients, {elapsed:.1f} s; chat messages sent: {sent} "
          f"({'once each' if sent == rounds else 'NOT once each'})")
    print(f"{'':<18}{'n':>6}{'median ms':>12}{'p99 ms':>10}{'max ms':>10}")
    for what, values in bench.times.items():
        if not values:
            continue
        row = {"n": len(values), "median": round(statistics.median(values), 1), "p99": round(p(values, 0.99), 1),
               "max": round(max(values), 1)}
        report["ms"][what] = row
        print(f"{what:<18}{row['n']:>6}{row['median']:>12}{row['p99']:>10}{row['max']:>10}")
    if options.json:
        print(json.dumps(report))


if __name__ == "__main__":
    main()
