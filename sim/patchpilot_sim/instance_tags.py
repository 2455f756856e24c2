"""Instance tags that PatchPilot changes while it runs (the canary tag), seen by the simulated agent's tag targets.

The simulated fleet resolves SendCommand `tag:` targets and DescribeInstanceInformation `tag:` filters from its own
index (moto resolving tags is too slow for a fleet, FACTS.md). EC2 CreateTags/DeleteTags (EC2 instances) and SSM
AddTagsToResource/RemoveTagsFromResource with ResourceType ManagedInstance (hybrid nodes) change the tags Run Command
targets and the instance information filter read (SSM user guide, send-commands-multiple.md, "Targeting multiple
managed nodes"). This hook applies each such call to that index too, then lets an EC2 call go on to moto (which
records the EC2 tags as well). Hybrid nodes exist only in the fleet (moto registers no managed instance), so the hook
answers their SSM tag calls itself: InvalidResourceId for a node the fleet does not manage. DeleteTags with a tag
Value removes the tag only where the value matches, as EC2 does (EC2 API reference, DeleteTags). Tags become visible
at once here; in AWS they are eventually consistent, and the planner checks that SSM sees every canary tag before it
sends a command.

Only the tags PatchPilot changes during a rollout are mirrored (``MIRRORED_TAG_KEYS``: the canary tag, and the
bisection tag on the instance a stage bisects on). Patch group
membership stays modelled by each simulated instance's own patch group (the registration function's default
`PatchGroup` tag on a new instance is a separate story the compliance demo tells: that instance keeps its first scan
to itself).
"""

from __future__ import annotations

from typing import Any

from botocore.awsrequest import AWSResponse, HTTPHeaders

from patchpilot.models.bisection import BISECT_TAG_KEY
from patchpilot.models.rollout import CANARY_TAG_KEY
from patchpilot_sim.fleet import SsmAgentSimulator

MIRRORED_TAG_KEYS = frozenset({CANARY_TAG_KEY, BISECT_TAG_KEY})


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
            return self._managed_node_tags(operation, str(params.get("ResourceId", "")), params)
        return None

    def _managed_node_tags(
        self, operation: str, node: str, params: dict[str, Any]
    ) -> tuple[AWSResponse, dict[str, Any]] | None:
        """Hybrid nodes exist only in the fleet (moto registers no managed instance): the fleet answers for them."""
        if operation not in ("AddTagsToResource", "RemoveTagsFromResource"):
            return None
        if node not in self.fleet.instances:
            body = {"Error": {"Code": "InvalidResourceId", "Message": f"Invalid Resource Id {node}"}}
            return AWSResponse("https://local.patchpilot/ssm", 400, HTTPHeaders(), None), {
                **body,
                "ResponseMetadata": {"HTTPStatusCode": 400},
            }
        if operation == "AddTagsToResource":
            self._set([node], params.get("Tags") or [])
        else:
            self._delete([node], [{"Key": key} for key in params.get("TagKeys") or []])
        return AWSResponse("https://local.patchpilot/ssm", 200, HTTPHeaders(), None), {
            "ResponseMetadata": {"HTTPStatusCode": 200}
        }

    def _set(self, instance_ids: list[str], tags: list[dict[str, str]]) -> None:
        with self.fleet.hold():
            for instance_id in instance_ids:
                instance = self.fleet.instances.get(instance_id)
                if instance is not None:
                    instance.tags.update(
                        {tag["Key"]: tag.get("Value", "") for tag in tags if tag["Key"] in MIRRORED_TAG_KEYS}
                    )

    def _delete(self, instance_ids: list[str], tags: list[dict[str, str]]) -> None:
        with self.fleet.hold():
            for instance_id in instance_ids:
                instance = self.fleet.instances.get(instance_id)
                if instance is None:
                    continue
                for tag in (t for t in tags if t["Key"] in MIRRORED_TAG_KEYS):
                    if "Value" not in tag or instance.tags.get(tag["Key"]) == tag["Value"]:
                        instance.tags.pop(tag["Key"], None)
