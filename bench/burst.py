#!/usr/bin/env python3
"""Burst, head to head: N ScheduledDeployments due at one instant against N CronJobs due at one minute.

For each mode and each size N this benchmark, on one local control plane of its own:

* creates N one-shot ScheduledDeployments whose ``runAt`` is the same whole minute T, runs ``sundial run``
  for their namespace, and records when each Job appears;
* creates N CronJobs whose schedule names one minute T' (``M H D Mo *``), so that kube-controller-manager's
  CronJob controller creates N Jobs at T', and records when each appears.

The same external watcher (a watch on Jobs, each event stamped with ``time.time()`` as its line arrives)
measures both: time from the instant to the first and the last Job, p50/p99, and Jobs per second. The two
bursts run one after the other, in different minutes, so that they never compete for the two cores; the
order alternates between sizes. Both create suspended Jobs (``spec.suspend: true``), so no pods are made.

Modes: ``default`` runs kube-controller-manager with its defaults (``--kube-api-qps``/``--kube-api-burst``
unset, 20/30 in v1.37) and Sundial without a client-side limit. ``equal:Q:B`` starts the control plane with
``--kube-api-qps=Q --kube-api-burst=B`` for kube-controller-manager and gives ``sundial run`` the same two
flags. Each mode has a control plane of its own, because the controller manager's flags are fixed at start.

This is a measurement, not a test: it asserts nothing about time. It prints a table and writes JSON to
``bench/results/burst-<UTC timestamp>.json``. See bench/README.md for a run and what it means.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes import client

from common import (
    BENCH_LABEL,
    CREATE_THREADS,
    LEASE_NAME,
    LOGS,
    BenchRun,
    Cluster,
    Operator,
    RawWatch,
    Sampler,
    bench_cluster,
    benchmark_parser,
    create_with_retries,
    fmt,
    lease_holder,
    log,
    machine_facts,
    parse_with_common_arguments,
    percentile,
    release_lease,
    request_delta,
    scheduled_deployment,
    suspended_job_spec,
    utc,
    wait_until,
)
from sundial.api.keys import GROUP, PLURAL, VERSION

# kube-controller-manager v1.37's defaults when --kube-api-qps/--kube-api-burst are not given: set in
# k8s.io/kubernetes pkg/controller/apis/config/v1alpha1/defaults.go,
# SetDefaults_KubeControllerManagerConfiguration
# (they override component-base's generic 50/100). With --use-service-account-credentials (as
# hack/local-cluster runs it) every controller builds a client of its own from that config, and client-go
# gives each client its own token bucket: the CronJob controller alone has 20 QPS, burst 30.
KCM_DEFAULT_QPS, KCM_DEFAULT_BURST = 20.0, 30
# The CronJob controller (v2) defaults to 5 workers (--concurrent-cronjob-syncs); each due CronJob is a key
# in its work queue, re-added at the next schedule time + 100 ms (nextScheduleDelta).
KCM_DEFAULT_CRONJOB_SYNCS = 5


@dataclass(frozen=True)
class Mode:
    """``default``: every client at its own default; ``equal``: both at the same QPS and burst."""

    qps: float | None = None
    burst: int | None = None

    @property
    def name(self) -> str:
        return "default" if self.qps is None else f"equal-{self.qps:g}-{self.burst}"

    def kcm_args(self) -> list[str]:
        if self.qps is None:
            return []
        return [f"--kube-api-qps={self.qps:g}", f"--kube-api-burst={self.burst}"]

    def operator_args(self) -> list[str]:
        limits = (
            []
            if self.qps is None
            else ["--kube-api-qps", f"{self.qps:g}", "--kube-api-burst", str(self.burst)]
        )
        return ["--standalone", *limits]

    def describe_limits(self) -> dict[str, Any]:
        kcm = (self.qps or KCM_DEFAULT_QPS, self.burst or KCM_DEFAULT_BURST)
        return {
            "kube_controller_manager": {
                "kube_api_qps": kcm[0],
                "kube_api_burst": kcm[1],
                "source": "flags given" if self.qps is not None else "v1.37 defaults (flags not given)",
                "concurrent_cronjob_syncs": KCM_DEFAULT_CRONJOB_SYNCS,
            },
            "sundial": {
                "kube_api_qps": self.qps,
                "kube_api_burst": self.burst,
                "source": "flags given" if self.qps is not None else "no client-side limit (the default)",
            },
        }


def parse_mode(text: str) -> Mode:
    if text == "default":
        return Mode()
    parts = text.split(":")
    if len(parts) != 3 or parts[0] != "equal":
        raise argparse.ArgumentTypeError(f"{text!r}: a mode is 'default' or 'equal:QPS:BURST'")
    return Mode(float(parts[1]), int(parts[2]))


# ---------------------------------------------------------------------------------------------- objects


def cronjob(name: str, minute: int, run_id: str) -> dict[str, Any]:
    """A CronJob due once a year, at the UTC minute ``minute`` (epoch seconds), with a suspended Job."""
    at = datetime.fromtimestamp(minute, UTC)
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name, "labels": {BENCH_LABEL: run_id}},
        "spec": {
            "schedule": f"{at.minute} {at.hour} {at.day} {at.month} *",
            "timeZone": "Etc/UTC",
            "concurrencyPolicy": "Allow",
            "jobTemplate": {"spec": suspended_job_spec()},
        },
    }


# ---------------------------------------------------------------------------------------------- watching


@dataclass
class Sightings:
    """First sighting of each object by name: Jobs as they appear, ScheduledDeployments when armed."""

    jobs: dict[str, float] = field(default_factory=dict)
    jobs_listed_before: set[str] = field(default_factory=set)
    armed: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def job_event(self, kind: str, obj: dict[str, Any], arrived: float) -> None:
        name = obj["metadata"]["name"]
        with self.lock:
            if kind != "DELETED" and name not in self.jobs:
                self.jobs[name] = arrived

    def job_relist(self, items: list[dict[str, Any]], at: float) -> None:
        with self.lock:
            for obj in items:
                self.jobs_listed_before.add(obj["metadata"]["name"])

    def sd_event(self, kind: str, obj: dict[str, Any], arrived: float) -> None:
        if kind != "DELETED" and (obj.get("status") or {}).get("nextRunTime"):
            self.armed.setdefault(obj["metadata"]["name"], arrived)

    def sd_relist(self, items: list[dict[str, Any]], at: float) -> None:
        for obj in items:
            self.sd_event("ADDED", obj, at)


# ---------------------------------------------------------------------------------------------- one burst


@dataclass(frozen=True)
class BurstPlan:
    mode: Mode
    kind: str  # "sundial" or "cronjob"
    n: int
    run_id: str
    operator_source: Path | None
    margin: float
    bound: float


def next_minute(at: float) -> int:
    return int(math.ceil(at / 60) * 60)


def lead_seconds(plan: BurstPlan) -> float:
    """How long creating (and, for Sundial, arming) N objects should take, with room to spare.

    Creation runs at about 80 objects/s here. Arming costs the operator a status PATCH and an Event each:
    about 30/s unlimited, and QPS/2 under a client-side limit. The CronJob controller makes no API call
    for a CronJob that is not due, so it needs no more than creation.
    """
    create = plan.n / 80
    arm = 0.0
    if plan.kind == "sundial":
        arm = plan.n / (30 if plan.mode.qps is None else plan.mode.qps / 2)
    return plan.margin + 1.5 * (create + arm)


def run_burst(cluster: Cluster, plan: BurstPlan) -> dict[str, Any]:
    namespace = f"burst-{'sd' if plan.kind == 'sundial' else 'cj'}-{plan.n}-{plan.mode.name}-{plan.run_id}"
    log(f"=== {plan.mode.name}: {plan.n} {plan.kind} objects in {namespace}")
    cluster.kubectl("create", "namespace", namespace)
    result: dict[str, Any] = {"mode": plan.mode.name, "kind": plan.kind, "n": plan.n, "namespace": namespace}
    operator = None
    pids = {**cluster.component_pids(), "bench": os.getpid()}
    if plan.kind == "sundial":
        client.CoreV1Api(cluster.api).create_namespaced_service_account(
            namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="sundial-deployer"))
        )
        log_path = LOGS / f"operator-{namespace}.log"
        operator = Operator(cluster, namespace, log_path, plan.operator_source, plan.mode.operator_args())
        pids["operator"] = operator.pid
        if not wait_until(lambda: lease_holder(cluster.api, namespace) == operator.identity, 60):
            raise SystemExit(f"operator {operator.identity} did not take Lease {LEASE_NAME} within 60s")
    sampler = Sampler(pids)
    sampler.start()
    try:
        measure_burst(cluster, plan, namespace, sampler, result)
    finally:
        sampler.mark("stopping")
        sampler.stop()
        if operator is not None:
            result["operator_stop"] = operator.stop()
            result["operator_log"] = operator.log_report(tail_lines=10)
            release_lease(cluster, namespace)
        window = sampler.cpu_between("t0", "last_job")
        result["cpu_in_burst"] = window
        if operator is not None:
            result["operator_peak_rss_mib"] = sampler.peak_rss_mib("operator")
    return result


def measure_burst(
    cluster: Cluster, plan: BurstPlan, namespace: str, sampler: Sampler, result: dict[str, Any]
) -> None:
    seen = Sightings()
    batch = client.BatchV1Api(cluster.new_client())
    custom = client.CustomObjectsApi(cluster.new_client())
    job_watch = RawWatch(
        "watch-jobs",
        lambda **kw: batch.list_namespaced_job(namespace, **kw),
        seen.job_event,
        seen.job_relist,
    )
    job_watch.start()
    sd_watch = None
    if plan.kind == "sundial":
        sd_watch = RawWatch(
            "watch-sds",
            lambda **kw: custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, **kw),
            seen.sd_event,
            seen.sd_relist,
        )
        sd_watch.start()

    instant = next_minute(time.time() + lead_seconds(plan))
    names = [f"{'sd' if plan.kind == 'sundial' else 'cj'}-{i:05d}" for i in range(plan.n)]
    log(f"instant {utc(instant)} ({instant - time.time():.0f}s from now); creating {plan.n} objects")
    started = time.time()
    writer = cluster.new_client(pool=CREATE_THREADS + 4)
    if plan.kind == "sundial":
        sd_api = client.CustomObjectsApi(writer)
        bodies = [scheduled_deployment(name, utc(instant), plan.run_id) for name in names]
        failures = create_with_retries(
            bodies, lambda b: sd_api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, b)
        ).failures
    else:
        cj_api = client.BatchV1Api(writer)
        bodies = [cronjob(name, instant, plan.run_id) for name in names]
        failures = create_with_retries(
            bodies, lambda b: cj_api.create_namespaced_cron_job(namespace, b)
        ).failures
    created_in = time.time() - started
    writer.close()
    result.update(
        {
            "instant": utc(instant),
            "create_seconds": round(created_in, 2),
            "create_failures": failures[:10],
            "create_failure_count": len(failures),
        }
    )
    expected = plan.n - len(failures)
    log(f"created {expected} in {created_in:.1f}s; {instant - time.time():.0f}s to the instant")
    if sd_watch is not None:
        armed = wait_until(lambda: len(seen.armed) >= expected, max(0.0, instant - 2 - time.time()))
        result["armed_before_instant"] = len(seen.armed)
        result["arm_seconds_after_create"] = round(
            max(seen.armed.values(), default=started) - started - created_in, 2
        )
        if not armed:
            log(f"WARNING: only {len(seen.armed)} of {expected} armed 2s before the instant")
        sd_watch.stop()
    time.sleep(max(0.0, instant - 3 - time.time()))
    before = cluster.request_counts()
    time.sleep(max(0.0, instant - time.time()))
    sampler.mark("t0")
    deadline = instant + plan.bound
    last_report = time.monotonic()
    while len(seen.jobs) < expected and time.time() < deadline:
        time.sleep(0.1)
        if time.monotonic() - last_report > 15:
            last_report = time.monotonic()
            log(f"{len(seen.jobs)} of {expected} Jobs seen")
    sampler.mark("last_job")
    job_watch.stop()
    after = cluster.request_counts()
    result.update(burst_report(seen, instant, expected))
    result["apiserver_requests_in_burst"] = request_delta(before, after)
    result["watch_errors"] = job_watch.errors + (sd_watch.errors if sd_watch else [])
    log(
        f"{result['jobs_seen']}/{expected} Jobs; first {fmt(result['first_ms'])} ms, "
        f"last {fmt(result['last_ms'])} ms, {fmt(result['jobs_per_second'], 1)} Jobs/s"
    )


def burst_report(seen: Sightings, instant: int, expected: int) -> dict[str, Any]:
    with seen.lock:
        arrivals = sorted(at for name, at in seen.jobs.items() if name not in seen.jobs_listed_before)
    lateness = [(at - instant) * 1000 for at in arrivals]
    last = lateness[-1] if lateness else None
    return {
        "expected": expected,
        "jobs_seen": len(arrivals),
        "jobs_before_instant": sum(1 for ms in lateness if ms < 0),
        "first_ms": round(lateness[0], 1) if lateness else None,
        "p50_ms": _round(percentile(lateness, 50)),
        "p99_ms": _round(percentile(lateness, 99)),
        "last_ms": _round(last),
        # Jobs per second from the instant to the last Job: what a user waiting for the burst sees.
        "jobs_per_second": round(len(arrivals) / (last / 1000), 1) if last and last > 0 else None,
        # And from the first Job to the last: the rate once the controller is creating.
        "jobs_per_second_first_to_last": (
            round((len(arrivals) - 1) / ((last - lateness[0]) / 1000), 1)
            if last is not None and len(arrivals) > 1 and last > lateness[0]
            else None
        ),
        "lateness_ms_every_100th": [round(ms) for ms in lateness[::100]],
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


# ---------------------------------------------------------------------------------------------- reporting


def kcm_flags(cluster: Cluster) -> list[str]:
    """kube-controller-manager's command line as it runs, read from /proc: the flags the result is under."""
    pid = cluster.component_pids()["kube-controller-manager"]
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    return [a.decode() for a in argv if a.startswith((b"--kube-api", b"--concurrent-cron", b"--use-service"))]


HEADER = (
    "mode              |     N | controller | client QPS/burst | first ms |   p50 ms |   p99 ms |  last ms "
    "| Jobs/s | ctrl CPU s | apiserver CPU s | other work CPU s"
)


def table(bursts: list[dict[str, Any]]) -> str:
    lines = [HEADER, "-" * len(HEADER)]
    for b in bursts:
        limits = b["limits"]["sundial" if b["kind"] == "sundial" else "kube_controller_manager"]
        qps = (
            "none"
            if limits["kube_api_qps"] is None
            else f"{limits['kube_api_qps']:g}/{limits['kube_api_burst']}"
        )
        cpu = (b.get("cpu_in_burst") or {}).get("cpu_seconds") or {}
        controller_cpu = cpu.get("operator") if b["kind"] == "sundial" else cpu.get("kube-controller-manager")
        lines.append(
            f"{b['mode']:<17} | {b['n']:>5} | {'Sundial' if b['kind'] == 'sundial' else 'CronJob':<10} "
            f"| {qps:>16} | {fmt(b.get('first_ms')):>8} | {fmt(b.get('p50_ms')):>8} "
            f"| {fmt(b.get('p99_ms')):>8} "
            f"| {fmt(b.get('last_ms')):>8} | {fmt(b.get('jobs_per_second'), 1):>6} "
            f"| {fmt(controller_cpu, 1):>10} | {fmt(cpu.get('kube-apiserver'), 1):>15} "
            f"| {fmt(cpu.get('everything_else'), 1):>16}"
            + (
                ""
                if b.get("jobs_seen") == b.get("expected")
                else f"  ({b.get('jobs_seen')}/{b.get('expected')} seen)"
            )
        )
    return "\n".join(lines)


def ratios(bursts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Sundial against CronJob for each mode and size: last-Job time and Jobs/s."""
    out = []
    by_key = {(b["mode"], b["n"], b["kind"]): b for b in bursts}
    for (mode, n, kind), sd in by_key.items():
        cj = by_key.get((mode, n, "cronjob"))
        if kind != "sundial" or cj is None:
            continue
        entry: dict[str, Any] = {"mode": mode, "n": n}
        if sd.get("last_ms") and cj.get("last_ms"):
            entry["last_job_time_sundial_over_cronjob"] = round(sd["last_ms"] / cj["last_ms"], 2)
        if sd.get("jobs_per_second") and cj.get("jobs_per_second"):
            entry["jobs_per_second_sundial_over_cronjob"] = round(
                sd["jobs_per_second"] / cj["jobs_per_second"], 2
            )
        if sd.get("first_ms") and cj.get("first_ms"):
            entry["first_job_time_sundial_over_cronjob"] = round(sd["first_ms"] / cj["first_ms"], 2)
        out.append(entry)
    return out


def ratio_table(entries: list[dict[str, Any]]) -> str:
    lines = [
        "mode              |     N | last Job: Sundial / CronJob | Jobs/s: Sundial / CronJob "
        "| first Job: S / C"
    ]
    lines.append("-" * len(lines[0]))
    for e in entries:
        lines.append(
            f"{e['mode']:<17} | {e['n']:>5} | {fmt(e.get('last_job_time_sundial_over_cronjob'), 2):>27} "
            f"| {fmt(e.get('jobs_per_second_sundial_over_cronjob'), 2):>25} "
            f"| {fmt(e.get('first_job_time_sundial_over_cronjob'), 2):>16}"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--sizes", default="100,500,1000", help="comma-separated N (default: 100,500,1000)")
    parser.add_argument(
        "--modes",
        default="default,equal:20:30",
        help="comma-separated: 'default' and/or 'equal:QPS:BURST' (default: default,equal:20:30, i.e. "
        "Sundial limited to kube-controller-manager's default 20/30, passed to both)",
    )
    parser.add_argument("--margin", type=float, default=15, help="seconds added to the lead (default: 15)")
    parser.add_argument(
        "--bound",
        type=float,
        default=420,
        help="seconds after the instant to wait for the Jobs (default: 420)",
    )
    args = parse_with_common_arguments(parser, argv, "bench-burst-cluster")
    args.sizes = [int(s) for s in str(args.sizes).split(",") if s.strip()]
    args.modes = [parse_mode(m) for m in str(args.modes).split(",") if m.strip()]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    run = BenchRun.start(
        "burst",
        args,
        {
            "sizes": args.sizes,
            "modes": [m.name for m in args.modes],
            "bound_seconds": args.bound,
            "job_template": "suspended Job (spec.suspend: true) for both",
        },
    )
    document = run.document
    document.update({"modes": [], "bursts": []})
    for index, mode in enumerate(args.modes):
        keep = args.keep_cluster and index == len(args.modes) - 1
        with bench_cluster(args.state_dir, keep, mode.kcm_args()) as cluster:
            cluster.install_crds()
            document.setdefault("machine", machine_facts(cluster))
            document["modes"].append(
                {"mode": mode.name, "kcm_flags": kcm_flags(cluster), **mode.describe_limits()}
            )
            log(
                f"mode {mode.name}: kube-controller-manager runs with {kcm_flags(cluster) or 'no such flags'}"
            )
            for size_index, n in enumerate(args.sizes):
                kinds = ("sundial", "cronjob") if size_index % 2 == 0 else ("cronjob", "sundial")
                for kind in kinds:
                    plan = BurstPlan(mode, kind, n, run.run_id, run.operator_source, args.margin, args.bound)
                    burst = run_burst(cluster, plan)
                    burst["limits"] = mode.describe_limits()
                    document["bursts"].append(burst)
                    run.save()
    document["ratios"] = ratios(document["bursts"])
    run.finish(table(document["bursts"]), ratio_table(document["ratios"]))
    incomplete = [b for b in document["bursts"] if b.get("jobs_seen") != b.get("expected")]
    return 1 if incomplete else 0


if __name__ == "__main__":
    sys.exit(main())
