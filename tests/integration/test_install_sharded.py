"""The two-shard install (``examples/sharded``), proven on the API server and under exactly its RBAC.

The rendering must agree with the names the operator derives (`sundial.api.shards`): each Deployment's
``--shard``, the peering object its ``--peering`` becomes, the Lease it signs, and the resourceNames the RBAC
grants on both; the shards' pods must be selected apart. Then everything but the Deployments is applied for
real and each shard runs as its Deployment would run it (its own arguments, ``--in-cluster`` swapped for a
TokenRequest token of the shipped ServiceAccount), each takes its own Lease, and a run in a namespace of
each shard succeeds, fired by that shard alone. A Forbidden in either log fails the test.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from test_install import (
    ACCOUNT,
    SYSTEM,
    applied,
    enable_deploys,
    local_arguments,
    pod_environment,
    quick_job,
    rbac_denials,
    succeeded,
)
from test_operator_rights import USER, AuditWindow

from conftest import (
    REPO,
    Cluster,
    OperatorProcess,
    fresh_namespace,
    lease_holder,
    service_account_kubeconfig,
    wait_until,
)
from rbac_audit import compare, grants_for
from sdhelpers import StartOperator, create_sd, jobs_of, rfc3339, utc_in
from sundial.api.shards import Shard, lease_name, parse_shard, shard_of

SHARDED = REPO / "examples" / "sharded"
SHARDS = [Shard(0, 2), Shard(1, 2)]


def render_sharded(cluster: Cluster) -> list[dict[str, Any]]:
    text = cluster.kubectl("kustomize", str(SHARDED)).stdout
    return [document for document in yaml.safe_load_all(text) if document]


def of_kind(documents: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in documents if d["kind"] == kind}


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    pod = deployment["spec"]["template"]["spec"]
    return dict(next(c for c in pod["containers"] if c["name"] == "operator"))


def shard_argument(args: list[str]) -> Shard:
    [value] = [arg.removeprefix("--shard=") for arg in args if arg.startswith("--shard=")]
    return parse_shard(value)


def resource_names(role: dict[str, Any], resource: str) -> set[str]:
    [rule] = [r for r in role["rules"] if resource in r["resources"] and r.get("resourceNames")]
    return set(rule["resourceNames"])


def test_the_sharded_rendering_names_what_each_shard_peers_through_and_signs(cluster: Cluster) -> None:
    documents = render_sharded(cluster)
    deployments = of_kind(documents, "Deployment")
    assert set(deployments) == {f"sundial-{shard.suffix}" for shard in SHARDS}
    peerings = set(of_kind(documents, "ClusterKopfPeering"))
    selectors = []
    for name, deployment in deployments.items():
        args = container(deployment)["args"]
        shard = shard_argument(args)
        assert name == f"sundial-{shard.suffix}"
        assert shard.peering_name(args[args.index("--peering") + 1]) in peerings
        env = {e["name"]: e.get("value") for e in container(deployment)["env"]}
        assert env["SUNDIAL_DEPLOYER_IMAGE"] == container(deployment)["image"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert labels["sundial.dev/shard"] == shard.suffix
        selectors.append(deployment["spec"]["selector"]["matchLabels"])
    assert peerings == {shard.peering_name("sundial") for shard in SHARDS}
    assert selectors[0] != selectors[1] and not selectors[0].items() <= selectors[1].items()
    leases = {lease_name(shard) for shard in SHARDS}
    operator_role = of_kind(documents, "ClusterRole")["sundial-operator"]
    assert resource_names(operator_role, "leases") == leases
    assert resource_names(operator_role, "clusterkopfpeerings") == peerings
    assert resource_names(of_kind(documents, "Role")["sundial-operator-lease"], "leases") == leases
    pdbs = of_kind(documents, "PodDisruptionBudget")
    assert {pdb["spec"]["selector"]["matchLabels"]["sundial.dev/shard"] for pdb in pdbs.values()} == {
        shard.suffix for shard in SHARDS
    }


def namespace_of_each_shard(stem: str) -> list[str]:
    """A fresh name for each of the two shards, in shard order."""
    names: dict[int, str] = {}
    while len(names) < len(SHARDS):
        name = f"{stem}-{uuid.uuid4().hex[:6]}"
        names.setdefault(shard_of(name, len(SHARDS)), name)
    return [names[index] for index in range(len(SHARDS))]


def test_both_shards_run_and_fire_under_exactly_the_sharded_rbac(
    crds: Cluster, start_operator: StartOperator, tmp_path: Path
) -> None:
    cluster = crds
    documents = render_sharded(cluster)
    with applied(cluster, documents):
        window = AuditWindow(cluster)
        operators: dict[Shard, OperatorProcess] = {}
        try:
            run_both_shards(cluster, documents, start_operator, tmp_path, operators)
            if cluster.audit_log is not None:
                # Every request of the shards was allowed by a rule of the rendering, and each shard's Lease
                # and peering object was written through the grant by name (not every grant is used here:
                # test_operator_rights.py walks every code path, under the unsharded install).
                requests = window.requests()
                result = compare(grants_for(documents, USER), requests)
                assert not result.missing, result.report()
                print(f"audit: {len(requests)} requests of the two shards, each allowed by a rendered rule")
                unused = {(g.resource, g.verb, g.names) for g in result.unused}
                for grant in (
                    ("leases", "patch", frozenset(lease_name(shard) for shard in SHARDS)),
                    ("clusterkopfpeerings", "patch", frozenset(s.peering_name("sundial") for s in SHARDS)),
                ):
                    assert grant not in unused, f"no shard used {grant}"
        finally:
            # Before the namespace goes: no finalizer may be left on a shard's Lease to hold it.
            for operator in operators.values():
                operator.stop()
            for shard in SHARDS:
                cluster.kubectl(
                    "patch", "lease", lease_name(shard), "-n", SYSTEM, "--type=merge",
                    "-p", '{"metadata":{"finalizers":null}}', check=False,
                )  # fmt: skip


def run_both_shards(
    cluster: Cluster,
    documents: list[dict[str, Any]],
    start_operator: StartOperator,
    tmp_path: Path,
    operators: dict[Shard, OperatorProcess],
) -> None:
    token = service_account_kubeconfig(cluster, SYSTEM, ACCOUNT, tmp_path / "sundial.kubeconfig")
    for name, deployment in of_kind(documents, "Deployment").items():
        args, _ = local_arguments(container(deployment)["args"], token)
        env = pod_environment(container(deployment), f"{name}-pod")
        env["SUNDIAL_DEPLOYER_IMAGE"] = "sundial.local/deployer:dev"
        shard = shard_argument(args)
        operators[shard] = start_operator(
            SYSTEM,
            args=args,
            env_extra=env,
            identity=env["POD_NAME"],
            lease_namespace=SYSTEM,
            lease_name=lease_name(shard),
        )
    for shard in SHARDS:
        assert lease_holder(cluster, SYSTEM, lease_name(shard)) == f"sundial-{shard.suffix}-pod"

    namespaces = namespace_of_each_shard(f"sharded-{uuid.uuid4().hex[:4]}")
    with fresh_namespace(cluster, namespaces[0]), fresh_namespace(cluster, namespaces[1]):
        for namespace in namespaces:
            enable_deploys(cluster, namespace)
            account = client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="sundial-deployer"))
            cluster.core().create_namespaced_service_account(namespace, account)
            create_sd(cluster, namespace, "sharded", {"runAt": rfc3339(utc_in(4)), **quick_job(cluster)})
        for namespace in namespaces:
            wait_until(
                f"the run in {namespace} to succeed",
                lambda n=namespace: succeeded(cluster, n, "sharded"),
                60,
            )
            assert len(jobs_of(cluster, namespace, "sharded")) == 1
        for shard, operator in operators.items():
            log = operator.log()
            assert not rbac_denials(log), log[-3000:]
            fired = set(re.findall(r"fired ([a-z0-9-]+)/", log))
            assert fired == {namespaces[shard.index]}, f"shard {shard} fired in {fired}"
