"""The dependency gate: may a run start, given its dependency's run for it?"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sundial.api.models import RunRecord, RunResult
from sundial.api.timestamps import format_utc
from sundial.decide.observe import JobPhase, JobState, World, mapping
from sundial.decide.records import parse_status
from sundial.timing.names import job_name
from sundial.timing.occurrences import Occurrence


@dataclass(frozen=True)
class Gate:
    """The gate's answer: go; wait (and why); or never for this run (and why)."""

    go: bool
    wait: bool = False
    reason: str = ""
    message: str = ""


def dependency_gate(run: Occurrence, world: World) -> Gate:
    """May ``run`` start? Only once its nearest dependency's run for it has succeeded, if it must."""
    if not run.dependencies or not run.dependencies[0].must_succeed:
        return Gate(go=True)
    dependency = run.dependencies[0]
    name = job_name(dependency.name, dependency.instant)
    job = _job_of(world, dependency.name, name)
    when = format_utc(dependency.instant)
    if job is not None and job.phase is JobPhase.SUCCEEDED:
        return Gate(go=True)
    if job is not None and job.phase is JobPhase.FAILED:
        return Gate(
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
            return Gate(
                False,
                reason="DependencyDidNotRun",
                message=f"dependency {dependency.name!r} did not run for {when} "
                f"({record.result.value}: {record.message or record.reason}); nothing was deployed",
            )
    deadline = run.instant + run.deadline
    if world.now > deadline:
        state = "still running" if job is not None else "not started"
        return Gate(
            False,
            reason="DependencyNotFinished",
            message=f"dependency {dependency.name!r} was {state} for its run at {when} when this run's "
            f"startingDeadlineSeconds ran out at {format_utc(deadline)}; nothing was deployed",
        )
    return Gate(
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
    uid = mapping(sibling.get("metadata")).get("uid")
    return job if job.owner == owner and job.owner_uid == uid else None


def _dependency_record(world: World, name: str, instant: datetime) -> RunRecord | None:
    sibling = world.siblings.get(name)
    if sibling is None:
        return None
    for record in parse_status(sibling.get("status")).runs:
        if record.scheduled_time == instant:
            return record
    return None
