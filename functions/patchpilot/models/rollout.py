"""Models of the staged rollout: the stage catalog, the start request, the plan and what each stage step passes on.

Payloads carry names, keys and counts; instance lists stay in DynamoDB (bounded samples only on a failure path).
"""

from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import ConfigDict, Field, StringConstraints, model_validator

from patchpilot.models.bounds import CommandId, Utf8Input
from patchpilot.models.snapshots import SnapshotSettings
from patchpilot.models.state import (
    MAX_BAKE_SECONDS,
    ErrorBudget,
    PatchGroupName,
    RateValue,
    RunId,
    StageName,
    WaitLimits,
)

PatchId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:+~-]{0,99}$")]
CveId = Annotated[str, StringConstraints(pattern=r"^CVE-\d{4}-\d{4,7}$")]
StageRole = Literal["test", "production"]
Phase = Literal["install", "scan", "health"]
PhaseSet = Literal["canary", "patch", "verify", "bisect"]
MAX_SAMPLE = 50
MAX_CANARIES = 50
CANARY_TAG_KEY = "PatchPilotCanary"
INSTALL_MINUTES, MIN_INSTALL_MINUTES, MAX_INSTALL_MINUTES = 60, 5, 720


class _Model(Utf8Input):
    model_config = ConfigDict(frozen=True, extra="forbid")


LEGACY_HEALTH_DOCUMENTS = {"AWS-RunShellScript": "linux_commands", "AWS-RunPowerShellScript": "windows_commands"}
"""Where the commands of a check written for one AWS document (before the cross-platform check) go now."""


class HealthCheck(_Model):
    """A stage's health check: ONE command of PatchPilot's health-check document on every instance of the stage.

    The document (schema 2.2) has one step per platform, each with a ``platformType`` precondition: Linux instances
    run ``linux_commands`` (aws:runShellScript), Windows instances ``windows_commands`` (aws:runPowerShellScript), and
    the other step is skipped, which SSM counts as success. A platform without commands runs the document's no-op
    default. At least one list is required.
    """

    linux_commands: list[str] = Field(default_factory=list, max_length=20)
    windows_commands: list[str] = Field(default_factory=list, max_length=20)
    timeout_seconds: int = Field(default=120, ge=30, le=3600)

    @model_validator(mode="after")
    def _some_commands(self) -> Self:
        if not self.linux_commands and not self.windows_commands:
            raise ValueError("a health check needs linux_commands, windows_commands or both")
        lists = {"linux_commands": self.linux_commands, "windows_commands": self.windows_commands}
        blank = [
            f"{key}[{i}]" for key, commands in lists.items() for i, line in enumerate(commands) if not line.strip()
        ]
        if blank:
            raise ValueError(f"empty health check command(s): {', '.join(blank)}")
        return self

    def parameters(self) -> dict[str, list[str]]:
        """The health-check document's parameters for this check (a platform without commands keeps the default)."""
        parameters = {"executionTimeout": [str(self.timeout_seconds)]}
        if self.linux_commands:
            parameters["linuxCommands"] = list(self.linux_commands)
        if self.windows_commands:
            parameters["windowsCommands"] = list(self.windows_commands)
        return parameters


def merge_legacy_health_checks(data: dict[str, Any]) -> dict[str, Any]:
    """A stage as an earlier release stored it (``health_check`` per AWS document + ``windows_health_check``) -> now.

    Stage catalogs and the stage plans of executions started before the upgrade carry the old shape: a deploy in the
    middle of a cycle must not fail them. Their commands keep their platform; the longer timeout wins.
    """
    old = [data.get("health_check"), data.get("windows_health_check")]
    if not any(isinstance(check, dict) and "commands" in check for check in old):
        return data
    checks = [check for check in old if isinstance(check, dict)]
    merged: dict[str, Any] = {
        LEGACY_HEALTH_DOCUMENTS.get(check.get("document_name", "AWS-RunShellScript"), "linux_commands"): check.get(
            "commands", []
        )
        for check in checks
    }
    timeouts = [check.get("timeout_seconds", 120) for check in checks]
    merged["timeout_seconds"] = max(timeouts) if all(isinstance(t, int) for t in timeouts) else timeouts[0]
    rest = {key: value for key, value in data.items() if key not in ("health_check", "windows_health_check")}
    return {**rest, "health_check": merged}


class InstallWindow(_Model):
    """A patch group's maintenance window, as rendered into AWS::SSM::MaintenanceWindow: when installs may start.

    `schedule` is the window's cron expression (UTC), `schedule_offset_days` its ScheduleOffset (days after the cron
    date), `duration_hours` and `cutoff_hours` its Duration and Cutoff (no new task starts in the last
    `cutoff_hours`).
    """

    schedule: Annotated[str, StringConstraints(pattern=r"^cron\([^()]+\)$")]
    schedule_offset_days: int = Field(default=0, ge=0, le=6)
    duration_hours: int = Field(ge=1, le=24)
    cutoff_hours: int = Field(default=0, ge=0, le=23)

    @model_validator(mode="after")
    def _cutoff_inside(self) -> Self:
        if self.cutoff_hours >= self.duration_hours:
            raise ValueError(f"cutoff_hours ({self.cutoff_hours}) must be less than duration_hours")
        return self


class CanaryPolicy(_Model):
    """Which instances of a stage are patched and verified before the rest of its group.

    Exactly one of ``per_os`` (this many instances of every operating system in the group) and ``percent`` (this share
    of each operating system's instances, rounded up: at least one each). A canary never exceeds ``MAX_CANARIES``
    instances, and leaves at least one instance of the group for the rest of the stage when it can.
    """

    per_os: int | None = Field(default=None, ge=1, le=10)
    percent: int | None = Field(default=None, ge=1, le=50)

    @model_validator(mode="after")
    def _one_rule(self) -> Self:
        if (self.per_os is None) == (self.percent is None):
            raise ValueError("a canary takes exactly one of per_os and percent")
        return self


DEFAULT_PRODUCTION_CANARY = CanaryPolicy(per_os=1)
DEFAULT_BISECT_ROUNDS = 8


class BisectPolicy(_Model):
    """A stage's bisection of suspects that correlation cannot tell apart (``bisect:`` of a stage in the policy).

    Bisection restores an unhealthy instance from its pre-patch snapshot, installs half of the suspects, verifies and
    narrows: it needs the stage's pre-patch snapshots. ``max_rounds`` caps the rounds per operating system; halving
    needs ceil(log2(suspects)) rounds to find one culprit, plus one round that installs the rest to confirm it was the
    only one.
    """

    max_rounds: int = Field(default=DEFAULT_BISECT_ROUNDS, ge=1, le=12)


CalendarName = Annotated[
    str, StringConstraints(pattern=r"^(arn:aws[a-z-]*:ssm:[a-z0-9-]+:\d{12}:document/)?[A-Za-z0-9_.-]{3,128}$")
]


class StageDefinition(_Model):
    """A stage of the catalog (rendered from policy/patch-policy.yaml into the STAGE_CATALOG env var)."""

    name: StageName
    patch_group: PatchGroupName
    role: StageRole
    max_concurrency: RateValue = "50%"
    max_errors: ErrorBudget = "0"
    bake_seconds: int = Field(default=86_400, ge=1, le=MAX_BAKE_SECONDS)
    install_minutes: int = Field(default=INSTALL_MINUTES, ge=MIN_INSTALL_MINUTES, le=MAX_INSTALL_MINUTES)
    reboot_option: Literal["RebootIfNeeded", "NoReboot"] = "RebootIfNeeded"
    requires_approval: bool = False
    health_check: HealthCheck | None = None  # one cross-platform command (PatchPilot's health-check document)
    alarm_name_prefix: str | None = Field(default=None, min_length=1, max_length=200)
    eligible_classifications: list[str] = Field(default_factory=list)
    eligible_severities: list[str] = Field(default_factory=list)
    window: InstallWindow | None = None  # None: the install may start at once
    change_calendar: CalendarName | None = None  # an SSM Change Calendar: CLOSED holds the install back
    canary: CanaryPolicy | None = None  # None: the whole group at once
    snapshots: SnapshotSettings | None = None  # pre-patch snapshots of the stage's instances (None: none taken)
    bisect: BisectPolicy | None = None  # bisect indistinguishable suspects (needs snapshots; None: halt instead)

    @model_validator(mode="before")
    @classmethod
    def _legacy_health_checks(cls, data: Any) -> Any:
        return merge_legacy_health_checks(data) if isinstance(data, dict) else data

    @model_validator(mode="after")
    def _bisect_needs_snapshots(self) -> Self:
        if self.bisect is not None and (self.snapshots is None or not self.snapshots.enabled):
            raise ValueError(
                f"stage {self.name}: bisect restores instances from their pre-patch snapshots; turn snapshots on "
                "for the stage (snapshots: {enabled: true}) or remove bisect"
            )
        return self


class StageCatalog(_Model):
    """Every stage in rollout order: test stages first, then production stages."""

    stages: list[StageDefinition] = Field(min_length=1, max_length=20)
    approvers: list[str] = Field(default_factory=list, max_length=100)
    """Who may answer approval gates from chat (the policy's ``approvals.approvers``)."""

    @model_validator(mode="after")
    def _ordered_and_unique(self) -> Self:
        names = [stage.name for stage in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"stage names must be unique, got {names}")
        roles = [stage.role for stage in self.stages]
        if "production" in roles and "test" in roles[roles.index("production") :]:
            raise ValueError("every test stage must come before the first production stage")
        return self

    def by_name(self) -> dict[str, StageDefinition]:
        """The stages by name."""
        return {stage.name: stage for stage in self.stages}


class RolloutRequest(_Model):
    """The execution input: which cycle, which stages (default: all), and for emergencies which patches."""

    run_id: RunId
    mode: Literal["scheduled", "manual", "emergency"] = "scheduled"
    stages: list[StageName] | None = Field(default=None, min_length=1)
    bake_seconds: dict[StageName, Annotated[int, Field(ge=1, le=MAX_BAKE_SECONDS)]] = Field(default_factory=dict)
    patch_ids: list[PatchId] = Field(default_factory=list, max_length=50)
    cve_ids: list[CveId] = Field(default_factory=list, max_length=50)
    on_bad_patch: Literal["halt", "exclude_and_retry"] = "exclude_and_retry"
    approval_timeout_seconds: int = Field(default=24 * 3600, ge=1, le=7 * 24 * 3600)
    limits: WaitLimits = WaitLimits()
    completed_stages: list[StageName] = Field(default_factory=list, max_length=20)  # passed in an earlier attempt
    run_started_at: datetime | None = None  # when the run's first attempt started (a resumed attempt keeps it)
    requested_by: str | None = Field(default=None, min_length=1, max_length=128)

    @model_validator(mode="after")
    def _emergency_needs_patches(self) -> Self:
        if self.mode == "emergency" and not (self.patch_ids or self.cve_ids):
            raise ValueError("an emergency run needs patch_ids or cve_ids (got an empty patch list)")
        if self.mode != "emergency" and (self.patch_ids or self.cve_ids):
            raise ValueError("patch_ids and cve_ids are only for mode=emergency")
        if self.stages is not None and len(set(self.stages)) != len(self.stages):
            raise ValueError(f"stages must not repeat, got {self.stages}")
        return self


class RunContext(_Model):
    """What every stage step needs to know about the run (small, carried into each Map iteration)."""

    run_id: RunId
    mode: Literal["scheduled", "manual", "emergency"]
    started_at: datetime
    on_bad_patch: Literal["halt", "exclude_and_retry"]
    approval_timeout_seconds: int
    limits: WaitLimits
    patch_ids: list[PatchId] = Field(default_factory=list)
    cve_ids: list[CveId] = Field(default_factory=list)
    requested_by: str | None = None


class StagePlan(StageDefinition):
    """A catalog stage as this run executes it."""

    index: int = Field(ge=0)
    is_last: bool
    later_patch_groups: list[PatchGroupName] = Field(default_factory=list)


class RolloutPlan(_Model):
    """Output of the rollout planner: the run context and the ordered stages."""

    run: RunContext
    stages: list[StagePlan]


class CommandTarget(_Model):
    """A SendCommand target."""

    Key: str
    Values: list[str]


class CommandSpec(_Model):
    """One SSM command of a stage step, ready for the state machine's `aws-sdk:ssm:sendCommand` task."""

    phase: Phase
    document_name: str
    parameters: dict[str, list[str]]
    targets: list[CommandTarget]
    max_concurrency: RateValue
    max_errors: ErrorBudget
    comment: str = Field(max_length=100)
    timeout_seconds: int = Field(ge=30, le=2_592_000)
    # The wait's HeartbeatSeconds and TimeoutSeconds (logic/stage_plan.py): the longest quiet gap this command can
    # have while healthy, and the moment SSM has ended every invocation of it (its ExpiresAfter).
    heartbeat_seconds: int = Field(ge=1, le=24 * 3600)
    wait_timeout_seconds: int = Field(ge=2, le=2_592_000 + 24 * 3600)


class StageStepRequest(_Model):
    """Input of the stage-step planner: patch (install, scan, health) or verify after the bake (health)."""

    run: RunContext
    stage: StagePlan
    phase_set: PhaseSet
    attempt: int = Field(default=1, ge=1, le=5)


class InstallStart(_Model):
    """Whether a stage step may send its commands now, or until when the state machine waits before asking again."""

    start_now: bool
    reason: Literal[
        "no_window", "window_open", "window_closed", "past_cutoff", "calendar_closed", "verify_step", "emergency"
    ]
    wait_until: str | None = None  # ISO-8601 UTC `...Z` for the Wait state's TimestampPath (None: start now)
    opens_at: datetime | None = None  # the window opening the step waits for (or runs in)
    cutoff_at: datetime | None = None  # no install starts at or after this


class StageCommands(_Model):
    """The commands of a stage step, how many instances they target, and whether they may start now."""

    targeted_instances: int = Field(ge=1)
    commands: list[CommandSpec]
    start: InstallStart = InstallStart(start_now=True, reason="no_window")


class CommandResultRef(_Model):
    """A finished command of the step (the Map over commands outputs one per command)."""

    phase: Phase
    command_id: CommandId


class VerifyStageRequest(_Model):
    """Input of the health verification of a stage step."""

    run: RunContext
    stage: StagePlan
    phase_set: PhaseSet
    results: list[CommandResultRef]


class InstanceRef(_Model):
    """An instance and its platform, as the exclusion step needs them."""

    instance_id: str
    platform: str
    reasons: list[str] = Field(default_factory=list)


class StageVerdict(_Model):
    """A stage step's health: counts by reason, and bounded samples of unhealthy and healthy instances."""

    stage_name: StageName
    phase_set: PhaseSet
    healthy: bool
    targeted: int
    unhealthy: int
    allowed_failures: int
    reasons: dict[str, int]
    alarms_in_alarm: list[str] = Field(default_factory=list)
    unhealthy_sample: list[InstanceRef] = Field(default_factory=list, max_length=MAX_SAMPLE)
    healthy_sample: list[InstanceRef] = Field(default_factory=list, max_length=MAX_SAMPLE)


class RecordStageRequest(_Model):
    """Input of the step that records a passed stage (and freezes the patch set after the last test stage)."""

    run: RunContext
    stage: StagePlan
    results: list[CommandResultRef]
    verdict: StageVerdict


class StageOutcome(_Model):
    """What the rollout keeps about a passed stage."""

    stage_name: StageName
    status: Literal["passed"]
    targeted: int
    unhealthy: int
    frozen_patch_count: int | None = None
