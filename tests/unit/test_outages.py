"""An API outage is waited out quietly and never holds a thread forever; a bug still shows its traceback."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
import urllib3
from kubernetes.client.exceptions import ApiException
from test_reconcile import DEPLOYER_IMAGE

from sundial.runtime.apierrors import is_outage
from sundial.runtime.controller import API_TIMEOUT, FIRE_TIMEOUT, Controller, ControllerSettings
from sundial.runtime.wakeups import (
    OUTAGE_MAX_SECONDS,
    RETRY_FIRST_SECONDS,
    RETRY_MAX_SECONDS,
    WakeupQueue,
    retry_delay,
)


@pytest.mark.parametrize(
    ("error", "outage"),
    [
        (ApiException(status=503), True),
        (ApiException(status=429), True),
        (ApiException(status=0), True),  # the client's "no HTTP answer"
        (urllib3.exceptions.ReadTimeoutError(None, "/api", "read timed out"), True),
        (urllib3.exceptions.MaxRetryError(None, "/api"), True),
        (ConnectionRefusedError(), True),
        (TimeoutError(), True),
        (ApiException(status=403), False),
        (ApiException(status=422), False),
        (KeyError("metadata"), False),
        (TypeError("bug"), False),
    ],
    ids=repr,
)
def test_is_outage(error: Exception, outage: bool) -> None:
    assert is_outage(error) is outage


def test_every_api_call_has_a_deadline_and_the_fire_path_a_shorter_one() -> None:
    seen: dict[str, Any] = {}

    def record(name: str) -> Any:
        def call(*_: Any, **kwargs: Any) -> str:
            seen[name] = kwargs.get("_request_timeout")
            return "ok"

        return call

    controller = Controller(None, ControllerSettings(DEPLOYER_IMAGE, api_threads=1))

    async def both() -> None:
        await controller._call(record("bookkeeping"), "a", label_selector="x")
        await controller._fire_call(record("fire"), "a")

    try:
        asyncio.run(both())
    finally:
        controller.close()
    assert seen == {"bookkeeping": API_TIMEOUT, "fire": FIRE_TIMEOUT}
    assert FIRE_TIMEOUT[1] < API_TIMEOUT[1]


def run_one_failing_reconcile(error: Exception, caplog: pytest.LogCaptureFixture) -> float | None:
    now = 1000.0

    async def reconcile(_: str) -> float | None:
        raise error

    async def serve() -> float | None:
        queue: WakeupQueue[str] = WakeupQueue(reconcile, clock=lambda: now, transient=is_outage)
        await queue._serve("shop/api-v42")
        return queue.next_wakeup()

    with caplog.at_level(logging.WARNING, logger="sundial.runtime.wakeups"):
        return asyncio.run(serve())


def test_an_outage_is_one_line_and_retried(caplog: pytest.LogCaptureFixture) -> None:
    retry_at = run_one_failing_reconcile(ApiException(status=503, reason="Service Unavailable"), caplog)
    assert retry_at == 1000.0 + RETRY_FIRST_SECONDS
    (record,) = caplog.records
    assert record.levelno == logging.WARNING and record.exc_info is None
    assert "Service Unavailable" in record.getMessage()


def test_a_bug_keeps_its_traceback_and_is_retried(caplog: pytest.LogCaptureFixture) -> None:
    retry_at = run_one_failing_reconcile(KeyError("metadata"), caplog)
    assert retry_at == 1000.0 + RETRY_FIRST_SECONDS
    (record,) = caplog.records
    assert record.levelno == logging.ERROR and record.exc_info is not None


@pytest.mark.parametrize(
    ("failures", "outage", "delay"),
    [
        (1, False, 0.5),
        (2, False, 1.0),
        (3, False, 2.0),
        (10, False, 256.0),
        (11, False, RETRY_MAX_SECONDS),
        (10_000, False, RETRY_MAX_SECONDS),
        (1, True, 0.5),
        (5, True, 8.0),
        (6, True, OUTAGE_MAX_SECONDS),
        (10_000, True, OUTAGE_MAX_SECONDS),
    ],
)
def test_retries_back_off_exponentially_up_to_a_cap(failures: int, outage: bool, delay: float) -> None:
    assert retry_delay(failures, outage) == delay


def test_one_failing_key_backs_off_alone_and_a_success_resets_it() -> None:
    """The failing key's retries spread out (0.5, 1, 2, 4 s); the healthy key is served at its instant."""
    now = [1000.0]
    failing = {"bad": 4}
    served: list[tuple[str, float]] = []

    async def reconcile(key: str) -> float | None:
        served.append((key, now[0]))
        if failing.get(key, 0) > 0:
            failing[key] -= 1
            raise TypeError("bug")
        return None

    async def drive() -> WakeupQueue[str]:
        queue: WakeupQueue[str] = WakeupQueue(reconcile, clock=lambda: now[0])
        queue.request("bad")
        queue.request("good", at=1001.0)
        for _ in range(40):
            head = queue.next_wakeup()
            if head is None:
                break
            now[0] = head
            for key in queue._pop_due(now[0]):
                await queue._serve(key)
        return queue

    queue = asyncio.run(drive())
    times = [at - 1000.0 for key, at in served if key == "bad"]
    assert times == [0.0, 0.5, 1.5, 3.5, 7.5]
    assert ("good", 1001.0) in served
    assert queue.failures("bad") == 0
