"""``kubectl sundial`` against the local control plane: the installed script, and through kubectl itself.

Every run passes ``--kubeconfig`` explicitly and has ``HOME`` set to a temporary directory and no
``KUBE*`` variables (`cluster_access.isolated_env`), so nothing on the machine running the tests is read.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from cluster_access import isolated_env
from conftest import Cluster, fresh_namespace, service_account_kubeconfig, wait_until
from sdhelpers import (
    StartOperator,
    create_sd,
    job_template,
    jobs_of,
    patch_spec,
    read_sd,
    rfc3339,
    utc_in,
    wait_for_events,
)
from sundial.timing.names import manual_job_name

PLUGIN = Path(sys.executable).parent / "kubectl-sundial"
BERLIN = ZoneInfo("Europe/Berlin")


def next_local_time(after: datetime, zone: ZoneInfo, wall: time) -> datetime:
    """The first ``wall`` o'clock in ``zone`` strictly after ``after`` (a time every day has once)."""
    day = after.astimezone(zone).date()
    while (candidate := datetime.combine(day, wall, tzinfo=zone)) <= after:
        day += timedelta(days=1)
    return candidate


def plugin(cluster: Cluster, *args: str, kubeconfig: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed ``kubectl-sundial`` script."""
    argv = [str(PLUGIN), *args, "--kubeconfig", str(kubeconfig or cluster.kubeconfig)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, env=isolated_env(cluster.home))


def via_kubectl(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    """``kubectl sundial …``: kubectl finds the plugin on PATH (the virtualenv's bin directory)."""
    env = isolated_env(cluster.home)
    env["PATH"] = f"{PLUGIN.parent}:{cluster.kubectl_path.parent}:/usr/bin:/bin"
    argv = [str(cluster.kubectl_path), "sundial", *args, "--kubeconfig", str(cluster.kubeconfig)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env)


def manual_runs(cluster: Cluster, namespace: str, name: str) -> list[dict[str, Any]]:
    runs = (read_sd(cluster, namespace, name).get("status") or {}).get("runs") or []
    return [run for run in runs if "trigger" in run]


@pytest.fixture
def other_namespace(cluster: Cluster) -> Iterator[str]:
    with fresh_namespace(cluster, f"plugin-other-{uuid.uuid4().hex[:6]}") as name:
        yield name


def test_kubectl_discovers_the_plugin_and_the_timeline_spans_namespaces(
    crds: Cluster, namespace: str, other_namespace: str
) -> None:
    cluster = crds
    soon = utc_in(3600)
    create_sd(cluster, namespace, "api", {"runAt": rfc3339(soon), "jobTemplate": job_template()})
    create_sd(
        cluster,
        other_namespace,
        "report",
        {"schedule": "30 22 * * *", "timeZone": "Europe/Berlin", "jobTemplate": job_template()},
    )
    create_sd(
        cluster,
        other_namespace,
        "typo",
        {"runAt": rfc3339(soon), "timeZone": "Europe/Berlln", "jobTemplate": job_template()},
    )

    listed = subprocess.run(
        [str(cluster.kubectl_path), "plugin", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**isolated_env(cluster.home), "PATH": f"{PLUGIN.parent}:/usr/bin:/bin"},
    )
    assert str(PLUGIN) in listed.stdout, listed.stdout + listed.stderr

    asked = datetime.now(UTC)
    result = via_kubectl(cluster, "timeline", "-A", "--count", "1000", "-o", "json")
    answered = datetime.now(UTC)
    assert result.returncode == 1, "an invalid object is a problem found"
    body = json.loads(result.stdout)
    ours = [
        (run["namespace"], run["name"])
        for run in body["runs"]
        if run["namespace"] in (namespace, other_namespace)
    ]
    assert (namespace, "api") in ours and (other_namespace, "report") in ours
    api = next(run for run in body["runs"] if (run["namespace"], run["name"]) == (namespace, "api"))
    assert api["scheduledTime"] == rfc3339(soon)
    report = next(run for run in body["runs"] if run["namespace"] == other_namespace)
    # The next 22:30 in Berlin after the moment the timeline was computed (somewhere between asked and
    # answered), with the offset Berlin has on that night: +01:00 in winter, +02:00 in summer.
    expected = {next_local_time(instant, BERLIN, time(22, 30)) for instant in (asked, answered)}
    assert (report["scheduledTime"], report["localTime"]) in {
        (rfc3339(local.astimezone(UTC)), local.isoformat()) for local in expected
    }, report
    assert {"namespace": other_namespace, "name": "typo", "reason": "InvalidTimeZone"}.items() <= next(
        item for item in body["invalid"] if item["namespace"] == other_namespace
    ).items()

    text = via_kubectl(cluster, "timeline", "-n", namespace)
    assert text.returncode == 0, text.stderr
    assert f"{namespace}/api" in text.stdout and "report" not in text.stdout
    assert f"{soon:%H:%M:%S}Z" in text.stdout


def test_trigger_runs_one_manual_job_that_neither_a_retry_nor_a_restart_runs_again(
    cluster: Cluster, deployer_namespace: str, start_operator: StartOperator
) -> None:
    ns = deployer_namespace
    operator = start_operator(ns)
    create_sd(cluster, ns, "api", {"runAt": rfc3339(utc_in(3600)), "jobTemplate": job_template()})

    first = via_kubectl(cluster, "trigger", "api", "-n", ns, "--wait", "--timeout", "60s")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Succeeded" in first.stdout
    [record] = manual_runs(cluster, ns, "api")
    request = record["trigger"]
    assert record["result"] == "Succeeded"
    [job] = jobs_of(cluster, ns, "api")
    assert job.metadata.name == record["jobName"]
    assert job.metadata.name == manual_job_name("api", request, _instant(request))
    assert job.metadata.labels["sundial.dev/manual"] == "true"
    assert job.metadata.annotations["sundial.dev/trigger"] == request
    wait_for_events(cluster, ns, "api", "Triggered", "Succeeded")
    status = read_sd(cluster, ns, "api")["status"]
    assert status["lastTrigger"] == request
    assert status["nextRunTime"], "the scheduled run is still armed"

    again = plugin(cluster, "trigger", "api", "-n", ns, "--request", request)
    assert again.returncode == 0, again.stderr
    assert "already served" in again.stdout

    # A restarted operator re-lists the object with its annotation still set: it must not run it again.
    # The Job is deleted first (as history limits or a TTL would), so that only the status remembers the
    # request; changing the spec makes the new operator write observedGeneration, proof it reconciled it.
    cluster.batch().delete_namespaced_job(job.metadata.name, ns, propagation_policy="Background")
    wait_until("the manual Job to be gone", lambda: not jobs_of(cluster, ns, "api"), 30)
    operator.stop()
    start_operator(ns, identity="test-operator-restarted")
    patch_spec(cluster, ns, "api", {"runAt": rfc3339(utc_in(7200))})
    generation = read_sd(cluster, ns, "api")["metadata"]["generation"]
    wait_until(
        "the restarted operator to observe the new generation",
        lambda: (read_sd(cluster, ns, "api").get("status") or {}).get("observedGeneration") == generation,
        30,
    )
    assert jobs_of(cluster, ns, "api") == [], "the request was not served again"
    assert [run["result"] for run in manual_runs(cluster, ns, "api")] == ["Succeeded"]
    assert wait_for_events(cluster, ns, "api", "Triggered").count("Triggered") == 1


def test_a_trigger_while_a_run_is_active_is_refused_under_forbid(
    cluster: Cluster, deployer_namespace: str, start_operator: StartOperator
) -> None:
    ns = deployer_namespace
    start_operator(ns)
    create_sd(
        cluster, ns, "slow", {"runAt": rfc3339(utc_in(3600)), "jobTemplate": job_template(run_duration="8s")}
    )
    first = plugin(cluster, "trigger", "slow", "-n", ns)
    assert first.returncode == 0, first.stderr
    wait_until("the first manual Job", lambda: jobs_of(cluster, ns, "slow"), 30)

    second = plugin(cluster, "trigger", "slow", "-n", ns, "--wait", "--timeout", "30s")
    assert second.returncode == 1, second.stdout + second.stderr
    assert "Skipped: trigger" in second.stdout and "concurrencyPolicy is Forbid" in second.stdout
    wait_for_events(cluster, ns, "slow", "TriggerRefused")
    assert len(jobs_of(cluster, ns, "slow")) == 1
    wait_until(
        "the first manual run to succeed",
        lambda: [run["result"] for run in manual_runs(cluster, ns, "slow")] == ["Succeeded", "Skipped"],
        30,
    )


def test_suspend_and_resume_flip_spec_suspend(crds: Cluster, namespace: str) -> None:
    cluster = crds
    create_sd(cluster, namespace, "api", {"runAt": rfc3339(utc_in(3600)), "jobTemplate": job_template()})
    suspended = via_kubectl(cluster, "suspend", "api", "-n", namespace)
    assert suspended.returncode == 0, suspended.stderr
    assert read_sd(cluster, namespace, "api")["spec"]["suspend"] is True
    assert "GitOps" in suspended.stdout and "deploys only if you resume before then" in suspended.stdout
    assert "already suspended" in plugin(cluster, "suspend", "api", "-n", namespace).stdout

    resumed = plugin(cluster, "resume", "api", "-n", namespace)
    assert resumed.returncode == 0, resumed.stderr
    assert read_sd(cluster, namespace, "api")["spec"]["suspend"] is False


def test_expected_failures_are_one_line_with_an_exit_status(
    crds: Cluster, namespace: str, tmp_path: Path
) -> None:
    cluster = crds
    create_sd(
        cluster,
        namespace,
        "typo",
        {"runAt": rfc3339(utc_in(3600)), "timeZone": "Europe/Berlln", "jobTemplate": job_template()},
    )
    config = json.loads(cluster.kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:1"
    unreachable = tmp_path / "unreachable"
    unreachable.write_text(json.dumps(config))
    cluster.kubectl("create", "serviceaccount", "nobody", "-n", namespace)
    nobody = service_account_kubeconfig(cluster, namespace, "nobody", tmp_path / "nobody")

    cases = [
        (
            plugin(cluster, "trigger", "nope", "-n", namespace),
            1,
            f"scheduleddeployment {namespace}/nope not found",
        ),
        (plugin(cluster, "suspend", "nope", "-n", namespace), 1, "not found"),
        (plugin(cluster, "trigger", "typo", "-n", namespace), 1, "it is invalid (InvalidTimeZone"),
        (
            plugin(cluster, "timeline", kubeconfig=unreachable),
            2,
            "cannot reach the API server at https://127.0.0.1:1",
        ),
        (plugin(cluster, "timeline", kubeconfig=tmp_path / "missing"), 2, "no such file"),
        (plugin(cluster, "timeline", "-n", namespace, kubeconfig=nobody), 1, "forbidden: "),
        (plugin(cluster, "trigger", "typo", "-n", namespace, kubeconfig=nobody), 1, "forbidden: "),
        (plugin(cluster, "trigger", "typo", "-n", namespace, "--request", "now"), 2, "RFC 3339"),
    ]
    for result, code, says in cases:
        assert result.returncode == code, (result.args, result.stdout, result.stderr)
        assert says in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "annotations" not in read_sd(cluster, namespace, "typo")["metadata"], "nothing was written"


def _instant(text: str) -> Any:
    from sundial.api.trigger import parse_request

    return parse_request(text).requested_at


def test_stop_the_line_creates_a_cluster_freeze_the_api_server_accepts_lists_it_and_ends_it(
    crds: Cluster,
) -> None:
    """Through kubectl, as a release manager would. The freeze is unique to this test and deleted in any
    case: left behind, it would hold every run of every later test in the session."""
    cluster = crds
    name = f"stop-the-line-test-{uuid.uuid4().hex[:8]}"
    reason = "incident 4711 (test)"
    try:
        asked = datetime.now(UTC).replace(microsecond=0)
        made = via_kubectl(cluster, "freeze", "--all", "--for", "1h", "--reason", reason, "--name", name)
        assert made.returncode == 0, made.stdout + made.stderr
        assert f"ClusterReleaseFreeze {name} created: {reason}" in made.stdout
        assert f"end it early with: kubectl sundial unfreeze {name} --all" in made.stdout
        stored = cluster.custom().get_cluster_custom_object(
            "sundial.dev", "v1alpha1", "clusterreleasefreezes", name
        )
        assert stored["metadata"]["labels"] == {"sundial.dev/stop-the-line": "true"}
        assert (stored["spec"]["reason"], stored["spec"]["action"]) == (reason, "Hold")
        [window] = stored["spec"]["windows"]
        start, end = (_instant(window[bound]) for bound in ("from", "to"))
        assert asked <= start <= datetime.now(UTC) and end - start == timedelta(hours=1), window

        listed = plugin(cluster, "freezes", "-o", "json")
        assert listed.returncode in (0, 1), listed.stderr  # 1 if someone else's freeze is invalid
        ours = next(item for item in json.loads(listed.stdout)["freezes"] if item["name"] == name)
        assert (ours["kind"], ours["valid"], ours["active"]) == ("ClusterReleaseFreeze", True, True)
        assert ours["activeUntil"] == window["to"]
        text = via_kubectl(cluster, "freezes")
        assert f"ClusterReleaseFreeze {name}  Hold  UTC  {reason}\n  ON NOW  {window['from']} to " in (
            text.stdout
        ), text.stdout + text.stderr

        ended = via_kubectl(cluster, "unfreeze", name, "--all")
        assert ended.returncode == 0, ended.stderr
        assert f"clusterreleasefreeze {name} deleted" in ended.stdout
        again = plugin(cluster, "unfreeze", name, "--all")
        assert (again.returncode, again.stderr) == (1, f"error: clusterreleasefreeze {name} not found\n")
    finally:
        cluster.kubectl("delete", "clusterreleasefreeze", name, "--ignore-not-found", check=False)


NEW_YORK = ZoneInfo("America/New_York")


def plugin_env(cluster: Cluster, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The installed script with extra environment variables (``TZ``) on top of the isolated environment."""
    argv = [str(PLUGIN), *args, "--kubeconfig", str(cluster.kubeconfig)]
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=120, env={**isolated_env(cluster.home), **env}
    )


def a_day_ahead_at_three(zone: ZoneInfo) -> datetime:
    """03:00 in ``zone`` on a day about a month ahead: in the future, and never in a DST gap or fold."""
    return next_local_time(datetime.now(UTC) + timedelta(days=30), zone, time(3, 0))


def test_schedule_creates_an_object_the_api_server_accepts_and_its_yaml_applies_with_kubectl(
    crds: Cluster, namespace: str, tmp_path: Path
) -> None:
    cluster = crds
    local = a_day_ahead_at_three(BERLIN)
    at = f"{local:%Y-%m-%d %H:%M}"
    image = "registry.example/api:v42"

    made = via_kubectl(
        cluster, "schedule", "api", "-n", namespace, "--at", at, "--tz", "Europe/Berlin",
        "--deployment", f"api={image}",
    )  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr
    assert "time zone Europe/Berlin, from --tz" in made.stdout
    assert f"runs at {rfc3339(local.astimezone(UTC))} (UTC)" in made.stdout
    assert f"scheduleddeployment {namespace}/api created" in made.stdout
    assert "release freezes were not checked" not in made.stdout, "the admin may list freezes"
    stored = read_sd(cluster, namespace, "api")["spec"]
    assert (stored["runAt"], stored["timeZone"]) == (f"{local:%Y-%m-%dT%H:%M}", "Europe/Berlin")
    assert stored["deployment"] == {"name": "api", "container": "api", "image": image}

    # The zone from TZ, a dependency on the object just made, and only printed: nothing is created.
    printed = plugin_env(
        cluster, "schedule", "web", "-n", namespace, "--at", at, "--deployment", f"web={image}",
        "--deployment-name", "frontend", "--depends-on", "api", "--lead", "10m", "-o", "yaml",
        env={"TZ": ":Europe/Berlin"},
    )  # fmt: skip
    assert printed.returncode == 0, printed.stderr
    assert "time zone Europe/Berlin, from TZ" in printed.stderr
    from kubernetes.client.exceptions import ApiException

    with pytest.raises(ApiException) as missing:
        read_sd(cluster, namespace, "web")
    assert missing.value.status == 404, "-o yaml creates nothing"
    document = tmp_path / "web.yaml"
    document.write_text(printed.stdout)
    cluster.kubectl("apply", "--server-side", "-f", str(document))
    web = read_sd(cluster, namespace, "web")["spec"]
    assert web["dependsOn"] == {"name": "api", "leadTime": "10m", "mustSucceed": True}
    assert web["deployment"] == {"name": "frontend", "container": "web", "image": image}
    assert web["runAt"] == f"{local:%Y-%m-%dT%H:%M}"

    again = plugin(
        cluster, "schedule", "api", "-n", namespace, "--at", at, "--tz", "UTC", "--deployment", "a=b"
    )
    assert (again.returncode, again.stderr) == (
        1,
        f"error: scheduleddeployment {namespace}/api already exists\n",
    )


def whoami(cluster: Cluster) -> dict[str, Any]:
    """The test's user as kubectl's own SelfSubjectReview reports it, to compare the plugin's answer to."""
    answer = cluster.kubectl("auth", "whoami", "-o", "json")
    return dict(json.loads(answer.stdout)["status"]["userInfo"])


def test_approve_records_the_user_the_api_server_authenticated(crds: Cluster, namespace: str) -> None:
    """The admission policy is not needed here (its own tests install it): the username comes from the API
    server's SelfSubjectReview, and it is the admin user of the test cluster's kubeconfig."""
    cluster = crds
    user = whoami(cluster)
    local = a_day_ahead_at_three(NEW_YORK)
    instant = rfc3339(local.astimezone(UTC))
    spec = {
        "runAt": f"{local:%Y-%m-%dT%H:%M}",
        "timeZone": "America/New_York",
        "approval": {"required": True},
        "jobTemplate": job_template(),
    }
    create_sd(cluster, namespace, "api", spec)
    create_sd(cluster, namespace, "free", {"runAt": spec["runAt"], "jobTemplate": job_template()})

    given = via_kubectl(
        cluster, "approve", "api", "-n", namespace, "--run", f"{local:%Y-%m-%d %H:%M}", "--comment", "CAB-1"
    )
    assert given.returncode == 0, given.stdout + given.stderr
    name = f"api-{local.astimezone(UTC):%Y%m%dt%H%M%Sz}"
    stored = cluster.custom().get_namespaced_custom_object(
        "sundial.dev", "v1alpha1", namespace, "deploymentapprovals", name
    )
    assert stored["spec"] == {
        "scheduledDeployment": "api",
        "scheduledTime": instant,
        "approver": user["username"],
        "approverGroups": user["groups"],
        "comment": "CAB-1",
    }
    assert user["username"], (
        "the admin user of the test kubeconfig (sundial-local-admin on hack/local-cluster)"
    )
    assert f"approved by {user['username']} (groups: {', '.join(user['groups'])})" in given.stdout
    assert f"run {instant} (UTC), {local:%a %d %b %Y %H:%M:%S %Z} in America/New_York" in given.stdout

    listed = plugin(cluster, "approvals", "api", "-n", namespace)
    assert listed.returncode == 0, listed.stderr
    [_, row] = listed.stdout.splitlines()
    assert row.split()[:3] == ["api", instant, user["username"]] and row.endswith("CAB-1")

    # Without --run: the next run in status (written here as the operator would, no operator runs).
    cluster.custom().patch_namespaced_custom_object_status(
        "sundial.dev",
        "v1alpha1",
        namespace,
        "scheduleddeployments",
        "api",
        {"status": {"nextRunTime": instant}},
    )
    again = plugin(cluster, "approve", "api", "-n", namespace)
    assert again.returncode == 0, again.stderr
    assert again.stdout == (
        f"run {instant} of api is already approved by {user['username']} (deploymentapproval {name})\n"
    )

    refused = plugin(cluster, "approve", "free", "-n", namespace, "--run", instant)
    assert refused.returncode == 1
    assert "approvals only matter with spec.approval.required: true" in refused.stderr
    assert len(refused.stderr.splitlines()) == 1
    listed = cluster.custom().list_namespaced_custom_object(
        "sundial.dev", "v1alpha1", namespace, "deploymentapprovals"
    )
    assert [item["metadata"]["name"] for item in listed["items"]] == [name]
