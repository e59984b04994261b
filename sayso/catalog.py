"""The action catalog: what sayso can do, declared as data.

An action has a name, a description, examples, typed parameters (a pydantic
model), a kind (read or write), a risk rule, the resource it touches and the
connector operation that performs it. Actions come from Python (the
:func:`action` decorator over a function whose one parameter is a pydantic
model; the function turns validated parameters into the connector's request)
and from YAML files in the workspace's ``actions/`` folder.

Parameters that name things carry a marker in their JSON Schema so grounding
knows what to resolve: ``x-record`` (a record type), ``x-person`` (a directory
person) and ``x-recipient`` (a person or a ``#channel``). Other markers tell the
pipeline and the interpreters what a company's data looks like: ``x-bind`` (the
person attribute a system stores), ``x-labels`` (the words people use for enum
values), ``x-id-pattern`` (what a record id looks like), ``x-default`` (a relative
default: now, today, another parameter) and ``x-direction`` (past or future dates).
"""

from __future__ import annotations

import importlib
import json
import operator
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from pydantic_core import ErrorDetails

from .config import read_text
from .errors import InvalidArguments, UnknownAction, WorkspaceError

__all__ = [
    "Action",
    "Catalog",
    "RiskRule",
    "Tier",
    "load_yaml_actions",
]


class Tier(StrEnum):
    """Risk tiers, in order."""

    NONE = "none"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _TIER_ORDER.index(self)

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Tier):
            return NotImplemented
        return self.rank >= other.rank

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Tier):
            return NotImplemented
        return self.rank > other.rank


_TIER_ORDER = [Tier.NONE, Tier.LOW, Tier.MEDIUM, Tier.HIGH, Tier.CRITICAL]


class RiskCondition(BaseModel):
    """One argument test; every given test must hold for the condition to match."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    arg: str
    tier: Tier
    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None
    equals: Any = None
    one_of: list[Any] | None = Field(default=None, alias="in")
    startswith: str | None = None
    endswith: str | None = None
    not_endswith: str | None = None
    count_gt: int | None = None
    count_gte: int | None = None

    def matches(self, args: dict[str, Any]) -> bool:
        if self.arg not in args or args[self.arg] is None:
            return False
        value = args[self.arg]
        items = value if isinstance(value, list | tuple) else [value]
        checks: list[bool] = []
        if self.count_gt is not None:
            checks.append(len(items) > self.count_gt)
        if self.count_gte is not None:
            checks.append(len(items) >= self.count_gte)
        if self.startswith is not None:
            checks.append(any(str(v).startswith(self.startswith) for v in items))
        if self.endswith is not None:
            checks.append(any(str(v).lower().endswith(self.endswith.lower()) for v in items))
        if self.not_endswith is not None:  # "a recipient outside the company": any item without the suffix
            checks.append(any(not str(v).lower().endswith(self.not_endswith.lower()) for v in items))
        if self.equals is not None:
            checks.append(value == self.equals)
        if self.one_of is not None:
            checks.append(value in self.one_of)
        bounds: list[tuple[float | None, Callable[[Any, Any], bool]]] = [
            (self.gt, operator.gt), (self.gte, operator.ge), (self.lt, operator.lt), (self.lte, operator.le),
        ]
        for bound, test in bounds:
            if bound is not None:
                checks.append(isinstance(value, int | float) and test(value, bound))
        return bool(checks) and all(checks)


class RiskRule(BaseModel):
    """A fixed tier, raised by argument conditions: the highest matching tier wins."""

    model_config = ConfigDict(extra="forbid")

    tier: Tier
    when: list[RiskCondition] = Field(default_factory=list)

    def evaluate(self, args: dict[str, Any]) -> Tier:
        tier = self.tier
        for condition in self.when:
            if condition.matches(args) and condition.tier > tier:
                tier = condition.tier
        return tier

    def describe(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


@dataclass
class ResourceSpec:
    """Which entity a policy sees as the resource: a record param, or a fixed type."""

    type: str
    param: str | None = None


@dataclass
class Action:
    name: str
    description: str
    params: type[BaseModel]
    kind: Literal["read", "write"]
    risk: RiskRule
    connector: str
    operation: str
    resource: ResourceSpec
    examples: list[str] = field(default_factory=list)
    preview: bool = False
    undo: bool = False
    prepare: Callable[[BaseModel], dict[str, Any]] | None = None
    source: str = ""
    _schema: str = field(default="", init=False, repr=False, compare=False)  # the JSON Schema, made once
    _words: dict[str, dict[str, Any]] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def is_write(self) -> bool:
        return self.kind == "write"

    def json_schema(self) -> dict[str, Any]:
        """The parameters' JSON Schema, a fresh copy each call (pydantic builds it once: a write turn asks
        for it several times, and building it cost more than the turn's policy decision)."""
        if not self._schema:
            schema = self.params.model_json_schema()
            schema.pop("title", None)
            self._schema = json.dumps(schema)
        result: dict[str, Any] = json.loads(self._schema)
        return result

    def validate(self, args: dict[str, Any]) -> BaseModel:
        if not isinstance(args, dict):
            raise InvalidArguments(f"{self.name}: arguments must be a JSON object")
        try:
            return self.params.model_validate(args)
        except ValidationError as exc:
            raise self._invalid(exc.errors()) from None

    def check_given(self, args: dict[str, Any]) -> None:
        """Raise :class:`InvalidArguments` when a value in ``args`` is wrong, passing over those not given yet:
        "what is the reason?" must not come before "the amount must be positive"."""
        if not isinstance(args, dict):
            raise InvalidArguments(f"{self.name}: arguments must be a JSON object")
        try:
            self.params.model_validate(args)
        except ValidationError as exc:
            wrong = [e for e in exc.errors() if e["type"] != "missing"]
            if wrong:
                raise self._invalid(wrong) from None

    def _invalid(self, errors: Sequence[ErrorDetails]) -> InvalidArguments:
        return InvalidArguments(f"{self.name}: {'; '.join(map(_problem, errors))}")

    def complete(self, args: dict[str, Any], now: datetime) -> dict[str, Any]:
        """``args`` as the pipeline validates them: enum values said another way made canonical
        (:meth:`canonical`), and each parameter left out that has a relative default (``x-default``: now,
        today, yesterday, tomorrow, or ``param:<name>``, another parameter's value) filled in at ``now``."""
        if not isinstance(args, dict):
            return args
        out = self.canonical(args)
        relative = self.marked("x-default")
        for name, rule in relative.items():
            if out.get(name) is not None:
                continue
            value = relative_default(str(rule), now, out)
            if value is not None:
                out[name] = value
        return out

    def canonical(self, args: dict[str, Any]) -> dict[str, Any]:
        """``args`` with each enum value said another way (other case, a label from ``x-labels``: "front-end"
        for ``Front end``) replaced by the value itself; anything else is left for validation to judge."""
        if self._words is None:  # per enum parameter, each way of saying a value -> the value; made once
            self._words = {}
            for name, spec in self.json_schema().get("properties", {}).items():
                choices = _enum_of(spec)
                if choices:
                    words = {_fold(str(c)): c for c in choices}
                    for choice, labels in (spec.get("x-labels") or {}).items():
                        words.update({_fold(label): choice for label in labels})
                    self._words[name] = words
        out = dict(args)
        for name, words in self._words.items():
            value = out.get(name)
            if isinstance(value, str) and value not in words.values() and _fold(value) in words:
                out[name] = words[_fold(value)]
        return out

    def request(self, params: BaseModel) -> dict[str, Any]:
        """The connector request for validated parameters, as JSON-ready data."""
        if self.prepare is not None:
            return self.prepare(params)
        return params.model_dump(mode="json", exclude_none=True)

    def marked(self, marker: str) -> dict[str, Any]:
        """Parameters carrying a grounding marker (``x-record``...), with the marker's value."""
        found: dict[str, Any] = {}
        for name, info in self.params.model_fields.items():
            extra = info.json_schema_extra
            if isinstance(extra, dict) and marker in extra:
                found[name] = extra[marker]
        return found

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "kind": self.kind,
            "risk": self.risk.describe(),
            "resource": self.resource.type,
            "connector": f"{self.connector}.{self.operation}",
            "examples": self.examples,
            "preview": self.preview,
            "undo": self.undo,
            "parameters": self.json_schema(),
        }


_BOUNDS = {"greater_than": ("gt", "more than"), "greater_than_equal": ("ge", "at least"),
           "less_than": ("lt", "less than"), "less_than_equal": ("le", "at most")}


def _problem(error: ErrorDetails) -> str:
    """One validation problem, in words where pydantic's would read as machine text: a bound on a number
    says "amount must be positive; -5 was given" rather than "Input should be greater than 0"."""
    where = ".".join(str(p) for p in error["loc"]) or "arguments"
    if error["type"] == "missing":
        return f"{where} is required"
    key, words = _BOUNDS.get(error["type"], ("", ""))
    if not key or key not in error.get("ctx", {}):
        return f"{where}: {error['msg']}"
    bound = error["ctx"][key]
    said = {("gt", 0): "positive", ("ge", 0): "zero or more"}.get((key, bound), f"{words} {bound}")
    return f"{where} must be {said}; {error['input']} was given"


P = TypeVar("P", bound=BaseModel)


class Catalog:
    """Actions by name."""

    def __init__(self, actions: Sequence[Action] = ()) -> None:
        self._actions: dict[str, Action] = {}
        self._ordered: tuple[Action, ...] | None = None  # by name; recomputed after add
        self._record_types: tuple[str, ...] | None = None
        for item in actions:
            self.add(item)

    def add(self, item: Action) -> None:
        if item.name in self._actions:
            raise WorkspaceError(f"action {item.name!r} is declared twice", file=item.source or None)
        self._actions[item.name] = item
        self._ordered = self._record_types = None

    def record_types(self) -> tuple[str, ...]:
        """The record types the actions' parameters name (``x-record``), in catalog order, each once."""
        if self._record_types is None:
            types: list[str] = []
            for action in self:
                for value in action.marked("x-record").values():
                    types += [t for t in str(value).split("|") if t not in types]
            self._record_types = tuple(types)
        return self._record_types

    def get(self, name: str) -> Action:
        try:
            return self._actions[name]
        except KeyError:
            raise UnknownAction(f"no action named {name!r}; `sayso actions` lists them") from None

    def __contains__(self, name: object) -> bool:
        return name in self._actions

    def __iter__(self) -> Iterator[Action]:
        if self._ordered is None:
            self._ordered = tuple(sorted(self._actions.values(), key=lambda a: a.name))
        return iter(self._ordered)

    def __len__(self) -> int:
        return len(self._actions)

    def action(
        self,
        name: str,
        *,
        kind: Literal["read", "write"],
        risk: Tier | RiskRule | str,
        connector: str,
        operation: str | None = None,
        resource: str,
        resource_param: str | None = None,
        examples: Sequence[str] = (),
        preview: bool = False,
        undo: bool = False,
        description: str | None = None,
    ) -> Callable[[Callable[[P], dict[str, Any]]], Callable[[P], dict[str, Any]]]:
        """Declare an action over a function ``f(params: Model) -> request``."""

        def decorate(fn: Callable[[P], dict[str, Any]]) -> Callable[[P], dict[str, Any]]:
            model = next(iter(fn.__annotations__.values()))
            if isinstance(model, str):
                model = fn.__globals__[model]
            rule = risk if isinstance(risk, RiskRule) else RiskRule(tier=Tier(risk))
            self.add(
                Action(
                    name=name,
                    description=description or (fn.__doc__ or "").strip(),
                    params=model,
                    kind=kind,
                    risk=rule,
                    connector=connector,
                    operation=operation or name.split(".", 1)[-1],
                    resource=ResourceSpec(resource, resource_param),
                    examples=list(examples),
                    preview=preview,
                    undo=undo,
                    prepare=fn,  # type: ignore[arg-type]
                    source=f"{fn.__module__}.{fn.__name__}",
                )
            )
            return fn

        return decorate

    def extend_from_module(self, module_name: str) -> None:
        """Add the actions of a Python module that exposes a ``catalog``."""
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise WorkspaceError(f"cannot import action module {module_name!r}: {exc}") from None
        found = getattr(module, "catalog", None)
        if not isinstance(found, Catalog):
            raise WorkspaceError(f"module {module_name!r} has no `catalog` of actions")
        for item in found:
            self.add(item)


def _enum_of(spec: dict[str, Any]) -> list[Any]:
    for option in [spec, *spec.get("anyOf", [])]:
        if option.get("enum"):
            return list(option["enum"])
    return []


def _fold(text: str) -> str:
    """Case, spaces, hyphens and underscores aside: "front-end", "Front end" and "FRONT_END" are one word."""
    return re.sub(r"[\s_-]+", " ", text.strip().casefold())


# --- relative defaults ---------------------------------------------------------------

RELATIVE_DEFAULTS = ("now", "today", "yesterday", "tomorrow")
_PERSON_FIELDS = ("id", "email", "name", "handle", "role", "team")


def relative_default(rule: str, now: datetime, args: dict[str, Any]) -> Any:
    """The value of a relative default at ``now``: ``now`` (ISO date and time), ``today``, ``yesterday``,
    ``tomorrow`` (ISO dates), or ``param:<name>`` (the value another argument has; None when it has none)."""
    if rule.startswith("param:"):
        return args.get(rule.removeprefix("param:"))
    day = now.date()
    if rule == "now":
        return now.replace(microsecond=0).isoformat()
    offsets = {"today": 0, "yesterday": -1, "tomorrow": 1}
    if rule in offsets:
        return date.fromordinal(day.toordinal() + offsets[rule]).isoformat()
    raise WorkspaceError(f"unknown relative default {rule!r} (known: {', '.join(RELATIVE_DEFAULTS)}, param:<name>)")


# --- YAML actions -----------------------------------------------------------------

_TYPES: dict[str, Any] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "date": date,
    "datetime": datetime,
    "array": list[str],
}
_MARKERS = {"record": "x-record", "person": "x-person", "recipient": "x-recipient"}
_BOUND_KEYS = {"gt": "gt", "gte": "ge", "lt": "lt", "lte": "le"}  # as in risk conditions -> pydantic's names


class _LineLoader(yaml.SafeLoader):
    """A YAML loader that remembers each mapping's line as ``__line__``."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[str, Any]:
    mapping = loader.construct_mapping(node, deep=True)
    mapping["__line__"] = node.start_mark.line + 1
    return mapping  # type: ignore[return-value]


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)

_ACTION_KEYS = {
    "name", "description", "examples", "kind", "risk", "resource", "connector", "operation",
    "params", "preview", "undo", "__line__",
}


def _metadata(action_name: str, pname: str, spec: dict[str, Any], where: tuple[str, int]) -> dict[str, Any]:
    """The markers a parameter's spec declares beyond grounding (``bind``, ``labels``, ``id_pattern``,
    ``default_to``, ``direction``), each checked so a typo names its file and line."""

    def fail(problem: str) -> WorkspaceError:
        return WorkspaceError(f"action {action_name}: parameter {pname!r}: {problem}", file=where[0],
                              line=spec.get("__line__", where[1]))

    extra: dict[str, Any] = {}
    if "bind" in spec:
        if not (spec.get("person") or spec.get("recipient")) or spec["bind"] not in _PERSON_FIELDS:
            raise fail(f"bind is for person parameters and names one of {', '.join(_PERSON_FIELDS)}")
        extra["x-bind"] = spec["bind"]
    if "labels" in spec:
        labels = {k: v for k, v in (spec["labels"] or {}).items() if k != "__line__"} \
            if isinstance(spec["labels"], dict) else None
        if labels is None or "enum" not in spec:
            raise fail("labels map enum values to the words people use for them")
        unknown = sorted(str(k) for k in labels if k not in spec["enum"])
        if unknown:
            raise fail(f"labels name values that are not in its enum: {', '.join(unknown)}")
        extra["x-labels"] = {str(k): [str(w) for w in (v if isinstance(v, list) else [v])] for k, v in labels.items()}
    if "id_pattern" in spec:
        try:
            re.compile(str(spec["id_pattern"]))
        except re.error as exc:
            raise fail(f"id_pattern is not a regular expression: {exc}") from None
        if not spec.get("record"):
            raise fail("id_pattern is for record parameters")
        extra["x-id-pattern"] = str(spec["id_pattern"])
    if "default_to" in spec:
        rule = str(spec["default_to"])
        if rule not in RELATIVE_DEFAULTS and not rule.startswith("param:"):
            raise fail(f"default_to must be one of {', '.join(RELATIVE_DEFAULTS)} or param:<name>")
        if spec.get("required"):
            raise fail("a required parameter has no default")
        extra["x-default"] = rule
    if "direction" in spec:
        if spec["direction"] not in ("past", "future", "either"):
            raise fail("direction must be past, future or either")
        extra["x-direction"] = spec["direction"]
    return extra


def _param_field(action_name: str, pname: str, spec: dict[str, Any], where: tuple[str, int]) -> tuple[Any, Any]:
    type_name = spec.get("type", "string")
    if type_name not in _TYPES:
        raise WorkspaceError(
            f"action {action_name}: parameter {pname!r} has unknown type {type_name!r} "
            f"(known: {', '.join(_TYPES)})",
            file=where[0],
            line=spec.get("__line__", where[1]),
        )
    annotation: Any = _TYPES[type_name]
    if "enum" in spec:
        annotation = Literal[tuple(spec["enum"])]
    extra: dict[str, Any] = {}
    for key, marker in _MARKERS.items():
        if spec.get(key):
            extra[marker] = spec[key]
    bounds = {field: spec[key] for key, field in _BOUND_KEYS.items() if key in spec}
    if bounds and (
        type_name not in ("integer", "number")
        or not all(isinstance(b, int | float) and not isinstance(b, bool) for b in bounds.values())
    ):
        raise WorkspaceError(
            f"action {action_name}: parameter {pname!r}: gt, gte, lt and lte take a number and apply to integer "
            "and number parameters only",
            file=where[0],
            line=spec.get("__line__", where[1]),
        )
    extra.update(_metadata(action_name, pname, spec, where))
    required = bool(spec.get("required", False))
    if not required:
        annotation = annotation | None
    info = Field(
        default=... if required else spec.get("default"),
        description=spec.get("description"),
        json_schema_extra=extra or None,
        **bounds,
    )
    return annotation, info


def load_yaml_actions(path: Path, catalog: Catalog) -> None:
    """Add the actions declared in one YAML file; problems name the file and line."""
    file = str(path)
    text = read_text(path, "the action file")
    try:
        data = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise WorkspaceError(f"not valid YAML: {exc}", file=file, line=mark.line + 1 if mark else None) from None
    entries = data.get("actions") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise WorkspaceError("expected a list under 'actions'", file=file, line=1)
    for entry in entries:
        line = entry.get("__line__", 1) if isinstance(entry, dict) else 1
        if not isinstance(entry, dict):
            raise WorkspaceError("each action must be a mapping", file=file, line=line)
        unknown = set(entry) - _ACTION_KEYS
        if unknown:
            raise WorkspaceError(f"unknown keys {sorted(unknown)}", file=file, line=line)
        missing = [k for k in ("name", "kind", "connector", "operation") if k not in entry]
        if missing:
            raise WorkspaceError(f"action is missing {', '.join(missing)}", file=file, line=line)
        name = str(entry["name"])
        if entry["kind"] not in ("read", "write"):
            raise WorkspaceError(f"action {name}: kind must be read or write", file=file, line=line)
        fields = {}
        for pname, spec in (entry.get("params") or {}).items():
            if pname == "__line__":
                continue
            fields[pname] = _param_field(name, pname, spec if isinstance(spec, dict) else {}, (file, line))
        model = create_model(  # type: ignore[call-overload]
            "Params_" + name.replace(".", "_"), __config__=ConfigDict(extra="forbid"), **fields
        )
        raw_risk = entry.get("risk", "none" if entry["kind"] == "read" else "high")
        try:
            if isinstance(raw_risk, str):
                rule = RiskRule(tier=Tier(raw_risk))
            else:
                clean = {k: v for k, v in raw_risk.items() if k != "__line__"}
                clean["when"] = [{k: v for k, v in c.items() if k != "__line__"} for c in clean.get("when", [])]
                rule = RiskRule.model_validate(clean)
        except (ValueError, ValidationError, AttributeError) as exc:
            raise WorkspaceError(f"action {name}: invalid risk rule: {exc}", file=file, line=line) from None
        resource = entry.get("resource") or {"type": "System"}
        if isinstance(resource, str):
            resource = {"type": resource}
        catalog.add(
            Action(
                name=name,
                description=str(entry.get("description", "")),
                params=model,
                kind=entry["kind"],
                risk=rule,
                connector=str(entry["connector"]),
                operation=str(entry["operation"]),
                resource=ResourceSpec(str(resource["type"]), resource.get("param")),
                examples=list(entry.get("examples") or []),
                preview=bool(entry.get("preview", False)),
                undo=bool(entry.get("undo", False)),
                source=f"{file}:{line}",
            )
        )
