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


class CommandInfo(_Record):
    """What SSM says about a command (ListCommands)."""

    command_id: str
    document_name: str
    comment: str
    status: str
    target_count: int = 0  # ListCommands TargetCount: 0 until SSM resolved the command's targets


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


class CalendarState(_Record):
    """What GetCalendarState says about an SSM Change Calendar at a moment."""

    open: bool
    next_transition: datetime | None = None  # when the state changes next (None: it does not, as far as SSM knows)
