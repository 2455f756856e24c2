"""A cycle that failed (a fault the operator has to fix) is resumed: passed stages are not patched again."""

import pytest

from patchpilot_sim.faults import NO_FAULTS, FaultInjector
from patchpilot_sim.runtime import LocalRuntime
from tests.runtime_helpers import REAL_TIMEOUT, launch_fleet, sent_commands, start

pytestmark = pytest.mark.runtime


def _targets_group(group: str):  # type: ignore[no-untyped-def]
    def matches(params: dict[str, object]) -> bool:
        targets = params.get("Targets") or []
        return any(group in target.get("Values", []) for target in targets)  # type: ignore[union-attr]

    return matches


def _install_groups(runtime: LocalRuntime, execution_arn: str) -> list[str]:
    return [
        value
        for command in sent_commands(runtime, execution_arn)
        if command.get("Parameters", {}).get("Operation") == ["Install"]
        for target in command["Targets"]
        for value in target["Values"]
    ]


def test_resume_after_a_failed_stage_skips_the_passed_stage_and_succeeds() -> None:
    with LocalRuntime() as runtime:
        launch_fleet(runtime, instances=10, groups={"dev", "staging"})
        injector = FaultInjector(NO_FAULTS, seed=1)
        injector.install(runtime)
        denied = injector.refuse("ssm", "SendCommand", "AccessDeniedException", _targets_group("staging"))
        # Given a cycle whose staging stage fails: SendCommand to staging is denied
        failed = start(runtime, stages=["dev", "staging"])
        assert (failed["status"], failed["error"]) == ("FAILED", "Ssm.AccessDeniedException")
        assert injector.injected["ssm.AccessDeniedException"] >= 1
        # A plain start does not call the failed month "already running", and starts nothing
        again = runtime.lambdas.invoke("StartRolloutFunction", {"mode": "manual", "cycle": "2026-12"})
        assert (again.payload["started"], again.payload["status"]) == (False, "FAILED")
        # When the operator fixes the permission and resumes, twice
        injector.lift(denied)
        request = {"mode": "manual", "cycle": "2026-12", "resume": True}
        resumed = runtime.lambdas.invoke("StartRolloutFunction", request)
        twice = runtime.lambdas.invoke("StartRolloutFunction", request)
        assert not resumed.failed, resumed.error_message
        assert (resumed.payload["execution_name"], resumed.payload["skipped_stages"]) == ("manual-2026-12-r2", ["dev"])
        assert (twice.payload["execution_name"], twice.payload["started"]) == ("manual-2026-12-r2", False)
        ended = runtime.wait_for_execution(resumed.payload["execution_arn"], timeout=REAL_TIMEOUT)
        runtime.settle(timeout=10)
        # Then the second attempt succeeds, patching staging only: dev was patched once, by the first attempt
        assert ended["status"] == "SUCCEEDED"
        assert _install_groups(runtime, failed["executionArn"]).count("dev") == 1
        assert set(_install_groups(runtime, resumed.payload["execution_arn"])) == {"staging"}
