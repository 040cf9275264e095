"""Release freezes on the real API server: Hold and Defer on real objects, a freeze created after a run was
armed, lifting a freeze, an invalid freeze, and what ``kubectl get`` shows of them.

Every instant is relative to now, so the tests hold on any day of the year. A ClusterReleaseFreeze is
cluster-wide: each one here lists only its test's namespace and is deleted when the test ends.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from kubernetes.client.exceptions import ApiException
from test_status_truth import kubectl_table, parse_utc

from cluster_access import isolated_env
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
    utc_in,
)
from sundial.api.freezes import CLUSTER_FREEZE_KIND, CLUSTER_FREEZE_PLURAL, FREEZE_KIND, FREEZE_PLURAL
from sundial.api.keys import API_VERSION, GROUP, VERSION


def freeze_spec(start: datetime, end: datetime, action: str = "Hold", **extra: Any) -> dict[str, Any]:
    return {
        "reason": "integration freeze",
        "action": action,
        "windows": [{"from": rfc3339(start), "to": rfc3339(end)}],
        **extra,
    }


def create_freeze(cluster: Cluster, namespace: str, name: str, spec: dict[str, Any]) -> None:
    body = {"apiVersion": API_VERSION, "kind": FREEZE_KIND, "metadata": {"name": name}, "spec": spec}
    cluster.custom().create_namespaced_custom_object(GROUP, VERSION, namespace, FREEZE_PLURAL, body)


def read_freeze(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return dict(cluster.custom().get_namespaced_custom_object(GROUP, VERSION, namespace, FREEZE_PLURAL, name))


@pytest.fixture
def cluster_freeze(crds: Cluster, namespace: str) -> Iterator[Any]:
    """Create ClusterReleaseFreezes for this test's namespace only; every one is deleted afterwards."""
    made: list[str] = []

    def create(name: str, spec: dict[str, Any]) -> str:
        name = f"{namespace[:40]}-{name}"
        body = {
            "apiVersion": API_VERSION,
            "kind": CLUSTER_FREEZE_KIND,
            "metadata": {"name": name},
            "spec": {**spec, "namespaces": [namespace]},
        }
        crds.custom().create_cluster_custom_object(GROUP, VERSION, CLUSTER_FREEZE_PLURAL, body)
        made.append(name)
        return name

    yield create
    for name in made:
        try:
            crds.custom().delete_cluster_custom_object(GROUP, VERSION, CLUSTER_FREEZE_PLURAL, name)
        except ApiException as error:
            if error.status != 404:
                raise


def last_run(cluster: Cluster, namespace: str, name: str) -> dict[str, Any] | None:
    runs = (read_sd(cluster, namespace, name).get("status") or {}).get("runs") or []
    return dict(runs[-1]) if runs else None


def test_a_hold_freeze_holds_the_run_creates_no_job_and_shows_in_kubectl_get(
    crds: Cluster, deployer_namespace: str, start_operator: StartOperator
) -> None:
    namespace = deployer_namespace
    start_operator(namespace)
    create_freeze(crds, namespace, "year-end", freeze_spec(utc_in(-30), utc_in(120)))
    instant = utc_in(8)
    create_sd(crds, namespace, "api", {"runAt": rfc3339(instant), "jobTemplate": job_template()})

    # Ahead of the instant the object says what the freeze will do, and the freeze says it is on.
    ahead = wait_until(
        "the next run to be marked frozen",
        lambda: (read_sd(crds, namespace, "api").get("status") or {}).get("nextRunFreeze"),
        20,
    )
    assert ahead == f"Hold (ReleaseFreeze {namespace}/year-end)"
    freeze = wait_until(
        "the freeze's status",
        lambda: read_freeze(crds, namespace, "year-end").get("status", {}).get("active"),
        20,
    )
    assert freeze is True
    table = kubectl_table(crds.kubectl("get", "releasefreezes", "-n", namespace).stdout)
    row = table["year-end"]
    assert (row["ACTIVE"], row["ACTION"], row["REASON"]) == ("true", "Hold", "integration freeze")
    assert parse_utc(row["UNTIL"]) > instant

    record = wait_until("the run to be recorded", lambda: last_run(crds, namespace, "api"), 40)
    assert (record["result"], record["reason"]) == ("Held", "Frozen"), record
    assert f"ReleaseFreeze {namespace}/year-end (integration freeze;" in record["message"]
    assert not jobs_of(crds, namespace, "api")
    ready = condition(read_sd(crds, namespace, "api"), "Ready")
    assert ready is not None and (ready["status"], ready["reason"]) == ("False", "Frozen")
    wait_until("a Held Event", lambda: "Held" in event_reasons(crds, namespace, "api"), 20)
    sds = kubectl_table(crds.kubectl("get", "scheduleddeployments", "-n", namespace).stdout)
    assert sds["api"]["REASON"] == "Frozen"


def test_a_defer_freeze_starts_the_run_when_the_freeze_ends_within_the_deadline(
    crds: Cluster, deployer_namespace: str, start_operator: StartOperator
) -> None:
    namespace = deployer_namespace
    start_operator(namespace)
    end = utc_in(14)
    create_freeze(crds, namespace, "deploy-window", freeze_spec(utc_in(-30), end, action="Defer"))
    instant = utc_in(6)
    create_sd(crds, namespace, "api", {"runAt": rfc3339(instant), "jobTemplate": job_template()})

    def progressing() -> str | None:
        found = condition(read_sd(crds, namespace, "api"), "Progressing")
        return found["reason"] if found else None

    wait_until("the run to wait for the freeze", lambda: progressing() == "Frozen", 30)
    assert not jobs_of(crds, namespace, "api"), "a Job was created while the freeze was on"
    assert "Deferred" in event_reasons(crds, namespace, "api")

    record = wait_until(
        "the deferred run to succeed",
        lambda: (r := last_run(crds, namespace, "api")) is not None and r["result"] == "Succeeded" and r,
        60,
    )
    assert parse_utc(record["scheduledTime"]) == instant, "the run keeps its scheduled time"
    assert parse_utc(record["firedTime"]) >= end, "fired before the freeze ended"
    [job] = jobs_of(crds, namespace, "api")
    assert job.metadata.creation_timestamp >= end


def test_a_cluster_freeze_created_after_arming_holds_the_run_and_lifting_it_lets_the_next_run_go(
    crds: Cluster, deployer_namespace: str, start_operator: StartOperator, cluster_freeze: Any
) -> None:
    namespace = deployer_namespace
    start_operator(namespace, "--cluster-freezes")
    first = utc_in(12)
    create_sd(crds, namespace, "first", {"runAt": rfc3339(first), "jobTemplate": job_template()})
    armed = wait_until(
        "the run to be armed",
        lambda: (read_sd(crds, namespace, "first").get("status") or {}).get("nextRunTime"),
        20,
    )
    assert parse_utc(armed) == first
    assert "nextRunFreeze" not in read_sd(crds, namespace, "first")["status"]

    name = cluster_freeze("incident", freeze_spec(utc_in(-5), utc_in(600), reason="incident 4711"))
    marked = wait_until(
        "the armed run to be marked frozen",
        lambda: (read_sd(crds, namespace, "first").get("status") or {}).get("nextRunFreeze"),
        10,
    )
    assert marked == f"Hold (ClusterReleaseFreeze {name})"
    record = wait_until("the run to be recorded", lambda: last_run(crds, namespace, "first"), 40)
    assert (record["result"], record["reason"]) == ("Held", "Frozen"), record
    assert f"ClusterReleaseFreeze {name} (incident 4711;" in record["message"]
    assert not jobs_of(crds, namespace, "first")

    crds.custom().delete_cluster_custom_object(GROUP, VERSION, CLUSTER_FREEZE_PLURAL, name)
    second = utc_in(6)
    create_sd(crds, namespace, "second", {"runAt": rfc3339(second), "jobTemplate": job_template()})
    after = wait_until(
        "the run after the freeze to succeed",
        lambda: (r := last_run(crds, namespace, "second")) is not None and r["result"] == "Succeeded" and r,
        60,
    )
    assert parse_utc(after["scheduledTime"]) == second
    record = last_run(crds, namespace, "first")
    assert record is not None and record["result"] == "Held", "a held run is not run later"


def test_an_invalid_freeze_says_why_on_itself_and_freezes_nothing(
    crds: Cluster, deployer_namespace: str, start_operator: StartOperator
) -> None:
    namespace = deployer_namespace
    start_operator(namespace)
    create_freeze(crds, namespace, "typo", freeze_spec(utc_in(-30), utc_in(600), timeZone="CEST"))
    ready = wait_until(
        "the freeze to be judged", lambda: condition(read_freeze(crds, namespace, "typo"), "Ready"), 20
    )
    assert (ready["status"], ready["reason"]) == ("False", "InvalidTimeZone"), ready
    assert "'Europe/Berlin'" in ready["message"], "the message says what to write instead"
    events = crds.kubectl(
        "get", "events", "-n", namespace, "--field-selector", "involvedObject.name=typo", "-o", "json"
    ).stdout
    assert "InvalidTimeZone" in events and "this freeze freezes nothing" in events
    instant = utc_in(5)
    create_sd(crds, namespace, "api", {"runAt": rfc3339(instant), "jobTemplate": job_template()})
    record = wait_until(
        "the run to succeed",
        lambda: (r := last_run(crds, namespace, "api")) is not None and r["result"] == "Succeeded" and r,
        60,
    )
    assert parse_utc(record["scheduledTime"]) == instant


def test_the_api_server_refuses_a_freeze_without_a_window_or_with_a_bad_time(
    crds: Cluster, namespace: str
) -> None:
    for spec, words in (
        ({"reason": "nothing"}, "needs at least one of weekly, recurring, windows, dates or calendar"),
        (
            {
                "reason": "x",
                "weekly": [
                    {"startDay": "Friday", "startTime": "6pm", "endDay": "Monday", "endTime": "08:00"}
                ],
            },
            "a time of day must be HH:MM",
        ),
        ({"reason": "x", "action": "Pause", "dates": ["2027-12-24"]}, "Unsupported value"),
    ):
        with pytest.raises(ApiException) as refused:
            create_freeze(crds, namespace, "bad", spec)
        assert refused.value.status == 422
        assert words in str(refused.value.body), refused.value.body
    # A weekly freeze in a zone, as docs/freezes.md shows it, is accepted as written.
    create_freeze(
        crds,
        namespace,
        "weekend",
        {
            "reason": "no deploys over the weekend",
            "timeZone": "Europe/Berlin",
            "weekly": [{"startDay": "Friday", "startTime": "18:00", "endDay": "Monday", "endTime": "08:00"}],
            "selector": {"matchLabels": {"tier": "production"}},
            "exemptSelector": {"matchLabels": {"sundial.dev/hotfix": "true"}},
        },
    )
    assert read_freeze(crds, namespace, "weekend")["spec"]["action"] == "Hold"


def holiday_calendar(first: date, last: date, summary: str = "Company holiday") -> str:
    """An .ics file, as calendar tools export it, with one all-day event from ``first`` to ``last``."""
    return "\r\n".join(
        [
            "BEGIN:VCALENDAR",
            "VERSION:2.0",
            "PRODID:-//Sundial integration tests//EN",
            "BEGIN:VEVENT",
            "UID:holiday@sundial.test",
            "DTSTAMP:20260101T000000Z",
            f"SUMMARY:{summary}",
            f"DTSTART;VALUE=DATE:{first:%Y%m%d}",
            f"DTEND;VALUE=DATE:{last + timedelta(days=1):%Y%m%d}",
            "END:VEVENT",
            "END:VCALENDAR",
            "",
        ]
    )


def test_a_holiday_calendar_in_a_configmap_freezes_its_all_day_events(
    crds: Cluster, deployer_namespace: str, start_operator: StartOperator
) -> None:
    namespace = deployer_namespace
    today = datetime.now(ZoneInfo("Europe/Berlin")).date()
    text = holiday_calendar(today - timedelta(days=1), today + timedelta(days=1))
    crds.kubectl("create", "configmap", "holidays", "-n", namespace, f"--from-literal=calendar.ics={text}")
    spec = {
        "reason": "company holidays",
        "timeZone": "Europe/Berlin",
        "calendar": {"configMapName": "holidays"},
    }
    create_freeze(crds, namespace, "holidays", spec)
    start_operator(namespace)
    freeze = wait_until(
        "the calendar freeze to be on",
        lambda: (
            (status := read_freeze(crds, namespace, "holidays").get("status") or {}).get("active") and status
        ),
        20,
    )
    ready = condition({"status": freeze}, "Ready")
    assert ready is not None and ready["reason"] == "Active", ready
    assert f"'Company holiday' in the calendar, all day {today - timedelta(days=1)}" in ready["message"]
    instant = utc_in(6)
    create_sd(crds, namespace, "api", {"runAt": rfc3339(instant), "jobTemplate": job_template()})
    record = wait_until("the run to be recorded", lambda: last_run(crds, namespace, "api"), 40)
    assert (record["result"], record["reason"]) == ("Held", "Frozen"), record
    assert "'Company holiday' in the calendar" in record["message"]
    assert not jobs_of(crds, namespace, "api")


def test_a_freeze_whose_calendar_is_missing_says_which_configmap_to_create(
    crds: Cluster, deployer_namespace: str, start_operator: StartOperator
) -> None:
    namespace = deployer_namespace
    spec = {"reason": "holidays", "calendar": {"configMapName": "absent", "key": "days.ics"}}
    create_freeze(crds, namespace, "holidays", spec)
    start_operator(namespace)
    ready = wait_until(
        "the freeze to be judged", lambda: condition(read_freeze(crds, namespace, "holidays"), "Ready"), 20
    )
    assert (ready["status"], ready["reason"]) == ("False", "CalendarNotFound"), ready
    assert "ConfigMap 'absent', key 'days.ics'" in ready["message"]


def test_stop_the_line_through_the_plugin_holds_the_runs_due_and_unfreeze_lets_them_go(
    crds: Cluster, deployer_namespace: str, start_operator: StartOperator
) -> None:
    """``kubectl sundial freeze --all`` freezes every namespace: nothing else runs while this test does (the
    suite is sequential), and the freeze is deleted in any case."""
    namespace = deployer_namespace
    start_operator(namespace, "--cluster-freezes")
    name = f"stop-the-line-{namespace[-6:]}"
    try:
        made = run_plugin(
            crds, "freeze", "--all", "--for", "10m", "--reason", "incident 4711", "--name", name
        )
        assert made.returncode == 0, made.stderr
        instant = utc_in(6)
        create_sd(crds, namespace, "held", {"runAt": rfc3339(instant), "jobTemplate": job_template()})
        record = wait_until("the run due during the freeze", lambda: last_run(crds, namespace, "held"), 40)
        assert (record["result"], record["reason"]) == ("Held", "Frozen"), record
        assert f"ClusterReleaseFreeze {name} (incident 4711;" in record["message"]
        assert not jobs_of(crds, namespace, "held")
    finally:
        ended = run_plugin(crds, "unfreeze", name, "--all")
    assert ended.returncode == 0, ended.stderr
    after = utc_in(6)
    create_sd(crds, namespace, "after", {"runAt": rfc3339(after), "jobTemplate": job_template()})
    record = wait_until(
        "the run after unfreeze to succeed",
        lambda: (r := last_run(crds, namespace, "after")) is not None and r["result"] == "Succeeded" and r,
        60,
    )
    assert record["scheduledTime"] == rfc3339(after)


def run_plugin(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed ``kubectl-sundial`` script, on the test cluster's kubeconfig alone."""
    argv = [
        str(Path(sys.executable).parent / "kubectl-sundial"),
        *args,
        "--kubeconfig",
        str(cluster.kubeconfig),
    ]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, env=isolated_env(cluster.home))
