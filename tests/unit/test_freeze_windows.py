"""The freeze engine at fixed instants: weekly windows through both DST changes in several zones, one-off
windows with a bound in a gap or a fold, whole days of 23 and 25 hours, cron windows of elapsed time.

The tables hold instants worked out by hand from each zone's rules (as test_wallclock.py does); the property
test checks the engine against an oracle that knows nothing of its bounds: it reads the wall clock of an
instant and asks whether that reading lies in the weekly range.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sundial.api.freezes import ReleaseFreezeSpec
from sundial.api.reasons import Reason, SpecError
from sundial.timing.freezes import (
    Window,
    compile_rules,
    merge,
    next_window,
    window_at,
    windows_between,
)

HOUR = timedelta(hours=1)
WEEKEND = {"startDay": "Friday", "startTime": "18:00", "endDay": "Monday", "endTime": "08:00"}


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def rules(**spec: Any) -> Any:
    return compile_rules(ReleaseFreezeSpec.model_validate({"reason": "test", **spec}))


def weekend_in(zone: str) -> Any:
    return rules(timeZone=zone, weekly=[WEEKEND])


# zone, the Friday, start (UTC), end (UTC), hours
WEEKENDS = [
    # Europe/Berlin goes forward on 2027-03-28 and back on 2027-10-31 (last Sundays).
    ("Europe/Berlin", "2027-03-19", "2027-03-19T17:00", "2027-03-22T07:00", 62),
    ("Europe/Berlin", "2027-03-26", "2027-03-26T17:00", "2027-03-29T06:00", 61),
    ("Europe/Berlin", "2027-04-02", "2027-04-02T16:00", "2027-04-05T06:00", 62),
    ("Europe/Berlin", "2027-10-22", "2027-10-22T16:00", "2027-10-25T06:00", 62),
    ("Europe/Berlin", "2027-10-29", "2027-10-29T16:00", "2027-11-01T07:00", 63),
    ("Europe/Berlin", "2027-11-05", "2027-11-05T17:00", "2027-11-08T07:00", 62),
    # America/New_York goes forward on 2027-03-14 and back on 2027-11-07 (second and first Sundays).
    ("America/New_York", "2027-03-05", "2027-03-05T23:00", "2027-03-08T13:00", 62),
    ("America/New_York", "2027-03-12", "2027-03-12T23:00", "2027-03-15T12:00", 61),
    ("America/New_York", "2027-03-19", "2027-03-19T22:00", "2027-03-22T12:00", 62),
    ("America/New_York", "2027-11-05", "2027-11-05T22:00", "2027-11-08T13:00", 63),
    ("America/New_York", "2027-11-12", "2027-11-12T23:00", "2027-11-15T13:00", 62),
    # Australia/Sydney, southern hemisphere: forward on 2027-10-03, back on 2027-04-04 (first Sundays).
    ("Australia/Sydney", "2027-04-02", "2027-04-02T07:00", "2027-04-04T22:00", 63),
    ("Australia/Sydney", "2027-10-01", "2027-10-01T08:00", "2027-10-03T21:00", 61),
    # Asia/Tokyo has no DST: every weekend is 62 hours.
    ("Asia/Tokyo", "2027-03-26", "2027-03-26T09:00", "2027-03-28T23:00", 62),
]


@pytest.mark.parametrize(("zone", "friday", "start", "end", "hours"), WEEKENDS)
def test_a_weekly_friday_to_monday_freeze_follows_the_clock_through_dst(
    zone: str, friday: str, start: str, end: str, hours: int
) -> None:
    weekend = weekend_in(zone)
    monday_noon = utc(friday) + timedelta(days=3, hours=12)
    [window] = [w for w in windows_between(weekend, utc(friday), monday_noon) if w.start >= utc(friday)]
    assert (window.start, window.end) == (utc(start), utc(end))
    assert window.end - window.start == hours * HOUR
    assert window.rule == "weekly Friday 18:00 to Monday 08:00"
    # Covered from its first instant, not at its end, and the same window is found from inside it.
    assert window_at(weekend, utc(start)) == window
    assert window_at(weekend, utc(end) - timedelta(seconds=1)) == window
    assert window_at(weekend, utc(end)) is None
    assert window_at(weekend, utc(start) - timedelta(seconds=1)) is None
    assert next_window(weekend, utc(start) - timedelta(seconds=1)) == window


ZONES = ["Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Kolkata", "America/Sao_Paulo"]
WEEK_START = (4, time(18, 0))  # Friday 18:00 (Monday is 0)
WEEK_END = (0, time(8, 0))  # Monday 08:00


def oracle_weekend(instant: datetime, zone: str) -> bool:
    """Is the wall clock at ``instant`` between Friday 18:00 and Monday 08:00? No knowledge of bounds."""
    local = instant.astimezone(ZoneInfo(zone))
    reading = (local.weekday(), local.time())
    return reading >= WEEK_START or reading < WEEK_END


@settings(max_examples=400, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    seconds=st.integers(
        min_value=int(utc("2026-01-01T00:00").timestamp()), max_value=int(utc("2031-01-01T00:00").timestamp())
    ),
)
def test_the_weekly_window_covers_exactly_the_instants_whose_clock_reads_inside_it(
    zone: str, seconds: int
) -> None:
    instant = datetime.fromtimestamp(seconds, UTC)
    assert (window_at(weekend_in(zone), instant) is not None) == oracle_weekend(instant, zone)


# A one-off window with a bound the clocks skip or repeat (America/New_York, 2027).
ONE_OFFS = [
    # From before the spring gap to after it: 01:30 EST to 03:30 EDT is one real hour.
    ("2027-03-14T01:30", "2027-03-14T03:30", "Earlier", "2027-03-14T06:30", "2027-03-14T07:30"),
    # A bound in the gap is the jump itself (07:00Z, the clock showing 03:00 EDT), not ShiftForward's 03:30.
    ("2027-03-14T02:30", "2027-03-14T05:00", "Earlier", "2027-03-14T07:00", "2027-03-14T09:00"),
    ("2027-03-14T00:00", "2027-03-14T02:15", "Earlier", "2027-03-14T05:00", "2027-03-14T07:00"),
    # A bound in the autumn fold is the first or the second 01:30, as ambiguousTime says.
    ("2027-11-07T00:00", "2027-11-07T01:30", "Earlier", "2027-11-07T04:00", "2027-11-07T05:30"),
    ("2027-11-07T00:00", "2027-11-07T01:30", "Later", "2027-11-07T04:00", "2027-11-07T06:30"),
    ("2027-11-07T01:30", "2027-11-07T03:00", "Later", "2027-11-07T06:30", "2027-11-07T08:00"),
    # An absolute bound is taken as it is.
    ("2027-11-07T05:45:00Z", "2027-11-07T01:30", "Later", "2027-11-07T05:45", "2027-11-07T06:30"),
]


@pytest.mark.parametrize(("start", "end", "ambiguous", "utc_start", "utc_end"), ONE_OFFS)
def test_a_one_off_window_resolves_each_bound_in_gaps_and_folds(
    start: str, end: str, ambiguous: str, utc_start: str, utc_end: str
) -> None:
    frozen = rules(timeZone="America/New_York", ambiguousTime=ambiguous, windows=[{"from": start, "to": end}])
    [window] = frozen.fixed
    assert (window.start, window.end) == (utc(utc_start), utc(utc_end))


# Whole days are 00:00 to 24:00 on the zone's clock.
DAYS = [
    ("America/New_York", "2027-03-14", "2027-03-14T05:00", 23),
    ("America/New_York", "2027-11-07", "2027-11-07T04:00", 25),
    ("America/New_York", "2027-12-24", "2027-12-24T05:00", 24),
    ("Europe/Berlin", "2027-03-28", "2027-03-27T23:00", 23),
    ("Europe/Berlin", "2027-10-31", "2027-10-30T22:00", 25),
    # Sao Paulo in 2018 went forward at midnight: the day began at 01:00, and 00:00 is the jump.
    ("America/Sao_Paulo", "2018-11-04", "2018-11-04T03:00", 23),
]


@pytest.mark.parametrize(("zone", "day", "start", "hours"), DAYS)
def test_a_date_freezes_the_whole_local_day_of_23_24_or_25_hours(
    zone: str, day: str, start: str, hours: int
) -> None:
    [window] = rules(timeZone=zone, dates=[day]).fixed
    assert window.start == utc(start)
    assert window.end - window.start == hours * HOUR
    assert window.rule == f"all day {day}"


def test_a_cron_window_lasts_its_duration_in_elapsed_time_across_a_change() -> None:
    nightly = rules(timeZone="America/New_York", recurring=[{"schedule": "0 22 * * *", "duration": "4h"}])
    found = windows_between(nightly, utc("2027-03-13T12:00"), utc("2027-03-15T12:00"))
    assert [(w.start, w.end) for w in found] == [
        (utc("2027-03-14T03:00"), utc("2027-03-14T07:00")),  # 22:00 EST, then 4 real hours: 03:00 EDT
        (utc("2027-03-15T02:00"), utc("2027-03-15T06:00")),  # 22:00 EDT
    ]
    assert found[0].rule == "every '0 22 * * *' for 4h"


def test_windows_that_touch_or_overlap_merge_and_a_merged_window_is_reported_whole() -> None:
    frozen = rules(
        timeZone="UTC",
        windows=[
            {"from": "2027-12-20T00:00", "to": "2027-12-24T00:00"},
            {"from": "2027-12-24T00:00", "to": "2027-12-26T00:00"},
            {"from": "2027-12-25T12:00", "to": "2027-12-27T00:00"},
            {"from": "2027-12-30T00:00", "to": "2027-12-31T00:00"},
        ],
    )
    windows = windows_between(frozen, utc("2027-12-26T00:00"), utc("2027-12-31T00:00"))
    assert [(w.start, w.end) for w in windows] == [
        (utc("2027-12-20T00:00"), utc("2027-12-27T00:00")),
        (utc("2027-12-30T00:00"), utc("2027-12-31T00:00")),
    ]
    assert next_window(frozen, utc("2027-12-21T00:00")) == windows[1]
    assert next_window(frozen, utc("2027-12-30T00:00")) is None
    assert merge([Window(utc("2027-01-02T00:00"), utc("2027-01-03T00:00"))]) == [
        Window(utc("2027-01-02T00:00"), utc("2027-01-03T00:00"))
    ]


def test_a_yearly_date_is_found_as_the_next_window_up_to_a_year_ahead() -> None:
    frozen = rules(timeZone="Europe/Berlin", recurring=[{"schedule": "0 0 24 12 *", "duration": "72h"}])
    window = next_window(frozen, utc("2027-01-01T00:00"))
    assert window is not None and window.start == utc("2027-12-23T23:00")
    assert window.end == utc("2027-12-26T23:00")


@pytest.mark.parametrize(
    ("spec", "reason", "words"),
    [
        ({"timeZone": "CEST", "dates": ["2027-12-24"]}, Reason.INVALID_TIME_ZONE, "abbreviation"),
        (
            {"weekly": [{**WEEKEND, "endDay": "Friday", "endTime": "18:00"}]},
            Reason.INVALID_FREEZE_WINDOW,
            "whole week",
        ),
        (
            {"windows": [{"from": "2027-12-24T00:00", "to": "2027-12-23T00:00"}]},
            Reason.INVALID_FREEZE_WINDOW,
            "make to later than from",
        ),
        (
            {"windows": [{"from": "2027-02-30T00:00", "to": "2027-03-01T00:00"}]},
            Reason.INVALID_FREEZE_WINDOW,
            "spec.windows[0].from",
        ),
        ({"recurring": [{"schedule": "0 25 * * *", "duration": "1h"}]}, Reason.INVALID_SCHEDULE, "hour"),
        ({"recurring": [{"schedule": "0 2 * * *", "duration": "800h"}]}, Reason.INVALID_SPEC, "31 days"),
    ],
)
def test_a_freeze_that_cannot_be_computed_says_which_field_and_what_to_write(
    spec: dict[str, Any], reason: Reason, words: str
) -> None:
    with pytest.raises(SpecError) as raised:
        rules(**spec)
    assert raised.value.invalid.reason is reason
    assert words in raised.value.invalid.message


def test_the_spec_needs_a_window_and_refuses_an_impossible_date_or_selector() -> None:
    with pytest.raises(ValueError, match="at least one of weekly, recurring, windows, dates or calendar"):
        ReleaseFreezeSpec.model_validate({"reason": "nothing"})
    with pytest.raises(ValueError, match="not a date on the calendar"):
        ReleaseFreezeSpec.model_validate({"reason": "x", "dates": ["2027-02-30"]})
    with pytest.raises(ValueError, match="needs at least one value"):
        ReleaseFreezeSpec.model_validate(
            {
                "reason": "x",
                "dates": ["2027-12-24"],
                "selector": {"matchExpressions": [{"key": "a", "operator": "In"}]},
            }
        )


def test_a_freeze_that_is_always_on_is_one_window_reaching_the_horizon_and_has_no_next() -> None:
    """Weekly windows that touch (Monday 00:00 to Monday 00:00 a week later is refused; these overlap):
    one merged window, reported as reaching 400 days past the asked span, found without a scan per day."""
    always = rules(
        timeZone="Europe/Berlin",
        weekly=[
            {"startDay": "Monday", "startTime": "00:00", "endDay": "Thursday", "endTime": "12:00"},
            {"startDay": "Thursday", "startTime": "12:00", "endDay": "Monday", "endTime": "00:00"},
        ],
    )
    instant = utc("2027-06-01T12:00")
    window = window_at(always, instant)
    assert window is not None
    assert window.start <= instant - timedelta(days=399) and window.end >= instant + timedelta(days=399)
    assert next_window(always, instant) is None
