"""The RBAC-versus-requests comparison (tests/rbac_audit.py) on rules and audit events written out here."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rbac_audit import Grant, Request, allows, compare, grants_for, request_from_audit, requests_from_audit

USER = "system:serviceaccount:sundial-system:sundial"


def cluster_role(name: str, *rules: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "ClusterRole", "metadata": {"name": name}, "rules": list(rules)}


def role(name: str, namespace: str, *rules: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "Role", "metadata": {"name": name, "namespace": namespace}, "rules": list(rules)}


def binding(kind: str, role_kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
    metadata = {"name": name, **({"namespace": namespace} if namespace else {})}
    subject = {"kind": "ServiceAccount", "name": "sundial", "namespace": "sundial-system"}
    return {
        "kind": kind,
        "metadata": metadata,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": name},
        "subjects": [subject],
    }


def rule(groups: list[str], resources: list[str], verbs: list[str], names: list[str] | None = None) -> Any:
    return {
        "apiGroups": groups,
        "resources": resources,
        "verbs": verbs,
        **({"resourceNames": names} if names else {}),
    }


def test_each_verb_of_each_resource_of_a_bound_rule_is_one_grant() -> None:
    documents = [
        cluster_role("op", rule(["batch"], ["jobs"], ["get", "create"])),
        binding("ClusterRoleBinding", "ClusterRole", "op"),
        cluster_role("unbound", rule([""], ["secrets"], ["get"])),
    ]
    assert grants_for(documents, USER) == [
        Grant("ClusterRole/op#0", None, "batch", "jobs", "get"),
        Grant("ClusterRole/op#0", None, "batch", "jobs", "create"),
    ]


def test_a_role_binding_grants_in_its_own_namespace_only() -> None:
    documents = [
        role(
            "lease",
            "sundial-system",
            rule(["coordination.k8s.io"], ["leases"], ["patch"], ["sundial-scheduler"]),
        ),
        binding("RoleBinding", "Role", "lease", "sundial-system"),
    ]
    [grant] = grants_for(documents, USER)
    assert grant.namespace == "sundial-system" and grant.names == {"sundial-scheduler"}
    patch = Request("patch", "coordination.k8s.io", "leases", "sundial-system", "sundial-scheduler")
    assert allows(grant, patch)
    assert not allows(grant, Request("patch", "coordination.k8s.io", "leases", "shop", "sundial-scheduler"))
    assert not allows(grant, Request("patch", "coordination.k8s.io", "leases", "sundial-system", "other"))


def test_a_cluster_role_bound_in_a_namespace_grants_there_only() -> None:
    documents = [
        cluster_role("op", rule([""], ["pods"], ["list"])),
        binding("RoleBinding", "ClusterRole", "op", "a"),
    ]
    [grant] = grants_for(documents, USER)
    assert allows(grant, Request("list", "", "pods", "a")) and not allows(
        grant, Request("list", "", "pods", "b")
    )


def test_a_binding_to_a_role_that_is_not_given_is_refused() -> None:
    with pytest.raises(ValueError, match="not given"):
        grants_for([binding("ClusterRoleBinding", "ClusterRole", "absent")], USER)


@pytest.mark.parametrize(
    ("rule_resource", "requested", "matches"),
    [
        ("jobs", "jobs", True),
        ("jobs", "jobs/status", False),
        ("scheduleddeployments/status", "scheduleddeployments/status", True),
        ("scheduleddeployments/status", "scheduleddeployments", False),
        ("*/status", "scheduleddeployments/status", True),
        ("*/status", "scheduleddeployments", False),
        ("*", "anything/scale", True),
    ],
)
def test_resources_match_as_the_rbac_authorizer_matches_them(
    rule_resource: str, requested: str, matches: bool
) -> None:
    grant = Grant("r", None, "g", rule_resource, "get")
    assert allows(grant, Request("get", "g", requested, "ns", "x")) is matches


def test_resource_names_cover_only_requests_that_name_one_of_them() -> None:
    grant = Grant("r", None, "kopf.dev", "clusterkopfpeerings", "watch", frozenset({"sundial"}))
    assert allows(grant, Request("watch", "kopf.dev", "clusterkopfpeerings", None, "sundial"))
    # A watch without a metadata.name field selector names nothing: resourceNames do not cover it.
    assert not allows(grant, Request("watch", "kopf.dev", "clusterkopfpeerings"))


def test_wildcards_match_any_verb_and_group() -> None:
    assert allows(Grant("r", None, "*", "jobs", "*"), Request("delete", "batch", "jobs", "a", "j"))


def test_agreeing_rights_and_requests_compare_clean() -> None:
    grants = [Grant("r#0", None, "batch", "jobs", "create"), Grant("r#0", None, "batch", "jobs", "delete")]
    requests = [
        Request("create", "batch", "jobs", "a", code=201),
        Request("delete", "batch", "jobs", "a", "j"),
    ]
    assert compare(grants, requests)


def test_a_grant_no_request_used_is_reported_by_its_rule() -> None:
    grants = [
        Grant("ClusterRole/op#1", None, "", "namespaces", "watch"),
        Grant("r#0", None, "", "pods", "list"),
    ]
    result = compare(grants, [Request("list", "", "pods", "a")])
    assert not result and result.unused == [grants[0]] and not result.missing
    assert "unused: ClusterRole/op#1: watch namespaces cluster-wide" in result.report()


def test_a_request_no_grant_covers_is_missing_even_when_the_server_allowed_it() -> None:
    # Allowed through some other binding (say a group's): still not what the shipped rules grant.
    request = Request("get", "", "secrets", "a", "s")
    result = compare([Grant("r#0", None, "", "pods", "list")], [Request("list", "", "pods", "a"), request])
    assert result.missing == [request] and not result.unused


def test_a_denied_request_is_missing_and_uses_no_grant() -> None:
    denied = Request("patch", "kopf.dev", "clusterkopfpeerings", None, "default", 403, denied=True)
    grant = Grant("r#0", None, "kopf.dev", "clusterkopfpeerings", "patch")
    result = compare([grant], [denied, denied])
    assert result.missing == [denied] and result.unused == [grant]
    assert "missing: patch clusterkopfpeerings.kopf.dev default cluster-wide (403)" in result.report()


def test_copies_of_a_role_in_several_namespaces_count_as_used_when_one_is() -> None:
    in_a = Grant("Role/watched#0", "a", "batch", "jobs", "delete")
    in_b = Grant("Role/watched#0", "b", "batch", "jobs", "delete")
    assert compare([in_a, in_b], [Request("delete", "batch", "jobs", "b", "j")])


def audit(user: str, verb: str, ref: dict[str, str] | None, code: int, decision: str | None = "allow") -> str:
    entry: dict[str, Any] = {"user": {"username": user}, "verb": verb, "responseStatus": {"code": code}}
    if ref is not None:
        entry["objectRef"] = ref
    if decision is not None:
        entry["annotations"] = {"authorization.k8s.io/decision": decision}
    return json.dumps(entry)


def test_audit_events_become_the_user_s_own_resource_requests() -> None:
    lines = [
        audit(
            USER,
            "list",
            {"resource": "leases", "apiGroup": "coordination.k8s.io", "name": "sundial-scheduler"},
            200,
        ),
        audit(USER, "get", None, 200),  # /apis discovery: no resource
        audit("someone-else", "delete", {"resource": "jobs", "apiGroup": "batch", "namespace": "a"}, 200),
        audit(
            USER,
            "patch",
            {
                "resource": "scheduleddeployments",
                "subresource": "status",
                "apiGroup": "sundial.dev",
                "namespace": "a",
                "name": "x",
            },
            200,
        ),
        audit(USER, "create", {"resource": "jobs", "apiGroup": "batch", "namespace": "b"}, 403, "forbid"),
        audit(USER, "create", {"resource": "jobs", "apiGroup": "batch", "namespace": "c"}, 403, "allow"),
        "",
    ]
    assert requests_from_audit(lines, USER) == [
        Request("list", "coordination.k8s.io", "leases", None, "sundial-scheduler"),
        Request("patch", "sundial.dev", "scheduleddeployments/status", "a", "x"),
        Request("create", "batch", "jobs", "b", None, 403, denied=True),
        # Refused by admission (a policy), not by the authorizer: the right was there.
        Request("create", "batch", "jobs", "c", None, 403, denied=False),
    ]


def test_requests_made_by_impersonating_the_user_are_not_the_user_s() -> None:
    line = json.loads(audit(USER, "create", {"resource": "selfsubjectaccessreviews"}, 201))
    line["impersonatedUser"] = {"username": "admin"}
    assert requests_from_audit([json.dumps(line)], USER) == []


def test_without_a_decision_annotation_a_403_counts_as_denied() -> None:
    entry = json.loads(audit(USER, "get", {"resource": "secrets", "namespace": "a", "name": "s"}, 403, None))
    request = request_from_audit(entry)
    assert request is not None and request.denied
