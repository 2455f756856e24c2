"""Patching that silently does nothing is reported as a verdict reason instead of passing as healthy.

A stage's OS whose baseline approves nothing, or an install that left approved patches missing, is not healthy.

AWS documents several ways an install succeeds while installing nothing (SSM user guide, "How patch baseline rules
work on Linux-based systems"): repositories without `updateinfo.xml` carry no classification, so a baseline with a
Security filter approves nothing (RHEL and Rocky/Alma apply no patch at all without it); Ubuntu rules without
EnableNonSecurity approve only `*-security` pocket updates. Every command then ends Success and every instance looks
compliant. What gives it away is the post-patch scan (DescribeInstancePatchStates): an instance whose baseline
approves anything reports approved patches as Installed, InstalledPendingReboot, InstalledRejected, Missing or
Failed; an OS whose instances report none of those approves nothing.
"""

from collections.abc import Iterable, Mapping

from patchpilot.models.patches import InstancePatchSummary

APPROVES_NOTHING = "approves_nothing"
APPROVED_MISSING = "approved_patches_missing"


def approved_count(summary: InstancePatchSummary) -> int:
    """Patches the instance's baseline approves, in any state (InstalledOther and NotApplicable are not approved)."""
    return (
        summary.installed
        + summary.installed_pending_reboot
        + summary.installed_rejected
        + summary.missing
        + summary.failed
    )


def silent_patching_reasons(
    operating_systems: Mapping[str, str],
    summaries: Iterable[InstancePatchSummary],
    install_follows_baseline: bool,
    install_succeeded: Iterable[str],
) -> dict[str, list[str]]:
    """Per instance, the reasons its patching silently did nothing (after a patch step's post-patch scan).

    Parameters
    ----------
    operating_systems : Mapping[str, str]
        The stage's instances and their Patch Manager operating systems.
    summaries : Iterable[InstancePatchSummary]
        The post-patch scan's counts per instance.
    install_follows_baseline : bool
        Whether the install installed what the baseline approves. A production stage installs its
        InstallOverrideList (the frozen set) and an emergency run its BaselineOverride, so patches the baseline
        approves beyond those lists stay Missing by design: only the approves-nothing check applies there.
    install_succeeded : Iterable[str]
        Instances whose install ended Success.

    Returns
    -------
    dict[str, list[str]]
        ``approves_nothing`` for every instance of an OS none of whose scanned instances has an approved patch;
        ``approved_patches_missing`` (installs that follow the baseline) for an instance whose successful install
        left approved patches Missing.
    """
    scanned = {summary.instance_id: summary for summary in summaries if summary.instance_id in operating_systems}
    by_os: dict[str, list[InstancePatchSummary]] = {}
    for instance_id, summary in scanned.items():
        by_os.setdefault(operating_systems[instance_id], []).append(summary)
    reasons: dict[str, list[str]] = {}
    for rows in by_os.values():
        if all(approved_count(row) == 0 for row in rows):
            for row in rows:
                reasons.setdefault(row.instance_id, []).append(APPROVES_NOTHING)
    if install_follows_baseline:
        for instance_id in install_succeeded:
            found = scanned.get(instance_id)
            if found is not None and found.missing > 0 and APPROVES_NOTHING not in reasons.get(instance_id, []):
                reasons.setdefault(instance_id, []).append(APPROVED_MISSING)
    return reasons
