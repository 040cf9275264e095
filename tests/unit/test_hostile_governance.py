"""Hostile input to release governance: any freeze spec, calendar text or approval a user (or a broken
storage) can hand the operator gives a verdict, never an exception; and a plan with such freezes and
approvals around is still a plan the API server accepts."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from test_hostile_input import PROPERTY, assert_the_api_would_accept, hostile_text
from test_reconcile import ONE_SHOT, T, scheduled_deployment, world

from sundial.api.reasons import Invalid
from sundial.decide.approvals import approvals_by_object, read_approval
from sundial.decide.freezes import Freeze, plan_freeze_status, read_freeze
from sundial.decide.reconcile import reconcile
from sundial.timing.freezes import next_window, window_at, windows_between

clocks = st.one_of(
    st.sampled_from(["00:00", "02:30", "01:30", "23:59", "18:00", "24:00", "9:00"]), hostile_text
)
days = st.one_of(st.sampled_from(["Monday", "Friday", "Sunday", "friday"]), hostile_text)
zones = st.one_of(
    st.sampled_from(["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "UTC"]), hostile_text
)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), hostile_text),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
weekly = st.fixed_dictionaries({"startDay": days, "startTime": clocks, "endDay": days, "endTime": clocks})
windows = st.fixed_dictionaries(
    {
        "from": st.one_of(
            st.sampled_from(["2027-03-14T02:30", "2027-11-07T01:30", "2027-03-14T02:30:00Z"]), hostile_text
        ),
        "to": st.one_of(
            st.sampled_from(["2027-03-14T03:30", "2027-11-07T01:45", "2028-01-01T00:00"]), hostile_text
        ),
    }
)
specs = st.fixed_dictionaries(
    {"reason": st.one_of(st.just("x"), hostile_text)},
    optional={
        "timeZone": zones,
        "action": st.sampled_from(["Hold", "Defer", "Pause"]),
        "ambiguousTime": st.sampled_from(["Earlier", "Later", "Reject"]),
        "weekly": st.lists(weekly, max_size=3),
        "recurring": st.lists(
            st.fixed_dictionaries(
                {
                    "schedule": st.one_of(
                        st.sampled_from(["0 22 * * *", "*/30 2 * * *", "61 * * * *"]), hostile_text
                    ),
                    "duration": st.one_of(st.sampled_from(["4h", "0s", "745h", "90m"]), hostile_text),
                }
            ),
            max_size=2,
        ),
        "windows": st.lists(windows, max_size=3),
        "dates": st.lists(
            st.one_of(st.sampled_from(["2027-03-14", "2027-02-30", "2027-10-31"]), hostile_text), max_size=3
        ),
        "selector": json_values,
        "namespaces": json_values,
        "calendar": json_values,
    },
)

# Well-formed specs, with bounds on and around the DST changes of the zones: most of them compile, so the
# consistency checks below run on real windows and not only on refusals.
good_clocks = st.sampled_from(["00:00", "01:30", "02:00", "02:30", "03:00", "08:00", "18:00", "23:59"])
good_days = st.sampled_from(["Monday", "Friday", "Saturday", "Sunday"])
good_walls = st.sampled_from(
    ["2027-03-14T02:30", "2027-03-28T02:00", "2027-11-07T01:30", "2027-10-31T02:30", "2027-03-14T01:00"]
)
valid_specs = st.fixed_dictionaries(
    {
        "reason": st.just("x"),
        "timeZone": st.sampled_from(["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "UTC"]),
        "ambiguousTime": st.sampled_from(["Earlier", "Later"]),
        "action": st.sampled_from(["Hold", "Defer"]),
        "weekly": st.lists(
            st.fixed_dictionaries(
                {"startDay": good_days, "startTime": good_clocks, "endDay": good_days, "endTime": good_clocks}
            ),
            min_size=1,
            max_size=2,
        ),
    },
    optional={
        "windows": st.lists(
            st.fixed_dictionaries({"from": good_walls, "to": st.just("2027-11-08T00:00")}), max_size=2
        ),
        "dates": st.lists(
            st.sampled_from(["2027-03-14", "2027-03-28", "2027-11-07", "2027-10-31"]), max_size=2
        ),
        "recurring": st.lists(
            st.fixed_dictionaries(
                {
                    "schedule": st.sampled_from(["30 2 * * *", "0 22 * * 5"]),
                    "duration": st.sampled_from(["1h", "62h"]),
                }
            ),
            max_size=1,
        ),
    },
)


@PROPERTY
@given(spec=st.one_of(valid_specs, specs), cluster=st.booleans(), calendar=st.one_of(st.none(), hostile_text))
def test_any_freeze_spec_is_a_freeze_or_a_reason_and_its_windows_are_consistent(
    spec: dict[str, Any], cluster: bool, calendar: str | None
) -> None:
    body = {
        "kind": "ClusterReleaseFreeze" if cluster else "ReleaseFreeze",
        "metadata": {"name": "f", "namespace": "shop", "generation": 1},
        "spec": spec,
    }
    compiled = read_freeze(body, calendar)
    assert isinstance(compiled, Freeze | Invalid)
    plan = plan_freeze_status(body, compiled, T)
    assert isinstance(plan.status, dict)
    if isinstance(compiled, Invalid):
        assert compiled.message and compiled.reason.value[0].isupper()
        return
    # The engine agrees with itself: the window at an instant is the one windows_between reports for it.
    for probe in (T, T + timedelta(days=3, hours=7), datetime(2027, 11, 7, 6, 15, tzinfo=UTC)):
        at = window_at(compiled.rules, probe)
        around = [
            w for w in windows_between(compiled.rules, probe, probe + timedelta(seconds=1)) if w.covers(probe)
        ]
        assert (at is None) == (not around)
        if at is not None:
            assert at.start <= probe < at.end
    upcoming = next_window(compiled.rules, T)
    assert upcoming is None or upcoming.start > T


@PROPERTY
@given(
    spec=specs,
    approval=st.fixed_dictionaries(
        {"scheduledDeployment": st.one_of(st.just("api"), hostile_text), "scheduledTime": hostile_text},
        optional={"approver": hostile_text, "approverGroups": json_values},
    ),
    policy=json_values,
)
def test_a_plan_among_any_freezes_and_approvals_is_one_the_api_accepts(
    spec: dict[str, Any], approval: dict[str, Any], policy: Any
) -> None:
    compiled = read_freeze(
        {"kind": "ReleaseFreeze", "metadata": {"name": "f", "namespace": "shop"}, "spec": spec}
    )
    body = scheduled_deployment("api", {**ONE_SHOT, "approval": policy})
    given_approvals = [
        a for a in [read_approval({"metadata": {"name": "a"}, "spec": approval})] if a is not None
    ]
    w = replace(
        world(body, T),
        freezes=(compiled,) if isinstance(compiled, Freeze) else (),
        approvals=approvals_by_object(given_approvals),
    )
    plan = reconcile(w)
    assert_the_api_would_accept(plan.status)
