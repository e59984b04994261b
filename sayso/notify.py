"""Notifications where people live: each person's preferred channel, from the directory.

"let devi know", "tell fiona", "notify ines" reach the person through the channel their
directory entry names (``notify: chat`` or ``notify: email``), through whichever connector the
workspace configured for that system. Words that name a channel ("message", "DM", "ping",
"chat", "slack") keep it. Standing instructions tell their creators the same way.
"""

from __future__ import annotations

import re
from typing import Any

from .catalog import Catalog
from .directory import Directory, Person

__all__ = ["notification", "route"]

_CHANNEL_WORDS = re.compile(r"\b(?:chat|dm|direct message|message|messaged|ping|pinged|slack|text|im|post)\b", re.I)


def notification(person: Person, text: str, catalog: Catalog,
                 subject: str = "A note from sayso") -> tuple[str, dict[str, Any]]:
    """The action that reaches ``person`` where they live: email when their entry says so and the
    workspace can send email, else a chat message."""
    if person.notify == "email" and "email.send" in catalog:
        return "email.send", {"to": [person.id], "subject": subject, "body": text}
    return "chat.send", {"to": person.id, "text": text}


def route(step: dict[str, Any], said: str, sender: Person, directory: Directory,
          catalog: Catalog) -> dict[str, Any]:
    """A chat message to one person who lives in email becomes an email to them, unless the person
    asking named the channel; anything else is returned as it was."""
    if step.get("action") != "chat.send" or _CHANNEL_WORDS.search(said):
        return step
    args = step.get("args") or {}
    to, text = args.get("to"), args.get("text")
    if not isinstance(to, str) or not isinstance(text, str) or to not in directory:
        return step
    action, routed = notification(directory.get(to), text, catalog, subject=f"From {sender.name}: {_gist(text)}")
    if action == step["action"]:
        return step
    return {**step, "action": action, "args": routed}


def _gist(text: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first if len(first) <= 60 else first[:57].rstrip() + "..."
