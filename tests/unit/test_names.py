"""Deterministic Job names."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone

import pytest

from sundial.timing.names import job_name

DNS_1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
INSTANT = datetime(2027, 3, 14, 7, 30, tzinfo=UTC)


def test_a_job_name_reads_as_object_date_time_and_digest() -> None:
    assert job_name("api-v42", INSTANT) == "api-v42-20270314-073000-19eede50"


def test_the_same_instant_in_another_offset_gives_the_same_name() -> None:
    eastern = INSTANT.astimezone(timezone(timedelta(hours=-4)))
    assert job_name("api-v42", eastern) == job_name("api-v42", INSTANT)


def test_the_name_is_the_same_in_another_process_with_another_hash_seed() -> None:
    code = (
        "from datetime import datetime, UTC; from sundial.timing.names import job_name; "
        "print(job_name('api-v42', datetime(2027, 3, 14, 7, 30, tzinfo=UTC)))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert result.stdout.strip() == job_name("api-v42", INSTANT)


@pytest.mark.parametrize(
    "name",
    [
        "a",
        "api-v42",
        "api.v42",
        "x" * 253,
        "a" * 37 + "-" + "b" * 200,
        "db.migration.for.the.big.release.2030",
    ],
)
def test_every_name_is_a_dns_label_of_at_most_63_characters(name: str) -> None:
    result = job_name(name, INSTANT)
    assert len(result) <= 63
    assert DNS_1123_LABEL.match(result), result


def test_names_differ_per_instant_even_by_a_second() -> None:
    assert job_name("api", INSTANT) != job_name("api", INSTANT + timedelta(seconds=1))


def test_long_names_that_share_a_prefix_still_differ() -> None:
    prefix = "release-train-for-the-payments-platform-"
    first, second = job_name(prefix + "europe", INSTANT), job_name(prefix + "asia", INSTANT)
    assert first != second
    assert first[:38] == second[:38]


def test_a_dot_and_a_dash_do_not_collide() -> None:
    assert job_name("api.v42", INSTANT) != job_name("api-v42", INSTANT)


def test_a_naive_instant_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        job_name("api", datetime(2027, 3, 14, 7, 30))
