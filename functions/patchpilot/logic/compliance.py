"""The five compliance statuses of a node and their aggregation over the fleet.

Rules, in order (the first that applies wins; README, "Compliance and reports"):

1. an EC2 instance without an SSM managed-node record -> ``unmanaged`` ("not managed by SSM");
2. an AWS-RunPatchBaseline Install that PatchPilot started is open on the node -> ``install_in_progress``;
3. an AWS-RunPatchBaseline Scan is open on the node -> ``scan_in_progress``;
4. the agent's PingStatus is not Online (ConnectionLost, Inactive) -> ``unmanaged`` ("agent stopped reporting");
5. the node has no patch group -> ``unmanaged`` ("no patch group");
6. no Scan/Install report yet -> ``non_compliant`` ("never scanned");
7. any Missing, Failed, InstalledPendingReboot or InstalledRejected patch -> ``non_compliant``;
8. otherwise -> ``compliant`` (every approved patch Installed; InstalledOther and NotApplicable do not count).

A scan older than ``stale_scan_hours`` keeps the status of its report and marks the node ``stale_scan``. Hybrid nodes
(``mi-…``) follow the same rules (they have no EC2 record, so rule 1 never applies to them). The compliance rate is
compliant nodes / all nodes: an unmanaged or busy node is not proven compliant.
"""

from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta

from patchpilot.models.compliance import (
    ComplianceRules,
    ComplianceStatus,
    ComplianceSummary,
    GroupCompliance,
    NodeCompliance,
    NodeFacts,
    PatchExposure,
    RiskEntry,
    StageTiming,
)

ONLINE = "Online"
_RANK = {"critical": 0, "important": 1, "high": 1}


def _os_name(facts: NodeFacts) -> str:
    managed = facts.managed
    if managed is not None and managed.platform_name:
        return f"{managed.platform_name} {managed.platform_version}".strip()
    if facts.ec2 is not None and facts.ec2.platform:
        return facts.ec2.platform
    return "unknown"


def _patch_group(facts: NodeFacts) -> str | None:
    if facts.patch_state is not None and facts.patch_state.patch_group:
        return facts.patch_state.patch_group
    return facts.ec2.patch_group if facts.ec2 is not None and facts.ec2.patch_group else None


def _status(facts: NodeFacts, patch_group: str | None) -> tuple[ComplianceStatus, tuple[str, ...]]:
    managed, state = facts.managed, facts.patch_state
    if managed is None:
        return ComplianceStatus.UNMANAGED, ("not managed by SSM",)
    if facts.open_operation == "Install":
        return ComplianceStatus.INSTALL_IN_PROGRESS, ("PatchPilot install running",)
    if facts.open_operation == "Scan":
        return ComplianceStatus.SCAN_IN_PROGRESS, ("patch scan running",)
    if managed.ping_status != ONLINE:
        since = f" since {managed.last_ping:%Y-%m-%d %H:%M}" if managed.last_ping else ""
        return ComplianceStatus.UNMANAGED, (f"agent stopped reporting (ping {managed.ping_status}{since})",)
    if not patch_group:
        return ComplianceStatus.UNMANAGED, ("no patch group",)
    if state is None:
        return ComplianceStatus.NON_COMPLIANT, ("never scanned",)
    reasons = tuple(
        f"{count} {label}"
        for count, label in (
            (state.missing, "missing"),
            (state.failed, "failed"),
            (state.installed_pending_reboot, "installed pending reboot"),
            (state.installed_rejected, "installed but rejected"),
        )
        if count
    )
    if reasons:
        return ComplianceStatus.NON_COMPLIANT, reasons
    return ComplianceStatus.COMPLIANT, ("every approved patch installed",)


def derive_node(facts: NodeFacts, rules: ComplianceRules, now: datetime) -> NodeCompliance:
    """Derive one node's compliance status from SSM's data and PatchPilot's open commands.

    Parameters
    ----------
    facts : NodeFacts
        The node's EC2 record, SSM managed-node record, last patch report, open operation and lacking patches.
    rules : ComplianceRules
        The policy's compliance settings (stale-scan age, patch group -> environment).
    now : datetime
        The moment of the derivation (aware).

    Returns
    -------
    NodeCompliance
        The status (rules in the module docstring), its reasons, and the node's counts.
    """
    patch_group = _patch_group(facts)
    status, reasons = _status(facts, patch_group)
    state = facts.patch_state
    last_scan = state.operation_end if state is not None else None
    stale = facts.managed is not None and (
        last_scan is None or now - last_scan > timedelta(hours=rules.stale_scan_hours)
    )
    severities = Counter(patch.urgency for patch in facts.missing_patches)
    return NodeCompliance(
        node_id=facts.node_id,
        status=status,
        reasons=reasons,
        patch_group=patch_group,
        environment=rules.environment_of(patch_group),
        os=_os_name(facts),
        last_scan=last_scan,
        stale_scan=stale,
        missing=state.missing if state else 0,
        failed=state.failed if state else 0,
        pending_reboot=state.installed_pending_reboot if state else 0,
        installed_rejected=state.installed_rejected if state else 0,
        critical_missing=severities["critical"],
        important_missing=severities["important"],
        missing_patches=facts.missing_patches,
        observed_at=now,
    )


def _rate(compliant: int, total: int) -> float | None:
    return round(100.0 * compliant / total, 1) if total else None


def group_compliance(nodes: Iterable[NodeCompliance]) -> GroupCompliance:
    """Counts per status (every status present, zeros included) and the compliance rate of a set of nodes."""
    counts = Counter(node.status for node in nodes)
    total = sum(counts.values())
    return GroupCompliance(
        nodes=total,
        rate=_rate(counts[ComplianceStatus.COMPLIANT], total),
        counts={status: counts[status] for status in ComplianceStatus},
    )


def _grouped(nodes: list[NodeCompliance], key: str) -> dict[str, GroupCompliance]:
    groups: dict[str, list[NodeCompliance]] = defaultdict(list)
    for node in nodes:
        groups[str(getattr(node, key) or "none")].append(node)
    return {name: group_compliance(members) for name, members in sorted(groups.items())}


def patch_exposures(nodes: Iterable[NodeCompliance]) -> list[PatchExposure]:
    """Every patch Missing or Failed somewhere, most urgent and widest first."""
    seen: dict[str, PatchExposure] = {}
    counts: Counter[str] = Counter()
    for node in nodes:
        for patch in node.missing_patches:
            if patch.state not in ("Missing", "Failed"):
                continue
            counts[patch.patch_id] += 1
            seen.setdefault(
                patch.patch_id,
                PatchExposure(
                    patch_id=patch.patch_id,
                    title=patch.title,
                    classification=patch.classification,
                    severity=patch.severity,
                    cve_ids=patch.cve_ids,
                    nodes=0,
                ),
            )
    exposures = [exposure.model_copy(update={"nodes": counts[pid]}) for pid, exposure in seen.items()]
    return sorted(exposures, key=lambda e: (_RANK.get(e.severity.lower(), 2), -e.nodes, e.patch_id))


def summarize(
    nodes: list[NodeCompliance], taken_at: datetime, stage_timings: Iterable[StageTiming] = ()
) -> ComplianceSummary:
    """Aggregate node statuses: fleet rate, per patch group/environment/OS, stale scans, urgent missing patches.

    Parameters
    ----------
    nodes : list of NodeCompliance
        Every node of the fleet, derived by `derive_node`.
    taken_at : datetime
        When the snapshot was taken.
    stage_timings : iterable of StageTiming
        This cycle's stages (time to patch per stage).

    Returns
    -------
    ComplianceSummary
        The numbers the dashboard, the alert and the report show.
    """
    fleet = group_compliance(nodes)
    return ComplianceSummary(
        taken_at=taken_at,
        nodes=fleet.nodes,
        rate=fleet.rate,
        counts=fleet.counts,
        by_patch_group=_grouped(nodes, "patch_group"),
        by_environment=_grouped(nodes, "environment"),
        by_os=_grouped(nodes, "os"),
        stale_scans=sorted(node.node_id for node in nodes if node.stale_scan),
        critical_missing=sum(node.critical_missing for node in nodes),
        important_missing=sum(node.important_missing for node in nodes),
        nodes_missing_critical_or_important=sum(1 for n in nodes if n.critical_missing or n.important_missing),
        missing_patches=patch_exposures(nodes),
        time_to_patch_hours={timing.stage_name: timing.hours for timing in stage_timings},
    )


def production_rate(nodes: Iterable[NodeCompliance], rules: ComplianceRules) -> float | None:
    """Compliance rate of the nodes in the policy's production environments (None without such nodes)."""
    return group_compliance(n for n in nodes if n.environment in rules.production_environments).rate


def risk_assessment(nodes: Iterable[NodeCompliance], rules: ComplianceRules, now: datetime) -> list[RiskEntry]:
    """Nodes missing Critical/Important patches for more than `risk_after_days`, ranked.

    Parameters
    ----------
    nodes : iterable of NodeCompliance
        The fleet; a lacking patch has been missing since the first time PatchPilot saw it missing, or since the
        node's last scan (whose report lists it), whichever is earlier.
    rules : ComplianceRules
        `risk_after_days` is N.
    now : datetime
        The moment of the assessment.

    Returns
    -------
    list of RiskEntry
        Most Critical first, then most Important, then longest exposed.
    """
    entries = []
    for node in nodes:
        urgent = [patch for patch in node.missing_patches if patch.urgency != "other"]
        if not urgent:
            continue
        seen_missing = [patch.first_seen or now for patch in urgent]
        since = min([*seen_missing, node.last_scan or now])  # lacking at the last scan already
        days = (now - since).total_seconds() / 86_400
        if days <= rules.risk_after_days:
            continue
        entries.append(
            RiskEntry(
                node_id=node.node_id,
                patch_group=node.patch_group,
                environment=node.environment,
                days_exposed=round(days, 1),
                critical=sum(patch.urgency == "critical" for patch in urgent),
                important=sum(patch.urgency == "important" for patch in urgent),
                cve_ids=tuple(sorted({cve for patch in urgent for cve in patch.cve_ids})),
            )
        )
    return sorted(entries, key=lambda e: (-e.critical, -e.important, -e.days_exposed, e.node_id))
