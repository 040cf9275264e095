"""The run history: the old status read back, its records brought up to date from the Jobs, and what of
it is kept.

``status.runs`` plus the Jobs themselves are the memory. A Job carries its own instant (and, for a manual
run, its trigger request), so the records are rebuilt from the Jobs whenever the status lags behind them or
was lost: the Job is the fact, and a record only adds what a Job cannot say (a run that never started).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar

from pydantic import ValidationError

from sundial.api.models import (
    MAX_RUN_RECORDS,
    ActiveJob,
    RunRecord,
    RunResult,
    RunRole,
    ScheduledDeploymentStatus,
)
from sundial.decide.observe import CreateFailure, JobPhase, JobState

TERMINAL = frozenset({RunResult.SUCCEEDED, RunResult.FAILED, RunResult.MISSED, RunResult.HELD})
"""Results after which nothing more happens to a run."""

_RESULT_OF_PHASE = {
    JobPhase.ACTIVE: RunResult.RUNNING,
    JobPhase.SUCCEEDED: RunResult.SUCCEEDED,
    JobPhase.FAILED: RunResult.FAILED,
}


def parse_status(raw: object) -> ScheduledDeploymentStatus:
    """The status as Sundial wrote it; an empty one if it is missing or mangled."""
    if not isinstance(raw, Mapping):
        return ScheduledDeploymentStatus()
    try:
        return ScheduledDeploymentStatus.model_validate(raw)
    except ValidationError:
        # Status is ours alone; if it was mangled, start afresh rather than crash-loop. The Jobs, which
        # carry their own instants, rebuild the run history.
        return ScheduledDeploymentStatus()


JOB_DELETED = "JobDeleted"
_Key = TypeVar("_Key", datetime, str)


def records_with_jobs(
    records: Iterable[RunRecord],
    own_jobs: Iterable[JobState],
    gone_jobs: Mapping[str, JobState | None] | None = None,
) -> tuple[dict[datetime, RunRecord], dict[str, RunRecord]]:
    """Run records brought up to date from the Jobs (and created for Jobs without one): scheduled runs by
    instant, manual runs by trigger request (a request's instant may equal a scheduled one).

    ``gone_jobs`` are this object's Jobs known to be deleted, by name: with the last state seen of each,
    or None when a GET found a Job some record names absent. A run whose Job is gone is not run again:
    one that had finished keeps the outcome its Job last showed; one that had not is failed, `JobDeleted`.
    """
    records = list(records)
    by_instant = {record.scheduled_time: record for record in records if record.trigger is None}
    by_trigger = {record.trigger: record for record in records if record.trigger is not None}
    own_jobs = list(own_jobs)
    for job in own_jobs:
        _update_from_job(_records_of(job, by_instant, by_trigger), _key_of(job), job)
    present = {job.name for job in own_jobs}
    for name, state in (gone_jobs or {}).items():
        if name in present:
            continue  # re-created under the same name since: the Job there now is the fact
        if state is None:
            _fail_deleted_by_name(by_instant, by_trigger, name)
            continue
        records_of, key = _records_of(state, by_instant, by_trigger), _key_of(state)
        record = records_of.get(key)
        if record is not None and record.result not in (RunResult.PENDING, RunResult.RUNNING):
            continue  # recorded before its Job went (Sundial deletes only what a written status holds)
        _update_from_job(records_of, key, _deleted(state) if state.phase is JobPhase.ACTIVE else state)
    return by_instant, by_trigger


def _records_of(
    job: JobState, by_instant: dict[datetime, RunRecord], by_trigger: dict[str, RunRecord]
) -> dict[Any, RunRecord]:
    return by_trigger if job.trigger is not None else by_instant


def _key_of(job: JobState) -> Any:
    return job.trigger if job.trigger is not None else job.scheduled_time


def _deleted_message(name: str) -> str:
    return (
        f"Job {name} was deleted before it finished, and not by Sundial: whether its deploy completed is "
        "unknown. Check the target before running it again (kubectl sundial run)"
    )


def _deleted(state: JobState) -> JobState:
    """A Job deleted while it ran, as the failed run it is."""
    return replace(state, phase=JobPhase.FAILED, reason=JOB_DELETED, message=_deleted_message(state.name))


def _fail_deleted_by_name(
    by_instant: dict[datetime, RunRecord], by_trigger: dict[str, RunRecord], name: str
) -> None:
    _fail_named(by_instant, name)
    _fail_named(by_trigger, name)


def _fail_named(records: dict[_Key, RunRecord], name: str) -> None:
    """The pending or running record of Job ``name``, failed as `JobDeleted`."""
    update = {"result": RunResult.FAILED, "reason": JOB_DELETED, "message": _deleted_message(name)}
    for key, record in list(records.items()):
        if record.job_name == name and record.result in (RunResult.PENDING, RunResult.RUNNING):
            records[key] = record.model_copy(update=update)


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


def refused_record(failure: CreateFailure) -> RunRecord:
    """The record of a run whose Job the API server refused to create: failed, under the Job's name (so
    that it is not tried again), with the API's reason."""
    run = failure.run
    return RunRecord(
        scheduled_time=run.scheduled_time,
        role=RunRole(run.role),
        result=RunResult.FAILED,
        job_name=run.job_name,
        reason=failure.reason,
        message=f"the API server refused to create Job {run.job_name}: {failure.message}",
        trigger=run.trigger,
    )


def kept_runs(records: Mapping[datetime, RunRecord], manual: Mapping[str, RunRecord]) -> list[RunRecord]:
    """The records that ``status.runs`` keeps, oldest first: the latest `MAX_RUN_RECORDS`."""

    def order(run: RunRecord) -> tuple[datetime, str]:
        return run.scheduled_time, run.trigger or ""  # by instant; at a tie the scheduled run first

    # The oldest fall off the end of the history, except the latest scheduled run: it bounds the window in
    # which scheduled runs fall due, so ten manual runs must not push it out (it would then be run again or
    # recorded missed).
    runs = sorted([*records.values(), *manual.values()], key=order)[-MAX_RUN_RECORDS:]
    if records and all(run.trigger is not None for run in runs):
        runs = sorted([records[max(records)], *runs[1:]], key=order)
    return runs


def active_jobs(jobs: Iterable[JobState]) -> list[ActiveJob]:
    """``status.active``: the Jobs still running and not being deleted, oldest instant first."""
    return [
        ActiveJob(name=job.name, role=job.role, scheduled_time=job.scheduled_time)
        for job in sorted(jobs, key=lambda job: job.scheduled_time)
        if job.phase is JobPhase.ACTIVE and not job.deleting
    ]


def last_fields(runs: Sequence[RunRecord]) -> dict[str, Any]:
    """``lastRunTime``, ``lastSuccessfulTime`` and ``lastJobName``, from the kept runs."""
    started = [run for run in runs if run.fired_time is not None]
    succeeded = [run for run in runs if run.result is RunResult.SUCCEEDED]
    return {
        "last_run_time": started[-1].scheduled_time if started else None,
        "last_successful_time": succeeded[-1].scheduled_time if succeeded else None,
        "last_job_name": started[-1].job_name if started else None,
    }


def jobs_beyond_history(own_jobs: Sequence[JobState], keep_succeeded: int, keep_failed: int) -> list[str]:
    """The finished Jobs beyond ``successfulJobsHistoryLimit`` and ``failedJobsHistoryLimit``, to delete."""
    newest_first = sorted(own_jobs, key=lambda job: job.scheduled_time, reverse=True)
    names: list[str] = []
    for phase, keep in ((JobPhase.SUCCEEDED, keep_succeeded), (JobPhase.FAILED, keep_failed)):
        finished = [job for job in newest_first if job.phase is phase]
        names.extend(job.name for job in finished[keep:])
    return names
