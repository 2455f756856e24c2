"""EC2 adapter of the InstanceInventory port."""

from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from patchpilot.integrations.ports import InstanceInventory

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

GONE_STATES = frozenset({"shutting-down", "terminated"})


class Ec2InstanceInventory(InstanceInventory):
    """Instance tags through the EC2 API."""

    def __init__(self, client: "EC2Client") -> None:
        self._client = client

    def tag_value(self, instance_id: str, key: str) -> str | None:
        try:
            reservations = self._client.describe_instances(InstanceIds=[instance_id])["Reservations"]
        except ClientError as error:
            if error.response["Error"]["Code"] in ("InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"):
                raise LookupError(instance_id) from error
            raise
        instances = [instance for reservation in reservations for instance in reservation.get("Instances", [])]
        if not instances or instances[0].get("State", {}).get("Name") in GONE_STATES:
            raise LookupError(instance_id)
        tags = {tag.get("Key"): tag.get("Value") for tag in instances[0].get("Tags", [])}
        return tags.get(key)

    def set_tag(self, instance_id: str, key: str, value: str) -> None:
        self._client.create_tags(Resources=[instance_id], Tags=[{"Key": key, "Value": value}])
