"""Approval adapters on moto (DynamoDB approvals, SNS alerts) and Stubber (SendTaskFailure); both handlers on moto."""

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from pydantic import SecretStr

from patchpilot.integrations import aws_clients
from patchpilot.integrations.dynamodb_approvals import DynamoDBApprovalStore
from patchpilot.integrations.sfn_callbacks import StepFunctionsCallbacks
from patchpilot.models.approval import ApprovalRecord
from patchpilot.models.exceptions import ApprovalExpired, ApprovalIdConflict, ApprovalNotFound
from tests.fakes import RecordingCallbacks
from tests.functional.aws_fixtures import LambdaContext

REGION = "us-east-1"
NOW = datetime(2026, 12, 10, 9, 0, 0, 123456, tzinfo=UTC)
EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:patchpilot-rollout:2026-12"
CONTEXT = LambdaContext("ApprovalFunction")
TOKEN = "AQCEAAAAKgAAAAMAAAAAAAAAAdIvQm9ndXMtdGFzay10b2tlbi1mb3ItdGVzdHM="


@pytest.fixture
def store(dynamodb: Any) -> DynamoDBApprovalStore:
    return DynamoDBApprovalStore("runs", dynamodb, ttl_days=30)


def _record(token: str = TOKEN, execution: str = EXECUTION, now: datetime = NOW) -> ApprovalRecord:
    return ApprovalRecord(
        approval_id="k7m2x9qa",
        execution_id=execution,
        run_id="2026-12",
        stage_name="prod-1",
        task_token=SecretStr(token),
        status="pending",
        summary="promote run 2026-12 to stage prod-1",
        requested_at=now,
        expires_at=now + timedelta(hours=1),
    )


def test_dynamodb_approvals_open_stores_the_record_under_its_key_with_a_ttl(
    store: DynamoDBApprovalStore, dynamodb: Any
) -> None:
    assert store.open(_record()) == _record()
    assert store.get("k7m2x9qa") == _record()
    assert store.get("abcd2345") is None
    item = dynamodb.get_item(TableName="runs", Key={"pk": {"S": "APPROVAL#k7m2x9qa"}, "sk": {"S": "APPROVAL"}})["Item"]
    assert item["deadline"]["S"] == "2026-12-10T10:00:00.123456+00:00"
    assert int(item["expires_at"]["N"]) == int((NOW + timedelta(hours=1, days=30)).timestamp())


def test_dynamodb_approvals_open_again_refreshes_token_and_deadline_of_a_pending_wait(
    store: DynamoDBApprovalStore,
) -> None:
    store.open(_record())
    later = NOW + timedelta(minutes=3)
    reopened = store.open(_record(token="token-2", now=later))
    assert reopened.task_token.get_secret_value() == "token-2"
    assert (reopened.status, reopened.requested_at, reopened.expires_at) == (
        "pending",
        NOW,
        later + timedelta(hours=1),
    )
    assert store.get("k7m2x9qa") == reopened


def test_dynamodb_approvals_open_again_after_a_decision_keeps_it_and_takes_the_new_token(
    store: DynamoDBApprovalStore,
) -> None:
    store.open(_record())
    store.decide("k7m2x9qa", "approved", "alice", None, NOW + timedelta(minutes=1))
    reopened = store.open(_record(token="token-2"))
    assert (reopened.status, reopened.approver, reopened.task_token.get_secret_value()) == (
        "approved",
        "alice",
        "token-2",
    )


def test_dynamodb_approvals_open_refuses_an_id_held_by_another_execution(store: DynamoDBApprovalStore) -> None:
    store.open(_record())
    with pytest.raises(
        ApprovalIdConflict, match="approval id k7m2x9qa already belongs to stage prod-1 of another wait"
    ):
        store.open(_record(execution=f"{EXECUTION}-other"))
    stored = store.get("k7m2x9qa")
    assert stored is not None
    assert stored.execution_id == EXECUTION


def test_dynamodb_approvals_decide_exactly_once_and_only_before_the_deadline(store: DynamoDBApprovalStore) -> None:
    store.open(_record())
    assert store.decide("k7m2x9qa", "rejected", "bob", "x", NOW + timedelta(hours=1)) is None
    decided = store.decide("k7m2x9qa", "rejected", "bob", "kernel panic on staging", NOW + timedelta(minutes=59))
    assert decided is not None
    assert (decided.status, decided.approver, decided.reason, decided.decided_at) == (
        "rejected",
        "bob",
        "kernel panic on staging",
        NOW + timedelta(minutes=59),
    )
    assert store.decide("k7m2x9qa", "approved", "alice", None, NOW + timedelta(minutes=59)) is None
    assert store.decide("abcd2345", "approved", "alice", None, NOW) is None
    assert store.get("abcd2345") is None


def test_dynamodb_approvals_pending_queries_the_index_for_waiting_approvals_only(
    store: DynamoDBApprovalStore, dynamodb: Any
) -> None:
    later = _record(token="t-later").model_copy(
        update={"approval_id": "nater234", "stage_name": "prod-2", "expires_at": NOW + timedelta(hours=3)}
    )
    decided = _record(token="t-decided").model_copy(update={"approval_id": "decyded2", "stage_name": "prod-3"})
    expired = _record(token="t-expired").model_copy(
        update={"approval_id": "expyred2", "stage_name": "prod-4", "expires_at": NOW + timedelta(hours=2)}
    )
    for record in (later, _record(), decided, expired):
        store.open(record)
    assert store.decide("decyded2", "approved", "alice", None, NOW) is not None
    assert store.expire("expyred2", "t-expired") is True
    pending = store.pending()
    assert [(a.approval_id, a.status) for a in pending] == [("k7m2x9qa", "pending"), ("nater234", "pending")]
    assert all(a.task_token.get_secret_value() == "" for a in pending)
    store.open(decided)
    assert [a.approval_id for a in store.pending()] == ["k7m2x9qa", "nater234"]
    store.open(expired.model_copy(update={"task_token": SecretStr("t-expired-2")}))
    assert [a.approval_id for a in store.pending()] == ["k7m2x9qa", "expyred2", "nater234"]


def test_dynamodb_approvals_expire_only_while_the_token_is_current(store: DynamoDBApprovalStore) -> None:
    store.open(_record())
    store.open(_record(token="token-2"))
    assert store.expire("k7m2x9qa", TOKEN) is False
    assert store.expire("k7m2x9qa", "token-2") is True
    expired = store.get("k7m2x9qa")
    assert expired is not None
    assert expired.status == "expired"
    assert store.expire("abcd2345", "token-2") is False
    # a retried request task reopens an expired wait
    assert store.open(_record(token="token-3")).status == "pending"


@pytest.mark.parametrize(("code", "expected"), [(None, True), ("TaskTimedOut", False), ("TaskDoesNotExist", False)])
def test_sfn_callbacks_fail_sends_task_failure_and_reports_a_closed_token(code: str | None, expected: bool) -> None:
    client = boto3.client("stepfunctions", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    params = {"taskToken": TOKEN, "error": "ApprovalRejected", "cause": '{"approver": "bob"}'}
    with Stubber(client) as stub:
        if code is None:
            stub.add_response("send_task_failure", {}, params)
        else:
            stub.add_client_error("send_task_failure", service_error_code=code, expected_params=params)
        assert StepFunctionsCallbacks(client).fail(TOKEN, "ApprovalRejected", '{"approver": "bob"}') is expected
        stub.assert_no_pending_responses()


def test_sfn_callbacks_fail_raises_other_errors() -> None:
    client = boto3.client("stepfunctions", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stub:
        stub.add_client_error("send_task_failure", service_error_code="AccessDeniedException")
        with pytest.raises(
            client.exceptions.ClientError, match=r"\(AccessDeniedException\) when calling the SendTaskFailure operation"
        ):
            StepFunctionsCallbacks(client).fail(TOKEN, "ApprovalRejected", "{}")


@pytest.fixture
def approval_env(
    handler_env: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> tuple[Any, str, RecordingCallbacks]:
    from patchpilot.handlers import wiring

    sns, sqs = boto3.client("sns", region_name=REGION), boto3.client("sqs", region_name=REGION)
    topic = sns.create_topic(Name="alerts")["TopicArn"]
    queue = sqs.create_queue(QueueName="chat")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    callbacks = RecordingCallbacks()
    monkeypatch.setattr(wiring, "execution_callbacks", lambda: callbacks)
    handler_env(ALERT_TOPIC_ARN=topic)
    return sqs, queue, callbacks


def _bodies(sqs: Any, queue: str) -> list[str]:
    return [m["Body"] for m in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])]


def test_approval_handlers_request_then_decide_on_moto(
    approval_env: tuple[Any, str, RecordingCallbacks], capsys: pytest.CaptureFixture[str]
) -> None:
    from patchpilot.handlers.decide_approval import handler as decide
    from patchpilot.handlers.request_approval import handler as request

    sqs, queue, callbacks = approval_env
    event = {
        "task_token": TOKEN,
        "run_id": "2026-12",
        "stage_name": "prod-1",
        "execution_id": EXECUTION,
        "timeout_seconds": 3600,
        "summary": "promote run 2026-12 to stage prod-1 (patch group prod-1)",
    }
    requested = request(event, CONTEXT)
    assert set(requested) == {
        "approval_id",
        "run_id",
        "stage_name",
        "status",
        "expires_at",
        "alert_message_id",
        "decision_redelivered",
    }
    assert requested["status"] == "pending"
    approval_id = requested["approval_id"]
    assert request(event, CONTEXT)["approval_id"] == approval_id

    decided = decide({"approval_id": approval_id.upper(), "decision": "approve", "approver": "alice"}, CONTEXT)
    again = decide({"approval_id": approval_id, "decision": "reject", "approver": "bob"}, CONTEXT)

    assert (decided["status"], decided["recorded_earlier"], decided["execution_notified"]) == ("approved", False, True)
    assert (again["status"], again["approver"], again["recorded_earlier"]) == ("approved", "alice", True)
    assert [token for token, _ in callbacks.resumed] == [TOKEN]
    bodies = _bodies(sqs, queue)
    kinds = sorted(json.loads(json.loads(body)["Message"])["kind"] for body in bodies)
    assert kinds == ["approval_decided", "approval_requested", "approval_requested"]
    assert all(TOKEN not in body for body in bodies)
    assert TOKEN not in capsys.readouterr().out


def test_decide_approval_handler_raises_typed_errors(approval_env: tuple[Any, str, RecordingCallbacks]) -> None:
    from patchpilot.handlers.decide_approval import handler as decide
    from patchpilot.handlers.request_approval import handler as request

    with pytest.raises(ApprovalNotFound, match="no approval has the id abcd2345"):
        decide({"approval_id": "abcd2345", "decision": "approve", "approver": "alice"}, CONTEXT)
    event = {
        "task_token": TOKEN,
        "run_id": "2026-12",
        "stage_name": "prod-1",
        "execution_id": EXECUTION,
        "timeout_seconds": 1,
        "summary": "promote",
    }
    approval_id = request(event, CONTEXT)["approval_id"]
    aws_clients.dynamodb().update_item(
        TableName="runs",
        Key={"pk": {"S": f"APPROVAL#{approval_id}"}, "sk": {"S": "APPROVAL"}},
        UpdateExpression="SET deadline = :past",
        ExpressionAttributeValues={":past": {"S": "2020-01-01T00:00:00.000000+00:00"}},
    )
    with pytest.raises(ApprovalExpired, match=rf"approval {approval_id} \(.*\) expired at 2020-01-01T00:00:00\+00:00"):
        decide({"approval_id": approval_id, "decision": "approve", "approver": "alice"}, CONTEXT)
