"""``sundial preview`` on the examples, the good corpus and the bad-input corpus."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sundial.cli import preview
from sundial.cli.main import build_parser, main

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"
NOW = "2027-01-01T00:00:00Z"
LATER = "2100-01-01T00:00:00Z"
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
GOOD = sorted((DATA / "good").glob("*.yaml"))
BAD = sorted((DATA / "bad").glob("*.yaml"))
REASONS = {
    "InvalidTimeZone", "InvalidSchedule", "InvalidRunAt", "NonexistentLocalTime", "AmbiguousLocalTime",
    "DependencyNotFound", "DependencyCycle", "RunAtInPast", "InvalidSpec",
}  # fmt: skip


def run_preview(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any]:
    code = main(["preview", "--now", NOW, "-o", "json", *args])
    return code, json.loads(capsys.readouterr().out)


def as_list(body: Any) -> list[dict[str, Any]]:
    return body if isinstance(body, list) else [body]


def expectations(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"# (reason|apiserver): (.*)", line)
        if match:
            found[match.group(1)] = match.group(2)
    return found


def test_there_are_examples_and_corpora() -> None:
    assert len(EXAMPLES) >= 4
    assert len(GOOD) >= 3
    assert {expectations(path)["reason"] for path in BAD} == REASONS, "every reason has a bad example"


@pytest.mark.parametrize("path", EXAMPLES + GOOD, ids=lambda path: path.name)
def test_good_files_preview_as_valid_with_runs(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, body = run_preview(capsys, "-f", str(path), "--count", "3")
    assert code == 0
    for document in as_list(body):
        assert document["valid"] is True, document
        assert document["runs"], f"{document['name']} has no runs in {path.name}"


@pytest.mark.parametrize("now", [NOW, LATER], ids=["corpus now", "after every date in it"])
@pytest.mark.parametrize("path", BAD, ids=lambda path: path.name)
def test_bad_files_are_refused_with_the_documented_reason(
    path: Path, now: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Also long after every date the files name: tests/integration/test_bad_input.py gives them to the
    operator on the real clock, so a reason must not turn into RunAtInPast once a runAt has passed."""
    expected = expectations(path)
    assert expected.get("apiserver"), f"{path.name} does not say what the API server does with it"
    code, body = run_preview(capsys, "-f", str(path), "--now", now)
    first = as_list(body)[0]
    assert code == 1
    assert (first["valid"], first["reason"]) == (False, expected["reason"])
    assert first["runs"] == []
    assert len(first["message"]) > 20
    assert "pydantic" not in first["message"] and "type=" not in first["message"]


SUGGESTED = [
    (path, command)
    for path in EXAMPLES
    for command in re.findall(r"^#\s+(sundial preview .*)$", path.read_text(encoding="utf-8"), re.MULTILINE)
]


def test_examples_suggest_a_preview() -> None:
    assert {path.name for path, _ in SUGGESTED} >= {"api-v42.yaml", "nightly-berlin-dst.yaml"}


@pytest.mark.parametrize(("path", "command"), SUGGESTED, ids=[path.name for path, _ in SUGGESTED])
def test_the_preview_an_example_suggests_works_on_any_day(
    path: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command gives ``--now``: without it, its output would change (and expire) with today's date."""
    args = command.split()[2:]
    assert "--now" in args, f"{path.name}: {command!r} shows something else once its date has passed"
    assert args[args.index("-f") + 1] == f"examples/{path.name}"
    args[args.index("-f") + 1] = str(path)
    assert main(["preview", *args, "-o", "json"]) == 0, command
    assert all(document["runs"] for document in as_list(json.loads(capsys.readouterr().out))), command


def test_the_api_v42_example_deploys_after_its_migration(capsys: pytest.CaptureFixture[str]) -> None:
    code, body = run_preview(capsys, "-f", str(REPO / "examples" / "api-v42.yaml"))
    assert code == 0
    assert body == [
        {
            "name": "api-v42",
            "namespace": "default",
            "valid": True,
            "reason": None,
            "message": None,
            "timeZone": "Europe/Berlin",
            "runs": [
                {
                    "scheduledTime": "2030-03-14T20:00:00Z",
                    "localTime": "2030-03-14T21:00:00+01:00",
                    "dependencyTime": "2030-03-14T19:45:00Z",
                    "role": "Deploy",
                    "skipped": False,
                    "notes": [],
                }
            ],
        },
        {
            "name": "db-migration",
            "namespace": "default",
            "valid": True,
            "reason": None,
            "message": None,
            "timeZone": "Europe/Berlin",
            "runs": [
                {
                    "scheduledTime": "2030-03-14T19:45:00Z",
                    "localTime": "2030-03-14T20:45:00+01:00",
                    "dependencyTime": None,
                    "role": "Dependency",
                    "skipped": False,
                    "notes": ["runs 15m before 'api-v42' at 2030-03-14T20:00:00Z"],
                }
            ],
        },
    ]


def test_the_berlin_example_shows_both_dst_decisions(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(REPO / "examples" / "nightly-berlin-dst.yaml")
    _, march = run_preview(capsys, "-f", path, "--now", "2027-03-27T12:00:00Z", "--count", "2")
    _, october = run_preview(capsys, "-f", path, "--now", "2027-10-30T12:00:00Z", "--count", "2")
    assert [(run["scheduledTime"], run["skipped"]) for run in march["runs"]] == [
        ("2027-03-28T01:30:00Z", True),
        ("2027-03-29T00:30:00Z", False),
    ]
    assert october["runs"][0]["localTime"] == "2027-10-31T02:30:00+01:00"
    assert "runs once, at the later 02:30 CET" in october["runs"][0]["notes"][0]


def test_one_document_gives_an_object_and_several_a_list_in_file_order(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, single = run_preview(capsys, "-f", str(REPO / "examples" / "ecs-service.yaml"))
    _, several = run_preview(capsys, "-f", str(DATA / "good" / "chain-of-three.yaml"))
    assert isinstance(single, dict)
    assert [document["name"] for document in several] == ["frontend", "api", "schema"]
    assert [document["runs"][0]["scheduledTime"] for document in several] == [
        "2030-05-05T07:00:00Z",
        "2030-05-05T06:45:00Z",
        "2030-05-05T06:15:00Z",
    ]


def test_dash_reads_standard_input(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO((REPO / "examples" / "ecs-service.yaml").read_text()))
    code, body = run_preview(capsys, "-f", "-")
    assert code == 0
    assert body["runs"][0]["localTime"] == "2030-06-01T15:00:00+09:00"


DOCUMENT = """
apiVersion: sundial.dev/v1alpha1
kind: ScheduledDeployment
metadata: {name: unquoted, namespace: %s}
spec:
  runAt: 2027-01-01T09:00:00
  timeZone: Asia/Tokyo
  deployment: {name: api, container: api, image: "registry.example.com/api:v1"}
"""


def test_unquoted_timestamps_stay_text_as_in_kubernetes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "unquoted.yaml"
    path.write_text(DOCUMENT % "default")
    code, body = run_preview(capsys, "-f", str(path))
    assert code == 0
    assert body["runs"][0]["scheduledTime"] == "2027-01-01T00:00:00Z"


def test_dependencies_resolve_only_within_a_namespace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = DOCUMENT % "team-a" + "  dependsOn: {name: helper}\n"
    helper = (DOCUMENT % "team-b").replace("unquoted", "helper").replace("  runAt: 2027-01-01T09:00:00\n", "")
    path = tmp_path / "two-namespaces.yaml"
    path.write_text(first + "---" + helper)
    code, body = run_preview(capsys, "-f", str(path))
    assert code == 1
    assert [(document["namespace"], document["reason"]) for document in body] == [
        ("team-a", "DependencyNotFound"),
        ("team-b", None),
    ]


def test_a_list_from_kubectl_get_is_flattened(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    items = list(yaml.safe_load_all((REPO / "examples" / "api-v42.yaml").read_text()))
    path = tmp_path / "list.yaml"
    path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": items}))
    code, body = run_preview(capsys, "-f", str(path))
    assert code == 0
    assert [document["name"] for document in body] == ["api-v42", "db-migration"]


def test_a_run_at_just_past_is_shown_as_due_now(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "late.yaml"
    path.write_text((DOCUMENT % "default").replace("2027-01-01T09:00:00", '"2027-01-01T08:55"'))
    code, body = run_preview(capsys, "-f", str(path))
    assert code == 0
    assert body["runs"][0]["scheduledTime"] == "2026-12-31T23:55:00Z"
    assert body["runs"][0]["notes"] == ["due now: 5m late, within startingDeadlineSeconds"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("spec: [unclosed", "is not valid YAML"),
        ("", "contains no documents"),
        ("- just\n- a list\n", "is not a mapping"),
    ],
)
def test_unusable_files_are_invalid(
    content: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(content)
    code, body = run_preview(capsys, "-f", str(path))
    assert code == 1
    assert body["valid"] is False
    assert message in body["message"]


def test_a_missing_file_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["preview", "-f", str(tmp_path / "nope.yaml")]) == 2
    assert "cannot read" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args",
    [
        ["--now", "2027-01-01T00:00:00"],
        ["--now", "tomorrow"],
        ["--count", "0"],
        ["--count", "x"],
        ["-o", "xml"],
    ],
)
def test_bad_options_are_usage_errors(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["preview", "-f", "x.yaml", *args])
    assert caught.value.code == 2
    assert "error" in capsys.readouterr().err


def test_the_table_is_for_people(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["preview", "--now", NOW, "-f", str(DATA / "bad" / "dependency-missing.yaml")])
    out = capsys.readouterr().out
    assert code == 1
    assert out.splitlines()[:2] == [
        "default/api-v43  INVALID  DependencyNotFound",
        "    dependsOn names 'db-migraton', but there is no ScheduledDeployment of that name in this "
        "namespace (did you mean 'db-migration'?); create it or correct spec.dependsOn.name of 'api-v43'",
    ]
    assert "default/db-migration  valid  UTC" in out


def test_the_table_lists_runs_and_their_notes(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(REPO / "examples" / "nightly-berlin-dst.yaml")
    assert main(["preview", "--now", "2027-03-27T12:00:00Z", "--count", "1", "-f", path]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "default/search-index-nightly  valid  Europe/Berlin",
        "    SCHEDULED (UTC)       LOCAL                      DEPENDENCY (UTC)      ROLE",
        "    2027-03-28T01:30:00Z  2027-03-28T03:30:00+02:00  -                     Deploy (skipped)",
        "      note: 02:30 does not exist in Europe/Berlin on 2027-03-28 (clocks go forward from 02:00 CET "
        "to 03:00 CEST); skipped (dstPolicy.nonexistentTime: Skip)",
    ]


def test_without_now_the_clock_is_read_once() -> None:
    args = build_parser().parse_args(["preview", "-f", "-", "-o", "json"])
    stdout = io.StringIO()
    reads: list[datetime] = []

    def clock() -> datetime:
        reads.append(datetime(2030, 6, 1, 5, 0, tzinfo=UTC))
        return reads[-1]

    stdin = io.StringIO((REPO / "examples" / "ecs-service.yaml").read_text())
    assert preview.run(args, stdin=stdin, stdout=stdout, clock=clock) == 0
    assert len(reads) == 1
    assert json.loads(stdout.getvalue())["runs"][0]["scheduledTime"] == "2030-06-01T06:00:00Z"
