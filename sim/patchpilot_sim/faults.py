"""Fault injection for the local runtime: what AWS does under load, switched on per scenario, seeded.

Everything here sits OUTSIDE the product code: the local runtime's botocore hooks on the default session (the session
the handlers' clients and moto's Step Functions engine use) and a wrapper around the simulated fleet's event emitter.

- AWS API faults are answered from the runtime's `before-call` hook, short-circuiting the HTTP call the way
  botocore's Stubber does. botocore's retry handler never sees them, so each one stands for a fault that outlived
  the SDK's retries.
  DynamoDB: `TransactionCanceledException` with reason `TransactionConflict` on TransactWriteItems (concurrent
  transactions on one item; botocore does not retry it) and `ProvisionedThroughputExceededException`; SSM and Step
  Functions: `ThrottlingException` and HTTP 500 `InternalServerError`.
  https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_TransactWriteItems.html
- A Lambda crash mid-handler is raised from an `after-call` hook of a handler's write, so the write happened and the
  process "dies" right after it (Runtime.ExitError).
- SSM status events are best effort (EventBridge may lose them) and at least once: dropped, delivered several times,
  and reordered (each copy after its own random delay in simulated time).
  https://docs.aws.amazon.com/systems-manager/latest/userguide/monitoring-eventbridge-events.html

Handler calls are told apart from the simulator's own by the thread-local `CURRENT_FUNCTION` (the operator's direct
calls, StartRolloutFunction and DecideApprovalFunction, are exempt: a person would simply run the command again).
moto's Step Functions engine calls SSM SendCommand for the `aws-sdk:ssm:sendCommand` task outside any handler: SSM
faults apply to it too.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse

from patchpilot_sim.clock import Scheduler
from patchpilot_sim.lambdas import CURRENT_FUNCTION, RuntimeCrash
from patchpilot_sim.runtime import LocalRuntime, error_response

_WRITES = frozenset({"TransactWriteItems", "UpdateItem", "PutItem", "SendTaskSuccess", "SendCommand", "PutObject"})
_EXEMPT_FUNCTIONS = frozenset({"StartRolloutFunction", "DecideApprovalFunction"})


@dataclass(frozen=True)
class FaultPlan:
    """Rates (0..1) of each fault; the defaults inject nothing."""

    drop_status_events: float = 0.0
    deliveries_per_event: int = 1
    reorder_seconds: float = 0.0  # each delivery is delayed by a uniform random 0..reorder_seconds (simulated)
    dynamodb_transaction_conflicts: float = 0.0
    dynamodb_throttling: float = 0.0
    ssm_throttling: float = 0.0
    ssm_server_errors: float = 0.0
    sfn_throttling: float = 0.0
    sfn_server_errors: float = 0.0
    lambda_crashes: float = 0.0  # per handler write call

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
    lambda_crashes=0.01,
)


@dataclass(frozen=True)
class Refusal:
    """Calls answered with a non-transient error until lifted."""

    service: str
    operation: str
    code: str
    when: Callable[[dict[str, Any]], bool]


class FaultInjector:
    """Injects a FaultPlan's faults; `injected` counts them by kind."""

    def __init__(self, plan: FaultPlan, seed: int) -> None:
        self.plan = plan
        self._rng = random.Random(f"faults:{seed}")
        self._lock = threading.Lock()
        self.injected: Counter[str] = Counter()
        self._refusals: list[Refusal] = []

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
        """Answer calls before the runtime does, and crash handlers after their writes (an after-call hook)."""
        runtime.call_hooks.insert(0, self._before_call)
        boto3.DEFAULT_SESSION.events.register("after-call.*.*", self._after_call)  # type: ignore[union-attr]

    def _before_call(
        self, service: str, operation: str, params: dict[str, Any]
    ) -> tuple[AWSResponse, dict[str, Any]] | None:
        with self._lock:
            refusals = [r for r in self._refusals if (r.service, r.operation) == (service, operation)]
        for refusal in refusals:
            if refusal.when(params):
                self._count(f"{service}.{refusal.code}")
                return error_response(400, refusal.code, f"{operation} refused (injected)")
        function = getattr(CURRENT_FUNCTION, "name", None)
        in_handler = function is not None and function not in _EXEMPT_FUNCTIONS
        engine_send = function is None and service == "ssm" and operation == "SendCommand"
        if not (in_handler or engine_send):
            return None
        return self._api_fault(service, operation)

    def _api_fault(self, service: str, operation: str) -> tuple[AWSResponse, dict[str, Any]] | None:
        plan = self.plan
        if service == "dynamodb":
            if operation == "TransactWriteItems" and self._roll(plan.dynamodb_transaction_conflicts):
                self._count("dynamodb.TransactionConflict")
                reasons = {"CancellationReasons": [{"Code": "TransactionConflict"}]}
                return error_response(
                    400, "TransactionCanceledException", "Transaction cancelled (injected)", **reasons
                )
            if self._roll(plan.dynamodb_throttling):
                self._count("dynamodb.ProvisionedThroughputExceeded")
                return error_response(400, "ProvisionedThroughputExceededException", "Rate exceeded (injected)")
        throttling = {"ssm": plan.ssm_throttling, "sfn": plan.sfn_throttling}.get(service, 0.0)
        server_errors = {"ssm": plan.ssm_server_errors, "sfn": plan.sfn_server_errors}.get(service, 0.0)
        if self._roll(throttling):
            self._count(f"{service}.ThrottlingException")
            return error_response(400, "ThrottlingException", "Rate exceeded (injected)")
        if self._roll(server_errors):
            self._count(f"{service}.InternalServerError")
            return error_response(500, "InternalServerError", "Internal error (injected)")
        return None

    def _after_call(self, event_name: str, **_: Any) -> None:
        operation = event_name.split(".", 2)[2]
        function = getattr(CURRENT_FUNCTION, "name", None)
        if function is None or function in _EXEMPT_FUNCTIONS or operation not in _WRITES:
            return
        if self._roll(self.plan.lambda_crashes):
            self._count(f"lambda.crash.{function}")
            raise RuntimeCrash(f"{function} died right after {operation} (injected)")

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
