"""Bisection of indistinguishable suspects: the stage's policy, the runs-table record, the step's input and output.

When correlation cannot tell a stage's suspects apart (one unhealthy instance of an OS, every patch arrived on it
together), the stage restores that instance from its pre-patch snapshot, installs half of the suspects through an
InstallOverrideList, verifies its health and narrows, a bounded number of rounds. The record (suspects, rounds,
verdicts) lives in the runs table; the state payload carries the action, counts and keys only.
"""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StringConstraints

from patchpilot.models.bounds import Utf8Input
from patchpilot.models.rollout import InstanceRef, PhaseSet, RunContext, StageCommands, StagePlan

MAX_SUSPECTS = 200
MAX_SUBJECTS = 10
BISECT_TAG_KEY = "PatchPilotBisect"

InstanceId = Annotated[str, StringConstraints(pattern=r"^i-[0-9a-f]{8,17}$")]
BisectionAction = Literal["wait_restore", "run_round", "exclude", "stop"]
BisectionStatus = Literal["restoring", "testing", "concluded", "stopped"]
RestoreThen = Literal["run_round", "next_subject", "exclude"]  # what follows the restore in progress


class _Model(Utf8Input):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Suspect(_Model):
    """A patch that arrived on the bisected instance with the others (its InstallOverrideList id and title)."""

    patch_id: str = Field(min_length=1, max_length=200)
    title: str = Field(max_length=400)


class Observation(_Model):
    """One round: the suspects installed on the freshly restored instance, and whether it stayed healthy."""

    round: int = Field(ge=1)
    installed: list[str]
    healthy: bool


class BisectionSubject(_Model):
    """One operating system's bisection: the instance it runs on, its snapshot, its suspects and its rounds."""

    operating_system: str
    instance_id: InstanceId
    root_snapshot_id: str
    suspects: list[Suspect] = Field(min_length=2, max_length=MAX_SUSPECTS)
    observations: list[Observation] = Field(default_factory=list)
    testing: list[str] | None = None  # the suspects of the round in progress
    culprits: list[str] = Field(default_factory=list)
    done: bool = False


class BisectionRecord(_Model):
    """The runs-table row of a stage attempt's bisection (``pk=RUN#<run>``, ``sk=BISECTION#<stage>#<attempt>``)."""

    run_id: str
    stage_name: str
    attempt: int
    phase_set: PhaseSet
    max_rounds: int
    subjects: list[BisectionSubject] = Field(max_length=MAX_SUBJECTS)
    current: int = 0
    status: BisectionStatus
    restore_task_id: str | None = None
    restore_polls: int = 0
    then: RestoreThen = "run_round"
    reason: str = ""
    started_at: datetime
    updated_at: datetime

    @property
    def rounds(self) -> int:
        """Rounds run so far, over every subject."""
        return sum(len(subject.observations) for subject in self.subjects)

    def culprits_by_system(self) -> dict[str, list[Suspect]]:
        """The culprits found, per operating system, with their titles."""
        found: dict[str, list[Suspect]] = {}
        for subject in self.subjects:
            titles = {suspect.patch_id: suspect for suspect in subject.suspects}
            if subject.culprits:
                found[subject.operating_system] = [titles[patch_id] for patch_id in subject.culprits]
        return found


class _StepRequest(_Model):
    run: RunContext
    stage: StagePlan
    attempt: int = Field(default=1, ge=1, le=5)


class StartBisectionRequest(_StepRequest):
    """Start: the failed step and its bounded samples (the verdict's)."""

    action: Literal["start"]
    phase_set: PhaseSet
    unhealthy: list[InstanceRef] = Field(max_length=50)
    healthy: list[InstanceRef] = Field(default_factory=list, max_length=50)


class CheckRestoreRequest(_StepRequest):
    """After a poll interval: check whether the instance's root-volume replacement has finished."""

    action: Literal["check_restore"]


class JudgeRoundRequest(_StepRequest):
    """A round's install, scan and health commands ended: its verdict on the bisected instance."""

    action: Literal["judge_round"]
    healthy: bool
    reasons: dict[str, int] = Field(default_factory=dict)


BisectionRequest = Annotated[
    StartBisectionRequest | CheckRestoreRequest | JudgeRoundRequest, Field(discriminator="action")
]


class BisectionStep(_Model):
    """What the state machine does next (``$.bisection``): wait for a restore, run a round, exclude, or stop.

    ``step`` holds a round's commands (``run_round``); ``reason`` says why bisection stopped, or what it found.
    """

    action: BisectionAction
    reason: str = ""
    round: int = Field(default=0, ge=0)
    suspects: int = Field(default=0, ge=0)
    culprits: list[str] = Field(default_factory=list, max_length=MAX_SUBJECTS * 10)
    poll_seconds: int = Field(default=30, ge=0, le=600)
    step: StageCommands | None = None
