"""Third-party connectors register through the ``sayso.connectors`` entry point group.

The complete example plugin in docs/connectors.md is taken from the page itself, installed as a
distribution (its module and a ``.dist-info`` with its ``entry_points.txt``, which is what pip
leaves in site-packages) into a folder that the real command line then has on its path.
So the documented example is the tested one.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .conftest import sayso

DOC = Path(__file__).resolve().parent.parent / "docs" / "connectors.md"
POLICY = """
@id("announcements")
@reason("anyone may post and list announcements")
permit (principal, action in [Action::"announce.post", Action::"announce.list"], resource);
"""


def _blocks() -> dict[str, str]:
    """The page's code blocks by the file name that introduces them (`name`: or a leading # comment)."""
    text = DOC.read_text()
    found: dict[str, str] = {}
    for match in re.finditer(r"(?:`([\w./-]+)`:\s*\n\s*\n)?```\w*\n(.*?)```", text, re.S):
        name, body = match.group(1), match.group(2)
        first = body.splitlines()[0] if body else ""
        if not name and first.startswith("# ") and "." in first:
            name = first[2:].strip()
        if name:
            found[name] = body
    return found


def _install(site: Path, blocks: dict[str, str]) -> None:
    project = blocks["pyproject.toml"]
    entry = re.search(r'\[project\.entry-points\."sayso\.connectors"\]\s*\n(\w+) = "([\w.:]+)"', project)
    assert entry, "the example pyproject.toml declares its entry point"
    package = site / "sayso_outbox"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(blocks["sayso_outbox/__init__.py"])
    info = site / "sayso_outbox-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: sayso-outbox\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(f"[sayso.connectors]\n{entry.group(1)} = {entry.group(2)}\n")
    (info / "RECORD").write_text("")


def test_the_documented_plugin_installs_and_runs(sqlite_root: Path, tmp_path: Path) -> None:
    blocks = _blocks()
    site = tmp_path / "site"
    _install(site, blocks)
    toml = sqlite_root / "sayso.toml"
    toml.write_text(toml.read_text() + "\n" + blocks["sayso.toml"])
    (sqlite_root / "actions" / "announcements.yaml").write_text(blocks["actions/announcements.yaml"])
    (sqlite_root / "policies" / "announcements.cedar").write_text(POLICY)

    missing = sayso(sqlite_root, "check")
    assert missing.returncode != 0
    assert "unknown connector kind 'outbox'" in missing.stdout + missing.stderr

    env = {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    checked = sayso(sqlite_root, "check", env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    done = sayso(sqlite_root, "do", "--user", "alice", "--action", "announce.post", "--args",
                 '{"topic": "sales", "text": "Brightwater moved to negotiation"}', "--now", "2026-11-25T09:00",
                 env=env)
    assert done.returncode == 0 and "executed" in done.stdout, done.stdout + done.stderr
    posts = list((sqlite_root / "systems" / "announcements").glob("*.json"))
    assert len(posts) == 1 and "Brightwater moved to negotiation" in posts[0].read_text()
    listed = sayso(sqlite_root, "do", "--user", "alice", "--action", "announce.list", "--args", "{}", env=env)
    assert listed.returncode == 0 and "Brightwater moved to negotiation" in listed.stdout
