"""The built-in Deployment target, end to end: a ScheduledDeployment fires, its Job runs `sundial deploy
kubernetes` as the object's service account (executed for real by the pod runner), and the outcome lands in
the object's status. Also what must be reported before the instant (a service account that does not exist)
and at once after it (a pod the API server refuses).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from conftest import REPO, Cluster, wait_until
from podrunner import PodRunner
from sdhelpers import (
    PRIVILEGED,
    RESTRICTED,
    StartOperator,
    create_sd,
    enforce_restricted,
    job_template,
    jobs_of,
    read_sd,
    rfc3339,
    utc_in,
    wait_for_condition,
    wait_for_events,
)
from sundial.decide.jobs import DEPLOY_DEADLINE_SECONDS

FAILURE_LABEL = "local-cluster.sundial.dev/outcome"


def apply_deployer_rbac(cluster: Cluster, namespace: str, *, with_role: bool = True) -> None:
    documents = list(yaml.safe_load_all((REPO / "manifests" / "deployer-rbac-example.yaml").read_text()))
    for document in documents:
        if not with_role and document["kind"] in ("Role", "RoleBinding"):
            continue
        document["metadata"]["namespace"] = namespace
        cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(document))


def create_deployment(cluster: Cluster, namespace: str, *, failing_pods: bool = False) -> None:
    labels = {"app": "api"}
    pod_labels = {**labels, FAILURE_LABEL: "fail"} if failing_pods else labels
    body: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "api", "namespace": namespace},
        "spec": {
            "replicas": 2,
            "progressDeadlineSeconds": 6,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {"containers": [{"name": "api", "image": "registry.example/api:v41"}]},
            },
        },
    }
    client.AppsV1Api(cluster.api_client()).create_namespaced_deployment(namespace, body)


def deployment_image(cluster: Cluster, namespace: str) -> str:
    deployment = client.AppsV1Api(cluster.api_client()).read_namespaced_deployment("api", namespace)
    return str(deployment.spec.template.spec.containers[0].image)


def deployment_available(cluster: Cluster, namespace: str) -> bool:
    deployment = client.AppsV1Api(cluster.api_client()).read_namespaced_deployment("api", namespace)
    return (deployment.status.available_replicas or 0) == 2


def deployment_to_deploy_to(cluster: Cluster, namespace: str) -> None:
    """Deployment ``api``, available, and the deployer's RBAC that may change it."""
    apply_deployer_rbac(cluster, namespace)
    create_deployment(cluster, namespace)
    wait_until("deployment/api to be available", lambda: deployment_available(cluster, namespace), 60)


TARGET = {"deployment": {"name": "api", "container": "api", "image": "registry.example/api:v42"}}


@pytest.fixture
def runner(cluster: Cluster, namespace: str, tmp_path: Path) -> Any:
    with PodRunner(cluster.api_client(), cluster.kubeconfig, namespace, tmp_path) as pod_runner:
        yield pod_runner


def test_a_deployment_rollout_succeeds_end_to_end(
    cluster: Cluster, namespace: str, runner: PodRunner, start_operator: StartOperator
) -> None:
    deployment_to_deploy_to(cluster, namespace)
    start_operator(namespace)

    create_sd(cluster, namespace, "api-v42", {"runAt": rfc3339(utc_in(4)), **TARGET})

    wait_for_condition(cluster, namespace, "api-v42", "Ready", "True", "Succeeded", timeout=60)
    assert deployment_image(cluster, namespace) == "registry.example/api:v42"
    assert deployment_available(cluster, namespace)
    [execution] = runner.executed
    assert execution["exit"] == 0, execution["stderr"]
    assert "rolled out" in execution["stdout"]
    job = jobs_of(cluster, namespace, "api-v42")[0]
    pod_spec = job.spec.template.spec
    assert pod_spec.service_account_name == "sundial-deployer"
    security = pod_spec.containers[0].security_context
    assert (security.run_as_non_root, security.read_only_root_filesystem) == (True, True)
    assert security.capabilities.drop == ["ALL"]


def test_rerunning_a_deploy_with_the_same_image_changes_nothing(
    cluster: Cluster, namespace: str, runner: PodRunner, start_operator: StartOperator
) -> None:
    deployment_to_deploy_to(cluster, namespace)
    start_operator(namespace)
    apps = client.AppsV1Api(cluster.api_client())

    create_sd(cluster, namespace, "first", {"runAt": rfc3339(utc_in(3)), **TARGET})
    wait_for_condition(cluster, namespace, "first", "Ready", "True", "Succeeded", timeout=60)
    generation = apps.read_namespaced_deployment("api", namespace).metadata.generation
    create_sd(cluster, namespace, "again", {"runAt": rfc3339(utc_in(3)), **TARGET})
    wait_for_condition(cluster, namespace, "again", "Ready", "True", "Succeeded", timeout=60)

    assert apps.read_namespaced_deployment("api", namespace).metadata.generation == generation
    assert "already" in runner.executed[-1]["stdout"]


def test_a_rollout_that_stalls_fails_the_run_with_its_reason(
    cluster: Cluster, namespace: str, runner: PodRunner, start_operator: StartOperator
) -> None:
    apply_deployer_rbac(cluster, namespace)
    create_deployment(cluster, namespace, failing_pods=True)
    start_operator(namespace)

    create_sd(cluster, namespace, "stalls", {"runAt": rfc3339(utc_in(3)), **TARGET})

    ready = wait_for_condition(
        cluster, namespace, "stalls", "Ready", "False", "ProgressDeadlineExceeded", timeout=90
    )
    assert "progress deadline" in ready["message"]
    wait_for_events(cluster, namespace, "stalls", "Failed")
    assert runner.executed[-1]["exit"] == 1


def test_a_deployer_without_rights_reports_forbidden(
    cluster: Cluster, namespace: str, runner: PodRunner, start_operator: StartOperator
) -> None:
    apply_deployer_rbac(cluster, namespace, with_role=False)
    create_deployment(cluster, namespace)
    start_operator(namespace)

    create_sd(cluster, namespace, "no-rights", {"runAt": rfc3339(utc_in(3)), **TARGET})

    ready = wait_for_condition(cluster, namespace, "no-rights", "Ready", "False", "Forbidden", timeout=60)
    assert "sundial-deployer" in ready["message"] and "deployments" in ready["message"]
    assert deployment_image(cluster, namespace) == "registry.example/api:v41"


def test_a_missing_service_account_is_reported_before_the_instant(
    cluster: Cluster, namespace: str, start_operator: StartOperator
) -> None:
    start_operator(namespace)
    instant = utc_in(40)
    create_sd(cluster, namespace, "early-warning", {"runAt": rfc3339(instant), **TARGET})

    ready = wait_for_condition(
        cluster, namespace, "early-warning", "Ready", "False", "ServiceAccountNotFound", 15
    )
    assert "sundial-deployer" in ready["message"] and namespace in ready["message"]
    wait_for_events(cluster, namespace, "early-warning", "ServiceAccountNotFound")

    apply_deployer_rbac(cluster, namespace)
    wait_for_condition(cluster, namespace, "early-warning", "Ready", "True", "Armed", timeout=30)


def test_a_pod_that_pod_security_refuses_fails_its_run_at_once_and_a_compliant_one_runs(
    cluster: Cluster, deployer_namespace: str, start_operator: StartOperator
) -> None:
    """The Job controller cannot create the pod and retries for ever (the template sets no deadline); the run
    must not stay Running: it fails as PodCreationRefused with the API server's words, and the Job goes."""
    namespace = deployer_namespace
    enforce_restricted(cluster, namespace)
    start_operator(namespace)
    instant = rfc3339(utc_in(4))
    create_sd(
        cluster, namespace, "privileged", {"runAt": instant, "jobTemplate": job_template(security=PRIVILEGED)}
    )
    create_sd(
        cluster, namespace, "compliant", {"runAt": instant, "jobTemplate": job_template(security=RESTRICTED)}
    )

    ready = wait_for_condition(cluster, namespace, "privileged", "Ready", "False", "PodCreationRefused", 60)
    assert "violates PodSecurity" in ready["message"], ready["message"]
    [run] = read_sd(cluster, namespace, "privileged")["status"]["runs"]
    assert (run["result"], run["reason"]) == ("Failed", "PodCreationRefused")
    assert 'violates PodSecurity "restricted:latest"' in run["message"], run["message"]
    assert "securityContext.privileged=true" in run["message"], run["message"]
    assert run["firedTime"], "the run started: its Job was created"
    # The Job is deleted, so the Job controller stops retrying and no pod can start after the verdict.
    wait_until("the refused Job to be deleted", lambda: not jobs_of(cluster, namespace, "privileged"), 30)
    assert "Failed" in wait_for_events(cluster, namespace, "privileged", "Failed")

    wait_for_condition(cluster, namespace, "compliant", "Ready", "True", "Succeeded", timeout=60)
    assert [r["result"] for r in read_sd(cluster, namespace, "privileged")["status"]["runs"]] == ["Failed"]


# The operator under exactly its shipped RBAC (its own service account's token, the Deployment's own
# arguments, this Deployment target): test_install.py, test_the_operator_runs_and_deploys_under_exactly_
# the_shipped_rbac.


ECS_TARGET = {
    "ecsService": {
        "cluster": "shop",
        "service": "web",
        "container": "web",
        "image": "registry.example/web:v42",
        "region": "eu-west-1",
        "credentialsSecret": "aws-deployer",
    }
}


def pods_of_job(cluster: Cluster, namespace: str, job: str) -> list[Any]:
    pods = client.CoreV1Api(cluster.api_client()).list_namespaced_pod(
        namespace, label_selector=f"batch.kubernetes.io/job-name={job}"
    )
    return list(pods.items)


def mounts_a_service_account_token(pod: Any) -> bool:
    """Whether the API server's ServiceAccount admission gave the pod its projected token volume."""
    return any(
        source.service_account_token is not None
        for volume in pod.spec.volumes or []
        if volume.projected is not None
        for source in volume.projected.sources or []
    )


def test_only_the_deployment_deployer_s_pod_gets_a_kubernetes_token_and_ecs_gets_only_its_keys(
    cluster: Cluster, namespace: str, start_operator: StartOperator
) -> None:
    """No pod runner: the pods stay Running, and what is checked is what the API server admitted."""
    apply_deployer_rbac(cluster, namespace)
    client.CoreV1Api(cluster.api_client()).create_namespaced_secret(
        namespace,
        {
            "metadata": {"name": "aws-deployer"},
            "stringData": {
                "AWS_ACCESS_KEY_ID": "AKIASUNDIALTEST0001",
                "AWS_SECRET_ACCESS_KEY": "not-a-secret",
                "AWS_ENDPOINT_URL": "http://attacker.example",
            },
        },
    )
    start_operator(namespace)
    instant = rfc3339(utc_in(4))
    create_sd(cluster, namespace, "web-v42", {"runAt": instant, **ECS_TARGET})
    create_sd(cluster, namespace, "api-v42", {"runAt": instant, **TARGET})

    def pod_of(owner: str) -> Any:
        jobs = jobs_of(cluster, namespace, owner)
        pods = pods_of_job(cluster, namespace, jobs[0].metadata.name) if jobs else []
        return pods[0] if pods else None

    ecs_pod = wait_until("the ECS deploy Job's pod", lambda: pod_of("web-v42"), 60)
    deployment_pod = wait_until("the Deployment deploy Job's pod", lambda: pod_of("api-v42"), 60)
    assert not mounts_a_service_account_token(ecs_pod)
    assert mounts_a_service_account_token(deployment_pod), "the contrast: admission does mount tokens here"
    [container] = ecs_pod.spec.containers
    assert container.env_from is None
    from_secret = {e.name: e.value_from.secret_key_ref.key for e in container.env if e.value_from}
    assert from_secret == {
        key: key for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
    }
    for owner in ("web-v42", "api-v42"):
        assert jobs_of(cluster, namespace, owner)[0].spec.active_deadline_seconds == DEPLOY_DEADLINE_SECONDS
