"""``sundial preview``: check ScheduledDeployment YAML offline and show when it would run.

Uses the operator's own code (`sundial.decide.validation`, `sundial.timing.schedule`), so a file that previews
as valid is one the operator will schedule the same way. ``dependsOn`` is resolved among the documents of the
file (per namespace); the preview cannot see objects that are only in the cluster.

ReleaseFreeze and ClusterReleaseFreeze documents in the same file set are checked too (with the operator's
`sundial.decide.freezes.read_freeze`), listed with their windows, and applied to every run: a run a freeze
holds or defers says so. A ReleaseFreeze without a namespace is in ``default``, as a ScheduledDeployment is.

Output for one document (``-o json``)::

    {"kind", "name", "namespace", "valid", "reason", "message", "timeZone",
     "runs": [{"scheduledTime", "localTime", "dependencyTime", "role", "skipped", "notes",
               "freeze": null or {"action", "freeze", "reason", "until", "served", "pastDeadline",
                          "message"}}]}

for a freeze, ``"runs": []`` and also ``"freezeReason"``, ``"action"`` and ``"windows": [{"start", "end",
"localStart", "localEnd", "rule", "active"}]`` (the next `DEFAULT_COUNT` or ``--count``); and for several
documents, a list in file order. Exit status: 0 when every document is valid, 1 when any
is not (or the YAML does not parse), 2 when the file cannot be read.

Notes
-----
The YAML loader leaves date-like scalars as strings (``runAt: 2027-03-14T02:30:00`` stays text), as the
Kubernetes YAML decoder does; PyYAML's default would turn it into a datetime that the API never sees.

The clock is read in one place, `_system_clock`, only when ``--now`` is not given; everything below it
takes ``now`` as an argument.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import yaml
from pydantic import ValidationError

from sundial.api.approvals import APPROVAL_KIND, DeploymentApprovalSpec
from sundial.api.durations import format_duration
from sundial.api.freezes import FreezeAction
from sundial.api.keys import API_VERSION, KIND
from sundial.api.reasons import Invalid, Reason
from sundial.api.timestamps import format_utc
from sundial.cli.freezes import (
    InvalidFreeze,
    describe_verdict,
    is_freeze_document,
    read_one,
    run_verdict,
    upcoming_windows,
    verdict_json,
    window_json,
)
from sundial.decide.approvals import Approval, approval_verdict, approvals_by_object, read_approval
from sundial.decide.freezes import CalendarRef, Freeze, FreezeVerdict
from sundial.decide.validation import DEFAULT_NAMESPACE, Valid, Verdict, timings, validate_namespace
from sundial.timing.freezes import Window
from sundial.timing.occurrences import Occurrence, describe_run, due, upcoming
from sundial.timing.schedule import Timing

DEFAULT_COUNT = 5
MAX_COUNT = 1000


class _KubernetesLoader(yaml.SafeLoader):
    """A safe loader without YAML 1.1 timestamps, like the Kubernetes decoder."""


_KubernetesLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@dataclass(frozen=True)
class Preview:
    """The preview of one document."""

    name: str | None
    namespace: str | None
    verdict: Verdict | Freeze | Approval
    """A ScheduledDeployment's verdict; for a freeze document the compiled freeze, for a DeploymentApproval
    the approval (or for either why it is not valid)."""
    time_zone: str | None
    runs: list[Occurrence] = field(default_factory=list)
    kind: str = KIND
    frozen: tuple[FreezeVerdict | None, ...] = ()
    """For each of ``runs``, what the freezes of the file set do to it (None: nothing)."""
    windows: tuple[Window, ...] = ()
    """For a valid freeze document: its window on at ``now`` (if any) and the next ones."""
    now: datetime | None = None
    """The instant previewed, which says which window is on."""
    notes: tuple[str, ...] = ()
    """For a DeploymentApproval: what it approves."""

    @property
    def valid(self) -> bool:
        return not isinstance(self.verdict, Invalid)

    def freeze_of(self, index: int) -> FreezeVerdict | None:
        return self.frozen[index] if index < len(self.frozen) else None

    def to_json(self) -> dict[str, Any]:
        """The documented JSON shape."""
        invalid = self.verdict if isinstance(self.verdict, Invalid) else None
        body: dict[str, Any] = {
            "kind": self.kind,
            "name": self.name,
            "namespace": self.namespace,
            "valid": invalid is None,
            "reason": invalid.reason.value if invalid else None,
            "message": invalid.message if invalid else None,
            "timeZone": self.time_zone,
            "runs": [
                {**describe_run(run), "freeze": verdict_json(self.freeze_of(index), run)}
                for index, run in enumerate(self.runs)
            ],
        }
        if isinstance(self.verdict, Approval):
            body["approves"] = {
                "scheduledDeployment": self.verdict.scheduled_deployment,
                "scheduledTime": format_utc(self.verdict.scheduled_time),
                "approver": self.verdict.approver,
            }
        if isinstance(self.verdict, Freeze) and self.now is not None:
            zone = self.verdict.rules.zone
            body["freezeReason"] = self.verdict.reason
            body["action"] = self.verdict.action.value
            body["windows"] = [window_json(window, zone, self.now) for window in self.windows]
        return body


def load_documents(text: str) -> list[Any]:
    """The documents of a YAML stream, with ``kind: List`` (as from ``kubectl get -o yaml``) flattened."""
    documents: list[Any] = []
    for document in yaml.load_all(text, Loader=_KubernetesLoader):  # a SafeLoader subclass
        if document is None:
            continue
        if isinstance(document, Mapping) and str(document.get("kind", "")).endswith("List"):
            documents.extend(document.get("items") or [])
        else:
            documents.append(document)
    return documents


def _metadata(document: Any, key: str) -> str | None:
    metadata = document.get("metadata") if isinstance(document, Mapping) else None
    value = metadata.get(key) if isinstance(metadata, Mapping) else None
    return value if isinstance(value, str) else None


def _time_zone(document: Any) -> str | None:
    spec = document.get("spec") if isinstance(document, Mapping) else None
    value = spec.get("timeZone", "UTC") if isinstance(spec, Mapping) else None
    return value if isinstance(value, str) else None


@dataclass
class _FileSet:
    """The documents of a preview, sorted by kind: what each ScheduledDeployment is judged among."""

    verdicts: dict[int, Verdict] = field(default_factory=dict)
    namespaces: dict[str, list[int]] = field(default_factory=dict)
    """The ScheduledDeployments' indexes, by namespace."""
    freezes: dict[int, Freeze | InvalidFreeze] = field(default_factory=dict)
    approvals: dict[int, Approval | Invalid] = field(default_factory=dict)


def _sort(documents: Sequence[Any], now: datetime) -> _FileSet:
    found = _FileSet()
    calendars = _calendars(documents)
    for index, document in enumerate(documents):
        if not isinstance(document, Mapping):
            found.verdicts[index] = Invalid(Reason.INVALID_SPEC, f"document {index + 1} is not a mapping")
        elif is_freeze_document(document):
            found.freezes[index] = read_one(
                document, default_namespace=DEFAULT_NAMESPACE, calendars=calendars
            )
        elif _is_approval(document):
            found.approvals[index] = _read_approval(document)
        elif not _is_config_map(document):
            namespace = _metadata(document, "namespace") or DEFAULT_NAMESPACE
            found.namespaces.setdefault(namespace, []).append(index)
    for indexes in found.namespaces.values():
        results = validate_namespace([documents[index] for index in indexes], now)
        for index, (_, verdict) in zip(indexes, results, strict=True):
            found.verdicts[index] = verdict
    return found


def preview_documents(documents: Sequence[Any], now: datetime, count: int = DEFAULT_COUNT) -> list[Preview]:
    """Validate ``documents`` against each other (per namespace) and list the next runs of the valid ones,
    with what the freeze documents among them do to each run and whether the approvals among them approve
    it. ConfigMaps are holiday calendars for the freezes that name them, and are not listed.

    A runAt that is past but still within its startingDeadlineSeconds is listed first, as due now.
    """
    files = _sort(documents, now)
    freezes = [freeze for freeze in files.freezes.values() if isinstance(freeze, Freeze)]
    by_namespace = {
        namespace: timings(files.verdicts[index] for index in indexes)
        for namespace, indexes in files.namespaces.items()
    }
    siblings = {
        namespace: {_metadata(documents[index], "name") or "": documents[index] for index in indexes}
        for namespace, indexes in files.namespaces.items()
    }
    given: dict[str, list[Approval]] = {}
    for index, approval in files.approvals.items():
        if isinstance(approval, Approval):
            given.setdefault(_metadata(documents[index], "namespace") or DEFAULT_NAMESPACE, []).append(
                approval
            )
    previews = []
    for index, document in enumerate(documents):
        if _is_config_map(document):
            continue
        if index in files.freezes:
            previews.append(_freeze_preview(document, files.freezes[index], now, count))
        elif index in files.approvals:
            previews.append(_approval_preview(document, files.approvals[index]))
        else:
            verdict = files.verdicts[index]
            namespace = verdict.namespace if isinstance(verdict, Valid) else ""
            context = _Context(
                by_namespace.get(namespace, {}),
                siblings.get(namespace, {}),
                freezes,
                approvals_by_object(given.get(namespace, ())),
            )
            previews.append(_object_preview(document, verdict, context, now, count))
    return previews


@dataclass(frozen=True)
class _Context:
    """What a ScheduledDeployment's runs are worked out among: its namespace's timings and objects, the
    freezes and the approvals of the file set."""

    timings: Mapping[str, Timing]
    siblings: Mapping[str, Mapping[str, Any]]
    freezes: Sequence[Freeze]
    approvals: Mapping[str, tuple[Approval, ...]]


def _object_preview(document: Any, verdict: Verdict, context: _Context, now: datetime, count: int) -> Preview:
    runs: list[Occurrence] = []
    frozen: list[FreezeVerdict | None] = []
    if isinstance(verdict, Valid):
        late = due(verdict.name, context.timings, None, now).due
        if late is not None:
            waited = format_duration(now - late.instant)
            late = replace(
                late, notes=(*late.notes, f"due now: {waited} late, within startingDeadlineSeconds")
            )
        runs = ([late] if late is not None else []) + upcoming(verdict.name, context.timings, now, count)
        runs = runs[:count]
        frozen = [
            run_verdict(run, verdict.namespace, document, context.siblings, context.freezes, now)
            for run in runs
        ]
        runs = [_with_approval_note(run, document, context.siblings, context.approvals) for run in runs]
    return Preview(
        name=_metadata(document, "name"),
        namespace=_metadata(document, "namespace")
        or (DEFAULT_NAMESPACE if isinstance(document, Mapping) else None),
        verdict=verdict,
        time_zone=_time_zone(document),
        runs=runs,
        frozen=tuple(frozen),
    )


def _is_config_map(document: object) -> bool:
    return (
        isinstance(document, Mapping)
        and document.get("apiVersion") == "v1"
        and document.get("kind") == "ConfigMap"
    )


def _is_approval(document: object) -> bool:
    return (
        isinstance(document, Mapping)
        and document.get("apiVersion") == API_VERSION
        and document.get("kind") == APPROVAL_KIND
    )


def _calendars(documents: Sequence[Any]) -> dict[CalendarRef, str]:
    """The text of every key of the ConfigMaps in the file set: holiday calendars a freeze may name."""
    found: dict[CalendarRef, str] = {}
    for document in documents:
        if not _is_config_map(document):
            continue
        namespace = _metadata(document, "namespace") or DEFAULT_NAMESPACE
        name = _metadata(document, "name") or ""
        data = document.get("data")
        for key, text in data.items() if isinstance(data, Mapping) else ():
            if isinstance(text, str):
                found[(namespace, name, str(key))] = text
    return found


def _read_approval(document: Mapping[str, Any]) -> Approval | Invalid:
    try:
        DeploymentApprovalSpec.model_validate(document.get("spec") or {})
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        detail = str(first.get("msg", error)).removeprefix("Value error, ")
        return Invalid(Reason.INVALID_SPEC, f"spec.{where}: {detail}")
    approval = read_approval(document)
    if approval is None:
        return Invalid(Reason.INVALID_SPEC, "metadata.name is missing")
    return approval


def _approval_preview(document: Mapping[str, Any], approval: Approval | Invalid) -> Preview:
    namespace = _metadata(document, "namespace") or DEFAULT_NAMESPACE
    if isinstance(approval, Invalid):
        return Preview(_metadata(document, "name"), namespace, approval, None, kind=APPROVAL_KIND)
    note = (
        f"approves the run of {approval.scheduled_deployment!r} for {format_utc(approval.scheduled_time)}, "
        f"as {approval.approver}"
    )
    return Preview(approval.name, namespace, approval, None, kind=APPROVAL_KIND, notes=(note,))


def _with_approval_note(
    run: Occurrence,
    document: Mapping[str, Any],
    siblings: Mapping[str, Mapping[str, Any]],
    approvals: Mapping[str, tuple[Approval, ...]],
) -> Occurrence:
    """``run`` with a note saying whether it is approved, when its object (or the dependent it serves)
    requires approval; the file set's DeploymentApprovals are the only ones known offline."""
    verdict = approval_verdict(run, document, siblings, approvals)
    if verdict is None:
        return run
    if verdict.approved is not None:
        note = f"approved by {verdict.approved.describe()}"
    else:
        groups = f" by a member of {', '.join(verdict.groups)}" if verdict.groups else ""
        note = (
            f"needs approval{groups} (none in the file set): kubectl sundial approve {verdict.needed_for} "
            f"--run {format_utc(verdict.instant)}"
        )
    return replace(run, notes=(*run.notes, note))


def _freeze_preview(
    document: Mapping[str, Any], compiled: Freeze | InvalidFreeze, now: datetime, count: int
) -> Preview:
    kind = str(document.get("kind"))
    name = _metadata(document, "name")
    if isinstance(compiled, InvalidFreeze):
        # The reason is a Reason's value: read back, so that the verdict is the Invalid ScheduledDeployments
        # are reported with.
        verdict: Freeze | Invalid = Invalid(Reason(compiled.reason), compiled.message)
        return Preview(name, compiled.namespace, verdict, _time_zone(document), kind=kind, now=now)
    windows = tuple(upcoming_windows(compiled, now, count))
    return Preview(
        name, compiled.namespace, compiled, _time_zone(document), kind=kind, windows=windows, now=now
    )


def render_json(previews: Sequence[Preview]) -> str:
    """One object for one document, a list for several."""
    body: Any = previews[0].to_json() if len(previews) == 1 else [preview.to_json() for preview in previews]
    return json.dumps(body, indent=2) + "\n"


def render_table(previews: Iterable[Preview]) -> str:
    """A compact report for people: a line per document, then its runs (or a freeze's windows) and notes."""
    lines: list[str] = []
    for preview in previews:
        title = f"{preview.namespace or '-'}/{preview.name or '-'}"
        if preview.kind != KIND:
            where = f"{preview.namespace}/{preview.name or '-'}" if preview.namespace else preview.name or "-"
            title = f"{preview.kind} {where}"
        if isinstance(preview.verdict, Invalid):
            lines.append(f"{title}  INVALID  {preview.verdict.reason.value}")
            lines.append(f"    {preview.verdict.message}")
            continue
        if isinstance(preview.verdict, Freeze):
            lines.extend(_freeze_table(title, preview.verdict, preview.windows, preview.now))
            continue
        if preview.kind == APPROVAL_KIND:
            lines.append(f"{title}  valid")
            lines.extend(f"    {note}" for note in preview.notes)
            continue
        lines.append(f"{title}  valid  {preview.time_zone}")
        if not preview.runs:
            lines.append(
                "    no runs ahead (a runAt that has passed, or a dependency nothing in this file needs)"
            )
            continue
        lines.append(f"    {'SCHEDULED (UTC)':<22}{'LOCAL':<27}{'DEPENDENCY (UTC)':<22}ROLE")
        for index, run in enumerate(preview.runs):
            row = describe_run(run)
            frozen = preview.freeze_of(index)
            role = str(row["role"])
            if run.skipped:
                role += " (skipped)"
            elif frozen is not None:
                role += " (held)" if frozen.action is FreezeAction.HOLD else " (deferred)"
            dependency = row["dependencyTime"] or "-"
            lines.append(f"    {row['scheduledTime']:<22}{row['localTime']:<27}{dependency:<22}{role}")
            lines.extend(f"      note: {note}" for note in run.notes)
            if frozen is not None:
                lines.append(f"      frozen: {describe_verdict(frozen, run)}")
    return "\n".join(lines) + "\n"


def _freeze_table(title: str, freeze: Freeze, windows: Sequence[Window], now: datetime | None) -> list[str]:
    zone = freeze.rules.zone
    lines = [f"{title}  valid  {getattr(zone, 'key', zone)}  {freeze.action.value}  {freeze.reason}"]
    if not windows:
        lines.append("    no window ahead (within 400 days)")
    for window in windows:
        on = now is not None and window.covers(now)
        start, end = window.start.astimezone(zone), window.end.astimezone(zone)
        lines.append(
            f"    {'ON NOW ' if on else ''}{format_utc(window.start)} to {format_utc(window.end)}  "
            f"{start:%a %d %b %Y %H:%M %Z} to {end:%a %d %b %Y %H:%M %Z}  {window.rule}"
        )
    return lines


def _system_clock() -> datetime:
    """The only clock read in Sundial's offline tooling: the default for ``--now``."""
    return datetime.now(UTC)


def _instant(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an RFC 3339 instant such as 2027-03-14T00:00:00Z"
        ) from exc
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no offset; add Z or an offset such as +01:00")
    return moment


def _count(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_COUNT:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 1 to {MAX_COUNT}")
    return int(text)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``sundial preview``."""
    parser = subparsers.add_parser(
        "preview",
        help="check ScheduledDeployment YAML offline and show its next runs",
        description="Validate ScheduledDeployments with the operator's own rules and list their next runs.",
    )
    parser.add_argument(
        "-f", "--filename", required=True, help="a YAML file of one or more documents; - for stdin"
    )
    parser.add_argument("--now", type=_instant, help="preview as of this RFC 3339 instant (default: now)")
    parser.add_argument(
        "--count", type=_count, default=DEFAULT_COUNT, help="runs to list per object (default 5)"
    )
    parser.add_argument("-o", "--output", choices=("table", "json"), default="table", help="output format")
    parser.set_defaults(handler=run)


def run(
    args: argparse.Namespace,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    clock: Callable[[], datetime] = _system_clock,
) -> int:
    """The ``preview`` command; the keyword arguments are for tests."""
    stdin, stdout, stderr = stdin or sys.stdin, stdout or sys.stdout, stderr or sys.stderr
    try:
        text = stdin.read() if args.filename == "-" else Path(args.filename).read_text(encoding="utf-8")
    except OSError as exc:
        stderr.write(f"sundial preview: cannot read {args.filename}: {exc.strerror or exc}\n")
        return 2
    now = args.now if args.now is not None else clock()
    try:
        documents = load_documents(text)
    except yaml.YAMLError as exc:
        problem = Invalid(Reason.INVALID_SPEC, f"{args.filename} is not valid YAML: {exc}")
        previews = [Preview(None, None, problem, None)]
    else:
        previews = (
            preview_documents(documents, now, args.count)
            if documents
            else [
                Preview(
                    None, None, Invalid(Reason.INVALID_SPEC, f"{args.filename} contains no documents"), None
                )
            ]
        )
    stdout.write(render_json(previews) if args.output == "json" else render_table(previews))
    return 0 if all(preview.valid for preview in previews) else 1
