"""The approval API (``sundial.dev/v1alpha1``): DeploymentApproval, one person's go for one run.

A ScheduledDeployment with ``spec.approval.required`` waits at its instant until a DeploymentApproval in its
namespace names it and the run's scheduled time. Who approved is not the client's word: the admission
policy ``sundial-approver-identity`` (manifests/approval-policy.yaml) admits an approval only when
``spec.approver`` and ``spec.approverGroups`` are exactly the requesting user's name and groups as the API
server authenticated them. The operator then counts it only if that user is in one of the object's
``spec.approval.groups`` (when it lists any). ``kubectl sundial approve NAME [--run TIME]`` writes one.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, Field

from sundial.api.models import ApiModel, _cel

APPROVAL_KIND = "DeploymentApproval"
APPROVAL_PLURAL = "deploymentapprovals"
APPROVAL_SINGULAR = "deploymentapproval"
APPROVAL_SHORT_NAME = "sdapproval"

INSTANT_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$"
"""The run's scheduled time exactly as status shows it: RFC 3339 in UTC with seconds and a Z."""


def _check_instant(value: str) -> str:
    if not re.fullmatch(INSTANT_PATTERN, value):
        raise ValueError(
            f"scheduledTime must be the run's instant in UTC as status shows it, e.g. 2027-02-10T08:00:00Z "
            f"(got {value!r})"
        )
    datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    return value


class DeploymentApprovalSpec(ApiModel):
    """Which run is approved, and by whom (set to the requester by the API server's admission policy)."""

    scheduled_deployment: str = Field(min_length=1, max_length=253)
    """The ScheduledDeployment in this namespace whose run is approved."""

    scheduled_time: Annotated[
        str,
        Field(
            max_length=20,
            json_schema_extra=_cel(
                f"self.matches('{INSTANT_PATTERN}')",
                "scheduledTime must be the run's instant in UTC, e.g. 2027-02-10T08:00:00Z",
            ),
        ),
        AfterValidator(_check_instant),
    ]
    """The run's scheduled instant, in UTC as status.nextRunTime shows it, e.g. 2027-02-10T08:00:00Z. An
    approval may be given ahead of the instant; it approves that run only."""

    approver: str = Field(min_length=1, max_length=512)
    """The user who approves: must be the user who creates the object (the admission policy refuses any
    other name), so it is the API server's record, not the client's claim."""

    approver_groups: list[Annotated[str, Field(max_length=512)]] = Field(default_factory=list, max_length=256)
    """That user's groups, exactly as the API server authenticated them (the policy refuses any other list);
    the operator checks them against spec.approval.groups of the ScheduledDeployment."""

    comment: str | None = Field(None, max_length=1024)
    """Why, for the record (e.g. "CAB-1234 approved in the change board")."""


__all__ = ["APPROVAL_KIND", "DeploymentApprovalSpec"]
