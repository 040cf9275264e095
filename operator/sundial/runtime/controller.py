"""The operator's I/O: caches fed by watch events, one wake-up queue, and the API calls a plan asks for.

Every decision is made by the pure `sundial.decide.reconcile.reconcile`; this module only gathers its inputs
and carries out its output, in this order, which is what makes a crash at any point safe:

1. Plan from the cached object. If the plan creates and deletes no Job, write status and stop.
2. Otherwise read the object fresh (it may have been deleted or changed since the watch told us) and, only
   if it changed, plan again from that. Create each Job under its deterministic name; AlreadyExists on a
   Job we own is success.
3. Record what was done in the plan (`record_outcomes`: the runs the new Jobs start, the API's refusals),
   without deciding again; write that status (with the object's resourceVersion as a precondition, so a
   concurrent writer makes us re-plan rather than overwrite), post the Events, and ask to be woken at the
   plan's next instant.

Nothing is planned from a half-read world. A replica that becomes active (at start, and again after every
pause, when kopf re-lists) first lists every ScheduledDeployment and every Sundial Job itself, merges the
listing into the caches (`sync_caches`), and only then serves wake-ups, as every kube-controller-manager
controller waits for `WaitForCacheSync`. Without that a dependency not yet re-listed reads as missing, a
Job not yet re-listed reads as never created, and a running Job reads as finished. Watch events and the
listing are merged by resourceVersion, so an older copy never replaces a newer one whichever arrives last.

A crash between 2 and 3 leaves a Job without a status record; the next reconcile finds the Job (by label,
through the watch) and records it from the Job's own annotations. A second replica that acts at the same
moment gets AlreadyExists. So a run is never created twice and never left unrecorded.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from sundial.api.keys import ANNOTATION_SCHEDULED, GROUP, KIND, MANAGED_BY, MANAGER, VERSION
from sundial.api.timestamps import format_utc
from sundial.decide.jobs import DEFAULT_DEPLOYER_IMAGE, build_job, effective_service_account
from sundial.decide.observe import JobPhase, failure_detail, job_state_from_body
from sundial.decide.reconcile import (
    CreateFailure,
    Event,
    JobState,
    Plan,
    World,
    internal_error_plan,
    reconcile,
    record_outcomes,
)
from sundial.runtime.metrics import Metrics, is_invalid
from sundial.runtime.wakeups import WakeupQueue
from sundial.timing.dependencies import connected, depends_on_name

logger = logging.getLogger("sundial.runtime.controller")

Key = tuple[str, str]  # (namespace, name)
T = TypeVar("T")

PLURAL = "scheduleddeployments"
# Answers that say "not now" rather than "no": the create is retried instead of failing the run.
RETRYABLE = frozenset({429, 500, 502, 503, 504})
# Every API call has a deadline, so a connection that silently stops answering (a partition, a stalled load
# balancer) costs a retry, not a thread held forever: a pool of 8 would otherwise freeze firing for everyone.
# (connect, read) seconds; the fire path's read deadline is short because a Job seconds late is already late,
# and a create that timed out but did happen is found again by its name (AlreadyExists) on the retry.
FIRE_TIMEOUT = (3.0, 10.0)
API_TIMEOUT = (5.0, 30.0)
# Fault injection for tests/integration/test_faults.py only: with SUNDIAL_FAULT_EXIT_AFTER_JOB_CREATE=1 the
# process dies (exit code 86, no clean-up, as under SIGKILL) right after its first Job is created and before
# the status that records it is written: the one window a crash cannot be timed into from outside.
FAULT_EXIT_AFTER_JOB_CREATE = os.environ.get("SUNDIAL_FAULT_EXIT_AFTER_JOB_CREATE") == "1"
FAULT_EXIT_CODE = 86
# Fault injection for tests/integration/test_bad_input.py only: planning the object of this name raises, as a
# bug in the pure reconcile would, to prove the last-resort guard (InternalError, backoff, others unharmed).
FAULT_PLAN_RAISES_FOR = os.environ.get("SUNDIAL_FAULT_PLAN_RAISES_FOR")
LIST_PAGE_SIZE = 500
"""Items per page when listing: bounded responses even at 10,000 objects."""


class PlanningError(Exception):
    """The pure reconcile raised for one object: a bug, reported on that object and retried with backoff."""


def resource_version_older(version: object, than: object) -> bool:
    """Whether ``version`` is older than ``than``.

    resourceVersions are opaque to clients in general; the kube-apiserver's are etcd revisions, decimal
    integers that grow with every write, and that is the only form compared here. Anything else is never
    called older, so an unfamiliar server degrades to "the latest arrival wins", as before.
    """
    if not (isinstance(version, str) and isinstance(than, str) and version.isdigit() and than.isdigit()):
        return False
    return int(version) < int(than)


@dataclass
class ControllerSettings:
    deployer_image: str = DEFAULT_DEPLOYER_IMAGE
    api_threads: int = 8
    """Threads for the calls on the path to a Job (reading the object fresh, creating the Job). As many again
    serve everything else (status, Events, lookups), so that bookkeeping never queues in front of a fire.
    Measured: 32 threads per pool were slower than 8 (GIL contention starves the event loop)."""


class Controller:
    def __init__(
        self,
        api_client: Any,
        settings: ControllerSettings,
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
        namespaces: tuple[str, ...] | None = None,
    ) -> None:
        """``namespaces``: where the ScheduledDeployments and Jobs to cache live; None for every namespace."""
        self.api_client = api_client
        self.metrics = metrics or Metrics.create(runtime_collectors=False)
        self._custom = client.CustomObjectsApi(api_client)
        self._batch = client.BatchV1Api(api_client)
        self._core = client.CoreV1Api(api_client)
        self._settings = settings
        self._clock = clock
        self._fire_executor = ThreadPoolExecutor(settings.api_threads, thread_name_prefix="sundial-fire")
        self._executor = ThreadPoolExecutor(settings.api_threads, thread_name_prefix="sundial-api")
        self.objects: dict[Key, dict[str, Any]] = {}
        self.jobs: dict[Key, JobState] = {}
        self._jobs_by_owner: dict[Key, set[str]] = defaultdict(set)
        self._dependents: dict[Key, set[str]] = defaultdict(set)
        """(namespace, name) -> the names of the objects whose dependsOn names it."""
        self.wakeups: WakeupQueue[Key] = WakeupQueue(self.reconcile_key, clock=clock, transient=is_outage)
        self._invalid: set[Key] = set()
        """Objects whose status says their spec cannot be scheduled; kept for the invalid-objects gauge."""
        self.metrics.watch_armed(lambda: len(self.wakeups))
        self.metrics.watch_invalid(lambda: len(self._invalid))
        self._background: set[asyncio.Task[None]] = set()
        self.may_fire: Callable[[], bool] = lambda: True
        """Asked right before each Job is created. kopf can take seconds to cancel a busy daemon after it
        pauses this replica; this lets the pause stop Job creation at once rather than when the task ends."""
        self._service_accounts: dict[Key, tuple[bool, float]] = {}
        self._namespaces = namespaces
        self._object_versions: dict[Key, str] = {}
        self._job_versions: dict[Key, str] = {}
        self._listed_versions: dict[str, str] = {}
        """The collection resourceVersion of the last listing, per kind: an event about an object the
        listing did not hold, older than the listing, describes something already gone."""
        self._jobs_known_absent: set[Key] = set()
        """Jobs named in some status as running that a fresh GET found gone (see `_confirm_jobs`)."""
        self.synced = False
        """True once the caches hold a complete listing taken since this replica last became active."""

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._fire_executor.shutdown(wait=False, cancel_futures=True)

    @staticmethod
    def _raw(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> bytes:
        """Call ``fn`` for its raw body: no model objects built, and the connection goes back to the pool."""
        response = fn(*args, _preload_content=False, **kwargs)
        try:
            return bytes(response.data)
        finally:
            response.release_conn()

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, lambda: fn(*args, _request_timeout=API_TIMEOUT, **kwargs)
        )

    async def _fire_call(self, fn: Callable[..., T], *args: Any) -> T:
        """A call on the path between an instant and its Job: served by threads of its own."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._fire_executor, lambda: fn(*args, _request_timeout=FIRE_TIMEOUT)
        )

    # ------------------------------------------------------------------------------------------ watch side

    def _is_news(
        self, versions: dict[Key, str], kind: str, key: Key, version: object, deleted: bool = False
    ) -> bool:
        """Whether an event or listed item at ``version`` is newer than what the cache holds for ``key``
        (for a deletion: not older)."""
        known = versions.get(key)
        if known is not None:
            return (deleted or known != version) and not resource_version_older(version, known)
        return not resource_version_older(version, self._listed_versions.get(kind))

    def object_seen(self, body: Mapping[str, Any], deleted: bool, force: bool = False) -> None:
        """A ScheduledDeployment event: refresh the cache and wake every object whose plan it can change.

        ``force``: apply it even if it is not newer (a listing found the object gone)."""
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        version = body["metadata"].get("resourceVersion")
        if not force and not self._is_news(self._object_versions, "objects", key, version, deleted):
            return  # a copy no newer than the cached one (kopf's re-list after our own listing)
        if deleted:
            self._object_versions.pop(key, None)
        elif isinstance(version, str):
            self._object_versions[key] = version
        previous = self.objects.get(key)
        before = self.component(key)
        if deleted:
            self.objects.pop(key, None)
            self.wakeups.forget(key)
            self._invalid.discard(key)
        else:
            self.objects[key] = dict(body)
            self.wakeups.request(key)
            self._note_validity(key, body.get("status"))
        self._index_dependency(key, previous, None if deleted else body)
        if previous is None or deleted or previous.get("spec") != body.get("spec"):
            # Dependencies add up along chains, so a change anywhere in a chain can move instants on both
            # sides of it, and a deletion can invalidate a dependent: wake the chain as it was and as it is.
            for other in (before | self.component(key)) - {key}:
                self.wakeups.request(other)

    def _note_validity(self, key: Key, status: Mapping[str, Any] | None) -> None:
        if is_invalid(status):
            self._invalid.add(key)
        else:
            self._invalid.discard(key)

    def _index_dependency(
        self, key: Key, previous: Mapping[str, Any] | None, body: Mapping[str, Any] | None
    ) -> None:
        namespace, name = key
        old, new = depends_on_name(previous), depends_on_name(body)
        if old is not None and old != new:
            self._dependents[(namespace, old)].discard(name)
        if new is not None:
            self._dependents[(namespace, new)].add(name)

    def component(self, key: Key) -> set[Key]:
        """The objects connected to ``key`` by dependsOn, either way; all a plan for ``key`` can depend on."""
        namespace = key[0]
        names = connected(
            key[1],
            lambda name: depends_on_name(self.objects.get((namespace, name))),
            lambda name: self._dependents.get((namespace, name), ()),
        )
        return {(namespace, name) for name in names if (namespace, name) in self.objects}

    def job_seen(self, body: Mapping[str, Any], deleted: bool, force: bool = False) -> None:
        """A Job event: refresh the cache and wake the Job's owner and the objects that depend on it."""
        state = job_state_from_body(body)
        if state is None:
            return
        key = (state.namespace, state.name)
        owner = (state.namespace, state.owner)
        version = (body.get("metadata") or {}).get("resourceVersion")
        if not force and not self._is_news(self._job_versions, "jobs", key, version, deleted):
            return
        if deleted:
            self._job_versions.pop(key, None)
        elif isinstance(version, str):
            self._job_versions[key] = version
            self._jobs_known_absent.discard(key)
        if deleted:
            self.jobs.pop(key, None)
            self._jobs_by_owner[owner].discard(state.name)
        else:
            previous = self.jobs.get(key)
            if previous is not None and previous.phase == state.phase and previous.deleting == state.deleting:
                return  # nothing the plan looks at has changed (and any failure detail stays)
            self.jobs[key] = state
            self._jobs_by_owner[owner].add(state.name)
            if state.phase is JobPhase.FAILED:
                # Why it failed is in its pod's termination message; fetch it, then wake the owner again.
                task = asyncio.get_running_loop().create_task(self._add_failure_detail(state))
                self._background.add(task)
                task.add_done_callback(self._background.discard)
        # The owner records the outcome; its dependents may be waiting for exactly this outcome.
        self.wakeups.request(owner)
        for dependent in self._dependents.get(owner, ()):
            self.wakeups.request((state.namespace, dependent))

    # ------------------------------------------------------------------------------------------ listing

    async def sync_caches(self) -> None:
        """List every ScheduledDeployment and Sundial Job in scope and merge them into the caches.

        Called each time this replica becomes active, before any wake-up is served; `synced` says it is
        done. Items newer in the cache than in the listing (a watch event that overtook it) are kept;
        cached items the listing lacks and that are older than it are gone, and are dropped.
        """
        self.synced = False
        objects, objects_version = await self._list_all(self._list_objects_page)
        jobs, jobs_version = await self._list_all(self._list_jobs_page)
        self._merge_listing(
            "objects", objects, objects_version, self._object_versions, self.object_seen, self._cached_object
        )
        self._merge_listing("jobs", jobs, jobs_version, self._job_versions, self.job_seen, self._cached_job)
        for key in list(self.objects):
            self.wakeups.request(key)  # anything may have changed while this replica was not watching
        self.synced = True
        logger.info("caches synced: %d ScheduledDeployments, %d Jobs", len(self.objects), len(self.jobs))

    def _cached_object(self, key: Key) -> Mapping[str, Any] | None:
        return self.objects.get(key)

    def _cached_job(self, key: Key) -> Mapping[str, Any] | None:
        state = self.jobs.get(key)
        if state is None:
            return None
        # job_seen needs a body to find the owner again; the controller reference is all it reads of one.
        return {
            "metadata": {
                "namespace": state.namespace,
                "name": state.name,
                "annotations": {ANNOTATION_SCHEDULED: format_utc(state.scheduled_time)},
                "ownerReferences": [
                    {
                        "apiVersion": f"{GROUP}/{VERSION}",
                        "kind": KIND,
                        "name": state.owner,
                        "uid": state.owner_uid,
                        "controller": True,
                    }
                ],
            }
        }

    def _merge_listing(
        self,
        kind: str,
        items: list[dict[str, Any]],
        version: str | None,
        versions: dict[Key, str],
        seen: Callable[..., None],
        cached: Callable[[Key], Mapping[str, Any] | None],
    ) -> None:
        listed: set[Key] = set()
        for item in items:
            metadata = item.get("metadata") or {}
            listed.add((metadata.get("namespace", ""), metadata.get("name", "")))
            seen(item, False)
        for key in [key for key in versions if key not in listed]:
            if version is None or resource_version_older(versions[key], version):
                body = cached(key)
                versions.pop(key, None)
                if body is not None:
                    seen(body, True, force=True)
        if version is not None:
            self._listed_versions[kind] = version

    async def _list_all(
        self, page: Callable[[str, str | None], dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Every item in scope, page by page; and the oldest collection resourceVersion among the lists."""
        items: list[dict[str, Any]] = []
        versions: list[str] = []
        for namespace in self._namespaces or ("",):
            token: str | None = None
            while True:
                raw = await self._call(page, namespace, token)
                items.extend(raw.get("items") or [])
                metadata = raw.get("metadata") or {}
                token = metadata.get("continue") or None
                if token is None:
                    versions.append(str(metadata.get("resourceVersion") or ""))
                    break
        known = [v for v in versions if v.isdigit()]
        return items, (min(known, key=int) if known and len(known) == len(versions) else None)

    def _list_objects_page(self, namespace: str, token: str | None, **kwargs: Any) -> dict[str, Any]:
        args = {"limit": LIST_PAGE_SIZE, **({"_continue": token} if token else {}), **kwargs}
        if namespace:
            fn: Callable[..., Any] = self._custom.list_namespaced_custom_object
            raw = self._raw(fn, GROUP, VERSION, namespace, PLURAL, **args)
        else:
            fn = self._custom.list_cluster_custom_object
            raw = self._raw(fn, GROUP, VERSION, PLURAL, **args)
        return cast(dict[str, Any], json.loads(raw))

    def _list_jobs_page(self, namespace: str, token: str | None, **kwargs: Any) -> dict[str, Any]:
        args = {
            "limit": LIST_PAGE_SIZE,
            "label_selector": f"{MANAGED_BY}={MANAGER}",
            **({"_continue": token} if token else {}),
            **kwargs,
        }
        if namespace:
            raw = self._raw(self._batch.list_namespaced_job, namespace, **args)
        else:
            raw = self._raw(self._batch.list_job_for_all_namespaces, **args)
        return cast(dict[str, Any], json.loads(raw))

    async def _confirm_jobs(self, body: Mapping[str, Any]) -> None:
        """Look up, by name, any Job this object's status says is running but the cache lacks.

        The listing makes the cache complete, so this should find nothing; it is the second opinion that
        concurrency decisions (Forbid, Replace, a manual run's refusal) and the run history rest on, so that
        even a cache that missed a Job cannot make them wrong. A Job found gone is remembered as such.
        """
        namespace = body["metadata"]["namespace"]
        raw_status = body.get("status")
        status: Mapping[str, Any] = raw_status if isinstance(raw_status, Mapping) else {}
        named = [
            entry.get("name") for entry in (status.get("active") or []) if isinstance(entry, Mapping)
        ] + [
            run.get("jobName")
            for run in (status.get("runs") or [])
            if isinstance(run, Mapping) and run.get("result") == "Running"
        ]
        for name in dict.fromkeys(n for n in named if isinstance(n, str) and n):
            key = (namespace, name)
            if key in self.jobs or key in self._jobs_known_absent:
                continue
            try:
                raw = await self._call(self._raw, self._batch.read_namespaced_job, name, namespace)
            except ApiException as error:
                if error.status != 404:
                    raise
                self._jobs_known_absent.add(key)
                continue
            self.job_seen(json.loads(raw), deleted=False)

    async def _add_failure_detail(self, state: JobState) -> None:
        try:
            pods = await self._call(
                self._core.list_namespaced_pod, state.namespace, label_selector=f"job-name={state.name}"
            )
        except ApiException as error:
            logger.warning("could not read the pods of failed Job %s: %s", state.name, _api_message(error))
            return
        raw = self.api_client.sanitize_for_serialization(pods)
        detail = failure_detail(raw.get("items") or [])
        if detail is None:
            return
        reason, message = detail
        key = (state.namespace, state.name)
        current = self.jobs.get(key)
        if current is not None and current.phase is JobPhase.FAILED:
            self.jobs[key] = replace(current, reason=reason, message=message)
            self.wakeups.request((state.namespace, state.owner))

    async def _missing_account(self, body: Mapping[str, Any]) -> str | None:
        spec = body.get("spec")
        if not isinstance(spec, Mapping):
            return None
        account = effective_service_account(spec)
        return account if await self.service_account_missing(body["metadata"]["namespace"], account) else None

    async def service_account_missing(self, namespace: str, name: str) -> bool:
        """Whether the deploy Job's service account is absent; answers are cached briefly."""
        now = self._clock()
        cached = self._service_accounts.get((namespace, name))
        if cached is not None and cached[1] > now:
            return not cached[0]
        try:
            await self._call(self._core.read_namespaced_service_account, name, namespace)
            exists = True
        except ApiException as error:
            if error.status != 404:
                return False  # unknown: do not claim it is missing
            exists = False
        # A present account is rechecked rarely; a missing one soon, so creating it clears the error fast.
        self._service_accounts[(namespace, name)] = (exists, now + (300 if exists else 5))
        return not exists

    # ------------------------------------------------------------------------------------------ reconcile

    def _world(
        self,
        body: Mapping[str, Any],
        now: datetime,
        extra_jobs: Iterable[JobState] = (),
        failures: Iterable[CreateFailure] = (),
        missing_service_account: str | None = None,
    ) -> World:
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        members = self.component((namespace, name)) | {(namespace, name)}
        siblings = {
            member: self.objects[(namespace, member)]
            for _, member in members
            if (namespace, member) in self.objects
        }
        siblings[name] = dict(body)
        jobs = {
            job: self.jobs[(namespace, job)]
            for _, member in members
            for job in self._jobs_by_owner.get((namespace, member), ())
            if (namespace, job) in self.jobs
        }
        for state in extra_jobs:
            jobs[state.name] = state
        return World(
            now=now,
            body=body,
            siblings=siblings,
            jobs=jobs,
            create_failures=tuple(failures),
            missing_service_account=missing_service_account,
        )

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    async def reconcile_key(self, key: Key) -> float | None:
        body = self.objects.get(key)
        if body is None:
            return None
        if not self.synced:
            # Never plan from a half-read world; the listing wakes every object again when it is done.
            return None
        try:
            return await self._reconcile(key, body)
        except PlanningError as error:
            await self._report_internal_error(key, error)
            raise

    @staticmethod
    def _plan(world: World) -> Plan:
        """The pure decision, with anything it raises marked as a bug in planning (not an API failure)."""
        try:
            if FAULT_PLAN_RAISES_FOR is not None and world.body["metadata"]["name"] == FAULT_PLAN_RAISES_FOR:
                raise RuntimeError("injected planning fault (SUNDIAL_FAULT_PLAN_RAISES_FOR)")
            return reconcile(world)
        except Exception as error:
            raise PlanningError(f"{type(error).__name__}: {error}") from error

    async def _report_internal_error(self, key: Key, error: PlanningError) -> None:
        body = self.objects.get(key)
        if body is None:
            return
        plan = internal_error_plan(body, self._now(), str(error))
        if await self._write_status(key, body, plan):
            await self._post_events(body, plan.events)

    async def _reconcile(self, key: Key, body: Mapping[str, Any]) -> float | None:
        await self._confirm_jobs(body)
        missing = await self._missing_account(body)
        plan = self._plan(self._world(body, self._now(), missing_service_account=missing))
        if plan.create or plan.delete:
            fresh = await self._read(key)
            if fresh is None:
                return None
            if fresh["metadata"].get("resourceVersion") != body["metadata"].get("resourceVersion"):
                plan = self._plan(self._world(fresh, self._now(), missing_service_account=missing))
            body = fresh
            # A Job's fired time is when it was created (its lateness is measured by it): after the read.
            fired = self._now()
            plan = replace(plan, create=tuple(replace(run, fired_time=fired) for run in plan.create))
            created, failures = await self._create_jobs(body, plan)
            await self._delete_jobs(body["metadata"]["namespace"], plan.delete)
            try:
                plan = record_outcomes(plan, created, failures, self._now())
            except Exception as error:
                raise PlanningError(f"{type(error).__name__}: {error}") from error
        if not await self._write_status(key, body, plan):
            return self._clock()  # somebody else wrote first: plan again from what they wrote
        await self._post_events(body, plan.events)
        return None if plan.wake_at is None else plan.wake_at.timestamp()

    async def _read(self, key: Key) -> dict[str, Any] | None:
        try:
            body: dict[str, Any] = cast(
                dict[str, Any],
                await self._fire_call(
                    self._custom.get_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    key[0],
                    PLURAL,
                    key[1],
                ),
            )
        except ApiException as error:
            if error.status == 404:
                self.objects.pop(key, None)
                return None
            raise
        self.objects[key] = body
        self._object_versions[key] = body["metadata"]["resourceVersion"]
        return body

    async def _create_jobs(
        self, body: Mapping[str, Any], plan: Plan
    ) -> tuple[list[JobState], list[CreateFailure]]:
        created: list[JobState] = []
        failures: list[CreateFailure] = []
        namespace = body["metadata"]["namespace"]
        for run in plan.create:
            if not self.may_fire():
                raise asyncio.CancelledError("this replica is no longer the active one")
            manifest = build_job(body, run, self._settings.deployer_image)
            try:
                # Raw JSON back, not the client's model objects: building a V1Job costs milliseconds of CPU
                # under the GIL, on the path between the instant and the next object's Job.
                raw = await self._fire_call(self._raw, self._batch.create_namespaced_job, namespace, manifest)
                created_body = json.loads(raw)
                state = job_state_from_body(created_body)
                version = created_body.get("metadata", {}).get("resourceVersion")
                if state is not None and isinstance(version, str):
                    self._job_versions[(namespace, state.name)] = version
                self.metrics.job_created(
                    run.role, run.scheduled_time, run.fired_time, manual=run.trigger is not None
                )
                logger.info(
                    "fired %s/%s for %s (%s)",
                    namespace,
                    run.job_name,
                    format_utc(run.scheduled_time),
                    run.role,
                )
                if FAULT_EXIT_AFTER_JOB_CREATE:
                    os._exit(FAULT_EXIT_CODE)
            except ApiException as error:
                if error.status in RETRYABLE:
                    self.metrics.fire_api_error(error.status)
                    raise  # the wake-up queue tries this object again shortly; nothing is recorded yet
                state = await self._existing_job_if_ours(body, run.job_name) if error.status == 409 else None
                if state is None:
                    self.metrics.fire_api_error(error.status)
                    failures.append(
                        CreateFailure(run=run, reason=_api_reason(error), message=_api_message(error))
                    )
                    logger.warning("could not create %s/%s: %s", namespace, run.job_name, _api_message(error))
                    continue
            except Exception:
                self.metrics.fire_api_error(None)  # no answer at all: a timeout, a refused connection
                raise
            if state is not None:
                created.append(state)
                self.jobs[(namespace, state.name)] = state
                self._jobs_by_owner[(namespace, state.owner)].add(state.name)
        return created, failures

    async def _existing_job_if_ours(self, body: Mapping[str, Any], name: str) -> JobState | None:
        """AlreadyExists is the lock working: success if the Job is ours, a conflict otherwise."""
        namespace = body["metadata"]["namespace"]
        existing = await self._call(self._batch.read_namespaced_job, name, namespace)
        raw = self.api_client.sanitize_for_serialization(existing)
        state = job_state_from_body(raw)
        return state if state is not None and state.owner_uid == body["metadata"]["uid"] else None

    async def _delete_jobs(self, namespace: str, names: Iterable[str]) -> None:
        for name in names:
            try:
                await self._call(
                    self._batch.delete_namespaced_job, name, namespace, propagation_policy="Background"
                )
            except ApiException as error:
                if error.status != 404:
                    raise

    async def _write_status(self, key: Key, body: Mapping[str, Any], plan: Plan) -> bool:
        if plan.status == (body.get("status") or {}):
            return True
        patch = {
            # The precondition: if the object changed since we read it, the API answers 409 and we re-plan.
            "metadata": {"resourceVersion": body["metadata"]["resourceVersion"]},
            # A merge patch replaces lists whole (conditions, runs) and we always send them whole; keys
            # that the new status drops are sent as null so that they are removed.
            "status": {
                **{k: None for k in (body.get("status") or {}) if k not in plan.status},
                **plan.status,
            },
        }
        try:
            result = cast(
                dict[str, Any],
                await self._call(
                    self._custom.patch_namespaced_custom_object_status,
                    GROUP,
                    VERSION,
                    key[0],
                    PLURAL,
                    key[1],
                    patch,
                ),
            )
        except ApiException as error:
            if error.status == 409:
                self.objects.pop(key, None)
                await self._read(key)
                return False
            if error.status == 404:
                return True
            raise
        self.objects[key] = result
        self._object_versions[key] = result["metadata"]["resourceVersion"]
        # Counted here, once: this write (guarded by resourceVersion) is what made the transitions happen.
        self.metrics.record_transitions(body.get("status"), plan.status)
        self._note_validity(key, plan.status)
        return True

    async def _post_events(self, body: Mapping[str, Any], events: Iterable[Event]) -> None:
        for event in events:
            await self.post_event(body, event)

    async def post_event(self, body: Mapping[str, Any], event: Event) -> None:
        metadata = body["metadata"]
        now = self._now()
        manifest = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{metadata['name'][:200]}.{secrets.token_hex(8)}",
                "namespace": metadata["namespace"],
            },
            "involvedObject": {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": KIND,
                "name": metadata["name"],
                "namespace": metadata["namespace"],
                "uid": metadata["uid"],
                "resourceVersion": metadata.get("resourceVersion"),
            },
            "type": event.type,
            "reason": event.reason,
            "message": event.message[:1024],
            "source": {"component": "sundial"},
            "reportingComponent": "sundial.dev/operator",
            "reportingInstance": "sundial",
            "firstTimestamp": format_utc(now),
            "lastTimestamp": format_utc(now),
            "count": 1,
        }
        try:
            await self._call(self._raw, self._core.create_namespaced_event, metadata["namespace"], manifest)
        except ApiException as error:
            # An Event is a courtesy; failing to post one must not stop the run it describes.
            logger.warning(
                "could not post event %s on %s/%s: %s",
                event.reason,
                metadata["namespace"],
                metadata["name"],
                _api_message(error),
            )


def is_outage(error: Exception) -> bool:
    """An error that says the API server is unreachable, overloaded or slow, not that our code is wrong."""
    if isinstance(error, ApiException):
        return error.status in RETRYABLE or error.status == 0
    return isinstance(error, urllib3.exceptions.HTTPError | OSError)


def _api_reason(error: ApiException) -> str:
    return {403: "Forbidden", 404: "NotFound", 409: "AlreadyExists", 422: "Invalid"}.get(
        error.status, "ApiError"
    )


def _api_message(error: ApiException) -> str:
    try:
        return str(json.loads(error.body or "").get("message") or error.reason)
    except (TypeError, ValueError, AttributeError):
        return f"{error.status} {error.reason}"
