"""The Grafana dashboard and docs/metrics.md: every query parses as PromQL and asks only for served metrics.

The metric names come from the operator's own registry (`sundial.runtime.metrics.exported_names`), so renaming
a metric without fixing the dashboard or the docs fails here rather than as an empty panel or a silent
alert in production.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

from sundial.runtime.metrics import Metrics, exported_names

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "manifests" / "grafana-dashboard.json"
DOCS = ROOT / "docs" / "metrics.md"
# Grafana's variables, replaced by values of the right kind so that the query parses as plain PromQL.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "6h", "$__interval": "30s", "$job": ".*"}
LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$")


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def queries(board: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every panel target and every query variable."""
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r} target {target['refId']}", target["expr"]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            text = query["query"] if isinstance(query, dict) else query
            match = LABEL_VALUES.match(text)
            assert match, f"variable {variable['name']}: only label_values(selector, label) is expected"
            yield f"variable {variable['name']!r}", match["selector"]


def metric_names(expression: str) -> list[str]:
    for variable, value in GRAFANA_VARIABLES.items():
        expression = expression.replace(variable, value)
    assert "$" not in expression, f"a Grafana variable this test does not know: {expression}"
    names: list[str] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            assert node.name, f"select metrics by name, not by matchers alone: {expression}"
            names.append(node.name)

    promql_parser.walk(promql_parser.parse(expression), visit)
    return names


ALL_QUERIES = list(queries(dashboard()))


def test_the_dashboard_has_the_panels_the_operations_guide_promises() -> None:
    titles = {panel["title"] for panel in dashboard()["panels"]}
    assert {
        "Runs by result",
        "Fire lateness",
        "Missed runs",
        "Armed schedules",
        "Active replica per pod",
    } <= titles
    ids = [panel["id"] for panel in dashboard()["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"


@pytest.mark.parametrize(("where", "expression"), ALL_QUERIES, ids=[where for where, _ in ALL_QUERIES])
def test_every_query_uses_only_metrics_the_operator_exports(where: str, expression: str) -> None:
    exported = exported_names(Metrics.create().registry)
    names = metric_names(expression)
    assert names, f"{where}: no metric in {expression}"
    assert set(names) <= exported, f"{where}: {sorted(set(names) - exported)} are not exported"


def test_the_core_metrics_are_all_on_the_dashboard() -> None:
    used = {name for _, expression in ALL_QUERIES for name in metric_names(expression)}
    assert {
        "sundial_runs_total",
        "sundial_fire_lateness_seconds_bucket",
        "sundial_armed_schedules",
        "sundial_active_replica",
        "sundial_invalid_objects",
        "sundial_jobs_created_total",
        "sundial_fire_api_errors_total",
    } <= used


def test_the_name_check_would_catch_a_renamed_metric() -> None:
    exported = exported_names(Metrics.create().registry)
    assert "sundial_runs_total" in exported and "sundial_runs" not in exported
    assert metric_names('sum(rate(sundial_runs{job=~"$job"}[$__rate_interval]))') == ["sundial_runs"]
    with pytest.raises(ValueError):
        promql_parser.parse("sum(rate(sundial_runs_total[5m])")


# ---------------------------------------------------------------------------------------------- docs


def fenced(language: str) -> list[str]:
    return re.findall(
        rf"^```{language}\n(.*?)^```$", DOCS.read_text(encoding="utf-8"), re.MULTILINE | re.DOTALL
    )


def doc_queries() -> list[str]:
    found = [block.strip() for block in fenced("promql")]
    for block in fenced("yaml"):
        document = yaml.safe_load(block)
        if document["kind"] != "PrometheusRule":
            continue
        for group in document["spec"]["groups"]:
            found += [rule["expr"] for rule in group["rules"]]
    return found


DOC_QUERIES = doc_queries()


def test_the_docs_show_queries_and_alert_rules() -> None:
    assert len(fenced("promql")) >= 5
    assert any("absent(sundial_active_replica" in query for query in DOC_QUERIES)


@pytest.mark.parametrize("expression", DOC_QUERIES)
def test_every_query_in_the_docs_uses_only_metrics_the_operator_exports(expression: str) -> None:
    exported = exported_names(Metrics.create().registry)
    names = metric_names(expression)
    assert names and set(names) <= exported, f"{sorted(set(names) - exported)} are not exported"


def test_the_docs_service_monitor_selects_the_shipped_metrics_service() -> None:
    monitors = [doc for doc in map(yaml.safe_load, fenced("yaml")) if doc["kind"] == "ServiceMonitor"]
    service = yaml.safe_load((ROOT / "manifests" / "service.yaml").read_text(encoding="utf-8"))
    assert len(monitors) == 1
    monitor = monitors[0]
    assert monitor["metadata"]["namespace"] == service["metadata"]["namespace"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    ports = {port["name"] for port in service["spec"]["ports"]}
    assert {endpoint["port"] for endpoint in monitor["spec"]["endpoints"]} <= ports


def test_the_docs_describe_every_sundial_metric() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for family in Metrics.create().registry.collect():
        if family.name.startswith("sundial_"):
            served = family.name + "_total" if family.type == "counter" else family.name
            assert f"| `{served}` |" in text, f"docs/metrics.md has no row for {served}"
