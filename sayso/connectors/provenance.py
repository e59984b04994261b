"""The why that travels with the work, and ids derived from idempotency keys.

Every artifact sayso creates in another system (a ticket, an event, a message,
an email, a CRM note) carries who asked, the request in their words, the
conversation and the related records. Connectors take that from the ``origin``
the executor hands to :meth:`Connector.execute` and write it in whatever form the
system keeps: a footer in a text, a field, metadata.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

__all__ = ["stable_id", "why_fields", "why_text"]


def stable_id(key: str, length: int = 32) -> str:
    """A hex digest of an idempotency key: the same key always gives the same id (event UIDs,
    Message-IDs, external ids), so a retried create can be recognised by the target."""
    return hashlib.sha256(key.encode()).hexdigest()[:length]


def why_fields(origin: Mapping[str, Any] | None) -> dict[str, Any]:
    """The origin as flat, JSON-ready fields: ``asked_by``, ``asked_by_name``, ``request``,
    ``conversation``, ``turn``, ``related`` (absent ones are left out)."""
    if not origin:
        return {}
    fields: dict[str, Any] = {
        "asked_by": origin.get("actor"),
        "asked_by_name": origin.get("actor_name"),
        "request": origin.get("request"),
        "conversation": origin.get("conversation"),
        "turn": origin.get("turn"),
        "related": list(origin.get("related") or []),
    }
    return {k: v for k, v in fields.items() if v not in (None, "", [])}


def why_text(origin: Mapping[str, Any] | None, *, links: Mapping[str, str] | None = None) -> str:
    """One short paragraph for a system that only keeps text (an email, a message, a description):

    ``Asked by Alice Wong (alice) in sayso conversation c-1: "move Orchid to negotiation". Related: D-104.``

    ``links`` maps a related record id to a URL where the system can show one.
    """
    fields = why_fields(origin)
    if not fields:
        return ""
    who = fields.get("asked_by_name") or fields.get("asked_by") or "someone"
    if fields.get("asked_by_name") and fields.get("asked_by"):
        who = f"{fields['asked_by_name']} ({fields['asked_by']})"
    text = f"Asked by {who}"
    if "conversation" in fields:
        text += f" in sayso conversation {fields['conversation']}"
    if "request" in fields:
        text += f': "{fields["request"]}"'
    text += "."
    related = fields.get("related") or []
    if related:
        shown = [f"{r} <{links[r]}>" if links and r in links else str(r) for r in related]
        text += f" Related: {', '.join(shown)}."
    return text
