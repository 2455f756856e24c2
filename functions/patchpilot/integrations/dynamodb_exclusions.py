"""DynamoDB adapter of the ExclusionLedger port (runs table: `pk=RUN#<run>`, `sk=EXCLUSION#<stage>#<patch>`)."""

import time
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from patchpilot.integrations.ports import ExclusionLedger
from patchpilot.models.exclusion import ExclusionRecord

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

EXCLUSION_PREFIX = "EXCLUSION#"


def run_key(run_id: str) -> str:
    """Partition key of everything recorded about one run."""
    return f"RUN#{run_id}"


def exclusion_sort_key(stage_name: str, patch_id: str) -> str:
    """Sort key of one excluded patch of a stage (the frozen patch set reads the patch id after the second `#`)."""
    return f"{EXCLUSION_PREFIX}{stage_name}#{patch_id}"


class DynamoDBExclusionLedger(ExclusionLedger):
    """One conditional put per excluded patch; the whole record is kept as JSON next to a few readable attributes."""

    def __init__(self, table_name: str, client: "DynamoDBClient", ttl_days: int = 90) -> None:
        self._table = table_name
        self._client = client
        self._ttl_seconds = ttl_days * 24 * 3600

    def record(self, record: ExclusionRecord) -> bool:
        item: dict[str, AttributeValueTypeDef] = {
            "pk": {"S": run_key(record.run_id)},
            "sk": {"S": exclusion_sort_key(record.stage_name, record.patch_id)},
            "run_id": {"S": record.run_id},
            "stage_name": {"S": record.stage_name},
            "patch_id": {"S": record.patch_id},
            "decided_at": {"S": record.decided_at.isoformat()},
            "baseline_ids": {"L": [{"S": baseline_id} for baseline_id in record.baseline_ids]},
            "record": {"S": record.model_dump_json()},
            "expires_at": {"N": str(int(time.time()) + self._ttl_seconds)},
        }
        try:
            self._client.put_item(TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(pk)")
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def exclusions_of(self, run_id: str) -> list[ExclusionRecord]:
        paginator = self._client.get_paginator("query")
        pages = paginator.paginate(
            TableName=self._table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": {"S": run_key(run_id)}, ":prefix": {"S": EXCLUSION_PREFIX}},
            ConsistentRead=True,
        )
        return [
            ExclusionRecord.model_validate_json(str(item["record"]["S"]))
            for page in pages
            for item in page.get("Items", [])
        ]
