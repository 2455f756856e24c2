"""Auto-exclusion adapters: SSM on botocore's Stubber (moto lacks Get/UpdatePatchBaseline and DescribeInstancePatches),
the DynamoDB ledger on moto, and the handler end to end (moto table + stubbed SSM)."""

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from patchpilot.handlers import wiring
from patchpilot.integrations.dynamodb_exclusions import DynamoDBExclusionLedger
from patchpilot.integrations.patch_sets import S3PatchSetStore
from patchpilot.integrations.ssm_patches import SsmPatchBaselines, SsmPatchInventory
from patchpilot.models.exceptions import BaselineUpdateConflict
from patchpilot.models.exclusion import ExclusionRecord
from patchpilot.models.patches import InstancePatch, PatchState
from patchpilot.models.rollout import StagePlan
from tests.fakes import sample_exclusion
from tests.functional.aws_fixtures import LambdaContext

REGION = "us-east-1"
BASELINE = "pb-0123456789abcdef0"
INSTANCE = "i-0123456789abcdef0"
HEALTHY = "i-0fedcba98765432f1"
RUN_START = datetime(2026, 12, 8, 18, 0, tzinfo=UTC)
STATE_FILTER = [{"Key": "State", "Values": ["Installed", "InstalledPendingReboot", "Failed"]}]


def _ssm() -> tuple[Any, Stubber]:
    client = boto3.client("ssm", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    return client, Stubber(client)


def _row(title: str, state: str, when: datetime, kb: str = "") -> dict[str, Any]:
    return {
        "Title": title,
        "KBId": kb,
        "Classification": "Security",
        "Severity": "Important",
        "State": state,
        "InstalledTime": when,
    }


def test_ssm_inventory_pages_through_patches_and_keeps_this_runs_rows() -> None:
    client, stub = _ssm()
    stub.add_response(
        "describe_instance_patches",
        {
            "Patches": [
                _row("bad-lib.x86_64", "Installed", datetime(2026, 12, 8, 19, 0, tzinfo=UTC)),
                _row("old-lib.x86_64", "Installed", datetime(2026, 11, 1, tzinfo=UTC)),
            ],
            "NextToken": "page-2",
        },
        {"InstanceId": INSTANCE, "Filters": STATE_FILTER},
    )
    stub.add_response(
        "describe_instance_patches",
        {
            "Patches": [
                _row("Security update", "Failed", datetime(1970, 1, 1, tzinfo=UTC), kb="KB5031234"),
                _row("kernel.x86_64", "INSTALLED_PENDING_REBOOT", datetime(2026, 12, 8, 18, 0, tzinfo=UTC)),
                _row("libc6.amd64:2.35", "Installed", datetime(1970, 1, 1, tzinfo=UTC), kb="libc6.amd64"),
            ]
        },
        {"InstanceId": INSTANCE, "Filters": STATE_FILTER, "NextToken": "page-2"},
    )
    with stub:
        rows = SsmPatchInventory(client).installed_during(INSTANCE, RUN_START)
    stub.assert_no_pending_responses()
    assert [(r.patch_id, r.state) for r in rows] == [
        ("bad-lib.x86_64", PatchState.INSTALLED),
        ("KB5031234", PatchState.FAILED),
        ("kernel.x86_64", PatchState.INSTALLED_PENDING_REBOOT),
        ("libc6.amd64", PatchState.INSTALLED),
    ]
    assert [r.installed_time for r in rows[1:2] + rows[3:]] == [None, None]  # the epoch means untimed
    assert {r.instance_id for r in rows} == {INSTANCE}


def test_ssm_baselines_resolve_the_baseline_of_a_patch_group() -> None:
    client, stub = _ssm()
    stub.add_response(
        "get_patch_baseline_for_patch_group",
        {"BaselineId": BASELINE, "PatchGroup": "staging", "OperatingSystem": "AMAZON_LINUX_2023"},
        {"PatchGroup": "staging", "OperatingSystem": "AMAZON_LINUX_2023"},
    )
    with stub:
        assert SsmPatchBaselines(client).baseline_for("staging", "AMAZON_LINUX_2023") == BASELINE


def _get(rejected: list[str]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    response = {"BaselineId": BASELINE, "RejectedPatches": rejected, "RejectedPatchesAction": "BLOCK"}
    return "get_patch_baseline", response, {"BaselineId": BASELINE}


def _update(rejected: list[str]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    request = {"BaselineId": BASELINE, "RejectedPatches": rejected, "RejectedPatchesAction": "BLOCK"}
    return "update_patch_baseline", {"BaselineId": BASELINE, "RejectedPatches": rejected}, request


def _baselines_with(
    *calls: tuple[str, dict[str, Any], dict[str, Any]],
) -> tuple[SsmPatchBaselines, Stubber, list[float]]:
    client, stub = _ssm()
    for operation, response, expected in calls:
        stub.add_response(operation, response, expected)
    pauses: list[float] = []
    return SsmPatchBaselines(client, sleep=pauses.append), stub, pauses


def test_ssm_baselines_reject_as_a_set_union_and_verify() -> None:
    baselines, stub, pauses = _baselines_with(
        _get(["KB-old", "openssl.x86_64"]),
        _update(["KB-old", "openssl.x86_64", "bad-lib.x86_64"]),
        _get(["KB-old", "openssl.x86_64", "bad-lib.x86_64"]),
    )
    with stub:
        after = baselines.reject_patches(BASELINE, ["bad-lib.x86_64", "openssl.x86_64"])
    stub.assert_no_pending_responses()
    assert after == ["KB-old", "openssl.x86_64", "bad-lib.x86_64"]
    assert pauses == []


def test_ssm_baselines_already_rejected_patches_need_no_write() -> None:
    baselines, stub, _ = _baselines_with(_get(["bad-lib.x86_64"]))
    with stub:
        assert baselines.reject_patches(BASELINE, ["bad-lib.x86_64"]) == ["bad-lib.x86_64"]
    stub.assert_no_pending_responses()


def test_ssm_baselines_merge_again_after_a_concurrent_writer_replaced_the_list() -> None:
    baselines, stub, pauses = _baselines_with(
        _get(["KB-old"]),
        _update(["KB-old", "bad-lib.x86_64"]),
        _get(["KB-old", "their-patch"]),
        _update(["KB-old", "their-patch", "bad-lib.x86_64"]),
        _get(["KB-old", "their-patch", "bad-lib.x86_64"]),
    )
    with stub:
        after = baselines.reject_patches(BASELINE, ["bad-lib.x86_64"])
    stub.assert_no_pending_responses()
    assert after == ["KB-old", "their-patch", "bad-lib.x86_64"]
    assert len(pauses) == 1


def test_ssm_baselines_give_up_after_the_last_merge_attempt() -> None:
    # every write is replaced at once by a writer holding the old list: two merges, three reads, then a typed error
    baselines, stub, _ = _baselines_with(
        _get(["KB-old"]), _update(["KB-old", "bad"]), _get(["KB-old"]), _update(["KB-old", "bad"]), _get(["KB-old"])
    )
    baselines.max_merge_attempts = 2
    with (
        stub,
        pytest.raises(BaselineUpdateConflict, match=r"\[\'bad\'\] still missing from RejectedPatches after 2 merge"),
    ):
        baselines.reject_patches(BASELINE, ["bad"])
    stub.assert_no_pending_responses()


def test_ssm_baselines_allow_drops_only_the_patch_and_verifies() -> None:
    baselines, stub, pauses = _baselines_with(
        _get(["KB-old", "bad-lib.x86_64", "openssl.x86_64"]),
        _update(["KB-old", "openssl.x86_64"]),
        _get(["KB-old", "openssl.x86_64"]),
    )
    with stub:
        assert baselines.allow_patches(BASELINE, ["bad-lib.x86_64"]) is True
    stub.assert_no_pending_responses()
    assert pauses == []


def test_ssm_baselines_allow_a_patch_that_is_not_rejected_writes_nothing() -> None:
    baselines, stub, _ = _baselines_with(_get(["KB-old"]))
    with stub:
        assert baselines.allow_patches(BASELINE, ["bad-lib.x86_64"]) is False
    stub.assert_no_pending_responses()


def test_ssm_baselines_allow_merges_again_when_a_concurrent_writer_put_the_patch_back() -> None:
    # the other writer read the list before our write: it writes back the patch we dropped, plus its own exclusion
    baselines, stub, pauses = _baselines_with(
        _get(["KB-old", "bad-lib.x86_64"]),
        _update(["KB-old"]),
        _get(["KB-old", "bad-lib.x86_64", "their-patch"]),
        _update(["KB-old", "their-patch"]),
        _get(["KB-old", "their-patch"]),
    )
    with stub:
        assert baselines.allow_patches(BASELINE, ["bad-lib.x86_64"]) is True
    stub.assert_no_pending_responses()
    assert len(pauses) == 1


def test_ssm_baselines_allow_gives_up_after_the_last_merge_attempt() -> None:
    baselines, stub, _ = _baselines_with(_get(["bad"]), _update([]), _get(["bad"]), _update([]), _get(["bad"]))
    baselines.max_merge_attempts = 2
    with stub, pytest.raises(BaselineUpdateConflict, match=r"\['bad'\] still in RejectedPatches after 2 merge"):
        baselines.allow_patches(BASELINE, ["bad"])
    stub.assert_no_pending_responses()


def _record(stage: str, patch_id: str, run_id: str = "2026-12") -> ExclusionRecord:
    return sample_exclusion(patch_id, stage, run_id, baseline_ids=(BASELINE,), decided_at=RUN_START)


def test_dynamodb_ledger_records_each_exclusion_once_and_lists_a_runs_exclusions(aws: None) -> None:
    client = boto3.client("dynamodb", region_name=REGION)
    ledger = DynamoDBExclusionLedger("runs", client)
    assert ledger.record(_record("staging", "bad-lib.x86_64")) is True
    assert ledger.record(_record("staging", "bad-lib.x86_64")) is False
    assert ledger.record(_record("dev", "KB5031234")) is True
    assert ledger.record(_record("staging", "bad-lib.x86_64", run_id="2027-01")) is True
    listed = ledger.exclusions_of("2026-12")
    assert sorted((r.stage_name, r.patch_id) for r in listed) == [("dev", "KB5031234"), ("staging", "bad-lib.x86_64")]
    assert listed[0].evidence.failing_with == 9
    item = client.get_item(
        TableName="runs", Key={"pk": {"S": "RUN#2026-12"}, "sk": {"S": "EXCLUSION#staging#bad-lib.x86_64"}}
    )["Item"]
    assert item["baseline_ids"] == {"L": [{"S": BASELINE}]}
    assert "expires_at" in item


def test_exclude_patches_handler_rejects_records_and_returns_the_decision(
    handler_env: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    from patchpilot.handlers.exclude_patches import handler

    handler_env()
    during = datetime(2026, 12, 8, 19, 0, tzinfo=UTC)
    ssm, stub = _ssm()
    stub.add_response(
        "describe_instance_patches",
        {"Patches": [_row("bad-lib.x86_64", "Installed", during), _row("ok.x86_64", "Installed", during)]},
        {"InstanceId": INSTANCE, "Filters": STATE_FILTER},
    )
    stub.add_response(
        "describe_instance_patches",
        {"Patches": [_row("ok.x86_64", "Installed", during)]},
        {"InstanceId": HEALTHY, "Filters": STATE_FILTER},
    )
    stub.add_response(
        "get_patch_baseline_for_patch_group",
        {"BaselineId": BASELINE},
        {"PatchGroup": "staging", "OperatingSystem": "AMAZON_LINUX_2023"},
    )
    stub.add_response(*_get([]))
    stub.add_response(*_update(["bad-lib.x86_64"]))
    stub.add_response(*_get(["bad-lib.x86_64"]))
    monkeypatch.setattr(wiring, "patch_inventory", lambda: SsmPatchInventory(ssm))
    monkeypatch.setattr(wiring, "patch_baselines", lambda: SsmPatchBaselines(ssm))
    event = {
        "run_id": "2026-12",
        "stage_name": "staging",
        "patch_group": "staging",
        "run_started_at": "2026-12-08T18:00:00Z",
        "unhealthy": [{"instance_id": INSTANCE, "platform": "AMAZON_LINUX_2023", "reasons": ["health_failed"]}],
        "healthy": [{"instance_id": HEALTHY, "platform": "AMAZON_LINUX_2023", "reasons": []}],
    }
    with stub:
        decision = handler(event, LambdaContext("ExcludePatchesFunction"))
    stub.assert_no_pending_responses()
    assert decision["outcome"] == "exclude"
    assert decision["baselines"] == [
        {"baseline_id": BASELINE, "operating_system": "AMAZON_LINUX_2023", "patch_ids": ["bad-lib.x86_64"]}
    ]
    assert [p["patch_id"] for p in decision["patches"]] == ["bad-lib.x86_64"]
    ledger = DynamoDBExclusionLedger("runs", boto3.client("dynamodb", region_name=REGION))
    assert [r.patch_id for r in ledger.exclusions_of("2026-12")] == ["bad-lib.x86_64"]


def test_patch_sets_install_list_leaves_out_a_patch_excluded_after_the_set_was_frozen(aws: None) -> None:
    # Given a frozen set with two patches, then prod-1 excludes one of them (after the freeze)
    dynamodb, s3 = boto3.client("dynamodb", region_name=REGION), boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="artifacts")
    ledger = DynamoDBExclusionLedger("runs", dynamodb)
    store = S3PatchSetStore("runs", "artifacts", dynamodb, s3, ledger)
    frozen = [
        InstancePatch(
            instance_id=INSTANCE,
            patch_id=patch_id,
            title=f"{patch_id}:0:1.0-1.amzn2023",
            classification="Security",
            severity="Important",
            state=PatchState.INSTALLED,
            installed_time=RUN_START,
        )
        for patch_id in ("bad-lib.x86_64", "good-lib.x86_64")
    ]
    store.freeze("2026-12", "staging", frozen)
    ledger.record(_record("prod-1", "bad-lib.x86_64"))
    # When the retry of prod-1 (or prod-2) asks for its install list
    stage = StagePlan.model_validate(
        {"name": "prod-2", "patch_group": "prod-2", "role": "production", "index": 3, "is_last": False}
    )
    url = store.install_list_for("2026-12", stage)
    # Then the list names only the patch that is still good
    assert url == "s3://artifacts/runs/2026-12/install-prod-2.yaml"
    body = s3.get_object(Bucket="artifacts", Key="runs/2026-12/install-prod-2.yaml")["Body"].read().decode()
    assert "good-lib.x86_64" in body
    assert "bad-lib.x86_64" not in body


def test_dynamodb_ledger_retire_moves_the_row_once_and_keeps_the_evidence(dynamodb: Any) -> None:
    ledger = DynamoDBExclusionLedger("runs", dynamodb)
    bad, other = _record("staging", "bad-lib.x86_64"), _record("staging", "KB5031234")
    assert ledger.record(bad)
    assert ledger.record(other)
    retired_at = datetime(2026, 12, 9, 10, 30, tzinfo=UTC)
    assert ledger.retire(bad, "alice", retired_at) is True
    assert ledger.retire(bad, "bob", retired_at) is False
    assert ledger.excluded_patches("2026-12") == {"KB5031234"}
    assert [r.patch_id for r in ledger.exclusions_of("2026-12")] == ["KB5031234"]
    [retired] = ledger.retired_of("2026-12")
    assert (retired.record, retired.retired_by, retired.retired_at) == (bad, "alice", retired_at)
    assert ledger.retire(_record("staging", "never-recorded"), "alice", retired_at) is False


def test_dynamodb_ledger_a_patch_excluded_again_after_retirement_keeps_both_histories(dynamodb: Any) -> None:
    ledger = DynamoDBExclusionLedger("runs", dynamodb)
    bad = _record("staging", "bad-lib.x86_64")
    assert ledger.record(bad)
    assert ledger.retire(bad, "alice", datetime(2026, 12, 9, 10, 0, tzinfo=UTC))
    assert ledger.record(bad) is True
    assert ledger.excluded_patches("2026-12") == {"bad-lib.x86_64"}
    assert ledger.retire(bad, "bob", datetime(2026, 12, 9, 11, 0, tzinfo=UTC))
    assert sorted(r.retired_by for r in ledger.retired_of("2026-12")) == ["alice", "bob"]


def test_dynamodb_ledger_excluded_patches_keeps_patch_ids_with_hashes(dynamodb: Any) -> None:
    ledger = DynamoDBExclusionLedger("runs", dynamodb)
    assert ledger.record(_record("prod-1", "pkg#1.2-3"))
    assert ledger.excluded_patches("2026-12") == {"pkg#1.2-3"}


def test_dynamodb_ledger_all_exclusions_queries_the_sparse_index_across_runs(dynamodb: Any) -> None:
    ledger = DynamoDBExclusionLedger("runs", dynamodb)
    kept, retired = _record("staging", "bad-lib.x86_64"), _record("dev", "KB5031234")
    later = _record("prod-1", "pkg#1.2-3", run_id="2027-01")
    for record in (kept, retired, later):
        assert ledger.record(record)
    retired_at = datetime(2026, 12, 9, 10, 30, tzinfo=UTC)
    assert ledger.retire(retired, "alice", retired_at)
    dynamodb.put_item(TableName="runs", Item={"pk": {"S": "RUN#2026-12"}, "sk": {"S": "FROZEN"}})  # not in the index
    operations: list[str] = []
    dynamodb.meta.events.register("before-call.dynamodb", lambda model, **_: operations.append(model.name))
    active, removed = ledger.all_exclusions()
    assert active == [kept, later]
    assert [(r.record, r.retired_by, r.retired_at) for r in removed] == [(retired, "alice", retired_at)]
    assert set(operations) == {"Query"}
