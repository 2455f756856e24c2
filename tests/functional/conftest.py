"""Fixtures of the functional tests: moto with the runs table, and the environment a handler runs in."""

from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from patchpilot.integrations import aws_clients
from tests.functional.aws_fixtures import REGION, RUNS_TABLE, create_runs_table


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every AWS service on moto (dummy credentials, us-east-1), with the runs table as template.yaml declares it.

    The cached clients of ``aws_clients`` are forgotten before and after, so handlers reach this moto, not another.
    """
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    aws_clients.reset_clients()
    with mock_aws():
        create_runs_table(boto3.client("dynamodb", region_name=REGION))
        yield
    aws_clients.reset_clients()


@pytest.fixture
def dynamodb(aws: None) -> Any:
    """A DynamoDB client on moto (the runs table exists)."""
    return boto3.client("dynamodb", region_name=REGION)


@pytest.fixture
def handler_env(aws: None, monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Set a handler's environment (the runs table, Powertools without X-Ray, plus `variables`) on moto."""
    from patchpilot.observability import metrics

    monkeypatch.setattr(metrics, "namespace", "PatchPilot")

    def setenv(**variables: str) -> None:
        for key, value in {
            "RUNS_TABLE_NAME": RUNS_TABLE,
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_NAMESPACE": "PatchPilot",
            "POWERTOOLS_SERVICE_NAME": "patchpilot",
            **variables,
        }.items():
            monkeypatch.setenv(key, value)

    return setenv
