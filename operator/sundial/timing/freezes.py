"""Freeze windows: when a ReleaseFreeze is on, as half-open ranges of UTC instants.

Pure: every function takes the instants it needs and never reads the clock.

Notes
-----
**What a window covers.** A window is written in wall-clock terms (Friday 18:00 to Monday 08:00 in
Europe/Berlin; 2027-12-24; 2027-03-28T01:30 to 03:30) and covers one contiguous range of instants
``[start, end)``. Each bound is resolved on its own:

* a bound at a wall time that happens once is that instant;
* a bound the clocks skip (02:30 when they jump from 02:00 to 03:00) is the moment of the jump, the first
  instant whose clock reads at or after it, so the window covers exactly the instants whose wall clock
  reads inside it. (A schedule's ShiftForward would put a *run* at 03:30; a freeze has no run to keep, and
  starting it half an hour late, or ending it half an hour late, would be the surprise.) Skip and Reject
  make no sense for a bound: a freeze is never dropped because one of its ends is not on the clock;
* a bound the clocks show twice is the earlier or the later instant, as ``ambiguousTime`` says.

Lengths therefore follow the clock: a weekly Friday-18:00-to-Monday-08:00 window is 62 hours, 61 over the
weekend the clocks go forward and 63 over the one they go back; a whole day is 23 or 25 hours on those days.
A recurring window (cron start plus duration) lasts its duration in elapsed time, like a dependency's lead.

Overlapping and touching windows are merged, across the rules of one freeze and, for Defer, across
freezes: a run deferred by one window that another continues waits for both.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sundial.api.freezes import (
    MAX_RECURRING_DURATION_HOURS,
    FreezeAmbiguousTime,
    ReleaseFreezeSpec,
    Weekday,
)
from sundial.api.reasons import Reason, SpecError
from sundial.timing.calendars import Calendar, calendar_windows
from sundial.timing.cron import parse_run_at, parse_schedule, walls
from sundial.timing.dependencies import parse_lead_time
from sundial.timing.wallclock import bound_instant, load_zone, require_aware

HORIZON = timedelta(days=400)
"""How far ahead `next_window` looks: beyond a year, so a yearly date is always found."""

MAX_RECURRING_DURATION = timedelta(hours=MAX_RECURRING_DURATION_HOURS)


@dataclass(frozen=True, order=True)
class Window:
    """One range of instants a freeze covers, ``[start, end)``, UTC."""

    start: datetime
    end: datetime
    rule: str = ""
    """Which rule of the freeze made it, for people: ``weekly Friday 18:00 to Monday 08:00``."""

    def covers(self, instant: datetime) -> bool:
        return self.start <= instant < self.end


@dataclass(frozen=True)
class Weekly:
    start_day: int
    start_time: time
    end_day: int
    end_time: time

    def describe(self) -> str:
        days = list(Weekday)
        return (
            f"weekly {days[self.start_day].value} {self.start_time:%H:%M} to "
            f"{days[self.end_day].value} {self.end_time:%H:%M}"
        )


@dataclass(frozen=True)
class Recurring:
    expression: str
    text: str
    duration: timedelta

    def describe(self) -> str:
        return f"every {self.text!r} for {_hours(self.duration)}"


@dataclass(frozen=True)
class FreezeRules:
    """One freeze's windows, checked and compiled: everything the engine needs to know about it."""

    zone: ZoneInfo
    later: bool
    """ambiguousTime: Later."""
    weekly: tuple[Weekly, ...] = ()
    recurring: tuple[Recurring, ...] = ()
    fixed: tuple[Window, ...] = ()
    """One-off windows and whole dates, already resolved (they do not repeat)."""
    calendar: Calendar | None = None
    """A holiday calendar's events (`sundial.timing.calendars`)."""

    def __hash__(self) -> int:
        # Computed once: the rules are the key of the per-day window cache, looked up several times a plan,
        # and hashing 400 dates each time was most of a plan's cost.
        cached: int | None = self.__dict__.get("_hash")
        if cached is None:
            cached = hash((self.zone, self.later, self.weekly, self.recurring, self.fixed, self.calendar))
            object.__setattr__(self, "_hash", cached)
        return cached


def compile_rules(spec: ReleaseFreezeSpec, calendar: Calendar | None = None) -> FreezeRules:
    """Check a freeze's spec and compile its windows; raises `SpecError` with the specific reason.

    ``calendar`` is the parsed file ``spec.calendar`` names (`sundial.timing.calendars.parse_calendar`),
    which the caller read; a spec that names one needs it."""
    if spec.calendar is not None and calendar is None:
        raise SpecError(
            Reason.CALENDAR_NOT_FOUND,
            f"spec.calendar names ConfigMap {spec.calendar.config_map_name!r}, key {spec.calendar.key!r}, "
            "which was not read (it does not exist, or has no such key); create it with the .ics file's text "
            "under that key",
        )
    zone = load_zone(spec.time_zone)
    later = spec.ambiguous_time is FreezeAmbiguousTime.LATER
    weekly = []
    for index, rule in enumerate(spec.weekly or ()):
        compiled = Weekly(
            rule.start_day.number, _clock(rule.start_time), rule.end_day.number, _clock(rule.end_time)
        )
        if compiled.start_day == compiled.end_day and compiled.start_time == compiled.end_time:
            raise SpecError(
                Reason.INVALID_FREEZE_WINDOW,
                f"spec.weekly[{index}] starts and ends at {rule.start_day.value} {rule.start_time}, which "
                "would be a whole week; to freeze all the time use a one-off window (spec.windows)",
            )
        weekly.append(compiled)
    recurring = []
    for index, cron in enumerate(spec.recurring or ()):
        expression = parse_schedule(cron.schedule)
        duration = parse_lead_time(cron.duration, field=f"spec.recurring[{index}].duration")
        if duration <= timedelta(0) or duration > MAX_RECURRING_DURATION:
            raise SpecError(
                Reason.INVALID_FREEZE_WINDOW,
                f"spec.recurring[{index}].duration {cron.duration!r} must be longer than 0s and at most "
                f"{MAX_RECURRING_DURATION_HOURS}h (31 days); for a longer freeze use a one-off window",
            )
        recurring.append(Recurring(expression, cron.schedule, duration))
    fixed: list[Window] = []
    for index, window in enumerate(spec.windows or ()):
        start = _bound(window.from_, zone, later, f"spec.windows[{index}].from")
        end = _bound(window.to, zone, later, f"spec.windows[{index}].to")
        if end <= start:
            raise SpecError(
                Reason.INVALID_FREEZE_WINDOW,
                f"spec.windows[{index}] ends ({window.to}) no later than it starts ({window.from_}) in "
                f"{spec.time_zone}; make to later than from",
            )
        fixed.append(Window(start, end, f"from {window.from_} to {window.to}"))
    for text in spec.dates or ():
        day = date.fromisoformat(text)
        fixed.append(whole_day(day, zone, later))
    return FreezeRules(zone, later, tuple(weekly), tuple(recurring), tuple(sorted(fixed)), calendar)


def whole_day(day: date, zone: ZoneInfo, later: bool, rule: str | None = None) -> Window:
    """The local day ``day`` in ``zone``: from its 00:00 to the next day's 00:00 (23 to 25 hours)."""
    start = bound_instant(datetime.combine(day, time()), zone, later=later)
    end = bound_instant(datetime.combine(day + timedelta(days=1), time()), zone, later=later)
    return Window(start, end, rule or f"all day {day.isoformat()}")


def _clock(text: str) -> time:
    return time(int(text[:2]), int(text[3:5]))


def _hours(duration: timedelta) -> str:
    minutes = duration // timedelta(minutes=1)
    hours, rest = divmod(minutes, 60)
    return f"{hours}h{rest:02d}m" if rest else f"{hours}h"


def _bound(text: str, zone: ZoneInfo, later: bool, field: str) -> datetime:
    try:
        moment = parse_run_at(text)
    except SpecError as error:
        raise SpecError(Reason.INVALID_FREEZE_WINDOW, f"{field}: {error.invalid.message}") from error
    if moment.tzinfo is not None:
        return moment.astimezone(UTC)
    return bound_instant(moment, zone, later=later)


# ------------------------------------------------------------------------------------------ generation


@functools.lru_cache(maxsize=4096)
def _weekly_on(rule: Weekly, zone: ZoneInfo, later: bool, day: date) -> Window | None:
    """The window of ``rule`` that opens on the local date ``day``, if it opens that day."""
    if day.weekday() != rule.start_day:
        return None
    start_wall = datetime.combine(day, rule.start_time)
    end_wall = datetime.combine(day + timedelta(days=(rule.end_day - rule.start_day) % 7), rule.end_time)
    if end_wall <= start_wall:
        end_wall += timedelta(days=7)
    start = bound_instant(start_wall, zone, later=later)
    return Window(start, bound_instant(end_wall, zone, later=later), rule.describe())


@functools.lru_cache(maxsize=4096)
def _recurring_on(rule: Recurring, zone: ZoneInfo, later: bool, day: date) -> tuple[Window, ...]:
    """The windows of ``rule`` whose start wall time falls on the local date ``day``."""
    found = []
    midnight = datetime.combine(day, time())
    for wall in walls(rule.expression, midnight - timedelta(minutes=1), forward=True):
        if wall.date() != day:
            break
        start = bound_instant(wall, zone, later=later)
        found.append(Window(start, start + rule.duration, rule.describe()))
    return tuple(found)


def _local_dates(start: datetime, end: datetime, zone: ZoneInfo, reach_back: timedelta) -> Iterable[date]:
    """Every local date on which a window that could reach into ``[start, end)`` may open."""
    first = (start - reach_back).astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date() + timedelta(days=1)
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


def _reach(rules: FreezeRules) -> timedelta:
    """The longest a repeating window of ``rules`` can last."""
    longest = [timedelta(days=8) if rules.weekly else timedelta(0)]
    longest += [rule.duration for rule in rules.recurring]
    return max(longest)


def raw_windows(rules: FreezeRules, start: datetime, end: datetime) -> list[Window]:
    """Every window of ``rules`` that overlaps ``[start, end)``, unmerged, in order."""
    require_aware(start)
    require_aware(end)
    found: list[Window] = [window for window in rules.fixed if window.start < end and window.end > start]
    if rules.calendar is not None:
        events = calendar_windows(rules.calendar, rules.zone, later=rules.later, start=start, end=end)
        found.extend(Window(opens, closes, rule) for opens, closes, rule in events)
    if rules.weekly or rules.recurring:
        for day in _local_dates(start, end, rules.zone, _reach(rules)):
            for weekly in rules.weekly:
                window = _weekly_on(weekly, rules.zone, rules.later, day)
                if window is not None and window.start < end and window.end > start:
                    found.append(window)
            for recurring in rules.recurring:
                found.extend(
                    window
                    for window in _recurring_on(recurring, rules.zone, rules.later, day)
                    if window.start < end and window.end > start
                )
    return sorted(set(found))


def merge(windows: Iterable[Window]) -> list[Window]:
    """Overlapping or touching windows joined into one; the first one's rule names the joined window."""
    merged: list[Window] = []
    for window in sorted(windows):
        if merged and window.start <= merged[-1].end:
            last = merged[-1]
            if window.end > last.end:
                merged[-1] = Window(last.start, window.end, last.rule)
        else:
            merged.append(window)
    return merged


def windows_between(rules: FreezeRules, start: datetime, end: datetime) -> list[Window]:
    """The merged windows of ``rules`` that overlap ``[start, end)``, whole (they may reach outside it)."""
    # Merged over a span that grows (doubling its margin) until no window concerned touches its edges, so
    # that a window is reported whole even where pieces far outside the asked span continue it.
    margin = _reach(rules) + timedelta(days=1)
    lo, hi = start - margin, end + margin
    concerned: list[Window] = []
    for _ in range(MAX_GROWTH):
        concerned = [w for w in merge(raw_windows(rules, lo, hi)) if w.start < end and w.end > start]
        first_start = concerned[0].start if concerned else lo + timedelta.resolution
        last_end = concerned[-1].end if concerned else hi - timedelta.resolution
        if first_start > lo and last_end < hi:
            return concerned
        margin *= 2
        lo = max(min(lo, first_start - margin), start - MAX_REACH)
        hi = min(max(hi, last_end + margin), end + MAX_REACH)
        if (lo, hi) == (start - MAX_REACH, end + MAX_REACH):
            # A window longer than that is reported as reaching that far (a freeze on for over a year).
            return [w for w in merge(raw_windows(rules, lo, hi)) if w.start < end and w.end > start]
    return concerned


MAX_REACH = timedelta(days=400)
"""How far beyond the asked span `windows_between` looks for where a window begins or ends."""

MAX_GROWTH = 16
"""How often `windows_between` widens its span to find where a window ends, doubling the margin each time
(a loop guard: 16 doublings of a day are 180 years)."""


def window_at(rules: FreezeRules, instant: datetime) -> Window | None:
    """The merged window covering ``instant``, or None when the freeze is off then."""
    require_aware(instant)
    windows = _windows_of_day(rules, instant.astimezone(UTC).date())
    return next((window for window in windows if window.covers(instant)), None)


@functools.lru_cache(maxsize=8192)
def _windows_of_day(rules: FreezeRules, day: date) -> tuple[Window, ...]:
    """The merged windows overlapping the UTC day ``day``: every plan of a day asks about the same few."""
    start = datetime.combine(day, time(), UTC)
    return tuple(windows_between(rules, start, start + timedelta(days=1)))


def next_window(rules: FreezeRules, after: datetime, horizon: timedelta = HORIZON) -> Window | None:
    """The first merged window that opens strictly after ``after`` (within ``horizon``), or None."""
    require_aware(after)
    step = timedelta(days=14)
    lo, limit = after, after + horizon
    while lo < limit:
        hi = min(lo + step, limit)
        found = windows_between(rules, lo, hi)
        later = [window for window in found if window.start > after]
        if later:
            return later[0]
        # A window on at ``after`` (or merged with one) is passed whole: look on from its end.
        lo = max([hi, *(window.end for window in found)])
    return None


def covering_end(windows: Sequence[Window], instant: datetime) -> datetime | None:
    """Where the merged run of ``windows`` that covers ``instant`` ends; None when none covers it."""
    for window in merge(windows):
        if window.covers(instant):
            return window.end
    return None
