"""Planning a rollout: which stages run, in which order, with which bakes, before any command is sent."""

from datetime import datetime

from patchpilot.models.exceptions import InvalidRolloutRequest
from patchpilot.models.rollout import RolloutPlan, RolloutRequest, RunContext, StageCatalog, StagePlan


def plan_rollout(request: RolloutRequest, catalog: StageCatalog, now: datetime) -> RolloutPlan:
    """Resolve a start request against the stage catalog.

    Parameters
    ----------
    request : RolloutRequest
        The validated execution input.
    catalog : StageCatalog
        The stages the policy defines, in rollout order.
    now : datetime
        The run's start time (patches installed from then on belong to this run).

    Returns
    -------
    RolloutPlan
        The run context and the chosen stages in catalog order, with bake overrides applied; stages an earlier
        attempt of the run passed (``completed_stages``, a resume) are validated with the others but not planned
        again, and the run keeps its first attempt's start time.

    Raises
    ------
    InvalidRolloutRequest
        Unknown stage names, a bake override for a stage that does not run, or production stages without a test
        stage before them in a non-emergency run (prod only ever installs what a test stage of the run verified).
    """
    known = catalog.by_name()
    wanted = request.stages or list(known)
    unknown = sorted(set(wanted) - set(known))
    if unknown:
        raise InvalidRolloutRequest(f"unknown stage(s) {unknown}; the catalog has {list(known)}")
    stray_bakes = sorted(set(request.bake_seconds) - set(wanted))
    if stray_bakes:
        raise InvalidRolloutRequest(f"bake_seconds given for stage(s) {stray_bakes} that this run does not include")
    chosen = [stage for stage in catalog.stages if stage.name in wanted]
    roles = [stage.role for stage in chosen]
    if request.mode != "emergency" and "production" in roles and roles[0] == "production":
        raise InvalidRolloutRequest(
            "production stages need a test stage before them in the same run (prod installs exactly the patch set "
            "a test stage verified); include a test stage or use mode=emergency with an explicit patch list"
        )
    remaining = [stage for stage in chosen if stage.name not in request.completed_stages]
    stages = [
        StagePlan(
            **stage.model_dump(exclude={"bake_seconds"}),
            bake_seconds=request.bake_seconds.get(stage.name, stage.bake_seconds),
            index=index,
            is_last=index == len(remaining) - 1,
            later_patch_groups=[later.patch_group for later in remaining[index + 1 :]],
        )
        for index, stage in enumerate(remaining)
    ]
    run = RunContext(
        run_id=request.run_id,
        mode=request.mode,
        started_at=request.run_started_at or now,
        on_bad_patch=request.on_bad_patch,
        approval_timeout_seconds=request.approval_timeout_seconds,
        limits=request.limits,
        patch_ids=request.patch_ids,
        cve_ids=request.cve_ids,
        requested_by=request.requested_by,
    )
    return RolloutPlan(run=run, stages=stages)
