"""Idempotent rollout starts: one execution per monthly cycle, one per distinct emergency request; resumes."""

import hashlib
import re
from datetime import datetime

from patchpilot.integrations.ports import RolloutStarter, RunLedger
from patchpilot.models.cycle import RolloutStarted, StartRolloutRequest
from patchpilot.models.exceptions import NothingToResume
from patchpilot.models.records import ExecutionAttempt
from patchpilot.models.rollout import RolloutRequest
from patchpilot.models.state import WaitLimits

RESUMABLE_STATUSES = frozenset({"FAILED", "TIMED_OUT", "ABORTED"})
_ATTEMPT_SUFFIX = re.compile(r"-r(\d+)$")
_EXECUTION_NAME = re.compile(
    r"^(?P<run_name>(?P<prefix>cycle-|manual-|emergency-)\d{4}-(0[1-9]|1[0-2])(?P<digest>-[0-9a-f]{12})?)"
    r"(-r(?P<attempt>\d{1,3}))?$"
)


def _run_id_and_name(request: StartRolloutRequest, now: datetime) -> tuple[str, str]:
    cycle = request.cycle or f"{now:%Y-%m}"
    if request.mode == "emergency":
        # who asks does not make it another run: the same emergency request is one execution
        digest = hashlib.sha256(request.model_dump_json(exclude={"resume", "requested_by"}).encode()).hexdigest()[:12]
        run_id = f"emergency-{cycle}-{digest}"
    else:
        run_id = cycle if request.mode == "scheduled" else f"manual-{cycle}"
    name = run_id if run_id.startswith(("manual-", "emergency-")) else f"cycle-{run_id}"
    return run_id, name


def next_attempt_name(run_name: str, latest: ExecutionAttempt) -> str:
    """`cycle-2026-12` -> `cycle-2026-12-r2` -> `cycle-2026-12-r3`..."""
    match = _ATTEMPT_SUFFIX.search(latest.name.removeprefix(run_name))
    attempt = int(match.group(1)) if match else 1
    return f"{run_name}-r{attempt + 1}"


def start_rollout(
    request: StartRolloutRequest,
    starter: RolloutStarter,
    now: datetime,
    ledger: RunLedger | None = None,
    default_limits: WaitLimits | None = None,
) -> RolloutStarted:
    """Start (or resume) the rollout a request asks for, under a name that makes a repeated request a no-op.

    Parameters
    ----------
    request : StartRolloutRequest
        Scheduled (the cycle defaults to the current UTC month), manual, or emergency (explicit patches/CVEs);
        ``resume`` continues the run's failed execution.
    starter : RolloutStarter
        Step Functions.
    now : datetime
        The current time (UTC).
    ledger : RunLedger, optional
        The run's passed stages (needed to resume).
    default_limits : WaitLimits, optional
        The stack's wait limits for a request that names none (else the model's defaults).

    Returns
    -------
    RolloutStarted
        The execution serving the request; ``started`` is False when it already existed (``status`` says how it
        ended: a FAILED run is resumed with ``resume``, never restarted from scratch by a plain start).

    Raises
    ------
    NothingToResume
        A resume of a run that has no execution.

    Notes
    -----
    Scheduled and manual runs are named after the cycle (``cycle-2026-12``, ``manual-2026-12``); emergency runs
    after a digest of the request, so the same request maps to the same execution. A resume starts the next attempt
    (``cycle-2026-12-r2``) with the same run id, skipping the stages any attempt recorded as passed.
    """
    run_id, name = _run_id_and_name(request, now)
    if request.resume:
        return _resume(run_id, name, starter.latest_attempt(name), starter, ledger)
    fields = request.model_dump(exclude={"cycle", "resume"}, exclude_none=True)
    if "limits" not in fields and default_limits is not None:
        fields["limits"] = default_limits.model_dump()
    rollout = RolloutRequest.model_validate({"run_id": run_id, **fields})  # an invalid request reaches no port
    latest = starter.latest_attempt(name)
    if latest is not None:
        return RolloutStarted(
            execution_name=latest.name, execution_arn=latest.arn, run_id=run_id, started=False, status=latest.status
        )
    arn, started = starter.start(name, rollout)
    return RolloutStarted(execution_name=name, execution_arn=arn, run_id=run_id, started=started)


def run_of_execution(execution_name: str) -> tuple[str, str]:
    """(run name, run id) of any attempt's execution name: ``cycle-2026-12-r2`` -> (``cycle-2026-12``, ``2026-12``).

    Raises
    ------
    ValueError
        The name is not one PatchPilot gives its executions.
    """
    match = _EXECUTION_NAME.match(execution_name)
    if match is None or (match.group("prefix") == "emergency-") != (match.group("digest") is not None):
        raise ValueError(f"{execution_name!r} is not the name of a PatchPilot rollout execution")
    run_name = match.group("run_name")
    return run_name, run_name.removeprefix("cycle-")


def resume_failed_attempt(execution_name: str, starter: RolloutStarter, ledger: RunLedger) -> RolloutStarted:
    """Resume the run of one failed attempt (a chat button names the attempt its alert was about), at most once.

    Parameters
    ----------
    execution_name : str
        The attempt that failed (``cycle-2026-12``, ``cycle-2026-12-r2``, ``emergency-2026-12-<digest>``...).
    starter, ledger
        Step Functions and the run's passed stages.

    Returns
    -------
    RolloutStarted
        ``started`` True for the click that started the next attempt. Once that attempt exists (a second click, a
        click on an older alert, a concurrent click that lost the race on the execution name), nothing is started
        and the answer names the run's latest attempt and its status.

    Raises
    ------
    ValueError
        Not a PatchPilot execution name.
    NothingToResume
        The run has no execution.
    """
    run_name, run_id = run_of_execution(execution_name)
    latest = starter.latest_attempt(run_name)
    if latest is not None and latest.name != execution_name:
        return RolloutStarted(
            execution_name=latest.name, execution_arn=latest.arn, run_id=run_id, started=False, status=latest.status
        )
    return _resume(run_id, run_name, latest, starter, ledger)


def _resume(
    run_id: str,
    name: str,
    latest: ExecutionAttempt | None,
    starter: RolloutStarter,
    ledger: RunLedger | None,
) -> RolloutStarted:
    if latest is None:
        raise NothingToResume(f"run {run_id} has no execution ({name}) to resume; start it instead")
    if latest.status not in RESUMABLE_STATUSES:
        return RolloutStarted(
            execution_name=latest.name, execution_arn=latest.arn, run_id=run_id, started=False, status=latest.status
        )
    previous = RolloutRequest.model_validate_json(latest.input)
    passed = set(ledger.passed_stages(run_id)) if ledger is not None else set()
    completed = sorted(set(previous.completed_stages) | passed)
    rollout = previous.model_copy(
        update={"completed_stages": completed, "run_started_at": previous.run_started_at or latest.started_at}
    )
    attempt = next_attempt_name(name, latest)
    arn, started = starter.start(attempt, rollout)
    return RolloutStarted(
        execution_name=attempt,
        execution_arn=arn,
        run_id=run_id,
        started=started,
        resumed_from=latest.name,
        skipped_stages=completed,
    )
