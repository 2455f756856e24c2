"""The plan preview of a cycle: per stage, its fleet, the patches it would install, and when it would run."""

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from patchpilot.models.rollout import StageRole


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PlannedPatch(_Model):
    """A patch the last scan reports Missing (or Failed) on instances of one OS of a stage's patch group."""

    patch_id: str
    title: str = ""
    classification: str = ""
    severity: str = ""
    cve_ids: list[str] = Field(default_factory=list)
    instances: int = Field(ge=1)
    failed_on: int = Field(default=0, ge=0, description="Instances where an earlier install of it failed.")
    in_test_stage: bool = Field(
        default=True,
        description="Production: the last test stage lacks it too (so it can enter the set that stage freezes).",
    )


class OsPreview(_Model):
    """The instances of one operating system in a stage's patch group and what they lack."""

    operating_system: str
    instances: int = Field(ge=0)
    scanned: int = Field(ge=0, description="Instances with a patch report (DescribeInstancePatchStates).")
    offline: int = Field(default=0, ge=0, description="Instances whose agent is not Online.")
    patches: list[PlannedPatch] = Field(default_factory=list)


StartReason = Literal["no_window", "window_open", "window_closed", "past_cutoff", "calendar_closed"]


class StageTimeline(_Model):
    """When a stage would run: ready, approved, install start (window), patched, baked, passed."""

    ready_at: AwareDatetime
    approval_requested_at: AwareDatetime | None = None
    approved_at: AwareDatetime | None = None
    install_starts_at: AwareDatetime
    start_reason: StartReason
    window_opens_at: AwareDatetime | None = None
    window_cutoff_at: AwareDatetime | None = None
    waves: int = Field(ge=0)
    patched_at: AwareDatetime
    bake_ends_at: AwareDatetime
    passed_at: AwareDatetime


class StagePreview(_Model):
    """One stage of the plan."""

    name: str
    role: StageRole
    patch_group: str
    requires_approval: bool
    max_concurrency: str
    bake_seconds: int
    install_minutes: int
    instances: int = Field(ge=0)
    operating_systems: list[OsPreview] = Field(default_factory=list)
    distinct_patches: int = Field(default=0, ge=0)
    oldest_scan: AwareDatetime | None = None
    timeline: StageTimeline | None = None  # None: the rollout would not reach this stage
    warnings: list[str] = Field(default_factory=list)


class PlanPreview(_Model):
    """What a cycle would do, computed before it starts (`patchpilot plan`)."""

    cycle: str
    generated_at: datetime
    cycle_starts_at: AwareDatetime
    cycle_ends_at: AwareDatetime | None = None
    expected_hours: float | None = None
    stages: list[StagePreview]
    assumptions: list[str]
