"""The status to write: conditions as ``metav1.Condition`` and the fields ``kubectl get`` shows.

The conditions come from two sources. The run history (`Draft` records, the running Jobs) says what has
happened; the `Outlook` says what lies ahead and around (the next run, a dependency being waited for, a
missing service account). `reconcile` works out both; `record_outcomes` brings only the history up to date
and rebuilds the status from the same outlook.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo

from sundial.api.conditions import ConditionType, mark_invalid, set_condition
from sundial.api.freezes import FreezeAction
from sundial.api.models import (
    ActiveJob,
    Condition,
    ConditionStatus,
    RunRecord,
    RunResult,
    ScheduledDeploymentStatus,
)
from sundial.api.reasons import Invalid
from sundial.api.timestamps import format_utc
from sundial.decide.approvals import ApprovalVerdict
from sundial.decide.draft import Draft
from sundial.decide.events import describe
from sundial.decide.freezes import FROZEN, FreezeVerdict
from sundial.decide.gates import Gate
from sundial.decide.records import TERMINAL, kept_runs, last_fields
from sundial.decide.validation import Valid
from sundial.timing.occurrences import Occurrence

ConditionValue = tuple[ConditionStatus, str, str]
"""(status, reason, message) of one condition."""


@dataclass(frozen=True)
class Outlook:
    """What a valid object's status says beyond its run history: what lies ahead, and what it waits for."""

    generation: int | None
    """metadata.generation, for observedGeneration."""
    zone: tzinfo
    """The object's time zone, for the local times in messages."""
    scheduled: ConditionValue
    """The Scheduled condition: is there a next run, and if not, why not."""
    next_run: Occurrence | None
    """The next run that will start (not one a DST policy skips)."""
    upcoming: tuple[datetime, ...]
    """For a schedule, the next instants (status.upcoming)."""
    waiting: Gate | None
    """The dependency gate the due run waits at, if it waits."""
    chain: str | None
    """``api -> db`` for an object with dependsOn (DependencyReady is set); None without one."""
    missing_account: str | None
    """Why no run can start for want of its service account, if that is so."""
    next_freeze: FreezeVerdict | None = None
    """What a freeze will do to ``next_run``, as the freezes stand now."""
    next_approval: ApprovalVerdict | None = None
    """Whether ``next_run`` is approved, when its object (or the dependent it serves) requires approval."""


def outlook(
    me: Valid,
    coming: Sequence[Occurrence],
    waiting: Gate | None,
    generation: int | None,
    missing_account: str | None,
    freeze_of: Callable[[Occurrence], FreezeVerdict | None] = lambda run: None,
    approval_of: Callable[[Occurrence], ApprovalVerdict | None] = lambda run: None,
) -> Outlook:
    """The outlook of a valid object, from its next runs (``coming``, skipped ones included); ``freeze_of``
    says what the freezes do to a run at its instant."""
    next_run = next((run for run in coming if not run.skipped), None)
    next_freeze = freeze_of(next_run) if next_run is not None else None
    next_approval = approval_of(next_run) if next_run is not None else None
    chain = " -> ".join([me.name, *(link.name for link in me.timing.chain)])
    return Outlook(
        generation=generation,
        zone=me.timing.zone,
        scheduled=_scheduled_condition(me, waiting, next_run, coming, next_freeze, next_approval),
        next_run=next_run,
        upcoming=tuple(run.instant for run in coming if not run.skipped)
        if me.spec.schedule is not None
        else (),
        waiting=waiting,
        chain=chain if me.spec.depends_on is not None else None,
        missing_account=missing_account,
        next_freeze=next_freeze,
        next_approval=next_approval,
    )


def freeze_column(verdict: FreezeVerdict | None) -> str | None:
    """status.nextRunFreeze: ``Hold (ReleaseFreeze shop/year-end)``, ``Defer to 2027-01-04T07:00:00Z (…)``."""
    if verdict is None:
        return None
    what = "Hold" if verdict.action is FreezeAction.HOLD else f"Defer to {format_utc(verdict.until)}"
    return f"{what} ({verdict.freeze.ref})"


def approval_column(verdict: ApprovalVerdict | None) -> str | None:
    """status.nextRunApproval: ``Approved by alice (DeploymentApproval …)`` or ``Awaiting approval``."""
    if verdict is None:
        return None
    return "Awaiting approval" if verdict.approved is None else f"Approved by {verdict.approved.describe()}"


def valid_status(
    old: ScheduledDeploymentStatus, ahead: Outlook, draft: Draft, active: list[ActiveJob], now: datetime
) -> ScheduledDeploymentStatus:
    """The status of a valid object: its history from ``draft``, its conditions on top of ``old``'s."""
    runs = kept_runs(draft.records, draft.manual)
    latest = _latest_outcome(runs)
    succeeded = _succeeded_condition(latest)
    values: list[tuple[ConditionType, ConditionValue]] = [(ConditionType.SCHEDULED, ahead.scheduled)]
    if ahead.chain is not None:
        values.append((ConditionType.DEPENDENCY_READY, _dependency_condition(ahead, latest)))
    values += [
        (ConditionType.PROGRESSING, _progressing(active, ahead.waiting)),
        (ConditionType.SUCCEEDED, succeeded),
        (ConditionType.READY, _ready_condition(ahead, latest, active, succeeded)),
    ]
    conditions = [c for c in old.conditions if c.type != ConditionType.DEPENDENCY_READY or ahead.chain]
    for kind, value in values:
        conditions = with_condition(conditions, kind, value, now, ahead.generation)
    next_run = ahead.next_run
    return ScheduledDeploymentStatus(
        observed_generation=ahead.generation,
        conditions=ordered(conditions),
        next_run_time=next_run.instant if next_run else None,
        next_run_local_time=next_run.local if next_run else None,
        next_dependency_run_time=next_run.dependency_time if next_run else None,
        next_run_freeze=freeze_column(ahead.next_freeze),
        next_run_approval=approval_column(ahead.next_approval),
        active=active,
        runs=runs,
        upcoming=list(ahead.upcoming),
        last_trigger=draft.last_trigger,
        **last_fields(runs),
    )


def invalid_status(
    old: ScheduledDeploymentStatus,
    invalid: Invalid,
    draft: Draft,
    active: list[ActiveJob],
    now: datetime,
    generation: int | None,
) -> ScheduledDeploymentStatus:
    """The status of an invalid object: Ready=False with the reason; the history and running Jobs kept."""
    runs = kept_runs(draft.records, draft.manual)
    conditions, _ = mark_invalid(old.conditions, invalid, now=now, observed_generation=generation)
    conditions = with_condition(
        conditions, ConditionType.PROGRESSING, _progressing(active, None), now, generation
    )
    return ScheduledDeploymentStatus(
        observed_generation=generation,
        conditions=ordered(conditions),
        active=active,
        runs=runs,
        last_trigger=draft.last_trigger,
        **last_fields(runs),
    )


def with_condition(
    conditions: list[Condition],
    kind: ConditionType,
    value: ConditionValue,
    now: datetime,
    generation: int | None,
) -> list[Condition]:
    """``conditions`` with ``kind`` set to ``value``; lastTransitionTime moves only if its status does."""
    updated, _ = set_condition(conditions, kind, *value, now=now, observed_generation=generation)
    return updated


_ORDER = [
    ConditionType.READY,
    ConditionType.SCHEDULED,
    ConditionType.DEPENDENCY_READY,
    ConditionType.PROGRESSING,
    ConditionType.SUCCEEDED,
]


def ordered(conditions: list[Condition]) -> list[Condition]:
    """The conditions in a fixed order, Ready first, so that the status compares equal when at rest."""
    rank = {kind.value: index for index, kind in enumerate(_ORDER)}
    return sorted(conditions, key=lambda condition: rank.get(condition.type, len(rank)))


def _progressing(active: Sequence[ActiveJob], waiting: Gate | None) -> ConditionValue:
    if active:
        names = ", ".join(job.name for job in active)
        return ConditionStatus.TRUE, "JobRunning", f"Job {names} is running"
    if waiting is not None:
        return ConditionStatus.TRUE, waiting.reason, waiting.message
    return ConditionStatus.FALSE, "Idle", "no Job of this object is running"


def _latest_outcome(runs: Sequence[RunRecord]) -> RunRecord | None:
    finished = [run for run in runs if run.result in TERMINAL]
    return finished[-1] if finished else None


def _scheduled_condition(
    me: Valid,
    waiting: Gate | None,
    next_run: Occurrence | None,
    coming: Sequence[Occurrence],
    next_freeze: FreezeVerdict | None,
    next_approval: ApprovalVerdict | None,
) -> ConditionValue:
    """Is there a next run, and if not, why not."""
    if me.spec.suspend:
        return (
            ConditionStatus.FALSE,
            "Suspended",
            "spec.suspend is true: runs that fall due are recorded as skipped and never made up later; "
            "set suspend: false to resume",
        )
    if waiting is not None:
        return ConditionStatus.TRUE, waiting.reason, waiting.message
    if next_run is not None:
        message = f"next run at {describe(next_run.instant, me.timing.zone)}"
        if next_freeze is not None:
            effect = "it will be held" if next_freeze.action is FreezeAction.HOLD else "it will wait"
            message += f"; it falls in {next_freeze.freeze.ref} ({next_freeze.freeze.reason}): {effect}"
            if next_freeze.action is FreezeAction.DEFER:
                message += f" until {format_utc(next_freeze.until)}"
        if next_approval is not None and next_approval.approved is None:
            when = format_utc(next_approval.instant)
            message += f"; it needs approval: kubectl sundial approve {next_approval.needed_for} --run {when}"
        elif next_approval is not None and next_approval.approved is not None:
            message += f"; approved by {next_approval.approved.describe()}"
        return ConditionStatus.TRUE, "Armed", message
    if me.timing.when is None:
        return (
            ConditionStatus.FALSE,
            "NoUpcomingRuns",
            "this object has no runAt or schedule of its own and no other object depends on it with an "
            "upcoming run",
        )
    skipped = next((run for run in coming if run.skipped), None)
    if skipped is not None:
        # The instant is still ahead, so "Completed" would be untrue; say what will happen to it instead.
        why = "; ".join(skipped.notes) or "dstPolicy skips it"
        return (
            ConditionStatus.FALSE,
            "SkippedByDstPolicy",
            f"the only upcoming run, at {describe(skipped.instant, me.timing.zone)}, will be recorded as "
            f"skipped ({why}); nothing more will run",
        )
    return ConditionStatus.FALSE, "Completed", "every scheduled run is in the past; nothing more will run"


def _dependency_condition(ahead: Outlook, latest: RunRecord | None) -> ConditionValue:
    if ahead.waiting is not None:
        return ConditionStatus.UNKNOWN, ahead.waiting.reason, ahead.waiting.message
    if latest is not None and latest.result is RunResult.HELD and latest.reason != FROZEN:
        return ConditionStatus.FALSE, latest.reason or "DependencyFailed", latest.message or ""
    return ConditionStatus.TRUE, "DependencyResolved", f"dependency chain {ahead.chain} resolves"


def _succeeded_condition(latest: RunRecord | None) -> ConditionValue:
    if latest is None:
        return ConditionStatus.UNKNOWN, "NoRunYet", "no run has finished yet"
    when = format_utc(latest.scheduled_time)
    if latest.result is RunResult.SUCCEEDED:
        return ConditionStatus.TRUE, "JobSucceeded", f"the run for {when} succeeded (Job {latest.job_name})"
    return (
        ConditionStatus.FALSE,
        latest.reason or latest.result.value,
        f"the run for {when} {latest.result.value.lower()}: {latest.message or latest.reason}",
    )


def _ready_condition(
    ahead: Outlook, latest: RunRecord | None, active: Sequence[ActiveJob], succeeded: ConditionValue
) -> ConditionValue:
    """The summary: False only when something is wrong (the next run cannot start, or the latest failed)."""
    scheduled = ahead.scheduled
    if ahead.missing_account is not None and scheduled[0] is ConditionStatus.TRUE:
        return ConditionStatus.FALSE, "ServiceAccountNotFound", ahead.missing_account
    if latest is not None and latest.result is not RunResult.SUCCEEDED:
        return ConditionStatus.FALSE, succeeded[1], succeeded[2]
    if active:
        return ConditionStatus.TRUE, "Running", f"Job {active[-1].name} is running"
    if ahead.waiting is not None:
        return ConditionStatus.TRUE, ahead.waiting.reason, ahead.waiting.message
    if scheduled[0] is ConditionStatus.TRUE:
        return ConditionStatus.TRUE, "Armed", scheduled[2]
    if latest is not None:
        return ConditionStatus.TRUE, "Succeeded", succeeded[2]
    return ConditionStatus.TRUE, scheduled[1], scheduled[2]
