#!/usr/bin/env python3
"""Restart and failover: how long until a restarted operator, or a standby replica, fires again?

Two parts, each on the benchmark's own local control plane (``.sundial/bench-failover-cluster``):

``restart``: N existing, armed ScheduledDeployments (default 10,000, due in a day) and a few probe objects
named to sort after all of them (``zz-probe-…``), due 5 s to 240 s after the restart. The operator is
stopped with SIGTERM and a new one is started as soon as it has exited. After a restart the operator LISTs
every object, and each one is queued for a reconcile in that order, the probes last. A probe due before
that queue has drained fires late, at the moment its reconcile comes; a probe due after fires on time. So
the measured re-arm time is the fire time of the probes that were due before it (all of them late, all at
about the same moment) minus the new process's start, and the on-time probes after it show the heap really
held every object. The Lease changing to the new replica (it is active) and the operator's CPU going quiet
are recorded too.

``failover``: two replicas with peering (``--peering sundial``, explicit priorities, the older one higher),
and objects due every second. A trial SIGKILLs the active replica at a random moment within a second,
records when the first Job created after the kill appears (and the Lease's new holder), then starts a new
replica to be the next standby. Several trials for each ``--peering-lifetime`` (default: 10, the
operator's default, and 3); p50 and max are reported.

This is a measurement, not a test: it asserts nothing about time. It prints tables and writes JSON to
``bench/results/failover-<UTC timestamp>.json``. See bench/README.md for a run and what it means.
"""

from __future__ import annotations

import argparse
import random
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
    JOB_SELECTOR,
    LOGS,
    BenchRun,
    Cluster,
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
    read_proc,
    release_lease,
    request_delta,
    scheduled_deployment,
    utc,
    wait_until,
)
from sundial.api.keys import ANNOTATION_FIRED, ANNOTATION_SCHEDULED, GROUP, PLURAL, VERSION

PROBE_OFFSETS = (5, 10, 15, 20, 30, 40, 50, 60, 75, 90, 120, 150, 180, 240)
"""Seconds after the restart (the SIGTERM) at which the probe objects are due."""
ON_TIME_MS = 1000
"""A probe whose Job appears within this long of its instant counts as on time (armed before it)."""


# ---------------------------------------------------------------------------------------------- shared


@dataclass
class Jobs:
    """Every Job the watch saw: name -> (arrival, scheduled instant, the operator's fired-time)."""

    seen: dict[str, tuple[float, float, float | None]] = field(default_factory=dict)
    listed_before: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def event(self, kind: str, obj: dict[str, Any], arrived: float) -> None:
        metadata = obj["metadata"]
        annotations = metadata.get("annotations") or {}
        if kind == "DELETED" or ANNOTATION_SCHEDULED not in annotations:
            return
        fired = annotations.get(ANNOTATION_FIRED)
        with self.lock:
            self.seen.setdefault(
                metadata["name"],
                (arrived, parse_utc(annotations[ANNOTATION_SCHEDULED]), parse_utc(fired) if fired else None),
            )

    def relist(self, items: list[dict[str, Any]], at: float) -> None:
        with self.lock:
            self.listed_before.update(obj["metadata"]["name"] for obj in items)

    def after(self, moment: float) -> list[tuple[float, float, float | None]]:
        """Jobs that appeared after ``moment`` and that the operator fired after it, earliest first."""
        with self.lock:
            return sorted(
                entry
                for name, entry in self.seen.items()
                if name not in self.listed_before and entry[0] > moment and (entry[2] or entry[0]) > moment
            )


def watch_jobs(cluster: Cluster, namespace: str, jobs: Jobs) -> RawWatch:
    batch = client.BatchV1Api(cluster.new_client())
    watch = RawWatch(
        "watch-jobs",
        lambda **kw: batch.list_namespaced_job(namespace, label_selector=JOB_SELECTOR, **kw),
        jobs.event,
        jobs.relist,
    )
    watch.start()
    return watch


def create_objects(cluster: Cluster, namespace: str, bodies: list[dict[str, Any]]) -> float:
    """Create every object, retrying 'not now'; return the seconds it took."""
    creation = create_scheduled_deployments(cluster, namespace, bodies, attempts=6)
    if creation.failures:
        raise SystemExit(f"{len(creation.failures)} objects could not be created: {creation.failures[:5]}")
    return creation.finished - creation.started


class Armed:
    """Which ScheduledDeployments carry ``status.nextRunTime``, from a watch."""

    def __init__(self, cluster: Cluster, namespace: str) -> None:
        self.names: set[str] = set()
        custom = client.CustomObjectsApi(cluster.new_client())
        self.watch = RawWatch(
            "watch-sds",
            lambda **kw: custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, **kw),
            self._event,
            lambda items, at: [self._event("ADDED", obj, at) for obj in items],
        )
        self.watch.start()

    def _event(self, kind: str, obj: dict[str, Any], arrived: float) -> None:
        if kind != "DELETED" and (obj.get("status") or {}).get("nextRunTime"):
            self.names.add(obj["metadata"]["name"])


ACTIVE_LINE = ") is active:"
SYNCED_LINE = "caches synced:"
REPLANNED_LINE = "re-planned all "


def log_moment(operator: Operator, marker: str, after: float = 0.0) -> float | None:
    """When the operator first logged a line containing ``marker`` at or after ``after`` (its log lines
    start with a UTC timestamp to the millisecond)."""
    for line in operator.log_path.read_text(errors="replace").splitlines():
        if marker not in line:
            continue
        try:
            at = datetime.strptime(line[:23], "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=UTC).timestamp()
        except ValueError:
            continue
        if at >= after:
            return at
    return None


def since(start: float | None, moment: float | None) -> float | None:
    return None if start is None or moment is None else round(moment - start, 2)


def prepare_namespace(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("create", "namespace", namespace)
    client.CoreV1Api(cluster.api).create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="sundial-deployer"))
    )


def wait_active(cluster: Cluster, namespace: str, operator: Operator, timeout: float = 120) -> float | None:
    """Poll the Lease every 0.1 s until it names ``operator``; return when that was seen (None: never)."""
    seen: list[float] = []

    def check() -> bool:
        if not operator.alive():
            raise SystemExit(f"operator {operator.identity} exited; see {operator.log_path}")
        if lease_holder(cluster.api, namespace) == operator.identity:
            seen.append(time.time())
            return True
        return False

    return seen[0] if wait_until(check, timeout, interval=0.1) else None


# ---------------------------------------------------------------------------------------------- restart


def cpu_quiet_at(pid: int, since: float, stop: threading.Event, quiet_fraction: float = 0.05) -> list[float]:
    """Sample ``pid``'s CPU every 0.5 s; the first moment after ``since`` that it used < 5 % of a core
    over the last second, two readings in a row, goes into the returned list."""
    found: list[float] = []

    def run() -> None:
        history: list[tuple[float, float]] = []
        while not stop.is_set() and not found:
            reading = read_proc(pid)
            if reading is None:
                return
            now = time.time()
            history.append((now, reading.cpu_seconds))
            old = [h for h in history if now - h[0] >= 1.0]
            busy_before = len(history) > 4
            if old and busy_before and now > since + 2:
                t0, c0 = old[-1]
                if (reading.cpu_seconds - c0) / (now - t0) < quiet_fraction:
                    found.append(now)
            stop.wait(0.5)

    threading.Thread(target=run, name="cpu-quiet", daemon=True).start()
    return found


def run_restart(
    cluster: Cluster, n: int, offsets: Sequence[int], run_id: str, source: Path | None
) -> dict[str, Any]:
    namespace = f"restart-{n}-{run_id}"
    log(f"=== restart: {n} objects in {namespace}")
    prepare_namespace(cluster, namespace)
    result: dict[str, Any] = {"n": n, "namespace": namespace, "probe_offsets_seconds": list(offsets)}
    first = Operator(
        cluster, namespace, LOGS / f"operator-{namespace}-a.log", source, identity=f"{namespace}-a"
    )
    if wait_active(cluster, namespace, first) is None:
        raise SystemExit("the first operator never became active")
    armed = Armed(cluster, namespace)
    far = time.time() + 86400
    bodies = [scheduled_deployment(f"sd-{i:05d}", utc(far + (i % 3600)), run_id) for i in range(n)]
    result["create_seconds"] = round(create_objects(cluster, namespace, bodies), 1)
    log(f"created {n} in {result['create_seconds']}s; waiting for the operator to arm them")
    started = time.time()
    if not wait_until(lambda: len(armed.names) >= n, 1800, interval=1):
        raise SystemExit(f"only {len(armed.names)} of {n} armed after 30 minutes")
    result["first_arm_seconds_after_create"] = round(time.time() - started, 1)
    log(f"all {n} armed {result['first_arm_seconds_after_create']}s after creation")

    # The probes: instants fixed relative to the restart, which happens as soon as they are armed.
    restart_at = int(time.time()) + 8
    probes = {f"zz-probe-{offset:03d}": restart_at + offset for offset in offsets}
    create_objects(cluster, namespace, [scheduled_deployment(k, utc(v), run_id) for k, v in probes.items()])
    if not wait_until(lambda: set(probes) <= armed.names, max(1.0, restart_at - time.time())):
        log("WARNING: the probes were not all armed by the old operator before the restart")
    armed.watch.stop()
    jobs = Jobs()
    job_watch = watch_jobs(cluster, namespace, jobs)
    time.sleep(max(0.0, restart_at - time.time()))
    before = cluster.request_counts()

    result["old_operator_stop"] = first.stop()
    second = Operator(
        cluster, namespace, LOGS / f"operator-{namespace}-b.log", source, identity=f"{namespace}-b"
    )
    process_start = second.started_at
    stop_sampling = threading.Event()
    quiet = cpu_quiet_at(second.pid, process_start, stop_sampling)
    sampler = Sampler({"operator": second.pid, **cluster.component_pids()})
    sampler.mark("start")
    sampler.start()
    active_at = wait_active(cluster, namespace, second)
    last_probe = max(probes.values())
    wait_until(
        lambda: len(jobs.after(restart_at)) >= len(probes), last_probe + 60 - time.time(), interval=0.5
    )
    sampler.mark("end")
    wait_until(lambda: log_moment(second, REPLANNED_LINE) is not None, 60, interval=0.5)
    after = cluster.request_counts()
    stop_sampling.set()
    job_watch.stop()
    sampler.stop()
    result["new_operator_stop"] = second.stop()
    result["new_operator_log"] = second.log_report(tail_lines=10)
    release_lease(cluster, namespace)

    arrivals = {name: entry for name, entry in jobs.seen.items() if name not in jobs.listed_before}
    by_probe: dict[str, dict[str, Any]] = {}
    for arrived, scheduled, fired in arrivals.values():
        probe = next((p for p, at in probes.items() if at == int(scheduled)), None)
        if probe is not None:
            by_probe[probe] = {
                "due_after_process_start_s": round(scheduled - process_start, 2),
                "job_seen_after_process_start_s": round(arrived - process_start, 2),
                "late_ms": round((arrived - scheduled) * 1000),
                "fired_late_ms": None if fired is None else round((fired - scheduled) * 1000),
            }
    late = [v for v in by_probe.values() if v["late_ms"] > ON_TIME_MS]
    on_time = [v for v in by_probe.values() if v["late_ms"] <= ON_TIME_MS]
    result.update(
        {
            "old_operator_exit_to_new_start_s": round(process_start - restart_at, 2),
            "process_start_to_lease_s": None if active_at is None else round(active_at - process_start, 2),
            # The re-arm time: the late probes were all due before the queue drained and fired when their
            # turn came, last of the N + probes; the last of them is when every object had been through.
            "process_start_to_rearmed_s": max(
                (v["job_seen_after_process_start_s"] for v in late), default=None
            ),
            "rearmed_bound": (
                "late probes fired at this moment"
                if late
                else "every probe was on time: re-armed before the first probe's instant"
            ),
            "first_on_time_probe_due_after_start_s": min(
                (v["due_after_process_start_s"] for v in on_time), default=None
            ),
            "process_start_to_cpu_quiet_s": round(quiet[0] - process_start, 2) if quiet else None,
            # From the operator's own log: its caches hold the whole listing; it is active; every object has
            # been planned once since (the moment every object is armed again).
            "process_start_to_caches_synced_s": since(process_start, log_moment(second, SYNCED_LINE)),
            "process_start_to_active_s": since(process_start, log_moment(second, ACTIVE_LINE)),
            "process_start_to_replanned_s": since(process_start, log_moment(second, REPLANNED_LINE)),
            "probes": dict(sorted(by_probe.items())),
            "probes_seen": len(by_probe),
            "probes_total": len(probes),
            "operator_cpu": sampler.cpu_between("start", "end"),
            "operator_peak_rss_mib": sampler.peak_rss_mib("operator"),
            "apiserver_requests_after_restart": request_delta(before, after),
        }
    )
    log(
        f"restart: lease after {fmt(result['process_start_to_lease_s'], 1)}s, caches synced after "
        f"{fmt(result['process_start_to_caches_synced_s'], 1)}s, every object re-planned after "
        f"{fmt(result['process_start_to_replanned_s'], 1)}s, late probes fired after "
        f"{fmt(result['process_start_to_rearmed_s'], 1)}s, CPU quiet after "
        f"{fmt(result['process_start_to_cpu_quiet_s'], 1)}s; {len(on_time)} probes on time, {len(late)} late"
    )
    return result


# ---------------------------------------------------------------------------------------------- failover


def peering_object(cluster: Cluster, namespace: str) -> None:
    client.CustomObjectsApi(cluster.api).create_namespaced_custom_object(
        "kopf.dev",
        "v1",
        namespace,
        "kopfpeerings",
        {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": "sundial"}},
    )


def run_failover(
    cluster: Cluster,
    lifetime: int,
    trials: int,
    run_id: str,
    source: Path | None,
    rng: random.Random,
    standing: int = 0,
) -> dict[str, Any]:
    """``standing``: objects due a day later on top of the ticks, so that the standby that takes over holds
    that many (the take-over at 10,000 objects of issue 14)."""
    namespace = f"failover-l{lifetime}-{run_id}"
    log(f"=== failover: peering lifetime {lifetime}s, {trials} trials, {standing} standing, in {namespace}")
    prepare_namespace(cluster, namespace)
    peering_object(cluster, namespace)
    # One object due every second for as long as the trials can take, plus room.
    span = trials * (lifetime + 40) + 120
    begin = int(time.time()) + 30
    bodies = [scheduled_deployment(f"tick-{i:05d}", utc(begin + i), run_id) for i in range(span)]
    priority = 10_000
    replicas: list[Operator] = []

    def start_replica() -> Operator:
        nonlocal priority
        priority -= 1  # every new replica ranks below the ones already running: it is the standby
        identity = f"{namespace}-r{len(replicas)}"
        args = ["--peering", "sundial", "--peering-lifetime", str(lifetime), "--priority", str(priority)]
        replica = Operator(cluster, namespace, LOGS / f"operator-{identity}.log", source, args, identity)
        replicas.append(replica)
        return replica

    active = start_replica()
    if wait_active(cluster, namespace, active) is None:
        raise SystemExit("the first replica never became active")
    if standing:
        far = time.time() + 86400
        started = time.time()
        create_objects(
            cluster,
            namespace,
            [
                scheduled_deployment(f"standing-{i:05d}", utc(far + (i % 3600)), run_id)
                for i in range(standing)
            ],
        )
        log(f"{standing} standing objects created in {time.time() - started:.0f}s")
        # The ticks are due from `begin` on; with thousands of objects to create first, start them later.
        begin = max(begin, int(time.time()) + 30)
        bodies = [scheduled_deployment(f"tick-{i:05d}", utc(begin + i), run_id) for i in range(span)]
    create_objects(cluster, namespace, bodies)
    armed = Armed(cluster, namespace)
    jobs = Jobs()
    job_watch = watch_jobs(cluster, namespace, jobs)
    standby = start_replica()
    wait_until(lambda: time.time() > begin + 5, 60)
    results = []
    try:
        for trial in range(trials):
            # Let the standby start up and see its peer; then kill within a random fraction of a second.
            time.sleep(max(0.0, standby.started_at + 12 - time.time()) + rng.random())
            if not standby.alive():
                raise SystemExit(f"standby {standby.identity} exited; see {standby.log_path}")
            if standing:
                # A steady state: the standby's caches warm, and the active replica done arming the
                # standing objects (due a day later, each gets a status.nextRunTime; a tick may fire at its
                # first plan and never show one).
                wait_until(lambda s=standby: log_moment(s, SYNCED_LINE) is not None, 120, 0.5)
                wait_until(
                    lambda: sum(1 for n in list(armed.names) if n.startswith("standing-")) >= standing,
                    600,
                    1.0,
                )
            killed_at = active.kill()
            takeover = wait_active(cluster, namespace, standby, timeout=lifetime * 6 + 60)
            wait_until(lambda at=killed_at: bool(jobs.after(at)), 60, interval=0.05)
            wait_until(
                lambda s=standby, at=killed_at: log_moment(s, REPLANNED_LINE, at) is not None, 120, 0.5
            )
            fired = jobs.after(killed_at)
            first = fired[0] if fired else None
            became_active = log_moment(standby, ACTIVE_LINE, killed_at)
            replanned = log_moment(standby, REPLANNED_LINE, killed_at)
            # Ticks due after the replica became active: each is on time if its Job came within ON_TIME_MS.
            after_active = [
                entry for entry in fired if became_active is not None and entry[1] > became_active
            ]
            late_after_active = [e for e in after_active[:10] if (e[2] or e[0]) - e[1] > ON_TIME_MS / 1000]
            entry = {
                "trial": trial,
                "killed": active.identity,
                "killed_at": datetime.fromtimestamp(killed_at, UTC).isoformat(timespec="milliseconds"),
                "kill_to_lease_s": None if takeover is None else round(takeover - killed_at, 2),
                "kill_to_first_job_seen_s": None if first is None else round(first[0] - killed_at, 2),
                "kill_to_first_fired_s": (
                    None if first is None or first[2] is None else round(first[2] - killed_at, 2)
                ),
                "kill_to_active_s": since(killed_at, became_active),
                "active_to_replanned_s": since(became_active, replanned),
                "lease_to_replanned_s": since(takeover, replanned),
                "first_ten_due_after_active_late": len(late_after_active),
                "first_due_after_active_late_ms": (
                    round(((after_active[0][2] or after_active[0][0]) - after_active[0][1]) * 1000)
                    if after_active
                    else None
                ),
            }
            results.append(entry)
            log(
                f"trial {trial}: lease moved after {fmt(entry['kill_to_lease_s'], 2)}s, first Job seen "
                f"{fmt(entry['kill_to_first_job_seen_s'], 2)}s after the SIGKILL; every object re-planned "
                f"{fmt(entry['active_to_replanned_s'], 2)}s after becoming active; "
                f"{entry['first_ten_due_after_active_late']} of the first 10 ticks due after that late"
            )
            active, standby = standby, start_replica()
    finally:
        job_watch.stop()
        armed.watch.stop()
        for replica in replicas:
            if replica.alive():
                replica.stop()
        release_lease(cluster, namespace)
    seen = [e["kill_to_first_job_seen_s"] for e in results if e["kill_to_first_job_seen_s"] is not None]
    replanned = [e["active_to_replanned_s"] for e in results if e["active_to_replanned_s"] is not None]
    return {
        "peering_lifetime_s": lifetime,
        "standing_objects": standing,
        "active_to_replanned_s": {
            "p50": percentile(replanned, 50),
            "max": max(replanned) if replanned else None,
            "count": len(replanned),
        },
        "namespace": namespace,
        "trials": results,
        "kill_to_first_job_seen_s": {
            "p50": percentile(seen, 50),
            "max": max(seen) if seen else None,
            "min": min(seen) if seen else None,
            "count": len(seen),
        },
        "replica_logs": [r.log_report(tail_lines=5) for r in replicas],
    }


# ---------------------------------------------------------------------------------------------- main


def tables(document: dict[str, Any]) -> str:
    out = []
    restart = document.get("restart")
    if restart:
        out.append(
            "restart:      N | create s | first arm s | start->Lease s | start->re-armed s "
            "| start->CPU quiet s | probes on time/late"
        )
        late = sum(1 for p in restart["probes"].values() if p["late_ms"] > ON_TIME_MS)
        out.append(
            f"        {restart['n']:>7} | {fmt(restart['create_seconds'], 1):>8} "
            f"| {fmt(restart['first_arm_seconds_after_create'], 1):>11} "
            f"| {fmt(restart['process_start_to_lease_s'], 2):>14} "
            f"| {fmt(restart['process_start_to_rearmed_s'], 2):>17} "
            f"| {fmt(restart['process_start_to_cpu_quiet_s'], 2):>18} "
            f"| {restart['probes_seen'] - late}/{late} of {restart['probes_total']}"
        )
        out.append("")
    for failover in document.get("failover", []):
        stats = failover["kill_to_first_job_seen_s"]
        trials = " ".join(fmt(t["kill_to_first_job_seen_s"], 1) for t in failover["trials"])
        out.append(
            f"failover, peering lifetime {failover['peering_lifetime_s']:>2}s: SIGKILL -> standby's first "
            f"Job p50 {fmt(stats['p50'], 1)} s, max {fmt(stats['max'], 1)} s over {stats['count']} trials "
            f"({trials})"
        )
        replanned = failover.get("active_to_replanned_s") or {}
        out.append(
            f"  with {failover.get('standing_objects', 0)} standing objects: "
            f"active -> every object re-planned p50 {fmt(replanned.get('p50'), 2)} s, "
            f"max {fmt(replanned.get('max'), 2)} s"
        )
    return "\n".join(out)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--parts", default="restart,failover", help="restart and/or failover (default: both)")
    parser.add_argument("--objects", type=int, default=10000, help="objects to re-arm (default: 10000)")
    parser.add_argument(
        "--probe-offsets",
        default=",".join(map(str, PROBE_OFFSETS)),
        help="seconds after the restart at which the probes are due (default: %(default)s)",
    )
    parser.add_argument("--lifetimes", default="10,3", help="peering lifetimes to try (default: 10,3)")
    parser.add_argument("--trials", type=int, default=5, help="SIGKILLs per lifetime (default: 5)")
    parser.add_argument("--seed", type=int, default=7, help="for the kill moments (default: 7)")
    parser.add_argument(
        "--standing",
        type=int,
        default=0,
        help="failover: objects due a day later on top of the ticks, held by the standby (default: 0)",
    )
    args = parse_with_common_arguments(parser, argv, "bench-failover-cluster")
    args.parts = [p for p in str(args.parts).split(",") if p]
    args.lifetimes = [int(x) for x in str(args.lifetimes).split(",") if x]
    args.probe_offsets = [int(x) for x in str(args.probe_offsets).split(",") if x]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    run = BenchRun.start(
        "failover",
        args,
        {
            "parts": args.parts,
            "objects": args.objects,
            "lifetimes": args.lifetimes,
            "trials": args.trials,
            "probe_offsets_seconds": args.probe_offsets,
            "standing": args.standing,
        },
    )
    document, run_id, source = run.document, run.run_id, run.operator_source
    with bench_cluster(args.state_dir, args.keep_cluster) as cluster:
        cluster.install_crds()
        document["machine"] = machine_facts(cluster)
        if "restart" in args.parts:
            document["restart"] = run_restart(cluster, args.objects, args.probe_offsets, run_id, source)
            run.save()
        if "failover" in args.parts:
            rng = random.Random(args.seed)
            document["failover"] = []
            for lifetime in args.lifetimes:
                document["failover"].append(
                    run_failover(cluster, lifetime, args.trials, run_id, source, rng, args.standing)
                )
                run.save()
    run.finish(tables(document))
    return 0


if __name__ == "__main__":
    sys.exit(main())
