"""Visibility: which records a person may read, decided by the policy record by record.

Every search done on a person's behalf (grounding, the options of a question, the subject of a
standing instruction) and every record a read answers with goes through one ``Reader``, so a person
never learns through sayso that a record they may not read exists, nor what it says: a hidden record
reads exactly as a missing one.

A person may read a record when the policy allows them, on that record (a Cedar resource with the
record's attributes), one of the catalog's read actions over its type: a read whose record parameter
takes that type, a read of a system that holds it, or the read that answered with it. Where the
catalog has no read over a type, the writes that take such a record stand in; where it has neither,
nobody reads that type through sayso.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .catalog import Action
from .connectors import Record
from .directory import Directory, Person
from .errors import SaysoError
from .policy import Entity
from .policy_schema import PERSON_ATTRS
from .workspace import Workspace

__all__ = ["Reader", "reads_over", "record_entity"]

"""Attributes naming one person, which a policy sees as a ``User`` (and ``<attr>_team``)."""

_PARTY_ATTRS = ("owner", "assignee", "reporter", "sender", "to", "cc", "attendees", "recipients")
"""Attributes naming the people a record is from, to or for: its ``parties`` (a set of ``User``)."""


def record_entity(record_type: str, record_id: str, attrs: Mapping[str, Any], directory: Directory) -> Entity:
    """A record as a policy's resource: people as ``User`` references with their team, ``parties`` as the set
    of people it is from, to or for (ids or directory email addresses), and the plain values as they are."""
    out: dict[str, Any] = {}
    parties: dict[str, Entity] = {}
    for key, value in attrs.items():
        if key in PERSON_ATTRS and isinstance(value, str) and value in directory:
            out[key] = Entity("User", value)
            out[f"{key}_team"] = directory.team_of(value)
        elif isinstance(value, bool | int | str):
            out[key] = value
        elif isinstance(value, float):
            out[key] = int(value)
        if key in _PARTY_ATTRS:
            for item in value if isinstance(value, list) else [value]:
                person = (item if item in directory else _by_email(directory, item)) if isinstance(item, str) else None
                if person is not None:
                    parties[person] = Entity("User", person)
    out["parties"] = [parties[p] for p in sorted(parties)]
    return Entity(record_type, record_id, out)


def _by_email(directory: Directory, value: str) -> str | None:
    """The id of the person with this email address, if the directory has one."""
    address = value.lower()
    if "@" not in address:
        return None
    return next((p.id for p in directory if p.email.lower() == address), None)


class Reader:
    """One person's view of the systems for one turn: searches and answers keep only what they may read.

    Decisions are remembered by record and version, so a turn asks the policy once per record.
    """

    def __init__(self, workspace: Workspace, person: Person) -> None:
        self.ws = workspace
        self.person = person
        self._seen: dict[tuple[str, int, str], bool] = {}
        self._reads: dict[str, list[Action]] = {}

    def find(self, record_type: str, text: str) -> list[Record]:
        """Records of a type whose id or name matches ``text``, among those the person may read."""
        found: list[Record] = []
        for connector in self.ws.connectors_for(record_type):
            found.extend(connector.search_visible(record_type, text, self.may_read))
        return found

    def keep(self, records: Iterable[Record], via: Action | None = None) -> list[Record]:
        """The records the person may read, in their order; ``via`` is the read that answered with them,
        a read over their type whatever the catalog says of it."""
        return [r for r in records if self.may_read(r, via)]

    def may_read(self, record: Record, via: Action | None = None) -> bool:
        """Does the policy let the person read this record with one of the reads over its type (or ``via``)?"""
        key = (record.ref(), record.version, via.name if via else "")
        if key not in self._seen:
            directory = self.ws.directory
            entity = record_entity(record.type, record.id, record.attrs, directory)
            reads = self._reads_over(record.type)
            self._seen[key] = any(
                self.ws.policies.decide(principal=self.person, action=action.name, resource=entity, context={},
                                        directory=directory, explain=False).allowed
                for action in ([via] if via and via not in reads else []) + reads)
        return self._seen[key]

    def _reads_over(self, record_type: str) -> list[Action]:
        if record_type not in self._reads:
            self._reads[record_type] = reads_over(self.ws, record_type)
        return self._reads[record_type]


def reads_over(workspace: Workspace, record_type: str) -> list[Action]:
    """The catalog's reads over a record type; the writes that take one where no read covers it."""
    holders = {name for name in workspace.settings.systems if record_type in _types_of(workspace, name)}
    reads = [a for a in workspace.catalog if not a.is_write
             and (_takes(a, record_type) or (a.resource.param is None and a.connector in holders))]
    return reads or [a for a in workspace.catalog if a.is_write and _takes(a, record_type)]


def _types_of(workspace: Workspace, system: str) -> tuple[str, ...]:
    """The record types a system holds; none for a system that cannot start (its own error says why)."""
    try:
        return tuple(workspace.connector(system).record_types)
    except SaysoError:
        return ()


def _takes(action: Action, record_type: str) -> bool:
    """Is the action's resource a record of this type (its record parameter, or its declared type)?"""
    param = action.resource.param
    if param is None:
        return False
    types = action.marked("x-record").get(param)
    return record_type in str(types).split("|") if types is not None else action.resource.type == record_type
