"""The caches keep only what a plan reads (`plan_view`), and a plan from that view is the plan from the body.

Issue 14: whole bodies as the API server returns them (managedFields, kubectl's last-applied copy) were
most of the operator's memory at 10,000 objects. These tests prove the cut changes no decision: the view's
fields in a table, then hypothesis over the hostile inputs of test_hostile_input (annotations, Jobs, a
trigger, dependsOn) comparing plans, Jobs and Events built from the view and from the whole body.
"""

from __future__ import annotations

import copy
import json
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_hostile_input import PROPERTY, hostile_text, job_bodies, string_maps
from test_reconcile import (
    DEPENDENT,
    DEPLOYER_IMAGE,
    HOURLY,
    NAMESPACE,
    ONE_SHOT,
    SECOND,
    T,
    scheduled_deployment,
    world,
)

from sundial.api.keys import ANNOTATION_TRIGGER
from sundial.decide.events import Event, build_event
from sundial.decide.jobs import build_job
from sundial.decide.observe import compact, job_state_from_body, plan_view
from sundial.decide.reconcile import reconcile
from sundial.runtime.cache import Cache
from sundial.runtime.informer import kubernetes_sources, served_page

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
TEMPLATE = {
    "metadata": {"labels": {"team": "shop"}, "annotations": {"note": "kept: it is spec"}},
    "spec": {"template": {"spec": {"containers": [{"name": "main", "image": "registry.example/task:1"}]}}},
}


def as_the_api_returns_it(body: dict[str, Any], annotations: dict[str, Any] | None = None) -> dict[str, Any]:
    """``body`` with what the API server and kubectl add and Sundial never reads."""
    full = copy.deepcopy(body)
    metadata = full["metadata"]
    metadata["labels"] = {"team": "shop", "sundial.dev/role": "deploy"}
    metadata["annotations"] = {
        LAST_APPLIED: json.dumps({"apiVersion": body["apiVersion"], "spec": body["spec"]}),
        **(annotations or {}),
    }
    metadata["finalizers"] = ["example.com/keep"]
    metadata["ownerReferences"] = [{"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "u"}]
    metadata["managedFields"] = [
        {
            "manager": "kubectl-client-side-apply",
            "operation": "Update",
            "fieldsV1": {"f:spec": {"f:runAt": {}}},
        }
    ]
    full["unknownTopLevel"] = {"ignored": True}
    return full


def test_the_view_keeps_identity_order_generation_times_labels_the_trigger_spec_and_status() -> None:
    body = scheduled_deployment("api", {**ONE_SHOT, "jobTemplate": TEMPLATE}, status={"runs": []})
    body["metadata"]["deletionTimestamp"] = "2027-03-14T07:00:00Z"
    full = as_the_api_returns_it(body, {ANNOTATION_TRIGGER: "2027-03-14T07:00:00Z", "other": "dropped"})
    assert plan_view(full) == {
        "apiVersion": "sundial.dev/v1alpha1",
        "kind": "ScheduledDeployment",
        "metadata": {
            **body["metadata"],
            "labels": {"team": "shop", "sundial.dev/role": "deploy"},  # release freezes select by them
            "annotations": {ANNOTATION_TRIGGER: "2027-03-14T07:00:00Z"},
        },
        "spec": body["spec"],
        "status": {"runs": []},
    }


@pytest.mark.parametrize(
    ("metadata", "kept"),
    [
        ({"name": "a", "namespace": "n"}, {"name": "a", "namespace": "n"}),
        ({"name": "a", "annotations": {"x": "y"}}, {"name": "a", "annotations": {}}),
        ({"name": "a", "annotations": None}, {"name": "a", "annotations": None}),
        ({"name": "a", "annotations": "garbage"}, {"name": "a", "annotations": "garbage"}),
        ({"name": "a", "managedFields": [], "labels": {"x": "y"}}, {"name": "a", "labels": {"x": "y"}}),
    ],
)
def test_a_field_absent_from_the_body_is_absent_from_the_view_and_odd_values_pass_through(
    metadata: dict[str, Any], kept: dict[str, Any]
) -> None:
    assert plan_view({"metadata": metadata}) == {"metadata": kept}


def test_the_view_of_a_view_is_the_view() -> None:
    full = as_the_api_returns_it(scheduled_deployment("api", HOURLY, status={"runs": []}))
    assert plan_view(plan_view(full)) == plan_view(full)


def test_compact_copies_equal_values_and_shares_equal_strings() -> None:
    value = {"a": [1, 2.5, None, True, {"b": "x" * 3}], "c": {}}
    first, second = compact(json.loads(json.dumps(value))), compact(json.loads(json.dumps(value)))
    assert first == second == value
    assert first["a"][4]["b"] is second["a"][4]["b"]  # type: ignore[index]


@PROPERTY
@given(
    annotations=string_maps,
    trigger=st.one_of(st.none(), hostile_text, st.just("2027-03-14T07:29:00Z")),
    bodies=st.lists(job_bodies(), max_size=4),
    now_offset=st.integers(min_value=-3600, max_value=3600),
    spec=st.sampled_from([ONE_SHOT, DEPENDENT, HOURLY, {**ONE_SHOT, "jobTemplate": TEMPLATE}]),
    passes=st.integers(min_value=1, max_value=3),
)
def test_a_plan_from_the_view_is_the_plan_from_the_whole_body(
    annotations: dict[str, str],
    trigger: str | None,
    bodies: list[dict[str, Any]],
    now_offset: int,
    spec: dict[str, Any],
    passes: int,
) -> None:
    extra = {**annotations, **({ANNOTATION_TRIGGER: trigger} if trigger is not None else {})}
    body = as_the_api_returns_it(scheduled_deployment("api", spec), extra)
    dep = as_the_api_returns_it(
        scheduled_deployment("dep", {k: v for k, v in ONE_SHOT.items() if k not in ("runAt", "timeZone")})
    )
    jobs = [state for state in map(job_state_from_body, bodies) if state is not None]
    now = T + timedelta(seconds=now_offset)
    for _ in range(passes):  # the status each plan writes is the next plan's input
        whole = reconcile(world(body, now, others=[dep], jobs=jobs))
        viewed = reconcile(world(plan_view(body), now, others=[plan_view(dep)], jobs=jobs))
        assert viewed == whole
        for run in whole.create:
            assert build_job(plan_view(body), run, DEPLOYER_IMAGE) == build_job(body, run, DEPLOYER_IMAGE)
        for event in whole.events:
            assert build_event(plan_view(body), event, now, unique="u") == build_event(
                body, event, now, unique="u"
            )
        body = {**body, "status": whole.status}
        now += 30 * SECOND


def test_an_event_on_the_view_names_the_object_as_the_whole_body_does() -> None:
    body = as_the_api_returns_it(scheduled_deployment("api", ONE_SHOT))
    event = Event("Normal", "Armed", "next run at …")
    assert build_event(plan_view(body), event, T, unique="u") == build_event(body, event, T, unique="u")


def test_the_cache_keeps_the_view_from_watch_events_its_own_reads_and_listings() -> None:
    cache = Cache()
    watched = as_the_api_returns_it(scheduled_deployment("api", ONE_SHOT))
    cache.object_seen(watched, deleted=False)
    assert cache.objects[(NAMESPACE, "api")] == plan_view(watched)
    written = {**watched, "metadata": {**watched["metadata"], "resourceVersion": "2"}, "status": {"runs": []}}
    cache.store(written)
    assert cache.objects[(NAMESPACE, "api")] == plan_view(written)
    assert "managedFields" not in cache.objects[(NAMESPACE, "api")]["metadata"]


class RawResponse:
    def __init__(self, document: dict[str, Any]) -> None:
        self.data = json.dumps(document).encode()

    def release_conn(self) -> None:
        pass


class OnePageOfObjects:
    """The custom-objects API's LIST, answering one page (as raw JSON, as the informer asks for it)."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self._items = items

    def list_namespaced_custom_object(self, *_: Any, **__: Any) -> RawResponse:
        return RawResponse({"metadata": {"resourceVersion": "5"}, "items": self._items})


def test_a_listed_page_is_cut_to_views_as_it_arrives() -> None:
    full = as_the_api_returns_it(scheduled_deployment("api", ONE_SHOT))
    objects, *_ = kubernetes_sources(OnePageOfObjects([full]), None, (NAMESPACE,))
    page = served_page(objects, None)
    assert page["items"] == [plan_view(full)]
    assert page["metadata"]["resourceVersion"] == "5"


def test_a_view_is_not_cut_again() -> None:
    """The informer cuts in its threads; the cache, on the event loop, keeps that very view."""
    view = plan_view(as_the_api_returns_it(scheduled_deployment("api", ONE_SHOT)))
    assert plan_view(view) is view
    cache = Cache()
    cache.object_seen(view, deleted=False)
    assert cache.objects[(NAMESPACE, "api")] is view
