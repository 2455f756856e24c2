"""moto's base-table Query served from its partition (sim/patchpilot_sim/moto_dynamodb.py): the same answers."""

from collections.abc import Iterator
from typing import Any

import pytest
from moto.dynamodb.models.table import Table

from patchpilot_sim import moto_dynamodb
from tests.functional.aws_fixtures import RUNS_TABLE


@pytest.fixture
def runs(dynamodb: Any) -> Iterator[Any]:
    """The runs table with three commands' rows, an approval row (on an index) and an exclusion row."""
    for command in ("COMMAND#c-1", "COMMAND#c-2", "COMMAND#c-10"):
        dynamodb.put_item(TableName=RUNS_TABLE, Item={"pk": {"S": command}, "sk": {"S": "COMMAND"}})
        for number in range(12):
            dynamodb.put_item(
                TableName=RUNS_TABLE,
                Item={
                    "pk": {"S": command},
                    "sk": {"S": f"INSTANCE#i-{number:017x}"},
                    "succeeded": {"BOOL": number % 3 != 0},
                    "padding": {"S": "x" * 50},
                },
            )
    dynamodb.put_item(
        TableName=RUNS_TABLE,
        Item={"pk": {"S": "RUN#2026-12"}, "sk": {"S": "EXCLUSION#kernel"}, "exclusion": {"S": "active"}},
    )
    yield dynamodb
    moto_dynamodb.uninstall()


def _pages(client: Any, **query: Any) -> list[Any]:
    pages = client.get_paginator("query").paginate(TableName=RUNS_TABLE, **query)
    return [(page["Items"], page["Count"], page["ScannedCount"], page.get("LastEvaluatedKey")) for page in pages]


QUERIES: list[dict[str, Any]] = [
    {"KeyConditionExpression": "pk = :pk", "ExpressionAttributeValues": {":pk": {"S": "COMMAND#c-1"}}},
    {
        "KeyConditionExpression": "pk = :pk AND begins_with(sk, :instance)",
        "ExpressionAttributeValues": {":pk": {"S": "COMMAND#c-10"}, ":instance": {"S": "INSTANCE#"}},
        "ScanIndexForward": False,
        "PaginationConfig": {"PageSize": 5},
    },
    {
        "KeyConditionExpression": "pk = :pk",
        "FilterExpression": "succeeded = :no",
        "ExpressionAttributeValues": {":pk": {"S": "COMMAND#c-2"}, ":no": {"BOOL": False}},
        "PaginationConfig": {"PageSize": 4},
    },
    {"KeyConditionExpression": "pk = :pk", "ExpressionAttributeValues": {":pk": {"S": "COMMAND#unknown"}}},
    {
        "IndexName": "Exclusions",
        "KeyConditionExpression": "exclusion = :active",
        "ExpressionAttributeValues": {":active": {"S": "active"}},
    },
]


@pytest.mark.parametrize("query", QUERIES)
def test_moto_dynamodb_partition_query_answers_as_moto_does(runs: Any, query: dict[str, Any]) -> None:
    # Given a query answered by moto's own Query
    expected = _pages(runs, **query)
    # When base-table Queries read only their partition
    moto_dynamodb.install()
    # Then every page is the same: items, order, counts and the key to continue from
    assert _pages(runs, **query) == expected


def test_moto_dynamodb_partition_query_lists_only_the_queried_partition(
    runs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the partition Query, and a record of how many items each listing of the table returned
    moto_dynamodb.install()
    listing = Table.all_items
    listed: list[int] = []

    def recorded(table: Table) -> list[Any]:
        items = listing(table)
        listed.append(len(items))
        return items

    monkeypatch.setattr(Table, "all_items", recorded)
    # When one command's instance rows are queried
    pages = _pages(
        runs,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :instance)",
        ExpressionAttributeValues={":pk": {"S": "COMMAND#c-2"}, ":instance": {"S": "INSTANCE#"}},
    )
    # Then its 12 instance rows come back, and moto listed the command's 13 rows, not the table's 40
    assert [len(items) for items, *_ in pages] == [12]
    assert listed == [13]
