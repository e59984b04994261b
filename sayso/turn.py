"""What one turn returns: one status from one vocabulary, for CLI, HTTP and audit."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from .errors import SaysoError

__all__ = ["Option", "StepResult", "StepStatus", "TurnResult", "TurnStatus"]


class TurnStatus(StrEnum):
    EXECUTED = "executed"
    ANSWERED = "answered"
    NEEDS_CONFIRMATION = "needs_confirmation"
    NEEDS_CLARIFICATION = "needs_clarification"
    DENIED = "denied"
    CANCELLED = "cancelled"
    NO_ACTION = "no_action"
    FAILED = "failed"
    ERROR = "error"


class StepStatus(StrEnum):
    PENDING = "pending"
    EXECUTED = "executed"
    SKIPPED = "skipped"
    FAILED = "failed"
    OUTCOME_UNKNOWN = "outcome_unknown"
    UNDONE = "undone"


class Option(BaseModel):
    label: str
    value: str


class StepResult(BaseModel):
    action: str
    args: dict[str, Any]
    risk: str
    status: StepStatus
    effect: dict[str, Any] | None = None
    records: list[dict[str, Any]] | None = None
    error: str | None = None


class TurnResult(BaseModel):
    status: TurnStatus
    reply: str
    steps: list[StepResult] = Field(default_factory=list)
    confirmation: dict[str, Any] | None = None
    options: list[Option] | None = None
    question: dict[str, Any] | None = None  # what a clarification asks for: {"param": ..., "step": ...}
    rule: str | None = None
    error: dict[str, str] | None = None
    conversation: str | None = None
    turn: str | None = None

    @classmethod
    def from_error(cls, exc: SaysoError, **extra: Any) -> TurnResult:
        return cls(status=TurnStatus.ERROR, reply=exc.message, error=exc.as_dict(), **extra)

    def to_json(self) -> dict[str, Any]:
        """Top-level keys appear when they apply; every step has all its keys (null when empty)."""
        data = self.model_dump(mode="json", exclude_none=True)
        for step in data["steps"]:
            step.setdefault("effect", None)
            step.setdefault("records", None)
        return data
