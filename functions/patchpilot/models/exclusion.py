"""Models of auto-exclusion: the request (bounded instance samples of a failed stage), the decision and its records."""

from datetime import datetime
from typing import Annotated, Literal, Self

from pydantic import ConfigDict, Field, StringConstraints, model_validator

from patchpilot.models.bounds import Utf8Input
from patchpilot.models.state import PatchGroupName, RunId, StageName

MAX_SAMPLED_INSTANCES = 50
MAX_EVIDENCE_PATCHES = 10
MAX_DECISION_PATCHES = 30  # a decision over every OS: up to max_patches_per_decision (<= 10) per OS
UNKNOWN_OPERATING_SYSTEM = "UNKNOWN"

InstanceId = Annotated[str, StringConstraints(pattern=r"^(i|mi)-[0-9a-f]{8,17}$")]
OperatingSystem = Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9_]{1,39}$")]
ExclusionOutcome = Literal["exclude", "inconclusive", "nothing_to_exclude"]


class _Model(Utf8Input):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SampledInstance(_Model):
    """An instance of the failed stage and its Patch Manager operating system (the verdict's sample shape)."""

    instance_id: InstanceId
    platform: OperatingSystem
    reasons: list[str] = Field(default_factory=list, max_length=20)


class ExclusionThresholds(_Model):
    """When a patch counts as the culprit, and how many indistinguishable patches one decision may exclude."""

    min_failing_share: float = Field(default=0.8, gt=0.0, le=1.0)
    max_healthy_share: float = Field(default=0.2, ge=0.0, lt=1.0)
    max_patches_per_decision: int = Field(default=3, ge=1, le=10)

    @model_validator(mode="after")
    def _separable(self) -> Self:
        if self.max_healthy_share >= self.min_failing_share:
            raise ValueError("max_healthy_share must be below min_failing_share, or a patch could be both")
        return self


class ExclusionRequest(_Model):
    """Input of the exclusion step: a failed stage's bounded samples of unhealthy and healthy instances."""

    run_id: RunId
    stage_name: StageName
    patch_group: PatchGroupName
    run_started_at: datetime
    unhealthy: list[SampledInstance] = Field(max_length=MAX_SAMPLED_INSTANCES)
    healthy: list[SampledInstance] = Field(default_factory=list, max_length=MAX_SAMPLED_INSTANCES)
    later_patch_groups: list[PatchGroupName] = Field(default_factory=list, max_length=20)
    thresholds: ExclusionThresholds = ExclusionThresholds()
    attempt: int = Field(default=1, ge=1, le=5)  # the stage attempt: a concluded bisection of it names the culprits


class PatchEvidence(_Model):
    """How one patch correlates with the failure: on how many unhealthy and healthy instances it arrived."""

    patch_id: str
    title: str
    failing_with: int = Field(ge=0, description="Unhealthy instances that installed (or failed to install) it.")
    failing_total: int = Field(ge=0, description="Unhealthy instances sampled that run an OS the patch arrived on.")
    healthy_with: int = Field(ge=0, description="Healthy instances that installed (or failed to install) it.")
    healthy_total: int = Field(ge=0, description="Healthy instances sampled that run an OS the patch arrived on.")
    failed_installs: int = Field(ge=0, description="Unhealthy instances where its install FAILED.")
    operating_systems: list[str] = Field(default_factory=list)

    @property
    def failing_share(self) -> float:
        """Share of the unhealthy instances that received the patch."""
        return self.failing_with / self.failing_total if self.failing_total else 0.0

    @property
    def healthy_share(self) -> float:
        """Share of the healthy instances that could have received the patch and did."""
        return self.healthy_with / self.healthy_total if self.healthy_total else 0.0


class BaselineRejection(_Model):
    """The patches one baseline rejects because of this decision."""

    baseline_id: str
    operating_system: str
    patch_ids: list[str]


class ExclusionDecision(_Model):
    """What the exclusion step decided about a failed stage, with the evidence (the state machine's `$.exclusion`)."""

    run_id: RunId
    stage_name: StageName
    patch_group: PatchGroupName
    outcome: ExclusionOutcome
    reason: str
    patches: list[PatchEvidence] = Field(default_factory=list, max_length=MAX_DECISION_PATCHES)
    baselines: list[BaselineRejection] = Field(default_factory=list)
    unhealthy_sampled: int = Field(ge=0)
    healthy_sampled: int = Field(ge=0)
    already_recorded: bool = False
    decided_at: datetime


class ExclusionRecord(_Model):
    """The ledger row of one excluded patch (`pk=RUN#<run_id>`, `sk=EXCLUSION#<stage>#<patch_id>`)."""

    run_id: str
    stage_name: str
    evidence: PatchEvidence
    baseline_ids: list[str]
    failing_instances: list[str] = Field(default_factory=list)
    healthy_instances: list[str] = Field(default_factory=list)
    decided_at: datetime
    rejected_as: list[str] = Field(
        default_factory=list,
        description="The RejectedPatches entries written (Patch Manager package-name formats: exact version where "
        "the OS allows it); empty in records made before they were kept, which rejected the patch id itself.",
    )
    patch_groups: list[str] = Field(default_factory=list, description="The patch groups whose baselines reject it.")

    @property
    def patch_id(self) -> str:
        """The excluded patch."""
        return self.evidence.patch_id

    @property
    def rejection_entries(self) -> list[str]:
        """What the baselines' RejectedPatches hold for this exclusion."""
        return self.rejected_as or [self.evidence.patch_id]


class RetiredExclusion(_Model):
    """An exclusion an operator retired (the patch is allowed again): the record, who retired it and when."""

    record: ExclusionRecord
    retired_by: str
    retired_at: datetime
