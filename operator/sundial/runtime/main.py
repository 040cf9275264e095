"""The operator's entry point: build the client, the controller and the active replica, wire them to kopf,
and run until kopf stops. ``sundial run`` (`sundial.cli.run`) parses the flags and calls `run_operator`."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import logging
import os
import signal

import kopf
from kubernetes import client

from sundial.api.shards import Shard
from sundial.runtime.controller import Controller, ControllerSettings
from sundial.runtime.informer import Informer, kubernetes_sources
from sundial.runtime.kubeclient import Credentials, api_client
from sundial.runtime.metrics import Metrics, MetricsServer
from sundial.runtime.options import OperatorOptions
from sundial.runtime.ratelimit import Priority, TokenBucket, default_burst
from sundial.runtime.replica import ActiveReplica, ensure_lease
from sundial.runtime.served import (
    peering_objects,
    wait_until_peering_exists,
    wait_until_served,
    watched_resources,
)
from sundial.runtime.wiring import build_registry

logger = logging.getLogger("sundial.operator")

# Fault injection for tests/integration/test_lean_fire_path.py only: the informer's watches and listings go to
# this server (a proxy on 127.0.0.1 that the test stalls), so that its caches go stale while the rest of the
# operator's requests still reach the API server directly.
FAULT_WATCH_SERVER = os.environ.get("SUNDIAL_FAULT_WATCH_SERVER")


def _informer_credentials(credentials: Credentials) -> Credentials:
    if FAULT_WATCH_SERVER is None:
        return credentials
    configuration = copy.deepcopy(credentials.configuration)
    configuration.host = FAULT_WATCH_SERVER
    return dataclasses.replace(credentials, configuration=configuration)


def _exit_if_informer_ended(task: asyncio.Task[None]) -> None:
    """The informer serves until the operator stops; if it ends before (a bug), the caches would silently
    go stale, so the process stops instead and is restarted, listing everything again."""
    if task.cancelled():
        return
    logger.critical("the informer ended (%r): stopping the operator", task.exception())
    os.kill(os.getpid(), signal.SIGTERM)


async def run_operator(options: OperatorOptions) -> None:
    rate_limit = None
    if options.kube_api_qps is not None:
        burst = options.kube_api_burst or default_burst(options.kube_api_qps)
        rate_limit = TokenBucket(options.kube_api_qps, burst)
    settings = ControllerSettings(
        deployer_image=options.deployer_image,
        writes_cluster_freezes=options.shard is None or options.shard.index == 0,
    )
    # One bucket, two classes (sundial.runtime.ratelimit): the fire path's client goes first, the
    # bookkeeping client (status, Events, lookups, start-up reads) takes what it leaves.
    pool_size = settings.api_threads + 2
    api = api_client(options.credentials, pool_size, rate_limit, Priority.BOOKKEEPING)
    fire_api = api_client(options.credentials, pool_size, rate_limit, Priority.FIRE)
    controller = Controller(
        api, settings, metrics=Metrics.create(), fire_api_client=fire_api, rate_limit=rate_limit
    )
    await wait_until_served(api, watched_resources(options))
    await wait_until_peering_exists(api, peering_objects(options))
    # The informer's client is its own: each watch holds a connection for minutes, and must not take one
    # from the pool the fire path draws on. Both share the one request budget (--kube-api-qps).
    scopes = len(options.namespaces) if options.namespaces is not None else 1
    watch_api = api_client(
        _informer_credentials(options.credentials), pool_size=4 * scopes + 3, rate_limit=rate_limit
    )
    informer = Informer(
        kubernetes_sources(
            client.CustomObjectsApi(watch_api),
            client.BatchV1Api(watch_api),
            options.namespaces,
            serves=options.serves,
            cluster_freezes=options.watches_cluster_freezes,
        ),
        listed=controller.listed,
        seen=controller.seen,
        synced=controller.mark_synced,
    )
    # The Lease has a client of its own, outside the budget, as client-go's leader election has: its
    # renewals must neither wait behind a burst nor take tokens from it.
    lease_api = api_client(options.credentials, pool_size=2)
    await asyncio.to_thread(ensure_lease, lease_api, options.lease_namespace, options.lease_name)
    replica = ActiveReplica(
        controller,
        lease_api,
        identity=options.identity,
        lease_namespace=options.lease_namespace,
        lease_name=options.lease_name,
        lease_seconds=options.peering_lifetime,
    )
    controller.metrics.watch_active(replica.firing)
    shard = options.shard or Shard(0, 1)
    controller.metrics.serve_shard(shard.index, shard.count)
    # A standby serves no wake-ups (it re-plans every object when it becomes active): it has armed nothing,
    # and saying 0 lets sum(sundial_armed_schedules) over all replicas mean what it says.
    controller.metrics.watch_armed(lambda: len(controller.wakeups) if replica.firing() else 0)
    registry = build_registry(options, replica)
    metrics_server = (
        None if options.metrics_bind is None else MetricsServer(controller.metrics, *options.metrics_bind)
    )
    informing = informer.start()
    informing.add_done_callback(_exit_if_informer_ended)
    # Before kopf starts, as the informer's tasks are (see Informer.start): kopf waits for later ones at exit.
    reading_calendars = asyncio.create_task(controller.calendars.run(), name="sundial calendars")
    try:
        await kopf.operator(
            registry=registry,
            clusterwide=options.namespaces is None,
            namespaces=options.kopf_namespaces,
            peering_name=options.peering_name,
            standalone=options.peering_name is None,
            priority=options.priority,
            liveness_endpoint=options.liveness_endpoint,
        )
    finally:
        informing.remove_done_callback(_exit_if_informer_ended)
        reading_calendars.cancel()
        informing.cancel()
        informer.stop()
        await asyncio.gather(informing, reading_calendars, return_exceptions=True)
        if metrics_server is not None:
            metrics_server.close()
        controller.close()
