"""Recording a passed stage, and freezing the patch set that production stages will install."""

from patchpilot.integrations.ports import ExclusionLedger, InstallTracker, PatchInventory, PatchSetStore
from patchpilot.models.patches import InstancePatch, installed_in_run_or_untimed
from patchpilot.models.rollout import RecordStageRequest, StageOutcome


def record_stage_passed(
    request: RecordStageRequest,
    tracker: InstallTracker,
    inventory: PatchInventory,
    patch_sets: PatchSetStore,
    ledger: ExclusionLedger,
) -> StageOutcome:
    """Record a stage that passed; after a test stage, freeze the patches it installed and verified.

    The frozen set is the union of the patches that the stage's successfully patched instances report as installed
    since the run started (on an OS that reports no InstalledTime: every approved patch they have installed), minus
    every patch the run excluded; one entry per patch id and version title (`glibc.x86_64` of Amazon Linux 2023 and
    of RHEL are different patches in one InstallOverrideList). Each test stage replaces the set of the one before
    it, so production installs exactly what the last test stage ran with (production stages then keep only what
    their own baseline rules allow, see ``PatchSetStore.install_list_for``).

    Parameters
    ----------
    request : RecordStageRequest
        The run, the stage, its commands and its verdict.
    tracker, inventory, patch_sets, ledger
        Ports to the recorded results, the per-instance patch lists, the frozen set store and the exclusions.

    Returns
    -------
    StageOutcome
        The stage's counts and, after a test stage, the size of the frozen set.
    """
    run, stage = request.run, request.stage
    frozen: int | None = None
    if stage.role == "test" and run.mode != "emergency":
        excluded = ledger.excluded_patches(run.run_id)
        patched = [
            row.instance_id
            for result in request.results
            if result.phase == "install"
            for row in tracker.list_results(result.command_id)
            if row.succeeded
        ]
        patches: dict[tuple[str, str], InstancePatch] = {}  # a Linux package id repeats across distributions
        for instance_id in sorted(set(patched)):
            for patch in inventory.installed_during(instance_id, run.started_at):
                if installed_in_run_or_untimed(patch, run.started_at) and patch.patch_id not in excluded:
                    patches.setdefault((patch.patch_id, patch.title), patch)
        frozen = patch_sets.freeze(run.run_id, stage.name, [patches[key] for key in sorted(patches)])
    return StageOutcome(
        stage_name=stage.name,
        status="passed",
        targeted=request.verdict.targeted,
        unhealthy=request.verdict.unhealthy,
        frozen_patch_count=frozen,
    )
