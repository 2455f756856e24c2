"""Ports: what the logic needs from the outside world. Adapters implement them; unit tests use in-memory fakes."""

from abc import ABC, abstractmethod
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel

from patchpilot.models.exceptions import BaselineUpdateConflict, RejectedPatchListFull
from patchpilot.models.exclusion import ExclusionRecord
from patchpilot.models.patches import InstancePatch, InstancePatchSummary
from patchpilot.models.records import (
    CalendarState,
    CommandInfo,
    InstanceResult,
    InvocationInfo,
    ManagedInstance,
    TrackedCommand,
)
from patchpilot.models.rollout import RunContext, StagePlan


class RecordOutcome(StrEnum):
    """What happened when a terminal instance result was offered to the tracker."""

    RECORDED = "recorded"
    DUPLICATE = "duplicate"
    UNKNOWN_COMMAND = "unknown_command"


class InstallTracker(ABC):
    """Durable tracking of install commands and their per-instance results."""

    @abstractmethod
    def track_command(self, command_id: str, run_id: str, stage_name: str) -> TrackedCommand:
        """Create the tracking row if it does not exist yet; return the current row."""

    @abstractmethod
    def mark_foreign(self, command_id: str) -> None:
        """Remember (for a while) that a command was not started by PatchPilot."""

    @abstractmethod
    def get_command(self, command_id: str) -> TrackedCommand | None:
        """Read a command's tracking row (strongly consistent)."""

    @abstractmethod
    def record_result(self, command_id: str, instance_id: str, status: str, succeeded: bool) -> RecordOutcome:
        """Record one instance's terminal result and count it, atomically and at most once."""

    @abstractmethod
    def register_wait(
        self, command_id: str, run_id: str, stage_name: str, expected: int, task_token: str
    ) -> TrackedCommand:
        """Store the callback token and the expected instance count; return the row after the update."""

    @abstractmethod
    def claim_resume(self, command_id: str, task_token: str) -> bool:
        """Claim the right to resume the waiting execution; True for exactly one caller per token."""

    @abstractmethod
    def list_results(self, command_id: str) -> list[InstanceResult]:
        """All recorded terminal results of a command."""


class CommandDirectory(ABC):
    """Read access to SSM Run Command and the managed fleet."""

    @abstractmethod
    def describe_command(self, command_id: str) -> CommandInfo | None:
        """A command's document, comment and overall status, or None if SSM does not know it."""

    @abstractmethod
    def list_invocations(self, command_id: str) -> list[InvocationInfo]:
        """Every per-instance invocation of a command, with its current status."""

    @abstractmethod
    def count_managed_instances(self, tag_key: str, tag_value: str) -> int:
        """How many SSM managed instances carry the tag."""

    @abstractmethod
    def managed_instances(self, tag_key: str, tag_value: str) -> list[ManagedInstance]:
        """The SSM managed instances that carry the tag, with ping status and platform."""


class ExecutionCallbacks(ABC):
    """Step Functions task-token callbacks."""

    @abstractmethod
    def resume(self, task_token: str, output: BaseModel) -> bool:
        """Complete the waiting task with `output`; False when the token is no longer valid."""

    @abstractmethod
    def heartbeat(self, task_token: str) -> bool:
        """Tell the waiting task that progress was made; False when the token is no longer valid."""

    @abstractmethod
    def fail(self, task_token: str, error: str, cause: str) -> bool:
        """Fail the waiting task with `error` (the name the state machine catches); False when the token closed."""


class InstanceInventory(ABC):
    """EC2 instance tags (the patch group is a tag)."""

    @abstractmethod
    def tag_value(self, instance_id: str, key: str) -> str | None:
        """The instance's value of tag `key`, or None when it has no such tag.

        Raises ``LookupError`` when the instance does not exist (any more).
        """

    @abstractmethod
    def set_tag(self, instance_id: str, key: str, value: str) -> None:
        """Tag the instance (callers check first: EC2 overwrites an existing value)."""


class PatchScanner(ABC):
    """Starts AWS-RunPatchBaseline scans."""

    @abstractmethod
    def start_scan(self, instance_id: str, comment: str) -> str:
        """Send a Scan to one instance; return the command id. Raises InstanceNotManaged if SSM does not manage it."""


class FirstScanLedger(ABC):
    """Remembers that an instance's first scan was claimed, so a duplicate event never sends a second one."""

    @abstractmethod
    def claim(self, instance_id: str, event_id: str) -> bool:
        """Claim the first scan of an instance; True for exactly one caller."""

    @abstractmethod
    def record_command(self, instance_id: str, command_id: str) -> None:
        """Store the scan's command id on the claim."""

    @abstractmethod
    def release(self, instance_id: str, event_id: str) -> None:
        """Give up a claim made by `event_id` (the scan could not be sent), so a retry can claim again."""


class PatchSetStore(ABC):
    """The patch lists a run hands to AWS-RunPatchBaseline (S3) and the frozen patch set of a run (DynamoDB)."""

    @abstractmethod
    def freeze(self, run_id: str, stage_name: str, patches: list[InstancePatch]) -> int:
        """Record the patches a test stage installed as the run's frozen set (replacing an earlier one)."""

    @abstractmethod
    def install_list_for(self, run_id: str, stage: StagePlan) -> str | None:
        """S3 URL of the InstallOverrideList for a production stage (frozen set filtered for it), None if unfrozen."""

    @abstractmethod
    def emergency_baseline_override(self, run: RunContext) -> str:
        """S3 URL of a BaselineOverride that approves exactly the emergency run's patches and CVEs."""

    @abstractmethod
    def excluded_patches(self, run_id: str) -> set[str]:
        """Patch ids the run excluded (they never enter the frozen set)."""


class AlarmMonitor(ABC):
    """CloudWatch alarms that speak for a stage's health."""

    @abstractmethod
    def alarms_in_alarm(self, name_prefix: str) -> list[str]:
        """Names of the alarms whose name starts with `name_prefix` and whose state is ALARM."""


class PatchComplianceReader(ABC):
    """Per-instance patch results of the last scan or install."""

    @abstractmethod
    def summaries(self, instance_ids: list[str]) -> list[InstancePatchSummary]:
        """Patch state counts per instance (DescribeInstancePatchStates, 50 instances a call)."""


class Clock(ABC):
    """The time the rollout's decisions use, and how a Step Functions Wait reaches a moment of it."""

    @abstractmethod
    def now(self) -> datetime:
        """The current time (UTC)."""

    @abstractmethod
    def wait_timestamp(self, moment: datetime) -> datetime:
        """The wall-clock time a Wait state's `TimestampPath` must name to end when this clock reads `moment`."""


class ChangeCalendar(ABC):
    """SSM Change Calendar (GetCalendarState)."""

    @abstractmethod
    def state(self, calendar: str, at: datetime) -> CalendarState:
        """Whether the calendar is OPEN at `at`, and when that changes next."""


class RolloutStarter(ABC):
    """Starts rollout executions under idempotent names."""

    @abstractmethod
    def start(self, execution_name: str, request: BaseModel) -> tuple[str, bool]:
        """Start an execution; returns (execution ARN, whether this call started it)."""


# Approval gate and alerts. Imported here, at the end, so the block can be appended without touching the header.
from patchpilot.models.alerts import Alert  # noqa: E402
from patchpilot.models.approval import ApprovalRecord, DecidedStatus  # noqa: E402


class AlertPublisher(ABC):
    """Publishes structured alerts (an SNS topic chat integrations subscribe to)."""

    @abstractmethod
    def publish(self, alert: Alert) -> str:
        """Publish one alert; return the message id."""


class ApprovalStore(ABC):
    """Durable approvals keyed by their short id (the token stays in the store, never in an alert)."""

    @abstractmethod
    def open(self, record: ApprovalRecord) -> ApprovalRecord:
        """Store a pending approval, idempotently; return the stored record.

        A new id is stored as given. The same execution and stage asking again (a retried task, with a fresh token)
        refresh the token, and, unless the approval was already decided, the status (pending) and the deadline.
        Raises ``ApprovalIdConflict`` when the id belongs to another execution or stage.
        """

    @abstractmethod
    def get(self, approval_id: str) -> ApprovalRecord | None:
        """Read an approval (strongly consistent), or None when no approval has the id."""

    @abstractmethod
    def decide(
        self, approval_id: str, status: DecidedStatus, approver: str, reason: str | None, now: datetime
    ) -> ApprovalRecord | None:
        """Move a pending approval whose deadline is after `now` to `status`, atomically; None when it is not."""

    @abstractmethod
    def expire(self, approval_id: str, task_token: str) -> bool:
        """Mark the approval expired if it still holds `task_token`; False when a retried request replaced it."""


class PatchInventory(ABC):
    """What Patch Manager reports about the patches of one instance (DescribeInstancePatches)."""

    @abstractmethod
    def installed_during(self, instance_id: str, since: datetime) -> list[InstancePatch]:
        """Patches Installed, InstalledPendingReboot or Failed on the instance at or after `since`.

        Failed rows without an install time are included (SSM does not always time a failed install).
        """


MAX_REJECTED_PATCHES = 50


class PatchBaselines(ABC):
    """Patch baselines: which one a patch group uses per OS, and their RejectedPatches lists.

    ``reject_patches`` is the one way PatchPilot changes RejectedPatches. UpdatePatchBaseline replaces the whole list
    and has no condition, so the change is a read-modify-write as a set union: read the list, append the missing ids
    (existing entries are never dropped), write it back with ``RejectedPatchesAction`` BLOCK, then read again and
    verify every intended id is present. A concurrent writer that wrote an older copy of the list in between removed
    ours: merge again, at most ``max_merge_attempts`` writes. Adapters implement the read, the write and the pause.
    """

    max_merge_attempts: int = 4

    @abstractmethod
    def baseline_for(self, patch_group: str, operating_system: str) -> str:
        """The id of the baseline the patch group uses for the OS (an AWS-managed default is an ARN)."""

    @abstractmethod
    def rejected_patches(self, baseline_id: str) -> list[str]:
        """The baseline's current RejectedPatches (a fresh read)."""

    @abstractmethod
    def replace_rejected_patches(self, baseline_id: str, patch_ids: list[str]) -> None:
        """Write the baseline's whole RejectedPatches list, with RejectedPatchesAction BLOCK."""

    @abstractmethod
    def pause_before_retry(self, attempt: int) -> None:
        """Back off (with jitter) before merging again after a concurrent writer won."""

    def reject_patches(self, baseline_id: str, patch_ids: list[str]) -> list[str]:
        """Add `patch_ids` to the baseline's RejectedPatches as a set union, verified; return the list after it.

        No write happens when every id is already rejected (a duplicate decision has no second effect).
        Raises ``RejectedPatchListFull`` beyond the API's 50 entries and ``BaselineUpdateConflict`` when concurrent
        writers removed the ids again after every attempt.
        """
        wanted = list(dict.fromkeys(patch_ids))
        for attempt in range(self.max_merge_attempts + 1):
            current = self.rejected_patches(baseline_id)
            missing = [patch_id for patch_id in wanted if patch_id not in current]
            if not missing:
                return current
            if attempt == self.max_merge_attempts:
                break
            merged = [*dict.fromkeys(current), *missing]
            if len(merged) > MAX_REJECTED_PATCHES:
                raise RejectedPatchListFull(
                    f"baseline {baseline_id}: rejecting {missing} would make {len(merged)} RejectedPatches "
                    f"(at most {MAX_REJECTED_PATCHES})"
                )
            if attempt:
                self.pause_before_retry(attempt)
            self.replace_rejected_patches(baseline_id, merged)
        raise BaselineUpdateConflict(
            f"baseline {baseline_id}: {missing} still missing from RejectedPatches after "
            f"{self.max_merge_attempts} merge(s); another writer keeps replacing the list"
        )


class ExclusionLedger(ABC):
    """The durable record of every patch a run excluded, with the evidence."""

    @abstractmethod
    def record(self, record: ExclusionRecord) -> bool:
        """Record one excluded patch of a run's stage, at most once; False when it was already recorded."""

    @abstractmethod
    def exclusions_of(self, run_id: str) -> list[ExclusionRecord]:
        """Every exclusion recorded for the run."""
