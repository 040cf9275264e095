"""The generated CRD on a real API server: good objects go in, bad ones come back with a readable reason.

The corpus in ``tests/unit/data`` says in each bad file's header what the API server does with its first
document (``tests/unit/data/README.md``); these tests hold the CRD's schema and CEL rules to that. Every
create is a server-side dry run with strict field validation unless the test has to read the object back.
Dry runs store nothing, so they share one namespace for the module; only the tests that store objects get
one of their own (a namespace per test would cost more than the tests: two kubectl runs each).
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from conftest import REPO, Cluster
from sundial.api.keys import GROUP, PLURAL, VERSION
from sundial.api.models import ScheduledDeploymentSpec

CRD = yaml.safe_load((REPO / "crds" / f"{PLURAL}.{GROUP}.yaml").read_text(encoding="utf-8"))
(CRD_VERSION,) = CRD["spec"]["versions"]
SCHEMA = CRD_VERSION["schema"]["openAPIV3Schema"]
DATA = REPO / "tests" / "unit" / "data"
GOOD = sorted((REPO / "examples").glob("*.yaml")) + sorted((DATA / "good").glob("*.yaml"))
BAD = sorted((DATA / "bad").glob("*.yaml"))
VERDICTS = {"accept", "reject", "prune", "not-applicable"}
FieldPath = tuple[str, ...]


def apiserver_header(path: Path) -> tuple[str, str]:
    """A bad file's ``# apiserver:`` header as (verdict, the text a refusal must contain)."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# apiserver:"):
            verdict, _, text = line.removeprefix("# apiserver:").strip().partition(" ")
            return verdict, text
    raise AssertionError(f"{path.name} has no '# apiserver:' header")


def bad_files(verdict: str) -> list[Path]:
    return [path for path in BAD if apiserver_header(path)[0] == verdict]


def documents(path: Path) -> list[dict[str, Any]]:
    return [document for document in yaml.safe_load_all(path.read_text(encoding="utf-8")) if document]


def by_name(path: Path) -> str:
    return path.name


def create(
    cluster: Cluster, namespace: str, document: dict[str, Any], *, dry_run: bool = True, strict: bool = True
) -> dict[str, Any]:
    """Create ``document`` in ``namespace`` (its own namespace may not exist), as a dry run unless told."""
    body = copy.deepcopy(document)
    body["metadata"] = {**body.get("metadata", {}), "namespace": namespace}
    options = {"dry_run": "All"} if dry_run else {}
    return dict(
        cluster.custom().create_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            body,
            field_validation="Strict" if strict else "Ignore",
            **options,
        )
    )


def refusal(cluster: Cluster, namespace: str, document: dict[str, Any]) -> str | None:
    """The API server's message when it refuses ``document`` (strict, dry run); None when it accepts it."""
    try:
        create(cluster, namespace, document)
    except ApiException as error:
        if error.status not in (400, 422):
            raise
        return str(json.loads(error.body)["message"])
    return None


def unknown_fields(value: Any, schema: dict[str, Any], path: FieldPath = ()) -> Iterator[FieldPath]:
    """Paths in ``value`` that ``schema`` neither declares nor preserves: what the API server prunes."""
    if isinstance(value, dict) and "properties" in schema:
        for key, child in value.items():
            if key in schema["properties"]:
                yield from unknown_fields(child, schema["properties"][key], (*path, key))
            elif not schema.get("x-kubernetes-preserve-unknown-fields"):
                yield (*path, key)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            yield from unknown_fields(item, schema["items"], (*path, str(index)))


def without(document: dict[str, Any], paths: list[FieldPath]) -> dict[str, Any]:
    result = copy.deepcopy(document)
    for *parents, leaf in paths:
        node = result
        for key in parents:
            node = node[key]
        del node[leaf]
    return result


def is_within(expected: Any, actual: Any) -> bool:
    """Whether every field of ``expected`` is in ``actual`` with the same value (defaults may add more)."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            key in actual and is_within(value, actual[key]) for key, value in expected.items()
        )
    return bool(expected == actual)


def table(output: str) -> tuple[list[str], list[dict[str, str]]]:
    """kubectl's table as its headers and one dict per row.

    Cells are cut at the columns' starting offsets in the header line: an empty cell is blank, not
    ``<none>``, and a header such as NEXT RUN holds a space, so splitting on spaces would misalign them.
    """
    header, *rows = output.splitlines()
    starts = [(match.group(), match.start()) for match in re.finditer(r"\S+(?: \S+)*", header)]
    ends = [start for _, start in starts[1:]] + [None]
    return [name for name, _ in starts], [
        {name: row[start:end].strip() for (name, start), end in zip(starts, ends, strict=True)}
        for row in rows
    ]


# ---------------------------------------------------------------------------------------------- corpus


@pytest.fixture(scope="module")
def dry_run_namespace(crds: Cluster) -> Iterator[str]:
    """The namespace every dry-run create names; it exists because admission checks that it does."""
    name = f"crd-dry-run-{uuid.uuid4().hex[:6]}"
    crds.kubectl("create", "namespace", name)
    yield name
    crds.kubectl("delete", "namespace", name, "--wait=false", check=False)


def test_every_bad_file_says_what_the_api_server_does_with_it() -> None:
    headers = {path.name: apiserver_header(path) for path in BAD}
    assert {name: verdict for name, (verdict, _) in headers.items() if verdict not in VERDICTS} == {}
    assert [name for name, (verdict, text) in headers.items() if verdict == "reject" and not text] == []
    assert {verdict for verdict, _ in headers.values()} == VERDICTS, "every verdict has a file to test it"


@pytest.mark.parametrize("path", GOOD, ids=by_name)
def test_every_good_document_is_accepted_as_written(
    path: Path, crds: Cluster, dry_run_namespace: str
) -> None:
    refused = {}
    for document in documents(path):
        message = refusal(crds, dry_run_namespace, document)
        if message is not None:
            refused[document["metadata"]["name"]] = message
    assert refused == {}


@pytest.mark.parametrize("path", GOOD, ids=by_name)
def test_the_api_server_fills_in_the_same_defaults_as_the_models(
    path: Path, crds: Cluster, dry_run_namespace: str
) -> None:
    for document in documents(path):
        stored = create(crds, dry_run_namespace, document)
        model = ScheduledDeploymentSpec.model_validate(document["spec"])

        assert stored["spec"] == model.model_dump(mode="json", by_alias=True, exclude_none=True)


@pytest.mark.parametrize("path", bad_files("reject"), ids=by_name)
def test_bad_files_marked_reject_are_refused_with_the_documented_message(
    path: Path, crds: Cluster, dry_run_namespace: str
) -> None:
    expected = apiserver_header(path)[1]

    message = refusal(crds, dry_run_namespace, documents(path)[0])

    assert message is not None, f"the API server accepted it; the header says it refuses it with {expected!r}"
    assert expected in message


@pytest.mark.parametrize("path", bad_files("accept"), ids=by_name)
def test_bad_files_marked_accept_are_stored_for_the_operator_to_judge(
    path: Path, crds: Cluster, dry_run_namespace: str
) -> None:
    assert refusal(crds, dry_run_namespace, documents(path)[0]) is None


@pytest.mark.parametrize("path", bad_files("prune"), ids=by_name)
def test_bad_files_marked_prune_are_refused_when_strict_and_stored_without_the_field_otherwise(
    path: Path, crds: Cluster, namespace: str
) -> None:
    document = documents(path)[0]
    unknown = sorted(unknown_fields(document, SCHEMA))
    assert unknown, "marked prune, but every field of its first document is in the schema"

    strict = refusal(crds, namespace, document)
    create(crds, namespace, document, dry_run=False, strict=False)
    name = document["metadata"]["name"]
    stored = crds.custom().get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)

    assert strict is not None, "strict field validation accepted it"
    for field in unknown:
        assert f'unknown field "{".".join(field)}"' in strict
    assert list(unknown_fields(stored, SCHEMA)) == []
    assert is_within(without(document, unknown)["spec"], stored["spec"]), (
        "it lost more than the unknown field"
    )


@pytest.mark.parametrize("path", bad_files("not-applicable"), ids=by_name)
def test_bad_files_marked_not_applicable_are_no_kind_the_api_server_serves(path: Path, crds: Cluster) -> None:
    document = documents(path)[0]
    group, _, version = document["apiVersion"].rpartition("/")

    served = crds.custom().get_api_resources(group, version).resources

    assert document["kind"] not in {resource.kind for resource in served}
    assert CRD["spec"]["names"]["kind"] in {resource.kind for resource in served}, "the CRD is not installed"


# ---------------------------------------------------------------------------------------------- kubectl get


def test_kubectl_get_prints_the_crd_s_printer_columns_under_its_plural_and_short_names(
    crds: Cluster, namespace: str
) -> None:
    columns = CRD_VERSION["additionalPrinterColumns"]
    default = ["NAME", *(column["name"].upper() for column in columns if column.get("priority", 0) == 0)]
    wide = ["NAME", *(column["name"].upper() for column in columns)]
    assert {"READY", "REASON", "NEXT RUN", "LAST RUN", "AGE"} <= set(default)
    assert len(wide) > len(default), "some columns are only for -o wide"
    (minimal,) = documents(DATA / "good" / "minimal.yaml")
    create(crds, namespace, minimal, dry_run=False)

    for resource in (PLURAL, *CRD["spec"]["names"]["shortNames"]):
        plain_headers, _ = table(crds.kubectl("get", resource, "-n", namespace).stdout)
        wide_headers, rows = table(crds.kubectl("get", resource, "-n", namespace, "-o", "wide").stdout)

        assert plain_headers == default, resource
        assert wide_headers == wide, resource
        (row,) = rows
        assert (row["NAME"], row["RUN AT"], row["TIME ZONE"]) == ("minimal", minimal["spec"]["runAt"], "UTC")
