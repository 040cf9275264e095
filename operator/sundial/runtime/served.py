"""Wait, before kopf starts, until the API server serves every resource the operator watches.

kopf is told not to observe CRDs (runtime/wiring.py: ``settings.scanning.disabled``, so that the operator
needs no right to read every CRD in the cluster). It then scans the API once, when it starts, and never
again: a resource whose CRD is not yet served at that moment would never be watched, and ScheduledDeployments
created afterwards would silently never fire. So the operator does not start kopf until discovery lists
them all, and says every few seconds which CRD it is waiting for and how to install it.

The same holds for the peering object. kopf, told to peer through one that does not exist, keeps the replica
paused for good and says so only in a debug line: a shard whose peering object was never applied would fire
nothing, silently. So the operator also waits until its peering object exists, and says which one to create.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from sundial.api.approvals import APPROVAL_PLURAL
from sundial.api.freezes import CLUSTER_FREEZE_PLURAL, FREEZE_PLURAL
from sundial.api.keys import GROUP, PLURAL, VERSION
from sundial.runtime.kubeclient import raw_body
from sundial.runtime.options import OperatorOptions

logger = logging.getLogger(__name__)

POLL_SECONDS = 2.0
LOG_EVERY_SECONDS = 10.0


class ServedResource(NamedTuple):
    group: str
    version: str
    plural: str

    def __str__(self) -> str:
        return f"{self.plural}.{self.group}/{self.version}"


def watched_resources(options: OperatorOptions) -> list[ServedResource]:
    """What Sundial and kopf will watch: ScheduledDeployments, ReleaseFreezes (and ClusterReleaseFreezes,
    across all namespaces or when asked for), DeploymentApprovals, and the peering object's kind when
    peering."""
    wanted = [
        ServedResource(GROUP, VERSION, PLURAL),
        ServedResource(GROUP, VERSION, FREEZE_PLURAL),
        ServedResource(GROUP, VERSION, APPROVAL_PLURAL),
    ]
    if options.watches_cluster_freezes:
        wanted.append(ServedResource(GROUP, VERSION, CLUSTER_FREEZE_PLURAL))
    if options.peering_name is not None:
        peering = "clusterkopfpeerings" if options.namespaces is None else "kopfpeerings"
        wanted.append(ServedResource("kopf.dev", "v1", peering))
    return wanted


@dataclass(frozen=True)
class PeeringObject:
    plural: str
    name: str
    namespace: str | None
    """None: the cluster-scoped kind."""

    def __str__(self) -> str:
        kind = "ClusterKopfPeering" if self.namespace is None else "KopfPeering"
        return f"{kind} {self.name}" + ("" if self.namespace is None else f" in namespace {self.namespace}")


def peering_objects(options: OperatorOptions) -> list[PeeringObject]:
    """The peering objects kopf will peer through: one cluster-wide, or one in each namespace it serves."""
    if options.peering_name is None:
        return []
    if options.namespaces is None:
        return [PeeringObject("clusterkopfpeerings", options.peering_name, None)]
    name = options.peering_name
    return [PeeringObject("kopfpeerings", name, namespace) for namespace in options.kopf_namespaces]


def missing_peering_message(missing: Iterable[PeeringObject]) -> str:
    names = "; ".join(str(peering) for peering in missing)
    return (
        f"the peering object does not exist: {names}. kopf would keep this replica paused, firing nothing, "
        "until it does; create it (apiVersion kopf.dev/v1, nothing but its name: manifests/peering.yaml is "
        "the unsharded one, manifests/sharded/ holds one per shard)"
    )


def served_plurals(discovery: object) -> set[str]:
    """The resource names of one group-version's discovery document (an APIResourceList)."""
    if not isinstance(discovery, Mapping):
        return set()
    return {str(item.get("name")) for item in discovery.get("resources") or () if isinstance(item, Mapping)}


def missing_message(missing: Iterable[ServedResource]) -> str:
    names = ", ".join(str(resource) for resource in missing)
    return (
        f"the API server does not serve {names} yet; waiting before watching anything (install the CRDs: "
        "kubectl apply --server-side -k manifests, or -k crds for Sundial's alone)"
    )


async def wait_until_served(api_client: client.ApiClient, wanted: list[ServedResource]) -> None:
    custom = client.CustomObjectsApi(api_client)
    loop = asyncio.get_running_loop()
    last_logged: float | None = None
    while True:
        missing = []
        for resource in wanted:
            try:
                discovery = await asyncio.to_thread(
                    raw_body, custom.get_api_resources, resource.group, resource.version
                )
                plurals = served_plurals(json.loads(discovery))
            except ApiException as error:
                if error.status != 404:
                    raise
                plurals = set()
            if resource.plural not in plurals:
                missing.append(resource)
        if not missing:
            return
        if last_logged is None or loop.time() - last_logged >= LOG_EVERY_SECONDS:
            logger.warning(missing_message(missing))
            last_logged = loop.time()
        await asyncio.sleep(POLL_SECONDS)


def _peering_exists(custom: client.CustomObjectsApi, peering: PeeringObject) -> bool:
    # A LIST by name, not a GET: the shipped RBAC grants list/watch/patch on the object by name only, and
    # the API server authorizes a metadata.name field selector against resourceNames.
    selector = {"field_selector": f"metadata.name={peering.name}", "_request_timeout": (5.0, 30.0)}
    listing: Any
    if peering.namespace is None:
        listing = custom.list_cluster_custom_object("kopf.dev", "v1", peering.plural, **selector)
    else:
        listing = custom.list_namespaced_custom_object(
            "kopf.dev", "v1", peering.namespace, peering.plural, **selector
        )
    return bool(listing.get("items"))


async def wait_until_peering_exists(api_client: client.ApiClient, peerings: list[PeeringObject]) -> None:
    """Hold until every peering object exists, saying every few seconds which ones to create. A refusal to
    read them (403) is logged and not waited on: kopf's own start then reports it."""
    custom = client.CustomObjectsApi(api_client)
    loop = asyncio.get_running_loop()
    last_logged: float | None = None
    while True:
        missing = []
        for peering in peerings:
            try:
                exists = await asyncio.to_thread(_peering_exists, custom, peering)
            except ApiException as error:
                if error.status != 403:
                    raise
                logger.warning("cannot check that %s exists: %s", peering, error.reason)
                exists = True
            if not exists:
                missing.append(peering)
        if not missing:
            return
        if last_logged is None or loop.time() - last_logged >= LOG_EVERY_SECONDS:
            logger.error(missing_peering_message(missing))
            last_logged = loop.time()
        await asyncio.sleep(POLL_SECONDS)
