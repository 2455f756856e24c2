"""DynamoDB adapter of the ApprovalStore port: one item per approval in the runs table.

``pk=APPROVAL#<id>``, ``sk=APPROVAL``. Times are stored as UTC ISO-8601 strings of one fixed width, so the deadline
condition compares them as strings. ``expires_at`` is the table's TTL attribute (epoch seconds): the record is kept
``ttl_days`` past the approval's deadline (the deadline itself is ``deadline``). While an approval waits it carries
``pending_approval``, the hash key of the sparse ``PendingApprovals`` index (see ``runs_table_keys``).
"""

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError
from pydantic import SecretStr

from patchpilot.integrations.ports import ApprovalStore
from patchpilot.integrations.runs_table_keys import (
    APPROVAL_SORT_KEY,
    PENDING_APPROVAL_ATTRIBUTE,
    PENDING_APPROVAL_VALUE,
    PENDING_APPROVALS_INDEX,
    approval_key,
)
from patchpilot.models.approval import ApprovalRecord, ApprovalStatus, DecidedStatus
from patchpilot.models.exceptions import ApprovalIdConflict

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

_OPEN_ATTEMPTS = 3
_DECIDED: tuple[ApprovalStatus, ...] = ("approved", "rejected")


def _time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _str(item: dict[str, Any], name: str) -> str | None:
    value = item.get(name)
    return None if value is None else str(value["S"])


def _parse_time(item: dict[str, Any], name: str) -> datetime | None:
    value = _str(item, name)
    return None if value is None else datetime.fromisoformat(value)


def _to_record(item: dict[str, Any]) -> ApprovalRecord:
    return ApprovalRecord.model_validate(
        {
            "approval_id": _str(item, "approval_id"),
            "execution_id": _str(item, "execution_id"),
            "run_id": _str(item, "run_id"),
            "stage_name": _str(item, "stage_name"),
            "task_token": SecretStr(_str(item, "task_token") or ""),
            "status": _str(item, "status"),
            "summary": _str(item, "summary") or "",
            "requested_at": _parse_time(item, "requested_at"),
            "expires_at": _parse_time(item, "deadline"),
            "approver": _str(item, "approver"),
            "reason": _str(item, "reason"),
            "decided_at": _parse_time(item, "decided_at"),
            "requested_by": _str(item, "requested_by"),
        }
    )


def _conditional_failed(error: ClientError) -> bool:
    return error.response["Error"]["Code"] == "ConditionalCheckFailedException"


class DynamoDBApprovalStore(ApprovalStore):
    """Approvals in the runs table; every change is one conditional write."""

    def __init__(self, table_name: str, client: "DynamoDBClient", ttl_days: int = 90) -> None:
        self._table = table_name
        self._client = client
        self._ttl = timedelta(days=ttl_days)

    def _key(self, approval_id: str) -> "dict[str, AttributeValueTypeDef]":
        return {"pk": {"S": approval_key(approval_id)}, "sk": {"S": APPROVAL_SORT_KEY}}

    def _ttl_of(self, deadline: datetime) -> "AttributeValueTypeDef":
        return {"N": str(int((deadline + self._ttl).timestamp()))}

    def _put_new(self, record: ApprovalRecord) -> bool:
        item: dict[str, AttributeValueTypeDef] = {
            **self._key(record.approval_id),
            "approval_id": {"S": record.approval_id},
            "execution_id": {"S": record.execution_id},
            "run_id": {"S": record.run_id},
            "stage_name": {"S": record.stage_name},
            "task_token": {"S": record.task_token.get_secret_value()},
            "status": {"S": record.status},
            "summary": {"S": record.summary},
            "requested_at": {"S": _time(record.requested_at)},
            "deadline": {"S": _time(record.expires_at)},
            "expires_at": self._ttl_of(record.expires_at),
        }
        if record.requested_by:
            item["requested_by"] = {"S": record.requested_by}
        if record.status == "pending":
            item[PENDING_APPROVAL_ATTRIBUTE] = {"S": PENDING_APPROVAL_VALUE}
        try:
            self._client.put_item(TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(pk)")
        except ClientError as error:
            if _conditional_failed(error):
                return False
            raise
        return True

    def _refresh(self, record: ApprovalRecord, observed: ApprovalStatus) -> ApprovalRecord | None:
        """A retried request: new token; a wait that was not decided is pending again with the new deadline."""
        values: dict[str, AttributeValueTypeDef] = {
            ":token": {"S": record.task_token.get_secret_value()},
            ":observed": {"S": observed},
            ":execution": {"S": record.execution_id},
            ":stage": {"S": record.stage_name},
        }
        update = "SET task_token = :token"
        if observed not in _DECIDED:
            update += (
                f", #status = :pending, deadline = :deadline, expires_at = :ttl, {PENDING_APPROVAL_ATTRIBUTE} = :waits"
                " REMOVE approver, reason, decided_at"
            )
            values |= {
                ":pending": {"S": "pending"},
                ":waits": {"S": PENDING_APPROVAL_VALUE},
                ":deadline": {"S": _time(record.expires_at)},
                ":ttl": self._ttl_of(record.expires_at),
            }
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key=self._key(record.approval_id),
                UpdateExpression=update,
                ConditionExpression="#status = :observed AND execution_id = :execution AND stage_name = :stage",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if _conditional_failed(error):
                return None
            raise
        return _to_record(response["Attributes"])

    def open(self, record: ApprovalRecord) -> ApprovalRecord:
        for _ in range(_OPEN_ATTEMPTS):
            if self._put_new(record):
                return record
            current = self.get(record.approval_id)
            if current is None:
                continue
            if (current.execution_id, current.stage_name) != (record.execution_id, record.stage_name):
                raise ApprovalIdConflict(
                    f"approval id {record.approval_id} already belongs to stage {current.stage_name} of another wait"
                )
            refreshed = self._refresh(record, current.status)
            if refreshed is not None:
                return refreshed
        raise ApprovalIdConflict(f"approval {record.approval_id} kept changing while it was being opened")

    def get(self, approval_id: str) -> ApprovalRecord | None:
        response = self._client.get_item(TableName=self._table, Key=self._key(approval_id), ConsistentRead=True)
        item = response.get("Item")
        return None if item is None else _to_record(item)

    def decide(
        self, approval_id: str, status: DecidedStatus, approver: str, reason: str | None, now: datetime
    ) -> ApprovalRecord | None:
        values: dict[str, AttributeValueTypeDef] = {
            ":status": {"S": status},
            ":approver": {"S": approver},
            ":now": {"S": _time(now)},
            ":pending": {"S": "pending"},
        }
        update = "SET #status = :status, approver = :approver, decided_at = :now"
        if reason:
            update += ", reason = :reason"
            values[":reason"] = {"S": reason}
        update += f" REMOVE {PENDING_APPROVAL_ATTRIBUTE}"
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key=self._key(approval_id),
                UpdateExpression=update,
                ConditionExpression="#status = :pending AND deadline > :now",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if _conditional_failed(error):
                return None
            raise
        return _to_record(response["Attributes"])

    def expire(self, approval_id: str, task_token: str) -> bool:
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self._key(approval_id),
                UpdateExpression=f"SET #status = :expired REMOVE {PENDING_APPROVAL_ATTRIBUTE}",
                ConditionExpression="task_token = :token",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={":expired": {"S": "expired"}, ":token": {"S": task_token}},
            )
        except ClientError as error:
            if _conditional_failed(error):
                return False
            raise
        return True

    def pending(self) -> list[ApprovalRecord]:
        paginator = self._client.get_paginator("query")
        pages = paginator.paginate(
            TableName=self._table,
            IndexName=PENDING_APPROVALS_INDEX,
            KeyConditionExpression="#waits = :waits",
            FilterExpression="#status = :pending",
            ExpressionAttributeNames={"#waits": PENDING_APPROVAL_ATTRIBUTE, "#status": "status"},
            ExpressionAttributeValues={":waits": {"S": PENDING_APPROVAL_VALUE}, ":pending": {"S": "pending"}},
        )
        return [_to_record(item) for page in pages for item in page.get("Items", [])]
