"""The one entry point that decides whether a ScheduledDeployment can be scheduled.

The operator and ``sundial preview`` both call `validate` (or `validate_namespace`), so that what preview
accepts offline is exactly what the operator will schedule.

Checks run from the object outwards, and the first failure is reported: identity, shape (pydantic), then
timing (zone, runAt or schedule, DST policy), then the dependency chain among the siblings, then whether a
runAt is too far in the past. Pydantic's errors are rewritten as sentences that name the field in its
camelCase YAML spelling.
"""

from __future__ import annotations

import difflib
import json
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from sundial.api.keys import API_VERSION, KIND
from sundial.api.models import DependsOn, ScheduledDeploymentSpec
from sundial.api.reasons import Invalid, Reason, SpecError
from sundial.timing.dependencies import DependencyGraph, lead_time, resolve_chain
from sundial.timing.occurrences import check_run_at_not_past
from sundial.timing.schedule import Timing, build_timing

DEFAULT_NAMESPACE = "default"
_MAX_ERRORS = 3
_FIELD_REASONS = {
    "runAt": Reason.INVALID_RUN_AT,
    "schedule": Reason.INVALID_SCHEDULE,
    "timeZone": Reason.INVALID_TIME_ZONE,
    "patch": Reason.INVALID_PATCH,
}


@dataclass(frozen=True)
class Valid:
    """A verdict that an object can be scheduled, with everything the engine needs."""

    name: str
    """metadata.name."""

    namespace: str
    """metadata.namespace (``default`` when a file leaves it out)."""

    spec: ScheduledDeploymentSpec
    """The parsed spec, defaults applied."""

    timing: Timing
    """The compiled timing, dependency chain included."""


Verdict = Valid | Invalid


def _field_names(model: type[BaseModel]) -> set[str]:
    names: set[str] = set()
    for field in model.model_fields.values():
        names.add(field.alias or "")
        for argument in getattr(field.annotation, "__args__", (field.annotation,)):
            if isinstance(argument, type) and issubclass(argument, BaseModel):
                names |= _field_names(argument)
    return names - {""}


_KNOWN_FIELDS = sorted(_field_names(ScheduledDeploymentSpec))


def _path(prefix: str, location: Sequence[int | str]) -> str:
    return prefix + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in location)


def _sentence(error: ErrorDetails, prefix: str) -> str:
    path = _path(prefix, error["loc"])
    kind = error["type"]
    if kind == "missing":
        return f"{path} is required"
    if kind == "extra_forbidden":
        field = str(error["loc"][-1])
        close = difflib.get_close_matches(field, _KNOWN_FIELDS, n=1)
        hint = (
            f"; did you mean {close[0]!r}?" if close else "; fields are camelCase, such as runAt and timeZone"
        )
        return f"{path} is not a field of a ScheduledDeployment{hint}"
    if kind == "value_error":
        return str(error.get("ctx", {}).get("error", error["msg"]))
    if kind == "enum":
        return f"{path} is {error['input']!r}; it must be one of {error.get('ctx', {}).get('expected', '')}"
    message = error["msg"]
    return f"{path}: {message[:1].lower()}{message[1:]} (got {error['input']!r})"


def from_validation_error(exc: ValidationError, prefix: str = "spec") -> Invalid:
    """Turn pydantic's errors into one `Invalid`: the most specific reason, and readable sentences."""
    errors = exc.errors(include_url=False)
    sentences = [_sentence(error, prefix) for error in errors[:_MAX_ERRORS]]
    if len(errors) > _MAX_ERRORS:
        more = len(errors) - _MAX_ERRORS
        sentences.append(f"and {more} more {'problem' if more == 1 else 'problems'}")
    first = errors[0]["loc"][0] if errors and errors[0]["loc"] else ""
    reason = _FIELD_REASONS.get(str(first), Reason.INVALID_SPEC) if prefix == "spec" else Reason.INVALID_SPEC
    return Invalid(reason, "; ".join(sentences))


def parse_spec(raw: object) -> ScheduledDeploymentSpec:
    """Validate the shape of ``spec``; raises `SpecError`."""
    if not isinstance(raw, Mapping):
        raise SpecError(Reason.INVALID_SPEC, "spec is required and must be a mapping of fields such as runAt")
    try:
        return ScheduledDeploymentSpec.model_validate(raw)
    except ValidationError as exc:
        invalid = from_validation_error(exc)
        raise SpecError(invalid.reason, invalid.message) from exc


def identity(obj: Mapping[str, Any]) -> tuple[str, str]:
    """``(name, namespace)`` of a raw object; raises `SpecError` if it is not a named ScheduledDeployment."""
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if api_version != API_VERSION or kind != KIND:
        raise SpecError(
            Reason.INVALID_SPEC,
            f"apiVersion must be {API_VERSION} and kind {KIND} (found {api_version!r} and {kind!r})",
        )
    metadata = obj.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    if not isinstance(name, str) or not name:
        raise SpecError(Reason.INVALID_SPEC, "metadata.name is required")
    namespace = metadata.get("namespace") if isinstance(metadata, Mapping) else None
    return name, namespace if isinstance(namespace, str) and namespace else DEFAULT_NAMESPACE


def dependency_graph(objects: Mapping[str, Mapping[str, Any]]) -> dict[str, DependsOn | Invalid | None]:
    """What each raw object depends on, read leniently: a broken sibling matters only if a chain reaches
    it."""
    graph: dict[str, DependsOn | Invalid | None] = {}
    for name, obj in objects.items():
        spec = obj.get("spec")
        raw = spec.get("dependsOn") if isinstance(spec, Mapping) else None
        if raw is None:
            graph[name] = None
            continue
        try:
            graph[name] = DependsOn.model_validate(raw)
        except ValidationError as exc:
            graph[name] = from_validation_error(exc, prefix="spec.dependsOn")
    return graph


def validate(
    obj: Mapping[str, Any],
    now: datetime,
    siblings: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    has_run: bool = False,
) -> Verdict:
    """Decide whether ``obj`` (a raw ScheduledDeployment) can be scheduled at ``now``.

    ``siblings`` are the raw ScheduledDeployments of the same namespace by name (``obj`` itself may be
    among them; its own spec wins); they are only read to resolve the ``dependsOn`` chain. ``has_run``
    tells whether the object has already run: only an object that has not may be refused as
    ``RunAtInPast``.
    """
    try:
        name, namespace = identity(obj)
        spec = parse_spec(obj.get("spec"))
        timing = build_timing(name, spec, (), now=now)
        graph: DependencyGraph = {**dependency_graph(siblings or {}), name: spec.depends_on}
        if spec.depends_on is not None:
            lead_time(spec.depends_on)
        timing = replace(timing, chain=resolve_chain(graph, name))
        if not has_run:
            check_run_at_not_past(timing, now)
    except SpecError as exc:
        return exc.invalid
    return Valid(name, namespace, spec, timing)


class VerdictMemo:
    """Verdicts remembered by everything `validate` reads, so that a component is validated once per change.

    Why: every reconcile of an object validates it and each object its dependsOn joins it to (pydantic, and
    for Reject policies a two-year scan for DST hits); at an instant a chain of N objects is reconciled N
    times with the same specs. The key holds the object's identity and spec, the ``dependsOn`` of every
    sibling (all the chain resolution reads) and ``has_run``; ``now`` enters by its UTC date when
    ``has_run`` (it only bounds the Reject scan, whose horizon is two years) and exactly otherwise.

    Bounded, least recently used first out: a verdict holds the parsed spec (a jobTemplate as pydantic
    models is kilobytes), and keeping one for every armed object was about 5 KiB per object, while only
    the objects being reconciled around the same moment (a chain at its instant, an object and its status
    write's echo) read each other's. Validating again after an eviction costs 0.02 to 0.3 ms; 4 ms for a
    schedule with a Reject DST policy (the two-year scan), paid once at such an object's next wake-up.
    """

    def __init__(self, capacity: int = 2048) -> None:
        self._capacity = capacity
        self._verdicts: OrderedDict[tuple[object, ...], Verdict] = OrderedDict()
        self.misses = 0
        """How many verdicts were computed rather than remembered (for tests and curiosity)."""

    def validate(
        self,
        obj: Mapping[str, Any],
        now: datetime,
        siblings: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        has_run: bool = False,
    ) -> Verdict:
        """`validate`, remembered."""
        key = self._key(obj, now, siblings or {}, has_run)
        verdict = self._verdicts.get(key)
        if verdict is not None:
            self._verdicts.move_to_end(key)
            return verdict
        self.misses += 1
        verdict = validate(obj, now, siblings, has_run=has_run)
        if len(self._verdicts) >= self._capacity:
            self._verdicts.popitem(last=False)
        self._verdicts[key] = verdict
        return verdict

    @staticmethod
    def _key(
        obj: Mapping[str, Any], now: datetime, siblings: Mapping[str, Mapping[str, Any]], has_run: bool
    ) -> tuple[object, ...]:
        metadata = obj.get("metadata")
        named = (metadata.get("namespace"), metadata.get("name")) if isinstance(metadata, Mapping) else None
        identity = (obj.get("apiVersion"), obj.get("kind"), named)
        links = tuple(
            sorted(
                (name, _canonical(spec.get("dependsOn") if isinstance(spec, Mapping) else None))
                for name, sibling in siblings.items()
                for spec in [sibling.get("spec")]
            )
        )
        when: object = now.astimezone(UTC).date() if has_run else now
        return (_canonical(identity), _canonical(obj.get("spec")), links, has_run, when)


def _canonical(value: object) -> str:
    """A stable text for a JSON value: equal values, equal texts, whatever the key order."""
    return json.dumps(value, sort_keys=True, default=str)


def validate_namespace(
    objects: Iterable[Mapping[str, Any]], now: datetime, *, already_ran: Iterable[str] = ()
) -> list[tuple[Mapping[str, Any], Verdict]]:
    """Validate the raw objects of one namespace against each other, in order.

    ``already_ran`` names the objects that have run (see ``has_run`` in `validate`).
    """
    objects = list(objects)
    ran = set(already_ran)
    by_name: dict[str, Mapping[str, Any]] = {}
    for obj in objects:
        metadata = obj.get("metadata")
        name = metadata.get("name") if isinstance(metadata, Mapping) else None
        if isinstance(name, str):
            by_name.setdefault(name, obj)
    return [(obj, validate(obj, now, by_name, has_run=_name_of(obj) in ran)) for obj in objects]


def _name_of(obj: Mapping[str, Any]) -> str | None:
    metadata = obj.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    return name if isinstance(name, str) else None


def timings(verdicts: Iterable[Verdict]) -> dict[str, Timing]:
    """The timings of the valid verdicts by name, as `sundial.timing.occurrences.upcoming` and `due` use
    them."""
    return {verdict.name: verdict.timing for verdict in verdicts if isinstance(verdict, Valid)}
