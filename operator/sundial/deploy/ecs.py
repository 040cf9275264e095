"""``sundial deploy ecs``: point one container of an ECS service at a new image and follow the rollout.

A deploy is one new task-definition revision, copied from the one the service runs with only the named
container's ``image`` changed, and one ``UpdateService`` to it. ECS then runs a deployment, which is judged
by its ``rolloutState`` (``COMPLETED`` or ``FAILED``, the latter with ECS's reason, e.g. the deployment
circuit breaker's "tasks failed to start"). When the circuit breaker rolls the service back, the service
runs the previous revision again and the deploy fails as ``RolledBack``. Rerunning with the image already
rolled out registers nothing and succeeds, so a retried Job never starts a second deployment.

Credentials and the endpoint come from boto3's standard chain and nothing else: the environment
(``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN``, which a ``credentialsSecret`` puts
there key by key, `sundial.decide.jobs.ECS_CREDENTIAL_KEYS`), web identity for IRSA and EKS Pod Identity,
and ``AWS_ENDPOINT_URL``. No credential is ever printed; failure lines are scrubbed of the secret values as
a last line of defence.

Notes
-----
boto3 is imported inside the functions that need it: ``sundial.deploy`` builds its parser for every
``sundial`` command, and the operator itself never talks to AWS.
"""

from __future__ import annotations

import argparse
import copy
import functools
import os
import re
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sundial import __version__
from sundial.api.durations import format_duration, parse_seconds
from sundial.deploy import DeployFailed, report_failure

READ_ONLY_FIELDS = frozenset(
    {
        "taskDefinitionArn",
        "revision",
        "status",
        "requiresAttributes",
        "compatibilities",
        "registeredAt",
        "registeredBy",
        "deregisteredAt",
    }
)
"""What ``DescribeTaskDefinition`` returns and ``RegisterTaskDefinition`` refuses: ECS sets these itself."""

CREDENTIAL_ERRORS = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "MissingAuthenticationToken",
        "InvalidIdentityToken",
        "AuthFailure",
    }
)
"""Error codes that mean AWS did not accept who we are (as opposed to what we may do)."""

SECRET_VARIABLES = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")

_say = functools.partial(print, flush=True)


# ----------------------------------------------------------------------------------------- pure helpers


def short_name(task_definition_arn: str) -> str:
    """``arn:aws:ecs:…:task-definition/web:8`` -> ``web:8``."""
    return task_definition_arn.rsplit("/", 1)[-1]


def container_names(task_definition: Mapping[str, Any]) -> list[str]:
    return [str(c.get("name")) for c in task_definition.get("containerDefinitions") or []]


def registrable_fields(service_model: Any) -> frozenset[str]:
    """The request fields ``RegisterTaskDefinition`` accepts, from botocore's own model of the ECS API.

    Taken from the model rather than written out so that a field ECS adds later (as it added
    ``enableFaultInjection``) is carried over by the copy instead of silently dropped from the new revision.
    """
    return frozenset(service_model.operation_model("RegisterTaskDefinition").input_shape.members)


def new_revision_request(
    task_definition: Mapping[str, Any],
    tags: Sequence[Mapping[str, str]],
    container: str,
    image: str,
    accepted: Collection[str],
) -> dict[str, Any]:
    """``RegisterTaskDefinition``'s arguments for a copy of ``task_definition`` with one image changed. Pure.

    Every field the API accepts is passed through as described (read-only ones such as ``revision`` and
    ``registeredAt`` are not accepted, so they drop out); ``tags`` come from ``DescribeTaskDefinition``'s
    ``include=["TAGS"]``, without the ``aws:`` ones, which only AWS may set and registering would refuse.
    """
    if container not in container_names(task_definition):
        raise ValueError(f"no container {container!r} in the task definition")
    request = {
        field: copy.deepcopy(value)
        for field, value in task_definition.items()
        if field in accepted and field != "tags" and value is not None
    }
    for definition in request["containerDefinitions"]:
        if definition.get("name") == container:
            definition["image"] = image
    user_tags = [dict(tag) for tag in tags if not str(tag.get("key", "")).lower().startswith("aws:")]
    if user_tags:
        request["tags"] = user_tags
    return request


@dataclass(frozen=True)
class RolloutState:
    done: bool
    progress: str
    """What a person would want to see while waiting, e.g. "web:8 IN_PROGRESS: 1 of 2 tasks running"."""
    listed: bool = True
    """Whether ECS lists the deployment at all yet (see ``rollout_state``'s ``seen``)."""


def _counts(source: Mapping[str, Any]) -> str:
    text = f"{source.get('runningCount', 0)} of {source.get('desiredCount', 0)} tasks running"
    if source.get("pendingCount"):
        text += f", {source['pendingCount']} pending"
    if source.get("failedTasks"):
        text += f", {source['failedTasks']} failed to start"
    return text


def _gone(ours: str, now: str, previous: str | None) -> DeployFailed:
    if now == previous:
        return DeployFailed(
            f"ECS rolled back the deployment of {short_name(ours)}: the service runs {short_name(now)} again "
            "(the deployment circuit breaker or a CloudWatch alarm stopped the rollout)",
            reason="RolledBack",
        )
    return DeployFailed(
        f"the deployment of {short_name(ours)} was replaced by one of {short_name(now)} before it finished",
        reason="Superseded",
    )


def rollout_state(
    service: Mapping[str, Any], task_definition_arn: str, previous: str | None = None, *, seen: bool = True
) -> RolloutState:
    """Where the deployment of ``task_definition_arn`` stands; raises DeployFailed when it failed. Pure.

    ``service`` is one entry of ``DescribeServices``; ``previous`` the revision the service ran before,
    to tell a rollback from someone else's deploy. ``seen`` says whether any answer since ``UpdateService``
    has listed our deployment: until one has, its absence is read as ECS's eventual consistency, not as a
    rollback.
    """
    deployments = list(service.get("deployments") or [])
    ours = [d for d in deployments if d.get("taskDefinition") == task_definition_arn]
    primary = next((d for d in deployments if d.get("status") == "PRIMARY"), None)
    name = short_name(task_definition_arn)
    if not ours:
        return _unlisted_rollout_state(service, task_definition_arn, previous, seen=seen)
    deployment: Mapping[str, Any] = primary if primary is not None and primary in ours else ours[0]
    state = deployment.get("rolloutState")
    progress = f"{name} {state or 'deploying'}: {_counts(deployment)}"
    if state == "FAILED":
        reason = deployment.get("rolloutStateReason") or "ECS gave no reason"
        raise DeployFailed(f"the deployment of {name} failed: {reason}", reason="RolloutFailed")
    if state == "COMPLETED":
        return RolloutState(True, progress)
    if deployment is not primary:
        raise _gone(task_definition_arn, (primary or {}).get("taskDefinition", "?"), previous)
    if state is None:
        # No rolloutState (services behind a Classic Load Balancer): steady as the services-stable waiter
        # defines it, one deployment left and all its tasks running.
        done = len(deployments) == 1 and deployment.get("runningCount") == deployment.get("desiredCount")
        return RolloutState(done, progress)
    return RolloutState(False, progress)


def _unlisted_rollout_state(
    service: Mapping[str, Any], task_definition_arn: str, previous: str | None, *, seen: bool
) -> RolloutState:
    name = short_name(task_definition_arn)
    current = str(service.get("taskDefinition") or "?")
    if current != task_definition_arn:
        if not seen:
            return RolloutState(False, f"waiting for ECS to list the deployment of {name}", listed=False)
        raise _gone(task_definition_arn, current, previous)
    # The service runs our revision but no deployment of it is listed. ECS itself never answers so (a
    # service's taskDefinition is its PRIMARY deployment's), but moto does: its UpdateService changes the
    # service's taskDefinition and leaves the deployment list as CreateService made it. Judge by the
    # service's own counts then, as the services-stable waiter does.
    deployments = service.get("deployments") or []
    done = len(deployments) <= 1 and service.get("runningCount") == service.get("desiredCount")
    return RolloutState(done, f"{name}: {_counts(service)}")


def redact(text: str, secrets: Collection[str]) -> str:
    for secret in secrets:
        if len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    return text


# ------------------------------------------------------------------------------------ talking to AWS


def _client_error_parts(error: Any) -> tuple[str, str, int]:
    """``(code, message, HTTP status)`` of a botocore ClientError.

    A 401/403 that is not the service's own JSON error arrives with the HTTP status as its code and the raw
    body as its message (moto answers every ECS authentication failure so, in the query protocol's XML);
    the code and message are dug out of such a body.
    """
    response = getattr(error, "response", None) or {}
    details = response.get("Error") or {}
    code = str(details.get("Code") or "")
    message = str(details.get("Message") or "")
    status = int((response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0)
    if message.lstrip().startswith("<"):
        inner_code = re.search(r"<Code>([^<]*)</Code>", message)
        inner_message = re.search(r"<Message>([^<]*)</Message>", message)
        code = inner_code.group(1) if inner_code else code
        message = inner_message.group(1) if inner_message else "(no message)"
    return code, " ".join(message.split()), status


def aws_failure(error: Exception, *, cluster: str, service: str, region: str) -> DeployFailed:
    """Translate a boto3 exception into the one line a user reads."""
    from botocore import exceptions

    if isinstance(error, exceptions.ClientError):
        return _client_failure(error, cluster=cluster, service=service, region=region)
    if isinstance(error, exceptions.NoCredentialsError):
        return DeployFailed(
            "no AWS credentials found: set credentialsSecret or give the service account an IAM role",
            reason="NoCredentials",
        )
    if isinstance(error, exceptions.PartialCredentialsError | exceptions.CredentialRetrievalError):
        return DeployFailed(f"could not get AWS credentials: {error}", reason="NoCredentials")
    if isinstance(error, exceptions.EndpointConnectionError | exceptions.ConnectTimeoutError):
        return DeployFailed(f"cannot reach ECS in {region}: {error}", reason="Unreachable")
    return DeployFailed(f"AWS call failed: {type(error).__name__}: {error}", reason="AwsError")


def _client_failure(error: Any, *, cluster: str, service: str, region: str) -> DeployFailed:
    code, message, status = _client_error_parts(error)
    operation = getattr(error, "operation_name", None) or "the call"
    if code in CREDENTIAL_ERRORS or (status in (401, 403) and not code.startswith("AccessDenied")):
        return DeployFailed(f"AWS rejected the credentials: {message}", reason="CredentialsRejected")
    if code.startswith("AccessDenied"):
        return DeployFailed(f"AWS rejected the credentials for {operation}: {message}", reason="AccessDenied")
    if code == "ClusterNotFoundException":
        return DeployFailed(f"ECS cluster {cluster!r} not found in {region}", reason="ClusterNotFound")
    if code in ("ServiceNotFoundException", "ServiceNotActiveException"):
        return DeployFailed(
            f"ECS service {service!r} not found in cluster {cluster!r} ({region})", reason="ServiceNotFound"
        )
    if code in ("InvalidParameterException", "ClientException"):
        return DeployFailed(
            f"ECS refused {operation} for service {service!r} in cluster {cluster!r}: {message}",
            reason="InvalidParameter",
        )
    return DeployFailed(f"{operation} failed: {code or status}: {message}", reason="AwsError")


@dataclass(frozen=True)
class _Ecs:
    """The ECS client for one service: every call's failure comes out as a DeployFailed."""

    client: Any
    cluster: str
    service: str
    region: str

    def call(self, method: str, **arguments: Any) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return dict(getattr(self.client, method)(**arguments))
        except (BotoCoreError, ClientError) as error:
            raise aws_failure(error, cluster=self.cluster, service=self.service, region=self.region) from None

    def describe_service(self) -> dict[str, Any]:
        answer = self.call("describe_services", cluster=self.cluster, services=[self.service])
        services = answer.get("services") or []
        if not services:
            raise DeployFailed(
                f"ECS service {self.service!r} not found in cluster {self.cluster!r} ({self.region})",
                reason="ServiceNotFound",
            )
        found = dict(services[0])
        if found.get("status") != "ACTIVE":
            raise DeployFailed(
                f"ECS service {self.service!r} in cluster {self.cluster!r} is {found.get('status')}, "
                "not ACTIVE (deleted?)",
                reason="ServiceNotFound",
            )
        return found


# ----------------------------------------------------------------------------------------- the deploy


def deploy_service(
    ecs_client: Any,
    cluster: str,
    service: str,
    container: str,
    image: str,
    *,
    timeout: float,
    poll_interval: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    out: Callable[[str], None] = _say,
) -> str:
    """Set ``container``'s image on the ECS service and wait for the rollout; return the success line.

    Raises DeployFailed with the reason when anything goes wrong, including a timeout.
    """
    region = str(getattr(getattr(ecs_client, "meta", None), "region_name", None) or "this region")
    ecs = _Ecs(ecs_client, cluster, service, region)
    current = ecs.describe_service()
    current_arn = str(current.get("taskDefinition"))
    described = ecs.call("describe_task_definition", taskDefinition=current_arn, include=["TAGS"])
    task_definition = described["taskDefinition"]
    names = container_names(task_definition)
    if container not in names:
        raise DeployFailed(
            f"task definition {short_name(current_arn)} of service {service!r} has no container "
            f"{container!r}; its containers are {', '.join(names) or 'none'}",
            reason="ContainerNotFound",
        )
    old_image = next(
        c.get("image") for c in task_definition["containerDefinitions"] if c["name"] == container
    )
    where = f"service {service} in cluster {cluster}"
    out(f"{where} runs {short_name(current_arn)}, with {container}={old_image}")

    if old_image == image:
        try:
            state = rollout_state(current, current_arn)
        except DeployFailed:
            state = None  # the last rollout of this revision failed: deploy the image afresh
        if state is not None and state.done:
            return f"{where} is already at {image} ({short_name(current_arn)})"
        if state is not None:
            out(f"{short_name(current_arn)} with {container}={image} is already rolling out; following it")
            return _follow(ecs, current_arn, None, timeout, poll_interval, sleep, clock, out, seen=True)

    request = new_revision_request(
        task_definition,
        described.get("tags") or [],
        container,
        image,
        registrable_fields(ecs_client.meta.service_model),
    )
    new_arn = str(ecs.call("register_task_definition", **request)["taskDefinition"]["taskDefinitionArn"])
    out(f"registered {short_name(new_arn)}: {container} {old_image} -> {image}")
    updated = ecs.call("update_service", cluster=cluster, service=service, taskDefinition=new_arn)
    waiting = format_duration(timedelta(seconds=timeout))
    out(f"updated {where} to {short_name(new_arn)}; waiting up to {waiting} for the rollout")
    seen = rollout_state(updated.get("service") or {}, new_arn, current_arn, seen=False).listed
    return _follow(ecs, new_arn, current_arn, timeout, poll_interval, sleep, clock, out, seen=seen)


def _follow(
    ecs: _Ecs,
    arn: str,
    previous: str | None,
    timeout: float,
    poll_interval: float,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
    out: Callable[[str], None],
    *,
    seen: bool,
) -> str:
    deadline = clock() + timeout
    last = ""
    while True:
        state = rollout_state(ecs.describe_service(), arn, previous, seen=seen)
        seen = seen or state.listed
        if state.progress != last:
            out(state.progress)
            last = state.progress
        if state.done:
            return f"service {ecs.service} in cluster {ecs.cluster} rolled out {short_name(arn)}"
        remaining = deadline - clock()
        if remaining <= 0:
            raise DeployFailed(
                f"the deployment of {short_name(arn)} did not finish within "
                f"{format_duration(timedelta(seconds=timeout))}: {state.progress}",
                reason="Timeout",
            )
        sleep(min(poll_interval, remaining))


# ------------------------------------------------------------------------------------------------ CLI


def ecs_client(region: str) -> Any:
    """A boto3 ECS client for ``region``; credentials and endpoint by boto3's standard chain."""
    import boto3
    from botocore.config import Config

    config = Config(
        user_agent_extra=f"sundial/{__version__}",
        retries={"mode": "standard", "max_attempts": 5},
        connect_timeout=10,
        read_timeout=60,
    )
    return boto3.session.Session().client("ecs", region_name=region, config=config)


def add_parser(targets: Any) -> None:
    parser = targets.add_parser(
        "ecs",
        help="set an ECS service's container image and follow the deployment",
        description=(
            "Register a copy of the service's task definition with one container's image changed, point the "
            "service at it and wait until ECS completes the deployment. Credentials come from the "
            "environment or the pod's IAM role (boto3's standard chain)."
        ),
        epilog="example:\n  sundial deploy ecs --cluster prod --service api --container api "
        "--image 123456789012.dkr.ecr.eu-west-1.amazonaws.com/api:v42 --region eu-west-1",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--cluster", required=True)
    parser.add_argument("--service", required=True)
    parser.add_argument("--container", required=True)
    parser.add_argument("--image", required=True)
    parser.add_argument("--region", required=True)
    parser.add_argument("--timeout", type=parse_seconds, default=parse_seconds("15m"), help="default 15m")
    parser.add_argument("--poll-interval", type=parse_seconds, default=5.0, help="default 5s")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    secrets = [os.environ[name] for name in SECRET_VARIABLES if os.environ.get(name)]
    try:
        message = deploy_service(
            ecs_client(args.region),
            args.cluster,
            args.service,
            args.container,
            args.image,
            timeout=args.timeout,
            poll_interval=args.poll_interval,
        )
    except DeployFailed as error:
        return report_failure(DeployFailed(redact(str(error), secrets), reason=error.reason))
    except Exception as error:  # a deploy Job must end with a reason, never a bare traceback
        text = redact(f"{type(error).__name__}: {error}", secrets)
        return report_failure(DeployFailed(text, reason="DeployerError"))
    _say(message)
    return 0
