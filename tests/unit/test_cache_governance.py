"""The cache's part in release governance: which objects a freeze or an approval wakes, a holiday calendar
read later compiles its freeze again, and plans get only the freezes and approvals that concern them."""

from __future__ import annotations

from typing import Any

from sundial.decide.freezes import Freeze
from sundial.runtime.cache import APPROVALS, CLUSTER_FREEZES, FREEZES, Cache

CALENDAR = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:1\r\nDTSTAMP:20260101T000000Z\r\n"
    "DTSTART;VALUE=DATE:20271224\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


def sd(namespace: str, name: str, version: str = "1", depends_on: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"runAt": "2027-12-24T09:00", "jobTemplate": {}}
    if depends_on:
        spec["dependsOn"] = {"name": depends_on}
    return {"metadata": {"namespace": namespace, "name": name, "resourceVersion": version}, "spec": spec}


def freeze(kind: str, name: str, version: str, namespace: str | None = None, **spec: Any) -> dict[str, Any]:
    metadata = {"name": name, "resourceVersion": version} | ({"namespace": namespace} if namespace else {})
    return {
        "kind": kind,
        "metadata": metadata,
        "spec": {"reason": "r", "dates": ["2027-12-24"], **spec},
    }


def approval(namespace: str, name: str, target: str, version: str = "1") -> dict[str, Any]:
    return {
        "metadata": {"namespace": namespace, "name": name, "resourceVersion": version},
        "spec": {
            "scheduledDeployment": target,
            "scheduledTime": "2027-12-24T08:00:00Z",
            "approver": "alice",
            "approverGroups": ["ops"],
        },
    }


def filled() -> Cache:
    cache = Cache()
    for body in (
        sd("shop", "api", depends_on="db"),
        sd("shop", "db"),
        sd("shop", "web"),
        sd("billing", "report"),
    ):
        cache.object_seen(body, deleted=False)
    return cache


def test_a_freeze_wakes_the_objects_of_its_namespace_and_only_when_its_spec_changes() -> None:
    cache = filled()
    changes = cache.freeze_seen(FREEZES, freeze("ReleaseFreeze", "xmas", "5", "shop"), deleted=False)
    assert changes.wake == {("shop", "api"), ("shop", "db"), ("shop", "web")}
    assert changes.freezes == {(FREEZES, "shop", "xmas")}
    status_only = freeze("ReleaseFreeze", "xmas", "6", "shop")
    status_only["status"] = {"active": True}
    assert cache.freeze_seen(FREEZES, status_only, deleted=False).wake == set()
    [compiled] = cache.freezes_for("shop")
    assert isinstance(compiled, Freeze) and compiled.name == "xmas"
    assert cache.freezes_for("billing") == ()
    gone = cache.freeze_seen(FREEZES, freeze("ReleaseFreeze", "xmas", "7", "shop"), deleted=True)
    assert gone.wake == {("shop", "api"), ("shop", "db"), ("shop", "web")}
    assert cache.freezes_for("shop") == ()


def test_a_cluster_freeze_wakes_the_namespaces_it_lists() -> None:
    cache = filled()
    body = freeze("ClusterReleaseFreeze", "incident", "5", namespaces=["billing"])
    assert cache.freeze_seen(CLUSTER_FREEZES, body, deleted=False).wake == {("billing", "report")}
    everywhere = freeze("ClusterReleaseFreeze", "incident", "6")
    woken = cache.freeze_seen(CLUSTER_FREEZES, everywhere, deleted=False).wake
    assert woken == {("billing", "report"), ("shop", "api"), ("shop", "db"), ("shop", "web")}


def test_a_calendar_read_later_compiles_its_freeze_again_and_wakes_what_it_concerns() -> None:
    cache = filled()
    body = freeze("ReleaseFreeze", "holidays", "5", "shop", calendar={"configMapName": "days"})
    cache.freeze_seen(FREEZES, body, deleted=False)
    assert cache.freezes_for("shop") == (), "a calendar not read yet freezes nothing"
    assert cache.calendars_wanted() == {("shop", "days", "calendar.ics")}
    changes = cache.calendar_read(("shop", "days", "calendar.ics"), CALENDAR)
    assert changes.wake == {("shop", "api"), ("shop", "db"), ("shop", "web")}
    assert len(cache.freezes_for("shop")) == 1
    assert cache.calendar_read(("shop", "days", "calendar.ics"), CALENDAR).wake == set(), "same text"
    assert cache.calendar_read(("shop", "days", "calendar.ics"), None).wake, "gone: the freeze is invalid"
    assert cache.freezes_for("shop") == ()


def test_an_approval_wakes_its_object_and_its_chain_and_plans_read_only_their_own() -> None:
    cache = filled()
    changes = cache.approval_seen(approval("shop", "a1", "api"), deleted=False)
    assert changes.wake == {("shop", "api"), ("shop", "db")}, "db runs ahead of api: it waits for api's"
    assert set(cache.approvals_for("shop", ["api", "db", "web"])) == {"api"}
    moved = approval("shop", "a1", "web", version="2")
    assert cache.approval_seen(moved, deleted=False).wake == {
        ("shop", "api"),
        ("shop", "db"),
        ("shop", "web"),
    }
    assert set(cache.approvals_for("shop", ["api", "web"])) == {"web"}
    assert cache.approval_seen(approval("shop", "a1", "web", version="3"), deleted=True).wake == {
        ("shop", "web")
    }
    assert cache.approvals_for("shop", ["web"]) == {}
    listed = cache.merge_listing(APPROVALS, "", [approval("shop", "a2", "api", version="9")], "10")
    assert ("shop", "api") in listed.wake and set(cache.approvals_for("shop", ["api"])) == {"api"}
