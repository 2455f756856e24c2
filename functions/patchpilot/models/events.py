"""Models of the events PatchPilot consumes (EventBridge envelopes from SSM)."""

from typing import Literal, get_args

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import BaseModel, ConfigDict, Field

from patchpilot.models.bounds import COMMAND_ID_MAX_LENGTH, Utf8Input

InvocationStatus = Literal[
    "Pending",
    "InProgress",
    "Delayed",
    "Cancelling",
    "Success",
    "Failed",
    "Cancelled",
    "TimedOut",
    "DeliveryTimedOut",
    "ExecutionTimedOut",
    "Undeliverable",
    "Terminated",
    "InvalidPlatform",
    "AccessDenied",
]

# Every status but these four is final (Pending, InProgress, Delayed, Cancelling can still change).
TERMINAL_INVOCATION_STATUSES: frozenset[str] = frozenset(get_args(InvocationStatus)) - {
    "Pending",
    "InProgress",
    "Delayed",
    "Cancelling",
}


class CommandInvocationDetail(BaseModel):
    """`detail` of an "EC2 Command Invocation Status-change Notification" (one instance of one command)."""

    model_config = ConfigDict(populate_by_name=True, frozen=True)

    command_id: str = Field(alias="command-id", min_length=1, max_length=COMMAND_ID_MAX_LENGTH)
    document_name: str = Field(alias="document-name", min_length=1)
    instance_id: str = Field(alias="instance-id", pattern=r"^(i|mi)-[0-9a-f]{8,17}$")
    requested_date_time: str = Field(alias="requested-date-time", min_length=1)
    status: InvocationStatus

    @property
    def is_terminal(self) -> bool:
        """Whether the invocation reached a final status."""
        return self.status in TERMINAL_INVOCATION_STATUSES


class CommandInvocationEvent(Utf8Input, EventBridgeModel):
    """The EventBridge envelope of an SSM command invocation status change."""

    source: Literal["aws.ssm"]
    detail_type: Literal["EC2 Command Invocation Status-change Notification"] = Field(alias="detail-type")
    detail: CommandInvocationDetail
