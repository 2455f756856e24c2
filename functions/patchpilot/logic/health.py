"""Judging a stage's health: per-instance signals against the stage's error budget, and its alarms."""

from patchpilot.integrations.ports import AlarmMonitor, CommandDirectory, InstallTracker, PatchComplianceReader
from patchpilot.logic.platforms import operating_system_of
from patchpilot.logic.silent_patching import APPROVES_NOTHING, silent_patching_reasons
from patchpilot.logic.stage_plan import canary_tag_value
from patchpilot.models.bisection import BISECT_TAG_KEY
from patchpilot.models.records import ManagedInstance
from patchpilot.models.rollout import CANARY_TAG_KEY, MAX_SAMPLE, InstanceRef, StageVerdict, VerifyStageRequest

NOT_DELIVERED_REASONS = {
    "DeliveryTimedOut": "not_started_in_time",
    "Undeliverable": "undeliverable",
    "Terminated": "terminated",
    "InvalidPlatform": "invalid_platform",
}
"""Command outcomes where the command never ran on the instance: their own reasons, never evidence against a patch."""


def reason_for(phase: str, status: str) -> str:
    """The verdict reason of a command that did not succeed on an instance (``install_failed``...)."""
    return f"{phase}_{NOT_DELIVERED_REASONS.get(status) or status.lower()}"


def is_patch_evidence(reason: str) -> bool:
    """Whether a reason can point at a patch (a command that never ran on the instance cannot)."""
    return not any(reason.endswith(f"_{suffix}") for suffix in NOT_DELIVERED_REASONS.values())


def allowed_failures(max_errors: str, targeted: int) -> int:
    """How many unhealthy instances a stage tolerates, with SendCommand's `MaxErrors` semantics.

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


def stratified_sample(instance_ids: list[str], system_of: dict[str, str], size: int = MAX_SAMPLE) -> list[str]:
    """Up to ``size`` instances, taken round-robin over their operating systems (each OS in id order).

    The exclusion step decides every OS from its own instances: a plain first-``size`` cut of a large stage could
    leave an OS without a single sampled instance.
    """
    by_system: dict[str, list[str]] = {}
    for instance_id in sorted(instance_ids):
        by_system.setdefault(system_of[instance_id], []).append(instance_id)
    queues = [by_system[system] for system in sorted(by_system)]
    sample: list[str] = []
    for rank in range(max((len(q) for q in queues), default=0)):
        sample.extend(queue[rank] for queue in queues if rank < len(queue))
    return sorted(sample[:size])


def _command_reasons(
    request: VerifyStageRequest, tracker: InstallTracker, instance_ids: set[str]
) -> dict[str, list[str]]:
    reasons: dict[str, list[str]] = {instance_id: [] for instance_id in instance_ids}
    health_commands = sum(result.phase == "health" for result in request.results)
    wrong_platform: dict[str, int] = {}
    for result in request.results:
        recorded = {row.instance_id: row for row in tracker.list_results(result.command_id)}
        for instance_id in instance_ids:
            row = recorded.get(instance_id)
            if row is None:
                reasons[instance_id].append(f"{result.phase}_not_reported")
            elif result.phase == "health" and row.status == "InvalidPlatform":
                wrong_platform[instance_id] = wrong_platform.get(instance_id, 0) + 1
            elif not row.succeeded:
                reasons[instance_id].append(reason_for(result.phase, row.status))
    # A step sent before the cross-platform check ran one health command per document: the one for the other
    # platform ends InvalidPlatform and says nothing. No health command that ran on the instance: never checked.
    for instance_id, misses in wrong_platform.items():
        if misses == health_commands:
            reasons[instance_id].append(reason_for("health", "InvalidPlatform"))
    return reasons


def _add_patch_state_reasons(
    request: VerifyStageRequest,
    instances: dict[str, ManagedInstance],
    reasons: dict[str, list[str]],
    compliance: PatchComplianceReader,
) -> None:
    """After an install: a failed patch in the post-patch scan; after a patch step, silent patching too."""
    stage = request.stage
    summaries = compliance.summaries(sorted(instances))
    for summary in summaries:
        if summary.failed > 0 and summary.instance_id in reasons:
            reasons[summary.instance_id].append("patch_failed")
    if request.phase_set == "bisect":
        return
    systems = {
        instance_id: operating_system_of(info.platform_type, info.platform_name, info.platform_version)
        for instance_id, info in instances.items()
    }
    installed = [i for i in instances if not any(why.startswith("install_") for why in reasons[i])]
    follows_baseline = stage.role != "production" and request.run.mode != "emergency"
    for instance_id, why in silent_patching_reasons(systems, summaries, follows_baseline, installed).items():
        reasons[instance_id].extend(why)


def _judged_tag(request: VerifyStageRequest, patch_group_tag_key: str) -> tuple[str, str]:
    """The tag of the instances a step judges: its canaries, its bisected instance, or the whole patch group."""
    run_id, stage = request.run.run_id, request.stage
    if request.phase_set == "canary":
        return CANARY_TAG_KEY, canary_tag_value(run_id, stage.name)
    if request.phase_set == "bisect":
        return BISECT_TAG_KEY, f"{run_id}/{stage.name}"
    return patch_group_tag_key, stage.patch_group


def verify_stage_health(
    request: VerifyStageRequest,
    tracker: InstallTracker,
    directory: CommandDirectory,
    alarms: AlarmMonitor,
    compliance: PatchComplianceReader,
    patch_group_tag_key: str,
) -> StageVerdict:
    """Judge a stage step from every signal PatchPilot has about its instances.

    An instance is unhealthy when any command of the step (install, post-patch scan, health command) failed or
    never reported on it, when SSM no longer reaches it (ping status not Online), or, after a patch step, when its
    post-patch scan reports a failed patch, or when its patching silently did nothing (its OS's baseline approves
    nothing, or its install left approved patches missing: see ``silent_patching_reasons``). A command that never ran
    on an instance (DeliveryTimedOut, Undeliverable, Terminated, InvalidPlatform) leaves it unpatched or unchecked, so
    it counts against the budget,
    under its own reason (``install_not_started_in_time``...); it is never evidence against a patch: such instances
    stay out of the unhealthy sample the exclusion step correlates. The stage is healthy when unhealthy instances stay
    within the stage's error budget (``max_errors``), no OS approves nothing (a configuration fault no budget covers)
    and none of the stage's CloudWatch alarms is in ALARM. A ``canary`` step judges the instances that carry the
    run's canary tag, with no error budget: one unhealthy canary stops the stage before the rest of the group is
    touched. A ``bisect`` round judges the one instance that carries the stage's bisection tag on its commands, its
    reachability and its post-patch scan only: it installed a subset of the suspects on purpose (approved patches
    stay missing), and the stage's alarms may still fire from the failure being bisected. Samples are taken
    round-robin over operating systems (``stratified_sample``).

    Parameters
    ----------
    request : VerifyStageRequest
        The run, the stage, the step and the commands it ran.
    tracker, directory, alarms, compliance
        Ports to the recorded command results, SSM's fleet view, CloudWatch and the patch states.
    patch_group_tag_key : str
        The patch group tag.

    Returns
    -------
    StageVerdict
        Healthy or not, counts by reason, and, for an unhealthy stage, bounded samples of unhealthy and healthy
        instances (the exclusion step correlates their patches).
    """
    stage = request.stage
    canary = request.phase_set == "canary"
    bisect = request.phase_set == "bisect"
    key, value = _judged_tag(request, patch_group_tag_key)
    instances = {i.instance_id: i for i in directory.managed_instances(key, value)}
    reasons = _command_reasons(request, tracker, set(instances))
    for instance_id, instance in instances.items():
        if instance.ping_status != "Online":
            reasons[instance_id].append("unreachable")
    if request.phase_set in ("canary", "patch", "bisect") and instances:
        _add_patch_state_reasons(request, instances, reasons, compliance)
    in_alarm = alarms.alarms_in_alarm(stage.alarm_name_prefix) if stage.alarm_name_prefix and not bisect else []
    unhealthy = sorted(instance_id for instance_id, why in reasons.items() if why)
    budget = 0 if canary or bisect else allowed_failures(stage.max_errors, len(instances))
    counts: dict[str, int] = {}
    for why in reasons.values():
        for reason in set(why):
            counts[reason] = counts.get(reason, 0) + 1

    system_of = {
        instance_id: operating_system_of(info.platform_type, info.platform_name, info.platform_version)
        for instance_id, info in instances.items()
    }

    def ref(instance_id: str) -> InstanceRef:
        return InstanceRef(instance_id=instance_id, platform=system_of[instance_id], reasons=reasons[instance_id])

    healthy_ids = [instance_id for instance_id in sorted(instances) if not reasons[instance_id]]
    # An OS whose baseline approves nothing is a configuration fault of the whole OS: no error budget covers it.
    healthy = len(unhealthy) <= budget and not in_alarm and APPROVES_NOTHING not in counts
    # Samples feed the exclusion step only: a healthy verdict keeps the same size for any fleet. An instance whose
    # commands never ran on it (not started in time, undeliverable, terminated) says nothing about a patch.
    evidence = [i for i in unhealthy if any(is_patch_evidence(reason) for reason in reasons[i])]
    sampled_unhealthy = [] if healthy else stratified_sample(evidence, system_of)
    sampled_healthy = [] if healthy else stratified_sample(healthy_ids, system_of)
    return StageVerdict(
        stage_name=stage.name,
        phase_set=request.phase_set,
        healthy=healthy,
        targeted=len(instances),
        unhealthy=len(unhealthy),
        allowed_failures=budget,
        reasons=dict(sorted(counts.items())),
        alarms_in_alarm=in_alarm,
        unhealthy_sample=[ref(i) for i in sampled_unhealthy],
        healthy_sample=[ref(i) for i in sampled_healthy],
    )
