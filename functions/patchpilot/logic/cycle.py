"""Idempotent rollout starts: one execution per monthly cycle, one per distinct emergency request."""

import hashlib
from datetime import datetime

from patchpilot.integrations.ports import RolloutStarter
from patchpilot.models.cycle import RolloutStarted, StartRolloutRequest
from patchpilot.models.rollout import RolloutRequest


def start_rollout(request: StartRolloutRequest, starter: RolloutStarter, now: datetime) -> RolloutStarted:
    """Start the rollout a request asks for, under a name that makes a repeated request a no-op.

    Parameters
    ----------
    request : StartRolloutRequest
        Scheduled (the cycle defaults to the current UTC month), manual, or emergency (explicit patches/CVEs).
    starter : RolloutStarter
        Step Functions.
    now : datetime
        The current time (UTC).

    Returns
    -------
    RolloutStarted
        The execution serving the request; ``started`` is False when it already existed.

    Notes
    -----
    Scheduled and manual runs are named after the cycle (``cycle-2026-12``, ``manual-2026-12``); emergency runs
    after a digest of the request, so the same request maps to the same execution.
    """
    cycle = request.cycle or f"{now:%Y-%m}"
    if request.mode == "emergency":
        # who asks does not make it another run: the same emergency request is one execution
        digest = hashlib.sha256(request.model_dump_json(exclude={"requested_by"}).encode()).hexdigest()[:12]
        run_id = f"emergency-{cycle}-{digest}"
    else:
        run_id = cycle if request.mode == "scheduled" else f"manual-{cycle}"
    fields = request.model_dump(exclude={"cycle"}, exclude_none=True)
    rollout = RolloutRequest.model_validate({"run_id": run_id, **fields})
    name = run_id if run_id.startswith(("manual-", "emergency-")) else f"cycle-{run_id}"
    arn, started = starter.start(name, rollout)
    return RolloutStarted(execution_name=name, execution_arn=arn, run_id=run_id, started=started)
