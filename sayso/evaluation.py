"""Evaluation: conversations with expected outcomes, run through the whole pipeline.

A case file holds one conversation per line (format in evals/README.md). Each
conversation runs on a fresh copy of the demo workspace with the clock pinned,
turn by turn through ``Chat.say``, exactly as ``sayso chat`` would run it, and
each turn's result is compared with what was expected. A conversation is
correct when every one of its turns is.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .clock import Clock, parse_time
from .conversation import Chat
from .directory import Directory, Person
from .errors import InvalidArguments
from .interpreter import Interpreter
from .pipeline import Pipeline
from .turn import TurnResult
from .workspace import Workspace

__all__ = ["Case", "Expect", "Report", "load_cases", "run_cases", "user_turns"]

DEFAULT_NOW = "2026-11-25T09:00"


class Expect(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: str
    action: str | None = None
    steps: list[dict[str, Any]] | None = None
    args: dict[str, Any] | None = None
    records: list[str] | None = None
    rule: str | None = None
    options: list[str] | None = None
    reply_contains: list[str] | None = None
    error: str | None = None


class CaseTurn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    say: str
    as_: str | None = Field(default=None, alias="as")
    expect: Expect


class Case(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    category: str = "general"
    user: str
    now: str | None = None
    turns: list[CaseTurn] = Field(min_length=1)
    note: str | None = None


class Failure(BaseModel):
    case: str
    category: str
    turn: int
    said: str
    problems: list[str]


class Report(BaseModel):
    conversations: int = 0
    correct: int = 0
    turns: int = 0
    turns_correct: int = 0
    by_category: dict[str, list[int]] = Field(default_factory=dict)  # category -> [correct, total]
    failures: list[Failure] = Field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return self.correct / self.conversations if self.conversations else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"conversations": self.conversations, "correct": self.correct, "accuracy": round(self.accuracy, 4),
                "turns": self.turns, "turns_correct": self.turns_correct,
                "by_category": {k: {"correct": v[0], "total": v[1]} for k, v in sorted(self.by_category.items())},
                "failures": [f.model_dump() for f in self.failures]}


def load_cases(path: Path) -> list[Case]:
    """Parse a case file; a broken line is an error naming its line."""
    cases: list[Case] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InvalidArguments(f"cannot read {path}: {exc.strerror}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("//"):
            continue
        try:
            cases.append(Case.model_validate(json.loads(line)))
        except json.JSONDecodeError as exc:
            raise InvalidArguments(f"{path}:{number}: not JSON ({exc.msg})") from None
        except ValidationError as exc:
            problem = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
            raise InvalidArguments(f"{path}:{number}: {problem}") from None
    ids = [c.id for c in cases]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise InvalidArguments(f"{path}: duplicate case ids: {', '.join(duplicates)}")
    return cases


def user_turns(path: Path, directory: Directory, *,
               half: str = "all") -> Iterator[tuple[Case, CaseTurn, Person, datetime]]:
    """Each user turn of a case file (of one ``half``, or "all"), with its speaker and the conversation's pinned
    time: what a benchmark needs to read every turn as a conversation's first."""
    for case in load_cases(path):
        if half != "all" and half_of(case.id) != half:
            continue
        for turn in case.turns:
            person = directory.get(turn.as_ or case.user)
            yield case, turn, person, parse_time(case.now or DEFAULT_NOW, person.timezone)


def run_cases(cases: Iterable[Case], *, interpreter: Interpreter | None = None,
              progress: Callable[[int, Case], None] | None = None,
              observe: Callable[[Case, int, TurnResult], None] | None = None) -> Report:
    """Run each conversation on a fresh demo workspace; ``observe`` sees every turn's result (its reply)."""
    report = Report()
    templates: dict[date, Path] = {}
    scratch = Path(tempfile.mkdtemp(prefix="sayso-eval-"))
    try:
        for n, case in enumerate(cases, 1):
            if progress:
                progress(n, case)
            when = case.now or DEFAULT_NOW
            reference = parse_time(when).date()
            if reference not in templates:
                templates[reference] = scratch / f"template-{reference}"
                Workspace.init(templates[reference], demo=True, reference=reference)
            root = scratch / f"case-{n}"
            shutil.copytree(templates[reference], root)
            _run_case(case, root, when, report, interpreter, observe)
            shutil.rmtree(root, ignore_errors=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return report


def _run_case(case: Case, root: Path, when: str, report: Report, interpreter: Interpreter | None,
              observe: Callable[[Case, int, TurnResult], None] | None = None) -> None:
    ws = Workspace.load(root)
    try:
        user = case.user
        conversation: str | None = None
        ok = True
        chats: dict[str, Chat] = {}
        for i, turn in enumerate(case.turns):
            if turn.as_ and turn.as_ != user:
                user, conversation = turn.as_, None  # a conversation is one person's: a new speaker starts anew
            if user not in chats:
                tz = ws.directory.get(user).timezone if user in ws.directory else None
                chats[user] = Chat(Pipeline(ws, Clock.from_option(when, tz), channel="eval"), interpreter)
            result = chats[user].say(user, turn.say, conversation)
            conversation = result.conversation
            if observe is not None:
                observe(case, i, result)
            problems = compare(turn.expect, result)
            report.turns += 1
            if problems:
                ok = False
                report.failures.append(Failure(case=case.id, category=case.category, turn=i, said=turn.say,
                                               problems=problems))
                break
            report.turns_correct += 1
    finally:
        ws.close()
    report.conversations += 1
    report.correct += int(ok)
    tally = report.by_category.setdefault(case.category, [0, 0])
    tally[0] += int(ok)
    tally[1] += 1


def _same(expected: Any, got: Any) -> bool:
    if isinstance(expected, list) and isinstance(got, list):
        return len(expected) == len(got) and all(_same(e, g) for e, g in zip(expected, got, strict=True))
    if isinstance(expected, str) and isinstance(got, str) and "T" in expected and "T" in got:
        try:
            return datetime.fromisoformat(expected) == datetime.fromisoformat(got)
        except ValueError:
            pass
    if isinstance(expected, str) and isinstance(got, str):
        return expected.strip().lower() == got.strip().lower()
    return bool(expected == got)


def _args_problems(where: str, expected: dict[str, Any], got: dict[str, Any]) -> list[str]:
    return [f"{where} arg {key}: expected {value!r}, got {got.get(key)!r}"
            for key, value in expected.items() if not _same(value, got.get(key))]


def compare(expect: Expect, result: TurnResult) -> list[str]:
    """What differs between an expectation and a turn's result (empty: the turn is right)."""
    problems: list[str] = []
    if result.status.value != expect.status:
        problems.append(f"status: expected {expect.status}, got {result.status.value} ({result.reply[:160]!r})")
    steps = result.steps
    if expect.action is not None:
        got = steps[0].action if steps else None
        if got != expect.action:
            problems.append(f"action: expected {expect.action}, got {got}")
    if expect.args is not None:
        problems += _args_problems("step 0", expect.args, steps[0].args if steps else {})
    if expect.steps is not None:
        actions = [s.action for s in steps]
        wanted = [s.get("action") for s in expect.steps]
        if actions != wanted:
            problems.append(f"steps: expected {wanted}, got {actions}")
        else:
            for i, (want, step) in enumerate(zip(expect.steps, steps, strict=True)):
                problems += _args_problems(f"step {i}", want.get("args", {}), step.args)
    if expect.records is not None:
        got_ids = sorted({str(r.get("id")) for s in steps for r in (s.records or [])})
        if got_ids != sorted(set(expect.records)):
            problems.append(f"records: expected {sorted(set(expect.records))}, got {got_ids}")
    if expect.rule is not None and result.rule != expect.rule:
        problems.append(f"rule: expected {expect.rule}, got {result.rule}")
    if expect.options is not None:
        got_options = sorted(o.value for o in result.options or [])
        if got_options != sorted(expect.options):
            problems.append(f"options: expected {sorted(expect.options)}, got {got_options}")
    for text in expect.reply_contains or []:
        if text.lower() not in result.reply.lower():
            problems.append(f"reply should contain {text!r}: {result.reply[:200]!r}")
    if expect.error is not None:
        code = (result.error or {}).get("code")
        if code != expect.error:
            problems.append(f"error: expected {expect.error}, got {code}")
    return problems


def half_of(case_id: str) -> str:
    """"dev" or "test": a case's half, fixed by a hash of its id so that adding cases never moves others.
    Develop against the dev half; run the test half only before stopping, to see what generalises."""
    return "dev" if hashlib.sha256(case_id.encode()).digest()[0] % 2 == 0 else "test"


def halves(report: Report, cases: Iterable[Case]) -> dict[str, dict[str, Any]]:
    """Conversations right per half of ``cases`` (those ``report`` ran)."""
    failed = {f.case for f in report.failures}
    out: dict[str, dict[str, Any]] = {}
    for case in cases:
        half = out.setdefault(half_of(case.id), {"correct": 0, "total": 0})
        half["total"] += 1
        half["correct"] += int(case.id not in failed)
    for half in out.values():
        half["accuracy"] = round(half["correct"] / half["total"], 4)
    return dict(sorted(out.items()))


def summary_rows(report: Report) -> list[tuple[str, int, int, float]]:
    """(category, correct, total, accuracy) per category, by name."""
    return [(name, correct, total, correct / total if total else 0.0)
            for name, (correct, total) in sorted(report.by_category.items())]
