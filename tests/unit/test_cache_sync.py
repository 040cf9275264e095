"""The controller plans only from a complete listing, and an older copy never replaces a newer one.

Defect (issue 11): after a take-over the wake-up queue was served before the caches held the whole LIST, so
every dependent whose dependency had not been re-listed yet went Ready=False with DependencyNotFound, and a
run whose Job had not been re-listed was recorded Missed although its Job existed. These tests drive the
controller's caches directly (no API server: the listings are handed in as the informer hands them); the
integration tier proves the same on the real API server with peered replicas killed around instants.
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
from sundial.runtime.cache import GONE_JOBS_KEPT, JOBS, OBJECTS, Cache, resource_version_older
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
    made = Controller(None, ControllerSettings(DEPLOYER_IMAGE, api_threads=1))
    try:
        yield made
    finally:
        made.close()


def list_into(
    controller: Controller, objects: list[dict[str, Any]], jobs: list[dict[str, Any]], version: str
) -> None:
    """What the informer does once it has listed both sources (its paging: tests/unit/test_informer.py)."""
    controller.listed(OBJECTS, NAMESPACE, objects, version)
    controller.listed(JOBS, NAMESPACE, jobs, version)
    controller.mark_synced()


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
    list_into(controller, [sd("api", "5")], [], "7")
    assert controller.cache.synced and controller.caches_synced.is_set()


def test_the_listing_completes_the_cache(controller: Controller) -> None:
    """A watch event had brought only part of the namespace (``z-db`` not yet) before the listing ended."""
    controller.object_seen(sd("a-app", "11", dependsOn={"name": "z-db"}), deleted=False)
    list_into(
        controller,
        [sd("a-app", "11", dependsOn={"name": "z-db"}), sd("z-db", "12")],
        [job_body("z-db", "13"), job_body("forged", "14", controlled=False)],
        "20",
    )
    assert set(controller.cache.objects) == {(NAMESPACE, "a-app"), (NAMESPACE, "z-db")}
    assert controller.cache.component((NAMESPACE, "a-app")) == {(NAMESPACE, "a-app"), (NAMESPACE, "z-db")}
    assert set(controller.cache.jobs) == {(NAMESPACE, job_name("z-db", T))}


def with_next_run(name: str, version: str, next_run: str | None, dependency_run: str | None = None) -> Any:
    body = sd(name, version)
    body["status"] = {
        key: value
        for key, value in (("nextRunTime", next_run), ("nextDependencyRunTime", dependency_run))
        if value is not None
    }
    return body


def test_a_replica_that_becomes_active_plans_every_object_soonest_persisted_run_first(
    controller: Controller,
) -> None:
    """Take-over at 10,000 objects: the plans take seconds, so a run due seconds after it must not wait
    behind thousands due next month. A never-planned object counts as due 30 s after the take-over: nothing
    says when it is due, and thousands of them (a mass creation) must not hold back runs due sooner."""
    now = T.timestamp()
    controller._clock = lambda: now
    objects = [
        with_next_run("next-month", "1", "2027-04-14T07:30:00Z"),
        with_next_run("in-three-seconds", "2", "2027-03-14T07:30:03Z"),
        with_next_run("never-planned", "3", None),
        with_next_run("dependency-first", "4", "2027-03-14T08:00:00Z", "2027-03-14T07:30:01Z"),
        with_next_run("tomorrow", "5", "2027-03-15T07:30:00Z"),
        with_next_run("overdue", "6", "2027-03-14T07:29:50Z"),
        with_next_run("in-a-minute", "7", "2027-03-14T07:31:00Z"),
    ]
    list_into(controller, objects, [], "9")
    controller.wakeups.request((NAMESPACE, "tomorrow"), at=0.0)  # collected as a standby: order unknown
    assert controller.rearm() == 7
    assert controller.wakeups._heap == []
    assert [name for _, name in controller.wakeups._backlog] == [
        "overdue",
        "dependency-first",
        "in-three-seconds",
        "never-planned",
        "in-a-minute",
        "tomorrow",
        "next-month",
    ]


def test_the_moment_every_object_has_been_planned_since_becoming_active_is_logged(
    controller: Controller, caplog: pytest.LogCaptureFixture
) -> None:
    list_into(controller, [sd("a", "1"), sd("b", "2"), sd("c", "3")], [], "9")
    controller.rearm()
    caplog.set_level("INFO", logger="sundial.runtime.controller")
    controller._planned_once((NAMESPACE, "a"))
    controller.object_seen(sd("b", "4"), deleted=True)  # gone before its turn: nothing left to plan
    assert "re-planned all" not in caplog.text
    controller._planned_once((NAMESPACE, "c"))
    assert "re-planned all 3 objects" in caplog.text


def test_an_older_copy_never_replaces_a_newer_one_whichever_arrives_last(controller: Controller) -> None:
    list_into(controller, [sd("api", "30", runAt="2027-03-14T09:00")], [], "30")
    # A fresh read that raced with the listing delivers its older copy afterwards: ignored.
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
    list_into(controller, [], [], "40")
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


def test_jobs_are_created_only_while_the_active_replica_says_so(controller: Controller) -> None:
    """No Job before ``fire_while``; none once its flag says stop (kopf paused the replica), even before the
    daemon is cancelled; ``stand_down`` stops firing and keeps the caches (the informer keeps them warm)."""
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
    list_into(controller, [body], [], "7")
    controller.fire_while(lambda: True)
    controller.stand_down()
    assert not controller.may_fire() and controller.cache.synced


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
    cache = Cache()
    cache.object_seen(sd("api", "20", runAt="2027-03-14T10:00"), deleted=False)
    # A read that raced with the watch and returns the older copy does not undo the newer one.
    assert cache.store(sd("api", "19", runAt="2027-03-14T09:00")).wake == set()
    assert cache.objects[(NAMESPACE, "api")]["spec"]["runAt"] == "2027-03-14T10:00"
    # A newer copy is kept, and its watch event then finds nothing new to wake anyone for.
    cache.store(sd("api", "21", runAt="2027-03-14T11:00"))
    assert cache.objects[(NAMESPACE, "api")]["spec"]["runAt"] == "2027-03-14T11:00"
    assert cache.object_seen(sd("api", "21", runAt="2027-03-14T11:00"), deleted=False).wake == set()


def test_a_fresh_copy_whose_spec_moved_wakes_the_objects_connected_to_it_but_not_itself() -> None:
    cache = Cache()
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
    cache = Cache()
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


def test_a_deleted_job_is_remembered_for_its_owner_until_made_again() -> None:
    cache = Cache()
    cache.object_seen(sd("api", "10"), deleted=False)
    job = job_body("api", "11")
    name = job["metadata"]["name"]
    cache.job_seen(job, deleted=False)
    cache.job_seen({**job, "metadata": {**job["metadata"], "resourceVersion": "12"}}, deleted=True)
    gone = cache.gone_jobs_of(cache.objects[(NAMESPACE, "api")])
    assert list(gone) == [name] and gone[name] is not None and gone[name].owner == "api"
    cache.job_seen({**job, "metadata": {**job["metadata"], "resourceVersion": "13"}}, deleted=False)
    assert cache.gone_jobs_of(cache.objects[(NAMESPACE, "api")]) == {}


def test_the_jobs_of_a_deleted_owner_are_not_remembered_and_memory_is_bounded() -> None:
    cache = Cache()
    cache.job_seen(job_body("gone", "11"), deleted=True)  # garbage collection after its owner went
    assert cache.gone_jobs == {}
    cache.object_seen(sd("api", "20"), deleted=False)
    template = job_body("api", "21")
    for i in range(GONE_JOBS_KEPT + 3):
        metadata = {**template["metadata"], "name": f"api-{i}", "resourceVersion": str(30 + i)}
        cache.job_seen({**template, "metadata": metadata}, deleted=True)
    kept = cache.gone_jobs_of(cache.objects[(NAMESPACE, "api")])
    assert list(kept) == [f"api-{i}" for i in range(3, GONE_JOBS_KEPT + 3)]  # the newest
    cache.object_seen(sd("api", "50"), deleted=True)
    assert cache.gone_jobs == {}


def test_a_running_record_whose_job_a_get_found_absent_is_named_gone() -> None:
    cache = Cache()
    body = sd("api", "10")
    body["status"] = {
        "runs": [{"scheduledTime": "2027-03-14T07:30:00Z", "result": "Running", "jobName": "x"}]
    }
    cache.jobs_known_absent.add((NAMESPACE, "x"))
    assert cache.gone_jobs_of(body) == {"x": None}


def test_what_a_get_found_absent_is_forgotten_with_the_object_that_named_it() -> None:
    cache = Cache()
    body = sd("api", "10")
    body["status"] = {"runs": [{"scheduledTime": "2027-03-14T07:30:00Z", "result": "Failed", "jobName": "x"}]}
    cache.object_seen(body, deleted=False)
    cache.jobs_known_absent |= {(NAMESPACE, "x"), (NAMESPACE, "someone-elses")}
    cache.object_seen({**body, "metadata": {**body["metadata"], "resourceVersion": "11"}}, deleted=True)
    assert cache.jobs_known_absent == {(NAMESPACE, "someone-elses")}
