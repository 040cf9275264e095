"""The release freezes' own status: whether each is on, its next window, whether it is valid.

The decision is `sundial.decide.freezes.plan_freeze_status`; this module writes it, on the active replica
only, when a freeze changes and at each edge of its windows (a wake-up queue of its own, so that a freeze's
status never waits behind a burst of runs, nor a run behind it). The runs themselves do not depend on this
status: plans read the freezes from the cache, so a freeze applies the moment its watch event arrives.

Which replica writes which: a ReleaseFreeze's status is written by the shard that serves its namespace (the
informer gives each shard only its own); a ClusterReleaseFreeze's, which every shard watches, by shard 0.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from sundial.api.freezes import CLUSTER_FREEZE_PLURAL, FREEZE_PLURAL
from sundial.api.keys import API_VERSION, GROUP, VERSION
from sundial.decide.events import Event, build_event
from sundial.decide.freezes import plan_freeze_status
from sundial.runtime.apierrors import api_message, is_outage
from sundial.runtime.cache import CLUSTER_FREEZES, FREEZES, Cache, FreezeKey
from sundial.runtime.kubeclient import raw_body
from sundial.runtime.wakeups import WakeupQueue

logger = logging.getLogger("sundial.runtime.freezestatus")

CLUSTER_EVENTS_NAMESPACE = "default"
"""Where the Events of a cluster-scoped object go, as the Events of nodes do."""

Call = Callable[..., Awaitable[Any]]


class FreezeStatusKeeper:
    def __init__(
        self,
        cache: Cache,
        api_client: Any,
        call: Call,
        clock: Callable[[], float],
        *,
        writes_cluster_freezes: bool,
    ) -> None:
        """``call(fn, *args)`` runs a blocking client call off the loop (the controller's bookkeeping
        pool)."""
        self._cache = cache
        self._custom = client.CustomObjectsApi(api_client)
        self._core = client.CoreV1Api(api_client)
        self._call = call
        self._clock = clock
        self._writes_cluster = writes_cluster_freezes
        self.wakeups: WakeupQueue[FreezeKey] = WakeupQueue(
            self.reconcile, clock=clock, concurrency=8, transient=is_outage
        )

    def request(self, key: FreezeKey) -> None:
        if key[0] == CLUSTER_FREEZES and not self._writes_cluster:
            return
        if (key[1], key[2]) in self._cache.freezes.get(key[0], {}):
            self.wakeups.request(key)
        else:
            self.wakeups.forget(key)

    def request_all(self) -> None:
        """This replica has just become active: compute every freeze's status again."""
        for kind, entries in self._cache.freezes.items():
            for namespace, name in entries:
                self.request((kind, namespace, name))

    async def reconcile(self, key: FreezeKey) -> float | None:
        kind, namespace, name = key
        entry = self._cache.freezes[kind].get((namespace, name))
        if entry is None or not self._cache.synced:
            return None
        now = datetime.fromtimestamp(self._clock(), UTC)
        plan = plan_freeze_status(entry.body, entry.compiled, now)
        if plan.status != (entry.body.get("status") or {}):
            written = await self._write(kind, entry.body, plan.status)
            if written is None:
                return self._clock()  # changed meanwhile: plan again from the newer copy the watch brings
            self._cache.freeze_seen(kind, written, deleted=False)
            for event in plan.events:
                await self._post_event(kind, entry.body, event)
        return None if plan.wake_at is None else plan.wake_at.timestamp()

    async def _write(
        self, kind: str, body: Mapping[str, Any], status: dict[str, Any]
    ) -> dict[str, Any] | None:
        metadata = body["metadata"]
        old = body.get("status") or {}
        patch = {
            "metadata": {"resourceVersion": metadata["resourceVersion"]},
            "status": {**{k: None for k in old if k not in status}, **status},
        }
        try:
            if kind == FREEZES:
                result = await self._call(
                    self._custom.patch_namespaced_custom_object_status,
                    GROUP,
                    VERSION,
                    metadata["namespace"],
                    FREEZE_PLURAL,
                    metadata["name"],
                    patch,
                )
            else:
                result = await self._call(
                    self._custom.patch_cluster_custom_object_status,
                    GROUP,
                    VERSION,
                    CLUSTER_FREEZE_PLURAL,
                    metadata["name"],
                    patch,
                )
        except ApiException as error:
            if error.status in (404, 409):
                return None
            raise
        return dict(result)

    async def _post_event(self, kind: str, body: Mapping[str, Any], event: Event) -> None:
        metadata = dict(body["metadata"])
        namespace = metadata.get("namespace") or CLUSTER_EVENTS_NAMESPACE
        manifest = build_event(
            {"metadata": {**metadata, "namespace": namespace}},
            event,
            datetime.fromtimestamp(self._clock(), UTC),
            unique=secrets.token_hex(8),
        )
        manifest["involvedObject"].update({"apiVersion": API_VERSION, "kind": body.get("kind")})
        if kind == CLUSTER_FREEZES:
            manifest["involvedObject"].pop("namespace", None)
        try:
            await self._call(raw_body, self._core.create_namespaced_event, namespace, manifest)
        except ApiException as error:
            logger.warning(
                "could not post event %s on %s %s: %s",
                event.reason,
                body.get("kind"),
                metadata.get("name"),
                api_message(error),
            )
