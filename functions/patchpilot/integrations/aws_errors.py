"""Classify transient AWS errors into one typed, retryable error (`TransientAwsError`).

botocore's standard retry mode already retries throttling and 5xx a few times; what outlives those retries (or is
not retried by botocore at all, like a DynamoDB `TransactionConflict`) becomes `TransientAwsError`, which the state
machine retries with backoff and the command-result function reports as a batch item failure.
"""

from collections.abc import Callable, Iterator
from functools import wraps
from typing import Any, TypeVar, cast

from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from patchpilot.models.exceptions import TransientAwsError

TRANSIENT_ERROR_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ProvisionedThroughputExceededException",
        "SlowDown",
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "InternalServerErrorException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "TransactionConflictException",
        "TransactionInProgressException",
    }
)
# CancellationReasons codes of a TransactWriteItems that may succeed when tried again.
TRANSIENT_CANCELLATION_CODES = frozenset({"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"})
_NETWORK_ERRORS = (EndpointConnectionError, ConnectionClosedError, ReadTimeoutError, ConnectTimeoutError)

T = TypeVar("T")


def is_transient(error: ClientError) -> bool:
    """Whether a ClientError is worth retrying later (throttling, a 5xx, a transaction conflict)."""
    code = error.response.get("Error", {}).get("Code", "")
    if code in TRANSIENT_ERROR_CODES:
        return True
    if code == "TransactionCanceledException":
        reasons = [reason.get("Code", "None") for reason in error.response.get("CancellationReasons", [])]
        failing = [reason for reason in reasons if reason != "None"]
        return bool(failing) and all(reason in TRANSIENT_CANCELLATION_CODES for reason in failing)
    status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return status >= 500


def _classified(call: Callable[..., T], name: str) -> Callable[..., T]:
    @wraps(call)
    def classified(*args: Any, **kwargs: Any) -> T:
        try:
            return call(*args, **kwargs)
        except ClientError as error:
            if is_transient(error):
                raise TransientAwsError(f"{name}: {error}") from error
            raise
        except _NETWORK_ERRORS as error:
            raise TransientAwsError(f"{name}: {error}") from error

    return classified


class _ClassifiedPages:
    def __init__(self, paginator: Any, name: str) -> None:
        self._paginator = paginator
        self._name = name

    def paginate(self, **kwargs: Any) -> Iterator[Any]:
        pages = iter(self._paginator.paginate(**kwargs))
        next_page = _classified(lambda: next(pages, _DONE), self._name)
        while (page := next_page()) is not _DONE:
            yield page


_DONE = object()


class ClassifiedClient:
    """A boto3 client whose API calls (paginated ones included) raise `TransientAwsError` for transient failures."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if name == "get_paginator":
            return lambda operation: _ClassifiedPages(attribute(operation), operation)
        if callable(attribute) and not name.startswith("_") and name not in ("can_paginate", "get_waiter"):
            return _classified(attribute, name)
        return attribute


def classified(client: T) -> T:
    """Wrap a boto3 client so that transient errors come out as `TransientAwsError` (same static type)."""
    return cast(T, ClassifiedClient(client))
