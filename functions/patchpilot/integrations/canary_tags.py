"""Adapter of the CanaryTags port: EC2 tags on EC2 instances, SSM resource tags on hybrid managed nodes (`mi-`).

EC2 CreateTags/DeleteTags take many resources per call ("Up to 1000 resource IDs. We recommend breaking up this
request into smaller batches.", EC2 API reference, CreateTags): PatchPilot sends batches of ``TAG_BATCH``. A hybrid
managed node's tags live in SSM: AddTagsToResource/RemoveTagsFromResource with ResourceType ``ManagedInstance``, one
node per call (SSM API reference). Run Command's `tag:` targets and DescribeInstanceInformation's `tag:` filter read
these tags (SSM user guide, send-commands-multiple.md, "Targeting multiple managed nodes").
"""

from collections.abc import Iterator
from typing import TYPE_CHECKING

from patchpilot.integrations.ports import CanaryTags

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ssm import SSMClient

TAG_BATCH = 50
MANAGED_NODE_PREFIX = "mi-"


def batches(instance_ids: list[str], size: int = TAG_BATCH) -> Iterator[list[str]]:
    """The ids in order, ``size`` at a time (the last batch may be shorter)."""
    if size < 1:
        raise ValueError(f"batch size must be at least 1, got {size}")
    for start in range(0, len(instance_ids), size):
        yield instance_ids[start : start + size]


class AwsCanaryTags(CanaryTags):
    """Sets and removes the canary tag through EC2 (EC2 instances) and SSM (hybrid managed nodes)."""

    def __init__(self, ec2: "EC2Client", ssm: "SSMClient") -> None:
        self._ec2 = ec2
        self._ssm = ssm

    @staticmethod
    def _split(instance_ids: list[str]) -> tuple[list[str], list[str]]:
        ec2 = [i for i in instance_ids if not i.startswith(MANAGED_NODE_PREFIX)]
        return ec2, [i for i in instance_ids if i.startswith(MANAGED_NODE_PREFIX)]

    def tag(self, instance_ids: list[str], key: str, value: str) -> None:
        ec2_ids, nodes = self._split(instance_ids)
        for batch in batches(ec2_ids):
            self._ec2.create_tags(Resources=batch, Tags=[{"Key": key, "Value": value}])
        for node in nodes:
            self._ssm.add_tags_to_resource(
                ResourceType="ManagedInstance", ResourceId=node, Tags=[{"Key": key, "Value": value}]
            )

    def untag(self, instance_ids: list[str], key: str) -> None:
        ec2_ids, nodes = self._split(instance_ids)
        for batch in batches(ec2_ids):
            self._ec2.delete_tags(Resources=batch, Tags=[{"Key": key}])
        for node in nodes:
            self._ssm.remove_tags_from_resource(ResourceType="ManagedInstance", ResourceId=node, TagKeys=[key])
