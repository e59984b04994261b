"""The ``sayso`` command line (Typer + Rich).

With ``--json`` a command prints exactly one JSON object on standard output;
logs go to standard error. The exit status is 0 whenever a request was handled
(denied included) and the error's own exit code for status ``error``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .clock import Clock, parse_time
from .errors import InvalidArguments, SaysoError
from .pipeline import Pipeline
from .turn import TurnResult, TurnStatus
from .workspace import Workspace, resolve_root

app = typer.Typer(no_args_is_help=True, add_completion=False, help="sayso: say it, and it is done, safely.")
audit_app = typer.Typer(no_args_is_help=True, help="Query, verify and export the audit log.")
policy_app = typer.Typer(no_args_is_help=True, help="Explain policy decisions.")
directory_app = typer.Typer(no_args_is_help=True, help="Manage the directory of people.")
app.add_typer(audit_app, name="audit")
app.add_typer(policy_app, name="policy")
app.add_typer(directory_app, name="directory")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)

WorkspaceOpt = Annotated[str | None, typer.Option("--workspace", "-w", help="Workspace folder "
                                                  "(default: $SAYSO_WORKSPACE, else the current folder)")]
NowOpt = Annotated[str | None, typer.Option("--now", help="Pin the clock (ISO 8601; no offset = the person's "
                                            "time zone)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object")]
UserOpt = Annotated[str, typer.Option("--user", "-u", help="Who is acting (a directory id)")]


class _ConversationDefault(logging.Filter):
    """Every record names its conversation ("-" when there is none)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "conversation"):
            record.conversation = "-"
        return True


def main() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_ConversationDefault())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(conversation)s] %(message)s"))
    logging.basicConfig(level=os.environ.get("SAYSO_LOG", "WARNING").upper(), handlers=[handler])
    app()


def _fail(exc: SaysoError, as_json: bool) -> None:
    if as_json:
        print(json.dumps(TurnResult.from_error(exc).to_json()))
    else:
        err.print(f"[red]error[/red] ({exc.code}): {escape(exc.message)}")
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
    if as_json:
        print(json.dumps(result.to_json(), default=str))
    else:
        _show(result)
    if result.status is TurnStatus.ERROR:
        code = 2
        if result.error and result.error.get("code") in ("workspace_invalid", "configuration_error"):
            code = 3
        raise typer.Exit(code)


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


@app.command()
def init(
    folder: Annotated[Path, typer.Argument(help="Folder to create the workspace in")],
    demo: Annotated[bool, typer.Option("--demo", help="The Lumen Labs demo company")] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite a folder that is not empty")] = False,
    now: NowOpt = None,
) -> None:
    """Make an empty workspace, or the Lumen Labs demo (dates relative to --now's day)."""
    try:
        reference = parse_time(now).date() if now else date.today()
        root = Workspace.init(folder.resolve(), demo=demo, force=force, reference=reference)
    except SaysoError as exc:
        _fail(exc, False)
        return
    kind = f"Lumen Labs demo workspace (reference day {reference})" if demo else "empty workspace"
    out.print(f"Created {kind} in {root}")


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
    """List the confirmations waiting for a person."""
    ws = _open(workspace, as_json)
    try:
        items = [c.summary() for c in _pipeline(ws, now, user, as_json).pending(user)]
    except SaysoError as exc:
        _fail(exc, as_json)
        return
    if as_json:
        print(json.dumps(items))
        return
    if not items:
        out.print(f"Nothing waits for {user}.")
    for item in items:
        out.print(f"{item['id']}  {', '.join(item['actions'])}  expires {item['expires_at']}", markup=False)


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
    out.print(f"Recovered {len(results)} plan(s).")
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


@audit_app.command("verify")
def audit_verify(workspace: WorkspaceOpt = None) -> None:
    """Check the hash chain; fails naming the first bad record."""
    ws = _open(workspace)
    result = Pipeline(ws).audit.verify()
    if result.ok:
        out.print(f"[green]ok[/green] {result.count} records, chain intact")
        return
    err.print(f"[red]broken[/red] at record {result.bad_id} (seq {result.bad_seq}): {result.problem}")
    raise typer.Exit(1)


@audit_app.command("export")
def audit_export(
    workspace: WorkspaceOpt = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File (default: standard output)")] = None,
) -> None:
    """Export the whole audit log as JSON lines, hashes included."""
    ws = _open(workspace)
    handle = output.open("w") if output else sys.stdout
    try:
        for row in Pipeline(ws).audit.iter_rows():
            handle.write(json.dumps(row, default=str) + "\n")
    finally:
        if output:
            handle.close()


# --- demo -----------------------------------------------------------------------------

_SCRIPT = [
    ("alice", "crm.find_deals", {"owner": "alice", "closing_after": "+0", "closing_before": "+30"},
     "which of my deals close in the next 30 days?"),
    ("alice", "crm.update_deal", {"deal": "Brightwater", "stage": "negotiation"}, "move the Brightwater one to "
     "negotiation"),
    ("alice", "tickets.create", {"project": "SALES", "title": "Follow up on the Orchid renewal",
                                 "assignee": "devi", "due": "+6", "related": "D-104"},
     "create a follow-up for the account owner of the Orchid deal next Tuesday"),
    ("alice", "crm.close_deal", {"deal": "Kestrel Aerospace Platform", "outcome": "won"},
     "close Kestrel Aerospace as won"),
    ("alice", "chat.send", {"to": "carol", "text": "{denied}"}, "let carol know"),
    ("carol", "crm.close_deal", {"deal": "D-102", "outcome": "won"}, "(as carol) close Kestrel Aerospace as won"),
]


@app.command()
def demo(
    workspace: WorkspaceOpt = None,
    now: Annotated[str | None, typer.Option("--now")] = None,
) -> None:
    """Run the Lumen Labs demo on a fresh workspace: reads, a change, a denial, a confirmation."""
    from datetime import timedelta

    root = Path(workspace) if workspace else Path(tempfile.mkdtemp(prefix="sayso-demo-"))
    when = now or "2026-11-25T09:00"
    reference = parse_time(when).date()
    Workspace.init(root, demo=True, force=True, reference=reference)
    ws = Workspace.load(root)
    out.print(f"[bold]Lumen Labs demo[/bold] in {root} (reference day {reference})\n")
    denied = ""
    for user, action, raw, said in _SCRIPT:
        args = {k: (reference + timedelta(days=int(v))).isoformat() if isinstance(v, str) and v.startswith("+")
                else v for k, v in raw.items()}
        if args.get("text") == "{denied}":  # the context of the denied request travels with the message
            args["text"] = denied
        out.print(f"[bold cyan]{user}[/bold cyan]: {escape(said)}")
        out.print(f"[dim]  sayso do --user {user} --action {action} --args '{escape(json.dumps(args))}'[/dim]")
        pipeline = Pipeline(ws, Clock.from_option(when, ws.directory.get(user).timezone))
        result = pipeline.do(user, action, args, said=said)
        _show(result)
        if result.status is TurnStatus.DENIED:
            denied = (f"{ws.directory.get(user).name} asked me to \"{said}\" (conversation {result.conversation}) "
                      f"and it was denied: {result.reply.removeprefix('Not done: ')}")
        if result.status is TurnStatus.NEEDS_CONFIRMATION and result.confirmation:
            out.print(f"[bold cyan]{user}[/bold cyan]: yes")
            _show(pipeline.confirm(user, result.confirmation["id"]))
        out.print()
    verification = Pipeline(ws).audit.verify()
    out.print(f"Audit: {verification.count} records, chain {'intact' if verification.ok else 'BROKEN'}. "
              f"Try: sayso audit list --workspace {root}")
