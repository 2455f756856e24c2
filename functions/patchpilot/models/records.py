"""Records the integrations return to the logic (DynamoDB rows, SSM command descriptions)."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True)


class TrackedCommand(_Record):
    """The tracking row of one install command: who started it, how many instances, how many reported."""

    command_id: str
    run_id: str
    stage_name: str
    expected: int | None = None
    reported: int = 0
    failed: int = 0
    task_token: str | None = None
    resumed: bool = False
    foreign: bool = False
    resume_lease_until: float | None = None
    heartbeat_interval_seconds: int = 60
    last_heartbeat_at: float | None = None
    phase: str | None = None


class CommandInfo(_Record):
    """What SSM says about a command (ListCommands)."""

    command_id: str
    document_name: str
    comment: str
    status: str
    target_count: int = 0  # ListCommands TargetCount: 0 until SSM resolved the command's targets
    expires_after: datetime | None = None  # ListCommands ExpiresAfter: every unfinished invocation ends by then


class InvocationInfo(_Record):
    """What SSM says about one instance of a command (ListCommandInvocations)."""

    command_id: str
    instance_id: str
    status: str


class InstanceResult(_Record):
    """A recorded terminal result of one instance."""

    instance_id: str
    status: str
    succeeded: bool


class ManagedInstance(_Record):
    """An SSM managed instance (DescribeInstanceInformation)."""

    instance_id: str
    ping_status: str
    platform_type: str
    platform_name: str
    platform_version: str


class BatchRecorded(_Record):
    """What a batch of terminal results did to a command's tracking: new rows, duplicates, or an unknown command."""

    recorded: int = 0
    duplicates: int = 0
    failed_recorded: int = 0
    unknown_command: bool = False


class ExecutionAttempt(_Record):
    """One execution (attempt) of a run: `cycle-2026-12`, then `cycle-2026-12-r2` after a resume, ..."""

    name: str
    arn: str
    status: str
    input: str
    started_at: datetime


class CalendarState(_Record):
    """What GetCalendarState says about an SSM Change Calendar at a moment."""

    open: bool
    next_transition: datetime | None = None  # when the state changes next (None: it does not, as far as SSM knows)
