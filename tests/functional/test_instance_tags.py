"""The simulator's tag mirror: tag changes made through EC2 and SSM reach the fleet's tag targets and filters."""

from collections.abc import Iterator

import pytest

from patchpilot_sim.clock import Scheduler, SimClock
from patchpilot_sim.fleet import SimulatedInstance, SsmAgentSimulator
from patchpilot_sim.instance_tags import InstanceTagMirror

KEY = "PatchPilotCanary"


@pytest.fixture
def sim() -> Iterator[SsmAgentSimulator]:
    clock = SimClock()
    scheduler = Scheduler(clock)
    simulator = SsmAgentSimulator(clock, scheduler, lambda _: None, "us-east-1", seed=5)
    for instance_id in ("i-00000000000000001", "i-00000000000000002", "mi-0c0ffee0c0ffee001"):
        simulator.add_instance(
            SimulatedInstance(
                instance_id=instance_id,
                patch_group="prod-1",
                platform="AMAZON_LINUX_2023",
                tags={"PatchGroup": "prod-1"},
            )
        )
    yield simulator
    scheduler.stop()


def _listed(sim: SsmAgentSimulator, value: str) -> list[str]:
    answer = sim.handle("DescribeInstanceInformation", {"Filters": [{"Key": f"tag:{KEY}", "Values": [value]}]})
    return sorted(i["InstanceId"] for i in answer["InstanceInformationList"])


def test_instance_tag_mirror_applies_ec2_and_ssm_tag_changes_to_the_fleet(sim: SsmAgentSimulator) -> None:
    mirror = InstanceTagMirror(sim)
    tag = [{"Key": KEY, "Value": "2026-12/prod-1"}]
    assert mirror("ec2", "CreateTags", {"Resources": ["i-00000000000000001", "i-unknown"], "Tags": tag}) is None
    answer = mirror(
        "ssm",
        "AddTagsToResource",
        {"ResourceType": "ManagedInstance", "ResourceId": "mi-0c0ffee0c0ffee001", "Tags": tag},
    )
    assert answer is not None
    assert answer[1]["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert _listed(sim, "2026-12/prod-1") == ["i-00000000000000001", "mi-0c0ffee0c0ffee001"]
    # DeleteTags with another value leaves the tag; without a value removes it
    mirror("ec2", "DeleteTags", {"Resources": ["i-00000000000000001"], "Tags": [{"Key": KEY, "Value": "other"}]})
    assert "i-00000000000000001" in _listed(sim, "2026-12/prod-1")
    mirror("ec2", "DeleteTags", {"Resources": ["i-00000000000000001"], "Tags": [{"Key": KEY}]})
    mirror(
        "ssm",
        "RemoveTagsFromResource",
        {"ResourceType": "ManagedInstance", "ResourceId": "mi-0c0ffee0c0ffee001", "TagKeys": [KEY]},
    )
    assert _listed(sim, "2026-12/prod-1") == []
    assert sim.instances["i-00000000000000002"].tags == {"PatchGroup": "prod-1"}


def test_instance_tag_mirror_refuses_a_node_the_fleet_does_not_manage(sim: SsmAgentSimulator) -> None:
    answer = InstanceTagMirror(sim)(
        "ssm",
        "AddTagsToResource",
        {"ResourceType": "ManagedInstance", "ResourceId": "mi-00000000000000bad", "Tags": []},
    )
    assert answer is not None
    assert answer[1]["Error"]["Code"] == "InvalidResourceId"


def test_instance_tag_mirror_leaves_patch_group_membership_to_the_fleet(sim: SsmAgentSimulator) -> None:
    InstanceTagMirror(sim)(
        "ec2", "CreateTags", {"Resources": ["i-00000000000000002"], "Tags": [{"Key": "PatchGroup", "Value": "dev"}]}
    )
    assert sim.instances["i-00000000000000002"].tags == {"PatchGroup": "prod-1"}
