"""Pure helpers for ``status.conditions``, mirroring apimachinery's ``meta.SetStatusCondition``.

Notes
-----
The semantics follow ``k8s.io/apimachinery/pkg/api/meta/conditions.go``: a condition is found by
``type``; ``lastTransitionTime`` changes only when ``status`` flips (or the condition is new); reason,
message and observedGeneration are always updated. Unlike the Go function these helpers never mutate:
they return a new list, because the operator writes the whole list in one merge patch (a merge patch
replaces lists) and compares old and new to decide whether to patch at all. ``now`` is an argument.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum

from sundial.api.models import Condition, ConditionStatus
from sundial.api.reasons import Invalid


class ConditionType(StrEnum):
    """The condition types a ScheduledDeployment reports."""

    READY = "Ready"
    """The summary: True when the object is valid and nothing is wrong with its latest run."""

    SCHEDULED = "Scheduled"
    """The spec is valid and the next run is computed (False with the reason of bad input)."""

    DEPENDENCY_READY = "DependencyReady"
    """The dependency chain resolves and the dependency's run for the next run has not failed."""

    PROGRESSING = "Progressing"
    """A Job of this object is running."""

    SUCCEEDED = "Succeeded"
    """The latest run succeeded."""


def find_condition(conditions: Sequence[Condition], condition_type: str) -> Condition | None:
    """The condition of ``condition_type``, or None."""
    return next((condition for condition in conditions if condition.type == condition_type), None)


def set_condition(
    conditions: Sequence[Condition],
    condition_type: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    *,
    now: datetime,
    observed_generation: int | None,
) -> tuple[list[Condition], bool]:
    """Return ``conditions`` with one condition set, and whether anything changed.

    Order is kept; a new type is appended. ``lastTransitionTime`` becomes ``now`` only when the condition
    is new or its status flips.
    """
    now = now.replace(microsecond=0)  # metav1.Time has whole seconds; compare like with like
    updated: list[Condition] = []
    found = False
    changed = False
    for condition in conditions:
        if condition.type != condition_type:
            updated.append(condition)
            continue
        found = True
        flipped = condition.status != status
        new = condition.model_copy(
            update={
                "status": status,
                "reason": reason,
                "message": message,
                "observed_generation": observed_generation,
                "last_transition_time": now if flipped else condition.last_transition_time,
            }
        )
        changed = changed or new != condition
        updated.append(new)
    if not found:
        updated.append(
            Condition(
                type=condition_type,
                status=status,
                reason=reason,
                message=message,
                last_transition_time=now,
                observed_generation=observed_generation,
            )
        )
        changed = True
    return updated, changed


def mark_invalid(
    conditions: Sequence[Condition], invalid: Invalid, *, now: datetime, observed_generation: int | None
) -> tuple[list[Condition], bool]:
    """Set ``Scheduled`` and ``Ready`` to False with the reason and message of bad input."""
    changed_any = False
    updated = list(conditions)
    for condition_type in (ConditionType.SCHEDULED, ConditionType.READY):
        updated, changed = set_condition(
            updated,
            condition_type,
            ConditionStatus.FALSE,
            invalid.reason.value,
            invalid.message,
            now=now,
            observed_generation=observed_generation,
        )
        changed_any = changed_any or changed
    return updated, changed_any
