"""``sundial deploy ecs`` against moto's ECS, served on 127.0.0.1 by the tests: no AWS account, no cluster.

The moto server runs in this process (``ThreadedMotoServer``), so a test can reach into its backend to play
the parts of ECS that moto does not simulate: a deployment that fails, and a rollback by ECS's deployment
circuit breaker. Every client, in this process or a child, finds moto through ``AWS_ENDPOINT_URL`` and uses
dummy credentials; the instance-metadata lookup is switched off so that nothing leaves the machine.

What moto reports, and how the deployer copes (see ``sundial.deploy.ecs._unlisted_rollout_state``):
``CreateService`` makes one PRIMARY deployment with ``rolloutState`` COMPLETED when ``runningCount``
(``MOTO_ECS_SERVICE_RUNNING``, read by the server when the service is created) reaches ``desiredCount``,
else IN_PROGRESS, and never moves it on. ``UpdateService`` changes the service's ``taskDefinition`` but not
its deployments, so no deployment of the new revision is ever listed; the deployer then judges the service
by its own running and desired counts.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.ecs.models import ecs_backends
from moto.server import ThreadedMotoServer

import sundial.deploy
from sundial.cli.main import main
from sundial.deploy import DeployFailed
from sundial.deploy.ecs import deploy_service, ecs_client

REGION = "eu-west-1"
CLUSTER = "shop"
SERVICE = "web"
ACCESS_KEY = "AKIASUNDIALTEST0001"
SECRET = "sundial-test-secret-8c1f0e2b9d4a7f3e6b5c"
"""Must never appear in anything the deployer prints."""

CIRCUIT_BREAKER_REASON = "ECS deployment circuit breaker: tasks failed to start."

# Run the CLI in a child process with the termination message redirected to a file the test creates, as
# the kubelet creates /dev/termination-log in a container (report_failure writes only to an existing file).
CHILD = (
    "import sys, sundial.deploy; sundial.deploy.TERMINATION_LOG = sys.argv[1]; "
    "from sundial.cli.main import main; sys.exit(main(sys.argv[2:]))"
)


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    werkzeug = logging.getLogger("werkzeug")
    level = werkzeug.level
    werkzeug.setLevel(logging.ERROR)  # one access-log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)  # port 0: a free one
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        werkzeug.setLevel(level)


def moto_api(endpoint: str, path: str, body: bytes = b"") -> None:
    request = urllib.request.Request(
        f"{endpoint}/moto-api/{path}", data=body, method="POST", headers={"Content-Type": "text/plain"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200


@dataclass
class Aws:
    endpoint: str
    env: dict[str, str]
    """The environment a deploy Job's container would have: only env-based credentials and the endpoint."""
    tmp: Path

    def ecs(self) -> Any:
        return ecs_client(REGION)

    def backend(self) -> Any:
        return ecs_backends[DEFAULT_ACCOUNT_ID][REGION]

    def run_cli(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        termination_log = self.tmp / "termination-log"
        termination_log.touch()
        return subprocess.run(
            [sys.executable, "-c", CHILD, str(termination_log), "deploy", "ecs", *args],
            env=env if env is not None else self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )


@pytest.fixture
def aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Aws:
    moto_api(moto_endpoint, "reset")
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    settings = {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    # Read by the moto server (this process) when a service is created: both tasks run at once.
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "2")
    (tmp_path / "termination-log").touch()
    monkeypatch.setattr(sundial.deploy, "TERMINATION_LOG", str(tmp_path / "termination-log"))
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_"))}
    child_env.update(settings, HOME=str(tmp_path))
    return Aws(moto_endpoint, child_env, tmp_path)


def create_service(ecs: Any) -> str:
    """A cluster, a two-container task definition with most optional fields set, and a service on it."""
    ecs.create_cluster(clusterName=CLUSTER)
    registered = ecs.register_task_definition(
        family="web",
        taskRoleArn="arn:aws:iam::123456789012:role/web-task",
        executionRoleArn="arn:aws:iam::123456789012:role/web-exec",
        networkMode="bridge",
        containerDefinitions=[
            {
                "name": "app",
                "image": "registry.example/web:v41",
                "memory": 256,
                "essential": True,
                "portMappings": [{"containerPort": 8080, "hostPort": 0, "protocol": "tcp"}],
                "environment": [{"name": "MODE", "value": "prod"}],
                "command": ["serve", "--port", "8080"],
            },
            {"name": "envoy", "image": "envoyproxy/envoy:v1.31", "memory": 128, "essential": False},
        ],
        volumes=[{"name": "scratch", "host": {"sourcePath": "/tmp/scratch"}}],
        placementConstraints=[{"type": "memberOf", "expression": "attribute:ecs.os-type == linux"}],
        requiresCompatibilities=["EC2"],
        cpu="512",
        memory="1024",
        pidMode="task",
        ipcMode="task",
        tags=[{"key": "team", "value": "payments"}],
    )
    arn = str(registered["taskDefinition"]["taskDefinitionArn"])
    ecs.create_service(cluster=CLUSTER, serviceName=SERVICE, taskDefinition=arn, desiredCount=2)
    return arn


def revisions(ecs: Any) -> list[str]:
    return list(ecs.list_task_definitions(familyPrefix="web")["taskDefinitionArns"])


def service_task_definition(ecs: Any) -> str:
    return str(ecs.describe_services(cluster=CLUSTER, services=[SERVICE])["services"][0]["taskDefinition"])


def deploy_args(
    image: str = "registry.example/web:v42", container: str = "app", **overrides: str
) -> list[str]:
    values = {
        "cluster": CLUSTER,
        "service": SERVICE,
        "container": container,
        "image": image,
        "region": REGION,
    }
    values.update(overrides)
    args = [item for name, value in values.items() for item in (f"--{name}", value)]
    return [*args, "--poll-interval", "1s", "--timeout", "1m"]


def without_revision(described: dict[str, Any]) -> dict[str, Any]:
    body = dict(described["taskDefinition"])
    for field in ("taskDefinitionArn", "revision", "registeredAt", "registeredBy"):
        body.pop(field, None)
    return {"taskDefinition": body, "tags": described.get("tags")}


def one_failure_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{stderr}"
    return lines[0]


# ---------------------------------------------------------------------------------------------- success


def test_the_cli_registers_a_revision_that_changes_only_the_image_and_points_the_service_at_it(
    aws: Aws,
) -> None:
    ecs = aws.ecs()
    before = create_service(ecs)
    sundial = Path(sys.executable).parent / "sundial"

    # The real console script, as the Job runs it: credentials only from the environment.
    result = subprocess.run(
        [str(sundial), "deploy", "ecs", *deploy_args()],
        env=aws.env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    assert (
        result.stdout.strip().splitlines()[-1] == f"service {SERVICE} in cluster {CLUSTER} rolled out web:2"
    )
    assert "registered web:2: app registry.example/web:v41 -> registry.example/web:v42" in result.stdout
    assert SECRET not in result.stdout + result.stderr
    assert ACCESS_KEY not in result.stdout + result.stderr
    after = revisions(ecs)
    assert len(after) == 2 and after[0] == before
    assert service_task_definition(ecs) == after[1]

    old = without_revision(ecs.describe_task_definition(taskDefinition=before, include=["TAGS"]))
    new = without_revision(ecs.describe_task_definition(taskDefinition=after[1], include=["TAGS"]))
    assert new["taskDefinition"]["containerDefinitions"][0]["image"] == "registry.example/web:v42"
    old["taskDefinition"]["containerDefinitions"][0]["image"] = "registry.example/web:v42"
    assert new == old, "anything but the app container's image differs between the two revisions"


def test_deploying_the_same_image_again_registers_nothing(
    aws: Aws, capsys: pytest.CaptureFixture[str]
) -> None:
    ecs = aws.ecs()
    create_service(ecs)
    assert main(["deploy", "ecs", *deploy_args()]) == 0
    deployed = revisions(ecs)
    capsys.readouterr()

    assert main(["deploy", "ecs", *deploy_args()]) == 0

    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1] == (
        f"service {SERVICE} in cluster {CLUSTER} is already at registry.example/web:v42 (web:2)"
    )
    assert "registered" not in out
    assert revisions(ecs) == deployed
    assert service_task_definition(ecs) == deployed[-1]


def test_the_pod_identity_web_token_is_enough_to_deploy(aws: Aws) -> None:
    """IRSA and EKS Pod Identity: no keys, a projected token and a role; boto3 trades them via STS (moto)."""
    create_service(aws.ecs())
    token = aws.tmp / "token"
    token.write_text("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6c2hvcDpkZXBsb3llciJ9.c2ln")
    env = {k: v for k, v in aws.env.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    env.update(
        AWS_WEB_IDENTITY_TOKEN_FILE=str(token),
        AWS_ROLE_ARN="arn:aws:iam::123456789012:role/sundial-deployer",
        AWS_ROLE_SESSION_NAME="sundial",
    )

    result = aws.run_cli(*deploy_args(), env=env)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("rolled out web:2")


# ------------------------------------------------------------------------------------- failed rollouts


def ecs_answers_after_the_update(monkeypatch: pytest.MonkeyPatch, aws: Aws, outcome: str) -> None:
    """Make moto answer DescribeServices the way ECS does once its deployment circuit breaker has acted.

    moto never fails a deployment by itself. Once the service has been moved to a new revision, the first
    DescribeServices rewrites the service's deployments as ECS reports them: ``failed`` is the circuit
    breaker having given up on the new deployment (rolloutState FAILED, with its reason; the old deployment
    still ACTIVE); ``rolled-back`` is the state after the rollback finished, the new deployment gone and the
    service on the previous revision again.
    """
    backend = aws.backend()
    real = backend.describe_services
    original = backend.services[f"{CLUSTER}:{SERVICE}"].task_definition

    def describe_services(*args: Any, **kwargs: Any) -> Any:
        service = backend.services[f"{CLUSTER}:{SERVICE}"]
        if service.task_definition != original and service.deployments[0]["taskDefinition"] == original:
            old = dict(service.deployments[0], status="ACTIVE")
            new = dict(
                old,
                id="ecs-svc/0000000000000000002",
                status="PRIMARY",
                taskDefinition=service.task_definition,
                runningCount=0,
                pendingCount=0,
                failedTasks=4,
                rolloutState="FAILED",
                rolloutStateReason=CIRCUIT_BREAKER_REASON,
            )
            if outcome == "failed":
                service.deployments = [new, old]
            else:
                service.task_definition = original
                service.deployments = [dict(old, status="PRIMARY")]
        return real(*args, **kwargs)

    monkeypatch.setattr(backend, "describe_services", describe_services)


def test_a_deployment_the_circuit_breaker_failed_fails_the_deploy_with_its_reason(
    aws: Aws, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "0")  # still starting, so the deployer has to wait
    create_service(aws.ecs())
    ecs_answers_after_the_update(monkeypatch, aws, "failed")

    assert main(["deploy", "ecs", *deploy_args()]) == 1

    line = one_failure_line(capsys.readouterr().err)
    expected = f"RolloutFailed: the deployment of web:2 failed: {CIRCUIT_BREAKER_REASON}"
    assert line == f"sundial deploy: {expected}"
    assert (aws.tmp / "termination-log").read_text() == expected


def test_a_rollback_by_the_circuit_breaker_fails_the_deploy_as_rolled_back(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "0")
    ecs = aws.ecs()
    before = create_service(ecs)
    ecs_answers_after_the_update(monkeypatch, aws, "rolled-back")
    lines: list[str] = []

    with pytest.raises(DeployFailed) as caught:
        deploy_service(ecs, CLUSTER, SERVICE, "app", "registry.example/web:v42", timeout=60, out=lines.append)

    assert caught.value.reason == "RolledBack"
    assert str(caught.value).startswith(
        "ECS rolled back the deployment of web:2: the service runs web:1 again"
    )
    assert service_task_definition(ecs) == before


def test_a_rollout_that_never_finishes_times_out_saying_where_it_stood(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "0")  # moto never starts a task: 0 of 2, for ever
    ecs = aws.ecs()
    create_service(ecs)
    now = [1000.0]
    naps: list[float] = []

    def sleep(seconds: float) -> None:
        naps.append(seconds)
        now[0] += seconds

    clock: Callable[[], float] = lambda: now[0]  # noqa: E731
    lines: list[str] = []

    with pytest.raises(DeployFailed) as caught:
        deploy_service(
            ecs,
            CLUSTER,
            SERVICE,
            "app",
            "registry.example/web:v42",
            timeout=60,
            poll_interval=5,
            sleep=sleep,
            clock=clock,
            out=lines.append,
        )

    assert caught.value.reason == "Timeout"
    assert str(caught.value) == (
        "the deployment of web:2 did not finish within 1m: web:2: 0 of 2 tasks running, 2 pending"
    )
    assert sum(naps) == 60 and len(naps) == 12
    assert lines.count("web:2: 0 of 2 tasks running, 2 pending") == 1, "progress is printed when it changes"


# ---------------------------------------------------------------------------------------------- errors


@pytest.fixture
def enforced_auth(aws: Aws) -> Iterator[None]:
    """moto accepts any credentials unless told to check them against its own IAM from now on."""
    moto_api(aws.endpoint, "reset-auth", b"0")
    try:
        yield
    finally:
        moto_api(aws.endpoint, "reset-auth", b"inf")


def test_rejected_credentials_fail_in_one_line_without_the_secret(aws: Aws, enforced_auth: None) -> None:
    result = aws.run_cli(*deploy_args())

    assert result.returncode == 1
    line = one_failure_line(result.stderr)
    assert line == (
        "sundial deploy: CredentialsRejected: AWS rejected the credentials: "
        "The security token included in the request is invalid."
    )
    assert SECRET not in result.stdout + result.stderr
    assert (aws.tmp / "termination-log").read_text() == line.removeprefix("sundial deploy: ")


def test_credentials_without_permission_say_which_call_was_refused(aws: Aws) -> None:
    iam = boto3.client("iam", region_name=REGION)
    iam.create_user(UserName="deployer")
    key = iam.create_access_key(UserName="deployer")["AccessKey"]
    env = dict(aws.env, AWS_ACCESS_KEY_ID=key["AccessKeyId"], AWS_SECRET_ACCESS_KEY=key["SecretAccessKey"])
    moto_api(aws.endpoint, "reset-auth", b"0")
    try:
        result = aws.run_cli(*deploy_args(), env=env)
    finally:
        moto_api(aws.endpoint, "reset-auth", b"inf")

    assert result.returncode == 1
    assert one_failure_line(result.stderr) == (
        "sundial deploy: AccessDenied: AWS rejected the credentials for DescribeServices: "
        "User: arn:aws:iam::123456789012:user/deployer is not authorized to perform: ecs:DescribeServices"
    )
    assert key["SecretAccessKey"] not in result.stdout + result.stderr


def test_no_credentials_at_all_says_how_to_provide_them(aws: Aws) -> None:
    env = {k: v for k, v in aws.env.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}

    result = aws.run_cli(*deploy_args(), env=env)

    assert result.returncode == 1
    assert one_failure_line(result.stderr) == (
        "sundial deploy: NoCredentials: no AWS credentials found: "
        "set credentialsSecret or give the service account an IAM role"
    )


def test_a_missing_container_names_the_containers_there_are(
    aws: Aws, capsys: pytest.CaptureFixture[str]
) -> None:
    ecs = aws.ecs()
    create_service(ecs)

    assert main(["deploy", "ecs", *deploy_args(container="worker")]) == 1

    assert one_failure_line(capsys.readouterr().err) == (
        "sundial deploy: ContainerNotFound: task definition web:1 of service 'web' has no container "
        "'worker'; its containers are app, envoy"
    )
    assert len(revisions(ecs)) == 1


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"service": "checkout"},
            "ServiceNotFound: ECS service 'checkout' not found in cluster 'shop' (eu-west-1)",
        ),
        ({"cluster": "staging"}, "ClusterNotFound: ECS cluster 'staging' not found in eu-west-1"),
    ],
    ids=["service", "cluster"],
)
def test_a_missing_service_or_cluster_is_named(
    aws: Aws, capsys: pytest.CaptureFixture[str], overrides: dict[str, str], expected: str
) -> None:
    create_service(aws.ecs())

    assert main(["deploy", "ecs", *deploy_args(**overrides)]) == 1

    assert one_failure_line(capsys.readouterr().err) == f"sundial deploy: {expected}"
