import pytest

from patchpilot.logic.health import allowed_failures, judge_stage_health, verify_stage_health
from patchpilot.models.exceptions import CommandNotTracked, StageHealthCheckFailed
from patchpilot.models.state import InstallTally, VerifyStageRequest
from tests.unit.fakes import InMemoryInstallTracker


def _request(max_errors: str) -> VerifyStageRequest:
    return VerifyStageRequest(
        run_id="r", stage_name="dev", command_id="c", max_errors=max_errors, phase="after_install"
    )


def _tally(expected: int, failed: int, not_reported: int = 0, complete: bool = True) -> InstallTally:
    reported = expected - not_reported
    return InstallTally(
        command_id="c",
        expected=expected,
        reported=reported,
        succeeded=reported - failed,
        failed=failed,
        not_reported=not_reported,
        complete=complete,
    )


@pytest.mark.parametrize(
    ("max_errors", "targeted", "budget"), [("0", 10, 0), ("2", 10, 2), ("10%", 10, 1), ("10%", 9, 0), ("50%", 5, 2)]
)
def test_allowed_failures_follows_send_command_max_errors(max_errors: str, targeted: int, budget: int) -> None:
    assert allowed_failures(max_errors, targeted) == budget


def test_judge_stage_health_passes_within_budget() -> None:
    verdict = judge_stage_health(_request("1"), _tally(expected=4, failed=1))
    assert (verdict.healthy, verdict.succeeded, verdict.failed, verdict.allowed_failures) == (True, 3, 1, 1)


def test_judge_stage_health_counts_never_reported_instances_as_failed() -> None:
    expected = r"2 of 4 instances failed \(1 install failures, 1 never reported\)"
    with pytest.raises(StageHealthCheckFailed, match=expected):
        judge_stage_health(_request("1"), _tally(expected=4, failed=1, not_reported=1))


def test_judge_stage_health_fails_an_incomplete_install() -> None:
    with pytest.raises(StageHealthCheckFailed):
        judge_stage_health(_request("100%"), _tally(expected=4, failed=0, complete=False))


def test_verify_stage_health_needs_a_tracked_command() -> None:
    with pytest.raises(CommandNotTracked):
        verify_stage_health(_request("0"), InMemoryInstallTracker())
