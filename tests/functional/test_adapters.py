"""Adapters against moto (DynamoDB) and botocore's Stubber (SSM and Step Functions calls moto lacks or fakes)."""

from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from pydantic import BaseModel

from patchpilot.integrations.dynamodb_tracker import DynamoDBInstallTracker
from patchpilot.integrations.ports import RecordOutcome
from patchpilot.integrations.sfn_callbacks import StepFunctionsCallbacks
from patchpilot.integrations.ssm_directory import SsmCommandDirectory
from patchpilot.models.records import InstanceResult

REGION = "us-east-1"
CMD = "4f0b2a6e-7c1d-4a3b-9e2f-5d6c7b8a9e01"
OTHER = "51c0891d-0e34-45f1-a2f2-2b5f5a2b1c8e"


@pytest.fixture
def tracker(dynamodb: Any) -> DynamoDBInstallTracker:
    return DynamoDBInstallTracker("runs", dynamodb)


def test_dynamodb_tracker_keeps_the_phase_the_wait_registered(tracker: DynamoDBInstallTracker) -> None:
    tracker.register_wait("cmd", "run", "dev", expected=2, task_token="t1", phase="scan")
    tracker.register_wait("other", "run", "dev", expected=2, task_token="t2")
    command, other = tracker.get_command("cmd"), tracker.get_command("other")
    assert command is not None
    assert other is not None
    assert (command.phase, other.phase) == ("scan", None)


def test_dynamodb_tracker_records_each_instance_once(tracker: DynamoDBInstallTracker) -> None:
    tracker.register_wait("cmd", "run", "dev", expected=2, task_token="t1")
    assert tracker.record_result("cmd", "i-1", "Failed", succeeded=False) is RecordOutcome.RECORDED
    assert tracker.record_result("cmd", "i-1", "Failed", succeeded=False) is RecordOutcome.DUPLICATE
    assert tracker.record_result("cmd", "i-2", "Success", succeeded=True) is RecordOutcome.RECORDED
    command = tracker.get_command("cmd")
    assert command is not None
    assert (command.expected, command.reported, command.failed, command.task_token) == (2, 2, 1, "t1")
    assert sorted((r.instance_id, r.succeeded) for r in tracker.list_results("cmd")) == [("i-1", False), ("i-2", True)]


def test_dynamodb_tracker_refuses_results_of_unknown_and_foreign_commands(tracker: DynamoDBInstallTracker) -> None:
    assert tracker.record_result("nobody", "i-1", "Success", succeeded=True) is RecordOutcome.UNKNOWN_COMMAND
    tracker.mark_foreign("theirs")
    tracker.mark_foreign("theirs")
    assert tracker.record_result("theirs", "i-1", "Success", succeeded=True) is RecordOutcome.UNKNOWN_COMMAND
    foreign = tracker.get_command("theirs")
    assert foreign is not None
    assert foreign.foreign
    assert tracker.list_results("theirs") == []


def test_dynamodb_tracker_leases_resume_to_one_holder_per_token(tracker: DynamoDBInstallTracker) -> None:
    tracker.register_wait("cmd", "run", "dev", expected=1, task_token="t1")
    assert tracker.claim_resume("cmd", "t1", now=1000.0, lease_seconds=60) is True
    assert tracker.claim_resume("cmd", "t1", now=1010.0, lease_seconds=60) is False
    assert tracker.claim_resume("cmd", "stale", now=1010.0, lease_seconds=60) is False
    # a holder that died: its lease expires and the next caller may resume
    assert tracker.claim_resume("cmd", "t1", now=1061.0, lease_seconds=60) is True
    # a failed SendTaskSuccess gives the lease back at once
    tracker.release_resume("cmd", "t1")
    assert tracker.claim_resume("cmd", "t1", now=1062.0, lease_seconds=60) is True
    tracker.mark_resumed("cmd", "t1")
    assert tracker.claim_resume("cmd", "t1", now=9999.0, lease_seconds=60) is False
    # a new wait (after a heartbeat timeout) gets a new token and can be resumed again
    tracker.register_wait("cmd", "run", "dev", expected=1, task_token="t2")
    assert tracker.claim_resume("cmd", "t2", now=1070.0, lease_seconds=60) is True


def test_dynamodb_tracker_records_a_batch_without_double_counting(
    tracker: DynamoDBInstallTracker,
) -> None:
    tracker.register_wait("cmd", "run", "dev", expected=150, task_token="t1")
    tracker.record_result("cmd", "i-7", "Failed", succeeded=False)
    batch = [InstanceResult(instance_id=f"i-{n}", status="Success", succeeded=True) for n in range(150)]
    recorded = tracker.record_results("cmd", batch + batch[:3])
    command = tracker.get_command("cmd")
    assert command is not None
    assert (recorded.recorded, recorded.duplicates) == (149, 1)
    assert (command.reported, command.failed) == (150, 1)
    assert len(tracker.list_results("cmd")) == 150


def _count_calls(client: Any) -> dict[str, int]:
    calls: dict[str, int] = {}

    def count(model: Any, **_: Any) -> None:
        calls[model.name] = calls.get(model.name, 0) + 1

    client.meta.events.register("before-call.dynamodb.*", count)
    return calls


def test_dynamodb_tracker_writes_one_row_per_result_and_one_counter_update_per_batch(
    dynamodb: Any, tracker: DynamoDBInstallTracker
) -> None:
    # Given a waiting command and a batch of 30 results
    tracker.register_wait("cmd", "run", "dev", expected=30, task_token="t1")
    calls = _count_calls(dynamodb)
    batch = [
        InstanceResult(instance_id=f"i-{n}", status="Failed" if n < 4 else "Success", succeeded=n >= 4)
        for n in range(30)
    ]
    # When it is recorded
    recorded = tracker.record_results("cmd", batch)
    # Then each result is one conditional put (1 write unit, not a transaction's 2) and the counter one update
    assert (recorded.recorded, recorded.duplicates, recorded.failed_recorded) == (30, 0, 4)
    assert calls == {"GetItem": 1, "PutItem": 30, "UpdateItem": 1}
    command = tracker.get_command("cmd")
    assert command is not None
    assert (command.reported, command.failed) == (30, 4)


def test_dynamodb_tracker_recounts_when_a_redelivered_batch_finds_rows_a_dead_attempt_never_counted(
    dynamodb: Any, tracker: DynamoDBInstallTracker
) -> None:
    # Given an attempt that wrote its rows and died before its counter update
    tracker.register_wait("cmd", "run", "dev", expected=5, task_token="t1")
    batch = [InstanceResult(instance_id=f"i-{n}", status="Success", succeeded=True) for n in range(5)]

    def die_on_counter(params: dict[str, Any], **_: Any) -> None:
        if "ADD reported" in params.get("UpdateExpression", ""):
            raise RuntimeError("Lambda timed out")

    dynamodb.meta.events.register("provide-client-params.dynamodb.UpdateItem", die_on_counter)
    with pytest.raises(RuntimeError, match="timed out"):
        tracker.record_results("cmd", batch[:3])
    dynamodb.meta.events.unregister("provide-client-params.dynamodb.UpdateItem", die_on_counter)
    stranded = tracker.get_command("cmd")
    assert stranded is not None
    assert stranded.reported == 0
    # When SQS redelivers that batch with two more results
    recorded = tracker.record_results("cmd", batch)
    # Then the dead attempt's rows count once: the counter equals the rows
    assert (recorded.recorded, recorded.duplicates) == (2, 3)
    command = tracker.get_command("cmd")
    assert command is not None
    assert (command.reported, command.failed) == (5, 0)


def test_dynamodb_tracker_never_overwrites_a_concurrent_batchs_count_when_recounting(
    dynamodb: Any, tracker: DynamoDBInstallTracker
) -> None:
    # Given a recount that read the counter, and a batch that adds its rows before the recount writes
    tracker.register_wait("cmd", "run", "dev", expected=6, task_token="t1")
    tracker.record_results("cmd", [InstanceResult(instance_id="i-0", status="Success", succeeded=True)])
    other = DynamoDBInstallTracker("runs", boto3.client("dynamodb", region_name=REGION))
    raced = []

    def concurrent_batch(params: dict[str, Any], **_: Any) -> None:
        if "count_version = :next" in params.get("UpdateExpression", "") and not raced:
            raced.append(True)
            other.record_results("cmd", [InstanceResult(instance_id="i-9", status="Failed", succeeded=False)])

    dynamodb.meta.events.register("provide-client-params.dynamodb.UpdateItem", concurrent_batch)
    # When a duplicate makes this batch recount while the other batch adds
    recorded = tracker.record_results("cmd", [InstanceResult(instance_id="i-0", status="Success", succeeded=True)])
    # Then the recount lost the race, counted again, and both batches' rows are counted exactly once
    assert raced
    assert recorded.duplicates == 1
    command = tracker.get_command("cmd")
    assert command is not None
    assert (command.reported, command.failed) == (2, 1)
    assert len(tracker.list_results("cmd")) == 2
    row = dynamodb.get_item(TableName="runs", Key={"pk": {"S": "COMMAND#cmd"}, "sk": {"S": "COMMAND"}})["Item"]
    assert row["count_version"] == {"N": "1"}
    assert row["count_adds"] == {"N": "2"}


def test_dynamodb_tracker_add_after_a_recount_that_missed_its_rows_recounts(
    dynamodb: Any, tracker: DynamoDBInstallTracker
) -> None:
    # Given a batch that read the command, then a recount by another batch before this batch's rows existed
    tracker.register_wait("cmd", "run", "dev", expected=4, task_token="t1")
    tracker.record_results("cmd", [InstanceResult(instance_id="i-0", status="Success", succeeded=True)])
    other = DynamoDBInstallTracker("runs", boto3.client("dynamodb", region_name=REGION))
    raced = []

    def recount_first(params: dict[str, Any], **_: Any) -> None:
        if not raced:
            raced.append(True)
            other.record_results("cmd", [InstanceResult(instance_id="i-0", status="Success", succeeded=True)])

    dynamodb.meta.events.register("provide-client-params.dynamodb.PutItem", recount_first)
    # When this batch's rows are added under the version it read
    recorded = tracker.record_results(
        "cmd", [InstanceResult(instance_id=f"i-{n}", status="Success", succeeded=True) for n in (1, 2)]
    )
    # Then its add is refused (the version moved) and it recounts: every row counted once
    assert raced
    assert recorded.recorded == 2
    command = tracker.get_command("cmd")
    assert command is not None
    assert command.reported == 3
    row = dynamodb.get_item(TableName="runs", Key={"pk": {"S": "COMMAND#cmd"}, "sk": {"S": "COMMAND"}})["Item"]
    assert row["count_version"] == {"N": "2"}  # the other batch's recount, then this batch's


def test_dynamodb_tracker_grants_one_heartbeat_per_interval(tracker: DynamoDBInstallTracker) -> None:
    tracker.register_wait("cmd", "run", "dev", expected=5, task_token="t1", heartbeat_interval_seconds=30)
    granted = [tracker.claim_heartbeat("cmd", "t1", now=1000.0 + s, interval_seconds=30) for s in (0, 10, 29, 31)]
    assert granted == [True, False, False, True]
    command = tracker.get_command("cmd")
    assert command is not None
    assert (command.heartbeat_interval_seconds, command.last_heartbeat_at) == (30, 1031.0)


def test_dynamodb_tracker_tracks_a_command_without_resetting_counts(tracker: DynamoDBInstallTracker) -> None:
    tracker.track_command("cmd", "run", "dev")
    tracker.record_result("cmd", "i-1", "Success", succeeded=True)
    again = tracker.track_command("cmd", "other-run", "other")
    assert (again.run_id, again.reported, again.expected) == ("run", 1, None)


def _stubbed(service: str) -> tuple[Any, Stubber]:
    client = boto3.client(service, region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    return client, Stubber(client)


def test_ssm_directory_pages_through_invocations_and_instances() -> None:
    client, stub = _stubbed("ssm")
    stub.add_response(
        "list_command_invocations",
        {"CommandInvocations": [{"InstanceId": "i-1", "Status": "Success"}], "NextToken": "n"},
        {"CommandId": CMD},
    )
    stub.add_response(
        "list_command_invocations",
        {"CommandInvocations": [{"InstanceId": "i-2", "Status": "Failed"}]},
        {"CommandId": CMD, "NextToken": "n"},
    )
    stub.add_response(
        "describe_instance_information",
        {"InstanceInformationList": [{"InstanceId": "i-0000000000000001"}, {"InstanceId": "i-0000000000000002"}]},
        {"Filters": [{"Key": "tag:PatchGroup", "Values": ["dev"]}]},
    )
    with stub:
        directory = SsmCommandDirectory(client)
        invocations = directory.list_invocations(CMD)
        count = directory.count_managed_instances("PatchGroup", "dev")
    assert [(i.instance_id, i.status) for i in invocations] == [("i-1", "Success"), ("i-2", "Failed")]
    assert count == 2
    stub.assert_no_pending_responses()


def test_ssm_directory_describe_command_unknown_is_none() -> None:
    client, stub = _stubbed("ssm")
    stub.add_client_error("list_commands", service_error_code="InvalidCommandId", expected_params={"CommandId": OTHER})
    stub.add_response(
        "list_commands",
        {
            "Commands": [
                {
                    "CommandId": CMD,
                    "DocumentName": "AWS-RunPatchBaseline",
                    "Comment": "c",
                    "Status": "Success",
                    "ExpiresAfter": datetime(2026, 12, 8, 12, 0, tzinfo=UTC),
                }
            ]
        },
        {"CommandId": CMD},
    )
    with stub:
        directory = SsmCommandDirectory(client)
        assert directory.describe_command(OTHER) is None
        info = directory.describe_command(CMD)
    assert info is not None
    assert (info.comment, info.status, info.expires_after) == ("c", "Success", datetime(2026, 12, 8, 12, 0, tzinfo=UTC))


class _Tally(BaseModel):
    complete: bool = True


def test_step_functions_callbacks_report_a_closed_token_instead_of_raising() -> None:
    client, stub = _stubbed("stepfunctions")
    stub.add_response("send_task_success", {}, {"taskToken": "t", "output": '{"complete":true}'})
    stub.add_client_error("send_task_success", service_error_code="TaskTimedOut")
    stub.add_client_error("send_task_heartbeat", service_error_code="InvalidToken")
    stub.add_client_error("send_task_heartbeat", service_error_code="ThrottlingException")
    with stub:
        callbacks = StepFunctionsCallbacks(client)
        assert callbacks.resume("t", _Tally()) is True
        assert callbacks.resume("t", _Tally()) is False
        assert callbacks.heartbeat("t") is False
        with pytest.raises(
            client.exceptions.ClientError, match=r"\(ThrottlingException\) when calling the SendTaskHeartbeat operation"
        ):
            callbacks.heartbeat("t")
