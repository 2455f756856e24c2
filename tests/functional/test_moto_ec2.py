"""moto's EC2 instance lookup without reservation copies (sim/patchpilot_sim/moto_ec2.py): the same answers."""

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


def test_moto_ec2_lookup_finds_each_instance_and_rejects_an_unknown_id(ec2: Any) -> None:
    # Given instances launched one per call (run_instances looks each one up again to attach its root volume)
    launched = [
        ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
        for _ in range(3)
    ]
    backend = get_backend("ec2")[ACCOUNT][REGION]
    # Then each id finds its own instance object, with its root volume attached
    assert [backend.get_instance(instance_id).id for instance_id in launched] == launched
    assert all(backend.get_instance(instance_id).block_device_mapping for instance_id in launched)
    # And an unknown id is moto's own error, as the API reports it
    with pytest.raises(InvalidInstanceIdError, match="i-0123456789abcdef0"):
        backend.get_instance("i-0123456789abcdef0")
    with pytest.raises(ClientError, match=r"InvalidInstanceID\.NotFound"):
        ec2.stop_instances(InstanceIds=["i-0123456789abcdef0"])
