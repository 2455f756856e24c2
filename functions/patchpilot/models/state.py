"""Command-level state models (send, wait, reconcile) and the shared field types. Keys and counts only."""

from typing import Annotated, Literal, Self

from pydantic import ConfigDict, Field, StringConstraints, model_validator

from patchpilot.models.bounds import CommandId, TaskToken, Utf8Input

RunId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,55}$")]
StageName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,31}$")]
PatchGroupName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/=+@-]{0,255}$")]
RateValue = Annotated[str, StringConstraints(pattern=r"^([1-9][0-9]{0,4}|(100|[1-9][0-9]?)%)$")]
ErrorBudget = Annotated[str, StringConstraints(pattern=r"^([0-9]{1,5}|(100|[1-9]?[0-9])%)$")]

MAX_BAKE_SECONDS = 14 * 24 * 3600
CommandPhase = Literal["install", "scan", "health"]  # the same values as models.rollout.Phase


class _StateModel(Utf8Input):
    model_config = ConfigDict(frozen=True, extra="forbid")


class WaitLimits(_StateModel):
    """How long a command wait lasts at least, how long without progress before reconciling, and how often.

    Both durations are floors: each command's wait gets its own timeout (its ExpiresAfter) and heartbeat (its longest
    healthy quiet gap), never less than these (`logic/stage_plan.py` `command_wait_timeout_seconds`,
    `command_heartbeat_seconds`).
    """

    install_timeout_seconds: int = Field(default=4 * 3600, ge=1, le=7 * 24 * 3600)
    heartbeat_seconds: int = Field(default=900, ge=1, le=24 * 3600)
    max_reconcile_attempts: int = Field(default=3, ge=1, le=10)
    # A bisection's wait between polls of a root-volume restore (EC2 emits no event when it ends). 0 polls at once:
    # only where time is compressed (the local runtime: a restore is 5 simulated minutes, 0.08 s of real time).
    restore_poll_seconds: int = Field(default=30, ge=0, le=600)

    @model_validator(mode="after")
    def _heartbeat_within_timeout(self) -> Self:
        # A heartbeat as long as the wait itself never fires before the wait times out: no reconciliation would run.
        if self.heartbeat_seconds >= self.install_timeout_seconds:
            raise ValueError(
                f"heartbeat_seconds ({self.heartbeat_seconds}) must be shorter than install_timeout_seconds "
                f"({self.install_timeout_seconds})"
            )
        return self


class AwaitInstallRequest(_StateModel):
    """Payload of the callback task that waits for an install command to finish on every instance."""

    model_config = ConfigDict(hide_input_in_errors=True)  # a validation error must not echo the task token

    task_token: TaskToken
    run_id: RunId
    stage_name: StageName
    command_id: CommandId
    expected_instances: int = Field(ge=1)
    heartbeat_seconds: int | None = Field(default=None, ge=1, le=24 * 3600)
    phase: CommandPhase | None = None  # kept on the tracking row: the resume answers with it


class InstallTally(_StateModel):
    """Counts of an install command's results (the state carries these, the per-instance rows stay in DynamoDB)."""

    command_id: str
    expected: int
    reported: int
    succeeded: int
    failed: int
    not_reported: int = 0
    complete: bool
    phase: str | None = None  # the command's phase in its stage step (from the wait), so the wait's result names it


class ReconcileRequest(_StateModel):
    """Input of the reconciliation task run when install results stop arriving."""

    command_id: CommandId
    expected_instances: int = Field(ge=1)
    attempts_so_far: int = Field(ge=0)
    max_attempts: int = Field(ge=1)


class ReconcileOutcome(_StateModel):
    """Result of one reconciliation pass."""

    tally: InstallTally
    attempts: int
    recovered_results: int
