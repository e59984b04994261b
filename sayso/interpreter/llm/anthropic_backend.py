"""The Anthropic Messages API backend.

The official ``anthropic`` client (``sayso[anthropic]``) does the HTTP; this
module shapes the request (``system`` at the top level, tools with an
``input_schema``), reads the text and ``tool_use`` blocks of the reply, and
turns every failure into ``ModelUnavailable`` naming the server, never the key.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any, Literal

from ...errors import ConfigurationError
from ._http import display_url, explain
from .backend import Message, ModelReply, ModelUnavailable, ToolCall, ToolSpec

if TYPE_CHECKING:
    import anthropic

__all__ = ["AnthropicBackend"]

# Passed when no key is set so the client never goes looking for profiles on disk; the server answers 401.
_NO_KEY = "sayso-no-key"


class AnthropicBackend:
    """One Messages API call with tools."""

    name = "anthropic"

    def __init__(self, model: str, *, base_url: str | None = None, api_key: str | None = None,
                 timeout: float = 20.0, max_tokens: int = 1024) -> None:
        try:
            import anthropic
        except ImportError as exc:
            raise ConfigurationError(
                'the "anthropic" interpreter needs the Anthropic client: pip install "sayso[anthropic]"') from exc
        self._anthropic = anthropic
        self.model = model
        self.timeout = timeout
        self.max_tokens = max_tokens
        self._key = api_key or os.environ.get("ANTHROPIC_API_KEY") or _NO_KEY
        self._client: anthropic.Anthropic = anthropic.Anthropic(
            base_url=base_url, api_key=self._key, timeout=timeout, max_retries=0)
        self.server = display_url(str(self._client.base_url))

    def complete(self, system: str, messages: list[Message], tools: list[ToolSpec],
                 tool_choice: Literal["auto", "none"] = "auto") -> ModelReply:
        request: dict[str, Any] = {
            "model": self.model,
            "max_tokens": self.max_tokens,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
        }
        if system:  # the API refuses an empty system text
            request["system"] = system
        if tools:
            request["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": t.parameters} for t in tools
            ]
            request["tool_choice"] = {"type": tool_choice}
        try:
            response = self._client.messages.create(**request)
        except self._anthropic.APIError as exc:
            raise ModelUnavailable(self._explain(exc)) from None
        return self._reply(response)

    def close(self) -> None:
        """Close the client's connections."""
        self._client.close()

    def _reply(self, response: Any) -> ModelReply:
        try:
            if not isinstance(response.content, list):
                raise TypeError("no content blocks")
            texts: list[str] = []
            calls: list[ToolCall] = []
            for index, block in enumerate(response.content):
                if block.type == "text":
                    texts.append(block.text)
                elif block.type == "tool_use":
                    calls.append(_tool_call(index, block))
            usage = response.usage
            return ModelReply(
                text="".join(texts),
                tool_calls=calls,
                input_tokens=int(usage.input_tokens or 0) if usage else 0,
                output_tokens=int(usage.output_tokens or 0) if usage else 0,
                model=str(response.model or ""),
                stop_reason=str(response.stop_reason or ""),
                raw=response.model_dump(mode="json", warnings=False),  # odd shapes from lenient servers are kept
            )
        except (AttributeError, TypeError, ValueError) as exc:
            raise ModelUnavailable(f"{self.server} sent a reply that is not a message "
                                   f"({type(exc).__name__})") from None

    def _explain(self, exc: Exception) -> str:
        return explain(self._anthropic, exc, self.server, self.timeout, self._key)


def _tool_call(index: int, block: Any) -> ToolCall:
    """A ``tool_use`` block; its ``input`` should be an object, anything else is kept raw for the retry."""
    data = block.input
    raw = data if isinstance(data, str) else json.dumps(data)
    return ToolCall(
        id=str(block.id or f"toolu_{index}"),
        name=str(block.name),
        arguments=data if isinstance(data, dict) else None,
        raw_arguments=raw,
    )
