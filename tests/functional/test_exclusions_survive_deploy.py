"""Exclusions survive a deploy: the ledger renders RejectedPatches into the template, a stack update keeps them."""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from patchpilot.models.exclusion import ExclusionRecord, PatchEvidence
from patchpilot.models.policy import PatchPolicy
from patchpilot_cli.exclusion_ledger import (
    ExclusionLedgerFile,
    LedgerError,
    apply_ledger,
    dump_ledger,
    load_ledger,
    merge_ledger,
)
from patchpilot_cli.policy_render import TEMPLATE_PATH, load_policy, render_block, splice
from patchpilot_sim.baselines import PatchBaselineStandIn, baseline_id_for
from patchpilot_sim.template import SamTemplate

POLICY = load_policy(ledger_path=None)
STAGING_AL2023 = baseline_id_for("patchpilot-staging-amazon-linux-2023")
PROD_AL2023 = baseline_id_for("patchpilot-prod-amazon-linux-2023")
BAD = "glibc-2.34-117.amzn2023.0.1.x86_64"


def _record(patch_id: str = "glibc.x86_64", title: str = "glibc.x86_64:0:2.34-117.amzn2023.0.1") -> ExclusionRecord:
    evidence = PatchEvidence(
        patch_id=patch_id,
        title=title,
        failing_with=3,
        failing_total=3,
        healthy_with=0,
        healthy_total=4,
        failed_installs=3,
        operating_systems=["AMAZON_LINUX_2023"],
    )
    return ExclusionRecord(
        run_id="2026-12",
        stage_name="staging",
        evidence=evidence,
        baseline_ids=[STAGING_AL2023, PROD_AL2023],
        decided_at=datetime(2026, 12, 11, 20, 0, tzinfo=UTC),
        rejected_as=[BAD],
        patch_groups=["staging", "prod-1", "prod-2", "prod-3"],
    )


def _template(tmp_path: Path, policy: PatchPolicy, name: str) -> SamTemplate:
    path = tmp_path / name
    path.write_text(splice(TEMPLATE_PATH.read_text(), render_block(policy)))
    return SamTemplate(path)


def _changed_staging(policy: PatchPolicy) -> PatchPolicy:
    """An unrelated policy change that touches the staging baselines (a new description)."""
    staging = policy.environments["staging"].model_copy(update={"description": "Security and bug fixes, 3 days."})
    return policy.model_copy(update={"environments": {**policy.environments, "staging": staging}})


def _reject_at_run_time(standin: PatchBaselineStandIn) -> None:
    for baseline_id in (STAGING_AL2023, PROD_AL2023):
        rejected = standin.handle("GetPatchBaseline", {"BaselineId": baseline_id})["RejectedPatches"]
        standin.handle(
            "UpdatePatchBaseline",
            {"BaselineId": baseline_id, "RejectedPatches": [*rejected, BAD], "RejectedPatchesAction": "BLOCK"},
        )


def _rejected(standin: PatchBaselineStandIn, baseline_id: str) -> list[str]:
    return list(standin.handle("GetPatchBaseline", {"BaselineId": baseline_id})["RejectedPatches"])


def test_stack_update_resets_run_time_rejections_of_the_baselines_it_touches(tmp_path: Path) -> None:
    # Given a deployed stack and a run-time exclusion (UpdatePatchBaseline: drift)
    standin = PatchBaselineStandIn(_template(tmp_path, POLICY, "t0.yaml"))
    _reject_at_run_time(standin)
    # When a policy change without the ledger is deployed
    reset = standin.apply_stack_update(_template(tmp_path, _changed_staging(POLICY), "t1.yaml"))
    # Then the touched baseline lost the exclusion, the untouched one kept its drift
    assert "patchpilot-staging-amazon-linux-2023" in reset
    assert BAD not in _rejected(standin, STAGING_AL2023)
    assert BAD in _rejected(standin, PROD_AL2023)
    assert "kernel*" in _rejected(standin, STAGING_AL2023)  # the template's own entries come back


def test_stack_update_keeps_exclusions_exported_into_the_ledger(tmp_path: Path) -> None:
    # Given a run-time exclusion, exported into the ledger and rendered into the next template
    standin = PatchBaselineStandIn(_template(tmp_path, POLICY, "t0.yaml"))
    _reject_at_run_time(standin)
    ledger = merge_ledger(ExclusionLedgerFile(), [_record()], [], POLICY)
    ledger_path = tmp_path / "exclusions.yaml"
    ledger_path.write_text(dump_ledger(ledger))
    assert load_ledger(ledger_path) == ledger
    next_policy = apply_ledger(_changed_staging(POLICY), load_ledger(ledger_path))
    # When that template is deployed (it touches every baseline the ledger names)
    standin.apply_stack_update(_template(tmp_path, next_policy, "t1.yaml"))
    # Then no exclusion is lost, next to the template's own rejections
    assert BAD in _rejected(standin, STAGING_AL2023)
    assert BAD in _rejected(standin, PROD_AL2023)
    assert "kernel*" in _rejected(standin, STAGING_AL2023)
    dev = _rejected(standin, baseline_id_for("patchpilot-dev-amazon-linux-2023"))
    assert BAD not in dev  # dev never excluded it


def test_ledger_export_merges_keeps_expired_rows_and_drops_removed_exclusions() -> None:
    first = merge_ledger(ExclusionLedgerFile(), [_record()], [], POLICY)
    [entry] = first.exclusions
    assert (entry.reject, entry.environments, entry.blocks_every_version) == (BAD, ["prod", "staging"], False)
    ubuntu = _record("libc6.amd64", "libc6.amd64:2.35-0ubuntu3.8").model_copy(
        update={
            "evidence": _record().evidence.model_copy(
                update={
                    "patch_id": "libc6.amd64",
                    "title": "libc6.amd64:2.35-0ubuntu3.8",
                    "operating_systems": ["UBUNTU"],
                }
            ),
            "rejected_as": ["libc6"],
        }
    )
    second = merge_ledger(first, [ubuntu], [], POLICY)  # the glibc row expired from the table: the file keeps it
    assert sorted((e.reject, e.blocks_every_version) for e in second.exclusions) == [(BAD, False), ("libc6", True)]
    third = merge_ledger(second, [], [_record()], POLICY)  # an operator removed the glibc exclusion
    assert [e.reject for e in third.exclusions] == ["libc6"]


def test_ledger_that_does_not_fit_the_policy_is_refused() -> None:
    entry = merge_ledger(ExclusionLedgerFile(), [_record()], [], POLICY).exclusions[0]
    stray = ExclusionLedgerFile(exclusions=[entry.model_copy(update={"environments": ["qa"]})])
    with pytest.raises(LedgerError, match="environment 'qa' is not in the policy"):
        apply_ledger(POLICY, stray)
    full = ExclusionLedgerFile(
        exclusions=[
            entry.model_copy(update={"reject": f"pkg{n}-1.0-1.x86_64", "patch_id": f"pkg{n}.x86_64"}) for n in range(50)
        ]
    )
    with pytest.raises(LedgerError, match="allows 50"):
        apply_ledger(POLICY, full)


def test_committed_template_renders_the_committed_ledger() -> None:
    policy = load_policy()
    assert policy == apply_ledger(POLICY, load_ledger())
    assert render_block(policy) in TEMPLATE_PATH.read_text()
