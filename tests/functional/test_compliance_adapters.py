"""Compliance adapters: the SSM/EC2 source against the simulated fleet (served behind boto3) and moto's EC2, the
store on moto's DynamoDB, throttling through botocore's Stubber."""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from moto import mock_aws

from patchpilot.integrations.dynamodb_compliance import DynamoDBComplianceStore
from patchpilot.integrations.s3_reports import S3ReportStore
from patchpilot.integrations.ssm_compliance import SsmFleetComplianceSource
from patchpilot.logic.compliance import derive_node
from patchpilot.logic.compliance_collection import collect_facts, open_operations
from patchpilot.models.compliance import (
    ComplianceReadFailed,
    ComplianceRules,
    ComplianceStatus,
    ManagedNodeInfo,
    NodeFacts,
    PatchStateCounts,
)
from patchpilot_sim.clock import Scheduler, SimClock
from patchpilot_sim.fleet import SimulatedApiError, SimulatedInstance, SsmAgentSimulator
from tests.functional.aws_fixtures import RUNS_TABLE, create_runs_table

REGION = "us-east-1"
RULES = ComplianceRules(group_environments={"dev": "dev", "prod-1": "prod"})


@dataclass
class World:
    sim: SsmAgentSimulator
    source: SsmFleetComplianceSource
    ec2: Any


def _serve(sim: SsmAgentSimulator, client: Any) -> None:
    """Answer the client's SSM calls from the simulated fleet (as the local runtime does)."""
    key = "compliance_test_params"

    def remember(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context[key] = dict(params)

    def answer(model: Any, context: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        response = AWSResponse("https://local", 200, HTTPHeaders(), None)
        try:
            return response, sim.handle(model.name, context.get(key, {}))
        except SimulatedApiError as error:
            body = {
                "Error": {"Code": error.code, "Message": error.message},
                "ResponseMetadata": {"HTTPStatusCode": 400},
            }
            return AWSResponse("https://local", 400, HTTPHeaders(), None), body

    client.meta.events.register_first("before-parameter-build.ssm.*", remember)
    client.meta.events.register_first("before-call.ssm.*", answer)


@pytest.fixture
def world() -> Iterator[World]:
    with mock_aws():
        clock = SimClock()  # nothing started here ends during a test
        scheduler = Scheduler(clock)
        sim = SsmAgentSimulator(clock, scheduler, lambda _: None, REGION, seed=5)
        ssm = boto3.client("ssm", region_name=REGION)
        _serve(sim, ssm)
        ec2 = boto3.client("ec2", region_name=REGION)
        yield World(sim, SsmFleetComplianceSource(ssm, ec2), ec2)
        scheduler.stop()


def _launch(world: World, group: str | None, managed: bool = True, **fields: Any) -> str:
    tags = [{"Key": "PatchGroup", "Value": group}] if group else []
    tag_spec: Any = [{"ResourceType": "instance", "Tags": tags}] if tags else []
    instance = world.ec2.run_instances(
        ImageId="ami-12c6146b", MinCount=1, MaxCount=1, InstanceType="t3.micro", TagSpecifications=tag_spec
    )["Instances"][0]
    if managed:
        tag_map = {"PatchGroup": group} if group else {}
        world.sim.add_instance(
            SimulatedInstance(instance["InstanceId"], group or "", "AMAZON_LINUX_2023", tag_map, **fields)
        )
    return str(instance["InstanceId"])


def test_compliance_source_reads_the_simulated_fleet_into_each_status(world: World) -> None:
    fresh = _launch(world, "dev")
    unmanaged = _launch(world, "prod-1", managed=False)
    silent = _launch(world, "prod-1", online=False, offline_since=world.sim.clock.start - timedelta(days=2))
    no_group = _launch(world, None)
    hybrid = SimulatedInstance("mi-0123456789abcdef0", "prod-1", "UBUNTU", {"PatchGroup": "prod-1"})
    world.sim.add_instance(hybrid)
    installing = _launch(world, "dev", install_minutes=10_000.0)
    world.sim.handle(
        "SendCommand",
        {
            "InstanceIds": [installing],
            "DocumentName": "AWS-RunPatchBaseline",
            "Comment": "PatchPilot 2026-12/dev",
            "Parameters": {"Operation": ["Install"]},
        },
    )
    facts = {f.node_id: f for f in collect_facts(world.source, {}, datetime.now(UTC))}
    statuses = {node_id: derive_node(f, RULES, datetime.now(UTC)).status for node_id, f in facts.items()}
    assert statuses == {
        fresh: ComplianceStatus.NON_COMPLIANT,  # every catalog patch Missing at its first scan
        unmanaged: ComplianceStatus.UNMANAGED,
        silent: ComplianceStatus.UNMANAGED,
        no_group: ComplianceStatus.UNMANAGED,
        hybrid.instance_id: ComplianceStatus.NON_COMPLIANT,
        installing: ComplianceStatus.INSTALL_IN_PROGRESS,
    }
    assert facts[hybrid.instance_id].managed is not None
    assert facts[hybrid.instance_id].managed.resource_type == "ManagedInstance"  # type: ignore[union-attr]
    assert facts[silent].managed.ping_status == "ConnectionLost"  # type: ignore[union-attr]
    lacking = facts[fresh].missing_patches
    assert lacking
    assert all(p.state == "Missing" for p in lacking)
    assert any(p.cve_ids for p in lacking)


def test_compliance_source_sees_open_scans_but_only_patchpilot_installs(world: World) -> None:
    scanning = _launch(world, "dev", scan_minutes=10_000.0)
    foreign = _launch(world, "dev", install_minutes=10_000.0)
    for instance_id, operation, comment in ((scanning, "Scan", "daily scan"), (foreign, "Install", "someone else")):
        world.sim.handle(
            "SendCommand",
            {
                "InstanceIds": [instance_id],
                "DocumentName": "AWS-RunPatchBaseline",
                "Comment": comment,
                "Parameters": {"Operation": [operation]},
            },
        )
    found = {(i.node_id, i.operation, i.comment) for i in world.source.open_invocations()}
    assert found == {(scanning, "Scan", "daily scan"), (foreign, "Install", "someone else")}
    assert open_operations(world.source) == {scanning: "Scan"}  # only PatchPilot's installs count


def test_compliance_source_turns_an_ssm_error_into_a_read_failure(world: World) -> None:
    with pytest.raises(ComplianceReadFailed, match=r"ssm:DescribeInstancePatches: .*InvalidInstanceId"):
        world.source.lacking_patches("i-0000000000000dead")


def test_compliance_source_reports_throttling_that_outlasts_the_retries() -> None:
    ssm = boto3.client("ssm", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(ssm)
    stub.add_response(
        "describe_instance_information",
        {"InstanceInformationList": [{"InstanceId": "i-0123456789abcdef0", "PingStatus": "Online"}], "NextToken": "2"},
    )
    stub.add_client_error("describe_instance_information", "ThrottlingException", "Rate exceeded", 400)
    with stub, pytest.raises(ComplianceReadFailed, match=r"DescribeInstanceInformation: .*ThrottlingException"):
        SsmFleetComplianceSource(ssm, boto3.client("ec2", region_name=REGION)).managed_nodes()
    stub.assert_no_pending_responses()


@pytest.fixture
def store() -> Iterator[DynamoDBComplianceStore]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        create_runs_table(client)
        yield DynamoDBComplianceStore(RUNS_TABLE, client)


def test_compliance_store_never_replaces_a_row_observed_later(store: DynamoDBComplianceStore) -> None:
    now = datetime(2026, 12, 20, 12, tzinfo=UTC)
    managed = ManagedNodeInfo(node_id="i-0123456789abcdef0", ping_status="Online")
    facts = NodeFacts(
        node_id="i-0123456789abcdef0",
        managed=managed,
        patch_state=PatchStateCounts(patch_group="dev", operation_end=now, missing=2),
    )
    newer = derive_node(facts, RULES, now)
    older = derive_node(facts.model_copy(update={"patch_state": None}), RULES, now - timedelta(minutes=1))
    assert store.put_node(newer, event_id="e2")
    assert not store.put_node(older, event_id="e1")
    assert store.node("i-0123456789abcdef0") == (newer, "e2")
    store.remove_nodes(["i-0123456789abcdef0"], observed_before=now - timedelta(hours=1))
    assert store.nodes() == [newer]
    store.remove_nodes(["i-0123456789abcdef0"], observed_before=now)
    assert store.nodes() == []


def test_report_store_puts_gets_and_lists_reports_in_the_artifacts_bucket(aws: None) -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="artifacts")
    store = S3ReportStore("artifacts", s3)
    assert store.get("reports/compliance/2026-12.html") is None
    location = store.put("reports/compliance/2026-12.html", "<p>98 % compliant — ✓</p>", "text/html; charset=utf-8")
    store.put("reports/compliance/2026-12.csv", "node,status\n", "text/csv")
    store.put("reports/stages/2026-12/prod-1.json", "{}", "application/json")
    assert location == "s3://artifacts/reports/compliance/2026-12.html"
    assert store.get("reports/compliance/2026-12.html") == "<p>98 % compliant — ✓</p>"
    head = s3.head_object(Bucket="artifacts", Key="reports/compliance/2026-12.html")
    assert head["ContentType"] == "text/html; charset=utf-8"
    assert store.keys("reports/compliance/") == [
        "reports/compliance/2026-12.csv",
        "reports/compliance/2026-12.html",
    ]


def test_report_store_raises_other_s3_errors() -> None:
    s3 = boto3.client("s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
    with Stubber(s3) as stub:
        stub.add_client_error("get_object", service_error_code="AccessDenied", http_status_code=403)
        with pytest.raises(ClientError, match="AccessDenied"):
            S3ReportStore("artifacts", s3).get("reports/compliance/2026-12.html")
