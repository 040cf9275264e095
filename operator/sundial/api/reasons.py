"""Why a ScheduledDeployment cannot be scheduled: one CamelCase reason and a message a person can act on.

Notes
-----
A user's mistake is a status, not an exception that requeues forever. The pure modules raise `SpecError`
internally (it keeps their signatures simple) and `sundial.decide.validation.validate` turns it into an
`Invalid` value, which the operator writes into the ``Ready`` and ``Scheduled`` conditions and ``sundial
preview`` prints. Every message names the field, says what is wrong and suggests what to write instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Reason(StrEnum):
    """The reasons for bad input; each is used verbatim as a condition ``reason``."""

    INVALID_TIME_ZONE = "InvalidTimeZone"
    INVALID_SCHEDULE = "InvalidSchedule"
    INVALID_RUN_AT = "InvalidRunAt"
    NONEXISTENT_LOCAL_TIME = "NonexistentLocalTime"
    AMBIGUOUS_LOCAL_TIME = "AmbiguousLocalTime"
    DEPENDENCY_NOT_FOUND = "DependencyNotFound"
    DEPENDENCY_CYCLE = "DependencyCycle"
    RUN_AT_IN_PAST = "RunAtInPast"
    INVALID_SPEC = "InvalidSpec"
    INVALID_PATCH = "InvalidPatch"
    INVALID_FREEZE_WINDOW = "InvalidFreezeWindow"
    INVALID_CALENDAR = "InvalidCalendar"
    CALENDAR_NOT_FOUND = "CalendarNotFound"


@dataclass(frozen=True)
class Invalid:
    """A verdict that an object cannot be scheduled as written."""

    reason: Reason
    """The condition reason, one CamelCase word."""

    message: str
    """What is wrong and what to change, as a sentence."""


class SpecError(ValueError):
    """Raised by the pure modules when a spec cannot be scheduled; carries the `Invalid` verdict."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.invalid = Invalid(reason, message)
