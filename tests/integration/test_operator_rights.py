"""The operator's rights are exactly what it asks for: the shipped RBAC against the API server's audit log.

The operator runs as test_install.py runs it (the Deployment's arguments, a TokenRequest token of the
shipped ServiceAccount, the shipped replica count) and is driven through every path that needs a right: a
run that succeeds, a failed Job whose pods it reads, history pruning that deletes a Job, a Job name taken
by someone else (which it reads to see whose it is), a missing service account, Events, peering and the
Lease. Then every request its account made, as the local API server's audit log recorded it
(hack/local-cluster's AUDIT_POLICY), is compared with the rules bound to it (tests/rbac_audit.py): a rule
no request used fails the test, and so does a request that was denied or that no rule covers.

Once for the cluster-wide install (manifests/) and once for the namespaced one (examples/namespaced, built
on manifests/namespaced), which must also leave a third namespace alone. And the cluster-wide install's
Job policy (manifests/operator-job-policy.yaml): Jobs only in namespaces labelled for Sundial.

The audit log exists on the local back-end only; elsewhere the comparisons are skipped (the rest runs).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_install import (
    ACCOUNT,
    DEPLOYS_LABEL,
    USER,
    applied,
    apply,
    can_i,
    enable_deploys,
    local_replicas,
    only,
    operator_container,
    rbac_denials,
    render,
)

from conftest import REPO, Cluster, fresh_namespace, wait_until
from rbac_audit import compare, grants_for, requests_from_audit
from sdhelpers import StartOperator, create_sd, job_template, jobs_of, read_sd, rfc3339, utc_in
from sundial.api.freezes import CLUSTER_FREEZE_KIND, CLUSTER_FREEZE_PLURAL, FREEZE_KIND, FREEZE_PLURAL
from sundial.api.keys import API_VERSION, GROUP, VERSION
from sundial.timing.names import job_name

NAMESPACED = REPO / "examples" / "namespaced"
WATCHED_NAMESPACE = REPO / "manifests" / "namespaced" / "watched-namespace"
EXAMPLE_NAMESPACES = ("team-a", "team-b")
JOB_POLICY = "sundial-operator-jobs"


# ------------------------------------------------------------------------------------------ the audit log


class AuditWindow:
    """The requests the operator's account makes from now on, as the API server's audit log records them."""

    def __init__(self, cluster: Cluster) -> None:
        self.path = cluster.audit_log
        if self.path is not None and not self.path.exists():
            raise AssertionError(
                f"{self.path} is missing: restart the test cluster (hack/local-cluster down)"
            )
        self.start = self.path.stat().st_size if self.path is not None else 0

    def requests(self) -> list[Any]:
        assert self.path is not None
        with self.path.open(encoding="utf-8") as log:
            log.seek(self.start)
            lines = log.readlines()
        return requests_from_audit(lines, USER)

    def assert_matches(self, documents: list[dict[str, Any]]) -> None:
        """Every request covered and allowed, every grant used; else name each one that is not."""
        if self.path is None:
            pytest.skip("no audit log on this back-end: the comparison needs --k8s-backend=local")
        requests = self.requests()
        assert requests, "the audit log holds no request of the operator's account"
        result = compare(grants_for(documents, USER), requests)
        distinct = len(set(requests))
        print(f"audit: {len(requests)} requests of {USER} ({distinct} distinct) against the shipped rules")
        assert result, (
            f"the shipped RBAC and the operator's {len(requests)} requests differ:\n{result.report()}"
        )


# ------------------------------------------------------------------------------------- the code paths


def prepare(cluster: Cluster, namespace: str) -> None:
    """A namespace Sundial may deploy in: labelled for the cluster-wide Job policy, with the default deploy
    account (its absence is one of the paths, on purpose, in one object only)."""
    enable_deploys(cluster, namespace)
    cluster.kubectl("create", "serviceaccount", "sundial-deployer", "-n", namespace)


def taken_job(namespace: str, owner: str, instant: Any) -> dict[str, Any]:
    """A Job someone else made, under the name Sundial derives for ``owner``'s run at ``instant``."""
    container = {"name": "main", "image": "registry.example/theirs:1"}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": job_name(owner, instant), "namespace": namespace},
        "spec": {
            "backoffLimit": 0,
            "template": {"spec": {"restartPolicy": "Never", "containers": [container]}},
        },
    }


def cpu_cap(namespace: str) -> dict[str, Any]:
    """A LimitRange, enforced by admission on pods: a container asking for more than one CPU is refused.
    Unlike Pod Security, it refuses only the pod built to exceed it, so other paths share the namespace."""
    return {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": {"name": "cpu-cap", "namespace": namespace},
        "spec": {"limits": [{"type": "Container", "max": {"cpu": "1"}}]},
    }


def greedy_template() -> dict[str, Any]:
    template = job_template()
    [container] = template["spec"]["template"]["spec"]["containers"]
    container["resources"] = {"requests": {"cpu": "2"}, "limits": {"cpu": "2"}}
    return template


def last_run(cluster: Cluster, namespace: str, name: str) -> dict[str, Any] | None:
    runs = (read_sd(cluster, namespace, name).get("status") or {}).get("runs") or []
    finished = [run for run in runs if run.get("result") in ("Succeeded", "Failed")]
    return finished[-1] if finished else None


def drive_freezes(cluster: Cluster, namespace: str, *, cluster_wide: bool) -> Iterator[None]:
    """A ReleaseFreeze (and, when the operator serves every namespace, a ClusterReleaseFreeze for this
    namespace only) whose status the operator writes; both deleted at the end."""
    custom = cluster.custom()
    calendar = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//audit//EN\r\nEND:VCALENDAR\r\n"
    cluster.kubectl(
        "create", "configmap", "audit-calendar", "-n", namespace, f"--from-literal=calendar.ics={calendar}"
    )
    # Read by GET (configmaps get): the one ConfigMap right the operator holds.
    spec = {"reason": "audit", "dates": ["2099-12-24"], "calendar": {"configMapName": "audit-calendar"}}
    body = {"apiVersion": API_VERSION, "kind": FREEZE_KIND, "metadata": {"name": "audit"}, "spec": spec}
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, FREEZE_PLURAL, body)
    name = f"audit-{namespace}"[:63]
    if cluster_wide:
        body = {
            "apiVersion": API_VERSION,
            "kind": CLUSTER_FREEZE_KIND,
            "metadata": {"name": name},
            "spec": {
                **spec,
                "namespaces": [namespace],
                "calendar": {**spec["calendar"], "namespace": namespace},
            },
        }
        custom.create_cluster_custom_object(GROUP, VERSION, CLUSTER_FREEZE_PLURAL, body)
    try:
        wait_until(
            "the freeze's status to be written",
            lambda: custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, FREEZE_PLURAL, "audit"
            ).get("status"),
            30,
        )
        if cluster_wide:
            wait_until(
                "the cluster freeze's status to be written",
                lambda: custom.get_cluster_custom_object(GROUP, VERSION, CLUSTER_FREEZE_PLURAL, name).get(
                    "status"
                ),
                30,
            )
        yield
    finally:
        if cluster_wide:
            cluster.kubectl("delete", "clusterreleasefreeze", name, "--ignore-not-found", check=False)


def drive_every_path(cluster: Cluster, first: str, second: str, *, cluster_wide: bool = False) -> None:
    """Every code path of the operator that needs a right, spread over two namespaces it serves."""
    with contextlib.contextmanager(drive_freezes)(cluster, first, cluster_wide=cluster_wide):
        _drive_runs(cluster, first, second)


def _drive_runs(cluster: Cluster, first: str, second: str) -> None:
    # Someone else's Job holds the name of this object's run: AlreadyExists, then a read shows it is not ours.
    taken_at = utc_in(5)
    apply(cluster, [taken_job(second, "taken", taken_at)])
    create_sd(cluster, second, "taken", {"runAt": rfc3339(taken_at), "jobTemplate": job_template()})
    create_sd(cluster, first, "succeeds", {"runAt": rfc3339(utc_in(3)), "jobTemplate": job_template()})
    create_sd(cluster, first, "fails", {"runAt": rfc3339(utc_in(3)), "jobTemplate": job_template(fail=True)})
    pruned = {"runAt": rfc3339(utc_in(3)), "jobTemplate": job_template(), "successfulJobsHistoryLimit": 0}
    create_sd(cluster, second, "pruned", pruned)
    missing = {"runAt": rfc3339(utc_in(3600)), "serviceAccountName": "absent", "jobTemplate": job_template()}
    create_sd(cluster, second, "no-account", missing)
    # A pod that admission refuses: the run fails from the Job's FailedCreate Events (`list` on events).
    apply(cluster, [cpu_cap(second)])
    create_sd(cluster, second, "refused", {"runAt": rfc3339(utc_in(3)), "jobTemplate": greedy_template()})

    def result(namespace: str, name: str) -> str | None:
        run = last_run(cluster, namespace, name)
        return None if run is None else str(run["result"])

    wait_until("the run to succeed", lambda: result(first, "succeeds") == "Succeeded", 90)
    failed = wait_until("the failing run to fail", lambda: last_run(cluster, first, "fails"), 90)
    assert failed["result"] == "Failed", failed
    wait_until("the pruned run to succeed", lambda: result(second, "pruned") == "Succeeded", 90)
    wait_until("the pruned run's Job to be deleted", lambda: not jobs_of(cluster, second, "pruned"), 60)
    refused = wait_until("the taken name to be recorded", lambda: last_run(cluster, second, "taken"), 90)
    assert refused["result"] == "Failed", refused

    refused_pod = wait_until(
        "the refused pod's run to fail", lambda: last_run(cluster, second, "refused"), 90
    )
    assert (refused_pod["result"], refused_pod.get("reason")) == ("Failed", "PodCreationRefused"), refused_pod

    def account_missing() -> bool:
        conditions = (read_sd(cluster, second, "no-account").get("status") or {}).get("conditions") or []
        return any(c.get("reason") == "ServiceAccountNotFound" for c in conditions)

    wait_until("the missing service account to be reported", account_missing, 60)


# --------------------------------------------------------------------------------------- cluster-wide


@pytest.fixture
def cluster_wide(crds: Cluster) -> Iterator[list[dict[str, Any]]]:
    """manifests/ but the Deployment, applied (as test_install's `installed`)."""
    with applied(crds, render(crds)) as documents:
        yield documents


def test_the_cluster_wide_rbac_grants_exactly_what_the_operator_asks_for(
    cluster: Cluster,
    cluster_wide: list[dict[str, Any]],
    namespace: str,
    start_operator: StartOperator,
    tmp_path: Path,
) -> None:
    window = AuditWindow(cluster)
    with fresh_namespace(cluster, f"{namespace[:50]}-b") as second:
        for served in (namespace, second):
            prepare(cluster, served)
        replicas = local_replicas(cluster, cluster_wide, namespace, start_operator, tmp_path)
        drive_every_path(cluster, namespace, second, cluster_wide=True)
        for replica in replicas:
            replica.stop()
    # The audit log first: it names each unused rule and each missing or denied request.
    window.assert_matches(cluster_wide)
    for replica in replicas:
        assert not rbac_denials(replica.log()), replica.log()[-3000:]


# ------------------------------------------------------------------------------------------ namespaced


def namespaced_rendering(cluster: Cluster, served: tuple[str, str]) -> list[dict[str, Any]]:
    """examples/namespaced rendered, its example namespaces swapped for ``served``; plus the Role,
    RoleBinding and KopfPeering of manifests/namespaced/watched-namespace in each of them."""
    documents = render_dir(cluster, NAMESPACED)
    container = operator_container(documents)
    flags = [f"--namespace={name}" for name in EXAMPLE_NAMESPACES]
    assert [a for a in container["args"] if a.startswith("--namespace")] == flags
    assert "--all-namespaces" not in container["args"]
    args = container["args"]
    args[:] = [a if a not in flags else f"--namespace={served[flags.index(a)]}" for a in args]
    for name in served:
        for document in render_dir(cluster, WATCHED_NAMESPACE):
            documents.append({**document, "metadata": {**document["metadata"], "namespace": name}})
    return documents


def render_dir(cluster: Cluster, directory: Path) -> list[dict[str, Any]]:
    text = cluster.kubectl("kustomize", str(directory)).stdout
    return [d for d in yaml.safe_load_all(text) if d]


def test_the_namespaced_install_holds_no_cluster_wide_right_of_the_operator(cluster: Cluster) -> None:
    documents = render_dir(cluster, NAMESPACED)
    bindings = [d for d in documents if d["kind"] == "ClusterRoleBinding"]
    assert not [b for b in bindings if any(s.get("name") == ACCOUNT for s in b.get("subjects") or [])]
    kinds = {d["kind"] for d in documents}
    assert "ClusterKopfPeering" not in kinds
    assert JOB_POLICY not in {d["metadata"]["name"] for d in documents if "Admission" in d["kind"]}
    # What it keeps from manifests/: the requester-rights policy, the users' roles, the same Deployment.
    only(documents, "ValidatingAdmissionPolicy", "sundial-requester-rights")
    only(documents, "ClusterRole", "sundial-edit")
    cluster_wide_args = operator_container(render(cluster))["args"]
    namespaced_args = operator_container(documents)["args"]
    assert [a for a in namespaced_args if not a.startswith("--namespace=")] == [
        a for a in cluster_wide_args if a != "--all-namespaces"
    ]


@pytest.fixture
def served(cluster: Cluster, namespace: str) -> Iterator[tuple[str, str]]:
    with fresh_namespace(cluster, f"{namespace[:50]}-b") as second:
        yield namespace, second


def test_the_namespaced_install_serves_its_namespaces_with_exactly_its_rights_and_no_other(
    cluster: Cluster,
    crds: Cluster,
    served: tuple[str, str],
    start_operator: StartOperator,
    tmp_path: Path,
) -> None:
    first, second = served
    documents = namespaced_rendering(cluster, served)
    window = AuditWindow(cluster)
    with fresh_namespace(cluster, f"{first[:50]}-c") as third, applied(crds, documents):
        for name in (*served, third):
            cluster.kubectl("create", "serviceaccount", "sundial-deployer", "-n", name)
        # Created first and due first: if the operator served this namespace, it would run before the others.
        create_sd(cluster, third, "not-served", {"runAt": rfc3339(utc_in(2)), "jobTemplate": job_template()})
        replicas = local_replicas(cluster, documents, first, start_operator, tmp_path)
        drive_every_path(cluster, first, second)
        for replica in replicas:
            replica.stop()
        assert not (read_sd(cluster, third, "not-served").get("status") or {}), (
            "the third namespace was served"
        )
        assert not jobs_of(cluster, third, "not-served")
        for verb, resource in (
            ("create", "jobs.batch"),
            ("list", "pods"),
            ("watch", "scheduleddeployments.sundial.dev"),
        ):
            assert can_i(cluster, verb, resource, "-n", third) == "no", (verb, resource, third)
            assert can_i(cluster, verb, resource, "-n", first) == "yes", (verb, resource, first)
        assert can_i(cluster, "list", "jobs.batch", "--all-namespaces") == "no"
        assert can_i(cluster, "list", "customresourcedefinitions.apiextensions.k8s.io") == "no"
        window.assert_matches(documents)
        for replica in replicas:
            assert not rbac_denials(replica.log()), replica.log()[-3000:]


# -------------------------------------------------------------------------- where it may create Jobs


def operator_may_create_jobs(cluster: Cluster, namespace: str) -> bool:
    """A server-side dry run of a Job created as the operator's account (impersonated): admitted or not."""
    body = taken_job(namespace, "probe", utc_in(0))
    result = cluster.kubectl(
        "create", f"--as={USER}", "--dry-run=server", "-f", "-", input=json.dumps(body), check=False
    )
    assert result.returncode == 0 or JOB_POLICY in result.stderr, result.stderr
    return result.returncode == 0


def test_the_operator_creates_jobs_only_in_namespaces_labelled_for_it(
    cluster: Cluster,
    cluster_wide: list[dict[str, Any]],
    namespace: str,
    start_operator: StartOperator,
    tmp_path: Path,
) -> None:
    with fresh_namespace(cluster, f"{namespace[:50]}-off") as unlabelled:
        prepare(cluster, namespace)
        cluster.kubectl("create", "serviceaccount", "sundial-deployer", "-n", unlabelled)
        # The API server's policy informer has the binding once a dry run as the operator is refused.
        wait_until(
            "the Job policy to be enforced", lambda: not operator_may_create_jobs(cluster, unlabelled), 30
        )
        assert operator_may_create_jobs(cluster, namespace)

        local_replicas(cluster, cluster_wide, namespace, start_operator, tmp_path)
        create_sd(
            cluster, unlabelled, "refused", {"runAt": rfc3339(utc_in(3)), "jobTemplate": job_template()}
        )
        create_sd(cluster, namespace, "allowed", {"runAt": rfc3339(utc_in(3)), "jobTemplate": job_template()})
        refused = wait_until(
            "the refused run to be recorded", lambda: last_run(cluster, unlabelled, "refused"), 60
        )
        assert refused["result"] == "Failed" and refused["reason"] == "Forbidden", refused
        assert JOB_POLICY in refused["message"], refused
        assert f"kubectl label namespace {unlabelled} {DEPLOYS_LABEL}" in refused["message"], refused
        assert not jobs_of(cluster, unlabelled, "refused")
        allowed = wait_until(
            "the labelled namespace's run", lambda: last_run(cluster, namespace, "allowed"), 60
        )
        assert allowed["result"] == "Succeeded", allowed

        # Anyone else's Jobs are not the policy's business.
        cluster.kubectl(
            "create", "job", "someone-elses", "-n", unlabelled, "--image=registry.example/theirs:1"
        )

        # Without the binding, the operator's Job goes through: the refusal above was the policy's.
        cluster.kubectl("delete", "validatingadmissionpolicybinding", JOB_POLICY)
        wait_until("the Job policy to be lifted", lambda: operator_may_create_jobs(cluster, unlabelled), 30)
        create_sd(
            cluster, unlabelled, "unbound", {"runAt": rfc3339(utc_in(3)), "jobTemplate": job_template()}
        )
        unbound = wait_until(
            "the run without the binding", lambda: last_run(cluster, unlabelled, "unbound"), 60
        )
        assert unbound["result"] == "Succeeded", unbound
        assert jobs_of(cluster, unlabelled, "unbound")
