"""Wall-clock resolution at fixed instants: every DST case, in both hemispheres and in odd zones."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from sundial.api.models import AmbiguousTimePolicy, NonexistentTimePolicy
from sundial.api.reasons import Reason, SpecError
from sundial.api.timestamps import format_local, format_utc
from sundial.timing.wallclock import LocalTimeKind, apply_policy, load_zone, resolve_local, transitions

SHIFT, SKIP, REJECT_GAP = NonexistentTimePolicy
EARLIER, LATER, REJECT_FOLD = AmbiguousTimePolicy
NORMAL, NONEXISTENT, AMBIGUOUS = LocalTimeKind


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# zone, wall time, kind, instant under ShiftForward/Earlier, instant under Later
CASES = [
    # America/New_York: second Sunday of March 02:00 EST -> 03:00 EDT; first Sunday of November back.
    ("America/New_York", "2027-03-14T01:59", NORMAL, "2027-03-14T06:59", "2027-03-14T06:59"),
    ("America/New_York", "2027-03-14T02:00", NONEXISTENT, "2027-03-14T07:00", "2027-03-14T07:00"),
    ("America/New_York", "2027-03-14T02:30", NONEXISTENT, "2027-03-14T07:30", "2027-03-14T07:30"),
    ("America/New_York", "2027-03-14T03:00", NORMAL, "2027-03-14T07:00", "2027-03-14T07:00"),
    ("America/New_York", "2027-11-07T00:59", NORMAL, "2027-11-07T04:59", "2027-11-07T04:59"),
    ("America/New_York", "2027-11-07T01:00", AMBIGUOUS, "2027-11-07T05:00", "2027-11-07T06:00"),
    ("America/New_York", "2027-11-07T01:30", AMBIGUOUS, "2027-11-07T05:30", "2027-11-07T06:30"),
    ("America/New_York", "2027-11-07T02:00", NORMAL, "2027-11-07T07:00", "2027-11-07T07:00"),
    # Europe/Berlin: last Sunday of March 02:00 CET -> 03:00 CEST; last Sunday of October 03:00 -> 02:00.
    ("Europe/Berlin", "2027-03-28T02:30", NONEXISTENT, "2027-03-28T01:30", "2027-03-28T01:30"),
    ("Europe/Berlin", "2027-10-31T02:30", AMBIGUOUS, "2027-10-31T00:30", "2027-10-31T01:30"),
    ("Europe/Berlin", "2027-10-31T03:00", NORMAL, "2027-10-31T02:00", "2027-10-31T02:00"),
    # Australia/Sydney, southern hemisphere: forward on the first Sunday of October, back in April.
    ("Australia/Sydney", "2027-10-03T02:30", NONEXISTENT, "2027-10-02T16:30", "2027-10-02T16:30"),
    ("Australia/Sydney", "2027-04-04T02:30", AMBIGUOUS, "2027-04-03T15:30", "2027-04-03T16:30"),
    ("Australia/Sydney", "2027-04-04T03:00", NORMAL, "2027-04-03T17:00", "2027-04-03T17:00"),
    # Australia/Lord_Howe shifts by 30 minutes: +10:30 <-> +11.
    ("Australia/Lord_Howe", "2027-10-03T02:15", NONEXISTENT, "2027-10-02T15:45", "2027-10-02T15:45"),
    ("Australia/Lord_Howe", "2027-10-03T02:30", NORMAL, "2027-10-02T15:30", "2027-10-02T15:30"),
    ("Australia/Lord_Howe", "2027-04-04T01:45", AMBIGUOUS, "2027-04-03T14:45", "2027-04-03T15:15"),
    # Europe/Moscow changed its rules: permanent +04 from March 2011, back to +03 in October 2014.
    ("Europe/Moscow", "2011-03-27T02:30", NONEXISTENT, "2011-03-26T23:30", "2011-03-26T23:30"),
    ("Europe/Moscow", "2011-10-30T02:30", NORMAL, "2011-10-29T22:30", "2011-10-29T22:30"),
    ("Europe/Moscow", "2014-10-26T01:30", AMBIGUOUS, "2014-10-25T21:30", "2014-10-25T22:30"),
    # America/Sao_Paulo changed at midnight, and stopped DST in 2019.
    ("America/Sao_Paulo", "2018-11-04T00:30", NONEXISTENT, "2018-11-04T03:30", "2018-11-04T03:30"),
    ("America/Sao_Paulo", "2019-02-16T23:30", AMBIGUOUS, "2019-02-17T01:30", "2019-02-17T02:30"),
    ("America/Sao_Paulo", "2019-11-03T00:30", NORMAL, "2019-11-03T03:30", "2019-11-03T03:30"),
    # Pacific/Apia skipped 30 December 2011 entirely, jumping from -10 to +14.
    ("Pacific/Apia", "2011-12-30T12:00", NONEXISTENT, "2011-12-30T22:00", "2011-12-30T22:00"),
    ("Pacific/Apia", "2011-12-31T00:00", NORMAL, "2011-12-30T10:00", "2011-12-30T10:00"),
    # Leap days, month ends and year ends resolve like any other time.
    ("Europe/Berlin", "2028-02-29T12:00", NORMAL, "2028-02-29T11:00", "2028-02-29T11:00"),
    ("America/New_York", "2027-12-31T23:30", NORMAL, "2028-01-01T04:30", "2028-01-01T04:30"),
    ("Pacific/Kiritimati", "2027-01-01T00:30", NORMAL, "2026-12-31T10:30", "2026-12-31T10:30"),
    ("America/Los_Angeles", "2027-04-30T23:59", NORMAL, "2027-05-01T06:59", "2027-05-01T06:59"),
    ("UTC", "2027-03-14T02:30", NORMAL, "2027-03-14T02:30", "2027-03-14T02:30"),
]


@pytest.mark.parametrize(
    ("zone", "wall", "kind", "first", "later"), CASES, ids=[f"{c[0]}@{c[1]}" for c in CASES]
)
def test_a_wall_time_resolves_to_the_instants_the_policies_promise(
    zone: str, wall: str, kind: LocalTimeKind, first: str, later: str
) -> None:
    local = resolve_local(datetime.fromisoformat(wall), ZoneInfo(zone))
    assert local.kind is kind
    assert apply_policy(local, SHIFT, EARLIER).instant == utc(first)
    assert apply_policy(local, SHIFT, LATER).instant == utc(later)


def test_shift_forward_runs_a_skipped_time_when_it_would_have_been_before_the_change() -> None:
    # The issue's own example: 02:30 on New York's spring-forward day runs at 07:30Z, which is 03:30 EDT.
    resolution = apply_policy(
        resolve_local(datetime(2027, 3, 14, 2, 30), ZoneInfo("America/New_York")), SHIFT, EARLIER
    )
    assert format_utc(resolution.instant) == "2027-03-14T07:30:00Z"
    assert format_local(resolution.instant, ZoneInfo("America/New_York")) == "2027-03-14T03:30:00-04:00"
    assert not resolution.skipped
    assert resolution.note == (
        "02:30 does not exist in America/New_York on 2027-03-14 (clocks go forward from 02:00 EST to "
        "03:00 EDT); runs at 03:30 EDT, when 02:30 EST would have been "
        "(dstPolicy.nonexistentTime: ShiftForward)"
    )


@pytest.mark.parametrize(
    ("policy", "skipped", "rejected", "verdict"),
    [(SKIP, True, False, "skipped"), (REJECT_GAP, True, True, "not run")],
)
def test_skip_and_reject_do_not_run_a_nonexistent_time(
    policy: NonexistentTimePolicy, skipped: bool, rejected: bool, verdict: str
) -> None:
    resolution = apply_policy(
        resolve_local(datetime(2027, 3, 28, 2, 30), ZoneInfo("Europe/Berlin")), policy, EARLIER
    )
    assert (resolution.skipped, resolution.rejected) == (skipped, rejected)
    assert resolution.note is not None
    assert resolution.note.endswith(f"; {verdict} (dstPolicy.nonexistentTime: {policy.value})")


@pytest.mark.parametrize(
    ("policy", "which", "abbreviation"), [(EARLIER, "earlier", "AEDT"), (LATER, "later", "AEST")]
)
def test_an_ambiguous_time_runs_once_at_the_chosen_occurrence(
    policy: AmbiguousTimePolicy, which: str, abbreviation: str
) -> None:
    resolution = apply_policy(
        resolve_local(datetime(2027, 4, 4, 2, 30), ZoneInfo("Australia/Sydney")), SHIFT, policy
    )
    assert resolution.note == (
        "02:30 happens twice in Australia/Sydney on 2027-04-04 "
        "(clocks go back from 03:00 AEDT to 02:00 AEST); "
        f"runs once, at the {which} 02:30 {abbreviation} (dstPolicy.ambiguousTime: {policy.value})"
    )


def test_reject_refuses_an_ambiguous_time() -> None:
    resolution = apply_policy(
        resolve_local(datetime(2027, 11, 7, 1, 30), ZoneInfo("America/New_York")), SHIFT, REJECT_FOLD
    )
    assert resolution.rejected
    assert resolution.skipped


def test_a_normal_time_carries_no_note_whatever_the_policy() -> None:
    resolution = apply_policy(
        resolve_local(datetime(2027, 6, 1, 12), ZoneInfo("Europe/Berlin")), SKIP, REJECT_FOLD
    )
    assert (resolution.note, resolution.skipped, resolution.rejected) == (None, False, False)


def test_resolve_local_refuses_an_aware_time() -> None:
    with pytest.raises(ValueError, match="naive"):
        resolve_local(datetime(2027, 1, 1, tzinfo=UTC), ZoneInfo("UTC"))


def test_transitions_are_found_to_the_second_in_both_directions() -> None:
    found = transitions(ZoneInfo("America/New_York"), utc("2027-01-01T00:00"), utc("2028-01-01T00:00"))
    assert [(t.at, t.is_gap, t.describe()) for t in found] == [
        (utc("2027-03-14T07:00"), True, "clocks go forward from 02:00 EST to 03:00 EDT"),
        (utc("2027-11-07T06:00"), False, "clocks go back from 02:00 EDT to 01:00 EST"),
    ]
    assert found[0].window == (datetime(2027, 3, 14, 2), datetime(2027, 3, 14, 3))
    assert found[1].window == (datetime(2027, 11, 7, 1), datetime(2027, 11, 7, 2))


def test_a_zone_without_dst_has_no_transitions() -> None:
    assert transitions(ZoneInfo("Asia/Tokyo"), utc("2027-01-01T00:00"), utc("2030-01-01T00:00")) == []


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [
        ("America/New_Yrok", "'America/New_York'"),
        ("europe/berlin", "'Europe/Berlin'"),
        ("PST", "'America/Los_Angeles'"),
        ("localtime", "such as"),
        ("../etc/passwd", "such as"),
        ("", "such as"),
    ],
)
def test_an_unknown_time_zone_is_refused_with_a_suggestion(name: str, suggestion: str) -> None:
    with pytest.raises(SpecError) as caught:
        load_zone(name)
    assert caught.value.invalid.reason is Reason.INVALID_TIME_ZONE
    assert suggestion in caught.value.invalid.message
    assert "timedatectl list-timezones" in caught.value.invalid.message


@pytest.mark.parametrize(
    "name", ["UTC", "Europe/Berlin", "America/Argentina/ComodRivadavia", "EST", "Etc/GMT+5"]
)
def test_iana_names_including_links_and_fixed_zones_are_accepted(name: str) -> None:
    assert str(load_zone(name)) == name


@pytest.mark.parametrize(
    ("instant", "millis", "text"),
    [
        (datetime(2027, 3, 14, 7, 30, tzinfo=UTC), False, "2027-03-14T07:30:00Z"),
        (datetime(2027, 3, 14, 7, 30, 0, 42_999, tzinfo=UTC), True, "2027-03-14T07:30:00.042Z"),
        (datetime(2027, 3, 14, 3, 30, tzinfo=ZoneInfo("America/New_York")), False, "2027-03-14T07:30:00Z"),
    ],
)
def test_instants_are_written_in_utc_with_a_z(instant: datetime, millis: bool, text: str) -> None:
    assert format_utc(instant, millis=millis) == text


def test_the_local_form_carries_the_offset_of_that_instant() -> None:
    zone = ZoneInfo("Europe/Berlin")
    winter, summer = utc("2027-01-15T12:00"), utc("2027-07-15T12:00")
    assert (format_local(winter, zone), format_local(summer, zone)) == (
        "2027-01-15T13:00:00+01:00",
        "2027-07-15T14:00:00+02:00",
    )
