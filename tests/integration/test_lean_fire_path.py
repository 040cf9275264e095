"""The lean fire path keeps what the per-Job GET and the immediate status write bought (real API server).

Issue 14 groups the fresh reads of a burst into one LIST and writes statuses behind the Job creates
(`sundial.runtime.freshreads`, `sundial.runtime.statuswriter`, the token classes of
`sundial.runtime.ratelimit`). Each test here breaks what the removed request used to cover:

* **a stale cache never fires a deleted or changed object.** The informer's watches go through a proxy
  (``SUNDIAL_FAULT_WATCH_SERVER``) that the test stalls before the instant, so the operator's caches still
  hold an object deleted and one changed meanwhile; the fire path reads them fresh, under a budget grouped
  into a LIST (a burst) or alone (a GET), and without one each with a GET;
* **a run is never unrecorded after a crash**, now that statuses wait behind a burst: under a tight budget
  the operator is killed while Jobs exist that no status records yet, and the restarted one records each
  run exactly once from its Job.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from faultproxy import TcpProxy, upstream_of
from test_faults import (
    Due,
    audit,
    create_due,
    runs_of,
    sleep_until,
    snapshot,
    wait_all_recorded,
    wait_serving,
)

from conftest import Cluster, wait_until
from sdhelpers import StartOperator, create_sd, job_template, read_sd, rfc3339, utc_in
from sundial.api.keys import GROUP, PLURAL, VERSION
from sundial.timing.names import job_name

BUDGETS = {"unlimited": [], "budget-5": ["--kube-api-qps", "5", "--kube-api-burst", "5"]}


def image_of(job: Any) -> str:
    return str(job.spec.template.spec.containers[0].image)


def with_image(image: str) -> dict[str, Any]:
    template = job_template()
    template["spec"]["template"]["spec"]["containers"][0]["image"] = image
    return template


def wait_armed(cluster: Cluster, ns: str, names: list[str], timeout: float = 60) -> None:
    def armed() -> bool:
        objects, _ = snapshot(cluster, ns)
        return all(((objects.get(n) or {}).get("status") or {}).get("nextRunTime") for n in names)

    wait_until("every object to be armed", armed, timeout, interval=0.2)


@pytest.mark.parametrize("budget", list(BUDGETS), ids=list(BUDGETS))
def test_a_stale_cache_never_fires_a_deleted_or_changed_object(
    cluster: Cluster, deployer_namespace: str, start_operator: StartOperator, budget: str
) -> None:
    ns = deployer_namespace
    proxy = TcpProxy(*upstream_of(cluster.kubeconfig))
    try:
        watch_server = {"SUNDIAL_FAULT_WATCH_SERVER": f"https://127.0.0.1:{proxy.port}"}
        operator = start_operator(ns, *BUDGETS[budget], env_extra=watch_server, wait_active=False)
        wait_serving(operator)
        assert proxy.accepted >= 1, (
            "the informer does not watch through the proxy: the test would prove nothing"
        )
        burst = utc_in(9)
        lone = burst + timedelta(seconds=2)
        spec = {"startingDeadlineSeconds": 600, "jobTemplate": with_image("registry.example/task:old")}
        # A burst (under the budget its fresh reads but the first are one LIST) and, two seconds later, one
        # object alone (a GET).
        kept = [create_due(cluster, ns, f"kept-{i}", burst, 600) for i in range(8)]
        for name, instant in (
            ("deleted", burst),
            ("changed", burst),
            ("lone-deleted", lone),
            ("lone-changed", lone),
        ):
            create_sd(cluster, ns, name, {**spec, "runAt": rfc3339(instant)})
        wait_armed(
            cluster, ns, [d.name for d in kept] + ["deleted", "changed", "lone-deleted", "lone-changed"]
        )
        # From here until after both instants the operator's watches deliver nothing.
        partition = threading.Thread(
            target=proxy.stall, args=((lone - datetime.now(UTC)).total_seconds() + 3,)
        )
        partition.start()
        time.sleep(0.5)  # fault timing: the changes land while the partition holds
        for name in ("deleted", "lone-deleted"):
            cluster.custom().delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)
        for name in ("changed", "lone-changed"):
            cluster.custom().patch_namespaced_custom_object(
                GROUP,
                VERSION,
                ns,
                PLURAL,
                name,
                {"spec": {"jobTemplate": with_image("registry.example/task:new")}},
            )
        partition.join()
        wait_all_recorded(
            cluster, ns, [*kept, Due("changed", burst, 600), Due("lone-changed", lone, 600)], 60, budget
        )
        _, jobs = snapshot(cluster, ns)
        assert "deleted" not in jobs and "lone-deleted" not in jobs, (
            f"a deleted object was fired from the stale cache: {sorted(jobs)}"
        )
        for name, instant in (("changed", burst), ("lone-changed", lone)):
            [job] = jobs[name]
            assert job.metadata.name == job_name(name, instant)
            assert image_of(job) == "registry.example/task:new", f"{name} was fired with its old spec"
        audit(cluster, ns, kept, f"stale cache, {budget}")
        assert operator.process.poll() is None, operator.log()[-3000:]
    finally:
        proxy.close()


def test_a_crash_while_statuses_wait_behind_a_burst_loses_no_record(
    cluster: Cluster, deployer_namespace: str, start_operator: StartOperator
) -> None:
    ns = deployer_namespace
    tight = ["--kube-api-qps", "3", "--kube-api-burst", "3"]
    operator = start_operator(ns, *tight, identity=f"{ns}-pod", wait_active=False)
    wait_serving(operator)
    instant = utc_in(6)
    dues = [create_due(cluster, ns, f"b{i:02d}", instant, 600) for i in range(24)]
    # At 3 requests a second the Jobs of the burst take about 8 s; statuses wait until they are made.
    sleep_until(instant + timedelta(seconds=3))
    operator.kill()
    objects, jobs = snapshot(cluster, ns)
    unrecorded = [
        owner
        for owner, owned in jobs.items()
        if not any(run.get("jobName") == owned[0].metadata.name for run in runs_of(objects.get(owner)))
    ]
    print(f"at the kill: {len(jobs)} of {len(dues)} Jobs, {len(unrecorded)} not yet in any status")
    assert jobs, "no Job was created before the kill: the test proves nothing"
    assert unrecorded, "every Job was already recorded at the kill: statuses did not wait behind the burst"
    restarted = start_operator(ns, identity=f"{ns}-pod", wait_active=False)
    wait_serving(restarted)
    wait_all_recorded(cluster, ns, dues, 60, "after the crash")
    counts = audit(cluster, ns, dues, "crash behind a burst")
    assert counts["missed (recorded)"] == 0
    for owner in unrecorded:
        [record] = runs_of(read_sd(cluster, ns, owner))
        assert record["jobName"] == jobs[owner][0].metadata.name
    assert restarted.process.poll() is None, restarted.log()[-3000:]


def test_a_pruned_run_is_recorded_before_its_job_is_deleted(
    cluster: Cluster, deployer_namespace: str, start_operator: StartOperator
) -> None:
    """With a history limit of 0 a finished run's Job is deleted; it must not be deleted before a status
    records its outcome. Once the Job is gone nothing else holds the run: a plan made from the older status
    would see a run without a Job (left Running for ever), or no run at all (and fire it again)."""
    ns = deployer_namespace
    # A tight budget: the status writes of the burst lag behind its Jobs by seconds, longer than a kwok pod
    # takes to finish, so each Job ends while its status is still waiting to be written.
    operator = start_operator(ns, "--kube-api-qps", "2", "--kube-api-burst", "2", wait_active=False)
    wait_serving(operator)
    instant = utc_in(6)
    outcomes = {f"ok-{i}": "Succeeded" for i in range(6)} | {f"ko-{i}": "Failed" for i in range(6)}
    for name, outcome in outcomes.items():
        spec = {
            "runAt": rfc3339(instant),
            "startingDeadlineSeconds": 600,
            "successfulJobsHistoryLimit": 0,
            "failedJobsHistoryLimit": 0,
            "jobTemplate": job_template(fail=outcome == "Failed"),
        }
        create_sd(cluster, ns, name, spec)

    def settled() -> bool:
        objects, jobs = snapshot(cluster, ns)
        finished = all(
            [run.get("result") for run in runs_of(objects.get(name))] == [outcome]
            for name, outcome in outcomes.items()
        )
        return finished and not jobs

    try:
        wait_until("every run recorded with its outcome and its Job deleted", settled, 120, interval=0.5)
    except AssertionError as error:
        objects, jobs = snapshot(cluster, ns)
        results = {name: [run.get("result") for run in runs_of(objects.get(name))] for name in outcomes}
        raise AssertionError(
            f"{error}\nruns {results}, Jobs of {sorted(jobs)}\n{operator.log()[-3000:]}"
        ) from None
    for name in outcomes:
        fired = operator.log().count(f"fired {ns}/{job_name(name, instant)} ")
        assert fired == 1, f"{name}: its Job was created {fired} times\n{operator.log()[-3000:]}"
    assert operator.process.poll() is None, operator.log()[-3000:]


def test_a_job_deleted_by_someone_else_fails_its_run_once_and_is_never_fired_again(
    cluster: Cluster, deployer_namespace: str, start_operator: StartOperator
) -> None:
    """Somebody (a person, a clean-up tool) deletes Sundial's Jobs while they run. Under a tight budget
    most are deleted before any status records their run, so neither a Job nor a status holds it: the
    operator's memory of deleted Jobs must keep each run from firing again, and record it failed."""
    ns = deployer_namespace
    operator = start_operator(ns, "--kube-api-qps", "2", "--kube-api-burst", "2", wait_active=False)
    wait_serving(operator)
    instant = utc_in(6)
    names = [f"d{i:02d}" for i in range(10)]
    spec = {
        "runAt": rfc3339(instant),
        "startingDeadlineSeconds": 600,
        "jobTemplate": job_template(run_duration="300s"),
    }
    for name in names:
        create_sd(cluster, ns, name, spec)
    deleted: set[str] = set()
    recorded_at_delete: dict[str, bool] = {}
    sleep_until(instant)
    stop = time.monotonic() + 40
    while time.monotonic() < stop and len(deleted) < len(names):
        objects, jobs = snapshot(cluster, ns)
        for owner, owned in jobs.items():
            if owner in deleted:
                continue
            recorded_at_delete[owner] = bool(runs_of(objects.get(owner)))
            cluster.batch().delete_namespaced_job(owned[0].metadata.name, ns, propagation_policy="Background")
            deleted.add(owner)
        time.sleep(0.2)
    assert deleted == set(names), f"only {sorted(deleted)} got a Job within 40 s"

    def every_run_failed_deleted() -> bool:
        objects, _ = snapshot(cluster, ns)
        return all(
            [(run.get("result"), run.get("reason")) for run in runs_of(objects.get(name))]
            == [("Failed", "JobDeleted")]
            for name in names
        )

    try:
        wait_until("every run recorded Failed/JobDeleted", every_run_failed_deleted, 90, interval=0.5)
    except AssertionError as error:
        objects, jobs = snapshot(cluster, ns)
        results = {name: runs_of(objects.get(name)) for name in names}
        raise AssertionError(
            f"{error}\n{results}\nJobs of {sorted(jobs)}\n{operator.log()[-3000:]}"
        ) from None
    unrecorded = sum(not recorded for recorded in recorded_at_delete.values())
    print(f"{unrecorded} of {len(names)} Jobs were deleted before a status recorded their run")
    assert unrecorded, "every run was recorded before its Job was deleted: the harder case went untested"
    time.sleep(3)  # fault timing: a second fire would follow the Failed record's write within a second
    _, jobs = snapshot(cluster, ns)
    assert not jobs, f"fired again after its Job was deleted: {sorted(jobs)}"
    for name in names:
        fired = operator.log().count(f"fired {ns}/{job_name(name, instant)} ")
        assert fired == 1, f"{name}: its Job was created {fired} times\n{operator.log()[-3000:]}"
    assert operator.process.poll() is None, operator.log()[-3000:]
