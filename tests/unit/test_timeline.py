"""``kubectl sundial timeline``: computing and drawing upcoming runs, with a fixed ``now``."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sundial.cli.freezes import read_freezes
from sundial.cli.kubectl_plugin import PluginError, kubeconfig_path
from sundial.cli.timeline import InvalidObject, build_timeline, describe_target, render_json, render_text

NOW = datetime(2027, 3, 13, 22, 0, tzinfo=UTC)
DEPLOY = {"deployment": {"name": "api", "container": "app", "image": "registry.example/api:v42"}}
MIGRATE = {
    "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "m", "image": "reg/migrate:7"}]}}}}
}


def sd(
    namespace: str, name: str, spec: dict[str, Any], status: dict[str, Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "sundial.dev/v1alpha1",
        "kind": "ScheduledDeployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
    if status is not None:
        body["status"] = status
    return body


SHOP = [
    sd(
        "shop",
        "api-v42",
        {"runAt": "2027-03-14T03:30", "timeZone": "America/New_York", "dependsOn": {"name": "db"}, **DEPLOY},
    ),
    sd("shop", "db", MIGRATE),
]
BILLING = [sd("billing", "nightly", {"schedule": "0 23 * * *", "timeZone": "Europe/Berlin", **DEPLOY})]


def test_runs_of_two_namespaces_are_one_timeline_grouped_by_utc_day() -> None:
    timeline = build_timeline([*SHOP, *BILLING], NOW, count=5)
    deploy = "deploy                          deployment/api app=registry.example/api:v42"
    assert render_text(timeline).splitlines() == [
        "Upcoming runs after 2027-03-13 22:00:00 UTC, ahead:",
        "Sun 14 Mar 2027 (UTC)",
        "  07:15:00Z  Sun 07:15 UTC                   shop/db          dependency, 15m before api-v42  "
        "job reg/migrate:7",
        f"  07:30:00Z  Sun 03:30 EDT America/New_York  shop/api-v42     {deploy}",
        f"  22:00:00Z  Sun 23:00 CET Europe/Berlin     billing/nightly  {deploy}",
        "Mon 15 Mar 2027 (UTC)",
        f"  22:00:00Z  Mon 23:00 CET Europe/Berlin     billing/nightly  {deploy}",
        "Tue 16 Mar 2027 (UTC)",
        f"  22:00:00Z  Tue 23:00 CET Europe/Berlin     billing/nightly  {deploy}",
        "  … more runs ahead; raise --count to see them",
    ]


def test_a_run_exactly_at_now_is_not_upcoming() -> None:
    """``now`` itself (22:00 UTC, the nightly instant) is due, not upcoming: the first line is tomorrow's."""
    timeline = build_timeline(BILLING, NOW, count=1)
    assert [entry.run.instant for entry in timeline.entries] == [NOW + timedelta(days=1)]


def test_a_dependency_run_shows_in_its_own_zone_and_how_far_ahead_it_runs() -> None:
    [dependency, deploy] = build_timeline(SHOP, NOW, count=5).entries
    assert (dependency.run.name, dependency.lead, dependency.run.for_object) == (
        "db",
        timedelta(minutes=15),
        "api-v42",
    )
    assert dependency.time_zone == "UTC"
    assert deploy.run.instant - dependency.run.instant == timedelta(minutes=15)


def test_within_keeps_only_the_runs_in_the_window() -> None:
    timeline = build_timeline([*SHOP, *BILLING], NOW, count=50, within=timedelta(hours=12))
    assert [entry.run.name for entry in timeline.entries] == ["db", "api-v42"]
    assert not timeline.truncated
    assert "within 12h:" in render_text(timeline)


def test_invalid_objects_are_listed_apart_with_their_reason() -> None:
    broken = sd("shop", "broken", {"runAt": "2027-03-14T03:30", "timeZone": "Mars/Base", **DEPLOY})
    timeline = build_timeline([*SHOP, broken], NOW, count=5)
    assert [item.name for item in timeline.invalid] == ["broken"]
    text = render_text(timeline)
    assert "Not scheduled (invalid; fix the spec):\n  shop/broken  InvalidTimeZone: " in text
    assert len(timeline.entries) == 2, "one broken object does not hide the others"


def test_a_run_at_that_already_ran_is_not_called_invalid() -> None:
    done = sd("shop", "old", {"runAt": "2027-01-01T00:00", **DEPLOY}, {"runs": [{"scheduledTime": "x"}]})
    never = sd("shop", "late", {"runAt": "2027-01-01T00:00", **DEPLOY})
    timeline = build_timeline([done, never], NOW, count=5)
    assert [(item.name, item.reason) for item in timeline.invalid] == [("late", "RunAtInPast")]
    assert timeline.entries == []


def test_suspended_and_dst_skipped_runs_are_marked() -> None:
    suspended = sd("shop", "paused", {"schedule": "0 4 * * *", "suspend": True, **DEPLOY})
    # 02:30 does not exist in New York on 14 March 2027; Skip records it as skipped.
    skipping = sd(
        "shop",
        "skippy",
        {
            "schedule": "30 2 * * *",
            "timeZone": "America/New_York",
            "dstPolicy": {"nonexistentTime": "Skip"},
            **DEPLOY,
        },
    )
    timeline = build_timeline([suspended, skipping], NOW, count=2)
    text = render_text(timeline)
    assert "! suspended: will be recorded Skipped" in text
    assert "! skipped: " in text
    [first, second] = json.loads(render_json(timeline))["runs"]
    assert (first["name"], first["suspended"]) == ("paused", True)
    assert (second["name"], second["skipped"]) == ("skippy", True)


def test_the_json_form_has_utc_local_role_and_target() -> None:
    body = json.loads(render_json(build_timeline(SHOP, NOW, count=5, within=timedelta(days=1))))
    assert body["now"] == "2027-03-13T22:00:00Z"
    assert body["withinSeconds"] == 86400
    assert body["runs"][0] == {
        "namespace": "shop",
        "name": "db",
        "scheduledTime": "2027-03-14T07:15:00Z",
        "localTime": body["runs"][0]["localTime"],
        "timeZone": "UTC",
        "role": "Dependency",
        "forObject": "api-v42",
        "leadTime": "15m",
        "what": "job reg/migrate:7",
        "suspended": False,
        "skipped": False,
        "notes": ["runs 15m before 'api-v42' at 2027-03-14T07:30:00Z"],
        "freeze": None,
    }
    assert body["runs"][1]["localTime"].startswith("2027-03-14T03:30:00-04:00")
    assert body["invalid"] == []


def test_nothing_ahead_says_so() -> None:
    assert "  (none)\n" in render_text(build_timeline([], NOW, count=5))


@pytest.mark.parametrize(
    ("spec", "what"),
    [
        (DEPLOY, "deployment/api app=registry.example/api:v42"),
        (
            {
                "ecsService": {
                    "cluster": "c",
                    "service": "s",
                    "container": "web",
                    "image": "i:1",
                    "region": "r",
                }
            },
            "ecs c/s web=i:1",
        ),
        (MIGRATE, "job reg/migrate:7"),
    ],
)
def test_what_a_run_deploys_in_a_few_words(spec: dict[str, Any], what: str) -> None:
    assert describe_target(spec) == what


# ---------------------------------------------------------------------------------------------- credentials


def test_credentials_are_found_as_kubectl_finds_them(tmp_path: Path) -> None:
    explicit, listed, home_config = tmp_path / "a", tmp_path / "b", tmp_path / "home" / ".kube" / "config"
    for path in (explicit, listed, home_config):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")
    home = {"HOME": str(tmp_path / "home")}
    assert kubeconfig_path(str(explicit), {**home, "KUBECONFIG": str(listed)}) == str(explicit)
    assert kubeconfig_path(None, {**home, "KUBECONFIG": f"{tmp_path / 'missing'}:{listed}"}).endswith(
        str(listed)
    )
    assert kubeconfig_path(None, home) == str(home_config)


@pytest.mark.parametrize(
    ("explicit", "environ", "says"),
    [
        ("/nonexistent/kubeconfig", {}, "--kubeconfig /nonexistent/kubeconfig: no such file"),
        (None, {"KUBECONFIG": "/nonexistent/a"}, "KUBECONFIG=/nonexistent/a: no such file"),
        (None, {"HOME": "/nonexistent"}, "no kubeconfig: pass --kubeconfig PATH"),
    ],
)
def test_a_missing_kubeconfig_is_a_usage_error(
    explicit: str | None, environ: dict[str, str], says: str
) -> None:
    with pytest.raises(PluginError, match=says) as error:
        kubeconfig_path(explicit, environ)
    assert error.value.code == 2


def test_cluster_text_in_the_timeline_is_printed_escaped() -> None:
    """Names are DNS names, but images and messages are free text: shown, never obeyed by the terminal."""
    hostile_image = "registry.example/api:v42\x1b[2J\x1b]0;owned\x07"
    target = {"deployment": {**DEPLOY["deployment"], "image": hostile_image}}
    timeline = build_timeline([sd("shop", "api", {"runAt": "2027-03-14T03:30", **target})], NOW, count=5)
    hostile = InvalidObject("shop", "bad", "Invalid\u202eSpec", "bad\rgood\u2066")
    text = render_text(replace(timeline, invalid=[hostile]))
    assert not [char for char in text if char in "\x1b\x07\r\u202e\u2066"], repr(text)
    assert "app=registry.example/api:v42\\x1b[2J\\x1b]0;owned\\x07" in text
    assert "shop/bad  Invalid\\u202eSpec: bad\\x0dgood\\u2066" in text
    as_json = render_json(replace(timeline, invalid=[hostile]))
    assert not [char for char in as_json if char != "\n" and not char.isprintable()]
    assert json.loads(as_json)["invalid"][0]["message"] == "bad\rgood\u2066", "JSON keeps the exact text"


# ---------------------------------------------------------------------------------------------- freezes


def freeze_body(name: str, spec: dict[str, Any], namespace: str | None = "shop") -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, **({"namespace": namespace} if namespace else {})}
    kind = "ReleaseFreeze" if namespace else "ClusterReleaseFreeze"
    return {"apiVersion": "sundial.dev/v1alpha1", "kind": kind, "metadata": metadata, "spec": spec}


SUNDAY_MORNING = {
    "reason": "sunday morning freeze",
    "windows": [{"from": "2027-03-14T07:00:00Z", "to": "2027-03-14T08:00:00Z"}],
}


def test_a_freeze_holds_the_run_and_the_dependency_run_that_serves_it() -> None:
    """api-v42 at 07:30Z is in the freeze; db at 07:15Z is too, and would be held for api-v42's sake
    even if it were not."""
    freezes, invalid = read_freezes([freeze_body("sunday", SUNDAY_MORNING)])
    timeline = build_timeline([*SHOP, *BILLING], NOW, count=3, freezes=freezes, invalid_freezes=invalid)
    frozen = {(entry.run.name, entry.run.instant.hour): entry.freeze for entry in timeline.entries}
    assert frozen[("db", 7)] is not None and frozen[("api-v42", 7)] is not None
    assert frozen[("nightly", 22)] is None, "another namespace"
    text = render_text(timeline)
    assert (
        "! frozen: held by ReleaseFreeze shop/sunday (sunday morning freeze), on until 2027-03-14T08:00:00Z: "
        "nothing deploys" in text
    )
    assert text.endswith(
        "Release freezes, windows within 30 days:\n"
        "ReleaseFreeze shop/sunday  Hold  UTC  sunday morning freeze\n"
        "  next    2027-03-14T07:00:00Z to 2027-03-14T08:00:00Z  "
        "Sun 14 Mar 07:00 UTC to Sun 14 Mar 08:00 UTC  from 2027-03-14T07:00:00Z to 2027-03-14T08:00:00Z\n"
    )


def test_a_dependency_run_outside_the_freeze_is_held_for_the_dependent_it_serves() -> None:
    late_start = {
        **SUNDAY_MORNING,
        "windows": [{"from": "2027-03-14T07:20:00Z", "to": "2027-03-14T08:00:00Z"}],
    }
    freezes, _ = read_freezes([freeze_body("sunday", late_start)])
    [db, api] = build_timeline(SHOP, NOW, count=2, freezes=freezes).entries
    assert db.freeze is not None and db.freeze.served == "api-v42"
    assert api.freeze is not None and api.freeze.served is None


def test_the_json_form_carries_each_runs_freeze_and_the_freezes() -> None:
    freezes, invalid = read_freezes(
        [
            freeze_body("sunday", {**SUNDAY_MORNING, "action": "Defer"}, namespace=None),
            freeze_body("typo", {**SUNDAY_MORNING, "timeZone": "Mars/Olympus"}),
        ]
    )
    timeline = build_timeline(SHOP, NOW, count=2, freezes=freezes, invalid_freezes=invalid)
    body = json.loads(render_json(timeline))
    deferred = body["runs"][1]["freeze"]
    assert (deferred["action"], deferred["freeze"], deferred["until"]) == (
        "Defer",
        "ClusterReleaseFreeze sunday",
        "2027-03-14T08:00:00Z",
    )
    assert [(item["name"], item["valid"]) for item in body["freezes"]] == [("sunday", True), ("typo", False)]
    assert body["freezes"][1]["reason"] == "InvalidTimeZone"
    assert body["freezesUnread"] is None
    assert "Invalid (they freeze nothing; fix the spec):\n  ReleaseFreeze shop/typo  InvalidTimeZone: " in (
        render_text(timeline)
    )
