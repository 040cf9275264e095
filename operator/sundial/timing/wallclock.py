"""Wall-clock times in an IANA time zone, resolved to UTC instants under an explicit DST policy.

Everything here is pure: functions take the instants they need and never read the clock.

Notes
-----
zoneinfo follows PEP 495. A naive local time carries ``fold=0`` or ``fold=1``:

* In a *gap* (clocks jump forward, so the wall time never happens) ``fold=0`` applies the offset in force
  *before* the transition. 02:30 in New York on the spring-forward day therefore becomes 02:30 EST =
  07:30Z = 03:30 EDT, which is exactly what ``ShiftForward`` promises: "the instant 02:30 would have had
  before the change".
* In a *fold* (clocks go back, so the wall time happens twice) ``fold=0`` is the first, earlier occurrence
  and ``fold=1`` the second, later one: ``Earlier`` and ``Later``.

We tell a gap from a fold by round-tripping: convert each interpretation to UTC and back and see whether
the wall time survives. Both survive in a fold, neither in a gap. Nothing relies on the ``isdst`` flag, so
zones that changed their standard offset (Moscow in 2011 and 2014, Samoa skipping 30 December 2011) work
the same way as ordinary DST.

Arithmetic is never done on aware local datetimes (Python adds a timedelta to the wall time and keeps the
old offset); it is done on UTC instants or on naive wall times, and only then resolved.
"""

from __future__ import annotations

import difflib
import functools
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from enum import StrEnum

from sundial.api.models import AmbiguousTimePolicy, NonexistentTimePolicy
from sundial.api.reasons import Reason, SpecError

_MACHINE_SPECIFIC_ZONES = frozenset({"localtime"})
"""Names that exist in some zoneinfo directories but mean "this machine's zone", not an IANA zone."""

_PROBE_STEP = timedelta(hours=6)
"""Sampling step when looking for offset changes; no zone has had two transitions within six hours."""


class LocalTimeKind(StrEnum):
    """How a wall-clock time maps onto instants in a zone."""

    NORMAL = "Normal"
    NONEXISTENT = "Nonexistent"
    AMBIGUOUS = "Ambiguous"


@functools.cache
def _zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones()) - _MACHINE_SPECIFIC_ZONES


def load_zone(name: str) -> zoneinfo.ZoneInfo:
    """Return the zone called ``name`` or raise `SpecError` with ``InvalidTimeZone``.

    Only names that the tz database lists are accepted, so machine-specific entries such as ``localtime``
    and look-alikes on case-insensitive file systems are refused the same way everywhere.
    """
    if name not in _zone_names():
        raise SpecError(Reason.INVALID_TIME_ZONE, _unknown_zone_message(name))
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError) as exc:  # listed but unreadable
        raise SpecError(Reason.INVALID_TIME_ZONE, f"{_unknown_zone_message(name)} ({exc})") from exc


_ABBREVIATIONS = {
    "PST": "America/Los_Angeles",
    "PDT": "America/Los_Angeles",
    "PT": "America/Los_Angeles",
    "MDT": "America/Denver",
    "CST": "America/Chicago",
    "CDT": "America/Chicago",
    "EDT": "America/New_York",
    "ET": "America/New_York",
    "BST": "Europe/London",
    "CEST": "Europe/Berlin",
    "IST": "Asia/Kolkata",
    "JST": "Asia/Tokyo",
    "AEST": "Australia/Sydney",
    "AEDT": "Australia/Sydney",
}
"""Common abbreviations that are not zone names, with the zone people usually mean by them."""


def _unknown_zone_message(name: str) -> str:
    if name.upper() in _ABBREVIATIONS or (name.isalpha() and name.isupper() and len(name) <= 5):
        suggestion = _ABBREVIATIONS.get(name.upper(), "Europe/Berlin")
        return (
            f"timeZone {name!r} is an abbreviation, not an IANA time zone name (abbreviations do not say "
            f"when daylight saving time applies); use a location such as {suggestion!r} "
            "(see `timedatectl list-timezones`)"
        )
    by_folded = {zone.casefold(): zone for zone in _zone_names()}
    close = difflib.get_close_matches(name.casefold(), list(by_folded), n=1, cutoff=0.6)
    suggestion = by_folded[close[0]] if close else "America/New_York"
    return (
        f"timeZone {name!r} is not an IANA time zone name; use a name such as {suggestion!r} "
        "(see `timedatectl list-timezones`)"
    )


def offset_at(instant: datetime, zone: tzinfo) -> timedelta:
    """The UTC offset in force in ``zone`` at ``instant``."""
    offset = instant.astimezone(zone).utcoffset()
    assert offset is not None, "a zone always has an offset"
    return offset


def wall_clock(instant: datetime, zone: tzinfo) -> datetime:
    """The naive local date-time shown by a clock in ``zone`` at ``instant``."""
    return instant.astimezone(zone).replace(tzinfo=None)


def _interpret(wall: datetime, zone: tzinfo, fold: int) -> datetime:
    return wall.replace(tzinfo=zone, fold=fold).astimezone(UTC)


@dataclass(frozen=True)
class Transition:
    """One change of UTC offset in a zone."""

    at: datetime
    """The UTC instant of the change."""

    before: timedelta
    """The offset just before ``at``."""

    after: timedelta
    """The offset from ``at`` on."""

    name_before: str
    """The abbreviation before the change, e.g. ``EST``."""

    name_after: str
    """The abbreviation after the change, e.g. ``EDT``."""

    @property
    def is_gap(self) -> bool:
        """True when clocks jump forward, leaving wall times that never happen."""
        return self.after > self.before

    @property
    def wall_before(self) -> datetime:
        """The wall time at which the clocks change, as read on the old offset (02:00 in New York)."""
        return (self.at + self.before).replace(tzinfo=None)

    @property
    def wall_after(self) -> datetime:
        """The wall time the clocks show right after the change (03:00 in New York in spring)."""
        return (self.at + self.after).replace(tzinfo=None)

    @property
    def window(self) -> tuple[datetime, datetime]:
        """The half-open range of naive wall times that do not exist (gap) or happen twice (fold)."""
        return min(self.wall_before, self.wall_after), max(self.wall_before, self.wall_after)

    def describe(self) -> str:
        """E.g. ``clocks go forward from 02:00 EST to 03:00 EDT``."""
        direction = "forward" if self.is_gap else "back"
        return (
            f"clocks go {direction} from {_clock(self.wall_before)} {self.name_before} "
            f"to {_clock(self.wall_after)} {self.name_after}"
        )


def _transition_between(zone: tzinfo, lo: datetime, hi: datetime) -> Transition:
    """The first change of offset in ``(lo, hi]``, given that the offsets at ``lo`` and ``hi`` differ.

    Bisects to the second: transitions happen on whole seconds (even the historic local-mean-time ones).
    """
    before = offset_at(lo, zone)
    lo, hi = lo.replace(microsecond=0), hi.replace(microsecond=0)
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) // 2
        mid = mid.replace(microsecond=0)
        if offset_at(mid, zone) == before:
            lo = mid
        else:
            hi = mid
    return Transition(
        at=hi,
        before=before,
        after=offset_at(hi, zone),
        name_before=lo.astimezone(zone).tzname() or "",
        name_after=hi.astimezone(zone).tzname() or "",
    )


def transitions(zone: tzinfo, start: datetime, end: datetime) -> list[Transition]:
    """Every change of UTC offset in ``zone`` with ``start < at <= end``, oldest first.

    Changes that keep the offset (only the abbreviation or the DST flag changes) are not transitions here:
    they move no wall clock.
    """
    found: list[Transition] = []
    lo = start
    lo_offset = offset_at(lo, zone)
    while lo < end:
        hi = min(lo + _PROBE_STEP, end)
        hi_offset = offset_at(hi, zone)
        if hi_offset != lo_offset:
            found.append(_transition_between(zone, lo, hi))
        lo, lo_offset = hi, hi_offset
    return found


def offset_bounds(
    zone: tzinfo, instant: datetime, span: timedelta = timedelta(days=2)
) -> tuple[timedelta, timedelta]:
    """The smallest and largest offsets in force within ``span`` of ``instant``.

    Used to bound which wall times can map to instants near ``instant`` when scanning a cron schedule.
    """
    offsets = {
        offset_at(instant + k * _PROBE_STEP, zone)
        for k in range(-(span // _PROBE_STEP), span // _PROBE_STEP + 1)
    }
    return min(offsets), max(offsets)


@dataclass(frozen=True)
class LocalTime:
    """A naive wall time classified in a zone, with both of its interpretations as UTC instants."""

    wall: datetime
    """The naive wall time asked for."""

    zone: tzinfo
    """The zone it is read in."""

    kind: LocalTimeKind
    """Whether it happens once, never or twice."""

    first: datetime
    """UTC. The only instant when normal; the earlier one in a fold; in a gap, the instant it would have
    had on the offset in force before the change (the ``ShiftForward`` instant)."""

    second: datetime
    """UTC. Equal to ``first`` when normal; the later instant in a fold; in a gap, the instant on the new
    offset, which lies before the change and is never used."""

    def transition(self) -> Transition:
        """The transition that makes this time nonexistent or ambiguous (only for those kinds)."""
        assert self.kind is not LocalTimeKind.NORMAL, "a normal time is near no transition"
        return _transition_between(self.zone, min(self.first, self.second), max(self.first, self.second))


def resolve_local(wall: datetime, zone: tzinfo) -> LocalTime:
    """Classify the naive ``wall`` time in ``zone`` and compute its UTC interpretations."""
    if wall.tzinfo is not None:
        raise ValueError(f"resolve_local needs a naive wall time, got {wall.isoformat()}")
    wall = wall.replace(fold=0)
    first, second = _interpret(wall, zone, 0), _interpret(wall, zone, 1)
    if first == second:
        return LocalTime(wall, zone, LocalTimeKind.NORMAL, first, second)
    first_exists = wall_clock(first, zone) == wall
    second_exists = wall_clock(second, zone) == wall
    if first_exists and second_exists:
        return LocalTime(wall, zone, LocalTimeKind.AMBIGUOUS, min(first, second), max(first, second))
    if not first_exists and not second_exists:
        return LocalTime(wall, zone, LocalTimeKind.NONEXISTENT, first, second)
    only = first if first_exists else second  # defensive: zoneinfo never produces this
    return LocalTime(wall, zone, LocalTimeKind.NORMAL, only, only)


@dataclass(frozen=True)
class Resolution:
    """A wall time turned into the instant at which to act, under a DST policy."""

    local: LocalTime
    """The classified wall time."""

    nonexistent: NonexistentTimePolicy
    """The policy that applied if the time was in a gap."""

    ambiguous: AmbiguousTimePolicy
    """The policy that applied if the time was in a fold."""

    @property
    def instant(self) -> datetime:
        """UTC. For a skipped or rejected time, the instant it would have had under ``ShiftForward`` (or
        ``Earlier``); it then only orders and names the entry."""
        if self.local.kind is LocalTimeKind.AMBIGUOUS and self.ambiguous is AmbiguousTimePolicy.LATER:
            return self.local.second
        return self.local.first

    @property
    def rejected(self) -> bool:
        """True when the time is nonexistent or ambiguous and the matching policy is ``Reject``."""
        kind = self.local.kind
        return (kind is LocalTimeKind.NONEXISTENT and self.nonexistent is NonexistentTimePolicy.REJECT) or (
            kind is LocalTimeKind.AMBIGUOUS and self.ambiguous is AmbiguousTimePolicy.REJECT
        )

    @property
    def skipped(self) -> bool:
        """True when nothing should run: the time was skipped by ``Skip`` or refused by ``Reject``."""
        gap_skip = (
            self.local.kind is LocalTimeKind.NONEXISTENT and self.nonexistent is NonexistentTimePolicy.SKIP
        )
        return gap_skip or self.rejected

    @property
    def note(self) -> str | None:
        """A sentence for people when the time was nonexistent or ambiguous, saying what was done.

        Computed on demand: it needs the exact transition, which costs a bisection.
        """
        local = self.local
        if local.kind is LocalTimeKind.NORMAL:
            return None
        transition = local.transition()
        when = _clock(local.wall)
        where = f"in {local.zone} on {local.wall:%Y-%m-%d} ({transition.describe()})"
        if local.kind is LocalTimeKind.NONEXISTENT:
            what = f"{when} does not exist {where}"
            policy = f"dstPolicy.nonexistentTime: {self.nonexistent.value}"
            if self.nonexistent is NonexistentTimePolicy.SHIFT_FORWARD:
                shifted = local.first.astimezone(local.zone)
                return (
                    f"{what}; runs at {_clock(shifted)} {shifted.tzname()}, when {when} "
                    f"{transition.name_before} would have been ({policy})"
                )
        else:
            what = f"{when} happens twice {where}"
            policy = f"dstPolicy.ambiguousTime: {self.ambiguous.value}"
            if not self.rejected:
                which = "later" if self.ambiguous is AmbiguousTimePolicy.LATER else "earlier"
                zone_abbreviation = self.instant.astimezone(local.zone).tzname()
                return f"{what}; runs once, at the {which} {when} {zone_abbreviation} ({policy})"
        return f"{what}; {'not run' if self.rejected else 'skipped'} ({policy})"


def apply_policy(
    local: LocalTime, nonexistent: NonexistentTimePolicy, ambiguous: AmbiguousTimePolicy
) -> Resolution:
    """Choose the instant for ``local`` as the policies say; the result explains any DST decision."""
    return Resolution(local, nonexistent, ambiguous)


def bound_instant(wall: datetime, zone: tzinfo, *, later: bool) -> datetime:
    """The instant a *range bound* at the naive ``wall`` time means (a freeze window's start or end).

    Once on the clock: that instant. Skipped by the clocks: the moment of the jump, the first instant
    whose clock reads at or after ``wall``, so a range covers exactly the instants whose wall clock reads
    inside it. Shown twice: the earlier instant, or the later one if ``later``.
    """
    local = resolve_local(wall, zone)
    if local.kind is LocalTimeKind.NONEXISTENT:
        return local.transition().at
    if local.kind is LocalTimeKind.AMBIGUOUS and later:
        return local.second
    return local.first


def _clock(moment: datetime) -> str:
    return moment.strftime("%H:%M:%S" if moment.second else "%H:%M")


def require_aware(moment: datetime) -> None:
    """Refuse a naive datetime: every instant in and out of the time engine is aware."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"the time engine needs timezone-aware instants, got {moment.isoformat()}")


def clock_of(instant: datetime, zone: tzinfo) -> str:
    """``03:30 EDT``: the wall clock and zone abbreviation at ``instant``, for messages."""
    local = instant.astimezone(zone)
    return f"{local:%H:%M} {local.tzname()}"
