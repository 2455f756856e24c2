"""The operator commands' logic on in-memory ports (the CLI against a stack is in tests/e2e/test_cli_stack.py)."""

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from patchpilot.models.approval import ApprovalRecord
from patchpilot_cli import operator
from patchpilot_cli.errors import InputError
from tests.fakes import InMemoryApprovalStore, InMemoryExclusionLedger, InMemoryPatchBaselines, sample_exclusion

NOW = datetime(2026, 12, 9, 10, 0, tzinfo=UTC)
STAGING_AL, PROD_AL = "pb-0aaaaaaaaaaaaaaaa", "pb-0bbbbbbbbbbbbbbbb"


def _ports(rejected: dict[str, list[str]]) -> operator.StackPorts:
    groups = {("staging", "AMAZON_LINUX_2023"): STAGING_AL, ("prod-1", "AMAZON_LINUX_2023"): PROD_AL}
    return operator.StackPorts(
        InMemoryApprovalStore(), InMemoryExclusionLedger(), InMemoryPatchBaselines(groups, rejected)
    )


def test_remove_exclusion_allows_the_patch_in_its_baselines_then_retires_the_row() -> None:
    ports = _ports({STAGING_AL: ["KB-old", "bad-lib"], PROD_AL: ["other"]})
    assert ports.ledger.record(sample_exclusion("bad-lib", baseline_ids=(STAGING_AL, PROD_AL)))
    [row] = operator.exclusions_of_patch(ports, "2026-12", "bad-lib")
    changed = operator.remove_exclusion(ports, row, "alice", now=lambda: NOW)
    assert changed == [STAGING_AL]
    assert ports.baselines.rejected == {STAGING_AL: ["KB-old"], PROD_AL: ["other"]}
    [listed] = operator.exclusions(ports, "2026-12")
    assert (listed.record.patch_id, listed.removed_by, listed.removed_at) == ("bad-lib", "alice", NOW)


def test_remove_exclusion_keeps_a_patch_another_writer_rejected_meanwhile() -> None:
    ports = _ports({STAGING_AL: ["bad-lib"], PROD_AL: []})
    ports.baselines.concurrent_writes = ["their-exclusion"]
    assert ports.ledger.record(sample_exclusion("bad-lib", baseline_ids=(STAGING_AL,)))
    [row] = operator.exclusions_of_patch(ports, "2026-12", "bad-lib")
    assert operator.remove_exclusion(ports, row, "alice", now=lambda: NOW) == [STAGING_AL]
    assert ports.baselines.rejected[STAGING_AL] == ["their-exclusion"]


def test_exclusions_list_active_rows_first_and_removed_ones_with_who_removed_them() -> None:
    ports = _ports({STAGING_AL: [], PROD_AL: []})
    for patch_id in ("KB-a", "KB-b"):
        assert ports.ledger.record(sample_exclusion(patch_id, baseline_ids=(STAGING_AL,)))
    [row] = operator.exclusions_of_patch(ports, "2026-12", "KB-a")
    operator.remove_exclusion(ports, row, "bob", now=lambda: NOW)
    rows = operator.exclusions(ports, "2026-12")
    assert [(r.record.patch_id, r.removed_by) for r in rows] == [("KB-b", None), ("KB-a", "bob")]


def test_exclusions_of_patch_names_what_the_run_did_exclude() -> None:
    ports = _ports({STAGING_AL: [], PROD_AL: []})
    with pytest.raises(
        InputError, match=r"patch 'KB-x' is not excluded in run '2026-12' \(run 2026-12 excluded nothing\)"
    ):
        operator.exclusions_of_patch(ports, "2026-12", "KB-x")
    assert ports.ledger.record(sample_exclusion("KB-a"))
    with pytest.raises(InputError, match=r"\(excluded in run 2026-12: KB-a\)$"):
        operator.exclusions_of_patch(ports, "2026-12", "KB-x")


def test_pending_approvals_lists_only_waiting_ones_earliest_deadline_first() -> None:
    ports = _ports({STAGING_AL: [], PROD_AL: []})
    for approval_id, hours, stage in (("bbbbbbbb", 3, "prod-2"), ("aaaaaaaa", 1, "prod-1"), ("cccccccc", 2, "prod-3")):
        ports.approvals.open(
            ApprovalRecord(
                approval_id=approval_id,
                execution_id="arn:aws:states:us-east-1:123456789012:execution:rollout:2026-12",
                run_id="2026-12",
                stage_name=stage,
                task_token=SecretStr("t"),
                status="pending",
                summary="promote",
                requested_at=NOW,
                expires_at=NOW + timedelta(hours=hours),
            )
        )
    ports.approvals.decide("cccccccc", "approved", "alice", None, NOW)
    assert [a.approval_id for a in operator.pending_approvals(ports)] == ["aaaaaaaa", "bbbbbbbb"]
