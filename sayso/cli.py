"""The ``sayso`` command line (Typer + Rich).

With ``--json`` a command prints exactly one JSON object on standard output;
logs go to standard error. The exit status is 0 whenever a request was handled
(denied included) and the error's own exit code for status ``error``. Every
error a command raises reaches :func:`_fail` (through the root group, whatever
the command), which prints it one way, unwrapped: ``error [code]: message``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from . import __version__
from .audit import AuditEvent, Verification, write_checkpoint
from .clock import Clock, parse_time
from .errors import ConfigurationError, InputTooLarge, InvalidArguments, SaysoError, UnknownRecord, exit_code
from .interpreter.guesses import decline_guesses
from .pipeline import Pipeline
from .turn import TurnResult, TurnStatus
from .workspace import Workspace, is_workspace, resolve_root

_JSON_MODE = "sayso.json"  # in the click context's meta: the command was given --json


class _Commands(TyperGroup):
    """The root command: an error any command raises ends here, printed by :func:`_fail` with its kind's exit
    code, so no command prints errors its own way."""

    def invoke(self, ctx: Any) -> Any:  # a click Context (typer's own copy of click in newer releases)
        try:
            return super().invoke(ctx)
        except SaysoError as exc:
            _fail(exc, bool(ctx.meta.get(_JSON_MODE)))


# An unexpected exception (a bug) ends in a plain traceback and exit 1: Rich's tracebacks would show local
# variables, secrets among them.
app = typer.Typer(cls=_Commands, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="sayso: say it, and it is done, safely.")
audit_app = typer.Typer(no_args_is_help=True, help="Query, verify and export the audit log.")
policy_app = typer.Typer(no_args_is_help=True, help="Explain policy decisions.")
directory_app = typer.Typer(no_args_is_help=True, help="Manage the directory of people.")
token_app = typer.Typer(no_args_is_help=True, help="Create, list and revoke HTTP API access tokens.")
app.add_typer(audit_app, name="audit")
app.add_typer(policy_app, name="policy")
app.add_typer(directory_app, name="directory")
app.add_typer(token_app, name="token")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)  # never wrapped: a path or a message stays whole


def _json_mode(ctx: typer.Context, value: bool) -> bool:
    """Remember ``--json`` for the root's error handling: an error is then one JSON object on standard output."""
    if value:
        ctx.meta[_JSON_MODE] = True
    return value


def _version(value: bool) -> None:
    if value:
        print(f"sayso {__version__}")
        raise typer.Exit()


WorkspaceOpt = Annotated[str | None, typer.Option("--workspace", "-w", help="Workspace folder "
                                                  "(default: $SAYSO_WORKSPACE, else the current folder)")]
NowOpt = Annotated[str | None, typer.Option("--now", envvar="SAYSO_NOW", help="Pin the clock (ISO 8601; no offset "
                                            "= the person's time zone); --now wins over $SAYSO_NOW")]
JsonOpt = Annotated[bool, typer.Option("--json", callback=_json_mode, help="Print one JSON object")]
UserOpt = Annotated[str, typer.Option("--user", "-u", help="Who is acting (a directory id)")]


class _ConversationDefault(logging.Filter):
    """Every record names its conversation ("-" when there is none)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "conversation"):
            record.conversation = "-"
        return True


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print sayso's version and exit")] = False,
) -> None:
    """sayso: say it, and it is done, safely."""


def main() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_ConversationDefault())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(conversation)s] %(message)s"))
    logging.basicConfig(level=os.environ.get("SAYSO_LOG", "WARNING").upper(), handlers=[handler])
    app()


def _error_line(code: str, message: str) -> Text:
    """An error as people and scripts read it: ``error [code]: message``, on one line."""
    return Text.assemble(("error", "red"), f" [{code}]: {message}")


def _fail(exc: SaysoError, as_json: bool) -> NoReturn:
    """Print an error (one JSON object on standard output with ``--json``, else one unwrapped line on
    standard error) and exit with its kind's code (docs/operations.md, "Errors and exit codes")."""
    if as_json:
        print(json.dumps(TurnResult.from_error(exc).to_json()))
    else:
        err.print(_error_line(exc.code, exc.message))
    raise typer.Exit(exc.exit_code)


def _open(workspace: str | None, as_json: bool = False) -> Workspace:
    try:
        ws = Workspace.load(resolve_root(workspace))
        ws.directory  # noqa: B018 - fail early on a broken directory
        return ws
    except SaysoError as exc:
        _fail(exc, as_json)
        raise


def _pipeline(ws: Workspace, now: str | None, user: str | None, as_json: bool) -> Pipeline:
    tz = ws.directory.get(user).timezone if user and user in ws.directory else None
    try:
        clock = Clock.from_option(now, tz)
        return Pipeline(ws, clock)
    except SaysoError as exc:
        _fail(exc, as_json)
        raise


def _emit(result: TurnResult, as_json: bool) -> None:
    """A turn's result; one with status ``error`` exits with its code's exit status, printed as any error."""
    error = (result.error or {}) if result.status is TurnStatus.ERROR else None
    if as_json:
        print(json.dumps(result.to_json(), default=str))
    elif error is not None:
        err.print(_error_line(str(error.get("code", "error")), str(error.get("message", result.reply))))
    else:
        _show(result)
    if error is not None:
        raise typer.Exit(exit_code(str(error.get("code", ""))))


def _show(result: TurnResult) -> None:
    colour = {"executed": "green", "answered": "green", "denied": "red", "error": "red", "failed": "red",
              "needs_confirmation": "yellow", "needs_clarification": "yellow"}.get(result.status.value, "white")
    out.print(f"[{colour}]{result.status.value}[/{colour}]")
    records = [r for step in result.steps for r in (step.records or [])]
    if records:
        table = Table(show_lines=False)
        hidden = {"description", "version", "type", "name", "origin", "words"}
        keys = list(dict.fromkeys(k for r in records for k in r if k not in hidden))
        for key in keys:
            table.add_column(key)
        for record in records:
            table.add_row(*[escape(_cell(record.get(k))) for k in keys])
        out.print(table)
        if result.status is TurnStatus.ANSWERED:
            return
    out.print(result.reply, markup=False)  # text from people and systems is never markup
    for option in result.options or []:
        out.print(f"  - {escape(option.label)}  [dim](value: {escape(option.value)})[/dim]")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def _args(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidArguments(f"--args is not valid JSON: {exc.msg} at character {exc.pos}") from None


# --- workspace ------------------------------------------------------------------------


ForceOpt = Annotated[bool, typer.Option("--force", help="Replace a sayso workspace already in the folder without "
                                        "asking (a folder holding anything else is always refused)")]


def _can_ask() -> bool:
    """Whether a person at a terminal can be asked; piped or redirected input never is."""
    return sys.stdin.isatty()


def _replacing(root: Path, force: bool, as_json: bool = False) -> bool:
    """Whether to replace the workspace at ``root``: ``--force``, or the person at the terminal says yes.
    Without a terminal (or with ``--json``) only ``--force`` replaces; Workspace.init refuses otherwise."""
    if force or as_json or not is_workspace(root) or not _can_ask():
        return force
    return typer.confirm(f"{root} is a sayso workspace. Replace it? Its state database, systems, policies and "
                         "actions are deleted; other files stay", default=False)


@app.command()
def init(
    folder: Annotated[Path, typer.Argument(help="Folder to create the workspace in: new, empty, or a workspace "
                                           "to replace")],
    demo: Annotated[bool, typer.Option("--demo", help="The Lumen Labs demo company")] = False,
    force: ForceOpt = False,
    now: NowOpt = None,
) -> None:
    """Make an empty workspace, or the Lumen Labs demo (dates relative to --now's day)."""
    reference = parse_time(now).date() if now else date.today()
    root = folder.resolve()
    root = Workspace.init(root, demo=demo, force=_replacing(root, force), reference=reference)
    kind = f"Lumen Labs demo workspace (reference day {reference})" if demo else "empty workspace"
    out.print(f"Created {kind} in {root}", markup=False)


@app.command()
def check(workspace: WorkspaceOpt = None) -> None:
    """Validate a workspace: configuration, directory, catalog, policies, systems."""
    try:
        ws = Workspace.load(resolve_root(workspace))
    except SaysoError as exc:
        _fail(exc, False)
        return
    problems = ws.check()
    for problem in problems:
        out.print(f"[red]problem[/red] {escape(problem.message)}")
    if problems:
        raise typer.Exit(3)
    out.print(f"[green]ok[/green] {ws.root}: {len(ws.directory)} people, {len(ws.catalog)} actions, "
              f"{len(ws.settings.systems)} systems, policies {ws.policies.hash[:12]}")


@app.command()
def actions(workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """List the action catalog."""
    ws = _open(workspace, as_json)
    try:
        items = [a.describe() for a in ws.catalog]
    except SaysoError as exc:
        _fail(exc, as_json)
        return
    if as_json:
        print(json.dumps(items))
        return
    table = Table("action", "kind", "risk", "parameters", "description")
    for item in items:
        params = item["parameters"].get("properties", {})
        required = set(item["parameters"].get("required", []))
        names = escape(", ".join(p if p in required else f"[{p}]" for p in params))
        table.add_row(item["name"], item["kind"], item["risk"]["tier"] + ("+" if item["risk"].get("when") else ""),
                      names, item["description"])
    out.print(table)


@directory_app.command("import")
def directory_import(csv_file: Path, workspace: WorkspaceOpt = None) -> None:
    """Replace the directory's people from a CSV export (id,name,email,role,team,manager,timezone,notify)."""
    from .directory import Directory

    ws = _open(workspace)
    try:
        imported = Directory.from_csv(csv_file, ws.directory.channels)
    except SaysoError as exc:
        _fail(exc, False)
        return
    imported.save(ws.root / "directory.yaml")
    out.print(f"Imported {len(imported)} people into {ws.root / 'directory.yaml'}")


import_app = typer.Typer(no_args_is_help=True, help="Write actions from other descriptions (MCP servers, ...).")
app.add_typer(import_app, name="import")


@import_app.command("mcp")
def import_mcp(
    system: Annotated[str, typer.Option("--system", help="An MCP system in sayso.toml [systems] (kind = \"mcp\")")],
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write actions/<prefix>.yaml from an MCP server's tools: a snapshot to review; run again to refresh."""
    from .connectors.mcp import import_actions

    ws = _open(workspace, as_json)
    try:
        done = import_actions(ws, system)
    except SaysoError as exc:
        _fail(exc, as_json)
        return
    finally:
        ws.close()
    if as_json:
        print(json.dumps({"path": str(done.path), "actions": done.actions,
                          "skipped": [{"tool": t, "reason": r} for t, r in done.skipped]}))
        return
    out.print(f"Wrote {len(done.actions)} actions to {done.path}", markup=False)
    for item in done.actions:
        out.print(f"  {item['name']}  {item['kind']}, risk {item['risk']}", markup=False)
    for tool, reason in done.skipped:
        out.print(f"  skipped {tool}: {reason}", markup=False)


@import_app.command("openapi")
def import_openapi(
    spec: Annotated[str, typer.Argument(help="An OpenAPI 3.0 or 3.1 document (JSON or YAML): a file or a URL")],
    prefix: Annotated[str | None, typer.Option("--prefix", help="The system's name and the actions' prefix "
                                               "(default: from the document's title)")] = None,
    base_url: Annotated[str | None, typer.Option("--base-url", help="The API's address (default: the "
                                                 "document's first server)")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace what an earlier import wrote")] = False,
    workspace: WorkspaceOpt = None,
) -> None:
    """Write actions/<prefix>.yaml and operations/<prefix>.yaml from an OpenAPI document; add [systems.<prefix>]."""
    from .openapi import import_openapi as run

    try:
        done = run(spec, resolve_root(workspace), prefix=prefix, base_url=base_url, force=force)
    except SaysoError as exc:
        _fail(exc, False)
        return
    out.print(f"Imported {len(done.actions)} actions as {done.prefix}.*", markup=False)
    for path in done.written:
        out.print(f"  wrote {path}", markup=False)
    if done.toml_added:
        out.print(f"  added [systems.{done.prefix}] to sayso.toml: base_url {done.base_url}, allowed_hosts "
                  f"{', '.join(done.hosts)}", markup=False)
    for reason in done.skipped:
        out.print(f"  skipped {reason}", markup=False)
    out.print("Next: review the actions' risk, add a policy that permits them, set the API's credentials "
              "(see the comments in sayso.toml), then `sayso check`.", markup=False)


# --- turns ----------------------------------------------------------------------------


@app.command()
def do(
    user: UserOpt,
    action: Annotated[str, typer.Option("--action", "-a", help="Action name, e.g. crm.update_deal")],
    args: Annotated[str, typer.Option("--args", help="Arguments as a JSON object")] = "{}",
    conversation: Annotated[str | None, typer.Option("--conversation", help="Conversation id")] = None,
    workspace: WorkspaceOpt = None,
    now: NowOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run one action through validation, grounding, policy, guard, executor and audit."""
    ws = _open(workspace, as_json)
    pipeline = _pipeline(ws, now, user, as_json)
    try:
        parsed = _args(args)
    except SaysoError as exc:
        _fail(exc, as_json)
        return
    _emit(pipeline.do(user, action, parsed, conversation=conversation), as_json)


@app.command()
def confirm(confirmation_id: str, user: UserOpt, workspace: WorkspaceOpt = None, now: NowOpt = None,
            as_json: JsonOpt = False) -> None:
    """Approve a pending confirmation: the exact plan runs, once."""
    ws = _open(workspace, as_json)
    _emit(_pipeline(ws, now, user, as_json).confirm(user, confirmation_id), as_json)


@app.command()
def cancel(confirmation_id: str, user: UserOpt, workspace: WorkspaceOpt = None, now: NowOpt = None,
           as_json: JsonOpt = False) -> None:
    """Decline a pending confirmation; nothing changes."""
    ws = _open(workspace, as_json)
    _emit(_pipeline(ws, now, user, as_json).cancel(user, confirmation_id), as_json)


@app.command()
def pending(user: UserOpt, workspace: WorkspaceOpt = None, now: NowOpt = None, as_json: JsonOpt = False) -> None:
    """List the confirmations waiting for a person, and say how many expired unanswered (by the clock in use)."""
    ws = _open(workspace, as_json)
    pipeline = _pipeline(ws, now, user, as_json)
    items = [c.summary() for c in pipeline.pending(user)]
    if as_json:
        print(json.dumps(items))
        return
    for item in items:
        asked = f"  asked by {item['requester']}" if item["requester"] != user else ""  # routed to them
        out.print(f"{item['id']}  {', '.join(item['actions'])}{asked}  expires {item['expires_at']}", markup=False)
    expired = pipeline.confirmations.expired(user)
    note = ""
    if expired:
        count = f"{len(expired)} confirmation{'s' if len(expired) > 1 else ''} expired"
        newest = max(c.expires_at for c in expired).isoformat()
        note = f"{count}; the newest at {newest}, and the clock reads {pipeline.clock.now().isoformat()}"
    if not items:
        out.print(f"Nothing waits for {user}" + (f" ({note})." if note else "."), markup=False)
    elif note:
        out.print(f"({note})", markup=False)


@app.command()
def undo(user: UserOpt, workspace: WorkspaceOpt = None, now: NowOpt = None, as_json: JsonOpt = False) -> None:
    """Undo the person's last undoable step (through its compensation)."""
    ws = _open(workspace, as_json)
    _emit(_pipeline(ws, now, user, as_json).undo(user), as_json)


@app.command()
def recover(workspace: WorkspaceOpt = None, now: NowOpt = None, as_json: JsonOpt = False) -> None:
    """Finish unfinished plans that no live process holds (after a crash)."""
    ws = _open(workspace, as_json)
    results = _pipeline(ws, now, None, as_json).recover()
    if as_json:
        print(json.dumps({"recovered": [r.to_json() for r in results]}))
        return
    skipped = sum(1 for r in results if r.error and r.error.get("code") == "plan_unreadable")
    out.print(f"Recovered {len(results) - skipped} plan(s)" + (f"; skipped {skipped} that cannot be read."
                                                             if skipped else "."))
    for result in results:
        out.print(result.reply, markup=False)


@policy_app.command("check")
def policy_check(
    user: UserOpt,
    action: Annotated[str, typer.Option("--action", "-a")],
    args: Annotated[str, typer.Option("--args")] = "{}",
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Explain what the policy would decide, without doing anything."""
    ws = _open(workspace, as_json)
    try:
        decision = Pipeline(ws).explain(user, action, _args(args))
    except SaysoError as exc:
        _fail(exc, as_json)
        return
    if as_json:
        print(json.dumps(decision, default=str))
        return
    verdict = {True: "[green]allow[/green]", False: "[red]deny[/red]", None: "[yellow]ambiguous[/yellow]"}
    explanation = escape(str(decision.get("reason", decision.get("question", ""))))
    out.print(f"{verdict[decision.get('allowed')]} {decision.get('rule', '')}: {explanation}")


# --- audit ----------------------------------------------------------------------------


@audit_app.command("list")
def audit_list(
    workspace: WorkspaceOpt = None,
    user: Annotated[str | None, typer.Option("--user")] = None,
    conversation: Annotated[str | None, typer.Option("--conversation")] = None,
    action: Annotated[str | None, typer.Option("--action")] = None,
    since: Annotated[str | None, typer.Option("--since", help="ISO time")] = None,
    limit: Annotated[int | None, typer.Option("--limit")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List audit records (JSON lines with --json)."""
    ws = _open(workspace, as_json)
    try:
        rows = Pipeline(ws).audit.list(user=user, conversation=conversation, action=action,
                                       since=parse_time(since) if since else None, limit=limit)
    except SaysoError as exc:
        _fail(exc, as_json)
        return
    if as_json:
        for row in rows:
            print(json.dumps(row, default=str))
        return
    table = Table("id", "at", "actor", "conversation", "event", "action", "status")
    for row in rows:
        table.add_row(*[escape(str(row[k] or "")) for k in ("id", "at", "actor", "conversation", "event",
                                                            "action", "status")])
    out.print(table)


@audit_app.command("show")
def audit_show(record_id: str, workspace: WorkspaceOpt = None) -> None:
    """Show one audit record in full."""
    ws = _open(workspace, True)
    try:
        print(json.dumps(Pipeline(ws).audit.get(record_id), indent=2, default=str))
    except SaysoError as exc:
        _fail(exc, False)


def _checkpoint_file(ws: Workspace, given: Path | None) -> Path | None:
    """The file named on the command line, else ``[audit] checkpoints`` (relative to the workspace)."""
    if given is not None:
        return given
    configured = ws.settings.audit.checkpoints
    return ws.root / configured if configured else None


def _broken(result: Verification, after: str = "") -> NoReturn:
    where = f" at record {result.bad_id} (seq {result.bad_seq})" if result.bad_id else (
        f" at seq {result.bad_seq}" if result.bad_seq is not None else "")
    err.print(f"[red]broken[/red]{where}: {escape(result.problem)}{after}")
    raise typer.Exit(1)


AgainstOpt = Annotated[Path | None, typer.Option("--against", help="Checkpoint file to check the chain against "
                                                 "(default: [audit] checkpoints, when set)")]


@audit_app.command("verify")
def audit_verify(workspace: WorkspaceOpt = None, against: AgainstOpt = None) -> None:
    """Check the hash chain, and that every checkpoint's record is still there; fails naming the first bad one."""
    ws = _open(workspace)
    try:
        result = Pipeline(ws).audit.verify(_checkpoint_file(ws, against), ws.checkpoint_key())
    except SaysoError as exc:
        _fail(exc, False)
        return
    if not result.ok:
        _broken(result)
    checked = {0: "", 1: ", 1 checkpoint matches"}.get(result.checkpoints, f", {result.checkpoints} checkpoints match")
    out.print(f"[green]ok[/green] {result.count} records, chain intact{checked}")


@audit_app.command("checkpoint")
def audit_checkpoint(
    workspace: WorkspaceOpt = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to append to (default: [audit] "
                                                "checkpoints; -: standard output, e.g. for logger)")] = None,
    now: NowOpt = None,
) -> None:
    """Append the chain's head (seq, hash, first record's hash) to a file outside the database, once the chain
    verifies against the checkpoints already there; `verify --against` then detects truncation."""
    ws = _open(workspace)
    to_stdout = output is not None and str(output) == "-"
    try:
        earlier = _checkpoint_file(ws, None if to_stdout else output)  # printed: still checked against the file
        target = None if to_stdout else earlier
        if target is None and not to_stdout:
            raise ConfigurationError("name the checkpoint file: --output FILE, or [audit] checkpoints in sayso.toml")
        key = ws.checkpoint_key()
        result, point = Pipeline(ws, Clock.from_option(now)).audit.checkpoint(
            ws.settings.workspace.name, earlier if earlier is not None and earlier.exists() else None, key)
    except SaysoError as exc:
        _fail(exc, False)
        return
    if point is None:
        _broken(result, "; no checkpoint written")
    if target is None:
        print(point.line(key))
        return
    write_checkpoint(target, point.line(key))
    out.print(f"checkpoint: seq {point.seq}, hash {point.hash[:12]}..., appended to {escape(str(target))}")


@audit_app.command("export")
def audit_export(
    workspace: WorkspaceOpt = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File (default or -: standard output)")] = None,
) -> None:
    """Export the whole audit log as JSON lines, hashes included."""
    ws = _open(workspace)
    if output is not None and str(output) == "-":
        output = None
    handle = output.open("w") if output else sys.stdout
    try:
        for row in Pipeline(ws).audit.iter_rows():
            handle.write(json.dumps(row, default=str) + "\n")
    finally:
        if output:
            handle.close()


# --- tokens ---------------------------------------------------------------------------


def _need_serve() -> None:
    """Access tokens belong to the HTTP API, an extra."""
    try:
        import sayso.serve  # noqa: F401
    except ModuleNotFoundError as exc:
        if (exc.name or "").startswith("sayso"):
            raise
        raise ConfigurationError('access tokens come with the HTTP API: pip install "sayso[serve]"') from None


@token_app.command("create")
def token_create(
    user: UserOpt,
    expires: Annotated[int | None, typer.Option("--expires", help="Days until it expires; 0 = never "
                                                "(default: [serve] token_days)")] = None,
    label: Annotated[str | None, typer.Option("--label", help="What the token is for")] = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Make an access token for a person; it is shown once, on the last line."""
    ws = _open(workspace)
    try:
        _need_serve()
        from .serve.auth import Tokens

        ws.directory.get(user)
        tokens = Tokens(ws.store, Clock(), default_days=ws.settings.serve.token_days)
        token_id, token = tokens.create(user, days=expires, label=label)
    except SaysoError as exc:
        _fail(exc, False)
        return
    expiry = next(t["expires_at"] for t in tokens.list(user) if t["id"] == token_id) or "never"
    out.print(f"Token {token_id} for {escape(user)}, expires {expiry}. It is shown once; keep it secret:")
    print(token)


@token_app.command("list")
def token_list(user: UserOpt, workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """A person's tokens: ids and dates, never the tokens themselves."""
    ws = _open(workspace, as_json)
    try:
        _need_serve()
        from .serve.auth import Tokens

        items = Tokens(ws.store, Clock()).list(user)
    except SaysoError as exc:
        _fail(exc, as_json)
        return
    if as_json:
        print(json.dumps({"tokens": items}))
        return
    if not items:
        out.print(f"{escape(user)} has no tokens.")
        return
    for item in items:
        state = f"revoked {item['revoked_at']}" if item["revoked_at"] else f"expires {item['expires_at'] or 'never'}"
        out.print(f"{item['id']}  created {item['created_at']}  {state}  {item['label'] or ''}".rstrip(), markup=False)


@token_app.command("revoke")
def token_revoke(token_id: str, workspace: WorkspaceOpt = None) -> None:
    """Revoke a token; it stops working at once."""
    ws = _open(workspace)
    try:
        _need_serve()
        from .serve.auth import Tokens

        if not Tokens(ws.store, Clock()).revoke(token_id):  # running servers read the raised epoch
            raise UnknownRecord(f"no token {token_id!r}")
    except SaysoError as exc:
        _fail(exc, False)
        return
    out.print(f"Revoked {escape(token_id)}.")


# --- conversation ---------------------------------------------------------------------

_HELP = """Say what you want done, in your own words, e.g.
  which of my deals close in the next 30 days?
  move the Brightwater one to negotiation
  create a follow-up for the account owner of the Orchid deal next Tuesday
Answer "yes" or "no" to a confirmation, or pick an option by its number or words.
Commands: /help  /audit (this conversation's record)  /undo (your last undoable change)
          /new (a new conversation)  /as USER (demo workspaces: speak as someone else)  /quit (or quit)"""


def _interpreter(ws: Workspace, name: str | None, model: str | None = None) -> Any:
    """The interpreter the workspace configures, or the one named on the command line (with its model)."""
    from .interpreter import registry

    settings = ws.settings.interpreter.model_dump()
    if model:
        settings["model"] = model
    return registry.create(name or str(settings.get("name", "offline")), settings)


ModelOpt = Annotated[str | None, typer.Option("--model", help="The model, for a model interpreter (default: "
                                              "sayso.toml's [interpreter] model)")]
InterpreterOpt = Annotated[str | None, typer.Option("--interpreter", help="offline, openai, anthropic or a plugin "
                                                    "(default: sayso.toml's [interpreter] name, else offline)")]


class _Session:
    """One person's chat on one workspace, for ``sayso chat`` and ``sayso demo``."""

    def __init__(self, ws: Workspace, user: str, now: str | None, conversation: str | None,
                 interpreter: str | None, model: str | None = None) -> None:
        from .conversation import Chat

        self.ws, self.now, self.conversation = ws, now, conversation
        self.engine = _interpreter(ws, interpreter, model)
        self.user = ws.directory.get(user).id
        self.chat = Chat(self._pipeline(), self.engine)
        if conversation is not None:
            self.chat.conversations.get(conversation, self.user)

    def _pipeline(self) -> Pipeline:
        tz = self.ws.directory.get(self.user).timezone
        return Pipeline(self.ws, Clock.from_option(self.now, tz), channel="chat")

    def switch(self, user: str) -> None:
        from .conversation import Chat

        if not self.ws.settings.workspace.demo:
            raise InvalidArguments("/as works only in a demo workspace")
        self.user = self.ws.directory.get(user.strip()).id
        self.chat = Chat(self._pipeline(), self.engine)
        self.conversation = None

    def say(self, text: str) -> TurnResult:
        result = self.chat.say(self.user, text, self.conversation)
        if result.conversation and result.status is not TurnStatus.ERROR or self.conversation is None:
            self.conversation = result.conversation
        return result

    def command(self, line: str) -> TurnResult | str:
        """A slash command: a turn (``/undo``) or text to show."""
        name, _, rest = line[1:].partition(" ")
        if name == "help":
            return _HELP
        if name == "as":
            self.switch(rest)
            return f"Now speaking as {self.user} (new conversation)."
        if name == "new":
            self.conversation = None
            return "New conversation."
        if name == "undo":
            return self.chat.pipeline.undo(self.user)
        if name == "audit":
            if not self.conversation:
                return "Nothing recorded in this conversation yet."
            rows = self.chat.pipeline.audit.list(conversation=self.conversation)
            return "\n".join(f"{r['at'][:19]}  {r['event']:<14} {r['status']:<20} {r['action'] or ''}  "
                             f"{_audit_detail(r)}" for r in rows) or "Nothing recorded yet."
        raise InvalidArguments(f"unknown command /{name}; try /help")


def _audit_detail(row: dict[str, Any]) -> str:
    detail = row.get("detail") or {}
    for key in ("rule", "question", "id"):
        if detail.get(key):
            return f"{key}={detail[key]}"
    request = detail.get("request")
    if isinstance(request, dict) and request.get("text"):
        return f"said={str(request['text'])[:60]!r}"
    return ""


def _card(result: TurnResult) -> None:
    """A confirmation card: exactly what will change, and how to answer."""
    from rich.panel import Panel

    lines = [escape(line) for line in result.reply.splitlines() if not line.startswith("Confirm with")]
    out.print(Panel("\n".join(lines), title="needs your confirmation", border_style="yellow"), soft_wrap=False)


def _logs_aside(root: Path) -> None:
    """In a chat on a terminal, log lines go to ``.sayso-chat.log`` in the workspace, not between the replies."""
    handler = logging.FileHandler(root / ".sayso-chat.log", encoding="utf-8")
    handler.addFilter(_ConversationDefault())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(conversation)s] %(message)s"))
    logger = logging.getLogger()
    for old in [h for h in logger.handlers if isinstance(h, logging.StreamHandler)
                and getattr(h, "stream", None) in (sys.stderr, sys.stdout)]:
        logger.removeHandler(old)
    logger.addHandler(handler)


_LEAVE = ("/quit", "/exit", "quit", "exit")  # a line that is only one of these ends the chat


def _chat_loop(session: _Session, as_json: bool) -> None:
    interactive = sys.stdin.isatty() and not as_json
    if interactive:
        _logs_aside(session.ws.root)
        out.print(f"[dim]{escape(session.ws.settings.workspace.name)} - you are {session.user}. /help for help, "
                  "/quit to leave.[/dim]")
    while True:
        try:
            line = out.input(f"[bold cyan]{session.user}[/bold cyan]> ") if interactive else sys.stdin.readline()
        except (EOFError, KeyboardInterrupt):
            break
        if not interactive and line == "":
            break
        text = line.rstrip("\n")
        if text.strip().lower() in _LEAVE:  # even while a question waits: "quit" is never its answer
            break
        try:
            if text.startswith("/"):
                outcome: TurnResult | str = session.command(text.strip())
            elif not text.strip():
                if interactive:
                    continue
                raise InvalidArguments("empty message")
            else:
                outcome = session.say(text)
        except SaysoError as exc:
            outcome = TurnResult.from_error(exc, conversation=session.conversation)
        if as_json:
            data = outcome.to_json() if isinstance(outcome, TurnResult) else {"status": "info", "reply": outcome}
            if session.conversation:
                data.setdefault("conversation", session.conversation)
            print(json.dumps(data, default=str), flush=True)
        elif isinstance(outcome, str):
            out.print(outcome, markup=False)
        elif outcome.status is TurnStatus.NEEDS_CONFIRMATION:
            _card(outcome)
        else:
            _show(outcome)


@app.command()
def chat(
    user: UserOpt,
    workspace: WorkspaceOpt = None,
    now: NowOpt = None,
    conversation: Annotated[str | None, typer.Option("--conversation", help="Go on with this conversation")] = None,
    interpreter: InterpreterOpt = None,
    model: ModelOpt = None,
    as_json: Annotated[bool, typer.Option("--json", callback=_json_mode, help="Read one message per line from "
                                          "standard input, write one JSON line for each")] = False,
) -> None:
    """Talk to sayso: requests in your own words, confirmations, questions, reads as tables."""
    ws = _open(workspace, as_json)
    try:
        session = _Session(ws, user, now, conversation, interpreter, model)
    except SaysoError as exc:
        _fail(exc, as_json)
        return
    _chat_loop(session, as_json)


@app.command()
def interpret(
    text: str,
    user: UserOpt = "alice",
    workspace: WorkspaceOpt = None,
    now: NowOpt = None,
    conversation: Annotated[str | None, typer.Option("--conversation")] = None,
    interpreter: InterpreterOpt = None,
    model: ModelOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show how a message is understood, without grounding, deciding or executing anything."""
    from .conversation import Chat, ConversationState

    ws = _open(workspace, as_json)
    try:
        person = ws.directory.get(user)
        pipeline = Pipeline(ws, Clock.from_option(now, person.timezone))
        chat_ = Chat(pipeline, _interpreter(ws, interpreter, model))
        state = chat_.conversations.get(conversation, person.id) if conversation else ConversationState()
        limit = ws.settings.limits.max_text_chars
        if len(text) > limit:
            raise InputTooLarge(f"the message is {len(text)} characters; the limit is {limit}")
        result = chat_.interpreter.interpret(text, chat_._context(state, person), ws.catalog, person)
        result = decline_guesses(result, text, ws.catalog)  # the steps after the checks Chat applies
    except SaysoError as exc:
        _fail(exc, as_json)
        return
    if as_json:
        print(json.dumps(result.audit(), default=str))
        return
    out.print(f"[bold]{result.kind}[/bold] ({result.interpreter} {result.version})")
    for step in result.steps:
        out.print(f"  {step.action} {escape(json.dumps(step.args, default=str))} confidence {step.confidence}")
    for line in (result.question, result.reply):
        if line:
            out.print(f"  {line}", markup=False)


class Half(StrEnum):
    """A half of an evaluation set (``sayso eval --half``)."""

    dev = "dev"
    test = "test"


@app.command("eval")
def eval_(
    cases: Path,
    interpreter: InterpreterOpt = None,
    model: ModelOpt = None,
    category: Annotated[str | None, typer.Option("--category", help="Only this category")] = None,
    fail_under: Annotated[float | None, typer.Option("--fail-under", help="Exit 1 below this accuracy")] = None,
    as_json: JsonOpt = False,
    half: Annotated[Half | None, typer.Option("--half", help="Only the dev or the test half (by a hash of the id); "
                                                            "run the test half only before stopping")] = None,
    weights: Annotated[list[str] | None, typer.Option("--weights", help="Change an offline interpreter weight, "
                                                      "KEY=VALUE (repeatable), e.g. min_score=1.4")] = None,
) -> None:
    """Run conversations with expected outcomes on fresh demo workspaces; print accuracy and failures."""
    from .evaluation import half_of, halves, load_cases, run_cases, summary_rows
    from .interpreter import registry

    try:
        loaded = [c for c in load_cases(cases) if (category is None or c.category == category)
                  and (half is None or half_of(c.id) == half.value)]
        settings: dict[str, Any] = {"model": model} if model else {}
        if weights:
            from .interpreter.offline.weights import assignments

            settings["weights"] = assignments(weights)
        engine = registry.create(interpreter or "offline", settings)
    except SaysoError as exc:
        _fail(exc, as_json)
        return

    def progress(n: int, _case: Any) -> None:
        if not as_json and n % 25 == 0:
            err.print(f"[dim]{n}/{len(loaded)} conversations[/dim]")

    report = run_cases(loaded, interpreter=engine, progress=progress)
    if as_json:
        print(json.dumps({**report.as_dict(), "halves": halves(report, loaded)}))
    else:
        table = Table("category", "correct", "total", "accuracy")
        for name, correct, total, accuracy in summary_rows(report):
            table.add_row(name, str(correct), str(total), f"{accuracy:.1%}")
        table.add_row("[bold]all[/bold]", str(report.correct), str(report.conversations), f"{report.accuracy:.1%}")
        out.print(table)
        out.print(f"turns: {report.turns_correct}/{report.turns} right")
        for name, figures in halves(report, loaded).items():
            out.print(f"{name} half: {figures['correct']}/{figures['total']} ({figures['accuracy']:.1%})")
        for failure in report.failures:
            out.print(f"[red]FAIL[/red] {escape(failure.case)} ({failure.category}) turn {failure.turn}: "
                      f"{escape(failure.said)!r}")
            for problem in failure.problems:
                out.print(f"    {escape(problem)}")
    if fail_under is not None and report.accuracy < fail_under:
        raise typer.Exit(1)


# --- demo -----------------------------------------------------------------------------

_TOUR = [
    ("alice", "which of my deals close in the next 30 days?"),
    ("alice", "move the Brightwater one to negotiation"),
    ("alice", "create a follow-up for the account owner of the Orchid deal next Tuesday"),
    ("alice", "close Kestrel Aerospace as won"),
    ("alice", "let carol know"),
    ("carol", "close Kestrel Aerospace as won"),
    ("carol", "yes"),
]


@app.command()
def demo(
    workspace: Annotated[str | None, typer.Option("--workspace", "-w", help="Folder for the demo: new, empty, or "
                                                  "a sayso workspace to replace (default: a new temporary folder; "
                                                  "$SAYSO_WORKSPACE is not used)")] = None,
    user: Annotated[str, typer.Option("--user", "-u", help="Who you are (change with /as)")] = "alice",
    now: Annotated[str | None, typer.Option("--now", envvar="SAYSO_NOW", help="The demo's reference time "
                                            "(default: $SAYSO_NOW, else 2026-11-25T09:00)")] = None,
    tour: Annotated[bool, typer.Option("--tour", help="Play the first conversation instead of chatting")] = False,
    force: ForceOpt = False,
    interpreter: InterpreterOpt = None,
    model: ModelOpt = None,
    as_json: Annotated[bool, typer.Option("--json", callback=_json_mode, help="As chat --json")] = False,
) -> None:
    """Chat with Lumen Labs, the built-in demo company, on a fresh workspace (no account, no network)."""
    when = now or "2026-11-25T09:00"
    reference = parse_time(when).date()
    if workspace:
        root = Path(workspace).resolve()
        Workspace.init(root, demo=True, force=_replacing(root, force, as_json), reference=reference)
    else:
        root = Workspace.init(Path(tempfile.mkdtemp(prefix="sayso-demo-")), demo=True, reference=reference)
    ws = Workspace.load(root)
    session = _Session(ws, user, when, None, interpreter, model)
    if not as_json:
        out.print(f"[bold]Lumen Labs demo[/bold] in {escape(str(root))} (reference day {reference}). People: "
                  + ", ".join(f"{p.id} ({p.role})" for p in ws.directory) + ".")
    if not tour:
        if not as_json:
            out.print(_HELP, markup=False)
        _chat_loop(session, as_json)
        return
    for speaker, text in _TOUR:
        if speaker != session.user:
            session.switch(speaker)
            out.print(f"[dim]/as {speaker}[/dim]")
        out.print(f"[bold cyan]{speaker}[/bold cyan]> {escape(text)}")
        result = session.say(text)
        if result.status is TurnStatus.NEEDS_CONFIRMATION:
            _card(result)
        else:
            _show(result)
        out.print()
    verification = Pipeline(ws).audit.verify()
    out.print(f"Audit: {verification.count} records, chain {'intact' if verification.ok else 'BROKEN'}. "
              f"Try: sayso audit list --workspace {root}")


# --- serve -----------------------------------------------------------------------------


@app.command()
def serve(
    workspace: WorkspaceOpt = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on")] = 8000,
    now: NowOpt = None,
    interpreter: InterpreterOpt = None,
    model: ModelOpt = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Processes on one socket, Uvicorn's own "
                                         "multi-process mode; more than 1 needs PostgreSQL (see docs/serve.md)")] = 1,
    threads: Annotated[int | None, typer.Option("--threads", min=1, help="Requests each process works on at "
                                                "once (default 3 offline, 40 with a model)")] = None,
) -> None:
    """Serve the HTTP API (/v1, OpenAPI at /openapi.json) and the web page (/) for a workspace."""
    try:
        from .serve.run import serve as run
    except ImportError:
        _fail(SaysoError('the HTTP service needs its extra: pip install "sayso[serve]"'), False)
        return
    ws = _open(workspace)
    root = ws.root
    ws.close()
    if now:  # $SAYSO_NOW left exported in a shell would otherwise freeze a server's clock unnoticed
        err.print(f"warning: the clock is pinned at {now} (--now or $SAYSO_NOW): audit times and confirmation "
                  "expiry follow it, not the real time", markup=False)
    processes = f", {workers} processes" if workers > 1 else ""
    try:
        err.print(f"sayso serving {escape(str(root))} on http://{host}:{port}{processes} (API docs at /docs)")
        run(root, host=host, port=port, workers=workers, now=now, interpreter=interpreter, model=model,
            threads=threads)
    except SaysoError as exc:
        _fail(exc, False)



@app.command("mcp")
def mcp_stdio(user: UserOpt, workspace: WorkspaceOpt = None, now: NowOpt = None) -> None:
    """Serve the actions to an AI client over MCP on stdin/stdout, as --user (docs/channels/mcp.md)."""
    try:
        import mcp.server  # noqa: F401 - the SDK, checked before anything starts

        from .channels.mcp import serve_stdio
    except ImportError:
        _fail(SaysoError('the MCP server needs its extras: pip install "sayso[serve,mcp]"'), False)
        return
    ws = _open(workspace)
    root = ws.root
    ws.directory.get(user)
    ws.close()
    serve_stdio(root, user, now)

# --- standing instructions -------------------------------------------------------------

instructions_app = typer.Typer(no_args_is_help=True, help="List, show and cancel standing instructions.")
app.add_typer(instructions_app, name="instructions")


def _instruction_line(item: dict[str, Any]) -> str:
    due = f"  next {item['next_due']}" if item.get("next_due") else ""
    return f"{item['id']}  {item['status']:<9} {item['summary']}{due}"


@instructions_app.command("list")
def instructions_list(
    user: Annotated[str | None, typer.Option("--user", "-u", help="Whose instructions (all when omitted)")] = None,
    every: Annotated[bool, typer.Option("--all", help="Include done, cancelled and suspended ones")] = False,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The standing instructions people set up in conversation (active ones unless --all)."""
    from .instructions import InstructionBook

    ws = _open(workspace, as_json)
    try:
        if user is not None:
            ws.directory.get(user)
        items = InstructionBook(ws.store).of(user, status=None if every else "active")
    except SaysoError as exc:
        _fail(exc, as_json)
        return
    if as_json:
        print(json.dumps([{"owner": i.owner, **i.brief()} for i in items]))
        return
    if not items:
        out.print("No standing instructions." if every else "No active standing instructions.")
    for item in items:
        out.print(f"{item.owner:<8} " + _instruction_line(item.brief()), markup=False)


@instructions_app.command("show")
def instructions_show(instruction_id: str, workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """One instruction: what was said, what was understood, its trigger and every firing."""
    from .instructions import InstructionBook

    ws = _open(workspace, as_json)
    book = InstructionBook(ws.store)
    try:
        item = book.get(instruction_id)
    except SaysoError as exc:
        _fail(exc, as_json)
        return
    data = {**item.model_dump(), "firings": book.firings_of(item.id)}
    if as_json:
        print(json.dumps(data, default=str))
        return
    out.print(_instruction_line(item.brief()), markup=False)
    out.print(f"  owner {item.owner}, conversation {item.conversation}, said: \"{item.words}\"", markup=False)
    out.print(f"  trigger {json.dumps(item.trigger, default=str)}", markup=False)
    if item.note:
        out.print(f"  note: {item.note}", markup=False)
    for firing in data["firings"]:
        late = " (late)" if firing["late"] else ""
        out.print(f"  fired for {firing['scheduled_for']}{late}: {firing['status']}", markup=False)


@instructions_app.command("cancel")
def instructions_cancel(instruction_id: str, user: UserOpt, workspace: WorkspaceOpt = None, now: NowOpt = None,
                        as_json: JsonOpt = False) -> None:
    """Cancel one of the person's instructions; it will not fire again."""
    from .instructions import InstructionBook

    ws = _open(workspace, as_json)
    pipeline = _pipeline(ws, now, user, as_json)
    try:
        ws.directory.get(user)
        item = InstructionBook(ws.store).cancel(instruction_id, user, pipeline.clock.now())
    except SaysoError as exc:
        _fail(exc, as_json)
        return
    pipeline.audit.record([AuditEvent("instruction", user, "cancelled", item.action, item.conversation, None, "cli",
                                      {"instruction": item.id, "words": item.words})])
    if as_json:
        print(json.dumps(item.brief()))
    else:
        out.print(f"Cancelled {item.id}: {item.summary}", markup=False)


@app.command()
def tick(
    workspace: WorkspaceOpt = None,
    to: Annotated[str | None, typer.Option("--to", envvar="SAYSO_NOW", help="Run everything due up to this time "
                                           "(ISO 8601; no offset = UTC), as if the clock read it now (default: "
                                           "$SAYSO_NOW, else now)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the standing instructions due now (or up to --to) once, and return when done."""
    from .instructions import Runner

    ws = _open(workspace, as_json)
    try:
        until = parse_time(to) if to else None
        reports = Runner(ws).tick(until)
    except SaysoError as exc:
        _fail(exc, as_json)
        return
    if as_json:
        print(json.dumps({"fired": reports}, default=str))
        return
    out.print(f"{len(reports)} firing(s).")
    for report in reports:
        late = " (late)" if report.get("late") else ""
        out.print(f"{report['instruction']}  {report['status']}{late}  {str(report.get('reply', ''))[:200]}",
                  markup=False)


@app.command()
def worker(
    workspace: WorkspaceOpt = None,
    interval: Annotated[float, typer.Option("--interval", help="Seconds between looks for due work")] = 15.0,
    once: Annotated[bool, typer.Option("--once", help="Look once and exit (as `sayso tick`)")] = False,
) -> None:
    """Run only scheduled work (standing instructions), for deployments that keep it apart from `serve`."""
    from .instructions import Runner

    ws = _open(workspace)
    runner = Runner(ws)
    err.print(f"sayso worker on {escape(str(ws.root))}: looking for due instructions every {interval:g}s")
    while True:
        try:
            for report in runner.tick():
                err.print(f"{report['instruction']} {report['status']}", markup=False)
        except SaysoError as exc:
            err.print(_error_line(exc.code, exc.message))
        if once:
            return
        time.sleep(interval)


@app.command()
def slack(
    workspace: WorkspaceOpt = None,
    now: NowOpt = None,
    interpreter: InterpreterOpt = None,
    model: ModelOpt = None,
) -> None:
    """Run the Slack app over Socket Mode, for a company without a public URL (docs/channels/slack.md)."""
    import threading

    from .channels.slack import socket_mode

    ws = _open(workspace)
    try:
        problems = ws.check()
        if problems:
            raise problems[0]
        recovered = Pipeline(ws, Clock.from_option(now, None), channel="slack").recover()
        if recovered:
            err.print(f"recovered {len(recovered)} plan(s) a crashed process left")
        engine = _interpreter(ws, interpreter, model)
        handler = socket_mode(ws, engine, now)
    except SaysoError as exc:
        _fail(exc, False)
        return
    err.print(f"sayso on Slack (Socket Mode) for {escape(str(ws.root))}; Ctrl-C stops it")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        handler.close()  # type: ignore[no-untyped-call]
