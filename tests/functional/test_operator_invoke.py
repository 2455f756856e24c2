"""The simulator's operator-side invocations retry transient failures, and only those."""

from types import SimpleNamespace
from typing import Any

from patchpilot_sim.compliance_demo import OPERATOR_ATTEMPTS, invoke_as_operator
from patchpilot_sim.lambdas import InvocationResult


class _Lambdas:
    def __init__(self, results: list[InvocationResult]) -> None:
        self.results = results
        self.calls = 0

    def invoke(self, function: str, payload: dict[str, Any]) -> InvocationResult:
        self.calls += 1
        return self.results.pop(0)


def _failed(error_type: str) -> InvocationResult:
    return InvocationResult(function="F", payload={}, error_type=error_type, error_message="injected")


def test_invoke_as_operator_calls_again_after_a_transient_failure() -> None:
    lambdas = _Lambdas(
        [_failed("ComplianceReadFailed"), _failed("TransientAwsError"), InvocationResult(function="F", payload={})]
    )
    result = invoke_as_operator(SimpleNamespace(lambdas=lambdas), "ComplianceReportFunction", {})  # type: ignore[arg-type]
    assert (result.failed, lambdas.calls) == (False, 3)


def test_invoke_as_operator_gives_up_after_its_attempts_and_never_retries_a_real_error() -> None:
    transient = _Lambdas([_failed("Runtime.ExitError") for _ in range(OPERATOR_ATTEMPTS + 1)])
    assert invoke_as_operator(SimpleNamespace(lambdas=transient), "F", {}).failed  # type: ignore[arg-type]
    assert transient.calls == OPERATOR_ATTEMPTS
    invalid = _Lambdas([_failed("ValidationError"), InvocationResult(function="F", payload={})])
    assert invoke_as_operator(SimpleNamespace(lambdas=invalid), "F", {}).error_type == "ValidationError"  # type: ignore[arg-type]
    assert invalid.calls == 1
