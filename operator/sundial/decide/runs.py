"""Scheduled runs: which fall due, which start, and how those that do not start are recorded.

The window of due runs starts after the latest scheduled run the status remembers, so a restarted operator
(or one that takes over from another) neither fires a handled run again nor forgets an unhandled one. Runs
that fell due while nobody was watching are fired late if still within ``startingDeadlineSeconds`` and
otherwise recorded as missed; of several due at once only the latest starts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sundial.api.conditions import ConditionType, find_condition
from sundial.api.freezes import FreezeAction
from sundial.api.models import ConcurrencyPolicy, RunRecord, RunResult, ScheduledDeploymentStatus
from sundial.api.timestamps import format_utc
from sundial.decide.approvals import AWAITING_APPROVAL, NOT_APPROVED, approval_verdict
from sundial.decide.draft import Draft
from sundial.decide.events import Event
from sundial.decide.freezes import (
    DEFER_SLACK,
    FROZEN,
    FROZEN_PAST_DEADLINE,
    FreezeVerdict,
    freeze_verdict,
)
from sundial.decide.gates import Gate, dependency_gate
from sundial.decide.jobs import JobRun
from sundial.decide.observe import JobPhase, JobState, World, missing_account_message, parse_time
from sundial.decide.validation import Valid
from sundial.timing.names import job_name
from sundial.timing.occurrences import Occurrence, due
from sundial.timing.schedule import CronSchedule, Timing


def plan_due_runs(
    world: World,
    me: Valid,
    timings: Mapping[str, Timing],
    old: ScheduledDeploymentStatus,
    own_jobs: Sequence[JobState],
    draft: Draft,
) -> None:
    """Record the runs that fell due since the last one handled, and start the latest if it may start."""
    metadata = world.body["metadata"]
    # The window starts after the latest run the *status* remembers. A Job without a record (created a
    # moment ago, or just before a crash) is inside the window and counts as handled, so runs that fell due
    # before it are still recorded as missed rather than skipped over. Manual runs do not count: a trigger
    # served a second after a scheduled instant must not hide that scheduled run.
    recorded = [record.scheduled_time for record in old.runs if record.trigger is None]
    since = max(recorded) if recorded else _creation_floor(metadata, me.timing)
    window = due(me.name, timings, since, world.now)
    for run in window.skipped:
        if run.instant not in draft.records:
            draft.record(run, RunResult.SKIPPED, "DstSkipped", "; ".join(run.notes) or "skipped by dstPolicy")
    for run in window.missed:
        if run.instant not in draft.records:
            _record_missed(world, run, window.due, draft)
    if window.truncated:
        draft.events.append(
            Event(
                "Warning",
                "Missed",
                "more than 100 runs fell due while nobody was watching; only the latest 100 are recorded",
            )
        )
    if window.due is not None:
        _start_run(world, window.due, me, own_jobs, draft)
    waiting = draft.waiting
    if waiting is not None and waiting.reason in _WAIT_EVENTS:
        progressing = find_condition(old.conditions, ConditionType.PROGRESSING)
        if progressing is None or progressing.reason != waiting.reason:
            draft.events.append(Event("Normal", _WAIT_EVENTS[waiting.reason], waiting.message))


_WAIT_EVENTS = {FROZEN: "Deferred", AWAITING_APPROVAL: AWAITING_APPROVAL}
"""The Event posted once when a run starts waiting for a freeze to end, or for its approval."""


def _frozen(world: World, run: Occurrence, at: datetime) -> FreezeVerdict | None:
    metadata = world.body["metadata"]
    return freeze_verdict(run, metadata["namespace"], world.body, world.siblings, world.freezes, at)


def _creation_floor(metadata: Mapping[str, Any], timing: Timing) -> datetime | None:
    """Where a never-run object's window starts: a schedule's past before the object existed never runs.

    A runAt is different: one created a little after its instant (within the deadline) still runs, so its
    window reaches back the deadline from the creation.
    """
    created = parse_time(metadata.get("creationTimestamp"))
    if created is None:
        return None
    # Exclusive, like every window start: a runAt exactly its deadline before the creation still runs, as
    # `check_run_at_not_past` (inclusive) lets it be valid.
    return (
        created if isinstance(timing.when, CronSchedule) else created - timing.deadline - timedelta.resolution
    )


def _record_missed(world: World, run: Occurrence, superseded_by: Occurrence | None, draft: Draft) -> None:
    """A run that will not start: say why, and if it was waiting for its dependency, say that instead."""
    late = run.instant < world.now - run.deadline
    gate = dependency_gate(run, world)
    deadline = run.instant + run.deadline
    frozen = _frozen(world, run, deadline) if late else None
    if frozen is not None and frozen.action is FreezeAction.HOLD:
        draft.record(run, RunResult.HELD, FROZEN, frozen.message())
    elif frozen is not None:
        draft.record(run, RunResult.MISSED, FROZEN_PAST_DEADLINE, frozen.message(deadline=deadline))
    elif (
        late
        and (approval := approval_verdict(run, world.body, world.siblings, world.approvals))
        and (approval.approved is None)
    ):
        draft.record(run, RunResult.HELD, NOT_APPROVED, approval.held_message(deadline))
    elif late and not gate.go:
        # It was held back by its dependency until its deadline ran out: that is the reason, not lateness.
        draft.record(run, RunResult.HELD, gate.reason, gate.message)
    elif late:
        seconds = int(run.deadline.total_seconds())
        draft.record(
            run,
            RunResult.MISSED,
            "MissedDeadline",
            f"not started within startingDeadlineSeconds ({seconds}) of {format_utc(run.instant)}",
        )
    else:
        later = format_utc(superseded_by.instant) if superseded_by else "a newer one"
        draft.record(
            run,
            RunResult.MISSED,
            "Superseded",
            f"a later run ({later}) was due at the same time; only the latest one starts",
        )


def _start_run(world: World, run: Occurrence, me: Valid, own_jobs: Sequence[JobState], draft: Draft) -> None:
    if run.instant in draft.records:
        return  # handled already: a Job exists for it or it was recorded held, skipped or missed
    if me.spec.suspend:
        draft.record(
            run,
            RunResult.SKIPPED,
            "Suspended",
            "spec.suspend was true when this run fell due; it is not run later",
        )
        return
    frozen = _frozen(world, run, world.now)
    if frozen is not None and frozen.action is FreezeAction.HOLD:
        draft.record(run, RunResult.HELD, FROZEN, frozen.message())
        return
    if frozen is not None:
        deadline = run.instant + run.deadline
        draft.waiting = Gate(False, wait=True, reason=FROZEN, message=frozen.message(deadline=deadline))
        draft.wake.append(min(frozen.until, deadline + DEFER_SLACK))
        return
    approval = approval_verdict(run, world.body, world.siblings, world.approvals)
    if approval is not None and approval.approved is None:
        deadline = run.instant + run.deadline
        message = approval.waiting_message(deadline)
        draft.waiting = Gate(False, wait=True, reason=AWAITING_APPROVAL, message=message)
        draft.wake.append(deadline + DEFER_SLACK)
        return
    if world.missing_service_account is not None:
        draft.record(run, RunResult.FAILED, "ServiceAccountNotFound", missing_account_message(world))
        return
    gate = dependency_gate(run, world)
    if gate.wait:
        draft.waiting = gate
        draft.wake.append(run.instant + run.deadline)
        return
    if not gate.go:
        draft.record(run, RunResult.HELD, gate.reason, gate.message)
        return
    active = [job for job in own_jobs if job.phase is JobPhase.ACTIVE and not job.deleting]
    if active and me.spec.schedule is not None:
        policy = me.spec.concurrency_policy
        if policy is ConcurrencyPolicy.FORBID:
            names = ", ".join(job.name for job in active)
            draft.record(
                run,
                RunResult.SKIPPED,
                "ConcurrencyForbidden",
                f"concurrencyPolicy is Forbid and {names} was still running",
            )
            return
        if policy is ConcurrencyPolicy.REPLACE:
            _replace(active, run, draft)
    approved = approval.approved if approval is not None else None
    job = JobRun(
        approved_by=approved.describe() if approved is not None else None,
        job_name=job_name(me.name, run.instant),
        role=run.role.value,
        scheduled_time=run.instant,
        local_time=run.local,
        time_zone=me.spec.time_zone,
        fired_time=world.now,
        start_by=run.instant + run.deadline,
    )
    draft.create(job, world.create_failures)


def _replace(active: Sequence[JobState], run: Occurrence, draft: Draft) -> None:
    """concurrencyPolicy Replace: delete the running Jobs, and record their runs as cancelled."""
    draft.deletes.extend(job.name for job in active)
    for job in active:
        cancelled = RunRecord(
            scheduled_time=job.scheduled_time,
            role=job.role,
            result=RunResult.CANCELLED,
            job_name=job.name,
            fired_time=job.fired_time,
            reason="Replaced",
            message=f"Job {job.name} was deleted to make way for the run for "
            f"{format_utc(run.instant)} (concurrencyPolicy Replace)",
            trigger=job.trigger,
        )
        if job.trigger is not None:
            draft.manual[job.trigger] = cancelled
        else:
            draft.records[job.scheduled_time] = cancelled
