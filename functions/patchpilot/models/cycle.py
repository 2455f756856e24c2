"""Starting a rollout: the monthly cycle from the schedule, a manual start, or an emergency run."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from patchpilot.models.bounds import Utf8Input
from patchpilot.models.rollout import CveId, PatchId
from patchpilot.models.state import StageName, WaitLimits


class StartRolloutRequest(Utf8Input):
    """What the schedule, the CLI or chat ask for. The execution name makes a repeated request a no-op."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: Literal["scheduled", "manual", "emergency"] = "scheduled"
    cycle: str | None = Field(default=None, pattern=r"^\d{4}-(0[1-9]|1[0-2])$")
    stages: list[StageName] | None = Field(default=None, min_length=1)
    patch_ids: list[PatchId] = Field(default_factory=list, max_length=50)
    cve_ids: list[CveId] = Field(default_factory=list, max_length=50)
    bake_seconds: dict[StageName, int] = Field(default_factory=dict)
    approval_timeout_seconds: int | None = Field(default=None, ge=1, le=7 * 24 * 3600)
    limits: WaitLimits | None = None
    resume: bool = False  # continue the cycle's FAILED (or TIMED_OUT, ABORTED) execution instead of starting it
    requested_by: str | None = Field(default=None, min_length=1, max_length=128)
    """Who asks (a Slack user id or name): in production, that person cannot approve the run from chat."""


class RolloutStarted(BaseModel):
    """The execution that serves the request, and whether this request started it."""

    model_config = ConfigDict(frozen=True)

    execution_name: str
    execution_arn: str
    run_id: str
    started: bool
    status: str | None = None  # of the existing execution, when nothing was started
    resumed_from: str | None = None  # the failed attempt a resume continues
    skipped_stages: list[str] = Field(default_factory=list)  # passed in an earlier attempt, not run again
