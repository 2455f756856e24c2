"""botocore's retry backoff on the simulated clock: added to the invocation's own timeline, never slept for real."""

import time
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.endpoint
import botocore.retries.bucket
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from patchpilot_sim.clock import SimClock
from patchpilot_sim.faults import FaultInjector, FaultPlan, ThrottlingStorm
from patchpilot_sim.lambdas import CURRENT_FUNCTION
from patchpilot_sim.moto_clock import SdkBackoffPatch, invocation_backoff
from tests.functional.aws_fixtures import REGION


@pytest.fixture
def backoff() -> Iterator[SdkBackoffPatch]:
    """The patch installed, and this thread running a handler (as the in-process Lambda marks it)."""
    patch = SdkBackoffPatch(SimClock())
    patch.install()
    CURRENT_FUNCTION.name, CURRENT_FUNCTION.backoff_seconds = "VerifyStageFunction", 0.0
    yield patch
    CURRENT_FUNCTION.name, CURRENT_FUNCTION.backoff_seconds = None, 0.0
    patch.uninstall()


def _ssm(injector: FaultInjector, retries: int) -> Any:
    session = boto3.Session(region_name=REGION)
    injector.attach(session.events)
    return session.client("ssm", config=Config(retries={"mode": "standard", "max_attempts": retries}))


def test_sdk_backoff_sleep_in_an_invocation_moves_its_timeline_not_the_clock(backoff: SdkBackoffPatch) -> None:
    botocore.endpoint.time.sleep(3.0)
    botocore.endpoint.time.sleep(4.5)
    assert invocation_backoff() == 7.5
    assert backoff.invocation_seconds() == 7.5
    assert backoff.clock.elapsed_seconds() == 0.0


def test_sdk_backoff_patch_is_undone_at_uninstall() -> None:
    patch = SdkBackoffPatch(SimClock())
    patch.install()
    assert botocore.endpoint.time is not time
    patch.uninstall()
    assert botocore.endpoint.time is time
    assert botocore.retries.bucket.time is time


def test_sdk_backoff_token_bucket_waits_on_the_invocation_timeline(backoff: SdkBackoffPatch) -> None:
    bucket = botocore.retries.bucket.TokenBucket(max_rate=1.0, clock=botocore.retries.bucket.Clock())
    assert bucket.acquire()  # the bucket starts empty: each token waits a second for its refill at 1 per second,
    assert bucket.acquire()  # in simulated time on this invocation's timeline
    assert invocation_backoff() == pytest.approx(2.0)
    assert backoff.clock.elapsed_seconds() == 0.0


@pytest.mark.usefixtures("aws")
def test_sdk_backoff_retries_outlive_a_storm_measured_on_the_invocation_timeline(backoff: SdkBackoffPatch) -> None:
    # A storm that lasts a nanosecond of simulated time: only the backoff moves the invocation's timeline past it.
    storm = ThrottlingStorm("ssm", seconds=1e-9)
    injector = FaultInjector(FaultPlan(storms=(storm,)), seed=1, monotonic=backoff.invocation_seconds)
    response = _ssm(injector, retries=5).list_commands()
    assert response["ResponseMetadata"]["RetryAttempts"] == 1
    assert injector.injected["storm.ssm.ThrottlingException"] == 1
    assert invocation_backoff() > 0.0
    assert backoff.clock.elapsed_seconds() == 0.0


@pytest.mark.usefixtures("aws")
def test_sdk_backoff_storm_longer_than_the_retries_still_surfaces(backoff: SdkBackoffPatch) -> None:
    storm = ThrottlingStorm("ssm", seconds=45.0)  # CHAOS's: longer than 1+2+4+8+16 s of backoff
    injector = FaultInjector(FaultPlan(storms=(storm,)), seed=1, monotonic=backoff.invocation_seconds)
    with pytest.raises(ClientError, match="ThrottlingException") as raised:
        _ssm(injector, retries=5).list_commands()
    assert raised.value.response["ResponseMetadata"]["RetryAttempts"] == 5
    assert 0.0 < invocation_backoff() <= 1 + 2 + 4 + 8 + 16
    assert injector.surfaced["ssm.ThrottlingException"] == 1
