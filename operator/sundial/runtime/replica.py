"""The active replica's life: when this process may fire, the Lease it signs, and its liveness.

Peering pauses watch streams, daemons and timers on a standby replica, but not tasks started from
``@kopf.on.startup``. Sundial's single timer must run only on the active replica, so it runs inside a
``@kopf.daemon`` on one singleton object, a Lease named ``sundial-scheduler`` (``sundial-scheduler-I-of-N``
for shard I of N, `sundial.api.shards`; see `sundial.runtime.wiring`):
kopf signals that daemon when the replica pauses and starts it again when the replica resumes. The signal,
not the (sometimes seconds later) cancellation, is what stops Job creation: the daemon tells the controller
to fire only while its stop flag is unset. Every replica, paused or not, keeps its caches current through the
informer (`sundial.runtime.informer`), so a replica that becomes active waits only for the first listing
(at process start) and then re-plans every object, soonest due first. While it runs, the daemon also writes
the Lease's holder and renew time, so ``kubectl get lease sundial-scheduler`` shows which replica is firing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime
from typing import Any

import kopf
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from sundial.api.keys import MANAGED_BY, MANAGER
from sundial.api.timestamps import format_micro_time
from sundial.runtime.calendars import FIRST_READ_WAIT_SECONDS
from sundial.runtime.controller import Controller

logger = logging.getLogger("sundial.operator")

LEASE_RENEW_SECONDS = 10
QUIET_SECONDS = 6 * LEASE_RENEW_SECONDS
"""How long the loop of an active replica may go without a heartbeat before the liveness probe fails."""


def ensure_lease(api_client: Any, namespace: str, name: str) -> None:
    """Create the singleton Lease the scheduler daemon hangs on, if no replica has yet (one per shard)."""
    coordination = client.CoordinationV1Api(api_client)
    body = client.V1Lease(
        metadata=client.V1ObjectMeta(name=name, namespace=namespace, labels={MANAGED_BY: MANAGER}),
        spec=client.V1LeaseSpec(),
    )
    try:
        coordination.create_namespaced_lease(namespace, body)
    except ApiException as error:
        if error.status != 409:
            raise


class ActiveReplica:
    """The scheduler's life on the active replica: the wake-up loop, the Lease it signs, its heartbeat."""

    def __init__(
        self,
        controller: Controller,
        lease_api_client: Any,
        *,
        identity: str,
        lease_namespace: str,
        lease_name: str,
        lease_seconds: int,
    ) -> None:
        """``identity`` is written as the Lease's holder; ``lease_seconds`` as its duration (the peering
        lifetime: how long a silent active replica keeps the others waiting). ``lease_api_client`` is
        outside any request budget."""
        self._controller = controller
        self._coordination = client.CoordinationV1Api(lease_api_client)
        self._identity = identity
        self._lease_namespace = lease_namespace
        self._lease_name = lease_name
        self._lease_seconds = lease_seconds
        self.active = False
        self.heartbeat = time.monotonic()

    def firing(self) -> bool:
        """Active means firing: kopf's pause signal stops Job creation at once, while the daemon that clears
        `active` can take seconds to be cancelled."""
        return self.active and self._controller.may_fire()

    async def serve(self, stopped: kopf.DaemonStopped) -> None:
        """Run the wake-up loop until kopf stops this daemon (pause, exit or Lease deletion)."""
        self.active = True
        self._controller.fire_while(lambda: not stopped)
        loop_task: asyncio.Task[None] | None = None
        try:
            if not await self._wait_for_caches(stopped):
                return
            armed = self._controller.rearm()
            logger.info(
                "this replica (%s) is active: %d objects to plan, soonest first", self._identity, armed
            )
            loop_task = asyncio.create_task(self._serve_queues(stopped), name="sundial wake-ups")
            while not stopped:
                self.heartbeat = time.monotonic()
                if loop_task.done():
                    loop_task.result()  # re-raise whatever killed the loop
                await self._renew_lease()
                await stopped.wait(LEASE_RENEW_SECONDS)
        finally:
            self.active = False
            self._controller.stand_down()  # the next active replica re-plans whatever this one left
            # Logged before waiting for the loop: kopf cancels a daemon that outlives its cancellation
            # timeout, and the line must not be lost with it.
            logger.info("this replica (%s) stopped serving (%s)", self._identity, stopped.reason)
            if loop_task is not None:
                loop_task.cancel()
                await asyncio.gather(loop_task, return_exceptions=True)

    async def _serve_queues(self, stopped: kopf.DaemonStopped) -> None:
        """The runs' wake-ups and the release freezes' status, side by side; one failing stops both."""
        await asyncio.gather(
            self._controller.wakeups.run(stopped=lambda: bool(stopped)),
            self._controller.freeze_status.wakeups.run(stopped=lambda: bool(stopped)),
        )

    async def _wait_for_caches(self, stopped: kopf.DaemonStopped) -> bool:
        """Serve no wake-up before every source has been listed once (only ever waited for right after the
        process started: the informer keeps the caches current from then on, active or not)."""
        synced = self._controller.caches_synced
        while not stopped and not synced.is_set():
            self.heartbeat = time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(synced.wait(), timeout=1.0)
        # A freeze whose holiday calendar is not read yet freezes nothing: give the first reads a moment.
        waited = time.monotonic()
        while not stopped and self._controller.calendars.unread():
            if time.monotonic() - waited > FIRST_READ_WAIT_SECONDS:
                logger.warning("calendars not read yet: %s", sorted(self._controller.calendars.unread()))
                break
            self._controller.calendars.read_new()
            await stopped.wait(0.1)
        return synced.is_set() and not stopped

    async def _renew_lease(self) -> None:
        """Show who fires: the Lease is for people and dashboards; kopf's peering decides, not this."""
        now = format_micro_time(datetime.now(UTC))
        spec = {
            "holderIdentity": self._identity,
            "renewTime": now,
            "leaseDurationSeconds": self._lease_seconds,
        }
        try:
            await asyncio.to_thread(
                self._coordination.patch_namespaced_lease,
                self._lease_name,
                self._lease_namespace,
                {"spec": spec},
            )
        except ApiException as error:
            logger.warning(
                "could not renew Lease %s/%s: %s", self._lease_namespace, self._lease_name, error.reason
            )

    def probe(self) -> dict[str, Any]:
        """For kopf's liveness endpoint: fail when the loop of an active replica has gone quiet."""
        age = time.monotonic() - self.heartbeat
        if self.active and age > QUIET_SECONDS:
            raise RuntimeError(f"the scheduler loop has not reported for {age:.0f}s")
        return {"active": self.active, "armed": len(self._controller.wakeups)}
