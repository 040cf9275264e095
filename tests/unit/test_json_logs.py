"""``sundial run --log-format json``: the fields docs/operations.md promises, and none of kopf's internals."""

from __future__ import annotations

import json
import logging
import re
import sys

from sundial.cli.run import JsonLogFormatter


def formatted(record: logging.LogRecord) -> dict[str, object]:
    return dict(json.loads(JsonLogFormatter().format(record)))


def record(level: int, message: str, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("sundial.runtime.controller", level, __file__, 1, message, None, None)
    made.__dict__.update(extra)
    made.created, made.msecs = 1_805_000_000.25, 250.0  # 2027-03-14T04:53:20.250Z
    return made


def test_a_line_has_time_in_utc_with_milliseconds_a_lowercase_level_the_logger_and_the_message() -> None:
    line = formatted(record(logging.WARNING, "could not create shop/api-1"))
    assert line == {
        "time": "2027-03-14T04:53:20.250Z",
        "level": "warning",
        "logger": "sundial.runtime.controller",
        "message": "could not create shop/api-1",
    }


def test_an_exception_keeps_its_traceback_and_kopf_reports_the_object_but_not_its_settings() -> None:
    try:
        raise KeyError("metadata")
    except KeyError:
        failing = record(logging.ERROR, "boom", exc_info=sys.exc_info())
    assert re.search(r"Traceback .*KeyError: 'metadata'", str(formatted(failing)["exception"]), re.S)
    ref = {"kind": "ScheduledDeployment", "namespace": "shop", "name": "api"}
    kopf = formatted(record(logging.WARNING, "failed", k8s_ref=ref, k8s_skip=False, settings=object()))
    assert kopf["object"] == ref
    assert not {"k8s_skip", "settings", "k8s_ref"} & set(kopf)
