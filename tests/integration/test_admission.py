"""The shipped admission policy, proven by impersonation on the real API server (docs/security.md).

A tenant bound only to ``sundial-edit`` in a namespace must get nothing through a ScheduledDeployment that
they could not do themselves: each escalation (a jobTemplate, another service account, an ECS credentials
Secret, a dependsOn on an object they may not update) is refused with a message that names the missing
right. A requester who holds that right is allowed; an update that leaves those fields alone is allowed;
the operator's status writes are not checked at all. Then the policy's binding is deleted and the same
escalation goes through, which shows that the refusals came from the policy and that these tests can fail.

Users exist only as names: kubectl's ``--as`` makes the admin kubeconfig impersonate them, and the API
server authorizes each request, and the policy's ``authorizer``, as that user.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client, config
from test_install import render

from conftest import Cluster, wait_until
from sdhelpers import job_template, rfc3339, utc_in
from sundial.api.keys import API_VERSION, GROUP, KIND, PLURAL, VERSION

POLICY = "sundial-requester-rights"
TENANT = "tenant@example.test"  # sundial-edit only
TRUSTED = "trusted@example.test"  # sundial-edit, and the rights each escalation needs
SCOPED = "scoped@example.test"  # may create ScheduledDeployments but update only its own
OPERATOR = "system:serviceaccount:sundial-system:sundial"
SECRET = "ecs-credentials"
THEIRS = "theirs"  # a ScheduledDeployment the scoped user may not update
OTHER_ACCOUNT = "release-admin"
RESOURCE = f"{PLURAL}.sundial.dev"
POLICY_KINDS = ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")


def templated() -> dict[str, Any]:
    return {"runAt": rfc3339(utc_in(3600)), "jobTemplate": job_template()}


def deployment_target() -> dict[str, Any]:
    return {"runAt": rfc3339(utc_in(3600)), "deployment": {"name": "api", "container": "api", "image": "a:1"}}


def ecs_target(secret: str) -> dict[str, Any]:
    ecs = {"cluster": "c", "service": "s", "container": "c", "image": "a:1", "region": "eu-central-1"}
    return {"runAt": rfc3339(utc_in(3600)), "ecsService": {**ecs, "credentialsSecret": secret}}


def patch_target(api_version: str, kind: str, name: str) -> dict[str, Any]:
    patch = {
        "apiVersion": api_version,
        "kind": kind,
        "name": name,
        "mergePatch": {"spec": {"suspend": False}},
    }
    return {"runAt": rfc3339(utc_in(3600)), "patch": patch}


def manifest(namespace: str, name: str, spec: dict[str, Any]) -> str:
    body = {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name, "namespace": namespace}}
    return yaml.safe_dump({**body, "spec": spec})


def create_as(cluster: Cluster, user: str, namespace: str, name: str, spec: dict[str, Any], *dry: str) -> Any:
    """``kubectl create`` as ``user``; the completed process, so that a refusal's message can be read."""
    return cluster.kubectl(
        "create", f"--as={user}", *dry, "-f", "-", input=manifest(namespace, name, spec), check=False
    )


def patch_as(
    cluster: Cluster, user: str, namespace: str, name: str, patch: dict[str, Any], *extra: str
) -> Any:
    return cluster.kubectl(
        "patch",
        RESOURCE,
        name,
        "-n",
        namespace,
        f"--as={user}",
        "--type=merge",
        "-p",
        json.dumps(patch),
        *extra,
        check=False,
    )


def refused(result: Any, *fragments: str) -> bool:
    """The request was denied by the policy, with a message holding every fragment."""
    return result.returncode != 0 and POLICY in result.stderr and all(f in result.stderr for f in fragments)


def policy_enforced(cluster: Cluster, namespace: str) -> bool:
    """The API server's policy informer has the binding: a tenant's dry-run jobTemplate is refused."""
    spec = templated()
    return refused(create_as(cluster, TENANT, namespace, "probe", spec, "--dry-run=server"), "jobTemplate")


def policy_lifted(cluster: Cluster, namespace: str) -> bool:
    spec = templated()
    return create_as(cluster, TENANT, namespace, "probe", spec, "--dry-run=server").returncode == 0


@pytest.fixture
def shipped(crds: Cluster) -> Iterator[list[dict[str, Any]]]:
    """The policy, its binding and the ClusterRoles the users are bound to, from the manifests' rendering."""
    documents = [
        d
        for d in render(crds)
        if (d["kind"] in POLICY_KINDS and d["metadata"]["name"] == POLICY)
        or (d["kind"] == "ClusterRole" and d["metadata"]["name"] in ("sundial-edit", "sundial-operator"))
    ]
    assert {d["kind"] for d in documents} == {*POLICY_KINDS, "ClusterRole"}, "the policy is in manifests/"
    crds.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump_all(documents))
    yield documents
    crds.kubectl("delete", "--ignore-not-found", "-f", "-", input=yaml.safe_dump_all(documents), check=False)


def grant(cluster: Cluster, namespace: str, user: str, role: str, *rule: str) -> None:
    """Role ``role`` with ``rule`` (``kubectl create role`` flags), bound to ``user`` in ``namespace``."""
    cluster.kubectl("create", "role", role, "-n", namespace, *rule)
    cluster.kubectl("create", "rolebinding", role, "-n", namespace, f"--role={role}", f"--user={user}")


def bind_cluster_role(cluster: Cluster, namespace: str, user: str, cluster_role: str) -> None:
    binding = f"{cluster_role}-{user.split('@')[0].replace(':', '-')}"
    cluster.kubectl(
        "create", "rolebinding", binding, "-n", namespace, f"--clusterrole={cluster_role}", f"--user={user}"
    )


@pytest.fixture
def tenancy(cluster: Cluster, namespace: str, shipped: list[dict[str, Any]]) -> str:
    """``namespace`` with the users bound, the Secret, the other account and someone else's
    ScheduledDeployment; returned once the API server enforces the policy."""
    bind_cluster_role(cluster, namespace, TENANT, "sundial-edit")
    bind_cluster_role(cluster, namespace, TRUSTED, "sundial-edit")
    grant(cluster, namespace, TRUSTED, "create-jobs", "--verb=create", "--resource=jobs.batch")
    grant(
        cluster,
        namespace,
        TRUSTED,
        "read-secret",
        "--verb=get",
        "--resource=secrets",
        f"--resource-name={SECRET}",
    )
    grant(cluster, namespace, SCOPED, "create-sds", "--verb=create", f"--resource={RESOURCE}")
    grant(
        cluster,
        namespace,
        SCOPED,
        "own-sd",
        "--verb=get,update,patch",
        f"--resource={RESOURCE}",
        "--resource-name=mine",
    )
    bind_cluster_role(cluster, namespace, OPERATOR, "sundial-operator")
    cluster.kubectl(
        "create", "secret", "generic", SECRET, "-n", namespace, "--from-literal=AWS_ACCESS_KEY_ID=x"
    )
    cluster.kubectl("create", "serviceaccount", OTHER_ACCOUNT, "-n", namespace)
    cluster.kubectl("create", "-f", "-", input=manifest(namespace, THEIRS, deployment_target()))
    wait_until("the API server to enforce the policy", lambda: policy_enforced(cluster, namespace), 30)
    return namespace


# ------------------------------------------------------------------------------------------------- tests


def test_the_policy_checks_creates_and_updates_of_the_main_resource_only(
    shipped: list[dict[str, Any]],
) -> None:
    [policy] = [d for d in shipped if d["kind"] == "ValidatingAdmissionPolicy"]
    [rule] = policy["spec"]["matchConstraints"]["resourceRules"]
    # Not scheduleddeployments/status: the operator writes only that subresource.
    assert (rule["resources"], sorted(rule["operations"])) == (["scheduleddeployments"], ["CREATE", "UPDATE"])
    [binding] = [d for d in shipped if d["kind"] == "ValidatingAdmissionPolicyBinding"]
    assert binding["spec"] == {"policyName": POLICY, "validationActions": ["Deny"]}


def test_a_tenant_with_only_sundial_edit_is_refused_each_escalation_with_what_to_do(
    cluster: Cluster, tenancy: str
) -> None:
    ns = tenancy
    template = create_as(cluster, TENANT, ns, "t", templated())
    assert refused(
        template,
        "spec.jobTemplate",
        f"may not create Jobs (batch) in namespace {ns}",
        "ask for a Role that grants create on jobs",
    ), template.stderr
    account = create_as(
        cluster, TENANT, ns, "a", {**deployment_target(), "serviceAccountName": OTHER_ACCOUNT}
    )
    assert refused(
        account,
        f"spec.serviceAccountName {OTHER_ACCOUNT}",
        "may not create Jobs",
        "leave serviceAccountName out",
    ), account.stderr
    secret = create_as(cluster, TENANT, ns, "s", ecs_target(SECRET))
    assert refused(secret, f"Secret {SECRET}", f"may not get that Secret in namespace {ns}"), secret.stderr
    # The control: what sundial-edit is for still works, and the default account needs no Job rights.
    plain = create_as(
        cluster, TENANT, ns, "plain", {**deployment_target(), "serviceAccountName": "sundial-deployer"}
    )
    assert plain.returncode == 0, plain.stderr


def test_a_requester_who_holds_each_right_is_allowed(cluster: Cluster, tenancy: str) -> None:
    ns = tenancy
    for name, spec in {
        "t": templated(),
        "a": {**deployment_target(), "serviceAccountName": OTHER_ACCOUNT},
        "s": ecs_target(SECRET),
        "d": {**deployment_target(), "dependsOn": {"name": THEIRS}},
    }.items():
        result = create_as(cluster, TRUSTED, ns, name, spec)
        assert result.returncode == 0, f"{name}: {result.stderr}"
    # Get on one Secret is not get on another.
    other = create_as(cluster, TRUSTED, ns, "s2", ecs_target("someone-elses"))
    assert refused(other, "Secret someone-elses"), other.stderr


def grant_patch(cluster: Cluster, namespace: str, user: str, group: str, resource: str, name: str) -> None:
    """patch on one object of a resource that need not be served (kubectl create role would ask discovery)."""
    role = f"patch-{resource}-{name}"
    body = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": role, "namespace": namespace},
        "rules": [
            {"apiGroups": [group], "resources": [resource], "resourceNames": [name], "verbs": ["patch"]}
        ],
    }
    cluster.kubectl("create", "-f", "-", input=yaml.safe_dump(body))
    cluster.kubectl("create", "rolebinding", role, "-n", namespace, f"--role={role}", f"--user={user}")


def test_a_patch_target_needs_the_requesters_own_right_to_patch_that_object(
    cluster: Cluster, tenancy: str
) -> None:
    """The deploy Job may change any field of the object a patch target names (a Deployment's pod template,
    say), so the requester must be allowed to patch it themselves. The resource comes from the kind as
    Kubernetes guesses plurals: Deployment, GitRepository (-ies) and Kustomization here."""
    ns = tenancy
    cases = [
        ("apps/v1", "Deployment", "apps", "deployments"),
        ("source.toolkit.fluxcd.io/v1", "GitRepository", "source.toolkit.fluxcd.io", "gitrepositories"),
        ("kustomize.toolkit.fluxcd.io/v1", "Kustomization", "kustomize.toolkit.fluxcd.io", "kustomizations"),
    ]
    for index, (api_version, kind, group, resource) in enumerate(cases):
        spec = patch_target(api_version, kind, "release")
        result = create_as(cluster, TENANT, ns, f"p{index}", spec)
        assert refused(
            result,
            f"spec.patch changes {kind} release",
            f"you may not patch {resource}.{group} release in namespace {ns}",
            "ask for a Role that grants patch on it",
        ), result.stderr
        grant_patch(cluster, ns, TRUSTED, group, resource, "release")
        allowed = create_as(cluster, TRUSTED, ns, f"p{index}", spec)
        assert allowed.returncode == 0, f"{kind}: {allowed.stderr}"
        # patch on one object is not patch on another of its kind
        other = create_as(cluster, TRUSTED, ns, f"q{index}", patch_target(api_version, kind, "other"))
        assert refused(other, f"you may not patch {resource}.{group} other"), other.stderr
    # The core group: a ConfigMap (v1, no group).
    core = create_as(cluster, TENANT, ns, "core", patch_target("v1", "ConfigMap", "settings"))
    assert refused(core, f"you may not patch configmaps settings in namespace {ns}"), core.stderr


def test_depends_on_needs_update_on_the_object_it_names(cluster: Cluster, tenancy: str) -> None:
    ns = tenancy
    theirs = create_as(cluster, SCOPED, ns, "mine", {**deployment_target(), "dependsOn": {"name": THEIRS}})
    assert refused(
        theirs,
        f"ScheduledDeployment {THEIRS}",
        f"may neither update it nor depend on it in namespace {ns}",
        f"ask its owner for the verb depend on it (a Role with resourceNames: [{THEIRS}])",
    ), theirs.stderr
    mine = create_as(cluster, SCOPED, ns, "mine", deployment_target())
    assert mine.returncode == 0, mine.stderr
    # Adding the dependsOn later is the same escalation, refused on update.
    later = patch_as(cluster, SCOPED, ns, "mine", {"spec": {"dependsOn": {"name": THEIRS}}})
    assert refused(later, f"ScheduledDeployment {THEIRS}"), later.stderr


def allow_depending(cluster: Cluster, namespace: str, user: str, target: str) -> None:
    """The target's owner opts in: the custom verb ``depend`` on ``target`` only, bound to ``user``."""
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": f"depend-on-{target}", "namespace": namespace},
        "rules": [
            {
                "apiGroups": ["sundial.dev"],
                "resources": [PLURAL],
                "resourceNames": [target],
                "verbs": ["depend"],
            }
        ],
    }
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(role))
    cluster.kubectl(
        "create",
        "rolebinding",
        f"depend-on-{target}",
        "-n",
        namespace,
        f"--role=depend-on-{target}",
        f"--user={user}",
    )


def test_the_target_of_a_depends_on_opts_in_with_the_depend_verb(cluster: Cluster, tenancy: str) -> None:
    ns = tenancy
    cluster.kubectl("create", "-f", "-", input=manifest(ns, "unrelated", deployment_target()))
    allow_depending(cluster, ns, SCOPED, THEIRS)
    invited = create_as(cluster, SCOPED, ns, "mine", {**deployment_target(), "dependsOn": {"name": THEIRS}})
    assert invited.returncode == 0, invited.stderr
    # The verb names one object: it grants no update on it, and no dependency on any other.
    update = patch_as(cluster, SCOPED, ns, THEIRS, {"spec": {"suspend": True}})
    assert update.returncode != 0 and "forbidden" in update.stderr.lower(), update.stderr
    other = patch_as(cluster, SCOPED, ns, "mine", {"spec": {"dependsOn": {"name": "unrelated"}}})
    assert refused(other, "ScheduledDeployment unrelated"), other.stderr


def test_an_update_is_checked_only_for_what_it_changes(cluster: Cluster, tenancy: str) -> None:
    ns = tenancy
    admin_made = {**templated(), "serviceAccountName": OTHER_ACCOUNT}
    cluster.kubectl("create", "-f", "-", input=manifest(ns, "admin-made", admin_made))
    moved = patch_as(cluster, TENANT, ns, "admin-made", {"spec": {"runAt": rfc3339(utc_in(7200))}})
    assert moved.returncode == 0, moved.stderr
    relabelled = patch_as(cluster, TENANT, ns, "admin-made", {"metadata": {"labels": {"team": "shop"}}})
    assert relabelled.returncode == 0, relabelled.stderr

    changed = job_template()
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "registry.example/task:2"
    template = patch_as(cluster, TENANT, ns, "admin-made", {"spec": {"jobTemplate": changed}})
    assert refused(template, "spec.jobTemplate"), template.stderr
    account = patch_as(
        cluster, TENANT, ns, "admin-made", {"spec": {"serviceAccountName": "sundial-deployer-2"}}
    )
    assert refused(account, "spec.serviceAccountName sundial-deployer-2"), account.stderr


def test_taking_an_objects_approval_away_needs_someone_who_may_approve_it(
    cluster: Cluster, tenancy: str
) -> None:
    ns = tenancy
    guarded = {**deployment_target(), "approval": {"required": True, "groups": ["release-managers"]}}
    cluster.kubectl("create", "-f", "-", input=manifest(ns, "guarded", guarded))
    # An editor may move the run, but neither turn approval off nor change whose approval counts.
    moved = patch_as(cluster, TENANT, ns, "guarded", {"spec": {"runAt": rfc3339(utc_in(7200))}})
    assert moved.returncode == 0, moved.stderr
    off = patch_as(cluster, TENANT, ns, "guarded", {"spec": {"approval": {"required": False}}})
    assert refused(off, "spec.approval", "a member of release-managers"), off.stderr
    widened = patch_as(cluster, TENANT, ns, "guarded", {"spec": {"approval": {"groups": ["developers"]}}})
    assert refused(widened, "spec.approval"), widened.stderr
    removed = patch_as(cluster, TENANT, ns, "guarded", {"spec": {"approval": None}})
    assert refused(removed, "spec.approval"), removed.stderr
    # A release manager (the same editor, authenticated with that group) may.
    member = patch_as(
        cluster,
        TENANT,
        ns,
        "guarded",
        {"spec": {"approval": {"required": False}}},
        "--as-group=release-managers",
    )
    assert member.returncode == 0, member.stderr
    # Turning approval on is never refused: it only adds a check.
    on = patch_as(cluster, TENANT, ns, "guarded", {"spec": {"approval": {"required": True}}})
    assert on.returncode == 0, on.stderr


def test_the_operator_writes_status_unchecked(cluster: Cluster, tenancy: str) -> None:
    ns = tenancy
    every_escalation = {**templated(), "serviceAccountName": OTHER_ACCOUNT, "dependsOn": {"name": THEIRS}}
    cluster.kubectl("create", "-f", "-", input=manifest(ns, "templated", every_escalation))
    # The operator could not have created this spec (it may not update ScheduledDeployments), and its
    # status writes must pass on any object: they are another resource, which the policy does not match.
    # As the operator writes it: one merge patch, no read first (kubectl patch would GET the status too, a
    # right the operator neither needs nor has).
    status = {"status": {"observedGeneration": 1}}
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    api.set_default_header("Impersonate-User", OPERATOR)
    with api:
        written = client.CustomObjectsApi(api).patch_namespaced_custom_object_status(
            GROUP, VERSION, ns, PLURAL, "templated", status
        )
    assert written["status"]["observedGeneration"] == 1


def test_without_the_binding_the_escalation_goes_through(cluster: Cluster, tenancy: str) -> None:
    ns = tenancy
    cluster.kubectl("delete", "validatingadmissionpolicybinding", POLICY)
    wait_until("the API server to drop the binding", lambda: policy_lifted(cluster, ns), 30)
    for name, spec in {
        "t": templated(),
        "a": {**deployment_target(), "serviceAccountName": OTHER_ACCOUNT},
        "s": ecs_target(SECRET),
    }.items():
        result = create_as(cluster, TENANT, ns, name, spec)
        assert result.returncode == 0, f"{name}: the tenant's escalation went through: {result.stderr}"
