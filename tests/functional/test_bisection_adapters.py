"""Bisection adapters and handler: the runs-table record and the round install lists on moto, the restore through
EC2 (Stubber: moto 5.2.5 lacks CreateReplaceRootVolumeTask), and the exclusion of the culprits it found."""

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from patchpilot.handlers import wiring
from patchpilot.integrations.dynamodb_bisections import DynamoDBBisectionLedger
from patchpilot.integrations.dynamodb_exclusions import DynamoDBExclusionLedger
from patchpilot.integrations.ec2_snapshots import Ec2VolumeSnapshots
from patchpilot.integrations.patch_sets import S3PatchSetStore
from patchpilot.logic.bisection import BisectionPorts
from patchpilot.logic.exclusion import exclude_failing_patches
from patchpilot.models.bisection import BisectionRecord, BisectionSubject, Observation, Suspect
from patchpilot.models.exclusion import ExclusionRequest, SampledInstance
from patchpilot_sim.patches import parse_install_override_list
from tests.fakes import (
    HEALTH_DOCUMENT,
    FakeCanaryTags,
    FakeCommandDirectory,
    FakePatchInventory,
    FakeSnapshotLedger,
    InMemoryPatchBaselines,
)
from tests.functional.aws_fixtures import REGION, RUNS_TABLE, LambdaContext

STARTED = datetime(2026, 12, 8, 18, 0, tzinfo=UTC)
INSTANCE = "i-0123456789abcdef0"
SUSPECTS = [Suspect(patch_id=f"lib{i}.x86_64", title=f"lib{i}.x86_64:0:1.0-{i}.amzn2023") for i in range(4)]


def _record(status: str = "testing", culprits: list[str] | None = None) -> BisectionRecord:
    subject = BisectionSubject(
        operating_system="AMAZON_LINUX_2023",
        instance_id=INSTANCE,
        root_snapshot_id="snap-0123456789abcdef0",
        suspects=SUSPECTS,
        observations=[Observation(round=1, installed=["lib0.x86_64", "lib1.x86_64"], healthy=False)],
        culprits=culprits or [],
    )
    return BisectionRecord(
        run_id="2026-12",
        stage_name="staging",
        attempt=1,
        phase_set="patch",
        max_rounds=8,
        subjects=[subject],
        status=status,  # type: ignore[arg-type]
        started_at=STARTED,
        updated_at=STARTED,
    )


def test_dynamodb_bisection_ledger_keeps_one_record_per_stage_attempt(aws: None) -> None:
    client = boto3.client("dynamodb", region_name=REGION)
    ledger = DynamoDBBisectionLedger(RUNS_TABLE, client)
    assert ledger.bisection("2026-12", "staging", 1) is None
    ledger.save(_record())
    ledger.save(_record(status="concluded", culprits=["lib1.x86_64"]))
    found = ledger.bisection("2026-12", "staging", 1)
    assert found is not None
    assert (found.status, found.subjects[0].culprits, found.rounds) == ("concluded", ["lib1.x86_64"], 1)
    assert ledger.bisection("2026-12", "staging", 2) is None
    item = client.get_item(TableName=RUNS_TABLE, Key={"pk": {"S": "RUN#2026-12"}, "sk": {"S": "BISECTION#staging#1"}})
    assert item["Item"]["status"] == {"S": "concluded"}
    assert "expires_at" in item["Item"]


def test_patch_sets_round_install_list_names_exactly_the_round_suspects(aws: None) -> None:
    dynamodb, s3 = boto3.client("dynamodb", region_name=REGION), boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="artifacts")
    store = S3PatchSetStore(RUNS_TABLE, "artifacts", dynamodb, s3, DynamoDBExclusionLedger(RUNS_TABLE, dynamodb))
    url = store.write_install_list("2026-12", "bisect-staging-1-2", SUSPECTS[:2])
    assert url == "s3://artifacts/runs/2026-12/bisect-staging-1-2.yaml"
    body = s3.get_object(Bucket="artifacts", Key="runs/2026-12/bisect-staging-1-2.yaml")["Body"].read().decode()
    entries = parse_install_override_list(body)
    assert [(e.patch_id, e.title) for e in entries] == [(s.patch_id, s.title) for s in SUSPECTS[:2]]


def test_exclusion_of_a_concluded_bisection_rejects_exactly_its_culprit() -> None:
    baselines = InMemoryPatchBaselines({("staging", "AMAZON_LINUX_2023"): "pb-0123456789abcdef0"})
    ledger_rows = DynamoDBLikeExclusions()
    bisections = _Bisections(_record(status="concluded", culprits=["lib1.x86_64"]))
    request = ExclusionRequest(
        run_id="2026-12",
        stage_name="staging",
        patch_group="staging",
        run_started_at=STARTED,
        unhealthy=[SampledInstance(instance_id=INSTANCE, platform="AMAZON_LINUX_2023")],
        later_patch_groups=[],
        attempt=1,
    )
    decision = exclude_failing_patches(request, FakePatchInventory({}), baselines, ledger_rows, bisections=bisections)
    assert decision.outcome == "exclude"
    assert [p.patch_id for p in decision.patches] == ["lib1.x86_64"]
    assert baselines.rejected_patches("pb-0123456789abcdef0") == ["lib1-1.0-1.amzn2023.x86_64"]
    assert "bisection: AMAZON_LINUX_2023 on i-0123456789abcdef0: lib1.x86_64 broke it" in decision.reason
    retry = exclude_failing_patches(
        request.model_copy(update={"attempt": 2}),
        FakePatchInventory({}),
        baselines,
        ledger_rows,
        bisections=bisections,
    )
    assert retry.outcome == "nothing_to_exclude"  # attempt 2 correlates again: the bisection was attempt 1's


class _Bisections(DynamoDBBisectionLedger):
    def __init__(self, record: BisectionRecord) -> None:
        self.record = record

    def bisection(self, run_id: str, stage_name: str, attempt: int) -> BisectionRecord | None:
        return self.record if (run_id, stage_name, attempt) == ("2026-12", "staging", 1) else None


class DynamoDBLikeExclusions(DynamoDBExclusionLedger):
    """The exclusion ledger in memory (the same behaviour as tests.fakes' one, typed as the adapter)."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], Any] = {}

    def record(self, record: Any) -> bool:
        key = (record.stage_name, record.patch_id)
        if key in self.rows:
            return False
        self.rows[key] = record
        return True


def test_bisect_suspects_handler_restores_the_instance_through_ec2_and_returns_the_next_step(
    handler_env: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    from patchpilot.handlers.bisect_suspects import handler

    handler_env(ARTIFACTS_BUCKET_NAME="artifacts")
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    ledger = DynamoDBBisectionLedger(RUNS_TABLE, dynamodb)
    testing = _record()
    testing = testing.model_copy(
        update={"subjects": [testing.subjects[0].model_copy(update={"testing": ["lib0.x86_64"]})]}
    )
    ledger.save(testing)
    ec2 = boto3.client("ec2", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(ec2)
    stub.add_response(
        "create_replace_root_volume_task",
        {"ReplaceRootVolumeTask": {"ReplaceRootVolumeTaskId": "replacevol-0123456789abcdef0"}},
        {
            "InstanceId": INSTANCE,
            "SnapshotId": "snap-0123456789abcdef0",
            "ClientToken": ANY,
            "DeleteReplacedRootVolume": False,
            "TagSpecifications": ANY,
        },
    )
    directory = FakeCommandDirectory()
    monkeypatch.setattr(
        wiring,
        "bisection_ports",
        lambda: BisectionPorts(
            inventory=FakePatchInventory({}),
            snapshots=FakeSnapshotLedger(),
            volumes=Ec2VolumeSnapshots(ec2),
            tags=FakeCanaryTags(directory),
            directory=directory,
            patch_sets=wiring.patch_sets(),
            ledger=ledger,
            health_check_document=HEALTH_DOCUMENT,
        ),
    )
    event = {
        "action": "judge_round",
        "run": {
            "run_id": "2026-12",
            "mode": "scheduled",
            "started_at": "2026-12-08T18:00:00Z",
            "on_bad_patch": "exclude_and_retry",
            "approval_timeout_seconds": 3600,
            "limits": {"restore_poll_seconds": 10},
        },
        "stage": {
            "name": "staging",
            "patch_group": "staging",
            "role": "test",
            "index": 1,
            "is_last": False,
            "snapshots": {"enabled": True},
            "bisect": {"max_rounds": 8},
        },
        "attempt": 1,
        "healthy": True,
        "reasons": {},
    }
    with stub:
        step = handler(event, LambdaContext("BisectSuspectsFunction"))
    stub.assert_no_pending_responses()
    assert (step["action"], step["poll_seconds"]) == ("wait_restore", 10)
    saved = ledger.bisection("2026-12", "staging", 1)
    assert saved is not None
    assert saved.restore_task_id == "replacevol-0123456789abcdef0"
    assert [o.healthy for o in saved.subjects[0].observations] == [False, True]
    assert saved.subjects[0].testing == ["lib2.x86_64", "lib3.x86_64"]  # lib1 singled out: confirm the rest


def test_bisect_suspects_handler_rejects_an_unknown_action(handler_env: Callable[..., None]) -> None:
    from aws_lambda_powertools.utilities.parser import ValidationError

    from patchpilot.handlers.bisect_suspects import handler

    handler_env()
    with pytest.raises(ValidationError, match=r"action"):
        handler({"action": "guess"}, LambdaContext("BisectSuspectsFunction"))
