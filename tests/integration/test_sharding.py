"""Sharding (``sundial run --shard I/N``, issue 14): the number of shards changes while runs fall due.

One test, on the real API server, through every way a reshard goes: one unsharded operator serving four
namespaces; then two shards started beside it (the two serve a namespace at the same time as the old one:
the Job name is the only lock), and the old one stopped; then both shards gone (one SIGKILLed) with a gap
of seconds in which runs fall due and nobody serves, and three shards started. Runs fall due once a second
through all of it. What must hold: every run has exactly one Job and one record (none fired twice, none
dropped; a run due in the gap fires late, within its deadline), each Job was created by one operator
("fired" is logged only for a create the API server accepted), and a shard never took in, nor fired for, a
namespace outside its shard.

On the way, the hazard of a per-shard peering object: shard 1/2 starts before its ``sundial-1-of-2``
peering objects exist, says which to create and fires nothing until they do (kopf alone would stay paused
without a word above debug level).
"""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from test_faults import Due, audit, create_due, sleep_until, wait_all_recorded

from conftest import Cluster, OperatorProcess, fresh_namespace, wait_until
from sdhelpers import StartOperator, create_peering, rfc3339, utc_in
from sundial.api.keys import ANNOTATION_SCHEDULED
from sundial.api.shards import Shard, lease_name, shard_of

NAMESPACES = 4
DUES = 40
"""One a second, round the namespaces: runs fall due before, during and after each change of N."""
DEADLINE = 300


def namespaces_for_every_shard(stem: str) -> list[str]:
    """Four fresh names such that with 2 and with 3 shards every shard serves at least one of them."""
    while True:
        run = uuid.uuid4().hex[:5]
        names = [f"{stem}-{run}-{i}" for i in range(NAMESPACES)]
        if all({shard_of(name, count) for name in names} == set(range(count)) for count in (2, 3)):
            return names


@pytest.fixture
def shard_namespaces(cluster: Cluster) -> Iterator[list[str]]:
    from kubernetes import client

    names = namespaces_for_every_shard("shards")
    with contextlib.ExitStack() as stack:
        for name in names:
            stack.enter_context(fresh_namespace(cluster, name))
            account = client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="sundial-deployer"))
            cluster.core().create_namespaced_service_account(name, account)
        yield names


def fired_jobs(operator: OperatorProcess) -> set[tuple[str, str]]:
    """(namespace, Job name) of every Job this operator's create made."""
    return set(re.findall(r"fired ([a-z0-9-]+)/([a-z0-9.-]+) for ", operator.log()))


def cached_objects(operator: OperatorProcess) -> int:
    [count] = re.findall(r"caches synced: (\d+) ScheduledDeployments", operator.log())
    return int(count)


def test_changing_the_number_of_shards_while_runs_fall_due_fires_each_run_once_and_drops_none(
    cluster: Cluster, shard_namespaces: list[str], start_operator: StartOperator
) -> None:
    home, *others = shard_namespaces
    scope = [arg for name in others for arg in ("--namespace", name)]

    def start(shard: Shard | None, *extra: str, wait_active: bool = True) -> OperatorProcess:
        flags = [*scope, *(() if shard is None else ("--shard", str(shard))), *extra]
        identity = "unsharded" if shard is None else f"shard-{shard.suffix}"
        return start_operator(
            home, *flags, identity=identity, lease_name=lease_name(shard), wait_active=wait_active
        )

    unsharded = start(None)
    t0 = utc_in(12)
    dues: dict[str, list[Due]] = {name: [] for name in shard_namespaces}
    for k in range(DUES):
        namespace = shard_namespaces[k % NAMESPACES]
        dues[namespace].append(
            create_due(cluster, namespace, f"run-{k}", t0 + timedelta(seconds=k), DEADLINE)
        )

    # 1 -> 2, overlapping: both shards start while the unsharded operator still fires, then it stops.
    sleep_until(t0 + timedelta(seconds=2))
    two = [Shard(0, 2), Shard(1, 2)]
    for namespace in shard_namespaces:
        create_peering(cluster, namespace, two[0].peering_name("sundial"))
    peering = ("--peering", "sundial", "--peering-lifetime", "6")
    first = start(two[0], *peering)
    second = start(two[1], *peering, wait_active=False)
    wait_until(
        "shard 1/2 to say which peering objects to create",
        lambda: "the peering object does not exist: KopfPeering sundial-1-of-2 in namespace" in second.log(),
        30,
    )
    time.sleep(1)
    assert "caches synced" not in second.log(), "shard 1/2 started serving without its peering objects"
    for namespace in shard_namespaces:
        create_peering(cluster, namespace, two[1].peering_name("sundial"))
    wait_until("shard 1/2 to become active", lambda: ") is active:" in second.log(), 60)
    unsharded.stop()
    overlap_ended = utc_in(0)

    # 2 -> 3, with a gap: one shard killed, one stopped, nobody serves for 3 s, then three shards.
    sleep_until(max(overlap_ended, t0 + timedelta(seconds=12)))
    first.kill()
    killed_at = utc_in(0)
    second.stop()
    stopped_at = utc_in(1)  # utc_in drops the fraction: the stop ended before this second
    time.sleep(3)
    shards_of_three = [Shard(index, 3) for index in range(3)]
    three = [start(shard) for shard in shards_of_three]

    for namespace, namespace_dues in dues.items():
        wait_all_recorded(cluster, namespace, namespace_dues, DEADLINE, f"resharding, {namespace}")
        counts = audit(cluster, namespace, namespace_dues, f"resharding, {namespace}")
        assert sum(counts.values()) == len(namespace_dues)
        assert "missed (recorded)" not in counts, f"{namespace}: {counts}"

    operators: dict[str, tuple[Shard | None, OperatorProcess]] = {"unsharded": (None, unsharded)}
    for sharded, process in [
        *zip(two, (first, second), strict=True),
        *zip(shards_of_three, three, strict=True),
    ]:
        operators[f"shard {sharded}"] = (sharded, process)
    fired_by: dict[tuple[str, str], list[str]] = {}
    for label, (shard, operator) in operators.items():
        for job in fired_jobs(operator):
            fired_by.setdefault(job, []).append(label)
        if shard is not None:
            own = [name for name in shard_namespaces if shard.serves(name)]
            assert cached_objects(operator) == sum(len(dues[name]) for name in own), (
                f"{label} cached objects of namespaces outside its shard"
            )
            strays = {namespace for namespace, _ in fired_jobs(operator) if not shard.serves(namespace)}
            assert not strays, f"{label} fired in {strays}, outside its shard"
    jobs = {
        (namespace, job.metadata.name): job.metadata.annotations.get(ANNOTATION_SCHEDULED, "")
        for namespace in shard_namespaces
        for job in cluster.batch().list_namespaced_job(namespace).items
    }
    assert len(jobs) == DUES, f"expected {DUES} Jobs, the API server has {len(jobs)}"
    # A replica that stops while a Job's create is in flight leaves that Job without its "fired" line: a
    # SIGKILL lands before the line is written, and a graceful stop cancels the coroutine that awaits the
    # create while the request itself completes (seen in CI for both). The Job and its record are right
    # (audited above); only the log cannot say who made it. So a Job may be unlogged only if a shard that
    # was stopping then serves its namespace, it fell due no later than that stop, and one per shard.
    stopped = {two[0]: killed_at, two[1]: stopped_at}
    unlogged = {job: scheduled for job, scheduled in jobs.items() if job not in fired_by}
    explained = {
        job: shard
        for job, scheduled in unlogged.items()
        for shard, when in stopped.items()
        if shard.serves(job[0]) and scheduled <= rfc3339(when)
    }
    assert explained.keys() == unlogged.keys() and len(set(explained.values())) == len(explained), (
        f"Jobs no operator's log says it fired: {unlogged} "
        f"(shard 0/2 was killed at {rfc3339(killed_at)}, shard 1/2 stopped by {rfc3339(stopped_at)})"
    )
    assert len(fired_by) + len(unlogged) == DUES, f"expected {DUES} Jobs fired, the logs show {len(fired_by)}"
    twice = {job: labels for job, labels in fired_by.items() if len(labels) > 1}
    assert not twice, f"Jobs created by more than one operator: {twice}"
    by_phase = {label: sum(label in labels for labels in fired_by.values()) for label in operators}
    print(f"Jobs fired, by operator: {by_phase}")
    assert by_phase["unsharded"] and any(by_phase[f"shard {s}"] for s in two)
    assert any(by_phase[f"shard {shard}"] for shard in shards_of_three)
