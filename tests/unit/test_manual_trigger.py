"""Manual runs (``kubectl sundial trigger``): the request format and the operator's pure decision.

The world is built by hand as in test_reconcile.py, whose `controller_pass` plays the controller (plan,
create the Jobs, record them in the plan, write that status). Nothing here reads the clock.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from test_reconcile import DEPLOYER_IMAGE, controller_pass, created_job

from sundial.api.keys import ANNOTATION_OVERRIDE_FREEZE, ANNOTATION_TRIGGER, LABEL_MANUAL
from sundial.api.models import RunRole
from sundial.api.timestamps import format_utc
from sundial.api.trigger import BadTrigger, format_request, parse_request, pending_request
from sundial.decide.freezes import Freeze, read_freeze
from sundial.decide.jobs import build_job
from sundial.decide.observe import JobPhase, plan_view
from sundial.decide.reconcile import CreateFailure, JobState, Plan, World, reconcile
from sundial.timing.names import MAX_LENGTH, job_name, manual_job_name

NAMESPACE = "shop"
T = datetime(2027, 3, 14, 7, 30, tzinfo=UTC)
"""api's runAt instant, 08:30 in Berlin."""
NOW = datetime(2027, 3, 13, 9, 15, 20, 250_000, tzinfo=UTC)
"""When the trigger is served: the day before the runAt."""
REQUEST = "2027-03-13T09:15:20.000Z"
REQUESTED = datetime(2027, 3, 13, 9, 15, 20, tzinfo=UTC)
TARGET = {"deployment": {"name": "api", "container": "app", "image": "registry.example.com/api:v42"}}
ONE_SHOT = {"runAt": "2027-03-14T08:30", "timeZone": "Europe/Berlin", **TARGET}
HOURLY = {"schedule": "0 * * * *", **TARGET}


def uid(name: str) -> str:
    return f"00000000-0000-4000-8000-{name.encode().hex()[:12]:0>12}"


def body_of(
    name: str = "api",
    spec: Mapping[str, Any] = ONE_SHOT,
    *,
    trigger: str | None = REQUEST,
    status: Mapping[str, Any] | None = None,
    created: datetime = NOW - timedelta(days=1),
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": NAMESPACE,
        "uid": uid(name),
        "generation": 1,
        "creationTimestamp": format_utc(created),
        "resourceVersion": "1",
    }
    if trigger is not None:
        metadata["annotations"] = {ANNOTATION_TRIGGER: trigger}
    body: dict[str, Any] = {
        "apiVersion": "sundial.dev/v1alpha1",
        "kind": "ScheduledDeployment",
        "metadata": metadata,
        "spec": copy.deepcopy(dict(spec)),
    }
    if status is not None:
        body["status"] = json.loads(json.dumps(status))
    return body


def world(
    body: Mapping[str, Any],
    now: datetime = NOW,
    *,
    others: Iterable[Mapping[str, Any]] = (),
    jobs: Iterable[JobState] = (),
) -> World:
    siblings = {other["metadata"]["name"]: other for other in others}
    siblings[body["metadata"]["name"]] = body
    return World(now=now, body=body, siblings=siblings, jobs={state.name: state for state in jobs})


def manual_runs(status: Mapping[str, Any]) -> list[tuple[str | None, str, str | None]]:
    return [
        (run.get("trigger"), run["result"], run.get("reason")) for run in status["runs"] if "trigger" in run
    ]


def reasons(plan: Plan) -> list[tuple[str, str]]:
    return [(event.type, event.reason) for event in plan.events]


def finished(w: World, name: str, phase: JobPhase) -> World:
    outcome = "JobSucceeded" if phase is JobPhase.SUCCEEDED else "JobFailed"
    return replace(w, jobs={**w.jobs, name: replace(w.jobs[name], phase=phase, reason=outcome, message="m")})


# ---------------------------------------------------------------------------------------------- requests


@pytest.mark.parametrize(
    ("text", "instant"),
    [
        ("2027-03-13T09:15:20.000Z", REQUESTED),
        ("2027-03-13T09:15:20Z", REQUESTED),
        (" 2027-03-13T10:15:20+01:00 ", REQUESTED),
        ("2027-03-13T09:15:20.5z", REQUESTED + timedelta(milliseconds=500)),
    ],
)
def test_a_request_is_any_rfc3339_instant(text: str, instant: datetime) -> None:
    request = parse_request(text)
    assert request.requested_at == instant
    assert request.request == text.strip()


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("now", "is not a trigger request"),
        ("", "is not a trigger request"),
        ("2027-03-13T09:15:20", "has no offset"),
        ("2027-03-13T09:15:20Z" + "0" * 60, "is not a trigger request"),
    ],
)
def test_a_request_that_is_not_an_instant_is_refused_with_what_to_write(text: str, says: str) -> None:
    with pytest.raises(BadTrigger, match=says) as error:
        parse_request(text)
    assert "RFC 3339 instant" in str(error.value)


def test_the_plugin_writes_utc_with_milliseconds() -> None:
    assert (
        format_request(datetime(2027, 3, 13, 10, 15, 20, 123_456, tzinfo=UTC)) == "2027-03-13T10:15:20.123Z"
    )


def test_the_pending_request_is_read_from_the_annotation() -> None:
    assert pending_request({ANNOTATION_TRIGGER: " x "}) == "x"
    assert pending_request({ANNOTATION_TRIGGER: ""}) is None
    assert pending_request({"other": "x"}) is None
    assert pending_request(None) is None


def test_manual_job_names_are_labels_apart_from_scheduled_ones_and_differ_per_request() -> None:
    name = manual_job_name("api", REQUEST, REQUESTED)
    assert name.startswith("api-manual-20270313-091520-")
    assert name != job_name("api", REQUESTED)
    assert manual_job_name("api", "2027-03-13T09:15:20.001Z", REQUESTED) != name
    long = manual_job_name("a" * 253, REQUEST, REQUESTED)
    assert len(long) <= MAX_LENGTH
    assert manual_job_name("a" * 253, REQUEST, REQUESTED) == long, "the same in every process"


# ---------------------------------------------------------------------------------------------- serving


def test_a_trigger_creates_one_manual_job_now_and_records_it() -> None:
    w = world(body_of())
    [run] = reconcile(w).create
    assert run.job_name == manual_job_name("api", REQUEST, REQUESTED)
    assert run.trigger == REQUEST
    assert run.scheduled_time == REQUESTED
    assert run.role == "Deploy"
    job = build_job(w.body, run, DEPLOYER_IMAGE)
    assert job["metadata"]["labels"][LABEL_MANUAL] == "true"
    assert job["metadata"]["annotations"][ANNOTATION_TRIGGER] == REQUEST
    env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["SUNDIAL_TRIGGER"] == REQUEST

    plan, after = controller_pass(w)
    assert manual_runs(plan.status) == [(REQUEST, "Running", "JobRunning")]
    assert plan.status["lastTrigger"] == REQUEST
    assert plan.status["nextRunTime"] == "2027-03-14T07:30:00Z", "the scheduled run stays armed"
    assert ("Normal", "Triggered") in reasons(plan)
    triggered = next(event for event in plan.events if event.reason == "Triggered")
    assert run.job_name in triggered.message
    assert "dependencies are not run" in triggered.message

    done = finished(replace(after, now=NOW + timedelta(seconds=3)), run.job_name, JobPhase.SUCCEEDED)
    plan, _ = controller_pass(done)
    assert manual_runs(plan.status) == [(REQUEST, "Succeeded", "JobSucceeded")]
    assert ("Normal", "Succeeded") in reasons(plan)
    assert plan.status["lastJobName"] == run.job_name


def test_a_served_request_is_never_served_again() -> None:
    _, after = controller_pass(world(body_of()))
    assert reconcile(replace(after, now=NOW + timedelta(seconds=5))).create == ()

    # Its record has left status.runs (ten later runs), and its Job was pruned: lastTrigger remembers it.
    forgotten = {**after.body["status"], "runs": []}
    w = replace(after, body=body_of(status=forgotten), jobs={})
    assert reconcile(w).create == ()


def test_a_job_without_a_status_record_is_the_lock_after_a_crash() -> None:
    """The operator created the Job, then died before writing status: the Job says the request was served."""
    w = world(body_of())
    [run] = reconcile(w).create
    crashed = replace(w, jobs={run.job_name: created_job(w.body, run)}, now=NOW + timedelta(seconds=30))
    plan = reconcile(crashed)
    assert plan.create == ()
    assert manual_runs(plan.status) == [(REQUEST, "Running", "JobRunning")]
    assert plan.status["lastTrigger"] == REQUEST


def test_a_new_request_runs_again() -> None:
    _, after = controller_pass(world(body_of()))
    after = finished(after, manual_job_name("api", REQUEST, REQUESTED), JobPhase.SUCCEEDED)
    second = "2027-03-13T09:20:00.000Z"
    later = replace(
        after, body=body_of(trigger=second, status=after.body["status"]), now=NOW + timedelta(minutes=5)
    )
    plan, _ = controller_pass(later)
    assert [run[0] for run in manual_runs(plan.status)] == [REQUEST, second]
    assert plan.status["lastTrigger"] == second


@pytest.mark.parametrize(
    ("policy", "runs"),
    [("Forbid", False), ("Replace", False), ("Allow", True)],
    ids=["Forbid", "Replace", "Allow"],
)
def test_a_trigger_never_replaces_a_running_job_and_waits_for_nothing_only_under_allow(
    policy: str, runs: bool
) -> None:
    spec = {**HOURLY, "concurrencyPolicy": policy}
    running = JobState(
        NAMESPACE,
        job_name("api", NOW.replace(minute=0, second=0, microsecond=0)),
        "api",
        uid("api"),
        RunRole.DEPLOY,
        NOW.replace(minute=0, second=0, microsecond=0),
        None,
        JobPhase.ACTIVE,
    )
    created = running.scheduled_time - timedelta(minutes=1)
    plan, _ = controller_pass(world(body_of(spec=spec, created=created), jobs=[running]))
    if runs:
        assert manual_runs(plan.status) == [(REQUEST, "Running", "JobRunning")]
        return
    assert manual_runs(plan.status) == [(REQUEST, "Skipped", "ConcurrencyForbidden")]
    assert plan.status["lastTrigger"] == REQUEST
    [refused] = [event for event in plan.events if event.reason == "TriggerRefused"]
    assert refused.type == "Warning"
    assert running.name in refused.message and f"concurrencyPolicy is {policy}" in refused.message
    ready = next(c for c in plan.status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True", "a refused request is not a failed run"


@pytest.mark.parametrize(
    ("request_text", "reason"),
    [
        ("2027-03-13T09:00:00Z", "TriggerExpired"),
        ("2027-03-13T09:30:00Z", "InvalidTrigger"),
        ("please", "InvalidTrigger"),
    ],
    ids=["older than startingDeadlineSeconds", "dated in the future", "not an instant"],
)
def test_a_request_that_cannot_be_served_is_refused_once(request_text: str, reason: str) -> None:
    plan, after = controller_pass(world(body_of(trigger=request_text)))
    assert plan.create == ()
    assert manual_runs(plan.status) == [(request_text, "Skipped", reason)]
    assert ("Warning", "TriggerRefused") in reasons(plan)
    again = reconcile(replace(after, now=NOW + timedelta(seconds=1)))
    assert again.create == () and "TriggerRefused" not in [e.reason for e in again.events]


def test_a_trigger_on_an_invalid_object_is_refused_with_its_reason() -> None:
    body = body_of(spec={**ONE_SHOT, "timeZone": "Mars/Olympus_Mons"})
    plan, after = controller_pass(world(body))
    assert plan.create == ()
    [(_, result, reason)] = manual_runs(plan.status)
    assert (result, reason) == ("Skipped", "InvalidTimeZone")
    [refused] = [event for event in plan.events if event.reason == "TriggerRefused"]
    assert "invalid" in refused.message and "Mars/Olympus_Mons" in refused.message
    assert reconcile(after).events == (), "refused once, not at every reconcile"


def test_a_manual_run_runs_only_this_objects_job_even_with_a_dependency() -> None:
    dependent = body_of(spec={**ONE_SHOT, "dependsOn": {"name": "dep", "leadTime": "5m"}})
    dependency = body_of("dep", TARGET, trigger=None)
    [run] = reconcile(world(dependent, others=[dependency])).create
    assert run.job_name == manual_job_name("api", REQUEST, REQUESTED)


def test_suspend_stops_the_schedule_but_not_a_trigger() -> None:
    [run] = reconcile(world(body_of(spec={**ONE_SHOT, "suspend": True}))).create
    assert run.trigger == REQUEST


def test_a_trigger_in_the_same_second_as_a_scheduled_run_hides_neither() -> None:
    """Both are keyed apart; a manual record must not move the window that scheduled runs fall due in."""
    instant = NOW.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    request = format_request(instant + timedelta(milliseconds=300))
    body = body_of(spec={**HOURLY, "concurrencyPolicy": "Allow"}, trigger=request, created=NOW)
    plan, _ = controller_pass(world(body, instant + timedelta(seconds=1)))
    results = [(run["scheduledTime"], run.get("trigger"), run["result"]) for run in plan.status["runs"]]
    assert results == [(format_utc(instant), None, "Running"), (format_utc(instant), request, "Running")]


def test_a_manual_run_served_while_a_scheduled_run_waits_does_not_make_it_forgotten() -> None:
    """The scheduled run waits for its dependency; a trigger served meanwhile is dated after its instant.
    The window of due runs starts at the latest *scheduled* record, so the waiting run still starts."""
    instant = NOW.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    request = format_request(instant + timedelta(seconds=2))
    spec = {**HOURLY, "concurrencyPolicy": "Allow", "dependsOn": {"name": "dep", "leadTime": "5m"}}
    dependency = body_of("dep", TARGET, trigger=None)
    dep_job = JobState(
        NAMESPACE,
        job_name("dep", instant - timedelta(minutes=5)),
        "dep",
        uid("dep"),
        RunRole.DEPENDENCY,
        instant - timedelta(minutes=5),
        None,
        JobPhase.ACTIVE,
    )
    w = world(
        body_of(spec=spec, trigger=request, created=NOW),
        instant + timedelta(seconds=3),
        others=[dependency],
        jobs=[dep_job],
    )
    plan, after = controller_pass(w)
    assert manual_runs(plan.status) == [(request, "Running", "JobRunning")]
    assert job_name("api", instant) not in after.jobs, "still waiting for the dependency"

    succeeded = replace(after.jobs[dep_job.name], phase=JobPhase.SUCCEEDED, reason="JobSucceeded")
    later = replace(after, now=instant + timedelta(seconds=30), jobs={**after.jobs, dep_job.name: succeeded})
    plan, _ = controller_pass(later)
    scheduled = [run for run in plan.status["runs"] if "trigger" not in run]
    assert [(run["scheduledTime"], run["result"]) for run in scheduled] == [(format_utc(instant), "Running")]


def test_a_refused_create_is_a_failed_manual_run() -> None:
    w = world(body_of())
    [run] = reconcile(w).create
    failure = CreateFailure(run=run, reason="Forbidden", message="jobs.batch is forbidden")
    plan = reconcile(replace(w, create_failures=(failure,)))
    assert plan.create == ()
    assert manual_runs(plan.status) == [(REQUEST, "Failed", "Forbidden")]
    assert plan.status["runs"][-1]["jobName"] == run.job_name
    assert plan.status["lastTrigger"] == REQUEST


def test_a_manual_job_is_counted_but_is_not_fire_lateness() -> None:
    """Its 'scheduled' time is when a person asked, on their clock: no measure of the scheduler."""
    from sundial.runtime.metrics import Metrics

    metrics = Metrics.create(runtime_collectors=False)
    metrics.job_created("Deploy", REQUESTED, REQUESTED + timedelta(seconds=3), manual=True)
    metrics.job_created("Deploy", T, T + timedelta(milliseconds=2))
    sample = metrics.registry.get_sample_value
    assert sample("sundial_jobs_created_total", {"role": "deploy"}) == 2
    assert sample("sundial_fire_lateness_seconds_count", {"role": "deploy"}) == 1
    assert sample("sundial_fire_lateness_seconds_sum", {"role": "deploy"}) == pytest.approx(0.002)


def test_ten_manual_runs_do_not_push_the_latest_scheduled_run_out_of_the_history() -> None:
    """The latest scheduled record bounds the window of due runs: without it, a past runAt would be
    recorded missed (or a schedule's past runs found due again)."""
    created = T - timedelta(days=1)
    ran = JobState(NAMESPACE, job_name("api", T), "api", uid("api"), RunRole.DEPLOY, T, T, JobPhase.SUCCEEDED)
    _, w = controller_pass(
        world(body_of(trigger=None, created=created), T + timedelta(seconds=5), jobs=[ran])
    )
    for minute in range(1, 12):
        now = T + timedelta(minutes=minute)
        request = format_request(now)
        w = replace(w, body=body_of(trigger=request, status=w.body["status"], created=created), now=now)
        _, w = controller_pass(w)
        w = finished(w, manual_job_name("api", request, now), JobPhase.SUCCEEDED)
    plan, _ = controller_pass(replace(w, now=T + timedelta(hours=1)))
    runs = plan.status["runs"]
    assert len(runs) == 10
    scheduled = [(run["scheduledTime"], run["result"]) for run in runs if "trigger" not in run]
    assert scheduled == [(format_utc(T), "Succeeded")]
    assert [run["trigger"] for run in runs if "trigger" in run][-1] == format_request(
        T + timedelta(minutes=11)
    )
    assert "Missed" not in [event.reason for event in plan.events]
    assert plan.create == ()


# ---------------------------------------------------------------------------------------------- freezes


def _freeze_over_now(action: str = "Hold") -> Freeze:
    compiled = read_freeze(
        {
            "kind": "ClusterReleaseFreeze",
            "metadata": {"name": "incident-4711"},
            "spec": {
                "reason": "incident 4711",
                "action": action,
                "windows": [
                    {"from": format_utc(NOW - timedelta(hours=1)), "to": format_utc(NOW + timedelta(hours=1))}
                ],
            },
        }
    )
    assert isinstance(compiled, Freeze)
    return compiled


@pytest.mark.parametrize("action", ["Hold", "Defer"])
def test_a_trigger_respects_a_freeze_of_either_kind_and_says_how_to_override_it(action: str) -> None:
    w = replace(world(body_of()), freezes=(_freeze_over_now(action),))
    plan = reconcile(w)
    assert plan.create == ()
    assert manual_runs(plan.status) == [(REQUEST, "Skipped", "Frozen")]
    [record] = [run for run in plan.status["runs"] if run.get("trigger")]
    assert "ClusterReleaseFreeze incident-4711 (incident 4711) is on until" in record["message"]
    assert "--override-freeze" in record["message"]
    assert ("Warning", "TriggerRefused") in reasons(plan)


def test_an_override_for_this_request_runs_and_is_recorded_on_the_job_and_in_an_event() -> None:
    body = body_of()
    body["metadata"]["annotations"][ANNOTATION_OVERRIDE_FREEZE] = REQUEST
    w = replace(world(body), freezes=(_freeze_over_now(),))
    plan = reconcile(w)
    [run] = plan.create
    assert run.overrides_freeze == "ClusterReleaseFreeze incident-4711"
    job = build_job(plan_view(w.body), run, DEPLOYER_IMAGE)
    assert job["metadata"]["annotations"][ANNOTATION_OVERRIDE_FREEZE] == "ClusterReleaseFreeze incident-4711"
    overridden = next(event for event in plan.events if event.reason == "FreezeOverridden")
    assert overridden.type == "Warning" and "incident 4711" in overridden.message


def test_an_override_left_from_an_earlier_request_does_not_carry_over() -> None:
    body = body_of()
    body["metadata"]["annotations"][ANNOTATION_OVERRIDE_FREEZE] = "2027-03-13T08:00:00.000Z"
    plan = reconcile(replace(world(body), freezes=(_freeze_over_now(),)))
    assert plan.create == ()
    assert manual_runs(plan.status) == [(REQUEST, "Skipped", "Frozen")]
