"""Holiday calendars (RFC 5545 .ics) as freeze windows, at fixed instants: all-day events are whole local days
in the freeze's zone through DST changes, a multi-day event is one window, a yearly event recurs, a timed
event keeps its own zone, a floating one takes the freeze's; broken or missing calendars say what to do."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sundial.api.freezes import ReleaseFreezeSpec
from sundial.api.reasons import Invalid, Reason, SpecError
from sundial.decide.freezes import Freeze, calendar_ref, read_freeze
from sundial.timing.calendars import parse_calendar
from sundial.timing.freezes import compile_rules, next_window, window_at, windows_between

HOUR = timedelta(hours=1)


def ics(*events: str) -> str:
    return "\r\n".join(
        ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Sundial tests//EN", *events, "END:VCALENDAR"]
    )


def event(uid: str, *lines: str) -> str:
    return "\r\n".join(["BEGIN:VEVENT", f"UID:{uid}", "DTSTAMP:20260101T000000Z", *lines, "END:VEVENT"])


HOLIDAYS = ics(
    event("xmas", "SUMMARY:Christmas", "DTSTART;VALUE=DATE:20271224", "DTEND;VALUE=DATE:20271227"),
    event("new-year", "SUMMARY:New Year", "DTSTART;VALUE=DATE:20270101", "RRULE:FREQ=YEARLY"),
    # The Sundays the clocks change in Europe/Berlin in 2027, as all-day events.
    event("spring", "SUMMARY:Clocks forward", "DTSTART;VALUE=DATE:20270328"),
    event("autumn", "SUMMARY:Clocks back", "DTSTART;VALUE=DATE:20271031"),
    # A timed event in New York across that zone's spring gap; one with no zone (floating).
    event(
        "gap",
        "SUMMARY:Migration",
        "DTSTART;TZID=America/New_York:20270314T013000",
        "DTEND;TZID=America/New_York:20270314T033000",
    ),
    event("floating", "SUMMARY:Board meeting", "DTSTART:20270601T090000", "DTEND:20270601T120000"),
    event("instant", "SUMMARY:Nothing", "DTSTART:20270701T090000Z"),
)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def rules(text: str = HOLIDAYS, zone: str = "Europe/Berlin") -> Any:
    spec = ReleaseFreezeSpec.model_validate(
        {"reason": "holidays", "timeZone": zone, "calendar": {"configMapName": "holidays"}}
    )
    return compile_rules(spec, parse_calendar(text, "ConfigMap shop/holidays, key calendar.ics"))


# instant inside, window start, window end (UTC), hours, rule
CASES = [
    (
        "2027-12-25T12:00",
        "2027-12-23T23:00",
        "2027-12-26T23:00",
        72,
        "'Christmas' in the calendar, all day 2027-12-24 to 2027-12-26",
    ),
    (
        "2027-01-01T10:00",
        "2026-12-31T23:00",
        "2027-01-01T23:00",
        24,
        "'New Year' in the calendar, all day 2027-01-01",
    ),
    (
        "2031-01-01T10:00",
        "2030-12-31T23:00",
        "2031-01-01T23:00",
        24,
        "'New Year' in the calendar, all day 2031-01-01",
    ),
    (
        "2027-03-28T12:00",
        "2027-03-27T23:00",
        "2027-03-28T22:00",
        23,
        "'Clocks forward' in the calendar, all day 2027-03-28",
    ),
    (
        "2027-10-31T12:00",
        "2027-10-30T22:00",
        "2027-10-31T23:00",
        25,
        "'Clocks back' in the calendar, all day 2027-10-31",
    ),
    # 01:30 EST to 03:30 EDT: one real hour, in New York's zone whatever the freeze's.
    ("2027-03-14T07:00", "2027-03-14T06:30", "2027-03-14T07:30", 1, "'Migration' in the calendar"),
    # Floating: 09:00 to 12:00 on Berlin's clock (CEST in June).
    ("2027-06-01T08:00", "2027-06-01T07:00", "2027-06-01T10:00", 3, "'Board meeting' in the calendar"),
]


@pytest.mark.parametrize(("inside", "start", "end", "hours", "rule"), CASES)
def test_calendar_events_are_freeze_windows_in_the_freezes_zone(
    inside: str, start: str, end: str, hours: int, rule: str
) -> None:
    window = window_at(rules(), utc(inside))
    assert window is not None
    assert (window.start, window.end) == (utc(start), utc(end))
    assert window.end - window.start == hours * HOUR
    assert window.rule == rule


def test_an_event_of_no_length_and_the_days_between_events_freeze_nothing() -> None:
    calendar = rules()
    assert window_at(calendar, utc("2027-07-01T09:00")) is None
    assert window_at(calendar, utc("2027-12-27T00:00")) is None
    assert next_window(calendar, utc("2027-12-27T00:00")) == window_at(calendar, utc("2028-01-01T12:00"))


def test_the_same_holiday_in_another_zone_is_that_zones_day() -> None:
    [window] = [
        w for w in windows_between(rules(zone="Asia/Tokyo"), utc("2027-12-25T00:00"), utc("2027-12-25T01:00"))
    ]
    assert (window.start, window.end) == (utc("2027-12-23T15:00"), utc("2027-12-26T15:00"))


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("not a calendar", "is not an iCalendar file"),
        (ics(event("bad", "DTSTART;VALUE=DATE:20271324")), "cannot be read"),
        ("BEGIN:VCARD\r\nVERSION:3.0\r\nEND:VCARD", "does not begin with BEGIN:VCALENDAR"),
        (ics(event("big", "SUMMARY:" + "x" * 600_000, "DTSTART;VALUE=DATE:20271224")), "larger than 512 KiB"),
    ],
)
def test_a_calendar_that_cannot_be_read_says_so_and_names_the_configmap(text: str, words: str) -> None:
    with pytest.raises(SpecError) as raised:
        parse_calendar(text, "ConfigMap shop/holidays, key calendar.ics")
    assert raised.value.invalid.reason is Reason.INVALID_CALENDAR
    assert words in raised.value.invalid.message
    assert "ConfigMap shop/holidays, key calendar.ics" in raised.value.invalid.message


def freeze_body(kind: str = "ReleaseFreeze", **calendar: str) -> dict[str, Any]:
    metadata = {"name": "holidays"} | ({"namespace": "shop"} if kind == "ReleaseFreeze" else {})
    return {
        "kind": kind,
        "metadata": metadata,
        "spec": {
            "reason": "holidays",
            "timeZone": "Europe/Berlin",
            "calendar": {"configMapName": "holidays", **calendar},
        },
    }


def test_a_freeze_names_the_configmap_to_read_and_is_valid_once_it_is_read() -> None:
    assert calendar_ref(freeze_body()) == ("shop", "holidays", "calendar.ics")
    assert calendar_ref(freeze_body("ClusterReleaseFreeze", namespace="ops", key="days.ics")) == (
        "ops",
        "holidays",
        "days.ics",
    )
    missing = read_freeze(freeze_body())
    assert isinstance(missing, Invalid) and missing.reason is Reason.CALENDAR_NOT_FOUND
    assert "ConfigMap 'holidays', key 'calendar.ics'" in missing.message
    compiled = read_freeze(freeze_body(), HOLIDAYS)
    assert isinstance(compiled, Freeze)
    assert window_at(compiled.rules, utc("2027-12-25T12:00")) is not None


def test_a_calendar_in_another_namespace_needs_the_cluster_kind_and_the_cluster_kind_needs_one() -> None:
    elsewhere = read_freeze(freeze_body(namespace="ops"), HOLIDAYS)
    assert (
        isinstance(elsewhere, Invalid) and "reads ConfigMaps of its own namespace only" in elsewhere.message
    )
    unnamed = read_freeze(freeze_body("ClusterReleaseFreeze"), HOLIDAYS)
    assert isinstance(unnamed, Invalid) and "spec.calendar.namespace is required" in unnamed.message
