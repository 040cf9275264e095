"""``kubectl sundial schedule`` over a fake API and a fake machine: where the zone comes from (``--tz``,
``TZ``, ``/etc/localtime`` as a symlink under a temporary directory), the DST gap and fold warnings, release
freezes, and the ``-o yaml`` document. No clock, no cluster, nothing of this machine's zone.
"""

from __future__ import annotations

import io
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_kubectl_plugin_commands import TARGET as JOB
from test_kubectl_plugin_commands import FakeCustomObjects, release_freeze, sd

from sundial.api.models import ScheduledDeploymentSpec
from sundial.cli.kubectl_plugin import Api, PluginError, build_parser, cmd_schedule, main
from sundial.cli.schedule import ScheduleError, detect_zone, parse_at, zone_from_path

NOW = datetime(2027, 1, 20, 12, 0, tzinfo=UTC)
IMAGE = "registry.example/api:v42"


@pytest.fixture
def no_localtime(tmp_path: Path) -> Path:
    return tmp_path / "localtime"


def localtime_to(tmp_path: Path, target: str) -> Path:
    link = tmp_path / "localtime"
    os.symlink(target, link)
    return link


def schedule(
    fake: FakeCustomObjects | None,
    *argv: str,
    environ: dict[str, str] | None = None,
    localtime: Path | None = None,
) -> tuple[int, str, str]:
    args = build_parser().parse_args(["schedule", *argv, "-n", "shop"])
    out, err = io.StringIO(), io.StringIO()
    api = Api(fake, "s", "shop") if fake is not None else None
    code = cmd_schedule(
        args,
        api,
        out,
        NOW,
        err=err,
        environ=environ if environ is not None else {"TZ": "America/New_York"},
        localtime=localtime or Path("/nonexistent/localtime"),
    )
    return code, out.getvalue(), err.getvalue()


# ---------------------------------------------------------------------------------------------- the zone


def test_tz_flag_wins_over_the_environment(no_localtime: Path) -> None:
    choice = detect_zone("Asia/Tokyo", {"TZ": "Europe/Berlin"}, no_localtime)
    assert (choice.name, choice.describe()) == ("Asia/Tokyo", "time zone Asia/Tokyo, from --tz")


@pytest.mark.parametrize("value", ["Europe/Berlin", ":Europe/Berlin", ":/usr/share/zoneinfo/Europe/Berlin"])
def test_the_tz_variable_names_the_zone(value: str, tmp_path: Path) -> None:
    choice = detect_zone(None, {"TZ": value}, localtime_to(tmp_path, "/usr/share/zoneinfo/Asia/Tokyo"))
    assert choice.describe() == "time zone Europe/Berlin, from TZ"


@pytest.mark.parametrize(
    "target",
    ["/usr/share/zoneinfo/America/New_York", "../usr/share/zoneinfo/America/New_York",
     "/var/db/timezone/zoneinfo/posix/America/New_York"],
)  # fmt: skip
def test_without_tz_the_localtime_symlink_names_the_zone(target: str, tmp_path: Path) -> None:
    link = localtime_to(tmp_path, target)
    choice = detect_zone(None, {}, link)
    assert choice.describe() == f"time zone America/New_York, from {link}"


def test_an_empty_tz_is_unset(tmp_path: Path) -> None:
    assert detect_zone(None, {"TZ": ""}, localtime_to(tmp_path, "/usr/share/zoneinfo/UTC")).name == "UTC"


@pytest.mark.parametrize(
    ("environ", "says"),
    [
        ({}, "TZ is not set and"),
        ({"TZ": "CET-1CEST,M3.5.0,M10.5.0/3"}, "does not name an IANA time zone"),
    ],
)
def test_when_the_zone_cannot_be_told_it_asks_for_tz(
    environ: dict[str, str], says: str, no_localtime: Path
) -> None:
    with pytest.raises(ScheduleError, match=says) as error:
        detect_zone(None, environ, no_localtime)
    assert "pass --tz ZONE" in str(error.value)


def test_a_localtime_that_is_a_copy_not_a_link_cannot_tell(tmp_path: Path) -> None:
    copy = tmp_path / "localtime"
    copy.write_bytes(b"TZif2")
    with pytest.raises(ScheduleError, match="pass --tz ZONE"):
        detect_zone(None, {}, copy)


def test_a_link_outside_zoneinfo_cannot_tell(tmp_path: Path) -> None:
    assert zone_from_path("/etc/some-file") is None
    with pytest.raises(ScheduleError, match="not into a zoneinfo directory"):
        detect_zone(None, {}, localtime_to(tmp_path, "/etc/some-file"))


def test_a_bad_tz_flag_says_what_to_write(no_localtime: Path) -> None:
    with pytest.raises(ScheduleError, match="--tz: timeZone 'Europe/Berlln' is not an IANA time zone name"):
        detect_zone("Europe/Berlln", {}, no_localtime)


@pytest.mark.parametrize(
    ("text", "wall"),
    [
        ("2027-02-10 03:00", datetime(2027, 2, 10, 3, 0)),
        ("2027-02-10T03:00", datetime(2027, 2, 10, 3, 0)),
        ("2027-02-10 03:00:30", datetime(2027, 2, 10, 3, 0, 30)),
    ],
)
def test_at_takes_a_space_or_a_t_and_optional_seconds(text: str, wall: datetime) -> None:
    assert parse_at(text) == wall


@pytest.mark.parametrize("text", ["2027-02-10", "2027-02-10T03:00Z", "2027-02-10 03:00+01:00", "tomorrow"])
def test_at_is_a_wall_clock_time_without_offset(text: str) -> None:
    with pytest.raises(ScheduleError, match="is not a wall-clock time"):
        parse_at(text)


def test_at_must_be_a_real_date() -> None:
    with pytest.raises(ScheduleError, match="is not a real date-time"):
        parse_at("2027-02-30 03:00")


# ---------------------------------------------------------------------------------------------- the object


def test_schedule_creates_the_object_and_prints_utc_and_local_time() -> None:
    fake = FakeCustomObjects([])
    code, out, _ = schedule(fake, "api-v42", "--at", "2027-02-10 03:00", "--deployment", f"api={IMAGE}")
    assert code == 0
    [(plural, namespace, body)] = fake.created
    assert (plural, namespace) == ("scheduleddeployments", "shop")
    assert body == {
        "apiVersion": "sundial.dev/v1alpha1",
        "kind": "ScheduledDeployment",
        "metadata": {"name": "api-v42", "namespace": "shop"},
        "spec": {
            "runAt": "2027-02-10T03:00",
            "timeZone": "America/New_York",
            "deployment": {"name": "api", "container": "api", "image": IMAGE},
        },
    }
    assert out.splitlines() == [
        "time zone America/New_York, from TZ",
        "runs at 2027-02-10T08:00:00Z (UTC)",
        "        Wed 10 Feb 2027 03:00:00 EST (-0500), local time in America/New_York",
        f"deploys {IMAGE} to container api of deployment api",
        "scheduleddeployment shop/api-v42 created",
    ]


def test_deployment_name_and_dependency_go_into_the_spec() -> None:
    fake = FakeCustomObjects([sd("db-migration", JOB)])
    argv = ("--deployment", f"web={IMAGE}", "--deployment-name", "frontend", "--depends-on", "db-migration")
    code, out, _ = schedule(fake, "api-v42", "--at", "2027-02-10 03:00", *argv, "--lead", "20m")
    assert code == 0
    spec = fake.created[0][2]["spec"]
    assert spec["deployment"] == {"name": "frontend", "container": "web", "image": IMAGE}
    assert spec["dependsOn"] == {"name": "db-migration", "leadTime": "20m"}
    assert "dependency 'db-migration' runs 20m before it, at 2027-02-10T07:40:00Z" in out
    assert "does not exist" not in out


def test_a_missing_dependency_is_a_warning_not_a_refusal() -> None:
    fake = FakeCustomObjects([])
    _, out, _ = schedule(
        fake, "api", "--at", "2027-02-10 03:00", "--deployment", f"api={IMAGE}", "--depends-on", "db"
    )
    assert (
        "warning: dependency 'db' does not exist in namespace shop: the object will be Ready=False "
        "(DependencyNotFound) until it does" in out
    )
    assert fake.created[0][2]["spec"]["dependsOn"] == {"name": "db", "leadTime": "15m"}


@pytest.mark.parametrize(
    ("at", "says"),
    [
        (
            "2027-03-14 02:30",
            "warning: in a DST gap: 02:30 does not exist in America/New_York on 2027-03-14 "
            "(clocks go forward from 02:00 EST to 03:00 EDT); runs at 03:30 EDT, when 02:30 EST would have "
            "been (dstPolicy.nonexistentTime: ShiftForward) "
            "(the default; set spec.dstPolicy to choose otherwise)",
        ),
        (
            "2027-11-07 01:30",
            "warning: in a DST fold: 01:30 happens twice in America/New_York on 2027-11-07 "
            "(clocks go back from 02:00 EDT to 01:00 EST); runs once, at the earlier 01:30 EDT "
            "(dstPolicy.ambiguousTime: Earlier) (the default; set spec.dstPolicy to choose otherwise)",
        ),
    ],
    ids=["gap", "fold"],
)
def test_a_time_in_a_dst_gap_or_fold_is_warned_with_the_policy_that_applies(at: str, says: str) -> None:
    code, out, _ = schedule(FakeCustomObjects([]), "api", "--at", at, "--deployment", f"api={IMAGE}")
    assert code == 0
    assert says in out.splitlines()
    utc = {"2027-03-14 02:30": "2027-03-14T07:30:00Z", "2027-11-07 01:30": "2027-11-07T05:30:00Z"}[at]
    assert f"runs at {utc} (UTC)" in out


def test_a_normal_time_has_no_dst_warning() -> None:
    _, out, _ = schedule(
        FakeCustomObjects([]), "api", "--at", "2027-03-15 02:30", "--deployment", f"api={IMAGE}"
    )
    assert "warning" not in out


def test_an_instant_inside_a_release_freeze_is_warned() -> None:
    year_end = {
        "reason": "year-end",
        "timeZone": "America/New_York",
        "windows": [{"from": "2027-02-09T00:00", "to": "2027-02-12T00:00"}],
    }
    fake = FakeCustomObjects([release_freeze("year-end", year_end)])
    code, out, _ = schedule(fake, "api", "--at", "2027-02-10 03:00", "--deployment", f"api={IMAGE}")
    assert code == 0
    assert (
        "warning: inside a release freeze: its run at 2027-02-10T08:00:00Z will be held by ReleaseFreeze "
        "shop/year-end (year-end), on until 2027-02-12T05:00:00Z: nothing deploys" in out
    )
    assert len(fake.created) == 1, "a warning, not a refusal: the freeze may be lifted in time"


def test_a_freeze_on_the_dependencys_run_is_warned_too() -> None:
    short = {"reason": "backup", "windows": [{"from": "2027-02-10T07:40:00Z", "to": "2027-02-10T07:50:00Z"}]}
    fake = FakeCustomObjects(
        [
            sd("db", JOB),
            release_freeze("backup", short, namespace=None),
        ]
    )
    argv = ("--deployment", f"api={IMAGE}", "--depends-on", "db")
    _, out, _ = schedule(fake, "api", "--at", "2027-02-10 03:00", *argv)
    assert "warning: inside a release freeze: the run of its dependency 'db' at 2027-02-10T07:45:00Z" in out


def test_without_the_right_to_list_freezes_it_says_they_were_not_checked() -> None:
    from kubernetes.client.exceptions import ApiException

    class NoFreezes(FakeCustomObjects):
        def list_cluster_custom_object(self, *args: Any, _request_timeout: Any = None) -> dict[str, Any]:
            error = ApiException(status=403, reason="Forbidden")
            error.body = json.dumps({"message": "clusterreleasefreezes is forbidden"})
            raise error

    fake = NoFreezes([])
    code, out, _ = schedule(fake, "api", "--at", "2027-02-10 03:00", "--deployment", f"api={IMAGE}")
    assert code == 0
    assert "warning: release freezes were not checked: forbidden: clusterreleasefreezes is forbidden" in out
    assert len(fake.created) == 1


def test_yaml_prints_a_document_that_validates_and_creates_nothing() -> None:
    fake = FakeCustomObjects([])
    argv = ("--deployment", f"api={IMAGE}", "--depends-on", "db", "--lead", "1h30m", "-o", "yaml")
    code, out, err = schedule(fake, "api-v42", "--at", "2027-03-14 02:30", "--tz", "America/New_York", *argv)
    assert code == 0
    assert fake.created == []
    assert '  runAt: "2027-03-14T02:30"\n' in out, "quoted: a string for every YAML reader"
    [document] = list(yaml.safe_load_all(out))
    assert (document["apiVersion"], document["kind"]) == ("sundial.dev/v1alpha1", "ScheduledDeployment")
    assert document["metadata"] == {"name": "api-v42", "namespace": "shop"}
    spec = ScheduledDeploymentSpec.model_validate(document["spec"])
    assert (spec.run_at, spec.time_zone, spec.depends_on and spec.depends_on.lead_time) == (
        "2027-03-14T02:30",
        "America/New_York",
        "1h30m",
    )
    assert err.splitlines()[0] == "time zone America/New_York, from --tz"
    assert "warning: in a DST gap" in err
    assert "created" not in err


def test_yaml_needs_no_cluster(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    environ = {"HOME": str(tmp_path), "TZ": "Europe/Berlin"}
    argv = ["schedule", "api", "--at", "2027-02-10 03:00", "--deployment", f"api={IMAGE}", "-o", "yaml"]
    assert main(argv, environ=environ, clock=lambda: NOW) == 0
    captured = capsys.readouterr()
    document = yaml.safe_load(captured.out)
    assert document["metadata"] == {"name": "api", "namespace": "default"}
    assert document["spec"]["timeZone"] == "Europe/Berlin"
    assert "warning: release freezes were not checked: no cluster to read them from" in captured.err


def test_without_yaml_a_missing_kubeconfig_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    environ = {"HOME": str(tmp_path), "TZ": "Europe/Berlin"}
    argv = ["schedule", "api", "--at", "2027-02-10 03:00", "--deployment", f"api={IMAGE}"]
    assert main(argv, environ=environ, clock=lambda: NOW) == 2
    assert "no kubeconfig" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--deployment", "api"], "must be CONTAINER=IMAGE"),
        (["--deployment", f"api={IMAGE}", "--lead", "5m"], "it needs --depends-on"),
        (
            ["--deployment", f"{'c' * 64}={IMAGE}"],
            r"the spec would be invalid \(InvalidSpec: spec.deployment",
        ),
    ],
)
def test_mistakes_in_the_options_are_usage_errors(argv: list[str], says: str) -> None:
    fake = FakeCustomObjects([])
    with pytest.raises(PluginError, match=says) as error:
        schedule(fake, "api", "--at", "2027-02-10 03:00", *argv)
    assert error.value.code == 2
    assert fake.created == []


def test_a_name_that_is_not_a_kubernetes_name_is_refused() -> None:
    with pytest.raises(PluginError, match="'Api_V42' is not a valid object name"):
        schedule(FakeCustomObjects([]), "Api_V42", "--at", "2027-02-10 03:00", "--deployment", f"api={IMAGE}")


def test_a_time_long_past_is_refused_as_the_operator_would() -> None:
    fake = FakeCustomObjects([])
    with pytest.raises(PluginError, match=r"the operator would refuse it \(RunAtInPast") as error:
        schedule(fake, "api", "--at", "2026-12-01 03:00", "--deployment", f"api={IMAGE}")
    assert error.value.code == 1
    assert fake.created == []


def test_an_existing_object_is_not_overwritten() -> None:
    fake = FakeCustomObjects(
        [sd("api", {"schedule": "@daily", "deployment": {"name": "a", "container": "a", "image": "i"}})]
    )
    with pytest.raises(PluginError, match="scheduleddeployment shop/api already exists"):
        schedule(fake, "api", "--at", "2027-02-10 03:00", "--deployment", f"api={IMAGE}")
