"""The time engine at fixed instants: cron in a zone, runAt, missed and due runs, dependency runs."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sundial.api.models import RunRole, ScheduledDeploymentSpec
from sundial.api.reasons import Reason, SpecError
from sundial.api.timestamps import format_utc
from sundial.timing.cron import parse_run_at, parse_schedule
from sundial.timing.dependencies import Link
from sundial.timing.occurrences import (
    MAX_CATCH_UP,
    check_run_at_not_past,
    due,
    next_runs,
    runs_between,
    upcoming,
)
from sundial.timing.schedule import Timing, build_timing

NOW = datetime(2027, 1, 1, tzinfo=UTC)
TARGET = {"deployment": {"name": "api", "container": "api", "image": "registry.example.com/api:v42"}}


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def timing(name: str = "sd", *, now: datetime = NOW, chain: tuple[Link, ...] = (), **spec: Any) -> Timing:
    return build_timing(name, ScheduledDeploymentSpec.model_validate({**TARGET, **spec}), chain, now=now)


def instants(runs: list[Any]) -> list[str]:
    return [format_utc(run.instant).removesuffix(":00Z") for run in runs]


# schedule, zone, policies, now, expected UTC instants (to the minute), skipped ones marked with "!"
CRON_CASES = [
    pytest.param(
        "30 2 * * *",
        "America/New_York",
        {},
        "2027-03-13T00:00",
        ["2027-03-13T07:30", "2027-03-14T07:30", "2027-03-15T06:30"],
        id="spring gap shifts forward to the pre-change instant",
    ),
    pytest.param(
        "30 2 * * *",
        "America/New_York",
        {"nonexistentTime": "Skip"},
        "2027-03-13T00:00",
        ["2027-03-13T07:30", "!2027-03-14T07:30", "2027-03-15T06:30"],
        id="spring gap is recorded as skipped",
    ),
    pytest.param(
        "30 1 * * *",
        "America/New_York",
        {},
        "2027-11-06T00:00",
        ["2027-11-06T05:30", "2027-11-07T05:30", "2027-11-08T06:30"],
        id="autumn fold runs once, at the earlier time",
    ),
    pytest.param(
        "30 1 * * *",
        "America/New_York",
        {"ambiguousTime": "Later"},
        "2027-11-06T00:00",
        ["2027-11-06T05:30", "2027-11-07T06:30", "2027-11-08T06:30"],
        id="autumn fold runs once, at the later time",
    ),
    pytest.param(
        "30 * * * *",
        "America/New_York",
        {},
        "2027-11-07T04:00",
        ["2027-11-07T04:30", "2027-11-07T05:30", "2027-11-07T07:30", "2027-11-07T08:30"],
        id="hourly in the fold: 01:30 happens once, so no run at 01:30 EST",
    ),
    pytest.param(
        "30 * * * *",
        "America/New_York",
        {"ambiguousTime": "Later"},
        "2027-11-07T04:00",
        ["2027-11-07T04:30", "2027-11-07T06:30", "2027-11-07T07:30"],
        id="hourly in the fold with Later: no run at 01:30 EDT",
    ),
    pytest.param(
        "*/30 * * * *",
        "America/New_York",
        {},
        "2027-03-14T06:00",
        ["2027-03-14T06:30", "2027-03-14T07:00", "2027-03-14T07:30", "2027-03-14T08:00"],
        id="shifted wall times that land on a later wall time's instant run once",
    ),
    pytest.param(
        "30 2 * * *",
        "Europe/Berlin",
        {},
        "2027-10-30T00:00",
        ["2027-10-30T00:30", "2027-10-31T00:30", "2027-11-01T01:30"],
        id="Berlin autumn fold, earlier",
    ),
    pytest.param(
        "0 9 * * MON",
        "Australia/Sydney",
        {},
        "2027-03-27T00:00",
        ["2027-03-28T22:00", "2027-04-04T23:00", "2027-04-11T23:00"],
        id="Sydney weekly across the April change keeps 09:00 local",
    ),
    pytest.param(
        "15 2 * * *",
        "Australia/Lord_Howe",
        {},
        "2027-10-01T00:00",
        ["2027-10-01T15:45", "2027-10-02T15:45", "2027-10-03T15:15"],
        id="Lord Howe half-hour gap",
    ),
    pytest.param(
        "30 1 * * *",
        "Europe/Moscow",
        {"ambiguousTime": "Later"},
        "2014-10-25T00:00",
        ["2014-10-25T22:30", "2014-10-26T22:30"],
        id="Moscow 2014 return to +03 with Later",
    ),
    pytest.param(
        "0 12 * * *",
        "Pacific/Apia",
        {},
        "2011-12-29T00:00",
        ["2011-12-29T22:00", "2011-12-30T22:00", "2011-12-31T22:00"],
        id="Samoa's missing day merges with the next day's run",
    ),
    pytest.param(
        "0 12 29 2 *",
        "Europe/Berlin",
        {},
        "2027-03-01T00:00",
        ["2028-02-29T11:00", "2032-02-29T11:00"],
        id="leap day only in leap years",
    ),
    pytest.param(
        "0 0 31 * *",
        "UTC",
        {},
        "2027-01-31T00:00",
        ["2027-03-31T00:00", "2027-05-31T00:00", "2027-07-31T00:00", "2027-08-31T00:00"],
        id="the 31st skips short months",
    ),
    pytest.param(
        "59 23 31 12 *",
        "Pacific/Kiritimati",
        {},
        "2027-06-01T00:00",
        ["2027-12-31T09:59", "2028-12-31T09:59"],
        id="year end at +14",
    ),
    pytest.param(
        "@yearly",
        "America/New_York",
        {},
        "2027-06-01T00:00",
        ["2028-01-01T05:00", "2029-01-01T05:00"],
        id="@yearly is local midnight on 1 January",
    ),
    pytest.param(
        "@hourly",
        "UTC",
        {},
        "2027-01-01T00:00",
        ["2027-01-01T01:00", "2027-01-01T02:00"],
        id="now itself is not upcoming",
    ),
]


@pytest.mark.parametrize(("schedule", "zone", "policy", "now", "expected"), CRON_CASES)
def test_cron_runs_at_fixed_instants(
    schedule: str, zone: str, policy: dict[str, str], now: str, expected: list[str]
) -> None:
    subject = timing(schedule=schedule, timeZone=zone, dstPolicy=policy, now=utc(now))
    runs = next_runs(subject, utc(now), len(expected))
    assert [("!" if run.skipped else "") + format_utc(run.instant)[:16] for run in runs] == expected


def test_shifted_and_merged_runs_explain_themselves() -> None:
    subject = timing(schedule="*/30 * * * *", timeZone="America/New_York", now=utc("2027-03-14T06:00"))
    merged = next_runs(subject, utc("2027-03-14T06:00"), 2)[1]
    assert merged.wall == datetime(2027, 3, 14, 3, 0)
    assert merged.notes == (
        "02:00 does not exist in America/New_York on 2027-03-14 (clocks go forward from 02:00 EST to "
        "03:00 EDT); runs at 03:00 EDT, when 02:00 EST would have been "
        "(dstPolicy.nonexistentTime: ShiftForward)",
        "02:00 and 03:00 fall on the same instant, 2027-03-14T07:00:00Z; it runs once",
    )


def test_a_cron_never_repeats_a_wall_time_and_its_instants_only_increase() -> None:
    start = utc("2027-11-06T00:00")
    subject = timing(schedule="*/15 * * * *", timeZone="America/New_York", now=start)
    runs = next_runs(subject, start, 300)
    walls = [run.wall for run in runs]
    assert len(runs) == 300
    assert len(set(walls)) == len(walls)
    assert all(a.instant < b.instant for a, b in itertools.pairwise(runs))
    assert datetime(2027, 11, 7, 1, 15) in walls  # in the fold, present once


def test_reject_beyond_the_checked_horizon_lists_the_run_as_not_run() -> None:
    # 14 March falls on New York's spring-forward Sunday in 2027 and 2032; from mid-2027, 2032 is too far
    # ahead to make the object invalid, so the run is listed as not run instead.
    now = utc("2027-06-01T00:00")
    subject = timing(
        schedule="30 2 14 3 *", timeZone="America/New_York", dstPolicy={"nonexistentTime": "Reject"}, now=now
    )
    runs = next_runs(subject, now, 6)
    assert [run.skipped for run in runs] == [False, False, False, False, True, False]
    assert runs[4].instant == utc("2032-03-14T07:30")
    assert runs[4].notes[0].endswith("; not run (dstPolicy.nonexistentTime: Reject)")


@pytest.mark.parametrize(
    ("schedule", "zone", "policy", "reason", "first_hit"),
    [
        (
            "30 2 * * *",
            "Europe/Berlin",
            {"nonexistentTime": "Reject"},
            Reason.NONEXISTENT_LOCAL_TIME,
            "2027-03-28 02:30",
        ),
        (
            "30 2 * * *",
            "Europe/Berlin",
            {"ambiguousTime": "Reject"},
            Reason.AMBIGUOUS_LOCAL_TIME,
            "2027-10-31 02:30",
        ),
        (
            "*/5 * * * *",
            "America/New_York",
            {"ambiguousTime": "Reject"},
            Reason.AMBIGUOUS_LOCAL_TIME,
            "2027-11-07 01:00",
        ),
        (
            "0 2 * * *",
            "Australia/Sydney",
            {"nonexistentTime": "Reject"},
            Reason.NONEXISTENT_LOCAL_TIME,
            "2027-10-03 02:00",
        ),
    ],
)
def test_reject_makes_a_schedule_invalid_at_its_first_hit_within_two_years(
    schedule: str, zone: str, policy: dict[str, str], reason: Reason, first_hit: str
) -> None:
    with pytest.raises(SpecError) as caught:
        timing(schedule=schedule, timeZone=zone, dstPolicy=policy)
    assert caught.value.invalid.reason is reason
    assert f"fires at {first_hit}, which" in caught.value.invalid.message


@pytest.mark.parametrize(
    ("schedule", "zone", "policy"),
    [
        ("30 2 * * 1-5", "America/New_York", {"nonexistentTime": "Reject", "ambiguousTime": "Reject"}),
        ("30 2 * * *", "America/New_York", {"ambiguousTime": "Reject"}),
        ("30 2 * * *", "Asia/Tokyo", {"nonexistentTime": "Reject", "ambiguousTime": "Reject"}),
    ],
    ids=["US changes on Sundays, weekdays never hit them", "02:30 is never ambiguous in New York", "no DST"],
)
def test_reject_accepts_a_schedule_that_never_hits_a_transition(
    schedule: str, zone: str, policy: dict[str, str]
) -> None:
    subject = timing(schedule=schedule, timeZone=zone, dstPolicy=policy)  # SpecError if it were refused
    # Five years, beyond the two the check looks ahead: a hit there would be listed as not run (skipped).
    runs = runs_between(subject, NOW, utc("2032-01-01T00:00"), limit=2000)
    assert len(runs) > 1000
    assert [(format_utc(run.instant), run.notes) for run in runs if run.skipped] == []


# runAt, zone, policy, expected instant, whether a note is expected
RUN_AT_CASES = [
    ("2027-03-14T02:30", "America/New_York", {}, "2027-03-14T07:30:00Z", True),
    ("2027-03-14T02:30:00+01:00", "America/New_York", {}, "2027-03-14T01:30:00Z", False),
    (
        "2027-03-14T02:30:00Z",
        "America/New_York",
        {"nonexistentTime": "Reject"},
        "2027-03-14T02:30:00Z",
        False,
    ),
    ("2027-06-01T12:00:30", "Europe/Berlin", {}, "2027-06-01T10:00:30Z", False),
    ("2028-02-29T00:00", "Australia/Sydney", {}, "2028-02-28T13:00:00Z", False),
    ("2027-12-31T23:59:59", "America/Sao_Paulo", {}, "2028-01-01T02:59:59Z", False),
    ("2027-10-31T02:30", "Europe/Berlin", {"ambiguousTime": "Later"}, "2027-10-31T01:30:00Z", True),
]


@pytest.mark.parametrize(("run_at", "zone", "policy", "expected", "noted"), RUN_AT_CASES)
def test_run_at_is_local_unless_it_carries_an_offset(
    run_at: str, zone: str, policy: dict[str, str], expected: str, noted: bool
) -> None:
    runs = next_runs(timing(runAt=run_at, timeZone=zone, dstPolicy=policy), NOW, 5)
    assert [format_utc(run.instant) for run in runs] == [expected]
    assert bool(runs[0].notes) is noted


def test_run_at_has_no_next_run_once_it_has_passed() -> None:
    subject = timing(runAt="2027-01-01T10:00")
    assert next_runs(subject, utc("2027-01-01T10:00"), 3) == []
    assert len(next_runs(subject, utc("2027-01-01T09:59"), 3)) == 1


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("2027-02-29T10:00", "day is out of range for month"),
        ("2027-03-14T24:00", "hour must be in 0..23"),
        ("2027-03-14 02:30", "is not a date-time"),
        ("2027-03-14T02:30:00.5Z", "is not a date-time"),
        ("14.03.2027 02:30", "is not a date-time"),
        ("2027-03-14T02:30\n", "is not a date-time"),
        ("0001-01-01T00:30+01:00", "is not a real date-time"),
    ],
)
def test_a_malformed_run_at_is_refused(text: str, reason: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_run_at(text)
    assert caught.value.invalid.reason is Reason.INVALID_RUN_AT
    assert reason in caught.value.invalid.message


@pytest.mark.parametrize(
    ("text", "expanded"),
    [
        ("@daily", "0 0 * * *"),
        ("@WEEKLY", "0 0 * * 0"),
        ("@monthly", "0 0 1 * *"),
        ("@annually", "0 0 1 1 *"),
        ("  */15  9-17 * JAN-mar mon-FRI ", "*/15 9-17 * JAN-mar mon-FRI"),
        ("0 0 ? * 7", "0 0 ? * 7"),
    ],
)
def test_schedules_in_kubernetes_cron_syntax_are_accepted(text: str, expanded: str) -> None:
    assert parse_schedule(text) == expanded


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("0 30 2 * * *", "has 6 fields"),
        ("30 2 * *", "has 4 fields"),
        ("61 * * * *", "has 61, outside 0-59"),
        ("0 24 * * *", "has 24, outside 0-23"),
        ("0 0 0 * *", "has 0, outside 1-31"),
        ("*/0 * * * *", "step '0'"),
        ("5-1 * * * *", "reversed range 5-1"),
        ("0 0 * * FRI-MON", "reversed range FRI-MON"),
        ("0 0 L * *", "contains 'L'"),
        ("0 0 * * 1#2", "may only contain"),
        ("H * * * *", "contains 'H'"),
        ("0 0 * MON *", "contains 'MON'"),
        ("0 ? * * *", "'?'"),
        ("0 0 30 2 *", "never fires"),
        ("@reboot", "not a known descriptor"),
    ],
)
def test_a_schedule_outside_the_supported_syntax_is_refused(text: str, problem: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_schedule(text)
    assert caught.value.invalid.reason is Reason.INVALID_SCHEDULE
    assert problem in caught.value.invalid.message


# --- runs between two instants, and what is due ----------------------------------------------------------


def test_runs_between_excludes_the_start_and_includes_the_end() -> None:
    subject = timing(schedule="*/10 * * * *")
    runs = runs_between(subject, utc("2027-01-01T12:00"), utc("2027-01-01T12:30"))
    assert instants(runs) == ["2027-01-01T12:10", "2027-01-01T12:20", "2027-01-01T12:30"]


def test_runs_between_keeps_the_latest_when_limited() -> None:
    subject = timing(schedule="* * * * *")
    runs = runs_between(subject, utc("2027-01-01T00:00"), utc("2027-01-02T00:00"), limit=3)
    assert instants(runs) == ["2027-01-01T23:58", "2027-01-01T23:59", "2027-01-02T00:00"]


def test_runs_between_crosses_a_fold_without_repeating_a_wall_time() -> None:
    subject = timing(schedule="30 * * * *", timeZone="America/New_York")
    runs = runs_between(subject, utc("2027-11-07T04:00"), utc("2027-11-07T08:00"))
    assert instants(runs) == ["2027-11-07T04:30", "2027-11-07T05:30", "2027-11-07T07:30"]


def test_the_latest_run_within_the_deadline_is_due_and_older_ones_are_missed() -> None:
    timings = {"sd": timing(schedule="*/10 * * * *", startingDeadlineSeconds=600)}
    result = due("sd", timings, utc("2027-01-01T12:00"), utc("2027-01-01T12:35"))
    assert result.due is not None
    assert format_utc(result.due.instant) == "2027-01-01T12:30:00Z"
    assert instants(list(result.missed)) == ["2027-01-01T12:10", "2027-01-01T12:20"]
    assert not result.truncated


def test_a_run_older_than_its_deadline_is_missed_not_due() -> None:
    timings = {"sd": timing(schedule="*/10 * * * *", startingDeadlineSeconds=60)}
    result = due("sd", timings, utc("2027-01-01T12:25"), utc("2027-01-01T12:45"))
    assert result.due is None
    assert instants(list(result.missed)) == ["2027-01-01T12:30", "2027-01-01T12:40"]


def test_a_run_exactly_at_the_deadline_is_still_due() -> None:
    timings = {"sd": timing(schedule="0 12 * * *", startingDeadlineSeconds=600)}
    result = due("sd", timings, utc("2027-01-01T11:00"), utc("2027-01-01T12:10"))
    assert result.due is not None
    assert format_utc(result.due.instant) == "2027-01-01T12:00:00Z"
    assert result.missed == ()


def test_without_a_handled_run_the_window_reaches_back_one_deadline() -> None:
    timings = {"sd": timing(runAt="2027-01-01T12:00", startingDeadlineSeconds=600)}
    assert due("sd", timings, None, utc("2027-01-01T12:09")).due is not None
    assert due("sd", timings, None, utc("2027-01-01T12:11")).due is None


def test_skipped_runs_are_neither_due_nor_missed() -> None:
    timings = {
        "sd": timing(schedule="30 2 * * *", timeZone="Europe/Berlin", dstPolicy={"nonexistentTime": "Skip"})
    }
    result = due("sd", timings, utc("2027-03-27T12:00"), utc("2027-03-28T01:35"))
    assert (result.due, result.missed) == (None, ())
    assert instants(list(result.skipped)) == ["2027-03-28T01:30"]


def test_a_long_outage_reports_at_most_the_catch_up_limit() -> None:
    timings = {"sd": timing(schedule="* * * * *")}
    result = due("sd", timings, utc("2027-01-01T00:00"), utc("2027-01-02T00:00"))
    assert result.truncated
    assert result.due is not None
    assert len(result.missed) == MAX_CATCH_UP - 1


# --- dependencies ----------------------------------------------------------------------------------------

CHAIN = (Link("api", timedelta(minutes=15), True), Link("schema", timedelta(minutes=45), False))


def chain_timings() -> dict[str, Timing]:
    return {
        "frontend": timing("frontend", runAt="2027-05-05T09:00", timeZone="Europe/Berlin", chain=CHAIN),
        "api": timing("api", chain=(Link("schema", timedelta(minutes=30), False),)),
        "schema": timing("schema"),
    }


def test_each_run_knows_when_its_dependencies_run() -> None:
    run = next_runs(chain_timings()["frontend"], NOW, 1)[0]
    assert format_utc(run.instant) == "2027-05-05T07:00:00Z"
    assert [(d.name, format_utc(d.instant)) for d in run.dependencies] == [
        ("api", "2027-05-05T06:45:00Z"),
        ("schema", "2027-05-05T06:15:00Z"),
    ]
    assert run.dependency_time == utc("2027-05-05T06:45")


def test_a_dependency_runs_its_lead_time_before_each_dependent_run() -> None:
    runs = upcoming("api", chain_timings(), NOW, 5)
    assert len(runs) == 1
    assert (runs[0].role, runs[0].for_object) == (RunRole.DEPENDENCY, "frontend")
    assert format_utc(runs[0].instant) == "2027-05-05T06:45:00Z"
    assert runs[0].notes == ("runs 15m before 'frontend' at 2027-05-05T07:00:00Z",)
    assert [(d.name, format_utc(d.instant), d.lead) for d in runs[0].dependencies] == [
        ("schema", "2027-05-05T06:15:00Z", timedelta(minutes=30))
    ]


def test_chains_add_up() -> None:
    runs = upcoming("schema", chain_timings(), NOW, 5)
    assert [(format_utc(run.instant), run.for_object) for run in runs] == [
        ("2027-05-05T06:15:00Z", "frontend")
    ]
    assert runs[0].dependencies == ()


def test_a_dependency_with_its_own_schedule_merges_both_kinds_of_run() -> None:
    timings = {
        "web": timing("web", schedule="0 * * * *", chain=(Link("cache", timedelta(hours=1), True),)),
        "cache": timing("cache", schedule="0 */2 * * *"),
    }
    runs = upcoming("cache", timings, utc("2027-01-01T00:30"), 4)
    # 02:00 is both the cache's own run and the run for web's 03:00: one run, one Job.
    assert [(format_utc(run.instant)[11:16], run.role.value) for run in runs] == [
        ("01:00", "Dependency"),
        ("02:00", "Deploy"),
        ("03:00", "Dependency"),
        ("04:00", "Deploy"),
    ]
    assert runs[1].notes == ("runs 1h before 'web' at 2027-01-01T03:00:00Z",)


def test_a_skipped_run_skips_its_dependency_run_too() -> None:
    timings = {
        "nightly": timing(
            "nightly",
            schedule="30 2 * * *",
            timeZone="Europe/Berlin",
            dstPolicy={"nonexistentTime": "Skip"},
            chain=(Link("prep", timedelta(minutes=15), True),),
        ),
        "prep": timing("prep"),
    }
    runs = upcoming("prep", timings, utc("2027-03-27T12:00"), 2)
    assert [run.skipped for run in runs] == [True, False]
    assert runs[0].notes[0].endswith("; skipped because that run is skipped")


def test_due_includes_runs_on_behalf_of_dependents() -> None:
    result = due("api", chain_timings(), None, utc("2027-05-05T06:50"))
    assert result.due is not None
    assert (result.due.role, format_utc(result.due.instant)) == (RunRole.DEPENDENCY, "2027-05-05T06:45:00Z")


def test_an_object_nobody_depends_on_and_without_timing_has_no_runs() -> None:
    assert upcoming("schema", {"schema": timing("schema")}, NOW, 3) == []
    assert upcoming("unknown", chain_timings(), NOW, 3) == []


# --- runAt in the past -----------------------------------------------------------------------------------


def test_a_run_at_beyond_its_deadline_is_in_the_past() -> None:
    with pytest.raises(SpecError) as caught:
        check_run_at_not_past(timing(runAt="2026-12-31T23:49"), NOW)
    assert caught.value.invalid.reason is Reason.RUN_AT_IN_PAST
    assert caught.value.invalid.message == (
        "runAt '2026-12-31T23:49' (2026-12-31T23:49:00Z) is 11m in the past, more than "
        "startingDeadlineSeconds (600) ago; set a runAt in the future"
    )


@pytest.mark.parametrize(
    "run_at",
    [
        pytest.param("2026-12-31T23:51", id="9m ago"),
        pytest.param("2026-12-31T23:50", id="10m ago, the limit"),
    ],
)
def test_a_run_at_within_its_deadline_is_still_due(run_at: str) -> None:
    subject = timing(runAt=run_at)
    check_run_at_not_past(subject, NOW)  # not RunAtInPast: that is for what can no longer run
    result = due("sd", {"sd": subject}, None, NOW)
    assert result.due is not None
    assert format_utc(result.due.instant) == f"{run_at}:00Z"
    assert (result.missed, result.skipped) == ((), ())


def test_a_run_at_whose_dependency_is_too_late_is_in_the_past() -> None:
    subject = timing(runAt="2027-01-01T00:30", chain=(Link("db", timedelta(hours=1), True),))
    with pytest.raises(SpecError, match="move runAt at least 20m later") as caught:
        check_run_at_not_past(subject, NOW)
    assert caught.value.invalid.reason is Reason.RUN_AT_IN_PAST


def test_a_skipped_run_at_in_the_past_is_not_an_error() -> None:
    """A runAt that its DST policy skips never runs, so lying in the past cannot make it late."""
    in_the_gap = {"runAt": "2026-03-29T02:30", "timeZone": "Europe/Berlin"}
    skipped = timing(**in_the_gap, dstPolicy={"nonexistentTime": "Skip"})
    check_run_at_not_past(skipped, NOW)
    [run] = next_runs(skipped, utc("2026-03-28T00:00"), 1)
    assert run.skipped, "the run it would have had is skipped"
    assert due("sd", {"sd": skipped}, None, NOW) == due("sd", {"sd": timing()}, None, NOW), "nothing is due"

    # The same runAt shifted forward (the default) would have run, so it is in the past.
    with pytest.raises(SpecError) as caught:
        check_run_at_not_past(timing(**in_the_gap), NOW)
    assert caught.value.invalid.reason is Reason.RUN_AT_IN_PAST


def test_the_engine_refuses_naive_instants() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next_runs(timing(schedule="@daily"), datetime(2027, 1, 1), 1)
