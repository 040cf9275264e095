#!/usr/bin/env python3
"""How late does Sundial create a Job, at 100, 1,000 and 10,000 ScheduledDeployments?

For each size N this starts ``sundial run`` against a local control plane of its own, creates N one-shot
ScheduledDeployments whose ``runAt`` instants are spread uniformly over a window that opens after every
object is created and armed, and measures when each Job appears:

* from outside, with a watch on the operator's Jobs: lateness = arrival of the ADDED event (``time.time()``
  in this process) minus the scheduled instant (the Job's ``sundial.dev/scheduled-time`` annotation);
* from inside, with the operator's own annotation: ``sundial.dev/fired-time`` minus the scheduled instant.

It also samples the operator's RSS and CPU (and those of the cluster's own processes) once a second.

This is a measurement, not a test: it asserts nothing about time. It prints a table and writes JSON to
``bench/results/``. See bench/README.md for the results of a run and what they mean.

Safety: the cluster is started in its own state directory (``.sundial/bench-cluster`` by default) and is
only ever reached through the kubeconfig that ``hack/local-cluster up`` printed; ``~/.kube/config`` and
``$KUBECONFIG`` are never read. Only processes this script started are signalled, by PID.
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
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

REPO = Path(__file__).resolve().parent.parent
LOCAL_CLUSTER = REPO / "hack" / "local-cluster"
RESULTS = REPO / "bench" / "results"
LOGS = REPO / ".sundial" / "bench-logs"

GROUP, VERSION, PLURAL = "sundial.dev", "v1alpha1", "scheduleddeployments"
JOB_SELECTOR = "app.kubernetes.io/managed-by=sundial"
ANNOTATION_SCHEDULED = "sundial.dev/scheduled-time"
ANNOTATION_FIRED = "sundial.dev/fired-time"
LEASE_NAME = "sundial-scheduler"
BENCH_LABEL = "bench.sundial.dev/run"
CALIBRATION_LABEL = "bench.sundial.dev/calibration"

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CREATE_THREADS = 16
CALIBRATION_OBJECTS = 200
# T0 = now + margin + SAFETY x N x (seconds per object to create and arm, calibrated just before).
SAFETY = 1.5


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


def isolated_env(home: Path) -> dict[str, str]:
    """For child processes: no KUBE* variables, a private HOME, and no proxy for the loopback API server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBE", "KWOK"))}
    env["HOME"] = str(home)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


@dataclass
class Cluster:
    state_dir: Path
    kubeconfig: Path
    kubectl_path: Path
    home: Path
    api: Any = None

    @classmethod
    def up(cls, state_dir: Path) -> Cluster:
        log(f"starting the benchmark's own control plane in {state_dir}")
        started = time.monotonic()
        result = subprocess.run(
            [str(LOCAL_CLUSTER), "--state-dir", str(state_dir), "up"], capture_output=True, text=True
        )
        if result.returncode != 0:
            raise SystemExit(f"hack/local-cluster up failed:\n{result.stderr[-4000:]}")
        kubeconfig = Path(result.stdout.strip().splitlines()[-1])
        bin_dir = subprocess.run(
            [str(LOCAL_CLUSTER), "bin-dir"], capture_output=True, text=True, check=True
        ).stdout.strip()
        home = state_dir.parent / f"{state_dir.name}-home"
        home.mkdir(parents=True, exist_ok=True)
        cluster = cls(state_dir, kubeconfig, Path(bin_dir.splitlines()[-1]) / "kubectl", home)
        cluster.api = cluster.new_client()
        log(f"control plane up in {time.monotonic() - started:.1f}s; kubeconfig {kubeconfig}")
        return cluster

    def down(self) -> None:
        subprocess.run([str(LOCAL_CLUSTER), "--state-dir", str(self.state_dir), "down"], check=False)

    def server(self) -> str:
        kubeconfig = yaml.safe_load(self.kubeconfig.read_text())
        return str(kubeconfig["clusters"][0]["cluster"]["server"])

    def new_client(self, pool: int = 4) -> Any:
        """A client from our kubeconfig file alone, refusing anything but the loopback address."""
        host = urllib.parse.urlsplit(self.server()).hostname
        if host != "127.0.0.1":
            raise SystemExit(f"{self.kubeconfig} points at {host}, not 127.0.0.1; refusing to use it")
        configuration = client.Configuration()
        configuration.connection_pool_maxsize = pool
        return config.new_client_from_config(
            config_file=str(self.kubeconfig), client_configuration=configuration
        )

    def kubectl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [str(self.kubectl_path), "--kubeconfig", str(self.kubeconfig), *args]
        env = isolated_env(self.home)
        result = subprocess.run(argv, capture_output=True, text=True, timeout=180, env=env)
        if check and result.returncode != 0:
            raise SystemExit(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def component_pids(self) -> dict[str, int]:
        """The control plane's processes, as recorded by hack/local-cluster: only read, never signalled."""
        recorded = json.loads((self.state_dir / "pids.json").read_text())
        return {name: int(entry["pid"]) for name, entry in recorded.items()}

    def install_crds(self) -> None:
        self.kubectl("apply", "-f", str(REPO / "crds"))
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


@dataclass
class JobSighting:
    arrived: float
    scheduled: float
    fired: float | None
    via_relist: bool


@dataclass
class Observations:
    """What the two watches saw, keyed by object or Job name; written by watch threads, read at the end."""

    armed: dict[str, float] = field(default_factory=dict)
    """ScheduledDeployment name -> when its status first carried nextRunTime."""
    not_ready: dict[str, str] = field(default_factory=dict)
    """ScheduledDeployment name -> reason, for objects the operator found invalid."""
    jobs: dict[str, JobSighting] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)
    """Job name -> ScheduledDeployment name."""

    def sd_event(self, kind: str, obj: dict[str, Any], arrived: float) -> None:
        if kind == "DELETED":
            return
        name = obj["metadata"]["name"]
        status = obj.get("status") or {}
        if status.get("nextRunTime") and name not in self.armed:
            self.armed[name] = arrived
        for condition in status.get("conditions") or []:
            if condition.get("type") == "Ready" and condition.get("status") == "False":
                self.not_ready[name] = str(condition.get("reason"))

    def sd_relist(self, items: list[dict[str, Any]], at: float) -> None:
        for obj in items:
            self.sd_event("ADDED", obj, at)

    def job_event(self, kind: str, obj: dict[str, Any], arrived: float, via_relist: bool = False) -> None:
        name = obj["metadata"]["name"]
        if kind == "DELETED" or name in self.jobs:
            return
        annotations = obj["metadata"].get("annotations") or {}
        fired = annotations.get(ANNOTATION_FIRED)
        self.jobs[name] = JobSighting(
            arrived=arrived,
            scheduled=parse_utc(annotations[ANNOTATION_SCHEDULED]),
            fired=parse_utc(fired) if fired else None,
            via_relist=via_relist,
        )
        labels = obj["metadata"].get("labels") or {}
        self.owners[name] = labels.get("sundial.dev/scheduled-deployment", "?")

    def job_relist(self, items: list[dict[str, Any]], at: float) -> None:
        for obj in items:
            self.job_event("ADDED", obj, at, via_relist=True)


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

    def __init__(self, cluster: Cluster, namespace: str, log_path: Path, source: Path | None) -> None:
        self.identity = f"bench-{namespace}"
        self.log_path = log_path
        env = isolated_env(cluster.home)
        env["POD_NAME"] = self.identity
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
            "--standalone",
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


# ---------------------------------------------------------------------------------------------- objects


def scheduled_deployment(name: str, run_at: str, run_id: str) -> dict[str, Any]:
    """A one-shot object whose Job is suspended: the Job controller then makes no pods at all."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ScheduledDeployment",
        "metadata": {"name": name, "labels": {BENCH_LABEL: run_id}},
        "spec": {
            "runAt": run_at,
            "jobTemplate": {
                "spec": {
                    "suspend": True,
                    "backoffLimit": 0,
                    "template": {
                        "spec": {"containers": [{"name": "main", "image": "registry.invalid/bench:1"}]}
                    },
                }
            },
        },
    }


def instants(t0: int, spread: int, n: int) -> list[int]:
    """Whole-second instants spread uniformly over [t0, t0 + spread): n / spread objects share each second."""
    return [t0 + (i * spread) // n for i in range(n)]


@dataclass
class Creation:
    started: float
    finished: float = 0.0
    failures: list[str] = field(default_factory=list)
    retries: int = 0
    calibration_rate: float | None = None
    created_at: dict[str, float] = field(default_factory=dict)


def create_all(
    cluster: Cluster, namespace: str, bodies: list[dict[str, Any]], t0: float | None = None
) -> Creation:
    """Create every object with a pool of threads; at 200 objects, say whether T0 looks reachable."""
    api = cluster.new_client(pool=CREATE_THREADS + 4)
    custom = client.CustomObjectsApi(api)
    creation = Creation(started=time.time())
    done = 0
    lock = threading.Lock()

    def create(body: dict[str, Any]) -> None:
        nonlocal done
        for attempt in range(5):
            try:
                custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
                break
            except ApiException as error:
                if error.status in (409,):
                    break
                if attempt == 4 or error.status not in (429, 500, 503, 504):
                    creation.failures.append(f"{body['metadata']['name']}: {error.status} {error.reason}")
                    return
                creation.retries += 1
                time.sleep(0.5 * (attempt + 1))
        with lock:
            creation.created_at[body["metadata"]["name"]] = time.time()
            done += 1
            if t0 is not None and done == min(CALIBRATION_OBJECTS, len(bodies)):
                elapsed = time.time() - creation.started
                creation.calibration_rate = done / elapsed
                projected = creation.started + len(bodies) / creation.calibration_rate
                log(
                    f"first {done} objects in {elapsed:.1f}s ({creation.calibration_rate:.0f}/s); creation "
                    f"should end about {t0 - projected:.0f}s before T0"
                )
                if projected > t0:
                    log("WARNING: at this rate creation runs past T0; rerun with a larger --lead")

    with ThreadPoolExecutor(CREATE_THREADS, thread_name_prefix="create") as pool:
        list(pool.map(create, bodies))
    creation.finished = time.time()
    api.close()
    return creation


# ---------------------------------------------------------------------------------------------- one size


def calibrate(cluster: Cluster, namespace: str, obs: Observations, run_id: str) -> float:
    """Seconds per object to create and arm, measured now, with the operator running, on throwaway objects.

    T0 must be fixed before the measured objects are created (a moved ``runAt`` is a spec change), so it is
    chosen from this: CALIBRATION_OBJECTS objects due in a day are created and armed, timed and deleted.
    Measuring now rather than extrapolating from the last size also captures how busy the machine is now.
    """
    far = utc(time.time() + 86400)
    bodies = [scheduled_deployment(f"calibrate-{i:03d}", far, run_id) for i in range(CALIBRATION_OBJECTS)]
    for body in bodies:
        body["metadata"]["labels"][CALIBRATION_LABEL] = "true"
    names = {body["metadata"]["name"] for body in bodies}
    started = time.time()
    create_all(cluster, namespace, bodies)
    if not wait_until(lambda: names <= obs.armed.keys(), 120):
        raise SystemExit(f"the operator did not arm {len(bodies)} calibration objects within 120s")
    seconds_per_object = (max(obs.armed[name] for name in names) - started) / len(bodies)
    cluster.kubectl("delete", PLURAL, "-n", namespace, "-l", f"{CALIBRATION_LABEL}=true", "--wait=false")
    log(f"calibration: {len(bodies)} objects created and armed at {1 / seconds_per_object:.0f}/s")
    return seconds_per_object


@dataclass
class SizePlan:
    n: int
    spread: int
    lead: float | None
    """Seconds from calibration to T0; None: margin + SAFETY x N x the calibrated time per object."""
    margin: float
    operator_source: Path | None
    grace: float


def bounded_summary(observed: Sequence[float], lower_bounds: Sequence[float]) -> dict[str, Any]:
    """Percentiles over every object, including those whose Job was never seen.

    An unseen Job counts with a lower bound on its lateness (how long after its instant we stopped
    looking). Replacing values by lower bounds can only lower an order statistic, so every percentile here
    is at most the true one; it is exact when every bound lies above it, and ``lower_bounds`` names the
    ones that are not exact.
    """
    entries = sorted([*observed, *lower_bounds])
    smallest_bound = min(lower_bounds, default=math.inf)
    result: dict[str, Any] = {"count": len(observed), "unseen": len(lower_bounds), "lower_bounds": []}
    for key, q in (("min", 0), ("p50", 50), ("p90", 90), ("p99", 99), ("max", 100)):
        value = percentile(entries, q) if q else (entries[0] if entries else None)
        result[key] = None if value is None else round(value, 1)
        if value is not None and smallest_bound <= value:
            result["lower_bounds"].append(key)
    result["mean_of_seen"] = round(sum(observed) / len(observed), 1) if observed else None
    return result


@dataclass
class Measured:
    """What the firing phase left for the report, which is written after the operator has stopped."""

    obs: Observations
    expected: dict[str, int]
    t0: int
    watch_end: float


def final_jobs(cluster: Cluster, namespace: str) -> dict[str, tuple[str, float | None]]:
    """After the operator stopped: every Job's owner and fired-time, including Jobs the watch missed."""
    batch = client.BatchV1Api(cluster.api)
    response = batch.list_namespaced_job(
        namespace, label_selector=JOB_SELECTOR, _preload_content=False, _request_timeout=(10, 300)
    )
    jobs = {}
    for obj in json.loads(response.data).get("items") or []:
        metadata = obj["metadata"]
        fired = (metadata.get("annotations") or {}).get(ANNOTATION_FIRED)
        owner = (metadata.get("labels") or {}).get("sundial.dev/scheduled-deployment", "?")
        jobs[metadata["name"]] = (owner, parse_utc(fired) if fired else None)
    return jobs


def lateness_report(
    m: Measured, after_stop: dict[str, tuple[str, float | None]], stopped: float
) -> dict[str, Any]:
    seen = {name: s for name, s in m.obs.jobs.items() if not s.via_relist}
    seen_owners = {m.obs.owners[name] for name in seen}
    unseen = sorted(set(m.expected) - seen_owners)
    watch_ms = [(s.arrived - s.scheduled) * 1000 for s in seen.values()]
    watch_bounds = [(m.watch_end - m.expected[name]) * 1000 for name in unseen]
    # The operator's own clock, from every Job that exists once it has stopped.
    fired_by_owner = {owner: fired for owner, fired in after_stop.values() if fired is not None}
    fired_ms = [
        (fired - m.expected[owner]) * 1000 for owner, fired in fired_by_owner.items() if owner in m.expected
    ]
    never_fired = sorted(set(m.expected) - set(fired_by_owner))
    fired_bounds = [(stopped - m.expected[name]) * 1000 for name in never_fired]
    delivery_ms = [(s.arrived - s.fired) * 1000 for s in seen.values() if s.fired is not None]
    wrong_instant = sorted(
        name
        for name, s in m.obs.jobs.items()
        if m.expected.get(m.obs.owners[name]) not in (None, int(s.scheduled))
    )
    by_second: dict[int, list[float]] = {}
    for s in seen.values():
        by_second.setdefault(int(s.scheduled) - m.t0, []).append((s.arrived - s.scheduled) * 1000)
    last_arrival = max((s.arrived for s in seen.values()), default=m.t0)
    return {
        "jobs_seen": len(seen),
        "jobs_seen_by_relist_only": sum(1 for s in m.obs.jobs.values() if s.via_relist),
        "jobs_before_t0": sum(1 for s in m.obs.jobs.values() if s.arrived < m.t0),
        "jobs_after_operator_stopped": len(after_stop),
        "missing_count": len(unseen),
        "missing_first": unseen[:20],
        "missing_names": unseen,
        "never_fired_count": len(never_fired),
        "wrong_instant": wrong_instant[:20],
        "watch_lateness_ms": bounded_summary(watch_ms, watch_bounds),
        "fired_lateness_ms": bounded_summary(fired_ms, fired_bounds),
        "fired_to_watch_ms": rounded(summary(delivery_ms)),
        "sustained_jobs_per_second": round(len(seen) / max(1.0, last_arrival - m.t0), 1),
        "watch_lateness_max_ms_by_second": {
            str(second): round(max(values), 1) for second, values in sorted(by_second.items())
        },
    }


def missing_status(cluster: Cluster, namespace: str, missing: set[str]) -> dict[str, int]:
    """Why a Job never appeared, as the objects' status says after the operator stopped: how many of the
    missing objects were still waiting (no run recorded), recorded a run (with its result), or were not
    Ready (with the reason)."""
    custom = client.CustomObjectsApi(cluster.api)
    response = custom.list_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, _preload_content=False, _request_timeout=(10, 300)
    )
    verdicts: Counter[str] = Counter()
    for obj in json.loads(response.data).get("items") or []:
        if obj["metadata"]["name"] not in missing:
            continue
        status = obj.get("status") or {}
        runs = status.get("runs") or []
        ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
        if runs:
            verdicts[f"run recorded: {runs[-1].get('result')} {runs[-1].get('reason', '')}".strip()] += 1
        elif ready.get("status") == "False":
            verdicts[f"not ready: {ready.get('reason')}"] += 1
        else:
            verdicts[f"no run recorded yet (Ready={ready.get('status')}, {ready.get('reason')})"] += 1
    return dict(verdicts.most_common())


def rounded(values: dict[str, float | int | None]) -> dict[str, float | int | None]:
    return {k: round(v, 1) if isinstance(v, float) else v for k, v in values.items()}


def run_size(cluster: Cluster, plan: SizePlan, run_id: str) -> dict[str, Any]:
    n = plan.n
    namespace = f"bench-{n}-{run_id}"
    log(f"=== N={n}: namespace {namespace}, spread {plan.spread}s")
    cluster.kubectl("create", "namespace", namespace)
    core = client.CoreV1Api(cluster.api)
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="sundial-deployer"))
    )
    operator = Operator(cluster, namespace, LOGS / f"operator-{namespace}.log", plan.operator_source)
    sampler = Sampler({"operator": operator.pid, **cluster.component_pids(), "bench": os.getpid()})
    sampler.mark("operator_started")
    sampler.start()
    result: dict[str, Any] = {"n": n, "namespace": namespace, "spread_seconds": plan.spread}
    measured: Measured | None = None
    try:
        measured = measure(cluster, plan, namespace, operator, sampler, run_id, result)
    finally:
        sampler.mark("operator_stopping")
        result["operator_stop"] = operator.stop()
        stopped = time.time()
        sampler.stop()
        result["operator_log"] = operator.log_report()
        if measured is not None:
            result.update(lateness_report(measured, final_jobs(cluster, namespace), stopped))
            report_problems(result)
        if result.get("missing_count"):
            result["missing_status"] = missing_status(cluster, namespace, set(result["missing_names"]))
        result.pop("missing_names", None)
        result["operator_peak_rss_mib"] = sampler.peak_rss_mib("operator")
        result["cpu"] = {
            "whole_run": sampler.cpu_between("operator_started", "operator_stopping"),
            "startup": sampler.cpu_between("operator_started", "operator_active"),
            "create_and_arm": sampler.cpu_between("create_started", "all_armed"),
            "idle_before_t0": sampler.cpu_between("all_armed", "t0"),
            "firing": sampler.cpu_between("t0", "last_job_seen"),
        }
        result["operator_cpu_seconds"] = result["cpu"]["whole_run"].get("cpu_seconds", {}).get("operator")
        result["rss_mib_timeline"] = [
            [round(s["t"] - sampler.samples[0]["t"], 1), round(s["procs"]["operator"].rss_mib, 1)]
            for s in sampler.samples[:: max(1, len(sampler.samples) // 60)]
            if "operator" in s["procs"]
        ]
        release_lease(cluster, namespace)
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
    return result


def release_lease(cluster: Cluster, namespace: str) -> None:
    """Drop kopf's finalizer from the operator's Lease once the operator has stopped.

    The scheduler daemon puts ``sundial.dev/scheduler-lease`` on Lease ``sundial-scheduler``, and with no
    operator left to remove it the namespace would stay Terminating for good; the namespace controller
    would then keep retrying every few seconds in the middle of the next size's measurement.
    """
    coordination = client.CoordinationV1Api(cluster.api)
    with contextlib.suppress(ApiException):
        coordination.patch_namespaced_lease(LEASE_NAME, namespace, {"metadata": {"finalizers": None}})


def request_delta(before: Counter[str], after: Counter[str]) -> dict[str, int]:
    """Requests the API server served between two scrapes, by verb and resource, largest first."""
    delta = Counter({key: after[key] - before.get(key, 0) for key in after})
    return {key: count for key, count in delta.most_common() if count > 0}


def report_problems(result: dict[str, Any]) -> None:
    if result["missing_count"]:
        examples = result["missing_first"][:5]
        log(f"ERROR: {result['missing_count']} of {result['n']} Jobs never appeared, e.g. {examples}")
    if result["operator_log"]["exceptions"]:
        log(f"operator exceptions: {result['operator_log']['exceptions']}")


def measure(
    cluster: Cluster,
    plan: SizePlan,
    namespace: str,
    operator: Operator,
    sampler: Sampler,
    run_id: str,
    result: dict[str, Any],
) -> Measured:
    """Start watching, create and arm, wait through the window; fill ``result`` as each step completes."""
    n, spread = plan.n, plan.spread
    started = time.time()

    def active() -> bool:
        if not operator.alive():
            code = operator.process.returncode
            raise SystemExit(f"the operator exited with {code}; see {operator.log_path}")
        return lease_holder(cluster.api, namespace) == operator.identity

    if not wait_until(active, 60):
        raise SystemExit(f"operator {operator.identity} did not take Lease {LEASE_NAME} within 60s")
    sampler.mark("operator_active")
    startup_seconds = time.time() - started
    log(f"operator pid {operator.pid} active after {startup_seconds:.1f}s")

    obs = Observations()
    custom = client.CustomObjectsApi(cluster.new_client())
    batch = client.BatchV1Api(cluster.new_client())
    sd_watch = RawWatch(
        "watch-sds",
        lambda **kw: custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, **kw),
        obs.sd_event,
        obs.sd_relist,
    )
    # The Job watch starts from a LIST taken now, long before T0: every Job it reports is new.
    job_watch = RawWatch(
        "watch-jobs",
        lambda **kw: batch.list_namespaced_job(namespace, label_selector=JOB_SELECTOR, **kw),
        obs.job_event,
        obs.job_relist,
    )
    sd_watch.start()
    job_watch.start()

    seconds_per_object = calibrate(cluster, namespace, obs, run_id)
    lead = plan.lead if plan.lead is not None else plan.margin + SAFETY * n * seconds_per_object
    t0 = math.ceil(time.time() + lead)
    names = [f"sd-{i:05d}" for i in range(n)]
    expected = dict(zip(names, instants(t0, spread, n), strict=True))
    bodies = [scheduled_deployment(name, utc(at), run_id) for name, at in expected.items()]
    log(f"T0 = {utc(t0)} ({t0 - time.time():.0f}s from now); creating {n} objects")
    requests = {"create_started": cluster.request_counts()}
    sampler.mark("create_started")
    creation = create_all(cluster, namespace, bodies, t0)
    create_seconds = creation.finished - creation.started
    log(f"created {n - len(creation.failures)} objects in {create_seconds:.1f}s ({n / create_seconds:.0f}/s)")

    created = n - len(creation.failures)

    # Bounded by T0: the window is fixed in the objects' specs and will not wait for a slow arming.
    def armed() -> dict[str, float]:
        return {name: at for name, at in list(obs.armed.items()) if name in expected}

    wait_until(lambda: len(armed()) >= created, max(0.0, t0 - 1 - time.time()))
    sampler.mark("all_armed")
    requests["all_armed"] = cluster.request_counts()
    sd_watch.stop()
    armed_at = armed()
    armed_by = max(armed_at.values(), default=creation.finished)
    armed_count = len(armed_at)
    arm_after_create = armed_by - creation.finished
    if armed_count < created:
        log(f"WARNING: only {armed_count} of {created} objects armed by T0 - 1s")
    else:
        log(f"all armed {arm_after_create:.1f}s after creation ended; {t0 - time.time():.0f}s to T0")
    arm_latency = [(at - creation.created_at[name]) * 1000 for name, at in armed_at.items()]
    result.update(
        {
            "t0": utc(t0),
            "calibration_seconds_per_object": round(seconds_per_object, 4),
            "lead_seconds": round(lead, 1),
            "operator_pid": operator.pid,
            "operator_startup_seconds": round(startup_seconds, 2),
            "create_seconds": round(create_seconds, 2),
            "create_rate_per_second": round(n / create_seconds, 1),
            "create_calibration_rate_per_second": round(creation.calibration_rate or 0, 1),
            "create_failures": creation.failures[:20],
            "create_failure_count": len(creation.failures),
            "create_retries": creation.retries,
            "armed_count": armed_count,
            "arm_seconds_after_create": round(arm_after_create, 2),
            "create_start_to_all_armed_seconds": (
                round(armed_by - creation.started, 2) if armed_count >= created else None
            ),
            "armed_margin_before_t0_seconds": round(t0 - armed_by, 2),
            "arm_latency_ms": rounded(summary(arm_latency if len(creation.created_at) == created else [])),
            "not_ready": dict(list(obs.not_ready.items())[:20]),
            "not_ready_count": len(obs.not_ready),
        }
    )

    time.sleep(max(0.0, t0 - 3 - time.time()))
    requests["before_t0"] = cluster.request_counts()  # a scrape costs the API server a little: not at T0
    time.sleep(max(0.0, t0 - time.time()))
    sampler.mark("t0")
    deadline = t0 + spread + plan.grace
    last_report = time.monotonic()
    while len(obs.jobs) < created and time.time() < deadline and operator.alive():
        time.sleep(0.2)
        if time.monotonic() - last_report > 15:
            last_report = time.monotonic()
            log(f"{len(obs.jobs)} of {n} Jobs seen")
    sampler.mark("last_job_seen")
    watch_end = time.time()
    job_watch.stop()
    requests["last_job_seen"] = cluster.request_counts()
    if not operator.alive():
        log(f"ERROR: the operator exited with {operator.process.returncode} during the run")
    result.update(
        {
            "operator_alive_at_end": operator.alive(),
            "apiserver_requests": {
                "create_and_arm": request_delta(requests["create_started"], requests["all_armed"]),
                "firing": request_delta(requests["before_t0"], requests["last_job_seen"]),
            },
            "watch_errors": sd_watch.errors + job_watch.errors,
            "watch_relists": sd_watch.relists + job_watch.relists,
        }
    )
    return Measured(obs, expected, t0, watch_end)


# ---------------------------------------------------------------------------------------------- reporting


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


COLUMNS = (
    ("N", 6),
    ("create s", 9),
    ("arm s", 7),
    ("spread s", 9),
    ("jobs seen", 10),
    ("watch p50/p99/max ms", 22),
    ("fired p50/p99/max ms", 22),
    ("peak RSS MiB", 13),
    ("CPU s", 7),
)


def table(sizes: list[dict[str, Any]]) -> str:
    def triple(stats: dict[str, Any]) -> str:
        bounds = stats.get("lower_bounds") or []
        return "/".join((">=" if k in bounds else "") + fmt(stats.get(k)) for k in ("p50", "p99", "max"))

    rows = [[name for name, _ in COLUMNS]]
    for size in sizes:
        rows.append(
            [
                str(size["n"]),
                fmt(size.get("create_seconds"), 1),
                fmt(size.get("arm_seconds_after_create"), 1),
                str(size["spread_seconds"]),
                f"{size.get('jobs_seen', 0)}/{size['n']}",
                triple(size.get("watch_lateness_ms", {})),
                triple(size.get("fired_lateness_ms", {})),
                fmt(size.get("operator_peak_rss_mib"), 1),
                fmt(size.get("operator_cpu_seconds"), 1),
            ]
        )
    widths = [max(width, *(len(row[i]) for row in rows)) for i, (_, width) in enumerate(COLUMNS)]
    lines = [" | ".join(cell.rjust(widths[i]) for i, cell in enumerate(row)) for row in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def cost_table(sizes: list[dict[str, Any]]) -> str:
    """Where the time went while firing: CPU per Job by process, and how busy the machine was."""
    header = (
        "     N | Jobs/s achieved | operator ms/Job | apiserver ms/Job | etcd+kcm ms/Job "
        "| API requests/Job | machine busy | CPU s taken by other work"
    )
    lines = [header, "-" * len(header)]
    for size in sizes:
        firing = (size.get("cpu") or {}).get("firing") or {}
        cpu = firing.get("cpu_seconds") or {}
        jobs = max(1, size.get("jobs_seen") or 0)

        def per_job(*names: str, cpu: dict[str, float] = cpu, jobs: int = jobs) -> str:
            return fmt(1000 * sum(cpu.get(name, 0.0) for name in names) / jobs, 0)

        busy = firing.get("machine_busy_fraction")
        counted = ((size.get("apiserver_requests") or {}).get("firing") or {}).items()
        requests = sum(count for key, count in counted if not key.startswith("WATCH"))
        lines.append(
            f"{size['n']:>6} | {fmt(size.get('sustained_jobs_per_second'), 1):>15} "
            f"| {per_job('operator'):>15} | {per_job('kube-apiserver'):>16} "
            f"| {per_job('etcd', 'kube-controller-manager'):>15} "
            f"| {fmt(requests / jobs, 1):>16} "
            f"| {fmt(None if busy is None else 100 * busy, 0) + '%':>12} "
            f"| {fmt(cpu.get('everything_else'), 0)} of {fmt(firing.get('wall_seconds'), 0)} s wall"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes",
        default="100,1000,10000",
        help="comma-separated object counts, run in this order (default: 100,1000,10000)",
    )
    parser.add_argument(
        "--spread",
        type=int,
        default=120,
        help="seconds over which each size's instants are spread (default: 120; 10,000 -> about 83/s)",
    )
    parser.add_argument(
        "--lead",
        type=float,
        default=None,
        help="seconds from the end of calibration to T0 (default: margin + 1.5 x N x the calibrated time "
        "per object)",
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=120,
        help="seconds after the window closes that Jobs are still waited for (default: 120)",
    )
    parser.add_argument(
        "--margin", type=float, default=30, help="seconds added to the calibrated lead (default: 30)"
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=REPO / ".sundial" / "bench-cluster",
        help="the benchmark's own local-cluster state directory (default: .sundial/bench-cluster)",
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
    args.sizes = [int(s) for s in str(args.sizes).split(",") if s.strip()]
    args.state_dir = args.state_dir.resolve()
    if args.state_dir.name in ("cluster", "test-cluster") and args.state_dir.parent == REPO / ".sundial":
        parser.error(f"{args.state_dir} belongs to the demo or the tests; give the benchmark its own")
    return args


@contextlib.contextmanager
def bench_cluster(args: argparse.Namespace) -> Iterator[Cluster]:
    cluster = Cluster.up(args.state_dir)
    try:
        yield cluster
    finally:
        if args.keep_cluster:
            log(f"leaving the control plane up: hack/local-cluster --state-dir {args.state_dir} down")
        else:
            cluster.down()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.pop("KUBECONFIG", None)
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
    run_id = datetime.now(UTC).strftime("%Y%m%dt%H%M%S")
    output = args.output or RESULTS / f"lateness-{run_id}.json"
    document: dict[str, Any] = {
        "benchmark": "lateness",
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([os.path.relpath(sys.executable, Path.cwd()), *sys.argv]),
        "settings": {
            "sizes": args.sizes,
            "spread_seconds": args.spread,
            "lead_seconds": args.lead,
            "margin_seconds": args.margin,
            "grace_seconds": args.grace,
            "create_threads": CREATE_THREADS,
            "job_template": "suspended Job (spec.suspend: true): the Job controller creates no pods",
        },
        "sizes": [],
    }
    operator_commit, operator_source = operator_snapshot(args.operator_ref)
    document["settings"]["operator_commit"] = operator_commit
    log(f"measuring the operator at {operator_commit} ({operator_source or 'the work tree as it is'})")
    wall = time.monotonic()
    with bench_cluster(args) as cluster:
        cluster.install_crds()
        document["machine"] = machine_facts(cluster)
        log(f"machine: {json.dumps(document['machine'])}")
        for n in args.sizes:
            plan = SizePlan(n, args.spread, args.lead, args.margin, operator_source, args.grace)
            document["sizes"].append(run_size(cluster, plan, run_id))
            write(output, document)
    document["total_seconds"] = round(time.monotonic() - wall, 1)
    write(output, document)
    print(table(document["sizes"]))
    print()
    print(cost_table(document["sizes"]))
    print(f"\nJSON: {output.relative_to(REPO) if output.is_relative_to(REPO) else output}")
    failed = any(s.get("missing_count") or not s.get("operator_alive_at_end") for s in document["sizes"])
    return 1 if failed else 0


def write(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
