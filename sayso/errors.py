"""One error hierarchy for sayso, split by whose fault it is.

    SaysoError                        code, message; exit_code and http_status by branch
    ├── RequestError                  the user's request is invalid (exit 2, HTTP 4xx)
    │   ├── InvalidArguments          400 invalid_arguments
    │   ├── UnknownAction             404 unknown_action
    │   ├── UnknownUser               404 unknown_user
    │   ├── UnknownRecord             404 unknown_record
    │   ├── UnknownConversation       404 conversation_unknown (missing or another person's)
    │   ├── InputTooLarge             413 input_too_large
    │   ├── ConfirmationError         409 confirmation_used/_expired; 404 confirmation_unknown/_not_yours
    │   ├── ApprovalLinkInvalid       403 approval_link_invalid (a forged or altered approval link)
    │   ├── Unauthorized              401 unauthorized
    │   ├── RateLimited               429 rate_limited
    │   └── IdempotencyConflict       422 idempotency_key_reused
    ├── ConfigurationError            the workspace is wrong (exit 3, HTTP 500)
    │   └── WorkspaceError            workspace_invalid: a file, a line, a problem
    └── SystemFailure                 a system behind sayso failed (exit 4, HTTP 502)
        └── ConnectorError            connector_failed

Only ``RequestError`` and ``ConfigurationError`` end a turn with status ``error``;
a ``SystemFailure`` during execution ends it as ``failed`` with the steps that ran.
``exit_code`` and ``http_status`` are the single mapping used by the CLI and HTTP; the functions
:func:`exit_code` and :func:`http_status` give them for a code alone (a turn's ``error`` carries only its code).
"""

from __future__ import annotations

__all__ = [
    "ApprovalLinkInvalid",
    "ConfigurationError",
    "ConfirmationError",
    "ConnectorError",
    "IdempotencyConflict",
    "InputTooLarge",
    "InvalidArguments",
    "RateLimited",
    "RequestError",
    "SaysoError",
    "SystemFailure",
    "Unauthorized",
    "UnknownAction",
    "UnknownConversation",
    "UnknownRecord",
    "UnknownUser",
    "WorkspaceError",
    "exit_code",
    "http_status",
]


class SaysoError(Exception):
    """Base of every error sayso raises on purpose."""

    code = "error"
    exit_code = 1
    http_status = 500

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class RequestError(SaysoError):
    """The request itself is invalid; nothing was changed."""

    code = "invalid_request"
    exit_code = 2
    http_status = 400


class InvalidArguments(RequestError):
    code = "invalid_arguments"
    http_status = 400


class UnknownAction(RequestError):
    code = "unknown_action"
    http_status = 404


class UnknownUser(RequestError):
    code = "unknown_user"
    http_status = 404


class UnknownRecord(RequestError):
    code = "unknown_record"
    http_status = 404


class UnknownConversation(RequestError):
    """No such conversation, or another person's (both look the same, on purpose)."""

    code = "conversation_unknown"
    http_status = 404


class InputTooLarge(RequestError):
    code = "input_too_large"
    http_status = 413


class ConfirmationError(RequestError):
    """A confirmation that is unknown, expired, already used or not the caller's."""

    code = "confirmation_invalid"
    http_status = 409
    # The codes it is raised with; over HTTP, another person's confirmation is as missing as an unknown one.
    STATUSES = {"confirmation_unknown": 404, "confirmation_not_yours": 404, "confirmation_used": 409,
                "confirmation_expired": 409}

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.http_status = self.STATUSES.get(self.code, type(self).http_status)


class ApprovalLinkInvalid(RequestError):
    """An approval link sayso did not sign for that confirmation as it is now (forged, or altered)."""

    code = "approval_link_invalid"
    http_status = 403


class Unauthorized(RequestError):
    """No valid credentials: missing, malformed, unknown, expired or revoked (all alike, on purpose)."""

    code = "unauthorized"
    http_status = 401


class RateLimited(RequestError):
    code = "rate_limited"
    http_status = 429


class IdempotencyConflict(RequestError):
    """An Idempotency-Key already used with a different request."""

    code = "idempotency_key_reused"
    http_status = 422


class ConfigurationError(SaysoError):
    """The workspace or the deployment is misconfigured."""

    code = "configuration_error"
    exit_code = 3
    http_status = 500


class WorkspaceError(ConfigurationError):
    """A workspace file is malformed; names the file and line when known."""

    code = "workspace_invalid"

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None) -> None:
        where = file if file is None or line is None else f"{file}:{line}"
        super().__init__(f"{where}: {message}" if where else message)
        self.file = file
        self.line = line


class SystemFailure(SaysoError):
    """A system behind sayso failed or could not be reached."""

    code = "system_failure"
    exit_code = 4
    http_status = 502


class ConnectorError(SystemFailure):
    code = "connector_failed"


class OutcomeUnknown(ConnectorError):
    """A write was cut off after it was sent (a dropped connection, a timeout): the system may or may not
    have applied it, and cannot be asked. The step becomes ``outcome_unknown``, surfaced, never retried."""

    code = "outcome_unknown"


def _classes() -> list[type[SaysoError]]:
    """Every error class, each before its subclasses."""
    found: list[type[SaysoError]] = []
    pending: list[type[SaysoError]] = [SaysoError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def http_status(code: str) -> int:
    """The HTTP status of an error code, from the class that owns it (400 for a code no class names)."""
    statuses: dict[str, int] = dict(ConfirmationError.STATUSES)
    for cls in _classes():
        statuses.setdefault(cls.code, cls.http_status)
    return statuses.get(code, 400)


def exit_code(code: str) -> int:
    """The CLI exit status of an error code, from the class that owns it (2, a request error, for a code no
    class names: those are raised as ``RequestError(..., code=...)``)."""
    codes = dict.fromkeys(ConfirmationError.STATUSES, ConfirmationError.exit_code)
    for cls in _classes():
        codes.setdefault(cls.code, cls.exit_code)
    return codes.get(code, RequestError.exit_code)
