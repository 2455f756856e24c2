"""DynamoDB adapter of the ExclusionLedger port (runs table: `pk=RUN#<run>`, `sk=EXCLUSION#<stage>#<patch>`)."""

import time
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from patchpilot.integrations.ports import ExclusionLedger
from patchpilot.integrations.runs_table_keys import (
    EXCLUSION_ATTRIBUTE,
    EXCLUSION_PREFIX,
    EXCLUSION_VALUE,
    EXCLUSIONS_INDEX,
    RETIRED_EXCLUSION_PREFIX,
    exclusion_sort_key,
    patch_of_exclusion_sort_key,
    retired_exclusion_sort_key,
    run_key,
)
from patchpilot.models.exclusion import ExclusionRecord, RetiredExclusion
from patchpilot.models.patches import as_utc

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef


class DynamoDBExclusionLedger(ExclusionLedger):
    """One conditional put per excluded patch; the whole record is kept as JSON next to a few readable attributes.

    Retiring moves the row, in one transaction, from ``EXCLUSION#`` to ``EXCLUSION_REMOVED#`` (with ``removed_by``
    and ``removed_at``): the frozen patch set reads only ``EXCLUSION#`` rows, so a retired one holds nothing back.
    """

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
            EXCLUSION_ATTRIBUTE: {"S": EXCLUSION_VALUE},
        }
        try:
            self._client.put_item(TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(pk)")
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def _rows(self, run_id: str, prefix: str) -> Iterator[dict[str, Any]]:
        paginator = self._client.get_paginator("query")
        pages = paginator.paginate(
            TableName=self._table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": {"S": run_key(run_id)}, ":prefix": {"S": prefix}},
            ConsistentRead=True,
        )
        for page in pages:
            yield from page.get("Items", [])

    def exclusions_of(self, run_id: str) -> list[ExclusionRecord]:
        return [
            ExclusionRecord.model_validate_json(str(item["record"]["S"]))
            for item in self._rows(run_id, EXCLUSION_PREFIX)
        ]

    def excluded_patches(self, run_id: str) -> set[str]:
        return {patch_of_exclusion_sort_key(str(item["sk"]["S"])) for item in self._rows(run_id, EXCLUSION_PREFIX)}

    def retire(self, record: ExclusionRecord, retired_by: str, retired_at: datetime) -> bool:
        pk: AttributeValueTypeDef = {"S": run_key(record.run_id)}
        when = as_utc(retired_at).isoformat(timespec="seconds")
        try:
            self._client.transact_write_items(
                TransactItems=[
                    {
                        "Delete": {
                            "TableName": self._table,
                            "Key": {"pk": pk, "sk": {"S": exclusion_sort_key(record.stage_name, record.patch_id)}},
                            "ConditionExpression": "attribute_exists(pk)",
                        }
                    },
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": {
                                "pk": pk,
                                "sk": {"S": retired_exclusion_sort_key(record.stage_name, record.patch_id, when)},
                                "run_id": {"S": record.run_id},
                                "stage_name": {"S": record.stage_name},
                                "patch_id": {"S": record.patch_id},
                                "record": {"S": record.model_dump_json()},
                                "removed_by": {"S": retired_by},
                                "removed_at": {"S": when},
                                "expires_at": {"N": str(int(time.time()) + self._ttl_seconds)},
                                EXCLUSION_ATTRIBUTE: {"S": EXCLUSION_VALUE},
                            },
                        }
                    },
                ]
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "TransactionCanceledException":
                return False
            raise
        return True

    def retired_of(self, run_id: str) -> list[RetiredExclusion]:
        return [_retired(item) for item in self._rows(run_id, RETIRED_EXCLUSION_PREFIX)]

    def all_exclusions(self) -> tuple[list[ExclusionRecord], list[RetiredExclusion]]:
        """One Query of the sparse ``Exclusions`` index (every page), never a Scan of the table."""
        paginator = self._client.get_paginator("query")
        pages = paginator.paginate(
            TableName=self._table,
            IndexName=EXCLUSIONS_INDEX,
            KeyConditionExpression=f"{EXCLUSION_ATTRIBUTE} = :exclusion",
            ExpressionAttributeValues={":exclusion": {"S": EXCLUSION_VALUE}},
        )
        items = sorted(
            (item for page in pages for item in page.get("Items", [])),
            key=lambda item: (str(item["pk"]["S"]), str(item["sk"]["S"])),
        )
        active = [
            ExclusionRecord.model_validate_json(str(item["record"]["S"]))
            for item in items
            if str(item["sk"]["S"]).startswith(EXCLUSION_PREFIX)
        ]
        retired = [_retired(item) for item in items if str(item["sk"]["S"]).startswith(RETIRED_EXCLUSION_PREFIX)]
        return active, retired


def _retired(item: dict[str, Any]) -> RetiredExclusion:
    return RetiredExclusion(
        record=ExclusionRecord.model_validate_json(str(item["record"]["S"])),
        retired_by=str(item["removed_by"]["S"]),
        retired_at=datetime.fromisoformat(str(item["removed_at"]["S"])),
    )
