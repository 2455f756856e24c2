"""DynamoDB adapter of the SnapshotLedger port: snapshot sets and rollbacks under ``RUN#<run>``."""

import time
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from patchpilot.integrations.ports import SnapshotLedger
from patchpilot.integrations.runs_table_keys import (
    ROLLBACK_PREFIX,
    SNAPSHOT_PREFIX,
    rollback_sort_key,
    run_key,
    snapshot_set_sort_key,
)
from patchpilot.models.snapshots import RollbackRecord, SnapshotSet

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class DynamoDBSnapshotLedger(SnapshotLedger):
    """One item per snapshot set (``SNAPSHOT#<stage>#<instance>``) and per rollback (``ROLLBACK#<instance>#<task>``)."""

    def __init__(self, table_name: str, client: "DynamoDBClient", ttl_days: int = 90) -> None:
        self._table = table_name
        self._client = client
        self._ttl_seconds = ttl_days * 24 * 3600

    def _expires_at(self) -> str:
        return str(int(time.time()) + self._ttl_seconds)

    def record_set(self, snapshot_set: SnapshotSet) -> bool:
        try:
            self._client.put_item(
                TableName=self._table,
                Item={
                    "pk": {"S": run_key(snapshot_set.run_id)},
                    "sk": {"S": snapshot_set_sort_key(snapshot_set.stage_name, snapshot_set.instance_id)},
                    "record": {"S": snapshot_set.model_dump_json()},
                    "expires_at": {"N": self._expires_at()},
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def _records(self, run_id: str, prefix: str) -> list[str]:
        records: list[str] = []
        pages = self._client.get_paginator("query").paginate(
            TableName=self._table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": {"S": run_key(run_id)}, ":prefix": {"S": prefix}},
            ConsistentRead=True,
        )
        for page in pages:
            records.extend(str(item["record"]["S"]) for item in page.get("Items", []) if "record" in item)
        return records

    def sets_of(self, run_id: str) -> list[SnapshotSet]:
        return [SnapshotSet.model_validate_json(record) for record in self._records(run_id, SNAPSHOT_PREFIX)]

    def record_rollback(self, record: RollbackRecord) -> None:
        self._client.put_item(
            TableName=self._table,
            Item={
                "pk": {"S": run_key(record.run_id)},
                "sk": {"S": rollback_sort_key(record.instance_id, record.task_id)},
                "record": {"S": record.model_dump_json()},
                "expires_at": {"N": self._expires_at()},
            },
        )

    def rollbacks_of(self, run_id: str) -> list[RollbackRecord]:
        records = [RollbackRecord.model_validate_json(record) for record in self._records(run_id, ROLLBACK_PREFIX)]
        return sorted(records, key=lambda record: record.requested_at)
