"""What the benchmarks share: their own local control plane, the operator as a subprocess, a watch that
stamps each event as it arrives, /proc sampling, percentiles and JSON output.

Safety, for every benchmark that uses this: a cluster is started in a state directory of the benchmark's own
and is only ever reached through the kubeconfig that ``hack/local-cluster up`` printed; ``~/.kube/config`` and
``$KUBECONFIG`` are never read, and a kubeconfig that points anywhere but 127.0.0.1 is refused. Only processes
a benchmark started are signalled, by PID.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import math
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

from sundial.api.keys import GROUP, MANAGED_BY, MANAGER, PLURAL, VERSION

REPO = Path(__file__).resolve().parent.parent
# hack/cluster_access.py: the environment rule and kubectl runner shared with the tests and hack/.
sys.path.insert(0, str(REPO / "hack"))
from cluster_access import (  # noqa: E402
    KWOK_DEPLOYER_IMAGE,
    Kubectl,
    isolated_env,
    local_kubectl,
    loopback_server,
    scrub,
    start_local_cluster,
    stop_local_cluster,
)

RESULTS = REPO / "bench" / "results"


LOGS = REPO / ".sundial" / "bench-logs"


JOB_SELECTOR = f"{MANAGED_BY}={MANAGER}"


LEASE_NAME = "sundial-scheduler"


BENCH_LABEL = "bench.sundial.dev/run"


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    stamp = datetime.now(UTC).strftime("%H:%M:%S.%f")[:-3]
    print(f"[bench {stamp}] {message}", file=sys.stderr, flush=True)


def utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_utc(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile: a value that was actually observed."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def summary(values: Sequence[float]) -> dict[str, float | int | None]:
    return {
        "count": len(values),
        "min": min(values) if values else None,
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "max": max(values) if values else None,
        "mean": sum(values) / len(values) if values else None,
    }


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    """Poll ``check`` until it holds (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


# ---------------------------------------------------------------------------------------------- cluster


@dataclass
class Cluster:
    state_dir: Path
    kubeconfig: Path
    kubectl_path: Path
    home: Path
    api: Any = None

    @classmethod
    def up(cls, state_dir: Path, kcm_args: Sequence[str] = ()) -> Cluster:
        """Start the control plane; ``kcm_args`` are extra kube-controller-manager flags."""
        log(f"starting the benchmark's own control plane in {state_dir} {' '.join(kcm_args)}".rstrip())
        started = time.monotonic()
        kubeconfig = start_local_cluster(state_dir, kcm_args)
        home = state_dir.parent / f"{state_dir.name}-home"
        home.mkdir(parents=True, exist_ok=True)
        cluster = cls(state_dir, kubeconfig, local_kubectl(), home)
        cluster.api = cluster.new_client()
        log(f"control plane up in {time.monotonic() - started:.1f}s; kubeconfig {kubeconfig}")
        return cluster

    def down(self) -> None:
        stop_local_cluster(self.state_dir)

    def new_client(self, pool: int = 4) -> Any:
        """A client from our kubeconfig file alone, refusing anything but the loopback address."""
        loopback_server(self.kubeconfig)
        configuration = client.Configuration()
        configuration.connection_pool_maxsize = pool
        return config.new_client_from_config(
            config_file=str(self.kubeconfig), client_configuration=configuration
        )

    @property
    def kubectl(self) -> Kubectl:
        """``cluster.kubectl("get", …)``: kubectl on this kubeconfig alone, in `isolated_env`."""
        return Kubectl(self.kubectl_path, self.kubeconfig, self.home, timeout=180)

    def component_pids(self) -> dict[str, int]:
        """The control plane's processes, as recorded by hack/local-cluster: only read, never signalled."""
        recorded = json.loads((self.state_dir / "pids.json").read_text())
        return {name: int(entry["pid"]) for name, entry in recorded.items()}

    def install_crds(self) -> None:
        self.kubectl("apply", "-k", str(REPO / "crds"))
        for crd in ("scheduleddeployments.sundial.dev", "kopfpeerings.kopf.dev"):
            self.kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")
        # Established comes before the resource's storage is ready ("storage is (re)initializing", 429);
        # wait for a LIST to succeed so that the first operator does not start against it.
        custom = client.CustomObjectsApi(self.api)

        def listable() -> bool:
            try:
                custom.list_cluster_custom_object(GROUP, VERSION, PLURAL, limit=1)
            except ApiException:
                return False
            return True

        if not wait_until(listable, 60, interval=0.5):
            raise SystemExit(f"{PLURAL}.{GROUP} could not be listed 60s after its CRD was established")
        self.wait_for_controller_manager_discovery()

    def wait_for_controller_manager_discovery(self, timeout: float = 75) -> None:
        """Wait until kube-controller-manager has picked the new kind up from discovery.

        Its garbage collector and quota monitor rediscover resources every 30 s. Until the collector
        watches ScheduledDeployments, every Job owned by one makes it GET the owner (about three GETs per
        Job in a trial run), load that the operator does not cause. The quota monitor logs when it has
        picked the kind up; the collector resyncs on the same 30 s period, so this is a proxy, and a run
        that does not see the line within the bound goes on and says so.
        """
        log_path = self.state_dir / "logs" / "kube-controller-manager.log"
        marker = f'"QuotaMonitor created object count evaluator" resource="{PLURAL}.{GROUP}"'

        def discovered() -> bool:
            return log_path.exists() and marker in log_path.read_text(errors="replace")

        if not wait_until(discovered, timeout, interval=1):
            log(f"WARNING: kube-controller-manager did not log discovering {PLURAL} within {timeout:.0f}s")

    def request_counts(self) -> Counter[str]:
        """kube-apiserver's apiserver_request_total, summed by verb and resource over every client."""
        metrics = self.kubectl("get", "--raw", "/metrics").stdout
        counts: Counter[str] = Counter()
        for line in metrics.splitlines():
            if not line.startswith("apiserver_request_total{"):
                continue
            labels_text, _, value = line[len("apiserver_request_total{") :].rpartition("} ")
            labels = dict(item.split("=", 1) for item in labels_text.split(",") if "=" in item)
            verb = labels.get("verb", "").strip('"')
            resource = labels.get("resource", "").strip('"')
            subresource = labels.get("subresource", "").strip('"')
            counts[f"{verb} {resource}" + (f"/{subresource}" if subresource else "")] += int(float(value))
        return counts

    def apiserver_version(self) -> str:
        return str(client.VersionApi(self.api).get_code().git_version)


# ---------------------------------------------------------------------------------------------- /proc


@dataclass(frozen=True)
class ProcReading:
    rss_mib: float
    hwm_mib: float
    cpu_seconds: float


def read_proc(pid: int) -> ProcReading | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)

    def mib(key: str) -> float:
        return int(fields.get(key, "0 kB").split()[0]) / 1024

    after_name = stat[stat.rindex(")") + 2 :].split()
    cpu = (int(after_name[11]) + int(after_name[12])) / CLOCK_TICKS  # utime + stime
    return ProcReading(mib("VmRSS"), mib("VmHWM"), cpu)


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) CPU jiffies of the whole machine, for how saturated it was between two readings."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


class Sampler(threading.Thread):
    """Reads RSS and CPU of named processes once a second, and snapshots them at named moments."""

    def __init__(self, pids: dict[str, int], interval: float = 1.0) -> None:
        super().__init__(name="sampler", daemon=True)
        self.pids = pids
        self.interval = interval
        self.samples: list[dict[str, Any]] = []
        self.marks: dict[str, dict[str, Any]] = {}
        self._stop_event = threading.Event()

    def reading(self) -> dict[str, Any]:
        procs = {name: read_proc(pid) for name, pid in self.pids.items()}
        busy, total = machine_jiffies()
        return {
            "t": time.time(),
            "procs": {name: r for name, r in procs.items() if r is not None},
            "jiffies": (busy, total),
            "loadavg": os.getloadavg()[0],
        }

    def mark(self, name: str) -> None:
        self.marks[name] = self.reading()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.samples.append(self.reading())
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(5)
        self.samples.append(self.reading())

    def peak_rss_mib(self, name: str) -> float | None:
        values = [s["procs"][name].hwm_mib for s in self.samples if name in s["procs"]]
        values += [s["procs"][name].rss_mib for s in self.samples if name in s["procs"]]
        return round(max(values), 1) if values else None

    def cpu_between(self, start: str, end: str) -> dict[str, Any]:
        """CPU seconds each process used between two marks, and how busy the machine's cores were."""
        a, b = self.marks.get(start), self.marks.get(end)
        if a is None or b is None:
            return {}
        used = {
            name: round(b["procs"][name].cpu_seconds - a["procs"][name].cpu_seconds, 2)
            for name in self.pids
            if name in a["procs"] and name in b["procs"]
        }
        busy = b["jiffies"][0] - a["jiffies"][0]
        total = b["jiffies"][1] - a["jiffies"][1]
        # Whatever else ran on the machine (another cluster, another test run): contention we did not cause.
        used["everything_else"] = round(busy / CLOCK_TICKS - sum(used.values()), 2)
        return {
            "wall_seconds": round(b["t"] - a["t"], 2),
            "cpu_seconds": used,
            "machine_busy_fraction": round(busy / total, 3) if total else None,
        }


# ---------------------------------------------------------------------------------------------- watch


class RawWatch(threading.Thread):
    """A watch that timestamps each event as its line arrives and hands on the raw JSON (no model classes).

    It starts from a LIST's resourceVersion, resumes from the last one it saw when the server ends the
    stream, and on 410 Gone lists again and reports every object in that list through ``on_relist``.
    """

    def __init__(
        self,
        name: str,
        list_call: Callable[..., Any],
        on_event: Callable[[str, dict[str, Any], float], None],
        on_relist: Callable[[list[dict[str, Any]], float], None],
    ) -> None:
        super().__init__(name=name, daemon=True)
        self.list_call = list_call
        self.on_event = on_event
        self.on_relist = on_relist
        self.stopping = threading.Event()
        self.errors: list[str] = []
        self.relists = 0
        self._response: Any = None
        self.resource_version = self._list()
        self.on_relist(self._items, time.time())

    def _list(self) -> str:
        response = self.list_call(_preload_content=False, _request_timeout=(10, 300))
        body = json.loads(response.data)
        self._items: list[dict[str, Any]] = body.get("items") or []
        return str(body["metadata"]["resourceVersion"])

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self._stream()
            except Exception as error:
                if self.stopping.is_set():
                    return
                if isinstance(error, ApiException) and error.status == 410:
                    self._relist()
                    continue
                self.errors.append(f"{type(error).__name__}: {error}")
                time.sleep(1)

    def _relist(self) -> None:
        self.relists += 1
        self.resource_version = self._list()
        self.on_relist(self._items, time.time())

    def _stream(self) -> None:
        self._response = self.list_call(
            watch=True,
            resource_version=self.resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=60,
            _preload_content=False,
            _request_timeout=(10, 120),
        )
        try:
            for line in iter_resp_lines(self._response):
                arrived = time.time()
                if not line:
                    continue
                event = json.loads(line)
                kind, obj = event["type"], event["object"]
                if kind == "ERROR":
                    raise ApiException(status=obj.get("code"), reason=obj.get("message"))
                self.resource_version = obj["metadata"]["resourceVersion"]
                if kind != "BOOKMARK":
                    self.on_event(kind, obj, arrived)
                if self.stopping.is_set():
                    return
        finally:
            with contextlib.suppress(Exception):
                self._response.release_conn()

    def stop(self) -> None:
        self.stopping.set()
        with contextlib.suppress(Exception):
            self._response.shutdown()
        self.join(10)


# ---------------------------------------------------------------------------------------------- operator


def operator_snapshot(ref: str) -> tuple[str, Path | None]:
    """The operator code to measure: a commit exported with ``git archive`` (never the shared work tree,
    which may be mid-edit), or ``worktree`` for the files as they are. Returns (description, source dir)."""
    if ref == "worktree":
        return "worktree", None
    sha = subprocess.run(
        ["git", "rev-parse", "--verify", f"{ref}^{{commit}}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    target = REPO / ".sundial" / "bench-operator" / sha
    if not (target / "operator" / "sundial" / "__init__.py").exists():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "archive", sha, "operator"], cwd=REPO, capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    source = target / "operator"
    env = {**os.environ, "PYTHONPATH": str(source)}
    probe = [str(REPO / ".venv" / "bin" / "python"), "-c", "import sundial; print(sundial.__file__)"]
    imported = subprocess.run(probe, env=env, capture_output=True, text=True, check=True).stdout.strip()
    if not imported.startswith(str(source)):
        raise SystemExit(f"PYTHONPATH={source} still imports sundial from {imported}")
    return sha, source


class Operator:
    """One ``sundial run`` process started here; only its PID is ever signalled."""

    def __init__(
        self,
        cluster: Cluster,
        namespace: str,
        log_path: Path,
        source: Path | None,
        extra_args: Sequence[str] = ("--standalone",),
        identity: str | None = None,
    ) -> None:
        """``extra_args`` follow the namespace flags: ``--standalone`` by default, or peering flags."""
        self.identity = identity or f"bench-{namespace}"
        self.log_path = log_path
        self.started_at = time.time()
        env = isolated_env(cluster.home)
        env["POD_NAME"] = self.identity
        env["SUNDIAL_DEPLOYER_IMAGE"] = KWOK_DEPLOYER_IMAGE
        if source is not None:
            env["PYTHONPATH"] = str(source)  # ahead of the editable install's path to the work tree
        argv = [
            str(REPO / ".venv" / "bin" / "sundial"),
            "run",
            "--kubeconfig",
            str(cluster.kubeconfig),
            "--namespace",
            namespace,
            "--lease-namespace",
            namespace,
            *extra_args,
        ]
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("wb") as out:
            self.process = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
            )
        self.pid = self.process.pid
        self.exit_code_before_stop: int | None = None

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> float:
        """SIGKILL, as in a crash (no clean-up, no hand-over); returns when the signal was sent."""
        at = time.time()
        self.process.kill()
        self.process.wait(10)
        return at

    def stop(self, grace: float = 30) -> dict[str, Any]:
        if not self.alive():
            self.exit_code_before_stop = self.process.returncode
            return {"exited_on_its_own": True, "exit_code": self.process.returncode}
        started = time.monotonic()
        sigterm_at = datetime.now(UTC).isoformat(timespec="milliseconds")
        self.process.send_signal(signal.SIGTERM)
        killed = False
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            killed = True
            self.process.kill()
            self.process.wait(10)
        return {
            "exited_on_its_own": False,
            "exit_code": self.process.returncode,
            "sigkill_needed": killed,
            "sigterm_at": sigterm_at,
            "stop_seconds": round(time.monotonic() - started, 2),
        }

    def log_report(self, tail_lines: int = 40) -> dict[str, Any]:
        """Counts of warnings, errors and the exceptions in tracebacks; the first few; the last lines."""
        lines = self.log_path.read_text(errors="replace").splitlines()
        problems = [line for line in lines if " WARNING " in line or " ERROR " in line]
        exceptions: Counter[str] = Counter()
        for index, line in enumerate(lines):
            if line.startswith("Traceback"):
                final = next((x for x in lines[index + 1 :] if x and not x[0].isspace()), "?")
                exceptions[final[:200]] += 1
        return {
            "path": str(self.log_path.relative_to(REPO)),
            "lines": len(lines),
            "warning_or_error_lines": len(problems),
            "exceptions": dict(exceptions.most_common(10)),
            "first_problems": problems[:10],
            "tail": lines[-tail_lines:],
        }


def lease_holder(api: Any, namespace: str) -> str | None:
    try:
        lease = client.CoordinationV1Api(api).read_namespaced_lease(LEASE_NAME, namespace)
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    return lease.spec.holder_identity if lease.spec else None


def rounded(values: dict[str, float | int | None]) -> dict[str, float | int | None]:
    return {k: round(v, 1) if isinstance(v, float) else v for k, v in values.items()}


def release_lease(cluster: Cluster, namespace: str) -> None:
    """Drop kopf's finalizer from the operator's Lease once the operator has stopped.

    The scheduler daemon puts ``sundial.dev/scheduler-lease`` on Lease ``sundial-scheduler``, and with no
    operator left to remove it the namespace would stay Terminating for good; the namespace controller
    would then keep retrying every few seconds in the middle of the next size's measurement.
    """
    coordination = client.CoordinationV1Api(cluster.api)
    with contextlib.suppress(ApiException):
        coordination.patch_namespaced_lease(LEASE_NAME, namespace, {"metadata": {"finalizers": None}})


# ---------------------------------------------------------------------------------------------- objects


CREATE_THREADS = 16
"""Objects created at once, each thread on a connection of its own from the client's pool."""
RETRIABLE = (429, 500, 503, 504)
"""The API server's "not now" answers (throttled, storage re-initialising, overloaded): worth retrying."""


@dataclass
class Creation:
    """What `create_with_retries` did: when, which objects exist since when, what failed, how many retries."""

    started: float
    finished: float = 0.0
    created_at: dict[str, float] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    retries: int = 0

    def rate(self, first: int) -> float | None:
        """Objects per second over the first ``first`` created (None until that many exist)."""
        stamps = sorted(self.created_at.values())
        if first < 1 or len(stamps) < first or stamps[first - 1] <= self.started:
            return None
        return first / (stamps[first - 1] - self.started)


def create_with_retries(
    bodies: Sequence[dict[str, Any]],
    create: Callable[[dict[str, Any]], Any],
    *,
    attempts: int = 5,
    on_created: Callable[[Creation], None] | None = None,
) -> Creation:
    """Create every body with `CREATE_THREADS` threads, retrying `RETRIABLE` answers with a growing pause.

    AlreadyExists (409) counts as created: it is what a retry of a create that did land answers. Any other
    error, or the last attempt's, is recorded in ``failures`` and the body is given up. ``on_created`` is
    called after each object is created, under a lock, with the creation so far.
    """
    creation = Creation(started=time.time())
    lock = threading.Lock()

    def one(body: dict[str, Any]) -> None:
        name = body["metadata"]["name"]
        for attempt in range(attempts):
            try:
                create(body)
                break
            except ApiException as error:
                if error.status == 409:
                    break
                if attempt == attempts - 1 or error.status not in RETRIABLE:
                    with lock:
                        creation.failures.append(f"{name}: {error.status} {error.reason}")
                    return
                with lock:
                    creation.retries += 1
                time.sleep(0.5 * (attempt + 1))
        with lock:
            creation.created_at[name] = time.time()
            if on_created is not None:
                on_created(creation)

    with ThreadPoolExecutor(CREATE_THREADS, thread_name_prefix="create") as pool:
        list(pool.map(one, bodies))
    creation.finished = time.time()
    return creation


def create_scheduled_deployments(
    cluster: Cluster,
    namespace: str,
    bodies: Sequence[dict[str, Any]],
    *,
    attempts: int = 5,
    on_created: Callable[[Creation], None] | None = None,
) -> Creation:
    """`create_with_retries` for ScheduledDeployments in ``namespace``, on a client of its own."""
    api = cluster.new_client(pool=CREATE_THREADS + 4)
    custom = client.CustomObjectsApi(api)
    try:
        return create_with_retries(
            bodies,
            lambda body: custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body),
            attempts=attempts,
            on_created=on_created,
        )
    finally:
        api.close()


def suspended_job_spec() -> dict[str, Any]:
    """A Job spec with ``suspend: true``: the Job controller makes no pods, so kwok's pod churn on a 2-core
    machine stays out of what is measured (creating Jobs on time, not running them)."""
    return {
        "suspend": True,
        "backoffLimit": 0,
        "template": {
            "spec": {
                "restartPolicy": "Never",  # a CronJob's template needs one; Sundial's Jobs get Never anyway
                "containers": [{"name": "main", "image": "registry.invalid/bench:1"}],
            }
        },
    }


def scheduled_deployment(name: str, run_at: str, run_id: str) -> dict[str, Any]:
    """A one-shot object whose Job is suspended: the Job controller then makes no pods at all."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ScheduledDeployment",
        "metadata": {"name": name, "labels": {BENCH_LABEL: run_id}},
        "spec": {
            "runAt": run_at,
            "jobTemplate": {"spec": suspended_job_spec()},
        },
    }


# ---------------------------------------------------------------------------------------------- reporting


def request_delta(before: Counter[str], after: Counter[str]) -> dict[str, int]:
    """Requests the API server served between two scrapes, by verb and resource, largest first."""
    delta = Counter({key: after[key] - before.get(key, 0) for key in after})
    return {key: count for key, count in delta.most_common() if count > 0}


def machine_facts(cluster: Cluster) -> dict[str, Any]:
    meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), None)
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "memory_total_mib": int(meminfo["MemTotal"].split()[0]) // 1024,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "kubernetes_client": importlib.metadata.version("kubernetes"),
        "kopf": importlib.metadata.version("kopf"),
        "kube_apiserver": cluster.apiserver_version(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "repo_commit": subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip(),
    }


def fmt(value: float | int | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def write(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")


@contextlib.contextmanager
def bench_cluster(state_dir: Path, keep: bool, kcm_args: Sequence[str] = ()) -> Iterator[Cluster]:
    """The benchmark's own control plane, brought down afterwards unless ``keep``."""
    cluster = Cluster.up(state_dir, kcm_args)
    try:
        yield cluster
    finally:
        if keep:
            log(f"leaving the control plane up: hack/local-cluster --state-dir {state_dir} down")
        else:
            cluster.down()


def benchmark_parser(description: str | None) -> argparse.ArgumentParser:
    """A parser whose help is the benchmark's module docstring, line breaks kept."""
    return argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )


def parse_with_common_arguments(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None, state_dir_name: str
) -> argparse.Namespace:
    """Add the options every benchmark takes (``--state-dir``, ``--keep-cluster``, ``--operator-ref``,
    ``--output``), parse ``argv``, and refuse the demo's and the tests' clusters: a benchmark starts and
    stops its own, in ``.sundial/STATE_DIR_NAME`` by default."""
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=REPO / ".sundial" / state_dir_name,
        help=f"the benchmark's own local-cluster state directory (default: .sundial/{state_dir_name})",
    )
    parser.add_argument(
        "--keep-cluster", action="store_true", help="leave the control plane running afterwards"
    )
    parser.add_argument(
        "--operator-ref",
        default="HEAD",
        help="the commit whose operator/ is measured, exported with git archive; 'worktree' for the "
        "files as they are (default: HEAD)",
    )
    parser.add_argument("--output", type=Path, default=None, help="JSON path (default: bench/results/…)")
    args = parser.parse_args(argv)
    args.state_dir = args.state_dir.resolve()
    if args.state_dir.name in ("cluster", "test-cluster") and args.state_dir.parent == REPO / ".sundial":
        parser.error(f"{args.state_dir} belongs to the demo or the tests; give the benchmark its own")
    return args


@dataclass
class BenchRun:
    """One invocation of a benchmark: its id, the operator it measures, and the JSON document it writes."""

    run_id: str
    output: Path
    operator_source: Path | None
    """The exported operator/ to put on the operator's PYTHONPATH; None for the work tree as it is."""
    document: dict[str, Any]
    started: float = field(default_factory=time.monotonic)

    @classmethod
    def start(cls, benchmark: str, args: argparse.Namespace, settings: dict[str, Any]) -> BenchRun:
        """Isolate this process, export the operator to measure, and begin the document."""
        isolate_this_process()
        run_id = datetime.now(UTC).strftime("%Y%m%dt%H%M%S")
        commit, source = operator_snapshot(args.operator_ref)
        log(f"measuring the operator at {commit} ({source or 'the work tree as it is'})")
        document = {
            "benchmark": benchmark,
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": command_line(),
            "settings": {**settings, "operator_commit": commit},
        }
        return cls(run_id, args.output or RESULTS / f"{benchmark}-{run_id}.json", source, document)

    def save(self) -> None:
        write(self.output, self.document)

    def finish(self, *tables: str) -> None:
        """Record the total time, write the document, and print the tables and where the JSON is."""
        self.document["total_seconds"] = round(time.monotonic() - self.started, 1)
        self.save()
        print("\n\n".join(tables))
        shown = self.output.relative_to(REPO) if self.output.is_relative_to(REPO) else self.output
        print(f"\nJSON: {shown}")


def isolate_this_process() -> None:
    """No $KUBECONFIG for any library to find, and no proxy between us and the loopback API server (the
    rule of `cluster_access.scrub`); and SIGTERM unwinds like Ctrl-C, so that the operators and the cluster
    this run started are stopped (a background job ignores SIGINT, so SIGTERM is how one stops it)."""
    scrub(os.environ)

    def interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)


def command_line() -> str:
    return " ".join([os.path.relpath(sys.executable, Path.cwd()), *sys.argv])
