"""``kubectl sundial approve`` and ``approvals`` over a fake API: the approval built from the API server's
SelfSubjectReview, the run ``--run`` names (resolved under the object's DST policy), the refusals.

No clock and no cluster: ``now`` is fixed, the fakes stand in for CustomObjectsApi and AuthenticationV1Api.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes.client import V1SelfSubjectReview, V1SelfSubjectReviewStatus, V1UserInfo
from test_kubectl_plugin_commands import FakeCustomObjects, args_for

from sundial.api.approvals import DeploymentApprovalSpec
from sundial.cli.approve import approval_name
from sundial.cli.kubectl_plugin import Api, PluginError, cmd_approvals, cmd_approve, main

NOW = datetime(2027, 1, 20, 12, 0, tzinfo=UTC)
TARGET = {"deployment": {"name": "api", "container": "api", "image": "registry.example/api:v42"}}


class FakeAuthentication:
    """AuthenticationV1Api.create_self_subject_review, answering as the API server would for one user."""

    def __init__(self, username: str = "alice", groups: tuple[str, ...] = ("release-managers",)) -> None:
        self.username, self.groups = username, [*groups, "system:authenticated"]
        self.asked: list[dict[str, Any]] = []

    def create_self_subject_review(self, body: dict[str, Any], _request_timeout: Any = None) -> Any:
        self.asked.append(body)
        info = V1UserInfo(username=self.username, groups=self.groups)
        return V1SelfSubjectReview(status=V1SelfSubjectReviewStatus(user_info=info))


def needing_approval(
    name: str = "api-v42",
    *,
    groups: list[str] | None = None,
    next_run: str | None = "2027-02-10T08:00:00Z",
    dst: dict[str, str] | None = None,
    required: bool = True,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "runAt": "2027-02-10T03:00",
        "timeZone": "America/New_York",
        "approval": {"required": required, **({"groups": groups} if groups else {})},
        **TARGET,
    }
    if dst:
        spec["dstPolicy"] = dst
    body: dict[str, Any] = {
        "apiVersion": "sundial.dev/v1alpha1",
        "kind": "ScheduledDeployment",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": spec,
    }
    if next_run:
        body["status"] = {"nextRunTime": next_run}
    return body


def approve(
    fake: FakeCustomObjects, *argv: str, auth: FakeAuthentication | None = None
) -> tuple[int, list[str], FakeAuthentication]:
    auth = auth or FakeAuthentication()
    out = io.StringIO()
    code = cmd_approve(args_for("approve", *argv), Api(fake, "s", "shop", authentication=auth), out, NOW)
    return code, out.getvalue().splitlines(), auth


def test_approve_copies_the_user_the_api_server_reports_and_names_the_next_run() -> None:
    fake = FakeCustomObjects([needing_approval(groups=["release-managers"])])
    code, lines, auth = approve(fake, "api-v42", "--comment", "CAB-1234")
    assert code == 0
    assert auth.asked == [{"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}]
    [(plural, namespace, body)] = fake.created
    assert (plural, namespace) == ("deploymentapprovals", "shop")
    assert body == {
        "apiVersion": "sundial.dev/v1alpha1",
        "kind": "DeploymentApproval",
        "metadata": {"name": "api-v42-20270210t080000z", "namespace": "shop"},
        "spec": {
            "scheduledDeployment": "api-v42",
            "scheduledTime": "2027-02-10T08:00:00Z",
            "approver": "alice",
            "approverGroups": ["release-managers", "system:authenticated"],
            "comment": "CAB-1234",
        },
    }
    DeploymentApprovalSpec.model_validate(body["spec"])
    assert lines == [
        "deploymentapproval shop/api-v42-20270210t080000z created",
        "approved by alice (groups: release-managers, system:authenticated), as the API server recorded it",
        "run 2027-02-10T08:00:00Z (UTC), Wed 10 Feb 2027 03:00:00 EST in America/New_York, of api-v42",
        "comment: CAB-1234",
        "counts: alice is in release-managers (spec.approval.groups)",
    ]


@pytest.mark.parametrize(
    ("run", "dst", "scheduled"),
    [
        # 02:30 does not exist in New York on 14 March 2027: ShiftForward is 02:30 EST = 07:30Z.
        ("2027-03-14 02:30", None, "2027-03-14T07:30:00Z"),
        ("2027-03-14T02:30", {"nonexistentTime": "ShiftForward"}, "2027-03-14T07:30:00Z"),
        # 01:30 happens twice on 7 November 2027: Earlier is 01:30 EDT (05:30Z), Later 01:30 EST (06:30Z).
        ("2027-11-07 01:30", None, "2027-11-07T05:30:00Z"),
        ("2027-11-07 01:30", {"ambiguousTime": "Later"}, "2027-11-07T06:30:00Z"),
        # An instant with any offset is normalised to UTC with seconds and a Z.
        ("2027-02-10T09:00:00+01:00", None, "2027-02-10T08:00:00Z"),
        ("2027-02-10T08:00Z", None, "2027-02-10T08:00:00Z"),
    ],
    ids=["gap-default", "gap-shift-forward", "fold-default", "fold-later", "offset", "z-without-seconds"],
)
def test_run_names_an_instant_or_a_local_time_resolved_under_the_objects_policy(
    run: str, dst: dict[str, str] | None, scheduled: str
) -> None:
    fake = FakeCustomObjects([needing_approval(dst=dst)])
    code, lines, _ = approve(fake, "api-v42", "--run", run)
    assert code == 0
    [(_, _, body)] = fake.created
    assert body["spec"]["scheduledTime"] == scheduled
    assert body["metadata"]["name"] == approval_name("api-v42", datetime.fromisoformat(scheduled))
    if run.startswith("2027-03-14"):
        assert any("does not exist in America/New_York" in line for line in lines), lines


def test_a_local_time_the_policy_skips_has_no_run_to_approve() -> None:
    fake = FakeCustomObjects([needing_approval(dst={"nonexistentTime": "Skip"})])
    with pytest.raises(
        PluginError, match=r"there is no run at --run '2027-03-14 02:30': 02:30 does not exist"
    ):
        approve(fake, "api-v42", "--run", "2027-03-14 02:30")
    assert fake.created == []


def test_a_time_that_is_no_run_of_the_object_is_warned() -> None:
    _, lines, _ = approve(FakeCustomObjects([needing_approval()]), "api-v42", "--run", "2027-02-11T08:00:00Z")
    assert lines[-1] == (
        "warning: scheduleddeployment shop/api-v42 has no run scheduled at 2027-02-11T08:00:00Z "
        "(by its runAt or schedule, as the spec stands now): this approval counts only if a run falls there"
    )


def test_a_later_run_of_a_schedule_is_approved_with_a_note() -> None:
    daily = needing_approval()
    daily["spec"] = {**daily["spec"], "schedule": "0 3 * * *"}
    del daily["spec"]["runAt"]
    _, lines, _ = approve(FakeCustomObjects([daily]), "api-v42", "--run", "2027-02-11 03:00")
    assert (
        "note: this is not the object's next run (2027-02-10T08:00:00Z); the approval counts only for a run "
        "scheduled at exactly 2027-02-11T08:00:00Z" in lines
    )


def test_an_object_that_does_not_require_approval_is_refused_before_asking_who_you_are() -> None:
    fake = FakeCustomObjects([needing_approval(required=False)])
    auth = FakeAuthentication()
    with pytest.raises(
        PluginError, match=r"approvals only matter with spec\.approval\.required: true"
    ) as error:
        approve(fake, "api-v42", auth=auth)
    assert error.value.code == 1
    assert (fake.created, auth.asked) == ([], [])


def test_without_a_next_run_the_run_must_be_named() -> None:
    with pytest.raises(PluginError, match=r"has no next run \(status.nextRunTime is empty\); name the run"):
        approve(FakeCustomObjects([needing_approval(next_run=None)]), "api-v42")


def test_a_bad_run_is_one_line() -> None:
    with pytest.raises(PluginError, match="--run 'tomorrow' is not a time"):
        approve(FakeCustomObjects([needing_approval()]), "api-v42", "--run", "tomorrow")


def test_an_approver_outside_the_groups_is_warned_that_it_will_not_count() -> None:
    fake = FakeCustomObjects([needing_approval(groups=["release-managers"])])
    _, lines, _ = approve(fake, "api-v42", auth=FakeAuthentication("bob", ("developers",)))
    assert lines[-1] == (
        "warning: bob is in none of spec.approval.groups (release-managers): the operator will not count "
        "this approval; ask a member of those groups to approve"
    )
    assert len(fake.created) == 1


def test_approving_a_run_twice_says_who_approved_it() -> None:
    fake = FakeCustomObjects([needing_approval()])
    approve(fake, "api-v42", auth=FakeAuthentication("bob", ()))
    code, lines, _ = approve(fake, "api-v42")
    assert code == 0
    assert lines == [
        "run 2027-02-10T08:00:00Z of api-v42 is already approved by bob "
        "(deploymentapproval api-v42-20270210t080000z)"
    ]
    assert len(fake.created) == 1


def test_an_approval_that_does_not_count_does_not_block_one_that_does() -> None:
    fake = FakeCustomObjects([needing_approval(groups=["release-managers"])])
    approve(fake, "api-v42", auth=FakeAuthentication("bob", ("developers",)))
    code, lines, _ = approve(fake, "api-v42")
    assert code == 0
    assert lines[0].endswith(", which does not count: bob is in none of release-managers")
    [_, (_, _, second)] = fake.created
    assert second["metadata"]["name"] == approval_name(
        "api-v42", datetime(2027, 2, 10, 8, tzinfo=UTC), distinct="alice"
    )
    assert second["spec"]["approver"] == "alice"
    assert lines[-1] == "counts: alice is in release-managers (spec.approval.groups)"


def test_an_admission_refusal_is_the_api_servers_message_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from kubernetes.client.exceptions import ApiException

    class Refusing(FakeCustomObjects):
        def create_namespaced_custom_object(self, *args: Any, _request_timeout: Any = None) -> dict[str, Any]:
            error = ApiException(status=403, reason="Forbidden")
            error.body = json.dumps(
                {
                    "message": 'deploymentapprovals.sundial.dev "x" is forbidden: ValidatingAdmissionPolicy '
                    "'sundial-approver-identity' denied request:\nspec.approver must be the requesting user"
                }
            )
            raise error

    api = Api(Refusing([needing_approval()]), "s", "shop", authentication=FakeAuthentication())
    monkeypatch.setattr("sundial.cli.kubectl_plugin.connect", lambda args, environ: api)
    assert main(["approve", "api-v42", "-n", "shop"], environ={}, clock=lambda: NOW) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert err.startswith("error: forbidden: deploymentapprovals.sundial.dev")
    assert "spec.approver must be the requesting user" in err


def test_a_long_name_is_cut_to_253_characters_and_keeps_the_instant() -> None:
    instant = datetime(2027, 2, 10, 8, tzinfo=UTC)
    long_a, long_b = "a" * 250, "a" * 249 + "b"
    name_a, name_b = approval_name(long_a, instant), approval_name(long_b, instant)
    assert len(name_a) == 253 and name_a.endswith("-20270210t080000z")
    assert name_a != name_b
    assert approval_name("api", instant) == "api-20270210t080000z"


def approval(
    name: str, sd_name: str, when: str, approver: str, created: str, comment: str = ""
) -> dict[str, Any]:
    spec = {"scheduledDeployment": sd_name, "scheduledTime": when, "approver": approver}
    spec["approverGroups"] = ["release-managers"] if approver == "alice" else []
    if comment:
        spec["comment"] = comment
    return {
        "apiVersion": "sundial.dev/v1alpha1",
        "kind": "DeploymentApproval",
        "metadata": {"name": name, "namespace": "shop", "creationTimestamp": created},
        "spec": spec,
    }


def test_approvals_lists_run_approver_groups_age_and_comment() -> None:
    fake = FakeCustomObjects(
        [
            approval("b", "web", "2027-02-11T08:00:00Z", "bob", "2027-01-17T12:00:00Z"),
            approval("a", "api-v42", "2027-02-10T08:00:00Z", "alice", "2027-01-20T11:15:00Z", "CAB-1234"),
        ]
    )
    out = io.StringIO()
    assert cmd_approvals(args_for("approvals"), Api(fake, "s", "shop"), out, NOW) == 0
    assert out.getvalue().splitlines() == [
        "SCHEDULEDDEPLOYMENT   RUN (UTC)              APPROVER   GROUPS             AGE   COMMENT",
        "api-v42               2027-02-10T08:00:00Z   alice      release-managers   45m   CAB-1234",
        "web                   2027-02-11T08:00:00Z   bob        -                  3d",
    ]
    out = io.StringIO()
    cmd_approvals(args_for("approvals", "web"), Api(fake, "s", "shop"), out, NOW)
    assert [line.split()[0] for line in out.getvalue().splitlines()] == ["SCHEDULEDDEPLOYMENT", "web"]
    out = io.StringIO()
    cmd_approvals(args_for("approvals", "nope"), Api(fake, "s", "shop"), out, NOW)
    assert out.getvalue() == "No DeploymentApprovals for nope in namespace shop.\n"
