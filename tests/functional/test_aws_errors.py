"""Transient AWS errors come out of the adapters' clients as one typed, retryable error."""

from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from patchpilot.integrations.aws_errors import classified
from patchpilot.models.exceptions import TransientAwsError

REGION = "us-east-1"


def _stubbed(service: str) -> tuple[Any, Stubber]:
    client = boto3.client(service, region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    return client, Stubber(client)


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("ThrottlingException", 400),
        ("ProvisionedThroughputExceededException", 400),
        ("InternalServerError", 500),
        ("SomethingNew", 503),
    ],
)
def test_classified_client_raises_transient_error_for_throttling_and_5xx(code: str, status: int) -> None:
    client, stub = _stubbed("dynamodb")
    stub.add_client_error("get_item", service_error_code=code, http_status_code=status)
    with stub, pytest.raises(TransientAwsError, match=code):
        classified(client).get_item(TableName="runs", Key={"pk": {"S": "a"}})


def test_classified_client_treats_a_transaction_conflict_as_transient_but_not_a_failed_condition() -> None:
    client, stub = _stubbed("dynamodb")
    items: list[Any] = [{"ConditionCheck": {"TableName": "t", "Key": {"pk": {"S": "a"}}, "ConditionExpression": "x"}}]
    conflict = {"CancellationReasons": [{"Code": "TransactionConflict"}]}
    condition = {"CancellationReasons": [{"Code": "ConditionalCheckFailed"}]}
    for reasons in (conflict, condition):
        stub.add_client_error(
            "transact_write_items", service_error_code="TransactionCanceledException", modeled_fields=reasons
        )
    with stub:
        wrapped = classified(client)
        with pytest.raises(TransientAwsError, match="TransactionCanceledException"):
            wrapped.transact_write_items(TransactItems=items)
        with pytest.raises(client.exceptions.TransactionCanceledException, match="TransactionCanceledException"):
            wrapped.transact_write_items(TransactItems=items)


def test_classified_client_keeps_other_errors_and_pages_through_results() -> None:
    client, stub = _stubbed("ssm")
    stub.add_client_error("list_commands", service_error_code="InvalidCommandId")
    stub.add_response(
        "list_commands", {"Commands": [{"CommandId": "4f0b2a6e-7c1d-4a3b-9e2f-5d6c7b8a9e01"}], "NextToken": "n"}
    )
    stub.add_client_error("list_commands", service_error_code="ThrottlingException")
    with stub:
        wrapped = classified(client)
        with pytest.raises(client.exceptions.InvalidCommandId, match="InvalidCommandId"):
            wrapped.list_commands()
        pages = wrapped.get_paginator("list_commands").paginate()
        with pytest.raises(TransientAwsError, match="ThrottlingException"):
            list(pages)
