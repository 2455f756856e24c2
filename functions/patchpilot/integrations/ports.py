"""Ports: what the logic needs from the outside world. Adapters implement them; unit tests use in-memory fakes."""

from abc import ABC, abstractmethod
from enum import StrEnum

from pydantic import BaseModel

from patchpilot.models.records import CommandInfo, InstanceResult, InvocationInfo, TrackedCommand


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


class ExecutionCallbacks(ABC):
    """Step Functions task-token callbacks."""

    @abstractmethod
    def resume(self, task_token: str, output: BaseModel) -> bool:
        """Complete the waiting task with `output`; False when the token is no longer valid."""

    @abstractmethod
    def heartbeat(self, task_token: str) -> bool:
        """Tell the waiting task that progress was made; False when the token is no longer valid."""


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
