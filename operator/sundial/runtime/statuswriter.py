"""Status writes and their Events, carried out beside the wake-ups rather than inside them.

A reconcile decides; writing down what it decided is bookkeeping, and under a client budget a burst of Jobs
due at one instant must not wait for the status and Events of the runs before it. So a reconcile hands its
plan here and ends, and writers send the status (bookkeeping-class requests, `sundial.runtime.ratelimit`:
served with the tokens Job creates leave), then the plan's Events.

Why this is safe:

* **The Job is the record.** Each Job carries its own instant and fired time, and every plan rebuilds the
  run history from the Jobs (`sundial.decide.records`); the cache holds a Job from the moment its create
  returned. A plan made before the status is written therefore already sees the run, never fires it again,
  and a replica that dies with writes pending leaves runs that the next plan records from their Jobs.
* **The latest plan of an object wins.** Plans made before a write are all made from the same stored
  status, so a later one holds every transition an earlier one would have written (from "not fired" to
  "Succeeded" says Fired and Succeeded), and replaces it. A plan made from an older copy of the object than
  the cache now holds (this replica's own write, or a watch event, came in between) is not sent: it would
  be refused by its resourceVersion precondition anyway, so the object is planned again instead.
* A plan the API refused to carry out (a create the API server rejected) is written by its reconcile, not
  here: that refusal is in no Job, and no later plan could rebuild it. So is a plan that deletes Jobs, and
  before it deletes them: once a Job is gone, only a written status holds its run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from sundial.decide.reconcile import Event, Plan
from sundial.runtime.cache import Key
from sundial.runtime.wakeups import retry_delay

logger = logging.getLogger("sundial.runtime.statuswriter")

WRITERS = 4
"""Writes in flight at once. Half the bookkeeping threads: a write waiting for a token holds one, and the
lookups a plan waits for (a service account, a Job's pods) need the others."""


class StatusWriter:
    def __init__(
        self,
        write: Callable[[Key, Mapping[str, Any], Plan], Awaitable[bool]],
        post_events: Callable[[Mapping[str, Any], Iterable[Event]], Awaitable[None]],
        replan: Callable[[Key, float], None],
        cached_version: Callable[[Key], object],
        is_outage: Callable[[Exception], bool],
        clock: Callable[[], float],
        writers: int = WRITERS,
    ) -> None:
        """``write(key, body, plan)`` writes the plan's status with ``body``'s resourceVersion as precondition
        and says whether it was accepted; ``replan(key, at)`` asks for the object to be planned again at
        ``at``; ``cached_version(key)`` is the resourceVersion the cache holds."""
        self._write = write
        self._post_events = post_events
        self._replan = replan
        self._cached_version = cached_version
        self._is_outage = is_outage
        self._clock = clock
        self._writers = writers
        self._pending: dict[Key, tuple[Mapping[str, Any], Plan]] = {}
        """The latest plan of each object not yet written, oldest first."""
        self._writing: set[Key] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._failures: dict[Key, int] = {}
        self._idle = asyncio.Event()
        self._idle.set()

    def __len__(self) -> int:
        return len(self._pending) + len(self._writing)

    def submit(self, key: Key, body: Mapping[str, Any], plan: Plan) -> None:
        """Write ``plan`` (made from ``body``) when a writer is free, unless a later plan replaces it."""
        self._pending.pop(key, None)  # the newest goes to the back: oldest waiting first
        if plan.status == (body.get("status") or {}) and not plan.events:
            return  # nothing to write: and nothing an earlier plan wanted to write is wanted any more
        self._pending[key] = (body, plan)
        self._idle.clear()
        while len(self._tasks) < min(self._writers, len(self._pending)):
            task = asyncio.get_running_loop().create_task(self._work(), name="status writer")
            self._tasks.add(task)
            task.add_done_callback(self._finished)

    def drop(self) -> None:
        """This replica stopped being the active one: write nothing more (writes under way end as they
        will; their precondition guards them). The next active replica plans every object again."""
        self._pending.clear()
        self._failures.clear()

    async def settle(self) -> None:
        """Wait until every plan handed over has been written (or given up)."""
        await self._idle.wait()

    def close(self) -> None:
        self.drop()
        for task in self._tasks:
            task.cancel()

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not self._tasks:
            self._idle.set()

    def _next(self) -> Key | None:
        return next((key for key in self._pending if key not in self._writing), None)

    async def _work(self) -> None:
        while (key := self._next()) is not None:
            body, plan = self._pending.pop(key)
            self._writing.add(key)
            try:
                await self._write_one(key, body, plan)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                failures = self._failures[key] = self._failures.get(key, 0) + 1
                delay = retry_delay(failures, self._is_outage(error))
                logger.warning(
                    "writing the status of %s failed: %s; planning it again in %.1f s", key, error, delay
                )
                self._replan(key, self._clock() + delay)
            finally:
                self._writing.discard(key)

    async def _write_one(self, key: Key, body: Mapping[str, Any], plan: Plan) -> None:
        cached = self._cached_version(key)
        if cached is not None and cached != body["metadata"].get("resourceVersion"):
            # A newer copy came in since this plan was made: the write would be refused; plan from it.
            self._replan(key, self._clock())
            return
        if not await self._write(key, body, plan):
            self._replan(key, self._clock())  # somebody else wrote first: plan again from what they wrote
            return
        self._failures.pop(key, None)
        await self._post_events(body, plan.events)
