"""sayso: a conversational execution layer.

Requests become typed plans; policies decide who may do what; high-stakes
plans wait for an explicit confirmation; approved steps run exactly once in
the systems behind sayso; every turn leaves a tamper-evident record.
"""

from .audit import AuditEvent, AuditLog
from .catalog import Action, Catalog, RiskRule, Tier
from .clock import Clock
from .connectors import Change, Connector, Effect, Guarantee, Record
from .directory import Directory, Person
from .errors import (
    ConfigurationError,
    ConfirmationError,
    RequestError,
    SaysoError,
    SystemFailure,
)
from .pipeline import Pipeline, Request
from .policy import Decision, PolicyEngine
from .turn import StepResult, StepStatus, TurnResult, TurnStatus
from .workspace import Workspace

__all__ = [
    "Action",
    "AuditEvent",
    "AuditLog",
    "Catalog",
    "Change",
    "Clock",
    "ConfigurationError",
    "ConfirmationError",
    "Connector",
    "Decision",
    "Directory",
    "Effect",
    "Guarantee",
    "Person",
    "Pipeline",
    "PolicyEngine",
    "Record",
    "Request",
    "RequestError",
    "RiskRule",
    "SaysoError",
    "StepResult",
    "StepStatus",
    "SystemFailure",
    "Tier",
    "TurnResult",
    "TurnStatus",
    "Workspace",
]

__version__ = "0.1.0"
