"""DynamoDB adapter of the BisectionLedger port: one item per stage attempt's bisection under ``RUN#<run>``."""

import time
from typing import TYPE_CHECKING

from patchpilot.integrations.ports import BisectionLedger
from patchpilot.integrations.runs_table_keys import bisection_sort_key, run_key
from patchpilot.models.bisection import BisectionRecord

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class DynamoDBBisectionLedger(BisectionLedger):
    """``BISECTION#<stage>#<attempt>``: the record as JSON (a few KB: at most 10 OSes x 200 suspects), with a TTL."""

    def __init__(self, table_name: str, client: "DynamoDBClient", ttl_days: int = 90) -> None:
        self._table = table_name
        self._client = client
        self._ttl_seconds = ttl_days * 24 * 3600

    def bisection(self, run_id: str, stage_name: str, attempt: int) -> BisectionRecord | None:
        item = self._client.get_item(
            TableName=self._table,
            Key={"pk": {"S": run_key(run_id)}, "sk": {"S": bisection_sort_key(stage_name, attempt)}},
            ConsistentRead=True,
        ).get("Item")
        if item is None or "record" not in item:
            return None
        return BisectionRecord.model_validate_json(item["record"]["S"])

    def save(self, record: BisectionRecord) -> None:
        self._client.put_item(
            TableName=self._table,
            Item={
                "pk": {"S": run_key(record.run_id)},
                "sk": {"S": bisection_sort_key(record.stage_name, record.attempt)},
                "record": {"S": record.model_dump_json()},
                "status": {"S": record.status},
                "expires_at": {"N": str(int(time.time()) + self._ttl_seconds)},
            },
        )
