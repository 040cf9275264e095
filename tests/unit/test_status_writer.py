"""Status writes behind the fire path (`sundial.runtime.statuswriter`): the latest plan of an object wins, a
plan made from an older copy is planned again instead of sent, Events follow only an accepted write."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from sundial.decide.reconcile import Event, Plan
from sundial.runtime.apierrors import is_outage
from sundial.runtime.statuswriter import StatusWriter
from sundial.runtime.wakeups import RETRY_FIRST_SECONDS

KEY = ("shop", "api")
NOW = 1000.0


def body(version: str = "7", status: dict[str, Any] | None = None) -> dict[str, Any]:
    metadata = {"namespace": "shop", "name": "api", "resourceVersion": version}
    return {"metadata": metadata, "status": status or {}}


def plan(result: str, *events: str) -> Plan:
    return Plan(
        status={"runs": [{"result": result}]}, events=tuple(Event("Normal", reason, "") for reason in events)
    )


class Harness:
    def __init__(self, *, writers: int = 4) -> None:
        self.written: list[tuple[str, Any]] = []
        self.posted: list[str] = []
        self.replanned: list[tuple[tuple[str, str], float]] = []
        self.versions: dict[tuple[str, str], str] = {KEY: "7"}
        self.answers: list[bool | Exception] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.writer = StatusWriter(
            self.write,
            self.post,
            replan=lambda key, at: self.replanned.append((key, at)),
            cached_version=self.versions.get,
            is_outage=is_outage,
            clock=lambda: NOW,
            writers=writers,
        )

    async def write(self, key: tuple[str, str], _: Mapping[str, Any], plan: Plan) -> bool:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0)
            answer = self.answers.pop(0) if self.answers else True
            if isinstance(answer, Exception):
                raise answer
            self.written.append((key[1], plan.status["runs"][0]["result"]))
            return answer
        finally:
            self.in_flight -= 1

    async def post(self, _: Mapping[str, Any], events: Iterable[Event]) -> None:
        self.posted.extend(event.reason for event in events)


def test_the_latest_plan_of_an_object_replaces_one_not_yet_written() -> None:
    harness = Harness()

    async def scenario() -> None:
        harness.writer.submit(KEY, body(), plan("Running", "Fired"))
        harness.writer.submit(KEY, body(), plan("Succeeded", "Fired", "Succeeded"))
        await harness.writer.settle()

    asyncio.run(scenario())
    assert harness.written == [("api", "Succeeded")]
    assert harness.posted == ["Fired", "Succeeded"]


def test_a_plan_made_from_an_older_copy_than_the_cache_holds_is_planned_again_not_sent() -> None:
    harness = Harness()
    harness.versions[KEY] = "8"  # a watch event, or this replica's own write, came in meanwhile

    async def scenario() -> None:
        harness.writer.submit(KEY, body("7"), plan("Running", "Fired"))
        await harness.writer.settle()

    asyncio.run(scenario())
    assert (harness.written, harness.posted, harness.replanned) == ([], [], [(KEY, NOW)])


def test_a_write_refused_for_its_precondition_posts_nothing_and_plans_again_now() -> None:
    harness = Harness()
    harness.answers = [False]

    async def scenario() -> None:
        harness.writer.submit(KEY, body(), plan("Running", "Fired"))
        await harness.writer.settle()

    asyncio.run(scenario())
    assert (harness.posted, harness.replanned) == ([], [(KEY, NOW)])


def test_a_failing_write_is_planned_again_with_backoff_that_grows_until_one_succeeds() -> None:
    harness = Harness()
    harness.answers = [ApiException(status=500), ApiException(status=500), True, ApiException(status=500)]

    async def scenario() -> None:
        for _ in range(4):
            harness.writer.submit(KEY, body(), plan("Running", "Fired"))
            await harness.writer.settle()

    asyncio.run(scenario())
    delays = [at - NOW for _, at in harness.replanned]
    assert delays == [RETRY_FIRST_SECONDS, 2 * RETRY_FIRST_SECONDS, RETRY_FIRST_SECONDS]
    assert harness.posted == ["Fired"]


def test_a_plan_with_nothing_to_write_cancels_a_pending_one() -> None:
    harness = Harness()
    stored = {"runs": [{"result": "Running"}]}

    async def scenario() -> None:
        harness.writer.submit(KEY, body(status=stored), plan("Succeeded", "Succeeded"))
        harness.writer.submit(KEY, body(status=stored), Plan(status=stored))
        await harness.writer.settle()

    asyncio.run(scenario())
    assert (harness.written, harness.posted) == ([], [])


def test_a_replica_that_stands_down_writes_nothing_more() -> None:
    harness = Harness()

    async def scenario() -> None:
        harness.writer.submit(KEY, body(), plan("Running", "Fired"))
        harness.writer.drop()
        await harness.writer.settle()

    asyncio.run(scenario())
    assert (harness.written, harness.posted) == ([], [])


@pytest.mark.parametrize("writers", [1, 3])
def test_writes_in_flight_are_bounded_and_every_object_is_written_once(writers: int) -> None:
    harness = Harness(writers=writers)
    keys = [("shop", f"o{i}") for i in range(10)]
    harness.versions.update({key: "7" for key in keys})

    async def scenario() -> None:
        for key in keys:
            harness.writer.submit(key, body(), plan("Running", "Fired"))
        assert len(harness.writer) == len(keys)
        await harness.writer.settle()

    asyncio.run(scenario())
    assert sorted(name for name, _ in harness.written) == sorted(name for _, name in keys)
    assert harness.most_in_flight == writers
    assert harness.posted == ["Fired"] * len(keys)
