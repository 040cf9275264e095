"""The generated CRD: current, structural, and saying what people need at a glance."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sundial.api import crd, reference
from sundial.api.models import AWS_REGION_PATTERN, LEAD_TIME_PATTERN, RUN_AT_PATTERN, ScheduledDeploymentSpec
from sundial.cli.main import main

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / crd.CRD_PATH

# Short names of the resources built into Kubernetes (kubectl api-resources), which ours must not shadow.
BUILT_IN_SHORT_NAMES = {
    "cs", "cm", "ep", "ev", "limits", "ns", "no", "pvc", "pv", "po", "pc", "rc", "quota", "sa", "svc",
    "crd", "crds", "ds", "deploy", "rs", "sts", "hpa", "cj", "csr", "ing", "netpol", "pdb", "psp", "sc",
    "ingclass", "vac", "csinode", "csidriver", "ipaddr",
}  # fmt: skip


def spec_schema() -> dict[str, Any]:
    return crd.open_api_schema()["properties"]["spec"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("definition", crd.DEFINITIONS, ids=lambda definition: definition.kind)
def test_the_committed_crds_are_current(definition: crd.Definition) -> None:
    assert (REPO / definition.path).read_text(encoding="utf-8") == crd.render(definition), (
        f"{definition.path} is stale: run `python -m sundial.api.crd` and commit"
    )


def test_the_crds_kustomization_lists_every_generated_crd() -> None:
    listed = yaml.safe_load((REPO / "crds" / "kustomization.yaml").read_text(encoding="utf-8"))["resources"]
    assert {definition.path.name for definition in crd.DEFINITIONS} <= set(listed)


def test_the_committed_field_reference_is_current() -> None:
    committed = (REPO / reference.REFERENCE_PATH).read_text(encoding="utf-8")
    assert committed == reference.render(), (
        f"{reference.REFERENCE_PATH} is stale: run `python -m sundial.api.crd` and commit"
    )


def test_the_field_reference_has_a_row_for_every_field_of_the_schema() -> None:
    page = reference.render()
    fields = [path[1:] for path, _ in nodes(crd.open_api_schema()) if path.startswith((".spec.", ".status."))]
    assert len(fields) > 40
    for path in fields:
        if not path.endswith("[]"):
            assert f"| `{path}` | " in page, path


def test_python_m_sundial_crd_writes_the_file_under_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert crd.main() == 0
    for definition in crd.DEFINITIONS:
        assert (tmp_path / definition.path).read_text(encoding="utf-8") == crd.render(definition)
    assert (tmp_path / reference.REFERENCE_PATH).read_text(encoding="utf-8") == reference.render()
    out = capsys.readouterr().out
    assert "wrote crds/scheduleddeployments.sundial.dev.yaml" in out
    assert "wrote docs/reference.md" in out


def test_sundial_crd_prints_the_same_yaml(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["crd"]) == 0
    printed = capsys.readouterr().out
    assert printed == crd.render_all()
    assert [document["metadata"]["name"] for document in yaml.safe_load_all(printed)] == [
        "scheduleddeployments.sundial.dev",
        "releasefreezes.sundial.dev",
        "clusterreleasefreezes.sundial.dev",
        "deploymentapprovals.sundial.dev",
    ]


def nodes(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, schema
    for name, child in schema.get("properties", {}).items():
        yield from nodes(child, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from nodes(schema["additionalProperties"], f"{path}{{}}")


def test_the_schema_is_structural() -> None:
    schema = crd.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    problems = []
    for path, node in nodes(schema):
        # Kubernetes' rule: a type everywhere, but for a value of any JSON type (a JSON patch's `value`),
        # which says so with x-kubernetes-preserve-unknown-fields.
        if "type" not in node and node.get("x-kubernetes-preserve-unknown-fields") is not True:
            problems.append(f"{path or '<root>'}: no type")
        for key in ("$ref", "$defs", "anyOf", "oneOf", "allOf", "not", "title", "const", "nullable"):
            if key in node:
                problems.append(f"{path}: has {key}")
        if "properties" in node and "additionalProperties" in node:
            problems.append(f"{path}: properties with additionalProperties")
        opaque = node.get("type") == "object" and not ({"properties", "additionalProperties"} & set(node))
        preserved = node.get("x-kubernetes-preserve-unknown-fields") is True
        if opaque and not preserved and path != ".metadata":  # the API server checks metadata itself
            problems.append(f"{path}: an object with no fields that does not preserve them")
        if path.startswith(".status") and "default" in node:
            problems.append(f"{path}: a default in status")
    assert not problems, "\n".join(problems)


def apply_defaults(value: Any, schema: dict[str, Any]) -> Any:
    """Structural defaulting as the API server does it: missing fields get their default, recursively."""
    if isinstance(value, dict):
        result = dict(value)
        for name, child in schema.get("properties", {}).items():
            if name not in result and "default" in child:
                result[name] = child["default"]
            if name in result:
                result[name] = apply_defaults(result[name], child)
        return result
    return value


def test_the_api_server_defaults_agree_with_the_models_defaults() -> None:
    minimal = {"runAt": "2030-01-01T00:00", "dependsOn": {"name": "db"}, **crd_target()}
    defaulted = apply_defaults(minimal, spec_schema())
    model = ScheduledDeploymentSpec.model_validate(minimal).model_dump(
        mode="json", by_alias=True, exclude_none=True
    )
    assert defaulted == model


def crd_target() -> dict[str, Any]:
    return {"deployment": {"name": "api", "container": "api", "image": "registry.example.com/api:v1"}}


def test_every_spec_field_is_documented() -> None:
    undocumented = [path for path, node in nodes(spec_schema()) if path and not node.get("description")]
    undocumented = [path for path in undocumented if not path.endswith("[]")]
    assert not undocumented


def test_cel_rules_keep_the_one_of_constraints_with_readable_messages() -> None:
    rules = {rule["message"]: rule["rule"] for rule in spec_schema()["x-kubernetes-validations"]}
    assert rules == {
        "set at most one of runAt and schedule (with neither, the object runs only as a dependency)": (
            "!(has(self.runAt) && has(self.schedule))"
        ),
        "set exactly one of deployment, ecsService, patch or jobTemplate": (
            "[has(self.deployment), has(self.ecsService), has(self.patch), has(self.jobTemplate)]"
            ".exists_one(x, x)"
        ),
    }


@pytest.mark.parametrize(
    ("field", "pattern", "good", "bad"),
    [
        (
            ("runAt",),
            RUN_AT_PATTERN,
            ["2027-03-14T02:30", "2027-03-14T02:30:00Z", "2027-03-14T02:30+05:30"],
            ["2027-03-14 02:30", "soon"],
        ),
        (("dependsOn", "leadTime"), LEAD_TIME_PATTERN, ["15m", "1h30m", "90s"], ["15 m", "1.5h"]),
        (
            ("ecsService", "region"),
            AWS_REGION_PATTERN,
            ["eu-west-1", "us-gov-west-1", "ap-southeast-5", "cn-north-1", "us-isob-east-1", "il-central-1"],
            ["Frankfurt", "eu-west", "EU-WEST-1", "eu-west-1.", "evil.example/", "eu-west-1\n", "us_east_1"],
        ),
    ],
)
def test_format_rules_use_the_parser_s_own_pattern_on_a_bounded_string(
    field: tuple[str, ...], pattern: str, good: list[str], bad: list[str]
) -> None:
    node = spec_schema()
    for name in field:
        node = node["properties"][name]
    assert f"self.matches('{pattern}')" in node["x-kubernetes-validations"][0]["rule"]
    assert node["maxLength"] <= 64, "CEL cost estimation needs a bound"
    assert all(re.fullmatch(pattern, text) for text in good)
    assert not any(re.fullmatch(pattern, text) for text in bad)


def test_names_and_categories_stay_out_of_the_way() -> None:
    spec = crd.crd()["spec"]
    assert spec["scope"] == "Namespaced"
    assert crd.crd()["metadata"]["name"] == "scheduleddeployments.sundial.dev"
    assert spec["names"]["shortNames"] == ["sdep"]
    assert not set(spec["names"]["shortNames"]) & BUILT_IN_SHORT_NAMES
    assert "all" not in spec["names"]["categories"]


def test_one_served_storage_version_with_the_status_subresource() -> None:
    (version,) = crd.crd()["spec"]["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}


def test_printer_columns_answer_is_it_fine_when_next_and_why_not() -> None:
    columns = crd.crd()["spec"]["versions"][0]["additionalPrinterColumns"]
    default = [(c["name"], c["type"]) for c in columns if c.get("priority", 0) == 0]
    wide = [c["name"] for c in columns if c.get("priority") == 1]
    assert default == [
        ("Ready", "string"),
        ("Reason", "string"),
        ("Next Run", "string"),
        ("Freeze", "string"),
        ("Last Run", "date"),
        ("Age", "date"),
    ]
    assert wide == ["Schedule", "Run At", "Time Zone", "Depends On", "Job", "Approval", "Message"]
    paths = {c["name"]: c["jsonPath"] for c in columns}
    assert paths["Ready"] == '.status.conditions[?(@.type=="Ready")].status'
    assert paths["Next Run"] == ".status.nextRunTime"


def test_the_freeze_kinds_are_namespaced_and_cluster_scoped_with_their_own_short_names() -> None:
    namespaced, cluster = (crd.crd(d)["spec"] for d in (crd.RELEASE_FREEZE, crd.CLUSTER_RELEASE_FREEZE))
    assert (namespaced["scope"], cluster["scope"]) == ("Namespaced", "Cluster")
    short = namespaced["names"]["shortNames"] + cluster["names"]["shortNames"]
    assert short == ["rfz", "crfz"]
    assert not set(short) & BUILT_IN_SHORT_NAMES
    columns = [
        c["name"] for c in namespaced["versions"][0]["additionalPrinterColumns"] if not c.get("priority")
    ]
    assert columns == ["Active", "Until", "Next Start", "Next End", "Action", "Reason", "Age"]
    cluster_spec = cluster["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert "namespaces" in cluster_spec["properties"]
    rules = [rule["rule"] for rule in cluster_spec["x-kubernetes-validations"]]
    kinds = ("weekly", "recurring", "windows", "dates", "calendar")
    assert rules == [" || ".join(f"has(self.{kind})" for kind in kinds)]


def test_the_yaml_has_no_anchors_and_parses_back_to_the_dict() -> None:
    text = crd.render()
    assert "&id" not in text and "*id" not in text
    assert yaml.safe_load(text) == crd.crd()
