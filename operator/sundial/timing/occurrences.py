"""Occurrences: the runs a timing produces, and which of them are due, missed or upcoming at an instant.

Pure: every function takes the instants it needs (``now``, ``since``) as arguments. See
`sundial.timing.schedule` for what cron in a zone, Reject and missed runs mean.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, tzinfo

from sundial.api.durations import format_duration
from sundial.api.models import (
    RunRole,
)
from sundial.api.reasons import Reason, SpecError
from sundial.api.timestamps import format_local, format_utc
from sundial.timing.cron import walls
from sundial.timing.dependencies import Link
from sundial.timing.schedule import OneShot, Timing
from sundial.timing.wallclock import (
    apply_policy,
    offset_bounds,
    require_aware,
    resolve_local,
)

MAX_CATCH_UP = 100
"""The most runs `due` reports between two instants; older ones are dropped (``truncated``)."""


@dataclass(frozen=True)
class DependencyRun:
    """When one dependency in the chain runs for a given run."""

    name: str
    """The dependency's name."""

    instant: datetime
    """UTC: the run's instant minus the cumulative lead time."""

    lead: timedelta
    """The cumulative lead time."""

    must_succeed: bool
    """Whether the object after it in the chain waits for it to succeed."""


@dataclass(frozen=True)
class Occurrence:
    """One occurrence of an object's timing (its instant, local time, role and dependencies): a run of its
    own deploy, or of a deploy on behalf of an object that depends on it."""

    name: str
    """The object whose Job runs."""

    instant: datetime
    """UTC. The scheduled instant; the Job name derives from it (see `sundial.timing.names.job_name`)."""

    zone: tzinfo
    """The object's time zone, for `local`."""

    wall: datetime | None = None
    """The naive wall time that the schedule or runAt asked for; None for an absolute runAt."""

    role: RunRole = RunRole.DEPLOY
    """Deploy, or Dependency when it runs for another object."""

    skipped: bool = False
    """True when nothing runs (DST policy Skip, or Reject met beyond the checked horizon)."""

    notes: tuple[str, ...] = ()
    """Sentences for people: DST decisions, merged runs, whom a dependency run serves."""

    dependencies: tuple[DependencyRun, ...] = ()
    """When each of its dependencies runs for this run, nearest first."""

    deadline: timedelta = timedelta(seconds=600)
    """How late it may still start (the ``startingDeadlineSeconds`` of the object whose timing caused it)."""

    for_object: str | None = None
    """For a Dependency run, the object whose run it serves."""

    for_instant: datetime | None = None
    """For a Dependency run, the instant of the run it serves (a freeze on that run freezes this one)."""

    @property
    def local(self) -> datetime:
        """The instant on the object's wall clock, with its offset."""
        return self.instant.astimezone(self.zone)

    @property
    def dependency_time(self) -> datetime | None:
        """When the nearest dependency runs for this run, if there is one."""
        return self.dependencies[0].instant if self.dependencies else None


def _naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


def _dependency_runs(
    chain: tuple[Link, ...], instant: datetime, *, offset: timedelta
) -> tuple[DependencyRun, ...]:
    return tuple(
        DependencyRun(link.name, instant - (link.lead - offset), link.lead - offset, link.must_succeed)
        for link in chain
    )


def _run_for_wall(timing: Timing, wall: datetime) -> Occurrence:
    resolution = apply_policy(resolve_local(wall, timing.zone), timing.nonexistent, timing.ambiguous)
    note = resolution.note
    return Occurrence(
        name=timing.name,
        instant=resolution.instant,
        zone=timing.zone,
        wall=wall,
        skipped=resolution.skipped,
        notes=(note,) if note else (),
        dependencies=_dependency_runs(timing.chain, resolution.instant, offset=timedelta(0)),
        deadline=timing.deadline,
    )


def _one_shot_run(timing: Timing, when: OneShot) -> Occurrence:
    note = when.resolution.note if when.resolution is not None else None
    return Occurrence(
        name=timing.name,
        instant=when.instant,
        zone=timing.zone,
        wall=when.wall,
        skipped=when.resolution.skipped if when.resolution is not None else False,
        notes=(note,) if note else (),
        dependencies=_dependency_runs(timing.chain, when.instant, offset=timedelta(0)),
        deadline=timing.deadline,
    )


@functools.lru_cache(maxsize=1024)
def _bounds(zone: tzinfo, instant: datetime) -> tuple[timedelta, timedelta]:
    return offset_bounds(zone, instant)


def _beyond(wall: datetime, target: datetime, zone: tzinfo, *, forward: bool) -> bool:
    """True when every wall time past ``wall`` (later if ``forward``) maps to an instant past ``target``.

    A wall time ``w`` resolves to ``w - offset`` for an offset in force near it; offsets near ``target``
    lie within `offset_bounds`, and no offset reaches 16 hours, which covers walls far from ``target``.
    """
    low, high = _bounds(zone, target)
    if forward:
        return wall - _naive_utc(target) > high
    return wall < _naive_utc(target) + low


def _rank(run: Occurrence) -> tuple[bool, bool]:
    return (run.skipped, bool(run.notes))


def _add(found: dict[datetime, Occurrence], run: Occurrence) -> None:
    """Add ``run``, merging it with a run already at the same instant (they would share a Job)."""
    existing = found.get(run.instant)
    if existing is None:
        found[run.instant] = run
        return
    keep, drop = (existing, run) if _rank(existing) <= _rank(run) else (run, existing)
    notes = [*keep.notes, *drop.notes]
    if keep.wall is not None and drop.wall is not None and keep.wall != drop.wall and not drop.skipped:
        notes.append(
            f"{drop.wall:%H:%M} and {keep.wall:%H:%M} fall on the same instant, {format_utc(keep.instant)}; "
            "it runs once"
        )
    found[run.instant] = replace(keep, notes=tuple(dict.fromkeys(notes)))


def next_runs(timing: Timing, now: datetime, count: int) -> list[Occurrence]:
    """The object's own next ``count`` runs strictly after ``now``, in order, skipped ones included.

    For a runAt, the single run if it is still ahead; for a dependency-only object, nothing (see
    `upcoming` for runs on behalf of dependents).
    """
    require_aware(now)
    if count <= 0 or timing.when is None:
        return []
    if isinstance(timing.when, OneShot):
        run = _one_shot_run(timing, timing.when)
        return [run] if run.instant > now else []
    low, _ = _bounds(timing.zone, now)
    start = _naive_utc(now) + low - timedelta(minutes=1)
    found: dict[datetime, Occurrence] = {}
    for wall in walls(timing.when.expression, start, forward=True):
        run = _run_for_wall(timing, wall)
        if run.instant > now:
            _add(found, run)
        if len(found) >= count and _beyond(wall, sorted(found)[count - 1], timing.zone, forward=True):
            break
    return [found[instant] for instant in sorted(found)[:count]]


def runs_between(
    timing: Timing, start: datetime, end: datetime, *, limit: int = MAX_CATCH_UP
) -> list[Occurrence]:
    """The object's own runs with ``start < instant <= end``, in order; the latest ``limit`` of them."""
    require_aware(start)
    require_aware(end)
    if limit <= 0 or timing.when is None or end <= start:
        return []
    if isinstance(timing.when, OneShot):
        run = _one_shot_run(timing, timing.when)
        return [run] if start < run.instant <= end else []
    _, high = _bounds(timing.zone, end)
    begin = _naive_utc(end) + high + timedelta(minutes=1)
    found: dict[datetime, Occurrence] = {}
    for wall in walls(timing.when.expression, begin, forward=False):
        run = _run_for_wall(timing, wall)
        if start < run.instant <= end:
            _add(found, run)
        floor = start if len(found) < limit else max(start, sorted(found)[-limit])
        if _beyond(wall, floor, timing.zone, forward=False):
            break
    return [found[instant] for instant in sorted(found)[-limit:]]


def _as_dependency(run: Occurrence, source: Timing, index: int, target: Timing) -> Occurrence:
    """``run`` of ``source`` seen from ``target``, the dependency at ``source.chain[index]``."""
    link = source.chain[index]
    instant = run.instant - link.lead
    serves = f"runs {format_duration(link.lead)} before {source.name!r} at {format_utc(run.instant)}"
    notes = (f"{serves}; skipped because that run is skipped",) if run.skipped else (serves,)
    return Occurrence(
        name=target.name,
        instant=instant,
        zone=target.zone,
        role=RunRole.DEPENDENCY,
        skipped=run.skipped,
        notes=notes,
        dependencies=_dependency_runs(source.chain[index + 1 :], instant, offset=link.lead),
        deadline=source.deadline,
        for_object=source.name,
        for_instant=run.instant,
    )


def _sources(target: str, timings: Mapping[str, Timing]) -> Iterator[tuple[Timing, int]]:
    """Each timing whose chain contains ``target``, with the index of ``target`` in that chain."""
    for timing in timings.values():
        for index, link in enumerate(timing.chain):
            if link.name == target:
                yield timing, index


def upcoming(target: str, timings: Mapping[str, Timing], now: datetime, count: int) -> list[Occurrence]:
    """The next ``count`` runs of ``target`` after ``now``: its own, and those on behalf of dependents.

    ``timings`` holds the valid objects of the namespace by name (``target`` among them). Runs at the same
    instant are merged: they would be the same Job.
    """
    own = timings.get(target)
    if own is None:
        return []
    found: dict[datetime, Occurrence] = {}
    for run in next_runs(own, now, count):
        _add(found, run)
    for source, index in _sources(target, timings):
        lead = source.chain[index].lead
        for run in next_runs(source, now + lead, count):
            _add(found, _as_dependency(run, source, index, own))
    return [found[instant] for instant in sorted(found)[:count]]


@dataclass(frozen=True)
class DueRuns:
    """What fell due in a window ``(since, now]``."""

    due: Occurrence | None
    """The run to start now: the latest one in the window, if it is not skipped and is within its
    startingDeadlineSeconds of ``now``."""

    missed: tuple[Occurrence, ...]
    """The other runs in the window that were not skipped, oldest first: too late, or superseded."""

    skipped: tuple[Occurrence, ...]
    """Runs in the window that the DST policy skipped."""

    truncated: bool
    """True when more than `MAX_CATCH_UP` runs fell in the window; the oldest were left out."""


def due(
    target: str,
    timings: Mapping[str, Timing],
    since: datetime | None,
    now: datetime,
    *,
    limit: int = MAX_CATCH_UP,
) -> DueRuns:
    """The runs of ``target`` (own and as a dependency) that fell due in ``(since, now]``.

    ``since`` is the latest scheduled instant the operator has already handled. ``None`` means nothing has
    been handled yet: the window then reaches back ``startingDeadlineSeconds`` (of the object whose timing
    causes the run), so a runAt created a few minutes late still runs. Pass the creation time instead to
    get CronJob's behaviour of never catching up on a schedule's past.
    """
    own = timings.get(target)
    if own is None:
        return DueRuns(None, (), (), False)
    found: dict[datetime, Occurrence] = {}
    # ``since`` is exclusive; without one the window's start, now - deadline, is itself still within the
    # deadline (the test below and `check_run_at_not_past` are inclusive), so it starts one tick earlier.
    for run in runs_between(
        own, since if since is not None else _just_before(now - own.deadline), now, limit=limit + 1
    ):
        _add(found, run)
    for source, index in _sources(target, timings):
        lead = source.chain[index].lead
        start = (since if since is not None else _just_before(now - source.deadline)) + lead
        for run in runs_between(source, start, now + lead, limit=limit + 1):
            _add(found, _as_dependency(run, source, index, own))
    runs = [found[instant] for instant in sorted(found)]
    truncated = len(runs) > limit
    runs = runs[-limit:]
    active = [run for run in runs if not run.skipped]
    latest = active[-1] if active else None
    due_run = latest if latest is not None and latest.instant >= now - latest.deadline else None
    missed = tuple(run for run in active if run is not due_run)
    return DueRuns(due_run, missed, tuple(run for run in runs if run.skipped), truncated)


def _just_before(instant: datetime) -> datetime:
    """The latest representable instant before ``instant``: an exclusive bound that includes ``instant``."""
    return instant - timedelta.resolution


def check_run_at_not_past(timing: Timing, now: datetime) -> None:
    """Raise ``RunAtInPast`` if a runAt, or a dependency run it needs, is older than its deadline.

    Call it only while the object has not run yet: a runAt that has run is simply in the past. A runAt
    that is past but within ``startingDeadlineSeconds`` is still due (see `due`), hence not an error.
    """
    require_aware(now)
    if not isinstance(timing.when, OneShot):
        return
    run = _one_shot_run(timing, timing.when)
    if run.skipped:
        return
    oldest_allowed = now - timing.deadline
    seconds = int(timing.deadline.total_seconds())
    if run.instant < oldest_allowed:
        raise SpecError(
            Reason.RUN_AT_IN_PAST,
            f"runAt {timing.when.text!r} ({format_utc(run.instant)}) is {format_duration(now - run.instant)} "
            f"in the past, more than startingDeadlineSeconds ({seconds}) ago; set a runAt in the future",
        )
    for dependency in run.dependencies:
        if dependency.instant < oldest_allowed:
            late_by = oldest_allowed - dependency.instant
            raise SpecError(
                Reason.RUN_AT_IN_PAST,
                f"dependency {dependency.name!r} would have to run at {format_utc(dependency.instant)}, "
                f"{format_duration(dependency.lead)} before runAt, which is more than "
                f"startingDeadlineSeconds ({seconds}) ago; "
                f"move runAt at least {format_duration(late_by)} later",
            )


def describe_run(run: Occurrence) -> dict[str, object]:
    """The preview form of a run: UTC instant, local time with offset, dependency instant, notes."""
    dependency = run.dependency_time
    return {
        "scheduledTime": format_utc(run.instant),
        "localTime": format_local(run.instant, run.zone),
        "dependencyTime": format_utc(dependency) if dependency is not None else None,
        "role": run.role.value,
        "skipped": run.skipped,
        "notes": list(run.notes),
    }
