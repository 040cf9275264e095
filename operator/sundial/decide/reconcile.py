"""What a ScheduledDeployment should look like now: the whole decision, as a pure function.

``reconcile(world)`` takes the object, its siblings in the namespace, the Jobs Sundial made there and the
current instant, and returns a `Plan`: the complete status to write, the Jobs to create and delete, the
Events to post and when to look again. It reads no clock and calls no API, so every branch is a table
test; `sundial.runtime.controller` gathers the inputs and carries out the plan.

Notes
-----
The run history in ``status.runs`` plus the Jobs themselves are the memory. A run counts as handled once
it has a record (or a Job, whose deterministic name is derived from the object and the instant); the
latest handled instant bounds the window in which new runs fall due, so a restarted operator, or one that
re-lists after a pause, neither fires a handled run again nor forgets an unhandled one. Runs that fell due
while nobody was watching are fired late if still within ``startingDeadlineSeconds`` and otherwise
recorded as missed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from sundial.api.conditions import ConditionType, find_condition, mark_invalid, set_condition
from sundial.api.durations import format_duration
from sundial.api.keys import ANNOTATION_FIRED, ANNOTATION_SCHEDULED, ANNOTATION_TRIGGER, LABEL_ROLE
from sundial.api.models import (
    MAX_RUN_RECORDS,
    ActiveJob,
    ConcurrencyPolicy,
    Condition,
    ConditionStatus,
    RunRecord,
    RunResult,
    RunRole,
    ScheduledDeploymentStatus,
)
from sundial.api.reasons import Invalid, SpecError
from sundial.api.timestamps import format_local, format_utc
from sundial.api.trigger import (
    FUTURE_TOLERANCE,
    BadTrigger,
    parse_request,
    pending_request,
    request_key,
    shown,
)
from sundial.decide.jobs import Run as JobRun
from sundial.decide.jobs import controller_reference
from sundial.decide.validation import Valid, validate
from sundial.timing.dependencies import connected, depends_on_name
from sundial.timing.names import job_name, manual_job_name
from sundial.timing.schedule import CronSchedule, check_run_at_not_past, due, upcoming
from sundial.timing.schedule import Plan as TimingPlan
from sundial.timing.schedule import Run as TimedRun

TERMINAL = frozenset({RunResult.SUCCEEDED, RunResult.FAILED, RunResult.MISSED, RunResult.HELD})


class JobPhase(StrEnum):
    ACTIVE = "Active"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


@dataclass(frozen=True)
class JobState:
    """What the plan needs to know about one of Sundial's Jobs."""

    namespace: str
    name: str
    owner: str
    """The ScheduledDeployment that controls it (its controller ownerReference's name)."""
    owner_uid: str
    """That ScheduledDeployment's UID: a Job counts as an object's run only when this matches."""
    role: RunRole
    scheduled_time: datetime
    fired_time: datetime | None
    phase: JobPhase
    reason: str | None = None
    message: str | None = None
    deleting: bool = False
    """The Job has a deletionTimestamp (replaced, pruned or its owner deleted)."""
    trigger: str | None = None
    """For the Job of a manual run, the trigger request it serves (annotation ``sundial.dev/trigger``)."""


@dataclass(frozen=True)
class CreateFailure:
    """The API refused to create the Job for ``run``."""

    run: JobRun
    reason: str
    message: str


@dataclass(frozen=True)
class Event:
    type: str
    """Normal or Warning."""
    reason: str
    message: str


@dataclass(frozen=True)
class World:
    now: datetime
    body: Mapping[str, Any]
    """The ScheduledDeployment as the API server returned it."""
    siblings: Mapping[str, Mapping[str, Any]]
    """ScheduledDeployments of the namespace by name, at least those connected by dependsOn."""
    jobs: Mapping[str, JobState]
    """Sundial's Jobs in the namespace by name."""
    create_failures: tuple[CreateFailure, ...] = ()
    missing_service_account: str | None = None
    """The service account the run's pod would use, when it does not exist in the namespace."""


SERVICE_ACCOUNT_RECHECK = timedelta(seconds=10)
"""How often to look again for a missing service account, so that creating it clears the condition."""


@dataclass(frozen=True)
class Plan:
    status: dict[str, Any]
    create: tuple[JobRun, ...] = ()
    delete: tuple[str, ...] = ()
    events: tuple[Event, ...] = ()
    wake_at: datetime | None = None


# ---------------------------------------------------------------------------------------------- jobs


def _parse_time(text: object) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    # RFC 3339 carries an offset; a naive time (a hand-edited annotation) is as unreadable as garbage, and
    # letting it through would crash the run records, which hold only aware instants.
    return moment if moment.tzinfo is not None else None


def job_state_from_body(body: Mapping[str, Any]) -> JobState | None:
    """Read one of Sundial's Jobs; None for a Job that lacks Sundial's labels and annotations."""
    metadata = _mapping(body.get("metadata"))
    labels = _mapping(metadata.get("labels"))
    annotations = _mapping(metadata.get("annotations"))
    # Whose Job this is, the controller ownerReference alone says (labels are for selecting, not trust):
    # a Job that merely carries Sundial's labels is somebody else's and is never counted as a run.
    reference = controller_reference(metadata)
    scheduled = _parse_time(annotations.get(ANNOTATION_SCHEDULED))
    name, namespace = metadata.get("name"), metadata.get("namespace")
    if reference is None or scheduled is None or not isinstance(name, str) or not isinstance(namespace, str):
        return None
    role = RunRole.DEPENDENCY if labels.get(LABEL_ROLE) == "dependency" else RunRole.DEPLOY
    trigger = annotations.get(ANNOTATION_TRIGGER)
    phase, reason, message = JobPhase.ACTIVE, None, None
    for condition in _mapping(body.get("status")).get("conditions") or []:
        if not isinstance(condition, Mapping) or condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            phase, reason, message = JobPhase.SUCCEEDED, "JobSucceeded", "the Job completed"
        elif condition.get("type") == "Failed":
            phase = JobPhase.FAILED
            reason = "JobFailed"
            detail = condition.get("message") or condition.get("reason") or "the Job failed"
            message = f"the Job failed: {_bounded(str(detail))}"
    return JobState(
        namespace=namespace,
        name=name,
        owner=reference["name"],
        owner_uid=reference["uid"],
        role=role,
        scheduled_time=scheduled,
        fired_time=_parse_time(annotations.get(ANNOTATION_FIRED)),
        phase=phase,
        reason=reason,
        message=message,
        deleting=bool(metadata.get("deletionTimestamp")),
        trigger=request_key(trigger) if isinstance(trigger, str) and trigger else None,
    )


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


MESSAGE_LIMIT = 1024
"""Messages taken from Jobs and pods are cut to this many characters: they end up in status and Events."""


def _bounded(text: str) -> str:
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"


_REASON_PREFIX = re.compile(r"^([A-Z][A-Za-z0-9]{1,63}): (.+)$", flags=re.DOTALL)


def failure_detail(pods: Iterable[Mapping[str, Any]]) -> tuple[str, str] | None:
    """Why a Job failed, from its pods' termination messages: ``(reason, message)``, or None.

    Sundial's deployers end with ``<Reason>: <one line>``; that reason is kept. Any other container's
    message (a user's jobTemplate) is reported as ``JobFailed`` with the message as written.
    """
    for pod in pods:
        status = _mapping(_mapping(pod).get("status"))
        for container in [
            *(status.get("initContainerStatuses") or []),
            *(status.get("containerStatuses") or []),
        ]:
            container = _mapping(container)
            terminated = _mapping(_mapping(container.get("state")).get("terminated"))
            message = str(terminated.get("message") or "").strip()
            if terminated.get("exitCode") in (None, 0) or not message:
                continue
            line = _bounded(" ".join(message.splitlines()[-1:]).strip() or message)
            match = _REASON_PREFIX.match(line)
            if match:
                return match.group(1), f"the deploy failed: {match.group(2)}"
            return "JobFailed", f"container {_bounded(str(container.get('name')))} failed: {line}"
    return None


_RESULT_OF_PHASE = {
    JobPhase.ACTIVE: RunResult.RUNNING,
    JobPhase.SUCCEEDED: RunResult.SUCCEEDED,
    JobPhase.FAILED: RunResult.FAILED,
}


# ---------------------------------------------------------------------------------------------- status


def _parse_status(raw: object) -> ScheduledDeploymentStatus:
    if not isinstance(raw, Mapping):
        return ScheduledDeploymentStatus()
    try:
        return ScheduledDeploymentStatus.model_validate(raw)
    except ValidationError:
        # Status is ours alone; if it was mangled, start afresh rather than crash-loop. The Jobs, which
        # carry their own instants, rebuild the run history below.
        return ScheduledDeploymentStatus()


def _records_with_jobs(
    records: Iterable[RunRecord], own_jobs: Iterable[JobState]
) -> tuple[dict[datetime, RunRecord], dict[str, RunRecord]]:
    """Run records brought up to date from the Jobs (and created for Jobs without one): scheduled runs by
    instant, manual runs by trigger request (a request's instant may equal a scheduled one)."""
    records = list(records)
    by_instant = {record.scheduled_time: record for record in records if record.trigger is None}
    by_trigger = {record.trigger: record for record in records if record.trigger is not None}
    for job in own_jobs:
        if job.trigger is not None:
            _update_from_job(by_trigger, job.trigger, job)
        else:
            _update_from_job(by_instant, job.scheduled_time, job)
    return by_instant, by_trigger


def _update_from_job(records: dict[Any, RunRecord], key: Any, job: JobState) -> None:
    """Bring the record under ``key`` up to date from its Job, or create it."""
    record = records.get(key)
    result = _RESULT_OF_PHASE[job.phase]
    update = {
        "job_name": job.name,
        "result": result,
        "role": job.role,
        "fired_time": job.fired_time if record is None or record.fired_time is None else record.fired_time,
        "reason": job.reason if job.phase is not JobPhase.ACTIVE else "JobRunning",
        "message": job.message if job.phase is not JobPhase.ACTIVE else "the Job is running",
    }
    if record is not None and record.result is RunResult.CANCELLED:
        return  # we deleted it on purpose; its last moments do not change the record
    if record is None:
        records[key] = RunRecord(scheduled_time=job.scheduled_time, trigger=job.trigger, **update)
    elif (
        record.result in (RunResult.PENDING, RunResult.RUNNING)
        or record.job_name == job.name
        # A record that says the run never started (missed, skipped, held, refused) while the run's own Job
        # exists is wrong: it was written from a view that did not hold the Job yet. The Job is the fact.
        or record.job_name is None
    ):
        records[key] = record.model_copy(update=update)


def _describe(instant: datetime, zone: Any) -> str:
    return f"{format_utc(instant)} ({format_local(instant, zone)})"


# ---------------------------------------------------------------------------------------------- gates


@dataclass(frozen=True)
class _Gate:
    go: bool
    wait: bool = False
    reason: str = ""
    message: str = ""


def _dependency_gate(run: TimedRun, world: World) -> _Gate:
    """May ``run`` start? Only once its nearest dependency's run for it has succeeded, if it must."""
    if not run.dependencies or not run.dependencies[0].must_succeed:
        return _Gate(go=True)
    dependency = run.dependencies[0]
    name = job_name(dependency.name, dependency.instant)
    job = _job_of(world, dependency.name, name)
    when = format_utc(dependency.instant)
    if job is not None and job.phase is JobPhase.SUCCEEDED:
        return _Gate(go=True)
    if job is not None and job.phase is JobPhase.FAILED:
        return _Gate(
            False,
            reason="DependencyFailed",
            message=f"dependency {dependency.name!r} failed its run for {when} (Job {name}): "
            f"{job.message or 'no details'}; nothing was deployed",
        )
    if job is None:
        record = _dependency_record(world, dependency.name, dependency.instant)
        if record is not None and record.result in (
            RunResult.MISSED,
            RunResult.HELD,
            RunResult.SKIPPED,
            RunResult.FAILED,
        ):
            return _Gate(
                False,
                reason="DependencyDidNotRun",
                message=f"dependency {dependency.name!r} did not run for {when} "
                f"({record.result.value}: {record.message or record.reason}); nothing was deployed",
            )
    deadline = run.instant + run.deadline
    if world.now > deadline:
        state = "still running" if job is not None else "not started"
        return _Gate(
            False,
            reason="DependencyNotFinished",
            message=f"dependency {dependency.name!r} was {state} for its run at {when} when this run's "
            f"startingDeadlineSeconds ran out at {format_utc(deadline)}; nothing was deployed",
        )
    return _Gate(
        False,
        wait=True,
        reason="WaitingForDependency",
        message=f"waiting for dependency {dependency.name!r} (its run at {when}"
        f"{', Job ' + name if job is not None else ''}) to succeed",
    )


def _job_of(world: World, owner: str, name: str) -> JobState | None:
    """The Job ``name`` if the object ``owner`` (as it is now: same UID) controls it; a Job of that
    predictable name made by anybody else neither blocks a run nor satisfies mustSucceed."""
    job = world.jobs.get(name)
    sibling = world.siblings.get(owner)
    if job is None or sibling is None:
        return None
    uid = _mapping(sibling.get("metadata")).get("uid")
    return job if job.owner == owner and job.owner_uid == uid else None


def _dependency_record(world: World, name: str, instant: datetime) -> RunRecord | None:
    sibling = world.siblings.get(name)
    if sibling is None:
        return None
    for record in _parse_status(sibling.get("status")).runs:
        if record.scheduled_time == instant:
            return record
    return None


# ---------------------------------------------------------------------------------------------- plan


def _component(world: World, name: str) -> dict[str, Mapping[str, Any]]:
    """The siblings reachable from ``name`` along dependsOn in either direction: all a plan can depend on."""
    dependents: dict[str, set[str]] = {}
    for sibling_name, sibling in world.siblings.items():
        target = depends_on_name(sibling)
        if target is not None:
            dependents.setdefault(target, set()).add(sibling_name)
    names = connected(name, lambda n: depends_on_name(world.siblings.get(n)), lambda n: dependents.get(n, ()))
    return {n: world.siblings[n] for n in names if n in world.siblings}


def _validate(world: World, draft: _Draft) -> Valid | Invalid:
    """Validate the object; ``RunAtInPast`` is judged against its creation, not against now.

    A runAt that was already older than its deadline when the object was created is a mistake in the
    spec. One that passed while the operator was down is a missed run, recorded as such; calling it
    invalid would hide that a deploy did not happen.
    """
    body = world.body
    verdict = validate(body, world.now, _component(world, body["metadata"]["name"]), has_run=True)
    created = _parse_time(body["metadata"].get("creationTimestamp"))
    if isinstance(verdict, Valid) and not draft.records and created is not None:
        try:
            check_run_at_not_past(verdict.plan, created)
        except SpecError as error:
            return error.invalid
    return verdict


def _timing_plans(world: World, me: Valid) -> dict[str, TimingPlan]:
    component = _component(world, me.name)
    plans = {me.name: me.plan}
    for sibling_name, sibling in component.items():
        if sibling_name == me.name:
            continue
        # Only the sibling's timing matters here; whether its own runAt is in the past is its own business,
        # and judging it so would drop the plan that tells us when we run on its behalf.
        verdict = validate(sibling, world.now, component, has_run=True)
        if isinstance(verdict, Valid):
            plans[sibling_name] = verdict.plan
    return plans


@dataclass
class _Draft:
    """The status being assembled, and what it implies."""

    records: dict[datetime, RunRecord]
    """Scheduled runs (own and as a dependency) by instant."""
    manual: dict[str, RunRecord] = field(default_factory=dict)
    """Manual runs by trigger request."""
    last_trigger: str | None = None
    """The last trigger request served (status.lastTrigger)."""
    creates: list[JobRun] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    wake: list[datetime] = field(default_factory=list)
    waiting: _Gate | None = None

    def record(self, run: TimedRun, result: RunResult, reason: str, message: str) -> None:
        self.records[run.instant] = RunRecord(
            scheduled_time=run.instant, role=run.role, result=result, reason=reason, message=message
        )


def reconcile(world: World) -> Plan:
    body = world.body
    metadata = body["metadata"]
    name = metadata["name"]
    generation = metadata.get("generation")
    old = _parse_status(body.get("status"))
    own_jobs = [
        job for job in world.jobs.values() if job.owner == name and job.owner_uid == metadata.get("uid")
    ]
    draft = _Draft(*_records_with_jobs(old.runs, own_jobs), last_trigger=old.last_trigger)
    verdict = _validate(world, draft)

    if isinstance(verdict, Invalid):
        _refuse_trigger_of_invalid(world, draft, verdict)
        return _invalid_plan(world, old, draft, own_jobs, verdict, generation)

    plans = _timing_plans(world, verdict)
    spec = verdict.spec
    # The window starts after the latest run the *status* remembers. A Job without a record (created a
    # moment ago, or just before a crash) is inside the window and counts as handled, so runs that fell due
    # before it are still recorded as missed rather than skipped over. Manual runs do not count: a trigger
    # served a second after a scheduled instant must not hide that scheduled run.
    recorded = [record.scheduled_time for record in old.runs if record.trigger is None]
    since = max(recorded) if recorded else _creation_floor(metadata, verdict.plan)
    window = due(name, plans, since, world.now)
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
        _start_run(world, window.due, verdict, own_jobs, draft)
    _serve_trigger(world, verdict, own_jobs, draft)

    _prune_history(own_jobs, spec.successful_jobs_history_limit, spec.failed_jobs_history_limit, draft)
    coming = upcoming(name, plans, world.now, 3)
    status = _valid_status(world, old, draft, own_jobs, verdict, coming, generation)
    events = _transition_events(old, status, draft.events, verdict.plan.zone)
    old_ready = find_condition(old.conditions, ConditionType.READY)
    if world.missing_service_account is not None:
        draft.wake.append(world.now + SERVICE_ACCOUNT_RECHECK)
        new_ready = find_condition(status.conditions, ConditionType.READY)
        if (
            new_ready is not None
            and new_ready.reason == "ServiceAccountNotFound"
            and (old_ready is None or old_ready.reason != new_ready.reason)
        ):
            events.append(Event("Warning", "ServiceAccountNotFound", new_ready.message))
    for run in coming[:1]:
        draft.wake.append(run.instant)
    wake = min(draft.wake) if draft.wake else None
    return Plan(
        status=status.model_dump(mode="json", by_alias=True, exclude_none=True),
        create=tuple(draft.creates),
        delete=tuple(dict.fromkeys(draft.deletes)),
        events=tuple(events),
        wake_at=wake,
    )


INTERNAL_ERROR = "InternalError"


def internal_error_plan(body: Mapping[str, Any], now: datetime, error: str) -> Plan:
    """The last resort when `reconcile` raised for this object: say so on the object, change nothing else.

    `reconcile` is meant to be total (property tests look for inputs that break it); if one is found in
    the field anyway, the object shows ``Ready=False``/``InternalError`` with the error, one Warning Event
    is posted when it starts, and the controller retries this object alone with exponential backoff. The
    run history and the other conditions are kept as they were, so nothing is claimed about runs.
    """
    metadata = _mapping(body.get("metadata"))
    generation = metadata.get("generation")
    generation = generation if isinstance(generation, int) and generation >= 0 else None
    old = _parse_status(body.get("status"))
    message = _bounded(
        f"Sundial could not plan this object ({error}); it retries with backoff, and nothing is run for it "
        "until it succeeds. This is a bug in Sundial: please report it with the object's spec and annotations"
    )
    conditions = _set(
        old.conditions, ConditionType.READY, ConditionStatus.FALSE, INTERNAL_ERROR, message, now, generation
    )
    status = old.model_copy(update={"conditions": _ordered(conditions), "observed_generation": generation})
    previous = find_condition(old.conditions, ConditionType.READY)
    events = (
        ()
        if previous is not None and previous.reason == INTERNAL_ERROR
        else (Event("Warning", INTERNAL_ERROR, message),)
    )
    return Plan(status=status.model_dump(mode="json", by_alias=True, exclude_none=True), events=events)


def _creation_floor(metadata: Mapping[str, Any], plan: TimingPlan) -> datetime | None:
    """Where a never-run object's window starts: a schedule's past before the object existed never runs.

    A runAt is different: one created a little after its instant (within the deadline) still runs, so its
    window reaches back the deadline from the creation.
    """
    created = _parse_time(metadata.get("creationTimestamp"))
    if created is None:
        return None
    # Exclusive, like every window start: a runAt exactly its deadline before the creation still runs, as
    # `check_run_at_not_past` (inclusive) lets it be valid.
    return created if isinstance(plan.when, CronSchedule) else created - plan.deadline - timedelta.resolution


def _missing_account_message(world: World) -> str:
    namespace = world.body["metadata"]["namespace"]
    return (
        f"service account {world.missing_service_account!r} does not exist in namespace {namespace!r}, so "
        "the deploy Job could not start; create it (manifests/deployer-rbac-example.yaml shows one with the "
        "rights a Deployment target needs) or set spec.serviceAccountName"
    )


def _record_missed(world: World, run: TimedRun, superseded_by: TimedRun | None, draft: _Draft) -> None:
    """A run that will not start: say why, and if it was waiting for its dependency, say that instead."""
    late = run.instant < world.now - run.deadline
    gate = _dependency_gate(run, world)
    if late and not gate.go:
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


def _start_run(world: World, run: TimedRun, me: Valid, own_jobs: Sequence[JobState], draft: _Draft) -> None:
    name = me.name
    if run.instant in draft.records:
        return  # handled already: a Job exists for it or it was recorded held, skipped or missed
    if world.missing_service_account is not None:
        draft.record(run, RunResult.FAILED, "ServiceAccountNotFound", _missing_account_message(world))
        return
    if me.spec.suspend:
        draft.record(
            run,
            RunResult.SKIPPED,
            "Suspended",
            "spec.suspend was true when this run fell due; it is not run later",
        )
        return
    gate = _dependency_gate(run, world)
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
    run_job = job_name(name, run.instant)
    failure = next((f for f in world.create_failures if f.run.job_name == run_job), None)
    if failure is not None:
        draft.records[run.instant] = RunRecord(
            scheduled_time=run.instant,
            role=run.role,
            result=RunResult.FAILED,
            job_name=run_job,
            reason=failure.reason,
            message=f"the API server refused to create Job {run_job}: {failure.message}",
        )
        return
    draft.creates.append(
        JobRun(
            job_name=run_job,
            role=run.role.value,
            scheduled_time=run.instant,
            local_time=run.local,
            time_zone=me.spec.time_zone,
            fired_time=world.now,
        )
    )


@dataclass(frozen=True)
class _Request:
    key: str
    """The request's identity in status and on its Job (`sundial.api.trigger.request_key`)."""
    text: str
    """The annotation's value as written."""


def _unserved_request(world: World, draft: _Draft) -> _Request | None:
    """The trigger annotation's request, if it has not been served (status and Jobs are the memory)."""
    text = pending_request(_mapping(world.body["metadata"]).get("annotations"))
    if text is None:
        return None
    key = request_key(text)
    if key == draft.last_trigger:
        return None
    if key in draft.manual:
        draft.last_trigger = key  # its record or its Job says it was served; the status lagged behind
        return None
    return _Request(key, text)


def _record_manual(
    draft: _Draft, request: str, instant: datetime, result: RunResult, reason: str, message: str
) -> RunRecord:
    record = RunRecord(scheduled_time=instant, result=result, reason=reason, message=message, trigger=request)
    draft.manual[request] = record
    draft.last_trigger = request
    return record


def _refuse_trigger_of_invalid(world: World, draft: _Draft, invalid: Invalid) -> None:
    unserved = _unserved_request(world, draft)
    if unserved is None:
        return
    try:
        instant = parse_request(unserved.text).requested_at
    except BadTrigger:
        instant = world.now
    record = _record_manual(
        draft,
        unserved.key,
        instant,
        RunResult.SKIPPED,
        invalid.reason.value,
        f"trigger {shown(unserved.text)} refused: the object is invalid "
        f"({invalid.reason.value}: {invalid.message})",
    )
    draft.events.append(Event("Warning", "TriggerRefused", record.message or ""))


def _serve_trigger(world: World, me: Valid, own_jobs: Sequence[JobState], draft: _Draft) -> None:
    """Run the object now for an unserved trigger request, or record why not.

    A manual run is this object's own Job and nothing else: its dependencies do not run and are not waited
    for, and suspend does not stop it (suspend stops the schedule; a trigger is an explicit request, as
    ``kubectl create job --from=cronjob/...`` is for a suspended CronJob). It never replaces a running
    Job: unless concurrencyPolicy is Allow it is refused while a Job of this object runs.
    """
    unserved = _unserved_request(world, draft)
    if unserved is None:
        return
    request = unserved.key
    try:
        instant = parse_request(unserved.text).requested_at
    except BadTrigger as error:
        _record_manual(draft, request, world.now, RunResult.SKIPPED, "InvalidTrigger", str(error))
        return
    refused = f"trigger {request} refused"
    if instant > world.now + FUTURE_TOLERANCE:
        message = (
            f"{refused}: it is dated {format_duration(instant - world.now)} ahead of the operator's clock "
            f"({format_utc(world.now)}); write the time of the request"
        )
        _record_manual(draft, request, instant, RunResult.SKIPPED, "InvalidTrigger", message)
        return
    if instant < world.now - me.plan.deadline:
        seconds = int(me.plan.deadline.total_seconds())
        message = (
            f"{refused}: it was made {format_duration(world.now - instant)} ago, more than "
            f"startingDeadlineSeconds ({seconds}); trigger again to run now"
        )
        _record_manual(draft, request, instant, RunResult.SKIPPED, "TriggerExpired", message)
        return
    if world.missing_service_account is not None:
        message = _missing_account_message(world)
        _record_manual(draft, request, instant, RunResult.FAILED, "ServiceAccountNotFound", message)
        return
    running = [job.name for job in own_jobs if job.phase is JobPhase.ACTIVE and not job.deleting] + [
        run.job_name for run in draft.creates
    ]
    policy = me.spec.concurrency_policy
    if running and policy is not ConcurrencyPolicy.ALLOW:
        message = (
            f"{refused}: Job {', '.join(running)} of this object is running and concurrencyPolicy is "
            f"{policy.value} (a manual run never replaces a running Job); trigger again once it has finished"
        )
        _record_manual(draft, request, instant, RunResult.SKIPPED, "ConcurrencyForbidden", message)
        return
    name = manual_job_name(me.name, request, instant)
    failure = next((f for f in world.create_failures if f.run.job_name == name), None)
    if failure is not None:
        record = _record_manual(
            draft,
            request,
            instant,
            RunResult.FAILED,
            failure.reason,
            f"the API server refused to create Job {name}: {failure.message}",
        )
        draft.manual[request] = record.model_copy(update={"job_name": name})
        return
    draft.creates.append(
        JobRun(
            job_name=name,
            role=RunRole.DEPLOY.value,
            scheduled_time=instant,
            local_time=instant.astimezone(me.plan.zone),
            time_zone=me.spec.time_zone,
            fired_time=world.now,
            trigger=request,
        )
    )


def _prune_history(
    own_jobs: Sequence[JobState], keep_succeeded: int, keep_failed: int, draft: _Draft
) -> None:
    newest_first = sorted(own_jobs, key=lambda job: job.scheduled_time, reverse=True)
    for phase, keep in ((JobPhase.SUCCEEDED, keep_succeeded), (JobPhase.FAILED, keep_failed)):
        finished = [job for job in newest_first if job.phase is phase]
        draft.deletes.extend(job.name for job in finished[keep:])


# ---------------------------------------------------------------------------------------------- status


def _runs_and_active(draft: _Draft, own_jobs: Sequence[JobState]) -> tuple[list[RunRecord], list[ActiveJob]]:
    every = [*draft.records.values(), *draft.manual.values()]

    def order(run: RunRecord) -> tuple[datetime, str]:
        return run.scheduled_time, run.trigger or ""  # by instant; at a tie the scheduled run first

    # The oldest fall off the end of the history, except the latest scheduled run: it bounds the window in
    # which scheduled runs fall due, so ten manual runs must not push it out (it would then be run again or
    # recorded missed).
    runs = sorted(every, key=order)[-MAX_RUN_RECORDS:]
    if draft.records and all(run.trigger is not None for run in runs):
        runs = sorted([draft.records[max(draft.records)], *runs[1:]], key=order)
    active = [
        ActiveJob(name=job.name, role=job.role, scheduled_time=job.scheduled_time)
        for job in sorted(own_jobs, key=lambda job: job.scheduled_time)
        if job.phase is JobPhase.ACTIVE and not job.deleting
    ]
    return runs, active


def _last_fields(runs: Sequence[RunRecord]) -> dict[str, Any]:
    started = [run for run in runs if run.fired_time is not None]
    succeeded = [run for run in runs if run.result is RunResult.SUCCEEDED]
    return {
        "last_run_time": started[-1].scheduled_time if started else None,
        "last_successful_time": succeeded[-1].scheduled_time if succeeded else None,
        "last_job_name": started[-1].job_name if started else None,
    }


def _invalid_plan(
    world: World,
    old: ScheduledDeploymentStatus,
    draft: _Draft,
    own_jobs: Sequence[JobState],
    invalid: Invalid,
    generation: int | None,
) -> Plan:
    runs, active = _runs_and_active(draft, own_jobs)
    conditions, _ = mark_invalid(old.conditions, invalid, now=world.now, observed_generation=generation)
    conditions = _set(
        conditions, ConditionType.PROGRESSING, *_progressing(active, None), world.now, generation
    )
    status = ScheduledDeploymentStatus(
        observed_generation=generation,
        conditions=_ordered(conditions),
        active=active,
        runs=runs,
        last_trigger=draft.last_trigger,
        **_last_fields(runs),
    )
    previous = find_condition(old.conditions, ConditionType.READY)
    events: list[Event] = []
    if previous is None or previous.reason != invalid.reason.value or previous.message != invalid.message:
        events.append(Event("Warning", invalid.reason.value, invalid.message))
    events.extend(draft.events)
    return Plan(status=status.model_dump(mode="json", by_alias=True, exclude_none=True), events=tuple(events))


def _set(
    conditions: list[Condition],
    kind: ConditionType,
    status: ConditionStatus,
    reason: str,
    message: str,
    now: datetime,
    generation: int | None,
) -> list[Condition]:
    updated, _ = set_condition(
        conditions, kind, status, reason, message, now=now, observed_generation=generation
    )
    return updated


_ORDER = [
    ConditionType.READY,
    ConditionType.SCHEDULED,
    ConditionType.DEPENDENCY_READY,
    ConditionType.PROGRESSING,
    ConditionType.SUCCEEDED,
]


def _ordered(conditions: list[Condition]) -> list[Condition]:
    rank = {kind.value: index for index, kind in enumerate(_ORDER)}
    return sorted(conditions, key=lambda condition: rank.get(condition.type, len(rank)))


def _progressing(active: Sequence[ActiveJob], waiting: _Gate | None) -> tuple[ConditionStatus, str, str]:
    if active:
        names = ", ".join(job.name for job in active)
        return ConditionStatus.TRUE, "JobRunning", f"Job {names} is running"
    if waiting is not None:
        return ConditionStatus.TRUE, waiting.reason, waiting.message
    return ConditionStatus.FALSE, "Idle", "no Job of this object is running"


def _latest_outcome(runs: Sequence[RunRecord]) -> RunRecord | None:
    finished = [run for run in runs if run.result in TERMINAL]
    return finished[-1] if finished else None


ConditionValue = tuple[ConditionStatus, str, str]
"""(status, reason, message) of one condition."""


def _scheduled_condition(
    me: Valid, draft: _Draft, next_run: TimedRun | None, coming: Sequence[TimedRun]
) -> ConditionValue:
    """Is there a next run, and if not, why not."""
    if me.spec.suspend:
        return (
            ConditionStatus.FALSE,
            "Suspended",
            "spec.suspend is true: runs that fall due are recorded as skipped and never made up later; "
            "set suspend: false to resume",
        )
    if draft.waiting is not None:
        return ConditionStatus.TRUE, draft.waiting.reason, draft.waiting.message
    if next_run is not None:
        return ConditionStatus.TRUE, "Armed", f"next run at {_describe(next_run.instant, me.plan.zone)}"
    if me.plan.when is None:
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
            f"the only upcoming run, at {_describe(skipped.instant, me.plan.zone)}, will be recorded as "
            f"skipped ({why}); nothing more will run",
        )
    return ConditionStatus.FALSE, "Completed", "every scheduled run is in the past; nothing more will run"


def _dependency_condition(me: Valid, draft: _Draft, latest: RunRecord | None) -> ConditionValue:
    if draft.waiting is not None:
        return ConditionStatus.UNKNOWN, draft.waiting.reason, draft.waiting.message
    if latest is not None and latest.result is RunResult.HELD:
        return ConditionStatus.FALSE, latest.reason or "DependencyFailed", latest.message or ""
    chain = " -> ".join([me.name, *(link.name for link in me.plan.chain)])
    return ConditionStatus.TRUE, "DependencyResolved", f"dependency chain {chain} resolves"


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
    world: World,
    latest: RunRecord | None,
    active: Sequence[ActiveJob],
    draft: _Draft,
    scheduled: ConditionValue,
    succeeded: ConditionValue,
) -> ConditionValue:
    """The summary: False only when something is wrong (the next run cannot start, or the latest failed)."""
    if world.missing_service_account is not None and scheduled[0] is ConditionStatus.TRUE:
        return ConditionStatus.FALSE, "ServiceAccountNotFound", _missing_account_message(world)
    if latest is not None and latest.result is not RunResult.SUCCEEDED:
        return ConditionStatus.FALSE, succeeded[1], succeeded[2]
    if active:
        return ConditionStatus.TRUE, "Running", f"Job {active[-1].name} is running"
    if draft.waiting is not None:
        return ConditionStatus.TRUE, draft.waiting.reason, draft.waiting.message
    if scheduled[0] is ConditionStatus.TRUE:
        return ConditionStatus.TRUE, "Armed", scheduled[2]
    if latest is not None:
        return ConditionStatus.TRUE, "Succeeded", succeeded[2]
    return ConditionStatus.TRUE, scheduled[1], scheduled[2]


def _valid_status(
    world: World,
    old: ScheduledDeploymentStatus,
    draft: _Draft,
    own_jobs: Sequence[JobState],
    me: Valid,
    coming: Sequence[TimedRun],
    generation: int | None,
) -> ScheduledDeploymentStatus:
    runs, active = _runs_and_active(draft, own_jobs)
    next_run = next((run for run in coming if not run.skipped), None)
    latest = _latest_outcome(runs)
    scheduled = _scheduled_condition(me, draft, next_run, coming)
    succeeded = _succeeded_condition(latest)
    values: list[tuple[ConditionType, ConditionValue]] = [(ConditionType.SCHEDULED, scheduled)]
    if me.spec.depends_on is not None:
        values.append((ConditionType.DEPENDENCY_READY, _dependency_condition(me, draft, latest)))
    values += [
        (ConditionType.PROGRESSING, _progressing(active, draft.waiting)),
        (ConditionType.SUCCEEDED, succeeded),
        (ConditionType.READY, _ready_condition(world, latest, active, draft, scheduled, succeeded)),
    ]
    conditions = [c for c in old.conditions if c.type != ConditionType.DEPENDENCY_READY or me.spec.depends_on]
    for kind, value in values:
        conditions = _set(conditions, kind, *value, world.now, generation)
    return ScheduledDeploymentStatus(
        observed_generation=generation,
        conditions=_ordered(conditions),
        next_run_time=next_run.instant if next_run else None,
        next_run_local_time=next_run.local if next_run else None,
        next_dependency_run_time=next_run.dependency_time if next_run else None,
        active=active,
        runs=runs,
        upcoming=[run.instant for run in coming if not run.skipped] if me.spec.schedule is not None else [],
        last_trigger=draft.last_trigger,
        **_last_fields(runs),
    )


# ---------------------------------------------------------------------------------------------- events


_EVENT_OF_RESULT = {
    RunResult.SUCCEEDED: ("Normal", "Succeeded"),
    RunResult.FAILED: ("Warning", "Failed"),
    RunResult.MISSED: ("Warning", "Missed"),
    RunResult.HELD: ("Warning", "Held"),
    RunResult.SKIPPED: ("Normal", "Skipped"),
    RunResult.CANCELLED: ("Normal", "Replaced"),
}


def _transition_events(
    old: ScheduledDeploymentStatus, new: ScheduledDeploymentStatus, extra: Iterable[Event], zone: Any
) -> list[Event]:
    """One Event per transition, found by comparing the old status with the new."""
    events: list[Event] = []
    if new.next_run_time is not None and new.next_run_time != old.next_run_time:
        dependency = (
            f"; its dependency runs at {format_utc(new.next_dependency_run_time)}"
            if new.next_dependency_run_time
            else ""
        )
        events.append(
            Event("Normal", "Armed", f"next run at {_describe(new.next_run_time, zone)}{dependency}")
        )
    before = {(record.scheduled_time, record.trigger): record for record in old.runs}
    for record in new.runs:
        previous = before.get((record.scheduled_time, record.trigger))
        if record.trigger is not None:
            events.extend(_manual_run_events(previous, record))
            continue
        if record.fired_time is not None and (previous is None or previous.fired_time is None):
            lateness = (record.fired_time - record.scheduled_time) / timedelta(milliseconds=1)
            reason = "DependencyStarted" if record.role is RunRole.DEPENDENCY else "Fired"
            events.append(
                Event(
                    "Normal",
                    reason,
                    f"created Job {record.job_name} for "
                    f"{_describe(record.scheduled_time, zone)}, {lateness:.0f} ms after the instant",
                )
            )
        if record.result in _EVENT_OF_RESULT and (previous is None or previous.result != record.result):
            kind, reason = _EVENT_OF_RESULT[record.result]
            what = f"{record.role.value.lower()} run for {format_utc(record.scheduled_time)}"
            events.append(
                Event(kind, reason, f"{what}: {record.message or record.reason or record.result.value}")
            )
    events.extend(extra)
    return events


def _manual_run_events(previous: RunRecord | None, record: RunRecord) -> list[Event]:
    """Triggered when its Job is created; TriggerRefused when it is not run; then the outcome."""
    events: list[Event] = []
    what = f"manual run for trigger {record.trigger}"
    if record.fired_time is not None and (previous is None or previous.fired_time is None):
        events.append(
            Event(
                "Normal",
                "Triggered",
                f"created Job {record.job_name} for trigger {record.trigger} (a manual run, requested "
                f"{format_utc(record.scheduled_time)}); dependencies are not run for a manual run",
            )
        )
    if previous is not None and previous.result == record.result:
        return events
    detail = record.message or record.reason or record.result.value
    if record.result is RunResult.SKIPPED:
        events.append(Event("Warning", "TriggerRefused", detail))
    elif record.result in _EVENT_OF_RESULT:
        kind, reason = _EVENT_OF_RESULT[record.result]
        events.append(Event(kind, reason, f"{what}: {detail}"))
    return events
