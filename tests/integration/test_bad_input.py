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
    event_reasons,
    job_template,
    jobs_of,
    read_sd,
    rfc3339,
    utc_in,
)

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
            assert reason in event_reasons(cluster, *key), f"{key}: no {reason} Event"
            assert jobs_of(cluster, key[0], key[1]) == []

        job = wait_until("the good object's Job", lambda: jobs_of(cluster, good_ns, "on-time"), 30)[0]
        fired = datetime.fromisoformat(
            job.metadata.annotations["sundial.dev/fired-time"].replace("Z", "+00:00")
        )
        assert timedelta(0) <= fired - instant < timedelta(seconds=2), f"fired {fired} for {instant}"
    finally:
        for namespace in namespaces:
            cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
