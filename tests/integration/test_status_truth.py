"""What the API server records is the truth: status fields, ``kubectl get`` cells and Job creation times.

The operator's own view (its ``sundial.dev/fired-time`` annotation, its log) could agree with itself and
still be wrong. These tests read what the API server stored and what kubectl prints from it: the default
dependency lead as two parsed instants, the printer cells of objects in three different states, and the
Jobs' ``creationTimestamp`` and watch events measured against the scheduled instants. The test's clock and
the API server's are the same machine's clock on the local control plane.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from kubernetes import watch

from conftest import Cluster, wait_until
from sdhelpers import (
    StartOperator,
    condition,
    create_sd,
    event_reasons,
    job_template,
    jobs_of,
    read_sd,
    rfc3339,
    run_results,
    utc_in,
    wait_for_condition,
)

DEFAULT_LEAD = timedelta(minutes=15)
AGE = re.compile(r"^(?:[0-9]+[smhdy])+$")
"""kubectl's form of a ``date`` column: ``5s``, ``2m3s``, ``4h``; never ``<invalid>`` (a future time)."""


def parse_utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def kubectl_table(output: str) -> dict[str, dict[str, str]]:
    """``kubectl get``'s table as one dict of cells per row, keyed by the NAME cell.

    Cells are cut at the header's column offsets, because headers such as NEXT RUN hold a space and a cell
    may be blank.
    """
    header, *rows = output.splitlines()
    columns = [(found.group(), found.start()) for found in re.finditer(r"\S+(?: \S+)*", header)]
    ends = [start for _, start in columns[1:]] + [None]
    table = {}
    for row in rows:
        cells = {name: row[start:end].strip() for (name, start), end in zip(columns, ends, strict=True)}
        table[cells["NAME"]] = cells
    return table


# ---------------------------------------------------------------------------------------------- lead


def test_a_dependency_without_a_lead_time_runs_fifteen_minutes_before_its_dependent(
    cluster: Cluster, deployer_namespace: str, start_operator: StartOperator
) -> None:
    ns = deployer_namespace
    start_operator(ns)
    # A local wall time in a zone with a quarter-hour offset: nextRunTime is the UTC instant it resolves to.
    instant = utc_in(3600)
    kathmandu = instant.astimezone(ZoneInfo("Asia/Kathmandu")).strftime("%Y-%m-%dT%H:%M:%S")
    create_sd(cluster, ns, "db", {"jobTemplate": job_template()})
    create_sd(
        cluster,
        ns,
        "app",
        {
            "runAt": kathmandu,
            "timeZone": "Asia/Kathmandu",
            "dependsOn": {"name": "db"},
            "jobTemplate": job_template(),
        },
    )

    wait_for_condition(cluster, ns, "app", "Scheduled", "True", "Armed", timeout=20)
    db_armed = wait_for_condition(cluster, ns, "db", "Scheduled", "True", "Armed", timeout=20)

    app = read_sd(cluster, ns, "app")
    db = read_sd(cluster, ns, "db")
    next_run = parse_utc(app["status"]["nextRunTime"])
    dependency_run = parse_utc(app["status"]["nextDependencyRunTime"])
    assert app["spec"]["dependsOn"] == {"name": "db", "leadTime": "15m", "mustSucceed": True}, "CRD defaults"
    assert next_run == instant
    assert next_run - dependency_run == DEFAULT_LEAD
    # The dependency's own object is armed for that instant: its next run is the dependent's lead instant.
    assert parse_utc(db["status"]["nextRunTime"]) == dependency_run
    assert "nextDependencyRunTime" not in db["status"], "db depends on nothing"
    assert rfc3339(dependency_run) in db_armed["message"]
    ready = condition(db, "Ready")
    assert ready is not None and (ready["status"], ready["reason"]) == ("True", "Armed")
    assert "Armed" in event_reasons(cluster, ns, "db")
    assert jobs_of(cluster, ns, "db") == [] and jobs_of(cluster, ns, "app") == []


# ---------------------------------------------------------------------------------------------- kubectl get


def test_kubectl_get_prints_ready_reason_next_run_and_last_run_for_armed_succeeded_and_held_objects(
    cluster: Cluster, deployer_namespace: str, start_operator: StartOperator
) -> None:
    ns = deployer_namespace
    start_operator(ns)
    later = utc_in(3600)
    soon = utc_in(5)
    held_at = utc_in(7)
    create_sd(cluster, ns, "armed", {"runAt": rfc3339(later), "jobTemplate": job_template()})
    create_sd(cluster, ns, "done", {"runAt": rfc3339(soon), "jobTemplate": job_template()})
    create_sd(cluster, ns, "migrate", {"jobTemplate": job_template(fail=True)})
    create_sd(
        cluster,
        ns,
        "held",
        {
            "runAt": rfc3339(held_at),
            "dependsOn": {"name": "migrate", "leadTime": "3s", "mustSucceed": True},
            "jobTemplate": job_template(),
        },
    )

    wait_for_condition(cluster, ns, "armed", "Ready", "True", "Armed", timeout=20)
    wait_for_condition(cluster, ns, "done", "Ready", "True", "Succeeded", timeout=40)
    wait_for_condition(cluster, ns, "held", "Ready", "False", "DependencyFailed", timeout=40)
    wait_for_condition(cluster, ns, "migrate", "Ready", "False", "JobFailed", timeout=20)
    output = cluster.kubectl("get", "sdep", "-n", ns).stdout
    print(output)
    rows = kubectl_table(output)

    def cells(name: str) -> tuple[str, str, str]:
        row = rows[name]
        return row["READY"], row["REASON"], row["NEXT RUN"]

    assert sorted(rows) == ["armed", "done", "held", "migrate"]
    assert cells("armed") == ("True", "Armed", rfc3339(later))
    assert rows["armed"]["LAST RUN"] == "", "nothing has run yet"
    assert cells("done") == ("True", "Succeeded", "")
    assert AGE.match(rows["done"]["LAST RUN"]), rows["done"]
    assert cells("held") == ("False", "DependencyFailed", "")
    assert rows["held"]["LAST RUN"] == "", "a held run started no Job"
    assert cells("migrate") == ("False", "JobFailed", "")
    assert AGE.match(rows["migrate"]["LAST RUN"]), rows["migrate"]
    assert jobs_of(cluster, ns, "held") == []
    assert run_results(cluster, ns, "held") == [("Held", "DependencyFailed")]


# ---------------------------------------------------------------------------------------------- lateness


@dataclass
class JobAdditions:
    """ADDED events of Jobs in one namespace, stamped with the test's clock when each arrived."""

    arrived: dict[str, datetime] = field(default_factory=dict)
    created: dict[str, datetime] = field(default_factory=dict)
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


def watch_job_additions(
    cluster: Cluster, namespace: str, resource_version: str, expected: int, timeout: int
) -> JobAdditions:
    """Watch Jobs after ``resource_version`` on a thread until ``expected`` are added or ``timeout`` ends."""
    seen = JobAdditions()
    stream = watch.Watch()

    def run() -> None:
        try:
            for event in stream.stream(
                cluster.batch().list_namespaced_job,
                namespace,
                resource_version=resource_version,
                timeout_seconds=timeout,
            ):
                now = datetime.now(UTC)
                job = event["object"]
                if event["type"] == "ADDED" and job.metadata.name not in seen.arrived:
                    seen.arrived[job.metadata.name] = now
                    seen.created[job.metadata.name] = job.metadata.creation_timestamp
                    if len(seen.arrived) >= expected:
                        stream.stop()
        except BaseException as error:  # handed to the test, which fails with it
            seen.error = error
        finally:
            seen.done.set()

    threading.Thread(target=run, name=f"watch-jobs-{namespace}", daemon=True).start()
    return seen


def test_jobs_are_created_never_before_their_instant_and_within_the_deadline_by_the_api_server_s_clock(
    cluster: Cluster, deployer_namespace: str, start_operator: StartOperator
) -> None:
    ns = deployer_namespace
    start_operator(ns)
    base = utc_in(8)
    # Two objects share an instant; deadlines differ so that each Job is held to its own object's.
    objects = {
        f"late-{index}": (base + timedelta(seconds=offset), deadline)
        for index, (offset, deadline) in enumerate([(0, 5), (0, 10), (1, 15), (2, 30)])
    }
    for name, (instant, deadline) in objects.items():
        spec = {"runAt": rfc3339(instant), "startingDeadlineSeconds": deadline, "jobTemplate": job_template()}
        create_sd(cluster, ns, name, spec)
    for name in objects:
        wait_for_condition(cluster, ns, name, "Scheduled", "True", "Armed", timeout=20)
    listed = cluster.batch().list_namespaced_job(ns)
    assert listed.items == []
    additions = watch_job_additions(cluster, ns, listed.metadata.resource_version, len(objects), timeout=45)
    assert datetime.now(UTC) < base, "the setup took too long: the watch must start before the first instant"

    wait_until("the watch to see every object's Job added", lambda: additions.done.is_set(), 50)
    assert additions.error is None, f"the watch on Jobs failed: {additions.error!r}"
    lines = []
    for name, (instant, deadline) in objects.items():
        (job,) = jobs_of(cluster, ns, name)
        job_name = job.metadata.name
        created = job.metadata.creation_timestamp
        arrived = additions.arrived.get(job_name)
        fired = parse_utc(job.metadata.annotations["sundial.dev/fired-time"])
        assert arrived is not None, f"the watch saw no ADDED event for {job_name}"
        assert additions.created[job_name] == created
        # creationTimestamp has whole seconds: a Job created even a millisecond early shows the second before.
        assert created >= instant, f"{job_name} created at {created}, before its instant {instant}"
        assert created <= instant + timedelta(seconds=deadline), f"{job_name} beyond its {deadline}s deadline"
        assert arrived > instant, f"the ADDED event of {job_name} arrived at {arrived}, before {instant}"
        lines.append(
            f"{name}: instant {rfc3339(instant)} deadline {deadline}s; creationTimestamp "
            f"+{(created - instant).total_seconds():.0f}s, ADDED event arrived "
            f"+{(arrived - instant).total_seconds() * 1000:.0f} ms, fired-time annotation "
            f"+{(fired - instant).total_seconds() * 1000:.0f} ms"
        )
    print("lateness by the API server's record and the watch:\n" + "\n".join(lines))
