#!/usr/bin/env python3
"""What do metrics cost the operator? The fire path's accounting, and a scrape's effect on the event loop.

Three numbers, in one process, without a cluster:

* the cost of ``Metrics.job_created`` (a counter increment and a histogram observation: what the fire
  path pays per Job) and of ``Metrics.record_transitions`` (what each status write pays);
* how long one scrape of the registry takes to render, process collectors included;
* the event loop's wake-up overshoot (an ``asyncio.sleep`` of 10 ms, how much later than asked it
  returns) with no scrapes, then while another thread scrapes at a given rate. The scrape runs in the
  metrics server's own thread, so what it can steal from the loop is the GIL.

This is a measurement, not a test: it prints numbers and asserts nothing. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import threading
import time
import timeit
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from prometheus_client import generate_latest

from sundial.runtime.metrics import Metrics


def per_call_us(fn: Callable[[], object], number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=7)) / number * 1e6


def overshoots(seconds: float, interval: float = 0.01) -> list[float]:
    async def sample() -> list[float]:
        found: list[float] = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            target = time.monotonic() + interval
            await asyncio.sleep(interval)
            found.append(time.monotonic() - target)
        return found

    return asyncio.run(sample())


def quantile_ms(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[round(q * (len(ordered) - 1))] * 1e3


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10, help="length of each overshoot sample (10)")
    parser.add_argument("--scrapes-per-second", type=float, default=20, help="scrape rate under load (20)")
    args = parser.parse_args(argv)

    metrics = Metrics.create()
    instant = datetime(2027, 3, 14, 7, 30, tzinfo=UTC)
    fired = instant + timedelta(milliseconds=3)
    runs = [
        {"scheduledTime": f"2027-03-{day:02d}T07:30:00Z", "result": "Succeeded", "role": "Deploy"}
        for day in range(1, 11)
    ]
    old, new = {"runs": runs}, {"runs": [*runs[1:], {**runs[0], "scheduledTime": "2027-03-11T07:30:00Z"}]}
    fire_cost = per_call_us(lambda: metrics.job_created("Deploy", instant, fired), 100_000)
    write_cost = per_call_us(lambda: metrics.record_transitions(old, new), 20_000)
    print(f"job_created (per Job, on the fire path): {fire_cost:.2f} us")
    print(f"record_transitions (per status write, 10 runs): {write_cost:.2f} us")
    renders = []
    for _ in range(100):
        started = time.perf_counter()
        body = generate_latest(metrics.registry)
        renders.append(time.perf_counter() - started)
    render_ms = statistics.median(renders) * 1e3
    print(f"one scrape: {len(body)} bytes, rendered in {render_ms:.2f} ms (median of 100)")

    quiet = overshoots(args.seconds)
    stop = threading.Event()
    scrapes = 0

    def scrape() -> None:
        nonlocal scrapes
        while not stop.wait(1 / args.scrapes_per_second):
            generate_latest(metrics.registry)
            scrapes += 1

    scraper = threading.Thread(target=scrape, daemon=True)
    scraper.start()
    loaded = overshoots(args.seconds)
    stop.set()
    scraper.join()
    for label, values in (("no scrapes", quiet), (f"{scrapes} scrapes in {args.seconds:.0f} s", loaded)):
        p50, p99, worst = quantile_ms(values, 0.5), quantile_ms(values, 0.99), max(values) * 1e3
        print(
            f"loop overshoot, {label}: p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {worst:.2f} ms ({len(values)})"
        )


if __name__ == "__main__":
    main()
