"""Auto-exclusion: find the patch(es) that broke a stage, reject them in the baselines, record the decision."""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from patchpilot.integrations.ports import BisectionLedger, ExclusionLedger, PatchBaselines, PatchInventory
from patchpilot.models.bisection import BisectionRecord
from patchpilot.models.exceptions import InvalidExclusionRequest
from patchpilot.models.exclusion import (
    MAX_DECISION_PATCHES,
    MAX_EVIDENCE_PATCHES,
    UNKNOWN_OPERATING_SYSTEM,
    BaselineRejection,
    ExclusionDecision,
    ExclusionOutcome,
    ExclusionRecord,
    ExclusionRequest,
    ExclusionThresholds,
    PatchEvidence,
)
from patchpilot.models.patches import InstancePatch, PatchState, during_run

# Patch Manager's package-name formats for approved/rejected lists (SSM user guide, "About package name formats for
# approved and rejected patch lists"): APT systems take a bare package name only (no architecture, no version), so a
# rejection there covers every version; YUM/DNF systems take a full package name `name-version-release.arch`.
APT_OPERATING_SYSTEMS = frozenset({"UBUNTU", "DEBIAN", "RASPBIAN"})
_ARCHITECTURES = frozenset({"x86_64", "noarch", "i686", "aarch64", "amd64", "arm64", "all", "i386"})


@dataclass(frozen=True)
class Correlation:
    """The outcome of correlating patches with instance health (before any side effect)."""

    outcome: ExclusionOutcome
    reason: str
    patches: list[PatchEvidence]
    failing_instances: dict[str, list[str]] = field(default_factory=dict)
    healthy_instances: dict[str, list[str]] = field(default_factory=dict)
    group: list[PatchEvidence] = field(default_factory=list)  # inconclusive: every indistinguishable patch
    undecided: dict[str, list[PatchEvidence]] = field(default_factory=dict)  # per inconclusive OS: its full group


@dataclass
class _Seen:
    title: str
    unhealthy: set[str] = field(default_factory=set)
    healthy: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)


def _collect(
    unhealthy: Mapping[str, str], healthy: Mapping[str, str], patches: Mapping[str, Sequence[InstancePatch]]
) -> dict[tuple[str, str], _Seen]:
    """Who received what, per (patch id, operating system): Linux package names repeat across distributions."""
    seen: dict[tuple[str, str], _Seen] = {}
    for instance_id, rows in patches.items():
        is_unhealthy = instance_id in unhealthy
        if not is_unhealthy and instance_id not in healthy:
            continue
        system = unhealthy[instance_id] if is_unhealthy else healthy[instance_id]
        for row in rows:
            entry = seen.setdefault((row.patch_id, system), _Seen(title=row.title))
            (entry.unhealthy if is_unhealthy else entry.healthy).add(instance_id)
            if is_unhealthy and row.state is PatchState.FAILED:
                entry.failed.add(instance_id)
    return seen


def _evidence(patch_id: str, entry: _Seen, unhealthy: Mapping[str, str], healthy: Mapping[str, str]) -> PatchEvidence:
    systems = {unhealthy[i] for i in entry.unhealthy} | {healthy[i] for i in entry.healthy}
    return PatchEvidence(
        patch_id=patch_id,
        title=entry.title,
        failing_with=len(entry.unhealthy),
        failing_total=sum(1 for system in unhealthy.values() if system in systems),
        healthy_with=len(entry.healthy),
        healthy_total=sum(1 for system in healthy.values() if system in systems),
        failed_installs=len(entry.failed),
        operating_systems=sorted(systems),
    )


def _key(evidence: PatchEvidence) -> tuple[str, str]:
    return evidence.patch_id, evidence.operating_systems[0]


def _rank_key(evidence: PatchEvidence) -> tuple[float, int, int, str]:
    margin = round(evidence.failing_share - evidence.healthy_share, 9)
    return (-margin, -evidence.failed_installs, -evidence.failing_with, evidence.patch_id)


def _whole_installs_failed(unhealthy: Mapping[str, str], recent: Mapping[str, Sequence[InstancePatch]]) -> bool:
    """Each unhealthy instance's run patches all FAILED (and it tried more than one): an instance-level failure."""
    tried = [recent.get(instance_id, []) for instance_id in unhealthy]
    return all(len(rows) > 1 and all(row.state == PatchState.FAILED for row in rows) for rows in tried)


def _correlate_one_system(
    unhealthy: Mapping[str, str],
    healthy: Mapping[str, str],
    recent: Mapping[str, Sequence[InstancePatch]],
    thresholds: ExclusionThresholds,
) -> Correlation:
    """The culprit(s) among the patches of one operating system's instances (see :func:`correlate_patches`)."""
    if _whole_installs_failed(unhealthy, recent):
        return Correlation(
            "nothing_to_exclude",
            "every patch this run tried on the unhealthy instance(s) failed: the install failed as a whole (agent, "
            "disk, repository access), which no single patch explains",
            [],
        )
    seen = _collect(unhealthy, healthy, recent)
    evidence = [
        _evidence(patch_id, entry, unhealthy, healthy) for (patch_id, _), entry in seen.items() if entry.unhealthy
    ]
    suspects = sorted(
        (
            e
            for e in evidence
            if e.failing_share >= thresholds.min_failing_share and e.healthy_share <= thresholds.max_healthy_share
        ),
        key=_rank_key,
    )
    if not suspects:
        return Correlation(
            "nothing_to_exclude",
            f"none of the {len(evidence)} patch(es) this run put on unhealthy instances reached "
            f"{thresholds.min_failing_share:.0%} of them while staying on at most "
            f"{thresholds.max_healthy_share:.0%} of the healthy ones",
            [],
        )
    top = seen[_key(suspects[0])]
    group = [s for s in suspects if seen[_key(s)].unhealthy == top.unhealthy and seen[_key(s)].healthy == top.healthy]
    if any(s.failed_installs for s in group):
        group = [s for s in group if s.failed_installs]
    failing = {s.patch_id: sorted(seen[_key(s)].unhealthy) for s in group}
    healthy_with = {s.patch_id: sorted(seen[_key(s)].healthy) for s in group}
    if len(group) > thresholds.max_patches_per_decision:
        return Correlation(
            "inconclusive",
            f"{len(group)} patches arrived on exactly the same instances; more than "
            f"{thresholds.max_patches_per_decision} cannot be told apart, so none is excluded",
            group[:MAX_EVIDENCE_PATCHES],
            failing,
            healthy_with,
            group=group,
        )
    top_evidence = group[0]
    others = [s.patch_id for s in suspects if s.patch_id not in failing][:MAX_EVIDENCE_PATCHES]
    return Correlation(
        "exclude",
        f"{', '.join(s.patch_id for s in group)} arrived on {top_evidence.failing_with}/{top_evidence.failing_total} "
        f"unhealthy and {top_evidence.healthy_with}/{top_evidence.healthy_total} healthy instances"
        + (f"; other suspects, not excluded by this decision: {', '.join(others)}" if others else ""),
        group,
        failing,
        healthy_with,
    )


def _merge(decided: Mapping[str, Correlation]) -> Correlation:
    """One decision from the per-OS ones: exclude when any OS names its culprit, each OS's reason kept."""
    outcomes = {c.outcome for c in decided.values()}
    outcome: ExclusionOutcome = (
        "exclude" if "exclude" in outcomes else "inconclusive" if "inconclusive" in outcomes else "nothing_to_exclude"
    )
    if len(decided) == 1:
        return next(iter(decided.values()))
    chosen = [c for c in decided.values() if c.outcome == outcome]
    failing: dict[str, list[str]] = {}
    healthy_with: dict[str, list[str]] = {}
    for correlation in chosen:
        for patch_id, ids in correlation.failing_instances.items():
            failing[patch_id] = sorted({*failing.get(patch_id, []), *ids})
        for patch_id, ids in correlation.healthy_instances.items():
            healthy_with[patch_id] = sorted({*healthy_with.get(patch_id, []), *ids})
    patches = [patch for correlation in chosen for patch in correlation.patches]
    reason = "; ".join(f"{system}: {correlation.reason}" for system, correlation in sorted(decided.items()))
    return Correlation(outcome, reason, patches[:MAX_DECISION_PATCHES], failing, healthy_with)


def correlate_patches(
    unhealthy: Mapping[str, str],
    healthy: Mapping[str, str],
    patches: Mapping[str, Sequence[InstancePatch]],
    since: datetime,
    thresholds: ExclusionThresholds,
) -> Correlation:
    """Pick the patch(es) responsible for a failed stage by comparing unhealthy with healthy instances, per OS.

    Method. Every operating system with unhealthy instances is decided on its own, in the same pass: a patch arrives
    on the instances of one OS (a Windows update says nothing about Linux instances, and Linux package names repeat
    across distributions), so the evidence of each OS is independent, and two bad patches on two OSes are both found
    by one decision (one retry of the stage then installs without either).

    Within an OS only what this run did counts: per instance, the patches Installed, InstalledPendingReboot or Failed
    at or after the run started. For every such patch, count the unhealthy instances of the OS that received it
    (installed or failed to install) and the healthy ones that did. The patch is a suspect when it reached at least
    ``min_failing_share`` of those unhealthy instances (default 80 %) and at most ``max_healthy_share`` of those
    healthy instances (default 20 %): it is (nearly) everywhere things broke and (nearly) nowhere they did not.
    Suspects are ranked by failing share minus healthy share, then by failed installs on unhealthy instances (a
    patch whose install FAILED is strong evidence), then by how many unhealthy instances received it.

    The OS's top suspect is excluded together with every suspect that is indistinguishable from it, i.e. arrived on
    exactly the same unhealthy and healthy instances (patches installed together). Within such a group, if some
    patches failed to install on unhealthy instances and others installed cleanly, only the failed ones are kept.
    When more than ``max_patches_per_decision`` (default 3) patches remain indistinguishable, the data cannot tell
    them apart: that OS is ``inconclusive`` and its group is reported as evidence. When no patch is a suspect, or
    every patch the run tried on the OS's unhealthy instances failed (an install failing as a whole), the OS has
    ``nothing_to_exclude``.

    The decision is ``exclude`` when any OS names its culprits (all of them are excluded), else ``inconclusive``
    when any OS is, else ``nothing_to_exclude``; the reason says what was found for each OS.

    Parameters
    ----------
    unhealthy, healthy : Mapping[str, str]
        Sampled instance ids of the stage and their Patch Manager operating systems.
    patches : Mapping[str, Sequence[InstancePatch]]
        Per instance, its patch rows (rows that are not this run's are ignored).
    since : datetime
        When the run started.
    thresholds : ExclusionThresholds
        The shares and the group size limit (per OS).

    Returns
    -------
    Correlation
        The outcome, why, the patches (excluded, or the indistinguishable groups when inconclusive) and per patch
        the instances that received it.
    """
    if not unhealthy:
        return Correlation("nothing_to_exclude", "no unhealthy instance to correlate patches with", [])
    recent = {instance_id: [row for row in rows if during_run(row, since)] for instance_id, rows in patches.items()}
    decided = {
        system: _correlate_one_system(
            {i: s for i, s in unhealthy.items() if s == system},
            {i: s for i, s in healthy.items() if s == system},
            recent,
            thresholds,
        )
        for system in sorted(set(unhealthy.values()))
    }
    undecided = {system: c.group for system, c in decided.items() if c.outcome == "inconclusive" and c.group}
    return replace(_merge(decided), undecided=undecided)


def rejection_entry(patch_id: str, title: str, operating_system: str) -> str:
    """The RejectedPatches entry that rejects exactly the version of a patch this run saw.

    Parameters
    ----------
    patch_id : str
        DescribeInstancePatches' `KBId`: a KB id on Windows, the package `name.arch` on Linux.
    title : str
        Its `Title`: on Linux `name.arch:epoch:version-release` (YUM/DNF) or `name.arch:version` (APT).
    operating_system : str
        The Patch Manager OS of the instances the patch arrived on.

    Returns
    -------
    str
        Windows: the KB id. YUM/DNF systems: the full package name `name-version-release.arch`, which leaves a
        later (fixed) version approvable; a bare `name.arch` would block every future version. APT systems: the
        bare package name, the only format Patch Manager accepts there (it blocks every version; see
        :func:`blocks_every_version`). A title that carries no version falls back to the patch id.
    """
    name, dot, arch = patch_id.rpartition(".")
    if not dot or arch not in _ARCHITECTURES:
        return patch_id
    if operating_system in APT_OPERATING_SYSTEMS:
        return name
    version = title.removeprefix(f"{patch_id}:") if title.startswith(f"{patch_id}:") else ""
    version_release = version.split(":", 1)[1] if version.count(":") == 1 else version
    if not version_release or "-" not in version_release:
        return patch_id
    return f"{name}-{version_release}.{arch}"


def blocks_every_version(entry: str, patch_id: str, operating_system: str) -> bool:
    """Whether a RejectedPatches entry made by :func:`rejection_entry` blocks the fixed versions of the package too."""
    return operating_system in APT_OPERATING_SYSTEMS or (entry == patch_id and not patch_id.startswith("KB"))


def _is_updatable(baseline_id: str) -> bool:
    """AWS-managed (predefined) baselines are returned as ARNs and cannot be changed; own baselines are `pb-...`."""
    return not baseline_id.startswith("arn:")


def plan_rejections(
    correlation: Correlation,
    unhealthy: Mapping[str, str],
    patch_group: str,
    baseline_for: Callable[[str, str], str],
    later_groups: Sequence[str] = (),
) -> tuple[list[BaselineRejection], str | None]:
    """Which baseline rejects which patch: the baselines of the OSes whose unhealthy instances got the patch.

    Parameters
    ----------
    correlation : Correlation
        An ``exclude`` correlation.
    unhealthy : Mapping[str, str]
        Unhealthy instance ids and their operating systems.
    patch_group : str
        The stage's patch group.
    baseline_for : Callable[[str, str], str]
        Resolves (patch group, OS) to a baseline id.
    later_groups : Sequence[str]
        The patch groups of the stages after this one: their baselines reject the patches too, so that no
        maintenance window or daily install ever brings a known-bad patch to them.

    Returns
    -------
    tuple[list[BaselineRejection], str | None]
        The rejections by baseline (entries in Patch Manager's package-name formats, see
        :func:`rejection_entry`), or an empty list and the reason why the patches cannot be rejected (an unknown
        OS, or a patch group that uses an AWS-managed baseline, which cannot be changed).
    """
    by_system: dict[str, list[str]] = {}
    for patch in correlation.patches:
        systems = sorted({unhealthy[i] for i in correlation.failing_instances[patch.patch_id]})
        known = [system for system in systems if system != UNKNOWN_OPERATING_SYSTEM]
        if not known:
            return [], f"{patch.patch_id} arrived only on instances of unknown OS: no baseline to reject it in"
        for system in known:
            entry = rejection_entry(patch.patch_id, patch.title, system)
            if entry not in by_system.setdefault(system, []):
                by_system[system].append(entry)
    rejections: list[BaselineRejection] = []
    for system, patch_ids in sorted(by_system.items()):
        baseline_id = baseline_for(patch_group, system)
        if not _is_updatable(baseline_id):
            return [], (
                f"patch group {patch_group} uses the AWS-managed baseline {baseline_id} for {system}, which cannot "
                f"be changed: register an own baseline to let PatchPilot reject {', '.join(patch_ids)}"
            )
        baseline_ids = [baseline_id]
        for group in later_groups:
            later = baseline_for(group, system)
            if _is_updatable(later) and later not in baseline_ids:
                baseline_ids.append(later)
        rejections.extend(
            BaselineRejection(baseline_id=baseline, operating_system=system, patch_ids=patch_ids)
            for baseline in baseline_ids
        )
    return rejections, None


def _entries_of(patch: PatchEvidence, rejections: Sequence[BaselineRejection]) -> list[str]:
    """The RejectedPatches entries that reject this patch, over the OSes it was rejected for."""
    wanted = {rejection_entry(patch.patch_id, patch.title, r.operating_system) for r in rejections}
    return sorted(entry for entry in wanted if any(entry in r.patch_ids for r in rejections))


def bisected_correlation(record: BisectionRecord) -> Correlation:
    """The ``exclude`` correlation of a concluded bisection: its culprits, each on the instance it broke.

    The evidence is the bisection's: the culprit broke the instance it was installed on, alone or with others that
    did not, while the other suspects installed cleanly there.
    """
    patches: list[PatchEvidence] = []
    failing: dict[str, list[str]] = {}
    for subject in record.subjects:
        for culprit in subject.culprits:
            title = next(s.title for s in subject.suspects if s.patch_id == culprit)
            patches.append(
                PatchEvidence(
                    patch_id=culprit,
                    title=title,
                    failing_with=1,
                    failing_total=1,
                    healthy_with=0,
                    healthy_total=0,
                    failed_installs=0,
                    operating_systems=[subject.operating_system],
                )
            )
            failing[culprit] = sorted({*failing.get(culprit, []), subject.instance_id})
    reason = "bisection: " + "; ".join(
        f"{s.operating_system} on {s.instance_id}: {', '.join(s.culprits)} broke it, among {len(s.suspects)} "
        f"suspects, in {len(s.observations)} round(s)"
        for s in record.subjects
    )
    return Correlation("exclude", reason, patches[:MAX_DECISION_PATCHES], failing, {p: [] for p in failing})


def _instances(request: ExclusionRequest) -> tuple[dict[str, str], dict[str, str]]:
    unhealthy = {i.instance_id: i.platform for i in request.unhealthy}
    healthy = {i.instance_id: i.platform for i in request.healthy}
    if len(unhealthy) != len(request.unhealthy) or len(healthy) != len(request.healthy):
        raise InvalidExclusionRequest(f"stage {request.stage_name}: an instance is listed twice in one sample")
    both = sorted(set(unhealthy) & set(healthy))
    if both:
        raise InvalidExclusionRequest(f"stage {request.stage_name}: {both} listed as both unhealthy and healthy")
    return unhealthy, healthy


def exclude_failing_patches(
    request: ExclusionRequest,
    inventory: PatchInventory,
    baselines: PatchBaselines,
    ledger: ExclusionLedger,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    bisections: BisectionLedger | None = None,
) -> ExclusionDecision:
    """Decide which patch broke a failed stage, reject it in the stage's baselines and record the decision.

    The decision follows :func:`correlate_patches`. For an ``exclude`` decision each patch is rejected in the
    baseline the stage's patch group uses for every OS whose unhealthy instances received it (a set union of
    RejectedPatches with action BLOCK, see ``PatchBaselines.reject_patches``), then one ledger row per patch is
    written at most once. Running the same decision again rejects nothing new and records nothing new
    (``already_recorded``).

    Parameters
    ----------
    request : ExclusionRequest
        The run, the stage, its patch group, when the run started and bounded samples of unhealthy and healthy
        instances with their operating systems (the caller samples, at most 50 of each).
    inventory, baselines, ledger
        Ports to the instances' patch states, the patch baselines and the runs table.
    now : Callable[[], datetime]
        The clock.
    bisections : BisectionLedger | None
        Where a bisection of the stage attempt is recorded: once it concluded with culprits, those are the decision
        (bisection tells apart what correlation could not), excluded the same way.

    Returns
    -------
    ExclusionDecision
        ``exclude`` (patches rejected, by baseline), ``inconclusive`` (too many indistinguishable patches, or no
        baseline that PatchPilot may change: nothing rejected) or ``nothing_to_exclude``; with the evidence.

    Raises
    ------
    InvalidExclusionRequest
        An instance is listed twice, or as both unhealthy and healthy.
    """
    unhealthy, healthy = _instances(request)
    bisected = bisections.bisection(request.run_id, request.stage_name, request.attempt) if bisections else None
    if bisected is not None and bisected.status == "concluded" and bisected.culprits_by_system():
        correlation = bisected_correlation(bisected)
        unhealthy |= {s.instance_id: s.operating_system for s in bisected.subjects}
    else:
        patches = {
            instance_id: inventory.installed_during(instance_id, request.run_started_at)
            for instance_id in [*unhealthy, *healthy]
        }
        correlation = correlate_patches(unhealthy, healthy, patches, request.run_started_at, request.thresholds)
    decided_at = now()

    def decision(outcome: ExclusionOutcome, reason: str, **extra: object) -> ExclusionDecision:
        return ExclusionDecision.model_validate(
            {
                "run_id": request.run_id,
                "stage_name": request.stage_name,
                "patch_group": request.patch_group,
                "outcome": outcome,
                "reason": reason,
                "patches": correlation.patches,
                "unhealthy_sampled": len(unhealthy),
                "healthy_sampled": len(healthy),
                "decided_at": decided_at,
                **extra,
            }
        )

    if correlation.outcome != "exclude":
        return decision(correlation.outcome, correlation.reason)
    rejections, refusal = plan_rejections(
        correlation, unhealthy, request.patch_group, baselines.baseline_for, request.later_patch_groups
    )
    if refusal is not None:
        return decision("inconclusive", refusal)
    for rejection in rejections:
        baselines.reject_patches(rejection.baseline_id, rejection.patch_ids)
    patch_groups = [request.patch_group, *request.later_patch_groups]
    recorded = [
        ledger.record(
            ExclusionRecord(
                run_id=request.run_id,
                stage_name=request.stage_name,
                evidence=patch,
                baseline_ids=[r.baseline_id for r in rejections if set(r.patch_ids) & set(entries)],
                rejected_as=entries,
                patch_groups=patch_groups,
                failing_instances=correlation.failing_instances[patch.patch_id],
                healthy_instances=correlation.healthy_instances[patch.patch_id],
                decided_at=decided_at,
            )
        )
        for patch in correlation.patches
        for entries in [_entries_of(patch, rejections)]
    ]
    return decision("exclude", correlation.reason, baselines=rejections, already_recorded=not any(recorded))
