"""The approval gate before production: the waiting task's request, the stored approval, the decision and outcome.

On-call answers by a short approval id (``patchpilot approve k7m2x9qa``), never by the raw task token: the token is
held as a ``SecretStr`` so it never shows in a repr, a log line or a JSON dump.
"""

from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    SecretStr,
    StringConstraints,
)

from patchpilot.models.alerts import OneLine
from patchpilot.models.bounds import TASK_TOKEN_MAX_LENGTH, Utf8Input
from patchpilot.models.state import RunId, StageName

APPROVAL_ID_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
"""Lowercase letters and digits without the look-alikes 0/o, 1/l/i: safe to read aloud and to type from chat."""
APPROVAL_ID_LENGTH = 8
APPROVAL_ID_PATTERN = r"^[a-hjkmnp-z2-9]{8}$"
MAX_APPROVAL_TIMEOUT_SECONDS = 7 * 24 * 3600


def _normalise_approval_id(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


ApprovalId = Annotated[str, StringConstraints(pattern=APPROVAL_ID_PATTERN), BeforeValidator(_normalise_approval_id)]
"""An approval id as typed by a person: surrounding blanks and upper case are forgiven, anything else is not."""

ApprovalStatus = Literal["pending", "approved", "rejected", "expired"]
DecidedStatus = Literal["approved", "rejected"]
Decision = Literal["approve", "reject"]
Approver = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]


def _blank_to_none(value: object) -> object:
    return None if isinstance(value, str) and not value.strip() else value


Reason = Annotated[str, StringConstraints(strip_whitespace=True, max_length=1000)]


class _ApprovalModel(Utf8Input):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ApprovalRequest(_ApprovalModel):
    """Payload of the `.waitForTaskToken` task that parks the rollout before a production stage."""

    model_config = ConfigDict(hide_input_in_errors=True)  # a validation error must not echo the task token

    task_token: SecretStr = Field(min_length=1, max_length=TASK_TOKEN_MAX_LENGTH)
    run_id: RunId
    stage_name: StageName
    execution_id: str = Field(min_length=1, max_length=2048)
    timeout_seconds: int = Field(ge=1, le=MAX_APPROVAL_TIMEOUT_SECONDS)
    summary: Annotated[OneLine, Field(max_length=500)]
    details: dict[str, JsonValue] = Field(default_factory=dict)


class ApprovalRecord(_ApprovalModel):
    """The stored approval (runs table, ``pk=APPROVAL#<id>``): who waits, until when, and what was decided."""

    approval_id: ApprovalId
    execution_id: str
    run_id: str
    stage_name: str
    task_token: SecretStr
    status: ApprovalStatus
    summary: str
    requested_at: AwareDatetime
    expires_at: AwareDatetime
    approver: str | None = None
    reason: str | None = None
    decided_at: AwareDatetime | None = None
    requested_by: str | None = None
    """Who asked for the run (``details.requested_by`` of the request), when known: in production, not an approver."""


class ApprovalRequested(_ApprovalModel):
    """What the request task did: the approval id on-call answers with, and until when it is valid."""

    approval_id: str
    run_id: str
    stage_name: str
    status: ApprovalStatus
    expires_at: AwareDatetime
    alert_message_id: str | None = None
    decision_redelivered: bool = False


class DecideApprovalRequest(_ApprovalModel):
    """Input of the decision API (CLI, chat buttons): approve or reject one waiting approval."""

    approval_id: ApprovalId
    decision: Decision
    approver: Approver
    reason: Annotated[Reason | None, BeforeValidator(_blank_to_none)] = None


class ApprovalOutcome(_ApprovalModel):
    """What an approval hands to the waiting execution (SendTaskSuccess output, at ``$.approval``)."""

    approved: bool
    approval_id: str
    approver: str
    reason: str | None = None
    decided_at: AwareDatetime


class ApprovalDecided(_ApprovalModel):
    """Answer of the decision API.

    ``recorded_earlier`` is True when an earlier call had already decided: this call changed nothing and did not
    call the execution back (its ``status``, ``approver`` and ``reason`` are the recorded ones).
    """

    approval_id: str
    run_id: str
    stage_name: str
    status: DecidedStatus
    approver: str
    reason: str | None = None
    decided_at: AwareDatetime
    recorded_earlier: bool
    execution_notified: bool
