"""Prometheus metrics: what the operator did (runs, Jobs, lateness) and holds (armed, invalid, active).

Every metric lives in a private `CollectorRegistry` owned by one `Metrics` object, never in
prometheus_client's global default registry: tests and benchmarks build many controllers in one process,
and each must start from zero. ``sundial run --metrics-bind HOST:PORT`` serves that registry at
``/metrics`` from a daemon thread of its own, so a scrape never waits for kopf's event loop and the loop
never waits for a scrape.

Run results are counted from *transitions the operator writes into status* (see `run_transitions`), not
from watch events: a standby replica writes no status, so it counts nothing; a restarted replica lists
again Jobs whose results are already in status, so nothing is counted twice. A result is counted once, by
the replica whose status write recorded it.

The process collectors (``process_*``: CPU, RSS, open files; ``python_gc_*``; ``python_info``) are
registered too: at 10,000 objects memory and GC pauses are the operator's main costs, and these cost a few
``/proc`` reads per scrape.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import platform
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    start_http_server,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

import sundial
from sundial.api.models import RunResult, RunRole
from sundial.api.reasons import Reason

logger = logging.getLogger("sundial.runtime.metrics")

NAMESPACE = "sundial"

COUNTED_RESULTS = tuple(
    result for result in RunResult if result not in (RunResult.PENDING, RunResult.RUNNING)
)
"""Results that end a run's story; Pending and Running are passing states, not outcomes."""
_COUNTED_VALUES = frozenset(result.value for result in COUNTED_RESULTS)

LATENESS_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
"""1 ms to 60 s: a healthy fire is a few milliseconds late; seconds mean a busy or paused replica; beyond
60 s the run was fired late within startingDeadlineSeconds after an outage, and +Inf says so."""


def label(value: str) -> str:
    """Label values are lower case: ``Succeeded`` -> ``succeeded``."""
    return value.lower()


# ---------------------------------------------------------------------------------------------- pure


def run_transitions(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> list[tuple[RunResult, str]]:
    """The run results that ``new`` status records and ``old`` did not, as (result, role) pairs.

    Runs are matched by ``scheduledTime`` and, for manual runs, ``trigger`` (a run's identity: its Job's
    name is derived from them). A run that is new in ``new`` with a counted result counts; so does one
    whose result changed (Running -> Succeeded). A run that drops out of ``new`` (history pruned) is not a
    transition, and Pending or Running are not results.
    """
    before = {_identity(record): record.get("result") for record in _runs(old)}
    transitions: list[tuple[RunResult, str]] = []
    for record in _runs(new):
        result = record.get("result")
        if result not in _COUNTED_VALUES or before.get(_identity(record)) == result:
            continue
        role = record.get("role")
        transitions.append((RunResult(result), role if isinstance(role, str) else RunRole.DEPLOY.value))
    return transitions


def withheld_transitions(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> list[str]:
    """The governance reasons (`WITHHELD_REASONS`) of the runs ``new`` records and ``old`` did not."""
    before = {_identity(record) for record in _runs(old)}
    return [
        record["reason"]
        for record in _runs(new)
        if record.get("reason") in WITHHELD_REASONS and _identity(record) not in before
    ]


def _identity(record: Mapping[str, Any]) -> tuple[object, object]:
    return record.get("scheduledTime"), record.get("trigger")


def _runs(status: Mapping[str, Any] | None) -> Iterable[Mapping[str, Any]]:
    runs = (status or {}).get("runs")
    if not isinstance(runs, list):
        return ()
    return [record for record in runs if isinstance(record, Mapping)]


WITHHELD_REASONS = ("Frozen", "FrozenPastDeadline", "NotApproved")
"""Run reasons of release governance: held or missed because of a freeze, held for want of an approval."""
WAITING_REASONS = ("Frozen", "AwaitingApproval")
"""Progressing reasons of a run that waits for a Defer freeze to end, or for its approval."""


def waiting_reason(status: Mapping[str, Any] | None) -> str | None:
    """``Frozen`` or ``AwaitingApproval`` when the object's due run waits for that; None otherwise."""
    conditions = (status or {}).get("conditions")
    if not isinstance(conditions, list):
        return None
    for condition in conditions:
        if isinstance(condition, Mapping) and condition.get("type") == "Progressing":
            reason = condition.get("reason")
            return reason if reason in WAITING_REASONS and condition.get("status") == "True" else None
    return None


def _as_float(count: Callable[[str], int], reason: str) -> float:
    return float(count(reason))


def is_invalid(status: Mapping[str, Any] | None) -> bool:
    """Whether the operator marked the object invalid: ``Scheduled`` is False for a reason of bad input.

    ``Scheduled`` is also False for states that are nobody's mistake (Suspended, Completed,
    NoUpcomingRuns); only the reasons of `sundial.api.reasons.Reason` mean the user has something to fix.
    """
    conditions = (status or {}).get("conditions")
    if not isinstance(conditions, list):
        return False
    return any(
        isinstance(c, Mapping)
        and c.get("type") == "Scheduled"
        and c.get("status") == "False"
        and c.get("reason") in _BAD_INPUT
        for c in conditions
    )


_BAD_INPUT = frozenset(reason.value for reason in Reason)


def parse_bind(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:9090`` for IPv6) -> (host, port); ValueError with a hint otherwise."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ValueError(f"--metrics-bind {text!r}: expected HOST:PORT, e.g. 0.0.0.0:9090 or [::]:9090")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        ipaddress.IPv6Address(host)
    port = int(port_text)
    if not 0 < port < 65536:
        raise ValueError(f"--metrics-bind {text!r}: the port must be between 1 and 65535")
    return host, port


# ---------------------------------------------------------------------------------------------- metrics


@dataclass
class Metrics:
    """Sundial's metrics, on a registry of their own. See docs/metrics.md for each one."""

    registry: CollectorRegistry
    runs: Counter
    jobs_created: Counter
    fire_lateness: Histogram
    fire_api_errors: Counter
    armed: Gauge
    invalid: Gauge
    active: Gauge
    status_writes_pending: Gauge
    build_info: Gauge
    shard: Gauge
    runs_withheld: Counter
    runs_waiting: Gauge
    freezes_active: Gauge
    _fire_children: dict[str, tuple[Counter, Histogram]] = field(default_factory=dict)

    @classmethod
    def create(cls, *, runtime_collectors: bool = True) -> Metrics:
        registry = CollectorRegistry(auto_describe=True)
        if runtime_collectors:
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
            GCCollector(registry=registry)
        runs = Counter(
            "runs",
            "Runs that reached a result, by result and role; counted once, by the replica that recorded it.",
            ["result", "role"],
            namespace=NAMESPACE,
            registry=registry,
        )
        for result in COUNTED_RESULTS:
            for role in RunRole:
                runs.labels(result=label(result.value), role=label(role.value))
        jobs_created = Counter(
            "jobs_created",
            "Deploy Jobs this replica created (AlreadyExists on a Job of ours is not counted).",
            ["role"],
            namespace=NAMESPACE,
            registry=registry,
        )
        for role in RunRole:
            jobs_created.labels(role=label(role.value))
        fire_lateness = Histogram(
            "fire_lateness_seconds",
            "Seconds from a run's scheduled instant to the creation of its Job.",
            ["role"],
            namespace=NAMESPACE,
            registry=registry,
            buckets=LATENESS_BUCKETS,
        )
        for role in RunRole:
            fire_lateness.labels(role=label(role.value))
        fire_api_errors = Counter(
            "fire_api_errors",
            "Failed Job creations, by HTTP status code (<error>: no answer); 429 and 5xx are retried.",
            ["code"],
            namespace=NAMESPACE,
            registry=registry,
        )
        armed = Gauge(
            "armed_schedules",
            "Objects with a wake-up pending in the active replica's heap (their next run); 0 on a standby.",
            namespace=NAMESPACE,
            registry=registry,
        )
        invalid = Gauge(
            "invalid_objects",
            "ScheduledDeployments whose spec cannot be scheduled (Scheduled=False for bad input).",
            namespace=NAMESPACE,
            registry=registry,
        )
        active = Gauge(
            "active_replica",
            "1 while this replica is the one that fires (kopf peering made it active), 0 on a standby.",
            namespace=NAMESPACE,
            registry=registry,
        )
        status_writes_pending = Gauge(
            "status_writes_pending",
            "Plans whose status is not yet written (behind a burst's Job creates, or an unreachable API).",
            namespace=NAMESPACE,
            registry=registry,
        )
        build_info = Gauge(
            "build_info",
            "Always 1; the labels say which Sundial and Python this replica runs.",
            ["version", "python_version"],
            namespace=NAMESPACE,
            registry=registry,
        )
        build_info.labels(version=sundial.__version__, python_version=platform.python_version()).set(1)
        shard = Gauge(
            "shard",
            "Always 1; the labels say which namespaces this replica serves: shard `shard` of `shards` "
            "(sundial run --shard), 0 of 1 when not sharded.",
            ["shard", "shards"],
            namespace=NAMESPACE,
            registry=registry,
        )
        runs_withheld = Counter(
            "runs_withheld",
            "Runs that did not deploy because of release governance, by reason: Frozen (a Hold freeze), "
            "FrozenPastDeadline (a Defer freeze outlasted the deadline), NotApproved.",
            ["reason"],
            namespace=NAMESPACE,
            registry=registry,
        )
        for reason in WITHHELD_REASONS:
            runs_withheld.labels(reason=reason)
        runs_waiting = Gauge(
            "runs_waiting",
            "Objects whose due run waits, by reason: Frozen (for a Defer freeze to end) or AwaitingApproval.",
            ["reason"],
            namespace=NAMESPACE,
            registry=registry,
        )
        freezes_active = Gauge(
            "freezes_active",
            "Release freezes (ReleaseFreeze and ClusterReleaseFreeze) on now, as their status says.",
            namespace=NAMESPACE,
            registry=registry,
        )
        return cls(
            runs_withheld=runs_withheld,
            runs_waiting=runs_waiting,
            freezes_active=freezes_active,
            registry=registry,
            runs=runs,
            jobs_created=jobs_created,
            fire_lateness=fire_lateness,
            fire_api_errors=fire_api_errors,
            armed=armed,
            invalid=invalid,
            active=active,
            status_writes_pending=status_writes_pending,
            build_info=build_info,
            shard=shard,
        )

    # The gauges read the operator's state at scrape time (from the server's thread): len() of a dict or a
    # set and reading a bool are atomic under the GIL, and nothing on the event loop has to remember to
    # update them.

    def serve_shard(self, index: int, count: int) -> None:
        self.shard.labels(shard=str(index), shards=str(count)).set(1)

    def watch_armed(self, count: Callable[[], int]) -> None:
        self.armed.set_function(lambda: float(count()))

    def watch_invalid(self, count: Callable[[], int]) -> None:
        self.invalid.set_function(lambda: float(count()))

    def watch_active(self, active: Callable[[], bool]) -> None:
        self.active.set_function(lambda: 1.0 if active() else 0.0)

    def watch_status_writes(self, count: Callable[[], int]) -> None:
        self.status_writes_pending.set_function(lambda: float(count()))

    # Called on the operator's paths; each is an in-memory increment (a lock and an add), no I/O.

    def watch_waiting(self, count: Callable[[str], int]) -> None:
        for reason in WAITING_REASONS:
            self.runs_waiting.labels(reason=reason).set_function(functools.partial(_as_float, count, reason))

    def watch_freezes(self, count: Callable[[], int]) -> None:
        self.freezes_active.set_function(lambda: float(count()))

    def record_transitions(self, old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> None:
        for result, role in run_transitions(old, new):
            self.runs.labels(result=label(result.value), role=label(role)).inc()
        for reason in withheld_transitions(old, new):
            self.runs_withheld.labels(reason=reason).inc()

    def job_created(
        self, role: str, scheduled_time: datetime, fired_time: datetime, *, manual: bool = False
    ) -> None:
        """A Job was created for a run: ``fired_time`` is the instant recorded in status as the run's.

        A manual run (``manual``) counts as a Job but not in the lateness histogram: its "scheduled" time is
        when a person asked, on their own clock, and the delay includes the watch; it says nothing about
        how late scheduled runs start."""
        # On the fire path: the labelled children are looked up once per role (labels() costs as much as
        # the observation itself), leaving an increment and an observation, a few microseconds.
        children = self._fire_children.get(role)
        if children is None:
            children = (
                self.jobs_created.labels(role=label(role)),
                self.fire_lateness.labels(role=label(role)),
            )
            self._fire_children[role] = children
        created, lateness = children
        created.inc()
        if manual:
            return
        # Never negative in practice (a Job is created at or after its instant); clamped so a stepped clock
        # cannot push a negative sum into the histogram.
        lateness.observe(max((fired_time - scheduled_time).total_seconds(), 0.0))

    def fire_api_error(self, status: int | None) -> None:
        """``status`` None: no HTTP answer (a timeout, a refused connection); labelled ``<error>``."""
        self.fire_api_errors.labels(code="<error>" if status is None else str(status)).inc()


def exported_names(registry: CollectorRegistry) -> set[str]:
    """Every sample name ``registry`` can serve, including series no label has been seen for yet.

    A counter ``x`` is served as ``x_total``, a histogram as ``x_bucket``, ``x_count`` and ``x_sum``; the
    dashboard and docs tests check their queries against this set, not against a hand-kept list.
    """
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_count", "_sum"),
        "summary": ("", "_count", "_sum"),
        "info": ("_info",),
    }
    return {
        family.name + suffix for family in registry.collect() for suffix in suffixes.get(family.type, ("",))
    }


class MetricsBindError(ValueError):
    """The metrics endpoint cannot listen where it was told to (port taken, address not on this host)."""


class MetricsServer:
    """``/metrics`` over HTTP from a daemon thread; `close` stops it."""

    def __init__(self, metrics: Metrics, host: str, port: int) -> None:
        self._server: WSGIServer
        self._thread: threading.Thread
        # The ``*_created`` timestamp series double the number of series and no dashboard needs them.
        disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in prometheus_client 0.26
        try:
            self._server, self._thread = start_http_server(port, addr=host, registry=metrics.registry)
        except OSError as error:
            raise MetricsBindError(
                f"--metrics-bind {host}:{port}: cannot listen there ({error.strerror or error}); "
                "choose a free port or an address of this host"
            ) from error
        self.port = int(self._server.server_port)
        logger.info("serving metrics at http://%s:%d/metrics", host, self.port)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
