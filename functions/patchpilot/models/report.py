"""Reports: a stage completion report after every stage, and the fleet compliance report (rendered by reporting/)."""

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue, StringConstraints

from patchpilot.models.compliance import ComplianceSummary, CycleCompliance, NodeCompliance, RiskEntry
from patchpilot.models.rollout import CommandResultRef, PhaseSet, RunContext, StageOutcome, StagePlan, StageVerdict
from patchpilot.models.snapshots import RollbackPlanRow


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StageNodeResult(_Model):
    """One node of a stage: its install result, whether it rebooted, the patches it installed in this run."""

    node_id: str
    status: str
    succeeded: bool
    rebooted: bool
    patches_installed: tuple[str, ...] = ()


class ExcludedPatchEvidence(_Model):
    """A patch the run excluded, with the evidence that convicted it."""

    stage_name: str
    patch_id: str
    operating_system: str = ""
    evidence: dict[str, JsonValue] = Field(default_factory=dict)


class StageReport(_Model):
    """The stage completion report."""

    run_id: str
    stage_name: str
    patch_group: str
    role: str
    status: Literal["passed", "failed"]
    targeted: int
    installed: int
    failed: int
    rebooted: int
    started_at: AwareDatetime | None
    patched_at: AwareDatetime | None
    finished_at: AwareDatetime
    patches_installed: dict[str, int]
    excluded: list[ExcludedPatchEvidence]
    nodes: list[StageNodeResult]
    failure: str | None = None  # a failed stage: the error that stopped it and its cause
    rollback_plan: list[RollbackPlanRow] = Field(default_factory=list)  # the stage's pre-patch snapshots, if any

    @property
    def duration_hours(self) -> float | None:
        """Time to patch: the first install command sent to the last post-patch report of the stage's nodes."""
        if self.started_at is None or self.patched_at is None:
            return None
        return round((self.patched_at - self.started_at).total_seconds() / 3600, 2)


class TrendPoint(_Model):
    """The fleet rate and the rate per patch group of one past summary (a refresh or a cycle end)."""

    taken_at: AwareDatetime
    rate: float | None
    by_patch_group: dict[str, float | None]


class ComplianceReport(_Model):
    """The compliance report: status breakdown, by group with its trend, nodes, missing patches, stages, risks."""

    title: str
    run_id: str | None
    generated_at: AwareDatetime
    summary: ComplianceSummary
    cycle: CycleCompliance | None = None
    nodes: list[NodeCompliance]
    trend: list[TrendPoint]
    risks: list[RiskEntry]
    risk_after_days: int
    stages: list[StageReport]
    excluded: list[ExcludedPatchEvidence]


class StageReportRequest(_Model):
    """Input of the stage-report step (after Record Stage Passed)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    action: Literal["stage"] = "stage"
    run: RunContext
    stage: StagePlan
    results: list[CommandResultRef]
    verdict: StageVerdict
    outcome: StageOutcome
    finished_at: AwareDatetime


class StageFailure(BaseModel):
    """The error that stopped a stage, as the state machine keeps it (``$.failure``)."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    error: str = Field(alias="Error", min_length=1, max_length=256)
    cause: str | None = Field(default=None, alias="Cause", max_length=32768)


class FailedStageState(BaseModel):
    """The stage's state when it stopped: what it got to (commands, verdict) and the error.

    A stage can stop before any command (its approval errored), during its commands (no results, no verdict), or
    with a verdict (the health check failed, in the patch step or in the verify step after the bake).
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    run: RunContext
    stage: StagePlan
    phase_set: PhaseSet | None = None
    attempt: int | None = None
    results: list[CommandResultRef] = Field(default_factory=list)  # the commands of the step that stopped
    patch_results: list[CommandResultRef] = Field(default_factory=list)  # the install step's, if the verify failed
    verdict: StageVerdict | None = None
    failure: StageFailure


class FailedStageReportRequest(_Model):
    """Input of the stage-report step of a stage that failed or errored (the whole stage state, as it stopped)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    action: Literal["stage_failed"]
    state: FailedStageState
    finished_at: AwareDatetime


class CycleReportRequest(_Model):
    """Input of the cycle-end compliance step, and of an on-demand report (`patchpilot report`)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    action: Literal["cycle", "on_demand"]
    run_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,55}$")] | None = None
    run_started_at: AwareDatetime | None = None
    stopped_by: str | None = Field(default=None, max_length=256)  # the error that stopped the rollout, if it stopped


class ReportLocation(_Model):
    """Where a rendered report set was stored (HTML, CSV, JSON)."""

    html: str
    csv: str
    json_uri: str
