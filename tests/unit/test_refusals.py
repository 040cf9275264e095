"""A Job whose pod the API server refuses fails its run at once, with the API server's words.

Tables of worlds at fixed instants, as in test_reconcile.py: the Job has no pod, the grace passes, the
controller's reading of the Job controller's ``FailedCreate`` Events arrives as ``World.pod_refusals``,
and the plan records the run ``Failed``/``PodCreationRefused`` and deletes the Job. Nothing reads a clock.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from test_reconcile import (
    HOUR,
    HOURLY,
    SECOND,
    T,
    at,
    created_job,
    job,
    job_body,
    one_event,
    reasons,
    reconcile,
    runs,
    scheduled_deployment,
    stamp,
    state_of,
    world,
    written,
)

from sundial.decide.observe import MESSAGE_LIMIT, JobPhase, JobState, World, job_state_from_body
from sundial.decide.reconcile import record_outcomes
from sundial.decide.refusals import (
    POD_CREATION_GRACE,
    POD_CREATION_RECHECK,
    POD_CREATION_REFUSED,
    refusal_check_at,
    refusal_check_due,
)
from sundial.runtime.refusals import field_selector, latest_message
from sundial.timing.names import job_name

REFUSAL = (
    'Error creating: pods "api-29034210-abcde" is forbidden: violates PodSecurity "restricted:latest": '
    'privileged (container "deploy" must not set securityContext.privileged=true)'
)
"""The Job controller's Event message, as the API server worded it."""


def fired(at_instant: datetime = T) -> tuple[World, JobState]:
    """The one-shot fired at ``at_instant`` + 2 s, its status written, and its Job as just created."""
    armed = world(scheduled_deployment(), T - HOUR)
    due = written(armed, reconcile(armed), at_instant + 2 * SECOND)
    plan = reconcile(due)
    [run] = plan.create
    state = created_job(due.body, run)
    outcome = record_outcomes(plan, [state], (), due.now)
    return written(replace(due, jobs={state.name: state}), outcome), state


# ------------------------------------------------------------------------------------------ reading a Job


def with_status(status: dict[str, Any] | None, spec: dict[str, Any] | None = None) -> dict[str, Any]:
    body = job_body()
    if status is not None:
        body["status"] = status
    body["spec"].update(spec or {})
    return body


NO_PODS_CASES = [
    pytest.param(None, None, True, id="just created, no status yet"),
    pytest.param(
        {"startTime": "2027-03-14T07:30:00Z", "active": 0, "ready": 0, "terminating": 0,
         "uncountedTerminatedPods": {}},
        None, True, id="the Job controller could not create its pod",
    ),
    pytest.param({"active": 1, "ready": 0}, None, False, id="a pod pending"),
    pytest.param({"active": 1, "ready": 1}, None, False, id="a pod running"),
    pytest.param({"terminating": 1}, None, False, id="a pod terminating"),
    pytest.param({"failed": 1}, None, False, id="a pod failed, backoff before the next"),
    pytest.param({"uncountedTerminatedPods": {"succeeded": ["u1"]}}, None, False, id="a pod not yet counted"),
    pytest.param(None, {"suspend": True}, False, id="suspended by its template"),
    pytest.param(
        {"conditions": [{"type": "FailureTarget", "status": "True"}]}, None, False,
        id="the Job controller is failing it",
    ),
    pytest.param(
        {"conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}]}, None, False,
        id="failed without a pod",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("status", "spec", "no_pods"), NO_PODS_CASES)
def test_a_job_without_any_pod_is_told_from_one_with_pods(
    status: dict[str, Any] | None, spec: dict[str, Any] | None, no_pods: bool
) -> None:
    state = job_state_from_body(with_status(status, spec))
    assert state is not None
    assert state.no_pods is no_pods


def test_a_job_is_read_with_its_uid_and_creation_time() -> None:
    body = job_body()
    body["metadata"].update(uid="job-uid-1", creationTimestamp="2027-03-14T07:30:01Z")
    state = job_state_from_body(body)
    assert state is not None
    assert state.uid == "job-uid-1"
    assert state.created_time == T + SECOND


# ------------------------------------------------------------------------------------------ when to look

PODLESS = replace(job("api", T), no_pods=True)
"""Fired 250 ms after T, no pod."""
GRACE_END = T + timedelta(milliseconds=250) + POD_CREATION_GRACE

CHECK_CASES = [
    pytest.param(PODLESS, T + SECOND, False, GRACE_END, id="within the grace: wake at its end"),
    pytest.param(PODLESS, GRACE_END, True, GRACE_END + POD_CREATION_RECHECK, id="at the end of the grace"),
    pytest.param(PODLESS, T + HOUR, True, T + HOUR + POD_CREATION_RECHECK, id="long after: look every 30 s"),
    pytest.param(replace(PODLESS, fired_time=None, created_time=T), T + SECOND, False, T + POD_CREATION_GRACE,
                 id="no fired time: from its creation"),
    pytest.param(replace(PODLESS, fired_time=None), T, True, T + POD_CREATION_RECHECK,
                 id="no time at all: due now"),
    pytest.param(job("api", T), T + HOUR, False, None, id="with a pod"),
    pytest.param(replace(PODLESS, deleting=True), T + HOUR, False, None, id="being deleted"),
    pytest.param(replace(PODLESS, phase=JobPhase.SUCCEEDED), T + HOUR, False, None, id="finished"),
]  # fmt: skip


@pytest.mark.parametrize(("state", "now", "due", "next_check"), CHECK_CASES)
def test_a_job_without_pods_is_looked_at_after_the_grace_and_then_every_recheck(
    state: JobState, now: datetime, due: bool, next_check: datetime | None
) -> None:
    assert refusal_check_due(state, now) is due
    assert refusal_check_at(state, now) == next_check


# ------------------------------------------------------------------------------------------ the decision


def test_a_new_job_is_looked_at_again_when_its_pod_should_exist() -> None:
    armed = world(scheduled_deployment(), T - HOUR)
    due = written(armed, reconcile(armed), T + 2 * SECOND)
    plan = reconcile(due)
    [run] = plan.create
    outcome = record_outcomes(plan, [created_job(due.body, run)], (), due.now)
    assert outcome.wake_at == T + 2 * SECOND + POD_CREATION_GRACE


def test_a_refused_pod_fails_the_run_at_once_with_the_api_servers_words_and_deletes_the_job() -> None:
    w, state = fired()
    later = replace(w, now=T + 8 * SECOND, pod_refusals={state.name: REFUSAL})
    plan = reconcile(later)
    assert runs(plan.status) == [(stamp(T), "Failed", POD_CREATION_REFUSED)]
    [record] = plan.status["runs"]
    assert record["jobName"] == state.name
    assert record["firedTime"] == "2027-03-14T07:30:02.000Z", "the run did start: its fired time stays"
    assert REFUSAL in record["message"]
    assert plan.delete == (state.name,)
    assert plan.create == ()
    assert plan.status["active"] == []
    assert state_of(plan.status, "Ready") == ("False", POD_CREATION_REFUSED)
    failed = one_event(plan, "Failed")
    assert failed.type == "Warning"
    assert "violates PodSecurity" in failed.message
    assert reasons(plan) == [("Warning", "Failed")]


def test_within_the_grace_a_refusal_is_not_acted_on() -> None:
    """The Job controller tries again after 1 s and 2 s: a quota race may still clear."""
    w, state = fired()
    plan = reconcile(replace(w, now=T + 3 * SECOND, pod_refusals={state.name: REFUSAL}))
    assert runs(plan.status) == [(stamp(T), "Running", "JobRunning")]
    assert plan.delete == ()
    assert plan.wake_at == T + 2 * SECOND + POD_CREATION_GRACE


def test_without_a_failed_create_event_the_run_keeps_running_and_is_looked_at_again() -> None:
    w, _ = fired()
    now = T + 8 * SECOND
    plan = reconcile(replace(w, now=now))
    assert runs(plan.status) == [(stamp(T), "Running", "JobRunning")]
    assert plan.delete == ()
    assert plan.wake_at == now + POD_CREATION_RECHECK
    assert plan.events == ()


def test_a_job_that_has_its_pod_is_never_failed_by_an_old_refusal() -> None:
    """A FailedCreate from a transient refusal stays in the Events after the pod was created."""
    w, state = fired()
    running = replace(state, no_pods=False)
    plan = reconcile(replace(w, now=T + HOUR, jobs={state.name: running}, pod_refusals={state.name: REFUSAL}))
    assert runs(plan.status) == [(stamp(T), "Running", "JobRunning")]
    assert plan.delete == ()
    assert plan.wake_at is None


def test_the_refusal_stands_until_the_job_is_gone_whatever_the_events_say_then() -> None:
    w, state = fired()
    first = reconcile(replace(w, now=T + 8 * SECOND, pod_refusals={state.name: REFUSAL}))
    after = written(w, first, T + 9 * SECOND)
    # The watch has not yet told the cache the Job is gone, and this time no Events were read.
    again = reconcile(after)
    assert runs(again.status) == runs(first.status)
    assert again.status["runs"] == first.status["runs"]
    assert again.delete == (state.name,), "asked again until it is gone (a 404 is success)"
    assert again.events == ()
    # Deletion under way, then gone: the record stays.
    deleting = reconcile(replace(after, jobs={state.name: replace(state, deleting=True)}))
    assert deleting.status["runs"] == first.status["runs"]
    assert deleting.delete == ()
    gone = reconcile(replace(after, jobs={}))
    assert gone.status["runs"] == first.status["runs"]
    assert gone.create == (), "the run is never made again"
    assert gone.events == ()


def test_a_refused_message_is_bounded_like_every_message_from_outside() -> None:
    w, state = fired()
    plan = reconcile(replace(w, now=T + 8 * SECOND, pod_refusals={state.name: "x" * 10 * MESSAGE_LIMIT}))
    [record] = plan.status["runs"]
    assert len(record["message"]) == MESSAGE_LIMIT


def test_a_refused_run_does_not_block_the_next_one_under_forbid() -> None:
    body = scheduled_deployment("nightly", {**HOURLY, "concurrencyPolicy": "Forbid"}, created=at(5, 50))
    stuck = replace(job("nightly", at(7)), no_pods=True)
    w = world(body, at(7, 0, 10), jobs=[stuck])
    w = replace(w, pod_refusals={stuck.name: REFUSAL})
    plan = reconcile(w)
    assert runs(plan.status)[-1] == (stamp(at(7)), "Failed", POD_CREATION_REFUSED)
    nxt = reconcile(replace(written(w, plan, at(8)), pod_refusals={}))
    [run] = nxt.create
    assert run.job_name == job_name("nightly", at(8))


def test_a_refused_job_takes_no_slot_of_the_failed_history() -> None:
    spec = {**HOURLY, "failedJobsHistoryLimit": 1}
    body = scheduled_deployment("nightly", spec, created=at(5, 50))
    older = job("nightly", at(6), JobPhase.FAILED)
    stuck = replace(job("nightly", at(7)), no_pods=True)
    w = replace(world(body, at(7, 0, 10), jobs=[older, stuck]), pod_refusals={stuck.name: REFUSAL})
    plan = reconcile(w)
    assert plan.delete == (stuck.name,), "the older failed Job is the one the history keeps"


def test_a_refusal_of_another_objects_job_is_not_ours_to_act_on() -> None:
    w, state = fired()
    stranger = replace(state, owner_uid="some-deleted-object")
    plan = reconcile(
        replace(w, now=T + 8 * SECOND, jobs={state.name: stranger}, pod_refusals={state.name: REFUSAL})
    )
    assert plan.delete == ()


# ------------------------------------------------------------------------------------------ reading Events


def test_the_events_are_selected_by_the_jobs_kind_name_uid_and_reason() -> None:
    state = replace(PODLESS, uid="job-uid-1")
    assert field_selector(state) == (
        f"involvedObject.kind=Job,involvedObject.name={state.name},reason=FailedCreate,type=Warning,"
        "involvedObject.uid=job-uid-1"
    )


def test_the_latest_failed_create_message_is_the_one_reported() -> None:
    events = [
        {"message": "Error creating: first", "lastTimestamp": "2027-03-14T07:30:01Z"},
        {"message": "Error creating: latest", "lastTimestamp": "2027-03-14T07:30:04Z"},
        {"message": "Error creating: middle", "eventTime": "2027-03-14T07:30:02.000000Z"},
        {"message": "  ", "lastTimestamp": "2027-03-14T07:30:09Z"},
    ]
    assert latest_message(events) == "Error creating: latest"
    assert latest_message([]) is None
