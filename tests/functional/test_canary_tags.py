"""The canary tag adapter against botocore's Stubber: EC2 batches for instances, SSM for hybrid managed nodes."""

import boto3
from botocore.stub import Stubber

from patchpilot.integrations.canary_tags import AwsCanaryTags
from patchpilot.models.rollout import CANARY_TAG_KEY


def test_aws_canary_tags_batches_ec2_calls_and_tags_hybrid_nodes_through_ssm() -> None:
    ec2 = boto3.client("ec2", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    ssm = boto3.client("ssm", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    ids = [f"i-{n:017x}" for n in range(60)]
    node = "mi-0123456789abcdef0"
    tag = [{"Key": CANARY_TAG_KEY, "Value": "2026-12/prod-1"}]
    with Stubber(ec2) as ec2_stub, Stubber(ssm) as ssm_stub:
        ec2_stub.add_response("create_tags", {}, {"Resources": ids[:50], "Tags": tag})
        ec2_stub.add_response("create_tags", {}, {"Resources": ids[50:], "Tags": tag})
        ssm_stub.add_response(
            "add_tags_to_resource", {}, {"ResourceType": "ManagedInstance", "ResourceId": node, "Tags": tag}
        )
        ec2_stub.add_response("delete_tags", {}, {"Resources": ids[:50], "Tags": [{"Key": CANARY_TAG_KEY}]})
        ec2_stub.add_response("delete_tags", {}, {"Resources": ids[50:], "Tags": [{"Key": CANARY_TAG_KEY}]})
        ssm_stub.add_response(
            "remove_tags_from_resource",
            {},
            {"ResourceType": "ManagedInstance", "ResourceId": node, "TagKeys": [CANARY_TAG_KEY]},
        )
        adapter = AwsCanaryTags(ec2, ssm)
        adapter.tag([*ids, node], CANARY_TAG_KEY, "2026-12/prod-1")
        adapter.untag([*ids, node], CANARY_TAG_KEY)
        ec2_stub.assert_no_pending_responses()
        ssm_stub.assert_no_pending_responses()
