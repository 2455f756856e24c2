"""DynamoDB adapter of the RunLedger port: `pk=RUN#<run id>, sk=STAGE#<name>` per passed stage."""

import time
from typing import TYPE_CHECKING

from patchpilot.integrations.ports import RunLedger
from patchpilot.integrations.runs_table_keys import PASSED_STAGE_PREFIX, passed_stage_sort_key, run_key

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class DynamoDBRunLedger(RunLedger):
    """Passed stages in the runs table, so that a resumed attempt skips them."""

    def __init__(self, table_name: str, client: "DynamoDBClient", ttl_days: int = 90) -> None:
        self._table = table_name
        self._client = client
        self._ttl_seconds = ttl_days * 24 * 3600

    def record_stage_passed(self, run_id: str, stage_name: str) -> None:
        self._client.put_item(
            TableName=self._table,
            Item={
                "pk": {"S": run_key(run_id)},
                "sk": {"S": passed_stage_sort_key(stage_name)},
                "status": {"S": "passed"},
                "expires_at": {"N": str(int(time.time()) + self._ttl_seconds)},
            },
        )

    def passed_stages(self, run_id: str) -> list[str]:
        stages: list[str] = []
        pages = self._client.get_paginator("query").paginate(
            TableName=self._table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": {"S": run_key(run_id)}, ":prefix": {"S": PASSED_STAGE_PREFIX}},
            ConsistentRead=True,
        )
        for page in pages:
            stages.extend(str(item["sk"]["S"]).removeprefix(PASSED_STAGE_PREFIX) for item in page.get("Items", []))
        return stages
