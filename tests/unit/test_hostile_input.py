"""No user-controlled input can make the pure reconcile raise, and nothing forged counts as a run.

Defects these guard (issue 11): a 100-digit ``sundial.dev/trigger`` made every reconcile of the object raise,
so its scheduled run never fired; a Job with Sundial's labels but no controller reference counted as a run;
a Job of a dependency's predictable name satisfied ``mustSucceed``; a jobTemplate's ``sundial.dev/*`` keys
made a scheduled run look manual. Property tests (hypothesis) drive the reconcile with arbitrary annotation
values, Job metadata and pod termination messages and require a plan whose status the API would accept.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_reconcile import (
    DEADLINE,
    DEPENDENT,
    DEPLOYER_IMAGE,
    NAMESPACE,
    ONE_SHOT,
    SECOND,
    T,
    job,
    scheduled_deployment,
    uid,
    world,
)

from sundial.api.keys import ANNOTATION_TRIGGER
from sundial.api.models import Condition, RunResult, ScheduledDeploymentStatus
from sundial.api.trigger import MAX_LENGTH, request_key
from sundial.decide.events import Event, build_event
from sundial.decide.jobs import build_job
from sundial.decide.observe import MESSAGE_LIMIT, JobPhase, failure_detail, job_state_from_body
from sundial.decide.reconcile import internal_error_plan, reconcile
from sundial.timing.names import job_name

PROPERTY = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
    database=None,
)
"""Derandomised: the same examples every run, so CI is repeatable; a failure prints the input to replay."""

SUNDIAL_KEYS = [
    "sundial.dev/trigger",
    "sundial.dev/scheduled-time",
    "sundial.dev/fired-time",
    "sundial.dev/local-time",
    "sundial.dev/time-zone",
    "sundial.dev/scheduled-deployment",
    "sundial.dev/role",
    "sundial.dev/manual",
    "app.kubernetes.io/managed-by",
]

instants = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.timezones()
).map(lambda moment: moment.isoformat())
hostile_text = st.one_of(
    st.text(max_size=300),
    st.integers(min_value=10**60, max_value=10**120).map(str),
    instants,
    st.sampled_from(
        ["", " ", "Z", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "2027-03-14T07:30"]
    ),
    st.text(min_size=70, max_size=2000),
)
string_maps = st.dictionaries(
    st.one_of(st.sampled_from(SUNDIAL_KEYS), st.text(max_size=20)), hostile_text, max_size=6
)


@st.composite
def owner_references(draw: st.DrawFn) -> list[Any]:
    valid = {
        "apiVersion": "sundial.dev/v1alpha1",
        "kind": "ScheduledDeployment",
        "name": draw(st.sampled_from(["api", "dep", "other"])),
        "uid": draw(st.sampled_from([uid("api"), uid("dep"), "forged-uid"])),
        "controller": draw(st.sampled_from([True, False, None, "true"])),
    }
    junk = st.dictionaries(st.text(max_size=12), st.one_of(st.text(max_size=40), st.booleans(), st.none()))
    return draw(st.lists(st.one_of(st.just(valid), junk), max_size=3))


@st.composite
def job_bodies(draw: st.DrawFn) -> dict[str, Any]:
    annotations = draw(string_maps)
    if draw(st.booleans()):
        annotations["sundial.dev/scheduled-time"] = draw(
            st.sampled_from(
                [(T + offset).isoformat() for offset in (-DEADLINE, -SECOND, timedelta(0), SECOND)]
            )
        )
    condition = st.fixed_dictionaries(
        {
            "type": st.sampled_from(["Complete", "Failed", "Suspended", "x"]),
            "status": st.sampled_from(["True", "False", "Unknown"]),
            "message": hostile_text,
            "reason": hostile_text,
        }
    )
    return {
        "metadata": {
            "name": draw(
                st.one_of(
                    st.just(job_name("api", T)),
                    st.just(job_name("dep", T - timedelta(minutes=5))),
                    st.text(min_size=1, max_size=60),
                )
            ),
            "namespace": NAMESPACE,
            "labels": draw(string_maps),
            "annotations": annotations,
            "ownerReferences": draw(owner_references()),
            **({"deletionTimestamp": "2027-03-14T07:30:00Z"} if draw(st.booleans()) else {}),
        },
        "status": {"conditions": draw(st.lists(condition, max_size=2))},
    }


pods = st.lists(
    st.fixed_dictionaries(
        {
            "status": st.fixed_dictionaries(
                {
                    "containerStatuses": st.lists(
                        st.fixed_dictionaries(
                            {
                                "name": hostile_text,
                                "state": st.fixed_dictionaries(
                                    {
                                        "terminated": st.fixed_dictionaries(
                                            {
                                                "exitCode": st.one_of(
                                                    st.integers(-(2**31), 2**31), st.none()
                                                ),
                                                "message": st.one_of(
                                                    hostile_text, st.text(min_size=5000, max_size=20000)
                                                ),
                                            }
                                        )
                                    }
                                ),
                            }
                        ),
                        max_size=3,
                    )
                }
            )
        }
    ),
    max_size=2,
)


def assert_the_api_would_accept(status: dict[str, Any]) -> ScheduledDeploymentStatus:
    json.dumps(status)  # plain JSON, nothing else
    parsed = ScheduledDeploymentStatus.model_validate(status)
    for condition in parsed.conditions:
        Condition.model_validate(condition.model_dump())
    return parsed


@PROPERTY
@given(
    trigger=hostile_text,
    annotations=string_maps,
    bodies=st.lists(job_bodies(), max_size=4),
    now_offset=st.integers(min_value=-3600, max_value=3600),
    dependent=st.booleans(),
)
@example(trigger="1" * 100, annotations={}, bodies=[], now_offset=1, dependent=False)
def test_reconcile_returns_a_plan_the_api_accepts_for_any_annotations_and_jobs(
    trigger: str, annotations: dict[str, str], bodies: list[dict[str, Any]], now_offset: int, dependent: bool
) -> None:
    body = scheduled_deployment("api", DEPENDENT if dependent else ONE_SHOT)
    body["metadata"]["annotations"] = {**annotations, ANNOTATION_TRIGGER: trigger}
    dep = scheduled_deployment("dep", {k: v for k, v in ONE_SHOT.items() if k not in ("runAt", "timeZone")})
    states = [state for state in map(job_state_from_body, bodies) if state is not None]
    plan = reconcile(world(body, T + timedelta(seconds=now_offset), others=[dep], jobs=states))
    status = assert_the_api_would_accept(plan.status)
    for run in status.runs:
        assert run.trigger is None or len(run.trigger) <= MAX_LENGTH
    for event in plan.events:
        assert event.reason.isidentifier() and event.reason[0].isupper()


@PROPERTY
@given(pods=pods)
def test_failure_detail_is_a_valid_reason_and_a_bounded_message_for_any_pod(
    pods: list[dict[str, Any]],
) -> None:
    detail = failure_detail(pods)
    if detail is not None:
        reason, message = detail
        Condition(type="Succeeded", status="False", reason=reason, message=message, lastTransitionTime=T)
        assert len(message) <= MESSAGE_LIMIT + 200


@PROPERTY
@given(trigger=hostile_text)
def test_a_malformed_trigger_never_stops_the_scheduled_run(trigger: str) -> None:
    """The defect: a 100-digit trigger raised on every reconcile and the run due at T never fired."""
    body = scheduled_deployment("api", ONE_SHOT)
    body["metadata"]["annotations"] = {ANNOTATION_TRIGGER: trigger}
    plan = reconcile(world(body, T + SECOND))
    assert job_name("api", T) in [run.job_name for run in plan.create]


def test_a_hundred_digit_trigger_is_refused_once_and_remembered_by_its_digest() -> None:
    trigger = "7" * 100
    body = scheduled_deployment("api", ONE_SHOT)
    body["metadata"]["annotations"] = {ANNOTATION_TRIGGER: trigger}
    plan = reconcile(world(body, T - 60 * SECOND))
    status = assert_the_api_would_accept(plan.status)
    (record,) = [run for run in status.runs if run.trigger is not None]
    assert (record.result, record.reason, record.trigger) == (
        RunResult.SKIPPED,
        "InvalidTrigger",
        request_key(trigger),
    )
    assert record.message is not None and "(100 characters)" in record.message
    assert status.last_trigger == request_key(trigger)
    again = reconcile(world({**body, "status": plan.status}, T - 30 * SECOND))
    assert again.status["runs"] == plan.status["runs"]
    assert "TriggerRefused" not in [event.reason for event in again.events]


# ---------------------------------------------------------------------------------------------- forgeries


def test_a_job_of_the_dependencys_name_not_controlled_by_it_does_not_satisfy_must_succeed() -> None:
    """A pre-created Job under the dependency's predictable name, owned by nobody (or another UID)."""
    api = scheduled_deployment(
        "api", {**DEPENDENT, "dependsOn": {"name": "dep", "leadTime": "5m", "mustSucceed": True}}
    )
    dep = scheduled_deployment("dep", {k: v for k, v in ONE_SHOT.items() if k not in ("runAt", "timeZone")})
    genuine = job("dep", T - timedelta(minutes=5), JobPhase.SUCCEEDED)
    for forged in (
        replace(genuine, owner_uid="uid-of-a-deleted-dep"),
        replace(genuine, owner="other"),
    ):
        plan = reconcile(world(api, T + SECOND, others=[dep], jobs=[forged]))
        assert plan.create == ()
        ready = next(c for c in plan.status["conditions"] if c["type"] == "Progressing")
        assert ready["reason"] == "WaitingForDependency"
    plan = reconcile(world(api, T + SECOND, others=[dep], jobs=[genuine]))
    assert [run.job_name for run in plan.create] == [job_name("api", T)]


def test_a_job_template_cannot_make_a_scheduled_run_look_manual_or_claim_another_instant() -> None:
    forged = {
        "sundial.dev/trigger": "2027-03-14T07:00:00Z",
        "sundial.dev/scheduled-time": "2020-01-01T00:00:00Z",
        "sundial.dev/manual": "true",
        "local-cluster.sundial.dev/outcome": "fail",
        "app.kubernetes.io/managed-by": "someone-else",
        "team": "shop",
    }
    spec = {
        "runAt": "2027-03-14T08:30",
        "timeZone": "Europe/Berlin",
        "jobTemplate": {
            "metadata": {"labels": {"team": "shop", "sundial.dev/manual": "true"}, "annotations": forged},
            "spec": {
                "template": {
                    "metadata": {"labels": {"sundial.dev/role": "dependency"}, "annotations": forged},
                    "spec": {"containers": [{"name": "main", "image": "registry.example/task:1"}]},
                }
            },
        },
    }
    body = scheduled_deployment("api", spec)
    (run,) = reconcile(world(body, T + SECOND)).create
    manifest = build_job(body, run, DEPLOYER_IMAGE)
    metadata = manifest["metadata"]
    assert ANNOTATION_TRIGGER not in metadata["annotations"]
    assert "sundial.dev/manual" not in metadata["labels"]
    assert metadata["annotations"]["sundial.dev/scheduled-time"] == "2027-03-14T07:30:00Z"
    assert metadata["annotations"]["local-cluster.sundial.dev/outcome"] == "fail"  # another tool's key
    assert metadata["labels"]["app.kubernetes.io/managed-by"] == "sundial"
    assert metadata["labels"]["team"] == "shop" and metadata["annotations"]["team"] == "shop"
    pod_metadata = manifest["spec"]["template"]["metadata"]
    assert pod_metadata["labels"]["sundial.dev/role"] == "deploy"
    assert not [key for key in pod_metadata["annotations"] if key.startswith("sundial.dev/")]
    state = job_state_from_body({**manifest, "metadata": {**metadata, "namespace": NAMESPACE}})
    assert state is not None and state.trigger is None and state.scheduled_time == T


# ---------------------------------------------------------------------------------------------- the record


def test_a_job_that_exists_overrides_a_record_that_says_its_run_was_missed() -> None:
    """The CI failure of seed 3351550051: a restarted operator recorded Missed before it saw the Job."""
    body = scheduled_deployment("api", {**ONE_SHOT, "startingDeadlineSeconds": 2})
    missed = reconcile(world(body, T + 5 * SECOND))
    (record,) = missed.status["runs"]
    assert (record["result"], record["reason"]) == ("Missed", "MissedDeadline")
    late_job = replace(job("api", T), fired_time=T + 1617 * timedelta(milliseconds=1))
    healed = reconcile(world({**body, "status": missed.status}, T + 6 * SECOND, jobs=[late_job]))
    (record,) = healed.status["runs"]
    assert (record["result"], record["jobName"], record["firedTime"]) == (
        "Running",
        job_name("api", T),
        "2027-03-14T07:30:01.617Z",
    )
    assert "Fired" in [event.reason for event in healed.events]


def test_internal_error_says_so_on_the_object_and_keeps_the_run_history() -> None:
    body = scheduled_deployment("api", ONE_SHOT)
    armed = reconcile(world(body, T - 60 * SECOND))
    body = {**body, "status": armed.status}
    plan = internal_error_plan(body, T - 30 * SECOND, "TypeError: boom")
    status = assert_the_api_would_accept(plan.status)
    ready = next(c for c in status.conditions if c.type == "Ready")
    assert (ready.status, ready.reason) == ("False", "InternalError")
    assert "TypeError: boom" in ready.message and "report it" in ready.message
    assert [event.reason for event in plan.events] == ["InternalError"]
    assert plan.status["nextRunTime"] == armed.status["nextRunTime"] and plan.create == ()
    again = internal_error_plan({**body, "status": plan.status}, T - 20 * SECOND, "TypeError: boom")
    assert again.events == ()


def test_internal_error_is_total_even_over_a_mangled_status() -> None:
    body = scheduled_deployment("api", ONE_SHOT, status={"runs": "not a list", "conditions": [{"type": 5}]})
    body["metadata"]["generation"] = "seven"
    plan = internal_error_plan(body, T, "x" * 100_000)
    status = assert_the_api_would_accept(plan.status)
    assert len(status.conditions[0].message) <= MESSAGE_LIMIT


def test_a_one_shot_whose_only_run_dst_skips_says_so_rather_than_completed() -> None:
    """02:30 on 2027-03-14 does not exist in New York; before that instant nothing is "in the past" yet."""
    spec = {
        "runAt": "2027-03-14T02:30",
        "timeZone": "America/New_York",
        "dstPolicy": {"nonexistentTime": "Skip"},
        "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "m", "image": "i"}]}}}},
    }
    plan = reconcile(world(scheduled_deployment("gap", spec), T - 60 * SECOND))
    scheduled = next(c for c in plan.status["conditions"] if c["type"] == "Scheduled")
    assert (scheduled["status"], scheduled["reason"]) == ("False", "SkippedByDstPolicy")
    assert (
        "2027-03-14T07:30:00Z" in scheduled["message"]
        and "will be recorded as skipped" in scheduled["message"]
    )
    after = reconcile(world(scheduled_deployment("gap", spec, status=plan.status), T + SECOND))
    assert [(run["result"], run["reason"]) for run in after.status["runs"]] == [("Skipped", "DstSkipped")]
    scheduled = next(c for c in after.status["conditions"] if c["type"] == "Scheduled")
    assert scheduled["reason"] == "Completed"


def test_an_event_is_built_purely_with_a_bounded_message_and_the_objects_identity() -> None:
    body = scheduled_deployment("a" * 253, ONE_SHOT)
    manifest = build_event(body, Event("Warning", "InvalidTrigger", "x" * 5000), T, unique="0123abcd")
    assert manifest["metadata"] == {"name": f"{'a' * 200}.0123abcd", "namespace": NAMESPACE}
    assert manifest["involvedObject"]["uid"] == uid("a" * 253)
    assert manifest["involvedObject"]["apiVersion"] == "sundial.dev/v1alpha1"
    assert len(manifest["message"]) == 1024 and manifest["firstTimestamp"] == "2027-03-14T07:30:00Z"
