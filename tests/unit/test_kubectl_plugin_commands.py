"""The plugin's commands over a fake API: what they write, what they print, their exit status.

The fake stands in for kubernetes.client.CustomObjectsApi (the three calls the plugin makes); the real
API server is exercised by tests/integration/test_kubectl_plugin.py.
"""

from __future__ import annotations

import argparse
import copy
import io
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from sundial.cli.kubectl_plugin import Api, PluginError, build_parser, cmd_suspend, cmd_trigger, main
from sundial.timing.names import manual_job_name

NOW = datetime(2026, 11, 27, 9, 0, 0, 123_000, tzinfo=UTC)
REQUEST = "2026-11-27T09:00:00.123Z"
TARGET = {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "m", "image": "i"}]}}}}}


class FakeCustomObjects:
    """Objects of one namespace; records patches; each get returns the next of ``statuses`` if given."""

    def __init__(self, objects: list[dict[str, Any]], statuses: list[dict[str, Any]] | None = None) -> None:
        self.objects = {obj["metadata"]["name"]: obj for obj in objects}
        self.patches: list[tuple[str, dict[str, Any]]] = []
        self.statuses = list(statuses or [])

    def get_namespaced_custom_object(self, *args: Any, _request_timeout: Any = None) -> dict[str, Any]:
        from kubernetes.client.exceptions import ApiException

        name = args[-1]
        if name not in self.objects:
            error = ApiException(status=404, reason="Not Found")
            error.body = json.dumps({"message": "not found", "details": {"name": name}})
            raise error
        body = copy.deepcopy(self.objects[name])
        if self.statuses:
            body["status"] = self.statuses.pop(0)
        return body

    def list_namespaced_custom_object(self, *args: Any, _request_timeout: Any = None) -> dict[str, Any]:
        return {"items": copy.deepcopy(list(self.objects.values()))}

    def patch_namespaced_custom_object(self, *args: Any, _request_timeout: Any = None) -> dict[str, Any]:
        name, patch = args[-2], args[-1]
        self.patches.append((name, patch))
        return copy.deepcopy(self.objects[name])


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
