"""The offline interpreter's weights: one frozen structure, changed by ``key=value`` for sweeps."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from sayso.demo.catalog import catalog
from sayso.directory import Person
from sayso.errors import ConfigurationError
from sayso.interpreter import Context
from sayso.interpreter.offline import OfflineInterpreter
from sayso.interpreter.offline.weights import DEFAULT, Weights, assignments, keys

ALICE = Person(id="alice", name="Alice", role="sales_rep", timezone="UTC")
NOW = datetime(2026, 11, 25, 9, tzinfo=UTC)


def test_weights_are_frozen_and_changed_only_by_copy() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT.min_score = 2.0  # type: ignore[misc]
    changed = DEFAULT.with_("min_score=1.4", "evidence.choice=2.5", "ranked=5")
    assert (changed.min_score, changed.evidence["choice"], changed.ranked) == (1.4, 2.5, 5)
    assert isinstance(changed.ranked, int)
    assert (DEFAULT.min_score, DEFAULT.evidence["choice"]) == (1.2, 2.0)
    assert changed.changed() == {"min_score": 1.4, "evidence.choice": 2.5, "ranked": 5}
    assert DEFAULT.changed() == {} and Weights() == DEFAULT
    with pytest.raises(TypeError):
        changed.evidence["choice"] = 0.0  # type: ignore[index]


def test_every_key_can_be_set_and_unknown_or_malformed_ones_are_refused() -> None:
    for key in keys():
        assert _value(DEFAULT.with_(f"{key}=7"), key) == 7 and _value(DEFAULT, key) != 7
    for bad, said in (("min_scor=1", "no weight 'min_scor'"), ("evidence.colour=1", "no evidence weight"),
                      ("min_score", "key=number"), ("min_score=high", "key=number")):
        with pytest.raises(ConfigurationError, match=said):
            assignments([bad])


def _value(weights: Weights, key: str) -> float:
    if key.startswith("evidence."):
        return weights.evidence[key.split(".", 1)[1]]
    value: float = getattr(weights, key)
    return value


def test_the_interpreter_decides_with_the_weights_it_is_given() -> None:
    context = Context(now=NOW)
    said = "list my deals"
    plain = OfflineInterpreter().interpret(said, context, catalog, ALICE)
    assert plain.kind == "plan" and plain.steps[0].action == "crm.find_deals"
    for strict in (OfflineInterpreter(weights=DEFAULT.with_("min_score=1000")),
                   OfflineInterpreter({"weights": {"min_score": 1000}})):
        assert strict.interpret(said, context, catalog, ALICE).kind == "none"
    # confidence is total / (total + confidence_scale): a larger scale, a lower confidence for the same plan
    doubting = OfflineInterpreter(weights=DEFAULT.with_("confidence_scale=20")).interpret(said, context, catalog, ALICE)
    assert doubting.steps[0].action == "crm.find_deals" and doubting.steps[0].confidence < plain.steps[0].confidence
