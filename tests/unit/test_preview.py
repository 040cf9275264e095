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


def has_runs_or_windows(document: dict[str, Any]) -> bool:
    """A ScheduledDeployment's runs, or a freeze's windows: what a good example shows."""
    return bool(document["runs"] or document.get("windows"))


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
        assert has_runs_or_windows(document), f"{document['name']} has no runs in {path.name}"


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
    assert all(has_runs_or_windows(d) for d in as_list(json.loads(capsys.readouterr().out))), command


def test_the_api_v42_example_deploys_after_its_migration(capsys: pytest.CaptureFixture[str]) -> None:
    code, body = run_preview(capsys, "-f", str(REPO / "examples" / "api-v42.yaml"))
    assert code == 0
    assert body == [
        {
            "kind": "ScheduledDeployment",
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
                    "freeze": None,
                }
            ],
        },
        {
            "kind": "ScheduledDeployment",
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
                    "freeze": None,
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


# ---------------------------------------------------------------------------------------------- freezes

NIGHTLY = """
apiVersion: sundial.dev/v1alpha1
kind: ScheduledDeployment
metadata: {name: nightly, namespace: shop}
spec:
  schedule: "0 20 * * *"
  timeZone: Europe/Berlin
  startingDeadlineSeconds: 3600
  deployment: {name: api, container: api, image: "registry.example/api:v42"}
"""
WEEKEND_FREEZE = """
apiVersion: sundial.dev/v1alpha1
kind: ReleaseFreeze
metadata: {name: weekend, namespace: shop}
spec:
  reason: no deploys at the weekend
  timeZone: Europe/Berlin
  weekly: [{startDay: Friday, startTime: "18:00", endDay: Monday, endTime: "08:00"}]
"""
THURSDAY_MAINTENANCE = """
apiVersion: sundial.dev/v1alpha1
kind: ClusterReleaseFreeze
metadata: {name: thursday-maintenance}
spec:
  reason: database maintenance
  action: Defer
  timeZone: Europe/Berlin
  recurring: [{schedule: "30 19 * * 4", duration: 1h}]
"""
WEDNESDAY = "2027-12-08T12:00:00Z"


def write(tmp_path: Path, *documents: str) -> str:
    path = tmp_path / "set.yaml"
    path.write_text("---".join(documents))
    return str(path)


def test_runs_in_a_hold_freeze_are_held_and_in_a_defer_freeze_deferred(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, NIGHTLY, WEEKEND_FREEZE, THURSDAY_MAINTENANCE)
    code, body = run_preview(capsys, "-f", path, "--now", WEDNESDAY, "--count", "4")
    assert code == 0
    nightly, weekend, thursday = body
    assert [(run["scheduledTime"], run["freeze"] and run["freeze"]["action"]) for run in nightly["runs"]] == [
        ("2027-12-08T19:00:00Z", None),
        ("2027-12-09T19:00:00Z", "Defer"),  # Thursday 20:00 in Berlin, inside 19:30 to 20:30
        ("2027-12-10T19:00:00Z", "Hold"),  # Friday 20:00, the weekend has begun
        ("2027-12-11T19:00:00Z", "Hold"),
    ]
    assert nightly["runs"][1]["freeze"] == {
        "action": "Defer",
        "freeze": "ClusterReleaseFreeze thursday-maintenance",
        "reason": "database maintenance",
        "until": "2027-12-09T19:30:00Z",
        "served": None,
        "pastDeadline": False,
        "message": "deferred to 2027-12-09T19:30:00Z by ClusterReleaseFreeze thursday-maintenance "
        "(database maintenance)",
    }
    assert nightly["runs"][2]["freeze"]["freeze"] == "ReleaseFreeze shop/weekend"
    assert nightly["runs"][2]["freeze"]["until"] == "2027-12-13T07:00:00Z"
    assert (weekend["kind"], weekend["valid"], weekend["action"]) == ("ReleaseFreeze", True, "Hold")
    assert weekend["windows"][0] == {
        "start": "2027-12-10T17:00:00Z",
        "end": "2027-12-13T07:00:00Z",
        "localStart": "2027-12-10T18:00:00+01:00",
        "localEnd": "2027-12-13T08:00:00+01:00",
        "rule": "weekly Friday 18:00 to Monday 08:00",
        "active": False,
    }
    assert (thursday["namespace"], thursday["freezeReason"]) == (None, "database maintenance")


def test_a_run_deferred_past_its_starting_deadline_is_said_to_be_missed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ten minutes of startingDeadlineSeconds (the default) do not reach the end of a 30-minute deferral."""
    impatient = NIGHTLY.replace("startingDeadlineSeconds: 3600", "startingDeadlineSeconds: 600")
    _, body = run_preview(capsys, "-f", write(tmp_path, impatient, THURSDAY_MAINTENANCE), "--now", WEDNESDAY)
    deferred = body[0]["runs"][1]["freeze"]
    assert (deferred["action"], deferred["pastDeadline"]) == ("Defer", True)
    assert deferred["message"].endswith(
        "after its startingDeadlineSeconds ran out at 2027-12-09T19:10:00Z: it will be recorded Missed "
        "(FrozenPastDeadline) and nothing deploys"
    )


def test_the_table_says_which_freeze_holds_or_defers_a_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, NIGHTLY, WEEKEND_FREEZE, THURSDAY_MAINTENANCE)
    assert main(["preview", "--now", WEDNESDAY, "--count", "3", "-f", path]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:8] == [
        "shop/nightly  valid  Europe/Berlin",
        "    SCHEDULED (UTC)       LOCAL                      DEPENDENCY (UTC)      ROLE",
        "    2027-12-08T19:00:00Z  2027-12-08T20:00:00+01:00  -                     Deploy",
        "    2027-12-09T19:00:00Z  2027-12-09T20:00:00+01:00  -                     Deploy (deferred)",
        "      frozen: deferred to 2027-12-09T19:30:00Z by ClusterReleaseFreeze thursday-maintenance "
        "(database maintenance)",
        "    2027-12-10T19:00:00Z  2027-12-10T20:00:00+01:00  -                     Deploy (held)",
        "      frozen: held by ReleaseFreeze shop/weekend (no deploys at the weekend), on until "
        "2027-12-13T07:00:00Z: nothing deploys",
        "ReleaseFreeze shop/weekend  valid  Europe/Berlin  Hold  no deploys at the weekend",
    ]
    assert lines[8] == (
        "    2027-12-10T17:00:00Z to 2027-12-13T07:00:00Z  Fri 10 Dec 2027 18:00 CET to Mon 13 Dec 2027 "
        "08:00 CET  weekly Friday 18:00 to Monday 08:00"
    )


def test_a_freeze_in_another_namespace_or_one_that_exempts_the_object_freezes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    elsewhere = WEEKEND_FREEZE.replace("namespace: shop", "namespace: billing")
    exempting = WEEKEND_FREEZE.replace("name: weekend", "name: exempting") + (
        "  exemptSelector: {matchLabels: {app: api}}\n"
    )
    labelled = NIGHTLY.replace("namespace: shop}", "namespace: shop, labels: {app: api}}")
    _, body = run_preview(capsys, "-f", write(tmp_path, labelled, elsewhere, exempting), "--now", WEDNESDAY)
    assert [run["freeze"] for run in body[0]["runs"]] == [None] * 5


def test_a_release_freeze_without_a_namespace_freezes_the_default_namespace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    in_default = NIGHTLY.replace(", namespace: shop", "")
    freeze = WEEKEND_FREEZE.replace(", namespace: shop", "")
    _, body = run_preview(capsys, "-f", write(tmp_path, in_default, freeze), "--now", WEDNESDAY)
    assert body[1]["namespace"] == "default"
    assert body[0]["runs"][2]["freeze"]["freeze"] == "ReleaseFreeze default/weekend"


def test_an_invalid_freeze_is_reported_like_an_invalid_scheduled_deployment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    typo = WEEKEND_FREEZE.replace("timeZone: Europe/Berlin", "timeZone: Europe/Berlln")
    no_window = "\napiVersion: sundial.dev/v1alpha1\nkind: ClusterReleaseFreeze\nmetadata: {name: when}\n"
    no_window += "spec: {reason: x}\n"
    code, body = run_preview(capsys, "-f", write(tmp_path, NIGHTLY, typo, no_window), "--now", WEDNESDAY)
    assert code == 1
    _, invalid, empty = body
    assert (invalid["kind"], invalid["valid"], invalid["reason"]) == (
        "ReleaseFreeze",
        False,
        "InvalidTimeZone",
    )
    assert "Europe/Berlln" in invalid["message"]
    assert (empty["valid"], empty["reason"]) == (False, "InvalidSpec")
    assert "a freeze needs at least one of weekly, recurring" in empty["message"]
    assert [run["freeze"] for run in body[0]["runs"]] == [None] * 5, "an invalid freeze freezes nothing"
    main(["preview", "--now", WEDNESDAY, "-f", write(tmp_path, typo)])
    assert capsys.readouterr().out.splitlines()[0] == "ReleaseFreeze shop/weekend  INVALID  InvalidTimeZone"


def test_a_freeze_kind_of_another_api_version_is_not_a_freeze(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = WEEKEND_FREEZE.replace("sundial.dev/v1alpha1", "example.com/v1")
    code, body = run_preview(capsys, "-f", write(tmp_path, NIGHTLY, other), "--now", WEDNESDAY)
    assert code == 1
    assert (body[1]["kind"], body[1]["reason"]) == ("ScheduledDeployment", "InvalidSpec")
    assert "apiVersion must be sundial.dev/v1alpha1" in body[1]["message"]
    assert body[0]["runs"][2]["freeze"] is None


APPROVAL_SET = """
apiVersion: sundial.dev/v1alpha1
kind: ScheduledDeployment
metadata: {name: api, namespace: shop}
spec:
  runAt: "2027-02-10T03:00"
  timeZone: America/New_York
  approval: {required: true, groups: [release-managers]}
  deployment: {name: api, container: api, image: registry.example/api:v42}
---
apiVersion: sundial.dev/v1alpha1
kind: DeploymentApproval
metadata: {name: by-mallory, namespace: shop}
spec:
  scheduledDeployment: api
  scheduledTime: "2027-02-10T08:00:00Z"
  approver: mallory
  approverGroups: [dev]
"""


def test_preview_says_a_run_needs_approval_when_the_file_sets_approvals_do_not_count() -> None:
    documents = preview.load_documents(APPROVAL_SET)
    api, approval = preview.preview_documents(documents, datetime(2027, 2, 9, tzinfo=UTC), count=1)
    [run] = api.runs
    assert run.notes[-1] == (
        "needs approval by a member of release-managers (none in the file set): "
        "kubectl sundial approve api --run 2027-02-10T08:00:00Z"
    )
    assert approval.to_json()["approves"] == {
        "scheduledDeployment": "api",
        "scheduledTime": "2027-02-10T08:00:00Z",
        "approver": "mallory",
    }


def test_preview_refuses_an_approval_whose_run_is_not_an_instant_in_utc() -> None:
    bad = APPROVAL_SET.replace('scheduledTime: "2027-02-10T08:00:00Z"', 'scheduledTime: "2027-02-10T03:00"')
    documents = preview.load_documents(bad)
    _, approval = preview.preview_documents(documents, datetime(2027, 2, 9, tzinfo=UTC), count=1)
    body = approval.to_json()
    assert (body["valid"], body["reason"]) == (False, "InvalidSpec")
    assert body["message"].startswith("spec.scheduledTime: scheduledTime must be the run's instant in UTC")


def test_preview_reads_a_freezes_calendar_from_a_configmap_in_the_file_set_and_says_when_there_is_none() -> (
    None
):
    text = (REPO / "examples" / "freezes" / "holidays.yaml").read_text(encoding="utf-8")
    documents = preview.load_documents(text)
    previews = preview.preview_documents(documents, datetime(2027, 10, 25, 6, tzinfo=UTC), count=3)
    assert [p.kind for p in previews] == ["ReleaseFreeze", "ScheduledDeployment"], (
        "the ConfigMap is not listed"
    )
    assert previews[0].valid
    without = [d for d in documents if d.get("kind") != "ConfigMap"]
    freeze, _ = preview.preview_documents(without, datetime(2027, 10, 25, 6, tzinfo=UTC), count=3)
    assert freeze.to_json()["reason"] == "CalendarNotFound"
