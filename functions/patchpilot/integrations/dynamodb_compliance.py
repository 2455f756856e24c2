"""DynamoDB adapter of the ComplianceStore port, in the runs table.

Rows: ``pk=COMPLIANCE#NODES, sk=<node id>`` (the derived node, `observed_at`, the last event id) and
``pk=COMPLIANCE#SUMMARIES, sk=<taken_at>#<run or refresh>`` (one fleet summary per refresh or cycle end: the trend).
A node row is written only if no row observed later is stored (a conditional put: one call per node).
"""

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from patchpilot.integrations.compliance_ports import ComplianceStore
from patchpilot.models.compliance import ComplianceSummary, NodeCompliance

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

NODES_KEY = "COMPLIANCE#NODES"
SUMMARIES_KEY = "COMPLIANCE#SUMMARIES"
SUMMARY_TTL_SECONDS = 400 * 24 * 3600  # the trend keeps a bit more than a year (the table's TTL attribute)


def sortable(moment: datetime) -> str:
    """A UTC timestamp whose string order is its time order."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class DynamoDBComplianceStore(ComplianceStore):
    """Node statuses and fleet summaries in the runs table."""

    def __init__(self, table_name: str, client: "DynamoDBClient") -> None:
        self._table = table_name
        self._client = client

    def _query(
        self, pk: str, newest_first: bool = False, limit: int | None = None
    ) -> "list[dict[str, AttributeValueTypeDef]]":
        items: list[dict[str, AttributeValueTypeDef]] = []
        paginator = self._client.get_paginator("query")
        extra = {"PaginationConfig": {"MaxItems": limit}} if limit else {}
        for page in paginator.paginate(
            TableName=self._table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": pk}},
            ConsistentRead=True,
            ScanIndexForward=not newest_first,
            **extra,  # type: ignore[arg-type]
        ):
            items.extend(page.get("Items", []))
        return items

    def nodes(self) -> list[NodeCompliance]:
        return [NodeCompliance.model_validate_json(item["node"]["S"]) for item in self._query(NODES_KEY)]

    def node(self, node_id: str) -> tuple[NodeCompliance, str | None] | None:
        item = self._client.get_item(
            TableName=self._table, Key={"pk": {"S": NODES_KEY}, "sk": {"S": node_id}}, ConsistentRead=True
        ).get("Item")
        if item is None:
            return None
        event_id = item.get("event_id", {}).get("S")
        return NodeCompliance.model_validate_json(item["node"]["S"]), event_id

    def put_node(self, node: NodeCompliance, event_id: str | None) -> bool:
        item: dict[str, AttributeValueTypeDef] = {
            "pk": {"S": NODES_KEY},
            "sk": {"S": node.node_id},
            "node": {"S": node.model_dump_json()},
            "status": {"S": node.status.value},
            "observed_at": {"S": sortable(node.observed_at)},
        }
        if event_id is not None:
            item["event_id"] = {"S": event_id}
        try:
            self._client.put_item(
                TableName=self._table,
                Item=item,
                ConditionExpression="attribute_not_exists(pk) OR observed_at <= :observed",
                ExpressionAttributeValues={":observed": {"S": sortable(node.observed_at)}},
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def remove_nodes(self, node_ids: list[str], observed_before: datetime) -> None:
        for node_id in node_ids:
            try:
                self._client.delete_item(
                    TableName=self._table,
                    Key={"pk": {"S": NODES_KEY}, "sk": {"S": node_id}},
                    ConditionExpression="observed_at <= :before",
                    ExpressionAttributeValues={":before": {"S": sortable(observed_before)}},
                )
            except ClientError as error:
                if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise

    def add_summary(self, summary: ComplianceSummary, run_id: str | None = None) -> None:
        self._client.put_item(
            TableName=self._table,
            Item={
                "pk": {"S": SUMMARIES_KEY},
                "sk": {"S": f"{sortable(summary.taken_at)}#{run_id or 'refresh'}"},
                "summary": {"S": summary.model_copy(update={"missing_patches": []}).model_dump_json()},
                "expires_at": {"N": str(int(summary.taken_at.timestamp()) + SUMMARY_TTL_SECONDS)},
                **({"run_id": {"S": run_id}} if run_id else {}),
            },
        )

    def summaries(self, limit: int = 24) -> list[ComplianceSummary]:
        items = self._query(SUMMARIES_KEY, newest_first=True, limit=limit)
        return [ComplianceSummary.model_validate_json(item["summary"]["S"]) for item in reversed(items)]
