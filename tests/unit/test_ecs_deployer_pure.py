"""The ECS deployer's pure parts: the task-definition copy, how a deployment is judged, error lines."""

from __future__ import annotations

from typing import Any

import botocore.session
import pytest
from botocore.exceptions import ClientError, NoCredentialsError

from sundial.deploy import DeployFailed
from sundial.deploy.ecs import (
    READ_ONLY_FIELDS,
    aws_failure,
    new_revision_request,
    redact,
    registrable_fields,
    rollout_state,
)

ARN = "arn:aws:ecs:eu-west-1:123456789012:task-definition/web:{}"
OLD, NEW = ARN.format(7), ARN.format(8)


@pytest.fixture(scope="module")
def accepted() -> frozenset[str]:
    """What RegisterTaskDefinition accepts, from the botocore model installed (read locally, no network)."""
    return registrable_fields(botocore.session.get_session().get_service_model("ecs"))


def described() -> dict[str, Any]:
    """A task definition as DescribeTaskDefinition returns it, every kind of field present."""
    return {
        "taskDefinitionArn": OLD,
        "family": "web",
        "revision": 7,
        "status": "ACTIVE",
        "taskRoleArn": "arn:aws:iam::123456789012:role/web-task",
        "executionRoleArn": "arn:aws:iam::123456789012:role/web-exec",
        "networkMode": "awsvpc",
        "containerDefinitions": [
            {
                "name": "app",
                "image": "registry.example/web:v41",
                "essential": True,
                "portMappings": [{"containerPort": 8080, "protocol": "tcp"}],
                "environment": [{"name": "MODE", "value": "prod"}],
                "secrets": [{"name": "DB", "valueFrom": "arn:aws:ssm:eu-west-1:123456789012:parameter/db"}],
            },
            {"name": "envoy", "image": "envoyproxy/envoy:v1.31", "essential": False, "memory": 128},
        ],
        "volumes": [{"name": "scratch", "host": {}}],
        "placementConstraints": [],
        "requiresCompatibilities": ["FARGATE"],
        "compatibilities": ["EC2", "FARGATE"],
        "requiresAttributes": [{"name": "com.amazonaws.ecs.capability.task-iam-role"}],
        "cpu": "512",
        "memory": "1024",
        "pidMode": "task",
        "ipcMode": None,
        "ephemeralStorage": {"sizeInGiB": 30},
        "runtimePlatform": {"cpuArchitecture": "ARM64", "operatingSystemFamily": "LINUX"},
        "proxyConfiguration": {"type": "APPMESH", "containerName": "envoy", "properties": []},
        "enableFaultInjection": False,
        "registeredAt": "2026-11-01T10:00:00+00:00",
        "registeredBy": "arn:aws:iam::123456789012:role/ci",
        "deregisteredAt": None,
    }


def test_the_copy_changes_only_the_named_containers_image(accepted: frozenset[str]) -> None:
    original = described()
    request = new_revision_request(original, [], "app", "registry.example/web:v42", accepted)

    expected = {k: v for k, v in described().items() if k not in READ_ONLY_FIELDS and v is not None}
    expected["containerDefinitions"][0]["image"] = "registry.example/web:v42"
    assert request == expected
    assert original == described(), "the described task definition must not be modified"


def test_the_copy_drops_every_read_only_field_and_keeps_every_registrable_one(
    accepted: frozenset[str],
) -> None:
    request = new_revision_request(described(), [], "app", "web:v42", accepted)

    assert not READ_ONLY_FIELDS & set(request)
    assert not READ_ONLY_FIELDS & accepted, (
        "botocore's model says RegisterTaskDefinition takes a read-only field"
    )
    kept = {
        "family",
        "containerDefinitions",
        "taskRoleArn",
        "executionRoleArn",
        "networkMode",
        "volumes",
        "placementConstraints",
        "requiresCompatibilities",
        "cpu",
        "memory",
        "pidMode",
        "proxyConfiguration",
        "ephemeralStorage",
        "runtimePlatform",
        "enableFaultInjection",
    }
    assert kept <= set(request)
    assert {"ipcMode", "inferenceAccelerators", "tags"} <= accepted


def test_the_copy_carries_the_tags_except_the_ones_only_aws_may_set(accepted: frozenset[str]) -> None:
    tags = [
        {"key": "team", "value": "payments"},
        {"key": "aws:cloudformation:stack-name", "value": "web"},
        {"key": "AWS:Other", "value": "x"},
    ]
    request = new_revision_request(described(), tags, "envoy", "envoyproxy/envoy:v1.32", accepted)

    assert request["tags"] == [{"key": "team", "value": "payments"}]
    assert [c["image"] for c in request["containerDefinitions"]] == [
        "registry.example/web:v41",
        "envoyproxy/envoy:v1.32",
    ]
    assert "tags" not in new_revision_request(described(), [], "app", "x", accepted)


def test_the_copy_refuses_a_container_the_task_definition_does_not_have(accepted: frozenset[str]) -> None:
    with pytest.raises(ValueError, match="no container 'worker'"):
        new_revision_request(described(), [], "worker", "x", accepted)


def deployment(
    arn: str, status: str, rollout: str | None, running: int = 2, desired: int = 2, **extra: Any
) -> Any:
    entry = {
        "taskDefinition": arn,
        "status": status,
        "runningCount": running,
        "desiredCount": desired,
        **extra,
    }
    if rollout is not None:
        entry["rolloutState"] = rollout
    return entry


def service(arn: str, *deployments: dict[str, Any], running: int = 2, desired: int = 2) -> dict[str, Any]:
    return {
        "taskDefinition": arn,
        "runningCount": running,
        "desiredCount": desired,
        "deployments": list(deployments),
    }


@pytest.mark.parametrize(
    ("body", "done", "progress"),
    [
        (
            service(
                NEW,
                deployment(NEW, "PRIMARY", "IN_PROGRESS", 1, pendingCount=1),
                deployment(OLD, "ACTIVE", "COMPLETED"),
            ),
            False,
            "web:8 IN_PROGRESS: 1 of 2 tasks running, 1 pending",
        ),
        (
            service(NEW, deployment(NEW, "PRIMARY", "COMPLETED")),
            True,
            "web:8 COMPLETED: 2 of 2 tasks running",
        ),
        (
            service(NEW, deployment(NEW, "PRIMARY", None), deployment(OLD, "ACTIVE", None)),
            False,
            "web:8 deploying: 2 of 2 tasks running",
        ),
        (service(NEW, deployment(NEW, "PRIMARY", None)), True, "web:8 deploying: 2 of 2 tasks running"),
        (service(NEW, deployment(OLD, "PRIMARY", "COMPLETED")), True, "web:8: 2 of 2 tasks running"),
        (
            service(NEW, deployment(OLD, "PRIMARY", "IN_PROGRESS"), running=0),
            False,
            "web:8: 0 of 2 tasks running",
        ),
    ],
    ids=[
        "in-progress",
        "completed",
        "no-rollout-state-old-tasks-left",
        "no-rollout-state-steady",
        "moto-unlisted-steady",
        "moto-unlisted-starting",
    ],
)
def test_a_deployment_is_judged_by_its_rollout_state(body: dict[str, Any], done: bool, progress: str) -> None:
    state = rollout_state(body, NEW, OLD)
    assert (state.done, state.progress) == (done, progress)


def test_a_failed_deployment_fails_with_ecs_reason() -> None:
    body = service(
        NEW,
        deployment(
            NEW,
            "PRIMARY",
            "FAILED",
            0,
            failedTasks=3,
            rolloutStateReason="ECS deployment circuit breaker: tasks failed to start.",
        ),
        deployment(OLD, "ACTIVE", "COMPLETED"),
    )
    with pytest.raises(DeployFailed, match="web:8 failed: ECS deployment circuit breaker") as caught:
        rollout_state(body, NEW, OLD)
    assert caught.value.reason == "RolloutFailed"


def test_a_rolled_back_deployment_fails_as_rolled_back() -> None:
    gone = service(OLD, deployment(OLD, "PRIMARY", "IN_PROGRESS"))
    with pytest.raises(
        DeployFailed, match="rolled back the deployment of web:8: the service runs web:7"
    ) as caught:
        rollout_state(gone, NEW, OLD)
    assert caught.value.reason == "RolledBack"

    rolling_back = service(
        OLD, deployment(OLD, "PRIMARY", "IN_PROGRESS"), deployment(NEW, "ACTIVE", "IN_PROGRESS")
    )
    with pytest.raises(DeployFailed) as caught:
        rollout_state(rolling_back, NEW, OLD)
    assert caught.value.reason == "RolledBack"


def test_someone_elses_deploy_over_ours_is_superseded() -> None:
    other = ARN.format(9)
    with pytest.raises(DeployFailed, match="replaced by one of web:9") as caught:
        rollout_state(service(other, deployment(other, "PRIMARY", "IN_PROGRESS")), NEW, OLD)
    assert caught.value.reason == "Superseded"


def test_an_unlisted_deployment_is_awaited_until_ecs_has_listed_it() -> None:
    stale = service(OLD, deployment(OLD, "PRIMARY", "COMPLETED"))
    state = rollout_state(stale, NEW, OLD, seen=False)
    assert (state.done, state.listed) == (False, False)
    assert state.progress == "waiting for ECS to list the deployment of web:8"


def client_error(
    code: str, message: str, operation: str = "DescribeServices", status: int = 400
) -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, operation)


@pytest.mark.parametrize(
    ("error", "reason", "line"),
    [
        (
            client_error(
                "UnrecognizedClientException", "The security token included in the request is invalid."
            ),
            "CredentialsRejected",
            "AWS rejected the credentials: The security token included in the request is invalid.",
        ),
        (
            client_error(
                "403",
                '<?xml version="1.0"?><ErrorResponse><Errors><Error><Code>InvalidClientTokenId</Code>'
                "<Message>The security token included in the request is invalid.</Message></Error></Errors>"
                "</ErrorResponse>",
                status=403,
            ),
            "CredentialsRejected",
            "AWS rejected the credentials: The security token included in the request is invalid.",
        ),
        (
            client_error("AccessDeniedException", "User: arn:x is not authorized", "UpdateService"),
            "AccessDenied",
            "AWS rejected the credentials for UpdateService: User: arn:x is not authorized",
        ),
        (
            client_error("ClusterNotFoundException", "Cluster not found."),
            "ClusterNotFound",
            "ECS cluster 'prod' not found in eu-west-1",
        ),
        (
            client_error("ServiceNotFoundException", "Service not found.", "UpdateService"),
            "ServiceNotFound",
            "ECS service 'api' not found in cluster 'prod' (eu-west-1)",
        ),
        (
            client_error("InvalidParameterException", "Invalid image", "RegisterTaskDefinition"),
            "InvalidParameter",
            "ECS refused RegisterTaskDefinition for service 'api' in cluster 'prod': Invalid image",
        ),
        (
            NoCredentialsError(),
            "NoCredentials",
            "no AWS credentials found: set credentialsSecret or give the service account an IAM role",
        ),
    ],
    ids=[
        "unrecognized-client",
        "xml-403",
        "access-denied",
        "cluster",
        "service",
        "invalid",
        "no-credentials",
    ],
)
def test_aws_errors_become_one_line_reasons(error: Exception, reason: str, line: str) -> None:
    failure = aws_failure(error, cluster="prod", service="api", region="eu-west-1")
    assert (failure.reason, str(failure)) == (reason, line)


def test_secrets_are_scrubbed_from_a_line() -> None:
    assert redact("token abcdef1234 leaked", ["abcdef1234", ""]) == "token [redacted] leaked"
    assert redact("nothing here", ["zzzz"]) == "nothing here"
