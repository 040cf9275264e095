"""The Job builder: one run of a ScheduledDeployment as a batch/v1 Job, built without touching the API."""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from sundial.cli.main import build_parser
from sundial.decide.jobs import (
    DEPLOY_DEADLINE_SECONDS,
    ECS_CREDENTIAL_KEYS,
    JobRun,
    build_job,
    owner_label_value,
)
from sundial.deploy.ecs import SECRET_VARIABLES
from sundial.timing.names import job_name

SCHEDULED = datetime(2027, 3, 14, 7, 30, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")
IMAGE = "registry.example.com/sundial:v1.2.3"
UID = "6f1c2a5e-0b8d-4c1e-9a43-2d7e8c0f1b55"

DEPLOYMENT: dict[str, Any] = {
    "deployment": {"name": "api", "container": "app", "image": "registry.example.com/api:v42"}
}
ECS: dict[str, Any] = {
    "ecsService": {
        "cluster": "prod",
        "service": "api",
        "container": "app",
        "image": "123456789012.dkr.ecr.eu-central-1.amazonaws.com/api:v42",
        "region": "eu-central-1",
        "credentialsSecret": "aws-deployer",
    }
}
PATCH: dict[str, Any] = {
    "patch": {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "name": "apps",
        "mergePatch": {"spec": {"suspend": False, "path": "./apps"}},
        "stampAnnotations": ["reconcile.fluxcd.io/requestedAt"],
        "waitFor": {"condition": "Ready", "status": "True"},
        "timeout": "20m",
    }
}
TEMPLATE: dict[str, Any] = {
    "jobTemplate": {
        "metadata": {"labels": {"team": "payments"}, "annotations": {"owner": "payments@example.com"}},
        "spec": {
            "backoffLimit": 2,
            "template": {
                "metadata": {"labels": {"app": "migrate"}},
                "spec": {
                    "restartPolicy": "OnFailure",
                    "containers": [
                        {
                            "name": "migrate",
                            "image": "registry.example.com/migrate:v7",
                            "args": ["--apply"],
                            "env": [
                                {"name": "DATABASE", "value": "orders"},
                                {"name": "SUNDIAL_SCHEDULED_TIME", "value": "the user's own value"},
                                {"name": "LOG_LEVEL", "value": "debug"},
                            ],
                        },
                        {"name": "sidecar", "image": "registry.example.com/sidecar:v1"},
                    ],
                },
            },
        },
    }
}


def scheduled_deployment(target: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "sundial.dev/v1alpha1",
        "kind": "ScheduledDeployment",
        "metadata": {
            "name": "api",
            "namespace": "shop",
            "uid": UID,
            "generation": 3,
            "creationTimestamp": "2027-03-01T12:00:00Z",
            "resourceVersion": "4711",
        },
        "spec": {"runAt": "2027-03-14T08:30", "timeZone": "Europe/Berlin", **copy.deepcopy(target), **spec},
    }


def a_run(role: str = "Deploy", owner: str = "api") -> JobRun:
    return JobRun(
        job_name=job_name(owner, SCHEDULED),
        role=role,
        scheduled_time=SCHEDULED,
        local_time=SCHEDULED.astimezone(BERLIN),
        time_zone="Europe/Berlin",
        fired_time=SCHEDULED + timedelta(milliseconds=42),
    )


RUN = a_run()
SUNDIAL_LABELS = {
    "app.kubernetes.io/managed-by": "sundial",
    "sundial.dev/scheduled-deployment": "api",
    "sundial.dev/role": "deploy",
}
SUNDIAL_ENV = [
    {"name": "SUNDIAL_SCHEDULED_DEPLOYMENT", "value": "api"},
    {"name": "SUNDIAL_ROLE", "value": "Deploy"},
    {"name": "SUNDIAL_JOB_NAME", "value": RUN.job_name},
    {"name": "SUNDIAL_SCHEDULED_TIME", "value": "2027-03-14T07:30:00Z"},
    {"name": "SUNDIAL_LOCAL_TIME", "value": "2027-03-14T08:30:00+01:00"},
    {"name": "SUNDIAL_TIME_ZONE", "value": "Europe/Berlin"},
    {"name": "SUNDIAL_FIRED_TIME", "value": "2027-03-14T07:30:00.042Z"},
]


def pod_spec(job: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = job["spec"]["template"]["spec"]
    return spec


# --------------------------------------------------------------------------------------------------- identity


@pytest.mark.parametrize(
    "target", [DEPLOYMENT, ECS, PATCH, TEMPLATE], ids=["deployment", "ecsService", "patch", "jobTemplate"]
)
def test_the_job_is_named_after_the_run_and_lives_beside_its_object(target: dict[str, Any]) -> None:
    job = build_job(scheduled_deployment(target), RUN, IMAGE)
    assert job["apiVersion"] == "batch/v1"
    assert job["kind"] == "Job"
    assert job["metadata"]["name"] == RUN.job_name
    assert job["metadata"]["namespace"] == "shop"


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("api", "api"),
        ("a" * 63, "a" * 63),
        ("a" * 64, "a" * 54 + "-ffe054fe"),
        (
            "x" * 53 + "." + "y" * 199,
            "x" * 53 + "-" + hashlib.sha256(("x" * 53 + "." + "y" * 199).encode()).hexdigest()[:8],
        ),
    ],
    ids=["short", "63 characters", "64 characters", "a dot where it is cut"],
)
def test_the_owner_label_is_the_name_shortened_to_a_valid_label_value(name: str, label: str) -> None:
    assert owner_label_value(name) == label
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?", label)


@pytest.mark.parametrize(
    "target", [DEPLOYMENT, ECS, PATCH, TEMPLATE], ids=["deployment", "ecsService", "patch", "jobTemplate"]
)
def test_the_job_is_controlled_by_its_scheduled_deployment(target: dict[str, Any]) -> None:
    job = build_job(scheduled_deployment(target), RUN, IMAGE)
    assert job["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "sundial.dev/v1alpha1",
            "kind": "ScheduledDeployment",
            "name": "api",
            "uid": UID,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


@pytest.mark.parametrize(
    "target", [DEPLOYMENT, ECS, PATCH, TEMPLATE], ids=["deployment", "ecsService", "patch", "jobTemplate"]
)
def test_the_job_carries_the_run_in_its_annotations(target: dict[str, Any]) -> None:
    annotations = build_job(scheduled_deployment(target), RUN, IMAGE)["metadata"]["annotations"]
    assert annotations["sundial.dev/scheduled-time"] == "2027-03-14T07:30:00Z"
    assert annotations["sundial.dev/local-time"] == "2027-03-14T08:30:00+01:00"
    assert annotations["sundial.dev/time-zone"] == "Europe/Berlin"
    assert annotations["sundial.dev/fired-time"] == "2027-03-14T07:30:00.042Z"


@pytest.mark.parametrize(
    ("role", "label"), [("Deploy", "deploy"), ("Dependency", "dependency")], ids=["deploy", "dependency"]
)
def test_the_role_is_a_lower_case_label_and_a_variable(role: str, label: str) -> None:
    job = build_job(scheduled_deployment(DEPLOYMENT), a_run(role), IMAGE)
    assert job["metadata"]["labels"]["sundial.dev/role"] == label
    assert job["spec"]["template"]["metadata"]["labels"]["sundial.dev/role"] == label
    assert {"name": "SUNDIAL_ROLE", "value": role} in pod_spec(job)["containers"][0]["env"]


def test_the_same_run_always_builds_the_same_job() -> None:
    body = scheduled_deployment(TEMPLATE)
    assert build_job(body, RUN, IMAGE) == build_job(body, RUN, IMAGE)


# ----------------------------------------------------------------------------------------- built-in deployers


def test_a_deployment_target_runs_sundial_deploy_kubernetes_from_the_deployer_image() -> None:
    job = build_job(scheduled_deployment(DEPLOYMENT), RUN, IMAGE)
    [container] = pod_spec(job)["containers"]
    assert container["name"] == "deploy"
    assert container["image"] == IMAGE
    assert container["args"] == [
        "deploy", "kubernetes",
        "--namespace", "shop",
        "--deployment", "api",
        "--container", "app",
        "--image", "registry.example.com/api:v42",
    ]  # fmt: skip
    assert "envFrom" not in container


def test_a_patch_target_runs_sundial_deploy_patch_with_its_patch_as_canonical_json() -> None:
    job = build_job(scheduled_deployment(PATCH), RUN, IMAGE)
    [container] = pod_spec(job)["containers"]
    assert (container["name"], container["image"]) == ("deploy", IMAGE)
    assert container["args"] == [
        "deploy", "patch",
        "--namespace", "shop",
        "--api-version", "kustomize.toolkit.fluxcd.io/v1",
        "--kind", "Kustomization",
        "--name", "apps",
        "--merge-patch", '{"spec":{"path":"./apps","suspend":false}}',
        "--timeout", "20m",
        "--stamp", "reconcile.fluxcd.io/requestedAt",
        "--wait-condition", "Ready", "--wait-status", "True",
    ]  # fmt: skip
    # It patches through the Kubernetes API, as its own service account, and reads the run's time.
    assert "automountServiceAccountToken" not in pod_spec(job)
    assert pod_spec(job)["serviceAccountName"] == "sundial-deployer"
    assert {"name": "SUNDIAL_SCHEDULED_TIME", "value": "2027-03-14T07:30:00Z"} in container["env"]
    # Kubernetes never stops it before its own timeout (20m) has said where it stood.
    assert job["spec"]["activeDeadlineSeconds"] == 25 * 60  # its timeout, 20m, and 5m to start and report
    short_wait = {"patch": {**PATCH["patch"], "timeout": "1m"}}
    assert build_job(scheduled_deployment(short_wait), RUN, IMAGE)["spec"]["activeDeadlineSeconds"] == 20 * 60
    long_wait = {"patch": {**PATCH["patch"], "timeout": "1h"}}
    assert build_job(scheduled_deployment(long_wait), RUN, IMAGE)["spec"]["activeDeadlineSeconds"] == 65 * 60


def test_a_json_patch_target_passes_its_operations_in_order() -> None:
    operations = [
        {"op": "test", "path": "/spec/template/spec/containers/0/name", "value": "api"},
        {
            "op": "replace",
            "path": "/spec/template/spec/containers/0/image",
            "value": "registry.example/api:v42",
        },
    ]
    target = {
        "patch": {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Rollout",
            "name": "api",
            "jsonPatch": operations,
        }
    }
    [container] = pod_spec(build_job(scheduled_deployment(target), RUN, IMAGE))["containers"]
    args = container["args"]
    assert args[args.index("--json-patch") + 1] == (
        '[{"op":"test","path":"/spec/template/spec/containers/0/name","value":"api"},'
        '{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"registry.example/api:v42"}]'
    )
    assert "--merge-patch" not in args


def test_an_ecs_target_runs_sundial_deploy_ecs_with_the_credentials_secret_s_keys_only() -> None:
    job = build_job(scheduled_deployment(ECS), RUN, IMAGE)
    [container] = pod_spec(job)["containers"]
    assert container["name"] == "deploy"
    assert container["image"] == IMAGE
    assert container["args"] == [
        "deploy", "ecs",
        "--cluster", "prod",
        "--service", "api",
        "--container", "app",
        "--image", "123456789012.dkr.ecr.eu-central-1.amazonaws.com/api:v42",
        "--region", "eu-central-1",
    ]  # fmt: skip
    assert "envFrom" not in container, "the whole Secret would become the deployer's environment"
    from_secret = {
        entry["name"]: entry["valueFrom"]["secretKeyRef"]
        for entry in container["env"]
        if "valueFrom" in entry
    }
    assert from_secret == {
        "AWS_ACCESS_KEY_ID": {"name": "aws-deployer", "key": "AWS_ACCESS_KEY_ID", "optional": False},
        "AWS_SECRET_ACCESS_KEY": {"name": "aws-deployer", "key": "AWS_SECRET_ACCESS_KEY", "optional": False},
        "AWS_SESSION_TOKEN": {"name": "aws-deployer", "key": "AWS_SESSION_TOKEN", "optional": True},
    }
    assert {"name": "SUNDIAL_ROLE", "value": "Deploy"} in container["env"]


def test_the_ecs_credentials_are_the_keys_the_deployer_reads_and_scrubs() -> None:
    keys = {key for key, _ in ECS_CREDENTIAL_KEYS}
    assert keys - {"AWS_ACCESS_KEY_ID"} <= set(SECRET_VARIABLES), "every secret it is given, it scrubs"


def test_an_ecs_target_without_a_credentials_secret_reads_no_secret() -> None:
    target = copy.deepcopy(ECS)
    del target["ecsService"]["credentialsSecret"]
    [container] = pod_spec(build_job(scheduled_deployment(target), RUN, IMAGE))["containers"]
    assert "envFrom" not in container
    assert not [entry for entry in container["env"] if "valueFrom" in entry]
    assert container["args"][:2] == ["deploy", "ecs"]


def test_only_the_ecs_deployer_s_pod_goes_without_a_kubernetes_token() -> None:
    """The ECS deployer calls AWS only; the Deployment deployer patches a Deployment and needs its token. A
    jobTemplate's pod is the user's to decide."""
    ecs = pod_spec(build_job(scheduled_deployment(ECS), RUN, IMAGE))
    deployment = pod_spec(build_job(scheduled_deployment(DEPLOYMENT), RUN, IMAGE))
    template = pod_spec(build_job(scheduled_deployment(TEMPLATE), RUN, IMAGE))
    assert ecs["automountServiceAccountToken"] is False
    assert "automountServiceAccountToken" not in deployment
    assert "automountServiceAccountToken" not in template


@pytest.mark.parametrize("target", [DEPLOYMENT, ECS], ids=["deployment", "ecsService"])
def test_a_built_in_deploy_job_is_stopped_some_minutes_after_its_deployer_would_give_up(
    target: dict[str, Any],
) -> None:
    job = build_job(scheduled_deployment(target), RUN, IMAGE)
    deadline = job["spec"]["activeDeadlineSeconds"]
    deployer_timeout = build_parser().parse_args(pod_spec(job)["containers"][0]["args"]).timeout
    assert deadline == DEPLOY_DEADLINE_SECONDS
    assert deployer_timeout + 120 <= deadline <= deployer_timeout + 900


def test_a_job_template_keeps_its_own_deadline_or_none() -> None:
    assert "activeDeadlineSeconds" not in build_job(scheduled_deployment(TEMPLATE), RUN, IMAGE)["spec"]


@pytest.mark.parametrize("target", [DEPLOYMENT, ECS], ids=["deployment", "ecsService"])
def test_a_built_in_deployer_runs_once_under_the_restricted_profile(target: dict[str, Any]) -> None:
    job = build_job(scheduled_deployment(target), RUN, IMAGE)
    spec = pod_spec(job)
    assert job["spec"]["backoffLimit"] == 0
    assert spec["restartPolicy"] == "Never"
    assert spec["securityContext"] == {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    assert spec["containers"][0]["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


@pytest.mark.parametrize("target", [DEPLOYMENT, ECS], ids=["deployment", "ecsService"])
def test_a_built_in_deployer_carries_the_run_in_labels_and_environment(target: dict[str, Any]) -> None:
    job = build_job(scheduled_deployment(target), RUN, IMAGE)
    assert job["metadata"]["labels"] == SUNDIAL_LABELS
    assert job["spec"]["template"]["metadata"]["labels"] == SUNDIAL_LABELS
    run_environment = [e for e in pod_spec(job)["containers"][0]["env"] if not e["name"].startswith("AWS_")]
    assert run_environment == SUNDIAL_ENV


@pytest.mark.parametrize(
    ("spec", "account"),
    [({}, "sundial-deployer"), ({"serviceAccountName": "api-deployer"}, "api-deployer")],
    ids=["default", "chosen"],
)
@pytest.mark.parametrize(
    "target", [DEPLOYMENT, ECS, PATCH, TEMPLATE], ids=["deployment", "ecsService", "patch", "jobTemplate"]
)
def test_the_pod_runs_as_the_objects_service_account(
    target: dict[str, Any], spec: dict[str, Any], account: str
) -> None:
    job = build_job(scheduled_deployment(target, **spec), RUN, IMAGE)
    assert pod_spec(job)["serviceAccountName"] == account


def test_the_deploy_job_runs_exactly_the_deployer_image_it_is_given() -> None:
    pinned = "registry.example.com/sundial@sha256:" + "ab" * 32
    job = build_job(scheduled_deployment(DEPLOYMENT), RUN, pinned)
    assert pod_spec(job)["containers"][0]["image"] == pinned


# ------------------------------------------------------------------------------------------------ jobTemplate


def test_a_job_template_keeps_the_users_containers_and_appends_sundials_environment() -> None:
    job = build_job(scheduled_deployment(TEMPLATE), RUN, IMAGE)
    migrate, sidecar = pod_spec(job)["containers"]
    assert migrate["name"] == "migrate"
    assert migrate["image"] == "registry.example.com/migrate:v7"
    assert migrate["args"] == ["--apply"]
    assert migrate["env"] == [
        {"name": "DATABASE", "value": "orders"},
        {"name": "LOG_LEVEL", "value": "debug"},
        *SUNDIAL_ENV,
    ]
    assert sidecar == {"name": "sidecar", "image": "registry.example.com/sidecar:v1", "env": SUNDIAL_ENV}


def test_sundials_variable_replaces_a_user_variable_of_the_same_name() -> None:
    job = build_job(scheduled_deployment(TEMPLATE), RUN, IMAGE)
    env = pod_spec(job)["containers"][0]["env"]
    scheduled = [entry for entry in env if entry["name"] == "SUNDIAL_SCHEDULED_TIME"]
    assert scheduled == [{"name": "SUNDIAL_SCHEDULED_TIME", "value": "2027-03-14T07:30:00Z"}]


def test_a_job_template_keeps_the_users_labels_and_annotations_beside_sundials() -> None:
    job = build_job(scheduled_deployment(TEMPLATE), RUN, IMAGE)
    assert job["metadata"]["labels"] == {"team": "payments", **SUNDIAL_LABELS}
    assert job["metadata"]["annotations"]["owner"] == "payments@example.com"
    assert job["metadata"]["annotations"]["sundial.dev/scheduled-time"] == "2027-03-14T07:30:00Z"
    assert job["spec"]["template"]["metadata"]["labels"] == {"app": "migrate", **SUNDIAL_LABELS}


def test_sundials_labels_win_over_a_user_label_of_the_same_key() -> None:
    target = copy.deepcopy(TEMPLATE)
    target["jobTemplate"]["metadata"]["labels"]["sundial.dev/scheduled-deployment"] = "someone-else"
    target["jobTemplate"]["spec"]["template"]["metadata"]["labels"]["sundial.dev/role"] = "impostor"
    job = build_job(scheduled_deployment(target), RUN, IMAGE)
    assert job["metadata"]["labels"]["sundial.dev/scheduled-deployment"] == "api"
    assert job["spec"]["template"]["metadata"]["labels"]["sundial.dev/role"] == "deploy"


def test_a_job_template_keeps_the_users_job_settings() -> None:
    job = build_job(scheduled_deployment(TEMPLATE), RUN, IMAGE)
    assert job["spec"]["backoffLimit"] == 2
    assert pod_spec(job)["restartPolicy"] == "OnFailure"


def test_a_minimal_job_template_gets_labels_restart_policy_and_service_account() -> None:
    target = {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}}}
    job = build_job(scheduled_deployment(target), RUN, IMAGE)
    assert job["metadata"]["labels"] == SUNDIAL_LABELS
    assert job["spec"]["template"]["metadata"]["labels"] == SUNDIAL_LABELS
    assert pod_spec(job)["restartPolicy"] == "Never"
    assert pod_spec(job)["serviceAccountName"] == "sundial-deployer"
    assert pod_spec(job)["containers"] == [{"name": "c", "image": "i", "env": SUNDIAL_ENV}]


# ----------------------------------------------------------------------------------------------------- purity


def containers_of(value: Any) -> Iterator[Any]:
    """Every dict and list inside ``value``, itself included."""
    if isinstance(value, dict | list):
        yield value
        for item in value.values() if isinstance(value, dict) else value:
            yield from containers_of(item)


@pytest.mark.parametrize(
    "target", [DEPLOYMENT, ECS, PATCH, TEMPLATE], ids=["deployment", "ecsService", "patch", "jobTemplate"]
)
def test_building_a_job_neither_changes_nor_shares_the_object(target: dict[str, Any]) -> None:
    body = scheduled_deployment(target)
    before = copy.deepcopy(body)
    job = build_job(body, RUN, IMAGE)
    assert body == before
    shared = {id(part) for part in containers_of(body)} & {id(part) for part in containers_of(job)}
    assert not shared, "the Job shares a dict or list with the object; changing one would change the other"
