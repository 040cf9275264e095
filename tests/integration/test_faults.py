"""Fault injection: the operator, the API server, etcd and the network fail around instants, and still every
due run fires exactly once (late, within its deadline) or is recorded as missed; none is lost or doubled.

What each test breaks:

* the operator, by SIGKILL at random moments around instants, and deterministically in the one window that
  outside timing rarely hits (after a Job is created, before the status that records it is written), with
  ``SUNDIAL_FAULT_EXIT_AFTER_JOB_CREATE=1`` (see `sundial.runtime.controller`); the same again with two
  peered replicas, killing the active one each time, while dependents whose dependency sorts after them must
  not flap to "dependency not found" at any take-over;
* kube-apiserver and etcd, restarted mid-burst with ``hack/local-cluster restart`` on a cluster of this
  module's own, so the session's cluster is never disturbed;
* the operator's connections (watch streams and API calls), reset and stalled by a proxy (`faultproxy`);
* single-active: two replicas that both believe they are active;
* input: malformed YAML, huge values, unicode and long names, past instants, leap seconds, while good
  objects fire on time.

Bounded for CI (``--fault-trials 50`` by default); ``--fault-trials 500`` for a longer run. Random timings
come from ``--fault-seed`` (printed, so a failure can be replayed).
"""

from __future__ import annotations

import random
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from faultproxy import TcpProxy, proxied_kubeconfig, upstream_of
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from cluster_access import local_cluster, local_kubectl, start_local_cluster, stop_local_cluster
from conftest import REPO, Cluster, OperatorProcess, lease_holder, wait_until
from sdhelpers import (
    StartOperator,
    create_peering,
    create_sd,
    job_template,
    jobs_of,
    peers,
    read_sd,
    rfc3339,
    utc_in,
    wait_for_condition,
)
from sdhelpers import condition as find_condition
from sundial.api.keys import ANNOTATION_FIRED, ANNOTATION_SCHEDULED, GROUP, LABEL_OWNER, PLURAL, VERSION
from sundial.runtime.controller import FAULT_EXIT_CODE
from sundial.timing.names import job_name

LONG_DEADLINE = 600
"""Runs with this deadline must always fire: no fault here keeps the operator away for ten minutes."""
HOOK = {"SUNDIAL_FAULT_EXIT_AFTER_JOB_CREATE": "1"}


@pytest.fixture
def fault_rng(request: pytest.FixtureRequest) -> tuple[random.Random, int]:
    seed = request.config.getoption("--fault-seed")
    if seed is None:
        seed = random.SystemRandom().randrange(2**32)
    print(f"\nfault seed {seed} (replay with --fault-seed {seed})")
    return random.Random(seed), int(seed)


# ---------------------------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Due:
    """A one-shot run the test created and expects to end as a Job or as a recorded miss."""

    name: str
    instant: datetime
    deadline: int


def create_due(cluster: Cluster, ns: str, name: str, instant: datetime, deadline: int) -> Due:
    spec = {"runAt": rfc3339(instant), "startingDeadlineSeconds": deadline, "jobTemplate": job_template()}
    create_sd(cluster, ns, name, spec)
    return Due(name, instant, deadline)


def snapshot(cluster: Cluster, ns: str) -> tuple[dict[str, dict[str, Any]], dict[str, list[Any]]]:
    """Every ScheduledDeployment and every Job of the namespace (Jobs by owner), in two list calls."""
    objects = cluster.custom().list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)["items"]
    jobs: dict[str, list[Any]] = {}
    for job in cluster.batch().list_namespaced_job(ns, label_selector=LABEL_OWNER).items:
        owner = next(ref.name for ref in job.metadata.owner_references if ref.kind == "ScheduledDeployment")
        jobs.setdefault(owner, []).append(job)
    return {o["metadata"]["name"]: o for o in objects}, jobs


def runs_of(body: dict[str, Any] | None) -> list[dict[str, Any]]:
    return list(((body or {}).get("status") or {}).get("runs") or [])


def fired_time(job: Any) -> datetime:
    """The operator's clock at the Job's create, from the annotation it sets."""
    return datetime.fromisoformat(job.metadata.annotations[ANNOTATION_FIRED].replace("Z", "+00:00"))


def unrecorded(cluster: Cluster, ns: str, dues: list[Due]) -> list[str]:
    objects, _ = snapshot(cluster, ns)
    return [due.name for due in dues if not runs_of(objects.get(due.name))]


def wait_all_recorded(cluster: Cluster, ns: str, dues: list[Due], timeout: float, context: str) -> None:
    def none_left() -> bool:
        try:
            return not unrecorded(cluster, ns, dues)
        except (ApiException, HTTPError):
            return False  # the API server is still coming back from a restart

    wait_until(f"every due run to be recorded ({context})", none_left, timeout, interval=0.5)


def audit(cluster: Cluster, ns: str, dues: list[Due], context: str) -> Counter[str]:
    """Exactly one record per run: a Job with a Running/Succeeded record, or no Job and a recorded miss."""
    objects, jobs = snapshot(cluster, ns)
    counts: Counter[str] = Counter()
    lateness: list[float] = []
    for due in dues:
        where = f"{ns}/{due.name} due {rfc3339(due.instant)} deadline {due.deadline}s ({context})"
        own = jobs.get(due.name, [])
        runs = runs_of(objects.get(due.name))
        assert len(own) <= 1, f"{where}: duplicate Jobs {[j.metadata.name for j in own]}"
        assert len(runs) == 1, f"{where}: expected one run record, got {runs}"
        [record] = runs
        assert record["scheduledTime"] == rfc3339(due.instant), f"{where}: {record}"
        if own:
            [job] = own
            assert job.metadata.name == job_name(due.name, due.instant)
            assert job.metadata.annotations[ANNOTATION_SCHEDULED] == rfc3339(due.instant)
            assert record.get("jobName") == job.metadata.name, f"{where}: {record}"
            assert record["result"] in ("Running", "Succeeded"), f"{where}: {record}"
            fired = fired_time(job)
            late = (fired - due.instant).total_seconds()
            assert 0 <= late <= due.deadline, f"{where}: fired {late:.3f}s after its instant"
            lateness.append(late)
            counts["fired on time (<1 s)" if late < 1 else "fired late"] += 1
        else:
            assert (record["result"], record.get("reason")) == ("Missed", "MissedDeadline"), (
                f"{where}: {record}"
            )
            assert due.deadline < LONG_DEADLINE, f"{where}: a run with a {due.deadline}s deadline was missed"
            counts["missed (recorded)"] += 1
    if lateness:
        lateness.sort()
        print(
            f"{context}: {dict(counts)}; lateness p50 {lateness[len(lateness) // 2]:.3f}s "
            f"max {lateness[-1]:.3f}s"
        )
    return counts


def wait_serving(operator: OperatorProcess, timeout: float = 60) -> None:
    """Until the operator's log says it is the active scheduler (faster than polling its Lease)."""

    def serving() -> bool:
        if ") is active:" in operator.log():
            return True  # (a hooked operator may already have exited again)
        if operator.process.poll() is not None:
            raise AssertionError(
                f"the operator exited ({operator.process.returncode}):\n{operator.log()[-3000:]}"
            )
        return False

    wait_until("the operator to start serving", serving, timeout, interval=0.05)


def sleep_until(moment: datetime) -> None:
    """Fault timing, not synchronisation: the fault is due at this wall-clock moment."""
    time.sleep(max(0.0, (moment - datetime.now(UTC)).total_seconds()))


# ---------------------------------------------------------------------------------------------- 1. SIGKILL

OBJECTS_PER_TRIAL = 3
WINDOW_EVERY = 5
"""Every fifth trial the operator dies in the window between a Job's creation and its status write."""
FIRED = re.compile(r"fired (\S+)/(\S+) for (\S+)")
DEADLINES = (2, LONG_DEADLINE)
"""2 s: a kill before the instant usually keeps the operator away longer; then the miss must be recorded."""


LANES = 2
"""Trials run in two namespaces at once, each with its own operators: while one lane's operator starts
(mostly CPU: imports), the other lane waits for its instants, so 50 trials take about half as long."""


@dataclass(frozen=True)
class Takeover:
    """One hand-over in a peered lane: the runs of that trial and the replica that served after the fault."""

    dues: tuple[Due, ...]
    survivor: OperatorProcess
    seconds: float
    """From the kill (or the hooked replica's exit) until the survivor's name was on the Lease."""


@dataclass
class Lane:
    namespace: str
    rng: random.Random
    trials: int
    dues: list[Due] = field(default_factory=list)
    windows_hit: int = 0
    running: list[OperatorProcess] = field(default_factory=list)
    """The operators the lane leaves running: each must still be alive when the runs are audited."""
    takeovers: list[Takeover] = field(default_factory=list)
    pairs: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Peered lanes: each dependency pair object's Ready (status, lastTransitionTime) once all were armed."""


def is_window_trial(trial: int) -> bool:
    return trial % WINDOW_EVERY == WINDOW_EVERY - 1


def trial_dues(cluster: Cluster, lane: Lane, trial: int) -> list[Due]:
    """Three runs due 2 to 4 s ahead. In a window trial one has the long deadline, so that the hooked
    operator surely creates a Job."""
    window = is_window_trial(trial)
    deadlines = [
        LONG_DEADLINE if window and k == 0 else lane.rng.choice(DEADLINES) for k in range(OBJECTS_PER_TRIAL)
    ]
    dues = [
        create_due(cluster, lane.namespace, f"t{trial}-{k}", utc_in(lane.rng.uniform(2, 4)), deadline)
        for k, deadline in enumerate(deadlines)
    ]
    lane.dues += dues
    return dues


def sleep_until_around(rng: random.Random, dues: list[Due]) -> None:
    """Until a random moment from 1 s before the first of these instants to 1 s after the last."""
    instants = sorted(d.instant for d in dues)
    span = (instants[-1] - instants[0]).total_seconds()
    sleep_until(instants[0] + timedelta(seconds=rng.uniform(-1.0, span + 1.0)))


def confirm_death_in_window(cluster: Cluster, lane: Lane, operator: OperatorProcess, where: str) -> None:
    """The hooked operator dies right after its first Job create: find that Job and see that no status
    records it yet, which proves the crash landed in the window."""
    operator.process.wait(30)
    assert operator.process.returncode == FAULT_EXIT_CODE, f"{where}: {operator.log()[-2000:]}"
    fired = FIRED.findall(operator.log())
    assert len(fired) == 1, f"{where}: {fired}"
    _, name, scheduled = fired[0]
    owner = next(d.name for d in lane.dues if job_name(d.name, d.instant) == name)
    job = cluster.batch().read_namespaced_job(name, lane.namespace)
    assert job.metadata.annotations[ANNOTATION_SCHEDULED] == scheduled
    assert not [r for r in runs_of(read_sd(cluster, lane.namespace, owner)) if r.get("jobName") == name], (
        f"{where}: the status already recorded {name}; the crash missed the window"
    )
    lane.windows_hit += 1


@contextmanager
def trials_in_lanes(
    cluster: Cluster,
    deployer_namespace: str,
    rng: random.Random,
    trials: int,
    run_lane: Callable[[Lane], None],
) -> Iterator[list[Lane]]:
    """``run_lane`` on `LANES` namespaces at once, ``trials`` split between them; yields the lanes once every
    run is recorded (to be audited), and deletes the second namespace afterwards."""
    second = f"{deployer_namespace[:50]}-2"
    cluster.kubectl("create", "namespace", second)
    cluster.kubectl("create", "serviceaccount", "sundial-deployer", "-n", second)
    lanes = [
        Lane(ns, random.Random(rng.randrange(2**32)), trials // LANES + (i < trials % LANES))
        for i, ns in enumerate((deployer_namespace, second))
    ]
    try:
        with ThreadPoolExecutor(LANES) as pool:
            for future in [pool.submit(run_lane, lane) for lane in lanes]:
                future.result()
        for lane in lanes:
            wait_all_recorded(cluster, lane.namespace, lane.dues, 90, f"after {lane.trials} trials")
        yield lanes
    finally:
        cluster.kubectl("delete", "namespace", second, "--wait=false", check=False)


def audit_lanes(cluster: Cluster, lanes: list[Lane], what: str, began: float) -> None:
    """`audit` every lane; each hit the window in every fifth trial, and its operators still run."""
    counts: Counter[str] = Counter()
    for lane in lanes:
        counts += audit(cluster, lane.namespace, lane.dues, f"{lane.trials} {what}")
        assert lane.windows_hit == lane.trials // WINDOW_EVERY
        assert lane.running, f"{lane.namespace}: no operator left running"
        for operator in lane.running:
            assert operator.process.poll() is None, operator.log()[-3000:]
    trials = sum(lane.trials for lane in lanes)
    windows = sum(lane.windows_hit for lane in lanes)
    runs = sum(len(lane.dues) for lane in lanes)
    print(
        f"{trials} {what} ({windows} in the create-to-status window), {runs} runs, {dict(counts)}, "
        f"{time.monotonic() - began:.0f}s"
    )


def run_lane(cluster: Cluster, start_operator: StartOperator, lane: Lane, context: str) -> None:
    """SIGKILL a standalone operator around instants, ``lane.trials`` times; every fifth in the window."""
    ns = lane.namespace

    def launch(hooked: bool) -> OperatorProcess:
        # The same identity every time, as a restarted pod keeps its name; readiness comes from its log.
        operator = start_operator(
            ns, identity=f"{ns}-pod", wait_active=False, env_extra=HOOK if hooked else None
        )
        wait_serving(operator)
        return operator

    operator = launch(hooked=False)
    for trial in range(lane.trials):
        where = f"{ns} trial {trial} ({context})"
        if is_window_trial(trial):
            operator.kill()
            operator = launch(hooked=True)
            trial_dues(cluster, lane, trial)
            confirm_death_in_window(cluster, lane, operator, where)
        else:
            sleep_until_around(lane.rng, trial_dues(cluster, lane, trial))
            operator.kill()
        operator = launch(hooked=False)
    lane.running = [operator]


def test_sigkill_at_random_moments_around_instants_neither_duplicates_nor_loses_a_run(
    cluster: Cluster,
    deployer_namespace: str,
    start_operator: StartOperator,
    fault_rng: tuple[random.Random, int],
    request: pytest.FixtureRequest,
) -> None:
    rng, seed = fault_rng
    trials = int(request.config.getoption("--fault-trials"))
    context = f"seed {seed}"
    began = time.monotonic()

    def lane_of_trials(lane: Lane) -> None:
        run_lane(cluster, start_operator, lane, context)

    with trials_in_lanes(cluster, deployer_namespace, rng, trials, lane_of_trials) as lanes:
        audit_lanes(cluster, lanes, f"SIGKILL trials, {context}", began)


# ------------------------------------------------------------------------------- 1b. SIGKILL of a peered one

PEERING_LIFETIME = 6
"""Seconds after which a silent peer counts as dead: short, so that 50 take-overs fit the time budget (kopf
then keeps alive every second)."""
PEERING_FLAGS = ("--peering", "sundial", "--peering-lifetime", str(PEERING_LIFETIME))
DEPENDENCY_PAIRS = 4
"""Per lane, ``a0N-app`` depends on ``z0N-db``: the dependent comes first in every LIST (by name, ahead of
the trials' ``t…`` objects too), so a replica that plans before its caches hold the whole listing sees the
dependent without its dependency (issue 11, defect 1)."""


class Replicas:
    """The peered replicas of one lane, each under its own identity (the Lease's holder and kopf's peer id)
    and priority. A new replica ranks below every older one, so it waits as the standby; a hooked one ranks
    above all, so it takes over at once, as a newer pod of higher priority would."""

    def __init__(self, cluster: Cluster, start_operator: StartOperator, namespace: str) -> None:
        self._cluster = cluster
        self._start = start_operator
        self.namespace = namespace
        self.processes: dict[str, OperatorProcess] = {}
        self.priorities: dict[str, int] = {}

    def start(self, *, hooked: bool = False) -> str:
        n = len(self.processes)
        identity = f"{self.namespace}-r{n}"
        priority = 2000 + n if hooked else 1000 - n
        self.processes[identity] = self._start(
            self.namespace,
            *PEERING_FLAGS,
            "--priority",
            str(priority),
            identity=identity,
            wait_active=False,
            env_extra={"POD_ID": identity, **(HOOK if hooked else {})},
        )
        self.priorities[identity] = priority
        return identity

    def live(self) -> list[str]:
        return [identity for identity, op in self.processes.items() if op.process.poll() is None]

    def highest_live(self) -> str:
        return max(self.live(), key=self.priorities.__getitem__)

    def active(self, where: str) -> str:
        """The replica whose name is on the Lease; it must be one of ours and alive."""
        holder = lease_holder(self._cluster, self.namespace)
        assert holder in self.live(), f"{where}: the Lease holder {holder!r} is not a live replica"
        return holder

    def wait_holder(self, identity: str, timeout: float, why: str) -> None:
        def holds() -> bool:
            if self.processes[identity].process.poll() is not None:
                raise AssertionError(f"{identity} exited ({why}):\n{self.processes[identity].log()[-3000:]}")
            return lease_holder(self._cluster, self.namespace) == identity

        wait_until(f"{identity} on the Lease in {self.namespace} ({why})", holds, timeout)

    def wait_standby(self, identity: str) -> None:
        """Until the replica is in the peering object: from then on it takes over when the active one dies."""

        def joined() -> bool:
            if self.processes[identity].process.poll() is not None:
                raise AssertionError(f"{identity} exited:\n{self.processes[identity].log()[-3000:]}")
            return identity in peers(self._cluster, self.namespace)

        wait_until(f"{identity} to join the peering in {self.namespace}", joined, 60, interval=0.2)


def arm_dependency_pairs(cluster: Cluster, ns: str) -> dict[str, tuple[str, str]]:
    """`DEPENDENCY_PAIRS` dependents due tomorrow, each created after its dependency (so none is ever
    legitimately missing); each object's Ready (status, lastTransitionTime) once all are armed."""
    run_at = rfc3339(utc_in(86400))
    for i in range(DEPENDENCY_PAIRS):
        create_sd(cluster, ns, f"z{i:02d}-db", {"jobTemplate": job_template()})
    for i in range(DEPENDENCY_PAIRS):
        spec = {
            "runAt": run_at,
            "dependsOn": {"name": f"z{i:02d}-db", "leadTime": "1m"},
            "jobTemplate": job_template(),
        }
        create_sd(cluster, ns, f"a{i:02d}-app", spec)
    armed: dict[str, tuple[str, str]] = {}
    for i in range(DEPENDENCY_PAIRS):
        for name in (f"a{i:02d}-app", f"z{i:02d}-db"):
            ready = wait_for_condition(cluster, ns, name, "Ready", "True", timeout=30)
            armed[name] = (ready["status"], ready["lastTransitionTime"])
    return armed


def dependency_flaps(cluster: Cluster, lane: Lane) -> list[str]:
    """Every object with a ``DependencyNotFound`` Event in the lane's namespace, and every pair object whose
    Ready condition is no longer the one it had once armed (a flap to False and back moves its transition
    time)."""
    ns = lane.namespace
    events: Counter[str] = Counter()
    for event in cluster.core().list_namespaced_event(ns).items:
        if event.reason == "DependencyNotFound":
            events[f"{event.involved_object.name}: {event.message}"] += event.count or 1
    found = [f"{count} DependencyNotFound Events on {what}" for what, count in sorted(events.items())]
    for name, armed in lane.pairs.items():
        ready = find_condition(read_sd(cluster, ns, name), "Ready") or {}
        if (ready.get("status"), ready.get("lastTransitionTime")) != armed:
            found.append(f"{name} Ready was {armed}, is now {ready}")
    return [f"{ns}: {problem}" for problem in found]


def run_peered_lane(cluster: Cluster, start_operator: StartOperator, lane: Lane, context: str) -> None:
    """Two peered replicas; SIGKILL the active one (the Lease's holder) around instants, ``lane.trials``
    times, and start a new standby after each kill. Every fifth time a hooked replica of higher priority
    takes over and dies in the window instead; the replica it displaced takes over again."""
    ns = lane.namespace
    create_peering(cluster, ns)
    replicas = Replicas(cluster, start_operator, ns)
    first = replicas.start()
    replicas.wait_holder(first, 60, "the first replica")
    replicas.wait_standby(replicas.start())
    lane.pairs = arm_dependency_pairs(cluster, ns)
    for trial in range(lane.trials):
        where = f"{ns} trial {trial} ({context})"
        active = replicas.active(where)
        newcomer: str | None = None
        if is_window_trial(trial):
            # Only the new trial's runs are left to fire: the hooked replica's one create is one of them.
            wait_all_recorded(cluster, ns, lane.dues, 60, where)
            # It outranks the active one, which pauses when the hooked one's first keep-alive reaches it: long
            # before the hooked one has listed everything and signed the Lease. (The displaced replica does
            # not always log that it stopped serving: not when kopf has to cancel its daemon.)
            hooked = replicas.start(hooked=True)
            replicas.wait_holder(hooked, 60, f"{where}: the hooked replica outranks {active}")
            dues = trial_dues(cluster, lane, trial)
            confirm_death_in_window(cluster, lane, replicas.processes[hooked], where)
        else:
            dues = trial_dues(cluster, lane, trial)
            sleep_until_around(lane.rng, dues)
            replicas.processes[active].kill()
        died = time.monotonic()
        survivor = replicas.highest_live()
        if not is_window_trial(trial):
            newcomer = replicas.start()  # the killed pod's replacement: as a restarted pod, right away
        replicas.wait_holder(survivor, PEERING_LIFETIME + 30, f"{where}: the take-over")
        lane.takeovers.append(Takeover(tuple(dues), replicas.processes[survivor], time.monotonic() - died))
        if newcomer is not None:
            replicas.wait_standby(newcomer)
    lane.running = [replicas.processes[identity] for identity in replicas.live()]
    assert len(lane.running) == 2, f"{ns}: {replicas.live()} run, not two replicas"


def takeover_lateness(cluster: Cluster, lane: Lane) -> list[tuple[float, float]]:
    """For each run the surviving replica fired after a take-over: seconds after its instant by the Job's
    ``fired-time`` annotation (the operator's clock) and by its ``creationTimestamp`` (the server's, whole
    seconds)."""
    _, jobs = snapshot(cluster, lane.namespace)
    lateness: list[tuple[float, float]] = []
    for takeover in lane.takeovers:
        fired_by_survivor = {name for _, name, _ in FIRED.findall(takeover.survivor.log())}
        for due in takeover.dues:
            for job in jobs.get(due.name, []):
                if job.metadata.name in fired_by_survivor:
                    fired = fired_time(job)
                    lateness.append(
                        (
                            (fired - due.instant).total_seconds(),
                            (job.metadata.creation_timestamp - due.instant).total_seconds(),
                        )
                    )
    return lateness


def p50_max(values: list[float]) -> str:
    ordered = sorted(values)
    return f"p50 {ordered[len(ordered) // 2]:.3f}s max {ordered[-1]:.3f}s"


def test_sigkill_of_the_active_peered_replica_around_instants_neither_duplicates_loses_nor_flaps(
    cluster: Cluster,
    deployer_namespace: str,
    start_operator: StartOperator,
    fault_rng: tuple[random.Random, int],
    request: pytest.FixtureRequest,
) -> None:
    """As in a Deployment of two replicas under kopf peering: every take-over fires each due run exactly once
    or records it missed, and no dependent reports its (present) dependency missing meanwhile."""
    rng, seed = fault_rng
    trials = int(request.config.getoption("--fault-trials"))
    context = f"seed {seed}, peered"
    began = time.monotonic()

    def lane_of_trials(lane: Lane) -> None:
        run_peered_lane(cluster, start_operator, lane, context)

    with trials_in_lanes(cluster, deployer_namespace, rng, trials, lane_of_trials) as lanes:
        # Printed before the audit, so that a failing audit still shows them.
        flaps = [problem for lane in lanes for problem in dependency_flaps(cluster, lane)]
        print(
            "\n".join(flaps) or f"no flap on {sum(len(lane.pairs) for lane in lanes)} dependency-pair objects"
        )
        lateness = [late for lane in lanes for late in takeover_lateness(cluster, lane)]
        takeovers = [takeover.seconds for lane in lanes for takeover in lane.takeovers]
        print(
            f"{len(takeovers)} take-overs (fault to the survivor's name on the Lease): {p50_max(takeovers)}"
        )
        if lateness:
            fired, created = zip(*lateness, strict=True)
            spread = Counter(int(late) for late in fired)
            print(
                f"take-over lateness of {len(lateness)} runs fired by the replica that took over "
                f"(peering lifetime {PEERING_LIFETIME}s): fired-time {p50_max(list(fired))}, "
                f"creationTimestamp {p50_max(list(created))}; by whole seconds {dict(sorted(spread.items()))}"
            )
            # creationTimestamp is truncated to the second, so this many Jobs surely reached the server at
            # least a second after the time their fired-time annotation gives.
            understated = sum(1 for f, c in lateness if c - f >= 1)
            print(f"{understated} of them created >= 1 s after their fired-time annotation says")
        audit_lanes(cluster, lanes, f"peered SIGKILL trials, {context}", began)
        assert not flaps, f"{len(flaps)} dependency flaps during take-overs:\n" + "\n".join(flaps[:20])
        assert lateness, "no run was left for a replica that took over to fire: the kills never preceded one"


# ------------------------------------------------------------------------------------------- 2. control plane


@pytest.fixture(scope="module")
def own_cluster(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, Path]]:
    """A control plane of this module's own (its components get restarted); brought down afterwards."""
    if cluster.backend != "local":
        pytest.skip("restarting control-plane components needs hack/local-cluster (--k8s-backend=local)")
    state = tmp_path_factory.mktemp("faults") / "cluster"
    try:
        own = Cluster("local", start_local_cluster(state), local_kubectl(), cluster.home)
        own.kubectl("apply", "-k", str(REPO / "crds"))
        own.kubectl(
            "wait", "--for=condition=Established", "crd/scheduleddeployments.sundial.dev", "--timeout=60s"
        )
        yield own, state
    finally:
        stop_local_cluster(state)


def restart_mid_burst(
    own: Cluster,
    state: Path,
    start_operator: StartOperator,
    rng: random.Random,
    component: str,
    down_for: float,
) -> Counter[str]:
    """24 runs due over three seconds (four with a 1 s deadline); ``component`` is SIGKILLed amid them."""
    ns = f"burst-{component}-{uuid.uuid4().hex[:6]}"
    own.kubectl("create", "namespace", ns)
    own.kubectl("create", "serviceaccount", "sundial-deployer", "-n", ns)
    operator = start_operator(ns, kubeconfig=own.kubeconfig, wait_active=False)
    wait_serving(operator)
    first = utc_in(6)
    dues = [
        create_due(own, ns, f"b{i}", first + timedelta(seconds=i % 3), 1 if i < 4 else 120) for i in range(24)
    ]
    sleep_until(first + timedelta(seconds=rng.uniform(-0.5, 0.5)))
    restart = local_cluster(
        "restart", component, "--kill", "--down-for", str(down_for), state_dir=state, timeout=180
    )
    print(restart.stderr.strip().splitlines()[-1])
    wait_all_recorded(own, ns, dues, 90, f"{component} restart")
    counts = audit(own, ns, dues, f"{component} restarted mid-burst")
    assert operator.process.poll() is None, operator.log()[-3000:]
    return counts


@pytest.mark.parametrize(("component", "down_for"), [("kube-apiserver", 1), ("etcd", 2)])
def test_a_control_plane_restart_mid_burst_fires_every_run_once_or_records_it_missed(
    own_cluster: tuple[Cluster, Path],
    start_operator: StartOperator,
    fault_rng: tuple[random.Random, int],
    component: str,
    down_for: float,
) -> None:
    own, state = own_cluster
    counts = restart_mid_burst(own, state, start_operator, fault_rng[0], component, down_for=down_for)
    assert counts["fired late"] + counts["missed (recorded)"] > 0, "the restart should have caught some runs"


# ---------------------------------------------------------------------------------------------- 3. network


def test_reset_and_stalled_connections_still_fire_every_run_once(
    cluster: Cluster, deployer_namespace: str, start_operator: StartOperator, tmp_path: Path
) -> None:
    ns = deployer_namespace
    proxy = TcpProxy(*upstream_of(cluster.kubeconfig))
    try:
        kubeconfig = proxied_kubeconfig(cluster.kubeconfig, proxy, tmp_path / "proxied-kubeconfig")
        operator = start_operator(ns, kubeconfig=kubeconfig, wait_active=False)
        wait_serving(operator)
        start = utc_in(4)
        dues = [create_due(cluster, ns, f"n{i}", start + timedelta(seconds=2 * i), 120) for i in range(8)]
        # Resets: just before the first instant, exactly at the second, and between the third and fourth.
        severed = 0
        for moment in (
            start - timedelta(seconds=0.3),
            start + timedelta(seconds=2),
            start + timedelta(seconds=5),
        ):
            sleep_until(moment)
            severed += proxy.sever()
        # A partition of 4 s across two instants, during which a new object is created behind the
        # operator's back: it must still see it (its watch resumes) and fire it.
        sleep_until(start + timedelta(seconds=7.5))
        stall = threading.Thread(target=proxy.stall, args=(4.0,))
        stall.start()
        time.sleep(1)  # fault timing: the object appears while the partition holds
        dues.append(create_due(cluster, ns, "born-in-stall", start + timedelta(seconds=14), 120))
        stall.join()
        wait_all_recorded(cluster, ns, dues, 60, "connections reset and stalled")
        counts = audit(cluster, ns, dues, "connections reset and stalled")
        assert severed >= 3, f"only {severed} connections were reset: the faults did not reach the operator"
        assert counts["missed (recorded)"] == 0
        assert operator.process.poll() is None, operator.log()[-3000:]
        print(f"proxy: {proxy.accepted} connections accepted, {proxy.severed} reset")
        assert proxy.accepted > 3, "the operator should have reconnected after the resets"
    finally:
        proxy.close()


# ---------------------------------------------------------------------------------------------- 4. two active


def test_two_replicas_both_active_for_a_burst_still_create_one_job_per_run(
    cluster: Cluster, deployer_namespace: str, start_operator: StartOperator
) -> None:
    """Peering off on both (``--standalone``): each believes it alone fires; the Job name is the only lock."""
    ns = deployer_namespace
    replicas = [start_operator(ns, identity=f"both-{i}", wait_active=False) for i in range(2)]
    for replica in replicas:
        wait_serving(replica)
    instant = utc_in(5)
    dues = [create_due(cluster, ns, f"r{i}", instant, 120) for i in range(20)]
    wait_all_recorded(cluster, ns, dues, 60, "two active replicas")
    counts = audit(cluster, ns, dues, "two active replicas")
    assert counts["missed (recorded)"] == 0
    fired_by = [len(FIRED.findall(replica.log())) for replica in replicas]
    print(f"Jobs created by each replica: {fired_by} (the rest of each one's tries met AlreadyExists)")
    assert sum(fired_by) == len(dues)
    assert all(replica.process.poll() is None for replica in replicas)


def test_equal_peering_priorities_freeze_both_replicas_and_the_survivor_fires_the_run_once(
    cluster: Cluster, deployer_namespace: str, start_operator: StartOperator
) -> None:
    """The other misconfiguration: ``--priority`` set equal. kopf pauses *every* replica then (nothing fires,
    so nothing fires twice); once one goes, the other resumes and fires the run late, within its deadline."""
    ns = deployer_namespace
    create_peering(cluster, ns)
    peering = ("--peering", "sundial", "--priority", "7", "--peering-lifetime", "6")
    replicas = [start_operator(ns, *peering, identity=f"equal-{i}", wait_active=False) for i in range(2)]
    for replica in replicas:
        wait_until(
            "both replicas to see a peer of the same priority",
            lambda replica=replica: "conflicting operators with the same priority" in replica.log(),
            40,
        )
    due = create_due(cluster, ns, "frozen", utc_in(4), 120)
    sleep_until(due.instant + timedelta(seconds=3))
    assert jobs_of(cluster, ns, "frozen") == [], "a frozen replica fired"
    assert not runs_of(read_sd(cluster, ns, "frozen"))

    before = len(replicas[1].log())
    replicas[0].stop()
    wait_all_recorded(cluster, ns, [due], 40, "after one of two equal replicas stopped")
    counts = audit(cluster, ns, [due], "equal priorities, one replica stopped")
    assert counts["fired late"] == 1
    assert ") is active:" in replicas[1].log()[before:], "the survivor should have resumed"


# ---------------------------------------------------------------------------------------------- 5. bad input

INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class Rejected:
    """Input the API server (or kubectl) refuses: nothing reaches the operator."""

    why: str
    manifest: str
    error: str


def rejected_corpus(ns: str) -> list[Rejected]:
    def sd(name: str, **spec: Any) -> str:
        return yaml.safe_dump(
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "ScheduledDeployment",
                "metadata": {"name": name, "namespace": ns},
                "spec": {"jobTemplate": job_template(), **spec},
            },
            allow_unicode=True,
        )

    valid = sd("malformed")
    return [
        Rejected(
            "malformed YAML: an unclosed flow mapping", valid.replace("spec:", "spec: {runAt: [", 1), "yaml"
        ),
        Rejected("malformed YAML: a tab in the indentation", valid.replace("  name:", "\tname:", 1), "yaml"),
        Rejected("a unicode name", sd("déploiement-été"), "RFC 1123"),
        Rejected("an upper-case name", sd("Deploy-API"), "RFC 1123"),
        Rejected("a name of 254 characters", sd("n" * 254), "253"),
        Rejected(
            "startingDeadlineSeconds 2**63", sd("deadline-2-63", startingDeadlineSeconds=2**63), "integer"
        ),
        Rejected(
            "startingDeadlineSeconds 0",
            sd("deadline-zero", startingDeadlineSeconds=0),
            "greater than or equal to 1",
        ),
        Rejected(
            "a negative history limit",
            sd("history-negative", failedJobsHistoryLimit=-1),
            "greater than or equal to 0",
        ),
        Rejected(
            "history limits of 2**63 - 1 (at most 100 are kept)",
            sd("history-int64-max", successfulJobsHistoryLimit=INT64_MAX, failedJobsHistoryLimit=INT64_MAX),
            "less than or equal to 100",
        ),
        Rejected("a time zone of 65 characters", sd("zone-long", timeZone="Z" * 65), "64"),
        Rejected("a schedule of 257 characters", sd("schedule-long", schedule="*" * 257), "256"),
        Rejected(
            "runAt with a fraction of a second", sd("fraction", runAt="2030-01-01T00:00:00.5Z"), "runAt"
        ),
    ]


def accepted_corpus(ns: str, now: datetime) -> list[tuple[str, dict[str, Any], str]]:
    """Input the API server stores and the operator must judge: (name, spec, expected Ready reason)."""
    soon = rfc3339(now + timedelta(seconds=40))
    return [
        ("leap-second-utc", {"runAt": "2027-06-30T23:59:60Z"}, "InvalidRunAt"),
        ("leap-second-local", {"runAt": "2027-06-30T23:59:60", "timeZone": "Europe/Paris"}, "InvalidRunAt"),
        ("year-one", {"runAt": "0001-01-01T00:00:00Z"}, "RunAtInPast"),
        ("last-century", {"runAt": "1999-12-31T23:59", "timeZone": "Asia/Tokyo"}, "RunAtInPast"),
        ("year-9999", {"runAt": "9999-12-31T23:59:59Z"}, "Armed"),
        ("unicode-zone", {"runAt": soon, "timeZone": "Europe/Zürich"}, "InvalidTimeZone"),
        ("zone-64", {"runAt": soon, "timeZone": "Z" * 64}, "InvalidTimeZone"),
        ("schedule-253", {"schedule": "*/1 " * 62 + "* * *"}, "InvalidSchedule"),
        ("deadline-int64-max", {"runAt": soon, "startingDeadlineSeconds": INT64_MAX}, "Armed"),
        (
            "history-at-the-maximum",
            {"runAt": soon, "successfulJobsHistoryLimit": 100, "failedJobsHistoryLimit": 100},
            "Armed",
        ),
        ("self-dependency", {"runAt": soon, "dependsOn": {"name": "self-dependency"}}, "DependencyCycle"),
        (
            "lead-time-huge",
            {"runAt": soon, "dependsOn": {"name": "year-9999", "leadTime": "9" * 30 + "h"}},
            "InvalidSpec",
        ),
    ]


def test_bad_input_gets_clear_reasons_while_good_objects_fire_on_time(
    cluster: Cluster, deployer_namespace: str, start_operator: StartOperator
) -> None:
    """Complements test_bad_input.py (the API issue's corpus): what issue 7 adds to it."""
    ns = deployer_namespace
    operator = start_operator(ns)
    # Good objects due while the corpus is being applied: two with plain names, one of 63 characters and
    # one of 253 (the longest a name may be; its Job name and labels must still be valid).
    names = ["good-a", "good-b", "g" * 63, ".".join(["l" * 63, "o" * 63, "n" * 63, "g" * 61])]
    good = [create_due(cluster, ns, name, utc_in(6 + 3 * i), 120) for i, name in enumerate(names)]

    outcomes: list[str] = []
    for case in rejected_corpus(ns):
        result = cluster.kubectl("apply", "-f", "-", input=case.manifest, check=False)
        assert result.returncode != 0, f"{case.why}: kubectl accepted it"
        assert case.error.lower() in result.stderr.lower(), f"{case.why}: {result.stderr}"
        outcomes.append(f"{case.why}: {' '.join(result.stderr.split())[:200]}")
    accepted = accepted_corpus(ns, datetime.now(UTC))
    for name, spec, _ in accepted:
        create_sd(cluster, ns, name, {"jobTemplate": job_template(), **spec})

    def ready_reason(name: str) -> str | None:
        for condition in (read_sd(cluster, ns, name).get("status") or {}).get("conditions") or []:
            if condition["type"] == "Ready":
                return f"{condition['reason']}: {condition['message']}"
        return None

    for name, _, reason in accepted:
        found = wait_until(f"{name} to report Ready", lambda name=name: ready_reason(name), 30)
        assert found.startswith(f"{reason}:"), f"{name}: {found}"
        assert len(found) > len(reason) + 20, f"{name}: the message must say what to change: {found}"
        outcomes.append(f"{name}: {found[:160]}")

    wait_all_recorded(cluster, ns, good, 40, "good objects beside the bad corpus")
    _, jobs = snapshot(cluster, ns)
    for due in good:
        [job] = jobs[due.name]
        assert len(job.metadata.name) <= 63 and job.metadata.name == job_name(due.name, due.instant)
        fired = fired_time(job)
        late = (fired - due.instant).total_seconds()
        outcomes.append(f"good {due.name[:20]}… ({len(due.name)} chars) fired {late:.3f}s after its instant")
        assert 0 <= late < 2, f"{due.name} fired {late:.3f}s late while the corpus was applied"
    audit(cluster, ns, good, "good objects beside the bad corpus")
    assert operator.process.poll() is None, operator.log()[-3000:]
    assert "Traceback" not in operator.log(), operator.log()[-5000:]
    print("\n".join(outcomes))
