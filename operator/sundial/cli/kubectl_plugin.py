"""``kubectl sundial``: the user's tool for ScheduledDeployments and release freezes, installed as the
``kubectl-sundial`` script.

kubectl finds any executable named ``kubectl-<name>`` on ``PATH`` and runs it for ``kubectl <name> …``, so
installing the package is installing the plugin. Unlike the operator, this is a user tool and finds its
credentials as kubectl does: ``--kubeconfig``, else ``$KUBECONFIG``, else ``~/.kube/config``; the
namespace is ``-n``, else the context's, else ``default``.

Exit status: 0 when all went well, 1 when a problem was found (an object missing, forbidden, invalid, a
run that failed or was refused), 2 for a usage error or when the API server cannot be reached.

Notes
-----
Decisions live in pure modules (`sundial.cli.timeline`, `sundial.cli.freezes`, `sundial.api.trigger`,
`sundial.cli.preview`); this
one reads the clock (once per command, in `_system_clock`), talks to the API server and prints. Whatever it
prints that came from the cluster (names, messages, reasons, the API server's errors) goes through
`sundial.cli.terminal.for_terminal`, so a hostile status message cannot rewrite the user's terminal.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, NoReturn, TextIO

from sundial.api.approvals import APPROVAL_KIND, APPROVAL_PLURAL
from sundial.api.durations import parse_duration, parse_seconds
from sundial.api.freezes import (
    CLUSTER_FREEZE_KIND,
    CLUSTER_FREEZE_PLURAL,
    FREEZE_KIND,
    FREEZE_PLURAL,
    FreezeAction,
)
from sundial.api.keys import ANNOTATION_OVERRIDE_FREEZE, ANNOTATION_TRIGGER, GROUP, KIND, PLURAL, VERSION
from sundial.api.reasons import Invalid, SpecError
from sundial.api.timestamps import format_utc
from sundial.api.trigger import BadTrigger, format_request, parse_request
from sundial.cli import approve as approve_cli
from sundial.cli import freezes as freeze_cli
from sundial.cli import preview
from sundial.cli import schedule as schedule_cli
from sundial.cli.terminal import for_terminal
from sundial.cli.timeline import build_timeline, render_json, render_text
from sundial.decide.freezes import FROZEN, CalendarRef, FreezeVerdict, calendar_ref, freeze_verdict
from sundial.decide.validation import validate_namespace
from sundial.runtime.apierrors import api_message
from sundial.timing.names import manual_job_name
from sundial.timing.occurrences import Occurrence
from sundial.timing.wallclock import load_zone

PROG = "kubectl sundial"
REQUEST_TIMEOUT = (5, 30)
"""(connect, read) seconds for every API call: a user waits at the terminal."""
GITOPS_HINT = (
    "note: if a GitOps tool (Argo CD, Flux) manages this object, it will set spec.suspend back to what "
    "the repository says; change it there to make this last"
)


class PluginError(Exception):
    """An expected failure: printed as one line, no traceback."""

    def __init__(self, message: str, code: int = 1, *, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        """The API server's HTTP status, when it answered."""


def _system_clock() -> datetime:
    """The one clock read of the plugin."""
    return datetime.now(UTC)


# ---------------------------------------------------------------------------------------------- API access


@dataclass(frozen=True)
class Resource:
    """One of Sundial's kinds, as the custom-objects API addresses it."""

    kind: str
    plural: str
    namespaced: bool

    def what(self, namespace: str | None, name: str | None = None) -> str:
        """``releasefreeze shop/year-end``, ``clusterreleasefreezes``: the words of messages."""
        if name is None:
            return f"{self.plural} in {namespace}" if self.namespaced and namespace else self.plural
        where = f"{namespace}/{name}" if self.namespaced else name
        return f"{self.kind.lower()} {where}"


SCHEDULED_DEPLOYMENTS = Resource(KIND, PLURAL, namespaced=True)
RELEASE_FREEZES = Resource(FREEZE_KIND, FREEZE_PLURAL, namespaced=True)
CLUSTER_RELEASE_FREEZES = Resource(CLUSTER_FREEZE_KIND, CLUSTER_FREEZE_PLURAL, namespaced=False)
DEPLOYMENT_APPROVALS = Resource(APPROVAL_KIND, APPROVAL_PLURAL, namespaced=True)
SELF_SUBJECT_REVIEW = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}


@dataclass
class Api:
    """The few calls the plugin makes, with kubectl-like errors."""

    custom: Any
    server: str
    namespace: str
    authentication: Any = None
    """An AuthenticationV1Api: asks the API server who the user is (`who_am_i`)."""
    core: Any = None
    """A CoreV1Api: reads the ConfigMaps that freezes name as holiday calendars (`calendars`)."""

    def _fail(self, error: Exception, what: str, resource: Resource = SCHEDULED_DEPLOYMENTS) -> NoReturn:
        from kubernetes.client.exceptions import ApiException

        if isinstance(error, ApiException):
            message = api_message(error)
            if error.status == 404 and not _names_an_object(error):
                raise PluginError(
                    f"the {resource.kind} API ({GROUP}) is not installed on {self.server}; "
                    "install the CRD first (kubectl apply -f crds/)"
                ) from None
            if error.status == 404 and _details(error).get("kind") == "namespaces":
                # A create in a namespace that does not exist: the object is not what is missing.
                raise PluginError(f"namespace {_details(error).get('name')} not found", status=404) from None
            if error.status == 404:
                raise PluginError(f"{what} not found", status=404) from None
            if error.status == 409:
                raise PluginError(f"{what} already exists", status=409) from None
            if error.status == 403:
                raise PluginError(f"forbidden: {message}") from None
            if error.status == 401:
                raise PluginError(f"unauthorized by {self.server}: {message}", 2) from None
            if error.status == 422:
                raise PluginError(f"{what} was refused by the API server: {message}") from None
            raise PluginError(f"{what}: the API server answered {error.status}: {message}") from None
        raise PluginError(f"cannot reach the API server at {self.server}: {_root_cause(error)}", 2) from None

    def _call(
        self, what: str, fn: Callable[..., Any], *args: Any, resource: Resource = SCHEDULED_DEPLOYMENTS
    ) -> Any:
        try:
            return fn(*args, _request_timeout=REQUEST_TIMEOUT)
        except Exception as error:  # every transport error (urllib3, OSError, …) becomes one friendly line
            self._fail(error, what, resource)

    def _address(
        self, verb: str, resource: Resource, namespace: str | None
    ) -> tuple[Callable[..., Any], tuple[str, ...]]:
        """The client method and its leading arguments for ``verb`` on ``resource`` (in ``namespace``, or
        across the cluster when None or for a cluster-scoped kind)."""
        if resource.namespaced and namespace is not None:
            method = getattr(self.custom, f"{verb}_namespaced_custom_object")
            return method, (GROUP, VERSION, namespace, resource.plural)
        return getattr(self.custom, f"{verb}_cluster_custom_object"), (GROUP, VERSION, resource.plural)

    def list_of(self, resource: Resource, namespace: str | None) -> list[dict[str, Any]]:
        """Every object of ``resource``: in ``namespace``, or in all (None); a cluster kind ignores it."""
        fn, location = self._address("list", resource, namespace)
        body = self._call(resource.what(namespace), fn, *location, resource=resource)
        return [dict(item) for item in body.get("items") or []]

    def create(self, resource: Resource, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create ``body`` (in its metadata.namespace, for a namespaced kind)."""
        metadata = body["metadata"]
        namespace, name = metadata.get("namespace"), metadata["name"]
        fn, location = self._address("create", resource, namespace)
        return dict(self._call(resource.what(namespace, name), fn, *location, dict(body), resource=resource))

    def get_of(self, resource: Resource, namespace: str | None, name: str) -> dict[str, Any]:
        fn, location = self._address("get", resource, namespace)
        return dict(self._call(resource.what(namespace, name), fn, *location, name, resource=resource))

    def who_am_i(self) -> approve_cli.UserInfo:
        """The user and groups as the API server authenticated this request (a SelfSubjectReview)."""
        from kubernetes.client.exceptions import ApiException

        if self.authentication is None:
            raise PluginError("cannot ask the API server who you are: no authentication client", 2)
        try:
            review = self.authentication.create_self_subject_review(
                dict(SELF_SUBJECT_REVIEW), _request_timeout=REQUEST_TIMEOUT
            )
        except ApiException as error:
            if error.status == 404:
                raise PluginError(
                    f"{self.server} does not answer SelfSubjectReview (authentication.k8s.io/v1, Kubernetes "
                    "1.28 and later), so it cannot say who you are; an approval needs that"
                ) from None
            self._fail(error, "selfsubjectreview")
        except Exception as error:  # transport errors: one friendly line
            self._fail(error, "selfsubjectreview")
        try:
            return approve_cli.user_info(review)
        except approve_cli.ApproveError as error:
            raise PluginError(str(error)) from None

    def calendars(self, bodies: Iterable[Mapping[str, Any]]) -> dict[CalendarRef, str]:
        """The holiday calendars ``bodies`` name, as far as they can be read (a freeze whose calendar is
        missing or unreadable here is then shown invalid, as the operator would have it, CalendarNotFound)."""
        found: dict[CalendarRef, str] = {}
        if self.core is None:
            return found
        for ref in {ref for body in bodies if (ref := calendar_ref(body)) is not None}:
            namespace, name, key = ref
            try:
                config_map = self.core.read_namespaced_config_map(
                    name, namespace, _request_timeout=REQUEST_TIMEOUT
                )
            except Exception:  # missing, forbidden or unreachable: the freeze says CalendarNotFound
                continue
            text = (config_map.data or {}).get(key)
            if isinstance(text, str):
                found[ref] = text
        return found

    def delete(self, resource: Resource, namespace: str | None, name: str) -> None:
        fn, location = self._address("delete", resource, namespace)
        self._call(resource.what(namespace, name), fn, *location, name, resource=resource)

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        return dict(
            self._call(
                f"scheduleddeployment {namespace}/{name}",
                self.custom.get_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
            )
        )

    def list(self, namespace: str | None) -> list[dict[str, Any]]:
        if namespace is None:
            body = self._call(
                "scheduleddeployments",
                self.custom.list_cluster_custom_object,
                GROUP,
                VERSION,
                PLURAL,
            )
        else:
            body = self._call(
                f"scheduleddeployments in {namespace}",
                self.custom.list_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                PLURAL,
            )
        return [dict(item) for item in body.get("items") or []]

    def patch(self, namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        return dict(
            self._call(
                f"scheduleddeployment {namespace}/{name}",
                self.custom.patch_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                patch,
            )
        )


def _details(error: Any) -> dict[str, Any]:
    """The ``details`` of the API server's Status answer (``kind`` and ``name`` of what is missing)."""
    try:
        details = json.loads(error.body or "").get("details") or {}
    except (TypeError, ValueError, AttributeError):
        return {}
    return details if isinstance(details, dict) else {}


def _names_an_object(error: Any) -> bool:
    """A 404 for a named object (it does not exist) rather than for the resource (no CRD)."""
    return bool(_details(error).get("name"))


def _root_cause(error: BaseException) -> str:
    reason = getattr(error, "reason", None)
    cause = reason if isinstance(reason, BaseException) else error
    return str(cause).split(": ", 1)[-1] if ": " in str(cause) else str(cause) or type(cause).__name__


def kubeconfig_path(explicit: str | None, environ: Mapping[str, str]) -> str:
    """As kubectl: ``--kubeconfig``, else ``$KUBECONFIG`` (a ``:``-separated list), else ~/.kube/config."""
    if explicit:
        if not Path(explicit).is_file():
            raise PluginError(f"--kubeconfig {explicit}: no such file", 2)
        return explicit
    listed = [part for part in environ.get("KUBECONFIG", "").split(os.pathsep) if part]
    if listed:
        if not any(Path(part).is_file() for part in listed):
            raise PluginError(f"KUBECONFIG={environ['KUBECONFIG']}: no such file", 2)
        return os.pathsep.join(listed)
    default = Path(environ.get("HOME", "~")).expanduser() / ".kube" / "config"
    if not default.is_file():
        raise PluginError(f"no kubeconfig: pass --kubeconfig PATH, set KUBECONFIG, or create {default}", 2)
    return str(default)


def connect(args: argparse.Namespace, environ: Mapping[str, str]) -> Api:
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    path = kubeconfig_path(args.kubeconfig, environ)
    configuration = client.Configuration()
    try:
        # persist_config=False: never write refreshed tokens back into the user's file.
        config.load_kube_config(  # type: ignore[no-untyped-call, unused-ignore]  # unannotated in kubernetes
            config_file=path, context=args.context, client_configuration=configuration, persist_config=False
        )
        contexts, active = config.list_kube_config_contexts(config_file=path)  # type: ignore[no-untyped-call, unused-ignore]  # unannotated in kubernetes
    except (ConfigException, OSError, ValueError) as error:
        raise PluginError(f"kubeconfig {path}: {error}", 2) from None
    chosen = next((c for c in contexts if c.get("name") == args.context), active) if args.context else active
    namespace = args.namespace or ((chosen or {}).get("context") or {}).get("namespace") or "default"
    configuration.retries = 0  # fail fast and say so, rather than retry silently against a dead server
    api_client = client.ApiClient(configuration)
    return Api(
        client.CustomObjectsApi(api_client),
        str(configuration.host),
        namespace,
        authentication=client.AuthenticationV1Api(api_client),
        core=client.CoreV1Api(api_client),
    )


# ---------------------------------------------------------------------------------------------- commands


def cmd_timeline(args: argparse.Namespace, api: Api, out: TextIO, now: datetime) -> int:
    namespace = None if args.all_namespaces else api.namespace
    objects = api.list(namespace)
    try:
        bodies, unread = read_freeze_objects(api, namespace), None
    except PluginError as error:
        # Runs are still worth seeing without the freezes (a role that may not list them, an old CRD set);
        # the timeline says they are missing rather than pretending there are none.
        if error.code != 1:
            raise
        bodies, unread = [], str(error)
    valid, invalid = freeze_cli.read_freezes(bodies, calendars=api.calendars(bodies))
    if namespace is not None:
        valid = [freeze for freeze in valid if freeze.concerns_namespace(namespace)]
    timeline = build_timeline(
        objects,
        now,
        count=args.count,
        within=args.within,
        freezes=valid,
        invalid_freezes=invalid,
        freezes_unread=unread,
    )
    out.write(render_json(timeline) if args.output == "json" else render_text(timeline))
    # Only invalid ScheduledDeployments fail the timeline: a broken freeze (perhaps another team's cluster
    # freeze) is listed, and `kubectl sundial freezes` fails on it.
    return 1 if timeline.invalid else 0


def read_freeze_objects(api: Api, namespace: str | None) -> list[dict[str, Any]]:
    """Every ClusterReleaseFreeze, and the ReleaseFreezes of ``namespace`` (of every one when None)."""
    return api.list_of(CLUSTER_RELEASE_FREEZES, None) + api.list_of(RELEASE_FREEZES, namespace)


# ---------------------------------------------------------------------------------------------- freezes


def cmd_freeze(
    args: argparse.Namespace, api: Api, out: TextIO, now: datetime, *, local_zone: tzinfo | None = None
) -> int:
    """Stop the line: a freeze from ``now`` for ``--for``; ``local_zone`` None is this machine's."""
    if args.all and args.namespace:
        raise PluginError("--all freezes every namespace (a ClusterReleaseFreeze); leave out -n", 2)
    reason = args.reason.strip()
    if not reason:
        raise PluginError("--reason must say why deploys stop, e.g. --reason 'incident 4711'", 2)
    body = freeze_cli.build_stop_the_line(
        now,
        args.duration,
        reason,
        namespace=None if args.all else api.namespace,
        name=args.name,
        action=FreezeAction(args.action),
    )
    try:
        api.create(CLUSTER_RELEASE_FREEZES if args.all else RELEASE_FREEZES, body)
    except PluginError as error:
        if error.status == 409:
            raise PluginError(f"{error}; choose another with --name", status=409) from None
        raise
    out.write(freeze_cli.describe_created(body, local_zone))
    return 0


def cmd_unfreeze(args: argparse.Namespace, api: Api, out: TextIO, now: datetime) -> int:
    if args.all and args.namespace:
        raise PluginError("--all names a ClusterReleaseFreeze, which has no namespace; leave out -n", 2)
    resource = CLUSTER_RELEASE_FREEZES if args.all else RELEASE_FREEZES
    namespace = None if args.all else api.namespace
    try:
        api.delete(resource, namespace, args.name)
    except PluginError as error:
        if error.status == 404 and not args.all:
            raise PluginError(f"{error}; for a ClusterReleaseFreeze, add --all", status=404) from None
        raise
    out.write(for_terminal(f"{resource.what(namespace, args.name)} deleted") + "\n")
    out.write(
        "runs it held stay Held; runs it deferred start as soon as the operator sees it gone, if still "
        "within their startingDeadlineSeconds\n"
    )
    return 0


def cmd_freezes(args: argparse.Namespace, api: Api, out: TextIO, now: datetime) -> int:
    namespace = None if args.all_namespaces else api.namespace
    bodies = read_freeze_objects(api, namespace)
    valid, invalid = freeze_cli.read_freezes(bodies, calendars=api.calendars(bodies))
    listing = freeze_cli.list_freezes(valid, invalid, now, within=args.within)
    out.write(freeze_cli.render_json(listing) if args.output == "json" else freeze_cli.render_text(listing))
    return 1 if listing.invalid else 0


def cmd_trigger(args: argparse.Namespace, api: Api, out: TextIO, now: datetime) -> int:
    namespace, name = api.namespace, args.name
    try:
        request = parse_request(args.request) if args.request else parse_request(format_request(now))
    except BadTrigger as error:
        raise PluginError(f"--request: {error}", 2) from None
    body = api.get(namespace, name)
    invalid = _invalid_verdict(api, namespace, body, now)
    if invalid is not None:
        raise PluginError(
            # main() passes every PluginError's text through for_terminal.
            f"cannot trigger {namespace}/{name}: it is invalid ({invalid.reason.value}: {invalid.message})"
        )
    job = manual_job_name(name, request.request, request.requested_at)
    status = body.get("status") or {}
    served = next((run for run in status.get("runs") or [] if run.get("trigger") == request.request), None)
    if served is not None or status.get("lastTrigger") == request.request:
        result = (
            for_terminal(f" ({served.get('result')}, Job {served.get('jobName') or job})") if served else ""
        )
        out.write(f"request {request.request} was already served{result}; nothing new runs\n")
        if served is not None and served.get("reason") == FROZEN:
            out.write(
                for_terminal(f"it was refused: {served.get('message') or 'a release freeze was on'}") + "\n"
            )
            out.write(
                "a refused request stays refused; to deploy anyway, make a new one: "
                + for_terminal(override_command(namespace, name))
                + "\n"
            )
        if not args.wait:
            return 0
        return _wait_for_run(api, namespace, name, request.request, args.timeout, out)
    frozen = _frozen_now(api, namespace, body, now)
    api.patch(
        namespace,
        name,
        {"metadata": {"annotations": trigger_annotations(request.request, args.override_freeze)}},
    )
    out.write(for_terminal(f"scheduleddeployment {namespace}/{name} triggered (request {request.request})"))
    out.write("\n")
    out.write(for_terminal(f"the operator runs it now as Job {job}") + "\n")
    spec = body.get("spec") or {}
    if (spec.get("dependsOn") or {}).get("name"):
        out.write(
            f"note: a manual run runs only this object's Job; dependency "
            f"{for_terminal(repr(spec['dependsOn']['name']))} is neither run nor waited for\n"
        )
    for line in freeze_notes(frozen, override=args.override_freeze, namespace=namespace, name=name):
        out.write(for_terminal(line) + "\n")
    if not args.wait:
        return 0
    return _wait_for_run(api, namespace, name, request.request, args.timeout, out)


def trigger_annotations(request: str, override_freeze: bool) -> dict[str, str]:
    """The annotations a trigger writes, in one merge patch: the request, and with ``--override-freeze``
    the same value under sundial.dev/override-freeze (the operator lets only that request through)."""
    annotations = {ANNOTATION_TRIGGER: request}
    if override_freeze:
        annotations[ANNOTATION_OVERRIDE_FREEZE] = request
    return annotations


def override_command(namespace: str, name: str) -> str:
    return f"kubectl sundial trigger {name} -n {namespace} --override-freeze"


def _frozen_now(api: Api, namespace: str, body: Mapping[str, Any], now: datetime) -> FreezeVerdict | None:
    """The freeze that would stop a manual run now, as the operator judges it; None when none is on, or when
    the freezes cannot be read (the operator still judges; ``--wait`` shows what it decided)."""
    try:
        bodies = read_freeze_objects(api, namespace)
    except PluginError as error:
        if error.code != 1:
            raise
        return None
    valid, _ = freeze_cli.read_freezes(bodies, calendars=api.calendars(bodies))
    try:
        zone = load_zone(str((body.get("spec") or {}).get("timeZone") or "UTC"))
    except SpecError:
        return None
    run = Occurrence(name=str(body["metadata"]["name"]), instant=now, zone=zone)
    return freeze_verdict(run, namespace, body, {}, valid, now)


def freeze_notes(frozen: FreezeVerdict | None, *, override: bool, namespace: str, name: str) -> list[str]:
    """What a freeze on now means for the trigger just written."""
    if frozen is None:
        if override:
            return [
                "note: no release freeze is on now; --override-freeze lets this request through one that "
                "starts before the operator serves it"
            ]
        return []
    freeze = frozen.freeze
    on = f"{freeze.ref} ({freeze.reason}) is on until {format_utc(frozen.until)}"
    if override:
        return [
            f"warning: {on}; --override-freeze deploys through it (recorded on the Job and in a "
            "FreezeOverridden Event)"
        ]
    return [
        f"warning: {on}: the operator will refuse this run (Skipped, reason Frozen)",
        f"to deploy anyway: {override_command(namespace, name)}",
    ]


def _invalid_verdict(api: Api, namespace: str, body: Mapping[str, Any], now: datetime) -> Invalid | None:
    """The operator's verdict on ``body`` among its namespace, if it is invalid.

    Without the right to list the namespace, the plugin cannot resolve dependsOn and leaves the verdict
    to the operator (which refuses a trigger of an invalid object with a TriggerRefused Event)."""
    try:
        siblings = api.list(namespace)
    except PluginError as error:
        if error.code != 1:
            raise
        return None
    name = body["metadata"]["name"]
    ran = [str(obj["metadata"]["name"]) for obj in siblings if (obj.get("status") or {}).get("runs")]
    members = [obj for obj in siblings if obj["metadata"]["name"] != name] + [dict(body)]
    verdicts = {
        obj["metadata"]["name"]: verdict for obj, verdict in validate_namespace(members, now, already_ran=ran)
    }
    verdict = verdicts.get(name)
    return verdict if isinstance(verdict, Invalid) else None


def _wait_for_run(api: Api, namespace: str, name: str, request: str, timeout: float, out: TextIO) -> int:
    deadline = time.monotonic() + timeout
    reported = None
    while True:
        runs = (api.get(namespace, name).get("status") or {}).get("runs") or []
        record = next((run for run in runs if run.get("trigger") == request), None)
        result = record.get("result") if record else None
        if record is not None and result is not None and result != reported:
            out.write(for_terminal(f"{result}: {record.get('message') or record.get('reason') or ''}") + "\n")
            if result == "Skipped" and record.get("reason") == FROZEN:
                out.write(
                    "refused because a release freeze is on; to deploy anyway (recorded on the Job and in a "
                    f"FreezeOverridden Event): {for_terminal(override_command(namespace, name))}\n"
                )
            out.flush()
            reported = result
        if result == "Succeeded":
            return 0
        if result in ("Failed", "Skipped", "Missed", "Held", "Cancelled"):
            return 1
        if time.monotonic() >= deadline:
            hint = (
                "the operator has not picked the request up: is it running and watching this namespace?"
                if record is None
                else "the run has not finished yet"
            )
            raise PluginError(f"gave up waiting after {timeout:.0f}s: {hint}")
        time.sleep(1)


def cmd_suspend(args: argparse.Namespace, api: Api, out: TextIO, now: datetime) -> int:
    suspend = args.command == "suspend"
    namespace, name = api.namespace, args.name
    body = api.get(namespace, name)
    spec = body.get("spec") or {}
    if bool(spec.get("suspend")) == suspend:
        state = "suspended" if suspend else "active"
        out.write(f"scheduleddeployment {namespace}/{name} is already {state}\n")
        return 0
    api.patch(namespace, name, {"spec": {"suspend": suspend}})
    out.write(f"scheduleddeployment {namespace}/{name} {'suspended' if suspend else 'resumed'}\n")
    run_at = spec.get("runAt")
    if suspend:
        out.write("runs that fall due while suspended are recorded Skipped and never made up later\n")
        if run_at:
            out.write(f"its runAt {for_terminal(run_at)} deploys only if you resume before then\n")
    elif run_at:
        skipped = [
            run
            for run in (body.get("status") or {}).get("runs") or []
            if run.get("reason") == "Suspended" and not run.get("trigger")
        ]
        if skipped:
            out.write(
                f"its runAt {for_terminal(run_at)} passed while suspended and will not run; set a new runAt\n"
            )
    out.write(GITOPS_HINT + "\n")
    return 0


# ---------------------------------------------------------------------------------------------- approvals


def cmd_approve(args: argparse.Namespace, api: Api, out: TextIO, now: datetime) -> int:
    """A DeploymentApproval for one run of NAME, by the user the API server says is asking."""
    namespace, name = api.namespace, args.name
    body = api.get(namespace, name)
    try:
        groups = approve_cli.required_groups(body)
        run = approve_cli.choose_run(body, args.run)
        user = api.who_am_i()
        approval = approve_cli.build_approval(body, run, user, args.comment)
    except approve_cli.ApproveError as error:
        raise PluginError(str(error)) from None
    try:
        created = api.create(DEPLOYMENT_APPROVALS, approval)
    except PluginError as error:
        if error.status != 409:
            raise
        existing = api.get_of(DEPLOYMENT_APPROVALS, namespace, approval["metadata"]["name"])
        already = approve_cli.describe_existing(existing, groups)
        mine = (existing.get("spec") or {}).get("approver") == user.username
        if mine or approve_cli.counts(groups, (existing.get("spec") or {}).get("approverGroups") or ()):
            out.write(already + "\n")
            return 0
        if not approve_cli.counts(groups, user.groups):
            raise PluginError(already) from None
        # The approval there does not count and this user's would: give it a name of its own.
        distinct = approve_cli.build_approval(body, run, user, args.comment, distinct=True)
        out.write(already + "\n")
        created = api.create(DEPLOYMENT_APPROVALS, distinct)
    for line in approve_cli.describe_approved(created, run, groups):
        out.write(line + "\n")
    return 0


def cmd_approvals(args: argparse.Namespace, api: Api, out: TextIO, now: datetime) -> int:
    namespace = api.namespace
    rows = approve_cli.approval_rows(
        api.list_of(DEPLOYMENT_APPROVALS, namespace), now, scheduled_deployment=args.name
    )
    out.write(approve_cli.render_approvals(rows, namespace, args.name))
    return 0


# ---------------------------------------------------------------------------------------------- schedule


def cmd_schedule(
    args: argparse.Namespace,
    api: Api | None,
    out: TextIO,
    now: datetime,
    *,
    err: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
    localtime: Path = schedule_cli.LOCALTIME,
) -> int:
    """A ScheduledDeployment at ``--at`` in the user's zone: created, or with ``-o yaml`` printed.

    ``api`` None: no cluster to ask (``-o yaml`` without a kubeconfig); ``environ`` and ``localtime`` are
    where the machine's zone is read (this process's by default). With ``-o yaml`` the standard output is
    the document alone and everything else goes to ``err``."""
    yaml_only = args.output == "yaml"
    notes = (err or sys.stderr) if yaml_only else out
    namespace = api.namespace if api is not None else (args.namespace or "default")
    try:
        choice = schedule_cli.detect_zone(args.tz, os.environ if environ is None else environ, localtime)
        body = schedule_cli.build_scheduled_deployment(
            args.name,
            namespace,
            schedule_cli.parse_at(args.at),
            choice.name,
            args.deployment,
            deployment_name=args.deployment_name,
            depends_on=args.depends_on,
            lead=args.lead,
        )
    except schedule_cli.ScheduleError as error:
        raise PluginError(str(error), 2) from None
    siblings, freezes, unread = _schedule_context(api, namespace, tolerant=yaml_only)
    try:
        plan = schedule_cli.plan_schedule(
            body, choice, now, siblings=siblings, freezes=freezes, freezes_unread=unread
        )
    except schedule_cli.ScheduleError as error:
        raise PluginError(str(error)) from None
    if yaml_only:
        for line in schedule_cli.describe_plan(plan, created=False):
            notes.write(for_terminal(line) + "\n")
        out.write(schedule_cli.render_yaml(body))
        return 0
    assert api is not None, "only -o yaml runs without a cluster"
    api.create(SCHEDULED_DEPLOYMENTS, body)
    for line in schedule_cli.describe_plan(plan, created=True):
        out.write(for_terminal(line) + "\n")
    return 0


def _schedule_context(
    api: Api | None, namespace: str, *, tolerant: bool
) -> tuple[list[dict[str, Any]] | None, list[Any] | None, str | None]:
    """The namespace's ScheduledDeployments and the freezes that concern it, as far as they can be read.

    ``tolerant`` (``-o yaml``): an unreachable API server is not an error, nothing is created there."""
    if api is None:
        return None, None, "no cluster to read them from"

    def tolerated(error: PluginError) -> bool:
        return error.code == 1 or tolerant

    try:
        siblings: list[dict[str, Any]] | None = api.list(namespace)
    except PluginError as error:
        if not tolerated(error):
            raise
        siblings = None
    try:
        bodies = read_freeze_objects(api, namespace)
        valid, _ = freeze_cli.read_freezes(bodies, calendars=api.calendars(bodies))
    except PluginError as error:
        if not tolerated(error):
            raise
        return siblings, None, str(error)
    return siblings, [freeze for freeze in valid if freeze.concerns_namespace(namespace)], None


# ---------------------------------------------------------------------------------------------- parser


MAIN_EPILOG = """examples:
  kubectl sundial timeline -A --within 24h
  kubectl sundial trigger api-v42 -n shop --wait
  kubectl sundial suspend api-v42 -n shop
  kubectl sundial freeze --all --for 2h --reason "incident 4711"
  kubectl sundial freezes -A
  kubectl sundial approve api-v42 -n shop --run "2027-02-10 03:00"
  kubectl sundial schedule api-v42 -n shop --at "2027-02-10 03:00" --deployment api=registry.example/api:v42
  kubectl sundial preview -f api-v42.yaml

`kubectl sundial COMMAND --help` shows each command's options and examples.
exit status: 0 ok; 1 a problem was found (not found, forbidden, invalid, a run failed or was refused);
2 usage error, bad kubeconfig, or API server unreachable
"""
TIMELINE_EXAMPLES = """examples:
  # the next 20 runs in the current namespace
  kubectl sundial timeline
  # everything in the next day, in every namespace
  kubectl sundial timeline -A --within 24h
  # as JSON, for a script
  kubectl sundial timeline -A --count 100 -o json
"""
TRIGGER_EXAMPLES = """examples:
  # run api-v42 now, as a manual run
  kubectl sundial trigger api-v42 -n shop
  # run it and follow the Job to its end (exit 0 when it succeeded)
  kubectl sundial trigger api-v42 -n shop --wait --timeout 10m
  # retry a request safely: the same request never runs twice
  kubectl sundial trigger api-v42 -n shop --request 2026-11-27T08:39:00.123Z
  # deploy although a release freeze is on (this request only; recorded on the Job and in an Event)
  kubectl sundial trigger api-v42 -n shop --override-freeze --wait

A manual run is this object's own Job, started now. Its dependsOn is neither run nor waited for;
spec.suspend does not stop it; unless concurrencyPolicy is Allow it is refused while a Job of this object
is running, and while a release freeze is on unless --override-freeze. The operator records it in
status.runs with its trigger and posts a Triggered Event.
"""
SUSPEND_EXAMPLES = """examples:
  kubectl sundial suspend api-v42 -n shop
  kubectl sundial resume api-v42 -n shop

Runs that fall due while suspended are recorded Skipped and never made up later; for a runAt, that means
it does not deploy unless resumed before its instant. A GitOps tool reverts spec.suspend unless the
repository changes too.
"""
FREEZE_EXAMPLES = """examples:
  # stop every deploy in every namespace for two hours, from now (a ClusterReleaseFreeze)
  kubectl sundial freeze --all --for 2h --reason "incident 4711"
  # only namespace shop, and let the runs start when it ends instead of holding them
  kubectl sundial freeze -n shop --for 90m --reason "db failover" --action Defer
  # end it early
  kubectl sundial unfreeze stop-the-line-20271207t1530z --all

Runs that fall due in the freeze are recorded Held (reason Frozen) with the freeze's name and reason, and
do not deploy; with --action Defer they start when it ends, if still within startingDeadlineSeconds. The
freeze is labelled sundial.dev/stop-the-line=true.
"""
UNFREEZE_EXAMPLES = """examples:
  kubectl sundial unfreeze stop-the-line-20271207t1530z --all
  kubectl sundial unfreeze year-end -n shop
"""
FREEZES_EXAMPLES = """examples:
  # cluster freezes and those of the current namespace: on now, and the next 30 days
  kubectl sundial freezes
  # every namespace, the next 90 days, as JSON
  kubectl sundial freezes -A --within 90d -o json

Windows are computed from each freeze's spec with the operator's own engine, and shown in UTC and in the
freeze's time zone. An invalid freeze is listed with its reason and makes the exit status 1.
"""
APPROVE_EXAMPLES = """examples:
  # approve the next run of api-v42 (status.nextRunTime)
  kubectl sundial approve api-v42 -n shop --comment "CAB-1234"
  # approve a named run ahead of time: an instant, or a wall-clock time in the object's zone
  kubectl sundial approve api-v42 -n shop --run 2027-02-10T08:00:00Z
  kubectl sundial approve api-v42 -n shop --run "2027-02-10 03:00"

The approver and groups are yours as the API server knows you (a SelfSubjectReview); the admission
policy refuses any other. With spec.approval.groups set, only a member's approval counts.
"""
APPROVALS_EXAMPLES = """examples:
  kubectl sundial approvals -n shop
  kubectl sundial approvals api-v42 -n shop
"""
SCHEDULE_EXAMPLES = """examples:
  # 03:00 on 10 February where you are (TZ, else /etc/localtime)
  kubectl sundial schedule api-v42 -n shop --at "2027-02-10 03:00" --deployment api=registry.example/api:v42
  # in New York time, after db-migration 15 minutes before
  kubectl sundial schedule api-v42 -n shop --at "2027-02-10 03:00" --tz America/New_York \\
      --deployment api=registry.example/api:v42 --depends-on db-migration --lead 15m
  # for a GitOps repository: print it, create nothing
  kubectl sundial schedule api-v42 --at "2027-02-10 03:00" --deployment api=IMAGE -o yaml >api-v42.yaml
"""
PREVIEW_EXAMPLES = """examples:
  kubectl sundial preview -f api-v42.yaml
  kubectl sundial preview -f api-v42.yaml --now 2027-01-01T00:00:00Z --count 10 -o json
  kustomize build overlays/prod | kubectl sundial preview -f -

Offline: no cluster is contacted. dependsOn resolves among the file's documents, and the ReleaseFreeze
and ClusterReleaseFreeze documents among them apply to its runs.
"""


def _count(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 1000:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 1 to 1000")
    return int(text)


def _within(text: str) -> timedelta:
    return parse_duration(text, positive=True)


def build_parser() -> argparse.ArgumentParser:
    connection = argparse.ArgumentParser(add_help=False)
    group = connection.add_argument_group("connection (as kubectl)")
    group.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)")
    group.add_argument("--context", help="kubeconfig context (default: its current-context)")
    group.add_argument("-n", "--namespace", help="namespace (default: the context's, else default)")

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="See, schedule, run, approve and pause Sundial's ScheduledDeployments; freeze and "
        "unfreeze deploys.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=MAIN_EPILOG,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    raw = argparse.RawDescriptionHelpFormatter

    timeline = commands.add_parser(
        "timeline",
        parents=[connection],
        help="upcoming runs across namespaces, as a timeline (UTC and local time)",
        description="Upcoming runs, computed with the operator's own engine from the objects in the cluster "
        "(no running operator needed). Dependency runs appear leadTime ahead of the run they serve. Invalid "
        "objects are listed at the end, and make the exit status 1.",
        epilog=TIMELINE_EXAMPLES,
        formatter_class=raw,
    )
    timeline.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace")
    timeline.add_argument("--count", type=_count, default=20, help="at most this many runs (default 20)")
    timeline.add_argument("--within", type=_within, help="only runs within this long, e.g. 90m, 24h, 7d")
    timeline.add_argument("-o", "--output", choices=("text", "json"), default="text", help="output format")
    timeline.add_argument("--now", type=preview._instant, help=argparse.SUPPRESS)
    timeline.set_defaults(handler=cmd_timeline)

    trigger = commands.add_parser(
        "trigger",
        parents=[connection],
        help="run a ScheduledDeployment now, recorded as a manual run",
        description="Ask the operator to run NAME now, by writing the sundial.dev/trigger annotation.",
        epilog=TRIGGER_EXAMPLES,
        formatter_class=raw,
    )
    trigger.add_argument("name", metavar="NAME")
    trigger.add_argument("--wait", action="store_true", help="follow the run to its end")
    trigger.add_argument(
        "--timeout", type=parse_seconds, default=600.0, help="how long --wait waits (default 10m)"
    )
    trigger.add_argument(
        "--request",
        help="the request (an RFC 3339 instant, default now); repeat one to retry without running twice",
    )
    trigger.add_argument(
        "--override-freeze",
        action="store_true",
        help="run even if a release freeze is on (this request only; recorded on the Job and in an Event)",
    )
    trigger.set_defaults(handler=cmd_trigger)

    for name, text in (("suspend", "stop new runs (spec.suspend=true)"), ("resume", "allow runs again")):
        command = commands.add_parser(
            name,
            parents=[connection],
            help=text,
            description=f"{text[0].upper()}{text[1:]}.",
            epilog=SUSPEND_EXAMPLES,
            formatter_class=raw,
        )
        command.add_argument("name", metavar="NAME")
        command.set_defaults(handler=cmd_suspend)

    _add_freeze_parsers(commands, connection)
    _add_approval_parsers(commands, connection)
    _add_schedule_parser(commands, connection)
    preview.add_parser(commands)
    preview_parser = commands.choices["preview"]
    preview_parser.epilog = PREVIEW_EXAMPLES
    preview_parser.formatter_class = raw
    return parser


def _add_freeze_parsers(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], connection: argparse.ArgumentParser
) -> None:
    raw = argparse.RawDescriptionHelpFormatter
    freeze = commands.add_parser(
        "freeze",
        parents=[connection],
        help="stop the line: freeze deploys from now for a while",
        description="Create a release freeze from now for --for: a ClusterReleaseFreeze with --all, else a "
        "ReleaseFreeze in the namespace. Prints its window in UTC and local time, and how to end it.",
        epilog=FREEZE_EXAMPLES,
        formatter_class=raw,
    )
    freeze.add_argument("--all", action="store_true", help="every namespace (a ClusterReleaseFreeze)")
    freeze.add_argument(
        "--for", dest="duration", type=_within, required=True, help="how long, e.g. 90m, 2h, 1d"
    )
    freeze.add_argument("--reason", required=True, help="why, shown in every run it holds")
    freeze.add_argument("--name", help="the freeze's name (default stop-the-line-<UTC minute>)")
    freeze.add_argument(
        "--action",
        choices=[action.value for action in FreezeAction],
        default=FreezeAction.HOLD.value,
        help="Hold (default): runs due in it are recorded Held; Defer: they start when it ends",
    )
    freeze.add_argument("--now", type=preview._instant, help=argparse.SUPPRESS)
    freeze.set_defaults(handler=cmd_freeze)

    unfreeze = commands.add_parser(
        "unfreeze",
        parents=[connection],
        help="end a freeze now (delete it)",
        description="Delete the release freeze NAME: a ClusterReleaseFreeze with --all, else a ReleaseFreeze "
        "in the namespace.",
        epilog=UNFREEZE_EXAMPLES,
        formatter_class=raw,
    )
    unfreeze.add_argument("name", metavar="NAME")
    unfreeze.add_argument("--all", action="store_true", help="NAME is a ClusterReleaseFreeze")
    unfreeze.set_defaults(handler=cmd_unfreeze)

    listing = commands.add_parser(
        "freezes",
        parents=[connection],
        help="release freezes on now and coming (UTC and their own time)",
        description="Every ClusterReleaseFreeze and the namespace's ReleaseFreezes (-A: every namespace's), "
        "with the windows that are on now or open within --within.",
        epilog=FREEZES_EXAMPLES,
        formatter_class=raw,
    )
    listing.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace")
    listing.add_argument(
        "--within",
        type=_within,
        default=freeze_cli.DEFAULT_WITHIN,
        help="windows opening within this long (default 30d)",
    )
    listing.add_argument("-o", "--output", choices=("text", "json"), default="text", help="output format")
    listing.add_argument("--now", type=preview._instant, help=argparse.SUPPRESS)
    listing.set_defaults(handler=cmd_freezes)


def _add_approval_parsers(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], connection: argparse.ArgumentParser
) -> None:
    raw = argparse.RawDescriptionHelpFormatter
    approve = commands.add_parser(
        "approve",
        parents=[connection],
        help="approve one run of a ScheduledDeployment that requires approval",
        description="Create a DeploymentApproval for one run of NAME (spec.approval.required: true), "
        "with you as the approver as the API server knows you (asked with a SelfSubjectReview).",
        epilog=APPROVE_EXAMPLES,
        formatter_class=raw,
    )
    approve.add_argument("name", metavar="NAME")
    approve.add_argument(
        "--run",
        metavar="TIME",
        help="the run: an RFC 3339 instant, or a local date-time in the object's timeZone "
        "(default: its status.nextRunTime)",
    )
    approve.add_argument("--comment", help="why, for the record (e.g. a change ticket)")
    approve.set_defaults(handler=cmd_approve)

    approvals = commands.add_parser(
        "approvals",
        parents=[connection],
        help="list the DeploymentApprovals of the namespace (of NAME only, if given)",
        description="The DeploymentApprovals in the namespace: which run, who approved, their groups, "
        "age and comment.",
        epilog=APPROVALS_EXAMPLES,
        formatter_class=raw,
    )
    approvals.add_argument("name", metavar="NAME", nargs="?")
    approvals.set_defaults(handler=cmd_approvals)


def _add_schedule_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], connection: argparse.ArgumentParser
) -> None:
    schedule = commands.add_parser(
        "schedule",
        parents=[connection],
        help="deploy an image at a wall-clock time in your own zone (create, or -o yaml)",
        description="Create a ScheduledDeployment NAME that deploys IMAGE at --at, a wall-clock time in --tz "
        "(else this machine's zone: TZ, then /etc/localtime). Prints the instant in UTC and local time, and "
        "warns of DST gaps and folds and of release freezes. With -o yaml, prints the object instead.",
        epilog=SCHEDULE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    schedule.add_argument("name", metavar="NAME")
    schedule.add_argument(
        "--at",
        required=True,
        metavar="TIME",
        help="local date-time, e.g. '2027-02-10 03:00' (seconds optional)",
    )
    schedule.add_argument("--tz", metavar="ZONE", help="IANA time zone of --at (default: this machine's)")
    schedule.add_argument(
        "--deployment", required=True, metavar="CONTAINER=IMAGE", help="the container and the image it gets"
    )
    schedule.add_argument(
        "--deployment-name", metavar="DEPLOYMENT", help="the Deployment (default: the container's name)"
    )
    schedule.add_argument("--depends-on", metavar="NAME", help="a ScheduledDeployment to run first")
    schedule.add_argument("--lead", metavar="DURATION", help="how long before it the dependency runs (15m)")
    schedule.add_argument(
        "-o", "--output", choices=("yaml",), help="print the object for a GitOps repository; create nothing"
    )
    schedule.add_argument("--now", type=preview._instant, help=argparse.SUPPRESS)
    schedule.set_defaults(handler=cmd_schedule)


def main(
    argv: Sequence[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    clock: Callable[[], datetime] = _system_clock,
) -> int:
    out, err = stdout or sys.stdout, stderr or sys.stderr
    args = build_parser().parse_args(argv)
    if args.command == "preview":
        return int(preview.run(args, stdout=out, stderr=err, clock=clock))
    env = os.environ if environ is None else environ
    try:
        if args.command == "schedule":
            return _main_schedule(args, out, err, env, getattr(args, "now", None) or clock())
        api = connect(args, env)
        now = getattr(args, "now", None) or clock()
        return int(args.handler(args, api, out, now))
    except PluginError as error:
        err.write(f"error: {for_terminal(error)}\n")
        return error.code
    except KeyboardInterrupt:
        return 130


def _main_schedule(
    args: argparse.Namespace, out: TextIO, err: TextIO, environ: Mapping[str, str], now: datetime
) -> int:
    """``schedule`` reads the machine's zone, and with ``-o yaml`` needs no cluster at all."""
    try:
        api: Api | None = connect(args, environ)
    except PluginError:
        if args.output != "yaml":
            raise
        api = None
    return cmd_schedule(args, api, out, now, err=err, environ=environ)


if __name__ == "__main__":
    sys.exit(main())
