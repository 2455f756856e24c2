"""Fleet compliance: the five statuses of a managed node, what they are derived from, and their aggregation.

Patch Manager reports per-patch states (Installed, InstalledOther, InstalledPendingReboot, InstalledRejected,
Missing, Failed, NotApplicable) and per-node counts (DescribeInstancePatchStates); the five fleet statuses are not
native to SSM: ``logic/compliance.py`` derives them (rules in the README, "Compliance and reports").
"""

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

NodeId = Annotated[str, StringConstraints(pattern=r"^(i-[0-9a-f]{8,17}|mi-[0-9a-f]{17})$")]
"""An EC2 instance id (`i-…`) or a hybrid managed node id (`mi-…`, SSM hybrid activation)."""


class ComplianceStatus(StrEnum):
    """The five statuses of a node in PatchPilot's compliance view."""

    COMPLIANT = "compliant"
    NON_COMPLIANT = "non_compliant"
    UNMANAGED = "unmanaged"
    SCAN_IN_PROGRESS = "scan_in_progress"
    INSTALL_IN_PROGRESS = "install_in_progress"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ManagedNodeInfo(_Model):
    """What SSM says about a managed node (a DescribeInstanceInformation row)."""

    node_id: NodeId
    ping_status: str
    last_ping: datetime | None = None
    platform_type: str = ""
    platform_name: str = ""
    platform_version: str = ""
    resource_type: str = "EC2Instance"


class Ec2InstanceInfo(_Model):
    """An EC2 instance (DescribeInstances), managed by SSM or not."""

    node_id: NodeId
    state: str
    patch_group: str | None = None
    platform: str = ""


class PatchStateCounts(_Model):
    """The node's last Scan/Install report (a DescribeInstancePatchStates row)."""

    patch_group: str = ""
    baseline_id: str = ""
    operation: str = "Scan"
    operation_end: AwareDatetime
    installed: int = Field(default=0, ge=0)
    installed_other: int = Field(default=0, ge=0)
    installed_pending_reboot: int = Field(default=0, ge=0)
    installed_rejected: int = Field(default=0, ge=0)
    missing: int = Field(default=0, ge=0)
    failed: int = Field(default=0, ge=0)
    not_applicable: int = Field(default=0, ge=0)
    critical_non_compliant: int = Field(default=0, ge=0)
    security_non_compliant: int = Field(default=0, ge=0)


_URGENCY = {"critical": "critical", "important": "important", "high": "important"}


class MissingPatch(_Model):
    """A patch a node lacks: Missing, Failed, InstalledPendingReboot or InstalledRejected (DescribeInstancePatches)."""

    patch_id: str
    title: str = ""
    classification: str = ""
    severity: str = ""
    state: Literal["Missing", "Failed", "InstalledPendingReboot", "InstalledRejected"]
    cve_ids: tuple[str, ...] = ()
    first_seen: AwareDatetime | None = None

    @property
    def urgency(self) -> str:
        """`critical`, `important` (Important or High) or `other`, for a patch the node lacks (Missing/Failed)."""
        if self.state not in ("Missing", "Failed"):
            return "other"
        return {"critical": "critical", "important": "important", "high": "important"}.get(
            self.severity.lower(), "other"
        )


OpenOperation = Literal["Scan", "Install"]


class OpenInvocation(_Model):
    """An AWS-RunPatchBaseline invocation still running on a node (Pending, InProgress or Delayed)."""

    node_id: NodeId
    operation: OpenOperation
    comment: str = ""


class NodeFacts(_Model):
    """Everything the status of one node is derived from.

    `ec2` is None for hybrid nodes (`mi-…`) and for managed instances the EC2 read did not cover; `managed` is None
    when SSM does not manage the node; `open_operation` is the AWS-RunPatchBaseline operation of a command still
    running on the node (an Install only when PatchPilot started it).
    """

    node_id: NodeId
    ec2: Ec2InstanceInfo | None = None
    managed: ManagedNodeInfo | None = None
    patch_state: PatchStateCounts | None = None
    open_operation: OpenOperation | None = None
    missing_patches: tuple[MissingPatch, ...] = ()


class NodeCompliance(_Model):
    """The derived compliance of one node."""

    node_id: NodeId
    status: ComplianceStatus
    reasons: tuple[str, ...]
    patch_group: str | None
    environment: str
    os: str
    last_scan: AwareDatetime | None
    stale_scan: bool
    missing: int = 0
    failed: int = 0
    pending_reboot: int = 0
    installed_rejected: int = 0
    critical_missing: int = 0
    important_missing: int = 0
    missing_patches: tuple[MissingPatch, ...] = ()
    observed_at: AwareDatetime


class GroupCompliance(_Model):
    """Counts per status and the compliance rate of a set of nodes (a patch group, an environment, an OS)."""

    nodes: int
    rate: float | None
    counts: dict[ComplianceStatus, int]


class PatchExposure(_Model):
    """One patch missing somewhere in the fleet, with how many nodes lack it."""

    patch_id: str
    title: str
    classification: str
    severity: str
    cve_ids: tuple[str, ...]
    nodes: int


class StageTiming(_Model):
    """How long a stage took in this cycle: first command sent to stage passed."""

    stage_name: str
    started_at: AwareDatetime
    finished_at: AwareDatetime

    @property
    def hours(self) -> float:
        """Time to patch, in hours."""
        return round((self.finished_at - self.started_at).total_seconds() / 3600, 2)


class ComplianceSummary(_Model):
    """The fleet's compliance at one moment."""

    taken_at: AwareDatetime
    nodes: int
    rate: float | None
    counts: dict[ComplianceStatus, int]
    by_patch_group: dict[str, GroupCompliance]
    by_environment: dict[str, GroupCompliance]
    by_os: dict[str, GroupCompliance]
    stale_scans: list[str]
    critical_missing: int
    important_missing: int
    nodes_missing_critical_or_important: int
    missing_patches: list[PatchExposure]
    time_to_patch_hours: dict[str, float] = Field(default_factory=dict)


class RiskEntry(_Model):
    """A node missing Critical/Important patches for longer than the policy allows."""

    node_id: str
    patch_group: str | None
    environment: str
    days_exposed: float
    critical: int
    important: int
    cve_ids: tuple[str, ...]


class ComplianceStateChangeDetail(_Model):
    """`detail` of an SSM "Configuration Compliance State Change" event (Patch or Association compliance).

    Source: SSM user guide, "Monitoring Systems Manager events with Amazon EventBridge" (example events); the
    Patch type carries `patch-baseline-id` and `severity`, the Association type `association-id`.
    """

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    resource_id: NodeId = Field(alias="resource-id")
    resource_type: Literal["managed-instance"] = Field(alias="resource-type")
    compliance_type: str = Field(alias="compliance-type", min_length=1)
    compliance_status: Literal["compliant", "non_compliant"] = Field(alias="compliance-status")
    last_runtime: AwareDatetime | None = Field(default=None, alias="last-runtime")
    patch_baseline_id: str | None = Field(default=None, alias="patch-baseline-id")
    severity: str | None = None


class ComplianceStateChangeEvent(_Model):
    """An EventBridge "Configuration Compliance State Change" event from aws.ssm."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    id: str = Field(min_length=1)
    source: Literal["aws.ssm"]
    detail_type: Literal["Configuration Compliance State Change"] = Field(alias="detail-type")
    time: AwareDatetime
    detail: ComplianceStateChangeDetail

    @property
    def observed_at(self) -> datetime:
        """When the compliance was determined: the detail's `last-runtime`, else the event time."""
        return self.detail.last_runtime or self.time


class ComplianceEventOutcome(_Model):
    """What one compliance event did."""

    node_id: str
    outcome: Literal["updated", "stale", "duplicate"]
    status: ComplianceStatus | None = None


class RefreshOutcome(_Model):
    """What a full refresh did."""

    status: Literal["replaced", "kept_previous"]
    nodes: int
    previous_nodes: int
    summary: ComplianceSummary | None = None
    error: str | None = None


class CycleComplianceRequest(_Model):
    """Input of the cycle-end compliance step: the run and when it started."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    run_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    started_at: AwareDatetime


class CycleCompliance(_Model):
    """The compliance summary the cycle-finished alert carries (chat renders these keys)."""

    rate_before: float | None
    rate_after: float | None
    non_compliant: int
    unmanaged: int
    nodes: int
    counts: dict[ComplianceStatus, int]
    report_uri: str | None = None


class ComplianceRules(_Model):
    """The compliance part of the policy as the functions read it (rendered into the template from the policy)."""

    production_min_rate_percent: float = Field(default=95.0, ge=0, le=100)
    stale_scan_hours: int = Field(default=26, ge=1)
    risk_after_days: int = Field(default=7, ge=0)
    production_environments: list[str] = Field(default_factory=lambda: ["prod"])
    group_environments: dict[str, str] = Field(default_factory=dict)

    def environment_of(self, patch_group: str | None) -> str:
        """The environment whose baselines a patch group uses (`none` without a group, `unknown` if not in policy)."""
        if not patch_group:
            return "none"
        return self.group_environments.get(patch_group, "unknown")


class UnknownComplianceNode(Exception):
    """A compliance event names a node that SSM does not manage (kept in the dead-letter queue)."""


class ComplianceReadFailed(Exception):
    """Reading the fleet's compliance from SSM/EC2 failed (the previous data stays in place)."""
