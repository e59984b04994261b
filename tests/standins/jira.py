"""A small Jira Cloud on 127.0.0.1: the REST API v3 endpoints sayso's ``jira`` connector uses,
with the request and response shapes of Atlassian's documentation, and state kept in memory
so tests can count what was created.

Endpoints: create, get, edit and delete an issue; list and do transitions; set the assignee;
add, list and delete comments (with comment properties); issue properties; user search; and
JQL search (``POST /rest/api/3/search/jql``) for the JQL the connector writes: clauses joined
by AND on project, labels, assignee, status, statusCategory, summary ~ and text ~, with
ORDER BY key, updated or created. ``search_lag`` keeps a new issue out of that many searches,
like Jira's index catching up after a create. Error bodies come from ``tests/recorded/jira``.
"""

from __future__ import annotations

import base64
import copy
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ._server import ApiError, RestStandIn

RECORDED = Path(__file__).resolve().parent.parent / "recorded" / "jira"

STATUSES = {  # name -> (id, category key, category name)
    "To Do": ("10000", "new", "To Do"),
    "In Progress": ("3", "indeterminate", "In Progress"),
    "Done": ("10001", "done", "Done"),
    "Cancelled": ("10002", "done", "Done"),
}
TRANSITIONS = {"To Do": "11", "In Progress": "21", "Done": "31", "Cancelled": "41"}
PRIORITIES = {"Highest": "1", "High": "2", "Medium": "3", "Low": "4", "Lowest": "5"}
ISSUE_TYPES = ("Task", "Bug", "Story")

PEOPLE = [  # the demo directory's people, as Atlassian accounts
    ("alice", "Alice Moreno"), ("bob", "Bob Chen"), ("carol", "Carol Diaz"), ("devi", "Devi Rao"),
    ("wes", "Wesley Park"), ("sam", "Sam Okafor"), ("fiona", "Fiona Grant"), ("ines", "Ines Kowalski"),
]


def recorded(name: str) -> Any:
    return json.loads((RECORDED / name).read_text())


class JiraError(ApiError):
    """An error answer of Jira: its status and body."""


def _errors(**errors: str) -> dict[str, Any]:
    return {"errorMessages": [], "errors": errors}


def _messages(*messages: str) -> dict[str, Any]:
    return {"errorMessages": list(messages), "errors": {}}


def _text(node: Any) -> str:
    if not isinstance(node, dict):
        return ""
    if node.get("type") == "text":
        return str(node.get("text", ""))
    return " ".join(_text(child) for child in node.get("content") or [])


def _words(text: str) -> list[str]:
    return re.findall(r"[^\W_]+", text.lower())


def _matches(query: str, text: str) -> bool:
    """Jira's text search, roughly: every word of the query starts a word of the text."""
    have = _words(text)
    return all(any(word.startswith(token) for word in have) for token in _words(query))


class JiraStandIn(RestStandIn):
    """State (projects, users, issues) and a threaded HTTP server speaking Jira's REST API v3."""

    fault_answer = {"errorMessages": ["Internal server error"], "errors": {}}

    def __init__(self, *, email: str = "sayso-bot@lumenlabs.example", token: str = "jira-api-token-for-tests",
                 projects: tuple[str, ...] = ("SALES", "SUP", "FIN"), search_lag: int = 0) -> None:
        super().__init__()
        self.email, self.token = email, token
        self.projects = {key: {"id": str(10000 + n), "key": key, "name": key.title()}
                         for n, key in enumerate(projects)}
        self.users = [
            {"accountId": f"712020:{pid}-0001", "accountType": "atlassian", "emailAddress": f"{pid}@lumenlabs.example",
             "displayName": name, "active": True}
            for pid, name in PEOPLE
        ]
        self.bot = {"accountId": "712020:sayso-bot", "accountType": "app", "displayName": "sayso", "active": True}
        self.issues: dict[str, dict[str, Any]] = {}
        self.counters = {key: 0 for key in projects}
        self.search_lag = search_lag
        self._ids = 10000
        self._clock = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)

    # --- what tests look at ---------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def created(self) -> list[dict[str, Any]]:
        """Issues created through the API (not seeded)."""
        return [i for i in self.issues.values() if not i["seeded"]]

    def comments(self) -> list[dict[str, Any]]:
        return [c for i in self.issues.values() for c in i["comments"]]

    def account(self, person: str) -> str:
        return f"712020:{person}-0001"

    # --- state --------------------------------------------------------------------------

    def _now(self) -> str:
        self._clock += timedelta(milliseconds=250)
        return self._clock.strftime("%Y-%m-%dT%H:%M:%S.") + f"{self._clock.microsecond // 1000:03d}+0000"

    def _user(self, account: str | None) -> dict[str, Any] | None:
        if account is None:
            return None
        for user in self.users:
            if user["accountId"] == account:
                return dict(user)
        return None

    def seed(self, project: str, summary: str, *, assignee: str | None = None, priority: str = "Medium",
             status: str = "To Do", description: str = "", number: int | None = None) -> str:
        """An issue that was there before the test: not counted by :meth:`created`."""
        with self.lock:
            issue = self._new(project, summary, number=number)
            issue["seeded"] = True
            fields = issue["fields"]
            fields["assignee"] = self._user(self.account(assignee)) if assignee else None
            fields["priority"] = {"name": priority, "id": PRIORITIES[priority]}
            fields["status"] = self._status(status)
            fields["description"] = {"type": "doc", "version": 1, "content": [
                {"type": "paragraph", "content": [{"type": "text", "text": description}]}]} if description else None
            return str(issue["key"])

    def _status(self, name: str) -> dict[str, Any]:
        sid, key, category = STATUSES[name]
        return {"name": name, "id": sid, "statusCategory": {"key": key, "name": category}}

    def _new(self, project: str, summary: str, *, number: int | None = None) -> dict[str, Any]:
        self.counters[project] = number if number is not None else self.counters[project] + 1
        self._ids += 1
        key = f"{project}-{self.counters[project]}"
        now = self._now()
        issue = {
            "id": str(self._ids), "key": key, "seeded": False, "properties": {}, "comments": [],
            "hidden_searches": 0, "created_order": self._ids,
            "fields": {
                "summary": summary, "project": dict(self.projects[project]), "issuetype": {"name": "Task"},
                "status": self._status("To Do"), "assignee": None, "reporter": dict(self.bot),
                "priority": {"name": "Medium", "id": "3"}, "duedate": None, "labels": [], "description": None,
                "created": now, "updated": now,
            },
        }
        self.issues[key] = issue
        return issue

    def _issue(self, key: str) -> dict[str, Any]:
        issue = self.issues.get(key.upper()) or next((i for i in self.issues.values() if i["id"] == key), None)
        if issue is None:
            raise JiraError(404, recorded("error_404_issue.json"))
        return issue

    def _shown(self, issue: dict[str, Any], fields: list[str] | None, properties: list[str]) -> dict[str, Any]:
        everything = dict(issue["fields"])
        everything["comment"] = {"comments": [self._comment_shown(c, False) for c in issue["comments"]],
                                 "maxResults": len(issue["comments"]), "total": len(issue["comments"]), "startAt": 0}
        every = not fields or {"*all", "*navigable"} & set(fields)
        wanted = everything if every else {f: everything.get(f) for f in fields or []}
        shown = {"id": issue["id"], "key": issue["key"], "self": f"{self.url}/rest/api/3/issue/{issue['id']}",
                 "fields": copy.deepcopy(wanted)}
        found = {p: issue["properties"][p] for p in properties if p in issue["properties"]}
        shown["properties"] = copy.deepcopy(found)
        return shown

    def _comment_shown(self, comment: dict[str, Any], with_properties: bool) -> dict[str, Any]:
        shown = {k: copy.deepcopy(v) for k, v in comment.items() if k != "properties"}
        if with_properties:
            shown["properties"] = [{"key": k, "value": copy.deepcopy(v)} for k, v in comment["properties"].items()]
        return shown

    def _touch(self, issue: dict[str, Any]) -> None:
        issue["fields"]["updated"] = self._now()

    # --- endpoints ------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        routes: list[tuple[str, str, Any]] = [
            ("POST", r"/rest/api/3/issue", self.create_issue),
            ("GET", r"/rest/api/3/issue/([^/]+)", self.get_issue),
            ("PUT", r"/rest/api/3/issue/([^/]+)", self.edit_issue),
            ("DELETE", r"/rest/api/3/issue/([^/]+)", self.delete_issue),
            ("GET", r"/rest/api/3/issue/([^/]+)/transitions", self.get_transitions),
            ("POST", r"/rest/api/3/issue/([^/]+)/transitions", self.do_transition),
            ("PUT", r"/rest/api/3/issue/([^/]+)/assignee", self.assign),
            ("GET", r"/rest/api/3/issue/([^/]+)/comment", self.get_comments),
            ("POST", r"/rest/api/3/issue/([^/]+)/comment", self.add_comment),
            ("DELETE", r"/rest/api/3/issue/([^/]+)/comment/([^/]+)", self.delete_comment),
            ("GET", r"/rest/api/3/issue/([^/]+)/properties/([^/]+)", self.get_property),
            ("PUT", r"/rest/api/3/issue/([^/]+)/properties/([^/]+)", self.set_property),
            ("GET", r"/rest/api/3/user/search", self.user_search),
            ("POST", r"/rest/api/3/search/jql", self.search),
        ]
        for verb, pattern, handler in routes:
            match = re.fullmatch(pattern, path)
            if verb == method and match:
                result: tuple[int, Any] = handler(*match.groups(), query=query, body=body)
                return result
        return 404, _messages(f"No resource for {method} {path}")

    def create_issue(self, *, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        fields = (body or {}).get("fields") or {}
        project = str((fields.get("project") or {}).get("key") or "")
        problems: dict[str, str] = {}
        if project not in self.projects:
            problems["project"] = "valid project is required"
        if not fields.get("summary"):
            problems["summary"] = "You must specify a summary of the issue."
        if (fields.get("issuetype") or {}).get("name") not in ISSUE_TYPES:
            problems["issuetype"] = "Specify a valid issue type"
        description = fields.get("description")
        if description is not None and not (isinstance(description, dict) and description.get("type") == "doc"):
            problems["description"] = ("Operation value must be an Atlassian Document"
                                       " (see the Atlassian Document Format)")
        assignee = (fields.get("assignee") or {}).get("id") if fields.get("assignee") else None
        if assignee is not None and self._user(assignee) is None:
            problems["assignee"] = f"User '{assignee}' cannot be assigned issues."
        priority = (fields.get("priority") or {}).get("name") if fields.get("priority") else None
        if priority is not None and priority not in PRIORITIES:
            problems["priority"] = f"The priority selected is invalid: {priority}"
        labels = fields.get("labels") or []
        if any(" " in label for label in labels):
            problems["labels"] = "The label must not contain spaces."
        if problems:
            return 400, _errors(**problems)
        issue = self._new(project, str(fields["summary"]))
        issue["fields"].update({
            "issuetype": {"name": fields["issuetype"]["name"]}, "assignee": self._user(assignee),
            "priority": {"name": priority, "id": PRIORITIES[priority]} if priority else issue["fields"]["priority"],
            "duedate": fields.get("duedate"), "labels": list(labels), "description": description,
        })
        for prop in (body or {}).get("properties") or []:
            issue["properties"][prop["key"]] = prop["value"]
        issue["hidden_searches"] = self.search_lag
        return 201, {"id": issue["id"], "key": issue["key"], "self": f"{self.url}/rest/api/3/issue/{issue['id']}"}

    def get_issue(self, key: str, *, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        issue = self._issue(key)
        fields = ",".join(query.get("fields", [])).split(",") if query.get("fields") else None
        properties = ",".join(query.get("properties", [])).split(",") if query.get("properties") else []
        return 200, self._shown(issue, [f for f in fields or [] if f] or None, properties)

    def edit_issue(self, key: str, *, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        issue = self._issue(key)
        body = body or {}
        for name, value in (body.get("fields") or {}).items():
            if name == "priority":
                if value.get("name") not in PRIORITIES:
                    return 400, _errors(priority=f"The priority selected is invalid: {value.get('name')}")
                issue["fields"]["priority"] = {"name": value["name"], "id": PRIORITIES[value["name"]]}
            elif name in ("summary", "duedate", "labels", "description"):
                issue["fields"][name] = value
            else:
                return 400, _errors(**{name: f"Field '{name}' cannot be set. It is not on the appropriate screen,"
                                              " or unknown."})
        for operation in (body.get("update") or {}).get("labels") or []:
            labels = issue["fields"]["labels"]
            if "add" in operation and operation["add"] not in labels:
                labels.append(operation["add"])
            if "remove" in operation and operation["remove"] in labels:
                labels.remove(operation["remove"])
        self._touch(issue)
        return 204, None

    def delete_issue(self, key: str, *, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        issue = self._issue(key)
        del self.issues[issue["key"]]
        return 204, None

    def get_transitions(self, key: str, *, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        issue = self._issue(key)
        current = issue["fields"]["status"]["name"]
        offered = [{"id": tid, "name": name, "hasScreen": False, "isAvailable": True, "to": self._status(name)}
                   for name, tid in TRANSITIONS.items() if name != current]
        return 200, {"expand": "transitions", "transitions": offered}

    def do_transition(self, key: str, *, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        issue = self._issue(key)
        wanted = str(((body or {}).get("transition") or {}).get("id"))
        for name, tid in TRANSITIONS.items():
            if tid == wanted and name != issue["fields"]["status"]["name"]:
                issue["fields"]["status"] = self._status(name)
                self._touch(issue)
                return 204, None
        return 400, _messages(f"Transition id '{wanted}' is not valid for this issue.")

    def assign(self, key: str, *, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        issue = self._issue(key)
        account = (body or {}).get("accountId")
        if account is not None and self._user(account) is None:
            return 400, _errors(assignee=f"User '{account}' cannot be assigned issues.")
        issue["fields"]["assignee"] = self._user(account)
        self._touch(issue)
        return 204, None

    def get_comments(self, key: str, *, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        issue = self._issue(key)
        start = int(query.get("startAt", ["0"])[0])
        size = int(query.get("maxResults", ["50"])[0])
        with_properties = "properties" in ",".join(query.get("expand", []))
        page = issue["comments"][start:start + size]
        return 200, {"comments": [self._comment_shown(c, with_properties) for c in page], "startAt": start,
                     "maxResults": size, "total": len(issue["comments"])}

    def add_comment(self, key: str, *, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        issue = self._issue(key)
        content = (body or {}).get("body")
        if not (isinstance(content, dict) and content.get("type") == "doc"):
            return 400, _errors(comment="Comment body must be an Atlassian Document (see the Atlassian Document"
                                        " Format)")
        self._ids += 1
        now = self._now()
        comment = {"self": f"{self.url}/rest/api/3/issue/{issue['id']}/comment/{self._ids}", "id": str(self._ids),
                   "author": dict(self.bot), "body": content, "updateAuthor": dict(self.bot), "created": now,
                   "updated": now, "properties": {p["key"]: p["value"] for p in body.get("properties") or []}}
        issue["comments"].append(comment)
        self._touch(issue)
        return 201, self._comment_shown(comment, False)

    def delete_comment(self, key: str, comment_id: str, *, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        issue = self._issue(key)
        kept = [c for c in issue["comments"] if c["id"] != comment_id]
        if len(kept) == len(issue["comments"]):
            return 404, _messages("Can not find a comment for the id: " + comment_id + ".")
        issue["comments"] = kept
        return 204, None

    def get_property(self, key: str, prop: str, *, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        issue = self._issue(key)
        if prop not in issue["properties"]:
            error = recorded("error_404_property.json")
            error["errorMessages"] = [f"The property with key '{prop}' does not exist."]
            return 404, error
        return 200, {"key": prop, "value": copy.deepcopy(issue["properties"][prop])}

    def set_property(self, key: str, prop: str, *, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        issue = self._issue(key)
        existed = prop in issue["properties"]
        issue["properties"][prop] = body
        return (200 if existed else 201), None

    def user_search(self, *, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        needle = query.get("query", [""])[0].lower()
        found = [u for u in self.users
                 if needle and (u["emailAddress"].lower() == needle or u["displayName"].lower().startswith(needle))]
        return 200, found

    def search(self, *, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        body = body or {}
        jql = str(body.get("jql") or "")
        try:
            test, order = _parse_jql(jql)
        except ValueError as exc:
            return 400, _messages(f"Error in the JQL Query: {exc}")
        hits = []
        for issue in self.issues.values():
            if issue["hidden_searches"] > 0:  # not indexed yet
                issue["hidden_searches"] -= 1
                continue
            if test(issue):
                hits.append(issue)
        hits.sort(key=order)
        start = int(body.get("nextPageToken") or 0)
        size = int(body.get("maxResults") or 50)
        page = hits[start:start + size]
        last = start + size >= len(hits)
        result: dict[str, Any] = {
            "issues": [self._shown(i, body.get("fields") or ["*navigable"], body.get("properties") or [])
                       for i in page],
            "isLast": last,
        }
        if not last:
            result["nextPageToken"] = str(start + size)
        return 200, result

    # --- the server -----------------------------------------------------------------------

    def authorized(self, header: str | None) -> bool:
        expected = base64.b64encode(f"{self.email}:{self.token}".encode()).decode()
        return header == f"Basic {expected}"

    def refused(self) -> Any:
        return recorded("error_401.json")


# --- JQL, the part the connector writes --------------------------------------------------

_TOKEN = re.compile(r'\s*(?:"((?:[^"\\]|\\.)*)"|(\()|(\))|(,)|(!=|=|~|[A-Za-z][\w.]*))')


def _tokens(jql: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    position = 0
    while position < len(jql.rstrip()):
        match = _TOKEN.match(jql, position)
        if match is None:
            raise ValueError(f"cannot read {jql[position:]!r}")
        text, opening, closing, comma, word = match.groups()
        if text is not None:
            out.append(("str", re.sub(r"\\(.)", r"\1", text)))
        elif opening:
            out.append(("(", "("))
        elif closing:
            out.append((")", ")"))
        elif comma:
            out.append((",", ","))
        else:
            out.append(("word", word))
        position = match.end()
    return out


def _field(issue: dict[str, Any], name: str) -> list[str]:
    fields = issue["fields"]
    if name == "project":
        return [fields["project"]["key"]]
    if name == "labels":
        return list(fields["labels"])
    if name == "assignee":
        return [fields["assignee"]["accountId"]] if fields["assignee"] else []
    if name == "status":
        return [fields["status"]["name"]]
    if name == "statuscategory":
        return [fields["status"]["statusCategory"]["name"]]
    if name == "key":
        return [issue["key"]]
    raise ValueError(f"Field '{name}' does not exist or you do not have permission to view it.")


def _parse_jql(jql: str) -> tuple[Any, Any]:
    """A test for issues and a sort key, from ``clause AND clause ... [ORDER BY field [ASC|DESC]]``."""
    tokens = _tokens(jql)
    order: Any = lambda issue: (issue["fields"]["project"]["key"], int(issue["key"].rsplit("-", 1)[1]))  # noqa: E731
    tests: list[Any] = []
    i = 0
    while i < len(tokens):
        kind, value = tokens[i]
        if kind == "word" and value.upper() == "ORDER":
            field = tokens[i + 2][1].lower()
            descending = i + 3 < len(tokens) and tokens[i + 3][1].upper() == "DESC"
            if field in ("updated", "created"):
                order = (lambda f: lambda issue: issue["fields"][f])(field)
            elif field != "key":
                raise ValueError(f"Not able to sort using field '{field}'.")
            return _all(tests), (_Reverse(order) if descending else order)
        if kind != "word":
            raise ValueError(f"Expecting a field name but got '{value}'.")
        name = value.lower()
        op = tokens[i + 1][1].lower() if i + 1 < len(tokens) else ""
        if op == "in":
            values = []
            i += 3
            while tokens[i][0] != ")":
                if tokens[i][0] == "str":
                    values.append(tokens[i][1])
                i += 1
            i += 1
            tests.append((lambda n, vs: lambda issue: bool(set(_field(issue, n)) & set(vs)))(name, values))
        elif op in ("=", "!=", "~"):
            if i + 2 >= len(tokens) or tokens[i + 2][0] not in ("str", "word"):
                raise ValueError("Expecting either a value, list or function but got 'AND'.")
            target = tokens[i + 2][1]
            i += 3
            if op == "~":
                if name == "summary":
                    tests.append((lambda t: lambda issue: _matches(t, issue["fields"]["summary"]))(target))
                elif name == "text":
                    tests.append((lambda t: lambda issue: _matches(t, " ".join(
                        [issue["fields"]["summary"], _text(issue["fields"]["description"]),
                         *(_text(c["body"]) for c in issue["comments"])])))(target))
                else:
                    raise ValueError(f"The operator '~' is not supported by the '{name}' field.")
            elif op == "=":
                tests.append((lambda n, t: lambda issue: t.lower() in [v.lower() for v in _field(issue, n)])(name,
                                                                                                         target))
            else:
                tests.append((lambda n, t: lambda issue: t.lower() not in [v.lower() for v in _field(issue, n)])(
                    name, target))
        else:
            raise ValueError(f"Expecting operator but got '{op}'.")
        if i < len(tokens) and tokens[i][1].upper() == "AND":
            i += 1
    return _all(tests), order


def _all(tests: list[Any]) -> Any:
    return lambda issue: all(test(issue) for test in tests)


class _Reverse:
    """A sort key that sorts the other way."""

    def __init__(self, key: Any) -> None:
        self.key = key

    def __call__(self, issue: dict[str, Any]) -> Any:
        return _Desc(self.key(issue))


class _Desc:
    def __init__(self, value: Any) -> None:
        self.value = value

    def __lt__(self, other: _Desc) -> bool:
        return bool(self.value > other.value)
