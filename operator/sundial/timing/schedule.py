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
so the scans (`sundial.timing.occurrences`) start and stop with a margin given by the zone's offsets near the
instants concerned.

**Reject for a schedule.** Every March exists, so "Reject" cannot mean "invalid if a nonexistent time
occurs some day". It means: the object is invalid if its schedule hits a nonexistent (or ambiguous)
local time within `REJECT_HORIZON` (two years) of ``now``; the message names the first such time. A hit
further out (found when asking for many runs) is listed as a run that is not run, with a note.

**Missed runs.** `sundial.timing.occurrences.due` mirrors the CronJob controller: of the runs that fell
due since the last handled one, only the most recent may start, and only if it is no later than
``startingDeadlineSeconds``; the others are reported as missed. At most
`sundial.timing.occurrences.MAX_CATCH_UP` are reported, like CronJob's limit of 100.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sundial.api.models import (
    AmbiguousTimePolicy,
    NonexistentTimePolicy,
    ScheduledDeploymentSpec,
)
from sundial.api.reasons import Reason, SpecError
from sundial.timing.cron import parse_run_at, parse_schedule, walls
from sundial.timing.dependencies import Link
from sundial.timing.wallclock import (
    LocalTimeKind,
    Resolution,
    apply_policy,
    clock_of,
    load_zone,
    require_aware,
    resolve_local,
    transitions,
)

REJECT_HORIZON = timedelta(days=731)
"""How far ahead a schedule under a Reject policy is checked for nonexistent or ambiguous times."""

MAX_STARTING_DEADLINE = timedelta(days=36_525)
"""A longer startingDeadlineSeconds (the API allows any int64) counts as this: a century is already "no
deadline", and instants plus or minus it stay within the years `datetime` can hold (2**63 s overflowed)."""


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
    require_aware(now)
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
            f"(it would run at {clock_of(local.first, local.zone)}) or Skip",
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
        wall = next(walls(cron.expression, low - timedelta(seconds=1), forward=True), None)
        if wall is not None and wall < high:
            resolution = apply_policy(resolve_local(wall, zone), nonexistent, ambiguous)
            reason, message = _reject_problem(
                f"schedule {cron.text!r} fires at {wall:%Y-%m-%d %H:%M}, which", resolution
            )
            raise SpecError(reason, message)
