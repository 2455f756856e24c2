"""DynamoDB adapter of the FirstScanLedger port (the runs table: `pk=INSTANCE#i-...`, `sk=FIRST_SCAN`)."""

import time
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from patchpilot.integrations.ports import FirstScanLedger
from patchpilot.integrations.runs_table_keys import FIRST_SCAN_SORT_KEY, instance_key

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef


_UNCLAIMED_OR_UNSENT_BY_THIS_EVENT = (
    "attribute_not_exists(pk) OR (event_id = :event AND attribute_not_exists(command_id))"
)


class DynamoDBFirstScanLedger(FirstScanLedger):
    """One conditional put per instance: the first event claims the scan, every later one finds the claim.

    A claim whose scan was never recorded can be taken again by the same event: Lambda retries an asynchronous
    invocation with the same event after the function died (e.g. between the claim and the scan), and without it that
    instance would never get its first scan. Another event never takes it.
    """

    def __init__(self, table_name: str, client: "DynamoDBClient", ttl_days: int = 90) -> None:
        self._table = table_name
        self._client = client
        self._ttl_seconds = ttl_days * 24 * 3600

    @staticmethod
    def _key(instance_id: str) -> "dict[str, AttributeValueTypeDef]":
        return {"pk": {"S": instance_key(instance_id)}, "sk": {"S": FIRST_SCAN_SORT_KEY}}

    def claim(self, instance_id: str, event_id: str) -> bool:
        now = int(time.time())
        try:
            self._client.put_item(
                TableName=self._table,
                Item={
                    **self._key(instance_id),
                    "event_id": {"S": event_id},
                    "claimed_at": {"N": str(now)},
                    "expires_at": {"N": str(now + self._ttl_seconds)},
                },
                ConditionExpression=_UNCLAIMED_OR_UNSENT_BY_THIS_EVENT,
                ExpressionAttributeValues={":event": {"S": event_id}},
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def record_command(self, instance_id: str, command_id: str) -> None:
        self._client.update_item(
            TableName=self._table,
            Key=self._key(instance_id),
            UpdateExpression="SET command_id = :command",
            ExpressionAttributeValues={":command": {"S": command_id}},
        )

    def release(self, instance_id: str, event_id: str) -> None:
        try:
            self._client.delete_item(
                TableName=self._table,
                Key=self._key(instance_id),
                ConditionExpression="event_id = :event AND attribute_not_exists(command_id)",
                ExpressionAttributeValues={":event": {"S": event_id}},
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
