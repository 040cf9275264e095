"""The `Draft`: what one decision has found so far, handed from stage to stage."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sundial.api.models import RunRecord, RunResult
from sundial.decide.events import Event
from sundial.decide.gates import Gate
from sundial.decide.jobs import JobRun
from sundial.decide.observe import CreateFailure
from sundial.decide.records import refused_record
from sundial.timing.occurrences import Occurrence


@dataclass
class Draft:
    """The status being assembled, and what it implies.

    `sundial.decide.reconcile.reconcile` starts one from the old status and the Jobs
    (`sundial.decide.records`), and each stage adds to it in turn: the runs that fell due
    (`sundial.decide.runs`), the trigger request (`sundial.decide.triggers`), the Jobs beyond the history
    limits. The status stage (`sundial.decide.status`) then turns it into the status to write, and the
    rest into the Plan. `sundial.decide.reconcile.record_outcomes` starts one from a plan's status to
    record what carrying the plan out did.

    Notes
    -----
    A record, once made for an instant (or a trigger request), is how later stages know the run is handled:
    a stage that finds one leaves that run alone.
    """

    records: dict[datetime, RunRecord]
    """Scheduled runs (own and as a dependency) by instant."""
    manual: dict[str, RunRecord] = field(default_factory=dict)
    """Manual runs by trigger request."""
    last_trigger: str | None = None
    """The last trigger request served (status.lastTrigger)."""
    creates: list[JobRun] = field(default_factory=list)
    """The Jobs to create."""
    deletes: list[str] = field(default_factory=list)
    """The Jobs to delete, by name (replaced, or beyond the history limits)."""
    events: list[Event] = field(default_factory=list)
    """Events that no change of status shows (a refused trigger of an invalid object, a truncated window)."""
    wake: list[datetime] = field(default_factory=list)
    """Instants at which to look again, besides the next run."""
    waiting: Gate | None = None
    """The dependency gate the due run waits at, if it waits."""

    def record(self, run: Occurrence, result: RunResult, reason: str, message: str) -> None:
        """Record a scheduled run that starts no Job (skipped, missed, held, failed before its Job)."""
        self.records[run.instant] = RunRecord(
            scheduled_time=run.instant, role=run.role, result=result, reason=reason, message=message
        )

    def record_manual(
        self, request: str, instant: datetime, result: RunResult, reason: str, message: str
    ) -> RunRecord:
        """Record a manual run that starts no Job; its request counts as served."""
        record = RunRecord(
            scheduled_time=instant, result=result, reason=reason, message=message, trigger=request
        )
        self.manual[request] = record
        self.last_trigger = request
        return record

    def create(self, run: JobRun, refusals: Iterable[CreateFailure]) -> None:
        """Create the Job for ``run``; if ``refusals`` say the API already refused it, record that instead."""
        failure = next((f for f in refusals if f.run.job_name == run.job_name), None)
        if failure is None:
            self.creates.append(run)
        else:
            self.record_refusal(failure)

    def record_refusal(self, failure: CreateFailure) -> None:
        """Record a run whose Job the API refused to create; a manual run's request counts as served."""
        record = refused_record(failure)
        if record.trigger is None:
            self.records[record.scheduled_time] = record
        else:
            self.manual[record.trigger] = record
            self.last_trigger = record.trigger
