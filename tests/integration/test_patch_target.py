"""The patch target on the real API server: the deploy Job's ``sundial deploy patch`` really runs (the pod
runner executes it as the Job's service account), changes the object at the instant and waits by the
readiness rules.

Two kinds of object. A Deployment, rolled by the real deployment controller (kwok plays the kubelet). And
``Widget``, a CRD of this test shaped like a Flux object (``spec.suspend``, ``status.observedGeneration``,
``Ready`` and ``Reconciling`` conditions, ``lastHandledReconcileAt``), whose controller this test plays
from a thread, reporting success or a failure message, so that each rule can be driven on purpose. Flux's
and Argo Rollouts' own controllers run in test_gitops_controllers.py.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from test_deploy_targets import apply_deployer_rbac, create_deployment, deployment_available, deployment_image

from conftest import Cluster, wait_until
from podrunner import PodRunner
from sdhelpers import StartOperator, create_sd, jobs_of, read_sd, rfc3339, utc_in, wait_for_condition

GROUP = "widgets.sundial.test"
PLURAL = "widgets"


def widget_crd() -> dict[str, Any]:
    condition = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    schema = {
        "type": "object",
        "properties": {
            "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "status": {
                "type": "object",
                "properties": {
                    "observedGeneration": {"type": "integer"},
                    "lastHandledReconcileAt": {"type": "string"},
                    "conditions": {"type": "array", "items": condition},
                },
            },
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"plural": PLURAL, "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


@pytest.fixture(scope="module")
def widgets(crds: Cluster) -> Cluster:
    import yaml

    crds.kubectl("apply", "-f", "-", input=yaml.safe_dump(widget_crd()))
    crds.kubectl("wait", "--for=condition=Established", f"crd/{PLURAL}.{GROUP}", "--timeout=60s")
    return crds


def allow_deployer(cluster: Cluster, namespace: str) -> None:
    """The account sundial-deployer, which may get and patch Widgets here (what docs/gitops.md tells users
    to grant)."""
    account = client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="sundial-deployer"))
    client.CoreV1Api(cluster.api_client()).create_namespaced_service_account(namespace, account)
    rbac = client.RbacAuthorizationV1Api(cluster.api_client())
    rule = client.V1PolicyRule(api_groups=[GROUP], resources=[PLURAL], verbs=["get", "patch"])
    rbac.create_namespaced_role(namespace, client.V1Role(metadata={"name": "patch-widgets"}, rules=[rule]))
    subject = client.RbacV1Subject(kind="ServiceAccount", name="sundial-deployer", namespace=namespace)
    binding = client.V1RoleBinding(
        metadata={"name": "patch-widgets"},
        role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="patch-widgets"),
        subjects=[subject],
    )
    rbac.create_namespaced_role_binding(namespace, binding)


class WidgetController:
    """Plays a Flux-like controller for Widgets in one namespace: on each new generation or reconcile
    request it reports Reconciling, then Ready with ``outcome`` (reason, message) about a second later."""

    def __init__(self, cluster: Cluster, namespace: str, outcome: tuple[str, str, str]) -> None:
        self.custom = client.CustomObjectsApi(cluster.api_client())
        self.namespace = namespace
        self.outcome = outcome
        self.handled: list[tuple[int, str | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> WidgetController:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _status(self, name: str, status: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object_status(
            GROUP, "v1", self.namespace, PLURAL, name, {"status": status}
        )

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            items = self.custom.list_namespaced_custom_object(GROUP, "v1", self.namespace, PLURAL)["items"]
            for widget in items:
                metadata, status = widget["metadata"], widget.get("status") or {}
                requested = (metadata.get("annotations") or {}).get("reconcile.fluxcd.io/requestedAt")
                suspended = (widget.get("spec") or {}).get("suspend", False)
                generation = metadata["generation"]
                fresh = status.get("observedGeneration") != generation or (
                    requested is not None and status.get("lastHandledReconcileAt") != requested
                )
                if suspended or not fresh:
                    continue
                reconciling = {
                    "type": "Reconciling",
                    "status": "True",
                    "reason": "Progressing",
                    "message": "reconciliation in progress",
                    "lastTransitionTime": "2027-01-01T00:00:00Z",
                }
                self._status(metadata["name"], {"conditions": [reconciling]})
                self._stop.wait(1.0)
                status_word, reason, message = self.outcome
                ready = {
                    "type": "Ready",
                    "status": status_word,
                    "reason": reason,
                    "message": message,
                    "lastTransitionTime": "2027-01-01T00:00:00Z",
                }
                done: dict[str, Any] = {"observedGeneration": generation, "conditions": [ready]}
                if requested is not None:
                    done["lastHandledReconcileAt"] = requested
                self._status(metadata["name"], done)
                self.handled.append((generation, requested))


def create_widget(cluster: Cluster, namespace: str, name: str) -> None:
    body = {
        "apiVersion": f"{GROUP}/v1",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": {"suspend": True},
    }
    client.CustomObjectsApi(cluster.api_client()).create_namespaced_custom_object(
        GROUP, "v1", namespace, PLURAL, body
    )


def release_window(name: str, seconds: float) -> dict[str, Any]:
    """The "release window" recipe: resume the suspended object at the instant, request a reconcile."""
    return {
        "runAt": rfc3339(utc_in(seconds)),
        "patch": {
            "apiVersion": f"{GROUP}/v1",
            "kind": "Widget",
            "name": name,
            "mergePatch": {"spec": {"suspend": False}},
            "stampAnnotations": ["reconcile.fluxcd.io/requestedAt"],
            "timeout": "1m",
        },
    }


@pytest.fixture
def runner(cluster: Cluster, namespace: str, tmp_path: Path) -> Iterator[PodRunner]:
    with PodRunner(cluster.api_client(), cluster.kubeconfig, namespace, tmp_path) as pod_runner:
        yield pod_runner


def wait_for_ready(
    cluster: Cluster, namespace: str, name: str, status: str, reason: str | None, runner: PodRunner | None
) -> dict[str, Any]:
    """wait_for_condition, saying on a timeout what the object and the deployer said."""
    try:
        return wait_for_condition(cluster, namespace, name, "Ready", status, reason, timeout=90)
    except AssertionError as error:
        executed = runner.executed if runner is not None else "no pod runner"
        raise AssertionError(f"{error}\nstatus: {read_sd(cluster, namespace, name).get('status')}\n"
                             f"deployer: {executed}") from None  # fmt: skip


def last_run(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return dict(((read_sd(cluster, namespace, name).get("status") or {}).get("runs") or [{}])[-1])


def test_a_deployment_patched_at_the_instant_is_waited_for_until_rolled_out(
    cluster: Cluster, namespace: str, runner: PodRunner, start_operator: StartOperator
) -> None:
    apply_deployer_rbac(cluster, namespace)
    create_deployment(cluster, namespace)
    wait_until("deployment/api to be available", lambda: deployment_available(cluster, namespace), 60)
    apps = client.AppsV1Api(cluster.api_client())
    before = apps.read_namespaced_deployment("api", namespace).metadata.generation
    start_operator(namespace)
    release = {"metadata": {"annotations": {"release": "v42"}}}
    spec = {
        "runAt": rfc3339(utc_in(4)),
        "patch": {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": "api",
            "mergePatch": {"spec": {"template": release}},
        },
    }
    create_sd(cluster, namespace, "roll", spec)
    wait_for_ready(cluster, namespace, "roll", "True", "Succeeded", runner)
    deployment = apps.read_namespaced_deployment("api", namespace)
    assert deployment.metadata.generation == before + 1
    assert deployment.spec.template.metadata.annotations == {"release": "v42"}
    assert deployment_available(cluster, namespace)
    [execution] = runner.executed
    assert execution["exit"] == 0, execution["stderr"]
    assert (
        "patched (generation" in execution["stdout"]
        and "replicas updated and available" in execution["stdout"]
    )


def test_a_json_patch_sets_one_containers_image_and_its_test_guards_against_a_reordering(
    cluster: Cluster, namespace: str, runner: PodRunner, start_operator: StartOperator
) -> None:
    apply_deployer_rbac(cluster, namespace)
    create_deployment(cluster, namespace)
    wait_until("deployment/api to be available", lambda: deployment_available(cluster, namespace), 60)
    start_operator(namespace)

    def image_change(container: str) -> dict[str, Any]:
        operations = [
            {"op": "test", "path": "/spec/template/spec/containers/0/name", "value": container},
            {
                "op": "replace",
                "path": "/spec/template/spec/containers/0/image",
                "value": "registry.example/api:v42",
            },
        ]
        target = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api", "jsonPatch": operations}
        return {"runAt": rfc3339(utc_in(4)), "patch": target}

    create_sd(cluster, namespace, "wrong-container", image_change("sidecar"))
    refused = wait_for_ready(cluster, namespace, "wrong-container", "False", "PatchTestFailed", runner)
    assert (
        'tests /spec/template/spec/containers/0/name for "sidecar", and deployment/api has "api"'
        in refused["message"]
    ), refused
    assert deployment_image(cluster, namespace) == "registry.example/api:v41", "a failed test changes nothing"
    create_sd(cluster, namespace, "v42", image_change("api"))
    wait_for_ready(cluster, namespace, "v42", "True", "Succeeded", runner)
    assert deployment_image(cluster, namespace) == "registry.example/api:v42"


def test_the_release_window_recipe_resumes_at_the_instant_and_waits_for_the_reconcile_it_requested(
    widgets: Cluster, namespace: str, runner: PodRunner, start_operator: StartOperator
) -> None:
    cluster = widgets
    allow_deployer(cluster, namespace)
    name = f"apps-{uuid.uuid4().hex[:4]}"
    create_widget(cluster, namespace, name)
    outcome = ("True", "ReconciliationSucceeded", "Applied revision: main@sha1:42")
    with WidgetController(cluster, namespace, outcome) as controller:
        start_operator(namespace)
        create_sd(cluster, namespace, "window", release_window(name, 4))
        wait_for_ready(cluster, namespace, "window", "True", "Succeeded", runner)
    run = last_run(cluster, namespace, "window")
    widget = client.CustomObjectsApi(cluster.api_client()).get_namespaced_custom_object(
        GROUP, "v1", namespace, PLURAL, name
    )
    assert widget["spec"]["suspend"] is False
    requested = widget["metadata"]["annotations"]["reconcile.fluxcd.io/requestedAt"]
    assert requested == run["scheduledTime"], "the stamp is the run's scheduled time"
    assert controller.handled == [(2, requested)]
    [execution] = runner.executed
    assert "Applied revision: main@sha1:42" in execution["stdout"]
    # It waited through the controller's work, not on the state it found.
    assert "reconciling" in execution["stdout"] or "reconcile request" in execution["stdout"]


def test_a_failed_reconcile_fails_the_run_with_the_objects_own_reason_and_message(
    widgets: Cluster, namespace: str, runner: PodRunner, start_operator: StartOperator
) -> None:
    cluster = widgets
    allow_deployer(cluster, namespace)
    create_widget(cluster, namespace, "apps")
    outcome = ("False", "HealthCheckFailed", "health check failed: deployment/api 0 of 2 ready")
    with WidgetController(cluster, namespace, outcome):
        start_operator(namespace)
        create_sd(cluster, namespace, "window", release_window("apps", 4))
        ready = wait_for_ready(cluster, namespace, "window", "False", "HealthCheckFailed", runner)
    assert "deployment/api 0 of 2 ready" in ready["message"]
    run = last_run(cluster, namespace, "window")
    assert (run["result"], run.get("reason")) == ("Failed", "HealthCheckFailed"), run


def test_a_kind_the_api_server_does_not_serve_fails_with_what_to_check(
    cluster: Cluster, namespace: str, runner: PodRunner, start_operator: StartOperator
) -> None:
    apply_deployer_rbac(cluster, namespace)
    start_operator(namespace)
    spec = release_window("apps", 4)
    # Not Flux's Kustomization: test_gitops_controllers.py installs Flux's CRDs for a while.
    spec["patch"] |= {"apiVersion": "gadgets.sundial.test/v1", "kind": "Gadget"}
    create_sd(cluster, namespace, "unserved", spec)
    ready = wait_for_ready(cluster, namespace, "unserved", "False", "KindNotServed", runner)
    assert ready["reason"] == "KindNotServed", ready
    assert "serves no gadgets.sundial.test/v1" in ready["message"], ready


def test_a_patch_that_would_rename_the_object_is_refused_with_what_to_change(
    cluster: Cluster, namespace: str, start_operator: StartOperator
) -> None:
    """The CRD cannot look inside a merge patch, so the API server stores it; the operator refuses it with
    InvalidPatch (and sundial preview does, offline, by the same model) and nothing is created."""
    start_operator(namespace)
    spec = release_window("apps", 5)
    spec["patch"]["mergePatch"] = {"metadata": {"name": "other"}}
    create_sd(cluster, namespace, "rename", spec)
    ready = wait_for_condition(cluster, namespace, "rename", "Ready", "False", "InvalidPatch", timeout=30)
    assert "may not change metadata.name" in ready["message"], ready
    time.sleep(6)
    assert not jobs_of(cluster, namespace, "rename")


def test_an_object_that_does_not_exist_fails_the_run_and_is_not_created(
    widgets: Cluster, namespace: str, runner: PodRunner, start_operator: StartOperator
) -> None:
    cluster = widgets
    allow_deployer(cluster, namespace)
    start_operator(namespace)
    create_sd(cluster, namespace, "ghost", release_window("ghost", 4))
    ready = wait_for_ready(cluster, namespace, "ghost", "False", "TargetNotFound", runner)
    assert f"widget/ghost in namespace {namespace} does not exist" in ready["message"], ready
    listed = client.CustomObjectsApi(cluster.api_client()).list_namespaced_custom_object(
        GROUP, "v1", namespace, PLURAL
    )
    assert listed["items"] == [], "a merge patch never creates the object"
