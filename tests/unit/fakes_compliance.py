"""In-memory fakes of the compliance ports (no network, no moto)."""

from datetime import datetime

from patchpilot.integrations.compliance_ports import ComplianceStore, FleetComplianceSource, ReportStore
from patchpilot.integrations.ports import (
    AlertPublisher,
    ExclusionLedger,
    InstallTracker,
    PatchInventory,
    RecordOutcome,
)
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
from patchpilot.models.exclusion import ExclusionRecord
from patchpilot.models.patches import InstancePatch
from patchpilot.models.records import InstanceResult, TrackedCommand


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


class ResultsOnlyTracker(InstallTracker):
    """Serves recorded results of install commands (the only tracker read the reports make)."""

    def __init__(self, results: dict[str, list[InstanceResult]]) -> None:
        self.results = results

    def list_results(self, command_id: str) -> list[InstanceResult]:
        return list(self.results.get(command_id, []))

    def track_command(self, command_id: str, run_id: str, stage_name: str) -> TrackedCommand:
        raise AssertionError("reports never track commands")

    def mark_foreign(self, command_id: str) -> None:
        raise AssertionError("reports never mark commands")

    def get_command(self, command_id: str) -> TrackedCommand | None:
        raise AssertionError("reports never read command rows")

    def record_result(self, command_id: str, instance_id: str, status: str, succeeded: bool) -> RecordOutcome:
        raise AssertionError("reports never record results")

    def register_wait(
        self, command_id: str, run_id: str, stage_name: str, expected: int, task_token: str
    ) -> TrackedCommand:
        raise AssertionError("reports never wait")

    def claim_resume(self, command_id: str, task_token: str) -> bool:
        raise AssertionError("reports never resume")


class FixedPatchInventory(PatchInventory):
    def __init__(self, patches: dict[str, list[InstancePatch]]) -> None:
        self.patches = patches

    def installed_during(self, instance_id: str, since: datetime) -> list[InstancePatch]:
        return [p for p in self.patches.get(instance_id, []) if p.installed_time is None or p.installed_time >= since]


class FixedExclusionLedger(ExclusionLedger):
    def __init__(self, records: list[ExclusionRecord]) -> None:
        self.records = records

    def record(self, record: ExclusionRecord) -> bool:
        raise AssertionError("reports never record exclusions")

    def exclusions_of(self, run_id: str) -> list[ExclusionRecord]:
        return [r for r in self.records if r.run_id == run_id]
