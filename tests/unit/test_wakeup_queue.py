"""The wake-up queue starts a burst of due keys a few at a time, so the first keys' work goes on while the
rest are still being started (issue 14: the first Job of a burst waited for every plan in it)."""

from __future__ import annotations

import asyncio

from sundial.runtime.wakeups import START_BATCH, WakeupQueue


def test_the_first_due_keys_go_on_before_the_whole_burst_has_started() -> None:
    order: list[str] = []
    keys = [f"k{i:03d}" for i in range(5 * START_BATCH)]

    async def reconcile(key: str) -> float | None:
        order.append(f"start {key}")
        await asyncio.sleep(0)  # its first API call: the answer is handled in a later turn of the loop
        order.append(f"continue {key}")
        return None

    async def burst() -> None:
        queue: WakeupQueue[str] = WakeupQueue(reconcile, clock=lambda: 1000.0, max_sleep=0.01)
        for key in keys:
            queue.request(key)
        stopping = asyncio.Event()

        async def stop_when_done() -> None:
            while len([line for line in order if line.startswith("continue")]) < len(keys):
                await asyncio.sleep(0)
            stopping.set()

        watcher = asyncio.create_task(stop_when_done())
        await queue.run(stopped=stopping.is_set)
        await watcher

    asyncio.run(burst())
    # Every key ran once, in the order it fell due ...
    assert [line for line in order if line.startswith("start")] == [f"start {key}" for key in keys]
    assert sorted(line for line in order if line.startswith("continue")) == [f"continue {k}" for k in keys]
    # ... and the first key went on before the keys of the next batch but one had even started.
    assert order.index(f"continue {keys[0]}") < order.index(f"start {keys[2 * START_BATCH]}")


def test_a_wake_up_that_falls_due_during_a_backlog_goes_before_the_rest_of_it() -> None:
    """A take-over re-plans 10,000 objects as a backlog; a run due a second later must not wait for it."""
    now = [1000.0]
    order: list[str] = []
    backlog = [f"b{i:03d}" for i in range(10 * START_BATCH)]

    async def reconcile(key: str) -> float | None:
        order.append(key)
        now[0] += 0.01  # each plan takes 10 ms of the clock
        await asyncio.sleep(0)
        return None

    async def take_over() -> None:
        queue: WakeupQueue[str] = WakeupQueue(reconcile, clock=lambda: now[0], concurrency=4, max_sleep=0.01)
        queue.request_backlog(backlog)
        queue.request("tick", at=1000.1)  # due after about ten plans
        assert len(queue) == len(backlog) + 1
        task = asyncio.create_task(queue.run(stopped=lambda: len(order) == len(backlog) + 1))
        await asyncio.wait_for(task, timeout=10)

    asyncio.run(take_over())
    assert sorted(order) == sorted([*backlog, "tick"])
    assert order.index("tick") < 2 * START_BATCH  # within a batch or so of falling due, not after all 80
