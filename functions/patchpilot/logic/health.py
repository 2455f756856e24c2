"""Judging a stage's health from its install results."""

from patchpilot.integrations.ports import InstallTracker
from patchpilot.logic.install_tracking import tally_of
from patchpilot.models.exceptions import CommandNotTracked, StageHealthCheckFailed
from patchpilot.models.state import InstallTally, StageVerdict, VerifyStageRequest


def allowed_failures(max_errors: str, targeted: int) -> int:
    """How many failed instances a stage tolerates, with SendCommand's `MaxErrors` semantics.

    Parameters
    ----------
    max_errors : str
        An absolute number (``"2"``) or a percentage of the targeted instances (``"10%"``, rounded down).
    targeted : int
        Instances the stage targeted.

    Returns
    -------
    int
        The error budget in instances.
    """
    if max_errors.endswith("%"):
        return targeted * int(max_errors[:-1]) // 100
    return int(max_errors)


def judge_stage_health(request: VerifyStageRequest, tally: InstallTally) -> StageVerdict:
    """Pass or fail a stage: failed plus never-reported instances must stay within the error budget.

    Parameters
    ----------
    request : VerifyStageRequest
        The stage, its error budget and the verification phase.
    tally : InstallTally
        The install command's counts.

    Returns
    -------
    StageVerdict
        The verdict of a healthy stage.

    Raises
    ------
    StageHealthCheckFailed
        Failures exceed the budget, or the install never completed.
    """
    failed = tally.failed + tally.not_reported
    budget = allowed_failures(request.max_errors, tally.expected)
    if not tally.complete or failed > budget:
        raise StageHealthCheckFailed(
            f"stage {request.stage_name} ({request.phase}): {failed} of {tally.expected} instances failed "
            f"({tally.failed} install failures, {tally.not_reported} never reported); error budget {budget}"
        )
    return StageVerdict(
        stage_name=request.stage_name,
        phase=request.phase,
        healthy=True,
        targeted=tally.expected,
        succeeded=tally.succeeded,
        failed=failed,
        allowed_failures=budget,
    )


def verify_stage_health(request: VerifyStageRequest, tracker: InstallTracker) -> StageVerdict:
    """Judge a stage from its tracked install command (see `judge_stage_health`).

    Raises
    ------
    CommandNotTracked
        The command has no tracking row.
    StageHealthCheckFailed
        The stage is unhealthy.
    """
    command = tracker.get_command(request.command_id)
    if command is None:
        raise CommandNotTracked(f"command {request.command_id} has no tracking row")
    return judge_stage_health(request, tally_of(command, command_finished=True))
