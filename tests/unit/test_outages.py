"""An API outage is waited out quietly and never holds a thread forever; a bug still shows its traceback."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
import urllib3
from kubernetes.client.exceptions import ApiException

from sundial.controller import API_TIMEOUT, FIRE_TIMEOUT, Controller, ControllerSettings, is_outage
from sundial.wakeups import RETRY_SECONDS, WakeupQueue


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

    controller = Controller(None, ControllerSettings(api_threads=1))

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

    with caplog.at_level(logging.WARNING, logger="sundial.wakeups"):
        return asyncio.run(serve())


def test_an_outage_is_one_line_and_retried(caplog: pytest.LogCaptureFixture) -> None:
    retry_at = run_one_failing_reconcile(ApiException(status=503, reason="Service Unavailable"), caplog)
    assert retry_at == 1000.0 + RETRY_SECONDS
    (record,) = caplog.records
    assert record.levelno == logging.WARNING and record.exc_info is None
    assert "Service Unavailable" in record.getMessage()


def test_a_bug_keeps_its_traceback_and_is_retried(caplog: pytest.LogCaptureFixture) -> None:
    retry_at = run_one_failing_reconcile(KeyError("metadata"), caplog)
    assert retry_at == 1000.0 + RETRY_SECONDS
    (record,) = caplog.records
    assert record.levelno == logging.ERROR and record.exc_info is not None
