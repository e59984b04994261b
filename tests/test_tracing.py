"""Spans for each stage of a turn, with the otel extra and SAYSO_OTEL=1; nothing without them."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("opentelemetry.sdk", reason="tracing needs its extra: pip install 'sayso[otel]'")

from opentelemetry import trace  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

from sayso import tracing  # noqa: E402
from sayso.conversation import Chat  # noqa: E402

from .conftest import pipeline_for  # noqa: E402

EXPORTER = InMemorySpanExporter()
PROVIDER = TracerProvider()
PROVIDER.add_span_processor(SimpleSpanProcessor(EXPORTER))


def test_a_turn_is_traced_stage_by_stage(sqlite_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAYSO_OTEL", "1")
    monkeypatch.setattr(tracing, "_tracer", PROVIDER.get_tracer("sayso"))
    EXPORTER.clear()
    chat = Chat(pipeline_for(sqlite_root, "alice"))
    result = chat.say("alice", "move the Brightwater deal to negotiation")
    assert result.status.value == "executed"
    spans = {s.name: s for s in EXPORTER.get_finished_spans()}
    assert {"sayso.turn", "sayso.interpret", "sayso.ground_and_decide", "sayso.execute"} <= set(spans)
    turn = spans["sayso.turn"]
    assert turn.attributes is not None and turn.attributes["sayso.user"] == "alice"
    assert spans["sayso.execute"].parent is not None
    events = [e.name for s in EXPORTER.get_finished_spans() for e in s.events]
    assert "sayso.grounding" in events and "sayso.executing" in events
    assert all("Brightwater" not in str(s.attributes) for s in EXPORTER.get_finished_spans())  # no message text


def test_no_spans_when_off(sqlite_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SAYSO_OTEL", raising=False)
    monkeypatch.setattr(tracing, "_tracer", PROVIDER.get_tracer("sayso"))
    EXPORTER.clear()
    Chat(pipeline_for(sqlite_root, "alice")).say("alice", "show my deals")
    assert EXPORTER.get_finished_spans() == ()
    assert trace.get_current_span().is_recording() is False
