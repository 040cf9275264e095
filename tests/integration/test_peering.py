"""Two replicas under kopf peering: one fires, the other takes over when it dies, and a run happens once.

Also the misconfiguration kopf cannot protect against: two replicas that both believe they are active.
The deterministic Job name is the lock that keeps even that to one Job per run.
"""

from __future__ import annotations

import time
from datetime import datetime

from conftest import Cluster, OperatorProcess, lease_holder, wait_until
from sdhelpers import (
    StartOperator,
    create_peering,
    create_sd,
    job_template,
    jobs_of,
    peers,
    read_sd,
    rfc3339,
    utc_in,
)
from sundial.api.keys import GROUP, PLURAL, VERSION

PEERING_LIFETIME = "6"


def start_peered_pair(
    cluster: Cluster, ns: str, start_operator: StartOperator, older: str, newer: str
) -> tuple[OperatorProcess, OperatorProcess]:
    """Two peered replicas in ``ns``: ``older`` started (and active) first, then ``newer``; both seen in the
    peering object."""
    create_peering(cluster, ns)
    peering = ("--peering", "sundial", "--peering-lifetime", PEERING_LIFETIME)
    active = start_operator(ns, *peering, identity=older)
    standby = start_operator(ns, *peering, identity=newer, wait_active=False)
    wait_until("both replicas to appear in the peering object", lambda: len(peers(cluster, ns)) >= 2, 30)
    return active, standby


def test_the_standby_fires_when_the_active_replica_is_killed(
    cluster: Cluster, deployer_namespace: str, start_operator: StartOperator
) -> None:
    ns = deployer_namespace
    active, standby = start_peered_pair(cluster, ns, start_operator, "replica-old", "replica-new")
    time.sleep(1)  # let the newer, lower-priority replica see the older one and pause
    assert lease_holder(cluster, ns) == "replica-old", "the older replica should stay active"

    instant = utc_in(20)
    create_sd(cluster, ns, "ha", {"runAt": rfc3339(instant), "jobTemplate": job_template()})
    wait_until(
        "the object to be armed",
        lambda: (read_sd(cluster, ns, "ha").get("status") or {}).get("nextRunTime"),
        10,
    )

    active.kill()
    killed_at = time.monotonic()
    wait_until("the standby to take over", lambda: lease_holder(cluster, ns) == "replica-new", 40)
    takeover = time.monotonic() - killed_at
    print(f"take-over after SIGKILL: {takeover:.1f}s (peering lifetime {PEERING_LIFETIME}s)")

    job = wait_until("the run's Job", lambda: jobs_of(cluster, ns, "ha"), 40)[0]
    fired = datetime.fromisoformat(job.metadata.annotations["sundial.dev/fired-time"].replace("Z", "+00:00"))
    assert fired >= instant
    wait_until(
        "the run to succeed", lambda: read_sd(cluster, ns, "ha")["status"].get("lastSuccessfulTime"), 30
    )
    assert len(jobs_of(cluster, ns, "ha")) == 1
    assert standby.process.poll() is None


def test_two_replicas_wrongly_active_at_once_still_create_one_job_per_run(
    cluster: Cluster, deployer_namespace: str, start_operator: StartOperator
) -> None:
    ns = deployer_namespace
    first = start_operator(ns, identity="standalone-a")
    second = start_operator(ns, identity="standalone-b", wait_active=False)
    # The Lease shows one holder at a time; each replica's log says when it starts serving.
    for replica, identity in ((first, "standalone-a"), (second, "standalone-b")):
        wait_until(f"{identity} to be active", lambda r=replica, i=identity: is_serving(r, i), 30)
    instants = [utc_in(8 + i) for i in range(5)]
    for index, instant in enumerate(instants):
        create_sd(cluster, ns, f"twice-{index}", {"runAt": rfc3339(instant), "jobTemplate": job_template()})

    for index in range(len(instants)):
        wait_until(
            f"twice-{index} to succeed",
            lambda index=index: (read_sd(cluster, ns, f"twice-{index}").get("status") or {}).get(
                "lastSuccessfulTime"
            ),
            60,
        )
    time.sleep(2)  # give a duplicate every chance to appear
    for index in range(len(instants)):
        assert len(jobs_of(cluster, ns, f"twice-{index}")) == 1
        runs = read_sd(cluster, ns, f"twice-{index}")["status"]["runs"]
        assert [run["result"] for run in runs] == ["Succeeded"]
    # The premise: both replicas were active from before the first instant until after the last, so every
    # run had two replicas racing to create its Job.
    for replica, identity in ((first, "standalone-a"), (second, "standalone-b")):
        assert replica.process.poll() is None, f"{identity} exited:\n{replica.log()[-3000:]}"
        assert "stopped serving" not in replica.log(), f"{identity} stopped:\n{replica.log()[-3000:]}"


def is_serving(operator: OperatorProcess, identity: str) -> bool:
    if operator.process.poll() is not None:
        raise AssertionError(
            f"{identity} exited with {operator.process.returncode}:\n{operator.log()[-3000:]}"
        )
    return f"this replica ({identity}) is active" in operator.log()


def test_the_standby_keeps_its_caches_warm_and_takes_over_without_listing_again(
    cluster: Cluster, deployer_namespace: str, start_operator: StartOperator
) -> None:
    """Issue 14: a standby that watches while it stands by. It learns of an object created and of one
    deleted while it is paused, takes over without listing everything again (its one listing was at start),
    fires the new object's run and never the deleted one's."""
    ns = deployer_namespace
    active, standby = start_peered_pair(cluster, ns, start_operator, "warm-old", "warm-new")
    wait_until("the standby's caches to be synced", lambda: "caches synced" in standby.log(), 30)
    assert lease_holder(cluster, ns) == "warm-old", "the older replica should stay active"

    instant = utc_in(25)
    for name in ("newcomer", "doomed"):
        create_sd(cluster, ns, name, {"runAt": rfc3339(instant), "jobTemplate": job_template()})
    cluster.custom().delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "doomed")
    time.sleep(1)  # both events reach the standby's watch (milliseconds, in practice)
    active.kill()
    wait_until("the standby to take over", lambda: lease_holder(cluster, ns) == "warm-new", 40)
    wait_until("the newcomer's Job", lambda: jobs_of(cluster, ns, "newcomer"), 40)
    wait_until(
        "the run to succeed",
        lambda: read_sd(cluster, ns, "newcomer")["status"].get("lastSuccessfulTime"),
        30,
    )
    assert len(jobs_of(cluster, ns, "newcomer")) == 1
    assert jobs_of(cluster, ns, "doomed") == []
    log = standby.log()
    # One listing, at start, before the take-over; at the take-over it knew exactly the one object left.
    assert log.count("caches synced") == 1, log[-3000:]
    assert log.index("caches synced") < log.index("(warm-new) is active: 1 objects to plan"), log[-3000:]
