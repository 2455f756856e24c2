"""Ports of fleet compliance: where node facts are read and where derived statuses are kept."""

from abc import ABC, abstractmethod
from datetime import datetime

from patchpilot.models.compliance import (
    ComplianceSummary,
    Ec2InstanceInfo,
    ManagedNodeInfo,
    MissingPatch,
    NodeCompliance,
    OpenInvocation,
    PatchStateCounts,
)


class FleetComplianceSource(ABC):
    """SSM and EC2, read-only. Every method raises `ComplianceReadFailed` when the read cannot complete."""

    @abstractmethod
    def ec2_instances(self) -> list[Ec2InstanceInfo]:
        """Every EC2 instance that is not terminated (DescribeInstances, every page)."""

    @abstractmethod
    def managed_nodes(self, node_ids: list[str] | None = None) -> list[ManagedNodeInfo]:
        """SSM managed nodes, instances and hybrid nodes (DescribeInstanceInformation); all when `node_ids` is None."""

    @abstractmethod
    def patch_states(self, node_ids: list[str]) -> dict[str, PatchStateCounts]:
        """The last Scan/Install report per node (DescribeInstancePatchStates); nodes never scanned are absent."""

    @abstractmethod
    def lacking_patches(self, node_id: str) -> list[MissingPatch]:
        """The node's Missing, Failed, InstalledPendingReboot, InstalledRejected patches (DescribeInstancePatches)."""

    @abstractmethod
    def open_invocations(self) -> list[OpenInvocation]:
        """Every AWS-RunPatchBaseline Scan or Install invocation still running, with its command's comment."""

    @abstractmethod
    def command_requested_at(self, command_id: str) -> datetime | None:
        """When a command was sent (ListCommands RequestedDateTime), None when SSM no longer knows it."""


class ComplianceStore(ABC):
    """Derived node statuses and the fleet summaries of past refreshes (the trend)."""

    @abstractmethod
    def nodes(self) -> list[NodeCompliance]:
        """Every stored node row."""

    @abstractmethod
    def node(self, node_id: str) -> tuple[NodeCompliance, str | None] | None:
        """A node's row and the id of the event that wrote it last (None for a refresh)."""

    @abstractmethod
    def put_node(self, node: NodeCompliance, event_id: str | None) -> bool:
        """Write the row unless a row observed later is stored; False when it was not written."""

    @abstractmethod
    def remove_nodes(self, node_ids: list[str], observed_before: datetime) -> None:
        """Forget nodes that disappeared from the fleet (only rows not observed after `observed_before`)."""

    @abstractmethod
    def add_summary(self, summary: ComplianceSummary, run_id: str | None = None) -> None:
        """Keep a fleet summary (one per refresh or cycle end): the compliance trend."""

    @abstractmethod
    def summaries(self, limit: int = 24) -> list[ComplianceSummary]:
        """The latest kept summaries, oldest first."""


class ReportStore(ABC):
    """Where rendered reports are kept (the artifacts bucket, `reports/<run or date>/...`)."""

    @abstractmethod
    def put(self, key: str, body: str, content_type: str) -> str:
        """Store one report file; return its URI."""

    @abstractmethod
    def get(self, key: str) -> str | None:
        """A stored report file, None when absent."""

    @abstractmethod
    def keys(self, prefix: str) -> list[str]:
        """The keys stored under a prefix, sorted."""
