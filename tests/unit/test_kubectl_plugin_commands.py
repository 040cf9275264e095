"""The plugin's commands over a fake API: what they write, what they print, their exit status.

The fake stands in for kubernetes.client.CustomObjectsApi (the three calls the plugin makes); the real
API server is exercised by tests/integration/test_kubectl_plugin.py.
"""

from __future__ import annotations

import argparse
import copy
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from sundial.cli.freezes import build_stop_the_line
from sundial.cli.kubectl_plugin import (
    Api,
    PluginError,
    build_parser,
    cmd_freeze,
    cmd_freezes,
    cmd_suspend,
    cmd_timeline,
    cmd_trigger,
    cmd_unfreeze,
    main,
)
from sundial.decide.freezes import Freeze, read_freeze
from sundial.timing.freezes import window_at
from sundial.timing.names import manual_job_name

NOW = datetime(2026, 11, 27, 9, 0, 0, 123_000, tzinfo=UTC)
REQUEST = "2026-11-27T09:00:00.123Z"
TARGET = {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "m", "image": "i"}]}}}}}


PLURALS = {
    "ScheduledDeployment": "scheduleddeployments",
    "ReleaseFreeze": "releasefreezes",
    "ClusterReleaseFreeze": "clusterreleasefreezes",
    "DeploymentApproval": "deploymentapprovals",
}


def not_found(name: str) -> Exception:
    from kubernetes.client.exceptions import ApiException

    error = ApiException(status=404, reason="Not Found")
    error.body = json.dumps({"message": "not found", "details": {"name": name}})
    return error


class FakeCustomObjects:
    """The CustomObjectsApi calls the plugin makes, over objects kept by (plural, namespace, name).

    Records patches, creates and deletes; each get returns the next of ``statuses`` if given. Objects
    given without a namespace (cluster-scoped) have namespace None."""

    def __init__(self, objects: list[dict[str, Any]], statuses: list[dict[str, Any]] | None = None) -> None:
        self.store: dict[tuple[str, str | None, str], dict[str, Any]] = {}
        for obj in objects:
            self.add(obj)
        self.patches: list[tuple[str, dict[str, Any]]] = []
        self.created: list[tuple[str, str | None, dict[str, Any]]] = []
        self.deleted: list[tuple[str, str | None, str]] = []
        self.statuses = list(statuses or [])

    def add(self, obj: dict[str, Any]) -> None:
        metadata = obj["metadata"]
        self.store[(PLURALS[obj["kind"]], metadata.get("namespace"), metadata["name"])] = obj

    def _items(self, plural: str, namespace: str | None = None) -> dict[str, Any]:
        items = [
            copy.deepcopy(obj)
            for (kind, where, _), obj in sorted(self.store.items(), key=lambda item: str(item[0]))
            if kind == plural and (namespace is None or where == namespace)
        ]
        return {"items": items}

    def get_namespaced_custom_object(self, *args: Any, _request_timeout: Any = None) -> dict[str, Any]:
        _, _, namespace, plural, name = args
        if (plural, namespace, name) not in self.store:
            raise not_found(name)
        body = copy.deepcopy(self.store[(plural, namespace, name)])
        if self.statuses:
            body["status"] = self.statuses.pop(0)
        return body

    def list_namespaced_custom_object(self, *args: Any, _request_timeout: Any = None) -> dict[str, Any]:
        _, _, namespace, plural = args
        return self._items(plural, namespace)

    def list_cluster_custom_object(self, *args: Any, _request_timeout: Any = None) -> dict[str, Any]:
        return self._items(args[2])

    def patch_namespaced_custom_object(self, *args: Any, _request_timeout: Any = None) -> dict[str, Any]:
        _, _, namespace, plural, name, patch = args
        self.patches.append((name, patch))
        return copy.deepcopy(self.store[(plural, namespace, name)])

    def _create(self, plural: str, namespace: str | None, body: dict[str, Any]) -> dict[str, Any]:
        from kubernetes.client.exceptions import ApiException

        key = (plural, namespace, body["metadata"]["name"])
        if key in self.store:
            error = ApiException(status=409, reason="Conflict")
            error.body = json.dumps({"message": "already exists", "details": {"name": key[2]}})
            raise error
        self.created.append((plural, namespace, copy.deepcopy(body)))
        self.store[key] = copy.deepcopy(body)
        return copy.deepcopy(body)

    def create_namespaced_custom_object(self, *args: Any, _request_timeout: Any = None) -> dict[str, Any]:
        _, _, namespace, plural, body = args
        return self._create(plural, namespace, body)

    def create_cluster_custom_object(self, *args: Any, _request_timeout: Any = None) -> dict[str, Any]:
        _, _, plural, body = args
        return self._create(plural, None, body)

    def _delete(self, plural: str, namespace: str | None, name: str) -> dict[str, Any]:
        if self.store.pop((plural, namespace, name), None) is None:
            raise not_found(name)
        self.deleted.append((plural, namespace, name))
        return {"status": "Success"}

    def delete_namespaced_custom_object(self, *args: Any, _request_timeout: Any = None) -> dict[str, Any]:
        _, _, namespace, plural, name = args
        return self._delete(plural, namespace, name)

    def delete_cluster_custom_object(self, *args: Any, _request_timeout: Any = None) -> dict[str, Any]:
        _, _, plural, name = args
        return self._delete(plural, None, name)


def sd(name: str, spec: dict[str, Any], status: dict[str, Any] | None = None) -> dict[str, Any]:
    body = {
        "apiVersion": "sundial.dev/v1alpha1",
        "kind": "ScheduledDeployment",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": spec,
    }
    if status is not None:
        body["status"] = status
    return body


def args_for(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args([*argv, "-n", "shop"])


def run(command: Any, fake: FakeCustomObjects, *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = command(args_for(*argv), Api(fake, "https://127.0.0.1:6443", "shop"), out, NOW)
    return code, out.getvalue()


def test_trigger_writes_the_request_as_the_annotation_and_names_the_job() -> None:
    fake = FakeCustomObjects([sd("api", {"runAt": "2026-12-01T09:00", **TARGET})])
    code, out = run(cmd_trigger, fake, "trigger", "api")
    assert code == 0
    assert fake.patches == [("api", {"metadata": {"annotations": {"sundial.dev/trigger": REQUEST}}})]
    assert manual_job_name("api", REQUEST, datetime(2026, 11, 27, 9, 0, 0, 123_000, tzinfo=UTC)) in out


def test_trigger_of_a_dependent_says_its_dependency_does_not_run() -> None:
    fake = FakeCustomObjects([sd("api", {"dependsOn": {"name": "db"}, **TARGET}), sd("db", TARGET)])
    _, out = run(cmd_trigger, fake, "trigger", "api")
    assert "dependency 'db' is neither run nor waited for" in out


def test_trigger_of_an_invalid_object_writes_nothing() -> None:
    fake = FakeCustomObjects([sd("api", {"dependsOn": {"name": "gone"}, **TARGET})])
    with pytest.raises(PluginError, match=r"cannot trigger shop/api: it is invalid \(DependencyNotFound"):
        run(cmd_trigger, fake, "trigger", "api")
    assert fake.patches == []


def test_a_request_already_served_is_not_written_again() -> None:
    status = {"lastTrigger": REQUEST, "runs": [{"trigger": REQUEST, "result": "Succeeded", "jobName": "j"}]}
    fake = FakeCustomObjects([sd("api", TARGET, status)])
    code, out = run(cmd_trigger, fake, "trigger", "api", "--request", REQUEST)
    assert code == 0
    assert "was already served (Succeeded, Job j); nothing new runs" in out
    assert fake.patches == []


@pytest.mark.parametrize(
    ("result", "code"),
    [("Succeeded", 0), ("Failed", 1), ("Skipped", 1)],
    ids=["succeeded", "failed", "refused"],
)
def test_trigger_wait_follows_the_run_to_its_result(
    result: str, code: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sundial.cli.kubectl_plugin.time.sleep", lambda seconds: None)
    running = {"runs": [{"trigger": REQUEST, "result": "Running", "message": "the Job is running"}]}
    done = {"runs": [{"trigger": REQUEST, "result": result, "message": "m"}]}
    fake = FakeCustomObjects([sd("api", TARGET)], statuses=[{}, running, done])
    exit_code, out = run(cmd_trigger, fake, "trigger", "api", "--wait", "--timeout", "30s")
    assert exit_code == code
    assert out.splitlines()[-2:] == ["Running: the Job is running", f"{result}: m"]


def test_a_missing_object_is_not_found() -> None:
    with pytest.raises(PluginError, match="scheduleddeployment shop/nope not found") as error:
        run(cmd_trigger, FakeCustomObjects([]), "trigger", "nope")
    assert error.value.code == 1


def test_suspending_a_run_at_says_when_it_would_be_lost_and_that_gitops_reverts_it() -> None:
    fake = FakeCustomObjects([sd("api", {"runAt": "2026-12-01T09:00", **TARGET})])
    code, out = run(cmd_suspend, fake, "suspend", "api")
    assert code == 0
    assert fake.patches == [("api", {"spec": {"suspend": True}})]
    assert "its runAt 2026-12-01T09:00 deploys only if you resume before then" in out
    assert "GitOps" in out


def test_resuming_after_the_run_at_passed_says_it_will_not_run() -> None:
    status = {"runs": [{"result": "Skipped", "reason": "Suspended"}]}
    fake = FakeCustomObjects([sd("api", {"runAt": "2026-11-01T09:00", "suspend": True, **TARGET}, status)])
    _, out = run(cmd_suspend, fake, "resume", "api")
    assert fake.patches == [("api", {"spec": {"suspend": False}})]
    assert "passed while suspended and will not run; set a new runAt" in out


def test_suspending_twice_changes_nothing() -> None:
    fake = FakeCustomObjects([sd("api", {"schedule": "@daily", "suspend": True, **TARGET})])
    code, out = run(cmd_suspend, fake, "suspend", "api")
    assert (code, fake.patches) == (0, [])
    assert "already suspended" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["timeline", "--within", "soon"],
        ["timeline", "--count", "0"],
        ["trigger"],
        ["trigger", "api", "--timeout", "forever"],
        ["launch"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(argv)
    assert exit_.value.code == 2
    assert "usage: kubectl sundial" in capsys.readouterr().err


def test_every_command_has_examples_in_its_help() -> None:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in subparsers.choices.items():
        assert "examples:" in command.format_help(), name
        assert f"kubectl sundial {name} " in command.format_help(), name


# ---------------------------------------------------------------------------------------------- hostile text

ESCAPE = "\x1b[2J\x1b]0;owned\x07"
"""Clear the screen and retitle the window: what a status message must never do to the user's terminal."""
OVERRIDE = "\u202e"


def assert_inert(text: str) -> None:
    assert "\x1b" not in text and "\x07" not in text and OVERRIDE not in text, repr(text)


def test_a_hostile_run_message_is_printed_escaped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sundial.cli.kubectl_plugin.time.sleep", lambda seconds: None)
    message = f"rolled back{ESCAPE}\rSucceeded{OVERRIDE}deliaF"
    done = {"runs": [{"trigger": REQUEST, "result": "Failed", "message": message}]}
    fake = FakeCustomObjects([sd("api", TARGET)], statuses=[{}, done])
    code, out = run(cmd_trigger, fake, "trigger", "api", "--wait", "--timeout", "30s")
    assert code == 1
    assert_inert(out)
    assert out.splitlines()[-1] == "Failed: rolled back\\x1b[2J\\x1b]0;owned\\x07\\x0dSucceeded\\u202edeliaF"


def test_a_hostile_job_name_and_result_of_a_served_request_are_printed_escaped() -> None:
    status = {
        "lastTrigger": REQUEST,
        "runs": [{"trigger": REQUEST, "result": f"Ok{ESCAPE}", "jobName": "j\n"}],
    }
    _, out = run(
        cmd_trigger, FakeCustomObjects([sd("api", TARGET, status)]), "trigger", "api", "--request", REQUEST
    )
    assert_inert(out)
    assert "(Ok\\x1b[2J\\x1b]0;owned\\x07, Job j\\x0a)" in out


def test_a_hostile_dependency_name_and_run_at_are_printed_escaped() -> None:
    fake = FakeCustomObjects(
        [sd("api", {"dependsOn": {"name": f"db{OVERRIDE}"}, **TARGET}), sd(f"db{OVERRIDE}", TARGET)]
    )
    _, out = run(cmd_trigger, fake, "trigger", "api")
    assert_inert(out)
    assert "dependency 'db\\u202e' is neither run nor waited for" in out
    fake = FakeCustomObjects([sd("api", {"runAt": f"2026-12-01T09:00{ESCAPE}", **TARGET})])
    _, out = run(cmd_suspend, fake, "suspend", "api")
    assert_inert(out)


def test_an_api_server_error_is_printed_escaped(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The API server's message (a webhook's, say) reaches the user through every PluginError."""
    from kubernetes.client.exceptions import ApiException

    class Forbidding(FakeCustomObjects):
        def get_namespaced_custom_object(self, *args: Any, _request_timeout: Any = None) -> dict[str, Any]:
            error = ApiException(status=403, reason="Forbidden")
            error.body = json.dumps({"message": f"denied by webhook{ESCAPE}{OVERRIDE}"})
            raise error

    api = Api(Forbidding([]), "https://127.0.0.1:6443", "shop")
    monkeypatch.setattr("sundial.cli.kubectl_plugin.connect", lambda args, environ: api)
    assert main(["trigger", "api", "-n", "shop"], environ={}, clock=lambda: NOW) == 1
    err = capsys.readouterr().err
    assert_inert(err)
    assert "forbidden: denied by webhook\\x1b[2J" in err


# ---------------------------------------------------------------------------------------------- freezes

BERLIN = ZoneInfo("Europe/Berlin")
FRIDAY = datetime(2027, 3, 26, 12, 0, tzinfo=UTC)
"""The Friday before Berlin's clocks go forward (Sunday 28 March 2027, 02:00 CET to 03:00 CEST)."""


def freeze_args(*argv: str) -> argparse.Namespace:
    """Parsed as given: unlike `args_for`, no ``-n`` is added (``--all`` refuses one)."""
    return build_parser().parse_args(list(argv))


def release_freeze(name: str, spec: dict[str, Any], namespace: str | None = "shop") -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    return {
        "apiVersion": "sundial.dev/v1alpha1",
        "kind": "ReleaseFreeze" if namespace is not None else "ClusterReleaseFreeze",
        "metadata": metadata,
        "spec": spec,
    }


WEEKEND = {
    "reason": "weekend",
    "timeZone": "Europe/Berlin",
    "weekly": [{"startDay": "Friday", "startTime": "18:00", "endDay": "Monday", "endTime": "08:00"}],
}


def test_freeze_all_creates_a_cluster_freeze_from_now_for_the_duration() -> None:
    fake = FakeCustomObjects([])
    out = io.StringIO()
    args = freeze_args("freeze", "--all", "--for", "2h", "--reason", "incident 4711")
    api = Api(fake, "https://127.0.0.1:6443", "shop")
    assert cmd_freeze(args, api, out, NOW, local_zone=BERLIN) == 0
    assert fake.created == [
        (
            "clusterreleasefreezes",
            None,
            {
                "apiVersion": "sundial.dev/v1alpha1",
                "kind": "ClusterReleaseFreeze",
                "metadata": {
                    "name": "stop-the-line-20261127t0900z",
                    "labels": {"sundial.dev/stop-the-line": "true"},
                },
                "spec": {
                    "reason": "incident 4711",
                    "action": "Hold",
                    "timeZone": "UTC",
                    "windows": [{"from": "2026-11-27T09:00:00Z", "to": "2026-11-27T11:00:00Z"}],
                },
            },
        )
    ]
    assert out.getvalue().splitlines() == [
        "ClusterReleaseFreeze stop-the-line-20261127t0900z created: incident 4711",
        "  from 2026-11-27T09:00:00Z  (Fri 27 Nov 2026 10:00 CET, local time)",
        "  to   2026-11-27T11:00:00Z  (Fri 27 Nov 2026 12:00 CET, local time), 2h",
        "runs of every ScheduledDeployment in every namespace that fall due in it are held (recorded Held, "
        "reason Frozen)",
        "end it early with: kubectl sundial unfreeze stop-the-line-20261127t0900z --all",
    ]


def test_freeze_without_all_creates_a_release_freeze_in_the_namespace() -> None:
    fake = FakeCustomObjects([])
    argv = ("freeze", "--for", "90m", "--reason", "db failover", "--name", "failover", "--action", "Defer")
    code, out = run(cmd_freeze, fake, *argv)
    assert code == 0
    [(plural, namespace, body)] = fake.created
    assert (plural, namespace, body["kind"], body["metadata"]["namespace"]) == (
        "releasefreezes",
        "shop",
        "ReleaseFreeze",
        "shop",
    )
    assert body["spec"]["action"] == "Defer"
    assert body["spec"]["windows"] == [{"from": "2026-11-27T09:00:00Z", "to": "2026-11-27T10:30:00Z"}]
    assert "end it early with: kubectl sundial unfreeze failover -n shop" in out


def test_a_stop_the_line_freeze_is_one_the_operator_reads_as_on_from_now() -> None:
    body = build_stop_the_line(NOW, timedelta(hours=2), "incident 4711", namespace=None)
    freeze = read_freeze(body)
    assert isinstance(freeze, Freeze), freeze
    window = window_at(freeze.rules, NOW)
    assert window is not None
    assert (window.start, window.end) == (
        NOW.replace(microsecond=0),
        NOW.replace(microsecond=0) + timedelta(hours=2),
    )
    assert freeze.applies_to("any-namespace", {})


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["freeze", "--all", "-n", "shop", "--for", "1h", "--reason", "x"], "leave out -n"),
        (["freeze", "--for", "1h", "--reason", "  "], "--reason must say why"),
        (["unfreeze", "x", "--all", "-n", "shop"], "leave out -n"),
    ],
)
def test_contradictory_freeze_options_are_usage_errors(argv: list[str], says: str) -> None:
    command = cmd_freeze if argv[0] == "freeze" else cmd_unfreeze
    with pytest.raises(PluginError, match=says) as error:
        command(freeze_args(*argv), Api(FakeCustomObjects([]), "s", "shop"), io.StringIO(), NOW)
    assert error.value.code == 2


@pytest.mark.parametrize(
    "argv",
    [
        ["freeze", "--all", "--for", "1h"],
        ["freeze", "--all", "--reason", "x"],
        ["freeze", "--all", "--for", "0s", "--reason", "x"],
        ["freeze", "--all", "--for", "1h", "--reason", "x", "--action", "Skip"],
        ["unfreeze"],
        ["freezes", "--within", "later"],
    ],
)
def test_freeze_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(argv)
    assert exit_.value.code == 2


def test_a_second_freeze_in_the_same_minute_asks_for_another_name() -> None:
    fake = FakeCustomObjects([])
    args = freeze_args("freeze", "--all", "--for", "1h", "--reason", "x")
    api = Api(fake, "s", "shop")
    cmd_freeze(args, api, io.StringIO(), NOW)
    with pytest.raises(PluginError, match="already exists; choose another with --name"):
        cmd_freeze(args, api, io.StringIO(), NOW)


def test_unfreeze_deletes_the_freeze() -> None:
    fake = FakeCustomObjects([release_freeze("stop", WEEKEND, namespace=None)])
    out = io.StringIO()
    assert cmd_unfreeze(freeze_args("unfreeze", "stop", "--all"), Api(fake, "s", "shop"), out, NOW) == 0
    assert fake.deleted == [("clusterreleasefreezes", None, "stop")]
    assert out.getvalue().startswith("clusterreleasefreeze stop deleted\n")


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--all"], "error: clusterreleasefreeze gone not found\n"),
        (["-n", "shop"], "error: releasefreeze shop/gone not found; for a ClusterReleaseFreeze, add --all\n"),
    ],
)
def test_unfreeze_of_a_missing_freeze_is_one_line_and_exit_1(
    argv: list[str], says: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    api = Api(FakeCustomObjects([]), "https://127.0.0.1:6443", "shop")
    monkeypatch.setattr("sundial.cli.kubectl_plugin.connect", lambda args, environ: api)
    assert main(["unfreeze", "gone", *argv], environ={}, clock=lambda: NOW) == 1
    assert capsys.readouterr().err == says


def test_freezes_lists_a_weekly_berlin_freeze_in_utc_and_berlin_time_across_the_dst_change() -> None:
    fake = FakeCustomObjects(
        [
            release_freeze("weekend", WEEKEND),
            release_freeze("other-namespace", WEEKEND, namespace="billing"),
            release_freeze(
                "incident",
                {
                    "reason": "incident 4711",
                    "windows": [{"from": "2027-03-26T11:00:00Z", "to": "2027-03-26T13:00:00Z"}],
                },
                namespace=None,
            ),
        ]
    )
    out = io.StringIO()
    args = args_for("freezes", "--within", "10d")
    assert cmd_freezes(args, Api(fake, "s", "shop"), out, FRIDAY) == 0
    assert out.getvalue().splitlines() == [
        "Release freezes at 2027-03-26 12:00:00 UTC, windows within 10 days:",
        "ClusterReleaseFreeze incident  Hold  UTC  incident 4711",
        "  ON NOW  2027-03-26T11:00:00Z to 2027-03-26T13:00:00Z  "
        "Fri 26 Mar 11:00 UTC to Fri 26 Mar 13:00 UTC  from 2027-03-26T11:00:00Z to 2027-03-26T13:00:00Z",
        "ReleaseFreeze shop/weekend  Hold  Europe/Berlin  weekend",
        # 61 hours: the clocks skip an hour on Sunday 28 March.
        "  next    2027-03-26T17:00:00Z to 2027-03-29T06:00:00Z  "
        "Fri 26 Mar 18:00 CET to Mon 29 Mar 08:00 CEST  weekly Friday 18:00 to Monday 08:00",
        "  next    2027-04-02T16:00:00Z to 2027-04-05T06:00:00Z  "
        "Fri 02 Apr 18:00 CEST to Mon 05 Apr 08:00 CEST  weekly Friday 18:00 to Monday 08:00",
    ]


def test_freezes_as_json_and_an_invalid_freeze_makes_exit_1() -> None:
    typo = release_freeze("typo", {**WEEKEND, "timeZone": "Europe/Berlln"})
    fake = FakeCustomObjects([release_freeze("weekend", WEEKEND), typo])
    code, out = run(cmd_freezes, fake, "freezes", "-o", "json", "--within", "1d")
    assert code == 1
    body = json.loads(out)
    [weekend, invalid] = body["freezes"]
    assert {key: weekend[key] for key in ("kind", "namespace", "name", "valid", "action", "active")} == {
        "kind": "ReleaseFreeze",
        "namespace": "shop",
        "name": "weekend",
        "valid": True,
        "action": "Hold",
        "active": False,
    }
    assert (invalid["name"], invalid["valid"], invalid["reason"]) == ("typo", False, "InvalidTimeZone")


def test_the_timeline_shows_a_run_held_by_a_freeze_and_lists_the_freeze() -> None:
    nightly = sd("nightly", {"schedule": "0 20 * * *", "timeZone": "Europe/Berlin", **TARGET})
    fake = FakeCustomObjects([nightly, release_freeze("weekend", WEEKEND)])
    out = io.StringIO()
    args = args_for("timeline", "--count", "2")
    assert cmd_timeline(args, Api(fake, "s", "shop"), out, FRIDAY) == 0
    text = out.getvalue()
    assert (
        "! frozen: held by ReleaseFreeze shop/weekend (weekend), on until 2027-03-29T06:00:00Z: "
        "nothing deploys" in text
    )
    assert (
        "Release freezes, windows within 30 days:\nReleaseFreeze shop/weekend  Hold  Europe/Berlin  weekend\n"
        in text
    )


def test_the_timeline_without_the_right_to_list_freezes_shows_the_runs_and_says_so() -> None:
    from kubernetes.client.exceptions import ApiException

    class NoFreezes(FakeCustomObjects):
        def list_cluster_custom_object(self, *args: Any, _request_timeout: Any = None) -> dict[str, Any]:
            error = ApiException(status=403, reason="Forbidden")
            error.body = json.dumps({"message": "clusterreleasefreezes is forbidden"})
            raise error

    fake = NoFreezes([sd("nightly", {"schedule": "0 20 * * *", **TARGET})])
    code, out = run(cmd_timeline, fake, "timeline", "--count", "1")
    assert code == 0
    assert "shop/nightly" in out
    assert out.splitlines()[-1] == "Release freezes not shown: forbidden: clusterreleasefreezes is forbidden"


def test_a_hostile_freeze_reason_is_printed_escaped() -> None:
    fake = FakeCustomObjects([release_freeze("weekend", {**WEEKEND, "reason": f"weekend{ESCAPE}{OVERRIDE}"})])
    _, out = run(cmd_freezes, fake, "freezes")
    assert_inert(out)
    assert "weekend\\x1b[2J" in out


# ---------------------------------------------------------------------------------------------- override


ON_NOW = {
    "reason": "incident 4711",
    "windows": [{"from": "2026-11-27T08:00:00Z", "to": "2026-11-27T10:00:00Z"}],
}


def test_trigger_with_override_freeze_writes_both_annotations_in_one_patch() -> None:
    fake = FakeCustomObjects([sd("api", TARGET), release_freeze("incident", ON_NOW, namespace=None)])
    code, out = run(cmd_trigger, fake, "trigger", "api", "--override-freeze")
    assert code == 0
    annotations = {"sundial.dev/trigger": REQUEST, "sundial.dev/override-freeze": REQUEST}
    assert fake.patches == [("api", {"metadata": {"annotations": annotations}})]
    assert (
        "warning: ClusterReleaseFreeze incident (incident 4711) is on until 2026-11-27T10:00:00Z; "
        "--override-freeze deploys through it" in out
    )


def test_trigger_without_override_never_writes_the_override_annotation() -> None:
    fake = FakeCustomObjects([sd("api", TARGET)])
    run(cmd_trigger, fake, "trigger", "api", "--request", "2026-11-27T08:59:00Z")
    assert fake.patches == [
        ("api", {"metadata": {"annotations": {"sundial.dev/trigger": "2026-11-27T08:59:00Z"}}})
    ]


def test_trigger_while_a_freeze_is_on_says_it_will_be_refused_and_how_to_override() -> None:
    fake = FakeCustomObjects([sd("api", TARGET), release_freeze("incident", ON_NOW)])
    _, out = run(cmd_trigger, fake, "trigger", "api")
    assert out.splitlines()[-2:] == [
        "warning: ReleaseFreeze shop/incident (incident 4711) is on until 2026-11-27T10:00:00Z: the operator "
        "will refuse this run (Skipped, reason Frozen)",
        "to deploy anyway: kubectl sundial trigger api -n shop --override-freeze",
    ]


def test_override_freeze_without_a_freeze_on_says_so() -> None:
    _, out = run(cmd_trigger, FakeCustomObjects([sd("api", TARGET)]), "trigger", "api", "--override-freeze")
    assert "note: no release freeze is on now" in out


def test_trigger_wait_on_a_frozen_refusal_prints_the_message_and_the_override(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("sundial.cli.kubectl_plugin.time.sleep", lambda seconds: None)
    message = (
        f"trigger {REQUEST} refused: ReleaseFreeze shop/incident (incident 4711) is on until "
        "2026-11-27T10:00:00Z; to deploy anyway, trigger again with kubectl sundial trigger NAME "
        "--override-freeze (recorded on the run's Job and in an Event)"
    )
    refused = {"runs": [{"trigger": REQUEST, "result": "Skipped", "reason": "Frozen", "message": message}]}
    fake = FakeCustomObjects([sd("api", TARGET)], statuses=[{}, refused])
    code, out = run(cmd_trigger, fake, "trigger", "api", "--wait", "--timeout", "30s")
    assert code == 1
    assert out.splitlines()[-2:] == [
        f"Skipped: {message}",
        "refused because a release freeze is on; to deploy anyway (recorded on the Job and in a "
        "FreezeOverridden Event): kubectl sundial trigger api -n shop --override-freeze",
    ]


def test_a_request_refused_as_frozen_asks_for_a_new_request_to_override() -> None:
    refused = {"trigger": REQUEST, "result": "Skipped", "reason": "Frozen", "message": "frozen by x"}
    fake = FakeCustomObjects([sd("api", TARGET, {"lastTrigger": REQUEST, "runs": [refused]})])
    _, out = run(cmd_trigger, fake, "trigger", "api", "--request", REQUEST, "--override-freeze")
    assert fake.patches == []
    assert out.splitlines()[1:] == [
        "it was refused: frozen by x",
        "a refused request stays refused; to deploy anyway, make a new one: "
        "kubectl sundial trigger api -n shop --override-freeze",
    ]


class FakeConfigMaps:
    """CoreV1Api's read of a ConfigMap: one that exists, every other one missing."""

    def __init__(self, data: dict[tuple[str, str], dict[str, str]]) -> None:
        self.data = data

    def read_namespaced_config_map(self, name: str, namespace: str, **_: Any) -> Any:
        from kubernetes.client.exceptions import ApiException

        if (namespace, name) not in self.data:
            raise ApiException(status=404, reason="Not Found")
        return argparse.Namespace(data=self.data[(namespace, name)])


HOLIDAY_ICS = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:1\r\nDTSTAMP:20260101T000000Z\r\n"
    "SUMMARY:Friday off\r\nDTSTART;VALUE=DATE:20270326\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


def test_freezes_reads_a_holiday_calendar_from_its_configmap_and_says_when_it_cannot() -> None:
    calendar = {"reason": "holidays", "timeZone": "Europe/Berlin", "calendar": {"configMapName": "days"}}
    fake = FakeCustomObjects([release_freeze("holidays", calendar)])
    out = io.StringIO()
    core = FakeConfigMaps({("shop", "days"): {"calendar.ics": HOLIDAY_ICS}})
    assert cmd_freezes(args_for("freezes"), Api(fake, "s", "shop", core=core), out, FRIDAY) == 0
    assert "ON NOW" in out.getvalue() and "'Friday off' in the calendar, all day 2027-03-26" in out.getvalue()
    out = io.StringIO()
    missing = Api(fake, "s", "shop", core=FakeConfigMaps({}))
    assert cmd_freezes(args_for("freezes"), missing, out, FRIDAY) == 1
    assert "CalendarNotFound" in out.getvalue()
