"""The operator starts watching only once the API server serves what it watches (runtime/served.py).

kopf scans the API once, at start (it is told not to observe CRDs), so a CRD installed after that would never
be watched. These tests run the wait itself against the real API server: it holds while a resource is not
served, says which one and how to install it, and ends once a CRD for it is established.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest
import yaml
from kubernetes import config

from conftest import Cluster
from sundial.api.keys import GROUP, PLURAL, VERSION
from sundial.runtime.served import ServedResource, wait_until_served

PROBE_GROUP = "served-probe.sundial.dev"


def probe_crd(plural: str) -> dict[str, object]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{PROBE_GROUP}"},
        "spec": {
            "group": PROBE_GROUP,
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": plural[:-1], "kind": plural[:-1].capitalize()},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object"}},
                }
            ],
        },
    }


def test_the_wait_returns_at_once_when_everything_is_served(crds: Cluster) -> None:
    api = config.new_client_from_config(config_file=str(crds.kubeconfig))
    asyncio.run(asyncio.wait_for(wait_until_served(api, [ServedResource(GROUP, VERSION, PLURAL)]), 30))


def test_the_wait_holds_until_a_missing_crd_is_installed_and_says_what_it_waits_for(
    crds: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    api = config.new_client_from_config(config_file=str(crds.kubeconfig))
    plural = f"probes{uuid.uuid4().hex[:8]}"
    wanted = [ServedResource(GROUP, VERSION, PLURAL), ServedResource(PROBE_GROUP, "v1", plural)]
    crd = yaml.safe_dump(probe_crd(plural))

    async def scenario() -> None:
        waiting = asyncio.create_task(wait_until_served(api, wanted))
        # Two polls at least: a wait that returned here would have started kopf without the resource.
        await asyncio.sleep(5)
        assert not waiting.done(), "the wait ended while the probe's CRD did not exist"
        await asyncio.to_thread(crds.kubectl, "create", "-f", "-", input=crd)
        await asyncio.wait_for(waiting, 60)

    caplog.set_level(logging.WARNING, logger="sundial.runtime.served")
    try:
        asyncio.run(scenario())
    finally:
        crds.kubectl("delete", "--ignore-not-found", "-f", "-", input=crd, check=False)
    warnings = [r.getMessage() for r in caplog.records if r.name == "sundial.runtime.served"]
    assert warnings and f"{plural}.{PROBE_GROUP}/v1" in warnings[0], warnings
    assert f"{PLURAL}.{GROUP}" not in warnings[0], "only what is missing is named"
