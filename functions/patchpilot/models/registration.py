"""Models of instance auto-registration: the EC2 state-change event and what the handler did with it."""

from typing import Literal

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import BaseModel, ConfigDict, Field

from patchpilot.models.bounds import EC2_INSTANCE_ID_PATTERN, Utf8Input

InstanceState = Literal["pending", "running", "shutting-down", "terminated", "stopping", "stopped"]


class InstanceStateDetail(BaseModel):
    """`detail` of an "EC2 Instance State-change Notification"."""

    model_config = ConfigDict(populate_by_name=True, frozen=True)

    instance_id: str = Field(alias="instance-id", pattern=EC2_INSTANCE_ID_PATTERN)
    state: InstanceState


class InstanceStateEvent(Utf8Input, EventBridgeModel):
    """The EventBridge envelope of an EC2 instance state change."""

    source: Literal["aws.ec2"]
    detail_type: Literal["EC2 Instance State-change Notification"] = Field(alias="detail-type")
    detail: InstanceStateDetail


class RegistrationHandled(BaseModel):
    """What auto-registration did for one event (a duplicate event reports the no-op it became)."""

    model_config = ConfigDict(frozen=True)

    instance_id: str
    tagging: Literal["tagged", "kept_existing", "instance_gone", "not_running"]
    patch_group: str | None = None
    scan: Literal["started", "already_started", "skipped"]
    command_id: str | None = None
