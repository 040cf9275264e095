"""Bad input that the API server accepts becomes a status and an Event, never a crash or a silent skip.

The corpus is the one ``sundial preview`` is tested on (``tests/unit/data/bad``); the files marked
``apiserver: accept`` are exactly those that reach the operator. Each goes into a namespace of its own
(object names repeat across files), all watched by one operator, while a valid object in yet another
namespace must still fire on time.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from conftest import Cluster, wait_until
from sdhelpers import (
    StartOperator,
    create_sd,
    job_template,
    jobs_of,
    read_sd,
    rfc3339,
    utc_in,
    wait_for_condition,
    wait_for_events,
)
from sundial.api.keys import (
    ANNOTATION_SCHEDULED,
    ANNOTATION_TRIGGER,
    LABEL_OWNER,
    LABEL_ROLE,
    MANAGED_BY,
    MANAGER,
)
from sundial.timing.names import job_name

BAD = Path(__file__).resolve().parent.parent / "unit" / "data" / "bad"
# Judged against the corpus' fixed "now" (2027-01-01); against the real clock its instants may lie ahead.
CLOCK_DEPENDENT = {"runat-dependency-in-past.yaml"}


def accepted_bad_files() -> list[tuple[Path, str]]:
    cases = []
    for path in sorted(BAD.glob("*.yaml")):
        header = path.read_text()
        if "# apiserver: accept" not in header or path.name in CLOCK_DEPENDENT:
            continue
        reason = re.search(r"^# reason: (\w+)", header, flags=re.MULTILINE)
        assert reason, f"{path.name} has no '# reason:' header"
        cases.append((path, reason.group(1)))
    return cases


def test_every_bad_input_is_reported_while_a_good_object_fires_on_time(
    cluster: Cluster, start_operator: StartOperator
) -> None:
    cases = accepted_bad_files()
    assert len(cases) >= 10, "the corpus should exercise every reason that reaches the operator"
    run = uuid.uuid4().hex[:6]
    good_ns = f"good-{run}"
    namespaces = [good_ns] + [f"bad-{i}-{run}" for i in range(len(cases))]
    for namespace in namespaces:
        cluster.kubectl("create", "namespace", namespace)
    cluster.kubectl("create", "serviceaccount", "sundial-deployer", "-n", good_ns)
    try:
        extra: list[str] = []
        for namespace in namespaces[1:]:
            extra += ["--namespace", namespace]
        start_operator(good_ns, *extra)
        instant = utc_in(12)
        expected: dict[tuple[str, str], str] = {}
        for (path, reason), namespace in zip(cases, namespaces[1:], strict=True):
            documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
            for document in documents:
                document.setdefault("metadata", {})["namespace"] = namespace
                cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(document))
            expected[(namespace, documents[0]["metadata"]["name"])] = reason
        create_sd(cluster, good_ns, "on-time", {"runAt": rfc3339(instant), "jobTemplate": job_template()})

        def reported(key: tuple[str, str]) -> dict[str, Any] | None:
            namespace, name = key
            for condition in (read_sd(cluster, namespace, name).get("status") or {}).get("conditions") or []:
                if condition["type"] == "Ready" and condition["status"] == "False":
                    return dict(condition)
            return None

        for key, reason in expected.items():
            ready = wait_until(f"{key} to report {reason}", lambda key=key: reported(key), 30)
            assert ready["reason"] == reason, f"{key}: {ready}"
            assert len(ready["message"]) > 20, "a message must say what to change"
            scheduled = next(
                c for c in read_sd(cluster, *key)["status"]["conditions"] if c["type"] == "Scheduled"
            )
            assert (scheduled["status"], scheduled["reason"]) == ("False", reason)
            wait_for_events(cluster, *key, reason)
            assert jobs_of(cluster, key[0], key[1]) == []

        job = wait_until("the good object's Job", lambda: jobs_of(cluster, good_ns, "on-time"), 30)[0]
        fired = datetime.fromisoformat(
            job.metadata.annotations["sundial.dev/fired-time"].replace("Z", "+00:00")
        )
        assert timedelta(0) <= fired - instant < timedelta(seconds=2), f"fired {fired} for {instant}"
    finally:
        for namespace in namespaces:
            cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


# ---------------------------------------------------------------------------------------------- hostile input


def test_a_hostile_trigger_annotation_is_refused_once_and_the_schedule_still_fires(
    cluster: Cluster, deployer_namespace: str, start_operator: StartOperator
) -> None:
    """Defect: a 100-digit ``sundial.dev/trigger`` made every reconcile raise; the run never fired."""
    ns = deployer_namespace
    operator = start_operator(ns)
    instant = utc_in(10)
    hostile = {
        "hundred-digits": "1" * 100,
        "long-unicode": "⏰\u202e" * 4000,
        "year-zero": "0001-01-01T00:00+14:00",
    }
    for name, value in hostile.items():
        spec = {"runAt": rfc3339(instant), "jobTemplate": job_template()}
        create_sd(cluster, ns, name, spec, annotations={ANNOTATION_TRIGGER: value})
    for name in hostile:
        wait_for_condition(cluster, ns, name, "Ready", "True", "Succeeded", timeout=60)
        (job,) = jobs_of(cluster, ns, name)
        assert job.metadata.annotations[ANNOTATION_SCHEDULED] == rfc3339(instant)
        assert ANNOTATION_TRIGGER not in job.metadata.annotations
        runs = read_sd(cluster, ns, name)["status"]["runs"]
        refused = [run for run in runs if run.get("trigger")]
        assert [(run["result"], run["reason"]) for run in refused] == [("Skipped", "InvalidTrigger")], runs
        assert wait_for_events(cluster, ns, name, "TriggerRefused").count("TriggerRefused") == 1
    assert "Traceback" not in operator.log()


def test_forged_jobs_neither_count_as_runs_nor_satisfy_a_dependency(
    cluster: Cluster, deployer_namespace: str, start_operator: StartOperator
) -> None:
    """Jobs that carry Sundial's labels and annotations but no controller reference to the object."""
    ns = deployer_namespace
    start_operator(ns)
    instant = utc_in(14)
    lead = timedelta(seconds=6)
    create_sd(cluster, ns, "db", {"jobTemplate": job_template()})
    create_sd(
        cluster,
        ns,
        "app",
        {
            "runAt": rfc3339(instant),
            "dependsOn": {"name": "db", "leadTime": "6s", "mustSucceed": True},
            "jobTemplate": job_template(),
        },
    )
    wait_for_condition(cluster, ns, "app", "Ready", "True", "Armed")

    def forged_job(owner: str, scheduled: datetime, role: str) -> dict[str, Any]:
        spec = job_template()["spec"]
        spec["template"]["spec"]["restartPolicy"] = "Never"
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": job_name(owner, scheduled),
                "labels": {MANAGED_BY: MANAGER, LABEL_OWNER: owner, LABEL_ROLE: role},
                "annotations": {ANNOTATION_SCHEDULED: rfc3339(scheduled)},
            },
            "spec": spec,
        }

    # The dependency's Job for this run, made ahead under its predictable name (it will succeed), and a
    # running "deploy" Job that claims to be app's run of an hour ago.
    cluster.batch().create_namespaced_job(ns, forged_job("db", instant - lead, "dependency"))
    cluster.batch().create_namespaced_job(ns, forged_job("app", instant - timedelta(hours=1), "deploy"))

    ready = wait_for_condition(cluster, ns, "app", "Ready", "False", "DependencyDidNotRun", timeout=60)
    assert "nothing was deployed" in ready["message"]
    status = read_sd(cluster, ns, "app")["status"]
    assert [(run["result"], run["reason"]) for run in status["runs"]] == [("Held", "DependencyDidNotRun")]
    assert status.get("active", []) == []
    (db_run,) = read_sd(cluster, ns, "db")["status"]["runs"]
    assert (db_run["result"], db_run["reason"]) == ("Failed", "AlreadyExists")
    assert "refused to create Job" in db_run["message"]
    app_jobs = [job.metadata.name for job in jobs_of(cluster, ns, "app")]
    assert app_jobs == [job_name("app", instant - timedelta(hours=1))], "only the forged Job; app never ran"


def test_a_planning_bug_in_one_object_is_reported_and_retried_with_backoff_while_others_fire(
    cluster: Cluster, deployer_namespace: str, start_operator: StartOperator
) -> None:
    """The last resort: the test-only hook makes planning raise for one object, as a bug would."""
    ns = deployer_namespace
    operator = start_operator(ns, env_extra={"SUNDIAL_FAULT_PLAN_RAISES_FOR": "broken"})
    instant = utc_in(8)
    create_sd(cluster, ns, "broken", {"runAt": rfc3339(instant), "jobTemplate": job_template()})
    create_sd(cluster, ns, "fine", {"runAt": rfc3339(instant), "jobTemplate": job_template()})
    ready = wait_for_condition(cluster, ns, "broken", "Ready", "False", "InternalError", timeout=30)
    assert "injected planning fault" in ready["message"] and "report it" in ready["message"]
    wait_for_condition(cluster, ns, "fine", "Ready", "True", "Succeeded", timeout=60)
    assert len(jobs_of(cluster, ns, "fine")) == 1
    assert jobs_of(cluster, ns, "broken") == []
    assert wait_for_events(cluster, ns, "broken", "InternalError").count("InternalError") == 1

    def delays() -> list[float] | None:
        found = [
            float(seconds)
            for seconds in re.findall(
                r"reconciling \('[^']+', 'broken'\) failed \(\d+ in a row\); retrying in ([\d.]+) s",
                operator.log(),
            )
        ]
        return found if len(found) >= 5 else None

    seen = wait_until("five backed-off retries of the broken object", delays, 30)
    assert seen[:5] == [0.5, 1.0, 2.0, 4.0, 8.0], seen
