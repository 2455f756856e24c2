"""Instance tags that PatchPilot changes while it runs (the canary tag), seen by the simulated agent's tag targets.

The simulated fleet resolves SendCommand `tag:` targets and DescribeInstanceInformation `tag:` filters from its own
index (moto resolving tags is too slow for a fleet, FACTS.md). EC2 CreateTags/DeleteTags (EC2 instances) and SSM
AddTagsToResource/RemoveTagsFromResource with ResourceType ManagedInstance (hybrid nodes) change the tags Run Command
targets and the instance information filter read (SSM user guide, send-commands-multiple.md, "Targeting multiple
managed nodes"); this hook applies each such call to that index too, then lets the call go on to moto (which records
the EC2 tags as well). DeleteTags with a tag Value removes the tag only where the value matches, as EC2 does
(EC2 API reference, DeleteTags). Tags become visible at once here; in AWS they are eventually consistent, and the
planner checks that SSM sees every canary tag before it sends a command.
"""

from __future__ import annotations

from typing import Any

from botocore.awsrequest import AWSResponse

from patchpilot_sim.fleet import SsmAgentSimulator


class InstanceTagMirror:
    """A runtime call hook: tag changes on managed instances reach the simulated fleet's index."""

    def __init__(self, fleet: SsmAgentSimulator) -> None:
        self.fleet = fleet

    def __call__(
        self, service: str, operation: str, params: dict[str, Any]
    ) -> tuple[AWSResponse, dict[str, Any]] | None:
        if (service, operation) == ("ec2", "CreateTags"):
            self._set(params.get("Resources") or [], params.get("Tags") or [])
        elif (service, operation) == ("ec2", "DeleteTags"):
            self._delete(params.get("Resources") or [], params.get("Tags") or [])
        elif service == "ssm" and params.get("ResourceType") == "ManagedInstance":
            node = [str(params.get("ResourceId", ""))]
            if operation == "AddTagsToResource":
                self._set(node, params.get("Tags") or [])
            elif operation == "RemoveTagsFromResource":
                self._delete(node, [{"Key": key} for key in params.get("TagKeys") or []])
        return None

    def _set(self, instance_ids: list[str], tags: list[dict[str, str]]) -> None:
        with self.fleet.hold():
            for instance_id in instance_ids:
                instance = self.fleet.instances.get(instance_id)
                if instance is not None:
                    instance.tags.update({tag["Key"]: tag.get("Value", "") for tag in tags})

    def _delete(self, instance_ids: list[str], tags: list[dict[str, str]]) -> None:
        with self.fleet.hold():
            for instance_id in instance_ids:
                instance = self.fleet.instances.get(instance_id)
                if instance is None:
                    continue
                for tag in tags:
                    if "Value" not in tag or instance.tags.get(tag["Key"]) == tag["Value"]:
                        instance.tags.pop(tag["Key"], None)
