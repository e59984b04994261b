"""What a language-model backend does for sayso: one completion, with tools.

A backend turns a system prompt, a short text history and a list of tools
into the model's reply: its text and its tool calls, with token counts. It
knows one vendor's API and nothing about sayso's pipeline. Backends are
created by the model interpreter from the workspace's ``[interpreter]``
settings; the official clients are optional extras (``sayso[openai]``,
``sayso[anthropic]``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from ...errors import SystemFailure

__all__ = ["Backend", "Message", "ModelReply", "ModelUnavailable", "ToolCall", "ToolSpec", "api_name"]


class ModelUnavailable(SystemFailure):
    """The model did not answer: timeout, refused connection, server error, bad credentials."""

    code = "model_unavailable"


@dataclass(frozen=True)
class ToolSpec:
    """One catalog action offered to the model as a tool."""

    name: str  # valid for every API: [a-zA-Z0-9_-]{1,64}
    description: str
    parameters: dict[str, Any]  # JSON Schema of the arguments (an object)


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any] | None  # None when the model sent arguments that are not a JSON object
    raw_arguments: str = ""  # as the model sent them, for the audit and the retry message


@dataclass(frozen=True)
class Message:
    role: Literal["user", "assistant"]
    content: str


@dataclass
class ModelReply:
    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    model: str = ""  # as the server reports it
    stop_reason: str = ""
    raw: Any = None  # the response as JSON-ready data, for the audit


class Backend(Protocol):
    name: str  # "openai", "anthropic"
    model: str

    def complete(self, system: str, messages: list[Message], tools: list[ToolSpec],
                 tool_choice: Literal["auto", "none"] = "auto") -> ModelReply:
        """One model call. Raises ModelUnavailable when the model cannot be reached or fails."""


_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")


def api_name(action: str) -> str:
    """A tool name every API accepts for an action name: "crm.update_deal" -> "crm__update_deal"."""
    return _UNSAFE.sub("_", action.replace(".", "__"))[:64]
