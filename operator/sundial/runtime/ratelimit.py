"""A client-side limit on the operator's own API requests, the same shape as kube-controller-manager's.

``--kube-api-qps``/``--kube-api-burst`` in Kubernetes' controllers configure client-go's token bucket:
``qps`` tokens a second, at most ``burst`` saved up, one spent per request, and a request with no token
waits for one. Sundial takes the same two flags so that a benchmark can give it exactly the budget the
CronJob controller has. Without them there is no limit, which is how Sundial always behaved.

Two classes of request share the one bucket. A *fire* request (reading an object fresh before its Job,
creating or deleting Jobs, the informer's lists and watches) books the next token at once, as client-go does.
A *bookkeeping* request (status writes, Events, lookups) takes a token only when one is free and no fire
request is waiting for one, nor any fire under way (`firing`: between a fresh read and its Job, the moments
a burst's requests are not waiting for tokens but for answers). So under a budget a burst of Jobs due at
one instant spends it on the Jobs first, and the status and Events of those runs follow. CronJob's
controller has no such order; its 20 QPS are spent on a Job, its status and an Event in turn
(bench/README.md).

The clock and the sleep are arguments, so the arithmetic is tested without waiting.
"""

from __future__ import annotations

import contextlib
import enum
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any


class Priority(enum.Enum):
    FIRE = "fire"
    """On the path from an instant to its Job: served first, in the order asked."""
    BOOKKEEPING = "bookkeeping"
    """Everything that records or explains: served with the tokens fire requests leave."""


BOOKKEEPING_RECHECK_SECONDS = 0.05
"""How long a bookkeeping request that found fire requests waiting sleeps before it looks again."""


class TokenBucket:
    """``qps`` tokens a second, starting full with ``burst``; thread-safe, because API calls run in threads.

    A caller that finds no token reserves the next one and sleeps until it is due, so callers are served
    in the order they asked and the long-run rate never exceeds ``qps``.
    """

    def __init__(
        self,
        qps: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if qps <= 0:
            raise ValueError(f"qps must be positive, not {qps}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, not {burst}")
        self.qps = qps
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)
        self._last = clock()
        self._lock = threading.Lock()
        self._fire_waiting = 0
        """Fire requests that booked a token and sleep until it is due."""
        self._fires_under_way = 0
        """Fires between their fresh read and their last Job create (`firing`)."""

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.qps)
        self._last = now

    def reserve(self) -> float:
        """Take a token now or book the next free one; return how many seconds to wait before using it."""
        with self._lock:
            self._refill()
            self._tokens -= 1
            return 0.0 if self._tokens >= 0 else -self._tokens / self.qps

    def try_take(self) -> float:
        """For a bookkeeping request: take a free token (return 0) if no fire request is waiting, else
        return how long to sleep before asking again. Never books ahead, so it never delays a fire."""
        with self._lock:
            self._refill()
            if self._fire_waiting == 0 and self._fires_under_way == 0 and self._tokens >= 1:
                self._tokens -= 1
                return 0.0
            if self._fire_waiting or self._fires_under_way:
                return BOOKKEEPING_RECHECK_SECONDS
            return (1 - self._tokens) / self.qps

    @contextlib.contextmanager
    def firing(self) -> Iterator[None]:
        """A fire is under way (its read sent, its Job not yet created): bookkeeping waits meanwhile.

        Measured without it: while a burst's LIST was on its way no fire request waited for a token, so
        status writes took the tokens that saved up meanwhile (about 50 of 1,000 Jobs' worth, 2.5 s)."""
        with self._lock:
            self._fires_under_way += 1
        try:
            yield
        finally:
            with self._lock:
                self._fires_under_way -= 1

    def acquire(self, priority: Priority = Priority.FIRE) -> float:
        """Block until this caller may send a request; return the seconds it waited."""
        if priority is Priority.BOOKKEEPING:
            waited = 0.0
            while (wait := self.try_take()) > 0:
                self._sleep(wait)
                waited += wait
            return waited
        wait = self.reserve()
        if wait > 0:
            with self._lock:
                self._fire_waiting += 1
            try:
                self._sleep(wait)
            finally:
                with self._lock:
                    self._fire_waiting -= 1
        return wait


def default_burst(qps: float) -> int:
    """kube-controller-manager's defaults are 20 QPS with a burst of 30; keep that ratio when only QPS is
    given."""
    return max(1, round(qps * 1.5))


def throttle(api_client: Any, bucket: TokenBucket, priority: Priority = Priority.FIRE) -> None:
    """Make every request of this kubernetes ``ApiClient`` take a token of ``priority`` first.

    Every verb of the generated client goes through ``rest_client.request``, so wrapping that one method
    covers GET, POST, PATCH, PUT and DELETE alike (watches included, as in client-go).
    """
    rest_client = api_client.rest_client
    send = rest_client.request

    def request(*args: Any, **kwargs: Any) -> Any:
        bucket.acquire(priority)
        return send(*args, **kwargs)

    rest_client.request = request
