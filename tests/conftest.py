"""Shared fixtures: which Kubernetes API server the integration tier talks to, and how.

Back-ends (``--k8s-backend``):

* ``local`` (what CI and ``make test`` use): ``hack/local-cluster`` builds kube-apiserver, the controller
  manager, the scheduler, etcd and kwok from source and runs them on 127.0.0.1. Started once per session in
  its own state directory and stopped at the end, unless it was already running when the session began.
* ``kind``: on a machine with a Docker engine and pytest-kind, a throw-away kind cluster with Sundial's
  image built from this checkout and loaded into it (docs/install.md, "The kind back-end").
* ``existing``: the cluster in ``--k8s-kubeconfig PATH``, used as it is.
* ``auto`` (default): ``existing`` when a kubeconfig is given; else ``kind`` when Docker answers and
  pytest-kind is installed; else ``local``.

Every client is built from the kubeconfig path this fixture hands out, and every child process runs in
``cluster_access.isolated_env`` (hack/cluster_access.py, shared with hack/ and bench/). Nothing here reads
``~/.kube/config``, ``$KUBECONFIG`` or in-cluster credentials, and ``--kubeconfig`` is left alone because
pytest-kind registers it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest

from cluster_access import (
    Kubectl,
    isolated_env,
    local_cluster_running,
    local_kubectl,
    start_local_cluster,
    stop_local_cluster,
)

REPO = Path(__file__).resolve().parent.parent
TEST_CLUSTER_DIR = REPO / ".sundial" / "test-cluster"

T = TypeVar("T")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("sundial", "Sundial's Kubernetes back-end")
    group.addoption(
        "--k8s-backend",
        choices=("auto", "local", "kind", "existing"),
        default="auto",
        help="which API server the integration tests use (default: auto)",
    )
    group.addoption(
        "--k8s-kubeconfig",
        type=Path,
        default=None,
        help="kubeconfig of an existing cluster (implies --k8s-backend=existing under auto)",
    )
    faults = parser.getgroup("sundial-faults", "the fault-injection suite, tests/integration/test_faults.py")
    faults.addoption(
        "--fault-trials",
        type=int,
        default=50,
        help="operator SIGKILL trials around an instant (default: 50, the bounded CI run)",
    )
    faults.addoption(
        "--fault-seed",
        type=int,
        default=None,
        help="seed for the fault suite's random timings (default: fresh, printed so it can be replayed)",
    )


# ------------------------------------------------------------------------------------------ frozen clock
# `make test` runs the unit tier twice more with the clock frozen in January and in July (see the Makefile),
# so that an expectation that holds only in one season, or only until some date, fails on any day of the
# year rather than on the day the season turns. The clock still ticks from there: only the date changes.

FROZEN_NOW = "SUNDIAL_FROZEN_NOW"
_traveller = pytest.StashKey[Any]()


def frozen_now() -> datetime | None:
    """The instant ``SUNDIAL_FROZEN_NOW`` names (RFC 3339 with an offset, e.g. 2027-01-15T12:00:00Z)."""
    text = os.environ.get(FROZEN_NOW, "").strip()
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError as error:
        raise pytest.UsageError(f"{FROZEN_NOW}={text!r}: {error}") from None
    if when.tzinfo is None:
        raise pytest.UsageError(f"{FROZEN_NOW}={text!r} has no offset; write e.g. 2027-01-15T12:00:00Z")
    return when.astimezone(UTC)


def pytest_configure(config: pytest.Config) -> None:
    # Here rather than in a fixture, so that module-level code and parametrisation see the frozen date too.
    when = frozen_now()
    if when is not None:
        import time_machine

        # A timestamp rather than the datetime: time-machine would otherwise set TZ=UTC for the session,
        # and the Makefile runs these in a local zone of its choosing (TZ) to catch naive local time too.
        config.stash[_traveller] = time_machine.travel(when.timestamp(), tick=True)
        config.stash[_traveller].start()


def pytest_unconfigure(config: pytest.Config) -> None:
    traveller = config.stash.get(_traveller, None)
    if traveller is not None:
        traveller.stop()


def pytest_report_header(config: pytest.Config) -> str:
    if _traveller not in config.stash:
        return "clock: real"
    return (
        f"clock: frozen by {FROZEN_NOW}={os.environ[FROZEN_NOW]} (ticking from there); "
        f"now reads {datetime.now(UTC):%Y-%m-%d %H:%M:%S %Z}, "
        f"local {datetime.now().astimezone():%Y-%m-%d %H:%M:%S %z} (TZ={os.environ.get('TZ', 'unset')})"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in item.path.parts:
            item.add_marker(pytest.mark.integration)
    if _traveller in config.stash and any("integration" in item.path.parts for item in items):
        # The integration tier compares with a real API server's clock, and the operator and kubectl run in
        # processes the freeze does not reach: it must compute from the real now.
        raise pytest.UsageError(f"{FROZEN_NOW} is for tests/unit only; integration tests use the real clock")


@dataclass
class Cluster:
    """A reachable API server and the only credentials the tests may use for it."""

    backend: str
    kubeconfig: Path
    kubectl_path: Path
    home: Path
    operator_images: tuple[str, ...] = ()
    """kind only: Sundial's image built from this checkout and loaded into the nodes, then the same image
    under a second tag (a "new version" for deploy tests). Empty where no image can run."""
    audit_log: Path | None = None
    """local only: the API server's audit log (hack/local-cluster's AUDIT_POLICY says what it holds)."""
    _clients: dict[str, Any] = field(default_factory=dict)

    @property
    def kubectl(self) -> Kubectl:
        """``cluster.kubectl("get", …)``: kubectl on this kubeconfig alone, in `isolated_env`."""
        return Kubectl(self.kubectl_path, self.kubeconfig, self.home)

    def api_client(self) -> Any:
        """A kubernetes.client.ApiClient built from this cluster's kubeconfig file and nothing else."""
        if "api" not in self._clients:
            from kubernetes import config

            self._clients["api"] = config.new_client_from_config(config_file=str(self.kubeconfig))
        return self._clients["api"]

    def core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self.api_client())

    def batch(self) -> Any:
        from kubernetes import client

        return client.BatchV1Api(self.api_client())

    def custom(self) -> Any:
        from kubernetes import client

        return client.CustomObjectsApi(self.api_client())


def wait_until(what: str, probe: Callable[[], T | None], timeout: float, interval: float = 0.1) -> T:
    """Poll ``probe`` until it returns something truthy; on timeout say what we waited for and last saw."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last saw {last!r}")
        time.sleep(interval)


def docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def choose_backend(config: pytest.Config) -> str:
    backend = str(config.getoption("--k8s-backend"))
    if backend != "auto":
        return backend
    if config.getoption("--k8s-kubeconfig"):
        return "existing"
    if importlib.util.find_spec("pytest_kind") is not None and docker_answers():
        return "kind"
    return "local"


KIND_IMAGES = ("sundial.local/sundial:kind", "sundial.local/sundial:kind-next")


def build_and_load_operator_image(kind: Any) -> tuple[str, ...]:
    """kind only: ``docker build`` this checkout's image and load it (under both tags) into the nodes."""
    first, *others = KIND_IMAGES
    subprocess.run(["docker", "build", "--tag", first, str(REPO)], check=True)
    for tag in others:
        subprocess.run(["docker", "tag", first, tag], check=True)
    for tag in KIND_IMAGES:
        kind.load_docker_image(tag)
    return KIND_IMAGES


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    backend = choose_backend(request.config)
    home = tmp_path_factory.mktemp("home")
    if backend == "existing":
        kubeconfig = request.config.getoption("--k8s-kubeconfig")
        if kubeconfig is None:
            raise pytest.UsageError("--k8s-backend=existing needs --k8s-kubeconfig PATH")
        kubectl_path = shutil.which("kubectl")
        yield Cluster(
            backend,
            Path(kubeconfig).resolve(),
            Path(kubectl_path) if kubectl_path else local_kubectl(),
            home,
        )
    elif backend == "kind":
        from pytest_kind import KindCluster  # optional: only on machines with Docker

        kind = KindCluster("sundial-test")
        kind.create()
        try:
            kind.ensure_kubectl()  # create() fetches only kind; Cluster.kubectl runs this binary
            images = build_and_load_operator_image(kind)
            yield Cluster(
                backend, Path(kind.kubeconfig_path), Path(kind.kubectl_path), home, operator_images=images
            )
        finally:
            kind.delete()
    else:
        state = Path(os.environ.get("SUNDIAL_TEST_CLUSTER_DIR", TEST_CLUSTER_DIR))
        already_up = local_cluster_running(state)
        kubeconfig = start_local_cluster(state)
        try:
            yield Cluster(
                backend, kubeconfig, local_kubectl(), home, audit_log=kubeconfig.parent / "audit.log"
            )
        finally:
            if not already_up:
                stop_local_cluster(state)


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace per test, named after it, deleted afterwards (without waiting for finalization)."""
    stem = re.sub(r"[^a-z0-9-]+", "-", request.node.name.removeprefix("test_").lower())[:40].strip("-")
    with fresh_namespace(cluster, f"{stem}-{uuid.uuid4().hex[:6]}") as name:
        yield name


@contextlib.contextmanager
def fresh_namespace(cluster: Cluster, name: str) -> Iterator[str]:
    """Namespace ``name``, created now and deleted on exit (without waiting for finalization)."""
    cluster.kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


# ---------------------------------------------------------------------------------------------- operator


@pytest.fixture(scope="session")
def crds(cluster: Cluster) -> Cluster:
    """Sundial's CRDs (ScheduledDeployment, the release freezes) and kopf's peering CRDs, established."""
    cluster.kubectl("apply", "-k", str(REPO / "crds"))
    for name in (
        "scheduleddeployments.sundial.dev",
        "releasefreezes.sundial.dev",
        "clusterreleasefreezes.sundial.dev",
        "deploymentapprovals.sundial.dev",
        "clusterkopfpeerings.kopf.dev",
        "kopfpeerings.kopf.dev",
    ):
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s")
    return cluster


@dataclass
class OperatorProcess:
    """A ``sundial run`` process that this test session started, known by its PID alone."""

    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 20) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def kill(self) -> None:
        """SIGKILL: no graceful hand-over, as when a node dies."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def start_operator(crds: Cluster, tmp_path: Path) -> Iterator[Callable[..., OperatorProcess]]:
    """Start ``sundial run`` scoped to one namespace; every process started is stopped after the test."""
    started: list[OperatorProcess] = []
    leases: set[tuple[str, str]] = set()
    sundial = Path(sys.executable).parent / "sundial"

    def start(
        namespace: str,
        *extra: str,
        wait_active: bool = True,
        identity: str | None = None,
        kubeconfig: Path | None = None,
        lease_namespace: str | None = None,
        env_extra: dict[str, str] | None = None,
        args: list[str] | None = None,
        lease_name: str = "sundial-scheduler",
    ) -> OperatorProcess:
        """``args``: exactly these arguments after ``sundial`` (e.g. the shipped Deployment's) instead of
        the test defaults built from ``namespace``, ``extra``, ``kubeconfig`` and ``lease_namespace``.
        ``lease_name``: the Lease it signs when active (a shard's is ``sundial-scheduler-I-of-N``)."""
        index = len(started)
        log_path = tmp_path / f"operator-{index}.log"
        lease_namespace = lease_namespace or namespace
        if args is not None:
            argv = [str(sundial), *args]
        else:
            argv = [
                str(sundial),
                "run",
                "--kubeconfig",
                str(kubeconfig or crds.kubeconfig),
                "--namespace",
                namespace,
                "--lease-namespace",
                lease_namespace,
                *extra,
            ]
            if "--peering" not in extra:
                argv.append("--standalone")
        env = isolated_env(crds.home)
        env["POD_NAME"] = identity or f"test-operator-{index}"
        # Deploy Jobs of the built-in targets use this image; kwok leaves their pods to the pod runner.
        env["SUNDIAL_DEPLOYER_IMAGE"] = "sundial.local/deployer:dev"
        env.update(env_extra or {})
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
            )
        operator = OperatorProcess(process, log_path)
        leases.add((lease_namespace, lease_name))
        started.append(operator)
        if wait_active:
            wait_for_active_replica(crds, lease_namespace, env["POD_NAME"], operator, lease_name=lease_name)
        return operator

    yield start
    for operator in started:
        operator.stop()
    # kopf's finalizer stays on the scheduler's Lease once no operator runs, and would hold the test's
    # namespace in Terminating for the rest of the session (docs/install.md, "Uninstall").
    for lease_namespace, lease_name in sorted(leases):
        crds.kubectl(
            "patch", "lease", lease_name, "-n", lease_namespace, "--type=merge",
            "-p", '{"metadata":{"finalizers":null}}', check=False,
        )  # fmt: skip


def lease_holder(cluster: Cluster, namespace: str, name: str = "sundial-scheduler") -> str | None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        lease = client.CoordinationV1Api(cluster.api_client()).read_namespaced_lease(name, namespace)
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    return str(lease.spec.holder_identity) if lease.spec and lease.spec.holder_identity else None


def wait_for_active_replica(
    cluster: Cluster,
    namespace: str,
    identity: str,
    operator: OperatorProcess,
    timeout: float = 60,
    lease_name: str = "sundial-scheduler",
) -> None:
    def active() -> bool:
        if operator.process.poll() is not None:
            raise AssertionError(
                f"the operator exited with {operator.process.returncode}:\n{operator.log()[-3000:]}"
            )
        return lease_holder(cluster, namespace, lease_name) == identity

    wait_until(f"operator {identity} to become the active scheduler in {namespace}", active, timeout)


@pytest.fixture
def deployer_namespace(cluster: Cluster, namespace: str) -> str:
    """A namespace with the default deployer service account, so that Job pods can be created."""
    from kubernetes import client

    cluster.core().create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="sundial-deployer"))
    )
    return namespace


def service_account_kubeconfig(cluster: Cluster, namespace: str, account: str, path: Path) -> Path:
    """A kubeconfig that authenticates as ``namespace/account`` with a fresh TokenRequest token only."""
    from podrunner import service_account_kubeconfig as for_account

    return for_account(cluster.api_client(), cluster.kubeconfig, namespace, account, path)
