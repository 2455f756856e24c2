"""moto's dispatch with each response class's method names kept (sim/patchpilot_sim/moto_dispatch.py)."""

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.core import utils as moto_utils
from moto.dynamodb.responses import DynamoHandler
from moto.sqs.responses import SQSResponse

from patchpilot_sim import moto_dispatch
from tests.functional.aws_fixtures import REGION, RUNS_TABLE


@pytest.fixture
def kept(aws: None) -> Iterator[None]:
    moto_dispatch.install()
    try:
        yield
    finally:
        moto_dispatch.uninstall()


def test_moto_dispatch_lists_each_response_class_once_with_moto_s_names(
    kept: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a count of the times moto lists a response class's methods
    listed: list[object] = []
    original = moto_dispatch._ORIGINAL

    def counted(clazz: object) -> list[str]:
        listed.append(clazz)
        return list(original(clazz))

    monkeypatch.setattr(moto_dispatch, "_ORIGINAL", counted)
    # When requests of two services are dispatched, several each
    dynamodb: Any = boto3.client("dynamodb", region_name=REGION)
    sqs: Any = boto3.client("sqs", region_name=REGION)
    for _ in range(3):
        dynamodb.describe_table(TableName=RUNS_TABLE)
        sqs.list_queues()
    # Then each class was listed once, and the names kept are moto's own list
    assert sorted(map(str, listed)) == sorted(map(str, [DynamoHandler, SQSResponse]))
    for clazz in (DynamoHandler, SQSResponse):
        assert moto_dispatch._method_names_from_class(clazz) == moto_utils.method_names_from_class(clazz)
