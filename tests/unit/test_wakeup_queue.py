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
