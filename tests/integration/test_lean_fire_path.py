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
