"""Metrics accounting: which status changes count as run results, and what the controller records when.

The pure part (`run_transitions`, `is_invalid`, `parse_bind`) is tested as tables; the controller's part
with in-memory stand-ins for the API, to show that only a status write that succeeds counts, that a Job
created lands in the lateness histogram, and that a refused create counts as an API error.
"""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException
from test_reconcile import DEPLOYER_IMAGE

import sundial
from sundial.api.models import RunResult
from sundial.decide.jobs import JobRun
from sundial.decide.reconcile import Plan
from sundial.runtime.controller import Controller, ControllerSettings
from sundial.runtime.metrics import (
    LATENESS_BUCKETS,
    Metrics,
    MetricsBindError,
    MetricsServer,
    is_invalid,
    parse_bind,
    run_transitions,
    waiting_reason,
    withheld_transitions,
)

T0 = "2027-03-14T07:30:00Z"
T1 = "2027-03-14T08:30:00Z"


def record(scheduled: str, result: str, role: str = "Deploy", **extra: str) -> dict[str, Any]:
    return {"scheduledTime": scheduled, "result": result, "role": role, **extra}


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param(None, {}, [], id="nothing recorded yet"),
        pytest.param(None, {"runs": [record(T0, "Pending")]}, [], id="pending is not a result"),
        pytest.param(
            {"runs": [record(T0, "Pending")]}, {"runs": [record(T0, "Running")]}, [], id="running is not"
        ),
        pytest.param(
            {"runs": [record(T0, "Running")]},
            {"runs": [record(T0, "Succeeded")]},
            [(RunResult.SUCCEEDED, "Deploy")],
            id="running to succeeded counts",
        ),
        pytest.param(
            {"runs": [record(T0, "Succeeded")]},
            {"runs": [record(T0, "Succeeded"), record(T1, "Running")]},
            [],
            id="a result already in status is not counted again (a restart re-lists it)",
        ),
        pytest.param(
            {},
            {"runs": [record(T0, "Failed")]},
            [(RunResult.FAILED, "Deploy")],
            id="a run that appears already failed counts",
        ),
        pytest.param(
            {"runs": [record(T0, "Succeeded")]},
            {"runs": [record(T1, "Missed"), record(T0, "Skipped")]},
            [(RunResult.MISSED, "Deploy"), (RunResult.SKIPPED, "Deploy")],
            id="a new missed run and a changed result both count",
        ),
        pytest.param(
            {"runs": [record(T0, "Succeeded"), record(T1, "Succeeded")]},
            {"runs": [record(T1, "Succeeded")]},
            [],
            id="a pruned record is not a transition",
        ),
        pytest.param(
            {"runs": [record(T0, "Running", "Dependency")]},
            {"runs": [record(T0, "Held", "Dependency"), record(T1, "Cancelled")]},
            [(RunResult.HELD, "Dependency"), (RunResult.CANCELLED, "Deploy")],
            id="roles are kept",
        ),
        pytest.param(
            {"runs": [record(T0, "Succeeded")]},
            {"runs": [record(T0, "Succeeded"), record(T0, "Succeeded", trigger="req-1")]},
            [(RunResult.SUCCEEDED, "Deploy")],
            id="a manual run at a scheduled run's instant is a run of its own",
        ),
        pytest.param(
            {"runs": "garbage"},
            {"runs": [record(T0, "Succeeded"), "garbage", record(T1, "Exploded")]},
            [(RunResult.SUCCEEDED, "Deploy")],
            id="malformed entries are ignored",
        ),
    ],
)
def test_run_transitions_count_results_the_new_status_adds(
    old: dict[str, Any] | None, new: dict[str, Any], expected: list[tuple[RunResult, str]]
) -> None:
    assert run_transitions(old, new) == expected


def scheduled(status: str, reason: str = "Armed") -> dict[str, Any]:
    return {"conditions": [{"type": "Scheduled", "status": status, "reason": reason}]}


@pytest.mark.parametrize(
    ("status", "invalid"),
    [
        (None, False),
        ({}, False),
        (scheduled("True"), False),
        (scheduled("Unknown", "Pending"), False),
        (scheduled("False", "Completed"), False),
        (scheduled("False", "Suspended"), False),
        (scheduled("False", "NoUpcomingRuns"), False),
        (scheduled("False", "InvalidSchedule"), True),
        (scheduled("False", "DependencyCycle"), True),
        (scheduled("False", "RunAtInPast"), True),
        ({"conditions": [{"type": "Ready", "status": "False"}]}, False),
    ],
)
def test_an_object_is_invalid_when_scheduled_is_false_for_bad_input(
    status: dict[str, Any] | None, invalid: bool
) -> None:
    assert is_invalid(status) is invalid


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.0.0.0:9090", ("0.0.0.0", 9090)),
        ("127.0.0.1:1", ("127.0.0.1", 1)),
        ("[::]:9090", ("::", 9090)),
        ("localhost:65535", ("localhost", 65535)),
    ],
)
def test_metrics_bind_parses_host_and_port(text: str, expected: tuple[str, int]) -> None:
    assert parse_bind(text) == expected


@pytest.mark.parametrize(
    "text", ["9090", ":9090", "0.0.0.0:", "0.0.0.0:http", "0.0.0.0:0", "h:70000", "[x]:1"]
)
def test_metrics_bind_rejects_what_is_not_host_colon_port(text: str) -> None:
    with pytest.raises(ValueError):
        parse_bind(text)


def test_the_server_serves_its_registry_and_stops() -> None:
    metrics = Metrics.create(runtime_collectors=False)
    metrics.record_transitions({}, {"runs": [record(T0, "Missed")]})
    server = MetricsServer(metrics, "127.0.0.1", 0)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as response:
            text = response.read().decode()
    finally:
        server.close()
    assert 'sundial_runs_total{result="missed",role="deploy"} 1.0' in text
    assert "sundial_runs_created" not in text, "the *_created series are switched off"
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", server.port), timeout=1):
        pass


def test_a_taken_port_is_a_bind_error_that_says_what_to_change() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(MetricsBindError, match=f"127.0.0.1:{port}: cannot listen there.*free port"):
            MetricsServer(Metrics.create(runtime_collectors=False), "127.0.0.1", port)


# ---------------------------------------------------------------------------------------------- registry


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_each_metrics_object_has_a_registry_of_its_own() -> None:
    first, second = Metrics.create(runtime_collectors=False), Metrics.create(runtime_collectors=False)
    first.record_transitions({}, {"runs": [record(T0, "Failed")]})
    assert value(first, "sundial_runs_total", result="failed", role="deploy") == 1
    assert value(second, "sundial_runs_total", result="failed", role="deploy") == 0


def test_every_result_and_role_is_exported_from_zero() -> None:
    metrics = Metrics.create(runtime_collectors=False)
    for result in ("succeeded", "failed", "missed", "skipped", "held", "cancelled"):
        for role in ("deploy", "dependency"):
            assert value(metrics, "sundial_runs_total", result=result, role=role) == 0
    assert value(metrics, "sundial_runs_total", result="pending", role="deploy") is None


def test_build_info_carries_the_version() -> None:
    metrics = Metrics.create(runtime_collectors=False)
    samples = [s for m in metrics.registry.collect() if m.name == "sundial_build_info" for s in m.samples]
    assert [(s.labels["version"], s.value) for s in samples] == [(sundial.__version__, 1.0)]


def test_runtime_collectors_are_on_the_private_registry_when_asked_for() -> None:
    names = {m.name for m in Metrics.create().registry.collect()}
    assert {"process_cpu_seconds", "python_gc_collections", "python_info"} <= names
    assert not {"process_cpu_seconds"} & {
        m.name for m in Metrics.create(runtime_collectors=False).registry.collect()
    }


def test_gauges_read_the_state_they_watch_at_scrape_time() -> None:
    metrics = Metrics.create(runtime_collectors=False)
    state = {"armed": 3, "invalid": 1, "active": False}
    metrics.watch_armed(lambda: int(state["armed"]))
    metrics.watch_invalid(lambda: int(state["invalid"]))
    metrics.watch_active(lambda: bool(state["active"]))
    assert (value(metrics, "sundial_armed_schedules"), value(metrics, "sundial_active_replica")) == (3, 0)
    state.update(armed=0, active=True)
    assert (value(metrics, "sundial_armed_schedules"), value(metrics, "sundial_active_replica")) == (0, 1)
    assert value(metrics, "sundial_invalid_objects") == 1


@pytest.mark.parametrize(
    ("lateness", "first_bucket"),
    [(0.0004, 0.001), (0.003, 0.005), (0.2, 0.25), (59.0, 60.0), (3600.0, float("inf"))],
)
def test_lateness_lands_in_the_first_bucket_that_holds_it(lateness: float, first_bucket: float) -> None:
    metrics = Metrics.create(runtime_collectors=False)
    instant = datetime(2027, 3, 14, 7, 30, tzinfo=UTC)
    metrics.job_created("Deploy", instant, instant + timedelta(seconds=lateness))
    for bound in (*LATENESS_BUCKETS, float("inf")):
        le = "+Inf" if bound == float("inf") else str(bound)
        count = value(metrics, "sundial_fire_lateness_seconds_bucket", role="deploy", le=le)
        assert count == (1 if bound >= first_bucket else 0), le
    assert value(metrics, "sundial_jobs_created_total", role="deploy") == 1
    assert value(metrics, "sundial_fire_lateness_seconds_sum", role="deploy") == pytest.approx(lateness)


# ---------------------------------------------------------------------------------------------- controller


def sd_body(status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "sundial.dev/v1alpha1",
        "kind": "ScheduledDeployment",
        "metadata": {"name": "api", "namespace": "prod", "uid": "uid-1", "resourceVersion": "7"},
        "spec": {
            "runAt": T0,
            "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "m", "image": "i"}]}}}},
        },
        "status": status or {},
    }


@dataclass
class RawResponse:
    data: bytes

    def release_conn(self) -> None:
        pass


class FakeCustomObjects:
    """Answers status patches with the patched body, or with the error it was given."""

    def __init__(self, body: dict[str, Any], error: int | None = None) -> None:
        self.body, self.error, self.patches = body, error, 0

    def patch_namespaced_custom_object_status(self, *args: Any, **_: Any) -> dict[str, Any]:
        self.patches += 1
        if self.error is not None:
            raise ApiException(status=self.error, reason="refused")
        # As the API server does: every write is a new resourceVersion.
        metadata = {
            **self.body["metadata"],
            "resourceVersion": str(int(self.body["metadata"]["resourceVersion"]) + 1),
        }
        return {**self.body, "metadata": metadata, "status": args[-1]["status"]}

    def get_namespaced_custom_object(self, *_: Any, **__: Any) -> dict[str, Any]:
        return self.body


class FakeBatch:
    def __init__(self, error: int | None = None) -> None:
        self.error = error

    def create_namespaced_job(self, _namespace: str, manifest: dict[str, Any], **_: Any) -> RawResponse:
        if self.error == 0:
            raise TimeoutError("read timed out")
        if self.error is not None:
            raise ApiException(status=self.error, reason="refused")
        return RawResponse(json.dumps(manifest).encode())


@pytest.fixture
def controller() -> Iterator[Controller]:
    made = Controller(None, ControllerSettings(DEPLOYER_IMAGE, api_threads=1))
    made.fire_while(lambda: True)  # as the active replica does
    yield made
    made.close()


def test_a_status_write_that_succeeds_counts_its_transitions_once(controller: Controller) -> None:
    body = sd_body({"runs": [record(T0, "Running")]})
    fake = FakeCustomObjects(body)
    controller._custom = fake
    plan = Plan(status={"runs": [record(T0, "Succeeded")]})
    assert asyncio.run(controller._write_status(("prod", "api"), body, plan))
    # The watch then delivers the written status: seeing it is not a transition.
    controller.object_seen(controller.cache.objects[("prod", "api")], deleted=False)
    assert value(controller.metrics, "sundial_runs_total", result="succeeded", role="deploy") == 1


def test_a_status_write_that_loses_the_race_counts_nothing(controller: Controller) -> None:
    body = sd_body({"runs": [record(T0, "Running")]})
    controller._custom = FakeCustomObjects(body, error=409)
    plan = Plan(status={"runs": [record(T0, "Succeeded")]})
    assert not asyncio.run(controller._write_status(("prod", "api"), body, plan))
    assert value(controller.metrics, "sundial_runs_total", result="succeeded", role="deploy") == 0


def test_invalid_objects_follow_the_status_seen_and_written(controller: Controller) -> None:
    body = sd_body(scheduled("False", "InvalidSchedule"))
    controller.object_seen(body, deleted=False)
    assert value(controller.metrics, "sundial_invalid_objects") == 1
    controller._custom = FakeCustomObjects(body)
    assert asyncio.run(controller._write_status(("prod", "api"), body, Plan(status=scheduled("True"))))
    assert value(controller.metrics, "sundial_invalid_objects") == 0
    controller.object_seen(body, deleted=False)
    controller.object_seen(body, deleted=True)
    assert value(controller.metrics, "sundial_invalid_objects") == 0


def test_armed_schedules_is_the_wake_up_queue_length(controller: Controller) -> None:
    controller.object_seen(sd_body(), deleted=False)
    assert value(controller.metrics, "sundial_armed_schedules") == 1
    controller.object_seen(sd_body(), deleted=True)
    assert value(controller.metrics, "sundial_armed_schedules") == 0


def a_run(lateness: timedelta) -> JobRun:
    instant = datetime(2027, 3, 14, 7, 30, tzinfo=UTC)
    return JobRun(
        job_name="api-20270314-0730",
        role="Deploy",
        scheduled_time=instant,
        local_time=instant,
        time_zone="UTC",
        fired_time=instant + lateness,
    )


def test_a_created_job_is_counted_with_its_lateness(controller: Controller) -> None:
    controller._batch_fire = FakeBatch()
    created, failures = asyncio.run(
        controller._create_jobs(sd_body(), Plan(status={}, create=(a_run(timedelta(milliseconds=3)),)))
    )
    assert (len(created), failures) == (1, [])
    metrics = controller.metrics
    assert value(metrics, "sundial_jobs_created_total", role="deploy") == 1
    assert value(metrics, "sundial_fire_lateness_seconds_count", role="deploy") == 1
    assert value(metrics, "sundial_fire_lateness_seconds_bucket", role="deploy", le="0.0025") == 0
    assert value(metrics, "sundial_fire_lateness_seconds_bucket", role="deploy", le="0.005") == 1


@pytest.mark.parametrize(
    ("status", "code", "raised"),
    [
        (403, "403", None),
        (422, "422", None),
        (503, "503", ApiException),  # retried by the wake-up queue, so raised
        (0, "<error>", TimeoutError),  # no answer at all
    ],
)
def test_a_refused_create_is_an_api_error_and_no_job(
    controller: Controller, status: int, code: str, raised: type[Exception] | None
) -> None:
    controller._batch_fire = FakeBatch(error=status)
    plan = Plan(status={}, create=(a_run(timedelta(0)),))
    if raised is not None:
        with pytest.raises(raised):
            asyncio.run(controller._create_jobs(sd_body(), plan))
    else:
        created, failures = asyncio.run(controller._create_jobs(sd_body(), plan))
        assert (created, len(failures)) == ([], 1)
    assert value(controller.metrics, "sundial_fire_api_errors_total", code=code) == 1
    assert value(controller.metrics, "sundial_jobs_created_total", role="deploy") == 0
    assert value(controller.metrics, "sundial_fire_lateness_seconds_count", role="deploy") == 0


def test_status_writes_pending_is_what_the_writer_holds(controller: Controller) -> None:
    body = sd_body()
    controller.cache.object_seen(body, deleted=False)

    async def scenario() -> tuple[float | None, float | None]:
        controller.status_writer.submit(("prod", "api"), body, Plan(status=scheduled("True")))
        pending = value(controller.metrics, "sundial_status_writes_pending")
        controller.status_writer.drop()
        await controller.status_writer.settle()
        return pending, value(controller.metrics, "sundial_status_writes_pending")

    controller._custom = FakeCustomObjects(body)
    assert asyncio.run(scenario()) == (1, 0)


def test_the_shard_a_replica_serves_is_a_label() -> None:
    metrics = Metrics.create(runtime_collectors=False)
    metrics.serve_shard(1, 2)
    samples = [s for m in metrics.registry.collect() if m.name == "sundial_shard" for s in m.samples]
    assert [(s.labels, s.value) for s in samples] == [({"shard": "1", "shards": "2"}, 1.0)]


def test_governance_counts_each_withheld_run_once_and_the_waiting_gauge_reads_progressing() -> None:
    held = {"scheduledTime": "2027-03-14T07:30:00Z", "result": "Held", "reason": "Frozen"}
    missed = {"scheduledTime": "2027-03-15T07:30:00Z", "result": "Missed", "reason": "FrozenPastDeadline"}
    other = {"scheduledTime": "2027-03-16T07:30:00Z", "result": "Held", "reason": "DependencyFailed"}
    assert withheld_transitions(None, {"runs": [held, missed, other]}) == ["Frozen", "FrozenPastDeadline"]
    assert withheld_transitions({"runs": [held]}, {"runs": [held, missed]}) == ["FrozenPastDeadline"]
    metrics = Metrics.create(runtime_collectors=False)
    metrics.record_transitions({"runs": []}, {"runs": [held]})
    assert metrics.registry.get_sample_value("sundial_runs_withheld_total", {"reason": "Frozen"}) == 1.0
    waiting = {"type": "Progressing", "status": "True", "reason": "AwaitingApproval"}
    assert waiting_reason({"conditions": [waiting]}) == "AwaitingApproval"
    assert waiting_reason({"conditions": [{**waiting, "reason": "JobRunning"}]}) is None
    assert waiting_reason({"conditions": [{**waiting, "status": "False"}]}) is None
    metrics.watch_waiting(lambda reason: 3 if reason == "Frozen" else 0)
    assert metrics.registry.get_sample_value("sundial_runs_waiting", {"reason": "Frozen"}) == 3.0
    assert metrics.registry.get_sample_value("sundial_runs_waiting", {"reason": "AwaitingApproval"}) == 0.0
