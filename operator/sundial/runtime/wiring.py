"""kopf's registry and settings: thin adapters from kopf to the replica.

No decisions are made here, and no ScheduledDeployment or Job is watched through kopf: Sundial's own informer
(`sundial.runtime.informer`) does that on every replica, so a standby's caches stay warm. kopf serves what it
is good at: peering, and the scheduler as a ``@kopf.daemon`` on the one Lease named ``sundial-scheduler``
(one per shard), because kopf stops daemons exactly when peering pauses a replica (`sundial.runtime.replica`).
That daemon's kopf finalizer lands on the Lease only; ScheduledDeployments never get one, so deleting them
never waits for the operator.
"""

from __future__ import annotations

from typing import Any

import kopf

from sundial.runtime.kubeclient import kopf_connection_info
from sundial.runtime.options import OperatorOptions
from sundial.runtime.replica import ActiveReplica

FINALIZER = "sundial.dev/scheduler-lease"


def configure_settings(settings: kopf.OperatorSettings, options: OperatorOptions) -> None:
    settings.peering.lifetime = options.peering_lifetime
    settings.persistence.finalizer = FINALIZER
    settings.networking.request_timeout = 60
    settings.networking.connect_timeout = 10
    settings.watching.server_timeout = 300
    # The Lease in the lease namespace only: a cluster-wide replica would otherwise also see another
    # instance's `sundial-scheduler` Lease (say, one scoped to a team's namespace) and, once that is being
    # deleted, try to remove the finalizer kopf put there, which the shipped RBAC rightly forbids.
    settings.watching.field_selectors["coordination.k8s.io/v1", "leases"] = (
        f"metadata.name={options.lease_name},metadata.namespace={options.lease_namespace}"
    )
    # The peering object by name, server-side: kopf then lists and watches it with a `metadata.name` field
    # selector, which the API server authorizes against RBAC's resourceNames. Without it, the operator would
    # need to read every peering object of every kopf operator in the cluster (manifests/rbac.yaml).
    if options.peering_name is not None:
        for plural in ("clusterkopfpeerings", "kopfpeerings"):
            settings.watching.field_selectors["kopf.dev/v1", plural] = f"metadata.name={options.peering_name}"
    # No observation of CRDs and namespaces. kopf would otherwise list and watch every CRD in the cluster (to
    # notice resources appearing or changing) and, when it serves a list of namespaces, every namespace (to
    # notice them appear and go). Sundial serves fixed, named resources that are installed with it and exact
    # namespace names (`--namespace`, never a pattern), so neither observation can change what it serves.
    # kopf still scans once at start, and `run_operator` starts it only once every watched resource is
    # served (runtime/served.py), so a CRD applied together with the operator is never missed; a new CRD
    # version is seen at the next restart, which an upgrade (manifests/ holds both) does anyway. Both rights
    # are thus left out of the shipped RBAC, and the namespaced install needs no cluster-scoped right at all.
    settings.scanning.disabled = True
    # kopf's own Events for handler errors are noise next to ours; errors are logged anyway.
    settings.posting.enabled = False


def build_registry(options: OperatorOptions, replica: ActiveReplica) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> Any:
        # Registering a login handler switches off kopf's own credential discovery.
        return kopf_connection_info(options.credentials)

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure_settings(settings, options)

    def is_scheduler_lease(name: str, namespace: str | None, **_: Any) -> bool:
        return name == options.lease_name and namespace == options.lease_namespace

    @kopf.daemon(
        "coordination.k8s.io/v1",
        "leases",
        when=is_scheduler_lease,
        registry=registry,
        cancellation_timeout=1.0,
    )
    async def scheduler(stopped: kopf.DaemonStopped, **_: Any) -> None:
        await replica.serve(stopped)

    @kopf.on.probe(id="scheduler", registry=registry)
    def scheduler_probe(**_: Any) -> dict[str, Any]:
        return replica.probe()

    return registry
