"""A demo workspace moved to a real system by editing ``sayso.toml`` alone, as a person would, and the
crash test every such system passes: killed right after the effect, recovered without repeating it."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .conftest import NOW, sayso, sayso_json


def switch_system(root: Path, system: str, table: str, secrets: Mapping[str, str]) -> None:
    """Replace ``[systems.<system>]`` (the demo kind) with ``table``, the lines of the new kind's table,
    and read each secret (name -> environment variable) from the environment."""
    path = root / "sayso.toml"
    toml = path.read_text()
    demo = f'[systems.{system}]\nkind = "demo.{system}"\npath = "systems/{system}.db"\n'
    assert demo in toml
    env = "".join(f'{name} = "{variable}"\n' for name, variable in secrets.items())
    path.write_text(toml.replace(demo, f"[systems.{system}]\n{table}") + f"\n[secrets.env]\n{env}")


def crash_then_recover(root: Path, user: str, action: str, args: Mapping[str, Any], env: Mapping[str, str],
                       effects: Callable[[], int], *, secret: str) -> dict[str, Any]:
    """``sayso do`` killed right after the effect (exit 137), then ``sayso recover``, twice: ``effects``,
    counted in the target system itself, stays at one; the step ends executed, found by a lookup (the
    audit's one call record says recovered), and ``secret`` is nowhere in the audit. The recovered step."""
    command = ["do", "--user", user, "--action", action, "--args", json.dumps(args), "--now", NOW]
    crashed = sayso(root, *command, env={**env, "SAYSO_FAULT": "crash-after-effect"})
    assert crashed.returncode == 137, crashed.stderr
    assert effects() == 1  # the effect happened in the target system; sayso did not record it

    code, recovered = sayso_json(root, "recover", "--now", NOW, env=dict(env))
    assert code == 0, recovered
    [plan] = recovered["recovered"]
    assert plan["steps"][0]["status"] == "executed"
    assert effects() == 1  # looked up, not repeated

    code, again = sayso_json(root, "recover", "--now", NOW, env=dict(env))
    assert again["recovered"] == [] and effects() == 1
    audit = sayso(root, "audit", "list", "--json", env=dict(env)).stdout
    assert secret not in audit
    calls = [json.loads(line) for line in audit.splitlines() if json.loads(line)["event"] == "call"]
    assert [c["detail"].get("recovered") for c in calls] == [True]  # found by lookup, not by retrying
    assert sayso(root, "audit", "verify", env=dict(env)).returncode == 0
    return dict(plan["steps"][0])
