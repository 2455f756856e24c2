"""Fault injection for the local runtime: what AWS does under load, switched on per scenario, seeded.

Everything here sits OUTSIDE the product code: botocore hooks on the default session (the session the handlers'
clients and moto's Step Functions engine use) and a wrapper around the simulated fleet's event emitter.

AWS API faults, per attempt. AWS throttles and fails *requests*: each HTTP attempt is answered on its own, and the
SDK retries what is retryable. botocore's standard mode (what `patchpilot.integrations.aws_clients` configures:
`max_attempts` 5 retries, so 6 attempts; adaptive with 10 retries for the compliance refresh) retries throttling
errors (`ThrottlingException`, `ProvisionedThroughputExceededException`...) and HTTP 500/502/503/504 with
exponential backoff and full jitter, and never `TransactionCanceledException` (boto3 guide "Retries",
https://boto3.amazonaws.com/v1/documentation/api/latest/guide/retries.html; DynamoDB developer guide "Error handling
with DynamoDB", https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Programming.Errors.html: "the AWS
SDKs implement automatic retry logic and exponential backoff"). So a handler's call is answered at `before-send`,
once per attempt, as the raw HTTP response of the JSON protocol (`__type`, message, `x-amzn-RequestId`, the status
AWS uses): botocore parses it as it parses AWS's, and its retry handler decides, with its backoff (simulated seconds
in a runtime: `moto_clock.SdkBackoffPatch`). A rate of 1 % is a 1 % chance per *attempt*, the faithful model;
answering per call (before the retry handler) would stand for a fault that outlived every SDK attempt, far harsher
than AWS.

- DynamoDB: `TransactionCanceledException` with reason `TransactionConflict` on TransactWriteItems (an ongoing
  transaction on the same item; status 400, not retried by the SDK) and `ProvisionedThroughputExceededException`
  (400, retried). https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_TransactWriteItems.html
- SSM: `ThrottlingException` (400) and `InternalServerError` (500); Step Functions: `ThrottlingException` (400) and
  the common `InternalFailure` (500). API references "Common Errors"
  (https://docs.aws.amazon.com/systems-manager/latest/APIReference/CommonErrors.html,
  https://docs.aws.amazon.com/step-functions/latest/apireference/CommonErrors.html) and each operation's Errors.
- A throttling storm: from a seeded attempt of the rollout's functions on, a service throttles EVERY attempt, from
  every caller, for `seconds`. Throttling is correlated in real life (a burst of the whole fleet, a service event);
  a storm outlasts the SDK's retries (at most 1+2+4+8+16 s of backoff over 6 attempts), so the product's
  `TransientAwsError` and the state machine's Retry (or the event source's redelivery) must carry the work over it.
  The window is measured in simulated seconds, on the clock of the retries it must outlast: in a runtime, moto's ASL
  Retry intervals and Lambda's redeliveries run on the discrete-event clock, and botocore's backoff is simulated
  time on the calling invocation's own timeline (`moto_clock.SdkBackoffPatch`), so a storm ends for an attempt
  exactly when it would on AWS and costs no real time.

Calls made by moto's Step Functions engine (`aws-sdk:` tasks; no handler runs on the thread, `CURRENT_FUNCTION` is
None) are answered once per *call* from the runtime's `before-call` hook: Step Functions does not retry an SDK
integration's error by itself, the failed task is retried only by the state's `Retry` ("Handling errors in Step
Functions workflows", https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html; AWS SDK
integrations report `<Service>.<ErrorName>`,
https://docs.aws.amazon.com/step-functions/latest/dg/supported-services-awssdk.html). SSM faults reach its
`aws-sdk:ssm:sendCommand`, a storm every engine call to its service.

- A Lambda crash mid-handler is raised from an `after-call` hook of a handler's write, so the write happened and the
  process "dies" right after it (Runtime.ExitError). The rate is per invocation (a crash is a property of the
  execution environment, not of each API call: a per-write rate would doom any function that writes a row per node
  of a large fleet, on every attempt); the invocation dies after its first write, leaving the most work half done.
- SSM status events are best effort (EventBridge may lose them) and at least once: dropped, delivered several times,
  and reordered (each copy after its own random delay in simulated time).
  https://docs.aws.amazon.com/systems-manager/latest/userguide/monitoring-eventbridge-events.html

Handler calls are told apart from the simulator's own by the thread-local `CURRENT_FUNCTION` (the operator's direct
calls, StartRolloutFunction and DecideApprovalFunction, are exempt: a person would simply run the command again).
`injected` counts every fault answered (per attempt for handlers); `surfaced` counts the injected-kind errors that
reached a handler's code after the SDK's retries, `recovered` the handler calls the SDK's retries saved.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import boto3
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.hooks import BaseEventHooks

from patchpilot_sim.clock import Scheduler
from patchpilot_sim.lambdas import CURRENT_FUNCTION, RuntimeCrash
from patchpilot_sim.runtime import JSON_PROTOCOL, NOT_SENT, LocalRuntime, error_response, http_error

_WRITES = frozenset({"TransactWriteItems", "UpdateItem", "PutItem", "SendTaskSuccess", "SendCommand", "PutObject"})
_EXEMPT_FUNCTIONS = frozenset({"StartRolloutFunction", "DecideApprovalFunction"})
# What each service answers a throttled request with.
_THROTTLING = {
    "dynamodb": "ProvisionedThroughputExceededException",
    "ssm": "ThrottlingException",
    "sfn": "ThrottlingException",
}
_SERVER_ERROR = {"ssm": "InternalServerError", "sfn": "InternalFailure"}
# The Lambda functions the rollout state machine invokes (its Task states).
ROLLOUT_FUNCTIONS = frozenset(
    {
        "PlanRolloutFunction",
        "PlanStageFunction",
        "SnapshotStageFunction",
        "AwaitInstallFunction",
        "ReconcileInstallFunction",
        "VerifyStageFunction",
        "RecordStageFunction",
        "ExcludePatchesFunction",
        "RequestApprovalFunction",
        "StageReportFunction",
        "ComplianceReportFunction",
    }
)


@dataclass(frozen=True)
class ThrottlingStorm:
    """A service throttles every attempt, from every caller, for `seconds`.

    It begins at the n-th attempt on the service by one of `onset_functions` (any handler when empty), n drawn
    (seeded) from `onset_attempts` (inclusive).
    """

    service: str
    seconds: float
    onset_attempts: tuple[int, int] = (1, 1)
    onset_functions: frozenset[str] = frozenset()


@dataclass(frozen=True)
class FaultPlan:
    """Rates (0..1) of each fault, per attempt; the defaults inject nothing."""

    drop_status_events: float = 0.0
    deliveries_per_event: int = 1
    reorder_seconds: float = 0.0  # each delivery is delayed by a uniform random 0..reorder_seconds (simulated)
    dynamodb_transaction_conflicts: float = 0.0
    dynamodb_throttling: float = 0.0
    ssm_throttling: float = 0.0
    ssm_server_errors: float = 0.0
    sfn_throttling: float = 0.0
    sfn_server_errors: float = 0.0
    lambda_crashes: float = 0.0  # per handler invocation that writes: it dies right after its first write
    storms: tuple[ThrottlingStorm, ...] = ()

    @property
    def active(self) -> bool:
        return self != NO_FAULTS


NO_FAULTS = FaultPlan()
CHAOS = FaultPlan(
    drop_status_events=0.3,
    deliveries_per_event=3,
    reorder_seconds=120.0,
    dynamodb_transaction_conflicts=0.1,
    dynamodb_throttling=0.01,
    ssm_throttling=0.02,
    ssm_server_errors=0.01,
    sfn_throttling=0.02,
    sfn_server_errors=0.01,
    lambda_crashes=0.05,
    # 45 simulated seconds: longer than the SDK's worst-case backoff over 6 attempts (31 s, simulated time too:
    # moto_clock.SdkBackoffPatch), so the calls caught at its start fail
    # with TransientAwsError and the state machine's Retry (or SQS redelivery) carries them over it. It sets off while
    # the rollout's own functions read the fleet's patch state.
    storms=(ThrottlingStorm("ssm", seconds=45.0, onset_attempts=(3, 20), onset_functions=ROLLOUT_FUNCTIONS),),
)


@dataclass(frozen=True)
class Fault:
    """One injected AWS error answer."""

    status: int
    code: str
    message: str
    extra: dict[str, Any] = field(default_factory=dict)

    def call_answer(self) -> tuple[AWSResponse, dict[str, Any]]:
        """The answer of a whole call, as a `before-call` hook gives it (botocore's retries never see it)."""
        return error_response(self.status, self.code, self.message, **self.extra)

    def http_answer(self, service: str) -> AWSResponse:
        """The raw HTTP response of one attempt, as a `before-send` hook gives it (botocore parses it, may retry)."""
        return http_error(service, self.status, self.code, self.message, **self.extra)


@dataclass(frozen=True)
class Refusal:
    """Calls answered with a non-transient error until lifted."""

    service: str
    operation: str
    code: str
    when: Callable[[dict[str, Any]], bool]


@dataclass
class _Storm:
    spec: ThrottlingStorm
    onset: int
    attempts: int = 0
    started: float | None = None


class FaultInjector:
    """Injects a FaultPlan's faults; `injected` counts them by kind.

    `monotonic` is the clock of the storms' windows (seconds); `install` puts it on the runtime's simulated clock,
    read on the calling invocation's timeline (the present plus its SDK's backoff so far).
    """

    def __init__(self, plan: FaultPlan, seed: int, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.plan = plan
        self._rng = random.Random(f"faults:{seed}")
        storm_dice = random.Random(f"storms:{seed}")
        self._storms = [_Storm(spec, storm_dice.randint(*spec.onset_attempts)) for spec in plan.storms]
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self.injected: Counter[str] = Counter()
        self.surfaced: Counter[str] = Counter()
        self.recovered: Counter[str] = Counter()
        self._refusals: list[Refusal] = []
        self._judged: set[str | None] = set()  # invocations whose crash was decided

    def refuse(self, service: str, operation: str, code: str, when: Callable[[dict[str, Any]], bool]) -> Refusal:
        """Answer every matching call, from any caller, with a non-transient error `code` until lifted.

        E.g. a permission the operator must fix before resuming.
        """
        refusal = Refusal(service, operation, code, when)
        with self._lock:
            self._refusals.append(refusal)
        return refusal

    def lift(self, refusal: Refusal) -> None:
        """Stop a refusal."""
        with self._lock:
            self._refusals.remove(refusal)

    def _roll(self, rate: float) -> bool:
        if rate <= 0:
            return False
        with self._lock:
            return self._rng.random() < rate

    def _count(self, kind: str) -> None:
        with self._lock:
            self.injected[kind] += 1

    def install(self, runtime: LocalRuntime) -> None:
        """Answer calls and attempts before the runtime's stand-ins and moto do; watch what came of them."""
        self._monotonic = runtime.sdk_backoff.invocation_seconds
        runtime.call_hooks.insert(0, self.before_call)
        runtime.send_hooks.insert(0, self.before_send)
        self._watch(cast(BaseEventHooks, boto3.DEFAULT_SESSION.events))  # type: ignore[union-attr]

    def attach(self, events: BaseEventHooks) -> None:
        """Without a runtime: answer handlers' attempts at `before-send` of `events` (and watch what came of them).

        Register before any client is created: a client copies its session's hooks when it is made.
        """
        events.register_first("before-send.*.*", cast(Callable[..., None], self._send_hook))
        self._watch(events)

    def _watch(self, events: BaseEventHooks) -> None:
        """Count what the SDK's retries made of the faults, and crash handlers after their writes."""
        events.register("after-call.*.*", self._after_call)

    def _send_hook(self, event_name: str, request: AWSPreparedRequest, **_: Any) -> AWSResponse | None:
        answer = self.before_send(*event_name.split(".", 2)[1:])
        if answer is not None:
            request.url = NOT_SENT  # every before-send hook runs: moto's must not carry out an answered attempt
        return answer

    def before_call(
        self, service: str, operation: str, params: dict[str, Any]
    ) -> tuple[AWSResponse, dict[str, Any]] | None:
        """A runtime call hook: refusals (any caller) and the state machine's own calls' faults, once per call."""
        with self._lock:
            refusals = [r for r in self._refusals if (r.service, r.operation) == (service, operation)]
        for refusal in refusals:
            if refusal.when(params):
                self._count(f"{service}.{refusal.code}")
                return error_response(400, refusal.code, f"{operation} refused (injected)")
        if getattr(CURRENT_FUNCTION, "name", None) is not None:
            return None  # a handler's call: answered per attempt at before-send
        fault = self._storm_fault(service, None)
        if fault is None and service == "ssm" and operation == "SendCommand":
            fault = self._api_fault(service, operation)
        return fault.call_answer() if fault is not None else None

    def before_send(self, service: str, operation: str) -> AWSResponse | None:
        """A runtime send hook: a handler's HTTP attempt answered with a fault (its SDK may retry), or None."""
        function = getattr(CURRENT_FUNCTION, "name", None)
        if function is None or function in _EXEMPT_FUNCTIONS or service not in JSON_PROTOCOL:
            return None
        fault = self._storm_fault(service, function) or self._api_fault(service, operation)
        return fault.http_answer(service) if fault is not None else None

    def _storm_fault(self, service: str, function: str | None) -> Fault | None:
        """A throttling answer if a storm of `service` is on (an attempt of `function`, a handler, may set one off)."""
        now = self._monotonic()
        with self._lock:
            for storm in self._storms:
                if storm.spec.service != service:
                    continue
                if storm.started is None and function is not None:
                    if not storm.spec.onset_functions or function in storm.spec.onset_functions:
                        storm.attempts += 1
                    if storm.attempts >= storm.onset:
                        storm.started = now
                if storm.started is not None and now < storm.started + storm.spec.seconds:
                    code = _THROTTLING[service]
                    self.injected[f"storm.{service}.{code}"] += 1
                    return Fault(400, code, "Rate exceeded (injected throttling storm)")
        return None

    def _api_fault(self, service: str, operation: str) -> Fault | None:
        plan = self.plan
        if service == "dynamodb":
            if operation == "TransactWriteItems" and self._roll(plan.dynamodb_transaction_conflicts):
                self._count("dynamodb.TransactionConflict")
                reasons = {
                    "CancellationReasons": [{"Code": "TransactionConflict", "Message": "Transaction is ongoing"}]
                }
                message = "Transaction cancelled, please refer cancellation reasons for specific reasons (injected)"
                return Fault(400, "TransactionCanceledException", message, reasons)
            if self._roll(plan.dynamodb_throttling):
                self._count("dynamodb.ProvisionedThroughputExceeded")
                return Fault(400, _THROTTLING[service], "Rate exceeded (injected)")
            return None
        throttling = {"ssm": plan.ssm_throttling, "sfn": plan.sfn_throttling}.get(service, 0.0)
        server_errors = {"ssm": plan.ssm_server_errors, "sfn": plan.sfn_server_errors}.get(service, 0.0)
        if self._roll(throttling):
            self._count(f"{service}.ThrottlingException")
            return Fault(400, _THROTTLING[service], "Rate exceeded (injected)")
        if self._roll(server_errors):
            code = _SERVER_ERROR[service]
            self._count(f"{service}.{code}")
            return Fault(500, code, "Internal error (injected)")
        return None

    def _after_call(self, event_name: str, parsed: dict[str, Any] | None = None, **_: Any) -> None:
        service, operation = event_name.split(".", 2)[1:]
        function = getattr(CURRENT_FUNCTION, "name", None)
        if function is None or function in _EXEMPT_FUNCTIONS:
            return
        self._tally(service, parsed or {})
        if operation in _WRITES and self._first_write(CURRENT_FUNCTION) and self._roll(self.plan.lambda_crashes):
            self._count(f"lambda.crash.{function}")
            raise RuntimeCrash(f"{function} died right after {operation} (injected)")

    def _first_write(self, current: Any) -> bool:
        """Whether this write is the first of the running invocation (its crash is decided once)."""
        request_id = getattr(current, "request_id", None)
        with self._lock:
            if request_id in self._judged:
                return False
            self._judged.add(request_id)
        return True

    def _tally(self, service: str, parsed: dict[str, Any]) -> None:
        """What the SDK's retries made of the faults: errors that reached the handler, calls saved by a retry."""
        code = parsed.get("Error", {}).get("Code")
        if code == "TransactionCanceledException":  # a failed condition is the product's own idempotence, not a fault
            reasons = {reason.get("Code") for reason in parsed.get("CancellationReasons", [])}
            code = "TransactionConflict" if "TransactionConflict" in reasons else "ConditionalCheckFailed"
        kinds = {_THROTTLING.get(service), _SERVER_ERROR.get(service), "TransactionConflict"}
        with self._lock:
            if code is not None and code in kinds:
                self.surfaced[f"{service}.{code}"] += 1
            elif code is None and parsed.get("ResponseMetadata", {}).get("RetryAttempts", 0) > 0:
                self.recovered[service] += 1

    def wrap_emitter(
        self, emit: Callable[[dict[str, Any]], None], scheduler: Scheduler
    ) -> Callable[[dict[str, Any]], None]:
        """An event emitter that loses, repeats and reorders SSM status events as the plan says."""
        plan = self.plan

        def deliver(event: dict[str, Any]) -> None:
            if self._roll(plan.drop_status_events):
                self._count("events.dropped")
                return
            with self._lock:
                self.injected["events.extra_delivery"] += plan.deliveries_per_event - 1
            for _ in range(plan.deliveries_per_event):
                with self._lock:
                    delay = self._rng.uniform(0, plan.reorder_seconds)
                scheduler.after(delay, lambda: emit(event))

        return deliver
