"""kopf wiring: thin adapters from kopf's events to the controller. No decisions are made here.

The one piece of kopf machinery worth explaining is the gate. Peering pauses watch streams, daemons and
timers on a standby replica, but not tasks started from ``@kopf.on.startup``. Sundial's single timer must
run only on the active replica, so it runs inside a ``@kopf.daemon`` on one singleton object, a Lease named
``sundial-scheduler``: kopf signals that daemon when the replica pauses and starts it again when the
replica resumes. The signal, not the (sometimes seconds later) cancellation, is what stops Job creation:
the controller asks ``may_fire`` before every create. While it runs, the daemon also writes the Lease's
holder and renew time, so
``kubectl get lease sundial-scheduler`` shows which replica is firing. The daemon's kopf finalizer lands on
that Lease only; ScheduledDeployments never get one (deleting them never waits for the operator).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import kopf
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from sundial.api.keys import GROUP, MANAGED_BY, MANAGER, VERSION
from sundial.decide.jobs import DEFAULT_DEPLOYER_IMAGE
from sundial.runtime.controller import PLURAL, Controller, ControllerSettings, is_outage
from sundial.runtime.kubeclient import Credentials, api_client, kopf_connection_info
from sundial.runtime.metrics import Metrics, MetricsServer
from sundial.runtime.ratelimit import TokenBucket, default_burst
from sundial.runtime.wakeups import retry_delay

logger = logging.getLogger("sundial.operator")

LEASE_NAME = "sundial-scheduler"
LEASE_RENEW_SECONDS = 10
FINALIZER = "sundial.dev/scheduler-lease"


@dataclass(frozen=True)
class OperatorOptions:
    credentials: Credentials
    namespaces: tuple[str, ...] | None
    """None: every namespace."""
    peering_name: str | None
    """None: standalone, no peering."""
    priority: int
    peering_lifetime: int
    liveness_endpoint: str | None
    lease_namespace: str
    identity: str
    kube_api_qps: float | None = None
    """None: no client-side limit on the operator's own API requests (kopf's watches are never limited)."""
    kube_api_burst: int | None = None
    metrics_bind: tuple[str, int] | None = None
    """(host, port) to serve Prometheus metrics at; None: no metrics endpoint."""


def ensure_lease(core_client: Any, namespace: str) -> None:
    """Create the singleton Lease the scheduler daemon hangs on, if no replica has yet."""
    coordination = client.CoordinationV1Api(core_client)
    body = client.V1Lease(
        metadata=client.V1ObjectMeta(name=LEASE_NAME, namespace=namespace, labels={MANAGED_BY: MANAGER}),
        spec=client.V1LeaseSpec(),
    )
    try:
        coordination.create_namespaced_lease(namespace, body)
    except ApiException as error:
        if error.status != 409:
            raise


class ActiveReplica:
    """The scheduler's life on the active replica: the wake-up loop, the Lease it signs, its heartbeat."""

    def __init__(self, options: OperatorOptions, controller: Controller, coordination: Any) -> None:
        self._options = options
        self._controller = controller
        self._coordination = coordination
        self.active = False
        self.heartbeat = time.monotonic()

    async def serve(self, stopped: kopf.DaemonStopped) -> None:
        """Run the wake-up loop until kopf stops this daemon (pause, exit or Lease deletion)."""
        identity = self._options.identity
        self.active = True
        self._controller.may_fire = lambda: not stopped
        try:
            if not await self._sync(stopped):
                return
        finally:
            if stopped:
                self.active = False
                self._controller.may_fire = lambda: False
        logger.info("this replica (%s) is active: %d objects armed", identity, len(self._controller.wakeups))
        loop_task = asyncio.create_task(
            self._controller.wakeups.run(stopped=lambda: bool(stopped)), name="sundial wake-ups"
        )
        try:
            while not stopped:
                self.heartbeat = time.monotonic()
                if loop_task.done():
                    loop_task.result()  # re-raise whatever killed the loop
                await self._renew_lease()
                await stopped.wait(LEASE_RENEW_SECONDS)
        finally:
            self.active = False
            self._controller.synced = False  # whatever happens while not active is listed again next time
            self._controller.may_fire = lambda: False
            loop_task.cancel()
            await asyncio.gather(loop_task, return_exceptions=True)
            logger.info("this replica (%s) stopped serving (%s)", identity, stopped.reason)

    async def _sync(self, stopped: kopf.DaemonStopped) -> bool:
        """List everything before serving any wake-up; retried (with backoff) until it succeeds or we stop.

        kopf re-lists too when it resumes, but through the same watch streams whose events are handled one
        by one and say nothing of where the listing ends; this listing's end is what planning waits for.
        """
        failures = 0
        while not stopped:
            self.heartbeat = time.monotonic()
            try:
                await self._controller.sync_caches()
                return True
            except Exception as error:
                failures += 1
                delay = retry_delay(failures, outage=is_outage(error))
                logger.warning("could not list the objects to serve (%s); retrying in %.1f s", error, delay)
                await stopped.wait(delay)
        return False

    async def _renew_lease(self) -> None:
        """Show who fires: the Lease is for people and dashboards; kopf's peering decides, not this."""
        now = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
        spec = {
            "holderIdentity": self._options.identity,
            "renewTime": now,
            "leaseDurationSeconds": self._options.peering_lifetime,
        }
        namespace = self._options.lease_namespace
        try:
            await asyncio.to_thread(
                self._coordination.patch_namespaced_lease, LEASE_NAME, namespace, {"spec": spec}
            )
        except ApiException as error:
            logger.warning("could not renew Lease %s/%s: %s", namespace, LEASE_NAME, error.reason)

    def probe(self) -> dict[str, Any]:
        """For kopf's liveness endpoint: fail when the loop of an active replica has gone quiet."""
        age = time.monotonic() - self.heartbeat
        if self.active and age > 6 * LEASE_RENEW_SECONDS:
            raise RuntimeError(f"the scheduler loop has not reported for {age:.0f}s")
        return {"active": self.active, "armed": len(self._controller.wakeups)}


def configure_settings(settings: kopf.OperatorSettings, options: OperatorOptions) -> None:
    settings.peering.lifetime = options.peering_lifetime
    settings.persistence.finalizer = FINALIZER
    settings.networking.request_timeout = 60
    settings.networking.connect_timeout = 10
    settings.watching.server_timeout = 300
    # Server-side filters: only Sundial's Jobs, only the scheduler's Lease.
    settings.watching.label_selectors["batch/v1", "jobs"] = f"{MANAGED_BY}={MANAGER}"
    # The Lease in the lease namespace only: a cluster-wide replica would otherwise also see another
    # instance's `sundial-scheduler` Lease (say, one scoped to a team's namespace) and, once that is being
    # deleted, try to remove the finalizer kopf put there, which the shipped RBAC rightly forbids.
    settings.watching.field_selectors["coordination.k8s.io/v1", "leases"] = (
        f"metadata.name={LEASE_NAME},metadata.namespace={options.lease_namespace}"
    )
    # kopf's own Events for handler errors are noise next to ours; errors are logged anyway.
    settings.posting.enabled = False


def build_registry(options: OperatorOptions, controller: Controller) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    replica = ActiveReplica(options, controller, client.CoordinationV1Api(controller.api_client))

    # Active means firing: kopf's pause signal stops Job creation at once (may_fire), while the daemon that
    # clears `replica.active` can take seconds to be cancelled.
    def firing() -> bool:
        return replica.active and controller.may_fire()

    controller.metrics.watch_active(firing)
    # A standby serves no wake-ups (it lists everything again when it becomes active): it has armed nothing,
    # and saying 0 lets sum(sundial_armed_schedules) over all replicas mean what it says.
    controller.metrics.watch_armed(lambda: len(controller.wakeups) if firing() else 0)

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> Any:
        # Registering a login handler switches off kopf's own credential discovery.
        return kopf_connection_info(options.credentials)

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure_settings(settings, options)

    # Async on purpose: kopf runs sync handlers in worker threads, and the wake-up queue belongs to the loop.
    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    async def scheduled_deployment_event(
        event: kopf.RawEvent, body: kopf.Body, namespace: str | None, **_: Any
    ) -> None:
        if options.namespaces is not None and namespace not in options.namespaces:
            return  # seen only because the Lease's namespace is watched too
        controller.object_seen(dict(body), deleted=event.get("type") == "DELETED")

    @kopf.on.event("batch/v1", "jobs", labels={MANAGED_BY: MANAGER}, registry=registry)
    async def job_event(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
        controller.job_seen(dict(body), deleted=event.get("type") == "DELETED")

    def is_scheduler_lease(name: str, namespace: str | None, **_: Any) -> bool:
        return name == LEASE_NAME and namespace == options.lease_namespace

    @kopf.daemon(
        "coordination.k8s.io/v1",
        "leases",
        when=is_scheduler_lease,
        registry=registry,
        cancellation_timeout=1.0,
    )
    async def scheduler(stopped: kopf.DaemonStopped, **_: Any) -> None:
        await replica.serve(stopped)

    @kopf.on.probe(id="scheduler", registry=registry)
    def scheduler_probe(**_: Any) -> dict[str, Any]:
        return replica.probe()

    return registry


async def run_operator(options: OperatorOptions) -> None:
    settings = ControllerSettings(
        deployer_image=os.environ.get("SUNDIAL_DEPLOYER_IMAGE", DEFAULT_DEPLOYER_IMAGE)
    )
    rate_limit = None
    if options.kube_api_qps is not None:
        burst = options.kube_api_burst or default_burst(options.kube_api_qps)
        rate_limit = TokenBucket(options.kube_api_qps, burst)
    api = api_client(options.credentials, pool_size=2 * settings.api_threads + 4, rate_limit=rate_limit)
    controller = Controller(api, settings, metrics=Metrics.create(), namespaces=options.namespaces)
    await asyncio.to_thread(ensure_lease, api, options.lease_namespace)
    registry = build_registry(options, controller)
    namespaces: list[str] = []
    if options.namespaces is not None:
        namespaces = sorted({*options.namespaces, options.lease_namespace})
    metrics_server = (
        None if options.metrics_bind is None else MetricsServer(controller.metrics, *options.metrics_bind)
    )
    try:
        await kopf.operator(
            registry=registry,
            clusterwide=options.namespaces is None,
            namespaces=namespaces,
            peering_name=options.peering_name,
            standalone=options.peering_name is None,
            priority=options.priority,
            liveness_endpoint=options.liveness_endpoint,
        )
    finally:
        if metrics_server is not None:
            metrics_server.close()
        controller.close()
