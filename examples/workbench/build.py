"""Build a sayso workspace for the WorkBench company (Atlas) from its sandbox CSVs.

    python examples/workbench/build.py --data ../shared/benchmarks/workbench-dev/data --out /tmp/atlas [--force]

The data stays where it is: this script reads ``processed/*.csv`` and ``raw/email_addresses.csv`` and
writes a workspace that reaches a copy of them through the SQL connector:

    sayso.toml                  one system, ``workbench`` (kind sql), on systems/workbench.db
    directory.yaml              sam (the sandbox's user) and the colleagues of email_addresses.csv
    systems/workbench.db        the five tables, plus ``plots`` for the charts made
    operations/workbench.yaml   parameterised SQL: searches, reads and one write per change
    actions/*.yaml              calendar, email, crm, tasks, analytics
    policies/workbench.cedar    who may do what

It is written as an adopter would from WorkBench's tool documentation (tools.json): one action per
tool with side effects (an ``update_*`` tool becomes one action per field it may change, as people
ask for them), the reads those need, risk tiers (deleting asks for a confirmation, and so does
mail to anyone outside atlas.com), and one policy.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sqlite3
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

COMPANY_DOMAIN = "atlas.com"
USER = "sam"
TIMEZONE = "UTC"

# The sandbox's tables: CSV file -> (table, {csv column: SQL column}).
TABLES: dict[str, tuple[str, dict[str, str]]] = {
    "calendar_events.csv": ("calendar_events", {}),
    "emails.csv": ("emails", {"inbox/outbox": "inbox_outbox", "sender/recipient": "sender_recipient"}),
    "customer_relationship_manager_data.csv": ("customers", {}),
    "project_tasks.csv": ("project_tasks", {}),
    "analytics_data.csv": ("analytics_data", {}),
}
PLOTS = "plots"
PLOT_COLUMNS = ("file_path", "time_min", "time_max", "value_to_plot", "plot_type")

METRICS = {  # value_to_plot, as tools.json lists them, and the words people use for each
    "total_visits": ["visits", "total visits", "traffic", "visitors"],
    "session_duration_seconds": ["session duration", "average session duration", "time on site",
                                 "session length"],
    "user_engaged": ["engaged users", "engagement", "user engagement", "engaged"],
    "visits_direct": ["direct visits", "direct traffic"],
    "visits_referral": ["referral visits", "referral traffic", "referrals"],
    "visits_search_engine": ["search engine visits", "search engine traffic", "search traffic"],
    "visits_social_media": ["social media visits", "social media traffic", "social traffic"],
}
PLOT_TYPES = {"bar": ["bar chart", "bar graph"], "line": ["line chart", "line graph"],
              "scatter": ["scatter plot", "scatter chart", "scatterplot"], "histogram": ["histogram"]}
STATUSES = {"Qualified": ["qualified"], "Won": ["won", "closed won"], "Lost": ["lost", "closed lost"],
            "Lead": ["lead", "leads"], "Proposal": ["proposal", "proposal stage"]}
PRODUCTS = {"Software": ["software"], "Hardware": ["hardware"], "Services": ["services", "service"],
            "Consulting": ["consulting"], "Training": ["training"]}
LISTS = {"Backlog": ["backlog"], "In Progress": ["in progress", "in-progress", "ongoing"],
         "In Review": ["in review", "review"], "Completed": ["completed", "done", "finished"]}
BOARDS = {"Back end": ["back-end", "backend", "back end"], "Front end": ["front-end", "frontend", "front end"],
          "Design": ["design"]}

ID8 = r"\d{8}"  # WorkBench's record ids: eight digits


def _labels(values: dict[str, list[str]]) -> dict[str, Any]:
    return {"enum": list(values), "labels": values}


PERSON: dict[str, Any] = {"person": "or-email", "bind": "email"}  # a colleague by name, stored as an address


@dataclass(frozen=True)
class FieldChange:
    """One field an ``update_*`` tool may change, as an action of its own."""

    tool: str  # the WorkBench tool, e.g. calendar.update_event
    field: str  # its ``field`` argument
    action: str  # the sayso action
    param: str  # the action's parameter for the new value
    spec: dict[str, Any]
    description: str
    examples: tuple[str, ...] = ()
    risk: str = "medium"


FIELD_CHANGES: tuple[FieldChange, ...] = (
    FieldChange("calendar.update_event", "event_name", "calendar.rename_event", "name",
                {"type": "string", "required": True, "description": "The event's new name"},
                "Rename a calendar event (change its name or title).", ("rename event 00000123 to team sync",)),
    FieldChange("calendar.update_event", "event_start", "calendar.move_event", "start",
                {"type": "datetime", "required": True, "description": "When the event now starts"},
                "Move a calendar event to another time (reschedule it).", ("move event 00000123 to Friday at 10",)),
    FieldChange("calendar.update_event", "duration", "calendar.set_event_duration", "duration",
                {"type": "integer", "required": True, "description": "The event's new length in minutes"},
                "Change how long a calendar event lasts.", ("make event 00000123 45 minutes long",)),
    FieldChange("calendar.update_event", "participant_email", "calendar.change_participant", "participant",
                {"type": "string", "required": True, "description": "Who the event is now with", **PERSON},
                "Change who a calendar event is with.", ()),
    FieldChange("customer_relationship_manager.update_customer", "assigned_to_email", "crm.reassign_customer",
                "owner", {"type": "string", "required": True, "description": "The colleague now responsible",
                          **PERSON},
                "Reassign a customer to another colleague in the CRM.", ("move Dakota Wilson to Raj in the crm",)),
    FieldChange("customer_relationship_manager.update_customer", "status", "crm.set_customer_status", "status",
                {"type": "string", "required": True, "description": "The customer's new status", **_labels(STATUSES)},
                "Change a customer's status (stage) in the CRM.", ("mark Dakota Wilson as lost",)),
    FieldChange("customer_relationship_manager.update_customer", "product_interest", "crm.set_product_interest",
                "product", {"type": "string", "required": True, **_labels(PRODUCTS)},
                "Change which product a customer is interested in.", ()),
    FieldChange("customer_relationship_manager.update_customer", "follow_up_by", "crm.set_follow_up", "follow_up",
                {"type": "date", "required": True, "direction": "future", "description": "Follow up by this date"},
                "Set the date by which to follow up with a customer.", ()),
    FieldChange("customer_relationship_manager.update_customer", "last_contact_date", "crm.set_last_contact",
                "last_contact", {"type": "date", "required": True, "direction": "past",
                                 "description": "When the customer was last contacted"},
                "Record when a customer was last contacted.", ()),
    FieldChange("customer_relationship_manager.update_customer", "customer_name", "crm.rename_customer", "name",
                {"type": "string", "required": True, "description": "The customer's new name"},
                "Correct a customer's name in the CRM.", ()),
    FieldChange("customer_relationship_manager.update_customer", "customer_email", "crm.set_customer_email",
                "email", {"type": "string", "required": True, "description": "The customer's email address"},
                "Change a customer's email address in the CRM.", ()),
    FieldChange("customer_relationship_manager.update_customer", "customer_phone", "crm.set_customer_phone",
                "phone", {"type": "string", "required": True, "description": "The customer's phone number"},
                "Change a customer's phone number in the CRM.", ()),
    FieldChange("customer_relationship_manager.update_customer", "notes", "crm.set_customer_notes", "notes",
                {"type": "string", "required": True, "description": "The notes to keep"},
                "Replace the notes kept on a customer.", ()),
    FieldChange("project_management.update_task", "assigned_to_email", "tasks.reassign", "assignee",
                {"type": "string", "required": True, "description": "Who works on it now", **PERSON},
                "Reassign a project task to another colleague.", ("reassign task 00000012 to jinsoo",)),
    FieldChange("project_management.update_task", "list_name", "tasks.move", "list",
                {"type": "string", "required": True, "description": "The list it moves to", **_labels(LISTS)},
                "Move a project task to another list (backlog, in progress, in review, completed).",
                ("move task 00000012 to in review",)),
    FieldChange("project_management.update_task", "board", "tasks.move_board", "board",
                {"type": "string", "required": True, "description": "The board it moves to", **_labels(BOARDS)},
                "Move a project task to another board (back end, front end, design).", ()),
    FieldChange("project_management.update_task", "due_date", "tasks.set_due", "due",
                {"type": "date", "required": True, "direction": "future", "description": "The new deadline"},
                "Change a project task's deadline.", ()),
    FieldChange("project_management.update_task", "task_name", "tasks.rename", "name",
                {"type": "string", "required": True, "description": "The task's new name"},
                "Rename a project task.", ()),
)

# The record each update tool changes: table, id column, the action parameter naming it, its type.
RECORDS = {
    "calendar.update_event": ("calendar_events", "event_id", "event", "Event"),
    "customer_relationship_manager.update_customer": ("customers", "customer_id", "customer", "Customer"),
    "project_management.update_task": ("project_tasks", "task_id", "task", "Task"),
}


# --- the sandbox's tables --------------------------------------------------------------


def read_table(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """A CSV's columns and rows, every value as the text it is (ids keep their leading zeros)."""
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        rows = [dict(row) for row in reader]
        return list(reader.fieldnames or []), rows


def build_database(data: Path, target: Path) -> None:
    """The five tables (columns renamed where a ``/`` would need quoting) and an empty ``plots``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    with sqlite3.connect(target) as db:
        for file, (table, renamed) in TABLES.items():
            columns, rows = read_table(data / "processed" / file)
            names = [renamed.get(c, c) for c in columns]
            db.execute(f"CREATE TABLE {table} ({', '.join(f'{n} TEXT' for n in names)})")
            db.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' for _ in names)})",
                           [[row[c] if row[c] != "" else None for c in columns] for row in rows])
        db.execute(f"CREATE TABLE {PLOTS} ({', '.join(f'{c} TEXT' for c in PLOT_COLUMNS)})")
    db.close()


def colleagues(data: Path) -> list[str]:
    """The colleagues' addresses (``raw/email_addresses.csv``: one address a line, no header)."""
    lines = (data / "raw" / "email_addresses.csv").read_text().splitlines()
    return [line.strip().lower() for line in lines if "@" in line]


def directory(data: Path) -> dict[str, Any]:
    """Sam, the sandbox's user, and a person per colleague address ("aisha.chen@atlas.com" is Aisha Chen)."""
    people: list[dict[str, Any]] = [{"id": USER, "name": "Sam", "email": f"{USER}@{COMPANY_DOMAIN}",
                                     "role": "employee", "team": "atlas", "timezone": TIMEZONE}]
    for address in colleagues(data):
        local = address.split("@", 1)[0]
        name = " ".join(part.capitalize() for part in local.split("."))
        people.append({"id": local, "name": name, "email": address, "role": "employee", "team": "atlas",
                       "timezone": TIMEZONE, "notify": "email"})
    return {"people": people, "channels": []}


# --- operations: the SQL behind each action ---------------------------------------------

_NEXT_ID = "printf('%08d', (SELECT COALESCE(MAX(CAST({id} AS INTEGER)), 0) + 1 FROM {table}))"
_TEXT = "CAST(:{p} AS TEXT)"


def _opt(column: str, param: str, op: str = "=") -> str:
    """An optional filter: no value, no filter."""
    return f"({_TEXT.format(p=param)} IS NULL OR {column} {op} {_TEXT.format(p=param)})"


def _search(table: str, id_col: str, title: str, record: str, columns: str, order: str) -> dict[str, Any]:
    return {
        "kind": "read", "search": True, "limit": 50,
        "description": f"Find a {record.lower()} by its id or part of its {title}",
        "sql": f"SELECT {columns} FROM {table} WHERE {id_col} = CAST(:text AS TEXT) "
               f"OR lower({title}) LIKE '%' || lower(CAST(:text AS TEXT)) || '%' ORDER BY {order}",
        "record": {"type": record, "id": id_col, "title": title},
    }


def _delete(table: str, id_col: str, param: str, record: str, title: str) -> dict[str, Any]:
    return {
        "kind": "write",
        "before": f"SELECT * FROM {table} WHERE {id_col} = :{param}",
        "sql": f"DELETE FROM {table} WHERE {id_col} = :{param} RETURNING *",
        "record": {"type": record, "id": id_col, "title": title},
    }


def operations() -> dict[str, Any]:
    ops: dict[str, Any] = {}
    event_cols = "event_id, event_name, participant_email, event_start, duration"
    email_cols = "email_id, inbox_outbox, sender_recipient, subject, sent_datetime, body"
    customer_cols = ("customer_id, customer_name, assigned_to_email, customer_email, customer_phone, "
                     "last_contact_date, product_interest, status, follow_up_by, notes")
    task_cols = "task_id, task_name, assigned_to_email, list_name, due_date, board"
    ops["search_events"] = _search("calendar_events", "event_id", "event_name", "Event", event_cols, "event_start")
    ops["search_emails"] = _search("emails", "email_id", "subject", "Email", email_cols, "sent_datetime DESC")
    ops["search_customers"] = _search("customers", "customer_id", "customer_name", "Customer", customer_cols,
                                      "customer_id")
    ops["search_tasks"] = _search("project_tasks", "task_id", "task_name", "Task", task_cols, "task_id")
    ops["find_events"] = {
        "kind": "read", "record": {"type": "Event", "id": "event_id", "title": "event_name"},
        "sql": f"SELECT {event_cols} FROM calendar_events WHERE "
               f"{_opt('lower(event_name)', 'name', 'LIKE')} AND {_opt('participant_email', 'participant')} "
               f"AND {_opt('substr(event_start, 1, 10)', 'after', '>=')} "
               f"AND {_opt('substr(event_start, 1, 10)', 'before', '<=')} ORDER BY event_start",
    }
    ops["find_emails"] = {
        "kind": "read", "record": {"type": "Email", "id": "email_id", "title": "subject"},
        "sql": f"SELECT {email_cols} FROM emails WHERE "
               f"({_TEXT.format(p='words')} IS NULL OR lower(subject || ' ' || body || ' ' || sender_recipient) "
               f"LIKE '%' || lower({_TEXT.format(p='words')}) || '%') AND {_opt('sender_recipient', 'correspondent')} "
               f"AND {_opt('substr(sent_datetime, 1, 10)', 'after', '>=')} "
               f"AND {_opt('substr(sent_datetime, 1, 10)', 'before', '<=')} ORDER BY sent_datetime DESC",
    }
    ops["find_customers"] = {
        "kind": "read", "record": {"type": "Customer", "id": "customer_id", "title": "customer_name"},
        "sql": f"SELECT {customer_cols} FROM customers WHERE {_opt('assigned_to_email', 'owner')} "
               f"AND {_opt('status', 'status')} AND {_opt('product_interest', 'product')} "
               f"AND {_opt('last_contact_date', 'contacted_after', '>=')} "
               f"AND {_opt('last_contact_date', 'contacted_before', '<=')} "
               f"AND {_opt('follow_up_by', 'follow_up_after', '>=')} "
               f"AND {_opt('follow_up_by', 'follow_up_before', '<=')} ORDER BY customer_id",
    }
    ops["find_tasks"] = {
        "kind": "read", "record": {"type": "Task", "id": "task_id", "title": "task_name"},
        "sql": f"SELECT {task_cols} FROM project_tasks WHERE {_opt('assigned_to_email', 'assignee')} "
               f"AND {_opt('list_name', 'list')} AND {_opt('board', 'board')} AND {_opt('due_date', 'due')} "
               f"ORDER BY task_id",
    }
    ops["daily_visits"] = {
        "kind": "read", "record": {"type": "Day", "id": "day", "title": "day"},
        "sql": "SELECT date_of_visit AS day, COUNT(*) AS total_visits, "
               "SUM(CASE WHEN user_engaged = 'True' THEN 1 ELSE 0 END) AS engaged_users, "
               "ROUND(AVG(CAST(session_duration_seconds AS REAL)), 1) AS average_session_seconds, "
               "SUM(traffic_source = 'direct') AS visits_direct, SUM(traffic_source = 'referral') AS visits_referral, "
               "SUM(traffic_source = 'search engine') AS visits_search_engine, "
               "SUM(traffic_source = 'social media') AS visits_social_media FROM analytics_data "
               f"WHERE {_opt('date_of_visit', 'start', '>=')} AND {_opt('date_of_visit', 'end', '<=')} "
               "GROUP BY date_of_visit ORDER BY date_of_visit",
    }
    ops["create_event"] = {
        "kind": "write", "record": {"type": "Event", "id": "event_id", "title": "event_name"},
        "sql": "INSERT INTO calendar_events (event_id, event_name, participant_email, event_start, duration) "
               f"VALUES ({_NEXT_ID.format(id='event_id', table='calendar_events')}, :name, :participant, "
               "replace(substr(:start, 1, 19), 'T', ' '), CAST(:duration AS TEXT)) RETURNING *",
    }
    ops["delete_event"] = _delete("calendar_events", "event_id", "event", "Event", "event_name")
    ops["send_email"] = {
        "kind": "write", "record": {"type": "Email", "id": "email_id", "title": "subject"},
        "sql": "INSERT INTO emails (email_id, inbox_outbox, sender_recipient, subject, sent_datetime, body) "
               f"VALUES ({_NEXT_ID.format(id='email_id', table='emails')}, 'outbox', lower(:to), :subject, "
               "replace(substr(:_now, 1, 19), 'T', ' '), :body) RETURNING *",
    }
    ops["forward_email"] = {
        "kind": "write", "record": {"type": "Email", "id": "email_id", "title": "subject"},
        "sql": "INSERT INTO emails (email_id, inbox_outbox, sender_recipient, subject, sent_datetime, body) "
               f"SELECT {_NEXT_ID.format(id='email_id', table='emails')}, 'outbox', lower(:to), 'FW: ' || subject, "
               "replace(substr(:_now, 1, 19), 'T', ' '), body FROM emails WHERE email_id = :email RETURNING *",
    }
    ops["reply_email"] = {
        "kind": "write", "record": {"type": "Email", "id": "email_id", "title": "subject"},
        "sql": "INSERT INTO emails (email_id, inbox_outbox, sender_recipient, subject, sent_datetime, body) "
               f"SELECT {_NEXT_ID.format(id='email_id', table='emails')}, 'outbox', sender_recipient, subject, "
               "replace(substr(:_now, 1, 19), 'T', ' '), :body FROM emails WHERE email_id = :email RETURNING *",
    }
    ops["delete_email"] = _delete("emails", "email_id", "email", "Email", "subject")
    ops["add_customer"] = {
        "kind": "write", "record": {"type": "Customer", "id": "customer_id", "title": "customer_name"},
        "sql": "INSERT INTO customers (customer_id, assigned_to_email, customer_name, customer_email, customer_phone, "
               "last_contact_date, product_interest, status, follow_up_by, notes) "
               f"VALUES ({_NEXT_ID.format(id='customer_id', table='customers')}, :owner, :name, :email, :phone, "
               ":last_contact, :product, :status, :follow_up, :notes) RETURNING *",
    }
    ops["delete_customer"] = _delete("customers", "customer_id", "customer", "Customer", "customer_name")
    ops["create_task"] = {
        "kind": "write", "record": {"type": "Task", "id": "task_id", "title": "task_name"},
        "sql": "INSERT INTO project_tasks (task_id, task_name, assigned_to_email, list_name, due_date, board) "
               f"VALUES ({_NEXT_ID.format(id='task_id', table='project_tasks')}, :name, :assignee, :list, :due, "
               ":board) RETURNING *",
    }
    ops["delete_task"] = _delete("project_tasks", "task_id", "task", "Task", "task_name")
    ops["create_plot"] = {
        "kind": "write", "record": {"type": "Plot", "id": "file_path", "title": "file_path"},
        "sql": f"INSERT INTO {PLOTS} ({', '.join(PLOT_COLUMNS)}) "
               "VALUES ('plots/' || :start || '_' || :end || '_' || :metric || '_' || :chart || '.png', "
               ":start, :end, :metric, :chart) RETURNING *",
    }
    for change in FIELD_CHANGES:
        table, id_col, record_param, record = RECORDS[change.tool]
        value = f":{change.param}"
        if change.spec.get("type") == "datetime":
            value = f"replace(substr(:{change.param}, 1, 19), 'T', ' ')"
        elif change.spec.get("type") == "integer":
            value = f"CAST(:{change.param} AS TEXT)"
        ops[change.action.split(".", 1)[1]] = {
            "kind": "write",
            "before": f"SELECT * FROM {table} WHERE {id_col} = :{record_param}",
            "sql": f"UPDATE {table} SET {change.field} = {value} WHERE {id_col} = :{record_param} RETURNING *",
            "record": {"type": record, "id": id_col, "title": RECORD_TITLES[record]},
        }
    return {"operations": ops}


RECORD_TITLES = {"Event": "event_name", "Customer": "customer_name", "Task": "task_name", "Email": "subject"}


# --- actions --------------------------------------------------------------------------

def _record(kind: str, description: str) -> dict[str, Any]:
    return {"type": "string", "required": True, "record": kind, "id_pattern": ID8, "description": description}


OUTSIDE = {"arg": "to", "not_endswith": f"@{COMPANY_DOMAIN}", "tier": "high"}


def actions() -> dict[str, list[dict[str, Any]]]:
    """Every action, by the file it goes in."""
    on = {"connector": "workbench"}
    calendar: list[dict[str, Any]] = [
        {"name": "calendar.find_events", "kind": "read", **on, "operation": "find_events",
         "description": "Show calendar events (meetings), by name, participant or dates.",
         "examples": ["what meetings do I have with kofi next week?"],
         "params": {"name": {"type": "string", "description": "Part of the event's name"},
                    "participant": {"type": "string", "description": "Who the event is with", **PERSON},
                    "after": {"type": "date", "description": "On or after this day"},
                    "before": {"type": "date", "description": "On or before this day"}}},
        {"name": "calendar.create_event", "kind": "write", **on, "operation": "create_event",
         "description": "Schedule a meeting (a calendar event) with a colleague or a contact.",
         "examples": ["schedule a 30 minute meeting called design review with aisha on Friday at 10"],
         "risk": {"tier": "low", "when": [{"arg": "participant", "not_endswith": f"@{COMPANY_DOMAIN}",
                                           "tier": "high"}]},
         "params": {"name": {"type": "string", "required": True, "description": "The event's name (title)"},
                    "participant": {"type": "string", "required": True, "description": "Who it is with",
                                    **PERSON},
                    "start": {"type": "datetime", "required": True, "direction": "future",
                              "description": "When it starts"},
                    "duration": {"type": "integer", "required": True, "description": "Its length in minutes"}}},
        {"name": "calendar.delete_event", "kind": "write", **on, "operation": "delete_event",
         "description": "Delete (cancel) a calendar event.", "examples": ["cancel event 00000123"],
         "risk": "high", "preview": True, "resource": {"type": "Event", "param": "event"},
         "params": {"event": _record("Event", "The event, by its 8-digit id or its name")}},
    ]
    email: list[dict[str, Any]] = [
        {"name": "email.find_emails", "kind": "read", **on, "operation": "find_emails",
         "description": "Show emails, by words they contain, who sent them (or got them) or dates.",
         "examples": ["show my emails from nadia since Monday"],
         "params": {"words": {"type": "string", "description": "Words in the subject, body or address"},
                    "correspondent": {"type": "string", "description": "Who sent it, or got it", **PERSON},
                    "after": {"type": "date", "direction": "past", "description": "Sent on or after this day"},
                    "before": {"type": "date", "direction": "past", "description": "Sent on or before this day"}}},
        {"name": "email.send", "kind": "write", **on, "operation": "send_email",
         "description": "Send an email to a colleague or an outside address.",
         "examples": ["email raj about the budget: the numbers are in"],
         "risk": {"tier": "low", "when": [OUTSIDE]},
         "params": {"to": {"type": "string", "required": True, "description": "Who it goes to", **PERSON},
                    "subject": {"type": "string", "required": True, "description": "The subject line"},
                    "body": {"type": "string", "required": True, "description": "What it says"}}},
        {"name": "email.forward", "kind": "write", **on, "operation": "forward_email",
         "description": "Forward an email to someone.", "examples": ["forward email 00000123 to olga"],
         "risk": {"tier": "low", "when": [OUTSIDE]}, "resource": {"type": "Email", "param": "email"},
         "params": {"email": _record("Email", "The email, by its 8-digit id or its subject"),
                    "to": {"type": "string", "required": True, "description": "Who it goes to", **PERSON}}},
        {"name": "email.reply", "kind": "write", **on, "operation": "reply_email",
         "description": "Reply to an email (to its sender).",
         "examples": ["reply to email 00000123: thanks, I will get back to you tomorrow"],
         "risk": "low", "resource": {"type": "Email", "param": "email"},
         "params": {"email": _record("Email", "The email, by its 8-digit id or its subject"),
                    "body": {"type": "string", "required": True, "description": "What the reply says"}}},
        {"name": "email.delete", "kind": "write", **on, "operation": "delete_email",
         "description": "Delete an email.", "examples": ["delete email 00000123"],
         "risk": "high", "preview": True, "resource": {"type": "Email", "param": "email"},
         "params": {"email": _record("Email", "The email, by its 8-digit id or its subject")}},
    ]
    crm: list[dict[str, Any]] = [
        {"name": "crm.find_customers", "kind": "read", **on, "operation": "find_customers",
         "description": "Show customers in the CRM, by who is responsible, status, product or dates.",
         "examples": ["which of raj's customers are leads interested in training?"],
         "params": {"owner": {"type": "string", "description": "The colleague responsible", **PERSON},
                    "status": {"type": "string", **_labels(STATUSES)},
                    "product": {"type": "string", "description": "Product interest", **_labels(PRODUCTS)},
                    "contacted_after": {"type": "date", "direction": "past"},
                    "contacted_before": {"type": "date", "direction": "past"},
                    "follow_up_after": {"type": "date"}, "follow_up_before": {"type": "date"}}},
        {"name": "crm.add_customer", "kind": "write", **on, "operation": "add_customer",
         "description": "Add a customer (a lead) to the CRM.",
         "examples": ["add Jordan Lee as a new lead for raj, interested in software"],
         "risk": "low",
         "params": {"name": {"type": "string", "required": True, "description": "The customer's name"},
                    "owner": {"type": "string", "required": True, "description": "The colleague responsible",
                              **PERSON},
                    "status": {"type": "string", "required": True, **_labels(STATUSES)},
                    "email": {"type": "string", "description": "The customer's email address"},
                    "phone": {"type": "string", "description": "The customer's phone number"},
                    "last_contact": {"type": "date", "direction": "past"},
                    "product": {"type": "string", "description": "Product interest", **_labels(PRODUCTS)},
                    "notes": {"type": "string"},
                    "follow_up": {"type": "date", "direction": "future"}}},
        {"name": "crm.delete_customer", "kind": "write", **on, "operation": "delete_customer",
         "description": "Delete a customer from the CRM.", "examples": ["delete customer 00000123 from the crm"],
         "risk": "high", "preview": True, "resource": {"type": "Customer", "param": "customer"},
         "params": {"customer": _record("Customer", "The customer, by 8-digit id or name")}},
    ]
    tasks: list[dict[str, Any]] = [
        {"name": "tasks.find", "kind": "read", **on, "operation": "find_tasks",
         "description": "Show project tasks, by assignee, list, board or deadline.",
         "examples": ["what tasks does yuki have in progress?"],
         "params": {"assignee": {"type": "string", "description": "Who works on it", **PERSON},
                    "list": {"type": "string", **_labels(LISTS)}, "board": {"type": "string", **_labels(BOARDS)},
                    "due": {"type": "date"}}},
        {"name": "tasks.create", "kind": "write", **on, "operation": "create_task",
         "description": "Create a project task on a board for a colleague.",
         "examples": ["make a backlog task called fix login for anaya on the front end board due Friday"],
         "risk": "low",
         "params": {"name": {"type": "string", "required": True, "description": "The task's name"},
                    "assignee": {"type": "string", "required": True, "description": "Who works on it", **PERSON},
                    "list": {"type": "string", "required": True, **_labels(LISTS)},
                    "due": {"type": "date", "required": True, "direction": "future", "description": "Deadline"},
                    "board": {"type": "string", "required": True, **_labels(BOARDS)}}},
        {"name": "tasks.delete", "kind": "write", **on, "operation": "delete_task",
         "description": "Delete a project task.", "examples": ["delete task 00000123"],
         "risk": "high", "preview": True, "resource": {"type": "Task", "param": "task"},
         "params": {"task": _record("Task", "The task, by 8-digit id or name")}},
    ]
    analytics: list[dict[str, Any]] = [
        {"name": "analytics.daily_visits", "kind": "read", **on, "operation": "daily_visits",
         "description": "Website analytics per day: visits, engaged users, session duration, traffic sources.",
         "examples": ["how many visits did we get since November 1?"],
         "params": {"start": {"type": "date", "direction": "past", "description": "From this day"},
                    "end": {"type": "date", "direction": "past", "default_to": "yesterday",
                            "description": "To this day (the data runs to yesterday)"}}},
        {"name": "analytics.create_plot", "kind": "write", **on, "operation": "create_plot",
         "description": "Make a chart (plot) of website analytics over a range of days.",
         "examples": ["plot engaged users as a line chart since November 1"],
         "risk": "low",
         "params": {"metric": {"type": "string", "required": True, "description": "What to plot",
                               **_labels(METRICS)},
                    "chart": {"type": "string", "required": True, "description": "The kind of chart",
                              **_labels(PLOT_TYPES)},
                    "start": {"type": "date", "required": True, "direction": "past", "description": "From this day"},
                    "end": {"type": "date", "direction": "past", "default_to": "yesterday",
                            "description": "To this day (the data runs to yesterday)"}}},
    ]
    for change in FIELD_CHANGES:
        _, _, record_param, record = RECORDS[change.tool]
        target = {"calendar": calendar, "crm": crm, "tasks": tasks}[change.action.split(".", 1)[0]]
        target.append({
            "name": change.action, "kind": "write", **on, "operation": change.action.split(".", 1)[1],
            "description": change.description, "examples": list(change.examples), "risk": change.risk,
            "preview": True, "resource": {"type": record, "param": record_param},
            "params": {record_param: _record(record, f"The {record.lower()}, by 8-digit id or name"),
                       change.param: change.spec},
        })
    return {"calendar": calendar, "email": email, "crm": crm, "tasks": tasks, "analytics": analytics}


SETTINGS = """\
# The WorkBench company (Atlas), built by examples/workbench/build.py from the sandbox's CSVs.
[workspace]
name = "atlas"

[store]
url = "sqlite:///state.db"

[catalog]
modules = []
paths = ["actions"]

[guard]
confirm_medium = false
allow_critical = false
confirmation_ttl_minutes = 15

[systems.workbench]
kind = "sql"
url = "sqlite:///systems/workbench.db"
operations = "operations/workbench.yaml"
"""

POLICY = """\
// Atlas: every colleague may read and change the calendar, email, CRM, tasks and analytics through
// sayso; what asks for a confirmation (deleting, mail to outside addresses) is the actions' risk.
@id("atlas-employees")
@reason("Atlas employees may use every workbench action")
permit (principal, action, resource)
when { principal.team == "atlas" };
"""


def _dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def build(data: Path, out: Path, *, force: bool = False) -> Path:
    """Write the workspace for the sandbox in ``data`` into ``out``; returns ``out``."""
    for needed in ("processed/calendar_events.csv", "raw/email_addresses.csv"):
        if not (data / needed).exists():
            raise FileNotFoundError(f"{data / needed} is missing: --data is WorkBench's data folder")
    if out.exists() and any(out.iterdir()):
        if not force:
            raise FileExistsError(f"{out} is not empty; use --force to replace it")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sayso.toml").write_text(SETTINGS)
    (out / "directory.yaml").write_text(_dump(directory(data)))
    build_database(data, out / "systems" / "workbench.db")
    (out / "operations").mkdir()
    (out / "operations" / "workbench.yaml").write_text(_dump(operations()))
    (out / "actions").mkdir()
    for name, items in actions().items():
        (out / "actions" / f"{name}.yaml").write_text(_dump({"actions": items}))
    (out / "policies").mkdir()
    (out / "policies" / "workbench.cedar").write_text(POLICY)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--data", type=Path, required=True, help="WorkBench's data folder (processed/, raw/)")
    parser.add_argument("--out", type=Path, required=True, help="the workspace folder to write")
    parser.add_argument("--force", action="store_true", help="replace what is in --out")
    args = parser.parse_args(argv)
    try:
        built = build(args.data, args.out, force=args.force)
    except (FileNotFoundError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {built}; try: sayso check --workspace {built}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
