"""Interpretation: a person's words become a proposal, never a decision.

An interpreter reads one message with the conversation's context and the
catalog, and proposes one of four things:

- ``plan``: one or more steps (an action and its arguments, as the person said
  them); reads are plans too;
- ``question``: a clarifying question with options (which action? which value?);
- ``none``: no action (small talk, out of scope, thanks, a person declining),
  with a short reply;
- ``reply``: a yes/no/choice that answers something pending in the conversation.

It never decides permissions and never executes: grounding, policy, guard,
confirmation and the executor do that, downstream, whatever it proposes.
Interpreters are plugins (entry point group ``sayso.interpreters``); the
built-in offline interpreter needs no model and no network.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from ..catalog import Catalog
from ..directory import Directory, Person
from ..plugins import PluginRegistry
from ..turn import Option

__all__ = [
    "Context",
    "FocusItem",
    "Interpretation",
    "Interpreter",
    "InterpreterRegistry",
    "ProposedStep",
    "registry",
]

Kind = Literal["plan", "question", "none", "reply"]


class FocusItem(BaseModel):
    """A record the conversation has been about, most recent first in ``Context.focus``."""

    type: str
    id: str
    title: str = ""
    attrs: dict[str, Any] = Field(default_factory=dict)


class Context(BaseModel):
    """What an interpreter may know besides the message: never text read from systems
    beyond the names and ids of records already shown."""

    now: datetime  # aware, in the person's time zone
    focus: list[FocusItem] = Field(default_factory=list)  # most recent first
    last_list: list[FocusItem] = Field(default_factory=list)  # the last read's records, in the order shown
    pending: Literal["confirmation", "clarification"] | None = None
    pending_param: str | None = None  # the argument a pending clarification asks for
    pending_action: str | None = None  # the action of the pending plan or of the last step
    pending_options: list[Option] = Field(default_factory=list)
    last_denied: dict[str, Any] | None = None  # {"action", "text", "rule", "reply"} of the last denial
    last_read: dict[str, Any] | None = None  # {"action", "args"} of the last read, for "which of those..."
    people: list[str] = Field(default_factory=list)  # people the conversation was about, most recent first
    history: list[dict[str, str]] = Field(default_factory=list)  # recent messages: {"role": user|assistant, "text"}
    tainted: bool = False  # the history holds text from systems (answers phrased from records)
    directory: Directory | None = Field(default=None, exclude=True)

    model_config = {"arbitrary_types_allowed": True}


class ProposedStep(BaseModel):
    """One step as understood: arguments are still the person's words (grounding resolves them)."""

    action: str
    args: dict[str, Any] = Field(default_factory=dict)
    mentions: dict[str, str] = Field(default_factory=dict)  # param -> the words it came from
    confidence: float = 0.0
    alternatives: list[str] = Field(default_factory=list)  # other actions that nearly matched


class Interpretation(BaseModel):
    kind: Kind
    steps: list[ProposedStep] = Field(default_factory=list)
    question: str | None = None
    param: str | None = None  # the argument a question asks for (None: which action)
    options: list[Option] = Field(default_factory=list)
    reply: str | None = None  # for ``none``: what to say
    reason: str | None = None  # none: smalltalk|thanks|decline|out_of_scope; reply: affirm|negate|choice
    value: str | None = None  # reply: the option chosen, or the answer to a pending question
    notice: str | None = None  # said to the person with the result (e.g. the model could not be reached)
    # none, reason condition|bulk: the steps proposed and withheld, for the pipeline to evaluate the condition
    # or find the records by reads (sayso/conditions.py, sayso/bulk.py); never run as they are.
    withheld: list[ProposedStep] = Field(default_factory=list)
    # Who the proposal comes from: the person's own words read deterministically, a model, or a model whose
    # context held text from systems. Writes from a model or untrusted context ask for confirmation.
    trust: Literal["person", "model", "untrusted"] = "person"
    interpreter: str = ""
    version: str = ""
    raw: Any = None  # what the interpreter produced before shaping, for the audit

    def audit(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


@runtime_checkable
class Interpreter(Protocol):
    name: str
    version: str

    def interpret(self, text: str, context: Context, catalog: Catalog, person: Person) -> Interpretation:
        """Propose what ``text`` asks for; must not touch any system."""


InterpreterFactory = Callable[[dict[str, Any]], Interpreter]

_DEFAULT_PLUGINS: Sequence[str] = ("sayso.interpreter.offline", "sayso.interpreter.llm")


class InterpreterRegistry(PluginRegistry[InterpreterFactory]):
    """Interpreters by name, from entry points (``sayso.interpreters``) on first use."""

    def __init__(self) -> None:
        super().__init__("sayso.interpreters", _DEFAULT_PLUGINS, "interpreter")

    def create(self, name: str, settings: dict[str, Any] | None = None) -> Interpreter:
        return self.factory(name)(settings or {})


registry = InterpreterRegistry()
