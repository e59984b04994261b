"""Weights: every number the offline interpreter decides with, in one frozen place.

Two stages use them. ``arguments`` scores how well a message's pieces fit one
action (``evidence`` per kind of piece taken, bonuses for a record id of the
right kind, a penalty per word nothing explains); ``OfflineInterpreter``
ranks actions by words plus that evidence, leans reads toward questions and
writes toward commands, and asks when the best is too weak or too close.

Benches sweep them without touching code: ``Weights().with_("min_score=1.4",
"evidence.choice=2.5")`` (the ``--weights key=value`` option of ``bench/sgd.py``
and ``sayso eval``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ...errors import ConfigurationError

__all__ = ["DEFAULT", "Weights", "assignments", "keys"]

_EVIDENCE: Mapping[str, float] = MappingProxyType({
    "choice": 2.0, "id": 1.0, "channel": 3.0, "relation": 1.0, "reference": 0.5, "date": 0.6, "datetime": 0.8,
    "time": 0.5, "range": 1.0, "money": 1.0, "number": 0.3, "duration": 0.6, "email": 0.8, "person": 0.5,
    "self": 0.2, "mine": 0.3, "text": 0.6, "title": 0.6, "chunk": 0.15,
})


@dataclass(frozen=True)
class Weights:
    """The offline interpreter's weights and thresholds (defaults: today's tuned values)."""

    # --- arguments: how well the pieces of a message fit one action ---
    evidence: Mapping[str, float] = field(default_factory=lambda: _EVIDENCE)  # per kind of piece taken
    own_id: float = 1.5  # an id in the format of the parameter's kind of record ("SUP-17" for a ticket)
    foreign_id: float = -50.0  # an id of another kind of record: this cannot be the action
    reference_fits: float = 1.0  # "it", "the first one" of a kind the action takes
    reference_misfits: float = -1.0  # ... of a kind it does not take ("close the first one" of tickets)
    focus_record: float = 0.5  # a required record filled from the record in focus
    latest_limit: float = 1.0  # "the last 5 notes" fills a limit
    read_named_param: float = 0.7  # a read whose filter is named without a value asks about the record instead
    earned: float = 0.5  # per required argument said in the message
    unexplained: float = 0.8  # per content word nothing explains

    # --- choosing the action ---
    min_score: float = 1.2  # words below this are not about any action
    choice_names_action: float = 0.5  # an enum value of the action's said ("anything in prospecting?")
    pending_confidence: float = 0.3  # more arguments for the action under way
    follow_confidence: float = 0.5  # "and devi's?": the last read again
    follow_ceiling: float = 3.0  # ... unless the words name an action this many min_scores strong
    ranked: int = 8  # actions whose arguments are tried at most
    ranked_always: int = 3  # ... of which always this many
    ranked_floor: float = 0.3  # ... and the rest only within this share of the best words
    missing: float = 0.4  # per required argument missing
    continue_pending: float = 1.5  # the action under way goes on unless the words say otherwise
    continue_pending_said: float = 0.5  # ... and this much when the words name a verb or a search
    accept_offer: float = 2.0  # "that one sounds good" after a read was answered: the write that follows it
    write_imperative: float = 1.0  # a command leans to writes
    write_question: float = -1.5  # a question leans away from them
    write_asking: float = -4.0  # a wh-question never writes ("what did I send to carol?")
    read_question: float = 1.5  # a question leans to reads
    read_seeking: float = 0.5  # ... and so does "find ..." without a verb that changes anything
    read_imperative: float = -0.8  # a command leans away from them
    write_unchosen: float = -2.0  # a write missing what it acts on, asked of indefinitely ("some music")
    write_unsaid: float = -1.0  # ... or asked of without a verb that looks or changes ("I want to go to a concert")
    weak_evidence: float = 1.5  # arguments weaker than this do not rescue weak words
    unexplained_floor: int = 3  # a read with this many unexplained words...
    unexplained_ratio: float = 2.0  # ... this many times the explained ones...
    unexplained_words: float = 2.0  # ... and words under this many min_scores is about something else
    alternative_share: float = 0.75  # actions within this share of the best are alternatives
    close_share: float = 0.97  # ... within this share are too close to pick between
    confidence_scale: float = 2.0  # confidence = total / (total + this)

    def with_(self, *said: str) -> Weights:
        """A copy with ``key=value`` assignments applied ("min_score=1.4", "evidence.choice=2.5")."""
        return self.replaced(assignments(said))

    def replaced(self, changes: Mapping[str, float]) -> Weights:
        names = {f.name: f for f in dataclasses.fields(self)}
        evidence = dict(self.evidence)
        plain: dict[str, Any] = {}
        for key, value in changes.items():
            if key.startswith("evidence."):
                kind = key.split(".", 1)[1]
                if kind not in evidence:
                    raise ConfigurationError(f"no evidence weight {kind!r}; known: {', '.join(sorted(evidence))}")
                evidence[kind] = value
            elif key in names and key != "evidence":
                plain[key] = int(value) if names[key].type == "int" else value
            else:
                raise ConfigurationError(f"no weight {key!r}; known: {', '.join(sorted(keys()))}")
        return dataclasses.replace(self, evidence=MappingProxyType(evidence), **plain)

    def changed(self) -> dict[str, float]:
        """The weights that differ from the defaults, as ``key: value``."""
        now, base = _flat(self), _flat(DEFAULT)
        return {k: v for k, v in now.items() if base.get(k) != v}


def assignments(said: Iterable[str]) -> dict[str, float]:
    """``["min_score=1.4"]`` as ``{"min_score": 1.4}`` (checked against the weights that exist)."""
    changes = dict(_parse(a) for a in said)
    DEFAULT.replaced(changes)
    return changes


def keys() -> Iterable[str]:
    """Every weight's key, as ``with_`` takes it."""
    return _flat(DEFAULT).keys()


def _flat(weights: Weights) -> dict[str, float]:
    out: dict[str, float] = {}
    for f in dataclasses.fields(weights):
        if f.name == "evidence":
            out.update({f"evidence.{k}": v for k, v in weights.evidence.items()})
        else:
            out[f.name] = getattr(weights, f.name)
    return out


def _parse(assignment: str) -> tuple[str, float]:
    key, sep, value = assignment.partition("=")
    try:
        if not sep:
            raise ValueError
        return key.strip(), float(value)
    except ValueError:
        raise ConfigurationError(f"a weight is set as key=number, not {assignment!r}") from None


DEFAULT = Weights()
