"""The operator on a real API server: fires on time, exactly once, with dependencies and truthful status.

Each test runs its own ``sundial run`` scoped to its own namespace, so that killing or restarting an
operator in one test cannot touch another. Instants are a few seconds ahead; kwok finishes a Job's pod
one second after it starts (``hack/kwok/stages.yaml``).
"""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, timedelta
from typing import Any

from conftest import Cluster, wait_until
from sdhelpers import (
    StartOperator,
    condition,
    create_sd,
    job_template,
    jobs_of,
    patch_spec,
    read_sd,
    rfc3339,
    run_results,
    utc_in,
    wait_for_condition,
    wait_for_events,
)
from sundial.api.keys import GROUP, PLURAL, VERSION


def test_a_one_shot_fires_on_time_and_reports_success(
    cluster: Cluster, deployer_namespace: str, start_operator: StartOperator
) -> None:
    ns = deployer_namespace
    start_operator(ns)
    instant = utc_in(5)
    create_sd(cluster, ns, "once", {"runAt": rfc3339(instant), "jobTemplate": job_template()})
    wait_for_condition(cluster, ns, "once", "Scheduled", "True", "Armed", timeout=10)

    job = wait_until("the Job of 'once'", lambda: jobs_of(cluster, ns, "once"), 30)[0]
    fired = datetime.fromisoformat(job.metadata.annotations["sundial.dev/fired-time"].replace("Z", "+00:00"))
    created = job.metadata.creation_timestamp
    assert job.metadata.annotations["sundial.dev/scheduled-time"] == rfc3339(instant)
    assert timedelta(0) <= fired - instant < timedelta(seconds=2), f"fired {fired}, scheduled {instant}"
    assert created >= instant.replace(microsecond=0)

    wait_for_condition(cluster, ns, "once", "Ready", "True", "Succeeded", timeout=30)
    status = read_sd(cluster, ns, "once")["status"]
    assert status["lastJobName"] == job.metadata.name
    assert status["lastSuccessfulTime"] == rfc3339(instant)
    assert [(r["result"], r["jobName"]) for r in status["runs"]] == [("Succeeded", job.metadata.name)]
    assert status["active"] == []
    wait_for_events(cluster, ns, "once", "Armed", "Fired", "Succeeded")
    assert len(jobs_of(cluster, ns, "once")) == 1


def test_a_dependency_runs_its_lead_time_earlier_and_its_success_releases_the_deploy(
    cluster: Cluster, deployer_namespace: str, start_operator: StartOperator
) -> None:
    ns = deployer_namespace
    start_operator(ns)
    instant = utc_in(9)
    create_sd(cluster, ns, "migrate", {"jobTemplate": job_template()})
    create_sd(
        cluster,
        ns,
        "deploy",
        {
            "runAt": rfc3339(instant),
            "dependsOn": {"name": "migrate", "leadTime": "5s"},
            "jobTemplate": job_template(),
        },
    )
    armed = wait_for_condition(cluster, ns, "deploy", "Scheduled", "True", "Armed", timeout=10)
    assert rfc3339(instant) in armed["message"]
    assert read_sd(cluster, ns, "deploy")["status"]["nextDependencyRunTime"] == rfc3339(
        instant - timedelta(seconds=5)
    )

    dependency_job = wait_until("the dependency's Job", lambda: jobs_of(cluster, ns, "migrate"), 30)[0]
    assert dependency_job.metadata.annotations["sundial.dev/scheduled-time"] == rfc3339(
        instant - timedelta(seconds=5)
    )
    assert dependency_job.metadata.labels["sundial.dev/role"] == "dependency"
    assert jobs_of(cluster, ns, "deploy") == [], "the deploy must not start before its instant"

    deploy_job = wait_until("the deploy's Job", lambda: jobs_of(cluster, ns, "deploy"), 30)[0]
    fired = datetime.fromisoformat(
        deploy_job.metadata.annotations["sundial.dev/fired-time"].replace("Z", "+00:00")
    )
    assert timedelta(0) <= fired - instant < timedelta(seconds=2)
    wait_for_condition(cluster, ns, "deploy", "Ready", "True", "Succeeded", timeout=30)
    assert run_results(cluster, ns, "migrate") == [("Succeeded", "JobSucceeded")]
    wait_for_events(cluster, ns, "migrate", "DependencyStarted")


def test_a_failed_dependency_holds_the_deploy(
    cluster: Cluster, deployer_namespace: str, start_operator: StartOperator
) -> None:
    ns = deployer_namespace
    start_operator(ns)
    instant = utc_in(8)
    create_sd(cluster, ns, "migrate", {"jobTemplate": job_template(fail=True)})
    create_sd(
        cluster,
        ns,
        "deploy",
        {
            "runAt": rfc3339(instant),
            "dependsOn": {"name": "migrate", "leadTime": "4s"},
            "jobTemplate": job_template(),
        },
    )

    ready = wait_for_condition(cluster, ns, "deploy", "Ready", "False", "DependencyFailed", timeout=40)

    assert "migrate" in ready["message"] and "nothing was deployed" in ready["message"]
    assert jobs_of(cluster, ns, "deploy") == []
    assert run_results(cluster, ns, "deploy") == [("Held", "DependencyFailed")]
    assert condition(read_sd(cluster, ns, "deploy"), "DependencyReady")["status"] == "False"
    wait_for_events(cluster, ns, "deploy", "Held")
    assert run_results(cluster, ns, "migrate") == [("Failed", "JobFailed")]


def test_a_dependency_still_running_at_the_instant_delays_the_deploy_until_it_succeeds(
    cluster: Cluster, deployer_namespace: str, start_operator: StartOperator
) -> None:
    ns = deployer_namespace
    start_operator(ns)
    instant = utc_in(6)
    create_sd(cluster, ns, "migrate", {"jobTemplate": job_template(run_duration="6s")})
    create_sd(
        cluster,
        ns,
        "deploy",
        {
            "runAt": rfc3339(instant),
            "dependsOn": {"name": "migrate", "leadTime": "2s"},
            "jobTemplate": job_template(),
        },
    )

    waiting = wait_for_condition(
        cluster, ns, "deploy", "Progressing", "True", "WaitingForDependency", timeout=20
    )
    assert jobs_of(cluster, ns, "deploy") == []
    assert "migrate" in waiting["message"]

    deploy_job = wait_until("the deploy's Job", lambda: jobs_of(cluster, ns, "deploy"), 30)[0]
    fired = datetime.fromisoformat(
        deploy_job.metadata.annotations["sundial.dev/fired-time"].replace("Z", "+00:00")
    )
    assert fired - instant > timedelta(seconds=2), "the deploy should have waited for the slow dependency"
    wait_for_condition(cluster, ns, "deploy", "Ready", "True", "Succeeded", timeout=30)


def test_an_operator_restarted_before_the_instant_still_fires_exactly_once(
    cluster: Cluster, deployer_namespace: str, start_operator: StartOperator
) -> None:
    ns = deployer_namespace
    first = start_operator(ns)
    instant = utc_in(8)
    create_sd(cluster, ns, "once", {"runAt": rfc3339(instant), "jobTemplate": job_template()})
    wait_for_condition(cluster, ns, "once", "Scheduled", "True", "Armed", timeout=10)
    first.stop()
    start_operator(ns)

    wait_for_condition(cluster, ns, "once", "Ready", "True", "Succeeded", timeout=40)
    assert len(jobs_of(cluster, ns, "once")) == 1
    assert [result for result, _ in run_results(cluster, ns, "once")] == ["Succeeded"]


def armed_then_operator_killed(
    cluster: Cluster,
    ns: str,
    start_operator: StartOperator,
    name: str,
    *,
    deadline_seconds: int,
    down_for: float,
) -> datetime:
    """Arm a run 4 s ahead, SIGKILL the operator, and wait until ``down_for`` seconds after the instant."""
    operator = start_operator(ns)
    instant = utc_in(4)
    spec = {
        "runAt": rfc3339(instant),
        "startingDeadlineSeconds": deadline_seconds,
        "jobTemplate": job_template(),
    }
    create_sd(cluster, ns, name, spec)
    wait_for_condition(cluster, ns, name, "Scheduled", "True", "Armed", timeout=10)
    operator.kill()
    wait_until(
        f"{down_for}s past the instant", lambda: datetime.now(UTC) > instant + timedelta(seconds=down_for), 20
    )
    assert jobs_of(cluster, ns, name) == [], "nothing may fire while no operator runs"
    return instant


def test_an_operator_down_across_the_instant_fires_late_within_the_deadline(
    cluster: Cluster, deployer_namespace: str, start_operator: StartOperator
) -> None:
    ns = deployer_namespace
    instant = armed_then_operator_killed(
        cluster, ns, start_operator, "late", deadline_seconds=120, down_for=3
    )

    start_operator(ns)

    job = wait_until("the late Job", lambda: jobs_of(cluster, ns, "late"), 30)[0]
    fired = datetime.fromisoformat(job.metadata.annotations["sundial.dev/fired-time"].replace("Z", "+00:00"))
    assert fired - instant > timedelta(seconds=3)
    wait_for_condition(cluster, ns, "late", "Ready", "True", "Succeeded", timeout=30)


def test_an_operator_down_beyond_the_deadline_records_a_missed_run(
    cluster: Cluster, deployer_namespace: str, start_operator: StartOperator
) -> None:
    ns = deployer_namespace
    armed_then_operator_killed(cluster, ns, start_operator, "missed", deadline_seconds=2, down_for=4)

    start_operator(ns)

    ready = wait_for_condition(cluster, ns, "missed", "Ready", "False", "MissedDeadline", timeout=30)
    assert "startingDeadlineSeconds (2)" in ready["message"]
    assert jobs_of(cluster, ns, "missed") == []
    assert run_results(cluster, ns, "missed") == [("Missed", "MissedDeadline")]
    wait_for_events(cluster, ns, "missed", "Missed")


def test_moving_run_at_rearms_and_the_old_instant_never_fires(
    cluster: Cluster, deployer_namespace: str, start_operator: StartOperator
) -> None:
    ns = deployer_namespace
    start_operator(ns)
    old, new = utc_in(6), utc_in(12)
    create_sd(cluster, ns, "moved", {"runAt": rfc3339(old), "jobTemplate": job_template()})
    wait_for_condition(cluster, ns, "moved", "Scheduled", "True", "Armed", timeout=10)

    patch_spec(cluster, ns, "moved", {"runAt": rfc3339(new)})

    def rearmed() -> bool:
        return (read_sd(cluster, ns, "moved").get("status") or {}).get("nextRunTime") == rfc3339(new)

    wait_until("nextRunTime to move", rearmed, 10)
    wait_until("the old instant to pass", lambda: datetime.now(UTC) > old + timedelta(seconds=2), 20)
    assert jobs_of(cluster, ns, "moved") == []
    job = wait_until("the Job at the new instant", lambda: jobs_of(cluster, ns, "moved"), 30)[0]
    assert job.metadata.annotations["sundial.dev/scheduled-time"] == rfc3339(new)


def test_deleting_the_object_cancels_its_run(
    cluster: Cluster, deployer_namespace: str, start_operator: StartOperator
) -> None:
    ns = deployer_namespace
    operator = start_operator(ns)
    instant = utc_in(5)
    create_sd(cluster, ns, "doomed", {"runAt": rfc3339(instant), "jobTemplate": job_template()})
    wait_for_condition(cluster, ns, "doomed", "Scheduled", "True", "Armed", timeout=10)

    cluster.custom().delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "doomed")

    wait_until("the instant to pass", lambda: datetime.now(UTC) > instant + timedelta(seconds=3), 20)
    assert cluster.batch().list_namespaced_job(ns).items == []
    assert operator.process.poll() is None, operator.log()[-2000:]


def test_a_suspended_object_records_its_run_as_skipped(
    cluster: Cluster, deployer_namespace: str, start_operator: StartOperator
) -> None:
    ns = deployer_namespace
    start_operator(ns)
    instant = utc_in(4)
    create_sd(
        cluster, ns, "paused", {"runAt": rfc3339(instant), "suspend": True, "jobTemplate": job_template()}
    )
    wait_for_condition(cluster, ns, "paused", "Scheduled", "False", "Suspended", timeout=10)

    def skipped() -> bool:
        return run_results(cluster, ns, "paused") == [("Skipped", "Suspended")]

    wait_until("the suspended run to be recorded as skipped", skipped, 20)
    assert jobs_of(cluster, ns, "paused") == []
    wait_for_events(cluster, ns, "paused", "Skipped")


def test_the_job_carries_the_schedule_as_annotations_and_environment(
    cluster: Cluster, deployer_namespace: str, start_operator: StartOperator
) -> None:
    ns = deployer_namespace
    start_operator(ns)
    instant = utc_in(4)
    local = instant.astimezone(zoneinfo.ZoneInfo("Asia/Kolkata"))
    create_sd(
        cluster,
        ns,
        "env",
        {
            "runAt": local.strftime("%Y-%m-%dT%H:%M:%S"),
            "timeZone": "Asia/Kolkata",
            "jobTemplate": job_template(),
        },
    )

    job = wait_until("the Job", lambda: jobs_of(cluster, ns, "env"), 30)[0]

    annotations = job.metadata.annotations
    assert annotations["sundial.dev/scheduled-time"] == rfc3339(instant)
    assert annotations["sundial.dev/local-time"] == local.isoformat(timespec="seconds")
    assert annotations["sundial.dev/time-zone"] == "Asia/Kolkata"
    env = {e.name: e.value for e in job.spec.template.spec.containers[0].env}
    assert env["SUNDIAL_SCHEDULED_TIME"] == rfc3339(instant)
    assert env["SUNDIAL_LOCAL_TIME"].endswith("+05:30")
    assert env["SUNDIAL_FIRED_TIME"] == annotations["sundial.dev/fired-time"]
    owner = job.metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.controller) == ("ScheduledDeployment", "env", True)
    sd = read_sd(cluster, ns, "env")
    assert owner.uid == sd["metadata"]["uid"]
    assert "annotations" not in sd["metadata"] or not any(
        key.startswith("kopf") for key in sd["metadata"]["annotations"]
    ), "the operator must not write into the user's metadata"
    assert not sd["metadata"].get("finalizers"), (
        "deleting a ScheduledDeployment must never wait for the operator"
    )


def test_each_concurrency_policy_acts_as_cronjob_defines_it(
    cluster: Cluster, deployer_namespace: str, start_operator: StartOperator
) -> None:
    """Three every-minute schedules whose Jobs run 90 s, so each run meets the previous one still running."""
    ns = deployer_namespace
    start_operator(ns)
    slow = job_template(run_duration="90s")
    for policy in ("Allow", "Forbid", "Replace"):
        create_sd(
            cluster,
            ns,
            policy.lower(),
            {"schedule": "* * * * *", "concurrencyPolicy": policy, "jobTemplate": slow},
        )

    def scheduled_times(name: str) -> list[str]:
        return sorted(
            job.metadata.annotations["sundial.dev/scheduled-time"] for job in jobs_of(cluster, ns, name)
        )

    first = wait_until(
        "the first minute's Jobs", lambda: all(scheduled_times(n) for n in ("allow", "forbid", "replace")), 75
    )
    assert first
    second_minute = datetime.fromisoformat(scheduled_times("allow")[0].replace("Z", "+00:00")) + timedelta(
        minutes=1
    )
    wait_until(
        "the second minute to pass", lambda: datetime.now(UTC) > second_minute + timedelta(seconds=4), 80
    )

    assert len(scheduled_times("allow")) == 2, "Allow runs the second Job beside the first"
    active_allow = [j for j in jobs_of(cluster, ns, "allow") if not (j.status.succeeded or j.status.failed)]
    assert len(active_allow) == 2

    assert len(scheduled_times("forbid")) == 1, "Forbid does not start a run while one is active"
    assert ("Skipped", "ConcurrencyForbidden") in run_results(cluster, ns, "forbid")

    def replaced() -> bool:
        remaining = scheduled_times("replace")
        return remaining == [rfc3339(second_minute)]

    wait_until("Replace to delete the first Job and keep only the second", replaced, 20)


def test_the_liveness_endpoint_reports_the_scheduler_and_logs_can_be_json(
    cluster: Cluster, namespace: str, start_operator: StartOperator
) -> None:
    import json
    import socket
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    operator = start_operator(
        namespace, "--liveness", f"http://127.0.0.1:{port}/healthz", "--log-format", "json"
    )

    def probe() -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                return dict(json.loads(response.read()))
        except OSError:
            return None

    health = wait_until("the liveness endpoint to answer", probe, 20)
    assert health["scheduler"] == {"active": True, "armed": 0}
    lines = [line for line in operator.log().splitlines() if line.startswith("{")]
    assert lines, operator.log()[-2000:]
    assert all({"time", "level", "logger", "message"} <= set(json.loads(line)) for line in lines)
    assert any("is active" in json.loads(line)["message"] for line in lines)
