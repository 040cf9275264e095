"""The patch target's waiting rules (sundial.deploy.readiness) and its deployer's pure parts, table-tested."""

from __future__ import annotations

from typing import Any

import pytest

from sundial.deploy import DeployFailed
from sundial.deploy.patch import (
    failed_test,
    group_path,
    patch_and_wait,
    plural_of,
    requested_changes,
    with_stamps,
)
from sundial.deploy.readiness import Progress, WaitFor, readiness

CURRENT, IN_PROGRESS, FAILED = Progress.CURRENT, Progress.IN_PROGRESS, Progress.FAILED


def obj(
    kind: str = "Kustomization",
    api_version: str = "kustomize.toolkit.fluxcd.io/v1",
    generation: int | None = 2,
    observed: int | str | None = 2,
    conditions: list[dict[str, Any]] | None = None,
    **status: Any,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "apps"}
    if generation is not None:
        metadata["generation"] = generation
    body_status: dict[str, Any] = dict(status)
    if observed is not None:
        body_status["observedGeneration"] = observed
    if conditions is not None:
        body_status["conditions"] = conditions
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata, "status": body_status}


def cond(kind: str, status: str, reason: str = "", message: str = "", **extra: Any) -> dict[str, Any]:
    return {"type": kind, "status": status, "reason": reason, "message": message, **extra}


DEFAULT = WaitFor()

CASES: list[tuple[str, dict[str, Any], WaitFor, int | None, Progress, str]] = [
    # (what, object, waitFor, patched generation, progress, a fragment of the message)
    (
        "Flux: Ready=True at the observed generation",
        obj(conditions=[cond("Ready", "True", "ReconciliationSucceeded", "Applied revision: main@sha1:abc")]),
        DEFAULT,
        2,
        CURRENT,
        "Applied revision",
    ),
    (
        "the controller has not seen the patch yet",
        obj(observed=1, conditions=[cond("Ready", "True")]),
        DEFAULT,
        2,
        IN_PROGRESS,
        "observe generation 2 (at 1)",
    ),
    (
        "the patch's generation counts even if the body lags",
        obj(generation=2, observed=2, conditions=[cond("Ready", "True")]),
        DEFAULT,
        3,
        IN_PROGRESS,
        "generation 3",
    ),
    (
        "Flux: Ready=False while progressing",
        obj(conditions=[cond("Ready", "False", "Progressing", "Reconciliation in progress")]),
        DEFAULT,
        2,
        IN_PROGRESS,
        "Reconciliation in progress",
    ),
    (
        "Flux: Ready=False with a failure reason",
        obj(
            conditions=[
                cond("Ready", "False", "BuildFailed", "kustomize build failed: accumulating resources")
            ]
        ),
        DEFAULT,
        2,
        FAILED,
        "BuildFailed: kustomize build failed",
    ),
    (
        "Reconciling=True wins over a stale Ready",
        obj(conditions=[cond("Reconciling", "True", "Progressing", "working"), cond("Ready", "True")]),
        DEFAULT,
        2,
        IN_PROGRESS,
        "reconciling",
    ),
    (
        "Stalled=True fails",
        obj(conditions=[cond("Stalled", "True", "InvalidPath", "path ./apps not found")]),
        DEFAULT,
        2,
        FAILED,
        "stalled: InvalidPath: path ./apps not found",
    ),
    (
        "a Ready condition of an older generation is stale",
        obj(conditions=[cond("Ready", "True", observedGeneration=1)]),
        DEFAULT,
        2,
        IN_PROGRESS,
        "condition Ready of generation 2",
    ),
    (
        "Ready=Unknown is in progress",
        obj(conditions=[cond("Ready", "Unknown", "Progressing")]),
        DEFAULT,
        2,
        IN_PROGRESS,
        "to be Ready",
    ),
    (
        "Healthy like Ready",
        obj(kind="Widget", api_version="example.dev/v1", conditions=[cond("Healthy", "True")]),
        DEFAULT,
        2,
        CURRENT,
        "is Healthy",
    ),
    (
        "no conditions: done once observed",
        obj(kind="Widget", api_version="example.dev/v1", conditions=[]),
        DEFAULT,
        2,
        CURRENT,
        "no condition",
    ),
    (
        "no status at all: done",
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}},
        DEFAULT,
        None,
        CURRENT,
        "no condition",
    ),
    (
        "being deleted fails",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "x", "deletionTimestamp": "2027-01-01T00:00:00Z"},
        },
        DEFAULT,
        None,
        FAILED,
        "being deleted",
    ),
    (
        "a named condition, met",
        obj(conditions=[cond("Available", "True")]),
        WaitFor("Available"),
        2,
        CURRENT,
        "Available=True",
    ),
    (
        "a named condition, not yet (even if Ready failed)",
        obj(
            conditions=[
                cond("Available", "False", "MinimumReplicasUnavailable", "0 of 2"),
                cond("Ready", "False", "Failed"),
            ]
        ),
        WaitFor("Available"),
        2,
        IN_PROGRESS,
        "it is False: MinimumReplicasUnavailable: 0 of 2",
    ),
    (
        "a named condition, absent",
        obj(conditions=[]),
        WaitFor("Released"),
        2,
        IN_PROGRESS,
        "to have condition Released",
    ),
    (
        "a named condition with status False wanted",
        obj(conditions=[cond("Suspended", "False")]),
        WaitFor("Suspended", "False"),
        2,
        CURRENT,
        "Suspended=False",
    ),
    (
        "a named condition, but Stalled",
        obj(conditions=[cond("Stalled", "True", "X", "stuck"), cond("Ready", "False")]),
        WaitFor("Ready"),
        2,
        FAILED,
        "stuck",
    ),
    (
        "Argo Rollout: Healthy",
        obj(kind="Rollout", api_version="argoproj.io/v1alpha1", observed="2", phase="Healthy"),
        DEFAULT,
        2,
        CURRENT,
        "Healthy",
    ),
    (
        "Argo Rollout: observedGeneration is a string",
        obj(kind="Rollout", api_version="argoproj.io/v1alpha1", observed="1", phase="Healthy"),
        DEFAULT,
        2,
        IN_PROGRESS,
        "generation 2 (at 1)",
    ),
    (
        "Argo Rollout: a failed analysis",
        obj(
            kind="Rollout",
            api_version="argoproj.io/v1alpha1",
            observed="2",
            phase="Degraded",
            message='RolloutAborted: update to revision 3 aborted: Metric "success-rate" assessed Failed',
        ),
        DEFAULT,
        2,
        FAILED,
        "assessed Failed",
    ),
    (
        "Argo Rollout: progressing",
        obj(
            kind="Rollout",
            api_version="argoproj.io/v1alpha1",
            observed="2",
            phase="Progressing",
            message="more replicas need to be updated",
        ),
        DEFAULT,
        2,
        IN_PROGRESS,
        "more replicas",
    ),
    (
        "Argo Rollout: paused",
        obj(kind="Rollout", api_version="argoproj.io/v1alpha1", observed="2", phase="Paused"),
        DEFAULT,
        2,
        IN_PROGRESS,
        "Paused",
    ),
    (
        "Deployment: rolled out",
        obj(kind="Deployment", api_version="apps/v1", replicas=2, updatedReplicas=2, availableReplicas=2)
        | {"spec": {"replicas": 2}},
        DEFAULT,
        2,
        CURRENT,
        "2 of 2",
    ),
    (
        "Deployment: rolling",
        obj(kind="Deployment", api_version="apps/v1", replicas=3, updatedReplicas=1, availableReplicas=2)
        | {"spec": {"replicas": 2}},
        DEFAULT,
        2,
        IN_PROGRESS,
        "1 of 2 replicas updated",
    ),
    (
        "Deployment: past its progress deadline",
        obj(
            kind="Deployment",
            api_version="apps/v1",
            conditions=[
                cond(
                    "Progressing",
                    "False",
                    "ProgressDeadlineExceeded",
                    "ReplicaSet api-7 has timed out progressing.",
                )
            ],
        )
        | {"spec": {"replicas": 2}},
        DEFAULT,
        2,
        FAILED,
        "timed out progressing",
    ),
    (
        "a Deployment of another group is not judged as apps",
        obj(kind="Deployment", api_version="example.dev/v1", conditions=[cond("Ready", "True")]),
        DEFAULT,
        2,
        CURRENT,
        "is Ready",
    ),
]


@pytest.mark.parametrize(
    ("what", "body", "wait_for", "generation", "progress", "fragment"), CASES, ids=[c[0] for c in CASES]
)
def test_readiness(
    what: str,
    body: dict[str, Any],
    wait_for: WaitFor,
    generation: int | None,
    progress: Progress,
    fragment: str,
) -> None:
    verdict = readiness(body, wait_for, generation)
    assert (verdict.progress, fragment in verdict.message) == (progress, True), verdict
    if progress is FAILED:
        assert verdict.reason and verdict.reason[0].isupper() and " " not in verdict.reason


def test_a_flux_reconcile_request_must_be_handled_before_the_ready_condition_counts() -> None:
    ready = [cond("Ready", "True", "ReconciliationSucceeded", "Applied revision: v41")]
    body = obj(conditions=ready, lastHandledReconcileAt="2027-02-09T08:00:00Z")
    body["metadata"]["annotations"] = {"reconcile.fluxcd.io/requestedAt": "2027-02-10T08:00:00Z"}
    waiting = readiness(body, DEFAULT, 2)
    assert waiting.progress is IN_PROGRESS and "reconcile request 2027-02-10T08:00:00Z" in waiting.message
    body["status"]["lastHandledReconcileAt"] = "2027-02-10T08:00:00Z"
    assert readiness(body, DEFAULT, 2).progress is CURRENT
    del body["status"]["lastHandledReconcileAt"]
    assert readiness(body, DEFAULT, 2).progress is IN_PROGRESS


def application(**fields: Any) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": "shop"},
        **fields,
    }


@pytest.mark.parametrize(
    ("body", "progress", "fragment"),
    [
        (
            application(status={"sync": {"status": "Synced"}, "health": {"status": "Healthy"}}),
            CURRENT,
            "Synced and Healthy",
        ),
        # The sync just requested is not taken up yet: the last operationState is an older sync's.
        (
            application(
                operation={"sync": {"revision": "v42"}},
                status={
                    "sync": {"status": "Synced"},
                    "health": {"status": "Healthy"},
                    "operationState": {"phase": "Failed"},
                },
            ),
            IN_PROGRESS,
            "start the sync",
        ),
        (application(status={"operationState": {"phase": "Running"}}), IN_PROGRESS, "to finish"),
        (
            application(
                status={
                    "operationState": {"phase": "Failed", "message": "one or more objects failed to apply"}
                }
            ),
            FAILED,
            "sync Failed: one or more objects failed to apply",
        ),
        (
            application(
                status={
                    "operationState": {"phase": "Succeeded"},
                    "sync": {"status": "Synced"},
                    "health": {"status": "Progressing"},
                }
            ),
            IN_PROGRESS,
            "Synced, Progressing",
        ),
        (
            application(
                status={
                    "operationState": {"phase": "Succeeded"},
                    "sync": {"status": "Synced"},
                    "health": {"status": "Degraded", "message": "api: CrashLoopBackOff"},
                }
            ),
            FAILED,
            "CrashLoopBackOff",
        ),
    ],
)
def test_an_argo_cd_application_is_done_when_its_sync_is_synced_and_healthy(
    body: dict[str, Any], progress: Progress, fragment: str
) -> None:
    verdict = readiness(body, DEFAULT)
    assert verdict.progress is progress and fragment in verdict.message, verdict


DISCOVERY = {
    "kind": "APIResourceList",
    "resources": [
        {"name": "kustomizations", "kind": "Kustomization", "namespaced": True},
        {"name": "kustomizations/status", "kind": "Kustomization", "namespaced": True},
        {"name": "clusterthings", "kind": "ClusterThing", "namespaced": False},
    ],
}


def test_the_resource_comes_from_discovery_and_a_wrong_kind_says_what_to_check() -> None:
    assert plural_of(DISCOVERY, "kustomize.toolkit.fluxcd.io/v1", "Kustomization") == "kustomizations"
    with pytest.raises(DeployFailed, match="serves no kind Kustomisation") as missing:
        plural_of(DISCOVERY, "kustomize.toolkit.fluxcd.io/v1", "Kustomisation")
    assert missing.value.reason == "KindNotServed"
    with pytest.raises(DeployFailed, match="cluster-scoped") as scoped:
        plural_of(DISCOVERY, "x/v1", "ClusterThing")
    assert scoped.value.reason == "ClusterScopedKind"
    assert (group_path("apps/v1"), group_path("v1")) == ("/apis/apps/v1", "/api/v1")


def test_stamps_are_annotations_set_to_the_run_time_beside_the_patch() -> None:
    patch = {"spec": {"suspend": False}, "metadata": {"annotations": {"team": "shop"}}}
    stamped = with_stamps(patch, ["reconcile.fluxcd.io/requestedAt"], "2027-02-10T08:00:00Z")
    assert stamped == {
        "spec": {"suspend": False},
        "metadata": {
            "annotations": {"team": "shop", "reconcile.fluxcd.io/requestedAt": "2027-02-10T08:00:00Z"}
        },
    }
    assert patch["metadata"] == {"annotations": {"team": "shop"}}, "the spec's patch is not changed"
    assert with_stamps(patch, [], "t") == patch


class FakeTarget:
    """An object whose status moves on each read, as a controller would move it."""

    def __init__(self, bodies: list[dict[str, Any]]) -> None:
        self.bodies = bodies
        self.patched: list[dict[str, Any]] = []

    def read(self) -> dict[str, Any]:
        return self.bodies.pop(0) if len(self.bodies) > 1 else self.bodies[0]

    def patch(self, merge_patch: dict[str, Any]) -> dict[str, Any]:
        self.patched.append(merge_patch)
        return obj(generation=3, observed=2, conditions=[cond("Ready", "True")])


def run(target: FakeTarget, timeout: float = 60) -> tuple[str, list[str]]:
    now = [0.0]
    lines: list[str] = []

    def sleep(seconds: float) -> None:
        now[0] += seconds

    message = patch_and_wait(
        target, [{"spec": {"suspend": False}}], DEFAULT, timeout=timeout, sleep=sleep, clock=lambda: now[0],
        out=lines.append,
    )  # fmt: skip
    return message, lines


def test_the_deployer_patches_then_waits_for_the_new_generation_not_the_old_ready() -> None:
    before = obj(generation=2, observed=2, conditions=[cond("Ready", "True")])
    progressing = obj(
        generation=3, observed=3, conditions=[cond("Ready", "False", "Progressing", "applying")]
    )
    done = obj(
        generation=3, observed=3, conditions=[cond("Ready", "True", "ReconciliationSucceeded", "rev v42")]
    )
    target = FakeTarget([before, progressing, done])
    message, lines = run(target)
    assert target.patched == [{"spec": {"suspend": False}}]
    assert "rev v42" in message
    assert any("observe generation 3 (at 2)" in line for line in lines), lines
    assert any("applying" in line for line in lines), lines


def test_a_failed_reconcile_carries_the_objects_message_and_a_slow_one_times_out() -> None:
    failed = obj(
        generation=3, observed=3, conditions=[cond("Ready", "False", "HealthCheckFailed", "api not ready")]
    )
    with pytest.raises(DeployFailed, match="HealthCheckFailed: api not ready") as error:
        run(FakeTarget([failed, failed]))
    assert error.value.reason == "HealthCheckFailed"
    slow = obj(generation=3, observed=2, conditions=[cond("Ready", "True")])
    with pytest.raises(DeployFailed, match="not done within 10s: waiting for the controller") as timeout:
        run(FakeTarget([slow, slow]), timeout=10)
    assert timeout.value.reason == "Timeout"


def test_the_changes_sent_stamps_in_the_merge_patch_or_as_their_own_before_a_json_patch() -> None:
    environ = {"SUNDIAL_SCHEDULED_TIME": "2027-02-10T08:00:00Z"}
    stamp = {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "2027-02-10T08:00:00Z"}}}
    merged = requested_changes(
        '{"spec":{"suspend":false}}', None, ["reconcile.fluxcd.io/requestedAt"], environ
    )
    assert merged == [{"spec": {"suspend": False}, **stamp}]
    ops = '[{"op":"replace","path":"/spec/x","value":1}]'
    assert requested_changes(None, ops, ["reconcile.fluxcd.io/requestedAt"], environ) == [
        stamp,
        [{"op": "replace", "path": "/spec/x", "value": 1}],
    ]
    assert requested_changes(None, ops, [], {}) == [[{"op": "replace", "path": "/spec/x", "value": 1}]]
    for merge, operations, reason in (("[1]", None, "InvalidPatch"), (None, "{}", "InvalidPatch")):
        with pytest.raises(DeployFailed) as error:
            requested_changes(merge, operations, [], environ)
        assert error.value.reason == reason
    with pytest.raises(DeployFailed, match="needs SUNDIAL_SCHEDULED_TIME"):
        requested_changes("{}", None, ["a"], {})


def test_a_json_patch_whose_test_fails_on_the_object_as_read_says_what_it_found() -> None:
    deployment = {"kind": "Deployment", "metadata": {"name": "api"},
                  "spec": {"template": {"spec": {"containers": [{"name": "api", "image": "a:1"}]}}},
                  "metadata~": {"a/b": 1}}  # fmt: skip
    test = {"op": "test", "path": "/spec/template/spec/containers/0/name", "value": "sidecar"}
    assert failed_test(deployment, [test]) == (
        "the JSON patch tests /spec/template/spec/containers/0/name for "
        '"sidecar", and deployment/api has "api"'
    )
    assert (
        failed_test(deployment, [{**test, "value": "api"}, {"op": "replace", "path": "/x", "value": 1}])
        is None
    )
    assert "does not have" in (
        failed_test(deployment, [{**test, "path": "/spec/template/spec/containers/3/name"}]) or ""
    )
    assert failed_test(deployment, [{"op": "test", "path": "/metadata~0/a~1b", "value": 1}]) is None
