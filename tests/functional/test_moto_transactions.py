"""moto's TransactWriteItems with the narrow backup (sim/patchpilot_sim/moto_transactions.py): all or nothing still."""

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto.backends import get_backend
from moto.dynamodb.models import DynamoDBBackend

from patchpilot_sim import moto_transactions
from tests.functional.aws_fixtures import ACCOUNT, REGION, RUNS_TABLE


@pytest.fixture
def narrow_backup(dynamodb: Any) -> Iterator[Any]:
    moto_transactions.install()
    try:
        yield dynamodb
    finally:
        moto_transactions.uninstall()


def _key(pk: str, sk: str = "row") -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def _put(pk: str, count: int) -> dict[str, Any]:
    return {"Put": {"TableName": RUNS_TABLE, "Item": {**_key(pk), "count": {"N": str(count)}}}}


def _items(client: Any) -> dict[str, str]:
    return {item["pk"]["S"]: item["count"]["N"] for item in client.scan(TableName=RUNS_TABLE)["Items"]}


def _table(backend: DynamoDBBackend) -> Any:
    return backend.get_table(RUNS_TABLE)


def test_moto_transactions_a_cancelled_transaction_leaves_every_item_as_it_was(narrow_backup: Any) -> None:
    # Given two items, one the transaction updates and one it deletes
    client = narrow_backup
    client.transact_write_items(TransactItems=[_put("updated", 1), _put("deleted", 1), _put("untouched", 1)])
    table_before = _table(get_backend("dynamodb")[ACCOUNT][REGION])
    # When a transaction puts a new item, updates one, deletes one, and then fails a condition on the last
    with pytest.raises(ClientError, match=r"TransactionCanceledException.*\[None, None, None, ConditionalCheckFailed"):
        client.transact_write_items(
            TransactItems=[
                _put("created", 1),
                {
                    "Update": {
                        "TableName": RUNS_TABLE,
                        "Key": _key("updated"),
                        "UpdateExpression": "ADD #c :one",
                        "ExpressionAttributeNames": {"#c": "count"},
                        "ExpressionAttributeValues": {":one": {"N": "1"}},
                    }
                },
                {"Delete": {"TableName": RUNS_TABLE, "Key": _key("deleted")}},
                {
                    "ConditionCheck": {
                        "TableName": RUNS_TABLE,
                        "Key": _key("untouched"),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ]
        )
    # Then nothing of it remains: no new item, the update and the delete undone, the table object kept
    assert _items(client) == {"updated": "1", "deleted": "1", "untouched": "1"}
    assert _table(get_backend("dynamodb")[ACCOUNT][REGION]) is table_before


def test_moto_transactions_a_rejected_transaction_is_undone_and_a_valid_one_writes_everything(
    narrow_backup: Any,
) -> None:
    client = narrow_backup
    client.transact_write_items(TransactItems=[_put("kept", 1)])
    # the same item twice in one transaction is a ValidationException raised after the first write
    with pytest.raises(ClientError, match="ValidationException"):
        client.transact_write_items(TransactItems=[_put("fresh", 1), _put("kept", 2), _put("kept", 3)])
    assert _items(client) == {"kept": "1"}
    client.transact_write_items(TransactItems=[_put("fresh", 1), _put("kept", 2)])
    assert _items(client) == {"kept": "2", "fresh": "1"}


def test_moto_transactions_a_cancelled_transaction_keeps_writes_to_other_items(narrow_backup: Any) -> None:
    # Given an item written outside the transaction while it runs (another handler's write, here made by the
    # transaction's own first step failing later would have restored a whole-table copy taken before it)
    client = narrow_backup
    backend = get_backend("dynamodb")[ACCOUNT][REGION]
    original_put_item = backend.put_item

    def put_item_then_another_writer(*args: Any, **kwargs: Any) -> Any:
        result = original_put_item(*args, **kwargs)
        backend.put_item = original_put_item
        original_put_item(RUNS_TABLE, {**_key("other-writer"), "count": {"N": "7"}})
        return result

    backend.put_item = put_item_then_another_writer
    with pytest.raises(ClientError, match="TransactionCanceledException"):
        client.transact_write_items(
            TransactItems=[
                _put("mine", 1),
                {
                    "ConditionCheck": {
                        "TableName": RUNS_TABLE,
                        "Key": _key("absent"),
                        "ConditionExpression": "attribute_exists(pk)",
                    }
                },
            ]
        )
    # Then only the transaction's own item is undone
    assert _items(client) == {"other-writer": "7"}
