"""The controller never carries out a plan after a run's deadline has passed, and never deletes a Job
before a status records its run.

Found by the fault suite's kube-apiserver and etcd restarts in CI: with "plan once", a run due with a 1 s
deadline was planned at its instant, the fresh read of the object then waited for the restarting API
server, and the Job was created 6 s after the instant. A plan is now made again (and the run recorded
missed) whenever a run's ``start_by`` has passed by the time the read returns.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from test_reconcile import DEPLOYER_IMAGE, NAMESPACE, ONE_SHOT, T, job, scheduled_deployment

from sundial.decide.observe import CreateFailure, JobPhase, JobState
from sundial.decide.reconcile import Plan
from sundial.runtime.controller import Controller, ControllerSettings

KEY = (NAMESPACE, "api")


@pytest.fixture
def clock() -> list[float]:
    return [T.timestamp()]


@pytest.fixture
def controller(clock: list[float]) -> Iterator[Controller]:
    made = Controller(
        None,
        ControllerSettings(DEPLOYER_IMAGE, api_threads=1),
        clock=lambda: clock[0],
    )
    try:
        yield made
    finally:
        made.close()


def fire(controller: Controller, clock: list[float], read_takes: float) -> tuple[list[Plan], dict[str, Any]]:
    """Reconcile ``api`` at its instant; the fresh read returns ``read_takes`` seconds later."""
    body = scheduled_deployment("api", {**ONE_SHOT, "startingDeadlineSeconds": 1})
    controller.cache.objects[KEY] = body
    controller.cache.synced = True
    carried_out: list[Plan] = []
    written: dict[str, Any] = {}

    async def read(key: Any, fresh: bool = False) -> dict[str, Any]:
        clock[0] += read_takes
        return body

    async def create(_: Any, plan: Plan) -> tuple[list[JobState], list[CreateFailure]]:
        carried_out.append(plan)
        return [], []

    async def write(key: Any, _: Any, plan: Plan) -> bool:
        written.update(plan.status)
        return True

    async def nothing(*_: Any) -> Any:
        return None

    controller._read = read  # type: ignore[method-assign]  # the API's side of the fire path, faked
    controller._create_jobs = create  # type: ignore[method-assign]
    controller._write_status = write  # type: ignore[method-assign]
    controller._delete_jobs = nothing  # type: ignore[method-assign]
    controller._post_events = nothing  # type: ignore[method-assign]
    controller.lookups.missing_account = nothing  # type: ignore[method-assign]

    async def reconcile_and_write() -> None:
        await controller.reconcile_key(KEY)
        await controller.status_writer.settle()

    asyncio.run(reconcile_and_write())
    return carried_out, written


def test_a_quick_read_carries_out_the_plan_made_at_the_instant(
    controller: Controller, clock: list[float]
) -> None:
    (plan,), _ = fire(controller, clock, read_takes=0.2)
    (run,) = plan.create
    assert run.fired_time == T + timedelta(seconds=0.2) and run.start_by == T + timedelta(seconds=1)


def test_a_read_that_outlasts_the_deadline_makes_the_run_missed_not_late(
    controller: Controller, clock: list[float]
) -> None:
    (plan,), written = fire(controller, clock, read_takes=6.0)
    assert plan.create == ()
    assert [(run["result"], run["reason"]) for run in written["runs"]] == [("Missed", "MissedDeadline")]


def prune(controller: Controller, clock: list[float], write_accepted: bool) -> list[str]:
    """Reconcile ``api`` after its run's Job succeeded, with no successful Job kept; the calls, in order."""
    instant = T  # ONE_SHOT: 08:30 in Berlin
    body = scheduled_deployment("api", {**ONE_SHOT, "successfulJobsHistoryLimit": 0})
    clock[0] = (instant + timedelta(minutes=5)).timestamp()
    controller.cache.objects[KEY] = body
    controller.cache.synced = True
    finished = job("api", instant, JobPhase.SUCCEEDED)
    controller.cache.job_created(finished, "7")
    calls: list[str] = []

    async def write(key: Any, _: Any, plan: Plan) -> bool:
        results = [run["result"] for run in plan.status["runs"]]
        calls.append(f"write {results}")
        return write_accepted

    async def delete(_: str, names: Any) -> None:
        calls.extend(f"delete {name}" for name in names)

    async def nothing(*_: Any) -> Any:
        return None

    controller._write_status = write  # type: ignore[method-assign]  # the API's side, faked
    controller._delete_jobs = delete  # type: ignore[method-assign]
    controller._post_events = nothing  # type: ignore[method-assign]
    controller.lookups.missing_account = nothing  # type: ignore[method-assign]
    controller._pod_refusals = nothing  # type: ignore[method-assign]

    async def reconcile_and_write() -> None:
        await controller.reconcile_key(KEY)
        await controller.status_writer.settle()

    asyncio.run(reconcile_and_write())
    return calls


def test_a_pruned_job_is_deleted_only_after_a_status_records_its_run(
    controller: Controller, clock: list[float]
) -> None:
    # Deleted first, the run would be in no Job and no status: the next plan would fire it again (seen on
    # the real API server under a tight budget, where status writes lag behind the fire path's requests).
    assert prune(controller, clock, write_accepted=True) == [
        "write ['Succeeded']",
        f"delete {job('api', T).name}",
    ]


def test_a_refused_status_write_deletes_no_job(controller: Controller, clock: list[float]) -> None:
    assert prune(controller, clock, write_accepted=False) == ["write ['Succeeded']"]
