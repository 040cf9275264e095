"""``sundial run --metrics-bind``: the /metrics endpoint of a real operator on the local control plane.

One object succeeds and one fails; the scrape must show each result once, a lateness observation per Job,
the armed gauge rising and falling, and which replica is active. With two peered replicas, only the active
one says active_replica 1 and only it counts the run; when it exits, the standby takes over and says so,
without counting the run that the other one recorded.
"""

from __future__ import annotations

import platform
import socket
import time
import urllib.request
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import Cluster, lease_holder, wait_until
from sdhelpers import (
    StartOperator,
    create_peering,
    create_sd,
    job_template,
    jobs_of,
    patch_spec,
    read_sd,
    rfc3339,
    run_results,
    utc_in,
)
from sundial.api.keys import GROUP, PLURAL, VERSION

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def wait_for_value(port: int, name: str, expected: float, timeout: float, **labels: str) -> Samples:
    def check() -> Samples | None:
        try:
            samples = scrape(port)
        except OSError:  # URLError included: the process has not opened its port yet
            return None
        return samples if value(samples, name, **labels) == expected else None

    return wait_until(f"{name}{labels or ''} == {expected}", check, timeout)


def test_metrics_count_a_success_and_a_failure_once_each(
    cluster: Cluster, deployer_namespace: str, start_operator: StartOperator
) -> None:
    ns = deployer_namespace
    port = free_port()
    start_operator(ns, "--metrics-bind", f"127.0.0.1:{port}")
    before = wait_for_value(port, "sundial_active_replica", 1, 20)
    assert value(before, "sundial_armed_schedules") == 0
    assert value(before, "sundial_runs_total", result="succeeded", role="deploy") == 0
    assert value(before, "sundial_build_info", version="0.1.0", python_version=platform.python_version()) == 1

    instant = utc_in(6)
    create_sd(cluster, ns, "works", {"runAt": rfc3339(instant), "jobTemplate": job_template()})
    create_sd(cluster, ns, "breaks", {"runAt": rfc3339(instant), "jobTemplate": job_template(fail=True)})
    wait_for_value(port, "sundial_armed_schedules", 2, 10)

    wait_until("both runs to finish", lambda: _finished(cluster, ns, ("works", "breaks")), 60)
    after = wait_for_value(port, "sundial_runs_total", 1, 10, result="failed", role="deploy")
    assert value(after, "sundial_runs_total", result="succeeded", role="deploy") == 1
    assert value(after, "sundial_runs_total", result="missed", role="deploy") == 0
    assert value(after, "sundial_jobs_created_total", role="deploy") == 2
    assert value(after, "sundial_fire_lateness_seconds_count", role="deploy") == 2
    # The histogram agrees with the lateness the Jobs' own annotations record (to their millisecond).
    lateness_sum = value(after, "sundial_fire_lateness_seconds_sum", role="deploy")
    annotated = sum(
        _annotated_lateness(job) for name in ("works", "breaks") for job in jobs_of(cluster, ns, name)
    )
    assert lateness_sum == pytest.approx(annotated, abs=0.002)
    assert value(after, "sundial_invalid_objects") == 0
    assert value(after, "sundial_fire_api_errors_total", code="403") is None
    assert value(after, "process_resident_memory_bytes"), "the process collector is registered"
    # A finished one-shot has nothing left to wake for.
    wait_for_value(port, "sundial_armed_schedules", 0, 10)


def test_a_missed_run_is_counted_once_and_not_again_after_a_restart(
    cluster: Cluster, deployer_namespace: str, start_operator: StartOperator
) -> None:
    ns = deployer_namespace
    instant = utc_in(2)
    spec = {"runAt": rfc3339(instant), "startingDeadlineSeconds": 1, "jobTemplate": job_template()}
    create_sd(cluster, ns, "overslept", spec)
    # No operator runs while the instant and its one-second deadline pass: the condition is time itself.
    time.sleep(max(0.0, (instant - datetime.now(UTC)).total_seconds()) + 2)

    port = free_port()
    first = start_operator(ns, "--metrics-bind", f"127.0.0.1:{port}")
    missed = wait_for_value(port, "sundial_runs_total", 1, 20, result="missed", role="deploy")
    assert run_results(cluster, ns, "overslept")[0][0] == "Missed"
    assert value(missed, "sundial_jobs_created_total", role="deploy") == 0
    assert value(missed, "sundial_fire_lateness_seconds_count", role="deploy") == 0

    first.stop()
    port = free_port()
    start_operator(ns, "--metrics-bind", f"127.0.0.1:{port}")
    wait_for_value(port, "sundial_active_replica", 1, 20)
    # Make the restarted operator write this object's status (a new generation to observe), so that the
    # check below follows a write that saw the Missed record, not a scrape taken before it looked.
    patch_spec(cluster, ns, "overslept", {"startingDeadlineSeconds": 2})
    wait_until(
        "the restarted operator to observe the new generation",
        lambda: _observed(cluster, ns, "overslept"),
        20,
    )
    assert value(scrape(port), "sundial_runs_total", result="missed", role="deploy") == 0


def test_an_invalid_object_shows_in_the_invalid_gauge(
    cluster: Cluster, deployer_namespace: str, start_operator: StartOperator
) -> None:
    ns = deployer_namespace
    port = free_port()
    start_operator(ns, "--metrics-bind", f"127.0.0.1:{port}")
    create_sd(cluster, ns, "typo", {"schedule": "0 25 * * *", "jobTemplate": job_template()})
    wait_for_value(port, "sundial_invalid_objects", 1, 20)
    cluster.custom().delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "typo")
    wait_for_value(port, "sundial_invalid_objects", 0, 20)


def test_only_the_active_replica_says_so_and_counts_runs(
    cluster: Cluster, deployer_namespace: str, start_operator: StartOperator
) -> None:
    ns = deployer_namespace
    create_peering(cluster, ns)
    active_port, standby_port = free_port(), free_port()
    peering = ("--peering", "sundial", "--peering-lifetime", "6")
    older = start_operator(ns, *peering, "--metrics-bind", f"127.0.0.1:{active_port}", identity="older")
    start_operator(
        ns, *peering, "--metrics-bind", f"127.0.0.1:{standby_port}", identity="newer", wait_active=False
    )
    wait_for_value(standby_port, "sundial_active_replica", 0, 20)
    assert lease_holder(cluster, ns) == "older"
    assert value(scrape(active_port), "sundial_active_replica") == 1

    create_sd(cluster, ns, "once", {"runAt": rfc3339(utc_in(6)), "jobTemplate": job_template()})
    wait_for_value(active_port, "sundial_armed_schedules", 1, 5)
    # The standby has cached the object too (its watch runs) but arms nothing.
    assert value(scrape(standby_port), "sundial_armed_schedules") == 0
    wait_until("the run to finish", lambda: _finished(cluster, ns, ("once",)), 40)
    wait_for_value(active_port, "sundial_runs_total", 1, 10, result="succeeded", role="deploy")
    standby = scrape(standby_port)
    assert value(standby, "sundial_active_replica") == 0
    assert value(standby, "sundial_runs_total", result="succeeded", role="deploy") == 0
    assert value(standby, "sundial_jobs_created_total", role="deploy") == 0

    older.stop()  # a graceful exit hands over: the standby now says it is active, and still counted nothing
    taken_over = wait_for_value(standby_port, "sundial_active_replica", 1, 30)
    assert value(taken_over, "sundial_runs_total", result="succeeded", role="deploy") == 0


def _annotated_lateness(job: Any) -> float:
    annotations = job.metadata.annotations
    fired, scheduled = (
        datetime.fromisoformat(annotations[key].replace("Z", "+00:00"))
        for key in ("sundial.dev/fired-time", "sundial.dev/scheduled-time")
    )
    return (fired - scheduled).total_seconds()


def _observed(cluster: Cluster, namespace: str, name: str) -> bool:
    body = read_sd(cluster, namespace, name)
    return bool((body.get("status") or {}).get("observedGeneration") == body["metadata"]["generation"])


def _finished(cluster: Cluster, namespace: str, names: tuple[str, ...]) -> bool:
    results = [run_results(cluster, namespace, name) for name in names]
    return all(runs and runs[0][0] in ("Succeeded", "Failed") for runs in results)
