"""The Deployment deployer's pure parts: how a rollout is judged, and the patch that sets an image."""

from __future__ import annotations

from typing import Any

import pytest

from sundial.decide.observe import failure_detail
from sundial.deploy import DeployFailed
from sundial.deploy.kubernetes import image_patch, rollout_state


def deployment(generation: int = 2, observed: int = 2, wanted: int = 3, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "api", "generation": generation},
        "spec": {
            "replicas": wanted,
            "progressDeadlineSeconds": 60,
            "template": {
                "spec": {
                    "containers": [
                        {"name": "sidecar", "image": "proxy:1"},
                        {"name": "api", "image": "api:v41"},
                    ]
                }
            },
        },
        "status": {"observedGeneration": observed, **status},
    }


@pytest.mark.parametrize(
    ("body", "done", "progress"),
    [
        (
            deployment(generation=3, observed=2),
            False,
            "waiting for the deployment controller to observe the new spec",
        ),
        (deployment(updatedReplicas=1, replicas=3, availableReplicas=2), False, "1 of 3 replicas updated"),
        (
            deployment(updatedReplicas=3, replicas=4, availableReplicas=3),
            False,
            "1 old replicas are pending termination",
        ),
        (
            deployment(updatedReplicas=3, replicas=3, availableReplicas=2),
            False,
            "2 of 3 updated replicas are available",
        ),
        (
            deployment(updatedReplicas=3, replicas=3, availableReplicas=3),
            True,
            "3 of 3 replicas updated and available",
        ),
    ],
    ids=["generation-not-observed", "updating", "old-pending", "not-available", "complete"],
)
def test_a_rollout_is_judged_like_kubectl_rollout_status(
    body: dict[str, Any], done: bool, progress: str
) -> None:
    state = rollout_state(body)
    assert (state.done, state.progress) == (done, progress)


def test_a_progress_deadline_exceeded_condition_fails_the_rollout() -> None:
    condition = {
        "type": "Progressing",
        "status": "False",
        "reason": "ProgressDeadlineExceeded",
        "message": 'ReplicaSet "api-7d" has timed out progressing.',
    }
    with pytest.raises(DeployFailed, match="exceeded its progress deadline") as failure:
        rollout_state(deployment(updatedReplicas=1, replicas=3, conditions=[condition]))
    assert failure.value.reason == "ProgressDeadlineExceeded"


def test_the_image_patch_tests_the_container_name_before_replacing_the_image() -> None:
    assert image_patch(deployment(), "api", "api:v42") == [
        {"op": "test", "path": "/spec/template/spec/containers/1/name", "value": "api"},
        {"op": "replace", "path": "/spec/template/spec/containers/1/image", "value": "api:v42"},
    ]


def test_no_patch_is_needed_when_the_image_is_already_set() -> None:
    assert image_patch(deployment(), "api", "api:v41") is None


def test_an_unknown_container_names_the_ones_that_exist() -> None:
    with pytest.raises(DeployFailed, match="no container 'web'; its containers are sidecar, api") as failure:
        image_patch(deployment(), "web", "api:v42")
    assert failure.value.reason == "ContainerNotFound"


def pod(message: str, exit_code: int = 1, name: str = "deploy") -> dict[str, Any]:
    terminated = {"exitCode": exit_code, "message": message}
    return {"status": {"containerStatuses": [{"name": name, "state": {"terminated": terminated}}]}}


def test_a_deployer_termination_message_keeps_its_reason() -> None:
    detail = failure_detail([pod("Forbidden: cannot read deployment/api in namespace shop: denied")])
    assert detail == ("Forbidden", "the deploy failed: cannot read deployment/api in namespace shop: denied")


def test_another_containers_message_is_reported_as_a_job_failure() -> None:
    assert failure_detail([pod("migration 0042 failed", name="migrate")]) == (
        "JobFailed",
        "container migrate failed: migration 0042 failed",
    )


def test_pods_without_a_failure_message_say_nothing() -> None:
    assert failure_detail([pod("", 1), pod("done", 0)]) is None
