"""Tracing: an OpenTelemetry span for each stage of a turn, when the ``otel`` extra is installed.

Off by default and never sent anywhere by sayso itself: spans go to whatever
tracer provider the process configures (``SAYSO_OTEL=1`` turns spans on; the
OpenTelemetry SDK's usual environment variables, such as
``OTEL_EXPORTER_OTLP_ENDPOINT``, say where they go). Without the extra, or
when off, ``span`` costs a function call.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["enabled", "mark", "span"]

_tracer: Any = None


def enabled() -> bool:
    return os.environ.get("SAYSO_OTEL", "").lower() in ("1", "true", "yes")


def _get_tracer() -> Any:
    global _tracer
    if _tracer is None:
        try:
            from opentelemetry import trace
        except ImportError:
            _tracer = False
        else:
            _tracer = trace.get_tracer("sayso")
    return _tracer


@contextmanager
def span(name: str, **attributes: Any) -> Iterator[None]:
    """A span named ``sayso.<name>`` with plain attributes (ids, action names, statuses; never message text)."""
    tracer: Any = _get_tracer() if enabled() else None
    if not tracer:
        yield
        return
    with tracer.start_as_current_span(f"sayso.{name}") as current:
        for key, value in attributes.items():
            if isinstance(value, str | int | float | bool):
                current.set_attribute(f"sayso.{key}", value)
        yield


def mark(name: str) -> None:
    """An event on the current span (a stage starting), when tracing is on."""
    if not enabled() or not _get_tracer():
        return
    from opentelemetry import trace

    trace.get_current_span().add_event(f"sayso.{name}")
