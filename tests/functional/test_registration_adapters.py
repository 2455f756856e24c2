"""Auto-registration adapters on moto (EC2 tags, DynamoDB claims, SSM SendCommand) and Stubber; the handler on moto."""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from patchpilot.integrations.dynamodb_first_scan import DynamoDBFirstScanLedger
from patchpilot.integrations.ec2_inventory import Ec2InstanceInventory
from patchpilot.integrations.ssm_scanner import SsmPatchScanner
from patchpilot.models.exceptions import InstanceNotManaged
from tests.functional.aws_fixtures import LambdaContext

REGION = "us-east-1"
COMMAND_ID = "4f0b2a6e-7c1d-4a3b-9e2f-5d6c7b8a9e01"
EVENT = Path(__file__).resolve().parents[2] / "events" / "ec2" / "instance-running.json"


def _instance(tags: dict[str, str] | None = None) -> str:
    ec2 = boto3.client("ec2", region_name=REGION)
    kwargs: dict[str, Any] = {}
    if tags:
        kwargs["TagSpecifications"] = [
            {"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
        ]
    reservation = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, **kwargs)
    return str(reservation["Instances"][0]["InstanceId"])


def test_ec2_inventory_reads_and_sets_the_patch_group_tag(aws: None) -> None:
    inventory = Ec2InstanceInventory(boto3.client("ec2", region_name=REGION))
    untagged, tagged = _instance({"Name": "web"}), _instance({"PatchGroup": "prod-1"})
    assert inventory.tag_value(untagged, "PatchGroup") is None
    assert inventory.tag_value(tagged, "PatchGroup") == "prod-1"
    inventory.set_tag(untagged, "PatchGroup", "dev")
    assert inventory.tag_value(untagged, "PatchGroup") == "dev"
    assert inventory.tag_value(untagged, "Name") == "web"


def test_ec2_inventory_unknown_or_terminated_instance_is_a_lookup_error(aws: None) -> None:
    ec2 = boto3.client("ec2", region_name=REGION)
    inventory = Ec2InstanceInventory(ec2)
    with pytest.raises(LookupError, match=r"^i-0123456789abcdef0$"):
        inventory.tag_value("i-0123456789abcdef0", "PatchGroup")
    gone = _instance()
    ec2.terminate_instances(InstanceIds=[gone])
    with pytest.raises(LookupError, match=rf"^{gone}$"):
        inventory.tag_value(gone, "PatchGroup")


def test_dynamodb_first_scan_ledger_claims_once_and_releases_only_unsent_claims(aws: None) -> None:
    ledger = DynamoDBFirstScanLedger("runs", boto3.client("dynamodb", region_name=REGION))
    assert ledger.claim("i-1", "event-1") is True
    assert ledger.claim("i-1", "event-1") is True  # a retry of the event that died before its scan was recorded
    ledger.release("i-1", "event-other")
    assert ledger.claim("i-1", "event-2") is False
    ledger.release("i-1", "event-1")
    assert ledger.claim("i-1", "event-2") is True
    ledger.record_command("i-1", "cmd-1")
    ledger.release("i-1", "event-2")
    assert ledger.claim("i-1", "event-3") is False
    assert ledger.claim("i-1", "event-2") is False  # its scan is recorded: not even the same event sends another


def test_ssm_scanner_sends_a_scan_to_one_instance() -> None:
    client = boto3.client("ssm", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stub:
        stub.add_response(
            "send_command",
            {"Command": {"CommandId": COMMAND_ID}},
            {
                "InstanceIds": ["i-0abcd1234ef567890"],
                "DocumentName": "AWS-RunPatchBaseline",
                "Parameters": {"Operation": ["Scan"]},
                "Comment": "first scan",
                "TimeoutSeconds": 1800,
            },
        )
        assert SsmPatchScanner(client).start_scan("i-0abcd1234ef567890", "first scan") == COMMAND_ID


def test_ssm_scanner_unmanaged_instance_raises_instance_not_managed() -> None:
    client = boto3.client("ssm", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stub:
        stub.add_client_error("send_command", service_error_code="InvalidInstanceId", http_status_code=400)
        with pytest.raises(InstanceNotManaged, match="i-0abcd1234ef567890 is not managed by SSM"):
            SsmPatchScanner(client).start_scan("i-0abcd1234ef567890", "first scan")


def test_registration_handler_tags_scans_and_ignores_the_duplicate(handler_env: Callable[..., None]) -> None:
    from patchpilot.handlers.register_instance import handler

    handler_env(DEFAULT_PATCH_GROUP="dev", PATCH_GROUP_TAG_KEY="PatchGroup")
    instance_id = _instance({"Name": "web"})
    event = json.loads(EVENT.read_text())
    event["detail"]["instance-id"] = instance_id
    context = LambdaContext("InstanceRegistrationFunction")
    first, second = handler(event, context), handler(event, context)
    assert (first["tagging"], first["scan"], first["patch_group"]) == ("tagged", "started", "dev")
    assert (second["tagging"], second["scan"]) == ("kept_existing", "already_started")
    ssm = boto3.client("ssm", region_name=REGION)
    assert [c["Parameters"] for c in ssm.list_commands()["Commands"]] == [{"Operation": ["Scan"]}]
