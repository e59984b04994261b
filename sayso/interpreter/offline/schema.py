"""What the offline interpreter reads from an action's JSON Schema: each parameter's kind.

The kind decides which values of a message can fill the parameter. It comes
from the schema's type, format, enum and grounding markers, and, for plain
strings, from the parameter's name and description ("date", "city",
"number of seats"), so an action added in YAML is understood as well as one
written in Python.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ...catalog import Action

__all__ = ["Param", "params_of"]

_TEXT_NAMES = re.compile(r"text|note|message|body|description|comment|reason|title|subject|summary|details|content")
_MONEY = re.compile(r"amount|price|cost|balance|usd|dollar|fee|budget|fare|rent|salary")
_COUNT = re.compile(r"number|count|seats|people|persons|passengers|guests|tickets|rooms|quantity|adults|travelers"
                    r"|riders|length|nights")
_PLACE = re.compile(r"city|location|address|destination|origin|area|town|from|to_|airport|station|country|state")
_LOOSE_PLACE = re.compile(r"place|where")  # "place_name" is a name, "meeting_place" a place


@dataclass(frozen=True)
class Param:
    name: str
    kind: str  # record|person|recipient|enum|date|datetime|time|money|number|duration|email|bool|text|name|place
    required: bool
    description: str = ""
    enum: list[str] = field(default_factory=list)
    record: str = ""  # "Deal|Account" for kind record
    many: bool = False  # an array of values
    default: Any = None
    words: str = ""  # name and description, lowercase, for cue matching
    mode: str = ""  # x-person's value: "or-email" when an email address may stand for a person
    labels: dict[str, list[str]] = field(default_factory=dict)  # enum value -> the words people use (x-labels)
    id_pattern: str = ""  # what an id of its record looks like (x-id-pattern), e.g. \\d{8}
    direction: str = ""  # past|future|either for dates (x-direction); "" lets the words decide


def _unwrap(spec: dict[str, Any]) -> dict[str, Any]:
    """``Optional[X]`` is ``anyOf [X, null]`` in JSON Schema: keep X, with the outer keys."""
    for key in ("anyOf", "oneOf"):
        if key in spec:
            options = [o for o in spec[key] if o.get("type") != "null"]
            if len(options) == 1:
                merged = {k: v for k, v in spec.items() if k != key}
                merged.update(options[0])
                return merged
    return spec


def _kind(name: str, spec: dict[str, Any]) -> str:
    """What kind of value a parameter takes: marked by the catalog, typed by its schema, else told by its name."""
    item = _unwrap(spec.get("items", {})) if spec.get("type") == "array" else spec
    return _marked_kind(spec) or _typed_kind(name, spec, item) or _named_kind(name, spec)


def _marked_kind(spec: dict[str, Any]) -> str | None:
    for marker, kind in (("x-recipient", "recipient"), ("x-person", "person"), ("x-record", "record")):
        if spec.get(marker):
            return kind
    return None


_FORMATS = {"date": "date", "date-time": "datetime", "time": "time", "email": "email"}


def _typed_kind(name: str, spec: dict[str, Any], item: dict[str, Any]) -> str | None:
    words = f"{name} {spec.get('description', '')}".lower()
    if item.get("enum"):
        values = {str(v).lower() for v in item["enum"]}
        if values <= {"true", "false"}:
            return "bool"
        # "number_of_seats: 1..6" is a count a person says as "4 tickets" or "two people", not a choice
        return "number" if all(v.isdigit() for v in values) else "enum"
    kind = item.get("type")
    if kind == "boolean":
        return "bool"
    if item.get("format") in _FORMATS:
        return _FORMATS[item["format"]]
    if "email" in name:
        return "email"
    if kind in ("integer", "number"):
        if _MONEY.search(words):
            return "money"
        return "duration" if "minute" in words or "duration" in words else "number"
    return None


def _named_kind(name: str, spec: dict[str, Any]) -> str:
    lname = name.lower()
    words = f"{name} {spec.get('description', '')}".lower()
    description = str(spec.get("description", "")).lower().strip()
    if _COUNT.search(lname) or re.match(r"(?:the\s+)?(?:number|count|length)\s+of\b", description):
        return "number"  # "number_of_days", "stay_length: Length of stay in days"
    for pattern, kind in ((r"(^|_)(date|day)s?($|_)", "date"), (r"(^|_)time($|_)", "time"), (_MONEY, "money"),
                          (_TEXT_NAMES, "text"), (_PLACE, "place")):
        if re.search(pattern, lname):
            return kind
    if lname.endswith("name") or description.startswith(("name of", "the name of")):
        return "name"
    if _LOOSE_PLACE.search(lname) or re.search(r"\b(city|location|address|destination|place)\b", words):
        return "place"
    return "name"


def params_of(action: Action) -> list[Param]:
    """The action's parameters as the interpreter reads them: worked out once per action (a turn asks for
    them a few times per action it weighs), a fresh list each call; ``Param`` is frozen, so shared safely."""
    made = _PARAMS.get(id(action))
    if made is None or made[0] is not action:  # keyed by identity, the action kept with its parameters
        if len(_PARAMS) >= _PARAMS_KEPT:
            _PARAMS.clear()
        made = _PARAMS[id(action)] = (action, tuple(_params_of(action)))
    return list(made[1])


_PARAMS: dict[int, tuple[Action, tuple[Param, ...]]] = {}
_PARAMS_KEPT = 20_000  # more actions than any catalog holds; beyond it, the cache starts again


def _params_of(action: Action) -> list[Param]:
    schema = action.json_schema()
    required = set(schema.get("required", []))
    out: list[Param] = []
    for name, raw in schema.get("properties", {}).items():
        spec = _unwrap(raw)
        item = _unwrap(spec.get("items", {})) if spec.get("type") == "array" else spec
        enum = [str(v) for v in item.get("enum", [])]
        description = str(spec.get("description", ""))
        out.append(Param(
            name=name, kind=_kind(name, spec), required=name in required, description=description, enum=enum,
            record=str(spec.get("x-record", "")), many=spec.get("type") == "array", default=spec.get("default"),
            words=f"{name.replace('_', ' ')} {description}".lower(),
            mode=str(spec.get("x-person")) if isinstance(spec.get("x-person"), str) else "",
            labels={str(k): [str(w) for w in v] for k, v in (spec.get("x-labels") or {}).items()},
            id_pattern=str(spec.get("x-id-pattern", "")), direction=str(spec.get("x-direction", "")),
        ))
    return out
