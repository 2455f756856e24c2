"""moto's SQS retention check without rebuilding the queue's attributes (sim/patchpilot_sim/moto_sqs.py)."""

from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from moto.sqs import models as sqs_models
from moto.sqs.models import sqs_backends

from patchpilot_sim import moto_sqs
from tests.functional.aws_fixtures import ACCOUNT, REGION

RETENTION_SECONDS = 60


@pytest.fixture
def queue(aws: None) -> Iterator[tuple[Any, str]]:
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="results", Attributes={"MessageRetentionPeriod": str(RETENTION_SECONDS)})[
        "QueueUrl"
    ]
    yield sqs, url
    moto_sqs.uninstall()


def _receive_after(sqs: Any, url: str, seconds: float, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Send three messages, move moto's SQS clock on by `seconds` (its retention clock only), receive."""
    for body in ("a", "b", "c"):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    real: Callable[[], float] = sqs_models.unix_time  # type: ignore[attr-defined]
    monkeypatch.setattr(sqs_models, "unix_time", lambda: real() + seconds)
    try:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    finally:
        monkeypatch.setattr(sqs_models, "unix_time", real)
    for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", []):
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return sorted(message["Body"] for message in got)


@pytest.mark.parametrize("seconds", [0.0, RETENTION_SECONDS - 1.0, RETENTION_SECONDS + 1.0])
def test_moto_sqs_retention_check_keeps_moto_s_answer(
    queue: tuple[Any, str], monkeypatch: pytest.MonkeyPatch, seconds: float
) -> None:
    # Given messages received `seconds` after they were sent, once with moto's check and once with the direct one
    sqs, url = queue
    moto_answer = _receive_after(sqs, url, seconds, monkeypatch)
    moto_sqs.install()
    direct_answer = _receive_after(sqs, url, seconds, monkeypatch)
    # Then both receive the same messages: all of them within the retention period, none after it
    assert direct_answer == moto_answer
    assert direct_answer == ([] if seconds > RETENTION_SECONDS else ["a", "b", "c"])


def test_moto_sqs_retention_check_does_not_rebuild_the_queue_attributes(queue: tuple[Any, str]) -> None:
    # Given the direct check, and a backend whose GetQueueAttributes would fail
    sqs, url = queue
    moto_sqs.install()
    for body in ("a", "b"):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    backend = sqs_backends[ACCOUNT][REGION]

    def rebuilt(*_: object) -> dict[str, Any]:
        raise AssertionError("the queue's attributes were rebuilt for a message received")

    backend.get_queue_attributes = rebuilt  # type: ignore[method-assign,assignment]
    try:
        # When messages are received
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    finally:
        del backend.get_queue_attributes
    # Then they are received without reading the queue's attribute map
    assert sorted(message["Body"] for message in got) == ["a", "b"]


def _send_and_receive(sqs: Any, url: str, fifo: bool) -> list[tuple[str, str]]:
    """Send the same bodies twice (a FIFO queue with content-based deduplication keeps each once), receive all."""
    for body in ("a", "b", "a"):
        extra = {"MessageGroupId": "results"} if fifo else {}
        sqs.send_message(QueueUrl=url, MessageBody=body, **extra)
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", [])
    for message in got:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return sorted((message["Body"], message["MD5OfBody"]) for message in got)


@pytest.mark.parametrize("fifo", [False, True])
def test_moto_sqs_send_keeps_moto_s_deduplication_and_attributes(queue: tuple[Any, str], fifo: bool) -> None:
    # Given a standard queue, or a FIFO queue with content-based deduplication
    sqs, url = queue
    if fifo:
        url = sqs.create_queue(
            QueueName="results.fifo", Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"}
        )["QueueUrl"]
    moto_answer = _send_and_receive(sqs, url, fifo)
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    # When sends read only the deduplication attribute
    moto_sqs.install()
    direct_answer = _send_and_receive(sqs, url, fifo)
    # Then the same messages are kept (one "a" on the FIFO queue), and the queue's attributes are moto's whole map
    assert direct_answer == moto_answer
    assert [body for body, _ in direct_answer] == (["a", "b"] if fifo else ["a", "a", "b"])
    assert sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"].keys() == attributes.keys()


def test_moto_sqs_send_does_not_count_the_queue_s_messages(
    queue: tuple[Any, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the send-time attribute, and a queue whose message counts would fail
    sqs, url = queue
    moto_sqs.install()

    def counted(_: object) -> int:
        raise AssertionError("the queue's messages were counted for a message sent")

    monkeypatch.setattr(sqs_models.Queue, "approximate_number_of_messages", property(counted))
    # When messages are sent
    for body in ("a", "b"):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    # Then both are in the queue, sent without counting its messages
    monkeypatch.undo()
    assert sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"] == {
        "ApproximateNumberOfMessages": "2"
    }


def test_moto_sqs_visible_messages_are_moto_s(queue: tuple[Any, str]) -> None:
    # Given a queue with a message visible, one received (in flight) and one delayed
    sqs, url = queue
    sqs.send_message(QueueUrl=url, MessageBody="in-flight")
    sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=60)
    sqs.send_message(QueueUrl=url, MessageBody="visible")
    sqs.send_message(QueueUrl=url, MessageBody="delayed", DelaySeconds=60)
    moto_queue = sqs_backends[ACCOUNT][REGION].queues["results"]
    listed_by_moto = [message.body for message in moto_queue.messages]
    # When the visible messages are listed with one reading of the clock
    moto_sqs.install()
    # Then they are the ones moto lists: the visible message only
    assert [message.body for message in moto_queue.messages] == listed_by_moto == ["visible"]
