"""Jira Cloud: sayso's tickets as Jira issues, over the REST API v3 (``httpx``).

The kind ``jira`` offers the operations of the demo ticket system (``create``,
``update``, ``comment``, ``get``, ``find``) with the same argument names, so a
workspace switches ``[systems.tickets]`` to Jira by configuration alone.

Every write leaves its idempotency key on the issue it touches: a label
``sayso-<stable_id(key)>`` that a JQL search finds, and an entity property (or,
for a comment, a comment property) that records the effect. A create sends the
label with the issue in one request; an update writes its intent first and the
label last; a comment carries its key as a comment property. Retrying an update
or a comment reads the named issue directly, which Jira answers consistently;
finding a *created* issue needs the search index, which can lag a few seconds
behind a create, so ``lookup`` keeps asking for a short window
(``lookup_wait_seconds``). See docs/connectors/jira.md for what that does and
does not guarantee.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from rapidfuzz import fuzz

from ..directory import Directory
from ..errors import ConfigurationError, ConnectorError, InvalidArguments, UnknownRecord, UnknownUser
from . import ConnectorRegistry, SystemContext
from ._common import Settings, parse_args, require_extra, short
from .base import Change, Connector, Effect, Guarantee, Record
from .operations import CommentTicket, CreateTicket, FindTickets, GetTicket, UpdateTicket
from .provenance import stable_id, why_fields, why_text

if TYPE_CHECKING:
    import httpx

__all__ = ["Jira", "adf_document", "adf_text", "register"]

DEFAULT_STATUSES = {"open": "To Do", "in_progress": "In Progress", "closed": "Done"}
DEFAULT_PRIORITIES = {"low": "Low", "medium": "Medium", "high": "High"}
# A Jira status none of ``statuses`` names is read by its category.
_CATEGORY_STATUS = {"new": "open", "indeterminate": "in_progress", "done": "closed"}
_CATEGORY_NAME = {"open": "To Do", "in_progress": "In Progress", "closed": "Done", "cancelled": "Done"}
_ISSUE_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]*-\d+$")
_FIELDS = ["summary", "status", "assignee", "priority", "duedate", "project", "description", "updated",
           "reporter", "labels"]
_PAGE = 50
_MAX_FOUND = 200
_UPDATABLE = ("status", "priority", "assignee")
_NOISE = frozenset({"the", "a", "an", "ticket", "tickets", "issue"})


# --- Atlassian Document Format ------------------------------------------------------


def adf_document(paragraphs: list[str], links: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A Jira ADF document: one paragraph per string (lines kept as hard breaks), and a last
    paragraph linking each of ``links`` (text -> URL) when there are any."""
    content: list[dict[str, Any]] = []
    for paragraph in paragraphs:
        nodes: list[dict[str, Any]] = []
        for number, line in enumerate(paragraph.split("\n")):
            if number:
                nodes.append({"type": "hardBreak"})
            if line:
                nodes.append({"type": "text", "text": line})
        if nodes:
            content.append({"type": "paragraph", "content": nodes})
    if links:
        nodes = [{"type": "text", "text": "Related records: "}]
        for number, (label, url) in enumerate(links.items()):
            if number:
                nodes.append({"type": "text", "text": ", "})
            nodes.append({"type": "text", "text": label, "marks": [{"type": "link", "attrs": {"href": url}}]})
        content.append({"type": "paragraph", "content": nodes})
    return {"type": "doc", "version": 1, "content": content}


def adf_text(node: Any) -> str:
    """The plain text of an ADF document: paragraphs apart by a blank line, hard breaks as newlines."""
    if not isinstance(node, dict):
        return "" if node is None else str(node)
    kind = node.get("type")
    if kind == "text":
        return str(node.get("text", ""))
    if kind == "hardBreak":
        return "\n"
    parts = [adf_text(child) for child in node.get("content") or []]
    if kind in ("doc", "bulletList", "orderedList", "listItem", "blockquote", "panel"):
        return "\n\n".join(p for p in parts if p)
    return "".join(parts)


def _paragraphs(text: str | None) -> list[str]:
    return [part.strip() for part in re.split(r"\n\s*\n", text or "") if part.strip()]


def _jql(value: str) -> str:
    """A JQL string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _words(text: str) -> str:
    """The words of ``text`` only: JQL text search treats + - ! ( ) * ? and friends as operators."""
    return " ".join(re.findall(r"[^\W_]+", text))


def _version(updated: Any) -> int:
    """Jira's ``updated`` time in milliseconds: it grows on every change of the issue."""
    if not isinstance(updated, str):
        return 0
    try:
        return int(datetime.strptime(updated, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp() * 1000)
    except ValueError:
        return 0


class Jira(Connector):
    """Tickets as Jira Cloud issues; writes are found again by the label they leave."""

    guarantee = Guarantee.VERIFIABLE
    record_types = frozenset({"Ticket"})

    def __init__(
        self,
        name: str,
        client: httpx.Client,
        directory: Directory,
        *,
        secret: str,
        projects: Mapping[str, str],
        issue_type: str = "Task",
        statuses: Mapping[str, str] | None = None,
        priorities: Mapping[str, str] | None = None,
        accounts: Mapping[str, str] | None = None,
        undo_create: Literal["transition", "delete"] = "transition",
        record_url: str | None = None,
        lookup_wait_seconds: float = 5.0,
    ) -> None:
        self.name = name
        self._client = client
        self._directory = directory
        self._secret = secret
        self.projects = {p: projects.get(p, p) for p in ("SALES", "SUPPORT", "FIN")} | dict(projects)
        self._project_of = {jira.upper(): ours for ours, jira in self.projects.items()}
        self.issue_type = issue_type
        self.statuses = {**DEFAULT_STATUSES, **(statuses or {})}
        self.priorities = {**DEFAULT_PRIORITIES, **(priorities or {})}
        self._accounts = dict(accounts or {})
        self.undo_create = undo_create
        self.record_url = record_url
        self.lookup_wait_seconds = lookup_wait_seconds

    def __repr__(self) -> str:
        return f"Jira({self.name!r}, site={str(self._client.base_url)!r})"

    # --- HTTP -------------------------------------------------------------------------

    def _call(self, method: str, path: str, *, json: Any = None, params: Mapping[str, Any] | None = None,
              missing_ok: bool = False) -> Any:
        """One REST call; Jira's own error messages become a ``ConnectorError`` (None for a 404
        when ``missing_ok``)."""
        import httpx

        try:
            response = self._client.request(method, path, json=json, params=params)
        except httpx.HTTPError as exc:  # named by its type only: never the request or its headers
            raise ConnectorError(f"{self.name}: Jira did not answer {method} {path} ({type(exc).__name__})") from None
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code >= 400:
            raise ConnectorError(self._scrub(f"{self.name}: Jira answered {response.status_code} to {method} {path}"
                                             f": {_explain(response)}"))
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def _scrub(self, text: str) -> str:
        return text.replace(self._secret, "[redacted]") if self._secret else text

    def _search(self, jql: str, *, properties: list[str] | None = None, limit: int = _MAX_FOUND,
                fields: list[str] | None = None) -> list[dict[str, Any]]:
        """Issues matching ``jql`` (POST /rest/api/3/search/jql), following page tokens up to ``limit``."""
        found: list[dict[str, Any]] = []
        token: str | None = None
        while len(found) < limit:
            body: dict[str, Any] = {"jql": jql, "fields": fields or _FIELDS, "maxResults": min(_PAGE, limit)}
            if properties:
                body["properties"] = properties
            if token:
                body["nextPageToken"] = token
            page = self._call("POST", "/rest/api/3/search/jql", json=body) or {}
            found.extend(page.get("issues") or [])
            token = page.get("nextPageToken")
            if not token or page.get("isLast"):
                break
        return found[:limit]

    def _issue(self, ticket: str, *, comments: bool = False) -> dict[str, Any]:
        fields = [*_FIELDS, "comment"] if comments else _FIELDS
        issue = self._call("GET", f"/rest/api/3/issue/{ticket}", missing_ok=True,
                           params={"fields": ",".join(fields), "properties": "sayso"})
        if issue is None:
            raise UnknownRecord(f"{self.name} has no Ticket {ticket!r}")
        return dict(issue)

    # --- people -------------------------------------------------------------------------

    def _account(self, person_id: str) -> str:
        """The Jira accountId of a directory person, found by their email (and then remembered)."""
        if person_id in self._accounts:
            return self._accounts[person_id]
        person = self._directory.get(person_id)
        if not person.email:
            raise InvalidArguments(f"{person_id} has no email in the directory, so no Jira user can be found")
        users = self._call("GET", "/rest/api/3/user/search", params={"query": person.email}) or []
        people = [u for u in users if u.get("accountType", "atlassian") == "atlassian" and u.get("active", True)]
        exact = [u for u in people if str(u.get("emailAddress") or "").lower() == person.email.lower()]
        chosen = exact or people
        if len(chosen) != 1:
            raise UnknownUser(f"{self.name}: {'no' if not chosen else 'more than one'} active Jira user for "
                              f"{person_id} ({person.email})")
        self._accounts[person_id] = str(chosen[0]["accountId"])
        return self._accounts[person_id]

    def _person(self, user: Any) -> str | None:
        """A directory person id for a Jira user: by email, by a remembered accountId, by full name;
        else the user's display name."""
        if not isinstance(user, dict):
            return None
        email = str(user.get("emailAddress") or "").lower()
        for person in self._directory:
            if email and person.email.lower() == email:
                return person.id
        account = user.get("accountId")
        for person_id, known in self._accounts.items():
            if known == account:
                return person_id
        shown = str(user.get("displayName") or "")
        named = [p.id for p in self._directory if p.name.lower() == shown.lower()]
        return named[0] if len(named) == 1 else (shown or account)

    # --- records ------------------------------------------------------------------------

    def _status(self, status: Any) -> str:
        if not isinstance(status, dict):
            return "open"
        name = str(status.get("name") or "").lower()
        for ours, theirs in self.statuses.items():
            if theirs.lower() == name:
                return ours
        category = (status.get("statusCategory") or {}).get("key")
        return _CATEGORY_STATUS.get(str(category), name or "open")

    def _priority(self, priority: Any) -> str | None:
        if not isinstance(priority, dict) or not priority.get("name"):
            return None
        name = str(priority["name"])
        for ours, theirs in self.priorities.items():
            if theirs.lower() == name.lower():
                return ours
        return name.lower()

    def _record(self, issue: Mapping[str, Any]) -> Record:
        fields = issue.get("fields") or {}
        jira_project = str((fields.get("project") or {}).get("key") or str(issue["key"]).rsplit("-", 1)[0])
        sayso = (issue.get("properties") or {}).get("sayso") or {}
        attrs: dict[str, Any] = {
            "project": self._project_of.get(jira_project.upper(), jira_project),
            "title": fields.get("summary") or "",
            "assignee": self._person(fields.get("assignee")),
            "priority": self._priority(fields.get("priority")),
            "status": self._status(fields.get("status")),
            "due": fields.get("duedate"),
            "related": sayso.get("related"),
            "description": adf_text(fields.get("description")),
            "reporter": self._person(fields.get("reporter")),
        }
        comment = fields.get("comment")
        if isinstance(comment, dict):
            attrs["comments"] = [{"author": self._person(c.get("author")), "text": adf_text(c.get("body"))}
                                 for c in comment.get("comments") or []]
        return Record(type="Ticket", id=str(issue["key"]), title=str(attrs["title"]),
                      attrs={k: v for k, v in attrs.items() if v not in (None, "")},
                      version=_version(fields.get("updated")), system=self.name)

    def get(self, record_type: str, record_id: str) -> Record | None:
        if record_type != "Ticket" or not _ISSUE_KEY.match(record_id):
            return None
        try:
            return self._record(self._issue(record_id.upper()))
        except UnknownRecord:
            return None

    def search(self, record_type: str, text: str, *, limit: int = 10) -> list[Record]:
        return self.search_visible(record_type, text, lambda record: True, limit=limit)

    def search_visible(self, record_type: str, text: str, keep: Callable[[Record], bool], *,
                       limit: int = 10) -> list[Record]:
        """An issue key or an exact summary scores 100 alone; a summary with every word as a word prefix
        90; else WRatio >= 85. Issues ``keep`` refuses are left out before any of that."""
        needle = text.strip()
        if record_type != "Ticket" or not needle or limit < 1:
            return []
        if _ISSUE_KEY.match(needle):
            found = self.get("Ticket", needle)
            return [found.model_copy(update={"score": 100.0})] if found and keep(found) else []
        words = " ".join(w for w in _words(needle).split() if w.lower() not in _NOISE)
        if not words:
            return []
        jql = f"{self._in_projects(None)} AND summary ~ {_jql(words)} ORDER BY updated DESC"
        scored = []
        for issue in self._search(jql, properties=["sayso"], limit=_PAGE):
            record = self._record(issue)
            if not keep(record):
                continue
            title = record.title.lower()
            held = _words(title).lower().split()
            if title == needle.lower():
                score = 100.0
            elif all(any(w.startswith(t) for w in held) for t in words.lower().split()):
                score = 90.0  # every word starts a word of the title, as the demo tracker scores it
            else:
                score = fuzz.WRatio(words.lower(), title)
            if score >= 85:
                scored.append(record.model_copy(update={"score": round(score, 1)}))
        scored.sort(key=lambda r: -(r.score or 0))
        exact = [r for r in scored if r.score == 100.0]
        return (exact or scored)[:limit]

    def _in_projects(self, project: str | None) -> str:
        keys = [self.projects[project]] if project else sorted(set(self.projects.values()))
        return f"project in ({', '.join(_jql(k) for k in keys)})"

    def read(self, operation: str, args: dict[str, Any]) -> list[Record]:
        if operation == "get":
            p = parse_args(GetTicket, args, f"{self.name}.{operation}")
            return [self._record(self._issue(p.ticket.upper(), comments=True))]
        if operation == "find":
            return self._find(parse_args(FindTickets, args, f"{self.name}.{operation}"))
        raise InvalidArguments(f"{self.name} has no read operation {operation!r} (it has: find, get)")

    def _find(self, p: FindTickets) -> list[Record]:
        clauses = [self._in_projects(p.project)]
        if p.assignee is not None:
            clauses.append(f"assignee = {_jql(self._account(p.assignee))}")
        if p.status is not None:
            clauses.append(f"statusCategory = {_jql(_CATEGORY_NAME[p.status])}")
        if p.text and _words(p.text):
            clauses.append(f"summary ~ {_jql(_words(p.text))}")
        if p.related:
            clauses.append(f"text ~ {_jql(_words(p.related))}")
        jql = " AND ".join(clauses) + " ORDER BY key ASC"
        records = [self._record(issue) for issue in self._search(jql, properties=["sayso"])]
        # The category narrows the search; the mapped status and the related record decide.
        return [r for r in records
                if (p.status is None or r.attrs.get("status") == p.status)
                and (p.related is None or r.attrs.get("related") == p.related)]

    # --- writes -------------------------------------------------------------------------

    def preview(self, operation: str, args: dict[str, Any]) -> list[Change]:
        if operation == "update":
            p = parse_args(UpdateTicket, args, f"{self.name}.{operation}")
            record = self._record(self._issue(p.ticket.upper()))
            before, after = self._differences(record, p.model_dump(include=set(_UPDATABLE), exclude_none=True))
            return [Change(record_type="Ticket", record_id=record.id, title=record.title, before=before,
                           after=after, version=record.version)] if after else []
        if operation == "create":
            new = parse_args(CreateTicket, args, f"{self.name}.{operation}")
            after = new.model_dump(mode="json", exclude_none=True)
            return [Change(record_type="Ticket", record_id="(new)", title=new.title, after=after)]
        if operation == "comment":
            c = parse_args(CommentTicket, args, f"{self.name}.{operation}")
            return [Change(record_type="Comment", record_id="(new)", title=c.text, after=c.model_dump())]
        raise InvalidArguments(f"{self.name} has no write operation {operation!r}")

    def execute(
        self, operation: str, args: dict[str, Any], *, key: str, origin: dict[str, Any] | None = None
    ) -> Effect:
        if operation == "create":
            return self._create(parse_args(CreateTicket, args, f"{self.name}.{operation}"), key, origin)
        if operation == "update":
            p = parse_args(UpdateTicket, args, f"{self.name}.{operation}")
            if p.status is None and p.priority is None and p.assignee is None:
                raise InvalidArguments("update: give a status, a priority or an assignee")
            wanted = p.model_dump(include=set(_UPDATABLE), exclude_none=True)
            return self._update(p.ticket.upper(), wanted, key, "update")
        if operation == "comment":
            return self._comment(parse_args(CommentTicket, args, f"{self.name}.{operation}"), key, origin)
        raise InvalidArguments(f"{self.name} has no write operation {operation!r} (it has: comment, create, update)")

    def _links(self, related: list[str]) -> dict[str, str]:
        if not self.record_url:
            return {}
        return {r: self.record_url.format(id=r) for r in related}

    def _create(self, p: CreateTicket, key: str, origin: Mapping[str, Any] | None) -> Effect:
        label = _label(key)
        for issue in self._search(f"labels = {_jql(label)}", properties=["sayso"], limit=5):
            if ((issue.get("properties") or {}).get("sayso") or {}).get("key") == key:
                return self._created(issue, key)
        related = list(dict.fromkeys([*(why_fields(origin).get("related") or []), *([p.related] if p.related else [])]))
        fields: dict[str, Any] = {
            "project": {"key": self.projects[p.project]},
            "summary": p.title,
            "issuetype": {"name": self.issue_type},
            "labels": [label],
            "description": adf_document([*_paragraphs(p.description), _why(origin, related)], self._links(related)),
        }
        if p.assignee is not None:
            fields["assignee"] = {"id": self._account(p.assignee)}
        if p.due is not None:
            fields["duedate"] = p.due.isoformat()
        if p.priority is not None:
            fields["priority"] = {"name": self.priorities[p.priority]}
        sayso = {"key": key, "related": p.related, "why": why_fields(origin)}
        body = {"fields": fields, "properties": [{"key": "sayso", "value": {k: v for k, v in sayso.items() if v}}]}
        created = self._call("POST", "/rest/api/3/issue", json=body) or {}
        return self._created(self._issue(str(created["key"])), key)

    def _created(self, issue: Mapping[str, Any], key: str) -> Effect:
        record = self._record(issue)
        shown = ("project", "title", "assignee", "priority", "status", "due", "related")
        after: dict[str, Any] = {k: record.attrs[k] for k in shown if k in record.attrs}
        for_whom = f" for {record.attrs['assignee']}" if record.attrs.get("assignee") else ""
        return Effect(key=key, operation="create", result={"id": record.id, "issue_id": str(issue.get("id", ""))},
                      summary=f"created {record.id} {record.title!r}{for_whom}",
                      changes=[Change(record_type="Ticket", record_id=record.id, title=record.title, after=after,
                                      version=record.version)])

    def _differences(self, record: Record, wanted: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The values ``wanted`` would change: (before, after). An assignee of None unassigns."""
        if wanted.get("assignee") is not None:
            self._directory.get(str(wanted["assignee"]))
        changed = {k: v for k, v in wanted.items() if record.attrs.get(k) != v}
        return {k: record.attrs.get(k) for k in changed}, changed

    def _update(self, ticket: str, wanted: Mapping[str, Any], key: str, operation: str, *,
                undoes: str | None = None) -> Effect:
        """Write the intended change as an issue property, apply it, then add the label. A retry finds
        the property on the issue itself and finishes what is left, so nothing is applied twice."""
        label, prop = _label(key), f"sayso-{stable_id(key)}"
        issue = self._issue(ticket)
        stored = self._call("GET", f"/rest/api/3/issue/{ticket}/properties/{prop}", missing_ok=True)
        if stored is not None:
            effect = Effect.model_validate(stored["value"])
            if label in ((issue.get("fields") or {}).get("labels") or []):
                return effect
            after = effect.changes[0].after if effect.changes else {}
        else:
            record = self._record(issue)
            before, after = self._differences(record, wanted)
            summary = f"{ticket} " + (", ".join(f"{k} {before.get(k) or 'none'} -> {v}" for k, v in after.items())
                                      if after else "unchanged: it already has those values")
            result: dict[str, Any] = {"id": ticket}
            if undoes:
                result["undoes"] = undoes
                summary = f"undo: {summary}"
            effect = Effect(key=key, operation=operation, result=result, summary=summary,
                            changes=[Change(record_type="Ticket", record_id=ticket, title=record.title,
                                            before=before, after=after)] if after else [])
            self._call("PUT", f"/rest/api/3/issue/{ticket}/properties/{prop}", json=effect.model_dump(mode="json"))
        after = after or {}
        if "status" in after and self._status((issue.get("fields") or {}).get("status")) != after["status"]:
            self._transition(ticket, str(after["status"]))
        if "assignee" in after:
            account = self._account(after["assignee"]) if after["assignee"] else None
            self._call("PUT", f"/rest/api/3/issue/{ticket}/assignee", json={"accountId": account})
        edit: dict[str, Any] = {"update": {"labels": [{"add": label}]}}
        if "priority" in after and after["priority"]:
            edit["fields"] = {"priority": {"name": self.priorities.get(after["priority"], after["priority"])}}
        self._call("PUT", f"/rest/api/3/issue/{ticket}", json=edit)
        return effect

    def _transition(self, ticket: str, status: str) -> None:
        target = self.statuses.get(status)
        if target is None:
            raise ConfigurationError(f"{self.name}: no Jira transition for status {status!r}; add it to `statuses`")
        offered = (self._call("GET", f"/rest/api/3/issue/{ticket}/transitions") or {}).get("transitions") or []
        for transition in offered:
            names = (str(transition.get("name", "")).lower(), str((transition.get("to") or {}).get("name", "")).lower())
            if target.lower() in names:
                self._call("POST", f"/rest/api/3/issue/{ticket}/transitions",
                           json={"transition": {"id": str(transition["id"])}})
                return
        available = ", ".join(repr(t.get("name")) for t in offered) or "none"
        raise InvalidArguments(f"{ticket} cannot move to {status} ({target!r}) now; Jira offers: {available}")

    def _comments(self, ticket: str) -> Iterator[dict[str, Any]]:
        start = 0
        while True:
            page = self._call("GET", f"/rest/api/3/issue/{ticket}/comment",
                              params={"startAt": start, "maxResults": 100, "expand": "properties"}) or {}
            comments = page.get("comments") or []
            yield from comments
            start += len(comments)
            if not comments or start >= int(page.get("total", 0)):
                return

    def _commented(self, ticket: str, key: str) -> dict[str, Any] | None:
        for comment in self._comments(ticket):
            for prop in comment.get("properties") or []:
                if prop.get("key") == "sayso" and (prop.get("value") or {}).get("key") == key:
                    return comment
        return None

    def _comment(self, p: CommentTicket, key: str, origin: Mapping[str, Any] | None) -> Effect:
        ticket = p.ticket.upper()
        self._issue(ticket)
        comment = self._commented(ticket, key)
        if comment is None:
            body = {"body": adf_document([*_paragraphs(p.text), why_text(origin)]),
                    "properties": [{"key": "sayso", "value": {"key": key, "why": why_fields(origin)}}]}
            comment = self._call("POST", f"/rest/api/3/issue/{ticket}/comment", json=body) or {}
        self._call("PUT", f"/rest/api/3/issue/{ticket}", json={"update": {"labels": [{"add": _label(key)}]}})
        return self._commented_effect(ticket, comment, key, p.text)

    def _commented_effect(self, ticket: str, comment: Mapping[str, Any], key: str, text: str | None = None) -> Effect:
        text = text if text is not None else _paragraphs(adf_text(comment.get("body")))[0]
        after = {"ticket": ticket, "text": text, "author": self._person(comment.get("author"))}
        return Effect(key=key, operation="comment", result={"id": str(comment.get("id")), "ticket": ticket},
                      summary=f"commented on {ticket}: {short(text)!r}",
                      changes=[Change(record_type="Comment", record_id=str(comment.get("id")), title=text,
                                      after=after)])

    def lookup(self, key: str) -> Effect | None:
        """The effect of ``key``, found by its label. A just-created issue can be missing from the
        search index for a few seconds, so a miss is asked again until ``lookup_wait_seconds`` pass."""
        deadline = time.monotonic() + self.lookup_wait_seconds
        pause = 0.25
        while True:
            found = self._lookup_once(key)
            if found is not None or time.monotonic() >= deadline:
                return found
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause *= 2

    def _lookup_once(self, key: str) -> Effect | None:
        prop = f"sayso-{stable_id(key)}"
        for issue in self._search(f"labels = {_jql(_label(key))}", properties=["sayso", prop], limit=5):
            properties = issue.get("properties") or {}
            if (properties.get("sayso") or {}).get("key") == key:
                return self._created(issue, key)
            if properties.get(prop):
                return Effect.model_validate(properties[prop])
            comment = self._commented(str(issue["key"]), key)
            if comment is not None:
                return self._commented_effect(str(issue["key"]), comment, key)
        return None

    def compensate(self, effect: Effect, *, key: str) -> Effect:
        """Undo: a created issue is moved to ``statuses.cancelled`` (else ``closed``) or deleted
        (``undo_create = "delete"``); an update gets its earlier values back, unless the issue has
        changed since; a comment is deleted."""
        operation = f"undo:{effect.operation}"
        ticket = str(effect.result.get("ticket") or effect.result.get("id") or "")
        if effect.operation == "create" and self.undo_create == "transition":
            status = "cancelled" if "cancelled" in self.statuses else "closed"
            return self._update(ticket, {"status": status}, key, operation, undoes=effect.key)
        if effect.operation == "create":
            self._call("DELETE", f"/rest/api/3/issue/{ticket}", missing_ok=True)
            return Effect(key=key, operation=operation, result={"id": ticket, "undoes": effect.key},
                          summary=f"undo: deleted {ticket}",
                          changes=[Change(record_type="Ticket", record_id=ticket, before=effect.changes[0].after
                                          if effect.changes else {})])
        if effect.operation == "update":
            if not effect.changes:
                return Effect(key=key, operation=operation, result={"id": ticket, "undoes": effect.key},
                              summary="undo: nothing to change")
            change = effect.changes[0]
            now = self._record(self._issue(ticket))
            moved = [f"{k} is now {now.attrs.get(k) or 'none'}" for k, v in (change.after or {}).items()
                     if now.attrs.get(k) != v]
            if moved:
                raise InvalidArguments(f"{ticket} changed since ({', '.join(moved)}); not undone")
            before = {k: v for k, v in (change.before or {}).items() if v is not None or k == "assignee"}
            return self._update(ticket, before, key, operation, undoes=effect.key)
        if effect.operation == "comment":
            comment = str(effect.result.get("id"))
            self._call("DELETE", f"/rest/api/3/issue/{ticket}/comment/{comment}", missing_ok=True)
            return Effect(key=key, operation=operation, result={"id": comment, "undoes": effect.key},
                          summary=f"undo: deleted comment {comment} on {ticket}",
                          changes=[Change(record_type="Comment", record_id=comment,
                                          before=effect.changes[0].after if effect.changes else {})])
        raise NotImplementedError(f"{self.name} cannot undo {effect.operation!r}")

    def close(self) -> None:
        self._client.close()


def _why(origin: Mapping[str, Any] | None, related: list[str]) -> str:
    """The why of a new issue; its related records (the plan's and the ``related`` argument) are named in
    it, which also lets a text search find the issue by them."""
    if origin:
        return why_text({**origin, "related": related})
    return f"Related: {', '.join(related)}." if related else ""


def _label(key: str) -> str:
    return f"sayso-{stable_id(key)}"


def _explain(response: httpx.Response) -> str:
    """Jira's error body (``{"errorMessages": [...], "errors": {field: message}}``) in one line."""
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase or "no details"
    if not isinstance(body, dict):
        return str(body)[:300]
    parts = [str(m) for m in body.get("errorMessages") or []]
    parts += [f"{field}: {message}" for field, message in (body.get("errors") or {}).items()]
    return "; ".join(parts) or response.reason_phrase or "no details"


def _create(name: str, settings: Mapping[str, Any], context: SystemContext) -> Jira:
    require_extra(name, "jira", "httpx", "httpx")
    import httpx

    read = Settings(name, settings, kind="jira")
    missing = [s for s in ("site", "email", "token_secret") if not settings.get(s)]
    if missing:
        raise ConfigurationError(f"system {name!r} (jira) needs {', '.join(missing)} in sayso.toml")
    site = str(settings["site"]).rstrip("/")
    if not re.match(r"^https?://", site):
        raise ConfigurationError(f"system {name!r}: site must be a URL such as https://your-team.atlassian.net")
    token = context.secret(str(settings["token_secret"]))
    undo = str(settings.get("undo_create", "transition"))
    if undo not in ("transition", "delete"):
        raise ConfigurationError(f"system {name!r}: undo_create is 'transition' or 'delete', not {undo!r}")
    ca_bundle = settings.get("ca_bundle")
    verify: Any = str(context.root / str(ca_bundle)) if ca_bundle else True
    client = httpx.Client(base_url=site, auth=httpx.BasicAuth(str(settings["email"]), token), verify=verify,
                          headers={"Accept": "application/json"}, timeout=float(settings.get("timeout", 30)))
    return Jira(
        name, client, context.directory, secret=token,
        projects=read.names("projects"),
        issue_type=str(settings.get("issue_type", "Task")),
        statuses=read.names("statuses"),
        priorities=read.names("priorities"),
        accounts=read.names("accounts"),
        undo_create="delete" if undo == "delete" else "transition",
        record_url=str(settings["record_url"]) if settings.get("record_url") else None,
        lookup_wait_seconds=float(settings.get("lookup_wait_seconds", 5.0)),
    )


def register(registry: ConnectorRegistry) -> None:
    """Add the kind ``jira`` (Jira Cloud, REST API v3)."""
    registry.add("jira", _create)
