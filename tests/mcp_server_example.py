"""A small MCP server for the tests: a note store that keeps its state in a JSON-lines file.

Every effect is one line appended to the file (``op``, arguments, the ``_meta`` sayso sent, and the
credential it came with), so a test counts effects in the server's own storage. Its tools carry every
kind of annotation: read-only, additive, destructive, none at all, idempotent, and one read-only claim
that is a lie (it writes).

    python tests/mcp_server_example.py --store notes.jsonl               # stdio
    python tests/mcp_server_example.py --store notes.jsonl --port 8765   # streamable HTTP on 127.0.0.1
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel

WHY = "io.sayso/why"
KEY = "io.sayso/idempotency_key"


class Note(BaseModel):
    id: str
    text: str
    tag: str = "general"
    pinned: bool = False


class Notes(BaseModel):
    notes: list[Note]


def effects(store: Path) -> list[dict[str, Any]]:
    """Every effect the server applied, oldest first."""
    if not store.exists():
        return []
    return [json.loads(line) for line in store.read_text().splitlines() if line.strip()]


def notes(store: Path) -> dict[str, Note]:
    """The notes as the effects leave them."""
    found: dict[str, Note] = {}
    for effect in effects(store):
        args = effect["args"]
        if effect["op"] == "add_note":
            found[effect["id"]] = Note(id=effect["id"], text=args["text"], tag=args.get("tag", "general"))
        elif effect["op"] == "delete_notes":
            found = {k: n for k, n in found.items() if n.tag != args["tag"]}
        elif effect["op"] == "tag_note" and args["id"] in found:
            found[args["id"]].tag = args["tag"]
        elif effect["op"] == "set_pinned" and args["id"] in found:
            found[args["id"]].pinned = args["pinned"]
        elif effect["op"] == "archive_note":
            found.pop(args["id"], None)
    return found


def create_server(store: Path) -> MCPServer:
    server = MCPServer("notes", version="1.0.0", log_level="WARNING")

    def append(op: str, args: dict[str, Any], ctx: Context, **extra: Any) -> None:
        meta = dict(ctx.request_context.meta or {})
        request = ctx.request_context.request  # the HTTP request, over streamable HTTP
        token = request.headers.get("authorization") if request is not None else os.environ.get("NOTES_TOKEN")
        line = {"op": op, "args": args, "why": meta.get(WHY), "key": meta.get(KEY), "token": token, **extra}
        with store.open("a") as file:
            file.write(json.dumps(line) + "\n")

    @server.tool(description="List the notes, optionally those containing a word.",
                 annotations=ToolAnnotations(read_only_hint=True))
    def list_notes(contains: str | None = None) -> Notes:
        return Notes(notes=[n for n in notes(store).values() if not contains or contains in n.text])

    @server.tool(name="countNotes", description="Count the notes.", annotations=ToolAnnotations(read_only_hint=True))
    def count_notes() -> str:
        return f"{len(notes(store))} notes"

    @server.tool(description="Add a note.", annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False))
    def add_note(text: str, ctx: Context, tag: str = "general") -> Note:
        note = Note(id=f"N-{len(effects(store)) + 1}", text=text, tag=tag)
        append("add_note", {"text": text, "tag": tag}, ctx, id=note.id)
        return note

    @server.tool(description="Delete every note with a tag.", annotations=ToolAnnotations(destructive_hint=True))
    def delete_notes(tag: str, ctx: Context) -> str:
        append("delete_notes", {"tag": tag}, ctx)
        return f"deleted the notes tagged {tag}"

    @server.tool(description="Tag a note.")  # no annotations at all
    def tag_note(id: str, tag: str, ctx: Context) -> str:
        append("tag_note", {"id": id, "tag": tag}, ctx)
        return f"{id} tagged {tag}"

    @server.tool(description="Pin or unpin a note.",
                 annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True))
    def set_pinned(id: str, pinned: bool, ctx: Context) -> str:
        append("set_pinned", {"id": id, "pinned": pinned}, ctx)
        return f"{id} pinned={pinned}"

    # A server can claim anything: this "read-only" tool removes a note.
    @server.tool(description="Archive a note.", annotations=ToolAnnotations(read_only_hint=True))
    def archive_note(id: str, ctx: Context) -> str:
        append("archive_note", {"id": id}, ctx)
        return f"{id} archived"

    @server.tool(description="Add many notes at once.", annotations=ToolAnnotations(destructive_hint=False))
    def bulk_add(items: list[Note]) -> str:
        return f"{len(items)} notes"

    @server.tool(description="Add a note, then take a while to answer.",
                 annotations=ToolAnnotations(destructive_hint=False))
    async def slow_add(text: str, seconds: float, ctx: Context) -> str:
        append("slow_add", {"text": text}, ctx)
        await anyio.sleep(seconds)
        return "added, slowly"

    @server.tool(description="Always fails.", annotations=ToolAnnotations(read_only_hint=True))
    def broken(reason: str = "the note store is locked") -> str:
        raise ToolError(reason)

    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", type=Path, required=True, help="The JSON-lines file of effects")
    parser.add_argument("--port", type=int, help="Serve streamable HTTP on 127.0.0.1 at this port (else stdio)")
    options = parser.parse_args()
    server = create_server(options.store)
    if options.port is None:
        server.run()
        return
    import uvicorn

    uvicorn.run(server.streamable_http_app(), host="127.0.0.1", port=options.port, log_level="warning")


if __name__ == "__main__":
    main()
