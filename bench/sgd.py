"""Score an interpreter on Schema-Guided Dialogue (SGD) turns: intents, slots and declined turns.

    python bench/sgd.py --schema SCHEMA.json --cases CASES.jsonl [--setting own|all] [--json]
                        [--limit N] [--failures K] [--dump PATH] [--interpreter NAME] [--describe intent|both]
                        [--weights KEY=VALUE ...] [--half tuned|held]

The schema file becomes a sayso catalog, one action ``<service>.<intent>`` per intent
whose parameters are the intent's required and optional slots (categorical slots as
``Literal`` enums). Nothing else about the data is used to build it: no utterances, no
examples. Setting ``own`` gives each case the catalog of its own service; ``all`` gives
every case one catalog of every service, so the interpreter must also pick the service.

Each case is one user turn in one service frame. The interpreter reads the utterance with
a context whose ``pending_action`` is the intent active before the turn and whose ``history``
holds the system's last words (``prev_system_utterance``), and its answer
maps to a dialogue state: a plan (or a question with steps) predicts its first step's
intent and slots; ``none`` with reason ``decline`` predicts no active intent (``NONE``);
anything else (thanks, small talk, a yes/no reply, a question without steps) keeps the
previous intent, as a dialogue state tracker carries its state over (a reply whose step is
the pending action, an answer filling in its arguments, keeps the intent and counts the slots). See
``bench/README.md`` for how slots are matched and what is ignored.

Services are split in two halves by a hash of their name: tune on the "tuned" services
(``--half tuned``) and read the "held" ones as services the interpreter was never tuned on;
the report gives both. ``--weights`` changes the offline interpreter's weights
(``sayso/interpreter/offline/weights.py``) for a sweep.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from sayso.catalog import Action, Catalog, ResourceSpec, RiskRule, Tier
from sayso.directory import Person
from sayso.evaluation import half_of
from sayso.interpreter import Context, Interpretation, Interpreter, ProposedStep

Setting = Literal["own", "all"]
Describe = Literal["intent", "both"]
Half = Literal["tuned", "held"]

NONE = "NONE"
# SGD's dialogues were collected as if in early March 2019 ("today" is 2019-03-01 in the schema defaults).
NOW = datetime(2019, 3, 1, 9, 0, tzinfo=UTC)
PERSON = Person(id="user", name="User", role="user", timezone="UTC")
PROGRESS_EVERY = 2000

INTENT_FAILURES = ("wrong intent", "missed intent change", "false none", "missed none")
SLOT_FAILURES = ("missed slot", "wrong value", "spurious slot")


# --- the schema as a catalog -----------------------------------------------------------------


def load_schema(path: Path) -> list[dict[str, Any]]:
    """The services of an SGD ``schema.json``, as published."""
    services = json.loads(path.read_text())
    if not isinstance(services, list):
        raise ValueError(f"{path}: expected a list of services")
    return services


def _python_name(slot: str) -> str:
    """A field name pydantic accepts for ``slot`` (the slot name itself stays the alias)."""
    name = re.sub(r"\W", "_", slot)
    if not name.isidentifier() or name.startswith("_") or hasattr(BaseModel, name):
        name = f"{name.lstrip('_')}_slot"
    return name


def _slot_field(slot: dict[str, Any], required: bool) -> tuple[Any, Any]:
    annotation: Any = str
    if slot.get("is_categorical") and slot.get("possible_values"):
        annotation = Literal[tuple(str(v) for v in slot["possible_values"])]
    if not required:
        annotation = annotation | None
    alias = slot["name"] if _python_name(slot["name"]) != slot["name"] else None
    info = Field(default=... if required else None, description=slot.get("description") or None, alias=alias)
    return annotation, info


def intent_description(service: dict[str, Any], intent: dict[str, Any], describe: Describe = "both") -> str:
    """The intent's own description; with ``both`` (the default), followed by its service's.

    The service's words name the domain when the intent's description is terse ("Get the balance
    of an account. Service to manage your bank accounts and finances."); on the dev split the two
    choices score within two points of each other, both ways (bench/README.md).
    """
    text = str(intent.get("description") or intent["name"]).strip().rstrip(".")
    if describe == "both" and service.get("description"):
        return f"{text}. {str(service['description']).strip().rstrip('.')}."
    return f"{text}."


def service_actions(service: dict[str, Any], describe: Describe = "both") -> list[Action]:
    """One action per intent of ``service``, named ``<service>.<intent>``."""
    slots = {s["name"]: s for s in service["slots"]}
    actions = []
    for intent in service["intents"]:
        name = f"{service['service_name']}.{intent['name']}"
        fields: dict[str, Any] = {}
        for slot_name in intent["required_slots"]:
            fields[_python_name(slot_name)] = _slot_field(slots[slot_name], required=True)
        for slot_name in intent["optional_slots"]:
            if slot_name not in intent["required_slots"]:
                fields[_python_name(slot_name)] = _slot_field(slots[slot_name], required=False)
        model = create_model(
            "Params_" + re.sub(r"\W", "_", name),
            __config__=ConfigDict(extra="forbid", populate_by_name=True),
            **fields,
        )
        transactional = bool(intent.get("is_transactional"))
        actions.append(
            Action(
                name=name,
                description=intent_description(service, intent, describe),
                params=model,
                kind="write" if transactional else "read",
                risk=RiskRule(tier=Tier.LOW if transactional else Tier.NONE),
                connector="sgd",
                operation=name,
                resource=ResourceSpec("System"),
                source=f"sgd:{service['service_name']}",
            )
        )
    return actions


def build_catalog(services: Iterable[dict[str, Any]], describe: Describe = "both") -> Catalog:
    return Catalog([a for service in services for a in service_actions(service, describe)])


class Catalogs:
    """The catalog each case is read against: its service's own (cached), or one of every service."""

    def __init__(self, services: Sequence[dict[str, Any]], setting: Setting, describe: Describe = "both") -> None:
        self.setting = setting
        self._services = {s["service_name"]: s for s in services}
        self._describe = describe
        self._own: dict[str, Catalog] = {}
        self._all = build_catalog(services, describe) if setting == "all" else None

    def for_service(self, service: str) -> Catalog:
        if self._all is not None:
            return self._all
        if service not in self._own:
            if service not in self._services:
                raise KeyError(f"service {service!r} is not in the schema")
            self._own[service] = build_catalog([self._services[service]], self._describe)
        return self._own[service]


def slot_kinds(services: Iterable[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """A rough kind per (service, slot), for the per-kind table: categorical, date, time, place, number, other."""
    kinds = {}
    for service in services:
        for slot in service["slots"]:
            name = slot["name"].lower()
            if slot.get("is_categorical"):
                kind = "categorical"
            elif "date" in name:
                kind = "date"
            elif "time" in name:
                kind = "time"
            elif re.search(r"city|location|destination|area|origin|address|place", name):
                kind = "place"
            elif re.search(r"number|amount|count|price|balance", name):
                kind = "number"
            else:
                kind = "other"
            kinds[(service["service_name"], slot["name"])] = kind
    return kinds


# --- from an interpretation to a dialogue state -----------------------------------------------


@dataclass
class Prediction:
    intent: str
    outcome: str  # plan | question | none:decline | carry:<kind>[:<reason>] | error
    action: str | None = None
    # slot -> the values it may be matched on: the words it came from, then the argument itself
    slots: dict[str, tuple[str, ...]] = field(default_factory=dict)


def _intent_of(action: str) -> str:
    return action.split(".", 1)[1] if "." in action else action


def _slot_of(action: Action | None, param: str) -> str:
    if action is None:
        return param
    info = action.params.model_fields.get(param)
    return info.alias or param if info is not None else param


def _step_slots(step: ProposedStep, catalog: Catalog) -> dict[str, tuple[str, ...]]:
    action = catalog.get(step.action) if step.action in catalog else None
    slots: dict[str, tuple[str, ...]] = {}
    for param in dict.fromkeys([*step.mentions, *step.args]):
        values: list[str] = []
        mention = step.mentions.get(param)
        if mention:
            values.append(str(mention))
        arg = step.args.get(param)
        if arg is not None and str(arg) not in values:
            values.append(str(arg))
        if values:
            slots[_slot_of(action, param)] = tuple(values)
    return slots


def predict(interpretation: Interpretation, prev_intent: str, catalog: Catalog) -> Prediction:
    """The dialogue state an interpretation stands for (see the module docstring)."""
    kind = interpretation.kind
    steps = interpretation.steps
    if kind in ("plan", "question") and steps:
        return Prediction(_intent_of(steps[0].action), kind, steps[0].action, _step_slots(steps[0], catalog))
    if kind == "none" and interpretation.reason == "decline":
        return Prediction(NONE, "none:decline")
    outcome = f"carry:{kind}" + (f":{interpretation.reason}" if interpretation.reason else "")
    if kind == "reply" and steps and prev_intent != NONE and _intent_of(steps[0].action) == prev_intent:
        # an answer that fills in the pending action's arguments: the intent carries over, the slots count
        return Prediction(prev_intent, outcome, steps[0].action, _step_slots(steps[0], catalog))
    return Prediction(prev_intent, outcome)


# --- scoring ----------------------------------------------------------------------------------


def _norm(value: str) -> str:
    return value.strip().casefold()


@dataclass
class SlotResult:
    slot: str
    status: Literal["tp", "fp", "fn", "ignored"]
    predicted: str | None
    gold: str | None


def score_slots(predicted: dict[str, tuple[str, ...]], case: dict[str, Any]) -> list[SlotResult]:
    """Each predicted and each gold slot of one case, judged.

    A prediction is right when one of its values equals the gold value as said or its
    canonical form, ignoring case and surrounding spaces. A wrong or extra prediction for
    a slot the user gave in words that are not in the utterance (``informed_not_verbatim``:
    "four people" for 4, "I don't care") is ignored: there is no verbatim gold to judge it by.
    """
    gold: dict[str, str] = case["gold_slots"]
    canonical: dict[str, str] = case.get("gold_slots_canonical") or {}
    not_verbatim: dict[str, Any] = case.get("informed_not_verbatim") or {}
    results = []
    for slot, values in predicted.items():
        shown = values[0] if values else ""
        if slot in gold:
            accepted = {_norm(gold[slot]), _norm(str(canonical.get(slot, gold[slot])))}
            if any(_norm(v) in accepted for v in values):
                results.append(SlotResult(slot, "tp", shown, gold[slot]))
                continue
            results.append(SlotResult(slot, "fp", shown, gold[slot]))
            results.append(SlotResult(slot, "fn", None, gold[slot]))
        elif slot in not_verbatim:
            results.append(SlotResult(slot, "ignored", shown, None))
        else:
            results.append(SlotResult(slot, "fp", shown, None))
    for slot, value in gold.items():
        if slot not in predicted:
            results.append(SlotResult(slot, "fn", None, value))
    return results


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def _f1(p: float | None, r: float | None) -> float | None:
    if p is None or r is None:
        return None
    return 2 * p * r / (p + r) if p + r else 0.0


@dataclass
class Tally:
    n: int = 0
    intent_ok: int = 0
    tp: int = 0
    predicted: int = 0  # predicted slots, ignored ones left out
    gold: int = 0
    ignored: int = 0
    pred_none: int = 0
    pred_none_ok: int = 0
    gold_none: int = 0

    def add_slots(self, results: Iterable[SlotResult]) -> None:
        for r in results:
            self.tp += r.status == "tp"
            self.predicted += r.status in ("tp", "fp")
            self.gold += r.status in ("tp", "fn")
            self.ignored += r.status == "ignored"

    @property
    def slot_precision(self) -> float | None:
        return _ratio(self.tp, self.predicted)

    @property
    def slot_recall(self) -> float | None:
        return _ratio(self.tp, self.gold)

    def figures(self) -> dict[str, Any]:
        return {"n": self.n, "intent_accuracy": _ratio(self.intent_ok, self.n)} | self.slot_figures()

    def slot_figures(self) -> dict[str, Any]:
        p, r = self.slot_precision, self.slot_recall
        return {
            "slot_precision": p,
            "slot_recall": r,
            "slot_f1": _f1(p, r),
            "slots_predicted": self.predicted,
            "slots_gold": self.gold,
            "slots_ignored": self.ignored,
        }


@dataclass
class Failure:
    kind: str
    case: dict[str, Any]
    prediction: Prediction
    detail: str


class Sampler:
    """Up to ``k`` example failures per kind, drawn evenly from the whole run (reservoir, fixed seed)."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.seen: Counter[str] = Counter()
        self.kept: dict[str, list[Failure]] = {}
        self._random = random.Random(0)

    def offer(self, failure: Failure) -> None:
        if self.k <= 0:
            return
        self.seen[failure.kind] += 1
        kept = self.kept.setdefault(failure.kind, [])
        if len(kept) < self.k:
            kept.append(failure)
        else:
            j = self._random.randrange(self.seen[failure.kind])
            if j < self.k:
                kept[j] = failure


@dataclass
class Run:
    setting: Setting
    total: Tally = field(default_factory=Tally)
    services: dict[str, Tally] = field(default_factory=dict)
    halves: dict[str, Tally] = field(default_factory=dict)  # "tuned" and "held" services (service_half)
    kinds: dict[str, Tally] = field(default_factory=dict)
    outcomes: Counter[str] = field(default_factory=Counter)
    service_ok: int = 0  # ``all``: plans whose action is of the case's own service
    service_judged: int = 0
    errors: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    failures: Sampler = field(default_factory=lambda: Sampler(0))

    def report(self) -> dict[str, Any]:
        total = self.total.figures()
        out: dict[str, Any] = {
            "n": total["n"],
            "intent_accuracy": total["intent_accuracy"],
            "slot_precision": total["slot_precision"],
            "slot_recall": total["slot_recall"],
            "slot_f1": total["slot_f1"],
        }
        if self.total.gold_none:
            out["no_action_precision"] = _ratio(self.total.pred_none_ok, self.total.pred_none)
            out["no_action_recall"] = _ratio(self.total.pred_none_ok, self.total.gold_none)
        out |= {
            "predicted_none": self.total.pred_none,
            "gold_none": self.total.gold_none,
            "slots_predicted": total["slots_predicted"],
            "slots_gold": total["slots_gold"],
            "slots_ignored": total["slots_ignored"],
            "setting": self.setting,
            "service_accuracy": _ratio(self.service_ok, self.service_judged) if self.setting == "all" else None,
            "outcomes": dict(self.outcomes.most_common()),
            "errors": len(self.errors),
            "elapsed_s": round(self.elapsed, 2),
            "halves": {name: t.figures() for name, t in sorted(self.halves.items())},
            "per_service": {name: t.figures() for name, t in sorted(self.services.items())},
            "per_slot_kind": {name: t.slot_figures() for name, t in sorted(self.kinds.items())},
        }
        return out


def _intent_failure(case: dict[str, Any], pred: Prediction) -> str:
    gold, prev = case["gold_active_intent"], case["prev_active_intent"]
    if pred.intent == NONE:
        return "false none"
    if gold == NONE:
        return "missed none"
    if pred.outcome.startswith("carry") and pred.intent == prev:
        return "missed intent change"
    return "wrong intent"


def score_case(run: Run, case: dict[str, Any], pred: Prediction, kinds: dict[tuple[str, str], str]) -> None:
    """Add one case's prediction to the run's tallies and failure samples."""
    service = case["service"]
    gold_intent = case["gold_active_intent"]
    per_service = run.services.setdefault(service, Tally())
    half = run.halves.setdefault(service_half(service), Tally())
    slots = score_slots(pred.slots, case)
    intent_ok = pred.intent == gold_intent
    for tally in (run.total, per_service, half):
        tally.n += 1
        tally.intent_ok += intent_ok
        tally.gold_none += gold_intent == NONE
        tally.pred_none += pred.intent == NONE
        tally.pred_none_ok += pred.intent == NONE and gold_intent == NONE
        tally.add_slots(slots)
    for r in slots:
        run.kinds.setdefault(kinds.get((service, r.slot), "other"), Tally()).add_slots([r])
    run.outcomes[pred.outcome.split(":")[0] if pred.outcome.startswith("carry") else pred.outcome] += 1
    if run.setting == "all" and pred.action is not None:
        run.service_judged += 1
        run.service_ok += pred.action.split(".", 1)[0] == service
    if not intent_ok:
        detail = f"predicted {pred.intent}, gold {gold_intent}"
        run.failures.offer(Failure(_intent_failure(case, pred), case, pred, detail))
    for r in slots:
        if r.status == "fn" and r.slot in pred.slots:
            run.failures.offer(
                Failure("wrong value", case, pred, f"{r.slot}: predicted {pred.slots[r.slot]!r}, gold {r.gold!r}")
            )
        elif r.status == "fn":
            run.failures.offer(Failure("missed slot", case, pred, f"{r.slot}: gold {r.gold!r}, not predicted"))
        elif r.status == "fp" and r.gold is None:
            run.failures.offer(Failure("spurious slot", case, pred, f"{r.slot}: predicted {r.predicted!r}, no gold"))


# --- running ----------------------------------------------------------------------------------


def service_half(service: str) -> Half:
    """"tuned" or "held": whole services are held back (a hash of the name, as ``sayso eval --half`` splits
    conversations), since what matters is how the interpreter does on services it was never tuned on."""
    return "tuned" if half_of(service) == "dev" else "held"


def read_cases(path: Path, limit: int | None = None, half: Half | None = None) -> Iterator[dict[str, Any]]:
    with path.open() as lines:
        count = 0
        for line in lines:
            if not line.strip() or (half is not None and service_half(json.loads(line)["service"]) != half):
                continue
            if limit is not None and count >= limit:
                return
            count += 1
            yield json.loads(line)


def context_for(case: dict[str, Any]) -> Context:
    """The intent active before the turn is the pending action; the system's last words, when the case has
    them, are the conversation's history (a model interpreter reads them; the offline one looks only at whether
    they offer a write after a search)."""
    prev = case["prev_active_intent"]
    said = case.get("prev_system_utterance") or ""
    history = [{"role": "assistant", "text": said}] if said.strip() else []
    return Context(now=NOW, pending_action=f"{case['service']}.{prev}" if prev != NONE else None, history=history)


def run_cases(
    interpreter: Interpreter,
    services: Sequence[dict[str, Any]],
    cases: Iterable[dict[str, Any]],
    setting: Setting = "own",
    *,
    failures: int = 0,
    describe: Describe = "both",
    progress: bool = False,
    dump: Any = None,
) -> Run:
    """Interpret every case in this process and score it; ``dump`` is a text file for one JSON line per case."""
    catalogs = Catalogs(services, setting, describe)
    kinds = slot_kinds(services)
    run = Run(setting=setting, failures=Sampler(failures))
    start = time.perf_counter()
    for i, case in enumerate(cases, 1):
        catalog = catalogs.for_service(case["service"])
        prev = case["prev_active_intent"]
        try:
            interpretation = interpreter.interpret(case["utterance"], context_for(case), catalog, PERSON)
            pred = predict(interpretation, prev, catalog)
        except Exception as exc:  # a crash on one case is a figure to report, not the end of the run
            run.errors.append(f"{case['service']} {case['dialogue_id']}#{case['turn_index']}: {exc!r}")
            pred = Prediction(prev, "error")
        score_case(run, case, pred, kinds)
        if dump is not None:
            dump.write(json.dumps(_dump_line(case, pred)) + "\n")
        if progress and i % PROGRESS_EVERY == 0:
            elapsed = time.perf_counter() - start
            print(f"sgd: {i} cases, {elapsed:.1f} s ({1000 * elapsed / i:.2f} ms/case)", file=sys.stderr, flush=True)
    run.elapsed = time.perf_counter() - start
    return run


def _dump_line(case: dict[str, Any], pred: Prediction) -> dict[str, Any]:
    keys = ("service", "dialogue_id", "turn_index", "utterance", "prev_system_utterance", "prev_active_intent",
            "gold_active_intent", "intent_in_turn", "user_acts", "gold_slots", "gold_slots_canonical",
            "informed_not_verbatim")
    return {k: case.get(k) for k in keys} | {
        "predicted_intent": pred.intent,
        "predicted_action": pred.action,
        "outcome": pred.outcome,
        "predicted_slots": {k: list(v) for k, v in pred.slots.items()},
    }


# --- output -----------------------------------------------------------------------------------


def _fmt(value: float | None) -> str:
    return "   -  " if value is None else f"{value:6.3f}"


def human_report(run: Run, report: dict[str, Any], interpreter: str) -> str:
    n = report["n"]
    ms = 1000 * run.elapsed / n if n else 0.0
    lines = [
        f"SGD, setting {run.setting}, interpreter {interpreter}: {n} cases in {run.elapsed:.1f} s ({ms:.2f} ms/case)",
        f"  intent accuracy      {_fmt(report['intent_accuracy'])}",
        f"  slot precision       {_fmt(report['slot_precision'])}   ({report['slots_predicted']} predicted, "
        f"{report['slots_ignored']} more ignored: the user gave those slots in other words)",
        f"  slot recall          {_fmt(report['slot_recall'])}   ({report['slots_gold']} gold)",
        f"  slot F1              {_fmt(report['slot_f1'])}",
    ]
    if "no_action_precision" in report:
        if report["predicted_none"]:
            lines.append(
                f"  no-action precision  {_fmt(report['no_action_precision'])}   ({report['predicted_none']} turns "
                f"predicted NONE, {report['gold_none']} in the gold; recall {_fmt(report['no_action_recall'])})"
            )
        else:
            lines.append(
                f"  no-action precision     -     (no turn predicted NONE, so it is null; {report['gold_none']} gold)"
            )
    if report["service_accuracy"] is not None:
        share = _fmt(report["service_accuracy"])
        lines.append(f"  service accuracy     {share}   (plans whose action is of the case's own service)")
    for name, fig in report["halves"].items():
        lines.append(f"  {name + ' services':<20} n {fig['n']:>5}, intent {_fmt(fig['intent_accuracy'])}, "
                     f"slot F1 {_fmt(fig['slot_f1'])}")
    lines.append("  outcomes: " + ", ".join(f"{k} {v}" for k, v in report["outcomes"].items()))
    if run.errors:
        lines.append(f"  ERRORS: the interpreter raised on {len(run.errors)} cases (scored as carry-over); first:")
        lines.extend(f"    {e}" for e in run.errors[:5])
    lines += ["", f"  {'service':<16} {'n':>6} {'intent':>7} {'slot P':>7} {'slot R':>7} {'slot F1':>7}"]
    for name, fig in report["per_service"].items():
        lines.append(
            f"  {name:<16} {fig['n']:>6} {_fmt(fig['intent_accuracy']):>7} {_fmt(fig['slot_precision']):>7} "
            f"{_fmt(fig['slot_recall']):>7} {_fmt(fig['slot_f1']):>7}"
        )
    lines += ["", f"  {'slot kind':<16} {'gold':>6} {'pred':>6} {'slot P':>7} {'slot R':>7} {'slot F1':>7}"]
    for name, fig in report["per_slot_kind"].items():
        lines.append(
            f"  {name:<16} {fig['slots_gold']:>6} {fig['slots_predicted']:>6} {_fmt(fig['slot_precision']):>7} "
            f"{_fmt(fig['slot_recall']):>7} {_fmt(fig['slot_f1']):>7}"
        )
    return "\n".join(lines)


def failures_report(sampler: Sampler) -> str:
    lines = []
    for kind in (*INTENT_FAILURES, *SLOT_FAILURES):
        if not sampler.seen[kind]:
            continue
        lines.append(f"--- {kind}: {sampler.seen[kind]} (examples: {len(sampler.kept[kind])})")
        for f in sampler.kept[kind]:
            c = f.case
            lines.append(f"  [{c['service']} {c['dialogue_id']}#{c['turn_index']}, before: {c['prev_active_intent']}]")
            if c.get("prev_system_utterance"):
                lines.append(f"    system: {c['prev_system_utterance']}")
            lines.append(f"    user:   {c['utterance']}")
            lines.append(f"    {f.detail}; outcome {f.prediction.outcome}")
    return "\n".join(lines)


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


def make_interpreter(name: str, weights: Sequence[str] = ()) -> Interpreter:
    """A registered interpreter; the offline one with ``weights`` ("min_score=1.4") changed from its defaults."""
    if name == "offline":
        from sayso.interpreter.offline import OfflineInterpreter
        from sayso.interpreter.offline.weights import DEFAULT

        return OfflineInterpreter(weights=DEFAULT.with_(*weights))
    from sayso.interpreter import registry

    return registry.create(name)


def main(argv: Sequence[str] | None = None, *, interpreter: Interpreter | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--schema", type=Path, required=True, help="the split's schema.json")
    parser.add_argument("--cases", type=Path, required=True, help="cases, one JSON object a line")
    parser.add_argument("--setting", choices=("own", "all"), default="own",
                        help="own: each case sees its service's actions; all: every service's (default own)")
    parser.add_argument("--json", action="store_true", help="end with one line of JSON")
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="score the first N cases only")
    parser.add_argument("--failures", type=int, default=0, metavar="K", help="print K example failures per kind")
    parser.add_argument("--dump", type=Path, default=None, metavar="PATH", help="write each case's prediction (JSONL)")
    parser.add_argument("--interpreter", default="offline", help="a registered interpreter (default offline)")
    parser.add_argument("--describe", choices=("intent", "both"), default="both",
                        help="action descriptions: the intent's only, or followed by its service's (default)")
    parser.add_argument("--weights", action="append", default=[], metavar="KEY=VALUE",
                        help="change an offline weight (repeatable): min_score=1.4, evidence.choice=2.5")
    parser.add_argument("--half", choices=("tuned", "held"), default=None,
                        help="only the services of one half (a hash of the service name); tune on 'tuned' only")
    args = parser.parse_args(argv)

    services = load_schema(args.schema)
    chosen = interpreter if interpreter is not None else make_interpreter(args.interpreter, args.weights)
    label = f"{getattr(chosen, 'name', type(chosen).__name__)} {getattr(chosen, 'version', '')}".strip()
    cases = read_cases(args.cases, args.limit, args.half)
    dump = args.dump.open("w") if args.dump else None
    try:
        run = run_cases(chosen, services, cases, args.setting, failures=args.failures, describe=args.describe,
                        progress=True, dump=dump)
    finally:
        if dump is not None:
            dump.close()
    report = run.report()
    if args.failures:
        print(failures_report(run.failures), file=sys.stderr)
    print(human_report(run, report, label), flush=True)
    if args.json:
        print(json.dumps(_rounded(report | {"interpreter": label, "weights": args.weights})))
    return 0


if __name__ == "__main__":
    sys.exit(main())
