"""The OpenAI chat completions backend: OpenAI, Azure OpenAI and compatible servers.

Ollama, vLLM, llama.cpp and LM Studio speak the same API at their own base URL.
The official ``openai`` client (``sayso[openai]``) does the HTTP; this module
shapes the request, reads the reply and turns every failure into
``ModelUnavailable`` with a message that names the server, never the key.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any, Literal

from ...errors import ConfigurationError
from ._http import display_url, explain
from .backend import Message, ModelReply, ModelUnavailable, ToolCall, ToolSpec

if TYPE_CHECKING:
    import openai

__all__ = ["OpenAIBackend"]

# Local servers (Ollama, vLLM, LM Studio) want no key, but the client refuses to start without one.
_NO_KEY = "sayso-no-key"
_DEFAULT_AZURE_API_VERSION = "2024-10-21"


class OpenAIBackend:
    """One chat completion with tools against an OpenAI-compatible server."""

    name = "openai"

    def __init__(self, model: str, *, base_url: str | None = None, api_key: str | None = None,
                 timeout: float = 20.0, azure: dict[str, Any] | None = None, max_tokens: int = 1024) -> None:
        try:
            import openai
        except ImportError as exc:
            raise ConfigurationError(
                'the "openai" interpreter needs the OpenAI client: pip install "sayso[openai]"') from exc
        self._openai = openai
        self.model = model
        self.timeout = timeout
        self.max_tokens = max_tokens
        self._client: openai.OpenAI
        if azure is not None:
            endpoint, deployment = azure.get("endpoint"), azure.get("deployment")
            if not endpoint or not deployment:
                raise ConfigurationError("[interpreter] azure needs an endpoint and a deployment")
            api_version = str(azure.get("api_version") or os.environ.get("OPENAI_API_VERSION")
                              or _DEFAULT_AZURE_API_VERSION)
            self._key = api_key or os.environ.get("AZURE_OPENAI_API_KEY") or os.environ.get("OPENAI_API_KEY") or _NO_KEY
            self._client = openai.AzureOpenAI(
                azure_endpoint=str(endpoint), azure_deployment=str(deployment), api_version=api_version,
                api_key=self._key, timeout=timeout, max_retries=0)
            self.server = f"Azure OpenAI {display_url(str(endpoint))} (deployment {deployment})"
        else:
            self._key = api_key or os.environ.get("OPENAI_API_KEY") or _NO_KEY
            self._client = openai.OpenAI(base_url=base_url, api_key=self._key, timeout=timeout, max_retries=0)
            self.server = display_url(str(self._client.base_url))
        # OpenAI's own API deprecates max_tokens (reasoning models refuse it); compatible servers know only max_tokens.
        host = self._client.base_url.host
        self._limit_field = "max_completion_tokens" if host == "api.openai.com" else "max_tokens"

    def complete(self, system: str, messages: list[Message], tools: list[ToolSpec],
                 tool_choice: Literal["auto", "none"] = "auto") -> ModelReply:
        request: dict[str, Any] = {
            "model": self.model,
            "messages": ([{"role": "system", "content": system}] if system else [])
            + [{"role": m.role, "content": m.content} for m in messages],
            self._limit_field: self.max_tokens,
        }
        if tools:
            request["tools"] = [
                {"type": "function",
                 "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
                for t in tools
            ]
            request["tool_choice"] = tool_choice
        try:
            response = self._client.chat.completions.create(**request)
        except self._openai.APIError as exc:
            raise ModelUnavailable(self._explain(exc)) from None
        return self._reply(response)

    def close(self) -> None:
        """Close the client's connections."""
        self._client.close()

    def _reply(self, response: Any) -> ModelReply:
        try:
            message = response.choices[0].message
            calls = [
                _tool_call(index, call)
                for index, call in enumerate(message.tool_calls or [])
                if getattr(call, "type", "function") == "function"
            ]
            usage = response.usage
            return ModelReply(
                text=message.content or "",
                tool_calls=calls,
                input_tokens=int(usage.prompt_tokens or 0) if usage else 0,
                output_tokens=int(usage.completion_tokens or 0) if usage else 0,
                model=str(response.model or ""),
                stop_reason=str(response.choices[0].finish_reason or ""),
                raw=response.model_dump(mode="json", warnings=False),  # odd shapes from lenient servers are kept
            )
        except (AttributeError, IndexError, TypeError, ValueError) as exc:
            raise ModelUnavailable(f"{self.server} sent a reply that is not a chat completion "
                                   f"({type(exc).__name__})") from None

    def _explain(self, exc: Exception) -> str:
        return explain(self._openai, exc, self.server, self.timeout, self._key)


def _tool_call(index: int, call: Any) -> ToolCall:
    raw = call.function.arguments
    raw = raw if isinstance(raw, str) else json.dumps(raw)
    arguments: Any
    try:
        arguments = json.loads(raw) if raw.strip() else {}  # some servers send "" for a call without arguments
    except ValueError:
        arguments = None
    return ToolCall(
        id=str(call.id or f"call_{index}"),
        name=str(call.function.name),
        arguments=arguments if isinstance(arguments, dict) else None,
        raw_arguments=raw,
    )
