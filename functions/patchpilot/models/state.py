"""State input/output models of the rollout state machine. Payloads carry keys and counts, never instance lists."""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

RunId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,55}$")]
StageName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,31}$")]
PatchGroupName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/=+@-]{0,255}$")]
RateValue = Annotated[str, StringConstraints(pattern=r"^([1-9][0-9]{0,4}|(100|[1-9][0-9]?)%)$")]
ErrorBudget = Annotated[str, StringConstraints(pattern=r"^([0-9]{1,5}|(100|[1-9]?[0-9])%)$")]

MAX_BAKE_SECONDS = 14 * 24 * 3600


class _StateModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StageSpec(_StateModel):
    """One rollout stage: which patch group, how fast, how many failures it tolerates, how long it bakes."""

    name: StageName
    patch_group: PatchGroupName
    max_concurrency: RateValue = "50%"
    max_errors: ErrorBudget = "0"
    bake_seconds: int = Field(default=86_400, ge=1, le=MAX_BAKE_SECONDS)
    reboot_option: Literal["RebootIfNeeded", "NoReboot"] = "RebootIfNeeded"


class WaitLimits(_StateModel):
    """How long the install wait may last, how long without progress before reconciling, and how often."""

    install_timeout_seconds: int = Field(default=4 * 3600, ge=1, le=7 * 24 * 3600)
    heartbeat_seconds: int = Field(default=900, ge=1, le=24 * 3600)
    max_reconcile_attempts: int = Field(default=3, ge=1, le=10)


class RolloutRequest(_StateModel):
    """The execution input of the rollout state machine."""

    run_id: RunId
    stage: StageSpec
    limits: WaitLimits = WaitLimits()


class PlannedStage(_StateModel):
    """What the planner decided for a stage; the state machine sends the install command from it."""

    run_id: RunId
    stage_name: StageName
    patch_group: PatchGroupName
    patch_group_tag_key: str
    targeted_instances: int = Field(ge=1)
    max_concurrency: RateValue
    max_errors: ErrorBudget
    reboot_option: Literal["RebootIfNeeded", "NoReboot"]
    command_comment: str = Field(max_length=100)
    bake_seconds: int = Field(ge=1, le=MAX_BAKE_SECONDS)
    limits: WaitLimits


class AwaitInstallRequest(_StateModel):
    """Payload of the callback task that waits for an install command to finish on every instance."""

    task_token: str = Field(min_length=1)
    run_id: RunId
    stage_name: StageName
    command_id: str = Field(min_length=1)
    expected_instances: int = Field(ge=1)


class InstallTally(_StateModel):
    """Counts of an install command's results (the state carries these, the per-instance rows stay in DynamoDB)."""

    command_id: str
    expected: int
    reported: int
    succeeded: int
    failed: int
    not_reported: int = 0
    complete: bool


class ReconcileRequest(_StateModel):
    """Input of the reconciliation task run when install results stop arriving."""

    command_id: str = Field(min_length=1)
    expected_instances: int = Field(ge=1)
    attempts_so_far: int = Field(ge=0)
    max_attempts: int = Field(ge=1)


class ReconcileOutcome(_StateModel):
    """Result of one reconciliation pass."""

    tally: InstallTally
    attempts: int
    recovered_results: int


class VerifyStageRequest(_StateModel):
    """Input of the health verification task."""

    run_id: RunId
    stage_name: StageName
    command_id: str = Field(min_length=1)
    max_errors: ErrorBudget
    phase: Literal["after_install", "after_bake"]


class StageVerdict(_StateModel):
    """A healthy stage's verdict (an unhealthy one raises StageHealthCheckFailed)."""

    stage_name: StageName
    phase: Literal["after_install", "after_bake"]
    healthy: bool
    targeted: int
    succeeded: int
    failed: int
    allowed_failures: int
