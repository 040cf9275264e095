"""status.conditions helpers behave like apimachinery's meta.SetStatusCondition."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sundial.api.conditions import ConditionType, find_condition, mark_invalid, set_condition
from sundial.api.models import Condition, ConditionStatus, ScheduledDeploymentStatus
from sundial.api.reasons import Invalid, Reason

T0 = datetime(2027, 1, 1, 12, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5, microseconds=123)
TRUE, FALSE = ConditionStatus.TRUE, ConditionStatus.FALSE


def ready(status: ConditionStatus, reason: str = "Scheduled", at: datetime = T0) -> Condition:
    return Condition(
        type="Ready",
        status=status,
        reason=reason,
        message="m",
        last_transition_time=at,
        observed_generation=1,
    )


def test_a_new_condition_is_appended_with_now_as_its_transition_time() -> None:
    conditions, changed = set_condition(
        [], "Ready", TRUE, "Scheduled", "next run at 07:30Z", now=T1, observed_generation=2
    )
    assert changed
    assert conditions[0].model_dump(mode="json", by_alias=True) == {
        "type": "Ready",
        "status": "True",
        "reason": "Scheduled",
        "message": "next run at 07:30Z",
        "lastTransitionTime": "2027-01-01T12:05:00Z",
        "observedGeneration": 2,
    }


def test_the_transition_time_stays_when_only_reason_or_message_change() -> None:
    before = [ready(TRUE)]
    after, changed = set_condition(
        before, "Ready", TRUE, "Running", "job running", now=T1, observed_generation=3
    )
    assert changed
    assert after[0].last_transition_time == T0
    assert (after[0].reason, after[0].message, after[0].observed_generation) == ("Running", "job running", 3)
    assert before[0].reason == "Scheduled", "the input list is not modified"


def test_the_transition_time_moves_when_the_status_flips() -> None:
    after, changed = set_condition(
        [ready(TRUE)], "Ready", FALSE, "InvalidTimeZone", "m", now=T1, observed_generation=1
    )
    assert changed
    assert after[0].last_transition_time == T1.replace(microsecond=0)


def test_setting_the_same_condition_again_changes_nothing() -> None:
    before = [ready(TRUE)]
    after, changed = set_condition(before, "Ready", TRUE, "Scheduled", "m", now=T1, observed_generation=1)
    assert not changed
    assert after == before


def test_other_conditions_keep_their_place() -> None:
    scheduled = ready(TRUE).model_copy(update={"type": "Scheduled"})
    after, _ = set_condition(
        [scheduled, ready(TRUE)], "Scheduled", FALSE, "X", "m", now=T1, observed_generation=1
    )
    assert [condition.type for condition in after] == ["Scheduled", "Ready"]
    assert after[1] == ready(TRUE)


def test_bad_input_sets_scheduled_and_ready_to_false_with_its_reason() -> None:
    invalid = Invalid(Reason.INVALID_TIME_ZONE, "timeZone 'Mars' is not an IANA time zone name")
    conditions, changed = mark_invalid([ready(TRUE)], invalid, now=T1, observed_generation=4)
    assert changed
    for condition_type in (ConditionType.READY, ConditionType.SCHEDULED):
        condition = find_condition(conditions, condition_type)
        assert condition is not None
        assert (condition.status, condition.reason, condition.observed_generation) == (
            FALSE,
            "InvalidTimeZone",
            4,
        )
    assert find_condition(conditions, "Succeeded") is None


def test_a_status_round_trips_through_its_wire_form() -> None:
    status = ScheduledDeploymentStatus.model_validate(
        {
            "observedGeneration": 3,
            "conditions": [ready(TRUE).model_dump(mode="json", by_alias=True)],
            "nextRunTime": "2027-03-14T07:30:00Z",
            "nextRunLocalTime": "2027-03-14T03:30:00-04:00",
            "runs": [
                {
                    "scheduledTime": "2027-03-13T07:30:00Z",
                    "firedTime": "2027-03-13T07:30:00.042Z",
                    "jobName": "api-20270313-073000-0123abcd",
                    "role": "Deploy",
                    "result": "Succeeded",
                }
            ],
            "upcoming": ["2027-03-14T07:30:00Z"],
        }
    )
    wire = status.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert wire["nextRunLocalTime"] == "2027-03-14T03:30:00-04:00"
    assert wire["runs"][0]["firedTime"] == "2027-03-13T07:30:00.042Z"
    assert ScheduledDeploymentStatus.model_validate(wire) == status
