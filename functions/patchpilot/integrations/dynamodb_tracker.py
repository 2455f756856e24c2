"""DynamoDB adapter of the InstallTracker port (one table, command rows + per-instance rows under one key)."""

import time
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from patchpilot.integrations.ports import InstallTracker, RecordOutcome
from patchpilot.integrations.runs_table_keys import (
    COMMAND_SORT_KEY,
    INSTANCE_PREFIX,
    command_key,
    instance_result_sort_key,
)
from patchpilot.models.records import InstanceResult, TrackedCommand

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

FOREIGN_TTL_SECONDS = 2 * 24 * 3600


def _str(item: dict[str, Any], name: str) -> str | None:
    value = item.get(name)
    return None if value is None else str(value["S"])


def _int(item: dict[str, Any], name: str) -> int | None:
    value = item.get(name)
    return None if value is None else int(value["N"])


def _bool(item: dict[str, Any], name: str) -> bool:
    value = item.get(name)
    return bool(value and value.get("BOOL"))


def _to_command(command_id: str, item: dict[str, Any]) -> TrackedCommand:
    return TrackedCommand(
        command_id=command_id,
        run_id=_str(item, "run_id") or "",
        stage_name=_str(item, "stage_name") or "",
        expected=_int(item, "expected"),
        reported=_int(item, "reported") or 0,
        failed=_int(item, "failed") or 0,
        task_token=_str(item, "task_token"),
        resumed=_bool(item, "resumed"),
        foreign=_bool(item, "foreign_command"),
    )


class DynamoDBInstallTracker(InstallTracker):
    """Install tracking in the runs table: `pk=COMMAND#id`, `sk=COMMAND` or `sk=INSTANCE#i-...`."""

    def __init__(self, table_name: str, client: "DynamoDBClient", ttl_days: int = 90) -> None:
        self._table = table_name
        self._client = client
        self._ttl_seconds = ttl_days * 24 * 3600

    def _expires_at(self, seconds: int | None = None) -> "AttributeValueTypeDef":
        return {"N": str(int(time.time()) + (seconds or self._ttl_seconds))}

    def _key(self, command_id: str, sort_key: str = COMMAND_SORT_KEY) -> "dict[str, AttributeValueTypeDef]":
        return {"pk": {"S": command_key(command_id)}, "sk": {"S": sort_key}}

    def track_command(self, command_id: str, run_id: str, stage_name: str) -> TrackedCommand:
        response = self._client.update_item(
            TableName=self._table,
            Key=self._key(command_id),
            UpdateExpression=(
                "SET run_id = if_not_exists(run_id, :run), stage_name = if_not_exists(stage_name, :stage), "
                "reported = if_not_exists(reported, :zero), failed = if_not_exists(failed, :zero), "
                "expires_at = if_not_exists(expires_at, :exp)"
            ),
            ExpressionAttributeValues={
                ":run": {"S": run_id},
                ":stage": {"S": stage_name},
                ":zero": {"N": "0"},
                ":exp": self._expires_at(),
            },
            ReturnValues="ALL_NEW",
        )
        return _to_command(command_id, response["Attributes"])

    def mark_foreign(self, command_id: str) -> None:
        try:
            self._client.put_item(
                TableName=self._table,
                Item={
                    **self._key(command_id),
                    "foreign_command": {"BOOL": True},
                    "expires_at": self._expires_at(FOREIGN_TTL_SECONDS),
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def get_command(self, command_id: str) -> TrackedCommand | None:
        response = self._client.get_item(TableName=self._table, Key=self._key(command_id), ConsistentRead=True)
        item = response.get("Item")
        return None if item is None else _to_command(command_id, item)

    def record_result(self, command_id: str, instance_id: str, status: str, succeeded: bool) -> RecordOutcome:
        try:
            self._client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": {
                                **self._key(command_id, instance_result_sort_key(instance_id)),
                                "status": {"S": status},
                                "succeeded": {"BOOL": succeeded},
                                "expires_at": self._expires_at(),
                            },
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    {
                        "Update": {
                            "TableName": self._table,
                            "Key": self._key(command_id),
                            "UpdateExpression": "ADD reported :one, failed :failed",
                            "ConditionExpression": "attribute_exists(pk) AND attribute_not_exists(foreign_command)",
                            "ExpressionAttributeValues": {
                                ":one": {"N": "1"},
                                ":failed": {"N": "0" if succeeded else "1"},
                            },
                        }
                    },
                ]
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            reasons = [reason.get("Code", "None") for reason in error.response.get("CancellationReasons", [])]
            if len(reasons) == 2 and reasons[1] == "ConditionalCheckFailed":
                return RecordOutcome.UNKNOWN_COMMAND
            if reasons and reasons[0] == "ConditionalCheckFailed":
                return RecordOutcome.DUPLICATE
            raise
        return RecordOutcome.RECORDED

    def register_wait(
        self, command_id: str, run_id: str, stage_name: str, expected: int, task_token: str
    ) -> TrackedCommand:
        response = self._client.update_item(
            TableName=self._table,
            Key=self._key(command_id),
            UpdateExpression=(
                "SET run_id = :run, stage_name = :stage, expected = :expected, task_token = :token, "
                "resumed = :false, reported = if_not_exists(reported, :zero), failed = if_not_exists(failed, :zero), "
                "expires_at = if_not_exists(expires_at, :exp) REMOVE foreign_command"
            ),
            ExpressionAttributeValues={
                ":run": {"S": run_id},
                ":stage": {"S": stage_name},
                ":expected": {"N": str(expected)},
                ":token": {"S": task_token},
                ":false": {"BOOL": False},
                ":zero": {"N": "0"},
                ":exp": self._expires_at(),
            },
            ReturnValues="ALL_NEW",
        )
        return _to_command(command_id, response["Attributes"])

    def claim_resume(self, command_id: str, task_token: str) -> bool:
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self._key(command_id),
                UpdateExpression="SET resumed = :true",
                ConditionExpression="task_token = :token AND resumed = :false",
                ExpressionAttributeValues={
                    ":token": {"S": task_token},
                    ":true": {"BOOL": True},
                    ":false": {"BOOL": False},
                },
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def list_results(self, command_id: str) -> list[InstanceResult]:
        results: list[InstanceResult] = []
        paginator = self._client.get_paginator("query")
        pages = paginator.paginate(
            TableName=self._table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": {"S": command_key(command_id)}, ":prefix": {"S": INSTANCE_PREFIX}},
            ConsistentRead=True,
        )
        for page in pages:
            for item in page.get("Items", []):
                results.append(
                    InstanceResult(
                        instance_id=str(item["sk"]["S"]).removeprefix(INSTANCE_PREFIX),
                        status=str(item["status"]["S"]),
                        succeeded=bool(item["succeeded"]["BOOL"]),
                    )
                )
        return results
