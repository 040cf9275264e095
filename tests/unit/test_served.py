"""What the operator waits for before kopf starts (runtime/served.py): pure parts."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sundial.api.keys import GROUP, PLURAL, VERSION
from sundial.api.shards import Shard
from sundial.runtime.kubeclient import Credentials
from sundial.runtime.options import OperatorOptions
from sundial.runtime.served import (
    PeeringObject,
    ServedResource,
    missing_message,
    missing_peering_message,
    peering_objects,
    served_plurals,
    watched_resources,
)

OPTIONS = OperatorOptions(
    credentials=Credentials("test", None),
    namespaces=None,
    peering_name=None,
    priority=0,
    peering_lifetime=60,
    liveness_endpoint=None,
    lease_namespace="sundial-system",
    identity="test",
    deployer_image="registry.example/sundial:1",
)
OURS = ServedResource(GROUP, VERSION, PLURAL)
FREEZES = ServedResource(GROUP, VERSION, "releasefreezes")
CLUSTER_FREEZES = ServedResource(GROUP, VERSION, "clusterreleasefreezes")
APPROVALS = ServedResource(GROUP, VERSION, "deploymentapprovals")


@pytest.mark.parametrize(
    ("namespaces", "peering", "expected"),
    [
        (None, None, [OURS, FREEZES, APPROVALS, CLUSTER_FREEZES]),
        (
            None,
            "sundial",
            [
                OURS,
                FREEZES,
                APPROVALS,
                CLUSTER_FREEZES,
                ServedResource("kopf.dev", "v1", "clusterkopfpeerings"),
            ],
        ),
        # A namespaced operator has no cluster-scoped right: it watches no ClusterReleaseFreeze.
        (("shop",), "sundial", [OURS, FREEZES, APPROVALS, ServedResource("kopf.dev", "v1", "kopfpeerings")]),
        (("shop",), None, [OURS, FREEZES, APPROVALS]),
    ],
)
def test_the_operator_waits_for_what_it_and_kopf_will_watch(
    namespaces: tuple[str, ...] | None, peering: str | None, expected: list[ServedResource]
) -> None:
    options = replace(OPTIONS, namespaces=namespaces, peering_name=peering)
    assert watched_resources(options) == expected


@pytest.mark.parametrize(
    ("discovery", "expected"),
    [
        (
            {"kind": "APIResourceList", "resources": [{"name": PLURAL}, {"name": f"{PLURAL}/status"}]},
            {PLURAL, f"{PLURAL}/status"},
        ),
        ({"kind": "APIResourceList", "resources": []}, set()),
        ({"kind": "APIResourceList"}, set()),
        ({"resources": [None, "x"]}, set()),
        ([], set()),
    ],
)
def test_served_plurals_reads_a_discovery_document(discovery: object, expected: set[str]) -> None:
    assert served_plurals(discovery) == expected


def test_the_wait_says_what_is_missing_and_how_to_install_it() -> None:
    message = missing_message([OURS])
    assert f"{PLURAL}.{GROUP}/{VERSION}" in message
    assert "kubectl apply --server-side -k manifests" in message


@pytest.mark.parametrize(
    ("namespaces", "peering", "expected"),
    [
        (None, None, []),
        (("shop",), None, []),
        (None, "sundial-1-of-2", [PeeringObject("clusterkopfpeerings", "sundial-1-of-2", None)]),
        # kopf peers in every namespace it serves, and the Lease's is one of them.
        (
            ("shop", "cafe"),
            "sundial",
            [
                PeeringObject("kopfpeerings", "sundial", "cafe"),
                PeeringObject("kopfpeerings", "sundial", "shop"),
                PeeringObject("kopfpeerings", "sundial", "sundial-system"),
            ],
        ),
    ],
)
def test_the_operator_waits_for_the_peering_objects_kopf_peers_through(
    namespaces: tuple[str, ...] | None, peering: str | None, expected: list[PeeringObject]
) -> None:
    options = replace(OPTIONS, namespaces=namespaces, peering_name=peering)
    assert peering_objects(options) == expected


def test_a_missing_peering_object_is_named_with_what_to_create() -> None:
    message = missing_peering_message(
        [
            PeeringObject("clusterkopfpeerings", "sundial-1-of-2", None),
            PeeringObject("kopfpeerings", "x", "shop"),
        ]
    )
    assert "ClusterKopfPeering sundial-1-of-2; KopfPeering x in namespace shop" in message
    assert "paused, firing nothing" in message and "apiVersion kopf.dev/v1" in message


def test_a_shards_lease_is_its_own_and_it_serves_only_its_namespaces() -> None:
    sharded = replace(OPTIONS, shard=Shard(1, 2))
    assert (OPTIONS.lease_name, sharded.lease_name) == ("sundial-scheduler", "sundial-scheduler-1-of-2")
    names = [f"team-{i}" for i in range(50)]
    assert all(OPTIONS.serves(name) for name in names)
    served = {name for name in names if sharded.serves(name)}
    assert served == {name for name in names if not replace(OPTIONS, shard=Shard(0, 2)).serves(name)}
    assert 0 < len(served) < len(names)
