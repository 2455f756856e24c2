"""moto's TransactWriteItems with an all-or-nothing backup of the items it names, not of every table it names.

moto 5.2.5 backs a transaction up by deep-copying each whole table the transaction names, and restores those copies
when the transaction is cancelled (``DynamoDBBackend.transact_write_items``). Every command-result transaction
therefore costs time and memory in proportion to the runs table: O(items) per event, O(fleet²) per cycle, which is
where a 1,000-instance simulation spent its time and its 6.5 GiB.

DynamoDB's all-or-nothing rule concerns only the items a transaction names ("TransactWriteItems is a synchronous
write operation that groups up to 100 action requests ... The actions are completed atomically so that either all
of them succeed, or all of them fail", DynamoDB API reference, TransactWriteItems). So this keeps a copy of exactly
those items before the transaction and puts them back when moto cancels it. Validation, condition checks, the
cancellation reasons and every error are still moto's own code; only the backup changes. A cancelled transaction
also no longer overwrites writes other threads made to the same table meanwhile, which the whole-table restore did.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from moto.dynamodb import models as dynamodb_models
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import Table


@dataclass(frozen=True)
class _ItemBackup:
    """One item a transaction names, as it was before the transaction (``None``: it did not exist)."""

    table: Table
    hash_key: DynamoType
    range_key: DynamoType | None
    before: Item | None

    def restore(self) -> None:
        items: Any = self.table.items
        if self.range_key is not None:
            if self.before is None:
                items.get(self.hash_key, {}).pop(self.range_key, None)
            else:
                items[self.hash_key][self.range_key] = self.before
        elif self.before is None:
            items.pop(self.hash_key, None)
        else:
            items[self.hash_key] = self.before


class _TablesNotCopied:
    """Stands in for the ``copy`` module inside moto's DynamoDB backend.

    A whole table is not copied (its "backup" is the table itself, so moto's own restore is a no-op); everything else
    is deep-copied as before.
    """

    @staticmethod
    def deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
        return value if isinstance(value, Table) else copy.deepcopy(value, memo)


def _backups(backend: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> list[_ItemBackup]:
    """A copy of every item the transaction names.

    A request whose table or key cannot be resolved writes nothing (moto rejects it when it reaches it), so it needs
    no backup.
    """
    backups: list[_ItemBackup] = []
    for request in transact_items:
        try:
            _, operation = next(iter(request.items()))
            table = backend.get_table(operation["TableName"])
            if "Item" in operation:
                attributes = operation["Item"]
                keys = {name: attributes[name] for name in (table.hash_key_attr, table.range_key_attr) if name}
            else:
                keys = operation["Key"]
            hash_key, range_key = backend.get_keys_value(table, keys)
            current = table.get_item(hash_key, range_key)
        except Exception:  # moto's own code reports the malformed request
            continue
        backups.append(_ItemBackup(table, hash_key, range_key, copy.deepcopy(current)))
    return backups


_ORIGINAL = DynamoDBBackend.transact_write_items


def _transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    backups = _backups(self, transact_items)
    try:
        _ORIGINAL(self, transact_items)
    except Exception:
        for backup in reversed(backups):
            backup.restore()
        raise


def install() -> None:
    """Use the narrow backup in moto's DynamoDB backend (idempotent; for the local runtime's process)."""
    dynamodb_models.copy = _TablesNotCopied  # type: ignore[attr-defined,assignment]
    DynamoDBBackend.transact_write_items = _transact_write_items  # type: ignore[method-assign]


def uninstall() -> None:
    """Put moto's own transaction backup back."""
    dynamodb_models.copy = copy  # type: ignore[attr-defined]
    DynamoDBBackend.transact_write_items = _ORIGINAL  # type: ignore[method-assign]
