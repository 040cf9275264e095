"""The client-side token bucket behind ``--kube-api-qps``/``--kube-api-burst``, on an injected clock."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from sundial.runtime.ratelimit import Priority, TokenBucket, default_burst, throttle


class FakeClock:
    """A clock that moves only when someone sleeps on it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def bucket(qps: float, burst: int, clock: FakeClock) -> TokenBucket:
    return TokenBucket(qps, burst, clock=clock, sleep=clock.sleep)


def test_a_full_bucket_lets_a_burst_through_and_then_spaces_requests_by_one_over_qps() -> None:
    clock = FakeClock()
    limiter = bucket(10, 3, clock)
    waits = [limiter.reserve() for _ in range(6)]
    assert waits == pytest.approx([0, 0, 0, 0.1, 0.2, 0.3])


@pytest.mark.parametrize(
    ("idle_seconds", "free_requests"),
    [
        (0.05, 0),  # half a token: the next request still waits
        (0.1, 1),
        (0.25, 2),
        (10.0, 3),  # saved up tokens stop at the burst
    ],
)
def test_tokens_refill_at_qps_up_to_the_burst(idle_seconds: float, free_requests: int) -> None:
    clock = FakeClock()
    limiter = bucket(10, 3, clock)
    for _ in range(3):
        limiter.reserve()
    clock.now += idle_seconds
    waits = [limiter.reserve() for _ in range(free_requests + 1)]
    assert waits[:free_requests] == [0.0] * free_requests
    assert waits[-1] > 0


def test_acquire_sleeps_for_its_reservation_and_the_long_run_rate_is_qps() -> None:
    clock = FakeClock()
    limiter = bucket(20, 30, clock)
    start = clock.now
    for _ in range(230):
        limiter.acquire()
    # 30 from the burst, then 200 at 20 a second.
    assert clock.now - start == pytest.approx(10.0)


def test_concurrent_callers_each_get_their_own_slot() -> None:
    clock = FakeClock()
    limiter = bucket(5, 1, clock)
    waits: list[float] = []
    lock = threading.Lock()

    def reserve() -> None:
        wait = limiter.reserve()
        with lock:
            waits.append(wait)

    threads = [threading.Thread(target=reserve) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(waits) == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4])


@pytest.mark.parametrize(("qps", "burst"), [(0, 1), (-1, 1), (5, 0)])
def test_a_bucket_that_could_never_serve_is_refused(qps: float, burst: int) -> None:
    with pytest.raises(ValueError):
        TokenBucket(qps, burst)


@pytest.mark.parametrize(("qps", "burst"), [(20, 30), (50, 75), (0.5, 1), (1, 2)])
def test_default_burst_keeps_the_controller_managers_ratio(qps: float, burst: int) -> None:
    assert default_burst(qps) == burst


def test_throttle_takes_a_token_before_every_request_of_the_client() -> None:
    clock = FakeClock()
    limiter = bucket(2, 1, clock)
    sent: list[tuple[str, float]] = []

    class Rest:
        def request(self, method: str, url: str, **_: Any) -> str:
            sent.append((method, clock.now))
            return "ok"

        def GET(self, url: str) -> str:
            return self.request("GET", url)

    class Client:
        rest_client = Rest()

    api = Client()
    throttle(api, limiter)
    assert api.rest_client.GET("/a") == "ok"
    assert api.rest_client.request("POST", "/b") == "ok"
    assert [method for method, _ in sent] == ["GET", "POST"]
    assert sent[1][1] - sent[0][1] == pytest.approx(0.5)


# ---------------------------------------------------------------------------------------------- priorities


def test_bookkeeping_takes_only_a_free_token_and_never_books_ahead() -> None:
    clock = FakeClock()
    limiter = bucket(10, 2, clock)
    assert limiter.try_take() == 0.0
    assert limiter.try_take() == 0.0
    # Empty: it is told when the next token is free, and takes nothing meanwhile.
    assert limiter.try_take() == pytest.approx(0.1)
    assert limiter.reserve() == pytest.approx(0.1)  # a fire request still gets the next token first


def test_bookkeeping_waits_while_a_fire_request_waits_for_its_token() -> None:
    clock = FakeClock()
    limiter = bucket(10, 1, clock)
    limiter.reserve()  # the one token is gone
    fire_waiting = threading.Event()
    release = threading.Event()
    order: list[str] = []

    def sleep(seconds: float) -> None:
        if threading.current_thread().name == "fire":
            fire_waiting.set()
            release.wait(5)
            clock.now += seconds
            order.append("fire")
        else:
            clock.now += seconds

    limiter._sleep = sleep
    fire = threading.Thread(target=limiter.acquire, name="fire")
    fire.start()
    assert fire_waiting.wait(5)
    clock.now += 10.0  # the bucket refills meanwhile, but a fire request is still asleep on its token
    assert limiter.try_take() > 0, "bookkeeping took a token while a fire request was waiting"
    release.set()
    fire.join(5)
    assert order == ["fire"]
    assert limiter.try_take() == 0.0  # no fire request waiting and tokens free: bookkeeping goes


def test_bookkeeping_acquire_sleeps_until_a_token_is_free_and_then_takes_it() -> None:
    clock = FakeClock()
    limiter = bucket(4, 1, clock)
    limiter.reserve()
    assert limiter.acquire(Priority.BOOKKEEPING) == pytest.approx(0.25)
    assert clock.slept == pytest.approx([0.25])
    assert limiter.try_take() == pytest.approx(0.25)  # it took the token it waited for


def test_throttle_takes_tokens_of_its_clients_class() -> None:
    asked: list[Priority] = []

    class Recording(TokenBucket):
        def acquire(self, priority: Priority = Priority.FIRE) -> float:
            asked.append(priority)
            return 0.0

    class Rest:
        def request(self, method: str, url: str, **_: Any) -> str:
            return "ok"

    class Client:
        rest_client = Rest()

    api = Client()
    throttle(api, Recording(1, 1), Priority.BOOKKEEPING)
    api.rest_client.request("PATCH", "/status")
    assert asked == [Priority.BOOKKEEPING]


def test_bookkeeping_waits_while_a_fire_is_under_way_even_with_tokens_free() -> None:
    clock = FakeClock()
    limiter = bucket(10, 5, clock)
    with limiter.firing():
        # The fire's read is on its way: no fire request waits for a token, yet the tokens are its Job's.
        assert limiter.try_take() > 0
        with limiter.firing():
            pass
        assert limiter.try_take() > 0
    assert limiter.try_take() == 0.0
