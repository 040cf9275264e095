"""Runs fired live inside a gap and a fold of a time zone, judged on the API server.

No real zone changes its clocks while a test runs, so this test writes its own: two zones, each with one
offset change seconds ahead, as TZif files (RFC 8536) in a directory that the operator gets as
``PYTHONTZPATH``. zoneinfo reads that variable at import and `zoneinfo.available_timezones` walks the
directory, so to Sundial these names are as valid as any IANA name. Each change moves the offset by one
minute, so the gap or the fold lasts one minute and everything in it happens within about two minutes:

* ``Sundial-Test/Spring`` goes from +01:00 to +01:01 about 30 s after the test starts: one minute of wall
  time never happens (a gap);
* ``Sundial-Test/Autumn`` goes from +01:01 back to +01:00 on a whole UTC minute a little more than a minute
  later: one minute of wall time happens twice (a fold), and every-minute schedules run across it.

Both are changes of the standard offset, not flagged as DST: Sundial never asks whether a time is DST, it
round-trips each interpretation through the zone (docs/time.md), so this is the same case as a DST change.
Every expected instant below is computed here from the transition written, never with Sundial's code.
"""

from __future__ import annotations

import struct
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from conftest import Cluster, wait_until
from sdhelpers import (
    StartOperator,
    condition,
    create_sd,
    event_reasons,
    job_template,
    jobs_of,
    read_sd,
    rfc3339,
    utc_in,
)

SPRING = "Sundial-Test/Spring"
AUTUMN = "Sundial-Test/Autumn"
STANDARD = timedelta(hours=1)
SHIFT = timedelta(minutes=1)
MINUTE = timedelta(minutes=1)

SPRING_LEAD = timedelta(seconds=30)
"""How far ahead of the test's start the clocks of the spring zone jump."""

SETUP = timedelta(seconds=20)
"""Room to start the operator and create the objects (1 to 2 s measured), so the fold's first minute, one
minute before the autumn change, is still ahead when the schedules exist."""

SCHEDULED = "sundial.dev/scheduled-time"
LOCAL = "sundial.dev/local-time"
FIRED = "sundial.dev/fired-time"


# --------------------------------------------------------------------------------------------- the zones


@dataclass(frozen=True)
class OffsetChange:
    """The one transition of a synthetic zone."""

    at: datetime
    """The UTC instant of the change, a whole second."""

    before: timedelta
    """The UTC offset until ``at``."""

    after: timedelta
    """The UTC offset from ``at`` on."""

    def offset(self, instant: datetime) -> timedelta:
        return self.before if instant < self.at else self.after

    def wall(self, instant: datetime) -> datetime:
        """The naive time a clock in the zone shows at ``instant``."""
        return (instant + self.offset(instant)).replace(tzinfo=None)

    def local(self, instant: datetime) -> str:
        """RFC 3339 local time with the offset in force, as in the Job's local-time annotation."""
        return f"{self.wall(instant):%Y-%m-%dT%H:%M:%S}{offset_text(self.offset(instant))}"

    @property
    def wall_at_change(self) -> datetime:
        """The wall time at which the clocks change, read on the old offset (02:00 in New York)."""
        return (self.at + self.before).replace(tzinfo=None)


def offset_text(offset: timedelta) -> str:
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def designation(offset: timedelta) -> str:
    """The zone abbreviation zic would write for a numeric zone: ``+01`` or ``+0101``."""
    text = offset_text(offset).replace(":", "")
    return text.removesuffix("00") if text.endswith("00") else text


def posix_rule(offset: timedelta) -> str:
    """A POSIX TZ string for a fixed offset; POSIX counts hours west of Greenwich, so the sign flips."""
    minutes = int(offset.total_seconds()) // 60
    west = "-" if minutes > 0 else "+"
    hours, rest = divmod(abs(minutes), 60)
    return f"<{designation(offset)}>{west}{hours}" + (f":{rest:02d}" if rest else "")


def tzif(change: OffsetChange) -> bytes:
    """A TZif version 2 file: one transition, two local time types, and a footer for all later times.

    Version 2 repeats the data with 64-bit times after the 32-bit block; both blocks are complete.
    """
    names = (designation(change.before), designation(change.after))
    characters = f"{names[0]}\0{names[1]}\0".encode()
    types = struct.pack(">lBB", int(change.before.total_seconds()), 0, 0) + struct.pack(
        ">lBB", int(change.after.total_seconds()), 0, len(names[0]) + 1
    )

    def block(time_format: str) -> bytes:
        # isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt
        counts = struct.pack(">6l", 0, 0, 0, 1, 2, len(characters))
        transition = struct.pack(time_format, int(change.at.timestamp())) + bytes([1])
        return b"TZif2" + bytes(15) + counts + transition + types + characters

    return block(">l") + block(">q") + f"\n{posix_rule(change.after)}\n".encode()


def write_zone(root: Path, name: str, change: OffsetChange) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(tzif(change))
    # The file must say what we think it says, or every expectation below is wrong for a boring reason.
    with path.open("rb") as file:
        zone = zoneinfo.ZoneInfo.from_file(file, key=name)
    second = timedelta(seconds=1)
    seen = [(change.at + step).astimezone(zone).utcoffset() for step in (-second, timedelta(0), 60 * second)]
    assert seen == [change.before, change.after, change.after], f"{path} reads back as offsets {seen}"


def next_whole_minute(instant: datetime) -> datetime:
    floor = instant.replace(second=0, microsecond=0)
    return floor if floor == instant else floor + MINUTE


# ------------------------------------------------------------------------------------------ expectations


def every_minute(change: OffsetChange, which: str, after: datetime, until: datetime) -> list[datetime]:
    """When ``* * * * *`` in the zone runs in ``(after, until]``: each wall-clock minute once, at its first
    occurrence (``Earlier``) or its last (``Later``), as docs/time.md promises ("A schedule produces each
    wall-clock time at most once"; "either way the time runs once")."""
    occurrences: dict[datetime, list[datetime]] = {}
    minute = after.replace(second=0, microsecond=0) - 10 * MINUTE
    while minute <= until + 10 * MINUTE:
        occurrences.setdefault(change.wall(minute), []).append(minute)
        minute += MINUTE
    chosen = [times[0] if which == "Earlier" else times[-1] for times in occurrences.values()]
    return sorted(instant for instant in chosen if after < instant <= until)


def as_instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


Fired = list[tuple[str, str]]
"""Per Job: its scheduled UTC instant and the local time it carries, in order."""


def fired_jobs(cluster: Cluster, namespace: str, names: list[str], lateness: list[float]) -> dict[str, Fired]:
    """What each object's Jobs on the API server say they ran for; none may have been created early."""
    found: dict[str, Fired] = {}
    for name in names:
        runs = []
        for job in jobs_of(cluster, namespace, name):
            annotations = job.metadata.annotations
            scheduled = as_instant(annotations[SCHEDULED])
            created = job.metadata.creation_timestamp
            assert created >= scheduled, (
                f"Job {job.metadata.name} was created at {created}, before {scheduled}"
            )
            lateness.append((as_instant(annotations[FIRED]) - scheduled).total_seconds())
            runs.append((annotations[SCHEDULED], annotations[LOCAL]))
        found[name] = sorted(runs)
    return found


def armed_for(cluster: Cluster, namespace: str, name: str) -> Callable[[], str | None]:
    """A probe for ``wait_until``: the object's next run once it is armed; raises if it was refused."""

    def probe() -> str | None:
        body = read_sd(cluster, namespace, name)
        ready = condition(body, "Ready")
        if ready is not None and ready["status"] == "False":
            raise AssertionError(f"{name} was refused: {ready['reason']}: {ready['message']}")
        scheduled = condition(body, "Scheduled")
        if scheduled is None or scheduled["reason"] != "Armed":
            return None
        return str((body.get("status") or {}).get("nextRunTime"))

    return probe


# ----------------------------------------------------------------------------------------------- the test


def test_runs_inside_a_live_gap_and_fold_fire_once_each_where_their_dst_policy_says(
    cluster: Cluster, deployer_namespace: str, start_operator: StartOperator, tmp_path: Path
) -> None:
    ns = deployer_namespace
    start = utc_in(0)
    spring = OffsetChange(at=start + SPRING_LEAD, before=STANDARD, after=STANDARD + SHIFT)
    autumn = OffsetChange(
        at=next_whole_minute(start + SHIFT + SETUP), before=STANDARD + SHIFT, after=STANDARD
    )
    zones = tmp_path / "zoneinfo"
    write_zone(zones, SPRING, spring)
    write_zone(zones, AUTUMN, autumn)
    start_operator(ns, env_extra={"PYTHONTZPATH": str(zones)})

    # Half a minute into the gap: a wall time the spring clocks jump over.
    gap_wall = spring.wall_at_change + SHIFT / 2
    # Half a minute before the autumn clocks go back: a wall time they show twice.
    fold_wall = autumn.wall_at_change - SHIFT / 2
    shifted = spring.at + SHIFT / 2  # gap_wall read on the offset before the change
    earlier, later = autumn.at - SHIFT / 2, autumn.at + SHIFT / 2
    assert spring.wall(shifted) == gap_wall + SHIFT, "ShiftForward's instant shows the wall time a minute on"
    assert autumn.wall(earlier) == autumn.wall(later) == fold_wall, "both fold instants show the same time"

    def one_shot(zone: str, wall: datetime, policy: dict[str, str]) -> dict[str, Any]:
        return {
            "runAt": f"{wall:%Y-%m-%dT%H:%M:%S}",
            "timeZone": zone,
            "dstPolicy": policy,
            "jobTemplate": job_template(),
        }

    def every_minute_spec(policy: str) -> dict[str, Any]:
        return {
            "schedule": "* * * * *",
            "timeZone": AUTUMN,
            "dstPolicy": {"ambiguousTime": policy},
            "successfulJobsHistoryLimit": 10,
            "jobTemplate": job_template(),
        }

    create_sd(
        cluster, ns, "gap-shift-forward", one_shot(SPRING, gap_wall, {"nonexistentTime": "ShiftForward"})
    )
    create_sd(cluster, ns, "gap-skip", one_shot(SPRING, gap_wall, {"nonexistentTime": "Skip"}))
    create_sd(cluster, ns, "fold-earlier", one_shot(AUTUMN, fold_wall, {"ambiguousTime": "Earlier"}))
    create_sd(cluster, ns, "fold-later", one_shot(AUTUMN, fold_wall, {"ambiguousTime": "Later"}))
    cron_created: dict[str, datetime] = {}
    for policy in ("Earlier", "Later"):
        body = create_sd(cluster, ns, f"fold-every-minute-{policy.lower()}", every_minute_spec(policy))
        cron_created[policy] = as_instant(body["metadata"]["creationTimestamp"])
    assert max(cron_created.values()) < autumn.at - SHIFT, (
        f"setup took until {max(cron_created.values())}, past the fold's first minute "
        f"({autumn.at - SHIFT}); raise SETUP"
    )
    cron_end = autumn.at + SHIFT  # the first wall minute after the fold
    expected_cron = {
        policy: every_minute(autumn, policy, cron_created[policy], cron_end)
        for policy in ("Earlier", "Later")
    }
    # What "once" means here, spelled out: Earlier runs the repeated minute before the change and not at
    # the change; Later runs it at the change and not the minute before.
    assert autumn.at - SHIFT in expected_cron["Earlier"] and autumn.at not in expected_cron["Earlier"]
    assert autumn.at in expected_cron["Later"] and autumn.at - SHIFT not in expected_cron["Later"]

    # Armed for instants computed here, before any clock has changed (a schedule may have run once by the
    # time it is read, so its next run is one of its expected instants).
    next_runs = {
        "gap-shift-forward": [shifted],
        "fold-earlier": [earlier],
        "fold-later": [later],
        "fold-every-minute-earlier": expected_cron["Earlier"],
        "fold-every-minute-later": expected_cron["Later"],
    }
    for name, instants in next_runs.items():
        armed = wait_until(f"{name} to be armed", armed_for(cluster, ns, name), 20)
        assert armed in [rfc3339(i) for i in instants], f"{name} is armed for {armed}, not one of {instants}"

    expected: dict[str, Fired] = {
        "gap-shift-forward": [(rfc3339(shifted), spring.local(shifted))],
        "gap-skip": [],
        "fold-earlier": [(rfc3339(earlier), autumn.local(earlier))],
        "fold-later": [(rfc3339(later), autumn.local(later))],
        **{
            f"fold-every-minute-{policy.lower()}": [(rfc3339(i), autumn.local(i)) for i in instants]
            for policy, instants in expected_cron.items()
        },
    }
    lateness: list[float] = []

    def all_expected_fired() -> dict[str, Fired] | None:
        lateness.clear()
        found = fired_jobs(cluster, ns, list(expected), lateness)
        return found if all(set(want) <= set(found[name]) for name, want in expected.items()) else None

    remaining = (cron_end - datetime.now(UTC)).total_seconds()
    found = wait_until("a Job for every expected run", all_expected_fired, remaining + 30, interval=1)
    assert found == expected
    for policy in expected_cron:
        walls = [
            datetime.fromisoformat(local[:19]) for _, local in found[f"fold-every-minute-{policy.lower()}"]
        ]
        assert walls == [walls[0] + k * MINUTE for k in range(len(walls))], (
            f"{policy}: every wall-clock minute runs once, none left out: {walls}"
        )

    # The status tells the same story: one record per run, each Succeeded, except the skipped one.
    recorded_as = {name: [(instant, "Succeeded") for instant, _ in fired] for name, fired in expected.items()}
    recorded_as["gap-skip"] = [(rfc3339(shifted), "Skipped")]

    def settled_runs() -> dict[str, list[dict[str, Any]]] | None:
        runs = {name: (read_sd(cluster, ns, name).get("status") or {}).get("runs") or [] for name in expected}
        settled = all(
            len(runs[name]) >= len(want)
            and all(r["result"] not in ("Pending", "Running") for r in runs[name])
            for name, want in recorded_as.items()
        )
        return runs if settled else None

    runs = wait_until("every run to be recorded as finished", settled_runs, 30)
    assert {name: [(r["scheduledTime"], r["result"]) for r in runs[name]] for name in runs} == recorded_as
    skipped = runs["gap-skip"][0]
    assert skipped["reason"] == "DstSkipped", skipped
    assert "does not exist" in skipped["message"] and "nonexistentTime: Skip" in skipped["message"], skipped
    assert "Skipped" in event_reasons(cluster, ns, "gap-skip")
    print(
        f"spring change {rfc3339(spring.at)}, autumn change {rfc3339(autumn.at)}, schedules created "
        f"{(max(cron_created.values()) - start).total_seconds():.0f}s after the start; "
        f"fired-time minus scheduled-time of {len(lateness)} Jobs: "
        f"max {max(lateness):.3f}s, sorted {sorted(round(x, 3) for x in lateness)}"
    )
