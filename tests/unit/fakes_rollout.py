"""In-memory fakes of the rollout ports (alarms, patch compliance, patch sets, starter)."""

from datetime import UTC, datetime

from pydantic import BaseModel

from patchpilot.integrations.ports import AlarmMonitor, PatchComplianceReader, PatchSetStore, RolloutStarter, RunLedger
from patchpilot.models.patches import InstancePatch, InstancePatchSummary
from patchpilot.models.records import ExecutionAttempt
from patchpilot.models.rollout import RunContext, StagePlan


class FakeAlarms(AlarmMonitor):
    def __init__(self, in_alarm: dict[str, list[str]] | None = None) -> None:
        self.in_alarm = in_alarm or {}

    def alarms_in_alarm(self, name_prefix: str) -> list[str]:
        return list(self.in_alarm.get(name_prefix, []))


class FakeCompliance(PatchComplianceReader):
    def __init__(self) -> None:
        self.failed: dict[str, int] = {}
        self.installed: dict[str, int] = {}
        self.missing: dict[str, int] = {}

    def summaries(self, instance_ids: list[str]) -> list[InstancePatchSummary]:
        return [
            InstancePatchSummary(
                instance_id=i,
                patch_group="g",
                baseline_id="pb-1",
                operation="Scan",
                operation_end_time=datetime(2026, 12, 8),
                installed=self.installed.get(i, 1),
                installed_other=0,
                installed_pending_reboot=0,
                installed_rejected=0,
                missing=self.missing.get(i, 0),
                failed=self.failed.get(i, 0),
                not_applicable=0,
            )
            for i in instance_ids
        ]


class FakePatchSets(PatchSetStore):
    def __init__(self) -> None:
        self.frozen: dict[str, list[InstancePatch]] = {}
        self.excluded: set[str] = set()
        self.emergency_runs: list[str] = []

    def freeze(self, run_id: str, stage_name: str, patches: list[InstancePatch]) -> int:
        self.frozen[run_id] = patches
        return len(patches)

    def install_list_for(self, run_id: str, stage: StagePlan) -> str | None:
        return f"s3://artifacts/runs/{run_id}/install-{stage.name}.yaml" if run_id in self.frozen else None

    def emergency_baseline_override(self, run: RunContext) -> str:
        self.emergency_runs.append(run.run_id)
        return f"s3://artifacts/runs/{run.run_id}/emergency-baseline-override.json"

    def excluded_patches(self, run_id: str) -> set[str]:
        return set(self.excluded)


class FakeStarter(RolloutStarter):
    def __init__(self) -> None:
        self.executions: dict[str, str] = {}
        self.statuses: dict[str, str] = {}

    def latest_attempt(self, execution_name: str) -> ExecutionAttempt | None:
        names = [n for n in self.executions if n == execution_name or n.startswith(f"{execution_name}-r")]
        if not names:
            return None
        name = max(names, key=lambda n: (len(n), n))
        return ExecutionAttempt(
            name=name,
            arn=f"arn:aws:states:us-east-1:123456789012:execution:rollout:{name}",
            status=self.statuses.get(name, "RUNNING"),
            input=self.executions[name],
            started_at=datetime(2026, 12, 8, 20, 0, tzinfo=UTC),
        )

    def start(self, execution_name: str, request: BaseModel) -> tuple[str, bool]:
        arn = f"arn:aws:states:us-east-1:123456789012:execution:rollout:{execution_name}"
        if execution_name in self.executions:
            return arn, False
        self.executions[execution_name] = request.model_dump_json()
        return arn, True


class InMemoryRunLedger(RunLedger):
    def __init__(self) -> None:
        self.passed: dict[str, list[str]] = {}

    def record_stage_passed(self, run_id: str, stage_name: str) -> None:
        stages = self.passed.setdefault(run_id, [])
        if stage_name not in stages:
            stages.append(stage_name)

    def passed_stages(self, run_id: str) -> list[str]:
        return list(self.passed.get(run_id, []))
