"""Ports: what the logic needs from the outside world. Adapters implement them; unit tests use in-memory fakes."""

from __future__ import annotations

from abc import ABC, abstractmethod
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

from patchpilot.models.exceptions import BaselineUpdateConflict, RejectedPatchListFull
from patchpilot.models.records import InstanceResult

if TYPE_CHECKING:  # annotations only: a handler's cold import builds no model class it does not use
    from collections.abc import Sequence
    from datetime import datetime

    from pydantic import BaseModel

    from patchpilot.models.alerts import Alert
    from patchpilot.models.approval import ApprovalRecord, DecidedStatus
    from patchpilot.models.bisection import BisectionRecord, Suspect
    from patchpilot.models.chat import PostResult
    from patchpilot.models.exclusion import ExclusionRecord, RetiredExclusion
    from patchpilot.models.patches import InstancePatch, InstancePatchSummary
    from patchpilot.models.records import (
        BatchRecorded,
        CalendarState,
        CommandInfo,
        ExecutionAttempt,
        InvocationInfo,
        ManagedInstance,
        TrackedCommand,
    )
    from patchpilot.models.rollout import RunContext, StagePlan
    from patchpilot.models.snapshots import RollbackRecord, RunExecution, SnapshotSet, VolumeSnapshot


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
    def record_results(self, command_id: str, results: list[InstanceResult]) -> BatchRecorded:
        """Record a batch of terminal results of one command: each instance once, counted once.

        One conditional row per instance (a duplicate has no effect) and ONE counter update per batch on the
        command's row, so the command's row is written once per batch, not once per event. The counter never
        counts a row twice; after a crash between rows and counter it may lag (never lead) the rows until the
        batch's redelivery sees its rows as duplicates and recounts.
        """

    def record_result(self, command_id: str, instance_id: str, status: str, succeeded: bool) -> RecordOutcome:
        """Record one instance's terminal result (a batch of one)."""
        outcome = self.record_results(
            command_id, [InstanceResult(instance_id=instance_id, status=status, succeeded=succeeded)]
        )
        if outcome.unknown_command:
            return RecordOutcome.UNKNOWN_COMMAND
        return RecordOutcome.RECORDED if outcome.recorded else RecordOutcome.DUPLICATE

    @abstractmethod
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
        """Store the token, expected count, heartbeat interval and phase (install/scan/health); return the row."""

    @abstractmethod
    def claim_resume(self, command_id: str, task_token: str, now: float, lease_seconds: int) -> bool:
        """Lease the right to resume the waiting execution until ``now + lease_seconds``.

        True for one caller at a time per token while the execution is not marked resumed; a lease that its
        holder never completed (it crashed, or SendTaskSuccess failed) can be claimed again once it expires.
        """

    @abstractmethod
    def mark_resumed(self, command_id: str, task_token: str) -> None:
        """Record that the execution waiting on the token was resumed (or its token closed): no further resume."""

    @abstractmethod
    def release_resume(self, command_id: str, task_token: str) -> None:
        """Give the lease back at once after a failed resume, so that the next event or redelivery retries it."""

    @abstractmethod
    def claim_heartbeat(self, command_id: str, task_token: str, now: float, interval_seconds: int) -> bool:
        """True for at most one caller per interval per token: the one that should send SendTaskHeartbeat."""

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


class CanaryTags(ABC):
    """The canary tag PatchPilot sets on a stage's canary instances (SendCommand then targets them by tag)."""

    @abstractmethod
    def tag(self, instance_ids: list[str], key: str, value: str) -> None:
        """Set the tag on every instance (EC2 instances and hybrid managed nodes alike)."""

    @abstractmethod
    def untag(self, instance_ids: list[str], key: str) -> None:
        """Remove the tag from every instance (an instance without it is left as it is)."""


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
        """Claim the first scan of an instance; True for one event (again for it while no scan is recorded)."""

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
    def write_install_list(self, run_id: str, name: str, patches: list[Suspect]) -> str:
        """Write an InstallOverrideList naming exactly these patches (id and title) for the run: its URL."""

    @abstractmethod
    def emergency_baseline_override(self, run: RunContext) -> str:
        """S3 URL of a BaselineOverride that approves exactly the emergency run's patches and CVEs."""


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
    def latest_attempt(self, execution_name: str) -> ExecutionAttempt | None:
        """The newest attempt of a run: ``name``, else ``name-r2``, ``name-r3``... (None when none exists)."""

    @abstractmethod
    def start(self, execution_name: str, request: BaseModel) -> tuple[str, bool]:
        """Start an execution; returns (execution ARN, whether this call started it)."""


class RunLedger(ABC):
    """What a run has done so far, kept across its attempts (the runs table)."""

    @abstractmethod
    def record_stage_passed(self, run_id: str, stage_name: str) -> None:
        """Remember that a stage of the run passed (idempotent)."""

    @abstractmethod
    def passed_stages(self, run_id: str) -> list[str]:
        """The stages of the run that passed, in any attempt."""


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

    @abstractmethod
    def pending(self) -> list[ApprovalRecord]:
        """Every approval still waiting for an answer, earliest deadline first (an index query, never a scan).

        The index is eventually consistent: an approval decided a moment ago may still be listed; ``get`` is exact.
        """


class PatchInventory(ABC):
    """What Patch Manager reports about the patches of one instance (DescribeInstancePatches)."""

    @abstractmethod
    def installed_during(self, instance_id: str, since: datetime) -> list[InstancePatch]:
        """Patches Installed, InstalledPendingReboot or Failed on the instance at or after `since`.

        Rows without an install time (none, or the epoch) are included with ``installed_time`` None: SSM does not
        always time a failed install, and some operating systems report no InstalledTime at all.
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
        return self._merge(baseline_id, add=list(dict.fromkeys(patch_ids)), drop=[])[0]

    def allow_patches(self, baseline_id: str, patch_ids: list[str]) -> bool:
        """Remove `patch_ids` from the baseline's RejectedPatches as a set difference, verified; True if any was there.

        The same merge as ``reject_patches``: every other entry is kept, the write is verified by a fresh read and
        repeated when a concurrent writer put the ids back. No write happens when none of the ids is rejected.
        Raises ``BaselineUpdateConflict`` when the ids are still rejected after every attempt.
        """
        return self._merge(baseline_id, add=[], drop=list(dict.fromkeys(patch_ids)))[1]

    def _merge(self, baseline_id: str, add: list[str], drop: list[str]) -> tuple[list[str], bool]:
        """Read, merge (add `add`, drop `drop`, keep the rest), write, verify; the list and whether it wrote."""
        wrote = False
        for attempt in range(self.max_merge_attempts + 1):
            current = self.rejected_patches(baseline_id)
            pending = [p for p in add if p not in current] + [p for p in drop if p in current]
            if not pending:
                return current, wrote
            if attempt == self.max_merge_attempts:
                break
            merged = [p for p in dict.fromkeys(current) if p not in drop] + [p for p in add if p not in current]
            if len(merged) > MAX_REJECTED_PATCHES:
                raise RejectedPatchListFull(
                    f"baseline {baseline_id}: rejecting {pending} would make {len(merged)} RejectedPatches "
                    f"(at most {MAX_REJECTED_PATCHES})"
                )
            if attempt:
                self.pause_before_retry(attempt)
            self.replace_rejected_patches(baseline_id, merged)
            wrote = True
        verb = "still missing from" if add else "still in"
        raise BaselineUpdateConflict(
            f"baseline {baseline_id}: {pending} {verb} RejectedPatches after "
            f"{self.max_merge_attempts} merge(s); another writer keeps replacing the list"
        )


class ExclusionLedger(ABC):
    """The durable record of every patch a run excluded, with the evidence."""

    @abstractmethod
    def record(self, record: ExclusionRecord) -> bool:
        """Record one excluded patch of a run's stage, at most once; False when it was already recorded."""

    @abstractmethod
    def exclusions_of(self, run_id: str) -> list[ExclusionRecord]:
        """Every exclusion recorded for the run (active ones: retired exclusions are not listed)."""

    @abstractmethod
    def excluded_patches(self, run_id: str) -> set[str]:
        """Patch ids the run excluded and nobody allowed again (they never enter the frozen set)."""

    @abstractmethod
    def retire(self, record: ExclusionRecord, retired_by: str, retired_at: datetime) -> bool:
        """Retire an active exclusion atomically; False when it is not active (never recorded, or already retired).

        A retired exclusion stops holding the patch back; its evidence is kept with who retired it and when.
        """

    @abstractmethod
    def retired_of(self, run_id: str) -> list[RetiredExclusion]:
        """Every exclusion of the run that an operator retired."""

    @abstractmethod
    def all_exclusions(self) -> tuple[list[ExclusionRecord], list[RetiredExclusion]]:
        """Every run's exclusions: (active, retired by an operator), ordered by run, stage and patch."""


class ChatPoster(ABC):
    """HTTPS POST of a JSON message to a chat webhook (Slack incoming webhook, Teams Workflows webhook)."""

    @abstractmethod
    def post(self, url: str, payload: dict[str, Any]) -> PostResult:
        """Post once; never raises for HTTP errors, timeouts or refused connections (``status`` 0)."""


ChatClaim = Literal["claimed", "posted", "busy"]


class ChatLedger(ABC):
    """What was posted where (idempotency per alert id and channel), and per-instance alerts held for a digest."""

    @abstractmethod
    def claim(self, alert_id: str, channel: str) -> ChatClaim:
        """Claim the post of an alert to a channel: "claimed" for one caller; "posted" once it was; else "busy"."""

    @abstractmethod
    def mark_posted(self, alert_id: str, channel: str) -> None:
        """Record that the claimed post went out."""

    @abstractmethod
    def release(self, alert_id: str, channel: str) -> None:
        """Give up a claim whose post failed, so a retry can claim it again."""

    @abstractmethod
    def hold_for_digest(self, run_id: str, stage_name: str, alert_id: str, line: str) -> None:
        """Keep a per-instance alert's line for its stage's digest (idempotent per alert id)."""

    @abstractmethod
    def digest(self, run_id: str, stage_name: str) -> list[str]:
        """The lines held for a stage, oldest first."""


class InteractionGuard(ABC):
    """Remembers signed Slack requests already seen, so a replayed request is refused."""

    @abstractmethod
    def first_use(self, signature: str, expires_at: datetime) -> bool:
        """True the first time a signature is seen (kept until `expires_at`), False for a replay."""


class RejectedInputStore(ABC):
    """Keeps input PatchPilot cannot process (an alert it cannot render), with the reason, for an operator."""

    @abstractmethod
    def keep(self, body: dict[str, Any], reason: str) -> None:
        """Store the rejected input and why it was rejected."""


class SnapshotRefused(Exception):
    """EC2 refused to snapshot an instance's volumes (a quota, a volume that cannot be snapshotted, its state)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class VolumeSnapshots(ABC):
    """EBS snapshots of instances' volumes and root-volume restores (EC2)."""

    @abstractmethod
    def root_volumes(self, instance_ids: Sequence[str]) -> dict[str, str | None]:
        """Root EBS volume of each instance EC2 knows and runs (None: no EBS root), described in batches.

        Instances EC2 no longer knows, and terminating or terminated ones, are absent.
        """

    @abstractmethod
    def snapshot_instance(
        self, instance_id: str, root_volume: str | None, tags: dict[str, str], description: str
    ) -> list[VolumeSnapshot]:
        """One crash-consistent snapshot per attached EBS volume (CreateSnapshots), the root volume's marked.

        SnapshotRefused if EC2 refuses.
        """

    @abstractmethod
    def snapshots_tagged(self, tags: dict[str, str], started_before: datetime) -> dict[str, dict[str, str]]:
        """Snapshots of the account carrying every tag given, started before the moment: id -> all their tags."""

    @abstractmethod
    def delete_snapshot(self, snapshot_id: str) -> bool:
        """Delete a snapshot; False if it was already gone."""

    @abstractmethod
    def replace_root_volume(self, instance_id: str, snapshot_id: str, client_token: str, tags: dict[str, str]) -> str:
        """Start restoring the instance's root volume from the snapshot (CreateReplaceRootVolumeTask): the task id."""

    @abstractmethod
    def replace_root_volume_state(self, task_id: str) -> str:
        """The task's state (pending, in-progress, succeeded, failing, failed, failing-detached, failed-detached)."""


class SnapshotLedger(ABC):
    """The runs table's record of pre-patch snapshot sets and of rollbacks."""

    @abstractmethod
    def record_set(self, snapshot_set: SnapshotSet) -> bool:
        """Record an instance's snapshot set for its run and stage; False if one was recorded already (kept)."""

    @abstractmethod
    def sets_of(self, run_id: str) -> list[SnapshotSet]:
        """Every snapshot set of the run."""

    @abstractmethod
    def record_rollback(self, record: RollbackRecord) -> None:
        """Record a rollback PatchPilot started."""

    @abstractmethod
    def rollbacks_of(self, run_id: str) -> list[RollbackRecord]:
        """Every rollback of the run, oldest first."""


class RunExecutions(ABC):
    """The rollout executions of a run (its first attempt and resumed ones)."""

    @abstractmethod
    def executions_of(self, run_id: str) -> list[RunExecution]:
        """Every execution of the run, with the stage a running one works on."""


class BisectionLedger(ABC):
    """The runs table's record of a stage attempt's bisection (suspects, rounds, verdicts)."""

    @abstractmethod
    def bisection(self, run_id: str, stage_name: str, attempt: int) -> BisectionRecord | None:
        """The bisection of the stage attempt (None: it never bisected)."""

    @abstractmethod
    def save(self, record: BisectionRecord) -> None:
        """Write the record (it replaces the earlier one of the same stage attempt)."""
