"""The directory: people, roles, teams, managers, time zones and channels.

Kept as ``directory.yaml`` in the workspace; ``Directory.from_csv`` reads the
same people from a CSV export (columns: id, name, email, role, team, manager,
timezone, notify).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from rapidfuzz import fuzz, process

from .clock import zone
from .config import read_text
from .errors import UnknownUser, WorkspaceError

__all__ = ["Directory", "Person"]

_ID = re.compile(r"(?:^|[{,\s-])id:\s*['\"]?([\w.@-]+)")


class Person(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9_.-]+$")
    name: str
    email: str = ""
    role: str
    team: str = ""
    manager: str | None = None
    timezone: str = "UTC"
    notify: str = "chat"

    @property
    def handle(self) -> str:
        return self.id


class Directory:
    """People by id, plus the company's chat channels."""

    def __init__(self, people: Iterable[Person], channels: Iterable[str] = ()) -> None:
        self._people = {p.id: p for p in people}
        self.channels = sorted({c if c.startswith("#") else f"#{c}" for c in channels})

    def __iter__(self) -> Iterator[Person]:
        return iter(self._people.values())

    def __len__(self) -> int:
        return len(self._people)

    def __contains__(self, person_id: object) -> bool:
        return person_id in self._people

    def get(self, person_id: str) -> Person:
        try:
            return self._people[person_id]
        except KeyError:
            raise UnknownUser(f"no person {person_id!r} in the directory") from None

    def find(self, text: str) -> list[Person]:
        """People matching an id, an email, a full name or a first name."""
        needle = text.strip().lstrip("@").lower()
        if needle in self._people:
            return [self._people[needle]]
        exact = [
            p
            for p in self._people.values()
            if needle in (p.email.lower(), p.name.lower(), p.name.split()[0].lower())
        ]
        if exact:
            return exact
        names = {p.id: p.name.lower() for p in self._people.values()}
        hits = process.extract(needle, names, scorer=fuzz.WRatio, limit=3, score_cutoff=88)
        return [self._people[key] for _, _, key in hits]

    def resolve(self, text: str) -> Person:
        found = self.find(text)
        if len(found) == 1:
            return found[0]
        if not found:
            raise UnknownUser(f"no person matches {text!r}")
        names = ", ".join(p.id for p in found)
        raise UnknownUser(f"{text!r} could be any of {names}; use a person's id")

    def team_of(self, person_id: str | None) -> str:
        if person_id is None or person_id not in self._people:
            return ""
        return self._people[person_id].team

    def as_data(self) -> dict[str, Any]:
        return {
            "people": [p.model_dump(exclude_none=True) for p in self._people.values()],
            "channels": self.channels,
        }

    @classmethod
    def load(cls, path: Path) -> Directory:
        """Read ``directory.yaml``; problems name the file and the person's line."""
        text = read_text(path, "the directory file")
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark is not None else None
            raise WorkspaceError(f"not valid YAML: {exc}", file=str(path), line=line) from None
        if not isinstance(data, dict):
            raise WorkspaceError("expected a mapping with 'people' and 'channels'", file=str(path), line=1)
        lines = _id_lines(text)
        people = []
        for index, raw in enumerate(data.get("people") or []):
            try:
                people.append(Person.model_validate(raw))
            except ValidationError as exc:
                pid = raw.get("id") if isinstance(raw, dict) else None
                problem = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
                raise WorkspaceError(
                    f"person #{index + 1}: {problem}", file=str(path), line=lines.get(str(pid))
                ) from None
        directory = cls(people, data.get("channels") or [])
        for person in directory:
            line = lines.get(person.id)
            if person.manager and person.manager not in directory:
                raise WorkspaceError(
                    f"{person.id}'s manager {person.manager!r} is not in the directory", file=str(path), line=line
                )
            try:
                zone(person.timezone)
            except Exception:
                raise WorkspaceError(
                    f"{person.id} has an unknown time zone {person.timezone!r}", file=str(path), line=line
                ) from None
        return directory

    @classmethod
    def from_csv(cls, path: Path, channels: Iterable[str] = ()) -> Directory:
        people = []
        with path.open(newline="") as handle:
            for lineno, row in enumerate(csv.DictReader(handle), start=2):
                clean = {k.strip(): (v or "").strip() for k, v in row.items() if k}
                clean = {k: v for k, v in clean.items() if v}
                try:
                    people.append(Person.model_validate(clean))
                except ValidationError as exc:
                    raise WorkspaceError(str(exc.errors()[0]["msg"]), file=str(path), line=lineno) from None
        return cls(people, channels)

    def save(self, path: Path) -> None:
        path.write_text(yaml.safe_dump(self.as_data(), sort_keys=False))


def _id_lines(text: str) -> dict[str, int]:
    """Line number of each ``id:`` entry, so problems can point at them."""
    found: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        match = _ID.search(line)
        if match:
            found.setdefault(match.group(1), number)
    return found
