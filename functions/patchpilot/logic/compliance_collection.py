"""Collecting fleet compliance: from compliance events (one node) and from a scheduled full refresh (every node).

Ordering: every stored node row carries the moment its data was observed (an event's `last-runtime`, a refresh's
start); a write never replaces a row observed later, so repeated and out-of-order events have no effect, and a
refresh never overwrites what an event reported after it began. A refresh reads the whole fleet before it writes
anything: when a read fails half-way, nothing is replaced and on-call is alerted.

Refreshes, reports and stage reports write only the nodes that changed: a row that would differ from the stored one
in nothing but its observation moment is left as it is (issue 12: rewriting every node on every refresh and report
cost a write per node and day, most of them unchanged). Such a row keeps its older observation moment, so an event
observed after it still applies (an event re-reads the node from SSM: it writes the node's current state).
"""

from collections.abc import Iterable
from datetime import datetime

from patchpilot.integrations.compliance_ports import ComplianceStore, FleetComplianceSource
from patchpilot.integrations.ports import AlertPublisher
from patchpilot.logic.commands import parse_command_comment
from patchpilot.logic.compliance import derive_node, summarize
from patchpilot.models.alerts import Alert
from patchpilot.models.compliance import (
    ComplianceEventOutcome,
    ComplianceReadFailed,
    ComplianceRules,
    ComplianceStateChangeEvent,
    MissingPatch,
    NodeCompliance,
    NodeFacts,
    OpenOperation,
    PatchStateCounts,
    RefreshOutcome,
    UnknownComplianceNode,
)

REFRESH_RUN_ID = "compliance-refresh"
NOT_MANAGED = ("not managed by SSM",)


def _with_first_seen(
    patches: Iterable[MissingPatch], previous: NodeCompliance | None, now: datetime
) -> tuple[MissingPatch, ...]:
    """The lacking patches, each stamped with the first time PatchPilot saw it lacking on this node."""
    known = {p.patch_id: p.first_seen for p in previous.missing_patches} if previous is not None else {}
    return tuple(patch.model_copy(update={"first_seen": known.get(patch.patch_id) or now}) for patch in patches)


def unchanged(node: NodeCompliance, stored: NodeCompliance | None) -> bool:
    """Whether a freshly derived node says nothing its stored row does not (the observation moment aside)."""
    return stored is not None and node.model_copy(update={"observed_at": stored.observed_at}) == stored


def store_changed_nodes(store: ComplianceStore, nodes: Iterable[NodeCompliance], stored: list[NodeCompliance]) -> int:
    """Write the nodes that changed since their stored rows (a refresh's or report's snapshot); returns how many."""
    previous = {node.node_id: node for node in stored}
    written = 0
    for node in nodes:
        if not unchanged(node, previous.get(node.node_id)):
            written += store.put_node(node, event_id=None)
    return written


def open_operations(source: FleetComplianceSource) -> dict[str, OpenOperation]:
    """The open operation per node: Install when PatchPilot's, Scan when any.

    An Install counts only when PatchPilot started it (its comment names the run); any AWS-RunPatchBaseline Scan
    counts (PatchPilot's post-patch or first scan, the daily scan association).
    """
    operations: dict[str, OpenOperation] = {}
    for invocation in source.open_invocations():
        if invocation.operation == "Install" and parse_command_comment(invocation.comment) is not None:
            operations[invocation.node_id] = "Install"
        elif invocation.operation == "Scan":
            operations.setdefault(invocation.node_id, "Scan")
    return operations


def _lacks_any(state: PatchStateCounts) -> bool:
    return bool(state.missing + state.failed + state.installed_pending_reboot + state.installed_rejected)


def collect_facts(source: FleetComplianceSource, previous: dict[str, NodeCompliance], now: datetime) -> list[NodeFacts]:
    """Read every node's facts: EC2 instances, SSM managed nodes (hybrid included), patch reports, open commands.

    Lacking patches are read only for nodes whose report counts any (a compliant node costs no extra call).
    """
    ec2 = {instance.node_id: instance for instance in source.ec2_instances()}
    managed = {node.node_id: node for node in source.managed_nodes()}
    states = source.patch_states(sorted(managed))
    operations = open_operations(source)
    facts = []
    for node_id in sorted(ec2.keys() | managed.keys()):
        state = states.get(node_id)
        lacking: tuple[MissingPatch, ...] = ()
        if node_id in managed and state is not None and _lacks_any(state):
            lacking = _with_first_seen(source.lacking_patches(node_id), previous.get(node_id), now)
        facts.append(
            NodeFacts(
                node_id=node_id,
                ec2=ec2.get(node_id),
                managed=managed.get(node_id),
                patch_state=state,
                open_operation=operations.get(node_id) if node_id in managed else None,
                missing_patches=lacking,
            )
        )
    return facts


def take_snapshot(
    source: FleetComplianceSource,
    store: ComplianceStore,
    rules: ComplianceRules,
    now: datetime,
    stored: list[NodeCompliance] | None = None,
) -> list[NodeCompliance]:
    """Every node's derived compliance right now (reads only; raises `ComplianceReadFailed`).

    ``stored`` is the store's rows when the caller read them already.
    """
    previous = {node.node_id: node for node in (store.nodes() if stored is None else stored)}
    return [derive_node(facts, rules, now) for facts in collect_facts(source, previous, now)]


def _refresh_failed_alert(error: str, previous: int, now: datetime) -> Alert:
    return Alert(
        kind="compliance_refresh_failed",
        severity="warning",
        run_id=REFRESH_RUN_ID,
        title="compliance refresh failed: previous data kept",
        summary=f"The full compliance refresh failed ({error}); the previous data of {previous} nodes stays in place.",
        details={"error": error, "previous_nodes": previous},
        occurred_at=now,
    )


def refresh(
    source: FleetComplianceSource,
    store: ComplianceStore,
    alerts: AlertPublisher,
    rules: ComplianceRules,
    now: datetime,
) -> RefreshOutcome:
    """Re-read the whole fleet and replace the stored statuses, or keep them and alert when the read fails.

    Parameters
    ----------
    source, store, alerts
        SSM/EC2 reads, the stored statuses and the alert topic.
    rules : ComplianceRules
        The policy's compliance settings.
    now : datetime
        When the refresh started: rows written later by events are never overwritten.

    Returns
    -------
    RefreshOutcome
        `replaced` with the new summary, or `kept_previous` with the error.
    """
    stored = store.nodes()
    try:
        facts = collect_facts(source, {node.node_id: node for node in stored}, now)
        if any(node.reasons != NOT_MANAGED for node in stored) and not any(f.managed for f in facts):
            raise ComplianceReadFailed("SSM returned no managed node although nodes were managed before")
    except ComplianceReadFailed as error:
        alerts.publish(_refresh_failed_alert(str(error), len(stored), now))
        return RefreshOutcome(status="kept_previous", nodes=0, previous_nodes=len(stored), error=str(error))
    nodes = [derive_node(node_facts, rules, now) for node_facts in facts]
    store_changed_nodes(store, nodes, stored)
    current = {node.node_id for node in nodes}
    store.remove_nodes(sorted(node.node_id for node in stored if node.node_id not in current), observed_before=now)
    summary = summarize(nodes, now)
    store.add_summary(summary)
    return RefreshOutcome(status="replaced", nodes=len(nodes), previous_nodes=len(stored), summary=summary)


def apply_compliance_event(
    event: ComplianceStateChangeEvent,
    source: FleetComplianceSource,
    store: ComplianceStore,
    rules: ComplianceRules,
) -> ComplianceEventOutcome:
    """Update one node from a "Configuration Compliance State Change" event.

    The event says only compliant/non_compliant: the node's report, lacking patches and open commands are read
    again, so the stored row holds the same detail a refresh would. Raises `UnknownComplianceNode` when SSM does not
    manage the node (the event is kept in the dead-letter queue).
    """
    node_id = event.detail.resource_id
    observed = event.observed_at
    current = store.node(node_id)
    if current is not None:
        row, last_event = current
        if last_event == event.id:
            return ComplianceEventOutcome(node_id=node_id, outcome="duplicate", status=row.status)
        if row.observed_at >= observed:
            return ComplianceEventOutcome(node_id=node_id, outcome="stale", status=row.status)
    managed = source.managed_nodes([node_id])
    if not managed:
        raise UnknownComplianceNode(f"compliance event {event.id} names {node_id}, which SSM does not manage")
    state = source.patch_states([node_id]).get(node_id)
    lacking = source.lacking_patches(node_id) if state is not None else []
    facts = NodeFacts(
        node_id=node_id,
        managed=managed[0],
        patch_state=state,
        open_operation=open_operations(source).get(node_id),
        missing_patches=_with_first_seen(lacking, current[0] if current else None, observed),
        ec2=None,
    )
    node = derive_node(facts, rules, observed)
    if current is not None and current[0].patch_group and node.patch_group is None:
        node = node.model_copy(update={"patch_group": current[0].patch_group})
    written = store.put_node(node, event_id=event.id)
    return ComplianceEventOutcome(node_id=node_id, outcome="updated" if written else "stale", status=node.status)


def update_nodes(
    node_ids: list[str],
    source: FleetComplianceSource,
    store: ComplianceStore,
    rules: ComplianceRules,
    now: datetime,
) -> list[NodeCompliance]:
    """Re-derive and store the nodes a finished command touched (a stage's install results, from the runs table).

    Nodes SSM no longer manages are left to the next full refresh. Returns the rows written.
    """
    written = []
    for start in range(0, len(node_ids), 50):  # DescribeInstanceInformation takes at most 50 ids per filter
        batch = node_ids[start : start + 50]
        managed = {node.node_id: node for node in source.managed_nodes(batch)}
        states = source.patch_states(sorted(managed))
        operations = open_operations(source)
        for node_id in sorted(managed):
            current = store.node(node_id)
            state = states.get(node_id)
            lacking = source.lacking_patches(node_id) if state is not None and _lacks_any(state) else []
            facts = NodeFacts(
                node_id=node_id,
                managed=managed[node_id],
                patch_state=state,
                open_operation=operations.get(node_id),
                missing_patches=_with_first_seen(lacking, current[0] if current else None, now),
            )
            node = derive_node(facts, rules, now)
            if not unchanged(node, current[0] if current else None) and store.put_node(node, event_id=None):
                written.append(node)
    return written
