"""Policy: deterministic authorization with Cedar.

A workspace's ``policies/*.cedar`` files are parsed once into a ``PolicyEngine``.
``decide`` turns a person, an action, a resource and the action's arguments into
a Cedar request and returns a ``Decision`` naming the rule that decided it, in
words a person understands, and on a deny, who could do it instead. Every policy
carries ``@id("...")`` and ``@reason("...")``: the engine will not load without them,
because a decision that cannot name its rule cannot be explained or audited.

Given the workspace's schema (``policy_schema.PolicySchema``), the policies are validated
against it when they load, so a misspelt attribute is an error at its file and line, not
a rule that never applies. A forbid that still fails to evaluate denies: a rule written
to stop something stops it when it cannot tell.
"""

from __future__ import annotations

import hashlib
import json
import re
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import cedarpy

from .directory import Directory, Person
from .errors import WorkspaceError
from .policy_schema import PolicySchema

__all__ = ["DEFAULT_DENY", "Decision", "Entity", "PolicyEngine"]

DEFAULT_DENY = "default-deny"
"""The rule of a deny that no policy in particular explains."""

_PRINCIPAL_ROLE = {".": {"left": {"Var": "principal"}, "attr": "role"}}
_POLICY_REF = re.compile(r"`(policy\d+)`")
_FAILED_POLICY = re.compile(r"^error while evaluating policy `(policy\d+)`")


@dataclass(frozen=True)
class Entity:
    """A Cedar entity: a request's resource, or a reference inside attributes and arguments.

    ``attrs`` values are str, int, bool, lists of those, or another ``Entity`` (kept as a reference).
    """

    type: str
    id: str
    attrs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """The outcome of one authorization check: the deciding rule, why, and on a deny who could."""

    allowed: bool
    rule: str
    reason: str
    policy_hash: str
    could: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()  # policies that could not be evaluated, by @id, and why

    def as_dict(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "rule": self.rule,
            "reason": self.reason,
            "policy_hash": self.policy_hash,
            "could": list(self.could),
            "errors": list(self.errors),
        }


@dataclass(frozen=True)
class _Policy:
    """What the engine knows of one policy beyond Cedar's evaluation: its names and its reach."""

    id: str
    effect: str
    reason: str
    actions: frozenset[str] | None  # None: every action
    roles: frozenset[str]  # the roles its conditions name with principal.role == "..."
    # The roles it can apply to at all, whatever the request's arguments: None when any principal may meet it.
    only: frozenset[str] | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> _Policy:
        annotations = data.get("annotations") or {}
        return cls(
            id=annotations.get("id", ""),
            effect=data["effect"],
            reason=annotations.get("reason", ""),
            actions=_actions(data["action"]),
            roles=frozenset(
                role
                for condition in data["conditions"]
                if condition["kind"] == "when"
                for role in _roles(condition["body"])
            ),
            only=_only(data),
        )

    def covers(self, action: str) -> bool:
        return self.actions is None or action in self.actions


class PolicyEngine:
    """A workspace's policies, parsed once, deciding requests without parsing again."""

    def __init__(
        self, policy_set: cedarpy.PolicySet, policies: Mapping[str, _Policy], policy_hash: str
    ) -> None:
        self._policy_set = policy_set
        self._policies = dict(policies)  # Cedar's positional ids (policy0, ...) in file order
        self._order = {key: index for index, key in enumerate(self._policies)}
        self._people: weakref.WeakKeyDictionary[Directory, cedarpy.Entities] = weakref.WeakKeyDictionary()
        self.hash = policy_hash

    @classmethod
    def load(cls, folder: Path, schema: PolicySchema | None = None) -> PolicyEngine:
        """Parse every ``*.cedar`` file in ``folder`` (and validate it against ``schema``); the first
        problem is raised with its file and line."""
        sources = _read(folder)
        found = _problems(sources, folder, schema)
        if found:
            raise found[0]
        text = "\n".join(source for _, source in sources)
        parsed = json.loads(cedarpy.policies_to_json_str(text))["staticPolicies"]
        policies = {key: _Policy.from_json(parsed[key]) for key in sorted(parsed, key=_position)}
        return cls(cedarpy.PolicySet.from_str(text), policies, _fingerprint(sources))

    @staticmethod
    def problems(folder: Path, schema: PolicySchema | None = None) -> list[WorkspaceError]:
        """Every problem in the policy folder, for ``sayso check``; empty when it loads."""
        try:
            sources = _read(folder)
        except WorkspaceError as exc:
            return [exc]
        return _problems(sources, folder, schema)

    def rules_for(self, action: str) -> list[tuple[str, str, str]]:
        """(id, effect, reason) of each policy whose scope includes ``action``, in file order."""
        return [(p.id, p.effect, p.reason) for p in self._policies.values() if p.covers(action)]

    def decide(
        self,
        *,
        principal: Person,
        action: str,
        resource: Entity,
        context: Mapping[str, Any],
        directory: Directory,
        explain: bool = True,
    ) -> Decision:
        """May ``principal`` do ``action`` on ``resource`` with these arguments?

        ``explain`` also asks who else could (one more batch evaluation over the directory);
        leave it off where only the answer matters.
        """
        request: dict[str, Any] = {
            "principal": {"type": "User", "id": principal.id},
            "action": {"type": "Action", "id": action},
            "resource": {"type": resource.type, "id": resource.id},
            "context": json.dumps(_record(context)),
        }
        try:
            entities = self._entities(directory, principal, resource)
        except ValueError as exc:  # attributes Cedar cannot represent
            return self._deny(principal, action, [], [str(exc)], None)
        result = cedarpy.is_authorized(request, self._policy_set, entities)
        reasons = result.diagnostics.reasons
        failed = self._failed_forbids(result.diagnostics.errors)
        if result.allowed and not failed:
            policy = self._first(reasons)
            return Decision(True, policy.id, _sentence(policy.reason), self.hash)
        errors = [self._readable(error) for error in result.diagnostics.errors]
        matched = [key for key in reasons if self._policies[key].effect == "forbid"]
        forbids, failing = (matched, False) if matched else (failed, bool(failed))
        if not explain:
            return self._deny(principal, action, forbids, errors, None, failing)
        people = list(directory)
        batch = [{**request, "principal": {"type": "User", "id": person.id}} for person in people]
        results = cedarpy.is_authorized_batch(batch, self._policy_set, entities)
        could = tuple(
            p.id
            for p, r in zip(people, results, strict=True)
            if r.allowed and not self._failed_forbids(r.diagnostics.errors)
        )
        return self._deny(principal, action, forbids, errors, could, failing)

    def never(self, *, principal: Person, action: str, directory: Directory) -> Decision | None:
        """A deny when no permit for ``action`` can apply to ``principal`` whatever the arguments (each names
        roles it requires, and theirs is not one): asking for a missing argument would be pointless. None
        when some argument might still allow it (decided later, on the complete request)."""
        permits = [p for p in self._policies.values() if p.effect == "permit" and p.covers(action)]
        if any(p.only is None or principal.role in p.only for p in permits):
            return None
        could = tuple(q.id for q in directory if any(p.only is None or q.role in p.only for p in permits))
        return self._deny(principal, action, [], [], could)

    def _failed_forbids(self, errors: Sequence[str]) -> list[str]:
        """The forbids among the policies Cedar could not evaluate: each counts as applying."""
        keys = (m[1] for m in map(_FAILED_POLICY.match, errors) if m)
        return [key for key in keys if key in self._policies and self._policies[key].effect == "forbid"]

    def _deny(
        self,
        principal: Person,
        action: str,
        forbids: Sequence[str],
        errors: Sequence[str],
        could: tuple[str, ...] | None,
        failed: bool = False,
    ) -> Decision:
        """A deny named after the forbid that applied (or failed), else after the permit meant for people
        like them."""
        if forbids:
            policy: _Policy | None = self._first(forbids)
        else:
            policy = next(
                (
                    p
                    for p in self._policies.values()
                    if p.effect == "permit" and p.covers(action) and principal.role in p.roles
                ),
                None,
            )
        parts = [policy.reason if policy else f"no rule lets your role, {principal.role}, do this"]
        if could is not None and (could or not forbids):  # a forbid already says that no one may
            parts.append(_who_could(principal, could))
        if failed:
            parts.append("a rule that forbids this could not be evaluated, so it applies: " + "; ".join(errors))
        elif errors:
            parts.append("the policy check failed: " + "; ".join(errors))
        return Decision(
            False,
            policy.id if policy else DEFAULT_DENY,
            _sentence("; ".join(parts)),
            self.hash,
            could or (),
            tuple(errors),
        )

    def _first(self, keys: Sequence[str]) -> _Policy:
        """The first of the given policies in file order: deterministic whatever order Cedar lists them."""
        return self._policies[min(keys, key=self._order.__getitem__)]

    def _readable(self, error: str) -> str:
        """A Cedar error with positional policy ids replaced by the policies' @id."""
        return _POLICY_REF.sub(
            lambda m: f"`{self._policies[m[1]].id}`" if m[1] in self._policies else m[0], error
        )

    def _entities(self, directory: Directory, principal: Person, resource: Entity) -> cedarpy.Entities:
        """The directory's people (parsed once per directory) plus the principal and the resource."""
        people = self._people.get(directory)
        if people is None:
            people = cedarpy.Entities.from_json_str(json.dumps([_person(p) for p in directory]))
            self._people[directory] = people
        extra: dict[tuple[str, str], dict[str, Any]] = {}
        if principal.id not in directory:
            extra["User", principal.id] = _person(principal)
        key = (resource.type, resource.id)
        if key not in extra and not (resource.type == "User" and resource.id in directory):
            extra[key] = {
                "uid": {"type": resource.type, "id": resource.id},
                "attrs": _record(resource.attrs),
                "parents": [],
            }
        return people.with_added_json_str(json.dumps(list(extra.values()))) if extra else people


def _who_could(principal: Person, could: tuple[str, ...]) -> str:
    if principal.manager is not None and principal.manager in could:
        return f"your manager, {principal.manager}, may do this"
    if not could:
        return "nobody may do this through sayso"
    names = could[:3]
    listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
    return f"{listed} could"


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else f"{text}."


def _person(person: Person) -> dict[str, Any]:
    """A person as a ``User`` entity: role, team and, when they have one, their manager (a reference)."""
    attrs: dict[str, Any] = {"role": person.role, "team": person.team}
    if person.manager is not None:
        attrs["manager"] = {"__entity": {"type": "User", "id": person.manager}}
    return {"uid": {"type": "User", "id": person.id}, "attrs": attrs, "parents": []}


def _record(values: Mapping[str, Any]) -> dict[str, Any]:
    """Arguments or attributes as a Cedar record; None means absent, so ``has`` reads false."""
    return {key: _value(value) for key, value in values.items() if value is not None}


def _value(value: Any) -> Any:
    """One value in Cedar's JSON: entities as references, dates as ISO text.

    Anything else Cedar has no type for (a float, say) goes as text, so a policy comparing it
    fails to evaluate and the request is denied rather than decided on a guess.
    """
    if isinstance(value, Entity):
        return {"__entity": {"type": value.type, "id": value.id}}
    if isinstance(value, str | bool | int):
        return value
    if isinstance(value, Mapping):
        return _record(value)
    if isinstance(value, list | tuple | set | frozenset):
        return [_value(item) for item in value]
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _actions(scope: Mapping[str, Any]) -> frozenset[str] | None:
    """The actions a policy's action scope names; None when it names every action."""
    if scope["op"] == "==":
        return frozenset([scope["entity"]["id"]])
    if scope["op"] == "in":
        return frozenset(e["id"] for e in scope.get("entities") or [scope["entity"]])
    return None


def _only(data: Mapping[str, Any]) -> frozenset[str] | None:
    """The roles a permit requires of its principal (every ``when`` must hold), or None when it may apply
    to anyone (no principal scope, and no condition that requires a role)."""
    if data["principal"].get("op") != "All":
        return None
    required: frozenset[str] | None = None
    for condition in data["conditions"]:
        if condition["kind"] == "when":
            roles = _required(condition["body"])
            required = roles if required is None else (required if roles is None else required & roles)
    return required


def _required(node: Any) -> frozenset[str] | None:
    """The roles an expression can be true for: ``principal.role == "x"`` is {x}; ``&&`` the roles both
    allow, ``||`` either; anything else, any role (None)."""
    if not isinstance(node, dict):
        return None
    equal = node.get("==")
    if isinstance(equal, dict):
        for this, other in ((equal.get("left"), equal.get("right")), (equal.get("right"), equal.get("left"))):
            if this == _PRINCIPAL_ROLE and isinstance(other, dict) and isinstance(other.get("Value"), str):
                return frozenset([other["Value"]])
        return None
    for op in ("&&", "||"):
        both = node.get(op)
        if isinstance(both, dict):
            left, right = _required(both.get("left")), _required(both.get("right"))
            if op == "&&":
                return left if right is None else (right if left is None else left & right)
            return None if left is None or right is None else left | right
    return None


def _roles(node: Any) -> Iterator[str]:
    """The roles a condition names with ``principal.role == "..."``, anywhere in its expression."""
    if isinstance(node, dict):
        equal = node.get("==")
        if isinstance(equal, dict):
            sides = (equal.get("left"), equal.get("right"))
            for this, other in (sides, sides[::-1]):
                if (
                    this == _PRINCIPAL_ROLE
                    and isinstance(other, dict)
                    and isinstance(other.get("Value"), str)
                ):
                    yield other["Value"]
        for child in node.values():
            yield from _roles(child)
    elif isinstance(node, list):
        for child in node:
            yield from _roles(child)


def _position(key: str) -> int:
    """The place of a positional policy id (``policy12``) in the parsed text."""
    return int(key.removeprefix("policy"))


def _read(folder: Path) -> list[tuple[Path, str]]:
    if not folder.is_dir():
        raise WorkspaceError("the policy folder is missing", file=str(folder))
    sources = []
    for path in sorted(folder.glob("*.cedar")):
        try:
            sources.append((path, path.read_text(encoding="utf-8")))
        except (OSError, UnicodeError) as exc:
            raise WorkspaceError(f"cannot read the policy file: {exc}", file=str(path)) from None
    return sources


def _fingerprint(sources: Sequence[tuple[Path, str]]) -> str:
    """sha256 of the files' names and contents in name order: any edit gives a new policy version."""
    digest = hashlib.sha256()
    for path, text in sources:
        digest.update(path.name.encode() + b"\0" + text.encode() + b"\0")
    return digest.hexdigest()


def _problems(
    sources: Sequence[tuple[Path, str]], folder: Path, schema: PolicySchema | None
) -> list[WorkspaceError]:
    """Check policy by policy, so each problem names its file and line (Cedar reports no positions),
    then, when they all parse, validate them against ``schema``."""
    found: list[WorkspaceError] = []
    seen: dict[str, str] = {}  # @id -> where it is first declared
    places: list[tuple[Path, int]] = []  # where each policy starts, in the order Cedar numbers them
    for path, text in sources:
        for line, statement in _statements(text):
            places.append((path, line))
            for message in _check(statement, f"{path}:{line}", seen):
                found.append(WorkspaceError(message, file=str(path), line=line))
    if not seen and not found:
        found.append(WorkspaceError("no policies: add .cedar files that permit something", file=str(folder)))
    if schema is not None and not found:
        found += _invalid(sources, places, schema)
    return found


def _invalid(
    sources: Sequence[tuple[Path, str]], places: Sequence[tuple[Path, int]], schema: PolicySchema
) -> list[WorkspaceError]:
    """What Cedar's validator finds against the workspace's schema: a name no entity, action or
    argument has (a misspelt attribute), or a comparison of mismatched types."""
    text = "\n".join(source for _, source in sources)
    result = cedarpy.validate_policies(text, dict(schema.json))
    ids = result.id_annotations_by_policy_id
    found = []
    for error in result.errors:
        if not schema.reported(error.error):
            continue
        path, line = places[_position(error.policy_id)] if error.policy_id else (None, None)
        message = _POLICY_REF.sub(lambda m: f"`{ids.get(m[1], m[1])}`", error.error)
        found.append(WorkspaceError(
            f"the policy does not match the workspace: {schema.hint(message)}",
            file=str(path) if path else None, line=line,
        ))
    return found


def _check(statement: str, where: str, seen: dict[str, str]) -> Iterator[str]:
    """What is wrong with one policy statement; records its @id in ``seen``."""
    try:
        parsed = json.loads(cedarpy.policies_to_json_str(statement))
    except ValueError as exc:
        yield f"not a valid Cedar policy: {exc}"
        return
    if parsed["templates"]:
        yield "templates (?principal, ?resource) are not supported; write the policy out"
    for data in parsed["staticPolicies"].values():
        policy = _Policy.from_json(data)
        if not policy.id:
            yield 'the policy has no @id("...")'
        elif policy.id in seen:
            yield f"@id {policy.id!r} is already used at {seen[policy.id]}"
        else:
            seen[policy.id] = where
        if not policy.reason:
            yield 'the policy has no @reason("...")'


def _statements(text: str) -> Iterator[tuple[int, str]]:
    """Cedar text cut at the ``;`` that end policies, each with the line its first token is on.

    A ``;`` inside a string or a ``//`` comment ends nothing; trailing text without one is
    yielded too, so that a missing ``;`` is reported where its policy starts.
    """
    start, first, in_string, i = 0, -1, False, 0
    while i < len(text):
        char = text[i]
        if in_string:
            if char == "\\":
                i += 1
            elif char == '"':
                in_string = False
        elif text.startswith("//", i):
            newline = text.find("\n", i)
            i = len(text) if newline == -1 else newline
            continue
        elif not char.isspace():
            if first == -1:
                first = i
            if char == '"':
                in_string = True
            elif char == ";":
                yield text.count("\n", 0, first) + 1, text[start : i + 1]
                start, first = i + 1, -1
        i += 1
    if first != -1:
        yield text.count("\n", 0, first) + 1, text[start:]
