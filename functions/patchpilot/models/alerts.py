"""The structured alert event: one JSON document per decision worth telling on-call, for chat integrations."""

import hashlib
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, JsonValue

from patchpilot.models.state import RunId, StageName

AlertKind = Literal[
    "cycle_started",
    "emergency_started",
    "stage_started",
    "stage_passed",
    "stage_failed",
    "instance_unhealthy",
    "patch_excluded",
    "exclusion_inconclusive",
    "approval_requested",
    "approval_timed_out",
    "approval_decided",
    "rollout_failed",
    "cycle_finished",
    "events_dead_lettered",
    "compliance_refresh_failed",
]
Severity = Literal["info", "warning", "critical"]

DEFAULT_SEVERITY: dict[AlertKind, Severity] = {
    "cycle_started": "info",
    "emergency_started": "warning",
    "stage_started": "info",
    "stage_passed": "info",
    "stage_failed": "critical",
    "instance_unhealthy": "warning",
    "patch_excluded": "warning",
    "exclusion_inconclusive": "critical",
    "approval_requested": "warning",
    "approval_timed_out": "warning",
    "approval_decided": "info",
    "rollout_failed": "critical",
    "cycle_finished": "info",
    "events_dead_lettered": "critical",
    "compliance_refresh_failed": "warning",
}
PER_INSTANCE_KINDS: frozenset[AlertKind] = frozenset({"instance_unhealthy"})
"""Kinds about one instance: chat shows them as one digest per stage, never one message each."""


def _one_line(value: str) -> str:
    """Collapse every run of whitespace (newlines included) into one space: chat shows one line."""
    line = " ".join(value.split())
    if not line:
        raise ValueError("must not be blank")
    return line


def _clipped(limit: int) -> AfterValidator:
    """One line, clipped to `limit` characters with a trailing "..." (an alert is never refused for its length)."""

    def clip(value: str) -> str:
        line = _one_line(value)
        return line if len(line) <= limit else f"{line[: limit - 3]}..."

    return AfterValidator(clip)


OneLine = Annotated[str, AfterValidator(_one_line)]
"""Text shown on one line: whitespace runs collapse to a space; blank text is refused."""


class Alert(BaseModel):
    """One alert event: what happened (`kind`), how bad (`severity`), where (run, stage) and the evidence.

    `title` and `summary` are single lines for chat; `details` holds the evidence as JSON values. The raw Step
    Functions task token never belongs in an alert.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: AlertKind
    severity: Severity
    run_id: RunId
    stage_name: StageName | None = None
    title: Annotated[str, _clipped(200)]
    summary: Annotated[str, _clipped(1000)]
    details: dict[str, JsonValue] = Field(default_factory=dict)
    execution_id: str | None = None
    approval_id: str | None = None
    occurred_at: AwareDatetime

    @property
    def alert_id(self) -> str:
        """The alert's identity: a digest of its content, so the same alert delivered or published twice has one id.

        A retried ``sns:publish`` state sends the same content (``occurred_at`` is the state's entered time).
        """
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:32]
