"""Moving a demo workspace's system to a real kind by editing ``sayso.toml`` alone, as a person would."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path


def switch_system(root: Path, system: str, table: str, secrets: Mapping[str, str]) -> None:
    """Replace ``[systems.<system>]`` (the demo kind) with ``table``, the lines of the new kind's table,
    and read each secret (name -> environment variable) from the environment."""
    path = root / "sayso.toml"
    toml = path.read_text()
    demo = f'[systems.{system}]\nkind = "demo.{system}"\npath = "systems/{system}.db"\n'
    assert demo in toml
    env = "".join(f'{name} = "{variable}"\n' for name, variable in secrets.items())
    path.write_text(toml.replace(demo, f"[systems.{system}]\n{table}") + f"\n[secrets.env]\n{env}")
