"""The control plane the integration tier runs on does what Sundial relies on: Jobs run, fail and go away.

These run on whichever back-end ``--k8s-backend`` chose; on ``local`` they exercise kwok's stages from
``hack/kwok/stages.yaml`` (a pod labelled ``local-cluster.sundial.dev/outcome=fail`` fails).
"""

from __future__ import annotations

import json
from typing import Any

from conftest import Cluster, wait_until

FAILURE_LABEL = "local-cluster.sundial.dev/outcome"


def job_manifest(name: str, pod_labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": pod_labels or {}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "registry.invalid/placeholder:1"}],
                },
            },
        },
    }


def job_condition(cluster: Cluster, namespace: str, name: str) -> str | None:
    job = cluster.batch().read_namespaced_job(name, namespace)
    for condition in job.status.conditions or []:
        if condition.type in ("Complete", "Failed") and condition.status == "True":
            return str(condition.type)
    return None


def test_the_api_server_is_the_version_we_built(cluster: Cluster) -> None:
    version = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    server = version["serverVersion"]["gitVersion"]
    if cluster.backend == "local":
        client = version["clientVersion"]["gitVersion"]
        assert server == client, f"server {server} and the kubectl built beside it ({client}) should match"
    assert server.startswith("v1."), server


def test_the_api_server_audits_requests_with_the_authorizer_s_decision(
    cluster: Cluster, namespace: str
) -> None:
    """What test_operator_rights.py relies on: hack/local-cluster's API server writes an audit log in which a
    list by field selector names what it selects, and a denied request carries the authorizer's decision."""
    if cluster.audit_log is None:
        return  # only the local back-end has one
    start = cluster.audit_log.stat().st_size
    user = "audit-probe@example.test"
    selector = "--field-selector=metadata.name=probe"
    cluster.kubectl("get", "leases", "-n", namespace, f"--as={user}", selector, check=False)
    with cluster.audit_log.open(encoding="utf-8") as log:
        log.seek(start)
        entries = [json.loads(line) for line in log if line.strip()]
    # kubectl's discovery requests name no resource (no objectRef); the list is the one that does.
    probes = [
        e for e in entries if (e.get("impersonatedUser") or {}).get("username") == user and "objectRef" in e
    ]
    assert probes, f"no audit entry of {user}'s request in {cluster.audit_log}"
    for entry in probes:
        assert (entry["verb"], entry["objectRef"]["resource"], entry["objectRef"]["name"]) == (
            "list",
            "leases",
            "probe",
        ), entry
        assert entry["responseStatus"]["code"] == 403, entry
        assert entry["annotations"]["authorization.k8s.io/decision"] == "forbid", entry


def test_a_job_runs_to_completion_through_kwok(cluster: Cluster, namespace: str) -> None:
    cluster.batch().create_namespaced_job(namespace, job_manifest("completes"))

    outcome = wait_until(
        "job/completes to finish", lambda: job_condition(cluster, namespace, "completes"), 90
    )

    assert outcome == "Complete"
    pods = cluster.core().list_namespaced_pod(namespace, label_selector="job-name=completes").items
    assert [pod.status.phase for pod in pods] == ["Succeeded"]


def test_a_job_whose_pod_carries_the_failure_label_fails(cluster: Cluster, namespace: str) -> None:
    cluster.batch().create_namespaced_job(namespace, job_manifest("fails", {FAILURE_LABEL: "fail"}))

    outcome = wait_until("job/fails to finish", lambda: job_condition(cluster, namespace, "fails"), 90)

    assert outcome == "Failed"
    pods = cluster.core().list_namespaced_pod(namespace, label_selector="job-name=fails").items
    assert [pod.status.phase for pod in pods] == ["Failed"]


def test_deleting_a_job_garbage_collects_its_pods(cluster: Cluster, namespace: str) -> None:
    cluster.batch().create_namespaced_job(namespace, job_manifest("collected"))
    wait_until("job/collected to finish", lambda: job_condition(cluster, namespace, "collected"), 90)

    cluster.batch().delete_namespaced_job("collected", namespace, propagation_policy="Background")

    def no_pods_left() -> bool:
        pods = cluster.core().list_namespaced_pod(namespace, label_selector="job-name=collected").items
        return not pods

    wait_until("the garbage collector to delete job/collected's pods", no_pods_left, 90)
