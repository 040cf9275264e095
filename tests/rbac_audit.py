"""What a subject's RBAC grants, what it asked the API server for, and where the two part: pure functions.

`grants_for` reads the rules bound to a user from rendered manifests, `requests_from_audit` reads that user's
requests from an API server's audit log (one JSON object a line, level Metadata or above), and `compare`
says which grants no request used and which requests were denied or are covered by no grant. The
integration tier feeds them the shipped manifests and the local control plane's audit log
(tests/integration/test_operator_rights.py); tests/unit/test_rbac_audit.py checks the matching itself.

Matching follows the RBAC authorizer (``RuleAllows`` in k8s.io/component-helpers/auth/rbac/validation):
``*`` matches any verb, group or resource; a rule for ``*/status`` matches every status subresource; a rule
with resourceNames matches only requests that name one of them, which for list and watch means a
``metadata.name=`` field selector (the API server copies its value into the request's name, and the audit
log's ``objectRef.name``). A RoleBinding's rules hold in its namespace only; a ClusterRoleBinding's
everywhere, cluster-scoped resources included.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

DECISION = "authorization.k8s.io/decision"


@dataclass(frozen=True)
class Grant:
    """One verb on one resource of one rule, as bound to the subject: the unit that is used or unused.

    ``role`` names the rule's role and its index (``Role/sundial-watched#2``); ``namespace`` is the
    RoleBinding's, or None for a ClusterRoleBinding. Copies of one Role stamped into several namespaces
    share ``role``, and count as used when any copy is (`compare`).
    """

    role: str
    namespace: str | None
    api_group: str
    resource: str
    verb: str
    names: frozenset[str] = frozenset()

    def __str__(self) -> str:
        names = f" named {', '.join(sorted(self.names))}" if self.names else ""
        where = f"in namespace {self.namespace}" if self.namespace else "cluster-wide"
        return f"{self.role}: {self.verb} {qualified(self.resource, self.api_group)}{names} {where}"


@dataclass(frozen=True)
class Request:
    """One request as the audit log recorded it. ``namespace`` is None for a cluster-scoped resource or a
    request across all namespaces; ``name`` is None when none was named (a create, an unfiltered list)."""

    verb: str
    api_group: str
    resource: str
    namespace: str | None = None
    name: str | None = None
    code: int = 200
    denied: bool = False
    """The authorizer said no (a 403 from admission, say a policy, is not a missing right)."""

    def __str__(self) -> str:
        name = f" {self.name}" if self.name else ""
        where = f" in namespace {self.namespace}" if self.namespace else " cluster-wide"
        return f"{self.verb} {qualified(self.resource, self.api_group)}{name}{where} ({self.code})"


def qualified(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


@dataclass
class Comparison:
    unused: list[Grant] = field(default_factory=list)
    """Grants that no allowed request needed (one per role, rule, resource and verb)."""
    missing: list[Request] = field(default_factory=list)
    """Requests the authorizer denied, or that no grant covers (each distinct request once)."""

    def __bool__(self) -> bool:
        """True when the rights and the requests agree."""
        return not self.unused and not self.missing

    def report(self) -> str:
        lines = [f"unused: {grant}" for grant in self.unused]
        lines += [f"missing: {request}" for request in self.missing]
        return "\n".join(lines)


# -------------------------------------------------------------------------------------------- the rules


def service_account_user(namespace: str, name: str) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


def _binds(binding: Mapping[str, Any], user: str) -> bool:
    for subject in binding.get("subjects") or []:
        kind = subject.get("kind")
        if kind == "ServiceAccount":
            namespace = subject.get("namespace") or binding["metadata"].get("namespace")
            if service_account_user(namespace, subject["name"]) == user:
                return True
        elif kind == "User" and subject["name"] == user:
            return True
    return False


def grants_for(documents: Iterable[Mapping[str, Any]], user: str) -> list[Grant]:
    """Every grant the (Cluster)RoleBindings among ``documents`` give ``user``, from the roles among them.

    Groups are not followed (the built-in ones every account is in grant only discovery); a binding to a
    role not among ``documents``, or an aggregated ClusterRole, is refused rather than guessed at.
    """
    documents = list(documents)
    roles = {
        (d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d
        for d in documents
        if d["kind"] in ("Role", "ClusterRole")
    }
    grants: list[Grant] = []
    for binding in documents:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding") or not _binds(binding, user):
            continue
        namespace = binding["metadata"].get("namespace") if binding["kind"] == "RoleBinding" else None
        ref = binding["roleRef"]
        key = (ref["kind"], namespace if ref["kind"] == "Role" else None, ref["name"])
        role = roles.get(key)
        if role is None:
            raise ValueError(
                f"{binding['kind']} {binding['metadata']['name']} binds {key}, which is not given"
            )
        if role.get("aggregationRule"):
            raise ValueError(f"ClusterRole {ref['name']} is aggregated; its rules are not known here")
        for index, rule in enumerate(role.get("rules") or []):
            if rule.get("nonResourceURLs"):
                raise ValueError(f"{ref['kind']} {ref['name']} rule {index} names URLs, not resources")
            names = frozenset(rule.get("resourceNames") or ())
            for group in rule.get("apiGroups") or []:
                for resource in rule.get("resources") or []:
                    for verb in rule.get("verbs") or []:
                        source = f"{ref['kind']}/{ref['name']}#{index}"
                        grants.append(Grant(source, namespace, group, resource, verb, names))
    return grants


# ------------------------------------------------------------------------------------------ the requests


def request_from_audit(entry: Mapping[str, Any]) -> Request | None:
    """The request an audit event records, or None for one that named no resource (discovery, /version)."""
    ref = entry.get("objectRef")
    if not ref or "resource" not in ref:
        return None
    resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
    code = int((entry.get("responseStatus") or {}).get("code") or 0)
    decision = (entry.get("annotations") or {}).get(DECISION)
    # Older API servers do not annotate the decision; there, every 403 counts as the authorizer's.
    denied = decision == "forbid" or (decision is None and code == 403)
    return Request(
        verb=entry["verb"],
        api_group=ref.get("apiGroup") or "",
        resource=resource,
        namespace=ref.get("namespace") or None,
        name=ref.get("name") or None,
        code=code,
        denied=denied,
    )


def requests_from_audit(lines: Iterable[str], user: str) -> list[Request]:
    """The requests ``user`` made itself (not those made by someone impersonating it), in log order."""
    found = []
    for line in lines:
        if not line.strip():
            continue
        entry = json.loads(line)
        if (entry.get("user") or {}).get("username") != user or entry.get("impersonatedUser"):
            continue
        request = request_from_audit(entry)
        if request is not None:
            found.append(request)
    return found


# ----------------------------------------------------------------------------------------- the matching


def _resource_matches(rule_resource: str, requested: str) -> bool:
    if rule_resource in ("*", requested):
        return True
    _, slash, subresource = requested.partition("/")
    return bool(slash) and rule_resource == f"*/{subresource}"


def allows(grant: Grant, request: Request) -> bool:
    """Whether ``grant`` alone authorizes ``request``."""
    if grant.namespace is not None and request.namespace != grant.namespace:
        return False
    return (
        grant.verb in ("*", request.verb)
        and grant.api_group in ("*", request.api_group)
        and _resource_matches(grant.resource, request.resource)
        and (not grant.names or request.name in grant.names)
    )


def compare(grants: Iterable[Grant], requests: Iterable[Request]) -> Comparison:
    """Grants no allowed request used, and requests denied or covered by no grant.

    A grant counts as used when any allowed request needs it; copies of a Role in several namespaces (the
    same role, rule, resource and verb) count as one, used when any copy is.
    """
    grants = list(grants)
    requests = list(dict.fromkeys(requests))  # each distinct request once, in order
    used: set[tuple[str, str, str, str, frozenset[str]]] = set()
    missing: list[Request] = []
    for request in requests:
        covering = [g for g in grants if allows(g, request)]
        if request.denied or not covering:
            missing.append(request)
            continue
        used.update((g.role, g.api_group, g.resource, g.verb, g.names) for g in covering)
    unused: list[Grant] = []
    reported: set[tuple[str, str, str, str, frozenset[str]]] = set()
    for grant in grants:
        key = (grant.role, grant.api_group, grant.resource, grant.verb, grant.names)
        if key not in used and key not in reported:
            reported.add(key)
            unused.append(grant)
    # A denied request that differs only in its response code is still one request.
    distinct = list({(r.verb, r.api_group, r.resource, r.namespace, r.name): r for r in missing}.values())
    return Comparison(unused=unused, missing=distinct)
