"""The operator's I/O: the wake-up queue and the API calls a plan asks for, fed by the caches.

Every decision is made by the pure `sundial.decide.reconcile.reconcile`; this module only gathers its inputs
and carries out its output, in this order, which is what makes a crash at any point safe:

1. Plan from the cached object. If the plan creates and deletes no Job, hand its status to the writer and
   stop.
2. Otherwise read the object fresh (it may have been deleted or changed since the watch told us; the reads
   of a burst are grouped, `sundial.runtime.freshreads`) and, only if it changed, plan again from that.
   Create each Job under its deterministic name; AlreadyExists on a Job we own is success.
3. Record what was done in the plan (`record_outcomes`: the runs the new Jobs start, the API's refusals),
   without deciding again, and ask to be woken at the plan's next instant. The status (written with the
   object's resourceVersion as a precondition, so a concurrent writer makes us re-plan rather than
   overwrite) and the Events follow through `sundial.runtime.statuswriter`, behind the Job creates of
   other objects. A plan with a refused create is written here and now, since no Job records it; so is a
   plan that deletes Jobs, before it deletes them, since until then a Job is its run's only record.

Two classes of request share a client budget (`sundial.runtime.ratelimit`): the fire path's (fresh reads,
Job creates and deletes) go first, bookkeeping (status, Events, lookups) takes what they leave.

Nothing is planned from a half-read world: `sundial.runtime.cache` owns the objects and Jobs this replica
knows and the signal that its listing is complete (``cache.synced``), and no wake-up is served before it.
The informer (`sundial.runtime.informer`) feeds the cache on every replica; Jobs are created only while the
active replica has said this controller may fire (`fire_while`), and a replica that becomes active re-plans
every object, soonest persisted ``status.nextRunTime`` first (`rearm`).

A crash between 2 and the status write leaves a Job without a status record; the next reconcile finds the
Job (by label, through the watch) and records it from the Job's own annotations. A second replica that acts
at the same moment gets AlreadyExists. So a run is never created twice and never left unrecorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from sundial.api.keys import GROUP, PLURAL, VERSION
from sundial.api.timestamps import format_utc
from sundial.decide.events import build_event
from sundial.decide.jobs import build_job
from sundial.decide.observe import job_state_from_body, mapping, plan_view
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
from sundial.decide.refusals import refusal_check_due
from sundial.decide.validation import VerdictMemo
from sundial.runtime.apierrors import RETRYABLE, api_message, api_reason, is_outage
from sundial.runtime.cache import APPROVALS, FREEZE_KINDS, JOBS, OBJECTS, Cache, Changes, Key
from sundial.runtime.calendars import CalendarReader
from sundial.runtime.freezestatus import FreezeStatusKeeper
from sundial.runtime.freshreads import LIST_PAGE, FreshReads, Page
from sundial.runtime.kubeclient import raw_body
from sundial.runtime.lookups import Lookups
from sundial.runtime.metrics import Metrics
from sundial.runtime.ratelimit import TokenBucket
from sundial.runtime.statuswriter import StatusWriter
from sundial.runtime.wakeups import WakeupQueue

logger = logging.getLogger("sundial.runtime.controller")

T = TypeVar("T")


UNPLANNED_AS_DUE_IN = timedelta(seconds=30)
"""When a replica takes over, an object never planned (no persisted next run) is planned as if due this
soon: after the objects known to be due sooner, before the rest. Measured at 10,000 objects: with the
never-planned first, a take-over in the middle of a mass creation planned 7,000 of them before runs known
to be due within seconds, which fired 10 s late (bench/README.md)."""


def persisted_next_run(body: Mapping[str, Any], unplanned: str) -> tuple[str, bool]:
    """Sort key, soonest first: the earlier of ``status.nextRunTime`` and ``status.nextDependencyRunTime``
    (RFC 3339 in UTC, whole seconds, so their text sorts as their time does), or ``unplanned`` (the same
    format) for an object that has neither."""
    status = body.get("status")
    instants = (
        [status.get(k) for k in ("nextRunTime", "nextDependencyRunTime")]
        if isinstance(status, Mapping)
        else []
    )
    known = [instant for instant in instants if isinstance(instant, str) and instant]
    return (min(known), False) if known else (unplanned, True)


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


class PlanningError(Exception):
    """The pure reconcile raised for one object: a bug, reported on that object and retried with backoff."""


@dataclass
class ControllerSettings:
    deployer_image: str
    """The built-in targets' deploy Job image; `sundial run` takes it from SUNDIAL_DEPLOYER_IMAGE."""
    writes_cluster_freezes: bool = True
    """Whether this replica writes the ClusterReleaseFreezes' status (shard 0 does, of several)."""
    api_threads: int = 8
    """Threads for the calls on the path to a Job (reading the object fresh, creating the Job). As many again
    serve everything else (status, Events, lookups), so that bookkeeping never queues in front of a fire.
    Measured: 32 threads per pool were slower than 8 (GIL contention starves the event loop)."""


def _never() -> bool:
    return False


class Controller:
    def __init__(
        self,
        api_client: Any,
        settings: ControllerSettings,
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
        fire_api_client: Any | None = None,
        rate_limit: TokenBucket | None = None,
    ) -> None:
        """The caches are fed from outside (`listed`, `seen`: the informer, `sundial.runtime.informer`).

        ``fire_api_client`` serves the fire path (fresh reads, Job creates and deletes) and ``api_client``
        the bookkeeping; under a budget (``rate_limit``, the bucket both clients take tokens of their class
        from) fresh reads are grouped to save requests and bookkeeping waits while a fire is under way. One
        client for both when omitted."""
        self._rate_limit = rate_limit
        self.api_client = api_client
        self.metrics = metrics or Metrics.create(runtime_collectors=False)
        self._custom = client.CustomObjectsApi(api_client)
        self._batch = client.BatchV1Api(api_client)
        self._core = client.CoreV1Api(api_client)
        fire_client = api_client if fire_api_client is None else fire_api_client
        self._custom_fire = client.CustomObjectsApi(fire_client)
        self._batch_fire = client.BatchV1Api(fire_client)
        self._settings = settings
        self._clock = clock
        self._fire_executor = ThreadPoolExecutor(settings.api_threads, thread_name_prefix="sundial-fire")
        self._executor = ThreadPoolExecutor(settings.api_threads, thread_name_prefix="sundial-api")
        self.cache = Cache()
        self.caches_synced = asyncio.Event()
        """Set once every source has been listed (`mark_synced`): the active replica waits for it."""
        self.verdicts = VerdictMemo()
        """Verdicts of objects and their dependency components, computed once per change of their specs."""
        self.wakeups: WakeupQueue[Key] = WakeupQueue(self.reconcile_key, clock=clock, transient=is_outage)
        self.metrics.watch_armed(lambda: len(self.wakeups))
        self.metrics.watch_invalid(lambda: len(self.cache.invalid))
        self.metrics.watch_waiting(self.cache.waiting_for)
        self.metrics.watch_freezes(self.cache.active_freezes)
        self._background: set[asyncio.Task[None]] = set()
        self._allowed_to_fire: Callable[[], bool] = _never
        self._replanning: set[Key] = set()
        """Objects not yet planned since this replica became active (`rearm`)."""
        self._replanning_since = 0.0
        self._replanning_count = 0
        self.lookups = Lookups(self._call, self._core, clock)
        self.fresh_reads = FreshReads(
            lambda namespace, name: self._get_object((namespace, name), self._fire_call, self._custom_fire),
            self._list_page,
            lambda namespace: self.cache.objects_in_namespace[namespace],
            budgeted=rate_limit is not None,
        )
        self.status_writer = StatusWriter(
            lambda key, body, plan: self._write_status(key, body, plan),
            lambda body, events: self._post_events(body, events),
            replan=lambda key, at: self.wakeups.request(key, at),
            cached_version=self.cache.object_versions.get,
            is_outage=is_outage,
            clock=clock,
        )
        self.metrics.watch_status_writes(lambda: len(self.status_writer))
        self.calendars = CalendarReader(self.cache, api_client, self._call, self._follow)
        self.freeze_status = FreezeStatusKeeper(
            self.cache, api_client, self._call, clock, writes_cluster_freezes=settings.writes_cluster_freezes
        )

    def close(self) -> None:
        self.status_writer.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._fire_executor.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------------------------------ firing

    def fire_while(self, allowed: Callable[[], bool]) -> None:
        """This replica is the active one: create Jobs as long as ``allowed()`` says so.

        ``allowed`` is asked right before each Job is created. kopf can take seconds to cancel a busy daemon
        after it pauses this replica; asking its stop flag lets the pause stop Job creation at once rather
        than when the task ends.
        """
        self._allowed_to_fire = allowed

    def stand_down(self) -> None:
        """This replica is no longer the active one: create no Job. Its caches stay as warm as the informer
        keeps them; whatever it did not finish is re-planned by the replica that takes over."""
        self._allowed_to_fire = _never
        self.status_writer.drop()

    def rearm(self) -> int:
        """This replica has just become active: plan every object again, the soonest due first.

        The wake-ups a standby collected say nothing of order, and reconciling 10,000 objects takes seconds,
        so they are replaced: objects whose persisted ``status.nextRunTime`` (the plan the previous active
        replica wrote) is soonest are planned first; one that has none yet counts as due in
        `UNPLANNED_AS_DUE_IN`. A run due a few seconds after a take-over is therefore planned, and fired,
        on time, while the rest are validated behind it.
        """
        self.wakeups.clear()
        unplanned = format_utc(self._now() + UNPLANNED_AS_DUE_IN)
        objects = self.cache.objects
        # A backlog, not 10,000 wake-ups at "now": a run that falls due while it is served goes first.
        self.wakeups.request_backlog(
            sorted(objects, key=lambda key: persisted_next_run(objects[key], unplanned))
        )
        self.freeze_status.request_all()
        self._replanning = set(self.cache.objects)
        self._replanning_since = time.monotonic()
        self._replanning_count = len(self._replanning)
        return len(self.cache.objects)

    def _planned_once(self, key: Key) -> None:
        """One more object has been through a plan since `rearm`; say so when the last one has (operators
        and bench/failover.py read the moment every object is armed again from this line)."""
        if key not in self._replanning:
            return
        self._replanning.discard(key)
        if not self._replanning:
            logger.info(
                "re-planned all %d objects %.2f s after this replica became active",
                self._replanning_count,
                time.monotonic() - self._replanning_since,
            )

    def may_fire(self) -> bool:
        return self._allowed_to_fire()

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, lambda: fn(*args, _request_timeout=API_TIMEOUT, **kwargs)
        )

    async def _fire_call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A call on the path between an instant and its Job: served by threads of its own."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._fire_executor, lambda: fn(*args, _request_timeout=FIRE_TIMEOUT, **kwargs)
        )

    async def _list_page(self, namespace: str, token: str | None) -> Page:
        """One page of a fresh LIST of ScheduledDeployments in ``namespace`` (parsed off the event loop)."""

        def page() -> Page:
            arguments: dict[str, Any] = {"limit": LIST_PAGE, "_request_timeout": FIRE_TIMEOUT}
            if token:
                arguments["_continue"] = token
            objects = self._custom_fire.list_namespaced_custom_object
            raw = raw_body(objects, GROUP, VERSION, namespace, PLURAL, **arguments)
            return cast(Page, json.loads(raw))

        return await asyncio.get_running_loop().run_in_executor(self._fire_executor, page)

    # ------------------------------------------------------------------------------------------ cache side

    def object_seen(self, body: Mapping[str, Any], deleted: bool) -> None:
        """A ScheduledDeployment event: into the cache, and wake every object whose plan it can change."""
        self._follow(self.cache.object_seen(body, deleted))

    def job_seen(self, body: Mapping[str, Any], deleted: bool) -> None:
        """A Job event: into the cache, and wake the Job's owner and the objects that depend on it."""
        self._follow(self.cache.job_seen(body, deleted))

    def seen(self, kind: str, body: Mapping[str, Any], deleted: bool) -> None:
        """A watch event from the informer."""
        if kind == OBJECTS:
            self.object_seen(body, deleted)
        elif kind == JOBS:
            self.job_seen(body, deleted)
        elif kind in FREEZE_KINDS:
            self._follow(self.cache.freeze_seen(kind, body, deleted))
        elif kind == APPROVALS:
            self._follow(self.cache.approval_seen(body, deleted))

    def listed(self, kind: str, namespace: str, items: list[dict[str, Any]], version: str | None) -> None:
        """A complete listing of one source from the informer (see `Cache.merge_listing`)."""
        self._follow(self.cache.merge_listing(kind, namespace, items, version))

    def mark_synced(self) -> None:
        """Every source has been listed once: plans may be made from the caches from now on."""
        self.cache.synced = True
        self.caches_synced.set()
        logger.info(
            "caches synced: %d ScheduledDeployments, %d Jobs", len(self.cache.objects), len(self.cache.jobs)
        )

    def _follow(self, changes: Changes) -> None:
        """Do what a cache update asks: wake the objects it concerns (forget the ones gone), and read why
        each newly failed Job failed."""
        for key in changes.wake:
            if key in self.cache.objects:
                self.wakeups.request(key)
            else:
                self.wakeups.forget(key)
                self._planned_once(key)  # gone: nothing left to plan
        for state in changes.failed:
            # Why it failed is in its pod's termination message; fetch it, then wake the owner again.
            task = asyncio.get_running_loop().create_task(self._add_failure_detail(state))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        for freeze in changes.freezes:
            self.freeze_status.request(freeze)
        if changes.freezes:
            self.calendars.read_new()  # a freeze that names a calendar not read yet

    async def _confirm_jobs(self, body: Mapping[str, Any]) -> None:
        """Look up, by name, any Job this object's status says is running but the cache lacks (see
        `Cache.running_jobs_to_confirm`). A Job found gone is remembered as such."""
        namespace = body["metadata"]["namespace"]
        for name in self.cache.running_jobs_to_confirm(body):
            try:
                raw = await self._call(raw_body, self._batch.read_namespaced_job, name, namespace)
            except ApiException as error:
                if error.status != 404:
                    raise
                self.cache.jobs_known_absent.add((namespace, name))
                continue
            self.job_seen(json.loads(raw), deleted=False)

    async def _add_failure_detail(self, state: JobState) -> None:
        detail = await self.lookups.failure_detail(state)
        if detail is None:
            return
        owner = self.cache.add_failure_detail((state.namespace, state.name), *detail)
        if owner is not None:
            self.wakeups.request(owner)

    async def _pod_refusals(self, body: Mapping[str, Any]) -> dict[str, str]:
        """The API server's refusals of the pods of this object's Jobs that have had none for too long."""
        namespace, name, uid = (body["metadata"].get(key) for key in ("namespace", "name", "uid"))
        now = self._now()
        return await self.lookups.pod_refusals(
            state
            for job in self.cache.jobs_by_owner.get((namespace, name), ())
            if (state := self.cache.jobs.get((namespace, job))) is not None
            and state.owner_uid == uid
            and refusal_check_due(state, now)
        )

    # ------------------------------------------------------------------------------------------ reconcile

    def _world(
        self,
        body: Mapping[str, Any],
        now: datetime,
        extra_jobs: Iterable[JobState] = (),
        failures: Iterable[CreateFailure] = (),
        missing_service_account: str | None = None,
        pod_refusals: Mapping[str, str] | None = None,
    ) -> World:
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        members = self.cache.component((namespace, name)) | {(namespace, name)}
        siblings = {
            member: self.cache.objects[(namespace, member)]
            for _, member in members
            if (namespace, member) in self.cache.objects
        }
        siblings[name] = dict(body)
        jobs = {
            job: self.cache.jobs[(namespace, job)]
            for _, member in members
            for job in self.cache.jobs_by_owner.get((namespace, member), ())
            if (namespace, job) in self.cache.jobs
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
            pod_refusals=pod_refusals or {},
            gone_jobs=self.cache.gone_jobs_of(body),
            freezes=self.cache.freezes_for(namespace),
            approvals=self.cache.approvals_for(namespace, siblings),
            verdicts=self.verdicts,
        )

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    async def reconcile_key(self, key: Key) -> float | None:
        body = self.cache.objects.get(key)
        if body is None:
            return None
        if not self.cache.synced:
            # Never plan from a half-read world; the active replica re-plans every object once it is synced.
            return None
        try:
            return await self._reconcile(key, body)
        except PlanningError as error:
            await self._report_internal_error(key, error)
            raise
        finally:
            self._planned_once(key)

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
        body = self.cache.objects.get(key)
        if body is None:
            return
        plan = internal_error_plan(body, self._now(), str(error))
        if await self._write_status(key, body, plan):
            await self._post_events(body, plan.events)

    async def _reconcile(self, key: Key, body: Mapping[str, Any]) -> float | None:
        await self._confirm_jobs(body)
        missing = await self.lookups.missing_account(body)
        refusals = await self._pod_refusals(body)
        plan = self._plan(
            self._world(body, self._now(), missing_service_account=missing, pod_refusals=refusals)
        )
        if plan.create:
            with self._firing():
                fresh = await self._read(key, fresh=True)
                if fresh is None:
                    return None
                # A Job's fired time is when it was created (its lateness is measured by it): after the read.
                fired = self._now()
                if fresh["metadata"].get("resourceVersion") != body["metadata"].get("resourceVersion") or any(
                    run.start_by is not None and fired > run.start_by for run in plan.create
                ):
                    # New input, or the read took so long (an API server restarting) that a run's deadline
                    # passed meanwhile: decide again, at this instant, rather than create a Job too late.
                    plan = self._plan(
                        self._world(fresh, fired, missing_service_account=missing, pod_refusals=refusals)
                    )
                body = fresh
                plan = replace(plan, create=tuple(replace(run, fired_time=fired) for run in plan.create))
                created, failures = await self._create_jobs(body, plan)
        else:
            created, failures = [], []
        if plan.create or plan.delete:
            try:
                plan = record_outcomes(plan, created, failures, self._now())
            except Exception as error:
                raise PlanningError(f"{type(error).__name__}: {error}") from error
        if failures or plan.delete:
            # Written here, before anything else can plan over it: a refused create is recorded by nothing
            # but this plan, and a Job about to be deleted (pruned, cancelled, its pod refused) is the only
            # record of its run until a status holds it. Deleted first, a plan made from the older status
            # would see the run without its Job: left Running for ever, or not run at all and fired again.
            # The write's resourceVersion precondition also stands for a fresh read: the Jobs are deleted
            # only for the object as it was planned.
            if not await self._write_status(key, body, plan):
                return self._clock()  # somebody else wrote first: plan again from what they wrote
            if plan.delete:
                with self._firing():
                    await self._delete_jobs(body["metadata"]["namespace"], plan.delete)
            await self._post_events(body, plan.events)
            return None if plan.wake_at is None else plan.wake_at.timestamp()
        self.status_writer.submit(key, body, plan)
        return None if plan.wake_at is None else plan.wake_at.timestamp()

    def _firing(self) -> contextlib.AbstractContextManager[None]:
        """Bookkeeping waits for the budget's tokens while this fire is under way (`TokenBucket.firing`)."""
        return contextlib.nullcontext() if self._rate_limit is None else self._rate_limit.firing()

    async def _get_object(
        self, key: Key, call: Callable[..., Awaitable[Any]], api: client.CustomObjectsApi
    ) -> dict[str, Any] | None:
        """The object as the API server has it, or None when it does not exist."""
        try:
            return cast(
                dict[str, Any],
                await call(api.get_namespaced_custom_object, GROUP, VERSION, key[0], PLURAL, key[1]),
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    async def _read(self, key: Key, *, fresh: bool = False) -> dict[str, Any] | None:
        """Read the object into the cache and return its view, or None when it is gone. ``fresh``: on the
        fire path, from a request sent after this call (grouped with other objects' reads, fire-class);
        otherwise a bookkeeping GET."""
        if fresh:
            body = await self.fresh_reads.read(*key)
        else:
            body = await self._get_object(key, self._call, self._custom)
        if body is None:
            self._follow(self.cache.forget_object(key))
            return None
        view = plan_view(body)  # planned from what the cache holds, so both plans agree; cut once
        self._follow(self.cache.store(view))
        return view

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
                raw = await self._fire_call(
                    raw_body, self._batch_fire.create_namespaced_job, namespace, manifest
                )
                created_body = json.loads(raw)
                state = job_state_from_body(created_body)
                if state is not None:
                    self.cache.job_created(state, created_body.get("metadata", {}).get("resourceVersion"))
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
                        CreateFailure(run=run, reason=api_reason(error), message=api_message(error))
                    )
                    logger.warning("could not create %s/%s: %s", namespace, run.job_name, api_message(error))
                    continue
            except Exception:
                self.metrics.fire_api_error(None)  # no answer at all: a timeout, a refused connection
                raise
            if state is not None:
                created.append(state)
        return created, failures

    async def _existing_job_if_ours(self, body: Mapping[str, Any], name: str) -> JobState | None:
        """AlreadyExists is the lock working: success if the Job is ours, a conflict otherwise."""
        namespace = body["metadata"]["namespace"]
        existing = json.loads(
            await self._fire_call(raw_body, self._batch_fire.read_namespaced_job, name, namespace)
        )
        state = job_state_from_body(existing)
        if state is None or state.owner_uid != body["metadata"]["uid"]:
            return None
        self.cache.job_created(state, mapping(existing.get("metadata")).get("resourceVersion"))
        return state

    async def _delete_jobs(self, namespace: str, names: Iterable[str]) -> None:
        for name in names:
            try:
                await self._fire_call(
                    self._batch_fire.delete_namespaced_job, name, namespace, propagation_policy="Background"
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
                await self._read(key)  # the newer copy, so that the next plan starts from it
                return False
            if error.status == 404:
                return True
            raise
        self._follow(self.cache.store(result))
        # Counted here, once: this write (guarded by resourceVersion) is what made the transitions happen.
        self.metrics.record_transitions(body.get("status"), plan.status)
        return True

    async def _post_events(self, body: Mapping[str, Any], events: Iterable[Event]) -> None:
        for event in events:
            await self.post_event(body, event)

    async def post_event(self, body: Mapping[str, Any], event: Event) -> None:
        metadata = body["metadata"]
        manifest = build_event(body, event, self._now(), unique=secrets.token_hex(8))
        try:
            await self._call(raw_body, self._core.create_namespaced_event, metadata["namespace"], manifest)
        except ApiException as error:
            # An Event is a courtesy; failing to post one must not stop the run it describes.
            logger.warning(
                "could not post event %s on %s/%s: %s",
                event.reason,
                metadata["namespace"],
                metadata["name"],
                api_message(error),
            )
