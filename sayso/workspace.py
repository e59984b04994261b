"""A workspace: the folder that holds one deployment's configuration and state.

    sayso.toml        settings (store, catalog, guard, systems, secrets)
    directory.yaml    people, roles, teams, managers, time zones, channels
    actions/*.yaml    actions declared as data (Python modules listed in sayso.toml too)
    policies/*.cedar  who may do what
    state.db          the state database (SQLite by default)
    systems/          the demo systems' own storage
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from functools import cached_property
from pathlib import Path

from .catalog import Catalog, load_yaml_actions
from .config import Settings, load_settings
from .connectors import Connector, SystemContext, registry
from .directory import Directory
from .errors import ConfigurationError, SaysoError, WorkspaceError
from .policy import PolicyEngine
from .policy_schema import PolicySchema
from .store import Store

__all__ = ["Workspace", "is_workspace", "resolve_root"]

_DEMO_FILES = Path(__file__).parent / "demo" / "files"

_EMPTY_TOML = """\
# sayso workspace settings; docs/operations.md describes every key.
[workspace]
name = "{name}"

[store]
url = "sqlite:///state.db"

[catalog]
modules = []
paths = ["actions"]

[guard]
confirm_medium = false
allow_critical = false
confirmation_ttl_minutes = 15
"""

_EMPTY_POLICY = """\
// Who may do what. Every policy carries an @id and a @reason; docs/policies.md explains.
@id("admin-all")
@reason("admins may do everything the catalog offers")
permit(principal, action, resource) when { principal.role == "admin" };
"""

_EMPTY_ACTIONS = """\
# Actions declared as data; docs/catalog.md shows every key.
actions: []
"""


# A workspace's own entries: what init writes, and what sayso makes in it as it runs (the state database
# and its companions, the demo systems, imported operations, the servers' shared files). Replacing a
# workspace removes these and nothing else.
_OWN_FILES = (
    "sayso.toml", "directory.yaml", "actions", "policies", "operations", "systems",
    "state.db", "state.db-wal", "state.db-shm", "state.db-journal", "state.db-writer",
    ".sayso-serve-limits", ".sayso-serve-limits-wal", ".sayso-serve-limits-shm", ".sayso-serve-tokens",
    ".sayso-chat.log",
)


def is_workspace(root: Path) -> bool:
    """Whether ``root`` is a sayso workspace (it has a ``sayso.toml``)."""
    return (root / "sayso.toml").is_file()


def resolve_root(option: str | None) -> Path:
    """--workspace, else $SAYSO_WORKSPACE, else the current folder."""
    return Path(option or os.environ.get("SAYSO_WORKSPACE") or ".").resolve()


@dataclass
class Workspace:
    root: Path
    settings: Settings

    @classmethod
    def load(cls, root: Path) -> Workspace:
        return cls(root, load_settings(root / "sayso.toml"))

    @staticmethod
    def init(root: Path, *, demo: bool = False, force: bool = False, reference: date | None = None) -> Path:
        """Make an empty workspace, or the Lumen Labs demo, in ``root``: a new or empty folder, or (with
        ``force``) a workspace replaced. A folder holding anything else is refused, force or not."""
        if root.exists() and not root.is_dir():
            raise WorkspaceError(f"{root} is a file, not a folder")
        if root.exists() and any(root.iterdir()):
            if not is_workspace(root):
                raise WorkspaceError(f"{root} is not empty and is not a sayso workspace; sayso deletes only files "
                                     "it made: choose a new or empty folder")
            if not force:
                raise WorkspaceError(f"{root} is a sayso workspace already; use --force to replace it")
            for name in _OWN_FILES:  # what sayso made; anything else in the folder stays
                child = root / name
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink(missing_ok=True)
        root.mkdir(parents=True, exist_ok=True)
        if demo:
            from .connectors.demo import seed

            reference = reference or date.today()
            shutil.copytree(_DEMO_FILES, root, dirs_exist_ok=True)
            toml = (root / "sayso.toml").read_text().replace("{reference_day}", reference.isoformat())
            (root / "sayso.toml").write_text(toml)
            seed(root, reference)
        else:
            (root / "sayso.toml").write_text(_EMPTY_TOML.format(name=root.name))
            Directory([], []).save(root / "directory.yaml")
            (root / "policies").mkdir()
            (root / "policies" / "base.cedar").write_text(_EMPTY_POLICY)
            (root / "actions").mkdir()
            (root / "actions" / "actions.yaml").write_text(_EMPTY_ACTIONS)
        return root

    @cached_property
    def directory(self) -> Directory:
        return Directory.load(self.root / "directory.yaml")

    @cached_property
    def catalog(self) -> Catalog:
        catalog = Catalog()
        for module in self.settings.catalog.modules:
            catalog.extend_from_module(module)
        for folder in self.settings.catalog.paths:
            path = self.root / folder
            files = sorted(path.glob("*.yaml")) + sorted(path.glob("*.yml")) if path.is_dir() else []
            for file in files:
                load_yaml_actions(file, catalog)
        return catalog

    @cached_property
    def policies(self) -> PolicyEngine:
        return PolicyEngine.load(self.root / "policies", self.policy_schema())

    def policy_schema(self) -> PolicySchema | None:
        """The Cedar schema the policies are validated against: the catalog's actions over the record
        attributes the systems declare. None while a system cannot start (a refused token, a missing
        file): its record types are unknown then, and an outage must not make valid policies invalid;
        ``check`` names that system's problem instead."""
        from .visibility import reads_over  # visibility reads workspaces: imported here, not at the top

        records: dict[str, Mapping[str, str]] = {}
        held: set[str] = set(self.catalog.record_types())
        for name in self.settings.systems:
            try:
                records.update(self.connector(name).record_attributes)
                held |= self.connector(name).record_types
            except SaysoError:
                return None
        reads: dict[str, list[str]] = {}
        for record_type in sorted(held | set(records)):
            for action in reads_over(self, record_type):
                reads.setdefault(action.name, []).append(record_type)
        return PolicySchema.build(self.catalog, records, reads)

    @cached_property
    def secrets(self) -> dict[str, str]:
        return self.settings.load_secrets(self.root)

    @cached_property
    def store(self) -> Store:
        return Store.open(self.settings.database_url(self.root))

    @cached_property
    def _connectors(self) -> dict[str, Connector]:
        return {}

    def connector(self, name: str) -> Connector:
        if name not in self._connectors:
            settings = self.settings.systems.get(name)
            if settings is None:
                raise ConfigurationError(f"no system {name!r} in sayso.toml [systems]")
            context = SystemContext(self.root, self.directory, self.secrets)
            self._connectors[name] = registry.create(name, settings, context)
        return self._connectors[name]

    def connectors_for(self, record_type: str) -> list[Connector]:
        """The systems holding records of a type (e.g. Deal -> crm)."""
        found = []
        for name in self.settings.systems:
            connector = self.connector(name)
            if record_type in connector.record_types:
                found.append(connector)
        return found

    def check(self) -> list[SaysoError]:
        """Every problem with the workspace, each naming its file and line where known."""
        problems: list[SaysoError] = []
        for load in (lambda: self.directory, lambda: self.catalog, lambda: self.secrets):
            try:
                load()
            except SaysoError as exc:
                problems.append(exc)
        if "secrets" in self.__dict__:  # they loaded: the checkpoint key is among them
            try:
                self.checkpoint_key()
            except SaysoError as exc:
                problems.append(exc)
            link_key = self.settings.approvals.link_key
            if link_key is not None and len(self.secrets.get(link_key) or "") < 32:
                problems.append(WorkspaceError(f"[approvals] link_key names the secret {link_key!r}, which is not "
                                               "set or shorter than 32 characters", file=str(self.root / "sayso.toml")))
        if problems:
            problems.extend(PolicyEngine.problems(self.root / "policies"))
        else:
            problems.extend(PolicyEngine.problems(self.root / "policies", self.policy_schema()))
        if not problems:
            for item in self.catalog:
                if item.connector not in self.settings.systems:
                    problems.append(WorkspaceError(
                        f"action {item.name} uses system {item.connector!r}, which sayso.toml does not configure",
                        file=item.source or None,
                    ))
            for name in self.settings.systems:
                try:
                    self.connector(name)
                except SaysoError as exc:
                    problems.append(exc)
        try:  # the interpreter named in [interpreter] exists and has what it needs (no call is made)
            from .interpreter import registry

            settings = self.settings.interpreter.model_dump()
            registry.create(str(settings.get("name", "offline")), settings)
        except SaysoError as exc:
            problems.append(WorkspaceError(f"[interpreter]: {exc.message}", file="sayso.toml"))
        return problems

    def checkpoint_key(self) -> bytes | None:
        """The key that signs audit checkpoints: the secret named by ``[audit] checkpoint_key`` (never in the
        state database, so whoever can rewrite the database cannot forge a checkpoint)."""
        name = self.settings.audit.checkpoint_key
        if name is None:
            return None
        value = self.secrets.get(name)
        if value is None:
            raise WorkspaceError(f"[audit] checkpoint_key names the secret {name!r}, which is not set "
                                 "(environment or secrets file)", file=str(self.root / "sayso.toml"))
        if len(value) < 32:
            raise WorkspaceError(f"[audit] checkpoint_key: the secret {name!r} is shorter than 32 characters",
                                 file=str(self.root / "sayso.toml"))
        return value.encode()

    def close(self) -> None:
        for connector in self._connectors.values():
            connector.close()
        if "store" in self.__dict__:
            self.store.dispose()
