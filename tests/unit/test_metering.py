"""DynamoDB request units as metering.py counts them, from AWS's item-size and capacity rules."""

import pytest

from patchpilot_sim.metering import attribute_value_size, item_size, read_request_units, write_request_units


def test_metering_attribute_sizes_follow_dynamodb_rules() -> None:
    assert attribute_value_size({"S": "héllo"}) == 6  # UTF-8 bytes
    assert attribute_value_size({"N": "12345"}) == 4  # 1 byte per 2 significant digits, + 1
    assert attribute_value_size({"N": "-0.001200"}) == 2  # leading/trailing zeroes trimmed: "12"
    assert attribute_value_size({"B": b"\x00\x01\x02"}) == 3
    assert attribute_value_size({"BOOL": True}) == attribute_value_size({"NULL": True}) == 1
    assert attribute_value_size({"L": [{"S": "ab"}, {"N": "1"}]}) == 3 + (2 + 1) + (2 + 1)
    assert attribute_value_size({"M": {"k": {"S": "v"}}}) == 3 + (1 + 1 + 1)
    assert attribute_value_size({"SS": ["a", "bb"]}) == 3


def test_metering_unknown_attribute_type_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown DynamoDB attribute type 'X'"):
        attribute_value_size({"X": "?"})


def test_metering_item_size_counts_names_and_values() -> None:
    assert item_size({"pk": {"S": "RUN#1"}, "count": {"N": "7"}}) == (2 + 5) + (5 + 2)


def test_metering_reads_round_up_to_4_kb_and_halve_when_eventually_consistent() -> None:
    small = {"Item": {"pk": {"S": "x"}}}
    large = {"Item": {"pk": {"S": "x" * 5_000}}}
    assert read_request_units("GetItem", {"ConsistentRead": True}, small) == 1.0
    assert read_request_units("GetItem", {}, small) == 0.5
    assert read_request_units("GetItem", {"ConsistentRead": True}, large) == 2.0
    assert read_request_units("GetItem", {"ConsistentRead": True}, {}) == 1.0  # a miss still costs a unit


def test_metering_query_counts_what_it_read_before_the_filter() -> None:
    items = [{"pk": {"S": "x" * 1_000}}] * 4  # 4 x 1,002 B returned, 8 items read
    response = {"Items": items, "Count": 4, "ScannedCount": 8}
    assert read_request_units("Query", {"ConsistentRead": True}, response) == 2.0  # 8,016 B -> 2 units
    assert read_request_units("Query", {}, response) == 1.0


def test_metering_transactional_reads_cost_double() -> None:
    response = {"Responses": [{"Item": {"pk": {"S": "a"}}}, {"Item": {"pk": {"S": "b"}}}]}
    assert read_request_units("TransactGetItems", {}, response) == 4.0


def test_metering_writes_round_up_to_1_kb_and_transactions_cost_double() -> None:
    big = {"pk": {"S": "x" * 1_500}}
    assert write_request_units("PutItem", {"Item": big}) == 2
    assert write_request_units("UpdateItem", {"Key": {"pk": {"S": "a"}}}) == 1
    transaction = {"TransactItems": [{"Put": {"Item": big}}, {"Update": {"Key": {}}}, {"ConditionCheck": {}}]}
    assert write_request_units("TransactWriteItems", transaction) == 2 * 2 + 2 + 2
    batch = {"RequestItems": {"t": [{"PutRequest": {"Item": big}}, {"DeleteRequest": {"Key": {}}}]}}
    assert write_request_units("BatchWriteItem", batch) == 3
    assert write_request_units("GetItem", {}) == 0.0
