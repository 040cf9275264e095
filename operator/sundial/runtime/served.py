"""Wait, before kopf starts, until the API server serves every resource the operator watches.

kopf is told not to observe CRDs (runtime/wiring.py: ``settings.scanning.disabled``, so that the operator
needs no right to read every CRD in the cluster). It then scans the API once, when it starts, and never
again: a resource whose CRD is not yet served at that moment would never be watched, and ScheduledDeployments
created afterwards would silently never fire. So the operator does not start kopf until discovery lists
them all, and says every few seconds which CRD it is waiting for and how to install it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from kubernetes import client
from kubernetes.client.exceptions import ApiException

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
    """What kopf will watch: ScheduledDeployments, and the peering object's kind when peering."""
    wanted = [ServedResource(GROUP, VERSION, PLURAL)]
    if options.peering_name is not None:
        peering = "clusterkopfpeerings" if options.namespaces is None else "kopfpeerings"
        wanted.append(ServedResource("kopf.dev", "v1", peering))
    return wanted


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
