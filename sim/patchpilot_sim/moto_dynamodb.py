"""moto's DynamoDB Query of a table's own key reads the one partition it names, not the whole table sorted.

moto 5.2.5 answers a Query on the base table (``Table.query`` without ``IndexName``) by sorting EVERY item of the
table (``Table.all_items``) and then keeping those whose hash key equals the queried one: O(table · log table) per
Query. The runs table grows with every instance result, so a cycle's Queries cost O(fleet² · log fleet) in all. moto
keeps the items per hash key (``Table.items``); while one of those Queries runs, ``all_items`` serves the queried
partition only, sorted by moto's own key, so the list moto then filters on the hash key is exactly the list it would
have kept. Key conditions, filters, limits, paging, projections and every error stay moto's code; Queries on an index
and Scans still read every item, as they do in moto.
"""

from __future__ import annotations

import inspect
import threading
from typing import Any

from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import Table

_ORIGINAL_QUERY = Table.query
_ORIGINAL_ALL_ITEMS = Table.all_items
_QUERY_SIGNATURE = inspect.signature(_ORIGINAL_QUERY)
_querying = threading.local()  # the table and hash key of the base-table Query running on this thread


def _sort_key(item: Item) -> Any:
    return (item.hash_key, item.range_key) if item.range_key else item.hash_key  # moto's all_items order


def _all_items(self: Table) -> list[Item]:
    if getattr(_querying, "table", None) is not self:
        return _ORIGINAL_ALL_ITEMS(self)
    hash_key: DynamoType = _querying.hash_key
    partition: Any = self.items.get(hash_key)
    if partition is None:
        return []
    items = list(partition.values()) if self.range_key_attr else [partition]
    return sorted(items, key=_sort_key)


def _query(self: Table, *args: Any, **kwargs: Any) -> Any:
    arguments = _QUERY_SIGNATURE.bind(self, *args, **kwargs).arguments
    hash_key = arguments.get("hash_key")
    if arguments.get("index_name") or hash_key is None or getattr(_querying, "table", None) is not None:
        return _ORIGINAL_QUERY(self, *args, **kwargs)
    _querying.table, _querying.hash_key = self, hash_key
    try:
        return _ORIGINAL_QUERY(self, *args, **kwargs)
    finally:
        _querying.table = _querying.hash_key = None


def install() -> None:
    """Serve base-table Queries from their partition in moto's DynamoDB (idempotent; for the local runtime)."""
    Table.query = _query  # type: ignore[method-assign]
    Table.all_items = _all_items  # type: ignore[method-assign]


def uninstall() -> None:
    """Put moto's own Query back."""
    Table.query = _ORIGINAL_QUERY  # type: ignore[method-assign]
    Table.all_items = _ORIGINAL_ALL_ITEMS  # type: ignore[method-assign]
