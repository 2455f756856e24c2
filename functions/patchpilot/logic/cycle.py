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
        return _resume(request, run_id, name, starter.latest_attempt(name), starter, ledger)
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


def _resume(
    request: StartRolloutRequest,
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
