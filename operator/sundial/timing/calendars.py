"""Holiday calendars for release freezes: the windows an iCalendar (RFC 5545) file names.

People keep holidays and change freezes in their calendar tools and export them as ``.ics``; a freeze can
take its days from such a file (kept in a ConfigMap, read by the operator). Parsing is icalendar's, and
recurrence (RRULE, RDATE, EXDATE) recurring-ical-events'. What an event means here:

* an **all-day event** (DTSTART is a date) freezes whole local days *in the freeze's zone*, from 00:00 of
  its first day to 00:00 after its last (DTEND is exclusive, as RFC 5545 says; without one, one day): a
  holiday is a day where the freeze is, whatever zone the calendar was exported from;
* a **timed event** with a zone (TZID or UTC) is that range of instants; a bound the clocks skip or repeat
  in that zone is resolved as every freeze bound is (`sundial.timing.wallclock.bound_instant`);
* a **floating** timed event (no zone) is read on the freeze's wall clock;
* an event of no length freezes nothing.

Pure: the text is an argument (the operator reads the ConfigMap), and nothing reads the clock.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import recurring_ical_events

from sundial.api.reasons import Reason, SpecError
from sundial.timing.wallclock import bound_instant

MAX_CALENDAR_BYTES = 512 * 1024
"""A ConfigMap holds at most 1 MiB; a calendar of holidays is a few kilobytes. Bigger is refused."""
MAX_EVENTS_PER_QUERY = 10_000
"""A loop guard: a calendar whose events recur every minute is not a holiday calendar."""


@dataclass(frozen=True)
class Calendar:
    """A parsed calendar, compared by its text (two freezes reading the same file hold equal calendars)."""

    text: str
    source: str
    """Where it came from, for people: ``ConfigMap shop/holidays, key calendar.ics``."""
    parsed: Any = field(default=None, compare=False, hash=False, repr=False)


def parse_calendar(text: str, source: str) -> Calendar:
    """Check and parse ``text``; raises `SpecError` with ``InvalidCalendar`` and what is wrong."""
    if len(text.encode("utf-8", "replace")) > MAX_CALENDAR_BYTES:
        raise SpecError(
            Reason.INVALID_CALENDAR,
            f"{source} is larger than {MAX_CALENDAR_BYTES // 1024} KiB; a holiday calendar is a few "
            "kilobytes (export only the calendar of freeze days)",
        )
    return Calendar(text, source, _parse(text, source))


@functools.lru_cache(maxsize=64)
def _parse(text: str, source: str) -> Any:
    try:
        calendar = icalendar.Calendar.from_ical(text)
    except (ValueError, IndexError, KeyError) as error:
        raise SpecError(
            Reason.INVALID_CALENDAR,
            f"{source} is not an iCalendar file ({error}); export the calendar as .ics (RFC 5545) and store "
            "the file's text under that key",
        ) from error
    if calendar.name != "VCALENDAR":
        raise SpecError(Reason.INVALID_CALENDAR, f"{source} does not begin with BEGIN:VCALENDAR")
    try:
        recurring_ical_events.of(calendar).between(
            datetime(2000, 1, 1, tzinfo=UTC), datetime(2000, 1, 2, tzinfo=UTC)
        )
    except Exception as error:  # the library raises many kinds for broken rules and dates
        raise SpecError(Reason.INVALID_CALENDAR, f"{source}: an event cannot be read ({error})") from error
    return calendar


def calendar_windows(
    calendar: Calendar, zone: ZoneInfo, *, later: bool, start: datetime, end: datetime
) -> list[tuple[datetime, datetime, str]]:
    """``(start, end, rule)`` of each event of ``calendar`` that overlaps ``[start, end)``, UTC."""
    parsed = calendar.parsed if calendar.parsed is not None else _parse(calendar.text, calendar.source)
    # Widened by two days: an all-day event is a local day, which can begin up to 14 hours from UTC midnight.
    query = recurring_ical_events.of(parsed).between(start - timedelta(days=2), end + timedelta(days=2))
    found = []
    for count, event in enumerate(query):
        if count >= MAX_EVENTS_PER_QUERY:
            break
        window = _event_window(event, zone, later)
        if window is not None and window[0] < end and window[1] > start:
            found.append(window)
    return found


def _event_window(event: Any, zone: ZoneInfo, later: bool) -> tuple[datetime, datetime, str] | None:
    begin = event.get("DTSTART")
    if begin is None:
        return None
    first = begin.dt
    finish = event.get("DTEND")
    last = finish.dt if finish is not None else None
    summary = str(event.get("SUMMARY") or "an event")
    if not isinstance(first, datetime):  # all-day
        assert isinstance(first, date)
        stop = (
            last if isinstance(last, date) and not isinstance(last, datetime) else first + timedelta(days=1)
        )
        opens = bound_instant(datetime.combine(first, time()), zone, later=later)
        closes = bound_instant(datetime.combine(stop, time()), zone, later=later)
        days = (stop - first).days
        what = f"{summary!r} in the calendar, all day {first.isoformat()}" + (
            f" to {(stop - timedelta(days=1)).isoformat()}" if days > 1 else ""
        )
        return (opens, closes, what) if closes > opens else None
    if last is None:
        duration = event.get("DURATION")
        last = first + duration.dt if duration is not None else first
    opens, closes = _instant(first, zone, later), _instant(last, zone, later)
    what = f"{summary!r} in the calendar"
    return (opens, closes, what) if closes > opens else None


def _instant(moment: datetime, zone: ZoneInfo, later: bool) -> datetime:
    own: tzinfo | None = moment.tzinfo
    if own is None:
        return bound_instant(moment, zone, later=later)
    if isinstance(own, ZoneInfo):
        return bound_instant(moment.replace(tzinfo=None), own, later=later)
    return moment.astimezone(UTC)
