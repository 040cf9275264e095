"""What this replica knows of the cluster: ScheduledDeployments, Sundial's Jobs, and whether that is all.

One owner for both caches and for the signal every plan waits for, ``synced`` ("every source has been
listed"). The informer (`sundial.runtime.informer`) lists each source and then watches it from the listing's
resourceVersion, on every replica, active or standby; this module merges what it brings, as every
kube-controller-manager controller waits for ``WaitForCacheSync``. Without a complete listing, a dependency
not yet listed reads as missing, a Job not yet listed reads as never created, and a running Job reads as
finished. Watch events, listings and the controller's own reads are merged by resourceVersion, so an older
copy never replaces a newer one whichever arrives last.

The cache decides nothing, wakes nothing and calls no API: each update returns the `Changes` it implies (the
objects whose plan it can change, the Jobs just seen failing) and the controller acts on them.

Not kopf's indexes: their readiness gate opens once per process, and a re-list never drops what was
deleted meanwhile; nor could the controller put what its own writes returned (a status, a created Job) into
them, so the next plan would read the copy from before the write.
"""

from __future__ import annotations

import functools
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from sundial.api.reasons import Invalid
from sundial.decide.approvals import Approval, read_approval
from sundial.decide.freezes import CalendarRef, Freeze, calendar_ref, read_freeze
from sundial.decide.observe import JobPhase, JobState, job_state_from_body, mapping, plan_view
from sundial.runtime.metrics import is_invalid, waiting_reason
from sundial.timing.dependencies import connected, depends_on_name

Key = tuple[str, str]  # (namespace, name)

OBJECTS = "objects"
JOBS = "jobs"
FREEZES = "releasefreezes"
CLUSTER_FREEZES = "clusterreleasefreezes"
FREEZE_KINDS = (FREEZES, CLUSTER_FREEZES)
APPROVALS = "deploymentapprovals"
FreezeKey = tuple[str, str, str]
"""(FREEZES or CLUSTER_FREEZES, namespace ("" for the cluster kind), name)."""


def resource_version_older(version: object, than: object) -> bool:
    """Whether ``version`` is older than ``than``.

    resourceVersions are opaque to clients in general; the kube-apiserver's are etcd revisions, decimal
    integers that grow with every write, and that is the only form compared here. Anything else is never
    called older, so an unfamiliar server degrades to "the latest arrival wins", as before.
    """
    if not (isinstance(version, str) and isinstance(than, str) and version.isdigit() and than.isdigit()):
        return False
    return int(version) < int(than)


@dataclass
class Changes:
    """What an update of the cache asks of the controller."""

    wake: set[Key] = field(default_factory=set)
    """Objects whose plan the update can change. One no longer cached is gone: its wake-up is forgotten."""
    failed: list[JobState] = field(default_factory=list)
    """Jobs just seen failing: why is in their pods' termination messages, which only an API call reads."""
    freezes: set[FreezeKey] = field(default_factory=set)
    """Freezes whose status to compute again (new, changed or gone)."""

    def add(self, other: Changes) -> None:
        self.wake |= other.wake
        self.failed.extend(other.failed)
        self.freezes |= other.freezes


@dataclass(frozen=True)
class CachedFreeze:
    """A release freeze as the cache keeps it: what its status is written from, and its compiled form."""

    body: dict[str, Any]
    compiled: Freeze | Invalid


def freeze_view(body: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a freeze Sundial reads: identity (its Events, its status write), spec, status."""
    metadata = mapping(body.get("metadata"))
    kept = ("name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp")
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": {key: metadata[key] for key in kept if key in metadata},
        "spec": body.get("spec"),
        "status": body.get("status"),
    }


def _job_names_in(status: object) -> list[str]:
    """The Job names a stored status mentions (its runs and its active Jobs)."""
    if not isinstance(status, Mapping):
        return []
    entries = [
        entry
        for field in ("runs", "active")
        if isinstance(listed := status.get(field), list)
        for entry in listed
    ]
    names = [entry.get("jobName") or entry.get("name") for entry in entries if isinstance(entry, Mapping)]
    return [name for name in names if isinstance(name, str)]


GONE_JOBS_KEPT = 8
"""Deleted Jobs remembered per owner: more than the deletes of one plan (a history limit pruning several
Jobs at once), and once a status records a run its Job's memory is no longer needed."""


class Cache:
    """The ScheduledDeployments and Sundial Jobs in scope, as watches and this replica's listings saw them."""

    def __init__(self) -> None:
        self.objects: dict[Key, dict[str, Any]] = {}
        self.jobs: dict[Key, JobState] = {}
        self.objects_in_namespace: Counter[str] = Counter()
        """How many ScheduledDeployments each namespace holds: what a LIST of it would read."""
        self.jobs_by_owner: dict[Key, set[str]] = defaultdict(set)
        self._dependents: dict[Key, set[str]] = defaultdict(set)
        """(namespace, name) -> the names of the objects whose dependsOn names it."""
        self.object_versions: dict[Key, str] = {}
        self.job_versions: dict[Key, str] = {}
        self._listed_versions: dict[tuple[str, str], str] = {}
        """The collection resourceVersion of the last listing, per kind and namespace ("" for all): an event
        about an object the listing did not hold, older than the listing, describes something already gone."""
        self.waiting: dict[Key, str] = {}
        """Objects whose due run waits for a Defer freeze or an approval, with that reason (for a gauge)."""
        self.invalid: set[Key] = set()
        """Objects whose status says their spec cannot be scheduled; kept for the invalid-objects gauge."""
        self.jobs_known_absent: set[Key] = set()
        """Jobs some status names as running that a fresh GET found gone (see `running_jobs_to_confirm`)."""
        self.gone_jobs: dict[Key, dict[str, JobState]] = {}
        """Owner -> its latest Jobs seen deleted, by name, with the last state seen of each (at most
        `GONE_JOBS_KEPT` an owner). The run of a Job deleted before a status recorded it is in neither a
        Job nor a status: this memory keeps it from being run again (`records_with_jobs`)."""
        self.freezes: dict[str, dict[Key, CachedFreeze]] = {kind: {} for kind in FREEZE_KINDS}
        """Release freezes by kind, then (namespace, name); the cluster kind's namespace is ""."""
        self.freeze_versions: dict[str, dict[Key, str]] = {kind: {} for kind in FREEZE_KINDS}
        self.approvals: dict[Key, Approval] = {}
        """DeploymentApprovals by (namespace, name)."""
        self.approval_versions: dict[Key, str] = {}
        self._approvals_by_object: dict[Key, dict[str, Approval]] = defaultdict(dict)
        """(namespace, ScheduledDeployment) -> its approvals by name: a plan reads only its chain's."""
        self.calendar_texts: dict[CalendarRef, str | None] = {}
        """The holiday calendars freezes name, as last read (None: the ConfigMap or its key is missing);
        a calendar not in here has not been read yet."""
        self.synced = False
        """True once every source has been listed (see `sundial.runtime.informer`)."""

    # ------------------------------------------------------------------------------------------ watch side

    def _is_news(
        self, versions: dict[Key, str], kind: str, key: Key, version: object, deleted: bool = False
    ) -> bool:
        """Whether an event or listed item at ``version`` is newer than what the cache holds for ``key``
        (for a deletion: not older)."""
        known = versions.get(key)
        if known is not None:
            return (deleted or known != version) and not resource_version_older(version, known)
        listed = self._listed_versions.get((kind, key[0])) or self._listed_versions.get((kind, ""))
        return not resource_version_older(version, listed)

    def object_seen(self, body: Mapping[str, Any], deleted: bool) -> Changes:
        """A ScheduledDeployment event: refresh the cache; wake every object whose plan it can change."""
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        version = body["metadata"].get("resourceVersion")
        if not self._is_news(self.object_versions, OBJECTS, key, version, deleted):
            return Changes()  # a copy no newer than the cached one (kopf's re-list after our own listing)
        if deleted:
            self.object_versions.pop(key, None)
            return self.forget_object(key)
        if isinstance(version, str):
            self.object_versions[key] = version
        previous = self.objects.get(key)
        before = self.component(key)
        self._put_object(key, previous, body)
        changes = Changes(wake={key})
        if previous is None or previous.get("spec") != body.get("spec"):
            # Dependencies add up along chains, so a change anywhere in a chain can move instants on both
            # sides of it: wake the chain as it was and as it is.
            changes.wake |= before | self.component(key)
        return changes

    def store(self, body: Mapping[str, Any]) -> Changes:
        """A copy the API server just returned to this replica (a fresh read, its own status write).

        Kept unless a watch event already brought a newer one, by the same resourceVersion rule as events;
        the watch event of the same version then finds nothing new. The object itself is not woken (the
        caller is planning it right now); the objects connected to it are, if its spec moved.
        """
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        version = body["metadata"].get("resourceVersion")
        if key in self.object_versions and not self._is_news(self.object_versions, OBJECTS, key, version):
            return Changes()
        if isinstance(version, str):
            self.object_versions[key] = version
        previous = self.objects.get(key)
        before = self.component(key)
        self._put_object(key, previous, body)
        if previous is not None and previous.get("spec") == body.get("spec"):
            return Changes()
        return Changes(wake=(before | self.component(key)) - {key})

    def forget_object(self, key: Key) -> Changes:
        """The object is gone (deleted, or found missing): drop it; wake whatever it was connected to.

        Its last resourceVersion is kept by the callers that saw it go, so an older event cannot bring it
        back."""
        previous = self.objects.get(key)
        before = self.component(key)
        if self.objects.pop(key, None) is not None:
            self.objects_in_namespace[key[0]] -= 1
        self.invalid.discard(key)
        self.waiting.pop(key, None)
        self.gone_jobs.pop(key, None)
        named = previous.get("status") if previous is not None else None
        for job in _job_names_in(named):
            self.jobs_known_absent.discard((key[0], job))  # nobody is left whose record names it
        self._index_dependency(key, previous, None)
        # A deletion can invalidate a dependent: wake the chain as it was.
        return Changes(wake={key} | before)

    def _put_object(self, key: Key, previous: Mapping[str, Any] | None, body: Mapping[str, Any]) -> None:
        # Only what a plan reads: managedFields and kubectl's last-applied copy were most of the memory.
        if previous is None:
            self.objects_in_namespace[key[0]] += 1
        self.objects[key] = plan_view(body)
        self.note_validity(key, body.get("status"))
        self._index_dependency(key, previous, body)

    def note_validity(self, key: Key, status: Mapping[str, Any] | None) -> None:
        if is_invalid(status):
            self.invalid.add(key)
        else:
            self.invalid.discard(key)
        reason = waiting_reason(status)
        if reason is None:
            self.waiting.pop(key, None)
        else:
            self.waiting[key] = reason

    def waiting_for(self, reason: str) -> int:
        """How many objects' due runs wait for ``reason`` (a Defer freeze, an approval), for the gauge."""
        return sum(1 for found in list(self.waiting.values()) if found == reason)

    def active_freezes(self) -> int:
        return sum(
            1
            for entries in list(self.freezes.values())
            for entry in list(entries.values())
            if mapping(entry.body.get("status")).get("active") is True
        )

    def _index_dependency(
        self, key: Key, previous: Mapping[str, Any] | None, body: Mapping[str, Any] | None
    ) -> None:
        namespace, name = key
        old, new = depends_on_name(previous), depends_on_name(body)
        if old is not None and old != new:
            self._dependents[(namespace, old)].discard(name)
        if new is not None:
            self._dependents[(namespace, new)].add(name)

    def component(self, key: Key) -> set[Key]:
        """The objects connected to ``key`` by dependsOn, either way; all a plan for ``key`` can depend on."""
        namespace = key[0]
        names = connected(
            key[1],
            lambda name: depends_on_name(self.objects.get((namespace, name))),
            lambda name: self._dependents.get((namespace, name), ()),
        )
        return {(namespace, name) for name in names if (namespace, name) in self.objects}

    def job_seen(self, body: Mapping[str, Any], deleted: bool) -> Changes:
        """A Job event: refresh the cache; wake the Job's owner and the objects that depend on it."""
        state = job_state_from_body(body)
        if state is None:
            return Changes()
        key = (state.namespace, state.name)
        owner = (state.namespace, state.owner)
        version = (body.get("metadata") or {}).get("resourceVersion")
        if not self._is_news(self.job_versions, JOBS, key, version, deleted):
            return Changes()
        if deleted:
            changes = self.forget_job(key)
            self._remember_gone(state)  # the deletion's own copy: the Job's last state
            changes.wake |= self._job_audience(owner)  # even for a Job this replica never cached
            return changes
        if isinstance(version, str):
            self.job_versions[key] = version
            self.jobs_known_absent.discard(key)
            self.gone_jobs.get(owner, {}).pop(state.name, None)  # made again under the same name
        previous = self.jobs.get(key)
        if previous is not None and (previous.phase, previous.deleting, previous.no_pods) == (
            state.phase,
            state.deleting,
            state.no_pods,
        ):
            return Changes()  # nothing the plan looks at has changed (and any failure detail stays)
        self.jobs[key] = state
        self.jobs_by_owner[owner].add(state.name)
        return Changes(
            wake=self._job_audience(owner), failed=[state] if state.phase is JobPhase.FAILED else []
        )

    def job_created(self, state: JobState, version: object) -> None:
        """A Job this replica just created, as the create returned it: its watch event will bring nothing
        new, and the plans that follow see it at once."""
        key = (state.namespace, state.name)
        if isinstance(version, str):
            self.job_versions[key] = version
        self.jobs[key] = state
        self.jobs_by_owner[(state.namespace, state.owner)].add(state.name)

    def forget_job(self, key: Key) -> Changes:
        """The Job is gone (deleted, or missing from a listing newer than it): drop it; wake its owner."""
        self.job_versions.pop(key, None)
        state = self.jobs.pop(key, None)
        if state is None:
            return Changes()
        owner = (state.namespace, state.owner)
        self.jobs_by_owner[owner].discard(state.name)
        self._remember_gone(state)
        return Changes(wake=self._job_audience(owner))

    def _remember_gone(self, state: JobState) -> None:
        owner = (state.namespace, state.owner)
        if owner not in self.objects:
            return  # its owner's deletion took it (garbage collection): nobody is left to record it for
        gone = self.gone_jobs.setdefault(owner, {})
        gone.pop(state.name, None)
        gone[state.name] = state
        while len(gone) > GONE_JOBS_KEPT:
            del gone[next(iter(gone))]

    def gone_jobs_of(self, body: Mapping[str, Any]) -> dict[str, JobState | None]:
        """This object's Jobs known to be deleted: the last state seen of each, or None for one a Running
        record names that a GET found absent."""
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        gone: dict[str, JobState | None] = dict(self.gone_jobs.get((namespace, name), {}))
        for job in _job_names_in(body.get("status")):
            if job not in gone and (namespace, job) in self.jobs_known_absent:
                gone[job] = None
        return gone

    def _job_audience(self, owner: Key) -> set[Key]:
        """Who reads a Job of ``owner``'s: the owner records the outcome, and its dependents may be waiting
        for exactly this outcome."""
        return {owner} | {(owner[0], d) for d in self._dependents.get(owner, ())}

    def add_failure_detail(self, key: Key, reason: str, message: str) -> Key | None:
        """Why a failed Job failed, read from its pods; returns its owner (to wake) if it is still failed."""
        current = self.jobs.get(key)
        if current is None or current.phase is not JobPhase.FAILED:
            return None
        self.jobs[key] = replace(current, reason=reason, message=message)
        return (current.namespace, current.owner)

    def running_jobs_to_confirm(self, body: Mapping[str, Any]) -> list[str]:
        """The Jobs this object's status says are running that the cache neither holds nor knows are gone.

        The listing makes the cache complete, so this should be empty; it is the second opinion that
        concurrency decisions (Forbid, Replace, a manual run's refusal) and the run history rest on, so that
        even a cache that missed a Job cannot make them wrong. The controller looks each one up by name.
        """
        namespace = body["metadata"]["namespace"]
        raw_status = body.get("status")
        status: Mapping[str, Any] = raw_status if isinstance(raw_status, Mapping) else {}
        named = [
            entry.get("name") for entry in (status.get("active") or []) if isinstance(entry, Mapping)
        ] + [
            run.get("jobName")
            for run in (status.get("runs") or [])
            if isinstance(run, Mapping) and run.get("result") == "Running"
        ]
        return [
            name
            for name in dict.fromkeys(n for n in named if isinstance(n, str) and n)
            if (namespace, name) not in self.jobs and (namespace, name) not in self.jobs_known_absent
        ]

    # ------------------------------------------------------------------------------------------ freezes

    def freeze_seen(self, kind: str, body: Mapping[str, Any], deleted: bool) -> Changes:
        """A ReleaseFreeze or ClusterReleaseFreeze event: refresh the cache; when what it freezes may have
        changed (new, spec changed, gone), wake every object of the namespaces it concerns, before and
        after, so that a freeze created after a run was armed applies at once."""
        metadata = mapping(body.get("metadata"))
        key = (str(metadata.get("namespace") or "") if kind == FREEZES else "", str(metadata.get("name")))
        version = metadata.get("resourceVersion")
        versions = self.freeze_versions[kind]
        if not self._is_news(versions, kind, key, version, deleted):
            return Changes()
        if deleted:
            versions.pop(key, None)
            return self.forget_freeze(kind, key)
        if isinstance(version, str):
            versions[key] = version
        previous = self.freezes[kind].get(key)
        same_spec = previous is not None and previous.body.get("spec") == body.get("spec")
        compiled = previous.compiled if previous is not None and same_spec else self._compile(body)
        self.freezes[kind][key] = CachedFreeze(freeze_view(body), compiled)
        changes = Changes(freezes={(kind, *key)})
        if not same_spec:
            changes.wake |= self._frozen_objects(previous) | self._frozen_objects(self.freezes[kind][key])
        return changes

    def _compile(self, body: Mapping[str, Any]) -> Freeze | Invalid:
        ref = calendar_ref(body)
        return read_freeze(body, self.calendar_texts.get(ref) if ref is not None else None)

    def calendars_wanted(self) -> set[CalendarRef]:
        """The calendars the cached freezes name."""
        return {
            ref
            for entries in self.freezes.values()
            for entry in entries.values()
            if (ref := calendar_ref(entry.body)) is not None
        }

    def calendar_read(self, ref: CalendarRef, text: str | None) -> Changes:
        """A calendar's text as just read: the freezes naming it are compiled again, and if what they freeze
        changed, the objects they concern wake (a holiday added to the file applies at once)."""
        if ref in self.calendar_texts and self.calendar_texts[ref] == text:
            return Changes()
        self.calendar_texts[ref] = text
        changes = Changes()
        for kind, entries in self.freezes.items():
            for key, entry in list(entries.items()):
                if calendar_ref(entry.body) != ref:
                    continue
                compiled = self._compile(entry.body)
                if compiled == entry.compiled:
                    continue
                entries[key] = CachedFreeze(entry.body, compiled)
                changes.freezes.add((kind, *key))
                changes.wake |= self._frozen_objects(entry) | self._frozen_objects(entries[key])
        return changes

    def forget_freeze(self, kind: str, key: Key) -> Changes:
        previous = self.freezes[kind].pop(key, None)
        if previous is None:
            return Changes()
        return Changes(wake=self._frozen_objects(previous), freezes={(kind, *key)})

    def _frozen_objects(self, entry: CachedFreeze | None) -> set[Key]:
        """The cached objects of the namespaces a freeze concerns (an invalid one concerns none)."""
        if entry is None or not isinstance(entry.compiled, Freeze):
            return set()
        freeze = entry.compiled
        return {key for key in self.objects if freeze.concerns_namespace(key[0])}

    def freezes_for(self, namespace: str) -> tuple[Freeze, ...]:
        """The valid freezes that concern ``namespace``, for its plans."""
        return tuple(
            entry.compiled
            for kind in FREEZE_KINDS
            for entry in self.freezes[kind].values()
            if isinstance(entry.compiled, Freeze) and entry.compiled.concerns_namespace(namespace)
        )

    # ------------------------------------------------------------------------------------------ approvals

    def approval_seen(self, body: Mapping[str, Any], deleted: bool) -> Changes:
        """A DeploymentApproval event: refresh the cache; wake the object it approves and its chain (a
        dependency waits for its dependent's approval)."""
        metadata = mapping(body.get("metadata"))
        key = (str(metadata.get("namespace") or ""), str(metadata.get("name")))
        version = metadata.get("resourceVersion")
        if not self._is_news(self.approval_versions, APPROVALS, key, version, deleted):
            return Changes()
        if deleted:
            self.approval_versions.pop(key, None)
            return self.forget_approval(key)
        if isinstance(version, str):
            self.approval_versions[key] = version
        previous = self._drop_approval(key)
        approval = read_approval(body)
        if approval is not None:
            self.approvals[key] = approval
            self._approvals_by_object[(key[0], approval.scheduled_deployment)][key[1]] = approval
        wake = self._approval_audience(key[0], previous) | self._approval_audience(key[0], approval)
        return Changes(wake=wake)

    def forget_approval(self, key: Key) -> Changes:
        return Changes(wake=self._approval_audience(key[0], self._drop_approval(key)))

    def _drop_approval(self, key: Key) -> Approval | None:
        previous = self.approvals.pop(key, None)
        if previous is not None:
            target = (key[0], previous.scheduled_deployment)
            self._approvals_by_object[target].pop(key[1], None)
            if not self._approvals_by_object[target]:
                del self._approvals_by_object[target]
        return previous

    def _approval_audience(self, namespace: str, approval: Approval | None) -> set[Key]:
        if approval is None:
            return set()
        target = (namespace, approval.scheduled_deployment)
        return self.component(target) | ({target} if target in self.objects else set())

    def approvals_for(self, namespace: str, names: Iterable[str]) -> dict[str, tuple[Approval, ...]]:
        """The approvals of the namespace for the objects ``names``, by object."""
        found = {}
        for name in names:
            given = self._approvals_by_object.get((namespace, name))
            if given:
                found[name] = tuple(given[approval] for approval in sorted(given))
        return found

    # ------------------------------------------------------------------------------------------ listing

    def merge_listing(
        self, kind: str, namespace: str, items: list[dict[str, Any]], version: str | None
    ) -> Changes:
        """A complete listing of ``kind`` in ``namespace`` ("" for all), at collection ``version``.

        Items newer in the cache than in the listing (an event or a fresh read that overtook it) are kept;
        cached items of that scope that the listing lacks and that are older than it are gone, and are
        dropped. ``items`` is consumed as it is merged, so the listing and the cache's copies are not all
        held at once.
        """
        versions: dict[Key, str]
        seen: Callable[[Mapping[str, Any], bool], Changes]
        forget: Callable[[Key], Changes]
        if kind == OBJECTS:
            versions, seen, forget = self.object_versions, self.object_seen, self.forget_object
        elif kind == JOBS:
            versions, seen, forget = self.job_versions, self.job_seen, self.forget_job
        elif kind == APPROVALS:
            versions, seen, forget = self.approval_versions, self.approval_seen, self.forget_approval
        else:
            versions = self.freeze_versions[kind]
            seen = functools.partial(self.freeze_seen, kind)
            forget = functools.partial(self.forget_freeze, kind)
        changes = Changes()
        listed: set[Key] = set()
        items.reverse()
        while items:
            item = items.pop()
            metadata = item.get("metadata") or {}
            listed.add((metadata.get("namespace", ""), metadata.get("name", "")))
            changes.add(seen(item, False))
        in_scope = [key for key in versions if key not in listed and (not namespace or key[0] == namespace)]
        for key in in_scope:
            if version is None or resource_version_older(versions[key], version):
                versions.pop(key, None)
                changes.add(forget(key))
        if version is not None:
            self._listed_versions[(kind, namespace)] = version
        return changes
