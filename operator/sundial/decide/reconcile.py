"""The decision's entry point: what a ScheduledDeployment should look like now, as pure functions.

``reconcile(world)`` takes the object, its siblings in the namespace, the Jobs Sundial made there and the
current instant, and returns a `Plan`: the complete status to write, the Jobs to create and delete, the
Events to post and when to look again. ``record_outcomes(plan, created, failures, now)`` records what
carrying a plan out did (the Jobs created, the creates the API refused), so the decision is made once per
change. Neither reads a clock nor calls an API, so every branch is a table test;
`sundial.runtime.controller` gathers the inputs and carries out the plan.

The stages, one module each, in the order ``reconcile`` runs them:

1. `sundial.decide.observe`: the world and Sundial's Jobs in it, read without trusting any of it;
2. `sundial.decide.records`: the run history, from the old status and the Jobs, into a
   `sundial.decide.draft.Draft` that the later stages add to;
3. `sundial.decide.component`: the object validated among the objects dependsOn joins it to;
4. `sundial.decide.runs` (with the dependency gate of `sundial.decide.gates`): the runs that fell due;
5. `sundial.decide.triggers`: a manual run requested by annotation;
6. `sundial.decide.status` and `sundial.decide.events`: the status to write, and one Event per transition.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sundial.api.conditions import ConditionType, find_condition
from sundial.api.models import ConditionStatus, ScheduledDeploymentStatus
from sundial.api.reasons import Invalid
from sundial.decide.approvals import approval_verdict
from sundial.decide.component import component_timings, judge
from sundial.decide.draft import Draft
from sundial.decide.events import Event, invalid_events, status_events
from sundial.decide.freezes import freeze_verdict
from sundial.decide.jobs import JobRun
from sundial.decide.observe import CreateFailure, JobState, World, bounded, mapping, missing_account_message
from sundial.decide.records import active_jobs, jobs_beyond_history, parse_status, records_with_jobs
from sundial.decide.refusals import refusal_check_at, refused_jobs
from sundial.decide.runs import plan_due_runs
from sundial.decide.status import Outlook, invalid_status, ordered, outlook, valid_status, with_condition
from sundial.decide.triggers import refuse_trigger_of_invalid, serve_trigger
from sundial.timing.occurrences import upcoming

__all__ = [
    "CreateFailure",
    "Event",
    "JobState",
    "Plan",
    "World",
    "internal_error_plan",
    "reconcile",
    "record_outcomes",
]

SERVICE_ACCOUNT_RECHECK = timedelta(seconds=10)
"""How often to look again for a missing service account, so that creating it clears the condition."""


@dataclass(frozen=True)
class Plan:
    """What to do for one object: write ``status``, create and delete Jobs, post Events, look again."""

    status: dict[str, Any]
    """The whole status (a merge patch replaces lists, so it is always written whole)."""
    create: tuple[JobRun, ...] = ()
    delete: tuple[str, ...] = ()
    """Job names."""
    events: tuple[Event, ...] = ()
    wake_at: datetime | None = None
    outlook: Outlook | None = field(default=None, compare=False, repr=False)
    """What the status was built from besides the run history, so that `record_outcomes` can rebuild it
    without deciding again. None for a plan that creates nothing (an invalid object's)."""


def reconcile(world: World) -> Plan:
    """The whole decision for ``world.body`` at ``world.now``. Total: any input gives a plan."""
    body = world.body
    metadata = body["metadata"]
    name = metadata["name"]
    generation = metadata.get("generation")
    old = parse_status(body.get("status"))
    own_jobs = [
        job for job in world.jobs.values() if job.owner == name and job.owner_uid == metadata.get("uid")
    ]
    # A Job whose pod the API server refuses is a failed run from here on, and is deleted (see
    # sundial.decide.refusals); every later stage sees it as failed, so it blocks nothing.
    refused = refused_jobs(own_jobs, old.runs, world.pod_refusals, world.now)
    own_jobs = [refused.get(job.name, job) for job in own_jobs]
    gone = {
        name: state
        for name, state in world.gone_jobs.items()
        if state is None or state.owner_uid == metadata.get("uid")
    }
    draft = Draft(*records_with_jobs(old.runs, own_jobs, gone), last_trigger=old.last_trigger)
    draft.deletes.extend(job.name for job in refused.values() if not job.deleting)
    draft.wake.extend(filter(None, (refusal_check_at(job, world.now) for job in own_jobs)))
    verdict = judge(world, has_run=bool(draft.records))
    active = active_jobs(own_jobs)

    if isinstance(verdict, Invalid):
        refuse_trigger_of_invalid(world, draft, verdict)
        status = invalid_status(old, verdict, draft, active, world.now, generation)
        return Plan(
            status=_dump(status),
            delete=tuple(draft.deletes),  # the refused Jobs: an invalid spec does not keep them trying
            events=tuple(invalid_events(old.conditions, verdict, draft.events)),
            wake_at=min(draft.wake, default=None),
        )

    timings = component_timings(world, verdict)
    plan_due_runs(world, verdict, timings, old, own_jobs, draft)
    serve_trigger(world, verdict, own_jobs, draft)
    spec = verdict.spec
    kept_jobs = [job for job in own_jobs if job.name not in refused]  # deleted anyway: no history slot
    draft.deletes.extend(
        jobs_beyond_history(kept_jobs, spec.successful_jobs_history_limit, spec.failed_jobs_history_limit)
    )
    coming = upcoming(name, timings, world.now, 3)
    missing = missing_account_message(world) if world.missing_service_account is not None else None
    namespace = metadata["namespace"]
    ahead = outlook(
        verdict,
        coming,
        draft.waiting,
        generation,
        missing,
        lambda run: freeze_verdict(run, namespace, body, world.siblings, world.freezes, run.instant),
        lambda run: approval_verdict(run, body, world.siblings, world.approvals),
    )
    status = valid_status(old, ahead, draft, active, world.now)
    events = status_events(old, status, draft.events, ahead.zone, missing_account=missing is not None)
    if missing is not None:
        draft.wake.append(world.now + SERVICE_ACCOUNT_RECHECK)
    draft.wake.extend(run.instant for run in coming[:1])
    return Plan(
        status=_dump(status),
        create=tuple(draft.creates),
        delete=tuple(dict.fromkeys(draft.deletes)),
        events=tuple(events),
        wake_at=min(draft.wake, default=None),
        outlook=ahead,
    )


def record_outcomes(
    plan: Plan, created: Sequence[JobState], failures: Sequence[CreateFailure], now: datetime
) -> Plan:
    """``plan`` with what carrying it out did recorded in its status, and the Events that follow.

    ``created`` are the Jobs made for ``plan.create`` (or found already there and ours), as
    `sundial.decide.observe.job_state_from_body` reads them; ``failures`` the creates the API refused.
    Each created Job's run is recorded as a reconcile that saw the Job would record it (Running, with its
    name and fired time), each refusal as a failed run with the API's reason; the Jobs ``plan.delete``
    named are no longer running. The Events are the plan's, then those of these transitions (Fired,
    DependencyStarted, Triggered, Failed). Nothing is decided again: the runs that were due, the waiting,
    the next run stay as ``plan`` has them, so a change of the world in the meantime is the next
    reconcile's to see.
    """
    ahead = plan.outlook
    if ahead is None:
        if created or failures:
            raise ValueError("a plan without an outlook creates no Job, so it has no outcomes to record")
        return plan
    old = parse_status(plan.status)
    draft = Draft(*records_with_jobs(old.runs, created), last_trigger=old.last_trigger)
    for job in created:
        if job.trigger is not None:
            draft.last_trigger = job.trigger  # the request is served: its Job exists
    for failure in failures:
        draft.record_refusal(failure)
    kept = [job for job in old.active if job.name not in plan.delete]
    started = [job for job in active_jobs(created) if job.name not in {kept_job.name for kept_job in kept}]
    active = sorted([*kept, *started], key=lambda job: job.scheduled_time)
    status = valid_status(old, ahead, draft, active, now)
    events = status_events(old, status, (), ahead.zone, missing_account=ahead.missing_account is not None)
    # A new Job is looked at again when its pod should exist (sundial.decide.refusals).
    wake = [plan.wake_at, *(refusal_check_at(job, now) for job in created)]
    return replace(
        plan,
        status=_dump(status),
        events=(*plan.events, *events),
        wake_at=min((instant for instant in wake if instant is not None), default=None),
    )


INTERNAL_ERROR = "InternalError"


def internal_error_plan(body: Mapping[str, Any], now: datetime, error: str) -> Plan:
    """The last resort when `reconcile` raised for this object: say so on the object, change nothing else.

    `reconcile` is meant to be total (property tests look for inputs that break it); if one is found in
    the field anyway, the object shows ``Ready=False``/``InternalError`` with the error, one Warning Event
    is posted when it starts, and the controller retries this object alone with exponential backoff. The
    run history and the other conditions are kept as they were, so nothing is claimed about runs.
    """
    metadata = mapping(body.get("metadata"))
    generation = metadata.get("generation")
    generation = generation if isinstance(generation, int) and generation >= 0 else None
    old = parse_status(body.get("status"))
    message = bounded(
        f"Sundial could not plan this object ({error}); it retries with backoff, and nothing is run for it "
        "until it succeeds. This is a bug in Sundial: please report it with the object's spec and annotations"
    )
    value = (ConditionStatus.FALSE, INTERNAL_ERROR, message)
    conditions = with_condition(old.conditions, ConditionType.READY, value, now, generation)
    status = old.model_copy(update={"conditions": ordered(conditions), "observed_generation": generation})
    previous = find_condition(old.conditions, ConditionType.READY)
    events = (
        ()
        if previous is not None and previous.reason == INTERNAL_ERROR
        else (Event("Warning", INTERNAL_ERROR, message),)
    )
    return Plan(status=_dump(status), events=events)


def _dump(status: ScheduledDeploymentStatus) -> dict[str, Any]:
    return status.model_dump(mode="json", by_alias=True, exclude_none=True)
