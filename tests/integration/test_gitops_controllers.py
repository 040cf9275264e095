"""Sundial's GitOps recipes on the real controllers: Flux's source- and kustomize-controller and Argo
Rollouts' controller, built from the Go module proxy by hack/gitops-controllers and run as processes on
127.0.0.1 against the local control plane, beside Sundial's operator and the pod runner that executes its
deploy pods.

Flux's sources are a ``Bucket`` served by moto's S3 in this process, where putting a new object is what
"merging to Git" means, and a ``GitRepository`` served over smart HTTP by gitserver.py (no internet).
Argo CD's controllers are not built here (hack/gitops-controllers says why): its Application is tested
against its CRD alone.

What is shown:

* Flux puts back an image that Sundial's ``deployment`` target changed, at its next reconcile, while the run
  says Succeeded (the evidence behind docs/gitops.md's warning), and its ``ssa: IfNotPresent`` escape
  hatch keeps the change;
* the release-window recipe (examples/flux-release-window.yaml) ships a change merged while the
  Kustomization was suspended at the instant, waits for Flux's Ready at the new revision, and it stays;
* the move-a-ref recipe (examples/flux-ref-at-a-time.yaml) fetches the release tag at the instant and
  Flux applies it;
* the Rollout recipe (examples/argo-rollout-at-a-time.yaml) reaches Healthy through a canary; a failed
  analysis fails the run with the Rollout's own message;
* the Argo CD recipe's ``operation`` and the ``ignoreDifferences`` escape hatch are accepted by the
  Application CRD, and with no controller the run ends as a Timeout that says what it waited for.
"""

from __future__ import annotations

import copy
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from gitserver import git_server, publish
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from moto.server import ThreadedMotoServer
from test_deploy_targets import TARGET, apply_deployer_rbac, deployment_available, deployment_image
from test_metrics import free_port
from test_patch_target import last_run, wait_for_ready

from cluster_access import isolated_env
from conftest import REPO, Cluster, wait_until
from podrunner import PodRunner
from sdhelpers import FAILURE_LABEL, StartOperator, create_sd, rfc3339, utc_in

GITOPS_CONTROLLERS = REPO / "hack" / "gitops-controllers"
FLUX_SOURCE = ("source.toolkit.fluxcd.io", "v1", "buckets")
FLUX_GIT = ("source.toolkit.fluxcd.io", "v1", "gitrepositories")
FLUX_KUSTOMIZE = ("kustomize.toolkit.fluxcd.io", "v1", "kustomizations")
ROLLOUTS = ("argoproj.io", "v1alpha1", "rollouts")
ANALYSIS_TEMPLATES = ("argoproj.io", "v1alpha1", "analysistemplates")
APPLICATIONS = ("argoproj.io", "v1alpha1", "applications")
S3_KEYS = {"accesskey": "testing", "secretkey": "testing"}
RECONCILE_REQUEST = "reconcile.fluxcd.io/requestedAt"


@dataclass
class GitOps:
    cluster: Cluster
    s3: Any
    s3_endpoint: str  # host:port, as a Bucket's spec.endpoint takes it
    logs: dict[str, Path]

    def log_tail(self) -> str:
        return "\n".join(
            f"--- {name}\n{path.read_text(errors='replace')[-3000:]}" for name, path in self.logs.items()
        )


def gitops_controllers(*args: str) -> str:
    """Run hack/gitops-controllers; its progress goes to our stderr, its answer is returned."""
    result = subprocess.run(
        [sys.executable, str(GITOPS_CONTROLLERS), *args], stdout=subprocess.PIPE, text=True
    )
    assert result.returncode == 0, f"hack/gitops-controllers {' '.join(args)} failed (see its log above)"
    return result.stdout


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def crd_names(path: Path) -> list[str]:
    return [doc["metadata"]["name"] for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.fixture(scope="module")
def gitops(crds: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitOps]:
    """The controllers running, their CRDs installed, and an S3 endpoint for Flux's Buckets. On the way out
    the objects are let go while the controllers still run (their finalizers), then everything is removed,
    so the rest of the session sees the control plane as it was."""
    cluster = crds
    binaries = Path(gitops_controllers("build").strip().splitlines()[-1])
    manifests = [Path(line) for line in gitops_controllers("crds").split()]
    names = [name for path in manifests for name in crd_names(path)]
    for path in manifests:
        cluster.kubectl("apply", "--server-side", "-f", str(path))
    for name in names:
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s")

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    s3 = boto3.client(
        "s3",
        endpoint_url=f"http://{host}:{port}",
        region_name="us-east-1",
        aws_access_key_id=S3_KEYS["accesskey"],
        aws_secret_access_key=S3_KEYS["secretkey"],
    )

    workdir = tmp_path_factory.mktemp("gitops")
    (workdir / "storage").mkdir()  # source-controller's artifacts, which it serves to kustomize-controller
    env = isolated_env(cluster.home)
    # Flux's controllers find their cluster through controller-runtime, which reads KUBECONFIG: ours,
    # set after isolated_env removed any ambient one.
    env["KUBECONFIG"] = str(cluster.kubeconfig)
    env["RUNTIME_NAMESPACE"] = "flux-system"
    storage = free_port()
    health = {name: free_port() for name in ("source", "kustomize", "rollouts")}
    commands = {
        "source-controller": [
            str(binaries / "source-controller"),
            f"--storage-path={workdir / 'storage'}",
            f"--storage-addr=127.0.0.1:{storage}",
            f"--storage-adv-addr=127.0.0.1:{storage}",
            f"--metrics-addr=127.0.0.1:{free_port()}",
            f"--health-addr=127.0.0.1:{health['source']}",
        ],
        "kustomize-controller": [
            str(binaries / "kustomize-controller"),
            f"--metrics-addr=127.0.0.1:{free_port()}",
            f"--health-addr=127.0.0.1:{health['kustomize']}",
            "--no-remote-bases",
        ],
        "rollouts-controller": [
            str(binaries / "rollouts-controller"),
            "--kubeconfig",
            str(cluster.kubeconfig),
            "--leader-elect=false",
            f"--metricsPort={free_port()}",
            f"--healthzPort={health['rollouts']}",
        ],
    }
    processes: dict[str, subprocess.Popen[bytes]] = {}
    logs = {name: workdir / f"{name}.log" for name in commands}
    for name, argv in commands.items():
        with logs[name].open("wb") as log:
            processes[name] = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=workdir
            )
    gitops = GitOps(cluster, s3, f"{host}:{port}", logs)
    try:
        for name, url in (
            ("source-controller", f"http://127.0.0.1:{health['source']}/readyz"),
            ("kustomize-controller", f"http://127.0.0.1:{health['kustomize']}/readyz"),
            ("rollouts-controller", f"http://127.0.0.1:{health['rollouts']}/healthz"),
        ):
            try:
                wait_until(f"{name} to be ready", lambda url=url: http_ok(url), 60)
            except AssertionError as error:
                raise AssertionError(f"{error}\n{gitops.log_tail()}") from None
        yield gitops
    finally:
        leftovers = [FLUX_KUSTOMIZE, FLUX_SOURCE, FLUX_GIT, ROLLOUTS, ANALYSIS_TEMPLATES, APPLICATIONS]
        for group, _, plural in leftovers:
            cluster.kubectl(
                "delete", f"{plural}.{group}", "--all-namespaces", "--all", "--wait=false", check=False
            )

        def all_gone() -> bool:
            found = cluster.kubectl(
                "get", ",".join(f"{plural}.{group}" for group, _, plural in leftovers), "-A", "-o", "name",
                check=False,
            )  # fmt: skip
            return found.returncode == 0 and not found.stdout.strip()

        try:
            wait_until("the GitOps objects to be deleted", all_gone, 60, interval=0.5)
        finally:
            for process in processes.values():
                process.terminate()
            for process in processes.values():
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(10)
            server.stop()
            for name in names:
                cluster.kubectl("delete", "crd", name, "--wait=true", "--timeout=60s", check=False)


@pytest.fixture
def runner(cluster: Cluster, namespace: str, tmp_path: Path) -> Iterator[PodRunner]:
    with PodRunner(cluster.api_client(), cluster.kubeconfig, namespace, tmp_path) as pod_runner:
        yield pod_runner


# ---------------------------------------------------------------------------------------------- helpers


def grant_deployer(cluster: Cluster, namespace: str, group: str, plural: str) -> None:
    """sundial-deployer (created by apply_deployer_rbac) may get and patch ``plural`` here: the rights
    docs/gitops.md tells users to grant."""
    rbac = client.RbacAuthorizationV1Api(cluster.api_client())
    name = f"patch-{plural}"
    rule = client.V1PolicyRule(api_groups=[group], resources=[plural], verbs=["get", "patch"])
    rbac.create_namespaced_role(namespace, client.V1Role(metadata={"name": name}, rules=[rule]))
    subject = client.RbacV1Subject(kind="ServiceAccount", name="sundial-deployer", namespace=namespace)
    binding = client.V1RoleBinding(
        metadata={"name": name},
        role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name=name),
        subjects=[subject],
    )
    rbac.create_namespaced_role_binding(namespace, binding)


def create(cluster: Cluster, namespace: str, resource: tuple[str, str, str], body: dict[str, Any]) -> None:
    group, version, plural = resource
    body = {"apiVersion": f"{group}/{version}", **body}
    cluster.custom().create_namespaced_custom_object(group, version, namespace, plural, body)


def read(cluster: Cluster, namespace: str, resource: tuple[str, str, str], name: str) -> dict[str, Any]:
    group, version, plural = resource
    return dict(cluster.custom().get_namespaced_custom_object(group, version, namespace, plural, name))


def merge(cluster: Cluster, namespace: str, resource: tuple[str, str, str], name: str, patch: Any) -> None:
    group, version, plural = resource
    cluster.custom().patch_namespaced_custom_object(group, version, namespace, plural, name, patch)


def ready_condition(obj: dict[str, Any]) -> dict[str, Any]:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == "Ready"), {})


def example_spec(name: str, seconds: float) -> dict[str, Any]:
    """The spec of examples/NAME.yaml, due in ``seconds`` (a UTC instant, so without its zone)."""
    spec = copy.deepcopy(yaml.safe_load((REPO / "examples" / f"{name}.yaml").read_text())["spec"])
    spec["runAt"] = rfc3339(utc_in(seconds))
    spec.pop("timeZone", None)
    return dict(spec)


# ---------------------------------------------------------------------------------------------- Flux


def deployment_manifest(image: str, annotations: dict[str, str] | None = None) -> str:
    """What Git holds: Deployment ``api`` with two replicas of ``image``."""
    metadata: dict[str, Any] = {"name": "api"}
    if annotations:
        metadata["annotations"] = annotations
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "api"}},
            "template": {
                "metadata": {"labels": {"app": "api"}},
                "spec": {"containers": [{"name": "api", "image": image}]},
            },
        },
    }
    return yaml.safe_dump(body)


def merge_to_git(gitops: GitOps, bucket: str, manifest: str) -> None:
    gitops.s3.put_object(Bucket=bucket, Key="deployment.yaml", Body=manifest.encode())


def flux_bucket(gitops: GitOps, namespace: str) -> None:
    """Bucket ``shop``, on the S3 bucket named after the namespace, fetched every 2 s."""
    cluster = gitops.cluster
    secret = client.V1Secret(metadata=client.V1ObjectMeta(name="s3-keys"), string_data=S3_KEYS)
    cluster.core().create_namespaced_secret(namespace, secret)
    spec = {
        "interval": "2s",
        "provider": "generic",
        "bucketName": namespace,
        "endpoint": gitops.s3_endpoint,
        "insecure": True,
        "region": "us-east-1",
        "secretRef": {"name": "s3-keys"},
    }
    create(cluster, namespace, FLUX_SOURCE, {"kind": "Bucket", "metadata": {"name": "shop"}, "spec": spec})


def flux_kustomization(gitops: GitOps, namespace: str, source_kind: str) -> None:
    """Kustomization ``shop-apps``, which applies source ``shop`` into this namespace and waits for what
    it applied to be healthy. A long interval: Flux reconciles when a test asks
    (reconcile.fluxcd.io/requestedAt), as it would at its next interval, or when its source changes."""
    spec = {
        "interval": "1h",
        "sourceRef": {"kind": source_kind, "name": "shop"},
        "path": "./",
        "prune": True,
        "wait": True,
        "timeout": "1m",
        "targetNamespace": namespace,
    }
    body = {"kind": "Kustomization", "metadata": {"name": "shop-apps"}, "spec": spec}
    create(gitops.cluster, namespace, FLUX_KUSTOMIZE, body)


def bucket_revision(gitops: GitOps, namespace: str) -> str | None:
    artifact = (read(gitops.cluster, namespace, FLUX_SOURCE, "shop").get("status") or {}).get(
        "artifact"
    ) or {}
    return artifact.get("revision")


def wait_for_flux_ready(gitops: GitOps, namespace: str, revision: str) -> dict[str, Any]:
    def applied() -> dict[str, Any] | None:
        kustomization = read(gitops.cluster, namespace, FLUX_KUSTOMIZE, "shop-apps")
        status = kustomization.get("status") or {}
        ready = ready_condition(kustomization).get("status") == "True"
        return kustomization if ready and status.get("lastAppliedRevision") == revision else None

    try:
        return wait_until(f"Kustomization shop-apps Ready at {revision}", applied, 90, interval=0.5)
    except AssertionError as error:
        raise AssertionError(f"{error}\n{gitops.log_tail()}") from None


def request_reconcile(gitops: GitOps, namespace: str) -> None:
    """What Flux does at its next interval, asked for now: reconcile, and wait until it was handled."""
    token = datetime.now(UTC).isoformat()
    merge(gitops.cluster, namespace, FLUX_KUSTOMIZE, "shop-apps",
          {"metadata": {"annotations": {RECONCILE_REQUEST: token}}})  # fmt: skip

    def handled() -> bool:
        kustomization = read(gitops.cluster, namespace, FLUX_KUSTOMIZE, "shop-apps")
        status = kustomization.get("status") or {}
        return (
            status.get("lastHandledReconcileAt") == token
            and ready_condition(kustomization).get("status") == "True"
        )

    wait_until(f"Flux to handle reconcile request {token}", handled, 90, interval=0.5)


def flux_applies_v41(gitops: GitOps, namespace: str, annotations: dict[str, str] | None = None) -> str:
    """Git holds api at v41, Flux applied it and it is available. Returns the applied revision."""
    gitops.s3.create_bucket(Bucket=namespace)
    merge_to_git(gitops, namespace, deployment_manifest("registry.example/api:v41", annotations))
    flux_bucket(gitops, namespace)
    flux_kustomization(gitops, namespace, "Bucket")
    revision = wait_until("the Bucket's first artifact", lambda: bucket_revision(gitops, namespace), 60)
    wait_for_flux_ready(gitops, namespace, revision)
    wait_until("deployment/api available", lambda: deployment_available(gitops.cluster, namespace), 60)
    assert deployment_image(gitops.cluster, namespace) == "registry.example/api:v41"
    return revision


def test_flux_puts_back_an_image_that_the_deployment_target_changed_while_the_run_says_succeeded(
    gitops: GitOps, namespace: str, runner: PodRunner, start_operator: StartOperator
) -> None:
    cluster = gitops.cluster
    apply_deployer_rbac(cluster, namespace)
    flux_applies_v41(gitops, namespace)
    start_operator(namespace)
    create_sd(cluster, namespace, "api-v42", {"runAt": rfc3339(utc_in(4)), **TARGET})
    wait_for_ready(cluster, namespace, "api-v42", "True", "Succeeded", runner)
    assert deployment_image(cluster, namespace) == "registry.example/api:v42", "the run did change it"

    request_reconcile(gitops, namespace)

    assert deployment_image(cluster, namespace) == "registry.example/api:v41", "Flux put Git's image back"
    assert last_run(cluster, namespace, "api-v42")["result"] == "Succeeded", (
        "and Sundial's record cannot know"
    )


def test_flux_leaves_a_deployment_marked_ssa_if_not_present_to_the_deployment_target(
    gitops: GitOps, namespace: str, runner: PodRunner, start_operator: StartOperator
) -> None:
    """docs/gitops.md's Flux escape hatch, as written there, on the real kustomize-controller."""
    cluster = gitops.cluster
    apply_deployer_rbac(cluster, namespace)
    flux_applies_v41(gitops, namespace, {"kustomize.toolkit.fluxcd.io/ssa": "IfNotPresent"})
    start_operator(namespace)
    create_sd(cluster, namespace, "api-v42", {"runAt": rfc3339(utc_in(4)), **TARGET})
    wait_for_ready(cluster, namespace, "api-v42", "True", "Succeeded", runner)

    request_reconcile(gitops, namespace)

    assert deployment_image(cluster, namespace) == "registry.example/api:v42"


def test_the_release_window_ships_what_was_merged_while_suspended_at_the_instant_and_it_stays(
    gitops: GitOps, namespace: str, runner: PodRunner, start_operator: StartOperator
) -> None:
    cluster = gitops.cluster
    apply_deployer_rbac(cluster, namespace)
    grant_deployer(cluster, namespace, FLUX_KUSTOMIZE[0], FLUX_KUSTOMIZE[2])
    first = flux_applies_v41(gitops, namespace)
    # The release PR sets suspend: true and is merged (played here by a patch), then v42 is merged.
    merge(cluster, namespace, FLUX_KUSTOMIZE, "shop-apps", {"spec": {"suspend": True}})
    merge_to_git(gitops, namespace, deployment_manifest("registry.example/api:v42"))
    merged = wait_until(
        "source-controller to fetch the merged v42",
        lambda: (revision := bucket_revision(gitops, namespace)) != first and revision,
        60,
    )
    time.sleep(3)  # a suspended Kustomization must not apply it, however long it waits
    assert deployment_image(cluster, namespace) == "registry.example/api:v41"

    start_operator(namespace)
    create_sd(cluster, namespace, "shop-release-window", example_spec("flux-release-window", 5))
    wait_for_ready(cluster, namespace, "shop-release-window", "True", "Succeeded", runner)

    run = last_run(cluster, namespace, "shop-release-window")
    kustomization = read(cluster, namespace, FLUX_KUSTOMIZE, "shop-apps")
    assert kustomization["spec"]["suspend"] is False
    assert kustomization["metadata"]["annotations"][RECONCILE_REQUEST] == run["scheduledTime"]
    assert kustomization["status"]["lastHandledReconcileAt"] == run["scheduledTime"]
    assert kustomization["status"]["lastAppliedRevision"] == merged, "Ready at the merged revision"
    assert deployment_image(cluster, namespace) == "registry.example/api:v42"
    assert deployment_available(cluster, namespace), "wait: true, so Ready meant the rollout finished"
    [execution] = runner.executed
    assert f"Applied revision: {merged}" in execution["stdout"], execution["stdout"]

    request_reconcile(gitops, namespace)
    assert deployment_image(cluster, namespace) == "registry.example/api:v42", "Git says v42: it stays"


def test_moving_a_git_repositorys_ref_at_the_instant_fetches_the_tag_and_flux_applies_it(
    gitops: GitOps, namespace: str, runner: PodRunner, start_operator: StartOperator, tmp_path: Path
) -> None:
    """The "move a ref" recipe (examples/flux-ref-at-a-time.yaml) on a Git repository served over smart
    HTTP on 127.0.0.1 (tests/integration/gitserver.py) with release tags v41 and v42."""
    cluster = gitops.cluster
    apply_deployer_rbac(cluster, namespace)
    grant_deployer(cluster, namespace, FLUX_GIT[0], FLUX_GIT[2])
    tags = {
        tag: {"deployment.yaml": deployment_manifest(f"registry.example/api:{tag}")} for tag in ("v41", "v42")
    }
    commits = publish(tmp_path / "git", "shop", tags)
    with git_server(tmp_path / "git") as url:
        spec = {"interval": "1h", "url": f"{url}/shop.git", "ref": {"tag": "v41"}, "timeout": "30s"}
        create(
            cluster,
            namespace,
            FLUX_GIT,
            {"kind": "GitRepository", "metadata": {"name": "shop"}, "spec": spec},
        )
        flux_kustomization(gitops, namespace, "GitRepository")
        wait_for_flux_ready(gitops, namespace, f"v41@sha1:{commits['v41']}")
        assert deployment_image(cluster, namespace) == "registry.example/api:v41"

        start_operator(namespace)
        create_sd(cluster, namespace, "shop-ref-v42", example_spec("flux-ref-at-a-time", 5))
        wait_for_ready(cluster, namespace, "shop-ref-v42", "True", "Succeeded", runner)

        run = last_run(cluster, namespace, "shop-ref-v42")
        repository = read(cluster, namespace, FLUX_GIT, "shop")
        assert repository["spec"]["ref"] == {"tag": "v42"}
        assert repository["status"]["artifact"]["revision"] == f"v42@sha1:{commits['v42']}", "fetched the tag"
        assert repository["status"]["lastHandledReconcileAt"] == run["scheduledTime"]
        wait_for_flux_ready(gitops, namespace, f"v42@sha1:{commits['v42']}")
    assert deployment_image(cluster, namespace) == "registry.example/api:v42", "and Flux applied it"


# ---------------------------------------------------------------------------------------------- Argo Rollouts


def create_rollout(cluster: Cluster, namespace: str, steps: list[dict[str, Any]]) -> None:
    spec = {
        "replicas": 2,
        "revisionHistoryLimit": 2,
        "selector": {"matchLabels": {"app": "api"}},
        "template": {
            "metadata": {"labels": {"app": "api"}},
            "spec": {"containers": [{"name": "api", "image": "registry.example.com/shop/api:v41"}]},
        },
        "strategy": {"canary": {"steps": steps}},
    }
    create(cluster, namespace, ROLLOUTS, {"kind": "Rollout", "metadata": {"name": "api"}, "spec": spec})
    wait_until("Rollout api Healthy at v41", lambda: rollout_phase(cluster, namespace) == "Healthy", 90)


def rollout_phase(cluster: Cluster, namespace: str) -> str | None:
    return (read(cluster, namespace, ROLLOUTS, "api").get("status") or {}).get("phase")


def rollout_recipe_ready(cluster: Cluster, namespace: str, start_operator: StartOperator) -> None:
    apply_deployer_rbac(cluster, namespace)
    grant_deployer(cluster, namespace, ROLLOUTS[0], ROLLOUTS[2])
    start_operator(namespace)
    create_sd(cluster, namespace, "api-canary-v42", example_spec("argo-rollout-at-a-time", 5))


def test_a_rollout_changed_at_the_instant_goes_through_its_canary_to_healthy(
    gitops: GitOps, namespace: str, runner: PodRunner, start_operator: StartOperator
) -> None:
    cluster = gitops.cluster
    create_rollout(cluster, namespace, [{"setWeight": 50}, {"pause": {"duration": "2s"}}])
    rollout_recipe_ready(cluster, namespace, start_operator)
    wait_for_ready(cluster, namespace, "api-canary-v42", "True", "Succeeded", runner)

    rollout = read(cluster, namespace, ROLLOUTS, "api")
    status = rollout["status"]
    assert status["phase"] == "Healthy"
    assert status["stableRS"] == status["currentPodHash"], "the canary was promoted to stable"
    assert (
        rollout["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example.com/shop/api:v42"
    )
    pods = cluster.core().list_namespaced_pod(
        namespace, label_selector=f"rollouts-pod-template-hash={status['stableRS']}"
    )
    assert {pod.spec.containers[0].image for pod in pods.items} == {"registry.example.com/shop/api:v42"}
    [execution] = runner.executed
    assert "Healthy" in execution["stdout"], execution["stdout"]


def test_a_rollout_whose_analysis_fails_fails_the_run_with_the_rollouts_own_message(
    gitops: GitOps, namespace: str, runner: PodRunner, start_operator: StartOperator
) -> None:
    cluster = gitops.cluster
    job = {
        "backoffLimit": 0,
        "template": {
            # kwok fails a pod with this label (hack/kwok/stages.yaml): the smoke test fails.
            "metadata": {"labels": {FAILURE_LABEL: "fail"}},
            "spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "smoke", "image": "registry.example/smoke:1"}],
            },
        },
    }
    template = {"metrics": [{"name": "smoke", "provider": {"job": {"spec": job}}}]}
    create(cluster, namespace, ANALYSIS_TEMPLATES,
           {"kind": "AnalysisTemplate", "metadata": {"name": "smoke"}, "spec": template})  # fmt: skip
    create_rollout(
        cluster, namespace, [{"setWeight": 50}, {"analysis": {"templates": [{"templateName": "smoke"}]}}]
    )
    rollout_recipe_ready(cluster, namespace, start_operator)
    failed = wait_for_ready(cluster, namespace, "api-canary-v42", "False", "RolloutDegraded", runner)

    rollout = read(cluster, namespace, ROLLOUTS, "api")
    assert rollout["status"]["phase"] == "Degraded"
    assert rollout["status"]["message"] in failed["message"], (rollout["status"], failed)
    assert 'Metric "smoke" assessed Failed' in failed["message"], failed
    run = last_run(cluster, namespace, "api-canary-v42")
    assert (run["result"], run.get("reason")) == ("Failed", "RolloutDegraded"), run


# ---------------------------------------------------------------------------------------------- Argo CD


def test_the_argocd_recipe_and_escape_hatch_are_accepted_by_the_application_crd_and_nothing_more(
    gitops: GitOps, namespace: str, runner: PodRunner, start_operator: StartOperator
) -> None:
    """No Argo CD controller runs here: the CRD's schema accepts what the recipe writes and what the
    escape hatch sets, and with nobody to sync, the run times out saying what it awaited."""
    cluster = gitops.cluster
    application = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": "shop", "namespace": namespace},
        "spec": {
            "project": "default",
            "source": {"repoURL": "https://git.example/shop.git", "path": "apps", "targetRevision": "main"},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": namespace},
            # docs/gitops.md's escape hatch, as written there.
            "ignoreDifferences": [
                {
                    "group": "apps",
                    "kind": "Deployment",
                    "name": "api",
                    "jqPathExpressions": ['.spec.template.spec.containers[] | select(.name == "api").image'],
                }
            ],
            "syncPolicy": {"syncOptions": ["RespectIgnoreDifferences=true"]},
        },
    }
    cluster.kubectl("create", "--validate=strict", "-f", "-", input=yaml.safe_dump(application))
    apply_deployer_rbac(cluster, namespace)
    grant_deployer(cluster, namespace, APPLICATIONS[0], APPLICATIONS[2])
    start_operator(namespace)
    spec = example_spec("argocd-sync-at-a-time", 4)
    spec["patch"]["timeout"] = "15s"
    create_sd(cluster, namespace, "shop-sync-v42", spec)
    timed_out = wait_for_ready(cluster, namespace, "shop-sync-v42", "False", "Timeout", runner)

    written = read(cluster, namespace, APPLICATIONS, "shop")
    assert written["operation"] == spec["patch"]["mergePatch"]["operation"], "stored as the recipe wrote it"
    assert "was not done within 15s" in timed_out["message"], timed_out
    with pytest.raises(ApiException) as refused:
        merge(cluster, namespace, APPLICATIONS, "shop", {"operation": {"sync": {"revision": 42}}})
    assert refused.value.status == 422, "the CRD's schema is enforced: this is not a test of nothing"
