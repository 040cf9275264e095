"""The time engine: when a ScheduledDeployment runs.

Pure: every function takes the instants it needs (``now``, ``since``) as arguments, never reads the clock
and never calls an API. All instants in and out are timezone-aware; the results are in UTC.

Notes
-----
**Cron in a zone.** A cron expression describes wall-clock times. We let croniter iterate *naive* wall
times (where it has no DST logic to get wrong) and resolve each one ourselves with
`sundial.timing.wallclock.resolve_local` under the object's DST policy. Consequences, each covered by a test:

* each wall-clock time is produced once, so a schedule never fires twice in the autumn fold, even
  ``30 * * * *``: New York's 01:30 on the fall-back day runs once (Earlier: 01:30 EDT), and there is
  then no run at 01:30 EST, making that gap between runs two real hours;
* a wall time in the spring gap is shifted (``ShiftForward``), recorded as skipped (``Skip``) or refused
  (``Reject``, see below);
* shifting can land two wall times on one instant (``*/30``: 02:00 shifted is 03:00 EDT); such runs are
  merged into one, as the Job name, derived from the instant, would merge them anyway.

Because shifted times can overtake later ones, the mapping from wall time to instant is not monotonic,
so the scans below start and stop with a margin given by the zone's offsets near the instants concerned.

**Reject for a schedule.** Every March exists, so "Reject" cannot mean "invalid if a nonexistent time
occurs some day". It means: the object is invalid if its schedule hits a nonexistent (or ambiguous)
local time within `REJECT_HORIZON` (two years) of ``now``; the message names the first such time. A hit
further out (found when asking for many runs) is listed as a run that is not run, with a note.

**Missed runs.** `due` mirrors the CronJob controller: of the runs that fell due since the last
handled one, only the most recent may start, and only if it is no later than ``startingDeadlineSeconds``;
the others are reported as missed. At most `MAX_CATCH_UP` are reported, like CronJob's limit of 100.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, tzinfo
from typing import cast
from zoneinfo import ZoneInfo

from croniter import CroniterBadDateError, CroniterError, croniter

from sundial.api.durations import format_duration
from sundial.api.models import (
    RUN_AT_PATTERN,
    AmbiguousTimePolicy,
    NonexistentTimePolicy,
    RunRole,
    ScheduledDeploymentSpec,
)
from sundial.api.reasons import Reason, SpecError
from sundial.api.timestamps import format_local, format_utc
from sundial.timing.dependencies import Link
from sundial.timing.wallclock import (
    LocalTimeKind,
    Resolution,
    apply_policy,
    load_zone,
    offset_bounds,
    resolve_local,
    transitions,
)

REJECT_HORIZON = timedelta(days=731)
"""How far ahead a schedule under a Reject policy is checked for nonexistent or ambiguous times."""

MAX_STARTING_DEADLINE = timedelta(days=36_525)
"""A longer startingDeadlineSeconds (the API allows any int64) counts as this: a century is already "no
deadline", and instants plus or minus it stay within the years `datetime` can hold (2**63 s overflowed)."""

MAX_CATCH_UP = 100
"""The most runs `due` reports between two instants; older ones are dropped (``truncated``)."""

CRON_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
"""The descriptors Kubernetes CronJob accepts (``@every`` and ``@reboot`` are not schedules here)."""

_FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_NAMES = {3: {name: index + 1 for index, name in enumerate(_MONTHS)}, 4: {d: i for i, d in enumerate(_DAYS)}}
_BOUNDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
"""Allowed numbers per field; 7 is Sunday, as in Vixie cron."""
_FIELD_TEXT = re.compile(r"[0-9A-Za-z*?,/-]+")
_RANGE = re.compile(r"([0-9A-Za-z]+)-([0-9A-Za-z]+)")
_RUN_AT = re.compile(RUN_AT_PATTERN)
_SCHEDULE_HELP = (
    "use five fields (minute hour day-of-month month day-of-week), e.g. '30 2 * * 1-5', "
    "or @hourly, @daily, @weekly, @monthly or @yearly"
)


# --- parsing ---------------------------------------------------------------------------------------------


def parse_schedule(expression: str) -> str:
    """Check a ``schedule`` and return the five-field cron expression to evaluate (descriptors expanded).

    Accepted: numbers, ``*``, ``,``, ``-``, ``/``, month and day names (``JAN``, ``MON``) and ``?`` for a
    day field, as in Kubernetes CronJob; day-of-month and day-of-week combine with OR, as in Vixie cron.
    Refused, with ``InvalidSchedule``: seconds or year fields, croniter's extensions (``L``, ``#``, ``H``,
    ``R``), reversed ranges, out-of-range values, and expressions that never fire (``0 0 30 2 *``).
    """
    text = expression.strip()
    if text.startswith("@"):
        if text.lower() in CRON_MACROS:
            return CRON_MACROS[text.lower()]
        raise SpecError(
            Reason.INVALID_SCHEDULE, f"schedule {expression!r} is not a known descriptor; {_SCHEDULE_HELP}"
        )
    fields = text.split()
    if len(fields) != len(_FIELDS):
        raise SpecError(
            Reason.INVALID_SCHEDULE,
            f"schedule {expression!r} has {len(fields)} fields; {_SCHEDULE_HELP} (seconds and years are not "
            "supported)",
        )
    for index, field in enumerate(fields):
        problem = _field_problem(index, field)
        if problem:
            raise SpecError(
                Reason.INVALID_SCHEDULE,
                f"schedule {expression!r}: the {_FIELDS[index]} field {field!r} {problem}; {_SCHEDULE_HELP}",
            )
    normalized = " ".join(fields)
    try:
        iterator = croniter(normalized, datetime(2000, 1, 1), day_or=True)
    except (CroniterError, ValueError, KeyError) as exc:
        detail = str(exc).replace(f"[{normalized.lower()}] ", "").replace(f"[{normalized}] ", "")
        raise SpecError(
            Reason.INVALID_SCHEDULE, f"schedule {expression!r} is not valid ({detail}); {_SCHEDULE_HELP}"
        ) from exc
    try:
        iterator.get_next(datetime)
    except CroniterBadDateError as exc:
        raise SpecError(
            Reason.INVALID_SCHEDULE,
            f"schedule {expression!r} never fires: no date matches it; check the day of the month and "
            "the month",
        ) from exc
    return normalized


def _field_problem(index: int, field: str) -> str | None:
    """Why one cron field is outside the syntax we accept, or None."""
    if not _FIELD_TEXT.fullmatch(field):
        return "may only contain digits, names, '*', '?', ',', '-' and '/'"
    if "?" in field and (index not in (2, 4) or field != "?"):
        return "uses '?', which is only allowed alone in the day-of-month and day-of-week fields"
    names = _NAMES.get(index, {})
    low_bound, high_bound = _BOUNDS[index]
    for part in field.split(","):
        values = part.split("/", 1)[0]
        for number in re.findall(r"[0-9]+", values):
            if not low_bound <= int(number) <= high_bound:
                return f"has {number}, outside {low_bound}-{high_bound}"
        step = part.split("/", 1)[1] if "/" in part else None
        if step is not None and (not step.isdigit() or int(step) == 0):
            return f"has the step {step!r}; a step must be a whole number from 1"
    for word in re.findall(r"[A-Za-z]+", field):
        if word.upper() not in names:
            allowed = (
                "month names (JAN-DEC)" if index == 3 else "day names (SUN-SAT)" if index == 4 else "no names"
            )
            return f"contains {word!r}; this field allows {allowed}"
    for start, end in _RANGE.findall(field):
        low = names.get(start.upper()) if start.isalpha() else int(start)
        high = names.get(end.upper()) if end.isalpha() else int(end)
        if low is not None and high is not None and low > high:
            return f"has the reversed range {start}-{end}; write it from low to high"
    return None


def parse_run_at(text: str) -> datetime:
    """Parse ``runAt``: a naive local date-time, or an aware instant when it carries ``Z`` or an offset."""
    if not _RUN_AT.fullmatch(text):
        raise SpecError(
            Reason.INVALID_RUN_AT,
            f"runAt {text!r} is not a date-time; write YYYY-MM-DDTHH:MM[:SS] for a local time in timeZone "
            "(e.g. 2027-03-14T02:30), or add Z or an offset for an absolute instant (2027-03-14T07:30:00Z)",
        )
    try:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is not None:
            moment.astimezone(UTC)  # an offset that pushes the instant out of range
    except (ValueError, OverflowError) as exc:
        raise SpecError(
            Reason.INVALID_RUN_AT,
            f"runAt {text!r} is not a real date-time ({exc}); check the day of the month, hours 00-23, "
            "minutes and seconds 00-59",
        ) from exc
    return moment


# --- timings -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OneShot:
    """A ``runAt``, resolved."""

    text: str
    """As written."""

    instant: datetime
    """UTC. For a skipped local time, the instant it would have had under ShiftForward."""

    wall: datetime | None
    """The naive local time, or None when ``runAt`` carried its own offset."""

    resolution: Resolution | None
    """How the local time was resolved; None for an absolute instant."""


@dataclass(frozen=True)
class CronSchedule:
    """A ``schedule``, checked."""

    text: str
    """As written."""

    expression: str
    """Five cron fields, descriptors expanded."""


@dataclass(frozen=True)
class Timing:
    """An object's timing: everything the engine needs to know about one valid ScheduledDeployment (its
    zone, when it runs, its DST policy and deadline, and the dependency chain that runs ahead of it)."""

    name: str
    """The object's name."""

    zone: ZoneInfo
    """Its time zone."""

    when: OneShot | CronSchedule | None
    """Its own timing; None when it runs only as a dependency."""

    nonexistent: NonexistentTimePolicy
    """``dstPolicy.nonexistentTime``."""

    ambiguous: AmbiguousTimePolicy
    """``dstPolicy.ambiguousTime``."""

    deadline: timedelta
    """``startingDeadlineSeconds``."""

    chain: tuple[Link, ...] = ()
    """Its dependencies, nearest first, with cumulative lead times."""


def build_timing(
    name: str, spec: ScheduledDeploymentSpec, chain: tuple[Link, ...], *, now: datetime
) -> Timing:
    """Check the timing of ``spec`` and compile it; raises `SpecError` with the specific reason.

    ``now`` is only used to look for Reject-policy hits of a schedule within `REJECT_HORIZON`.
    """
    _require_aware(now)
    zone = load_zone(spec.time_zone)
    nonexistent, ambiguous = spec.dst_policy.nonexistent_time, spec.dst_policy.ambiguous_time
    when: OneShot | CronSchedule | None = None
    if spec.run_at is not None:
        when = _one_shot(spec.run_at, zone, nonexistent, ambiguous)
    elif spec.schedule is not None:
        when = CronSchedule(spec.schedule, parse_schedule(spec.schedule))
        _check_reject(when, zone, nonexistent, ambiguous, now)
    return Timing(name, zone, when, nonexistent, ambiguous, _deadline(spec.starting_deadline_seconds), chain)


def _deadline(seconds: int) -> timedelta:
    ceiling = int(MAX_STARTING_DEADLINE.total_seconds())
    return timedelta(seconds=min(seconds, ceiling))


def _one_shot(
    text: str, zone: ZoneInfo, nonexistent: NonexistentTimePolicy, ambiguous: AmbiguousTimePolicy
) -> OneShot:
    moment = parse_run_at(text)
    if moment.tzinfo is not None:
        return OneShot(text, moment.astimezone(UTC), None, None)
    resolution = apply_policy(resolve_local(moment, zone), nonexistent, ambiguous)
    if resolution.rejected:
        raise SpecError(*_reject_problem(f"runAt {text!r}", resolution))
    return OneShot(text, resolution.instant, moment, resolution)


def _reject_problem(subject: str, resolution: Resolution) -> tuple[Reason, str]:
    local = resolution.local
    transition = local.transition()
    day = f"{local.wall:%Y-%m-%d}"
    if local.kind is LocalTimeKind.NONEXISTENT:
        return (
            Reason.NONEXISTENT_LOCAL_TIME,
            f"{subject} does not exist in {local.zone}: on {day} the {transition.describe()}; "
            "choose another time, or set dstPolicy.nonexistentTime to ShiftForward "
            f"(it would run at {_clock_of(local.first, local.zone)}) or Skip",
        )
    return (
        Reason.AMBIGUOUS_LOCAL_TIME,
        f"{subject} happens twice in {local.zone}: on {day} the {transition.describe()}; choose another "
        "time, or set dstPolicy.ambiguousTime to Earlier or Later to say which one you mean",
    )


def _check_reject(
    cron: CronSchedule,
    zone: ZoneInfo,
    nonexistent: NonexistentTimePolicy,
    ambiguous: AmbiguousTimePolicy,
    now: datetime,
) -> None:
    """Raise if the schedule hits a local time its Reject policy refuses within `REJECT_HORIZON`.

    Only the wall-time windows of the transitions are searched, so this is cheap even for ``* * * * *``.
    """
    if nonexistent is not NonexistentTimePolicy.REJECT and ambiguous is not AmbiguousTimePolicy.REJECT:
        return
    for transition in transitions(zone, now, now + REJECT_HORIZON):
        rejecting = (
            nonexistent is NonexistentTimePolicy.REJECT
            if transition.is_gap
            else ambiguous is AmbiguousTimePolicy.REJECT
        )
        if not rejecting:
            continue
        low, high = transition.window
        wall = next(_walls(cron.expression, low - timedelta(seconds=1), forward=True), None)
        if wall is not None and wall < high:
            resolution = apply_policy(resolve_local(wall, zone), nonexistent, ambiguous)
            reason, message = _reject_problem(
                f"schedule {cron.text!r} fires at {wall:%Y-%m-%d %H:%M}, which", resolution
            )
            raise SpecError(reason, message)


# --- runs ------------------------------------------------------------------------------------------------


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

    @property
    def local(self) -> datetime:
        """The instant on the object's wall clock, with its offset."""
        return self.instant.astimezone(self.zone)

    @property
    def dependency_time(self) -> datetime | None:
        """When the nearest dependency runs for this run, if there is one."""
        return self.dependencies[0].instant if self.dependencies else None


def _require_aware(moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"the time engine needs timezone-aware instants, got {moment.isoformat()}")


def _naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


def _clock_of(instant: datetime, zone: tzinfo) -> str:
    local = instant.astimezone(zone)
    return f"{local:%H:%M} {local.tzname()}"


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


def _walls(expression: str, start: datetime, *, forward: bool) -> Iterator[datetime]:
    """Naive wall times matching ``expression`` strictly after (or before) the naive ``start``."""
    iterator = croniter(expression, start, day_or=True)
    step = iterator.get_next if forward else iterator.get_prev
    while True:
        try:
            yield cast(datetime, step(datetime))
        except CroniterBadDateError:
            return


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
    _require_aware(now)
    if count <= 0 or timing.when is None:
        return []
    if isinstance(timing.when, OneShot):
        run = _one_shot_run(timing, timing.when)
        return [run] if run.instant > now else []
    low, _ = _bounds(timing.zone, now)
    start = _naive_utc(now) + low - timedelta(minutes=1)
    found: dict[datetime, Occurrence] = {}
    for wall in _walls(timing.when.expression, start, forward=True):
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
    _require_aware(start)
    _require_aware(end)
    if limit <= 0 or timing.when is None or end <= start:
        return []
    if isinstance(timing.when, OneShot):
        run = _one_shot_run(timing, timing.when)
        return [run] if start < run.instant <= end else []
    _, high = _bounds(timing.zone, end)
    begin = _naive_utc(end) + high + timedelta(minutes=1)
    found: dict[datetime, Occurrence] = {}
    for wall in _walls(timing.when.expression, begin, forward=False):
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
    _require_aware(now)
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
