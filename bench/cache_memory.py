#!/usr/bin/env python3
"""Where does the operator's memory go per ScheduledDeployment? Measured with tracemalloc, no cluster.

N objects are built as the API server returns them (``metadata.managedFields``; for the objects a user
applied with ``kubectl apply``, the ``kubectl.kubernetes.io/last-applied-configuration`` annotation; a
status as the operator writes it, with a run history on some) and fed, one JSON text at a time, through
what the operator keeps per object:

* **cache**: the informer's listing (`Informer.list_source`, pages cut to plan views as they arrive) merged
  into the cache (since issue 14's informer, kopf holds nothing per object: it watches only the Lease);
* **plan**: one reconcile per object through the controller's own `_world` and the shared `VerdictMemo`;
* **status write**: the body the status PATCH returns (a new resourceVersion, another managedFields entry)
  into `Cache.store`;
* **wake-up**: each plan's next instant on the `WakeupQueue`;
* **Jobs**: `Cache.job_seen` for one Job per object.

It also reports the transient peak of a listing (every listed item is held until it is merged)
and the size of one body in JSON and as Python objects. Bytes are tracemalloc's (Python allocations only;
RSS adds the allocator's overhead and fragmentation on top). A measurement, not a test: it asserts nothing.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import tracemalloc
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sundial.api.keys import ANNOTATION_FIRED, ANNOTATION_SCHEDULED, LABEL_OWNER, LABEL_ROLE, MANAGED_BY
from sundial.decide.jobs import owner_label_value
from sundial.decide.observe import plan_view
from sundial.decide.reconcile import reconcile
from sundial.runtime.cache import OBJECTS
from sundial.runtime.controller import Controller, ControllerSettings
from sundial.runtime.informer import LIST_PAGE_SIZE, Informer, Source
from sundial.timing.names import job_name

NAMESPACE = "bench"
NOW = datetime(2027, 3, 14, 7, 0, tzinfo=UTC)
CREATED = NOW - timedelta(days=2)
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
KINDS = ("bench", "kubectl-deployment", "kubectl-template-history")
"""What the objects look like, in turn: as `bench/lateness.py` creates them (a label, runAt, a small
jobTemplate), applied with kubectl with a Deployment target, and applied with kubectl with a larger
jobTemplate, an hourly schedule and ten runs on record."""


def fields_v1(value: object) -> object:
    """The managedFields ``fieldsV1`` shape of a JSON value: every map key as ``f:key``, lists atomic."""
    if isinstance(value, dict):
        return {f"f:{key}": fields_v1(item) for key, item in value.items()}
    return {}


def managed_entry(manager: str, fields: dict[str, Any], subresource: str | None = None) -> dict[str, Any]:
    entry = {
        "manager": manager,
        "operation": "Update",
        "apiVersion": "sundial.dev/v1alpha1",
        "time": "2027-03-12T07:00:00Z",
        "fieldsType": "FieldsV1",
        "fieldsV1": fields_v1(fields),
    }
    return {**entry, "subresource": subresource} if subresource else entry


def job_template(large: bool) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": "registry.example.com/team/migrate:v1.42.0"}
    if large:
        container |= {
            "command": ["/bin/migrate", "--apply", "--timeout=300s"],
            "env": [{"name": f"SETTING_{i}", "value": f"value-{i}-" + "x" * 24} for i in range(12)],
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
        }
    spec: dict[str, Any] = {"template": {"spec": {"restartPolicy": "Never", "containers": [container]}}}
    if not large:
        spec["suspend"] = True
    return {"metadata": {"labels": {"team": "shop"}}, "spec": spec}


def history(name: str) -> list[dict[str, Any]]:
    runs = []
    for hour in range(10, 0, -1):
        instant = NOW - timedelta(hours=hour)
        runs.append(
            {
                "scheduledTime": instant.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "firedTime": (instant + timedelta(milliseconds=20)).strftime("%Y-%m-%dT%H:%M:%S.020Z"),
                "jobName": job_name(name, instant),
                "role": "Deploy",
                "result": "Succeeded",
                "reason": "JobSucceeded",
                "message": "the Job completed",
            }
        )
    return runs


def api_body(index: int) -> dict[str, Any]:
    """Object ``index`` as the API server returns it once the operator has written its status."""
    kind = KINDS[index % len(KINDS)]
    name = f"sd-{index:05d}"
    instant = NOW + timedelta(hours=1, seconds=index % 3600)
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": NAMESPACE,
        "labels": {"bench.sundial.dev/run": "r1"},
    }
    spec: dict[str, Any]
    if kind == "bench":
        spec = {"runAt": instant.strftime("%Y-%m-%dT%H:%M:%SZ"), "jobTemplate": job_template(large=False)}
    elif kind == "kubectl-deployment":
        spec = {
            "runAt": instant.strftime("%Y-%m-%dT%H:%M"),
            "timeZone": "Europe/Berlin",
            "deployment": {"name": name, "container": "app", "image": "registry.example.com/shop/api:v42"},
        }
    else:
        spec = {"schedule": "0 * * * *", "timeZone": "Europe/Berlin", "jobTemplate": job_template(large=True)}
    manager = "OpenAPI-Generator" if kind == "bench" else "kubectl-client-side-apply"
    if kind != "bench":
        applied = {"apiVersion": "sundial.dev/v1alpha1", "kind": "ScheduledDeployment"}
        applied |= {"metadata": {"annotations": {}, **metadata}, "spec": spec}
        metadata["annotations"] = {LAST_APPLIED: json.dumps(applied, separators=(",", ":")) + "\n"}
    managed = [managed_entry(manager, {"metadata": metadata, "spec": spec})]
    body: dict[str, Any] = {
        "apiVersion": "sundial.dev/v1alpha1",
        "kind": "ScheduledDeployment",
        "metadata": {
            **metadata,
            "uid": f"5f0c1d2e-0000-4000-8000-{index:012d}",
            "resourceVersion": str(100_000 + index),
            "generation": 1,
            "creationTimestamp": CREATED.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "managedFields": managed,
        },
        "spec": spec,
    }
    if kind == "kubectl-template-history":
        body["status"] = {"runs": history(name)}
    plan = reconcile_status(body)
    body["status"] = plan
    managed.append(managed_entry("OpenAPI-Generator", {"status": plan}, "status"))
    return body


def reconcile_status(body: dict[str, Any]) -> dict[str, Any]:
    from sundial.decide.observe import World

    return reconcile(World(now=NOW, body=body, siblings={body["metadata"]["name"]: body}, jobs={})).status


def job_body(index: int) -> dict[str, Any]:
    owner = f"sd-{index:05d}"
    instant = NOW - timedelta(hours=1)
    name = job_name(owner, instant)
    labels = {MANAGED_BY: "sundial", LABEL_OWNER: owner_label_value(owner), LABEL_ROLE: "deploy"}
    annotations = {
        ANNOTATION_SCHEDULED: instant.strftime("%Y-%m-%dT%H:%M:%SZ"),
        ANNOTATION_FIRED: instant.strftime("%Y-%m-%dT%H:%M:%S.020Z"),
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "uid": f"6a0c1d2e-0000-4000-8000-{index:012d}",
            "resourceVersion": str(200_000 + index),
            "creationTimestamp": instant.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [
                {
                    "apiVersion": "sundial.dev/v1alpha1",
                    "kind": "ScheduledDeployment",
                    "name": owner,
                    "uid": f"5f0c1d2e-0000-4000-8000-{index:012d}",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {"suspend": True, "template": job_template(large=False)["spec"]["template"]},
        "status": {"conditions": [{"type": "Complete", "status": "True"}], "succeeded": 1},
    }


def pages_of(texts: list[str]) -> Callable[[str | None], dict[str, Any]]:
    """A LIST answered from JSON texts a page of LIST_PAGE_SIZE at a time, each cut as the informer cuts."""

    def page(token: str | None) -> dict[str, Any]:
        start = int(token or 0)
        end = start + LIST_PAGE_SIZE
        metadata: dict[str, Any] = {"resourceVersion": "1"}
        if end < len(texts):
            metadata["continue"] = str(end)
        return {"metadata": metadata, "items": [plan_view(json.loads(text)) for text in texts[start:end]]}

    return page


def no_watch(version: str, seconds: int) -> Any:
    raise AssertionError("the memory benchmark only lists")


def retained(step: Callable[[], object]) -> tuple[int, int]:
    """Bytes ``step`` leaves allocated, and the peak above the start while it ran (tracemalloc)."""
    gc.collect()
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    step()
    gc.collect()
    current, peak = tracemalloc.get_traced_memory()
    return current - before, peak - before


class Scenario:
    """N objects' JSON texts as the API server sends them, and the operator's structures they go into."""

    def __init__(self, n: int) -> None:
        self.texts = [json.dumps(api_body(i)) for i in range(n)]
        self.written = []
        for i, text in enumerate(self.texts):  # the body the status PATCH returns: a newer resourceVersion
            body = json.loads(text)
            body["metadata"]["resourceVersion"] = str(300_000 + i)
            self.written.append(json.dumps(body))
        self.job_texts = [json.dumps(job_body(i)) for i in range(n)]
        self.controller = Controller(
            None, ControllerSettings(deployer_image="registry.example.com/sundial:1")
        )
        self.keys = [(NAMESPACE, f"sd-{i:05d}") for i in range(n)]
        self.wake_at: dict[tuple[str, str], float | None] = {}

    def parse_all(self) -> list[Any]:
        return [json.loads(text) for text in self.texts]

    def listing(self) -> None:
        """Through `Informer.list_source` itself, into the controller's cache."""
        source = Source(OBJECTS, "", pages_of(self.texts), no_watch, plan_view)
        informer = Informer(
            (source,), listed=self.controller.listed, seen=self.controller.seen, synced=lambda: None
        )
        asyncio.run(informer.list_source(source))

    def plan_all(self) -> None:
        for key in self.keys:
            body = self.controller.cache.objects[key]
            wake = reconcile(self.controller._world(body, NOW)).wake_at
            self.wake_at[key] = None if wake is None else wake.timestamp()

    def write_all(self) -> None:
        for text in self.written:
            self.controller.cache.store(json.loads(text))

    def arm_all(self) -> None:
        for key in self.keys:
            self.controller.wakeups.request(key, self.wake_at[key])

    def jobs_all(self) -> None:
        for text in self.job_texts:
            self.controller.cache.job_seen(json.loads(text), deleted=False)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--objects", type=int, default=3000, help="objects (default: 3000)")
    n = parser.parse_args(argv).objects
    scenario = Scenario(n)
    tracemalloc.start()
    held: list[Any] = []
    body_python, _ = retained(lambda: held.extend(scenario.parse_all()))
    held.clear()
    rows = [
        ("cache: the informer's listing", *retained(scenario.listing)),
        ("plan: reconcile, VerdictMemo", *retained(scenario.plan_all)),
        ("status write: Cache.store of the PATCH's body", *retained(scenario.write_all)),
        ("wake-up: WakeupQueue.request", *retained(scenario.arm_all)),
        ("Jobs: Cache.job_seen, one per object", *retained(scenario.jobs_all)),
    ]
    cached = sum(len(json.dumps(body)) for body in scenario.controller.cache.objects.values()) / n
    print(f"{n} objects, kinds in turn: {', '.join(KINDS)}")
    print(f"one body: {sum(map(len, scenario.texts)) / n:,.0f} bytes of JSON, ", end="")
    print(f"{body_python / n:,.0f} bytes as Python objects")
    print(f"one cached body: {cached:,.0f} bytes of JSON")
    print()
    print(f"{'what holds it':48} | {'kept B/object':>13} | {'peak B/object':>13}")
    print("-" * 49 + "+" + "-" * 15 + "+" + "-" * 14)
    for label, kept, peak in rows:
        print(f"{label:48} | {kept / n:13,.0f} | {peak / n:13,.0f}")
    total = sum(kept for _, kept, _ in rows)
    print(f"{'total':48} | {total / n:13,.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
