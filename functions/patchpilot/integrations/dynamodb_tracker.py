"""DynamoDB adapter of the InstallTracker port (one table, command rows + per-instance rows under one key).

A batch of results costs one conditional PutItem per instance (1 write unit each) and ONE counter update per
command: the command's row is written once per batch, never once per event. A transaction would make rows and
counter atomic at twice the price (2 write units per item, DynamoDB pricing "transactional write request");
instead the counter is kept exact by a version protocol:

- the counter only ever adds the rows this call created (a duplicate's put fails its condition), and only if no
  repair ran since the call read the command row (``count_version``), so it never counts a row twice;
- a call that saw a duplicate (the row may come from an attempt that died before counting it), or whose add lost
  the version race, repairs: it counts the rows themselves and sets the counter to that, guarded by
  ``count_version`` and ``count_adds`` so an add that happened meanwhile is never overwritten.

A crash between rows and counter leaves the counter short (never long) until the batch's redelivery repairs it,
so a waiting execution is never resumed early. https://aws.amazon.com/dynamodb/pricing/on-demand/
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
from patchpilot.models.exceptions import TransientAwsError
from patchpilot.models.records import BatchRecorded, InstanceResult, TrackedCommand

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

FOREIGN_TTL_SECONDS = 2 * 24 * 3600
# A repair that keeps losing the race to concurrent batches gives up and lets the batch be redelivered.
MAX_REPAIR_ATTEMPTS = 5


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
        command = self._command_item(command_id)
        if command is None or _bool(command, "foreign_command"):
            return BatchRecorded(unknown_command=True)
        version = _int(command, "count_version") or 0
        created = [result for result in unique if self._put_result(command_id, result)]
        duplicates = len(unique) - len(created)
        failed = sum(not result.succeeded for result in created)
        counted = not created or self._add_counts(command_id, version, len(created), failed)
        if counted is None:
            return BatchRecorded(recorded=0, duplicates=duplicates, unknown_command=True)
        if duplicates or not counted:
            self._repair_counts(command_id)
        return BatchRecorded(recorded=len(created), duplicates=duplicates, failed_recorded=failed)

    def _command_item(self, command_id: str) -> dict[str, Any] | None:
        response = self._client.get_item(TableName=self._table, Key=self._key(command_id), ConsistentRead=True)
        return response.get("Item")

    def _put_result(self, command_id: str, result: InstanceResult) -> bool:
        """One instance's row, only if it is new: False for a duplicate."""
        try:
            self._client.put_item(
                TableName=self._table,
                Item={
                    **self._key(command_id, f"{INSTANCE_PREFIX}{result.instance_id}"),
                    "status": {"S": result.status},
                    "succeeded": {"BOOL": result.succeeded},
                    "expires_at": self._expires_at(),
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def _add_counts(self, command_id: str, version: int, reported: int, failed: int) -> bool | None:
        """Add the rows this call created; False when a repair ran meanwhile, None when the command is gone."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self._key(command_id),
                UpdateExpression="ADD reported :reported, failed :failed, count_adds :one",
                ConditionExpression=(
                    "attribute_exists(pk) AND attribute_not_exists(foreign_command) AND "
                    "(count_version = :version OR attribute_not_exists(count_version))"
                    if version == 0
                    else "attribute_exists(pk) AND attribute_not_exists(foreign_command) AND count_version = :version"
                ),
                ExpressionAttributeValues={
                    ":reported": {"N": str(reported)},
                    ":failed": {"N": str(failed)},
                    ":one": {"N": "1"},
                    ":version": {"N": str(version)},
                },
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            command = self._command_item(command_id)
            return None if command is None or _bool(command, "foreign_command") else False
        return True

    def _repair_counts(self, command_id: str) -> None:
        """Set the counter to the command's rows, unless another batch added or repaired meanwhile (then again)."""
        for _ in range(MAX_REPAIR_ATTEMPTS):
            command = self._command_item(command_id)
            if command is None or _bool(command, "foreign_command"):
                return
            version, adds = _int(command, "count_version"), _int(command, "count_adds")
            rows = self.list_results(command_id)
            guard = [
                "count_version = :version" if version is not None else "attribute_not_exists(count_version)",
                "count_adds = :adds" if adds is not None else "attribute_not_exists(count_adds)",
            ]
            values: dict[str, AttributeValueTypeDef] = {
                ":reported": {"N": str(len(rows))},
                ":failed": {"N": str(sum(not row.succeeded for row in rows))},
                ":next": {"N": str((version or 0) + 1)},
            }
            if version is not None:
                values[":version"] = {"N": str(version)}
            if adds is not None:
                values[":adds"] = {"N": str(adds)}
            if self._conditional_update(
                command_id,
                "SET reported = :reported, failed = :failed, count_version = :next",
                " AND ".join(guard),
                values,
            ):
                return
        raise TransientAwsError(
            f"command {command_id}: concurrent batches changed the counter during {MAX_REPAIR_ATTEMPTS} recounts"
        )

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
