"""The patch policy (policy/patch-policy.yaml): environments, OSes, approval rules, patch groups and stages.

One place to change a patching rule. The template's baselines, maintenance windows, daily scan and monthly rollout
schedule are rendered from it (tools/render_baselines.py) and the local runtime serves the same baselines.

Allowed filter values are Patch Manager's (AWS Systems Manager API reference: PatchFilter, DescribePatchProperties;
AWS::SSM::PatchBaseline Rule). Keys per OS: WINDOWS PRODUCT/CLASSIFICATION/MSRC_SEVERITY; Amazon Linux 2/2023, RHEL
and CentOS PRODUCT/CLASSIFICATION/SEVERITY; UBUNTU PRODUCT/PRIORITY/SECTION. ``ApproveAfterDays`` and
``ApproveUntilDate`` are not supported on Ubuntu: there, a rule approves what matches its PRIORITY/SECTION filters as
soon as it is published (that is what AWS-UbuntuDefaultPatchBaseline does), and the environment's delay comes from
the staged rollout itself (later stages scan and install days after Patch Tuesday) plus the BLOCK rejected list.
"""

import re
from typing import Annotated, Any, Literal, Self

from pydantic import ConfigDict, Field, StringConstraints, ValidationError, field_validator, model_validator

from patchpilot.models.bounds import Utf8Input
from patchpilot.models.rollout import (
    INSTALL_MINUTES,
    LEGACY_HEALTH_DOCUMENTS,
    MAX_INSTALL_MINUTES,
    MIN_INSTALL_MINUTES,
    BisectPolicy,
    CalendarName,
    CanaryPolicy,
    HealthCheck,
)
from patchpilot.models.snapshots import SnapshotSettings

OperatingSystem = Literal[
    "WINDOWS",
    "AMAZON_LINUX_2",
    "AMAZON_LINUX_2023",
    "UBUNTU",
    "REDHAT_ENTERPRISE_LINUX",
    "CENTOS",
    "ROCKY_LINUX",
    "ALMA_LINUX",
]
EnvironmentName = Literal["dev", "test", "staging", "prod", "emergency"]
ComplianceLevel = Literal["CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL", "UNSPECIFIED"]

_WINDOWS_CLASSIFICATIONS = (
    "CriticalUpdates",
    "DefinitionUpdates",
    "Drivers",
    "FeaturePacks",
    "SecurityUpdates",
    "ServicePacks",
    "Tools",
    "UpdateRollups",
    "Updates",
    "Upgrades",
)
_RPM_CLASSIFICATIONS = ("Security", "Bugfix", "Enhancement", "Recommended", "Newpackage")

CLASSIFICATIONS: dict[str, tuple[str, ...]] = {
    "WINDOWS": _WINDOWS_CLASSIFICATIONS,
    "AMAZON_LINUX_2": _RPM_CLASSIFICATIONS,
    "AMAZON_LINUX_2023": _RPM_CLASSIFICATIONS,
    "REDHAT_ENTERPRISE_LINUX": _RPM_CLASSIFICATIONS,
    "CENTOS": _RPM_CLASSIFICATIONS,
    "ROCKY_LINUX": _RPM_CLASSIFICATIONS,
    "ALMA_LINUX": _RPM_CLASSIFICATIONS,
    "UBUNTU": (),
}
"""CLASSIFICATION filter values per OS (Ubuntu has no classification: use priorities/sections)."""

SEVERITIES: dict[str, tuple[str, ...]] = {
    "WINDOWS": ("Critical", "Important", "Moderate", "Low", "Unspecified"),
    "AMAZON_LINUX_2": ("Critical", "Important", "Medium", "Low"),
    "AMAZON_LINUX_2023": ("Critical", "Important", "Medium", "Low", "None"),
    # Red Hat rates advisories Critical/Important/Moderate/Low; the PatchFilter reference also lists Medium.
    "REDHAT_ENTERPRISE_LINUX": ("Critical", "Important", "Moderate", "Medium", "Low"),
    "CENTOS": ("Critical", "Important", "Moderate", "Medium", "Low"),
    "ROCKY_LINUX": ("Critical", "Important", "Moderate", "Medium", "Low"),
    "ALMA_LINUX": ("Critical", "Important", "Moderate", "Medium", "Low"),
    "UBUNTU": (),
}
"""Severity filter values per OS (MSRC_SEVERITY on Windows, SEVERITY on Linux, none on Ubuntu)."""

UBUNTU_PRIORITIES = ("Required", "Important", "Standard", "Optional", "Extra")
"""PRIORITY filter values (Ubuntu only)."""

KERNEL_PACKAGES: dict[str, tuple[str, ...]] = {
    "WINDOWS": (),
    "AMAZON_LINUX_2": ("kernel*",),
    "AMAZON_LINUX_2023": ("kernel*",),
    "REDHAT_ENTERPRISE_LINUX": ("kernel*",),
    "CENTOS": ("kernel*",),
    "ROCKY_LINUX": ("kernel*",),
    "ALMA_LINUX": ("kernel*",),
    # APT lists take bare package names, no wildcard, no version or architecture.
    "UBUNTU": ("linux-aws", "linux-image-aws", "linux-headers-aws", "linux-modules-extra-aws"),
}
"""Rejected-patch entries that hold Linux kernel updates when an environment sets ``hold_kernel``."""

APPROVE_AFTER_DAYS_UNSUPPORTED: frozenset[str] = frozenset({"UBUNTU"})
"""OSes where Patch Manager rejects ApproveAfterDays/ApproveUntilDate."""

Name = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,31}$")]
Cron = Annotated[str, StringConstraints(pattern=r"^cron\([^()]+\)$")]
RateValue = Annotated[str, StringConstraints(pattern=r"^([1-9][0-9]{0,4}|(100|[1-9][0-9]?)%)$")]
ErrorBudget = Annotated[str, StringConstraints(pattern=r"^([0-9]{1,5}|(100|[1-9]?[0-9])%)$")]
PatchName = Annotated[str, StringConstraints(min_length=1, max_length=100)]


def _allowed(values: tuple[str, ...]) -> str:
    return ", ".join(values) if values else "(none: this key does not apply to this OS)"


def _ubuntu_non_security_problems(where: str, env: "Environment") -> list[str]:
    """An environment that wants non-security updates elsewhere must let its Ubuntu rules approve them too.

    Without EnableNonSecurity an implicit rule limits Ubuntu to packages whose candidate version is in a
    `*-security` pocket (SSM user guide, "How patch baseline rules work on Linux-based systems"): the environment
    would silently install no Ubuntu bug fix.
    """
    ubuntu = env.rules.get("UBUNTU", [])
    others = [rule for os_name, rules in env.rules.items() if os_name != "UBUNTU" for rule in rules]
    if ubuntu and any(rule.enable_non_security for rule in others) and not any(r.enable_non_security for r in ubuntu):
        return [
            f"{where}.rules.UBUNTU: other OSes enable non-security updates but no UBUNTU rule sets "
            "enable_non_security: Ubuntu would get only *-security pocket updates"
        ]
    return []


def legacy_health_check_problems(where: str, stage: dict[str, Any]) -> list[str]:
    """How to rewrite a stage's health checks written for one AWS document each (before the cross-platform check).

    ``health_check: {document_name, commands}`` and ``windows_health_check`` sent one command per document and
    platform; every instance of the other platform ended it ``InvalidPlatform``. Both are now one ``health_check``.
    """
    old = {key: stage[key] for key in ("health_check", "windows_health_check") if isinstance(stage.get(key), dict)}
    if not any("commands" in check or "document_name" in check for check in old.values()):
        return []
    moves = []
    for key, check in old.items():
        document = check.get("document_name", "AWS-RunShellScript")
        target = LEGACY_HEALTH_DOCUMENTS.get(document)
        if target is None:
            return [
                f"{where}.{key}.document_name: {document!r} is no longer a setting; write {where}.health_check "
                "with linux_commands and/or windows_commands"
            ]
        moves.append(f"{where}.{key}.commands ({document}) -> {where}.health_check.{target}")
    return [
        f"{where}: health checks are one cross-platform check now (PatchPilot's health-check document); move "
        + "; ".join(moves)
        + " and drop document_name and windows_health_check"
    ]


class _PolicyModel(Utf8Input):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ApprovalRule(_PolicyModel):
    """One auto-approval rule of a baseline: which patches, at which compliance level."""

    classifications: list[str] = Field(default_factory=list)
    severities: list[str] = Field(default_factory=list)
    priorities: list[str] = Field(default_factory=list)
    sections: list[str] = Field(default_factory=list)
    products: list[str] = Field(default_factory=lambda: ["*"], min_length=1, max_length=20)
    compliance_level: ComplianceLevel = "UNSPECIFIED"
    enable_non_security: bool = False

    def problems(self, os_name: str, where: str) -> list[str]:
        """Every value this rule uses that Patch Manager does not allow for `os_name` (empty when valid)."""
        found: list[str] = []
        checks = (
            ("classifications", self.classifications, CLASSIFICATIONS[os_name]),
            ("severities", self.severities, SEVERITIES[os_name]),
            ("priorities", self.priorities, UBUNTU_PRIORITIES if os_name == "UBUNTU" else ()),
        )
        for field, values, allowed in checks:
            unknown = [value for value in values if value not in allowed]
            if unknown:
                found.append(
                    f"{where}.{field}: {', '.join(map(repr, unknown))} not allowed for {os_name}; "
                    f"allowed values: {_allowed(allowed)}"
                )
        if self.sections and os_name != "UBUNTU":
            found.append(f"{where}.sections: only UBUNTU has SECTION filters, not {os_name}")
        if os_name == "UBUNTU" and not self.priorities:
            found.append(f"{where}.priorities: required for UBUNTU; allowed values: {_allowed(UBUNTU_PRIORITIES)}")
        if os_name != "UBUNTU" and not self.classifications:
            found.append(
                f"{where}.classifications: required for {os_name}; allowed values: {_allowed(CLASSIFICATIONS[os_name])}"
            )
        return found


class Environment(_PolicyModel):
    """The baselines of one environment: a delay, kernel handling and per-OS rules or an explicit patch list."""

    description: str = Field(min_length=1, max_length=1024)
    approve_after_days: int = Field(
        default=0, ge=0, le=360, description="Days after release before approval (not used on Ubuntu)."
    )
    hold_kernel: bool = False
    rules: dict[OperatingSystem, list[ApprovalRule]] = Field(default_factory=dict)
    approved_patches: dict[OperatingSystem, list[PatchName]] = Field(default_factory=dict)
    approved_patches_compliance_level: ComplianceLevel = "UNSPECIFIED"
    rejected_patches: dict[OperatingSystem, list[PatchName]] = Field(default_factory=dict)


class MaintenanceWindowSpec(_PolicyModel):
    """When a stage's maintenance window opens: Patch Tuesday (second Tuesday) + offset, at a time of day.

    The stage's install starts only inside it (before its cutoff); the window also runs the group's scan.
    """

    patch_tuesday_offset_days: int = Field(ge=0, le=20)
    start_hour_utc: int = Field(default=3, ge=0, le=23)
    duration_hours: int = Field(default=4, ge=1, le=24)
    cutoff_hours: int = Field(default=1, ge=0, le=23)

    @model_validator(mode="after")
    def _cutoff_before_end(self) -> Self:
        if self.cutoff_hours >= self.duration_hours:
            raise ValueError(
                f"cutoff_hours ({self.cutoff_hours}) must be less than duration_hours ({self.duration_hours})"
            )
        return self


class Stage(_PolicyModel):
    """One rollout stage: its window, its rate control and error budget, its bake, its gate and health checks."""

    window: MaintenanceWindowSpec
    max_concurrency: RateValue = "50%"
    max_errors: ErrorBudget = "0"
    bake_seconds: int = Field(default=86_400, ge=1, le=14 * 24 * 3600)
    install_minutes: int = Field(
        default=INSTALL_MINUTES,
        ge=MIN_INSTALL_MINUTES,
        le=MAX_INSTALL_MINUTES,
        description="Expected patch-and-reboot time of one instance: sizes the install's delivery timeout per wave.",
    )
    requires_approval: bool = False
    health_check: HealthCheck | None = Field(
        default=None,
        description="One health command per step on every instance of the group (PatchPilot's cross-platform "
        "health-check document): `linux_commands` run on Linux, `windows_commands` on Windows.",
    )
    alarm_name_prefix: str | None = Field(default=None, min_length=1, max_length=200)
    canary: CanaryPolicy | Literal[False] | None = Field(
        default=None,
        description="Patch and verify these instances first (`{per_os: N}` or `{percent: P}`); `false`: the whole "
        "group at once. Unset: production stages take one canary per OS, test stages none.",
    )

    @field_validator("canary", mode="before")
    @classmethod
    def _one_canary_error(cls, value: object) -> object:
        """A malformed canary reports its own problem only (not also "Input should be False")."""
        if not isinstance(value, dict):
            return value
        try:
            return CanaryPolicy.model_validate(value)
        except ValidationError as error:
            raise ValueError("; ".join(str(e["msg"]).removeprefix("Value error, ") for e in error.errors())) from None

    snapshots: SnapshotSettings | None = Field(
        default=None,
        description="Pre-patch EBS snapshots of every instance before the install (EC2 CreateSnapshots), kept "
        "retention_days; absent: on for production stages, off for test stages.",
    )
    bisect: BisectPolicy | Literal[False] | None = Field(
        default=None,
        description="When correlation cannot tell the suspects apart, bisect them on a restored instance "
        "(`{max_rounds: N}`); needs the stage's snapshots. `false`: halt instead. Unset: on wherever the stage takes "
        "snapshots.",
    )

    @field_validator("bisect", mode="before")
    @classmethod
    def _one_bisect_error(cls, value: object) -> object:
        """A malformed bisect reports its own problem only (not also "Input should be False")."""
        if not isinstance(value, dict):
            return value
        try:
            return BisectPolicy.model_validate(value)
        except ValidationError as error:
            raise ValueError("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())) from None


class PatchGroup(_PolicyModel):
    """A PatchGroup tag value: which environment's baselines it uses and which rollout stage patches it."""

    environment: EnvironmentName
    stage: Name | None = None


class DailyScan(_PolicyModel):
    """The State Manager association that scans every managed instance."""

    schedule: str = Field(default="rate(1 day)", pattern=r"^(rate|cron)\(.+\)$")
    max_concurrency: RateValue = "10%"
    max_errors: ErrorBudget = "10%"


class RolloutSchedule(_PolicyModel):
    """When the monthly rollout cycle starts (EventBridge Scheduler, UTC): every stage, in order."""

    schedule: Cron = "cron(0 20 ? * TUE#2 *)"


class Approvals(_PolicyModel):
    """Who may answer an approval gate from chat (Slack user ids or user names, as Slack sends them)."""

    approvers: list[Annotated[str, StringConstraints(min_length=1, max_length=128)]] = Field(
        default_factory=list, max_length=100
    )
    production_requester_may_approve: Literal[False] = False


class CompliancePolicy(_PolicyModel):
    """How fleet compliance is judged and alarmed (README, "Compliance and reports")."""

    production_min_rate_percent: float = Field(default=95.0, ge=0, le=100)
    stale_scan_hours: int = Field(default=26, ge=1, le=24 * 31)
    risk_after_days: int = Field(default=7, ge=0, le=365)
    production_environments: list[EnvironmentName] = Field(default=["prod"], min_length=1)


class PatchPolicy(_PolicyModel):
    """The whole policy. Validation fails, naming the field and the allowed values, on any inconsistency."""

    version: Literal[1]
    operating_systems: list[OperatingSystem] = Field(min_length=1)
    environments: dict[EnvironmentName, Environment]
    stages: dict[Name, Stage] = Field(min_length=1)
    patch_groups: dict[Name, PatchGroup] = Field(min_length=1)
    default_patch_group: Name
    daily_scan: DailyScan = DailyScan()
    rollout: RolloutSchedule
    approvals: Approvals = Approvals()
    compliance: CompliancePolicy = CompliancePolicy()
    change_calendar: CalendarName | None = Field(
        default=None,
        description="An SSM Change Calendar (name or ARN): while it is CLOSED no stage starts its install.",
    )

    @model_validator(mode="before")
    @classmethod
    def _no_legacy_health_checks(cls, data: Any) -> Any:
        """A policy written for the per-document health checks fails with how to write it now (nothing is guessed)."""
        stages = data.get("stages") if isinstance(data, dict) else None
        problems = [
            problem
            for name, stage in (stages.items() if isinstance(stages, dict) else [])
            if isinstance(stage, dict)
            for problem in legacy_health_check_problems(f"stages.{name}", stage)
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        problems: list[str] = []
        for env_name, env in self.environments.items():
            problems.extend(self._environment_problems(env_name, env))
        stage_names = list(self.stages)
        for group_name, group in self.patch_groups.items():
            if group.stage is None or group.stage not in self.stages:
                problems.append(
                    f"patch_groups.{group_name}.stage: {group.stage!r} is not a stage; "
                    f"allowed values: {', '.join(stage_names)}"
                )
            if group.environment not in self.environments:
                problems.append(
                    f"patch_groups.{group_name}.environment: {group.environment!r} is not defined; "
                    f"allowed values: {', '.join(self.environments)}"
                )
        problems.extend(self._first_window_problems())
        problems.extend(self._bisect_problems())
        if self.default_patch_group not in self.patch_groups:
            problems.append(
                f"default_patch_group: {self.default_patch_group!r} is not a patch group; "
                f"allowed values: {', '.join(self.patch_groups)}"
            )
        problems.extend(
            f"compliance.production_environments: {name!r} is not defined; "
            f"allowed values: {', '.join(self.environments)}"
            for name in self.compliance.production_environments
            if name not in self.environments
        )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def takes_snapshots(self, stage_name: str) -> bool:
        """Whether a stage snapshots before its install: as configured, else production (prod environment) only."""
        configured = self.stages[stage_name].snapshots
        if configured is not None:
            return configured.enabled
        groups = [g for g in self.patch_groups.values() if g.stage == stage_name]
        return any(g.environment == "prod" for g in groups)

    def _bisect_problems(self) -> list[str]:
        """A stage that bisects restores instances from their pre-patch snapshots: it must take them."""
        return [
            f"stages.{name}.bisect: bisection restores instances from their pre-patch snapshots, and this stage takes "
            "none; turn them on (snapshots: {enabled: true}) or remove bisect"
            for name, stage in self.stages.items()
            if isinstance(stage.bisect, BisectPolicy)
            and any(g.stage == name for g in self.patch_groups.values())
            and not self.takes_snapshots(name)
        ]

    def _first_window_problems(self) -> list[str]:
        """The first stage's window must still take installs when the cycle starts (else it waits a month)."""
        match = re.fullmatch(r"cron\((\d+) (\d+) \? \* TUE#2 \*\)", self.rollout.schedule)
        first_name, first = next(iter(self.stages.items()))
        if match is None or first.window.patch_tuesday_offset_days > 0:
            return []
        starts = (int(match.group(2)), int(match.group(1)))
        last_start = (first.window.start_hour_utc + first.window.duration_hours - first.window.cutoff_hours, 0)
        if starts >= last_start:
            return [
                f"stages.{first_name}.window: closes to new installs at {last_start[0]:02d}:00 UTC on Patch Tuesday, "
                f"before the rollout starts ({self.rollout.schedule}): the stage would wait for next month's window"
            ]
        return []

    def _environment_problems(self, env_name: str, env: Environment) -> list[str]:
        problems: list[str] = []
        where = f"environments.{env_name}"
        for os_name in self.operating_systems:
            if not env.rules.get(os_name) and not env.approved_patches.get(os_name):
                problems.append(f"{where}: no rules and no approved_patches for {os_name}")
        problems.extend(_ubuntu_non_security_problems(where, env))
        for os_name, rules in env.rules.items():
            if os_name not in self.operating_systems:
                problems.append(
                    f"{where}.rules.{os_name}: not in operating_systems; "
                    f"allowed values: {', '.join(self.operating_systems)}"
                )
            for index, rule in enumerate(rules):
                problems.extend(rule.problems(os_name, f"{where}.rules.{os_name}[{index}]"))
        return problems

    def groups_of(self, environment: str) -> list[str]:
        """Patch groups whose instances use `environment`'s baselines, in policy order."""
        return [name for name, group in self.patch_groups.items() if group.environment == environment]

    def stage_of(self, group: str) -> str:
        """The rollout stage of a patch group."""
        stage = self.patch_groups[group].stage
        assert stage is not None  # validated: every group has a stage
        return stage
