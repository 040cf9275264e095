"""A client-side limit on the operator's own API requests, the same shape as kube-controller-manager's.

``--kube-api-qps``/``--kube-api-burst`` in Kubernetes' controllers configure client-go's token bucket:
``qps`` tokens a second, at most ``burst`` saved up, one spent per request, and a request with no token
waits for one. Sundial takes the same two flags so that a benchmark can give it exactly the budget the
CronJob controller has. Without them there is no limit, which is how Sundial always behaved.

The clock and the sleep are arguments, so the arithmetic is tested without waiting.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


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

    def reserve(self) -> float:
        """Take a token now or book the next free one; return how many seconds to wait before using it."""
        with self._lock:
            now = self._clock()
            self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.qps)
            self._last = now
            self._tokens -= 1
            return 0.0 if self._tokens >= 0 else -self._tokens / self.qps

    def acquire(self) -> float:
        """Block until this caller may send a request; return the seconds it waited."""
        wait = self.reserve()
        if wait > 0:
            self._sleep(wait)
        return wait


def default_burst(qps: float) -> int:
    """kube-controller-manager's defaults are 20 QPS with a burst of 30; keep that ratio when only QPS is
    given."""
    return max(1, round(qps * 1.5))


def throttle(api_client: Any, bucket: TokenBucket) -> None:
    """Make every request of this kubernetes ``ApiClient`` take a token first.

    Every verb of the generated client goes through ``rest_client.request``, so wrapping that one method
    covers GET, POST, PATCH, PUT and DELETE alike (watches included, as in client-go).
    """
    rest_client = api_client.rest_client
    send = rest_client.request

    def request(*args: Any, **kwargs: Any) -> Any:
        bucket.acquire()
        return send(*args, **kwargs)

    rest_client.request = request
