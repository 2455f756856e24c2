"""The SQS event source mapping's partial-batch rules (AWS: services-sqs-errorhandling) and the fault plan's dice."""

import pytest

from patchpilot_sim.faults import CHAOS, NO_FAULTS, FaultInjector
from patchpilot_sim.lambdas import InvocationResult
from patchpilot_sim.sqs_poller import failed_message_ids

IDS = ["m1", "m2", "m3"]


def _ok(payload: object) -> InvocationResult:
    return InvocationResult(function="CommandResultFunction", payload=payload)


@pytest.mark.parametrize(
    ("result", "reports_failures", "left"),
    [
        (_ok({"batchItemFailures": [{"itemIdentifier": "m2"}]}), True, {"m2"}),
        (_ok({"batchItemFailures": []}), True, set()),
        (_ok(None), True, set()),
        (_ok({"batchItemFailures": [{"itemIdentifier": "unknown"}]}), True, set(IDS)),
        (_ok({"batchItemFailures": [{"itemIdentifier": ""}]}), True, set(IDS)),
        (_ok({"batchItemFailures": "m2"}), True, set(IDS)),
        (_ok({"batchItemFailures": [{"itemIdentifier": "m2"}]}), False, set()),
        (InvocationResult(function="f", payload=None, error_type="Runtime.ExitError"), True, set(IDS)),
    ],
)
def test_failed_message_ids_follow_the_partial_batch_response_rules(
    result: InvocationResult, reports_failures: bool, left: set[str]
) -> None:
    assert failed_message_ids(result, IDS, reports_failures) == left


def test_fault_injector_loses_repeats_and_reorders_events_reproducibly() -> None:
    class Later:
        def __init__(self) -> None:
            self.delays: list[float] = []

        def after(self, seconds: float, action: object) -> None:
            self.delays.append(seconds)

    def run(seed: int) -> tuple[list[float], dict[str, int]]:
        injector, later = FaultInjector(CHAOS, seed), Later()
        emit = injector.wrap_emitter(lambda event: None, later)  # type: ignore[arg-type]
        for n in range(300):
            emit({"id": n})
        return later.delays, dict(injector.injected)

    delays, injected = run(seed=5)
    assert (delays, injected) == run(seed=5)
    kept = 300 - injected["events.dropped"]
    assert 0.2 < injected["events.dropped"] / 300 < 0.4
    assert len(delays) == 3 * kept == injected["events.extra_delivery"] * 3 // 2
    assert max(delays) <= CHAOS.reorder_seconds
    assert not NO_FAULTS.active
    assert CHAOS.active
