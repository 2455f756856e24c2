"""In-memory fakes of the ports (no network, no moto)."""

from pydantic import BaseModel

from patchpilot.integrations.ports import CommandDirectory, ExecutionCallbacks, InstallTracker, RecordOutcome
from patchpilot.models.records import CommandInfo, InstanceResult, InvocationInfo, ManagedInstance, TrackedCommand


class InMemoryInstallTracker(InstallTracker):
    def __init__(self) -> None:
        self.commands: dict[str, TrackedCommand] = {}
        self.results: dict[tuple[str, str], InstanceResult] = {}

    def track_command(self, command_id: str, run_id: str, stage_name: str) -> TrackedCommand:
        if command_id not in self.commands:
            self.commands[command_id] = TrackedCommand(command_id=command_id, run_id=run_id, stage_name=stage_name)
        return self.commands[command_id]

    def mark_foreign(self, command_id: str) -> None:
        self.commands.setdefault(
            command_id, TrackedCommand(command_id=command_id, run_id="", stage_name="", foreign=True)
        )

    def get_command(self, command_id: str) -> TrackedCommand | None:
        return self.commands.get(command_id)

    def record_result(self, command_id: str, instance_id: str, status: str, succeeded: bool) -> RecordOutcome:
        if (command_id, instance_id) in self.results:
            return RecordOutcome.DUPLICATE
        command = self.commands.get(command_id)
        if command is None or command.foreign:
            return RecordOutcome.UNKNOWN_COMMAND
        self.results[(command_id, instance_id)] = InstanceResult(
            instance_id=instance_id, status=status, succeeded=succeeded
        )
        self.commands[command_id] = command.model_copy(
            update={"reported": command.reported + 1, "failed": command.failed + (0 if succeeded else 1)}
        )
        return RecordOutcome.RECORDED

    def register_wait(
        self, command_id: str, run_id: str, stage_name: str, expected: int, task_token: str
    ) -> TrackedCommand:
        current = self.commands.get(command_id) or TrackedCommand(
            command_id=command_id, run_id=run_id, stage_name=stage_name
        )
        self.commands[command_id] = current.model_copy(
            update={
                "run_id": run_id,
                "stage_name": stage_name,
                "expected": expected,
                "task_token": task_token,
                "resumed": False,
                "foreign": False,
            }
        )
        return self.commands[command_id]

    def claim_resume(self, command_id: str, task_token: str) -> bool:
        command = self.commands[command_id]
        if command.task_token != task_token or command.resumed:
            return False
        self.commands[command_id] = command.model_copy(update={"resumed": True})
        return True

    def list_results(self, command_id: str) -> list[InstanceResult]:
        return [result for (cid, _), result in self.results.items() if cid == command_id]


class FakeCommandDirectory(CommandDirectory):
    def __init__(self) -> None:
        self.commands: dict[str, CommandInfo] = {}
        self.invocations: dict[str, list[InvocationInfo]] = {}
        self.managed: dict[tuple[str, str], int] = {}
        self.fleet: dict[tuple[str, str], list[ManagedInstance]] = {}
        self.describe_calls = 0

    def add_command(self, command_id: str, comment: str, status: str = "InProgress", target_count: int = 0) -> None:
        self.commands[command_id] = CommandInfo(
            command_id=command_id,
            document_name="AWS-RunPatchBaseline",
            comment=comment,
            status=status,
            target_count=target_count,
        )

    def describe_command(self, command_id: str) -> CommandInfo | None:
        self.describe_calls += 1
        return self.commands.get(command_id)

    def list_invocations(self, command_id: str) -> list[InvocationInfo]:
        return list(self.invocations.get(command_id, []))

    def count_managed_instances(self, tag_key: str, tag_value: str) -> int:
        return len(self.managed_instances(tag_key, tag_value)) or self.managed.get((tag_key, tag_value), 0)

    def managed_instances(self, tag_key: str, tag_value: str) -> list[ManagedInstance]:
        return list(self.fleet.get((tag_key, tag_value), []))


class RecordingCallbacks(ExecutionCallbacks):
    def __init__(self, token_valid: bool = True) -> None:
        self.resumed: list[tuple[str, dict[str, object]]] = []
        self.heartbeats: list[str] = []
        self.failed: list[tuple[str, str, str]] = []
        self.token_valid = token_valid

    def resume(self, task_token: str, output: BaseModel) -> bool:
        self.resumed.append((task_token, output.model_dump()))
        return self.token_valid

    def heartbeat(self, task_token: str) -> bool:
        self.heartbeats.append(task_token)
        return self.token_valid

    def fail(self, task_token: str, error: str, cause: str) -> bool:
        self.failed.append((task_token, error, cause))
        return self.token_valid


# Approval gate and alerts (appended).
from datetime import datetime  # noqa: E402

from patchpilot.integrations.ports import AlertPublisher, ApprovalStore  # noqa: E402
from patchpilot.models.alerts import Alert  # noqa: E402
from patchpilot.models.approval import ApprovalRecord, DecidedStatus  # noqa: E402
from patchpilot.models.exceptions import ApprovalIdConflict  # noqa: E402


class RecordingAlertPublisher(AlertPublisher):
    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    def publish(self, alert: Alert) -> str:
        self.alerts.append(alert)
        return f"message-{len(self.alerts)}"


class InMemoryApprovalStore(ApprovalStore):
    def __init__(self) -> None:
        self.records: dict[str, ApprovalRecord] = {}

    def open(self, record: ApprovalRecord) -> ApprovalRecord:
        current = self.records.get(record.approval_id)
        if current is None:
            self.records[record.approval_id] = record
            return record
        if (current.execution_id, current.stage_name) != (record.execution_id, record.stage_name):
            raise ApprovalIdConflict(record.approval_id)
        if current.status in ("approved", "rejected"):
            self.records[record.approval_id] = current.model_copy(update={"task_token": record.task_token})
        else:
            self.records[record.approval_id] = current.model_copy(
                update={
                    "task_token": record.task_token,
                    "status": "pending",
                    "expires_at": record.expires_at,
                    "approver": None,
                    "reason": None,
                    "decided_at": None,
                }
            )
        return self.records[record.approval_id]

    def get(self, approval_id: str) -> ApprovalRecord | None:
        return self.records.get(approval_id)

    def decide(
        self, approval_id: str, status: DecidedStatus, approver: str, reason: str | None, now: datetime
    ) -> ApprovalRecord | None:
        current = self.records.get(approval_id)
        if current is None or current.status != "pending" or current.expires_at <= now:
            return None
        update = {"status": status, "approver": approver, "reason": reason, "decided_at": now}
        decided = current.model_copy(update=update)
        self.records[approval_id] = decided
        return decided

    def expire(self, approval_id: str, task_token: str) -> bool:
        current = self.records.get(approval_id)
        if current is None or current.task_token.get_secret_value() != task_token:
            return False
        self.records[approval_id] = current.model_copy(update={"status": "expired"})
        return True
