"""The five compliance statuses, their aggregation, and collection from events and refreshes (fakes only)."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from patchpilot.integrations.compliance_metrics import emit_compliance
from patchpilot.logic.compliance import derive_node, production_rate, risk_assessment, summarize
from patchpilot.logic.compliance_collection import apply_compliance_event, refresh, update_nodes
from patchpilot.models.compliance import (
    ComplianceRules,
    ComplianceStateChangeEvent,
    ComplianceStatus,
    Ec2InstanceInfo,
    ManagedNodeInfo,
    MissingPatch,
    NodeFacts,
    PatchStateCounts,
    StageTiming,
    UnknownComplianceNode,
)
from tests.fakes import FakeFleetSource, InMemoryComplianceStore, RecordingAlertPublisher

NOW = datetime(2026, 12, 20, 12, 0, tzinfo=UTC)
RULES = ComplianceRules(
    stale_scan_hours=26,
    risk_after_days=7,
    group_environments={"dev": "dev", "prod-1": "prod", "prod-2": "prod", "prod-3": "prod"},
)
CRITICAL = MissingPatch(
    patch_id="openssl.x86_64",
    title="openssl.x86_64:1:3.0.7-27.el9",
    classification="Security",
    severity="Critical",
    state="Missing",
    cve_ids=("CVE-2026-1001",),
)
IMPORTANT = MissingPatch(
    patch_id="KB5071546",
    title="2026-12 Cumulative Update",
    classification="SecurityUpdates",
    severity="Important",
    state="Failed",
    cve_ids=("CVE-2026-2002", "CVE-2026-2003"),
)


def node_id(n: int, hybrid: bool = False) -> str:
    return f"mi-{n:017x}" if hybrid else f"i-{n:017x}"


def online(n: int, hybrid: bool = False, ping: str = "Online") -> ManagedNodeInfo:
    return ManagedNodeInfo(
        node_id=node_id(n, hybrid),
        ping_status=ping,
        last_ping=NOW - timedelta(days=3) if ping != "Online" else NOW,
        platform_name="Amazon Linux",
        platform_version="2023",
        resource_type="ManagedInstance" if hybrid else "EC2Instance",
    )


def report(group: str = "prod-1", hours_ago: float = 2, **counts: int) -> PatchStateCounts:
    return PatchStateCounts(patch_group=group, operation_end=NOW - timedelta(hours=hours_ago), installed=40, **counts)


def facts(n: int, **fields: object) -> NodeFacts:
    fields.setdefault("managed", online(n))
    fields.setdefault("patch_state", report())
    return NodeFacts.model_validate({"node_id": node_id(n), **fields})


def test_compliance_every_approved_patch_installed_is_compliant() -> None:
    node = derive_node(facts(1, patch_state=report(installed_other=3, not_applicable=9)), RULES, NOW)
    assert node.status == ComplianceStatus.COMPLIANT
    assert (node.patch_group, node.environment, node.os) == ("prod-1", "prod", "Amazon Linux 2023")
    assert not node.stale_scan


@pytest.mark.parametrize(
    ("counts", "reason"),
    [
        ({"installed_pending_reboot": 2}, "2 installed pending reboot"),
        ({"installed_rejected": 1}, "1 installed but rejected"),
        ({"missing": 3}, "3 missing"),
        ({"failed": 1}, "1 failed"),
    ],
    ids=["pending-reboot", "installed-rejected", "missing", "failed"],
)
def test_compliance_lacking_patch_states_are_non_compliant(counts: dict[str, int], reason: str) -> None:
    node = derive_node(facts(2, patch_state=report(**counts)), RULES, NOW)
    assert node.status == ComplianceStatus.NON_COMPLIANT
    assert node.reasons == (reason,)


def test_compliance_ec2_instance_ssm_does_not_manage_is_unmanaged() -> None:
    ec2 = Ec2InstanceInfo(node_id=node_id(3), state="running", patch_group="prod-1", platform="Linux/UNIX")
    node = derive_node(NodeFacts(node_id=node_id(3), ec2=ec2), RULES, NOW)
    assert node.status == ComplianceStatus.UNMANAGED
    assert node.reasons == ("not managed by SSM",)
    assert node.patch_group == "prod-1"
    assert not node.stale_scan  # nothing to scan: SSM cannot reach it at all


def test_compliance_agent_that_stopped_reporting_is_unmanaged() -> None:
    node = derive_node(facts(4, managed=online(4, ping="ConnectionLost")), RULES, NOW)
    assert node.status == ComplianceStatus.UNMANAGED
    assert node.reasons[0].startswith("agent stopped reporting (ping ConnectionLost since 2026-12-17")


def test_compliance_managed_node_without_patch_group_is_unmanaged() -> None:
    node = derive_node(facts(5, patch_state=report(group="")), RULES, NOW)
    assert node.status == ComplianceStatus.UNMANAGED
    assert node.reasons == ("no patch group",)
    assert node.environment == "none"


def test_compliance_hybrid_node_counts_like_an_instance() -> None:
    hybrid = NodeFacts(node_id=node_id(6, hybrid=True), managed=online(6, hybrid=True), patch_state=report(missing=1))
    node = derive_node(hybrid, RULES, NOW)
    assert node.node_id.startswith("mi-")
    assert node.status == ComplianceStatus.NON_COMPLIANT
    assert summarize([node], NOW).nodes == 1


def test_compliance_open_commands_mean_scan_or_install_in_progress_even_while_rebooting() -> None:
    rebooting = online(7, ping="ConnectionLost")
    assert derive_node(facts(7, managed=rebooting, open_operation="Install"), RULES, NOW).status == (
        ComplianceStatus.INSTALL_IN_PROGRESS
    )
    assert derive_node(facts(8, open_operation="Scan"), RULES, NOW).status == ComplianceStatus.SCAN_IN_PROGRESS


def test_compliance_scan_older_than_the_policy_allows_is_stale_and_keeps_its_status() -> None:
    stale = derive_node(facts(9, patch_state=report(hours_ago=27)), RULES, NOW)
    fresh = derive_node(facts(10, patch_state=report(hours_ago=25)), RULES, NOW)
    tagged = Ec2InstanceInfo(node_id=node_id(11), state="running", patch_group="dev")
    never = derive_node(facts(11, patch_state=None, ec2=tagged), RULES, NOW)
    assert (stale.status, stale.stale_scan) == (ComplianceStatus.COMPLIANT, True)
    assert not fresh.stale_scan
    assert (never.status, never.reasons, never.stale_scan) == (ComplianceStatus.NON_COMPLIANT, ("never scanned",), True)


def known_fleet() -> FakeFleetSource:
    """11 nodes: 3 compliant (one hybrid, one stale), 3 non-compliant, 3 unmanaged, 1 scanning, 1 installing."""
    fleet = FakeFleetSource()
    groups = {1: "prod-1", 2: "prod-1", 3: "prod-2", 4: "prod-2", 6: "prod-1", 7: "prod-2", 9: "dev", 10: "dev"}
    for n, group in groups.items():
        fleet.managed[node_id(n)] = online(n)
        fleet.states[node_id(n)] = report(group)
        fleet.ec2[node_id(n)] = Ec2InstanceInfo(node_id=node_id(n), state="running", patch_group=group)
    fleet.managed[node_id(5, True)] = online(5, hybrid=True)
    fleet.states[node_id(5, True)] = report("prod-3")
    fleet.states[node_id(2)] = report("prod-1", installed_pending_reboot=1)
    fleet.states[node_id(3)] = report("prod-2", installed_rejected=1)
    fleet.states[node_id(4)] = report("prod-2", missing=1, failed=1)
    fleet.lacking[node_id(4)] = [CRITICAL, IMPORTANT]
    fleet.states[node_id(1)] = report("prod-1", hours_ago=30)
    fleet.ec2[node_id(11)] = Ec2InstanceInfo(node_id=node_id(11), state="stopped", patch_group="prod-3")
    fleet.managed[node_id(7)] = online(7, ping="ConnectionLost")
    fleet.managed[node_id(8)] = online(8)
    fleet.states[node_id(8)] = report("")
    fleet.open = {node_id(9): "Scan", node_id(10): "Install"}
    return fleet


def test_compliance_aggregation_numbers_on_a_known_fleet() -> None:
    store, alerts = InMemoryComplianceStore(), RecordingAlertPublisher()
    outcome = refresh(known_fleet(), store, alerts, RULES, NOW)
    summary = outcome.summary
    assert summary is not None
    assert summary.counts == {
        ComplianceStatus.COMPLIANT: 3,
        ComplianceStatus.NON_COMPLIANT: 3,
        ComplianceStatus.UNMANAGED: 3,
        ComplianceStatus.SCAN_IN_PROGRESS: 1,
        ComplianceStatus.INSTALL_IN_PROGRESS: 1,
    }
    assert (summary.nodes, summary.rate) == (11, 27.3)
    assert summary.by_patch_group["prod-1"].rate == 66.7  # 1 and 6 compliant, 2 pending reboot (8 has no group)
    assert summary.by_patch_group["prod-1"].nodes == 3
    assert summary.by_environment["prod"].nodes == 8
    assert summary.by_environment["prod"].counts[ComplianceStatus.COMPLIANT] == 3
    assert summary.stale_scans == [node_id(1)]
    assert (summary.critical_missing, summary.important_missing, summary.nodes_missing_critical_or_important) == (
        1,
        1,
        1,
    )
    assert [p.patch_id for p in summary.missing_patches] == ["openssl.x86_64", "KB5071546"]
    assert summary.missing_patches[1].cve_ids == ("CVE-2026-2002", "CVE-2026-2003")
    assert production_rate(store.nodes(), RULES) == 37.5
    assert alerts.alerts == []


def test_compliance_time_to_patch_per_stage() -> None:
    timing = StageTiming(stage_name="prod-1", started_at=NOW - timedelta(hours=5, minutes=30), finished_at=NOW)
    assert summarize([], NOW, [timing]).time_to_patch_hours == {"prod-1": 5.5}
    assert summarize([], NOW).rate is None


def test_compliance_risk_lists_nodes_missing_urgent_patches_longer_than_n_days_ranked() -> None:
    store = InMemoryComplianceStore()
    fleet = known_fleet()
    refresh(fleet, store, RecordingAlertPublisher(), RULES, NOW - timedelta(days=10))
    fleet.lacking[node_id(2)] = [IMPORTANT]
    fleet.states[node_id(2)] = report("prod-1", failed=1)
    refresh(fleet, store, RecordingAlertPublisher(), RULES, NOW)
    risks = risk_assessment(store.nodes(), RULES, NOW)
    assert [(r.node_id, r.critical, r.important, r.days_exposed) for r in risks] == [(node_id(4), 1, 1, 10.0)]
    assert risks[0].cve_ids == ("CVE-2026-1001", "CVE-2026-2002", "CVE-2026-2003")
    later = risk_assessment(store.nodes(), RULES, NOW + timedelta(days=8))
    assert [r.node_id for r in later] == [node_id(4), node_id(2)]


def test_compliance_refresh_writes_only_the_nodes_that_changed() -> None:
    store = InMemoryComplianceStore()
    fleet = known_fleet()
    refresh(fleet, store, RecordingAlertPublisher(), RULES, NOW)
    first_writes = store.node_writes
    fleet.states[node_id(1)] = report("prod-1", missing=5)
    outcome = refresh(fleet, store, RecordingAlertPublisher(), RULES, NOW + timedelta(hours=1))
    assert (first_writes, store.node_writes - first_writes, outcome.nodes) == (11, 1, 11)
    rows = {node.node_id: node for node in store.nodes()}
    assert (rows[node_id(1)].missing, rows[node_id(1)].observed_at) == (5, NOW + timedelta(hours=1))
    assert rows[node_id(2)].observed_at == NOW  # unchanged: kept as it was, not rewritten


def test_compliance_event_after_an_unchanged_refresh_still_applies() -> None:
    store, fleet = InMemoryComplianceStore(), known_fleet()
    refresh(fleet, store, RecordingAlertPublisher(), RULES, NOW - timedelta(hours=2))
    refresh(fleet, store, RecordingAlertPublisher(), RULES, NOW + timedelta(hours=2))
    fleet.states[node_id(6)] = report("prod-1", missing=2)
    outcome = apply_compliance_event(event(6, runtime="2026-12-20T13:00:00Z"), fleet, store, RULES)
    assert (outcome.outcome, outcome.status) == ("updated", ComplianceStatus.NON_COMPLIANT)


def test_compliance_failed_refresh_keeps_previous_data_and_alerts() -> None:
    store, alerts = InMemoryComplianceStore(), RecordingAlertPublisher()
    fleet = known_fleet()
    refresh(fleet, store, alerts, RULES, NOW)
    before = {node.node_id: node for node in store.nodes()}
    fleet.fail_on = "lacking_patches"
    fleet.states[node_id(1)] = report("prod-1", missing=5)
    outcome = refresh(fleet, store, alerts, RULES, NOW + timedelta(hours=1))
    assert (outcome.status, outcome.previous_nodes) == ("kept_previous", 11)
    assert {node.node_id: node for node in store.nodes()} == before
    assert len(store.kept) == 1
    assert [a.kind for a in alerts.alerts] == ["compliance_refresh_failed"]
    assert "ThrottlingException" in alerts.alerts[0].summary


def test_compliance_refresh_that_sees_no_managed_node_keeps_previous_data() -> None:
    store, alerts = InMemoryComplianceStore(), RecordingAlertPublisher()
    fleet = known_fleet()
    refresh(fleet, store, alerts, RULES, NOW)
    fleet.managed.clear()
    outcome = refresh(fleet, store, alerts, RULES, NOW + timedelta(hours=1))
    assert outcome.status == "kept_previous"
    assert len(store.nodes()) == 11
    assert alerts.alerts[0].details["previous_nodes"] == 11


def event(
    n: int, status: str = "non_compliant", runtime: str = "2026-12-20T13:00:00Z", event_id: str = "e1"
) -> ComplianceStateChangeEvent:
    return ComplianceStateChangeEvent.model_validate(
        {
            "id": event_id,
            "source": "aws.ssm",
            "detail-type": "Configuration Compliance State Change",
            "time": "2026-12-20T13:00:05Z",
            "resources": [f"arn:aws:ssm:us-east-1:123456789012:managed-instance/{node_id(n)}"],
            "detail": {
                "last-runtime": runtime,
                "compliance-status": status,
                "resource-type": "managed-instance",
                "resource-id": node_id(n),
                "compliance-type": "Patch",
                "patch-baseline-id": "pb-0123456789abcdef0",
                "severity": "critical",
            },
        }
    )


def test_compliance_event_updates_the_node_once_and_ignores_duplicates_and_older_events() -> None:
    store, fleet = InMemoryComplianceStore(), known_fleet()
    refresh(fleet, store, RecordingAlertPublisher(), RULES, NOW)
    fleet.states[node_id(6)] = report("prod-1", missing=2)
    first = apply_compliance_event(event(6, runtime="2026-12-20T14:00:00Z", event_id="late"), fleet, store, RULES)
    assert (first.outcome, first.status) == ("updated", ComplianceStatus.NON_COMPLIANT)
    reads = len(fleet.calls)
    again = apply_compliance_event(event(6, runtime="2026-12-20T14:00:00Z", event_id="late"), fleet, store, RULES)
    older = apply_compliance_event(
        event(6, "compliant", runtime="2026-12-20T13:30:00Z", event_id="early"), fleet, store, RULES
    )
    assert (again.outcome, older.outcome) == ("duplicate", "stale")
    assert len(fleet.calls) == reads  # neither read SSM again
    row, last_event = store.rows[node_id(6)]
    assert (row.status, last_event) == (ComplianceStatus.NON_COMPLIANT, "late")


def test_compliance_event_before_the_last_refresh_changes_nothing() -> None:
    store, fleet = InMemoryComplianceStore(), known_fleet()
    refresh(fleet, store, RecordingAlertPublisher(), RULES, NOW)
    outcome = apply_compliance_event(event(6, runtime="2026-12-20T11:00:00Z"), fleet, store, RULES)
    assert outcome.outcome == "stale"
    assert store.rows[node_id(6)][1] is None


def test_compliance_event_for_an_unknown_node_is_rejected() -> None:
    with pytest.raises(UnknownComplianceNode, match=r"names i-0+63, which SSM does not manage"):
        apply_compliance_event(event(99), known_fleet(), InMemoryComplianceStore(), RULES)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("compliance-status", "mostly_fine", r"compliance-status"),
        ("last-runtime", "yesterday at noon", r"last-runtime"),
        ("resource-id", "server-42", r"resource-id"),
    ],
)
def test_compliance_event_with_unknown_status_or_malformed_fields_is_refused(
    field: str, value: str, message: str
) -> None:
    raw = event(1).model_dump(by_alias=True, mode="json")
    raw["detail"][field] = value
    with pytest.raises(ValidationError, match=message):
        ComplianceStateChangeEvent.model_validate(raw)


def test_compliance_stage_results_update_their_nodes_unless_an_event_was_newer() -> None:
    store, fleet = InMemoryComplianceStore(), known_fleet()
    refresh(fleet, store, RecordingAlertPublisher(), RULES, NOW - timedelta(hours=3))
    apply_compliance_event(event(6, runtime="2026-12-20T14:00:00Z", event_id="newer"), fleet, store, RULES)
    fleet.states[node_id(2)] = report("prod-1")  # rebooted and rescanned by the stage
    written = update_nodes([node_id(2), node_id(6), "i-0000000000000dead"], fleet, store, RULES, NOW)
    assert [node.node_id for node in written] == [node_id(2)]
    assert store.rows[node_id(2)][0].status == ComplianceStatus.COMPLIANT
    assert store.rows[node_id(6)][1] == "newer"


def test_compliance_metrics_emit_rates_per_group_and_environment_and_counts_per_status(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "PatchPilot")
    nodes = [
        derive_node(facts(1, patch_state=report()), RULES, NOW),
        derive_node(facts(2, patch_state=report(missing=1)), RULES, NOW),
    ]
    summary = summarize(nodes, NOW)
    emit_compliance(summary, RULES, production_rate(nodes, RULES))
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    emitted = {
        (metric["Name"], tuple(sorted(set(line["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]) - {"service"}))): line[
            metric["Name"]
        ]
        for line in lines
        for metric in line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
    }
    assert emitted == {  # EMF carries each value as a list
        ("ComplianceRate", ()): [50.0],
        ("ProductionComplianceRate", ()): [50.0],
        ("ComplianceRate", ("PatchGroup",)): [50.0],
        ("ComplianceRate", ("Environment",)): [50.0],
        ("CompliantNodes", ()): [1.0],
        ("NonCompliantNodes", ()): [1.0],
        ("UnmanagedNodes", ()): [0.0],
        ("ScanInProgressNodes", ()): [0.0],
        ("InstallInProgressNodes", ()): [0.0],
        ("CriticalMissingPatches", ()): [0.0],
        ("ImportantMissingPatches", ()): [0.0],
        ("StaleScans", ()): [0.0],
    }
    assert all(line["service"] == "patchpilot" for line in lines)
