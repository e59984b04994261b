"""The OpenAI and Anthropic backends against fake servers that answer in the documented formats."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import closing
from typing import Any

import anthropic
import openai
import pytest

from sayso.errors import ConfigurationError
from sayso.interpreter.llm.anthropic_backend import AnthropicBackend
from sayso.interpreter.llm.backend import Message, ModelUnavailable, ToolSpec
from sayso.interpreter.llm.openai_backend import OpenAIBackend

from .fake_models import (
    Call,
    FakeModelServer,
    Reply,
    anthropic_error,
    anthropic_response,
    openai_error,
    openai_response,
)

KEY = "sk-test-Zq8VnX3kLm0pR7sT"
FIND = ToolSpec("crm__find_deal", "Find deals by name.",
                {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]})
NOTE = ToolSpec("crm__add_note", "Add a note to a deal.",
                {"type": "object", "properties": {"deal": {"type": "string"}, "text": {"type": "string"}}})
HISTORY = [Message("user", "find Acme"), Message("assistant", "Which Acme?"), Message("user", "Acme Corp")]


def openai_backend(server: FakeModelServer, **options: Any) -> OpenAIBackend:
    return OpenAIBackend("gpt-4o-mini", base_url=server.openai_url, api_key=KEY, **options)


def anthropic_backend(server: FakeModelServer, **options: Any) -> AnthropicBackend:
    return AnthropicBackend("claude-test", base_url=server.url, api_key=KEY, **options)


AnyBackend = OpenAIBackend | AnthropicBackend
BACKENDS: dict[str, Callable[..., AnyBackend]] = {"openai": openai_backend, "anthropic": anthropic_backend}
CLASSES: dict[str, type[AnyBackend]] = {"openai": OpenAIBackend, "anthropic": AnthropicBackend}


@pytest.fixture(params=sorted(BACKENDS))
def vendor(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def no_vendor_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AZURE_OPENAI_API_KEY", "OPENAI_API_VERSION",
                 "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    yield


# --- the fake speaks the documented formats (checked against the official clients' types) ---

def test_fake_responses_match_the_official_types() -> None:
    reply = Reply(text="Looking.", calls=[Call("crm__find_deal", {"name": "Acme"}, id="call_1")])
    completion = openai.types.chat.ChatCompletion.model_validate(openai_response(reply, "gpt-4o-mini"))
    assert completion.object == "chat.completion"
    assert completion.choices[0].finish_reason == "tool_calls"
    assert completion.usage is not None and completion.usage.total_tokens == reply.input_tokens + reply.output_tokens
    message = anthropic.types.Message.model_validate(anthropic_response(reply, "claude-test"))
    assert message.type == "message" and message.stop_reason == "tool_use"
    assert [block.type for block in message.content] == ["text", "tool_use"]
    assert openai_error(401)["error"]["code"] == "invalid_api_key"
    assert anthropic_error(529)["error"]["type"] == "overloaded_error"


# --- replies are parsed ---

def test_openai_tool_call() -> None:
    reply = Reply(calls=[Call("crm__find_deal", {"name": "Acme"}, id="call_abc")], model="gpt-4o-mini-2024-07-18",
                  input_tokens=120, output_tokens=17)
    with FakeModelServer(reply) as server, closing(openai_backend(server)) as backend:
        answer = backend.complete("You are sayso.", HISTORY, [FIND, NOTE])
    assert answer.text == ""
    assert [(c.id, c.name, c.arguments) for c in answer.tool_calls] == [
        ("call_abc", "crm__find_deal", {"name": "Acme"})]
    assert answer.tool_calls[0].raw_arguments == '{"name": "Acme"}'
    assert (answer.input_tokens, answer.output_tokens) == (120, 17)
    assert answer.model == "gpt-4o-mini-2024-07-18"
    assert answer.stop_reason == "tool_calls"
    assert answer.raw["object"] == "chat.completion"
    assert answer.raw["choices"][0]["message"]["tool_calls"][0]["id"] == "call_abc"


def test_anthropic_tool_call() -> None:
    reply = Reply(text="I'll look that up.", calls=[Call("crm__find_deal", {"name": "Acme"}, id="toolu_01abc")],
                  model="claude-test-20250101", input_tokens=300, output_tokens=40)
    with FakeModelServer(reply) as server, closing(anthropic_backend(server)) as backend:
        answer = backend.complete("You are sayso.", HISTORY, [FIND, NOTE])
    assert answer.text == "I'll look that up."
    assert [(c.id, c.name, c.arguments) for c in answer.tool_calls] == [
        ("toolu_01abc", "crm__find_deal", {"name": "Acme"})]
    assert (answer.input_tokens, answer.output_tokens) == (300, 40)
    assert answer.model == "claude-test-20250101"
    assert answer.stop_reason == "tool_use"
    assert answer.raw["type"] == "message"
    assert answer.raw["content"][1]["type"] == "tool_use"


def test_plain_text(vendor: str) -> None:
    with FakeModelServer(Reply(text="Acme Corp has two open deals.")) as server, \
            closing(BACKENDS[vendor](server)) as backend:
        answer = backend.complete("You are sayso.", HISTORY, [FIND])
    assert answer.text == "Acme Corp has two open deals."
    assert answer.tool_calls == []
    assert answer.stop_reason == {"openai": "stop", "anthropic": "end_turn"}[vendor]


def test_several_tool_calls_in_order(vendor: str) -> None:
    calls = [Call("crm__find_deal", {"name": "Acme"}), Call("crm__add_note", {"deal": "D-1", "text": "called"})]
    with FakeModelServer(Reply(calls=calls)) as server, closing(BACKENDS[vendor](server)) as backend:
        answer = backend.complete("s", HISTORY, [FIND, NOTE])
    assert [(c.name, c.arguments) for c in answer.tool_calls] == [(c.name, c.arguments) for c in calls]
    ids = [c.id for c in answer.tool_calls]
    assert all(ids) and len(set(ids)) == 2


@pytest.mark.parametrize("raw", ['{"name": "Acme"', "not json", '["Acme"]', '"Acme"'])
def test_openai_arguments_that_are_not_an_object_are_kept_raw(raw: str) -> None:
    with FakeModelServer(Reply(calls=[Call("crm__find_deal", raw=raw)])) as server, \
            closing(openai_backend(server)) as backend:
        answer = backend.complete("s", HISTORY, [FIND])
    (call,) = answer.tool_calls
    assert call.name == "crm__find_deal"
    assert call.arguments is None
    assert call.raw_arguments == raw


def test_openai_empty_arguments_mean_no_arguments() -> None:
    with FakeModelServer(Reply(calls=[Call("crm__find_deal", raw="")])) as server, \
            closing(openai_backend(server)) as backend:
        (call,) = backend.complete("s", HISTORY, [FIND]).tool_calls
    assert call.arguments == {}


def test_anthropic_input_that_is_not_an_object_is_kept_raw() -> None:
    with FakeModelServer(Reply(calls=[Call("crm__find_deal", raw='{"name": "Acme"')])) as server, \
            closing(anthropic_backend(server)) as backend:
        (call,) = backend.complete("s", HISTORY, [FIND]).tool_calls
    assert call.arguments is None
    assert call.raw_arguments == '{"name": "Acme"'


@pytest.mark.parametrize("body", [{"unexpected": True}, {"choices": [], "content": None}, ["not", "an", "object"]])
def test_a_reply_in_the_wrong_shape_is_model_unavailable(vendor: str, body: Any) -> None:
    with FakeModelServer(Reply(body=body)) as server, closing(BACKENDS[vendor](server)) as backend:
        with pytest.raises(ModelUnavailable) as caught:
            backend.complete("s", HISTORY, [FIND])
    assert "127.0.0.1" in caught.value.message


# --- requests have the documented shape ---

def test_openai_request_shape() -> None:
    with FakeModelServer(Reply(text="ok")) as server, closing(openai_backend(server)) as backend:
        backend.complete("You are sayso.", HISTORY, [FIND, NOTE])
    (received,) = server.received
    assert received.path == "/v1/chat/completions"
    assert received.headers["authorization"] == f"Bearer {KEY}"
    body = received.body
    assert body["model"] == "gpt-4o-mini"
    assert body["messages"] == [
        {"role": "system", "content": "You are sayso."},
        {"role": "user", "content": "find Acme"},
        {"role": "assistant", "content": "Which Acme?"},
        {"role": "user", "content": "Acme Corp"},
    ]
    assert body["tools"] == [
        {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
        for t in (FIND, NOTE)
    ]
    assert body["tool_choice"] == "auto"
    assert body["max_tokens"] == 1024
    assert not body.get("stream")


def test_anthropic_request_shape() -> None:
    with FakeModelServer(Reply(text="ok")) as server, closing(anthropic_backend(server, max_tokens=512)) as backend:
        backend.complete("You are sayso.", HISTORY, [FIND, NOTE])
    (received,) = server.received
    assert received.path == "/v1/messages"
    assert "anthropic-version" in received.headers
    body = received.body
    assert body["model"] == "claude-test"
    assert body["system"] == "You are sayso."
    assert body["messages"] == [{"role": m.role, "content": m.content} for m in HISTORY]
    assert body["tools"] == [
        {"name": t.name, "description": t.description, "input_schema": t.parameters} for t in (FIND, NOTE)]
    assert body["tool_choice"] == {"type": "auto"}
    assert body["max_tokens"] == 512
    assert not body.get("stream")


def test_tool_choice_none_is_sent(vendor: str) -> None:
    with FakeModelServer(Reply(text="ok")) as server, closing(BACKENDS[vendor](server)) as backend:
        backend.complete("s", HISTORY, [FIND], tool_choice="none")
    assert server.requests[0]["tool_choice"] == {"openai": "none", "anthropic": {"type": "none"}}[vendor]


def test_tools_are_omitted_when_there_are_none(vendor: str) -> None:
    with FakeModelServer(Reply(text="Acme Corp has two open deals.")) as server, \
            closing(BACKENDS[vendor](server)) as backend:
        answer = backend.complete("Answer from the data blocks.", HISTORY, [])
    assert answer.text == "Acme Corp has two open deals."
    assert "tools" not in server.requests[0]
    assert "tool_choice" not in server.requests[0]


def test_every_request_is_recorded_and_answered_in_order(vendor: str) -> None:
    replies = [Reply(calls=[Call("crm__find_deal", raw="{")]), Reply(calls=[Call("crm__find_deal", {"name": "A"})])]
    with FakeModelServer(replies) as server, closing(BACKENDS[vendor](server)) as backend:
        first = backend.complete("s", [Message("user", "one")], [FIND])
        second = backend.complete("s", [Message("user", "two")], [FIND])
    assert first.tool_calls[0].arguments is None
    assert second.tool_calls[0].arguments == {"name": "A"}
    assert [r["messages"][-1]["content"] for r in server.requests] == ["one", "two"]


# --- failures become ModelUnavailable, without the key ---

@pytest.mark.parametrize("status", [500, 401, 429, 503])
def test_http_errors_are_model_unavailable(vendor: str, status: int) -> None:
    # OpenAI's real 401 message quotes part of the key; the backend must not pass it on.
    reply = Reply(status=status, error=f"Incorrect API key provided: {KEY}.")
    with FakeModelServer(reply) as server, closing(BACKENDS[vendor](server)) as backend:
        with pytest.raises(ModelUnavailable) as caught:
            backend.complete("s", HISTORY, [FIND])
    message = caught.value.message
    assert f"HTTP {status}" in message
    assert f"127.0.0.1:{server.port}" in message
    assert KEY not in message and KEY[:12] not in message and KEY[-8:] not in message
    assert caught.value.code == "model_unavailable"
    assert len(server.requests) == 1  # no retries inside the client: the interpreter decides


def test_a_refused_request_keeps_the_servers_reason(vendor: str) -> None:
    reply = Reply(status=400, error="registry.ollama.ai/library/gemma:2b does not support tools")
    with FakeModelServer(reply) as server, closing(BACKENDS[vendor](server)) as backend:
        with pytest.raises(ModelUnavailable, match="does not support tools"):
            backend.complete("s", HISTORY, [FIND])


def test_timeout_is_model_unavailable(vendor: str) -> None:
    with FakeModelServer(Reply(text="too late", delay=30)) as server, \
            closing(BACKENDS[vendor](server, timeout=0.2)) as backend:
        with pytest.raises(ModelUnavailable, match="did not answer") as caught:
            backend.complete("s", HISTORY, [FIND])
    assert KEY not in caught.value.message


def test_unreachable_server_is_model_unavailable(vendor: str) -> None:
    with FakeModelServer(Reply(text="never")) as server:
        port = server.port
    url = {"openai": f"http://127.0.0.1:{port}/v1", "anthropic": f"http://127.0.0.1:{port}"}[vendor]
    cls = CLASSES[vendor]
    with closing(cls("m", base_url=url, api_key=KEY, timeout=2)) as backend:
        with pytest.raises(ModelUnavailable, match="could not be reached") as caught:
            backend.complete("s", HISTORY, [FIND])
    assert KEY not in caught.value.message


# --- configuration ---

def test_azure_deployment_path_and_key_header(no_vendor_env: None) -> None:
    with FakeModelServer(Reply(calls=[Call("crm__find_deal", {"name": "Acme"})])) as server:
        azure = {"endpoint": server.azure_endpoint, "api_version": "2024-10-21", "deployment": "sayso-mini"}
        with closing(OpenAIBackend("gpt-4o-mini", azure=azure, api_key=KEY)) as backend:
            answer = backend.complete("s", HISTORY, [FIND])
    assert answer.tool_calls[0].arguments == {"name": "Acme"}
    (received,) = server.received
    assert received.api == "azure"
    assert received.path == "/openai/deployments/sayso-mini/chat/completions"
    assert received.query == "api-version=2024-10-21"
    assert received.headers["api-key"] == KEY
    assert received.body["messages"][0]["role"] == "system"


def test_azure_needs_endpoint_and_deployment() -> None:
    with pytest.raises(ConfigurationError, match="azure"):
        OpenAIBackend("gpt-4o-mini", azure={"api_version": "2024-10-21"}, api_key=KEY)


def test_keys_and_url_come_from_the_standard_variables(no_vendor_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env-0001")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-from-env-0002")
    with FakeModelServer(Reply(text="ok")) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.openai_url)
        with closing(OpenAIBackend("gpt-4o-mini")) as o, closing(AnthropicBackend("c", base_url=server.url)) as a:
            o.complete("s", HISTORY, [])
            a.complete("s", HISTORY, [])
    assert server.received[0].headers["authorization"] == "Bearer sk-from-env-0001"
    assert "sk-ant-from-env-0002" in str(server.received[1].headers)


def test_a_local_server_needs_no_key(no_vendor_env: None, vendor: str) -> None:
    cls = CLASSES[vendor]
    with FakeModelServer(Reply(text="ok")) as server:
        url = server.openai_url if vendor == "openai" else server.url
        with closing(cls("llama3.1", base_url=url)) as backend:
            assert backend.complete("s", HISTORY, []).text == "ok"


def test_a_missing_client_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openai", None)
    monkeypatch.setitem(sys.modules, "anthropic", None)
    with pytest.raises(ConfigurationError, match=r"sayso\[openai\]"):
        OpenAIBackend("gpt-4o-mini")
    with pytest.raises(ConfigurationError, match=r"sayso\[anthropic\]"):
        AnthropicBackend("claude-test")


def test_a_broken_script_fails_the_test_instead_of_passing_as_an_outage() -> None:
    def script(body: Any) -> Reply:
        raise KeyError("tools")

    with pytest.raises(KeyError):
        with FakeModelServer(script) as server, closing(openai_backend(server)) as backend:
            with pytest.raises(ModelUnavailable):
                backend.complete("s", HISTORY, [FIND])
