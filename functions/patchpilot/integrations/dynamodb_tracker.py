"""DynamoDB adapter of the InstallTracker port (one table, command rows + per-instance rows under one key).

A batch of results costs one TransactWriteItems per command (a conditional row per instance + one counter
update): the command's row is written once per batch, never once per event.
"""

import time
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from patchpilot.integrations.ports import InstallTracker
from patchpilot.integrations.runs_table_keys import (
    COMMAND_SORT_KEY,
    INSTANCE_PREFIX,
    command_key,
)
from patchpilot.models.records import BatchRecorded, InstanceResult, TrackedCommand

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef, TransactWriteItemTypeDef

FOREIGN_TTL_SECONDS = 2 * 24 * 3600
# TransactWriteItems takes up to 100 actions: 99 result rows + the command's counter update.
MAX_RESULTS_PER_TRANSACTION = 99


def _str(item: dict[str, Any], name: str) -> str | None:
    value = item.get(name)
    return None if value is None else str(value["S"])


def _int(item: dict[str, Any], name: str) -> int | None:
    value = item.get(name)
    return None if value is None else int(value["N"])


def _float(item: dict[str, Any], name: str) -> float | None:
    value = item.get(name)
    return None if value is None else float(value["N"])


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
        resume_lease_until=_float(item, "resume_lease_until"),
        heartbeat_interval_seconds=_int(item, "heartbeat_interval") or 60,
        last_heartbeat_at=_float(item, "last_heartbeat_at"),
        phase=_str(item, "phase"),
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

    def record_results(self, command_id: str, results: list[InstanceResult]) -> BatchRecorded:
        unique = list({result.instance_id: result for result in reversed(results)}.values())[::-1]
        recorded = duplicates = failed = 0
        for start in range(0, len(unique), MAX_RESULTS_PER_TRANSACTION):
            chunk = unique[start : start + MAX_RESULTS_PER_TRANSACTION]
            while chunk:
                outcome = self._record_chunk(command_id, chunk)
                if outcome is None:
                    return BatchRecorded(recorded=recorded, duplicates=duplicates, unknown_command=True)
                if not outcome:
                    recorded += len(chunk)
                    failed += sum(not result.succeeded for result in chunk)
                    break
                duplicates += len(outcome)
                chunk = [result for index, result in enumerate(chunk) if index not in outcome]
        return BatchRecorded(recorded=recorded, duplicates=duplicates, failed_recorded=failed)

    def _record_chunk(self, command_id: str, chunk: list[InstanceResult]) -> set[int] | None:
        """One transaction: a conditional row per instance + one counter update.

        Returns the indexes of the duplicates (empty: all recorded), or None when the command is not tracked.
        """
        failed = sum(not result.succeeded for result in chunk)
        puts: list[TransactWriteItemTypeDef] = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": {
                        **self._key(command_id, f"{INSTANCE_PREFIX}{result.instance_id}"),
                        "status": {"S": result.status},
                        "succeeded": {"BOOL": result.succeeded},
                        "expires_at": self._expires_at(),
                    },
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
            for result in chunk
        ]
        counter: TransactWriteItemTypeDef = {
            "Update": {
                "TableName": self._table,
                "Key": self._key(command_id),
                "UpdateExpression": "ADD reported :reported, failed :failed",
                "ConditionExpression": "attribute_exists(pk) AND attribute_not_exists(foreign_command)",
                "ExpressionAttributeValues": {":reported": {"N": str(len(chunk))}, ":failed": {"N": str(failed)}},
            }
        }
        try:
            self._client.transact_write_items(TransactItems=[*puts, counter])
        except ClientError as error:
            if error.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            reasons = [reason.get("Code", "None") for reason in error.response.get("CancellationReasons", [])]
            if len(reasons) == len(chunk) + 1 and reasons[-1] == "ConditionalCheckFailed":
                return None
            duplicates = {index for index, reason in enumerate(reasons[:-1]) if reason == "ConditionalCheckFailed"}
            if not duplicates:
                raise
            return duplicates
        return set()

    def register_wait(
        self,
        command_id: str,
        run_id: str,
        stage_name: str,
        expected: int,
        task_token: str,
        heartbeat_interval_seconds: int = 60,
        phase: str | None = None,
    ) -> TrackedCommand:
        phase_values: dict[str, AttributeValueTypeDef] = {":phase": {"S": phase}} if phase else {}
        response = self._client.update_item(
            TableName=self._table,
            Key=self._key(command_id),
            UpdateExpression=(
                "SET run_id = :run, stage_name = :stage, expected = :expected, task_token = :token, "
                "heartbeat_interval = :interval, resumed = :false, reported = if_not_exists(reported, :zero), "
                "failed = if_not_exists(failed, :zero), expires_at = if_not_exists(expires_at, :exp)"
                + (", phase = :phase" if phase else "")
                + " REMOVE foreign_command, resume_lease_until, last_heartbeat_at"
            ),
            ExpressionAttributeValues={
                **phase_values,
                ":run": {"S": run_id},
                ":stage": {"S": stage_name},
                ":expected": {"N": str(expected)},
                ":token": {"S": task_token},
                ":interval": {"N": str(heartbeat_interval_seconds)},
                ":false": {"BOOL": False},
                ":zero": {"N": "0"},
                ":exp": self._expires_at(),
            },
            ReturnValues="ALL_NEW",
        )
        return _to_command(command_id, response["Attributes"])

    def _conditional_update(
        self, command_id: str, update: str, condition: str, values: "dict[str, AttributeValueTypeDef]"
    ) -> bool:
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self._key(command_id),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def claim_resume(self, command_id: str, task_token: str, now: float, lease_seconds: int) -> bool:
        return self._conditional_update(
            command_id,
            "SET resume_lease_until = :until",
            "task_token = :token AND resumed = :false AND "
            "(attribute_not_exists(resume_lease_until) OR resume_lease_until < :now)",
            {
                ":token": {"S": task_token},
                ":false": {"BOOL": False},
                ":now": {"N": repr(now)},
                ":until": {"N": repr(now + lease_seconds)},
            },
        )

    def mark_resumed(self, command_id: str, task_token: str) -> None:
        self._conditional_update(
            command_id,
            "SET resumed = :true REMOVE resume_lease_until",
            "task_token = :token",
            {":token": {"S": task_token}, ":true": {"BOOL": True}},
        )

    def release_resume(self, command_id: str, task_token: str) -> None:
        self._conditional_update(
            command_id,
            "REMOVE resume_lease_until",
            "task_token = :token AND resumed = :false",
            {":token": {"S": task_token}, ":false": {"BOOL": False}},
        )

    def claim_heartbeat(self, command_id: str, task_token: str, now: float, interval_seconds: int) -> bool:
        return self._conditional_update(
            command_id,
            "SET last_heartbeat_at = :now",
            "task_token = :token AND resumed = :false AND "
            "(attribute_not_exists(last_heartbeat_at) OR last_heartbeat_at <= :due)",
            {
                ":token": {"S": task_token},
                ":false": {"BOOL": False},
                ":now": {"N": repr(now)},
                ":due": {"N": repr(now - interval_seconds)},
            },
        )

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
