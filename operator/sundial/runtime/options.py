"""What ``sundial run`` was asked for: everything the operator's wiring, its replica and its client need."""

from __future__ import annotations

from dataclasses import dataclass

from sundial.api.shards import Shard, lease_name
from sundial.runtime.kubeclient import Credentials


@dataclass(frozen=True)
class OperatorOptions:
    credentials: Credentials
    namespaces: tuple[str, ...] | None
    """None: every namespace."""
    peering_name: str | None
    """None: standalone, no peering."""
    priority: int
    peering_lifetime: int
    liveness_endpoint: str | None
    lease_namespace: str
    identity: str
    deployer_image: str
    """The image of the built-in targets' deploy Jobs (SUNDIAL_DEPLOYER_IMAGE, checked by `sundial run`)."""
    kube_api_qps: float | None = None
    """None: no client-side limit on the operator's own API requests (kopf's watches are never limited)."""
    kube_api_burst: int | None = None
    metrics_bind: tuple[str, int] | None = None
    """(host, port) to serve Prometheus metrics at; None: no metrics endpoint."""
    shard: Shard | None = None
    """None: every namespace in scope is served here; else only those whose hash falls in this shard (and
    `peering_name` is already the shard's own)."""
    cluster_freezes: bool = False
    """With namespaces: also watch ClusterReleaseFreezes (a namespaced install has no cluster-scoped right
    unless one is bound for them); always so across every namespace."""

    @property
    def watches_cluster_freezes(self) -> bool:
        return self.namespaces is None or self.cluster_freezes

    @property
    def kopf_namespaces(self) -> list[str]:
        """The namespaces kopf serves (and peers in) when scoped: the watched ones and the Lease's."""
        return [] if self.namespaces is None else sorted({*self.namespaces, self.lease_namespace})

    @property
    def lease_name(self) -> str:
        return lease_name(self.shard)

    def serves(self, namespace: str) -> bool:
        return self.shard is None or self.shard.serves(namespace)
