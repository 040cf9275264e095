"""The whole decision of the operator, as tables of worlds: object, siblings, Jobs and a fixed ``now``.

``reconcile`` is pure, so every test builds a `World` by hand and looks at the `Plan`. `controller_pass`
plays the controller's part (plan, create the Jobs, record them in the plan, write that status) so that
sequences of reconciles read like the operator's life. Nothing here reads the clock.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from sundial.api.models import RunRole
from sundial.api.timestamps import format_utc
from sundial.decide.jobs import JobRun, build_job
from sundial.decide.observe import JobPhase, job_state_from_body
from sundial.decide.reconcile import CreateFailure, Event, JobState, Plan, World, reconcile, record_outcomes
from sundial.decide.refusals import POD_CREATION_GRACE
from sundial.timing.names import job_name

NAMESPACE = "shop"
T = datetime(2027, 3, 14, 7, 30, tzinfo=UTC)
"""The one-shot's instant: 08:30 in Berlin, which is on CET (+01:00) that day."""
CREATED = T - timedelta(days=1)
DEADLINE = timedelta(seconds=600)
"""The default startingDeadlineSeconds."""
LEAD = timedelta(minutes=5)
SECOND = timedelta(seconds=1)
HOUR = timedelta(hours=1)

TARGET = {"deployment": {"name": "api", "container": "app", "image": "registry.example.com/api:v42"}}
ONE_SHOT = {"runAt": "2027-03-14T08:30", "timeZone": "Europe/Berlin", **TARGET}
HOURLY = {"schedule": "0 * * * *", **TARGET}
DEPENDENT = {**ONE_SHOT, "dependsOn": {"name": "dep", "leadTime": "5m"}}
DEPENDENCY_ONLY = dict(TARGET)
"""``dep``: no runAt or schedule of its own; it runs only for ``api``."""

DEPLOYER_IMAGE = "registry.example.com/sundial:v1.2.3"
"""The deploy Jobs' image, as `sundial run` would take it from SUNDIAL_DEPLOYER_IMAGE."""


def stamp(instant: datetime) -> str:
    return format_utc(instant)


def uid(name: str) -> str:
    return f"00000000-0000-4000-8000-{name.encode().hex()[:12]:0>12}"


def scheduled_deployment(
    name: str = "api",
    spec: Mapping[str, Any] = ONE_SHOT,
    *,
    created: datetime = CREATED,
    status: Mapping[str, Any] | None = None,
    generation: int = 1,
) -> dict[str, Any]:
    """A ScheduledDeployment as the API server returns it."""
    body: dict[str, Any] = {
        "apiVersion": "sundial.dev/v1alpha1",
        "kind": "ScheduledDeployment",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "uid": uid(name),
            "generation": generation,
            "creationTimestamp": stamp(created),
            "resourceVersion": "1",
        },
        "spec": copy.deepcopy(dict(spec)),
    }
    if status is not None:
        body["status"] = copy.deepcopy(dict(status))
    return body


def world(
    body: Mapping[str, Any],
    now: datetime,
    *,
    others: Iterable[Mapping[str, Any]] = (),
    jobs: Iterable[JobState] = (),
) -> World:
    """The object among its siblings (itself included), with Sundial's Jobs of the namespace."""
    siblings = {other["metadata"]["name"]: other for other in others}
    siblings[body["metadata"]["name"]] = body
    return World(
        now=now,
        body=body,
        siblings=siblings,
        jobs={state.name: state for state in jobs},
    )


_OUTCOME = {
    JobPhase.ACTIVE: (None, None),
    JobPhase.SUCCEEDED: ("JobSucceeded", "the Job completed"),
    JobPhase.FAILED: ("JobFailed", "the Job failed: Job has reached the specified backoff limit"),
}


def job(
    owner: str,
    instant: datetime,
    phase: JobPhase = JobPhase.ACTIVE,
    *,
    role: RunRole = RunRole.DEPLOY,
) -> JobState:
    """One of Sundial's Jobs, as `job_state_from_body` would read it; fired 250 ms after its instant."""
    reason, message = _OUTCOME[phase]
    return JobState(
        namespace=NAMESPACE,
        name=job_name(owner, instant),
        owner=owner,
        owner_uid=uid(owner),
        role=role,
        scheduled_time=instant,
        fired_time=instant + timedelta(milliseconds=250),
        phase=phase,
        reason=reason,
        message=message,
    )


def with_status(body: Mapping[str, Any], status: Mapping[str, Any]) -> dict[str, Any]:
    """``body`` with ``status`` stored, as the API server hands it back (through JSON)."""
    new = copy.deepcopy(dict(body))
    new["status"] = json.loads(json.dumps(status))
    return new


def written(w: World, plan: Plan, now: datetime | None = None) -> World:
    """The world after the plan's status was written, at ``now`` (default: the same instant)."""
    body = with_status(w.body, plan.status)
    siblings = {**w.siblings, body["metadata"]["name"]: body}
    return replace(w, body=body, siblings=siblings, now=w.now if now is None else now, create_failures=())


def created_job(body: Mapping[str, Any], run: JobRun) -> JobState:
    """The Job the API server made for ``run``, read back as the controller reads it."""
    state = job_state_from_body(build_job(body, run, DEPLOYER_IMAGE))
    assert state is not None
    return state


def controller_pass(w: World) -> tuple[Plan, World]:
    """What `sundial.runtime.controller` does in one reconcile: plan; create the Jobs and delete the ones the
    plan names; record the Jobs just created in the plan (`record_outcomes`); write that status. Returns the
    plan as written and the world after it. (test_record_outcomes.py keeps the earlier three-pass algorithm
    as the oracle that this one matches.)"""
    plan = reconcile(w)
    if plan.create or plan.delete:
        created = [created_job(w.body, run) for run in plan.create]
        jobs = {name: state for name, state in w.jobs.items() if name not in plan.delete}
        jobs.update({state.name: state for state in created})
        w = replace(w, jobs=jobs)
        plan = record_outcomes(plan, created, (), w.now)
    return plan, written(w, plan)


def finish(w: World, name: str, phase: JobPhase, now: datetime) -> World:
    """The world after Job ``name`` finished, at ``now``."""
    state = w.jobs[name]
    reason, message = _OUTCOME[phase]
    return replace(
        w, now=now, jobs={**w.jobs, name: replace(state, phase=phase, reason=reason, message=message)}
    )


def condition(status: Mapping[str, Any], kind: str) -> dict[str, Any]:
    found = [c for c in status["conditions"] if c["type"] == kind]
    assert len(found) == 1, f"expected one {kind} condition in {status['conditions']}"
    return dict(found[0])


def state_of(status: Mapping[str, Any], kind: str) -> tuple[str, str]:
    found = condition(status, kind)
    return found["status"], found["reason"]


def runs(status: Mapping[str, Any]) -> list[tuple[str, str, str | None]]:
    return [(run["scheduledTime"], run["result"], run.get("reason")) for run in status["runs"]]


def reasons(plan: Plan) -> list[tuple[str, str]]:
    return [(event.type, event.reason) for event in plan.events]


def one_event(plan: Plan, reason: str) -> Event:
    found = [event for event in plan.events if event.reason == reason]
    assert len(found) == 1, f"expected one {reason} event, got {plan.events}"
    return found[0]


def at(hour: int, minute: int = 0, second: int = 0) -> datetime:
    """An instant on the day of ``T``."""
    return T.replace(hour=hour, minute=minute, second=second)


# --------------------------------------------------------------------------------------------------- one-shot


def test_a_one_shot_before_its_instant_is_armed_and_asks_to_be_woken_then() -> None:
    plan = reconcile(world(scheduled_deployment(), T - HOUR))
    status = plan.status
    assert status["nextRunTime"] == "2027-03-14T07:30:00Z"
    assert status["nextRunLocalTime"] == "2027-03-14T08:30:00+01:00"
    assert status["observedGeneration"] == 1
    assert state_of(status, "Scheduled") == ("True", "Armed")
    assert state_of(status, "Ready") == ("True", "Armed")
    assert state_of(status, "Progressing") == ("False", "Idle")
    assert state_of(status, "Succeeded") == ("Unknown", "NoRunYet")
    assert [c["type"] for c in status["conditions"]] == ["Ready", "Scheduled", "Progressing", "Succeeded"]
    assert "2027-03-14T08:30:00+01:00" in condition(status, "Ready")["message"]
    assert reasons(plan) == [("Normal", "Armed")]
    assert "2027-03-14T07:30:00Z" in plan.events[0].message
    assert plan.wake_at == T
    assert plan.create == ()
    assert plan.delete == ()
    assert status["runs"] == []
    assert status["active"] == []
    assert status["upcoming"] == [], "upcoming lists a schedule's runs; a runAt has its nextRunTime"


@pytest.mark.parametrize(
    "now",
    [T, T + SECOND, T + DEADLINE - SECOND, T + DEADLINE],
    ids=["at the instant", "a second late", "just inside the deadline", "at the deadline"],
)
def test_a_due_one_shot_creates_one_job_under_its_deterministic_name(now: datetime) -> None:
    armed = reconcile(world(scheduled_deployment(), T - HOUR))
    plan = reconcile(written(world(scheduled_deployment(), T - HOUR), armed, now))
    [run] = plan.create
    assert run.job_name == job_name("api", T)
    assert run.role == "Deploy"
    assert run.scheduled_time == T
    assert run.fired_time == now
    assert run.local_time == T.astimezone(ZoneInfo("Europe/Berlin"))
    assert run.time_zone == "Europe/Berlin"
    assert plan.delete == ()


def test_a_starting_deadline_of_int64_max_means_no_deadline_rather_than_a_crash() -> None:
    """The API accepts any int64; 2**63 - 1 seconds overflowed timedelta and every reconcile raised."""
    body = scheduled_deployment(spec={**ONE_SHOT, "startingDeadlineSeconds": 2**63 - 1})
    armed = reconcile(world(body, T - HOUR))
    assert state_of(armed.status, "Ready") == ("True", "Armed")
    fifty_years_late = T + timedelta(days=50 * 365)
    [run] = reconcile(written(world(body, T - HOUR), armed, fifty_years_late)).create
    assert run.scheduled_time == T


def test_a_one_shot_creates_nothing_a_second_before_its_instant() -> None:
    plan = reconcile(world(scheduled_deployment(), T - SECOND))
    assert plan.create == ()
    assert plan.wake_at == T


def test_an_object_with_a_253_character_name_gets_a_valid_job_that_records_its_run() -> None:
    """Label values stop at 63 characters; the full name used to go into one, and the API refused the Job."""
    long_name = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])
    armed = world(scheduled_deployment(long_name), T - HOUR)
    due = written(armed, reconcile(armed), T)
    [run] = reconcile(due).create
    job = build_job(due.body, run, DEPLOYER_IMAGE)
    assert len(job["metadata"]["name"]) <= 63
    assert all(len(value) <= 63 for value in job["metadata"]["labels"].values())
    state = created_job(due.body, run)
    assert state.owner == long_name
    plan = reconcile(replace(due, jobs={run.job_name: state}))
    assert plan.create == ()
    assert [record["result"] for record in plan.status["runs"]] == ["Running"]


def test_with_its_job_present_the_run_is_recorded_running_and_nothing_is_created_again() -> None:
    armed = world(scheduled_deployment(), T - HOUR)
    due = written(armed, reconcile(armed), T + 2 * SECOND)
    [run] = reconcile(due).create
    plan = reconcile(replace(due, jobs={run.job_name: created_job(due.body, run)}))
    assert plan.create == ()
    assert plan.delete == ()
    [record] = plan.status["runs"]
    assert record == {
        "scheduledTime": "2027-03-14T07:30:00Z",
        "firedTime": "2027-03-14T07:30:02.000Z",
        "jobName": job_name("api", T),
        "role": "Deploy",
        "result": "Running",
        "reason": "JobRunning",
        "message": "the Job is running",
    }
    assert plan.status["active"] == [
        {"name": job_name("api", T), "role": "Deploy", "scheduledTime": stamp(T)}
    ]
    assert plan.status["lastRunTime"] == stamp(T)
    assert plan.status["lastJobName"] == job_name("api", T)
    assert "nextRunTime" not in plan.status
    assert state_of(plan.status, "Ready") == ("True", "Running")
    assert state_of(plan.status, "Progressing") == ("True", "JobRunning")
    assert state_of(plan.status, "Scheduled") == ("False", "Completed")
    fired = one_event(plan, "Fired")
    assert fired.type == "Normal"
    assert job_name("api", T) in fired.message
    assert "2000 ms after the instant" in fired.message
    # Looked at again when the Job's pod should exist (a refused pod fails the run: test_refusals.py).
    assert plan.wake_at == T + 2 * SECOND + POD_CREATION_GRACE


@pytest.mark.parametrize(
    ("phase", "ready", "succeeded", "event"),
    [
        (JobPhase.SUCCEEDED, ("True", "Succeeded"), ("True", "JobSucceeded"), ("Normal", "Succeeded")),
        (JobPhase.FAILED, ("False", "JobFailed"), ("False", "JobFailed"), ("Warning", "Failed")),
    ],
    ids=["succeeded", "failed"],
)
def test_a_finished_job_decides_ready(
    phase: JobPhase, ready: tuple[str, str], succeeded: tuple[str, str], event: tuple[str, str]
) -> None:
    _, running = controller_pass(world(scheduled_deployment(), T))
    plan = reconcile(finish(running, job_name("api", T), phase, T + 3 * 60 * SECOND))
    assert state_of(plan.status, "Ready") == ready
    assert state_of(plan.status, "Succeeded") == succeeded
    assert state_of(plan.status, "Progressing") == ("False", "Idle")
    assert plan.status["active"] == []
    assert runs(plan.status) == [
        (stamp(T), phase.value, "JobSucceeded" if succeeded[0] == "True" else "JobFailed")
    ]
    assert reasons(plan) == [event]
    assert plan.create == ()
    if phase is JobPhase.SUCCEEDED:
        assert plan.status["lastSuccessfulTime"] == stamp(T)
        assert job_name("api", T) in condition(plan.status, "Ready")["message"]
    else:
        assert "lastSuccessfulTime" not in plan.status
        assert "backoff limit" in condition(plan.status, "Ready")["message"]
    assert plan.status["lastRunTime"] == stamp(T)


def test_a_one_shot_created_a_little_after_its_instant_still_runs() -> None:
    body = scheduled_deployment(created=T + 2 * 60 * SECOND)
    [run] = reconcile(world(body, T + 3 * 60 * SECOND)).create
    assert run.job_name == job_name("api", T)


# ----------------------------------------------------------------------------------------------------- missed


def test_a_run_nobody_started_within_its_deadline_is_recorded_missed() -> None:
    armed = world(scheduled_deployment(), T - HOUR)
    plan = reconcile(written(armed, reconcile(armed), T + DEADLINE + SECOND))
    assert plan.create == ()
    assert runs(plan.status) == [(stamp(T), "Missed", "MissedDeadline")]
    assert "startingDeadlineSeconds (600)" in plan.status["runs"][0]["message"]
    assert state_of(plan.status, "Ready") == ("False", "MissedDeadline")
    assert state_of(plan.status, "Succeeded") == ("False", "MissedDeadline")
    missed = one_event(plan, "Missed")
    assert missed.type == "Warning"
    assert plan.wake_at is None


def test_a_run_at_already_past_its_deadline_when_created_is_invalid() -> None:
    created = T + DEADLINE + 60 * SECOND
    plan = reconcile(world(scheduled_deployment(created=created), created + SECOND))
    assert plan.create == ()
    assert state_of(plan.status, "Ready") == ("False", "RunAtInPast")
    assert state_of(plan.status, "Scheduled") == ("False", "RunAtInPast")
    assert reasons(plan) == [("Warning", "RunAtInPast")]
    assert "runAt '2027-03-14T08:30'" in plan.events[0].message
    assert plan.status["runs"] == []
    assert plan.wake_at is None


def test_a_run_at_missed_later_than_creation_stays_a_missed_run_not_an_invalid_spec() -> None:
    """RunAtInPast is judged against the creation: a deadline that ran out while the operator was down is
    a missed deploy, and calling the spec invalid would hide that."""
    plan = reconcile(world(scheduled_deployment(created=T - HOUR), T + 7 * 24 * HOUR))
    assert state_of(plan.status, "Ready") == ("False", "MissedDeadline")
    assert state_of(plan.status, "Scheduled") == ("False", "Completed")


# ------------------------------------------------------------------------------------------------ fixed point


def _armed() -> World:
    return world(scheduled_deployment(), T - HOUR)


def _running() -> World:
    return controller_pass(world(scheduled_deployment(), T))[1]


def _running_fired_at_a_ragged_instant() -> World:
    return controller_pass(world(scheduled_deployment(), T + timedelta(seconds=1, microseconds=987_654)))[1]


def _succeeded() -> World:
    return finish(_running(), job_name("api", T), JobPhase.SUCCEEDED, T + HOUR)


def _failed() -> World:
    return finish(_running(), job_name("api", T), JobPhase.FAILED, T + HOUR)


def _missed() -> World:
    return world(scheduled_deployment(), T + HOUR)


def _invalid() -> World:
    return world(scheduled_deployment(spec={**ONE_SHOT, "timeZone": "Europe/Atlantis"}), T - HOUR)


def _run_at_in_past() -> World:
    return world(scheduled_deployment(created=T + HOUR), T + 2 * HOUR)


def _held() -> World:
    dep_job = job("dep", T - LEAD, JobPhase.FAILED, role=RunRole.DEPENDENCY)
    return world(
        scheduled_deployment(spec=DEPENDENT),
        T,
        others=[scheduled_deployment("dep", DEPENDENCY_ONLY)],
        jobs=[dep_job],
    )


def _waiting_for_dependency() -> World:
    dep_job = job("dep", T - LEAD, JobPhase.ACTIVE, role=RunRole.DEPENDENCY)
    return world(
        scheduled_deployment(spec=DEPENDENT),
        T + SECOND,
        others=[scheduled_deployment("dep", DEPENDENCY_ONLY)],
        jobs=[dep_job],
    )


def _dependency_running() -> World:
    dep = world(
        scheduled_deployment("dep", DEPENDENCY_ONLY), T - LEAD, others=[scheduled_deployment(spec=DEPENDENT)]
    )
    return controller_pass(dep)[1]


def _suspended() -> World:
    return world(scheduled_deployment(spec={**ONE_SHOT, "suspend": True}), T + SECOND)


def _create_refused() -> World:
    due = world(scheduled_deployment(), T)
    [run] = reconcile(due).create
    return replace(due, create_failures=(CreateFailure(run, "Forbidden", "exceeded quota: compute"),))


def _cron_armed() -> World:
    return world(scheduled_deployment("nightly", HOURLY), at(7, 5), jobs=[job("nightly", at(7))])


def _cron_forbidden() -> World:
    return world(
        scheduled_deployment("nightly", HOURLY), at(7, 0, 5), jobs=[job("nightly", at(6), JobPhase.ACTIVE)]
    )


def _history_pruned() -> World:
    spec = {**HOURLY, "successfulJobsHistoryLimit": 1}
    done = [job("nightly", at(hour), JobPhase.SUCCEEDED) for hour in (3, 4, 5)]
    return world(scheduled_deployment("nightly", spec), at(5, 30), jobs=done)


STATES: list[Any] = [
    pytest.param(_armed, id="armed"),
    pytest.param(_running, id="running"),
    pytest.param(_running_fired_at_a_ragged_instant, id="running, fired at a now with microseconds"),
    pytest.param(_succeeded, id="succeeded"),
    pytest.param(_failed, id="failed"),
    pytest.param(_missed, id="missed"),
    pytest.param(_invalid, id="invalid time zone"),
    pytest.param(_run_at_in_past, id="runAt in the past"),
    pytest.param(_held, id="held by a failed dependency"),
    pytest.param(_waiting_for_dependency, id="waiting for a running dependency"),
    pytest.param(_dependency_running, id="running as a dependency"),
    pytest.param(_suspended, id="skipped while suspended"),
    pytest.param(_create_refused, id="create refused"),
    pytest.param(_cron_armed, id="schedule armed"),
    pytest.param(_cron_forbidden, id="schedule skipped by Forbid"),
    pytest.param(_history_pruned, id="history pruned"),
]


@pytest.mark.parametrize("state", STATES)
def test_writing_the_planned_status_back_changes_nothing(state: Callable[[], World]) -> None:
    """The fixed point that keeps the operator from patching status forever: the controller skips the
    write when the planned status equals the stored one, and every write triggers another reconcile."""
    first = reconcile(state())
    assert first.create == (), "a state that creates a Job is not at rest"
    again = reconcile(written(state(), first))
    assert again.status == first.status
    assert again.events == ()
    assert again.create == ()
    assert again.delete == first.delete
    assert again.wake_at == first.wake_at


@pytest.mark.parametrize("state", STATES)
def test_later_reconciles_at_the_same_moment_stay_at_rest(state: Callable[[], World]) -> None:
    plan, after = controller_pass(state())
    for _ in range(3):
        again, after = controller_pass(after)
        assert again.status == plan.status
        assert again.events == ()


# ------------------------------------------------------------------------------------------------ transitions


def test_last_transition_time_moves_only_when_a_condition_flips() -> None:
    first, w = controller_pass(world(scheduled_deployment(), T - 2 * HOUR))
    early = stamp(T - 2 * HOUR)
    assert {c["type"]: c["lastTransitionTime"] for c in first.status["conditions"]} == {
        "Ready": early, "Scheduled": early, "Progressing": early, "Succeeded": early,
    }  # fmt: skip

    later, w = controller_pass(replace(w, now=T - HOUR))
    assert later.status == first.status, "nothing flipped, so nothing moved"

    fired_at = T + 5 * SECOND
    running, w = controller_pass(replace(w, now=fired_at))
    moved = {c["type"]: c["lastTransitionTime"] for c in running.status["conditions"]}
    assert moved == {
        "Ready": early,  # True (Armed) -> True (Running): the reason changed, the status did not
        "Scheduled": stamp(fired_at),  # True -> False (Completed)
        "Progressing": stamp(fired_at),  # False -> True
        "Succeeded": early,  # Unknown throughout
    }
    assert condition(running.status, "Ready")["reason"] == "Running"

    done_at = T + 3 * 60 * SECOND
    succeeded, _ = controller_pass(finish(w, job_name("api", T), JobPhase.SUCCEEDED, done_at))
    assert {c["type"]: c["lastTransitionTime"] for c in succeeded.status["conditions"]} == {
        "Ready": early,
        "Scheduled": stamp(fired_at),
        "Progressing": stamp(done_at),
        "Succeeded": stamp(done_at),
    }


def test_last_transition_time_has_whole_seconds() -> None:
    plan = reconcile(world(scheduled_deployment(), T - timedelta(minutes=5, microseconds=250_000)))
    assert {c["lastTransitionTime"] for c in plan.status["conditions"]} == {"2027-03-14T07:24:59Z"}


def test_a_new_generation_is_observed_without_moving_transition_times() -> None:
    first, w = controller_pass(world(scheduled_deployment(), T - 2 * HOUR))
    body = scheduled_deployment(generation=2, status=w.body["status"])
    plan = reconcile(world(body, T - HOUR))
    assert plan.status["observedGeneration"] == 2
    assert {c["observedGeneration"] for c in plan.status["conditions"]} == {2}
    assert [c["lastTransitionTime"] for c in plan.status["conditions"]] == [
        c["lastTransitionTime"] for c in first.status["conditions"]
    ]
    assert plan.events == ()


# ----------------------------------------------------------------------------------------------- dependencies


def dependency_world(
    now: datetime,
    *jobs: JobState,
    dep_status: Mapping[str, Any] | None = None,
    spec: Mapping[str, Any] = DEPENDENT,
) -> World:
    """``api`` (runAt T, dependsOn dep with leadTime 5m), seen from ``api``."""
    dep = scheduled_deployment("dep", DEPENDENCY_ONLY, status=dep_status)
    return world(scheduled_deployment(spec=spec), now, others=[dep], jobs=jobs)


def test_a_dependency_is_armed_for_its_dependents_run() -> None:
    plan = reconcile(
        world(
            scheduled_deployment("dep", DEPENDENCY_ONLY),
            T - HOUR,
            others=[scheduled_deployment(spec=DEPENDENT)],
        )
    )
    assert plan.status["nextRunTime"] == stamp(T - LEAD)
    assert plan.wake_at == T - LEAD
    assert plan.create == ()
    assert state_of(plan.status, "Ready") == ("True", "Armed")


def test_the_dependency_runs_its_lead_time_before_the_dependent() -> None:
    dep = world(
        scheduled_deployment("dep", DEPENDENCY_ONLY), T - LEAD, others=[scheduled_deployment(spec=DEPENDENT)]
    )
    plan = reconcile(dep)
    [run] = plan.create
    assert run.job_name == job_name("dep", T - LEAD)
    assert run.role == "Dependency"
    assert run.scheduled_time == T - LEAD
    assert run.fired_time == T - LEAD

    recorded, _ = controller_pass(dep)
    [record] = recorded.status["runs"]
    assert (record["role"], record["result"]) == ("Dependency", "Running")
    assert reasons(recorded) == [("Normal", "DependencyStarted")]


def test_the_dependent_deploys_once_its_dependency_succeeded() -> None:
    done = job("dep", T - LEAD, JobPhase.SUCCEEDED, role=RunRole.DEPENDENCY)
    plan = reconcile(dependency_world(T, done))
    [run] = plan.create
    assert run.job_name == job_name("api", T)
    assert run.role == "Deploy"
    assert state_of(plan.status, "DependencyReady") == ("True", "DependencyResolved")


def test_the_dependent_waits_for_a_running_dependency_until_its_deadline() -> None:
    running = job("dep", T - LEAD, JobPhase.ACTIVE, role=RunRole.DEPENDENCY)
    plan = reconcile(dependency_world(T + SECOND, running))
    assert plan.create == ()
    assert plan.wake_at == T + DEADLINE
    assert plan.status["runs"] == []
    assert state_of(plan.status, "Progressing") == ("True", "WaitingForDependency")
    assert state_of(plan.status, "Ready") == ("True", "WaitingForDependency")
    assert state_of(plan.status, "DependencyReady") == ("Unknown", "WaitingForDependency")
    assert job_name("dep", T - LEAD) in condition(plan.status, "Progressing")["message"]


HELD_CASES = [
    pytest.param(
        [job("dep", T - LEAD, JobPhase.FAILED, role=RunRole.DEPENDENCY)], None, "DependencyFailed",
        id="its Job failed",
    ),
    pytest.param(
        [], "Missed", "DependencyDidNotRun",
        id="no Job and recorded missed",
    ),
    pytest.param(
        [], "Skipped", "DependencyDidNotRun",
        id="no Job and recorded skipped",
    ),
    pytest.param(
        [], "Failed", "DependencyDidNotRun",
        id="no Job and recorded failed (create refused)",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("jobs", "dep_result", "reason"), HELD_CASES)
def test_a_dependency_that_did_not_succeed_holds_the_run(
    jobs: list[JobState], dep_result: str | None, reason: str
) -> None:
    dep_status = None
    if dep_result is not None:
        record = {
            "scheduledTime": stamp(T - LEAD),
            "role": "Dependency",
            "result": dep_result,
            "reason": "Because",
        }
        dep_status = {"runs": [record]}
    plan = reconcile(dependency_world(T, *jobs, dep_status=dep_status))
    assert plan.create == ()
    assert runs(plan.status) == [(stamp(T), "Held", reason)]
    assert "nothing was deployed" in plan.status["runs"][0]["message"]
    assert state_of(plan.status, "Ready") == ("False", reason)
    assert state_of(plan.status, "DependencyReady") == ("False", reason)
    held = one_event(plan, "Held")
    assert held.type == "Warning"


def test_a_dependency_still_running_at_the_deadline_holds_the_run() -> None:
    """Held, like the cases above, once the dependent's deadline runs out: no deploy, and not left waiting."""
    running = job("dep", T - LEAD, JobPhase.ACTIVE, role=RunRole.DEPENDENCY)
    waiting = reconcile(dependency_world(T + SECOND, running))
    plan = reconcile(written(dependency_world(T + SECOND, running), waiting, T + DEADLINE + SECOND))
    assert plan.create == ()
    assert runs(plan.status) == [(stamp(T), "Held", "DependencyNotFinished")]
    assert "still running" in plan.status["runs"][0]["message"]
    assert "nothing was deployed" in plan.status["runs"][0]["message"]
    assert state_of(plan.status, "Ready") == ("False", "DependencyNotFinished")
    assert state_of(plan.status, "DependencyReady") == ("False", "DependencyNotFinished")
    assert state_of(plan.status, "Progressing") == ("False", "Idle")
    assert plan.wake_at is None
    assert one_event(plan, "Held").type == "Warning"


def test_a_dependency_reconciled_after_its_deadline_records_its_run_missed() -> None:
    late = T - LEAD + DEADLINE + 60 * SECOND
    plan = reconcile(
        world(
            scheduled_deployment("dep", DEPENDENCY_ONLY), late, others=[scheduled_deployment(spec=DEPENDENT)]
        )
    )
    assert plan.create == ()
    assert runs(plan.status) == [(stamp(T - LEAD), "Missed", "MissedDeadline")]


@pytest.mark.parametrize(
    "jobs",
    [
        [job("dep", T - LEAD, JobPhase.FAILED, role=RunRole.DEPENDENCY)],
        [job("dep", T - LEAD, JobPhase.ACTIVE, role=RunRole.DEPENDENCY)],
        [],
    ],
    ids=["dependency failed", "dependency still running", "dependency never ran"],
)
def test_a_dependency_that_need_not_succeed_does_not_hold_the_run(jobs: list[JobState]) -> None:
    spec = {**ONE_SHOT, "dependsOn": {"name": "dep", "leadTime": "5m", "mustSucceed": False}}
    [run] = reconcile(dependency_world(T, *jobs, spec=spec)).create
    assert run.job_name == job_name("api", T)


def test_a_dependency_and_its_dependent_deploy_in_order() -> None:
    """The whole chain over time, each object reconciled as the controller would."""
    dep = scheduled_deployment("dep", DEPENDENCY_ONLY)
    api = scheduled_deployment(spec=DEPENDENT)

    _, dep_world = controller_pass(world(dep, T - LEAD, others=[api]))
    dep_run = job_name("dep", T - LEAD)
    assert dep_world.jobs[dep_run].phase is JobPhase.ACTIVE
    dep_done = finish(dep_world, dep_run, JobPhase.SUCCEEDED, T - 2 * 60 * SECOND)
    dep_plan, dep_world = controller_pass(dep_done)
    assert state_of(dep_plan.status, "Ready") == ("True", "Succeeded")

    api_plan, api_world = controller_pass(
        world(api, T, others=[dep_world.body], jobs=dep_world.jobs.values())
    )
    assert runs(api_plan.status) == [(stamp(T), "Running", "JobRunning")]
    assert set(api_world.jobs) == {dep_run, job_name("api", T)}


# ---------------------------------------------------------------------------------------------------- suspend


def test_a_run_that_falls_due_while_suspended_is_skipped_for_good() -> None:
    body = scheduled_deployment(spec={**ONE_SHOT, "suspend": True})
    plan = reconcile(world(body, T + SECOND))
    assert plan.create == ()
    assert runs(plan.status) == [(stamp(T), "Skipped", "Suspended")]
    assert state_of(plan.status, "Scheduled") == ("False", "Suspended")
    assert reasons(plan) == [("Normal", "Skipped")]

    resumed = scheduled_deployment(status=plan.status, generation=2)
    after = reconcile(world(resumed, T + 2 * SECOND))
    assert after.create == (), "a run skipped while suspended is not made up later"


def test_a_suspended_object_says_so_before_its_instant() -> None:
    plan = reconcile(world(scheduled_deployment(spec={**ONE_SHOT, "suspend": True}), T - HOUR))
    assert state_of(plan.status, "Scheduled") == ("False", "Suspended")
    assert plan.create == ()


# -------------------------------------------------------------------------------------------------- schedules


def concurrency_world(policy: str) -> World:
    """``nightly``, hourly, with the 06:00 Job still running when 07:00 falls due."""
    body = scheduled_deployment("nightly", {**HOURLY, "concurrencyPolicy": policy}, created=at(5, 50))
    return world(body, at(7, 0, 5), jobs=[job("nightly", at(6), JobPhase.ACTIVE)])


def test_forbid_skips_a_run_while_the_previous_one_runs() -> None:
    plan = reconcile(concurrency_world("Forbid"))
    assert plan.create == ()
    assert plan.delete == ()
    assert runs(plan.status)[-1] == (stamp(at(7)), "Skipped", "ConcurrencyForbidden")
    assert job_name("nightly", at(6)) in plan.status["runs"][-1]["message"]
    assert [job["name"] for job in plan.status["active"]] == [job_name("nightly", at(6))]
    assert plan.wake_at == at(8)


@pytest.mark.parametrize(
    ("policy", "deleted"), [("Replace", True), ("Allow", False)], ids=["Replace", "Allow"]
)
def test_replace_and_allow_start_the_run_beside_or_instead_of_the_previous_one(
    policy: str, deleted: bool
) -> None:
    plan = reconcile(concurrency_world(policy))
    [run] = plan.create
    assert run.job_name == job_name("nightly", at(7))
    assert plan.delete == ((job_name("nightly", at(6)),) if deleted else ())


def test_concurrency_policy_does_not_apply_to_a_run_at() -> None:
    body = scheduled_deployment(spec={**ONE_SHOT, "concurrencyPolicy": "Forbid"})
    other = job("api", T - HOUR, JobPhase.ACTIVE)
    [run] = reconcile(world(body, T, jobs=[other])).create
    assert run.job_name == job_name("api", T)


def test_a_replaced_run_is_no_longer_reported_running() -> None:
    _, seen = controller_pass(replace(concurrency_world("Replace"), now=at(6, 30)))
    assert runs(seen.body["status"]) == [(stamp(at(6)), "Running", "JobRunning")]
    _, replaced = controller_pass(replace(seen, now=at(7, 0, 5)))
    assert set(replaced.jobs) == {job_name("nightly", at(7))}
    plan = reconcile(replace(replaced, now=at(7, 1)))
    assert [record["result"] for record in plan.status["runs"]] != ["Running", "Running"]


def test_a_schedule_does_not_run_occurrences_from_before_the_object_existed() -> None:
    body = scheduled_deployment("nightly", HOURLY, created=at(7, 10))
    plan = reconcile(world(body, at(7, 20)))
    assert plan.create == ()
    assert plan.status["runs"] == []
    assert plan.status["nextRunTime"] == stamp(at(8))
    assert plan.status["upcoming"] == [stamp(at(8)), stamp(at(9)), stamp(at(10))]
    assert plan.wake_at == at(8)

    [run] = reconcile(written(world(body, at(7, 20)), plan, at(8))).create
    assert run.job_name == job_name("nightly", at(8))


def downtime_world() -> World:
    """``nightly``, hourly with a two-hour deadline, last seen at 01:30 after its 01:00 run succeeded, and
    back at 07:05."""
    spec = {**HOURLY, "startingDeadlineSeconds": 7200}
    last = job("nightly", at(1), JobPhase.SUCCEEDED)
    body = scheduled_deployment("nightly", spec, created=at(0, 50))
    _, seen = controller_pass(world(body, at(1, 30), jobs=[last]))
    return replace(seen, now=at(7, 5))


DOWNTIME_RUNS = [
    (stamp(at(1)), "Succeeded", "JobSucceeded"),
    (stamp(at(2)), "Missed", "MissedDeadline"),
    (stamp(at(3)), "Missed", "MissedDeadline"),
    (stamp(at(4)), "Missed", "MissedDeadline"),
    (stamp(at(5)), "Missed", "MissedDeadline"),
    (stamp(at(6)), "Missed", "Superseded"),
]


def test_after_downtime_only_the_latest_occurrence_runs_and_the_rest_are_missed() -> None:
    plan = reconcile(downtime_world())
    [run] = plan.create
    assert run.job_name == job_name("nightly", at(7))
    assert run.fired_time == at(7, 5)
    assert runs(plan.status) == DOWNTIME_RUNS
    assert reasons(plan).count(("Warning", "Missed")) == 5


def test_runs_missed_during_downtime_survive_the_controllers_second_plan() -> None:
    plan, _ = controller_pass(downtime_world())
    assert runs(plan.status) == [*DOWNTIME_RUNS, (stamp(at(7)), "Running", "JobRunning")]


def test_an_occurrence_the_dst_policy_skips_is_recorded_skipped() -> None:
    """02:30 does not exist in New York on 2027-03-14 (07:30Z would have been its instant)."""
    spec = {
        "schedule": "30 2 * * *",
        "timeZone": "America/New_York",
        "dstPolicy": {"nonexistentTime": "Skip"},
        **TARGET,
    }
    plan = reconcile(world(scheduled_deployment("nightly", spec), T + 5 * 60 * SECOND))
    assert plan.create == ()
    assert runs(plan.status) == [(stamp(T), "Skipped", "DstSkipped")]
    assert reasons(plan) == [("Normal", "Armed"), ("Normal", "Skipped")]


def test_more_than_a_hundred_missed_occurrences_are_summed_up_in_one_warning() -> None:
    spec = {"schedule": "* * * * *", "startingDeadlineSeconds": 86400, **TARGET}
    body = scheduled_deployment("often", spec, created=T - 3 * HOUR)
    plan = reconcile(world(body, T))
    [run] = plan.create
    assert run.job_name == job_name("often", T)
    assert ("Warning", "Missed") in reasons(plan)
    assert any("more than 100 runs" in event.message for event in plan.events)


def test_a_record_older_than_the_history_limit_of_runs_is_dropped() -> None:
    spec = {**HOURLY, "startingDeadlineSeconds": 86400}
    body = scheduled_deployment("nightly", spec, created=at(0, 30) - timedelta(days=1))
    plan = reconcile(world(body, at(7, 5)))
    [run] = plan.create
    assert run.job_name == job_name("nightly", at(7))
    assert len(plan.status["runs"]) == 10, "status.runs keeps the latest ten"
    assert plan.status["runs"][0]["scheduledTime"] == stamp(at(21) - timedelta(days=1))
    assert plan.status["runs"][-1]["scheduledTime"] == stamp(at(6))


# ---------------------------------------------------------------------------------------------------- history


def test_finished_jobs_beyond_the_history_limits_are_deleted_oldest_first() -> None:
    spec = {
        **HOURLY,
        "concurrencyPolicy": "Allow",
        "successfulJobsHistoryLimit": 1,
        "failedJobsHistoryLimit": 1,
    }
    jobs = [
        job("nightly", at(1), JobPhase.SUCCEEDED),
        job("nightly", at(2), JobPhase.FAILED),
        job("nightly", at(3), JobPhase.SUCCEEDED),
        job("nightly", at(4), JobPhase.FAILED),
        job("nightly", at(5), JobPhase.SUCCEEDED),
        job("nightly", at(6), JobPhase.ACTIVE),
    ]
    # Created just before the first of these Jobs, so no earlier occurrence counts as missed.
    body = scheduled_deployment("nightly", spec, created=at(0, 50))
    plan = reconcile(world(body, at(6, 30), jobs=jobs))
    assert plan.create == ()
    assert plan.delete == (
        job_name("nightly", at(3)),
        job_name("nightly", at(1)),
        job_name("nightly", at(2)),
    )
    assert [result for _, result, _ in runs(plan.status)] == [
        "Succeeded", "Failed", "Succeeded", "Failed", "Succeeded", "Running",
    ]  # fmt: skip


def test_the_default_history_keeps_three_succeeded_and_one_failed_job() -> None:
    jobs = [job("nightly", at(hour), JobPhase.SUCCEEDED) for hour in range(1, 6)]
    jobs += [job("nightly", at(hour), JobPhase.FAILED) for hour in (0, 6)]
    plan = reconcile(world(scheduled_deployment("nightly", HOURLY), at(6, 30), jobs=jobs))
    assert set(plan.delete) == {
        job_name("nightly", at(1)),
        job_name("nightly", at(2)),
        job_name("nightly", at(0)),
    }


# -------------------------------------------------------------------------------------------- create failures


def test_a_refused_create_records_the_run_failed_with_the_api_servers_reason() -> None:
    due = world(scheduled_deployment(), T)
    [run] = reconcile(due).create
    failure = CreateFailure(run, "Forbidden", "jobs.batch is forbidden: exceeded quota: compute")
    plan = reconcile(replace(due, create_failures=(failure,)))
    assert plan.create == ()
    [record] = plan.status["runs"]
    assert (record["result"], record["reason"], record["jobName"]) == ("Failed", "Forbidden", run.job_name)
    assert f"Job {run.job_name}" in record["message"]
    assert "exceeded quota" in record["message"]
    assert "firedTime" not in record
    assert state_of(plan.status, "Ready") == ("False", "Forbidden")
    assert reasons(plan) == [("Warning", "Failed")]


def test_a_refused_create_is_not_retried() -> None:
    due = world(scheduled_deployment(), T)
    [run] = reconcile(due).create
    refused = reconcile(replace(due, create_failures=(CreateFailure(run, "Forbidden", "no"),)))
    assert reconcile(written(due, refused, T + 60 * SECOND)).create == ()


def test_a_failure_for_another_job_does_not_stop_this_one() -> None:
    due = world(scheduled_deployment(), T)
    [run] = reconcile(due).create
    other = replace(run, job_name=job_name("other", T))
    [again] = reconcile(replace(due, create_failures=(CreateFailure(other, "Forbidden", "no"),))).create
    assert again == run


# ---------------------------------------------------------------------------------------------- invalid specs


INVALID_CASES = [
    pytest.param(
        {**ONE_SHOT, "timeZone": "Europe/Atlantis"}, [], "InvalidTimeZone",
        id="unknown time zone",
    ),
    pytest.param(
        {**ONE_SHOT, "dependsOn": {"name": "db", "leadTime": "5m"}}, [], "DependencyNotFound",
        id="dependency not found",
    ),
    pytest.param(
        {**ONE_SHOT, "dependsOn": {"name": "dep", "leadTime": "5m"}},
        [scheduled_deployment("dep", {**TARGET, "dependsOn": {"name": "api", "leadTime": "5m"}})],
        "DependencyCycle",
        id="dependency cycle",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("spec", "others", "reason"), INVALID_CASES)
def test_an_invalid_spec_is_a_status_and_a_warning_not_a_retry(
    spec: dict[str, Any], others: list[dict[str, Any]], reason: str
) -> None:
    left_running = job("api", T - HOUR, JobPhase.ACTIVE)
    plan = reconcile(
        world(scheduled_deployment(spec=spec), T - 2 * 60 * SECOND, others=others, jobs=[left_running])
    )
    assert state_of(plan.status, "Ready") == ("False", reason)
    assert state_of(plan.status, "Scheduled") == ("False", reason)
    assert reasons(plan) == [("Warning", reason)]
    assert plan.events[0].message == condition(plan.status, "Ready")["message"]
    assert plan.create == ()
    assert plan.delete == ()
    assert plan.wake_at is None
    assert "nextRunTime" not in plan.status
    assert plan.status["active"] == [
        {"name": left_running.name, "role": "Deploy", "scheduledTime": stamp(T - HOUR)}
    ]
    assert state_of(plan.status, "Progressing") == ("True", "JobRunning")


def test_a_spec_that_turns_invalid_flips_ready_and_says_why_once() -> None:
    _, armed = controller_pass(world(scheduled_deployment(), T - 2 * HOUR))
    broken = scheduled_deployment(
        spec={**ONE_SHOT, "timeZone": "Europe/Atlantis"}, generation=2, status=armed.body["status"]
    )
    plan = reconcile(world(broken, T - HOUR))
    ready = condition(plan.status, "Ready")
    assert (ready["status"], ready["reason"], ready["observedGeneration"]) == ("False", "InvalidTimeZone", 2)
    assert ready["lastTransitionTime"] == stamp(T - HOUR)
    assert reasons(plan) == [("Warning", "InvalidTimeZone")]
    assert "nextRunTime" not in plan.status

    fixed = scheduled_deployment(generation=3, status=plan.status)
    healed = reconcile(world(fixed, T - HOUR + SECOND))
    assert state_of(healed.status, "Ready") == ("True", "Armed")
    assert reasons(healed) == [("Normal", "Armed")]


# --------------------------------------------------------------------------------------------- crash recovery


def test_a_job_without_a_status_record_is_recorded_from_its_annotations() -> None:
    """A crash between creating the Job and writing status: the Job's annotations are the memory."""
    armed = world(scheduled_deployment(), T - HOUR)
    before_crash = written(armed, reconcile(armed), T + 30 * SECOND)
    fired = T + timedelta(milliseconds=123)
    run = JobRun(
        job_name("api", T), "Deploy", T, T.astimezone(ZoneInfo("Europe/Berlin")), "Europe/Berlin", fired
    )
    orphan = created_job(before_crash.body, run)
    plan = reconcile(replace(before_crash, jobs={orphan.name: orphan}))
    assert plan.create == ()
    [record] = plan.status["runs"]
    assert record["firedTime"] == "2027-03-14T07:30:00.123Z"
    assert (record["jobName"], record["result"]) == (job_name("api", T), "Running")
    assert plan.status["lastRunTime"] == stamp(T)
    assert "123 ms after the instant" in one_event(plan, "Fired").message


def test_a_record_keeps_its_fired_time_when_the_job_reports_another() -> None:
    _, running = controller_pass(world(scheduled_deployment(), T + 2 * SECOND))
    name = job_name("api", T)
    skewed = replace(running, jobs={name: replace(running.jobs[name], fired_time=T + HOUR)})
    plan = reconcile(skewed)
    assert plan.status["runs"][0]["firedTime"] == "2027-03-14T07:30:02.000Z"


def test_a_mangled_status_is_rebuilt_from_the_jobs() -> None:
    _, running = controller_pass(world(scheduled_deployment(), T + 2 * SECOND))
    mangled = with_status(running.body, {"runs": "not a list", "conditions": 42})
    plan = reconcile(replace(running, body=mangled, siblings={"api": mangled}))
    assert plan.create == ()
    assert runs(plan.status) == [(stamp(T), "Running", "JobRunning")]


def test_a_job_left_by_an_earlier_object_of_the_same_name_is_not_ours() -> None:
    stranger = replace(job("api", T - 24 * HOUR, JobPhase.ACTIVE), owner_uid="some-deleted-object")
    plan = reconcile(world(scheduled_deployment(), T - HOUR, jobs=[stranger]))
    assert plan.status["active"] == []
    assert plan.status["runs"] == []
    assert plan.delete == ()


# --------------------------------------------------------------------------------------------- Jobs read back


def job_body(conditions: list[dict[str, str]] | None = None, role: str = "Deploy") -> dict[str, Any]:
    fired = T + timedelta(milliseconds=42)
    run = JobRun(job_name("api", T), role, T, T.astimezone(ZoneInfo("Europe/Berlin")), "Europe/Berlin", fired)
    body = build_job(scheduled_deployment(), run, DEPLOYER_IMAGE)
    if conditions is not None:
        body["status"] = {"conditions": conditions}
    return body


JOB_CASES = [
    pytest.param(None, JobPhase.ACTIVE, None, None, id="just created"),
    pytest.param(
        [{"type": "Complete", "status": "False"}], JobPhase.ACTIVE, None, None,
        id="a condition that is not True",
    ),
    pytest.param(
        [{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}],
        JobPhase.SUCCEEDED, "JobSucceeded", "the Job completed",
        id="complete",
    ),
    pytest.param(
        [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
          "message": "Job has reached the specified backoff limit"}],
        JobPhase.FAILED, "JobFailed", "the Job failed: Job has reached the specified backoff limit",
        id="failed with a message",
    ),
    pytest.param(
        [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}],
        JobPhase.FAILED, "JobFailed", "the Job failed: DeadlineExceeded",
        id="failed with only a reason",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("conditions", "phase", "reason", "message"), JOB_CASES)
def test_a_sundial_job_is_read_back_from_its_labels_annotations_and_conditions(
    conditions: list[dict[str, str]] | None, phase: JobPhase, reason: str | None, message: str | None
) -> None:
    state = job_state_from_body(job_body(conditions))
    assert state == JobState(
        namespace=NAMESPACE,
        name=job_name("api", T),
        owner="api",
        owner_uid=uid("api"),
        role=RunRole.DEPLOY,
        scheduled_time=T,
        fired_time=T + timedelta(milliseconds=42),
        phase=phase,
        reason=reason,
        message=message,
        no_pods=phase is JobPhase.ACTIVE,  # the bodies' statuses count no pod
    )


def test_a_dependency_job_is_read_back_with_its_role() -> None:
    state = job_state_from_body(job_body(role="Dependency"))
    assert state is not None
    assert state.role is RunRole.DEPENDENCY


def test_a_job_with_sundials_labels_but_no_controller_reference_is_nobodys_run() -> None:
    """Labels select; only the controller ownerReference says whose run a Job is (defect: forged runs)."""
    metadata = {
        "name": "dep-20270314-072500-0badcafe",
        "namespace": NAMESPACE,
        "labels": {"sundial.dev/scheduled-deployment": "dep", "sundial.dev/role": "dependency"},
        "annotations": {"sundial.dev/scheduled-time": "2027-03-14T07:25:00Z"},
    }
    body = {"metadata": metadata, "status": {"conditions": [{"type": "Complete", "status": "True"}]}}
    assert job_state_from_body(body) is None
    reference = {
        "apiVersion": "sundial.dev/v1alpha1",
        "kind": "ScheduledDeployment",
        "name": "dep",
        "uid": uid("dep"),
        "controller": True,
    }
    for not_controller in ({**reference, "controller": False}, {**reference, "kind": "CronJob"}):
        forged = {**body, "metadata": {**metadata, "ownerReferences": [not_controller]}}
        assert job_state_from_body(forged) is None
    state = job_state_from_body({**body, "metadata": {**metadata, "ownerReferences": [reference]}})
    assert state is not None
    assert (state.owner, state.owner_uid, state.role) == ("dep", uid("dep"), RunRole.DEPENDENCY)
    assert (state.scheduled_time, state.fired_time, state.phase) == (T - LEAD, None, JobPhase.SUCCEEDED)


@pytest.mark.parametrize(
    "metadata",
    [
        {"name": "backup-28112233", "namespace": NAMESPACE, "labels": {"job-name": "backup-28112233"}},
        {
            "name": "x",
            "namespace": NAMESPACE,
            "annotations": {"sundial.dev/scheduled-time": "2027-03-14T07:30:00Z"},
        },
        {"name": "x", "namespace": NAMESPACE, "labels": {"sundial.dev/scheduled-deployment": "api"}},
        {
            "name": "x",
            "labels": {"sundial.dev/scheduled-deployment": "api"},
            "annotations": {"sundial.dev/scheduled-time": "yesterday"},
        },
        {
            "name": "x",
            "labels": {"sundial.dev/scheduled-deployment": "api"},
            "annotations": {"sundial.dev/scheduled-time": "2027-03-14T07:30:00"},
        },
        {},
    ],
    ids=[
        "someone else's Job",
        "no owner label",
        "no scheduled time",
        "unreadable scheduled time",
        "scheduled time without an offset",
        "no metadata",
    ],
)
def test_a_job_without_sundials_labels_and_annotations_is_not_ours(metadata: dict[str, Any]) -> None:
    assert job_state_from_body({"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata}) is None


def test_a_hand_edited_fired_time_without_an_offset_is_unknown_rather_than_fatal() -> None:
    body = job_body()
    body["metadata"]["annotations"]["sundial.dev/fired-time"] = "2027-03-14T07:30:00"
    state = job_state_from_body(body)
    assert state is not None
    assert state.fired_time is None
    plan = reconcile(world(scheduled_deployment(), T + SECOND, jobs=[state]))
    assert runs(plan.status) == [(stamp(T), "Running", "JobRunning")]


# ------------------------------------------------------------------------------------ service account


def test_a_missing_service_account_is_reported_before_the_instant_and_rechecked() -> None:
    body = scheduled_deployment()
    plan = reconcile(replace(world(body, T - HOUR), missing_service_account="sundial-deployer"))

    ready = condition(plan.status, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "ServiceAccountNotFound")
    assert "sundial-deployer" in ready["message"] and NAMESPACE in ready["message"]
    assert condition(plan.status, "Scheduled")["reason"] == "Armed"
    assert ("Warning", "ServiceAccountNotFound") in [(e.type, e.reason) for e in plan.events]
    assert plan.wake_at == T - HOUR + timedelta(seconds=10)


def test_a_missing_service_account_at_the_instant_fails_the_run_without_a_job() -> None:
    plan = reconcile(replace(world(scheduled_deployment(), T), missing_service_account="sundial-deployer"))

    assert plan.create == ()
    assert runs(plan.status) == [(stamp(T), "Failed", "ServiceAccountNotFound")]


def test_the_service_account_report_is_a_fixed_point() -> None:
    first = replace(world(scheduled_deployment(), T - HOUR), missing_service_account="sundial-deployer")
    plan = reconcile(first)
    again = reconcile(replace(written(first, plan, T - HOUR), missing_service_account="sundial-deployer"))
    assert again.status == plan.status
    assert again.events == ()


def test_a_run_at_created_exactly_its_deadline_late_still_runs_rather_than_vanishing() -> None:
    """Valid (the deadline check is inclusive) must mean due: before, the window's exclusive start lost it."""
    body = scheduled_deployment("api", ONE_SHOT, created=T + DEADLINE)
    plan = reconcile(world(body, T + DEADLINE))
    assert [run.job_name for run in plan.create] == [job_name("api", T)]


# ------------------------------------------------------------------------------------ Jobs deleted by others


def _fired(now: datetime) -> tuple[Plan, World, JobState]:
    """``api``'s run fired at its instant: the plan as written, the world after, and the Job it made."""
    w = world(scheduled_deployment("api", ONE_SHOT), T + SECOND)
    plan, after = controller_pass(w)
    (run,) = plan.create
    return plan, replace(after, now=now), after.jobs[run.job_name]


def outcomes(status: Mapping[str, Any]) -> list[tuple[str, str | None, str | None]]:
    return [(run["result"], run.get("reason"), run.get("jobName")) for run in status["runs"]]


# A GET is made only for a Job that a written record names, so "absent by GET" has no unwritten case.
@pytest.mark.parametrize(
    ("recorded", "known"), [(True, "watched"), (False, "watched"), (True, "absent-by-get")]
)
def test_a_job_deleted_by_someone_else_while_it_ran_fails_its_run_and_is_not_run_again(
    recorded: bool, known: str
) -> None:
    _, after, state = _fired(T + 3 * 60 * SECOND)
    if not recorded:
        after = replace(after, body=scheduled_deployment("api", ONE_SHOT))  # the status never got written
    gone: dict[str, JobState | None] = {state.name: state if known == "watched" else None}
    later = reconcile(replace(after, jobs={}, gone_jobs=gone))
    assert later.create == ()
    assert outcomes(later.status) == [("Failed", "JobDeleted", state.name)]
    (record,) = later.status["runs"]
    assert "not by Sundial" in record["message"] and "unknown" in record["message"]
    assert ("Warning", "Failed") in reasons(later)


def test_a_deleted_job_that_had_finished_keeps_its_outcome() -> None:
    _, after, state = _fired(T + 3 * 60 * SECOND)
    finished = replace(state, phase=JobPhase.SUCCEEDED, reason="JobSucceeded", message="the Job completed")
    later = reconcile(replace(after, jobs={}, gone_jobs={state.name: finished}))
    assert later.create == ()
    assert outcomes(later.status) == [("Succeeded", "JobSucceeded", state.name)]


def test_a_job_made_again_under_a_gone_name_is_the_fact() -> None:
    _, after, state = _fired(T + 3 * 60 * SECOND)
    later = reconcile(replace(after, gone_jobs={state.name: state}))  # still listed: made again since
    assert outcomes(later.status) == [("Running", "JobRunning", state.name)]


def test_a_gone_job_of_an_earlier_object_of_the_same_name_changes_nothing() -> None:
    _, after, state = _fired(T + 3 * 60 * SECOND)
    stranger = replace(state, owner_uid="uid-of-an-earlier-api")
    later = reconcile(replace(after, gone_jobs={state.name: stranger}))
    assert outcomes(later.status) == [("Running", "JobRunning", state.name)]


@pytest.mark.parametrize(
    ("result", "reason"),
    [("Failed", "PodCreationRefused"), ("Cancelled", "Replaced"), ("Succeeded", "JobSucceeded")],
)
def test_a_run_recorded_before_sundial_deleted_its_job_keeps_its_record(result: str, reason: str) -> None:
    # Sundial deletes a Job (a refused pod, Replace, a history limit) only once a status records its run;
    # the deletion's watch event then shows the Job as it last was, often still active. (Found on the real
    # API server: a refused pod's run was rewritten from PodCreationRefused to JobDeleted.)
    _, after, state = _fired(T + 3 * 60 * SECOND)
    status = copy.deepcopy(after.body["status"])
    status["runs"][0].update(result=result, reason=reason, message="recorded before the delete")
    body = with_status(after.body, status)
    later = reconcile(
        replace(after, body=body, siblings={"api": body}, jobs={}, gone_jobs={state.name: state})
    )
    assert outcomes(later.status) == [(result, reason, state.name)]
    assert later.create == ()
