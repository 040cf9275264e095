"""The operator's I/O: caches fed by watch events, one wake-up queue, and the API calls a plan asks for.

Every decision is made by the pure `sundial.reconcile.reconcile`; this module only gathers its inputs and
carries out its output, in this order, which is what makes a crash at any point safe:

1. Plan from the cached object. If the plan creates no Job, write status and stop.
2. Otherwise read the object fresh (it may have been deleted or changed since the watch told us) and plan
   again from that. Create each Job under its deterministic name; AlreadyExists on a Job we own is success.
3. Plan once more, on top of the second plan's status, with the Jobs just created (or the API's refusal), so
   that both what was decided and what was done are recorded; write that status (with the object's
   resourceVersion as a precondition, so a concurrent writer makes us re-plan rather than overwrite), post
   Events for the transitions, and ask to be woken at the plan's next instant.

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

from sundial import jobs as jobmeta
from sundial.metrics import Metrics, is_invalid
from sundial.reconcile import (
    CreateFailure,
    Event,
    JobPhase,
    JobState,
    Plan,
    World,
    failure_detail,
    job_state_from_body,
    reconcile,
)
from sundial.wakeups import WakeupQueue

logger = logging.getLogger("sundial.controller")

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


@dataclass
class ControllerSettings:
    deployer_image: str = jobmeta.DEFAULT_DEPLOYER_IMAGE
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
    ) -> None:
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

    def object_seen(self, body: Mapping[str, Any], deleted: bool) -> None:
        """A ScheduledDeployment event: refresh the cache and wake every object whose plan it can change."""
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
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

    @staticmethod
    def _depends_on(body: Mapping[str, Any] | None) -> str | None:
        target = (((body or {}).get("spec") or {}).get("dependsOn") or {}).get("name")
        return target if isinstance(target, str) else None

    def _index_dependency(
        self, key: Key, previous: Mapping[str, Any] | None, body: Mapping[str, Any] | None
    ) -> None:
        namespace, name = key
        old, new = self._depends_on(previous), self._depends_on(body)
        if old is not None and old != new:
            self._dependents[(namespace, old)].discard(name)
        if new is not None:
            self._dependents[(namespace, new)].add(name)

    def component(self, key: Key) -> set[Key]:
        """The objects connected to ``key`` by dependsOn, either way; all a plan for ``key`` can depend on."""
        namespace = key[0]
        seen, stack = {key[1]}, [key[1]]
        while stack:
            name = stack.pop()
            neighbours = set(self._dependents.get((namespace, name), ()))
            target = self._depends_on(self.objects.get((namespace, name)))
            if target is not None:
                neighbours.add(target)
            for neighbour in neighbours - seen:
                seen.add(neighbour)
                stack.append(neighbour)
        return {(namespace, name) for name in seen if (namespace, name) in self.objects}

    def job_seen(self, body: Mapping[str, Any], deleted: bool) -> None:
        state = job_state_from_body(body)
        if state is None:
            return
        key = (state.namespace, state.name)
        owner = (state.namespace, state.owner)
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
        account = jobmeta.effective_service_account(spec)
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
        missing = await self._missing_account(body)
        plan = reconcile(self._world(body, self._now(), missing_service_account=missing))
        if plan.create or plan.delete:
            fresh = await self._read(key)
            if fresh is None:
                return None
            body = fresh
            plan = reconcile(self._world(body, self._now(), missing_service_account=missing))
            created, failures = await self._create_jobs(body, plan)
            await self._delete_jobs(body["metadata"]["namespace"], plan.delete)
            # Plan again on top of the first plan's status, so that what it recorded (missed runs, a replaced
            # Job) stands, and with the Jobs just created, so that the runs they start are recorded too.
            decided = {**body, "status": plan.status}
            first_events = plan.events
            plan = reconcile(self._world(decided, self._now(), created, failures, missing))
            plan = replace(plan, events=(*first_events, *plan.events))
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
                    jobmeta.GROUP,
                    jobmeta.VERSION,
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
            manifest = jobmeta.build_job(body, run, self._settings.deployer_image)
            try:
                # Raw JSON back, not the client's model objects: building a V1Job costs milliseconds of CPU
                # under the GIL, on the path between the instant and the next object's Job.
                raw = await self._fire_call(self._raw, self._batch.create_namespaced_job, namespace, manifest)
                state = job_state_from_body(json.loads(raw))
                self.metrics.job_created(
                    run.role, run.scheduled_time, run.fired_time, manual=run.trigger is not None
                )
                logger.info(
                    "fired %s/%s for %s (%s)",
                    namespace,
                    run.job_name,
                    jobmeta.rfc3339(run.scheduled_time),
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
        owners = raw.get("metadata", {}).get("ownerReferences") or []
        if any(o.get("uid") == body["metadata"]["uid"] for o in owners):
            return job_state_from_body(raw)
        return None

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
                    jobmeta.GROUP,
                    jobmeta.VERSION,
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
                "apiVersion": f"{jobmeta.GROUP}/{jobmeta.VERSION}",
                "kind": jobmeta.KIND,
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
            "firstTimestamp": jobmeta.rfc3339(now),
            "lastTimestamp": jobmeta.rfc3339(now),
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
