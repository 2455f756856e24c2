"""In-memory fakes of every port, for unit tests (no network, no moto). One module, so each port has one fake."""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from patchpilot.integrations.compliance_ports import ComplianceStore, FleetComplianceSource, ReportStore
from patchpilot.integrations.ports import (
    AlarmMonitor,
    AlertPublisher,
    ApprovalStore,
    BisectionLedger,
    CanaryTags,
    ChangeCalendar,
    ChatClaim,
    ChatLedger,
    ChatPoster,
    Clock,
    CommandDirectory,
    ExclusionLedger,
    ExecutionCallbacks,
    FirstScanLedger,
    InstallTracker,
    InstanceInventory,
    InteractionGuard,
    PatchBaselines,
    PatchComplianceReader,
    PatchInventory,
    PatchScanner,
    PatchSetStore,
    RejectedInputStore,
    RolloutStarter,
    RunExecutions,
    RunLedger,
    SnapshotLedger,
    SnapshotRefused,
    VolumeSnapshots,
)
from patchpilot.models.alerts import Alert, AlertKind
from patchpilot.models.approval import ApprovalRecord, DecidedStatus
from patchpilot.models.bisection import BisectionRecord, Suspect
from patchpilot.models.chat import ChatSecret, PostResult
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
from patchpilot.models.exceptions import ApprovalIdConflict, InstanceNotManaged, TransientAwsError
from patchpilot.models.exclusion import ExclusionRecord, PatchEvidence, RetiredExclusion
from patchpilot.models.patches import InstancePatch, InstancePatchSummary
from patchpilot.models.records import (
    BatchRecorded,
    CalendarState,
    CommandInfo,
    ExecutionAttempt,
    InstanceResult,
    InvocationInfo,
    ManagedInstance,
    TrackedCommand,
)
from patchpilot.models.rollout import RunContext, StagePlan
from patchpilot.models.snapshots import RollbackRecord, RunExecution, SnapshotSet, VolumeSnapshot


# -- install tracking ----------------------------------------------------------------------------------------------
class InMemoryInstallTracker(InstallTracker):
    def __init__(self) -> None:
        self.commands: dict[str, TrackedCommand] = {}
        self.results: dict[tuple[str, str], InstanceResult] = {}
        self.counter_writes = 0

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

    def record_results(self, command_id: str, results: list[InstanceResult]) -> BatchRecorded:
        command = self.commands.get(command_id)
        if command is None or command.foreign:
            return BatchRecorded(unknown_command=True)
        new = {r.instance_id: r for r in results if (command_id, r.instance_id) not in self.results}
        for result in new.values():
            self.results[(command_id, result.instance_id)] = result
        failed = sum(not r.succeeded for r in new.values())
        self.commands[command_id] = command.model_copy(
            update={"reported": command.reported + len(new), "failed": command.failed + failed}
        )
        self.counter_writes += 1
        return BatchRecorded(recorded=len(new), duplicates=len(results) - len(new), failed_recorded=failed)

    def register_wait(
        self,
        command_id: str,
        run_id: str,
        stage_name: str,
        expected: int,
        task_token: str,
        heartbeat_interval_seconds: int = 60,
        phase: str | None = None,
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
                "heartbeat_interval_seconds": heartbeat_interval_seconds,
                "phase": phase,
                "resumed": False,
                "foreign": False,
                "resume_lease_until": None,
                "last_heartbeat_at": None,
            }
        )
        return self.commands[command_id]

    def claim_resume(self, command_id: str, task_token: str, now: float, lease_seconds: int) -> bool:
        command = self.commands[command_id]
        lease = command.resume_lease_until
        if command.task_token != task_token or command.resumed or (lease is not None and lease >= now):
            return False
        self.commands[command_id] = command.model_copy(update={"resume_lease_until": now + lease_seconds})
        return True

    def mark_resumed(self, command_id: str, task_token: str) -> None:
        command = self.commands[command_id]
        if command.task_token == task_token:
            self.commands[command_id] = command.model_copy(update={"resumed": True, "resume_lease_until": None})

    def release_resume(self, command_id: str, task_token: str) -> None:
        command = self.commands[command_id]
        if command.task_token == task_token and not command.resumed:
            self.commands[command_id] = command.model_copy(update={"resume_lease_until": None})

    def claim_heartbeat(self, command_id: str, task_token: str, now: float, interval_seconds: int) -> bool:
        command = self.commands[command_id]
        last = command.last_heartbeat_at
        if command.task_token != task_token or command.resumed or (last is not None and last > now - interval_seconds):
            return False
        self.commands[command_id] = command.model_copy(update={"last_heartbeat_at": now})
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

    def add_command(
        self,
        command_id: str,
        comment: str,
        status: str = "InProgress",
        target_count: int = 0,
        expires_after: datetime | None = None,
    ) -> None:
        self.commands[command_id] = CommandInfo(
            command_id=command_id,
            document_name="AWS-RunPatchBaseline",
            comment=comment,
            status=status,
            target_count=target_count,
            expires_after=expires_after,
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


class FakeCanaryTags(CanaryTags):
    """Tags instances of a FakeCommandDirectory: a tagged instance is listed under (key, value) at once."""

    def __init__(self, directory: FakeCommandDirectory) -> None:
        self.directory = directory
        self.tagged: list[tuple[list[str], str, str]] = []
        self.untagged: list[tuple[list[str], str]] = []

    def _known(self) -> dict[str, ManagedInstance]:
        return {i.instance_id: i for listed in self.directory.fleet.values() for i in listed}

    def tag(self, instance_ids: list[str], key: str, value: str) -> None:
        self.tagged.append((list(instance_ids), key, value))
        self.untag_quietly(instance_ids, key)
        known = self._known()
        listed = self.directory.fleet.setdefault((key, value), [])
        listed.extend(known[i] for i in instance_ids)

    def untag(self, instance_ids: list[str], key: str) -> None:
        self.untagged.append((list(instance_ids), key))
        self.untag_quietly(instance_ids, key)

    def untag_quietly(self, instance_ids: list[str], key: str) -> None:
        for (tag_key, value), listed in list(self.directory.fleet.items()):
            if tag_key == key:
                self.directory.fleet[(tag_key, value)] = [i for i in listed if i.instance_id not in instance_ids]


class RecordingCallbacks(ExecutionCallbacks):
    def __init__(self, token_valid: bool = True) -> None:
        self.resumed: list[tuple[str, dict[str, object]]] = []
        self.heartbeats: list[str] = []
        self.failed: list[tuple[str, str, str]] = []
        self.token_valid = token_valid
        self.resume_failures_left = 0  # SendTaskSuccess calls that fail (throttled) before one succeeds

    def resume(self, task_token: str, output: BaseModel) -> bool:
        if self.resume_failures_left:
            self.resume_failures_left -= 1
            raise TransientAwsError("send_task_success: ThrottlingException (injected)")
        self.resumed.append((task_token, output.model_dump()))
        return self.token_valid

    def heartbeat(self, task_token: str) -> bool:
        self.heartbeats.append(task_token)
        return self.token_valid

    def fail(self, task_token: str, error: str, cause: str) -> bool:
        self.failed.append((task_token, error, cause))
        return self.token_valid


# -- approvals and alerts ------------------------------------------------------------------------------------------
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

    def pending(self) -> list[ApprovalRecord]:
        waiting = [record for record in self.records.values() if record.status == "pending"]
        return sorted(waiting, key=lambda record: record.expires_at)


# -- auto-exclusion ------------------------------------------------------------------------------------------------
class FakePatchInventory(PatchInventory):
    """Serves every row it holds (the logic itself ignores rows older than the run)."""

    def __init__(self, patches: dict[str, list[InstancePatch]]) -> None:
        self.patches = patches
        self.calls: list[tuple[str, datetime]] = []

    def installed_during(self, instance_id: str, since: datetime) -> list[InstancePatch]:
        self.calls.append((instance_id, since))
        return list(self.patches.get(instance_id, []))


class InMemoryPatchBaselines(PatchBaselines):
    """Baselines by (patch group, OS); `concurrent_writes` entries each clobber one of our next writes.

    A concurrent writer read the list before our write and writes its own copy (plus its own id) right after it:
    our ids vanish, its id appears - exactly the lost update a plain read-modify-write suffers.
    """

    def __init__(
        self,
        groups: dict[tuple[str, str], str],
        rejected: dict[str, list[str]] | None = None,
        concurrent_writes: list[str] | None = None,
    ) -> None:
        self.groups = groups
        self.rejected: dict[str, list[str]] = {baseline_id: [] for baseline_id in groups.values()} | (rejected or {})
        self.concurrent_writes = list(concurrent_writes or [])
        self.writes: list[tuple[str, list[str]]] = []
        self.pauses: list[int] = []

    def baseline_for(self, patch_group: str, operating_system: str) -> str:
        return self.groups[(patch_group, operating_system)]

    def rejected_patches(self, baseline_id: str) -> list[str]:
        return list(self.rejected[baseline_id])

    def replace_rejected_patches(self, baseline_id: str, patch_ids: list[str]) -> None:
        before = list(self.rejected[baseline_id])
        self.writes.append((baseline_id, list(patch_ids)))
        self.rejected[baseline_id] = list(patch_ids)
        if self.concurrent_writes:
            theirs = self.concurrent_writes.pop(0)
            self.rejected[baseline_id] = [*before, theirs]

    def pause_before_retry(self, attempt: int) -> None:
        self.pauses.append(attempt)


class InMemoryExclusionLedger(ExclusionLedger):
    def __init__(self) -> None:
        self.records: dict[tuple[str, str, str], ExclusionRecord] = {}
        self.retired: list[RetiredExclusion] = []

    def record(self, record: ExclusionRecord) -> bool:
        key = (record.run_id, record.stage_name, record.patch_id)
        if key in self.records:
            return False
        self.records[key] = record
        return True

    def exclusions_of(self, run_id: str) -> list[ExclusionRecord]:
        return [record for (run, _, _), record in sorted(self.records.items()) if run == run_id]

    def excluded_patches(self, run_id: str) -> set[str]:
        return {record.patch_id for record in self.exclusions_of(run_id)}

    def retire(self, record: ExclusionRecord, retired_by: str, retired_at: datetime) -> bool:
        if self.records.pop((record.run_id, record.stage_name, record.patch_id), None) is None:
            return False
        self.retired.append(RetiredExclusion(record=record, retired_by=retired_by, retired_at=retired_at))
        return True

    def retired_of(self, run_id: str) -> list[RetiredExclusion]:
        return [retired for retired in self.retired if retired.record.run_id == run_id]

    def all_exclusions(self) -> tuple[list[ExclusionRecord], list[RetiredExclusion]]:
        def order(record: ExclusionRecord) -> tuple[str, str, str]:
            return record.run_id, record.stage_name, record.patch_id

        active = sorted(self.records.values(), key=order)
        return active, sorted(self.retired, key=lambda retired: (order(retired.record), retired.retired_at))


# -- auto-registration ---------------------------------------------------------------------------------------------
class InMemoryInventory(InstanceInventory):
    def __init__(self, tags: dict[str, dict[str, str]]) -> None:
        self.tags = tags
        self.writes: list[tuple[str, str, str]] = []

    def tag_value(self, instance_id: str, key: str) -> str | None:
        if instance_id not in self.tags:
            raise LookupError(instance_id)
        return self.tags[instance_id].get(key)

    def set_tag(self, instance_id: str, key: str, value: str) -> None:
        self.writes.append((instance_id, key, value))
        self.tags[instance_id][key] = value


class RecordingScanner(PatchScanner):
    def __init__(self, unmanaged: set[str] | None = None) -> None:
        self.unmanaged = unmanaged or set()
        self.scans: list[str] = []

    def start_scan(self, instance_id: str, comment: str) -> str:
        if instance_id in self.unmanaged:
            raise InstanceNotManaged(instance_id)
        self.scans.append(instance_id)
        return f"command-{len(self.scans)}"


class InMemoryFirstScanLedger(FirstScanLedger):
    def __init__(self) -> None:
        self.claims: dict[str, dict[str, str]] = {}

    def claim(self, instance_id: str, event_id: str) -> bool:
        claim = self.claims.get(instance_id)
        if claim is not None and (claim["event_id"] != event_id or "command_id" in claim):
            return False
        self.claims[instance_id] = {"event_id": event_id}
        return True

    def record_command(self, instance_id: str, command_id: str) -> None:
        self.claims[instance_id]["command_id"] = command_id

    def release(self, instance_id: str, event_id: str) -> None:
        claim = self.claims.get(instance_id)
        if claim and claim["event_id"] == event_id and "command_id" not in claim:
            del self.claims[instance_id]


# -- rollout -------------------------------------------------------------------------------------------------------
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
        self.emergency_runs: list[str] = []
        self.install_lists: dict[str, list[str]] = {}  # URL -> the patch ids it names

    def freeze(self, run_id: str, stage_name: str, patches: list[InstancePatch]) -> int:
        self.frozen[run_id] = patches
        return len(patches)

    def install_list_for(self, run_id: str, stage: StagePlan) -> str | None:
        return f"s3://artifacts/runs/{run_id}/install-{stage.name}.yaml" if run_id in self.frozen else None

    def write_install_list(self, run_id: str, name: str, patches: list[Suspect]) -> str:
        url = f"s3://artifacts/runs/{run_id}/{name}.yaml"
        self.install_lists[url] = [patch.patch_id for patch in patches]
        return url

    def emergency_baseline_override(self, run: RunContext) -> str:
        self.emergency_runs.append(run.run_id)
        return f"s3://artifacts/runs/{run.run_id}/emergency-baseline-override.json"


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


# -- sample records ------------------------------------------------------------------------------------------------
def sample_exclusion(
    patch_id: str,
    stage_name: str = "staging",
    run_id: str = "2026-12",
    baseline_ids: tuple[str, ...] = ("pb-0123456789abcdef0",),
    decided_at: datetime = datetime(2026, 12, 8, 20, 0, tzinfo=UTC),
) -> ExclusionRecord:
    """An exclusion of one patch with plausible evidence (9 of 10 unhealthy instances had it, no healthy one)."""
    evidence = PatchEvidence(
        patch_id=patch_id,
        title=f"{patch_id} title",
        failing_with=9,
        failing_total=10,
        healthy_with=0,
        healthy_total=10,
        failed_installs=2,
        operating_systems=["AMAZON_LINUX_2023"],
    )
    return ExclusionRecord(
        run_id=run_id,
        stage_name=stage_name,
        evidence=evidence,
        baseline_ids=list(baseline_ids),
        failing_instances=["i-0123456789abcdef0"],
        decided_at=decided_at,
    )


def sample_alert(**changes: Any) -> Alert:
    """A patch_excluded alert; `changes` override any field."""
    values: dict[str, Any] = {
        "kind": "patch_excluded",
        "severity": "warning",
        "run_id": "2026-12",
        "stage_name": "staging",
        "title": "Patch excluded on staging",
        "summary": "KB5031234 failed on 3 of 4 instances that installed it; none of the healthy ones installed it",
        "details": {"patch_id": "KB5031234", "failing": ["i-1", "i-2", "i-3"], "healthy": 12},
        "occurred_at": datetime(2026, 12, 10, 9, 0, tzinfo=UTC),
    }
    return Alert.model_validate(values | changes)


class InMemoryRunLedger(RunLedger):
    def __init__(self) -> None:
        self.passed: dict[str, list[str]] = {}

    def record_stage_passed(self, run_id: str, stage_name: str) -> None:
        stages = self.passed.setdefault(run_id, [])
        if stage_name not in stages:
            stages.append(stage_name)

    def passed_stages(self, run_id: str) -> list[str]:
        return list(self.passed.get(run_id, []))


# -- chat ------------------------------------------------------------------------------------------------------------
NOW = datetime(2026, 12, 8, 20, 0, tzinfo=UTC)
HEALTH_DOCUMENT = "patchpilot-HealthCheckDocument-1A2B3C4D5E6F"  # the stack's health-check document, as named by CFN
EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:patchpilot-rollout:cycle-2026-12"


# -- install windows -----------------------------------------------------------------------------------------------
class FixedClock(Clock):
    def __init__(self, now: datetime) -> None:
        self.moment = now

    def now(self) -> datetime:
        return self.moment

    def wait_timestamp(self, moment: datetime) -> datetime:
        return moment


class FakeCalendar(ChangeCalendar):
    def __init__(self, closed: list[tuple[datetime, datetime]] | None = None) -> None:
        self.closed = closed or []
        self.asked: list[tuple[str, datetime]] = []

    def state(self, calendar: str, at: datetime) -> CalendarState:
        self.asked.append((calendar, at))
        is_open = not any(start <= at < end for start, end in self.closed)
        later = [moment for period in self.closed for moment in period if moment > at]
        return CalendarState(open=is_open, next_transition=min(later) if later else None)


class ScriptedPoster(ChatPoster):
    """Answers each post with the next scripted result (then 200); records every (url, payload)."""

    def __init__(self, results: list[PostResult] | None = None) -> None:
        self.results = list(results or [])
        self.posts: list[tuple[str, dict[str, Any]]] = []

    def post(self, url: str, payload: dict[str, Any]) -> PostResult:
        self.posts.append((url, payload))
        return self.results.pop(0) if self.results else PostResult(status=200)

    def urls(self) -> list[str]:
        return [url for url, _ in self.posts]


class InMemoryChatLedger(ChatLedger):
    def __init__(self) -> None:
        self.status: dict[tuple[str, str], str] = {}
        self.held: dict[tuple[str, str], dict[str, str]] = {}

    def claim(self, alert_id: str, channel: str) -> ChatClaim:
        current = self.status.get((alert_id, channel))
        if current == "posted":
            return "posted"
        if current == "posting":
            return "busy"
        self.status[(alert_id, channel)] = "posting"
        return "claimed"

    def mark_posted(self, alert_id: str, channel: str) -> None:
        self.status[(alert_id, channel)] = "posted"

    def release(self, alert_id: str, channel: str) -> None:
        if self.status.get((alert_id, channel)) == "posting":
            del self.status[(alert_id, channel)]

    def hold_for_digest(self, run_id: str, stage_name: str, alert_id: str, line: str) -> None:
        self.held.setdefault((run_id, stage_name), {})[alert_id] = line

    def digest(self, run_id: str, stage_name: str) -> list[str]:
        return list(self.held.get((run_id, stage_name), {}).values())


class InMemoryInteractionGuard(InteractionGuard):
    def __init__(self) -> None:
        self.seen: set[str] = set()

    def first_use(self, signature: str, expires_at: datetime) -> bool:
        if signature in self.seen:
            return False
        self.seen.add(signature)
        return True


class RecordingRejectedInputs(RejectedInputStore):
    def __init__(self) -> None:
        self.kept: list[tuple[dict[str, Any], str]] = []

    def keep(self, body: dict[str, Any], reason: str) -> None:
        self.kept.append((body, reason))


# -- compliance and reports ---------------------------------------------------------------------------------------
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
        self.node_writes = 0

    def nodes(self) -> list[NodeCompliance]:
        return [row for row, _ in self.rows.values()]

    def node(self, node_id: str) -> tuple[NodeCompliance, str | None] | None:
        return self.rows.get(node_id)

    def put_node(self, node: NodeCompliance, event_id: str | None) -> bool:
        self.node_writes += 1
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


def chat_secret(**extra: Any) -> ChatSecret:
    """Slack #patching (all), Slack #oncall (critical only), Teams #patching (all)."""
    return ChatSecret.model_validate(
        {
            "channels": [
                {"name": "patching", "platform": "slack", "webhook_url": "https://hooks.slack.com/services/T/B/p"},
                {
                    "name": "oncall",
                    "platform": "slack",
                    "webhook_url": "https://hooks.slack.com/services/T/B/o",
                    "severities": ["critical"],
                },
                {"name": "patching", "platform": "teams", "webhook_url": "https://prod.logic.azure.com/wf?sig=t"},
            ],
            "slack_signing_secret": "8f742231b10e8888abcd99yyyzzz85a5",
            **extra,
        }
    )


def alert(kind: AlertKind = "stage_failed", **changes: Any) -> Alert:
    """An alert of `kind` with plausible evidence."""
    fields: dict[str, Any] = {
        "kind": kind,
        "severity": "critical" if kind in ("stage_failed", "rollout_failed", "events_dead_lettered") else "info",
        "run_id": "2026-12",
        "stage_name": None if kind in ("cycle_started", "cycle_finished", "rollout_failed") else "staging",
        "title": f"{kind.replace('_', ' ')} for run 2026-12",
        "summary": f"Something about {kind} happened.",
        "details": {"reasons": ["2 of 10 instances failed the install"], "unhealthy_sample": ["i-0abc", "i-0def"]},
        "execution_id": EXECUTION,
        "occurred_at": NOW,
    }
    if kind == "approval_requested":
        fields |= {"approval_id": "k7m2x9qa", "severity": "warning", "stage_name": "prod-1"}
    return Alert.model_validate({**fields, **changes})


class FakeVolumeSnapshots(VolumeSnapshots):
    """EBS snapshots in memory: each instance has `volumes` (root first); `refuse` makes EC2 refuse an instance;
    `gone` instances are unknown to EC2 (terminated), absent from `root_volumes`; `describe_batch` ids per call."""

    def __init__(self, clock: Clock, volumes_per_instance: int = 2) -> None:
        self.clock = clock
        self.volumes_per_instance = volumes_per_instance
        self.snapshots: dict[str, tuple[datetime, dict[str, str]]] = {}
        self.refuse: dict[str, tuple[str, str]] = {}
        self.tasks: dict[str, tuple[str, str]] = {}  # task id -> (instance, snapshot)
        self.tokens: dict[str, str] = {}
        self.calls: list[str] = []
        self.gone: set[str] = set()
        self.describe_batch = 1000

    def add(self, snapshot_id: str, started: datetime, tags: dict[str, str]) -> None:
        self.snapshots[snapshot_id] = (started, tags)

    @staticmethod
    def volume_of(instance_id: str, index: int) -> str:
        return f"vol-{instance_id.removeprefix('i-')[:8]}{index:09x}"

    def root_volumes(self, instance_ids: Sequence[str]) -> dict[str, str | None]:
        roots: dict[str, str | None] = {}
        for start in range(0, len(instance_ids), self.describe_batch):
            batch = instance_ids[start : start + self.describe_batch]
            self.calls.append(f"DescribeInstances {len(batch)}")
            roots.update({i: self.volume_of(i, 0) for i in batch if i not in self.gone})
        return roots

    def snapshot_instance(
        self, instance_id: str, root_volume: str | None, tags: dict[str, str], description: str
    ) -> list[VolumeSnapshot]:
        self.calls.append(f"CreateSnapshots {instance_id}")
        if instance_id in self.refuse:
            raise SnapshotRefused(*self.refuse[instance_id])
        taken = []
        for index in range(self.volumes_per_instance):
            snapshot_id = f"snap-{len(self.snapshots) + 1:017x}"
            self.snapshots[snapshot_id] = (self.clock.now(), dict(tags))
            volume = self.volume_of(instance_id, index)
            taken.append(VolumeSnapshot(snapshot_id=snapshot_id, volume_id=volume, root=volume == root_volume))
        return taken

    def snapshots_tagged(self, tags: dict[str, str], started_before: datetime) -> dict[str, dict[str, str]]:
        return {
            snapshot_id: dict(own)
            for snapshot_id, (started, own) in self.snapshots.items()
            if started < started_before and all(own.get(k) == v for k, v in tags.items())
        }

    def delete_snapshot(self, snapshot_id: str) -> bool:
        self.calls.append(f"DeleteSnapshot {snapshot_id}")
        return self.snapshots.pop(snapshot_id, None) is not None

    def replace_root_volume(self, instance_id: str, snapshot_id: str, client_token: str, tags: dict[str, str]) -> str:
        self.calls.append(f"CreateReplaceRootVolumeTask {instance_id} {snapshot_id}")
        if client_token not in self.tokens:
            self.tokens[client_token] = f"replacevol-{len(self.tasks) + 1:017x}"
            self.tasks[self.tokens[client_token]] = (instance_id, snapshot_id)
        return self.tokens[client_token]

    def replace_root_volume_state(self, task_id: str) -> str:
        return "succeeded" if task_id in self.tasks else "unknown"


class FakeSnapshotLedger(SnapshotLedger):
    def __init__(self) -> None:
        self.sets: dict[tuple[str, str, str], SnapshotSet] = {}
        self.rollbacks: dict[tuple[str, str, str], RollbackRecord] = {}

    def record_set(self, snapshot_set: SnapshotSet) -> bool:
        key = (snapshot_set.run_id, snapshot_set.stage_name, snapshot_set.instance_id)
        if key in self.sets:
            return False
        self.sets[key] = snapshot_set
        return True

    def sets_of(self, run_id: str) -> list[SnapshotSet]:
        return [s for (run, _, _), s in self.sets.items() if run == run_id]

    def record_rollback(self, record: RollbackRecord) -> None:
        self.rollbacks[(record.run_id, record.instance_id, record.task_id)] = record

    def rollbacks_of(self, run_id: str) -> list[RollbackRecord]:
        return sorted((r for r in self.rollbacks.values() if r.run_id == run_id), key=lambda r: r.requested_at)


class InMemoryBisectionLedger(BisectionLedger):
    def __init__(self) -> None:
        self.records: dict[tuple[str, str, int], BisectionRecord] = {}
        self.saves = 0

    def bisection(self, run_id: str, stage_name: str, attempt: int) -> BisectionRecord | None:
        return self.records.get((run_id, stage_name, attempt))

    def save(self, record: BisectionRecord) -> None:
        self.saves += 1
        self.records[(record.run_id, record.stage_name, record.attempt)] = record


class FakeRunExecutions(RunExecutions):
    def __init__(self, executions: dict[str, list[RunExecution]] | None = None) -> None:
        self.executions = executions or {}

    def executions_of(self, run_id: str) -> list[RunExecution]:
        return list(self.executions.get(run_id, []))
