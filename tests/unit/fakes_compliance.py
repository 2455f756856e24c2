"""In-memory fakes of the compliance ports (no network, no moto)."""

from datetime import datetime

from patchpilot.integrations.compliance_ports import ComplianceStore, FleetComplianceSource, ReportStore
from patchpilot.integrations.ports import AlertPublisher
from patchpilot.models.alerts import Alert
from patchpilot.models.compliance import (
    ComplianceReadFailed,
    ComplianceSummary,
    Ec2InstanceInfo,
    ManagedNodeInfo,
    MissingPatch,
    NodeCompliance,
    OpenInvocation,
    OpenOperation,
    PatchStateCounts,
)


class FakeFleetSource(FleetComplianceSource):
    """A fleet in memory; `fail_on` makes one read raise ComplianceReadFailed (an SSM error mid-refresh)."""

    def __init__(self) -> None:
        self.ec2: dict[str, Ec2InstanceInfo] = {}
        self.managed: dict[str, ManagedNodeInfo] = {}
        self.states: dict[str, PatchStateCounts] = {}
        self.lacking: dict[str, list[MissingPatch]] = {}
        self.open: dict[str, OpenOperation] = {}
        self.fail_on: str | None = None
        self.command_times: dict[str, datetime] = {}
        self.calls: list[str] = []

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if self.fail_on == name:
            raise ComplianceReadFailed(f"{name}: ThrottlingException: Rate exceeded")

    def ec2_instances(self) -> list[Ec2InstanceInfo]:
        self._call("ec2_instances")
        return list(self.ec2.values())

    def managed_nodes(self, node_ids: list[str] | None = None) -> list[ManagedNodeInfo]:
        self._call("managed_nodes")
        return [n for n in self.managed.values() if node_ids is None or n.node_id in node_ids]

    def patch_states(self, node_ids: list[str]) -> dict[str, PatchStateCounts]:
        self._call("patch_states")
        return {node_id: self.states[node_id] for node_id in node_ids if node_id in self.states}

    def lacking_patches(self, node_id: str) -> list[MissingPatch]:
        self._call("lacking_patches")
        return list(self.lacking.get(node_id, []))

    def open_invocations(self) -> list[OpenInvocation]:
        self._call("open_invocations")
        return [
            OpenInvocation(node_id=node_id, operation=operation, comment=f"PatchPilot 2026-12/{operation.lower()}")
            for node_id, operation in self.open.items()
        ]

    def command_requested_at(self, command_id: str) -> datetime | None:
        return self.command_times.get(command_id)


class InMemoryComplianceStore(ComplianceStore):
    def __init__(self) -> None:
        self.rows: dict[str, tuple[NodeCompliance, str | None]] = {}
        self.kept: list[tuple[ComplianceSummary, str | None]] = []

    def nodes(self) -> list[NodeCompliance]:
        return [row for row, _ in self.rows.values()]

    def node(self, node_id: str) -> tuple[NodeCompliance, str | None] | None:
        return self.rows.get(node_id)

    def put_node(self, node: NodeCompliance, event_id: str | None) -> bool:
        current = self.rows.get(node.node_id)
        if current is not None and current[0].observed_at > node.observed_at:
            return False
        self.rows[node.node_id] = (node, event_id)
        return True

    def remove_nodes(self, node_ids: list[str], observed_before: datetime) -> None:
        for node_id in node_ids:
            if node_id in self.rows and self.rows[node_id][0].observed_at <= observed_before:
                del self.rows[node_id]

    def add_summary(self, summary: ComplianceSummary, run_id: str | None = None) -> None:
        self.kept.append((summary, run_id))

    def summaries(self, limit: int = 24) -> list[ComplianceSummary]:
        return [summary for summary, _ in self.kept[-limit:]]


class AlertRecorder(AlertPublisher):
    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    def publish(self, alert: Alert) -> str:
        self.alerts.append(alert)
        return f"message-{len(self.alerts)}"


class InMemoryReportStore(ReportStore):
    def __init__(self) -> None:
        self.files: dict[str, tuple[str, str]] = {}

    def put(self, key: str, body: str, content_type: str) -> str:
        self.files[key] = (body, content_type)
        return f"s3://artifacts/{key}"

    def get(self, key: str) -> str | None:
        found = self.files.get(key)
        return found[0] if found else None

    def keys(self, prefix: str) -> list[str]:
        return sorted(key for key in self.files if key.startswith(prefix))
