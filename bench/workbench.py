"""Score sayso on WorkBench's tasks, outcome-centred, as WorkBench scores agents.

    python bench/workbench.py --tasks FILE --data DIR [--limit N] [--oracle] [--json]
                              [--interpreter NAME] [--model MODEL] [--half dev|held|all]

``--half`` scores one half of the tasks, split by template (a hash of each task's ``base_template``): ``dev``
is the half to develop against, ``held`` the templates held back, scored only to report (default: all).

``--data`` defaults to ``$SAYSO_WORKBENCH_DATA``, else ``../shared/benchmarks/workbench-dev/data`` (beside
the repository) when it exists; ``--tasks`` to the ``tasks.jsonl`` beside that data folder.

Each run builds the ``examples/workbench`` workspace from ``--data`` in a temporary folder. Each task's
``query`` is one message of the sandbox's user (sam) through the normal chat path, in this process
(:class:`sayso.Chat` over one :class:`sayso.Pipeline`), on a fresh copy of the sandbox, with the clock at
2023-11-30T00:00; when sayso asks for a confirmation it gets one "yes" (and that it asked is counted).
``--oracle`` instead applies each task's gold calls, mapped to the workspace's actions and run through the
same pipeline (``sayso do``), which must score 100% correct and 0 unwanted side effects.

Scoring (WorkBench's): the gold calls are applied to another fresh copy of the sandbox (a reference
implementation of WorkBench's 14 tools with side effects, below) and the two sandboxes are compared, case
aside, leaving out the generated ids and send times of new rows. A task is *correct* when they are equal;
it has an *unwanted side effect* when sayso changed the sandbox and it differs from the gold one (any change
on a task whose gold answer is empty); *no action* when it changed nothing where a change was wanted.
"""

from __future__ import annotations

import argparse
import ast
import copy
import hashlib
import importlib.util
import json
import os
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "examples" / "workbench" / "build.py"
NOW = datetime(2023, 11, 30, 0, 0, tzinfo=UTC)
SENT = "2023-11-30 00:00:00"  # what the gold's sends stamp (not compared: new rows' send times are left out)
USER = "sam"

# Published on all 690 tasks, same scoring (README of the data): (correct, unwanted side effects).
PUBLISHED = {
    "GPT-4, ReAct, all tools": (0.43, 0.26),
    "GPT-4, ReAct, domain tools": (0.49, 0.20),
    "Claude 2, ReAct": (0.25, 0.34),
    "GPT-3.5, ReAct, domain tools": (0.14, 0.53),
}

Row = dict[str, Any]
State = dict[str, list[Row]]


def _load_build() -> ModuleType:
    spec = importlib.util.spec_from_file_location("workbench_build", BUILD)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


build = _load_build()
ID_COLUMNS = {"calendar_events": "event_id", "emails": "email_id", "customers": "customer_id",
              "project_tasks": "task_id", build.PLOTS: None}
COMPARED = tuple(ID_COLUMNS)  # analytics_data is read-only: no tool changes it


# --- the gold: WorkBench's tools with side effects, on a copy of the tables ---------------------


class Sandbox:
    """The tables as WorkBench's tools change them (a reference implementation of their semantics:
    an invalid call changes nothing, as the tools return an error string)."""

    def __init__(self, state: State) -> None:
        self.state = copy.deepcopy(state)

    def _next_id(self, table: str) -> str:
        column = ID_COLUMNS[table]
        assert column is not None
        ids = [int(r[column]) for r in self.state[table] if str(r.get(column) or "").isdigit()]
        return f"{max(ids, default=0) + 1:08d}"

    def _find(self, table: str, record_id: Any) -> Row | None:
        column = ID_COLUMNS[table]
        return next((r for r in self.state[table] if r[column] == record_id), None)

    def _delete(self, table: str, record_id: Any) -> None:
        column = ID_COLUMNS[table]
        self.state[table] = [r for r in self.state[table] if r[column] != record_id]

    def _update(self, table: str, record_id: Any, field_name: Any, value: Any, allowed: dict[str, Any]) -> None:
        row = self._find(table, record_id)
        if row is None or field_name not in allowed or value is None:
            return
        choices = allowed[field_name]
        if choices and value not in choices:
            return
        row[field_name] = str(value)

    def apply(self, tool: str, kwargs: dict[str, Any]) -> None:
        getattr(self, tool.replace(".", "__"))(**kwargs)

    # analytics
    def analytics__create_plot(self, time_min: Any = None, time_max: Any = None, value_to_plot: Any = None,
                               plot_type: Any = None) -> None:
        if not (time_min and time_max and value_to_plot in build.METRICS and plot_type in build.PLOT_TYPES):
            return
        self.state[build.PLOTS].append({
            "file_path": f"plots/{time_min}_{time_max}_{value_to_plot}_{plot_type}.png", "time_min": time_min,
            "time_max": time_max, "value_to_plot": value_to_plot, "plot_type": plot_type})

    # calendar
    def calendar__create_event(self, event_name: Any = None, participant_email: Any = None, event_start: Any = None,
                               duration: Any = None) -> None:
        if not (event_name and participant_email and event_start and duration):
            return
        self.state["calendar_events"].append({
            "event_id": self._next_id("calendar_events"), "event_name": event_name,
            "participant_email": participant_email, "event_start": event_start, "duration": str(duration)})

    def calendar__delete_event(self, event_id: Any = None) -> None:
        self._delete("calendar_events", event_id)

    def calendar__update_event(self, event_id: Any = None, field: Any = None, new_value: Any = None) -> None:
        fields = {"event_name": (), "participant_email": (), "event_start": (), "duration": ()}
        self._update("calendar_events", event_id, field, new_value, fields)

    # email
    def email__send_email(self, recipient: Any = None, subject: Any = None, body: Any = None) -> None:
        if not (recipient and subject and body) or "@" not in recipient or "." not in recipient:
            return
        self.state["emails"].append({
            "email_id": self._next_id("emails"), "inbox_outbox": "outbox", "sender_recipient": recipient.lower(),
            "subject": subject, "sent_datetime": SENT, "body": body})

    def email__delete_email(self, email_id: Any = None) -> None:
        self._delete("emails", email_id)

    def email__forward_email(self, email_id: Any = None, recipient: Any = None) -> None:
        email = self._find("emails", email_id)
        if email is not None and recipient:
            self.email__send_email(recipient, f"FW: {email['subject']}", email["body"])

    def email__reply_email(self, email_id: Any = None, body: Any = None) -> None:
        email = self._find("emails", email_id)
        if email is not None and body:
            self.email__send_email(email["sender_recipient"], email["subject"], body)

    # CRM
    def customer_relationship_manager__update_customer(self, customer_id: Any = None, field: Any = None,
                                                       new_value: Any = None) -> None:
        fields: dict[str, Any] = {f: () for f in ("customer_name", "assigned_to_email", "customer_email",
                                                  "customer_phone", "last_contact_date", "notes", "follow_up_by")}
        fields |= {"status": tuple(build.STATUSES), "product_interest": tuple(build.PRODUCTS)}
        self._update("customers", customer_id, field, new_value, fields)

    def customer_relationship_manager__add_customer(
        self, customer_name: Any = None, assigned_to_email: Any = None, status: Any = None,
        customer_email: Any = None, customer_phone: Any = None, last_contact_date: Any = None,
        product_interest: Any = None, notes: Any = "", follow_up_by: Any = None,
    ) -> None:
        if not (customer_name and assigned_to_email and status):
            return
        self.state["customers"].append({
            "customer_id": self._next_id("customers"), "assigned_to_email": assigned_to_email,
            "customer_name": customer_name, "customer_email": customer_email, "customer_phone": customer_phone,
            "last_contact_date": last_contact_date, "product_interest": product_interest, "status": status,
            "follow_up_by": follow_up_by, "notes": notes})

    def customer_relationship_manager__delete_customer(self, customer_id: Any = None) -> None:
        self._delete("customers", customer_id)

    # project management
    def project_management__create_task(self, task_name: Any = None, assigned_to_email: Any = None,
                                         list_name: Any = None, due_date: Any = None, board: Any = None) -> None:
        if not (task_name and assigned_to_email and list_name in build.LISTS and due_date and board in build.BOARDS):
            return
        self.state["project_tasks"].append({
            "task_id": self._next_id("project_tasks"), "task_name": task_name,
            "assigned_to_email": assigned_to_email, "list_name": list_name, "due_date": due_date, "board": board})

    def project_management__delete_task(self, task_id: Any = None) -> None:
        self._delete("project_tasks", task_id)

    def project_management__update_task(self, task_id: Any = None, field: Any = None, new_value: Any = None) -> None:
        fields: dict[str, Any] = {"task_name": (), "assigned_to_email": (), "due_date": (),
                                  "list_name": tuple(build.LISTS), "board": tuple(build.BOARDS)}
        self._update("project_tasks", task_id, field, new_value, fields)


def parse_call(call: str) -> tuple[str, dict[str, Any]]:
    """``calendar.delete_event.func(event_id="00000093")`` -> ("calendar.delete_event", {"event_id": ...})."""
    node = ast.parse(call.strip(), mode="eval").body
    if not isinstance(node, ast.Call) or node.args:
        raise ValueError(f"not a call with keyword arguments: {call}")
    name = ast.unparse(node.func).removesuffix(".func")
    return name, {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords if kw.arg}


# --- the oracle: gold calls as the workspace's actions ------------------------------------------

_PLAIN = {  # tool -> (action, {tool argument: action parameter})
    "analytics.create_plot": ("analytics.create_plot", {"time_min": "start", "time_max": "end",
                                                        "value_to_plot": "metric", "plot_type": "chart"}),
    "calendar.create_event": ("calendar.create_event", {"event_name": "name", "participant_email": "participant",
                                                        "event_start": "start", "duration": "duration"}),
    "calendar.delete_event": ("calendar.delete_event", {"event_id": "event"}),
    "email.send_email": ("email.send", {"recipient": "to", "subject": "subject", "body": "body"}),
    "email.delete_email": ("email.delete", {"email_id": "email"}),
    "email.forward_email": ("email.forward", {"email_id": "email", "recipient": "to"}),
    "email.reply_email": ("email.reply", {"email_id": "email", "body": "body"}),
    "customer_relationship_manager.add_customer": ("crm.add_customer", {
        "customer_name": "name", "assigned_to_email": "owner", "status": "status", "customer_email": "email",
        "customer_phone": "phone", "last_contact_date": "last_contact", "product_interest": "product",
        "notes": "notes", "follow_up_by": "follow_up"}),
    "customer_relationship_manager.delete_customer": ("crm.delete_customer", {"customer_id": "customer"}),
    "project_management.create_task": ("tasks.create", {"task_name": "name", "assigned_to_email": "assignee",
                                                        "list_name": "list", "due_date": "due", "board": "board"}),
    "project_management.delete_task": ("tasks.delete", {"task_id": "task"}),
}


def as_action(tool: str, kwargs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The workspace action and arguments that do what one gold call does."""
    if tool in _PLAIN:
        action, names = _PLAIN[tool]
        return action, {names[k]: v for k, v in kwargs.items() if v is not None}
    change = next((c for c in build.FIELD_CHANGES if c.tool == tool and c.field == kwargs.get("field")), None)
    if change is None:
        raise ValueError(f"no action of the workspace does {tool} on field {kwargs.get('field')!r}")
    record_param = build.RECORDS[tool][2]
    record_id = next(v for k, v in kwargs.items() if k.endswith("_id"))
    value = kwargs["new_value"]
    if change.spec.get("type") == "integer":
        value = int(value)
    return change.action, {record_param: record_id, change.param: value}


# --- the sandbox database ------------------------------------------------------------------------


def read_state(db: Path) -> State:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        state = {table: [dict(r) for r in conn.execute(f"SELECT * FROM {table}")] for table in COMPARED}
    conn.close()
    return state


def restore(pristine: Path, target: Path) -> None:
    """Make ``target`` a fresh copy of ``pristine`` (SQLite's backup: safe while the target is open)."""
    with sqlite3.connect(pristine) as source, sqlite3.connect(target) as dest:
        source.backup(dest)
    source.close()
    dest.close()


def normalised(state: State, original_ids: dict[str, set[str]]) -> list[tuple[str, tuple[tuple[str, str], ...]]]:
    """The state as sorted rows, case aside; a new row's generated id and send time are left out."""
    out = []
    for table in COMPARED:
        id_column = ID_COLUMNS[table]
        for row in state[table]:
            new = id_column is not None and row.get(id_column) not in original_ids[table]
            items = []
            for key in sorted(row):
                value = row[key]
                if new and key in (id_column, "sent_datetime"):
                    value = None
                items.append((key, "" if value is None else str(value).casefold()))
            out.append((table, tuple(items)))
    return sorted(out)


# --- running ---------------------------------------------------------------------------------------


@dataclass
class Outcome:
    task: str
    domain: str
    verdict: str  # correct | unwanted | no_action
    status: str  # the first turn's status
    asked: bool = False
    confirm: bool = False
    final: str = ""
    error: str = ""
    steps: list[str] = field(default_factory=list)


@dataclass
class Tally:
    n: int = 0
    correct: int = 0
    unwanted: int = 0
    no_action: int = 0
    asked: int = 0
    confirm: int = 0

    def add(self, outcome: Outcome) -> None:
        self.n += 1
        self.correct += outcome.verdict == "correct"
        self.unwanted += outcome.verdict == "unwanted"
        self.no_action += outcome.verdict == "no_action"
        self.asked += outcome.asked
        self.confirm += outcome.confirm

    def figures(self) -> dict[str, Any]:
        share = (lambda k: round(k / self.n, 4)) if self.n else (lambda k: 0.0)
        return {"n": self.n, "correct": share(self.correct), "unwanted_side_effects": share(self.unwanted),
                "no_action": share(self.no_action), "asked": share(self.asked),
                "asked_to_confirm": share(self.confirm)}


class Bench:
    """One workspace for the whole run; each task on a fresh copy of the sandbox."""

    def __init__(self, data: Path, folder: Path, interpreter: Any = None) -> None:
        from sayso import Workspace
        from sayso.clock import Clock
        from sayso.conversation import Chat
        from sayso.pipeline import Pipeline

        self.root = build.build(data, folder / "atlas")
        self.db = self.root / "systems" / "workbench.db"
        self.ws = Workspace.load(self.root)
        self.pipeline = Pipeline(self.ws, Clock(NOW))
        self.chat = Chat(self.pipeline, interpreter)
        self.connector = self.ws.connector("workbench")
        self.connector.lookup("bench-ledger")  # the effects ledger exists in the pristine copy too
        self.pristine = folder / "pristine.db"
        restore(self.db, self.pristine)
        self.original = read_state(self.pristine)
        self.original_ids = {t: {str(r[c]) for r in rows} if (c := ID_COLUMNS[t]) else set()
                             for t, rows in self.original.items()}
        self.unchanged = normalised(self.original, self.original_ids)

    def close(self) -> None:
        self.ws.close()

    def gold(self, calls: list[str]) -> State:
        sandbox = Sandbox(self.original)
        for call in calls:
            sandbox.apply(*parse_call(call))
        return sandbox.state

    def run_task(self, task: dict[str, Any], oracle: bool) -> Outcome:
        from sayso.errors import SaysoError
        from sayso.turn import TurnStatus

        self.reset()
        outcome = Outcome(task["id"], task["domain_file"], "", "")
        try:
            if oracle:
                for call in task["answer"]:
                    action, args = as_action(*parse_call(call))
                    result = self.pipeline.do(USER, action, args)
                    outcome.status = outcome.status or result.status.value
                    if result.status is TurnStatus.NEEDS_CONFIRMATION and result.confirmation:
                        outcome.confirm = True
                        result = self.pipeline.confirm(USER, result.confirmation["id"])
                    outcome.final = result.status.value
                    outcome.steps += [s.action for s in result.steps]
                outcome.status = outcome.status or "no_call"  # an empty gold answer: nothing to apply
            else:
                result = self.chat.say(USER, task["query"])
                outcome.status = result.status.value
                outcome.asked = result.status is TurnStatus.NEEDS_CLARIFICATION
                if result.status is TurnStatus.NEEDS_CONFIRMATION:
                    outcome.confirm = True
                    result = self.chat.say(USER, "yes", conversation=result.conversation)
                outcome.final = result.status.value
                outcome.steps = [s.action for s in result.steps]
        except SaysoError as exc:
            outcome.status = outcome.status or "error"
            outcome.final, outcome.error = "error", exc.message
        outcome.verdict = self.verdict(task["answer"])
        return outcome

    def reset(self) -> None:
        """A fresh copy of the sandbox (the pool reconnects on its next use, to the restored file)."""
        self.connector.close()
        restore(self.pristine, self.db)

    def verdict(self, answer: list[str]) -> str:
        """The sandbox now against the gold: correct, unwanted (changed, and not as the gold), or no_action."""
        after = normalised(read_state(self.db), self.original_ids)
        if after == normalised(self.gold(answer), self.original_ids):
            return "correct"
        return "unwanted" if after != self.unchanged else "no_action"


def read_tasks(path: Path, limit: int | None) -> Iterator[dict[str, Any]]:
    with path.open() as lines:
        count = 0
        for line in lines:
            if not line.strip():
                continue
            if limit is not None and count >= limit:
                return
            count += 1
            yield json.loads(line)


def half_of(task: dict[str, Any]) -> str:
    """``dev`` or ``held``: the half of the split by template a task belongs to (every phrasing of one
    template falls in the same half, so the held-back half measures templates never looked at)."""
    template = str(task.get("base_template") or task.get("query", ""))
    return "dev" if hashlib.sha256(template.encode()).digest()[0] % 2 == 0 else "held"


def run(tasks: Sequence[dict[str, Any]], data: Path, *, oracle: bool = False, interpreter: Any = None,
        progress: bool = False) -> tuple[dict[str, Any], list[Outcome]]:
    """Score ``tasks``; returns the figures (overall and by domain) and each task's outcome."""
    total, domains = Tally(), {}
    outcomes: list[Outcome] = []
    statuses: Counter[str] = Counter()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sayso-workbench-") as tmp:
        bench = Bench(data, Path(tmp), interpreter)
        try:
            for i, task in enumerate(tasks, 1):
                outcome = bench.run_task(task, oracle)
                outcomes.append(outcome)
                total.add(outcome)
                domains.setdefault(outcome.domain, Tally()).add(outcome)
                statuses[outcome.status] += 1
                if progress and i % 50 == 0:
                    print(f"workbench: {i} tasks, {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
        finally:
            bench.close()
    report = total.figures() | {
        "mode": "oracle" if oracle else "chat",
        "statuses": dict(statuses.most_common()),
        "errors": sum(1 for o in outcomes if o.error),
        "elapsed_s": round(time.perf_counter() - started, 2),
        "by_domain": {name: t.figures() for name, t in sorted(domains.items())},
        "published": {name: {"correct": c, "unwanted_side_effects": u} for name, (c, u) in PUBLISHED.items()},
    }
    return report, outcomes


def human(report: dict[str, Any], label: str) -> str:
    def row(name: str, fig: dict[str, Any]) -> str:
        return (f"  {name:<32} {fig['n']:>4} {fig['correct']:>8.1%} {fig['unwanted_side_effects']:>9.1%} "
                f"{fig['no_action']:>9.1%} {fig['asked']:>7.1%} {fig['asked_to_confirm']:>9.1%}")

    lines = [f"WorkBench ({report['mode']}, {label}): {report['n']} tasks in {report['elapsed_s']} s",
             f"  {'':<32} {'n':>4} {'correct':>8} {'unwanted':>9} {'no action':>9} {'asked':>7} {'confirm':>9}"]
    lines += [row(name, fig) for name, fig in report["by_domain"].items()]
    lines.append(row("all", report))
    lines.append("  published, all 690 tasks (correct, unwanted side effects):")
    lines += [f"    {name:<30} {fig['correct']:>8.0%} {fig['unwanted_side_effects']:>9.0%}"
              for name, fig in report["published"].items()]
    lines.append("  statuses of the first turn: " + ", ".join(f"{k} {v}" for k, v in report["statuses"].items()))
    return "\n".join(lines)


def default_data() -> Path | None:
    env = os.environ.get("SAYSO_WORKBENCH_DATA")
    if env:
        return Path(env)
    beside = ROOT.parent / "shared" / "benchmarks" / "workbench-dev" / "data"
    return beside if beside.exists() else None


def make_interpreter(name: str, model: str | None) -> Any:
    from sayso.interpreter import registry

    settings: dict[str, Any] = {"name": name}
    if model:
        settings["model"] = model
    return registry.create(name, settings)


def main(argv: Sequence[str] | None = None, *, interpreter: Any = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--tasks", type=Path, default=None, help="tasks, one JSON object a line "
                        "(default: tasks.jsonl beside the data folder)")
    parser.add_argument("--data", type=Path, default=None, help="WorkBench's data folder (default: "
                        "$SAYSO_WORKBENCH_DATA, else ../shared/benchmarks/workbench-dev/data)")
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="score the first N tasks only")
    parser.add_argument("--oracle", action="store_true", help="apply each task's gold calls instead of asking sayso")
    parser.add_argument("--json", action="store_true", help="end with one line of JSON")
    parser.add_argument("--interpreter", default="offline", help="a registered interpreter (default offline)")
    parser.add_argument("--model", default=None, help="the model, for a model interpreter")
    parser.add_argument("--half", choices=("dev", "held", "all"), default="all",
                        help="one half of the split by template: dev (to develop on), held (held back), or all")
    parser.add_argument("--dump", type=Path, default=None, help="write each task's outcome (JSONL)")
    args = parser.parse_args(argv)
    data = args.data or default_data()
    if data is None or not data.is_dir():
        parser.error("no data folder: give --data DIR or set SAYSO_WORKBENCH_DATA")
    tasks_file = args.tasks or data.parent / "tasks.jsonl"
    if not tasks_file.exists():
        parser.error(f"no tasks file at {tasks_file}: give --tasks FILE")
    chosen = interpreter if interpreter is not None or args.oracle else make_interpreter(args.interpreter, args.model)
    label = "gold calls" if args.oracle else f"interpreter {getattr(chosen, 'name', args.interpreter)}"
    tasks = [t for t in read_tasks(tasks_file, None) if args.half == "all" or half_of(t) == args.half]
    label += "" if args.half == "all" else f", {args.half} half"
    report, outcomes = run(tasks[:args.limit] if args.limit is not None else tasks, data, oracle=args.oracle,
                           interpreter=chosen, progress=True)
    if args.dump:
        with args.dump.open("w") as out:
            for o in outcomes:
                out.write(json.dumps(vars(o)) + "\n")
    print(human(report, label), flush=True)
    if args.json:
        print(json.dumps(report | {"interpreter": label}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
