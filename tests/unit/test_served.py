"""What the operator waits for before kopf starts (runtime/served.py): pure parts."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sundial.api.keys import GROUP, PLURAL, VERSION
from sundial.runtime.kubeclient import Credentials
from sundial.runtime.options import OperatorOptions
from sundial.runtime.served import ServedResource, missing_message, served_plurals, watched_resources

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


@pytest.mark.parametrize(
    ("namespaces", "peering", "expected"),
    [
        (None, None, [OURS]),
        (None, "sundial", [OURS, ServedResource("kopf.dev", "v1", "clusterkopfpeerings")]),
        (("shop",), "sundial", [OURS, ServedResource("kopf.dev", "v1", "kopfpeerings")]),
        (("shop",), None, [OURS]),
    ],
)
def test_the_operator_waits_for_what_kopf_will_watch(
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
