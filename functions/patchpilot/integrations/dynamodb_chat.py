"""DynamoDB adapters of the ChatLedger and InteractionGuard ports (the runs table).

Keys: ``pk=CHAT#<alert id>, sk=<channel>`` (one post per alert and channel), ``pk=CHATDIGEST#<run>#<stage>,
sk=<alert id>`` (per-instance alerts held for the stage's digest), ``pk=SLACKREQ#<signature>, sk=SEEN`` (signed
interactions already used). Every item expires through the table's TTL attribute ``expires_at``.
"""

import time
from datetime import datetime
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from patchpilot.integrations.ports import ChatClaim, ChatLedger, InteractionGuard

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

POSTING_LEASE_SECONDS = 120


def _conditional_failed(error: ClientError) -> bool:
    return error.response["Error"]["Code"] == "ConditionalCheckFailedException"


class DynamoDBChatLedger(ChatLedger):
    """A claim is a conditional put (``posting`` with a lease); a post that went out turns it into ``posted``."""

    def __init__(
        self,
        table_name: str,
        client: "DynamoDBClient",
        ttl_days: int = 30,
        lease_seconds: float = POSTING_LEASE_SECONDS,
    ) -> None:
        self._table = table_name
        self._client = client
        self._ttl_seconds = ttl_days * 24 * 3600
        self._lease_seconds = lease_seconds

    @staticmethod
    def _key(alert_id: str, channel: str) -> "dict[str, AttributeValueTypeDef]":
        return {"pk": {"S": f"CHAT#{alert_id}"}, "sk": {"S": channel}}

    def claim(self, alert_id: str, channel: str) -> ChatClaim:
        now = time.time()
        try:
            self._client.put_item(
                TableName=self._table,
                Item={
                    **self._key(alert_id, channel),
                    "status": {"S": "posting"},
                    "lease_until": {"N": f"{now + self._lease_seconds:.3f}"},
                    "expires_at": {"N": str(int(now) + self._ttl_seconds)},
                },
                ConditionExpression="attribute_not_exists(pk) OR (#status = :posting AND lease_until < :now)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={":posting": {"S": "posting"}, ":now": {"N": f"{now:.3f}"}},
            )
        except ClientError as error:
            if not _conditional_failed(error):
                raise
            item = self._client.get_item(
                TableName=self._table, Key=self._key(alert_id, channel), ConsistentRead=True
            ).get("Item", {})
            return "posted" if item.get("status", {}).get("S") == "posted" else "busy"
        return "claimed"

    def mark_posted(self, alert_id: str, channel: str) -> None:
        self._client.update_item(
            TableName=self._table,
            Key=self._key(alert_id, channel),
            UpdateExpression="SET #status = :posted REMOVE lease_until",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":posted": {"S": "posted"}},
        )

    def release(self, alert_id: str, channel: str) -> None:
        try:
            self._client.delete_item(
                TableName=self._table,
                Key=self._key(alert_id, channel),
                ConditionExpression="#status = :posting",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={":posting": {"S": "posting"}},
            )
        except ClientError as error:
            if not _conditional_failed(error):
                raise

    def hold_for_digest(self, run_id: str, stage_name: str, alert_id: str, line: str) -> None:
        now = time.time()
        try:
            self._client.put_item(
                TableName=self._table,
                Item={
                    "pk": {"S": f"CHATDIGEST#{run_id}#{stage_name}"},
                    "sk": {"S": alert_id},
                    "line": {"S": line},
                    "held_at": {"N": f"{now:.6f}"},
                    "expires_at": {"N": str(int(now) + self._ttl_seconds)},
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if not _conditional_failed(error):
                raise

    def digest(self, run_id: str, stage_name: str) -> list[str]:
        items: list[tuple[float, str]] = []
        paginator = self._client.get_paginator("query")
        for page in paginator.paginate(
            TableName=self._table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"CHATDIGEST#{run_id}#{stage_name}"}},
            ConsistentRead=True,
        ):
            items.extend((float(item["held_at"]["N"]), item["line"]["S"]) for item in page.get("Items", []))
        return [line for _, line in sorted(items)]


class DynamoDBInteractionGuard(InteractionGuard):
    """One conditional put per request signature: the first use wins, a replay finds the item."""

    def __init__(self, table_name: str, client: "DynamoDBClient") -> None:
        self._table = table_name
        self._client = client

    def first_use(self, signature: str, expires_at: datetime) -> bool:
        try:
            self._client.put_item(
                TableName=self._table,
                Item={
                    "pk": {"S": f"SLACKREQ#{signature}"},
                    "sk": {"S": "SEEN"},
                    "expires_at": {"N": str(int(expires_at.timestamp()))},
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if _conditional_failed(error):
                return False
            raise
        return True
