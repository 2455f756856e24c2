"""moto's EC2 lookups without O(fleet) scans (sim/patchpilot_sim/moto_ec2.py): the same answers."""

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.backends import get_backend
from moto.ec2.exceptions import InvalidInstanceIdError

from patchpilot_sim import moto_ec2
from tests.functional.aws_fixtures import ACCOUNT, REGION


@pytest.fixture
def ec2(aws: None) -> Iterator[Any]:
    moto_ec2.install()
    try:
        yield boto3.client("ec2", region_name=REGION)
    finally:
        moto_ec2.uninstall()


def _tagged_fleet(client: Any) -> list[str]:
    """Three instances with distinct tags, one untagged, and a tagged volume besides (tags of other resources)."""
    launched = []
    for number in range(3):
        tags = [{"Key": "PatchGroup", "Value": f"ring-{number}"}, {"Key": "Name", "Value": f"web-{number}"}]
        reservation = client.run_instances(
            ImageId="ami-12c6146b",
            MinCount=1,
            MaxCount=1,
            TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
        )
        launched.append(reservation["Instances"][0]["InstanceId"])
    launched.append(client.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"])
    client.create_tags(Resources=[launched[1]], Tags=[{"Key": "patchpilot:canary", "Value": "true"}])
    volume = client.create_volume(AvailabilityZone=f"{REGION}a", Size=8)["VolumeId"]
    client.create_tags(Resources=[volume], Tags=[{"Key": "PatchGroup", "Value": "ring-0"}])
    return launched


def _answers(client: Any) -> dict[str, Any]:
    return {
        "all": client.describe_instances()["Reservations"],
        "by_tag": client.describe_instances(Filters=[{"Name": "tag:PatchGroup", "Values": ["ring-1", "ring-2"]}])[
            "Reservations"
        ],
        "by_tag_key": client.describe_instances(Filters=[{"Name": "tag-key", "Values": ["patchpilot:canary"]}])[
            "Reservations"
        ],
        "tags": client.describe_tags()["Tags"],
        "volume_tags": client.describe_volumes()["Volumes"],
        "volumes_by_id": [
            client.describe_volumes(VolumeIds=[volume["VolumeId"]])["Volumes"]
            for volume in client.describe_volumes()["Volumes"]
        ],
    }


def test_moto_ec2_lookup_finds_each_instance_and_rejects_an_unknown_id(ec2: Any) -> None:
    # Given instances launched one per call (run_instances looks each one up again to attach its root volume)
    launched = [
        ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
        for _ in range(3)
    ]
    backend = get_backend("ec2")[ACCOUNT][REGION]
    # Then each id finds its own instance object, with its root volume attached, the same object when asked again
    assert [backend.get_instance(instance_id).id for instance_id in launched] == launched
    assert all(backend.get_instance(instance_id).block_device_mapping for instance_id in launched)
    assert all(backend.get_instance(i) is backend.get_instance(i) for i in launched)
    # And one launched later in a reservation of two is found, and a reservation moto no longer has is not trusted
    later = [i["InstanceId"] for i in ec2.run_instances(ImageId="ami-12c6146b", MinCount=2, MaxCount=2)["Instances"]]
    assert [backend.get_instance(instance_id).id for instance_id in [*later, *launched]] == [*later, *launched]
    holder = next(r.id for r in backend.reservations.values() if any(i.id == later[0] for i in r.instances))
    gone = backend.reservations.pop(holder)
    with pytest.raises(InvalidInstanceIdError, match=later[0]):
        backend.get_instance(later[0])
    backend.reservations[gone.id] = gone
    assert [backend.get_instance_by_id(instance_id) for instance_id in launched] == [
        backend.get_instance(instance_id) for instance_id in launched
    ]
    assert backend.get_instance_by_id("i-0123456789abcdef0") is None
    # And an unknown id is moto's own error, as the API reports it
    with pytest.raises(InvalidInstanceIdError, match="i-0123456789abcdef0"):
        backend.get_instance("i-0123456789abcdef0")
    with pytest.raises(ClientError, match=r"InvalidInstanceID\.NotFound"):
        ec2.stop_instances(InstanceIds=["i-0123456789abcdef0"])


def test_moto_ec2_tag_lookup_answers_describe_calls_as_moto_does(aws: None) -> None:
    # Given a fleet with tags on instances and on a volume, described by moto's own tag filter
    client = boto3.client("ec2", region_name=REGION)
    _tagged_fleet(client)
    before = _answers(client)
    # When the per-resource tag lookup is installed
    moto_ec2.install()
    try:
        after = _answers(client)
    finally:
        moto_ec2.uninstall()
    # Then DescribeInstances (with and without tag filters), DescribeTags and DescribeVolumes answer the same
    assert after == before
    assert [len(volumes) for volumes in after["volumes_by_id"]] == [1] * 5  # 4 root volumes and the tagged one
    assert len(before["by_tag"]) == 2
    assert len(before["by_tag_key"]) == 1
    assert {tag["Key"] for tag in before["tags"]} == {"PatchGroup", "Name", "patchpilot:canary"}


def test_moto_ec2_volume_by_id_is_moto_s_answer_and_an_unknown_id_moto_s_error(ec2: Any) -> None:
    launched = _tagged_fleet(ec2)
    backend = get_backend("ec2")[ACCOUNT][REGION]
    root = backend.get_instance(launched[0]).block_device_mapping["/dev/sda1"].volume_id
    assert backend.describe_volumes(volume_ids=[root]) == [backend.volumes[root]]
    with pytest.raises(ClientError, match=r"InvalidVolume\.NotFound"):
        ec2.describe_volumes(VolumeIds=["vol-0123456789abcdef0"])


def test_moto_ec2_tag_lookup_reads_only_the_resource_s_own_tags(ec2: Any) -> None:
    # Given a tagged fleet
    launched = _tagged_fleet(ec2)
    backend = get_backend("ec2")[ACCOUNT][REGION]

    def region_scan(*_: object, **__: object) -> list[dict[str, str]]:
        raise AssertionError("a resource's tags were read by filtering every tag of the region")

    backend.describe_tags = region_scan  # type: ignore[method-assign]
    try:
        # When one instance's tags are read (as DescribeInstances does for each instance it describes)
        tags = backend.get_instance(launched[1]).get_tags()
        untagged = backend.get_instance(launched[3]).get_tags()
    finally:
        del backend.describe_tags
    # Then they are that instance's tags, in the order they were created, without scanning the region's tags
    assert [(tag["key"], tag["value"]) for tag in tags] == [
        ("PatchGroup", "ring-1"),
        ("Name", "web-1"),
        ("patchpilot:canary", "true"),
    ]
    assert {tag["resource_id"] for tag in tags} == {launched[1]}
    assert {tag["resource_type"] for tag in tags} == {"instance"}
    assert untagged == []
    assert launched[3] not in backend.tags  # reading does not create an entry in moto's tag store
