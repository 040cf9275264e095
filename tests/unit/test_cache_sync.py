"""The controller plans only from a complete listing, and an older copy never replaces a newer one.

Defect (issue 11): after a take-over the wake-up queue was served before the caches held the whole LIST, so
every dependent whose dependency had not been re-listed yet went Ready=False with DependencyNotFound, and a
run whose Job had not been re-listed was recorded Missed although its Job existed. These tests drive the
controller's caches directly (no API server: the listing is handed in page by page); the integration tier
proves the same on the real API server with peered replicas killed around instants.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException
from test_reconcile import DEPLOYER_IMAGE, NAMESPACE, ONE_SHOT, T, scheduled_deployment, uid, world

from sundial.decide.jobs import build_job
from sundial.decide.observe import job_state_from_body
from sundial.decide.reconcile import Plan, reconcile
from sundial.runtime.cache import Cache, resource_version_older
from sundial.runtime.controller import Controller, ControllerSettings
from sundial.timing.names import job_name


def sd(name: str, version: str, **spec: Any) -> dict[str, Any]:
    body = scheduled_deployment(name, {**ONE_SHOT, **spec})
    body["metadata"]["resourceVersion"] = version
    return body


def job_body(owner: str, version: str, *, controlled: bool = True) -> dict[str, Any]:
    (run,) = reconcile(world(scheduled_deployment(owner, ONE_SHOT), T)).create
    manifest = build_job(scheduled_deployment(owner, ONE_SHOT), run, DEPLOYER_IMAGE)
    manifest["metadata"]["resourceVersion"] = version
    if not controlled:
        del manifest["metadata"]["ownerReferences"]
    return manifest


@pytest.fixture
def controller() -> Iterator[Controller]:
    made = Controller(None, ControllerSettings(DEPLOYER_IMAGE, api_threads=1), namespaces=(NAMESPACE,))
    try:
        yield made
    finally:
        made.close()


def serve_listing(
    controller: Controller, objects: list[dict[str, Any]], jobs: list[dict[str, Any]], version: str
) -> None:
    """Answer the controller's LISTs with these items, split over pages to prove it follows ``continue``."""

    def pages(items: list[dict[str, Any]]) -> Any:
        def page(namespace: str, token: str | None, **_: Any) -> dict[str, Any]:
            assert namespace == NAMESPACE
            if token is None and len(items) > 1:
                return {"items": items[:1], "metadata": {"continue": "next"}}
            rest = items[1:] if token else items
            return {"items": rest, "metadata": {"resourceVersion": version}}

        return page

    # The listing is served by these pages instead of an API server.
    controller.cache._list_objects_page = pages(objects)  # type: ignore[method-assign]
    controller.cache._list_jobs_page = pages(jobs)  # type: ignore[method-assign]


@pytest.mark.parametrize(
    ("version", "than", "older"),
    [("9", "10", True), ("10", "9", False), ("10", "10", False), ("abc", "10", False), (None, "10", False)],
)
def test_resource_versions_compare_as_revisions_only_when_both_are_numbers(
    version: object, than: object, older: bool
) -> None:
    assert resource_version_older(version, than) is older


def test_nothing_is_planned_before_the_listing_completes(controller: Controller) -> None:
    controller.object_seen(sd("api", "5"), deleted=False)

    async def plan_before_sync() -> float | None:
        return await controller.reconcile_key((NAMESPACE, "api"))

    # Before the listing, reconcile_key returns at once: a call to the API (None client) would raise.
    assert asyncio.run(plan_before_sync()) is None
    serve_listing(controller, [sd("api", "5")], [], "7")
    asyncio.run(controller.sync_caches())
    assert controller.cache.synced


def test_the_listing_completes_the_cache_and_wakes_every_object(controller: Controller) -> None:
    """kopf had re-listed only part of the namespace (``z-db`` not yet) when the replica became active."""
    controller.object_seen(sd("a-app", "11", dependsOn={"name": "z-db"}), deleted=False)
    serve_listing(
        controller,
        [sd("a-app", "11", dependsOn={"name": "z-db"}), sd("z-db", "12")],
        [job_body("z-db", "13"), job_body("forged", "14", controlled=False)],
        "20",
    )
    asyncio.run(controller.sync_caches())
    assert set(controller.cache.objects) == {(NAMESPACE, "a-app"), (NAMESPACE, "z-db")}
    assert controller.cache.component((NAMESPACE, "a-app")) == {(NAMESPACE, "a-app"), (NAMESPACE, "z-db")}
    assert set(controller.cache.jobs) == {(NAMESPACE, job_name("z-db", T))}
    assert {key for _, _, key in controller.wakeups._heap} == set(controller.cache.objects)


def test_an_older_copy_never_replaces_a_newer_one_whichever_arrives_last(controller: Controller) -> None:
    serve_listing(controller, [sd("api", "30", runAt="2027-03-14T09:00")], [], "30")
    asyncio.run(controller.sync_caches())
    # kopf's own re-list began before ours and delivers its older copy afterwards: ignored.
    controller.object_seen(sd("api", "25", runAt="2027-03-14T08:30"), deleted=False)
    assert controller.cache.objects[(NAMESPACE, "api")]["spec"]["runAt"] == "2027-03-14T09:00"
    # A copy of an object the listing did not hold, older than the listing: it was deleted since.
    controller.object_seen(sd("gone", "29"), deleted=False)
    assert (NAMESPACE, "gone") not in controller.cache.objects
    # A newer event is news.
    controller.object_seen(sd("api", "31", runAt="2027-03-14T10:00"), deleted=False)
    assert controller.cache.objects[(NAMESPACE, "api")]["spec"]["runAt"] == "2027-03-14T10:00"


def test_the_listing_drops_what_is_gone_and_keeps_what_a_watch_event_brought_since(
    controller: Controller,
) -> None:
    controller.object_seen(sd("deleted-while-paused", "3"), deleted=False)
    controller.job_seen(job_body("deleted-while-paused", "4"), deleted=False)
    controller.object_seen(sd("created-during-the-list", "41"), deleted=False)
    serve_listing(controller, [], [], "40")
    asyncio.run(controller.sync_caches())
    assert set(controller.cache.objects) == {(NAMESPACE, "created-during-the-list")}
    assert controller.cache.jobs == {}


def test_a_running_job_named_in_status_but_missing_from_the_cache_is_looked_up_by_name(
    controller: Controller,
) -> None:
    """Concurrency decisions consult status.active: a Job it names is fetched before anything is decided."""
    present, absent = job_name("api", T), "api-20270314-063000-00000000"
    status = {"active": [{"name": present, "scheduledTime": "2027-03-14T07:30:00Z"}]}
    status["runs"] = [{"scheduledTime": "2027-03-14T06:30:00Z", "result": "Running", "jobName": absent}]
    body = {**sd("api", "5"), "status": status}
    asked: list[str] = []

    class Batch:
        def read_namespaced_job(self, name: str, namespace: str, **_: Any) -> Any:
            asked.append(name)
            if name == present:
                data = json.dumps(job_body("api", "6")).encode()
                return type("Response", (), {"data": data, "release_conn": lambda self: None})()
            raise ApiException(status=404)

    controller._batch = Batch()
    asyncio.run(controller._confirm_jobs(body))
    assert sorted(asked) == sorted([present, absent])
    assert controller.cache.jobs[(NAMESPACE, present)].owner_uid == uid("api")
    asyncio.run(controller._confirm_jobs(body))
    assert len(asked) == 2  # found, and known gone: neither is asked for again


def test_jobs_are_created_only_while_the_active_replica_says_so_and_standing_down_lists_again(
    controller: Controller,
) -> None:
    """No Job before ``fire_while``; none once its flag says stop (kopf paused the replica), even before the
    daemon is cancelled; and after ``stand_down`` nothing is planned until a new listing completes."""
    (run,) = reconcile(world(scheduled_deployment("api", ONE_SHOT), T)).create
    plan = Plan(status={}, create=(run,))
    body = sd("api", "5")
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(controller._create_jobs(body, plan))
    paused = [False]
    controller.fire_while(lambda: not paused[0])
    assert controller.may_fire()
    paused[0] = True
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(controller._create_jobs(body, plan))
    serve_listing(controller, [body], [], "7")
    asyncio.run(controller.sync_caches())
    controller.fire_while(lambda: True)
    controller.stand_down()
    assert not controller.may_fire() and not controller.cache.synced


def test_a_job_gaining_its_first_pod_wakes_its_owner_and_status_noise_does_not(
    controller: Controller,
) -> None:
    """A Job without pods is looked at for a refused pod (sundial.decide.refusals): its first pod must reach
    the plan, while a status update that changes nothing the plan reads (startTime, ready: 0) must not."""
    cache = controller.cache
    created = job_body("api", "10")
    assert cache.job_seen(created, deleted=False).wake == {(NAMESPACE, "api")}
    state = cache.jobs[(NAMESPACE, job_name("api", T))]
    assert state.no_pods
    noise = {**created, "metadata": {**created["metadata"], "resourceVersion": "11"}}
    noise["status"] = {"startTime": "2027-03-14T07:30:00Z", "active": 0, "ready": 0, "terminating": 0}
    assert cache.job_seen(noise, deleted=False).wake == set()
    running = {**noise, "metadata": {**noise["metadata"], "resourceVersion": "12"}}
    running["status"] = {**noise["status"], "active": 1}
    assert cache.job_seen(running, deleted=False).wake == {(NAMESPACE, "api")}
    assert not cache.jobs[(NAMESPACE, job_name("api", T))].no_pods


# ------------------------------------------------------------------ the controller's own reads and writes


def test_a_fresh_copy_is_stored_unless_a_watch_event_already_brought_a_newer_one() -> None:
    cache = Cache(None, lambda *_: None)
    cache.object_seen(sd("api", "20", runAt="2027-03-14T10:00"), deleted=False)
    # A read that raced with the watch and returns the older copy does not undo the newer one.
    assert cache.store(sd("api", "19", runAt="2027-03-14T09:00")).wake == set()
    assert cache.objects[(NAMESPACE, "api")]["spec"]["runAt"] == "2027-03-14T10:00"
    # A newer copy is kept, and its watch event then finds nothing new to wake anyone for.
    cache.store(sd("api", "21", runAt="2027-03-14T11:00"))
    assert cache.objects[(NAMESPACE, "api")]["spec"]["runAt"] == "2027-03-14T11:00"
    assert cache.object_seen(sd("api", "21", runAt="2027-03-14T11:00"), deleted=False).wake == set()


def test_a_fresh_copy_whose_spec_moved_wakes_the_objects_connected_to_it_but_not_itself() -> None:
    cache = Cache(None, lambda *_: None)
    cache.object_seen(sd("db", "10"), deleted=False)
    cache.object_seen(sd("api", "11", dependsOn={"name": "db"}), deleted=False)
    # The dependency moved: its dependent's instants move with it, even though the watch event of this
    # very version will be no news when it comes.
    moved = cache.store(sd("db", "12", runAt="2027-03-14T11:00"))
    assert moved.wake == {(NAMESPACE, "api")}
    # A status write leaves the spec alone: nobody is woken by it.
    written = sd("db", "13", runAt="2027-03-14T11:00")
    written["status"] = {"observedGeneration": 1}
    assert cache.store(written).wake == set()


def test_a_job_created_here_is_cached_at_once_and_its_watch_event_is_no_news() -> None:
    cache = Cache(None, lambda *_: None)
    cache.object_seen(sd("api", "10"), deleted=False)
    body = job_body("api", "30")
    state = job_state_from_body(body)
    assert state is not None
    cache.job_created(state, "30")
    assert cache.jobs_by_owner[(NAMESPACE, "api")] == {state.name}
    assert cache.job_seen(body, deleted=False).wake == set()
    # Its deletion wakes the owner, and forgets it.
    assert cache.job_seen(
        body | {"metadata": {**body["metadata"], "resourceVersion": "31"}}, deleted=True
    ).wake == {(NAMESPACE, "api")}
    assert (NAMESPACE, state.name) not in cache.jobs and not cache.jobs_by_owner[(NAMESPACE, "api")]
