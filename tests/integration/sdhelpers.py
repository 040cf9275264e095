"""Helpers for integration tests that drive ScheduledDeployments through the real API server."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from conftest import Cluster, OperatorProcess, wait_until
from sundial.api.keys import API_VERSION, GROUP, KIND, LABEL_OWNER, PLURAL, VERSION
from sundial.decide.jobs import owner_label_value

FAILURE_LABEL = "local-cluster.sundial.dev/outcome"
StartOperator = Callable[..., OperatorProcess]


def utc_in(seconds: float) -> datetime:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).replace(microsecond=0)


def rfc3339(instant: datetime) -> str:
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")


RESTRICTED = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}
"""A container securityContext that the Pod Security "restricted" profile admits."""
PRIVILEGED = {"privileged": True}
"""One that every Pod Security profile but "privileged" refuses."""


def job_template(
    *, fail: bool = False, run_duration: str | None = None, security: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A Job kwok runs to success (or failure, ``fail``); ``security``: the container's securityContext."""
    metadata: dict[str, Any] = {}
    if fail:
        metadata["labels"] = {FAILURE_LABEL: "fail"}
    if run_duration:
        metadata["annotations"] = {"local-cluster.sundial.dev/run-duration": run_duration}
    container: dict[str, Any] = {"name": "main", "image": "registry.example/task:1"}
    if security is not None:
        container["securityContext"] = security
    return {
        "spec": {
            "backoffLimit": 0,
            "template": {"metadata": metadata, "spec": {"containers": [container]}},
        }
    }


def enforce_restricted(cluster: Cluster, namespace: str) -> None:
    """Pod Security admission enforces the "restricted" profile in ``namespace`` from now on."""
    cluster.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")


def create_sd(
    cluster: Cluster,
    namespace: str,
    name: str,
    spec: dict[str, Any],
    *,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if annotations is not None:
        metadata["annotations"] = annotations
    body = {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": spec}
    return dict(cluster.custom().create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body))


def read_sd(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return dict(cluster.custom().get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name))


def patch_spec(cluster: Cluster, namespace: str, name: str, spec: dict[str, Any]) -> None:
    cluster.custom().patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, {"spec": spec})


def jobs_of(cluster: Cluster, namespace: str, owner: str) -> list[Any]:
    selector = f"{LABEL_OWNER}={owner_label_value(owner)}"
    return list(cluster.batch().list_namespaced_job(namespace, label_selector=selector).items)


def condition(body: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((c for c in (body.get("status") or {}).get("conditions") or [] if c["type"] == kind), None)


def wait_for_condition(
    cluster: Cluster,
    namespace: str,
    name: str,
    kind: str,
    status: str,
    reason: str | None = None,
    timeout: float = 60,
) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        found = condition(read_sd(cluster, namespace, name), kind)
        if found and found["status"] == status and (reason is None or found["reason"] == reason):
            return found
        return None

    return wait_until(f"{namespace}/{name} {kind}={status} {reason or ''}", check, timeout)


def run_results(cluster: Cluster, namespace: str, name: str) -> list[tuple[str, str]]:
    runs = (read_sd(cluster, namespace, name).get("status") or {}).get("runs") or []
    return [(run["result"], run.get("reason", "")) for run in runs]


def wait_for_events(
    cluster: Cluster, namespace: str, name: str, *reasons: str, timeout: float = 20
) -> list[str]:
    """Wait until the object has an Event for each of ``reasons``; return every Event reason, oldest first.

    The operator posts Events after the status write they describe, so a test that has just seen the status
    must wait for them rather than read once.
    """

    def check() -> list[str] | None:
        seen = event_reasons(cluster, namespace, name)
        return seen if set(reasons) <= set(seen) else None

    return wait_until(f"Events {', '.join(reasons)} on {namespace}/{name}", check, timeout, interval=0.25)


def event_reasons(cluster: Cluster, namespace: str, name: str) -> list[str]:
    events = (
        cluster.core().list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}").items
    )
    return [event.reason for event in sorted(events, key=lambda e: e.metadata.creation_timestamp)]


def create_peering(cluster: Cluster, namespace: str, name: str = "sundial") -> None:
    """The KopfPeering that replicas started with ``--peering sundial`` elect their active one in (a shard
    I of N peers through ``sundial-I-of-N``)."""
    cluster.custom().create_namespaced_custom_object(
        "kopf.dev",
        "v1",
        namespace,
        "kopfpeerings",
        {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": name}},
    )


def peers(cluster: Cluster, namespace: str) -> dict[str, object]:
    """The replicas in the KopfPeering ``sundial``, by identity."""
    body = cluster.custom().get_namespaced_custom_object(
        "kopf.dev", "v1", namespace, "kopfpeerings", "sundial"
    )
    return dict(body.get("status") or {})
