"""Approvals on the real API server: a run that waits for its approval and starts once a release manager
gives it, one whose approval never comes, and approvals forged for someone else, refused by the shipped
admission policy.

Users exist only as names: kubectl's ``--as``/``--as-group`` makes the admin kubeconfig impersonate them,
and the API server authenticates the request as that user with those groups, exactly as it would a real
one. Their groups are read back from a SelfSubjectReview (``kubectl auth whoami``) made as them, so the
test writes what ``kubectl sundial approve`` writes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from test_install import render

from conftest import Cluster, wait_until
from sdhelpers import StartOperator, condition, create_sd, job_template, jobs_of, read_sd, rfc3339, utc_in
from sundial.api.approvals import APPROVAL_KIND, APPROVAL_PLURAL
from sundial.api.keys import ANNOTATION_APPROVED_BY, API_VERSION, GROUP, VERSION

POLICY = "sundial-approver-identity"
POLICY_KINDS = ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")
MANAGER = ("alice@example.test", "release-managers")
OUTSIDER = ("mallory@example.test", "developers")


def impersonating(user: tuple[str, str]) -> list[str]:
    return [f"--as={user[0]}", f"--as-group={user[1]}"]


def groups_of(cluster: Cluster, user: tuple[str, str]) -> list[str]:
    """The user's groups as the API server authenticates them: the impersonated one, system:authenticated."""
    review = json.loads(cluster.kubectl("auth", "whoami", "-o", "json", *impersonating(user)).stdout)
    return list(review["status"]["userInfo"].get("groups") or [])


def approval(namespace: str, target: str, instant: Any, approver: str, groups: list[str], name: str) -> str:
    body = {
        "apiVersion": API_VERSION,
        "kind": APPROVAL_KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "scheduledDeployment": target,
            "scheduledTime": rfc3339(instant),
            "approver": approver,
            "approverGroups": groups,
            "comment": "CAB-1234",
        },
    }
    return yaml.safe_dump(body)


def approve_as(cluster: Cluster, user: tuple[str, str], document: str, *dry: str) -> Any:
    return cluster.kubectl("create", *impersonating(user), *dry, "-f", "-", input=document, check=False)


@pytest.fixture
def approvers(crds: Cluster, deployer_namespace: str) -> Iterator[str]:
    """The shipped approval policy and the sundial-approver role, bound to both users in the namespace."""
    namespace = deployer_namespace
    documents = [
        d
        for d in render(crds)
        if (d["kind"] in POLICY_KINDS and d["metadata"]["name"] == POLICY)
        or (d["kind"] == "ClusterRole" and d["metadata"]["name"] == "sundial-approver")
    ]
    assert {d["kind"] for d in documents} == {*POLICY_KINDS, "ClusterRole"}, "the policy is in manifests/"
    crds.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump_all(documents))
    for user, _ in (MANAGER, OUTSIDER):
        binding = f"approver-{user.split('@')[0]}"
        crds.kubectl(
            "create",
            "rolebinding",
            binding,
            "-n",
            namespace,
            "--clusterrole=sundial-approver",
            f"--user={user}",
        )

    def enforced() -> bool:
        forged = approval(namespace, "probe", utc_in(3600), MANAGER[0], groups_of(crds, MANAGER), "probe")
        result = approve_as(crds, OUTSIDER, forged, "--dry-run=server")
        return result.returncode != 0 and POLICY in result.stderr

    wait_until("the approval policy to be enforced", enforced, 30)
    yield namespace
    crds.kubectl("delete", "--ignore-not-found", "-f", "-", input=yaml.safe_dump_all(documents), check=False)


def last_run(cluster: Cluster, namespace: str, name: str) -> dict[str, Any] | None:
    runs = (read_sd(cluster, namespace, name).get("status") or {}).get("runs") or []
    return dict(runs[-1]) if runs else None


def test_a_run_waits_for_a_release_managers_approval_and_an_outsiders_does_not_count(
    crds: Cluster, approvers: str, start_operator: StartOperator
) -> None:
    namespace = approvers
    start_operator(namespace)
    instant = utc_in(10)
    spec = {
        "runAt": rfc3339(instant),
        "jobTemplate": job_template(),
        "startingDeadlineSeconds": 120,
        "approval": {"required": True, "groups": [MANAGER[1]]},
    }
    create_sd(crds, namespace, "api", spec)
    ahead = wait_until(
        "the next run to await approval",
        lambda: (read_sd(crds, namespace, "api").get("status") or {}).get("nextRunApproval"),
        20,
    )
    assert ahead == "Awaiting approval"

    # The outsider's own, honest approval is admitted (it is theirs), but they are not a release manager.
    own = approval(namespace, "api", instant, OUTSIDER[0], groups_of(crds, OUTSIDER), "api-by-mallory")
    assert approve_as(crds, OUTSIDER, own).returncode == 0

    def progressing() -> dict[str, Any] | None:
        return condition(read_sd(crds, namespace, "api"), "Progressing")

    waiting = wait_until(
        "the run to wait for approval",
        lambda: (c := progressing()) and c["reason"] == "AwaitingApproval" and c,
        30,
    )
    assert f"not counted, as not in those groups: {OUTSIDER[0]}" in waiting["message"]
    assert not jobs_of(crds, namespace, "api")

    given = approval(namespace, "api", instant, MANAGER[0], groups_of(crds, MANAGER), "api-by-alice")
    assert approve_as(crds, MANAGER, given).returncode == 0
    record = wait_until(
        "the approved run to succeed",
        lambda: (r := last_run(crds, namespace, "api")) is not None and r["result"] == "Succeeded" and r,
        60,
    )
    assert record["scheduledTime"] == rfc3339(instant)
    [job] = jobs_of(crds, namespace, "api")
    assert (
        job.metadata.annotations[ANNOTATION_APPROVED_BY] == f"{MANAGER[0]} (DeploymentApproval api-by-alice)"
    )
    table = crds.kubectl("get", APPROVAL_PLURAL, "-n", namespace).stdout
    assert "api-by-alice" in table and MANAGER[0] in table


def test_a_run_whose_approval_never_comes_is_held_not_approved(
    crds: Cluster, approvers: str, start_operator: StartOperator
) -> None:
    namespace = approvers
    start_operator(namespace)
    instant = utc_in(4)
    spec = {
        "runAt": rfc3339(instant),
        "jobTemplate": job_template(),
        "startingDeadlineSeconds": 6,
        "approval": {"required": True},
    }
    create_sd(crds, namespace, "api", spec)
    record = wait_until("the run to be recorded", lambda: last_run(crds, namespace, "api"), 40)
    assert (record["result"], record["reason"]) == ("Held", "NotApproved"), record
    assert "was not approved before its startingDeadlineSeconds ran out" in record["message"]
    assert not jobs_of(crds, namespace, "api")
    events = crds.kubectl(
        "get", "events", "-n", namespace, "--field-selector", "involvedObject.name=api"
    ).stdout
    assert "AwaitingApproval" in events and "Held" in events


def test_an_approval_forged_for_another_user_or_with_other_groups_is_refused(
    crds: Cluster, approvers: str
) -> None:
    namespace = approvers
    instant = utc_in(3600)
    manager_groups = groups_of(crds, MANAGER)
    assert MANAGER[1] in manager_groups and "system:authenticated" in manager_groups
    forged = approval(namespace, "api", instant, MANAGER[0], manager_groups, "forged")
    refused = approve_as(crds, OUTSIDER, forged)
    assert refused.returncode != 0 and POLICY in refused.stderr
    assert f"spec.approver is {MANAGER[0]}, but this request is made by {OUTSIDER[0]}" in refused.stderr
    # Their own name with a group they are not in is refused too.
    claimed = approval(namespace, "api", instant, OUTSIDER[0], manager_groups, "claimed")
    refused = approve_as(crds, OUTSIDER, claimed)
    assert refused.returncode != 0 and "spec.approverGroups must be exactly your groups" in refused.stderr
    # An approval, once given, may not be taken over by someone else, even by one whom RBAC lets change it
    # (sundial-approver grants no update; this Role does, to reach the policy's rule).
    crds.kubectl(
        "create", "role", "edit-approvals", "-n", namespace, "--verb=patch", f"--resource={APPROVAL_PLURAL}"
    )
    crds.kubectl(
        "create",
        "rolebinding",
        "edit-approvals",
        "-n",
        namespace,
        "--role=edit-approvals",
        f"--user={OUTSIDER[0]}",
    )
    given = approval(namespace, "api", instant, MANAGER[0], manager_groups, "given")
    assert approve_as(crds, MANAGER, given).returncode == 0
    changed = crds.kubectl(
        "patch", APPROVAL_PLURAL, "given", "-n", namespace, *impersonating(OUTSIDER), "--type=merge",
        "-p", json.dumps({"spec": {"approver": OUTSIDER[0], "approverGroups": groups_of(crds, OUTSIDER)}}),
        check=False,
    )  # fmt: skip
    assert changed.returncode != 0 and f"this approval was given by {MANAGER[0]}" in changed.stderr
    stored = crds.custom().get_namespaced_custom_object(GROUP, VERSION, namespace, APPROVAL_PLURAL, "given")
    assert stored["spec"]["approver"] == MANAGER[0]
