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
"""

from __future__ import annotations

import copy
import re
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client.exceptions import ApiException
from podrunner import DEPLOYER_IMAGE, PodRunner
from test_deploy_targets import (
    TARGET,
    apply_deployer_rbac,
    create_deployment,
    deployment_available,
    deployment_image,
)

from conftest import REPO, Cluster, OperatorProcess, lease_holder, service_account_kubeconfig, wait_until
from sdhelpers import StartOperator, create_sd, job_template, jobs_of, read_sd, rfc3339, utc_in

MANIFESTS = REPO / "manifests"
SYSTEM = "sundial-system"
ACCOUNT = "sundial"
USER = f"system:serviceaccount:{SYSTEM}:{ACCOUNT}"
LEASE = "sundial-scheduler"
LEASE_FINALIZER = "sundial.dev/scheduler-lease"
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


@pytest.fixture
def installed(crds: Cluster) -> Iterator[list[dict[str, Any]]]:
    """Everything the manifests hold except the Deployment, applied for real; removed again afterwards."""
    documents = render(crds)
    crds.kubectl("wait", "--for=delete", f"namespace/{SYSTEM}", "--timeout=60s", check=False)
    apply(crds, [d for d in documents if d["kind"] != "Deployment"])
    crds.kubectl("wait", "--for=jsonpath={.metadata.name}=sundial", f"serviceaccount/{ACCOUNT}", "-n", SYSTEM)
    yield documents
    # Whatever the test left (normally nothing): no Lease finalizer may hold the namespace forever.
    strip_lease_finalizer(crds)
    crds.kubectl(*UNINSTALL_KEEPING_CRDS, "--ignore-not-found", "--timeout=60s", check=False)


def strip_lease_finalizer(cluster: Cluster) -> None:
    cluster.kubectl(
        "patch",
        "lease",
        LEASE,
        "-n",
        SYSTEM,
        "--type=merge",
        "-p",
        '{"metadata":{"finalizers":null}}',
        check=False,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def local_arguments(args: list[str], kubeconfig: Path) -> tuple[list[str], list[str]]:
    """The Deployment's arguments for a process on this machine, and the loopback addresses it serves.

    Only two things change: ``--in-cluster`` becomes ``--kubeconfig PATH``, and every ``0.0.0.0:PORT``
    (liveness, metrics) becomes ``127.0.0.1:<a free port>``, so that two replicas fit on one machine.
    """
    assert args.count("--in-cluster") == 1
    served: list[str] = []
    local: list[str] = []
    for arg in args:
        if arg == "--in-cluster":
            local += ["--kubeconfig", str(kubeconfig)]
            continue
        moved = re.sub(r"0\.0\.0\.0:\d+", lambda _: f"127.0.0.1:{free_port()}", arg)
        if moved != arg:
            served.append(moved)
        local.append(moved)
    return local, served


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


def active_replica(address: str) -> str | None:
    """The ``sundial_active_replica`` sample served at ``http://ADDRESS/metrics``."""
    found = re.search(r"^sundial_active_replica (\S+)$", http_get(f"http://{address}/metrics"), re.MULTILINE)
    return found.group(1) if found else None


def rbac_denials(log: str) -> list[str]:
    """Forbidden answers in a log, less the one RBAC cannot cause (a namespace being deleted)."""
    return [
        line
        for line in log.splitlines()
        if re.search(r"forbidden|\b403\b", line, re.IGNORECASE) and "being terminated" not in line
    ]


def succeeded(cluster: Cluster, namespace: str, name: str) -> str | None:
    return (read_sd(cluster, namespace, name).get("status") or {}).get("lastSuccessfulTime")


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
        "clusterkopfpeerings.kopf.dev",
        "kopfpeerings.kopf.dev",
    }
    # --all-namespaces makes kopf peer cluster-wide: the ClusterKopfPeering named by --peering.
    peering = only(documents, "ClusterKopfPeering", "sundial")
    assert "namespace" not in peering["metadata"]
    for role in ("sundial-operator", "sundial-edit", "sundial-view"):
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
    start_operator: StartOperator,
    tmp_path: Path,
) -> None:
    container = operator_container(installed)
    replicas = int(only(installed, "Deployment", "sundial")["spec"]["replicas"])
    token = service_account_kubeconfig(cluster, SYSTEM, ACCOUNT, tmp_path / "sundial.kubeconfig")
    apply_deployer_rbac(cluster, namespace)
    create_deployment(cluster, namespace)
    wait_until("deployment/api to be available", lambda: deployment_available(cluster, namespace), 60)

    operators: list[OperatorProcess] = []
    endpoints: list[list[str]] = []
    for index in range(replicas):
        args, served = local_arguments(container["args"], token)
        env = pod_environment(container, f"sundial-{index}")
        # No image runs here: the pod runner plays the deployer's container for this image name.
        env["SUNDIAL_DEPLOYER_IMAGE"] = DEPLOYER_IMAGE
        operators.append(
            start_operator(
                namespace,
                args=args,
                env_extra=env,
                identity=env["POD_NAME"],
                lease_namespace=SYSTEM,
                wait_active=index == 0,
            )
        )
        endpoints.append(served)
    identities = {f"sundial-{index}" for index in range(replicas)}
    wait_until(
        "every replica in the ClusterKopfPeering", lambda: identities <= peering_identities(cluster), 30
    )

    # The probes and the metrics Service's port answer on every replica; only the oldest is active.
    for index, served in enumerate(endpoints):
        healthz = next(url for url in served if url.endswith("/healthz"))
        metrics = next(address for address in served if not address.startswith("http"))
        assert '"scheduler"' in http_get(healthz)
        active = wait_until(f"sundial-{index}'s metrics", lambda m=metrics: active_replica(m), 15)
        assert active == ("1.0" if index == 0 else "0.0")
    assert lease_holder(cluster, SYSTEM) == "sundial-0"

    with PodRunner(cluster, namespace, tmp_path) as runner:
        create_sd(cluster, namespace, "shipped", {"runAt": rfc3339(utc_in(4)), **TARGET})
        wait_until("the deploy to succeed", lambda: succeeded(cluster, namespace, "shipped"), 60)
    assert deployment_image(cluster, namespace) == "registry.example/api:v42"
    assert runner.executed[0]["exit"] == 0

    # A graceful exit hands over to the standby, which fires the next run.
    operators[0].stop()
    wait_until("the standby to take over the Lease", lambda: lease_holder(cluster, SYSTEM) == "sundial-1", 30)
    create_sd(
        cluster, namespace, "after-handover", {"runAt": rfc3339(utc_in(3)), "jobTemplate": job_template()}
    )
    wait_until("the standby's run to succeed", lambda: succeeded(cluster, namespace, "after-handover"), 60)
    assert len(jobs_of(cluster, namespace, "after-handover")) == 1

    for operator in operators:
        assert not rbac_denials(operator.log()), operator.log()[-3000:]
    # Least privilege: the operator itself can neither deploy nor read Secrets.
    assert can_i(cluster, "patch", "deployments", "-n", namespace) == "no"
    assert can_i(cluster, "get", "secrets", "-n", namespace) == "no"

    # The uninstall of docs/install.md, as written. The running replica holds a finalizer on its Lease;
    # deleting the Lease first lets it remove that finalizer (with nothing running, it would hold the
    # namespace in Terminating for ever).
    lease = cluster.kubectl("get", "lease", LEASE, "-n", SYSTEM, "-o", "json").stdout
    assert LEASE_FINALIZER in lease
    cluster.kubectl("-n", SYSTEM, "delete", "lease", LEASE, "--timeout=30s")
    operators[1].stop()
    cluster.kubectl(*UNINSTALL_KEEPING_CRDS, "--ignore-not-found", "--timeout=60s")
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
