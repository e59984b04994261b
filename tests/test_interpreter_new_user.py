"""What a new user says on the demo, over many generated phrasings (offline interpreter), and the same
mechanisms on a catalog of another shape.

- A verb of work on a record that exists ("assign", "reassign", "give ... to", "hand") with a thing named
  indefinitely ("a ticket") asks which one; it makes nothing new unless the thing is given to someone ("give devi a
  task") or said to be about something.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

import sayso
from sayso.catalog import Catalog
from sayso.clock import parse_time
from sayso.demo.catalog import catalog as demo
from sayso.directory import Directory
from sayso.interpreter import Context, Interpretation
from sayso.interpreter.offline import OfflineInterpreter

from .conftest import demo_catalog_with

DIRECTORY = Directory.load(Path(sayso.__file__).resolve().parent / "demo" / "files" / "directory.yaml")
ALICE = DIRECTORY.get("alice")
NOW = parse_time("2026-11-25T09:00", ALICE.timezone)
INTERPRETER = OfflineInterpreter()

# A field-service company's jobs: other names, other parameters, the same shapes (make, change, find).
JOBS = """\
actions:
  - name: jobs.create_job
    description: Create a job for a technician.
    kind: write
    connector: tickets
    operation: create
    risk: low
    params:
      summary: {type: string, required: true, description: "What the job is"}
      technician: {type: string, person: true, description: "Who does it"}
  - name: jobs.update_job
    description: Change a job's technician or state.
    kind: write
    connector: tickets
    operation: update
    risk: medium
    params:
      job: {type: string, required: true, record: Ticket, description: "The job"}
      technician: {type: string, person: true, description: "Who does it"}
      state: {type: string, enum: [waiting, done], description: "Where the job is"}
  - name: jobs.find_jobs
    description: Find jobs by technician or state.
    kind: read
    connector: tickets
    operation: find
    risk: none
    params:
      technician: {type: string, person: true, description: "Who does it"}
      state: {type: string, enum: [waiting, done], description: "Where the job is"}
"""


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    return demo_catalog_with(tmp_path_factory.mktemp("jobs") / "ws", "jobs.yaml", JOBS)


def _interpret(text: str, catalog: Catalog = demo, context: Context | None = None) -> Interpretation:
    return INTERPRETER.interpret(text, context or Context(now=NOW, directory=DIRECTORY), catalog, ALICE)


def _actions(found: Interpretation) -> list[str]:
    return [s.action for s in found.steps]


# --- a verb of work on an existing record, with a thing named indefinitely -------------------------------------

LEADS = ["", "please ", "can you ", "I need to "]
EXISTING = [f"{lead}{verb} {thing} to {who}" for lead, verb, thing, who in itertools.product(
    LEADS, ["assign", "reassign", "give", "hand"], ["a ticket", "a task", "a follow-up"], ["devi", "sam"])]


def test_enough_existing_record_phrasings_are_generated() -> None:
    assert len(EXISTING) >= 90 and len(set(EXISTING)) == len(EXISTING)


@pytest.mark.parametrize("text", EXISTING)
def test_an_existing_record_verb_with_an_indefinite_thing_asks_which_one(text: str) -> None:
    found = _interpret(text)
    assert found.kind == "question" and _actions(found) == ["tickets.update"], (text, found)
    assert found.param == "ticket", (text, found)
    assert found.steps[0].args.get("assignee") in ("devi", "sam"), (text, found)


@pytest.mark.parametrize("text", ["give devi a task to call Lena", "give sam a follow-up to check the export",
                                  "hand bob a task to call Grace tomorrow", "create a ticket and assign it to devi",
                                  "add a task for devi to call Lena"])
def test_a_thing_given_to_someone_or_said_to_be_made_is_made(text: str) -> None:
    assert _actions(_interpret(text))[:1] == ["tickets.create"], text


@pytest.mark.parametrize("text", [f"{lead}{verb} a job to {who}" for lead, verb, who in itertools.product(
    ["", "please ", "could you "], ["assign", "reassign", "give", "hand"], ["devi", "sam"])])
def test_the_same_on_another_catalog(jobs: Catalog, text: str) -> None:
    found = _interpret(text, jobs)
    assert found.kind == "question" and _actions(found) == ["jobs.update_job"], (text, found)
    assert found.param == "job", (text, found)


def test_making_one_on_another_catalog_still_makes(jobs: Catalog) -> None:
    assert _actions(_interpret("give devi a job to fix the boiler", jobs))[:1] == ["jobs.create_job"]
