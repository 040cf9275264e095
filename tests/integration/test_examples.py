"""Every file in ``examples/`` is applied as a user would, with ``kubectl apply -f``, and armed by the
operator exactly as ``sundial preview`` says offline.

An example's runAt is a date a reader replaces with their own, and it would expire where it stands: the
test moves it to the same date and wall-clock time in a year after today (`in_a_later_year`) on every run,
so the examples stay meaningful and the test stays valid whatever year it runs in. ``tests/unit`` checks
the files as written, at a fixed "now".
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import REPO, Cluster
from sdhelpers import StartOperator, read_sd, wait_for_condition
from sundial.cli.preview import preview_documents

EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
RUN_AT = re.compile(r"(?P<year>\d{4})(?P<rest>-(?P<month>\d\d)-(?P<day>\d\d)T.*)", re.DOTALL)

pytestmark = pytest.mark.integration


def in_a_later_year(document: dict[str, Any], today: date) -> dict[str, Any]:
    """``document`` with its runAt (if any) in the first year after ``today``'s that has its date."""
    spec = document.get("spec") or {}
    if "runAt" not in spec:
        return document
    match = RUN_AT.fullmatch(spec["runAt"])
    assert match, f"{document['metadata']['name']}: runAt {spec['runAt']!r} does not start with a date"
    year = today.year + 1
    while True:  # 29 February waits for a leap year
        try:
            date(year, int(match["month"]), int(match["day"]))
            break
        except ValueError:
            year += 1
    return {**document, "spec": {**spec, "runAt": f"{year}{match['rest']}"}}


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 4


def test_a_run_at_moves_to_a_later_year_and_keeps_its_wall_clock_time() -> None:
    def moved(run_at: str, today: date) -> str:
        document = {"metadata": {"name": "x"}, "spec": {"runAt": run_at}}
        return str(in_a_later_year(document, today)["spec"]["runAt"])

    assert moved("2030-03-14T21:00", date(2026, 12, 2)) == "2027-03-14T21:00"
    assert moved("2030-03-14T21:00", date(2031, 3, 15)) == "2032-03-14T21:00"
    assert moved("2030-06-01T06:00:00Z", date(2040, 1, 1)) == "2041-06-01T06:00:00Z"
    assert moved("2028-02-29T09:00", date(2028, 3, 1)) == "2032-02-29T09:00"
    schedule = {"metadata": {"name": "x"}, "spec": {"schedule": "30 2 * * *"}}
    assert in_a_later_year(schedule, date(2030, 1, 1)) == schedule


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.name)
def test_each_example_applies_and_is_armed_as_the_preview_says(
    crds: Cluster, deployer_namespace: str, start_operator: StartOperator, example: Path
) -> None:
    namespace = deployer_namespace
    start_operator(namespace)
    now = datetime.now(UTC)
    written = [doc for doc in yaml.safe_load_all(example.read_text(encoding="utf-8")) if doc]
    documents = [in_a_later_year(document, now.date()) for document in written]
    crds.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(documents, sort_keys=False))
    previews = [preview.to_json() for preview in preview_documents(documents, now, count=1)]
    assert previews and all(preview["valid"] for preview in previews), (example.name, previews)
    for preview in previews:
        name = preview["name"]
        ready = wait_for_condition(crds, namespace, name, "Ready", "True", timeout=60)
        status = read_sd(crds, namespace, name)["status"]
        expected = preview["runs"][0]["scheduledTime"] if preview["runs"] else None
        assert status.get("nextRunTime") == expected, (name, status, ready)
        assert ready["reason"] == "Armed", (name, ready)
