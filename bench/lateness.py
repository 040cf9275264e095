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
import json
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client

from common import (
    CREATE_THREADS,
    JOB_SELECTOR,
    LEASE_NAME,
    LOGS,
    BenchRun,
    Cluster,
    Creation,
    Operator,
    RawWatch,
    Sampler,
    bench_cluster,
    benchmark_parser,
    create_scheduled_deployments,
    fmt,
    lease_holder,
    log,
    machine_facts,
    parse_utc,
    parse_with_common_arguments,
    percentile,
    release_lease,
    request_delta,
    rounded,
    scheduled_deployment,
    summary,
    utc,
    wait_until,
)
from sundial.api.keys import ANNOTATION_FIRED, ANNOTATION_SCHEDULED, GROUP, PLURAL, VERSION

CALIBRATION_LABEL = "bench.sundial.dev/calibration"

CALIBRATION_OBJECTS = 200
# T0 = now + margin + SAFETY x N x (seconds per object to create and arm, calibrated just before).
SAFETY = 1.5


# ---------------------------------------------------------------------------------------------- observations


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


# ---------------------------------------------------------------------------------------------- objects


def instants(t0: int, spread: int, n: int) -> list[int]:
    """Whole-second instants spread uniformly over [t0, t0 + spread): n / spread objects share each second."""
    return [t0 + (i * spread) // n for i in range(n)]


def create_all(
    cluster: Cluster, namespace: str, bodies: list[dict[str, Any]], t0: float | None = None
) -> Creation:
    """Create every object; at 200 objects, say whether T0 looks reachable at the rate so far."""
    calibrated = min(CALIBRATION_OBJECTS, len(bodies))

    def check_pace(creation: Creation) -> None:
        if t0 is None or len(creation.created_at) != calibrated:
            return
        rate = creation.rate(calibrated)
        if rate is None:
            return
        projected = creation.started + len(bodies) / rate
        log(
            f"first {calibrated} objects in {calibrated / rate:.1f}s ({rate:.0f}/s); creation "
            f"should end about {t0 - projected:.0f}s before T0"
        )
        if projected > t0:
            log("WARNING: at this rate creation runs past T0; rerun with a larger --lead")

    return create_scheduled_deployments(cluster, namespace, bodies, on_created=check_pace)


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
    standing: int = 0
    """Objects due a day later, created before the measured ones: armed all through the window, never due."""


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


def run_size(cluster: Cluster, plan: SizePlan, run_id: str) -> dict[str, Any]:
    n = plan.n
    namespace = f"bench-{n}-{run_id}"
    log(f"=== N={n}: namespace {namespace}, spread {plan.spread}s, {plan.standing} more armed and not due")
    cluster.kubectl("create", "namespace", namespace)
    core = client.CoreV1Api(cluster.api)
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="sundial-deployer"))
    )
    operator = Operator(cluster, namespace, LOGS / f"operator-{namespace}.log", plan.operator_source)
    sampler = Sampler({"operator": operator.pid, **cluster.component_pids(), "bench": os.getpid()})
    sampler.mark("operator_started")
    sampler.start()
    result: dict[str, Any] = {
        "n": n,
        "standing": plan.standing,
        "namespace": namespace,
        "spread_seconds": plan.spread,
    }
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
    total = n + plan.standing
    lead = plan.lead if plan.lead is not None else plan.margin + SAFETY * total * seconds_per_object
    t0 = math.ceil(time.time() + lead)
    names = [f"sd-{i:05d}" for i in range(n)]
    expected = dict(zip(names, instants(t0, spread, n), strict=True))
    # The standing objects go first, so that every one of them is armed while the measured ones fire.
    standing = [
        scheduled_deployment(f"standing-{i:05d}", utc(t0 + 86400), run_id) for i in range(plan.standing)
    ]
    tracked = expected.keys() | {body["metadata"]["name"] for body in standing}
    bodies = standing + [scheduled_deployment(name, utc(at), run_id) for name, at in expected.items()]
    log(f"T0 = {utc(t0)} ({t0 - time.time():.0f}s from now); creating {total} objects")
    requests = {"create_started": cluster.request_counts()}
    sampler.mark("create_started")
    creation = create_all(cluster, namespace, bodies, t0)
    create_seconds = creation.finished - creation.started
    calibration_rate = creation.rate(min(CALIBRATION_OBJECTS, total))
    created = total - len(creation.failures)
    log(f"created {created} objects in {create_seconds:.1f}s ({total / create_seconds:.0f}/s)")

    # Bounded by T0: the window is fixed in the objects' specs and will not wait for a slow arming.
    def armed() -> dict[str, float]:
        return {name: at for name, at in list(obs.armed.items()) if name in tracked}

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
            "create_rate_per_second": round(total / create_seconds, 1),
            "create_calibration_rate_per_second": round(calibration_rate or 0, 1),
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
    while len(obs.jobs) < created - plan.standing and time.time() < deadline and operator.alive():
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
                str(size["n"]) + (f"+{size['standing']}" if size.get("standing") else ""),
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
    parser = benchmark_parser(__doc__)
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
        "--standing",
        type=int,
        default=0,
        help="objects armed all through the window but due a day later, on top of each size: "
        "'--sizes 1000 --standing 9000' measures 1,000 Jobs with 10,000 objects armed (default: 0)",
    )
    args = parse_with_common_arguments(parser, argv, "bench-cluster")
    args.sizes = [int(s) for s in str(args.sizes).split(",") if s.strip()]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    run = BenchRun.start(
        "lateness",
        args,
        {
            "sizes": args.sizes,
            "standing": args.standing,
            "spread_seconds": args.spread,
            "lead_seconds": args.lead,
            "margin_seconds": args.margin,
            "grace_seconds": args.grace,
            "create_threads": CREATE_THREADS,
            "job_template": "suspended Job (spec.suspend: true): the Job controller creates no pods",
        },
    )
    document = run.document
    document["sizes"] = []
    with bench_cluster(args.state_dir, args.keep_cluster) as cluster:
        cluster.install_crds()
        document["machine"] = machine_facts(cluster)
        log(f"machine: {json.dumps(document['machine'])}")
        for n in args.sizes:
            plan = SizePlan(
                n, args.spread, args.lead, args.margin, run.operator_source, args.grace, args.standing
            )
            document["sizes"].append(run_size(cluster, plan, run.run_id))
            run.save()
    run.finish(table(document["sizes"]), cost_table(document["sizes"]))
    failed = any(s.get("missing_count") or not s.get("operator_alive_at_end") for s in document["sizes"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
