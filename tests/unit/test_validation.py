"""The validation entry point: raw object + now + siblings -> Valid or Invalid(reason, message)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from sundial.api.models import AmbiguousTimePolicy, ConcurrencyPolicy, DstPolicy, NonexistentTimePolicy
from sundial.api.reasons import Invalid, Reason
from sundial.decide.validation import Valid, timings, validate, validate_namespace
from sundial.timing.schedule import CronSchedule, OneShot

NOW = datetime(2027, 1, 1, tzinfo=UTC)
TARGET = {"deployment": {"name": "api", "container": "api", "image": "registry.example.com/api:v42"}}


def sd(name: str = "api-v42", namespace: str | None = "shop", **spec: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    return {
        "apiVersion": "sundial.dev/v1alpha1",
        "kind": "ScheduledDeployment",
        "metadata": metadata,
        "spec": {**TARGET, **spec},
    }


def test_a_good_object_is_valid_with_defaults_applied() -> None:
    verdict = validate(sd(runAt="2030-03-14T21:00", timeZone="Europe/Berlin"), NOW)
    assert isinstance(verdict, Valid)
    assert (verdict.name, verdict.namespace) == ("api-v42", "shop")
    assert verdict.spec.dst_policy == DstPolicy(
        nonexistent_time=NonexistentTimePolicy.SHIFT_FORWARD, ambiguous_time=AmbiguousTimePolicy.EARLIER
    )
    assert verdict.spec.concurrency_policy is ConcurrencyPolicy.FORBID
    assert (verdict.spec.service_account_name, verdict.spec.starting_deadline_seconds) == (
        "sundial-deployer",
        600,
    )
    assert (verdict.spec.successful_jobs_history_limit, verdict.spec.failed_jobs_history_limit) == (3, 1)
    assert isinstance(verdict.timing.when, OneShot)


def test_a_missing_namespace_means_default() -> None:
    verdict = validate(sd(namespace=None, schedule="@daily"), NOW)
    assert isinstance(verdict, Valid)
    assert verdict.namespace == "default"
    assert isinstance(verdict.timing.when, CronSchedule)


BAD = [
    ({"runAt": 20300314}, Reason.INVALID_RUN_AT, "spec.runAt: input should be a valid string (got 20300314)"),
    ({"schedule": ["0", "*"]}, Reason.INVALID_SCHEDULE, "spec.schedule: input should be a valid string"),
    ({"timeZone": 1}, Reason.INVALID_TIME_ZONE, "spec.timeZone: input should be a valid string (got 1)"),
    ({"timeZone": ""}, Reason.INVALID_TIME_ZONE, "spec.timeZone: string should have at least 1 character"),
    (
        {"runat": "2030-01-01T00:00"},
        Reason.INVALID_SPEC,
        "spec.runat is not a field of a ScheduledDeployment; did you mean 'runAt'?",
    ),
    ({"dstPolicy": {"nonExistentTime": "Skip"}}, Reason.INVALID_SPEC, "did you mean 'nonexistentTime'?"),
    ({"zzz": 1}, Reason.INVALID_SPEC, "fields are camelCase, such as runAt and timeZone"),
    ({"suspend": "maybe"}, Reason.INVALID_SPEC, "spec.suspend: input should be a valid boolean"),
    ({"dependsOn": {"leadTime": "5m"}}, Reason.INVALID_SPEC, "spec.dependsOn.name is required"),
    (
        {"jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}}},
        Reason.INVALID_SPEC,
        "containers: list should have at least 1 item",
    ),
    (
        {"deployment": {}},
        Reason.INVALID_SPEC,
        "spec.deployment.name is required; spec.deployment.container is required; "
        "spec.deployment.image is required",
    ),
    (
        {
            "deployment": None,
            "patch": {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "name": "c",
                "mergePatch": {"metadata": {"name": "other"}},
            },
        },
        Reason.INVALID_PATCH,
        "spec.patch.mergePatch may not change metadata.name",
    ),
    (
        {
            "deployment": None,
            "patch": {"apiVersion": "v1", "kind": "ConfigMap", "name": "c", "mergePatch": {}},
        },
        Reason.INVALID_PATCH,
        "spec.patch.mergePatch is empty",
    ),
    (
        {
            "deployment": None,
            "patch": {"apiVersion": "apps", "kind": "deployment", "name": "c", "mergePatch": {"kind": "Pod"}},
        },
        Reason.INVALID_PATCH,
        "spec.patch.apiVersion must be GROUP/VERSION such as apps/v1",
    ),
    (
        {
            "deployment": None,
            "patch": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": "c",
                "mergePatch": {"kind": "Pod"},
            },
        },
        Reason.INVALID_PATCH,
        "may not change apiVersion or kind",
    ),
    (
        {"deployment": None, "patch": {"apiVersion": "v1", "kind": "ConfigMap", "name": "c"}},
        Reason.INVALID_PATCH,
        "spec.patch needs exactly one of mergePatch and jsonPatch",
    ),
    (
        {
            "deployment": None,
            "patch": {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "name": "c",
                "jsonPatch": [{"op": "replace", "path": "/metadata/namespace", "value": "x"}],
            },
        },
        Reason.INVALID_PATCH,
        "spec.patch.jsonPatch may not touch /metadata/namespace",
    ),
    (
        {
            "deployment": None,
            "patch": {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "name": "c",
                "jsonPatch": [{"op": "frobnicate", "path": "/data/x"}],
            },
        },
        Reason.INVALID_PATCH,
        "'frobnicate'",
    ),
    (
        {"deployment": None},
        Reason.INVALID_SPEC,
        "set exactly one of deployment, ecsService, patch or jobTemplate",
    ),
    (
        {
            "failedJobsHistoryLimit": -1,
            "successfulJobsHistoryLimit": -1,
            "startingDeadlineSeconds": 0,
            "suspend": 3,
        },
        Reason.INVALID_SPEC,
        "and 1 more problem",
    ),
]


@pytest.mark.parametrize(("spec", "reason", "message"), BAD)
def test_shape_errors_become_one_readable_reason(spec: dict[str, Any], reason: Reason, message: str) -> None:
    verdict = validate(sd(**spec), NOW)
    assert isinstance(verdict, Invalid)
    assert verdict.reason is reason
    assert message in verdict.message
    assert "pydantic" not in verdict.message
    assert "type=" not in verdict.message


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        (
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}, "spec": {}},
            "apiVersion must be sundial.dev/v1alpha1",
        ),
        (
            {
                "apiVersion": "sundial.dev/v1alpha1",
                "kind": "ScheduledDeployment",
                "metadata": {},
                "spec": TARGET,
            },
            "metadata.name is required",
        ),
        (
            {"apiVersion": "sundial.dev/v1alpha1", "kind": "ScheduledDeployment", "metadata": {"name": "x"}},
            "spec is required",
        ),
    ],
)
def test_an_object_that_is_not_a_named_scheduled_deployment_is_invalid(
    obj: dict[str, Any], message: str
) -> None:
    verdict = validate(obj, NOW)
    assert isinstance(verdict, Invalid)
    assert verdict.reason is Reason.INVALID_SPEC
    assert message in verdict.message


def test_own_timing_errors_are_reported_before_dependency_errors() -> None:
    verdict = validate(
        sd(runAt="2030-01-01T00:00", timeZone="Nowhere/Land", dependsOn={"name": "missing"}), NOW
    )
    assert isinstance(verdict, Invalid)
    assert verdict.reason is Reason.INVALID_TIME_ZONE


def test_dependencies_are_resolved_among_the_siblings() -> None:
    siblings = {"db": sd("db"), "schema": sd("schema", dependsOn={"name": "db", "leadTime": "1h"})}
    verdict = validate(sd(runAt="2030-01-01T00:00", dependsOn={"name": "schema"}), NOW, siblings)
    assert isinstance(verdict, Valid)
    assert [(link.name, link.lead.total_seconds()) for link in verdict.timing.chain] == [
        ("schema", 900),
        ("db", 4500),
    ]


def test_the_object_s_own_spec_wins_over_its_stale_copy_among_the_siblings() -> None:
    stale = sd(dependsOn={"name": "api-v42"})
    verdict = validate(sd(runAt="2030-01-01T00:00"), NOW, {"api-v42": stale})
    assert isinstance(verdict, Valid)


def test_a_broken_sibling_only_matters_when_the_chain_reaches_it() -> None:
    broken = sd("broken", dependsOn={"leadTime": "5m"})
    assert isinstance(validate(sd(runAt="2030-01-01T00:00"), NOW, {"broken": broken}), Valid)
    verdict = validate(sd(runAt="2030-01-01T00:00", dependsOn={"name": "broken"}), NOW, {"broken": broken})
    assert isinstance(verdict, Invalid)
    assert verdict.message == (
        "ScheduledDeployment 'broken' (in the chain api-v42 -> broken) has an unusable dependsOn: "
        "spec.dependsOn.name is required"
    )


def test_a_past_run_at_is_only_an_error_before_the_object_has_run() -> None:
    obj = sd(runAt="2026-06-01T00:00")
    verdict = validate(obj, NOW)
    assert isinstance(verdict, Invalid)
    assert verdict.reason is Reason.RUN_AT_IN_PAST
    assert isinstance(validate(obj, NOW, has_run=True), Valid)


def test_validating_a_namespace_keeps_order_and_yields_plans_of_the_valid_objects() -> None:
    objects = [
        sd("api", runAt="2030-01-01T00:00", dependsOn={"name": "db"}),
        sd("bad", timeZone="Nowhere"),
        sd("db"),
    ]
    results = validate_namespace(objects, NOW, already_ran=["api"])
    assert [obj["metadata"]["name"] for obj, _ in results] == ["api", "bad", "db"]
    assert [type(verdict).__name__ for _, verdict in results] == ["Valid", "Invalid", "Valid"]
    assert sorted(timings(verdict for _, verdict in results)) == ["api", "db"]
