"""The Cedar schema of a workspace: what its policies may name, so that a policy naming something else fails.

Cedar skips a policy whose condition cannot be evaluated, so a misspelt attribute (``resource.ammount``)
would make a forbid silently never apply. ``PolicySchema.build`` describes, from the workspace itself:

- ``User``, the principal: ``role``, ``team`` and an optional ``manager`` (a ``User``), as the directory gives;
- each catalog action, the resource types it is decided on and its arguments as ``context``, the way
  ``Pipeline._policy_inputs`` builds them (``<param>_team``/``_role`` for person parameters);
- each record type's attributes as its system declares them (``Connector.record_attributes``); a person
  attribute (``owner``, ``assignee``, ``reporter``) is a ``User`` plus an optional ``<attr>_team``.

A record type whose system declares no attributes is *open*: its attributes cannot be checked, and errors
about them are not reported (``PolicySchema.open_types``). Other resources (``System::"crm"``,
``Project::"SALES"``) have no attributes at all.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .catalog import Action, Catalog

__all__ = ["APPROVE", "PERSON_ATTRS", "PolicySchema", "approval_context"]

APPROVE = "approve"
"""The Cedar action of approving what another person asked (``sayso.approvals``): its resource is the resource
of the request, its context the request's arguments plus ``request_action``, ``requester`` and ``approver_may``."""

PERSON_ATTRS = ("owner", "assignee", "reporter")
"""Record attributes naming a directory person: a policy sees them as ``User`` entities."""

_PLACEHOLDERS = frozenset({"Record", "Recipient"})  # resource types that stand for the record param's types
_SCALARS = {"integer": "Long", "number": "Long", "boolean": "Boolean", "string": "String"}
_NOT_FOUND = re.compile(r"attribute `([^`]+)` on entity type `([^`]+)` not found")
_CONTEXT_NOT_FOUND = re.compile(r'attribute `([^`]+)` in context for Action::"([^"]+)" not found')


@dataclass(frozen=True)
class PolicySchema:
    """A Cedar schema (JSON) and what it cannot check, with the names a misspelling is compared with."""

    json: Mapping[str, Any]
    open_types: frozenset[str]

    @classmethod
    def build(cls, catalog: Catalog, records: Mapping[str, Mapping[str, str]],
              reads: Mapping[str, Iterable[str]] | None = None) -> PolicySchema:
        """The schema of ``catalog``'s actions over records whose attributes are ``records``
        (type -> attribute -> ``String``, ``Long`` or ``Boolean``, with a trailing ``?`` when optional);
        ``reads`` (action -> record types) adds the records a read is asked about to decide whether a person
        may see them (``sayso.visibility``)."""
        actions: dict[str, Any] = {}
        used: set[str] = {"User"}
        for action in catalog:
            types = _resource_types(action) | set((reads or {}).get(action.name, ()))
            used |= types
            actions[action.name] = {"appliesTo": {
                "principalTypes": ["User"], "resourceTypes": sorted(types),
                "context": {"type": "Record", "attributes": _context(action)},
            }}
        writes = [a for a in catalog if a.is_write]
        if writes:
            resources = set().union(*(_resource_types(a) for a in writes))
            actions[APPROVE] = {"appliesTo": {
                "principalTypes": ["User"], "resourceTypes": sorted(resources),
                "context": {"type": "Record", "attributes": approval_context(catalog)},
            }}
        entities: dict[str, Any] = {"User": {"shape": _shape({
            "role": _attr("String"), "team": _attr("String"), "manager": _attr("User", required=False),
        })}}
        for name in sorted(used - {"User"}):
            entities[name] = {"shape": _shape(_record_attributes(records[name]))} if name in records else {}
        open_types = frozenset(t for t in catalog.record_types() if t in used and t not in records)
        return cls({"": {"entityTypes": entities, "actions": actions}}, open_types)

    def reported(self, error: str) -> bool:
        """Whether a validation error is the policy's fault: not an attribute of an open type, nor "no
        action applies" while the catalog has no actions yet (a new workspace's admin policy)."""
        found = _NOT_FOUND.search(error)
        if found and found[2] in self.open_types:
            return False
        return bool(self.json[""]["actions"]) or "unable to find an applicable action" not in error

    def hint(self, error: str) -> str:
        """``error``, with the closest declared name when it is an attribute that was not found."""
        found = _NOT_FOUND.search(error)
        if found:
            shape = self.json[""]["entityTypes"].get(found[2], {}).get("shape", {})
            return error + _closest(found[1], shape.get("attributes", {}))
        found = _CONTEXT_NOT_FOUND.search(error)
        if found:
            action = self.json[""]["actions"].get(found[2], {})
            return error + _closest(found[1], action.get("appliesTo", {}).get("context", {}).get("attributes", {}))
        return error


def approval_context(catalog: Catalog) -> dict[str, Any]:
    """The context of ``Action::"approve"``: what is approved (``request_action``), for whom (``requester``),
    whether the approver may do it themselves (``approver_may``), and each argument that has one type across the
    catalog's writes (``amount``, ``stage``...), present when the request has it."""
    found: dict[str, Any] = {}
    clash: set[str] = set()
    for action in catalog:
        if not action.is_write:
            continue
        for name, spec in _context(action).items():
            spec = {**spec, "required": False}
            if name in found and found[name] != spec:
                clash.add(name)
            found.setdefault(name, spec)
    attributes = {k: v for k, v in found.items() if k not in clash}
    attributes.update(request_action=_attr("String"), requester=_attr("User"), approver_may=_attr("Boolean"))
    return attributes


def _closest(name: str, names: Iterable[str]) -> str:
    match = difflib.get_close_matches(name, list(names), n=1)
    return f" (did you mean `{match[0]}`?)" if match else ""


def _resource_types(action: Action) -> set[str]:
    """The entity types ``Pipeline._policy_inputs`` may give as this action's resource."""
    spec = action.resource
    if spec.param is None:
        return {"System"}
    schema = action.json_schema()
    prop = schema.get("properties", {}).get(spec.param, {})
    types = {spec.type} - _PLACEHOLDERS
    if prop.get("x-record"):
        types |= set(str(prop["x-record"]).split("|"))
    if prop.get("x-recipient"):
        types |= {"Channel", "User"}
    if prop.get("x-person"):
        types.add("User")
    if spec.param not in schema.get("required", []) and prop.get("default") is None:
        types.add("System")  # no value: the system itself
    return types or {"System"}


def _context(action: Action) -> dict[str, Any]:
    """The action's arguments as Cedar sees them: scalars kept, lists as sets of strings, objects dropped."""
    schema = action.json_schema()
    required = set(schema.get("required", []))
    attributes: dict[str, Any] = {}
    for name, prop in schema.get("properties", {}).items():
        kind = _kind(prop)
        present = name in required or prop.get("default") is not None
        if kind == "array":
            attributes[name] = {"type": "Set", "element": {"type": "String"}, "required": present}
        elif kind in _SCALARS:
            attributes[name] = {"type": _SCALARS[kind], "required": present}
        if prop.get("x-person") or prop.get("x-recipient"):
            attributes[f"{name}_team"] = _attr("String", required=False)
            attributes[f"{name}_role"] = _attr("String", required=False)
    return attributes


def _kind(prop: Mapping[str, Any]) -> str:
    """A JSON Schema property's type, the non-null one of an optional's ``anyOf``."""
    if "type" in prop:
        return str(prop["type"])
    kinds = [str(p.get("type")) for p in prop.get("anyOf", []) if p.get("type") != "null"]
    return kinds[0] if len(kinds) == 1 else ""


def _record_attributes(declared: Mapping[str, str]) -> dict[str, Any]:
    # every record has its parties: the people it is from, to or for (sayso.visibility.record_entity)
    attributes: dict[str, Any] = {"parties": {"type": "Set", "element": {"type": "Entity", "name": "User"}}}
    for name, kind in declared.items():
        required = not kind.endswith("?")
        if name in PERSON_ATTRS:
            attributes[name] = _attr("User", required=required)
            attributes[f"{name}_team"] = _attr("String", required=False)
        else:
            attributes[name] = _attr(kind.rstrip("?"), required=required)
    return attributes


def _attr(kind: str, *, required: bool = True) -> dict[str, Any]:
    if kind in ("String", "Long", "Boolean"):
        return {"type": kind, "required": required}
    return {"type": "Entity", "name": kind, "required": required}


def _shape(attributes: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "Record", "attributes": dict(attributes)}
