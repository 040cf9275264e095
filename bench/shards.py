#!/usr/bin/env python3
"""Sharding, measured: one operator against two shards (``--shard 0/2``, ``--shard 1/2``) on one machine, and
the CronJob controller on the same control plane in the same run.

For each size N and each layout, on one local control plane of its own, this benchmark creates N one-shot
ScheduledDeployments due at one whole minute, spread evenly over eight fresh namespaces chosen so that each of
two shards serves four of them. Every operator process watches all eight (``--namespace`` eight times) and
keeps what its shard serves; the unsharded one keeps everything. One external watch on Sundial's Jobs in every
namespace stamps each Job as it appears. Then N CronJobs due at one minute (in one namespace: the CronJob
controller does not care where), measured the same way (`burst.py`'s burst).

Reported for each: time from the instant to the first and the last Job, Jobs/s, and the CPU seconds each
operator process used between the instant and the last Job, per Job, summed over the shards; the same for
the whole kube-controller-manager for the CronJobs. Sundial runs without a client-side request limit here
(``--kube-api-qps`` unset) and the controller manager with its defaults: this is about CPU per Job and how
it splits over processes, not about an equal request budget (`burst.py` measures that).

This is a measurement, not a test: it asserts nothing about time. It prints a table and writes JSON to
``bench/results/shards-<UTC timestamp>.json``. See bench/README.md for a run and what it means.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from burst import BurstPlan, Mode, Sightings, burst_report, next_minute, run_burst
from common import (
    JOB_SELECTOR,
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
    log,
    machine_facts,
    parse_with_common_arguments,
    request_delta,
    scheduled_deployment,
    utc,
    wait_until,
)
from sundial.api.keys import GROUP, PLURAL, VERSION
from sundial.api.shards import Shard, lease_name

NAMESPACES = 8


def balanced_namespaces(prefix: str) -> list[str]:
    """Eight fresh names, four served by each of two shards."""
    while True:
        run = uuid.uuid4().hex[:4]
        names = [f"{prefix}-{run}-{i}" for i in range(NAMESPACES)]
        if sum(Shard(0, 2).serves(name) for name in names) == NAMESPACES // 2:
            return names


def lease_holder(api: Any, namespace: str, name: str) -> str | None:
    try:
        lease = client.CoordinationV1Api(api).read_namespaced_lease(name, namespace)
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    return lease.spec.holder_identity if lease.spec else None


def release_leases(cluster: Cluster, namespace: str, names: Sequence[str]) -> None:
    """kopf's finalizer off each Lease once its operator stopped (see `common.release_lease`)."""
    coordination = client.CoordinationV1Api(cluster.api)
    for name in names:
        with contextlib.suppress(ApiException):
            coordination.patch_namespaced_lease(name, namespace, {"metadata": {"finalizers": None}})


def run_sharded_burst(
    cluster: Cluster, n: int, shards: int, run: BenchRun, margin: float, bound: float
) -> dict[str, Any]:
    layout = "1 operator" if shards == 1 else f"{shards} shards"
    namespaces = balanced_namespaces(f"shards-{shards}-{n}")
    log(f"=== {layout}: {n} ScheduledDeployments over {len(namespaces)} namespaces ({namespaces[0]}…)")
    core = client.CoreV1Api(cluster.api)
    for namespace in namespaces:
        cluster.kubectl("create", "namespace", namespace)
        core.create_namespaced_service_account(
            namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="sundial-deployer"))
        )
    home, *others = namespaces
    scope = [arg for name in others for arg in ("--namespace", name)]
    layouts: list[Shard | None] = [None] if shards == 1 else [Shard(i, shards) for i in range(shards)]
    operators: dict[str, Operator] = {}
    for shard in layouts:
        label = "operator" if shard is None else f"shard-{shard.suffix}"
        args = [*scope, "--standalone", *(() if shard is None else ("--shard", str(shard)))]
        operator = Operator(
            cluster, home, LOGS / f"operator-{home}-{label}.log", run.operator_source, args, f"bench-{label}"
        )
        operators[label] = operator
        holder = lease_name(shard)
        if not wait_until(lambda o=operator, h=holder: lease_holder(cluster.api, home, h) == o.identity, 60):
            raise SystemExit(f"{label} did not take Lease {holder} within 60s")
    pids = {**cluster.component_pids(), "bench": os.getpid(), **{k: o.pid for k, o in operators.items()}}
    result: dict[str, Any] = {
        "layout": layout,
        "kind": "sundial",
        "shards": shards,
        "n": n,
        "namespaces": namespaces,
    }
    sampler = Sampler(pids)
    sampler.start()
    try:
        measure(cluster, namespaces, n, run.run_id, margin, bound, sampler, result)
    finally:
        sampler.mark("stopping")
        sampler.stop()
        result["operator_stop"] = {label: operator.stop() for label, operator in operators.items()}
        release_leases(cluster, home, [lease_name(shard) for shard in layouts])
        window = sampler.cpu_between("t0", "last_job")
        result["cpu_in_burst"] = window
        used = window.get("cpu_seconds") or {}
        result["operator_cpu_seconds"] = {label: used.get(label) for label in operators}
        total = sum(value or 0.0 for value in result["operator_cpu_seconds"].values())
        result["operator_cpu_seconds_total"] = round(total, 2)
        seen = result.get("jobs_seen") or 0
        result["operator_cpu_ms_per_job"] = round(1000 * total / seen, 2) if seen else None
        result["operator_peak_rss_mib"] = {label: sampler.peak_rss_mib(label) for label in operators}
    return result


def measure(
    cluster: Cluster,
    namespaces: list[str],
    n: int,
    run_id: str,
    margin: float,
    bound: float,
    sampler: Sampler,
    result: dict[str, Any],
) -> None:
    seen = Sightings()
    ours = set(namespaces)

    def job_event(kind: str, obj: dict[str, Any], arrived: float) -> None:
        if obj["metadata"].get("namespace") in ours:
            seen.job_event(kind, obj, arrived)

    def sd_event(kind: str, obj: dict[str, Any], arrived: float) -> None:
        if obj["metadata"].get("namespace") in ours:
            seen.sd_event(kind, obj, arrived)

    batch = client.BatchV1Api(cluster.new_client())
    custom = client.CustomObjectsApi(cluster.new_client())
    job_watch = RawWatch(
        "watch-jobs",
        lambda **kw: batch.list_job_for_all_namespaces(label_selector=JOB_SELECTOR, **kw),
        job_event,
        seen.job_relist,
    )
    job_watch.start()
    sd_watch = RawWatch(
        "watch-sds",
        lambda **kw: custom.list_cluster_custom_object(GROUP, VERSION, PLURAL, **kw),
        sd_event,
        lambda items, at: [sd_event("ADDED", item, at) for item in items],
    )
    sd_watch.start()
    # Creation at about 80/s, arming at about 30/s for one operator (each shard arms its own half).
    instant = next_minute(time.time() + margin + 1.5 * (n / 80 + n / 30))
    log(f"instant {utc(instant)} ({instant - time.time():.0f}s from now); creating {n} objects")
    bodies = []
    for i in range(n):
        body = scheduled_deployment(f"sd-{i:05d}", utc(instant), run_id)
        body["metadata"]["namespace"] = namespaces[i % len(namespaces)]
        bodies.append(body)
    writer = cluster.new_client(pool=32)
    api = client.CustomObjectsApi(writer)
    started = time.time()
    failures = create_with_retries(
        bodies,
        lambda b: api.create_namespaced_custom_object(GROUP, VERSION, b["metadata"]["namespace"], PLURAL, b),
    ).failures
    writer.close()
    expected = n - len(failures)
    result.update({"instant": utc(instant), "create_seconds": round(time.time() - started, 2)})
    result["create_failure_count"] = len(failures)
    if not wait_until(lambda: len(seen.armed) >= expected, max(0.0, instant - 2 - time.time())):
        log(f"WARNING: only {len(seen.armed)} of {expected} armed 2s before the instant")
    result["armed_before_instant"] = len(seen.armed)
    sd_watch.stop()
    time.sleep(max(0.0, instant - 3 - time.time()))
    before = cluster.request_counts()
    time.sleep(max(0.0, instant - time.time()))
    sampler.mark("t0")
    deadline = instant + bound
    while len(seen.jobs) < expected and time.time() < deadline:
        time.sleep(0.1)
    sampler.mark("last_job")
    job_watch.stop()
    result.update(burst_report(seen, instant, expected))
    result["apiserver_requests_in_burst"] = request_delta(before, cluster.request_counts())
    log(
        f"{result['jobs_seen']}/{expected} Jobs; first {fmt(result['first_ms'])} ms, "
        f"last {fmt(result['last_ms'])} ms, {fmt(result['jobs_per_second'], 1)} Jobs/s"
    )


HEADER = (
    "layout      |     N | first ms |  last ms | Jobs/s | operator CPU s (each)  | CPU ms/Job "
    "| peak RSS MiB (each)"
)


def table(bursts: list[dict[str, Any]]) -> str:
    lines = [HEADER, "-" * len(HEADER)]
    for b in bursts:
        if b["kind"] == "sundial":
            each = " + ".join(fmt(v, 1) for v in b["operator_cpu_seconds"].values())
            rss = " / ".join(fmt(v) for v in b["operator_peak_rss_mib"].values())
            per_job = b.get("operator_cpu_ms_per_job")
        else:
            cpu = (b.get("cpu_in_burst") or {}).get("cpu_seconds") or {}
            each = f"kcm {fmt(cpu.get('kube-controller-manager'), 1)}"
            jobs = b.get("jobs_seen") or 0
            per_job = round(1000 * cpu["kube-controller-manager"] / jobs, 2) if jobs and cpu else None
            rss = "-"
        lines.append(
            f"{b['layout']:<11} | {b['n']:>5} | {fmt(b.get('first_ms')):>8} | {fmt(b.get('last_ms')):>8} "
            f"| {fmt(b.get('jobs_per_second'), 1):>6} | {each:<22} | {fmt(per_job, 1):>10} | {rss}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--sizes", default="1000", help="comma-separated N (default: 1000)")
    parser.add_argument("--margin", type=float, default=15, help="seconds added to the lead (default: 15)")
    parser.add_argument(
        "--bound", type=float, default=300, help="seconds to wait for the Jobs (default: 300)"
    )
    args = parse_with_common_arguments(parser, argv, "bench-shards-cluster")
    sizes = [int(s) for s in str(args.sizes).split(",") if s.strip()]
    run = BenchRun.start("shards", args, {"sizes": sizes, "namespaces": NAMESPACES, "sundial_qps": None})
    document = run.document
    document["bursts"] = []
    with bench_cluster(args.state_dir, args.keep_cluster) as cluster:
        cluster.install_crds()
        document["machine"] = machine_facts(cluster)
        for n in sizes:
            for shards in (1, 2):
                document["bursts"].append(run_sharded_burst(cluster, n, shards, run, args.margin, args.bound))
                run.save()
            plan = BurstPlan(Mode(), "cronjob", n, run.run_id, run.operator_source, args.margin, args.bound)
            cronjobs = run_burst(cluster, plan)
            cronjobs["layout"] = "CronJob"
            document["bursts"].append(cronjobs)
            run.save()
    run.finish(table(document["bursts"]))
    incomplete = [b for b in document["bursts"] if b.get("jobs_seen") != b.get("expected")]
    return 1 if incomplete else 0


if __name__ == "__main__":
    sys.exit(main())
