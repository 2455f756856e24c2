"""The fault injector answers handlers per attempt (botocore's retries apply) and the state machine per call."""

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from patchpilot.integrations.aws_errors import classified, is_transient
from patchpilot.models.exceptions import TransientAwsError
from patchpilot_sim.faults import CHAOS, FaultInjector, FaultPlan, ThrottlingStorm
from patchpilot_sim.lambdas import CURRENT_FUNCTION, RuntimeCrash
from tests.functional.aws_fixtures import REGION, RUNS_TABLE


def _retries(retries: int) -> Config:
    return Config(retries={"mode": "standard", "max_attempts": retries})  # botocore: retries after the first


class TickingClock:
    """A storm's clock that moves `step` seconds each time it is read (the injector reads it once per attempt)."""

    def __init__(self, step: float) -> None:
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


@pytest.fixture
def in_handler() -> Iterator[None]:
    """Calls made on this thread are a handler's, as the in-process Lambda marks them."""
    CURRENT_FUNCTION.name = "VerifyStageFunction"
    yield
    CURRENT_FUNCTION.name = None


def _session(injector: FaultInjector) -> boto3.Session:
    """A session with the injector's hooks, and its call hook where LocalRuntime._intercept runs call hooks."""
    session = boto3.Session(region_name=REGION)
    injector.attach(session.events)

    def call_hooks(event_name: str, **_: Any) -> Any:
        service, operation = event_name.split(".", 2)[1:]
        return injector.before_call(service, operation, {})

    session.events.register_first("before-call.*.*", call_hooks)
    return session


def _item(pk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": "result"}}


@pytest.mark.usefixtures("aws", "in_handler")
def test_fault_injector_server_errors_are_per_attempt_and_retried_by_botocore() -> None:
    injector = FaultInjector(FaultPlan(ssm_server_errors=0.3), seed=3)
    ssm = _session(injector).client("ssm", config=_retries(5))
    retries = sum(ssm.list_commands()["ResponseMetadata"]["RetryAttempts"] for _ in range(20))
    assert injector.injected["ssm.InternalServerError"] > 0
    assert retries == injector.injected["ssm.InternalServerError"]  # each injected 500 cost one retried attempt
    assert injector.recovered["ssm"] > 0
    assert not injector.surfaced


@pytest.mark.usefixtures("aws", "in_handler")
def test_fault_injector_throttled_attempts_are_retried_and_the_call_succeeds_after_the_storm() -> None:
    storm = ThrottlingStorm("dynamodb", seconds=5.0)
    injector = FaultInjector(FaultPlan(storms=(storm,)), seed=1, monotonic=TickingClock(step=3.0))
    dynamodb = _session(injector).client("dynamodb", config=_retries(5))
    response = dynamodb.put_item(TableName=RUNS_TABLE, Item=_item("run#1"))
    assert response["ResponseMetadata"]["RetryAttempts"] == 2  # attempts at 3 s and 6 s throttled, 9 s went through
    assert injector.injected["storm.dynamodb.ProvisionedThroughputExceededException"] == 2
    assert injector.recovered["dynamodb"] == 1
    assert "Item" in dynamodb.get_item(TableName=RUNS_TABLE, Key=_item("run#1"))


@pytest.mark.usefixtures("aws", "in_handler")
def test_fault_injector_storm_longer_than_the_retries_surfaces_a_transient_error() -> None:
    injector = FaultInjector(FaultPlan(storms=(ThrottlingStorm("ssm", seconds=600.0),)), seed=1)
    ssm = _session(injector).client("ssm", config=_retries(2))  # 2 retries: 3 attempts
    with pytest.raises(ClientError, match="ThrottlingException") as raised:
        ssm.list_commands()
    assert raised.value.response["ResponseMetadata"]["RetryAttempts"] == 2
    assert raised.value.response["ResponseMetadata"]["RequestId"]
    assert injector.injected["storm.ssm.ThrottlingException"] == 3
    assert injector.surfaced["ssm.ThrottlingException"] == 1
    with pytest.raises(TransientAwsError, match="ThrottlingException"):
        classified(ssm).list_commands()


@pytest.mark.usefixtures("aws", "in_handler")
def test_fault_injector_transaction_conflict_is_not_retried_and_writes_nothing() -> None:
    injector = FaultInjector(FaultPlan(dynamodb_transaction_conflicts=1.0), seed=1)
    dynamodb = _session(injector).client("dynamodb", config=_retries(5))
    write: Any = [{"Put": {"TableName": RUNS_TABLE, "Item": _item("run#2")}}]
    with pytest.raises(ClientError, match="TransactionCanceledException") as raised:
        dynamodb.transact_write_items(TransactItems=write)
    response = raised.value.response
    assert response["ResponseMetadata"]["RetryAttempts"] == 0
    assert response["CancellationReasons"][0]["Code"] == "TransactionConflict"
    assert is_transient(raised.value)
    assert injector.injected["dynamodb.TransactionConflict"] == injector.surfaced["dynamodb.TransactionConflict"] == 1
    assert "Item" not in dynamodb.get_item(TableName=RUNS_TABLE, Key=_item("run#2"))  # the service never saw it


@pytest.mark.usefixtures("aws")
def test_fault_injector_state_machine_calls_fail_per_call_without_sdk_retries() -> None:
    plan = FaultPlan(ssm_throttling=1.0, dynamodb_throttling=1.0)
    injector = FaultInjector(plan, seed=1)
    session = _session(injector)
    ssm = session.client("ssm", config=_retries(5))
    with pytest.raises(ClientError, match="ThrottlingException") as raised:
        ssm.send_command(DocumentName="AWS-RunPatchBaseline", Targets=[{"Key": "tag:PatchGroup", "Values": ["dev"]}])
    assert raised.value.response["ResponseMetadata"]["RetryAttempts"] == 0
    assert injector.injected["ssm.ThrottlingException"] == 1
    dynamodb = session.client("dynamodb", config=_retries(5))
    dynamodb.put_item(TableName=RUNS_TABLE, Item=_item("run#3"))  # the simulator's own calls are never faulted
    assert injector.injected["dynamodb.ProvisionedThroughputExceeded"] == 0


@pytest.mark.usefixtures("aws")
def test_fault_injector_storm_set_off_by_a_handler_throttles_the_state_machine_too() -> None:
    injector = FaultInjector(FaultPlan(storms=(ThrottlingStorm("ssm", seconds=600.0),)), seed=1)
    ssm = _session(injector).client("ssm", config=_retries(0))
    ssm.list_commands()  # before the storm's onset nothing is throttled
    CURRENT_FUNCTION.name = "VerifyStageFunction"
    try:
        with pytest.raises(ClientError, match="ThrottlingException"):
            ssm.list_commands()
    finally:
        CURRENT_FUNCTION.name = None
    with pytest.raises(ClientError, match="ThrottlingException") as raised:
        ssm.send_command(DocumentName="AWS-RunPatchBaseline", Targets=[{"Key": "tag:PatchGroup", "Values": ["dev"]}])
    assert raised.value.response["ResponseMetadata"]["RetryAttempts"] == 0
    assert injector.injected["storm.ssm.ThrottlingException"] == 2


@pytest.mark.usefixtures("aws", "in_handler")
def test_fault_injector_storm_onset_is_seeded() -> None:
    def attempts_until_the_storm(seed: int) -> int:
        injector = FaultInjector(FaultPlan(storms=CHAOS.storms), seed=seed)
        ssm = _session(injector).client("ssm", config=_retries(0))
        for attempt in range(1, 60):
            try:
                ssm.list_commands()
            except ClientError:
                return attempt
        raise AssertionError("the storm never began")

    low, high = CHAOS.storms[0].onset_attempts
    onset = attempts_until_the_storm(seed=11)
    assert low <= onset <= high
    assert onset == attempts_until_the_storm(seed=11)


@pytest.mark.usefixtures("aws")
def test_fault_injector_crash_is_decided_once_per_invocation_right_after_its_first_write() -> None:
    injector = FaultInjector(FaultPlan(lambda_crashes=1.0), seed=1)
    dynamodb = _session(injector).client("dynamodb", config=_retries(5))
    CURRENT_FUNCTION.name, CURRENT_FUNCTION.request_id = "RecordStageFunction", "invocation-1"
    try:
        with pytest.raises(RuntimeCrash, match="died right after PutItem"):
            dynamodb.put_item(TableName=RUNS_TABLE, Item=_item("run#4"))
        dynamodb.put_item(TableName=RUNS_TABLE, Item=_item("run#5"))  # its crash was decided: the retry's is next
        CURRENT_FUNCTION.request_id = "invocation-2"
        with pytest.raises(RuntimeCrash, match="RecordStageFunction died"):
            dynamodb.put_item(TableName=RUNS_TABLE, Item=_item("run#6"))
    finally:
        CURRENT_FUNCTION.name = CURRENT_FUNCTION.request_id = None
    assert "Item" in dynamodb.get_item(TableName=RUNS_TABLE, Key=_item("run#4"))  # the write happened before
    assert injector.injected["lambda.crash.RecordStageFunction"] == 2
