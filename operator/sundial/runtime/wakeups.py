"""One timer for every ScheduledDeployment: a heap of wake-up instants and a loop that serves it.

Why one timer: kopf's per-object daemons and timers cost an asyncio task each (about 470 MiB and a 1 s p99
wake-up at 10,000 objects, mostly CPython's full GC walking those tasks) and put kopf's finalizer on every
object. A heap of ``(instant, key)`` is a few hundred bytes an entry and wakes within a millisecond.

What it guarantees:

* A key is reconciled at (or just after) the earliest instant requested for it. Requests only ever move a
  key earlier; a stale, later entry left in the heap causes at most a spurious reconcile, which is harmless
  because reconciling is idempotent.
* At most one reconcile per key runs at a time; a request that arrives meanwhile runs it once more after.
* Reconciles of different keys run concurrently (bounded), so one slow API call never delays another
  object's instant.
* Of many keys due at once, the first ones' API calls are not held back by the rest: reconciles are
  started a few at a time, and the loop lets those already started go on between batches.
* A backlog (every object, re-planned when a replica takes over) is served in its order with whatever
  capacity the timed wake-ups leave: a key that falls due meanwhile is started before the rest of it.

Instants are wall-clock seconds (``time.time()``) because schedules are wall-clock instants. The loop never
sleeps longer than ``max_sleep`` so that a stepped system clock is noticed promptly.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import heapq
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable
from typing import Generic, TypeVar

Key = TypeVar("Key", bound=Hashable)

logger = logging.getLogger(__name__)

RETRY_FIRST_SECONDS = 0.5
"""How soon a key whose reconcile raised is first tried again; each further failure in a row doubles it."""
RETRY_MAX_SECONDS = 300.0
"""The longest wait between tries of a key that keeps failing (a bug that input alone triggers)."""
START_BATCH = 8
"""Reconciles started before the loop runs what is ready (the answers to those already started) again.

The loop runs ready callbacks in order. Started all at once, a thousand due reconciles each plan and send
their first request before the answer to the first one is looked at, so its Job waited for every plan of
the burst (first Job 0.30-0.35 s after the instant, bench/README.md)."""
OUTAGE_MAX_SECONDS = 10.0
"""The longest wait while the API server is unreachable or overloaded: a run due meanwhile should start
as soon as it answers again, well within any startingDeadlineSeconds."""


def retry_delay(failures: int, outage: bool) -> float:
    """Seconds to wait after the ``failures``-th failure in a row of one key (``failures`` >= 1).

    Per key, as controller-runtime's rate limiter is per item: one object that always fails backs off alone,
    while every other object keeps its instants.
    """
    cap = OUTAGE_MAX_SECONDS if outage else RETRY_MAX_SECONDS
    return float(min(cap, RETRY_FIRST_SECONDS * 2 ** min(failures - 1, 32)))


class WakeupQueue(Generic[Key]):
    def __init__(
        self,
        reconcile: Callable[[Key], Awaitable[float | None]],
        *,
        clock: Callable[[], float] = time.time,
        concurrency: int = 64,
        max_sleep: float = 5.0,
        transient: Callable[[Exception], bool] = lambda error: False,
    ) -> None:
        """``reconcile(key)`` returns the next instant the key wants to be woken at, or None.

        ``transient(error)`` says whether a failure is an outage to wait out (logged in one line) rather than
        a bug (logged with its traceback); both are retried the same way.
        """
        self._reconcile = reconcile
        self._concurrency = concurrency
        self._transient = transient
        self._clock = clock
        self._max_sleep = max_sleep
        self._heap: list[tuple[float, int, Key]] = []
        self._wanted: dict[Key, float] = {}
        self._counter = itertools.count()
        self._changed = asyncio.Event()
        self._inflight: set[Key] = set()
        self._again: set[Key] = set()
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._failures: dict[Key, int] = {}
        """Failures in a row, per key; cleared by a reconcile that succeeds or by `forget`."""
        self._backlog: collections.deque[Key] = collections.deque()
        """Keys to reconcile once, in order, as capacity allows (`request_backlog`)."""

    def __len__(self) -> int:
        """Keys with a reconcile pending, timed or in the backlog."""
        return len(self._wanted.keys() | set(self._backlog)) if self._backlog else len(self._wanted)

    def request_backlog(self, keys: Iterable[Key]) -> None:
        """Reconcile each of ``keys`` once, in this order, as soon as capacity allows, behind every timed
        wake-up that falls due meanwhile.

        For a replica that takes over: requested at "now", 10,000 keys would all sort before a run due a
        second later, and its wake-up would wait for the whole backlog (measured: 3.5 s late).
        """
        self._backlog.extend(keys)
        self._changed.set()

    def next_wakeup(self) -> float | None:
        self._drop_stale_heads()
        return self._heap[0][0] if self._heap else None

    def request(self, key: Key, at: float | None = None) -> None:
        """Reconcile ``key`` at ``at`` (default: now), unless it is already due earlier."""
        when = self._clock() if at is None else at
        current = self._wanted.get(key)
        if current is not None and current <= when:
            return
        self._wanted[key] = when
        heapq.heappush(self._heap, (when, next(self._counter), key))
        if self._heap[0][2] == key:
            self._changed.set()

    def forget(self, key: Key) -> None:
        """The object is gone: drop its pending wake-up (its heap entry is discarded lazily)."""
        self._wanted.pop(key, None)
        self._again.discard(key)
        self._failures.pop(key, None)

    def clear(self) -> None:
        """Drop every pending wake-up and the backlog (not the reconciles running, nor their failure
        counts)."""
        self._wanted.clear()
        self._heap.clear()
        self._again.clear()
        self._backlog.clear()

    def failures(self, key: Key) -> int:
        """How many reconciles of ``key`` in a row have raised."""
        return self._failures.get(key, 0)

    def _drop_stale_heads(self) -> None:
        while self._heap:
            when, _, key = self._heap[0]
            if self._wanted.get(key) == when:
                return
            heapq.heappop(self._heap)

    def _pop_due(self, now: float) -> list[Key]:
        due: list[Key] = []
        while True:
            self._drop_stale_heads()
            if not self._heap or self._heap[0][0] > now:
                return due
            _, _, key = heapq.heappop(self._heap)
            del self._wanted[key]
            due.append(key)

    async def run(self, stopped: Callable[[], bool] = lambda: False) -> None:
        """Serve wake-ups until ``stopped()`` or cancellation; in-flight reconciles are cancelled on exit."""
        try:
            while not stopped():
                for started, key in enumerate(self._pop_due(self._clock()), start=1):
                    self._start(key)
                    if started % START_BATCH == 0:
                        await asyncio.sleep(0)
                started = 0
                while self._backlog and len(self._inflight) < self._concurrency and not stopped():
                    key = self._backlog.popleft()
                    if key in self._inflight:
                        continue  # being reconciled right now: that is the plan the backlog asked for
                    self._start(key)
                    started += 1
                    if started % START_BATCH == 0:
                        await asyncio.sleep(0)
                        if self._heap and self._heap[0][0] <= self._clock():
                            break  # a timed wake-up fell due: it goes first
                head = self.next_wakeup()
                timeout = self._max_sleep if head is None else min(self._max_sleep, head - self._clock())
                if self._backlog and len(self._inflight) < self._concurrency:
                    timeout = 0
                if timeout > 0:
                    self._changed.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), timeout=timeout)
        finally:
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)

    def _start(self, key: Key) -> None:
        if key in self._inflight:
            self._again.add(key)
            return
        self._inflight.add(key)
        task = asyncio.create_task(self._serve(key), name=f"reconcile {key}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, key: Key) -> None:
        next_at: float | None = None
        try:
            async with self._slots:
                next_at = await self._reconcile(key)
            self._failures.pop(key, None)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            # A bug or an API outage must not kill the timer for everyone: log it and retry this key alone,
            # backing off while it keeps failing.
            failures = self._failures[key] = self._failures.get(key, 0) + 1
            outage = self._transient(error)
            delay = retry_delay(failures, outage)
            if outage:
                logger.warning("reconciling %s failed: %s; retrying in %.1f s", key, error, delay)
            else:
                logger.exception(
                    "reconciling %s failed (%d in a row); retrying in %.1f s", key, failures, delay
                )
            next_at = self._clock() + delay
        finally:
            self._inflight.discard(key)
            if self._backlog:
                self._changed.set()  # a slot is free for the backlog
        if key in self._again:
            self._again.discard(key)
            self.request(key)
        if next_at is not None:
            self.request(key, next_at)
