"""Plan once: `record_outcomes` records what carrying a plan out did exactly as the old third pass did.

Until issue 12 the controller planned up to three times per fire: from the cached object, again from a fresh
GET, and a third time on top of the second plan's status with the Jobs just created (or the API's refusals)
in the world. `three_passes` keeps that algorithm as the oracle. For every world of test_reconcile.py and
test_manual_trigger.py that creates Jobs or fails to (scheduled, dependency and manual runs, Replace, Allow,
runs missed during downtime, a Job found already there), and for any mix of outcomes hypothesis draws,
`plan_once` (the new controller: plan, carry out, `record_outcomes`) must give the same status, Events and
wake-up.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_manual_trigger import NOW as TRIGGER_NOW
from test_manual_trigger import body_of
from test_reconcile import (
    _OUTCOME,
    DEPENDENCY_ONLY,
    DEPENDENT,
    HOURLY,
    LEAD,
    ONE_SHOT,
    SECOND,
    T,
    at,
    created_job,
    downtime_world,
    job,
    scheduled_deployment,
    world,
)

from sundial.api.models import RunRole
from sundial.decide.observe import JobPhase
from sundial.decide.reconcile import CreateFailure, JobState, Plan, World, reconcile, record_outcomes

Outcome = tuple[str, ...]
"""What the API did with one create: ``("created",)``, ``("refused", reason, message)``, or
``("existing", phase)`` (AlreadyExists, and the Job is ours and already in that phase)."""


def carry_out(
    w: World, plan: Plan, outcomes: Mapping[str, Outcome]
) -> tuple[list[JobState], list[CreateFailure]]:
    """The controller's `_create_jobs` for ``plan``: each Job created unless ``outcomes`` says otherwise."""
    created: list[JobState] = []
    failures: list[CreateFailure] = []
    for run in plan.create:
        outcome = outcomes.get(run.job_name, ("created",))
        if outcome[0] == "refused":
            failures.append(CreateFailure(run, outcome[1], outcome[2]))
            continue
        state = created_job(w.body, run)
        if outcome[0] == "existing":
            phase = JobPhase(outcome[1])
            reason, message = _OUTCOME[phase]
            # Made by an earlier attempt (a replica that died before writing status): fired earlier.
            earlier = state.scheduled_time + timedelta(milliseconds=40)
            state = replace(state, phase=phase, reason=reason, message=message, fired_time=earlier)
        created.append(state)
    return created, failures


def three_passes(w: World, outcomes: Mapping[str, Outcome] = {}) -> Plan:
    """The oracle: the controller's algorithm before plan-once (its second pass planned from the same
    world as the first, so the first is left out). Plan; create and delete; plan again on top of the
    plan's status with the Jobs just created (the deleted ones gone) and the refusals; post the Events of
    both plans."""
    plan = reconcile(w)
    if not (plan.create or plan.delete):
        return plan
    created, failures = carry_out(w, plan, outcomes)
    jobs = {name: state for name, state in w.jobs.items() if name not in plan.delete}
    jobs.update({state.name: state for state in created})
    decided = {**w.body, "status": plan.status}
    third = reconcile(
        replace(
            w,
            body=decided,
            siblings={**w.siblings, decided["metadata"]["name"]: decided},
            jobs=jobs,
            create_failures=tuple(failures),
        )
    )
    return replace(third, events=(*plan.events, *third.events))


def plan_once(w: World, outcomes: Mapping[str, Outcome] = {}) -> Plan:
    """The controller now: plan; create and delete; record the outcomes in that plan."""
    plan = reconcile(w)
    if not (plan.create or plan.delete):
        return plan
    created, failures = carry_out(w, plan, outcomes)
    return record_outcomes(plan, created, failures, w.now)


def assert_same(w: World, outcomes: Mapping[str, Outcome] = {}) -> None:
    expected, actual = three_passes(w, outcomes), plan_once(w, outcomes)
    assert actual.status == expected.status
    assert actual.events == expected.events
    assert actual.wake_at == expected.wake_at


# ---------------------------------------------------------------------------------------------------- worlds


def concurrency(policy: str, offset: timedelta = timedelta(0)) -> World:
    """``nightly``, hourly, with the 06:00 Job (and a manual one) still running when 07:00 falls due."""
    body = scheduled_deployment("nightly", {**HOURLY, "concurrencyPolicy": policy}, created=at(5, 50))
    return world(body, at(7, 0, 5) + offset, jobs=[job("nightly", at(6), JobPhase.ACTIVE)])


def dependency_due(offset: timedelta = timedelta(0)) -> World:
    dep = scheduled_deployment("dep", DEPENDENCY_ONLY)
    return world(dep, T - LEAD + offset, others=[scheduled_deployment(spec=DEPENDENT)])


def dependent_due(offset: timedelta = timedelta(0)) -> World:
    done = job("dep", T - LEAD, JobPhase.SUCCEEDED, role=RunRole.DEPENDENCY)
    dep = scheduled_deployment("dep", DEPENDENCY_ONLY)
    return world(scheduled_deployment(spec=DEPENDENT), T + offset, others=[dep], jobs=[done])


def manual(policy: str = "Forbid", offset: timedelta = timedelta(0)) -> World:
    body = body_of(spec={**ONE_SHOT, "concurrencyPolicy": policy})
    return world(body, TRIGGER_NOW + offset)


def manual_beside_scheduled(offset: timedelta = timedelta(0)) -> World:
    """An hourly object with Allow, a trigger pending at 07:00:05 and its 07:00 run due: two creates."""
    body = body_of("nightly", {**HOURLY, "concurrencyPolicy": "Allow"}, trigger="2027-03-14T07:00:04.000Z")
    body["metadata"]["creationTimestamp"] = "2027-03-14T05:50:00Z"
    return world(body, at(7, 0, 5) + offset)


def history_pruned(offset: timedelta = timedelta(0)) -> World:
    spec = {**HOURLY, "successfulJobsHistoryLimit": 1}
    done = [job("nightly", at(hour), JobPhase.SUCCEEDED) for hour in (3, 4, 5)]
    return world(scheduled_deployment("nightly", spec), at(5, 30) + offset, jobs=done)


WORLDS: dict[str, Callable[[timedelta], World]] = {
    "a due one-shot": lambda offset: world(scheduled_deployment(), T + offset),
    "a one-shot fired at a ragged instant": lambda offset: world(
        scheduled_deployment(), T + timedelta(seconds=1, microseconds=987_654) + offset
    ),
    "a 253-character name": lambda offset: world(scheduled_deployment("a" * 253), T + offset),
    "runs missed during downtime": lambda offset: replace(downtime_world(), now=at(7, 5) + offset),
    "Replace": lambda offset: concurrency("Replace", offset),
    "Allow": lambda offset: concurrency("Allow", offset),
    "a dependency run": dependency_due,
    "the dependent after its dependency": dependent_due,
    "a manual run": lambda offset: manual("Forbid", offset),
    "a manual run of a suspended object": lambda offset: world(
        body_of(spec={**ONE_SHOT, "suspend": True}), TRIGGER_NOW + offset
    ),
    "a manual run beside a scheduled one": manual_beside_scheduled,
    "only Jobs beyond the history limit deleted": history_pruned,
}


def refused(
    w: World, reason: str = "Forbidden", message: str = "exceeded quota: compute"
) -> dict[str, Outcome]:
    return {run.job_name: ("refused", reason, message) for run in reconcile(w).create}


def existing(w: World, phase: JobPhase) -> dict[str, Outcome]:
    return {run.job_name: ("existing", phase.value) for run in reconcile(w).create}


CASES = [
    *(pytest.param(build, {}, id=f"{name}: created") for name, build in WORLDS.items()),
    *(
        pytest.param(build, refused(build(timedelta(0))), id=f"{name}: refused")
        for name, build in WORLDS.items()
    ),
    *(
        pytest.param(build, existing(build(timedelta(0)), phase), id=f"{name}: already there, {phase.value}")
        for name, build in WORLDS.items()
        for phase in JobPhase
    ),
    pytest.param(
        manual_beside_scheduled,
        {next(run.job_name for run in reconcile(manual_beside_scheduled()).create if run.trigger): (
            "refused", "Invalid", "spec.template: Invalid value")},
        id="a manual run refused beside a scheduled one created",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("build", "outcomes"), CASES)
def test_recording_outcomes_gives_the_status_and_events_of_the_third_pass(
    build: Callable[[timedelta], World], outcomes: Mapping[str, Outcome]
) -> None:
    w = build(timedelta(0))
    assert reconcile(w).create or reconcile(w).delete, "a world of this table carries something out"
    assert_same(w, outcomes)


def test_every_world_of_the_table_creates_or_deletes_jobs() -> None:
    for name, build in WORLDS.items():
        plan = reconcile(build(timedelta(0)))
        assert plan.create or plan.delete, name


def test_a_plan_that_creates_nothing_records_nothing() -> None:
    plan = reconcile(world(scheduled_deployment(), T - timedelta(hours=1)))
    assert record_outcomes(plan, (), (), T) == plan


def test_an_invalid_objects_plan_has_no_outcomes_to_record() -> None:
    plan = reconcile(world(scheduled_deployment(spec={**ONE_SHOT, "timeZone": "Europe/Atlantis"}), T))
    assert plan.outlook is None
    assert record_outcomes(plan, (), (), T) == plan
    with pytest.raises(ValueError, match="no outcomes"):
        record_outcomes(plan, [job("api", T)], (), T)


# -------------------------------------------------------------------------------------------------- property


def outcome_of(draw: st.DrawFn) -> Outcome:
    kind = draw(st.sampled_from(["created", "refused", "existing"]))
    if kind == "refused":
        reason = draw(st.sampled_from(["Forbidden", "Invalid", "AlreadyExists", "ApiError"]))
        return ("refused", reason, draw(st.text(max_size=80)))
    if kind == "existing":
        return ("existing", draw(st.sampled_from([phase.value for phase in JobPhase])))
    return ("created",)


@st.composite
def worlds_and_outcomes(draw: st.DrawFn) -> tuple[World, dict[str, Outcome]]:
    build = WORLDS[draw(st.sampled_from(sorted(WORLDS)))]
    w = build(timedelta(milliseconds=draw(st.integers(min_value=0, max_value=600_000))))
    return w, {run.job_name: outcome_of(draw) for run in reconcile(w).create}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(case=worlds_and_outcomes())
def test_any_outcomes_at_any_moment_of_the_window_are_recorded_as_the_third_pass_did(
    case: tuple[World, dict[str, Outcome]],
) -> None:
    w, outcomes = case
    assert_same(w, outcomes)


def test_the_outcomes_are_recorded_at_the_moment_given() -> None:
    """The controller records them after the creates, a little later than it planned: the conditions that
    flip then carry that moment."""
    w = world(scheduled_deployment(), T)
    plan = reconcile(w)
    created, _ = carry_out(w, plan, {})
    later = T + 3 * SECOND
    recorded = record_outcomes(plan, created, (), later)
    progressing = next(c for c in recorded.status["conditions"] if c["type"] == "Progressing")
    assert progressing["reason"] == "JobRunning"
    assert progressing["lastTransitionTime"] == "2027-03-14T07:30:03Z"
