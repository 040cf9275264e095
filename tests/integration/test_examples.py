"""Every file in ``examples/`` is applied as a user would, with ``kubectl apply -f``, and armed by the
operator exactly as ``sundial preview`` says offline."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from conftest import REPO, Cluster
from sdhelpers import StartOperator, read_sd, wait_for_condition
from sundial.preview import preview_documents

EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))

pytestmark = pytest.mark.integration


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 4


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.name)
def test_each_example_applies_and_is_armed_as_the_preview_says(
    crds: Cluster, deployer_namespace: str, start_operator: StartOperator, example: Path
) -> None:
    namespace = deployer_namespace
    start_operator(namespace)
    documents = [doc for doc in yaml.safe_load_all(example.read_text(encoding="utf-8")) if doc]
    crds.kubectl("apply", "-n", namespace, "-f", str(example))
    previews = [preview.to_json() for preview in preview_documents(documents, datetime.now(UTC), count=1)]
    assert previews and all(preview["valid"] for preview in previews), example.name
    for preview in previews:
        name = preview["name"]
        ready = wait_for_condition(crds, namespace, name, "Ready", "True", timeout=60)
        status = read_sd(crds, namespace, name)["status"]
        expected = preview["runs"][0]["scheduledTime"] if preview["runs"] else None
        assert status.get("nextRunTime") == expected, (name, status, ready)
        assert ready["reason"] == "Armed", (name, ready)
