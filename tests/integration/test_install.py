"""Installing Sundial from ``manifests/``, proven on the API server and under exactly the RBAC it ships.

``kubectl kustomize manifests`` renders; the whole rendering passes a server-side dry run; the restricted
Pod Security Standard admits the operator's pod and refuses a weakened copy. Then everything but the
Deployment is applied for real (no image runs here), and the operator runs as the Deployment would run
it: the shipped replica count, the Deployment's own arguments (``--in-cluster`` swapped for a kubeconfig
holding only a TokenRequest token of the shipped ServiceAccount, the bind addresses moved to free loopback
ports) and its environment. A ScheduledDeployment fires and deploys, the replicas share the work through
the shipped ClusterKopfPeering, a graceful exit hands over, and the documented uninstall leaves nothing
behind but the CRDs. Any permission the manifests lack shows up as a Forbidden in the operator's log or a
run that never succeeds, and fails the test.

On the kind back-end (a machine with Docker), where an image can run, the same test applies the
Deployment itself with the image conftest built from this checkout and loaded into kind, and the run
deploys a Deployment whose pods really run; see docs/install.md.
"""

from __future__ import annotations

import contextlib
import copy
import re
import socket
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from test_deploy_targets import (
    TARGET,
    apply_deployer_rbac,
    create_deployment,
    deployment_available,
    deployment_image,
)

from conftest import REPO, Cluster, fresh_namespace, lease_holder, service_account_kubeconfig, wait_until
from podrunner import DEPLOYER_IMAGE, PodRunner
from sdhelpers import (
    PRIVILEGED,
    StartOperator,
    create_sd,
    enforce_restricted,
    job_template,
    jobs_of,
    read_sd,
    rfc3339,
    utc_in,
    wait_for_condition,
)

MANIFESTS = REPO / "manifests"
SYSTEM = "sundial-system"
ACCOUNT = "sundial"
USER = f"system:serviceaccount:{SYSTEM}:{ACCOUNT}"
LEASE = "sundial-scheduler"
LEASE_FINALIZER = "sundial.dev/scheduler-lease"
DEPLOYS_LABEL = "sundial.dev/deploys=enabled"
NO_FINALIZERS = '{"metadata":{"finalizers":null}}'
UNINSTALL_KEEPING_CRDS = ("delete", "-k", str(MANIFESTS), "-l", "app.kubernetes.io/component!=crd")


def render(cluster: Cluster) -> list[dict[str, Any]]:
    """What ``kubectl kustomize manifests`` renders (kustomize is built into kubectl)."""
    text = cluster.kubectl("kustomize", str(MANIFESTS)).stdout
    return [document for document in yaml.safe_load_all(text) if document]


def only(documents: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in documents if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''} in the rendering, found {len(found)}"
    return found[0]


def operator_container(documents: list[dict[str, Any]]) -> dict[str, Any]:
    pod = only(documents, "Deployment", "sundial")["spec"]["template"]["spec"]
    return dict(next(c for c in pod["containers"] if c["name"] == "operator"))


def apply(cluster: Cluster, documents: list[dict[str, Any]], *flags: str) -> str:
    text = yaml.safe_dump_all(documents)
    return cluster.kubectl("apply", "--server-side", *flags, "-f", "-", input=text).stdout


@contextlib.contextmanager
def applied(cluster: Cluster, documents: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """Everything in a rendering except the Deployment, applied for real; removed again (but the CRDs)."""
    cluster.kubectl("wait", "--for=delete", f"namespace/{SYSTEM}", "--timeout=60s", check=False)
    apply(cluster, [d for d in documents if d["kind"] != "Deployment"])
    cluster.kubectl(
        "wait", "--for=jsonpath={.metadata.name}=sundial", f"serviceaccount/{ACCOUNT}", "-n", SYSTEM
    )
    try:
        yield documents
    finally:
        # Whatever the test left (normally nothing): no Lease finalizer may hold the namespace forever.
        strip_lease_finalizer(cluster)
        rest = [d for d in documents if d["kind"] != "CustomResourceDefinition"]
        cluster.kubectl(
            "delete",
            "--ignore-not-found",
            "--timeout=60s",
            "-f",
            "-",
            input=yaml.safe_dump_all(rest),
            check=False,
        )


@pytest.fixture
def installed(crds: Cluster) -> Iterator[list[dict[str, Any]]]:
    """Everything manifests/ holds except the Deployment, applied for real; removed again afterwards."""
    with applied(crds, render(crds)) as documents:
        yield documents


def strip_lease_finalizer(cluster: Cluster) -> None:
    cluster.kubectl("patch", "lease", LEASE, "-n", SYSTEM, "--type=merge", "-p", NO_FINALIZERS, check=False)


@pytest.fixture
def foreign_lease(cluster: Cluster, namespace: str) -> Iterator[None]:
    """Another Sundial instance's Lease (one scoped to ``namespace``), held by kopf's finalizer while it is
    deleted: what a cluster-wide replica must leave alone, since its RBAC writes Leases in SYSTEM only."""
    body = {"metadata": {"name": LEASE, "namespace": namespace, "finalizers": [LEASE_FINALIZER]}, "spec": {}}
    coordination = client.CoordinationV1Api(cluster.api_client())
    coordination.create_namespaced_lease(namespace, body)
    coordination.delete_namespaced_lease(LEASE, namespace)
    yield
    cluster.kubectl("patch", "lease", LEASE, "-n", namespace, "--type=merge", "-p", NO_FINALIZERS)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def local_arguments(args: list[str], kubeconfig: Path) -> tuple[list[str], dict[int, int]]:
    """The Deployment's arguments for a process on this machine, and where each of its ports moved.

    Only two things change: ``--in-cluster`` becomes ``--kubeconfig PATH``, and every ``0.0.0.0:PORT``
    (liveness, metrics) becomes ``127.0.0.1:<a free port>``, so that two replicas fit on one machine.
    """
    assert args.count("--in-cluster") == 1
    moved: dict[int, int] = {}

    def to_loopback(match: re.Match[str]) -> str:
        moved[int(match.group(1))] = free_port()
        return f"127.0.0.1:{moved[int(match.group(1))]}"

    local: list[str] = []
    for arg in args:
        if arg == "--in-cluster":
            local += ["--kubeconfig", str(kubeconfig)]
        else:
            local.append(re.sub(r"0\.0\.0\.0:(\d+)", to_loopback, arg))
    return local, moved


def pod_environment(container: dict[str, Any], pod_name: str) -> dict[str, str]:
    """The container's environment as the kubelet would give it to a pod of that name in SYSTEM."""
    fields = {"metadata.name": pod_name, "metadata.namespace": SYSTEM}
    env: dict[str, str] = {}
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = str(entry["value"])
        else:
            env[entry["name"]] = fields[entry["valueFrom"]["fieldRef"]["fieldPath"]]
    return env


def http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:  # loopback only: the operator we started
        return str(response.read().decode())


def peering_identities(cluster: Cluster) -> set[str]:
    body = cluster.custom().get_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings", "sundial")
    return set((body.get("status") or {}).keys())


def active_replica(metrics: str) -> str | None:
    """The ``sundial_active_replica`` sample in a /metrics body."""
    found = re.search(r"^sundial_active_replica (\S+)$", metrics, re.MULTILINE)
    return found.group(1) if found else None


def rbac_denials(log: str) -> list[str]:
    """Forbidden answers in a log, less the one RBAC cannot cause (a namespace being deleted)."""
    return [
        line for line in log.splitlines() if "forbidden" in line.lower() and "being terminated" not in line
    ]


def succeeded(cluster: Cluster, namespace: str, name: str) -> str | None:
    return (read_sd(cluster, namespace, name).get("status") or {}).get("lastSuccessfulTime")


def enable_deploys(cluster: Cluster, namespace: str) -> None:
    """Opt ``namespace`` in to the operator's Jobs (manifests/operator-job-policy.yaml, docs/install.md)."""
    cluster.kubectl("label", "namespace", namespace, DEPLOYS_LABEL, "--overwrite")


def can_i(cluster: Cluster, *request: str) -> str:
    return cluster.kubectl("auth", "can-i", *request, f"--as={USER}", check=False).stdout.strip()


# ------------------------------------------------------------------------------------------------- tests


def test_the_rendering_holds_everything_an_install_needs(cluster: Cluster) -> None:
    documents = render(cluster)
    namespace = only(documents, "Namespace", SYSTEM)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    crd_names = {d["metadata"]["name"] for d in documents if d["kind"] == "CustomResourceDefinition"}
    assert crd_names == {
        "scheduleddeployments.sundial.dev",
        "releasefreezes.sundial.dev",
        "clusterreleasefreezes.sundial.dev",
        "deploymentapprovals.sundial.dev",
        "clusterkopfpeerings.kopf.dev",
        "kopfpeerings.kopf.dev",
    }
    # --all-namespaces makes kopf peer cluster-wide: the ClusterKopfPeering named by --peering.
    peering = only(documents, "ClusterKopfPeering", "sundial")
    assert "namespace" not in peering["metadata"]
    for role in ("sundial-operator", "sundial-edit", "sundial-view", "sundial-release-manager"):
        only(documents, "ClusterRole", role)
    only(documents, "ServiceAccount", ACCOUNT)

    deployment = only(documents, "Deployment", "sundial")
    assert deployment["spec"]["replicas"] == 2
    container = operator_container(documents)
    args = container["args"]
    assert args[args.index("--peering") + 1] == peering["metadata"]["name"]
    assert "--all-namespaces" in args and "--in-cluster" in args
    env = {entry["name"]: entry for entry in container["env"]}
    assert env["SUNDIAL_DEPLOYER_IMAGE"]["value"] == container["image"], "deploy Jobs run the same image"
    assert {"POD_NAME", "POD_NAMESPACE"} <= env.keys()
    assert container["livenessProbe"] and container["readinessProbe"] and container["resources"]

    pdb = only(documents, "PodDisruptionBudget", "sundial")
    template_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= template_labels.items()
    service = only(documents, "Service", "sundial-metrics")
    [port] = service["spec"]["ports"]
    assert (port["name"], port["port"]) == ("metrics", 9090)
    assert "0.0.0.0:9090" in args


def test_an_overlay_with_its_own_image_gives_the_deploy_jobs_that_image_too(cluster: Cluster) -> None:
    text = cluster.kubectl("kustomize", str(REPO / "examples" / "own-image")).stdout
    container = operator_container([d for d in yaml.safe_load_all(text) if d])
    env = {entry["name"]: entry.get("value") for entry in container["env"]}
    assert container["image"] == "registry.example/platform/sundial:0.1.0"
    assert env["SUNDIAL_DEPLOYER_IMAGE"] == container["image"]


def test_the_install_guide_gives_the_commands_this_file_runs() -> None:
    guide = (REPO / "docs" / "install.md").read_text(encoding="utf-8")
    for command in (
        f"kubectl -n {SYSTEM} delete lease {LEASE} --ignore-not-found",
        "kubectl delete -k manifests -l app.kubernetes.io/component!=crd --ignore-not-found",
        "kubectl apply --server-side -k manifests",
        f"kubectl label namespace shop {DEPLOYS_LABEL}",
    ):
        assert command in guide


def test_the_rendering_passes_a_server_side_dry_run_and_the_restricted_pod_security_standard(
    cluster: Cluster, installed: list[dict[str, Any]]
) -> None:
    out = apply(cluster, installed, "--dry-run=server")
    assert "deployment.apps/sundial serverside-applied (server dry run)" in out, out

    template = only(installed, "Deployment", "sundial")["spec"]["template"]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "psa-probe", "namespace": SYSTEM}}
    pod["spec"] = template["spec"]
    accepted = cluster.kubectl("create", "--dry-run=server", "-f", "-", input=yaml.safe_dump(pod))
    assert "created (server dry run)" in accepted.stdout

    # The control: the namespace really enforces; a container that may escalate is refused.
    weakened = copy.deepcopy(pod)
    weakened["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    refused = cluster.kubectl(
        "create", "--dry-run=server", "-f", "-", input=yaml.safe_dump(weakened), check=False
    )
    assert refused.returncode != 0 and "violates PodSecurity" in refused.stderr, refused.stderr


def test_the_operator_runs_and_deploys_under_exactly_the_shipped_rbac(
    cluster: Cluster,
    installed: list[dict[str, Any]],
    namespace: str,
    foreign_lease: None,
    start_operator: StartOperator,
    tmp_path: Path,
) -> None:
    enable_deploys(cluster, namespace)
    target, new_image = deploy_target(cluster, namespace)
    if cluster.operator_images:
        replicas = in_cluster_replicas(cluster, installed)
    else:
        replicas = local_replicas(cluster, installed, namespace, start_operator, tmp_path)
    active, standby = replicas
    identities = {replica.identity for replica in replicas}
    wait_until(
        "every replica in the ClusterKopfPeering", lambda: identities <= peering_identities(cluster), 30
    )

    # The probes and the metrics Service's port answer on every replica; one of them is active.
    for replica in replicas:
        assert '"scheduler"' in replica.get("healthz", "/healthz")
        expected = "1.0" if replica is active else "0.0"
        wait_until(
            f"{replica.identity} to report sundial_active_replica {expected}",
            lambda r=replica, e=expected: active_replica(r.get("metrics", "/metrics")) == e,
            15,
        )
    assert lease_holder(cluster, SYSTEM) == active.identity

    runner: AbstractContextManager[Any] = (
        nullcontext()
        if cluster.operator_images
        else PodRunner(cluster.api_client(), cluster.kubeconfig, namespace, tmp_path)
    )
    with runner:
        create_sd(cluster, namespace, "shipped", {"runAt": rfc3339(utc_in(4)), **target})
        wait_until("the deploy to succeed", lambda: succeeded(cluster, namespace, "shipped"), 90)
    assert deployment_image(cluster, namespace) == new_image
    assert not rbac_denials(active.log()), active.log()[-3000:]

    # A pod the API server refuses fails its run at once. Why it was refused is read from the Job's
    # FailedCreate Events: the one path that lists Events (`list` on events).
    with fresh_namespace(cluster, f"{namespace[:40]}-restricted") as restricted:
        enforce_restricted(cluster, restricted)
        enable_deploys(cluster, restricted)
        cluster.core().create_namespaced_service_account(
            restricted, {"metadata": {"name": "sundial-deployer"}}
        )
        refused = {"runAt": rfc3339(utc_in(3)), "jobTemplate": job_template(security=PRIVILEGED)}
        create_sd(cluster, restricted, "refused", refused)
        wait_for_condition(cluster, restricted, "refused", "Ready", "False", "PodCreationRefused", 60)
    assert not rbac_denials(active.log()), active.log()[-3000:]

    # A graceful exit hands over to the standby, which fires the next run.
    active.stop()
    wait_until(
        "the standby to take over the Lease", lambda: lease_holder(cluster, SYSTEM) == standby.identity, 30
    )
    create_sd(cluster, namespace, "after-handover", {"runAt": rfc3339(utc_in(3)), **quick_job(cluster)})
    wait_until("the standby's run to succeed", lambda: succeeded(cluster, namespace, "after-handover"), 60)
    assert len(jobs_of(cluster, namespace, "after-handover")) == 1
    assert not rbac_denials(standby.log()), standby.log()[-3000:]

    # The other instance's Lease is none of this operator's business: its finalizer is left alone.
    foreign = cluster.kubectl("get", "lease", LEASE, "-n", namespace, "-o", "json").stdout
    assert LEASE_FINALIZER in foreign and "deletionTimestamp" in foreign

    # Least privilege: the operator itself can neither deploy nor read Secrets.
    assert can_i(cluster, "patch", "deployments", "-n", namespace) == "no"
    assert can_i(cluster, "get", "secrets", "-n", namespace) == "no"

    # The uninstall of docs/install.md, as written. The running replica holds a finalizer on its Lease;
    # deleting the Lease first lets it remove that finalizer (with nothing running, it would hold the
    # namespace in Terminating for ever).
    lease = cluster.kubectl("get", "lease", LEASE, "-n", SYSTEM, "-o", "json").stdout
    assert LEASE_FINALIZER in lease
    cluster.kubectl("-n", SYSTEM, "delete", "lease", LEASE, "--ignore-not-found", "--timeout=30s")
    if not cluster.operator_images:
        standby.stop()  # a local process; in-cluster, deleting the Deployment stops the pods
    cluster.kubectl(*UNINSTALL_KEEPING_CRDS, "--ignore-not-found", "--timeout=120s")
    gone = cluster.kubectl("get", "namespace", SYSTEM, check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr
    cluster.kubectl("get", "crd", "scheduleddeployments.sundial.dev")
    try:
        cluster.custom().get_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings", "sundial")
    except ApiException as error:
        assert error.status == 404
    else:
        raise AssertionError("the uninstall left the ClusterKopfPeering")
    assert jobs_of(cluster, namespace, "shipped"), "an uninstall keeping the CRDs keeps the runs' Jobs"


# ---------------------------------------------------------------------------- replicas, local and in-cluster


@dataclass
class Replica:
    """One operator replica: a local process (local back-end) or a pod of the Deployment (kind)."""

    identity: str
    get: Callable[[str, str], str]
    """(container port name, path) -> the body served there."""
    log: Callable[[], str]
    stop: Callable[[], None]
    """Graceful: SIGTERM, as a rolling update or a drain would."""


def local_replicas(
    cluster: Cluster,
    installed: list[dict[str, Any]],
    namespace: str,
    start_operator: StartOperator,
    tmp_path: Path,
) -> list[Replica]:
    """The Deployment's replicas as local processes with the shipped ServiceAccount's token, oldest first."""
    container = operator_container(installed)
    ports = {port["name"]: int(port["containerPort"]) for port in container["ports"]}
    count = int(only(installed, "Deployment", "sundial")["spec"]["replicas"])
    token = service_account_kubeconfig(cluster, SYSTEM, ACCOUNT, tmp_path / "sundial.kubeconfig")
    replicas = []
    for index in range(count):
        args, moved = local_arguments(container["args"], token)
        env = pod_environment(container, f"sundial-{index}")
        # No image runs here: the pod runner plays the deployer's container for this image name.
        env["SUNDIAL_DEPLOYER_IMAGE"] = DEPLOYER_IMAGE
        process = start_operator(
            namespace,
            args=args,
            env_extra=env,
            identity=env["POD_NAME"],
            lease_namespace=SYSTEM,
            wait_active=index == 0,  # the first one started is the oldest: it must become active
        )

        def get(port: str, path: str, moved: dict[int, int] = moved) -> str:
            return http_get(f"http://127.0.0.1:{moved[ports[port]]}{path}")

        replicas.append(Replica(env["POD_NAME"], get, process.log, process.stop))
    return replicas


def in_cluster_replicas(cluster: Cluster, installed: list[dict[str, Any]]) -> list[Replica]:
    """kind: the Deployment itself, running the image built from this checkout; the active pod first."""
    image = cluster.operator_images[0]
    deployment = copy.deepcopy(only(installed, "Deployment", "sundial"))
    container = next(
        c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "operator"
    )
    container["image"] = image
    next(e for e in container["env"] if e["name"] == "SUNDIAL_DEPLOYER_IMAGE")["value"] = image
    ports = {port["name"]: int(port["containerPort"]) for port in container["ports"]}
    apply(cluster, [deployment])
    cluster.kubectl("rollout", "status", "deployment/sundial", "-n", SYSTEM, "--timeout=180s")
    selector = ",".join(f"{k}={v}" for k, v in deployment["spec"]["selector"]["matchLabels"].items())
    pods = [
        pod.metadata.name for pod in cluster.core().list_namespaced_pod(SYSTEM, label_selector=selector).items
    ]
    wait_until("a pod to hold the Lease", lambda: lease_holder(cluster, SYSTEM) in pods, 60)

    def replica(pod: str) -> Replica:
        def get(port: str, path: str) -> str:
            raw = f"/api/v1/namespaces/{SYSTEM}/pods/{pod}:{ports[port]}/proxy{path}"
            return cluster.kubectl("get", "--raw", raw).stdout

        def log() -> str:
            return cluster.kubectl("logs", "-n", SYSTEM, pod).stdout

        def stop() -> None:
            cluster.kubectl("delete", "pod", pod, "-n", SYSTEM, "--timeout=60s")

        return Replica(pod, get, log, stop)

    active = lease_holder(cluster, SYSTEM)
    return [replica(pod) for pod in sorted(pods, key=lambda pod: pod != active)]


def deploy_target(cluster: Cluster, namespace: str) -> tuple[dict[str, Any], str]:
    """A Deployment to deploy to, its deployer RBAC, and (the SD's target, the image the run sets)."""
    apply_deployer_rbac(cluster, namespace)
    if not cluster.operator_images:
        create_deployment(cluster, namespace)
        new_image = TARGET["deployment"]["image"]
        target: dict[str, Any] = TARGET
    else:
        # kind: pods that really run, so the rollout is real: Sundial's own image, sleeping.
        current, new_image = cluster.operator_images
        labels = {"app": "api"}
        sleeper = {
            "name": "api",
            "image": current,
            "command": ["python", "-c", "import time; time.sleep(1e6)"],
        }
        body = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "api", "namespace": namespace},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": {"containers": [sleeper]}},
            },
        }
        apply(cluster, [body])
        target = {"deployment": {"name": "api", "container": "api", "image": new_image}}
    wait_until("deployment/api to be available", lambda: deployment_available(cluster, namespace), 120)
    return target, new_image


def quick_job(cluster: Cluster) -> dict[str, Any]:
    """A jobTemplate target that succeeds at once: kwok's stages here, a real short container on kind."""
    if not cluster.operator_images:
        return {"jobTemplate": job_template()}
    container = {"name": "main", "image": cluster.operator_images[0], "args": ["--version"]}
    return {"jobTemplate": {"spec": {"backoffLimit": 0, "template": {"spec": {"containers": [container]}}}}}
