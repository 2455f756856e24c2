"""Bisection of indistinguishable suspects: the pure narrowing, and the steps on fakes (restore, rounds, verdicts)."""

import math
from datetime import UTC, datetime, timedelta

import pytest

from patchpilot.logic.bisection import (
    MAX_RESTORE_POLLS,
    BisectionPorts,
    Narrowing,
    advance_bisection,
    narrow_suspects,
    restore_client_token,
    rounds_needed,
)
from patchpilot.models.bisection import (
    BISECT_TAG_KEY,
    CheckRestoreRequest,
    JudgeRoundRequest,
    Observation,
    StartBisectionRequest,
)
from patchpilot.models.exceptions import TransientAwsError
from patchpilot.models.patches import InstancePatch, PatchState
from patchpilot.models.records import ManagedInstance
from patchpilot.models.rollout import BisectPolicy, InstanceRef, RunContext, StagePlan
from patchpilot.models.snapshots import SnapshotSet, SnapshotSettings, VolumeSnapshot
from patchpilot.models.state import WaitLimits
from tests.fakes import (
    HEALTH_DOCUMENT,
    FakeCanaryTags,
    FakeCommandDirectory,
    FakePatchInventory,
    FakePatchSets,
    FakeSnapshotLedger,
    FakeVolumeSnapshots,
    InMemoryBisectionLedger,
)


def _run_rounds(suspects: list[str], culprits: set[str], max_rounds: int = 12) -> tuple[Narrowing, list[Observation]]:
    """Drive the narrowing against a ground truth: a round is healthy when it installs no culprit."""
    observations: list[Observation] = []
    while True:
        narrowing = narrow_suspects(suspects, observations, max_rounds)
        if narrowing.kind != "test":
            return narrowing, observations
        healthy = not set(narrowing.tested) & culprits
        observations.append(Observation(round=len(observations) + 1, installed=list(narrowing.tested), healthy=healthy))


def test_narrow_suspects_first_round_installs_the_first_half_rounded_up() -> None:
    assert narrow_suspects(["a", "b", "c", "d", "e"], [], 8) == Narrowing("test", ("a", "b", "c"))


@pytest.mark.parametrize("count", [2, 3, 4, 5, 7, 8, 12, 16, 33])
def test_narrow_suspects_finds_one_culprit_anywhere_in_log2_rounds_plus_a_confirmation(count: int) -> None:
    suspects = [f"p{i:02d}" for i in range(count)]
    for culprit in suspects:
        narrowing, observations = _run_rounds(suspects, {culprit})
        assert (narrowing.kind, narrowing.culprits) == ("found", (culprit,))
        singled_out = next(
            i
            for i in range(len(observations) + 1)
            if culprit in narrow_suspects(suspects, observations[:i], 12).culprits
        )
        assert singled_out <= math.ceil(math.log2(count)) == rounds_needed(count)
        assert len(observations) <= rounds_needed(count) + 1


def test_narrow_suspects_culprit_found_by_elimination_needs_no_confirmation() -> None:
    suspects = [f"p{i}" for i in range(8)]
    narrowing, observations = _run_rounds(suspects, {"p7"})
    assert (narrowing.culprits, len(observations)) == (("p7",), 3)
    assert all(o.healthy for o in observations)


def test_narrow_suspects_unhealthy_half_narrows_to_it_healthy_half_to_the_rest() -> None:
    first = Observation(round=1, installed=["a", "b"], healthy=False)
    assert narrow_suspects(["a", "b", "c", "d"], [first], 8) == Narrowing("test", ("a",))
    cleared = Observation(round=1, installed=["a", "b"], healthy=True)
    assert narrow_suspects(["a", "b", "c", "d"], [cleared], 8) == Narrowing("test", ("c",))


def test_narrow_suspects_confirms_the_rest_and_ends_healthy_with_every_good_patch() -> None:
    narrowing, observations = _run_rounds(["a", "b", "c", "d"], {"a"})
    assert narrowing.culprits == ("a",)
    assert observations[-1] == Observation(round=3, installed=["b", "c", "d"], healthy=True)


def test_narrow_suspects_finds_several_culprits_through_the_confirmation_round() -> None:
    suspects = [f"p{i}" for i in range(8)]
    narrowing, observations = _run_rounds(suspects, {"p1", "p6"})
    assert narrowing.kind == "found"
    assert set(narrowing.culprits) == {"p1", "p6"}
    assert observations[-1].healthy


def test_narrow_suspects_ties_between_unexplained_sets_take_the_earliest() -> None:
    observations = [
        Observation(round=1, installed=["a", "b"], healthy=False),
        Observation(round=2, installed=["c", "d"], healthy=False),
    ]
    assert narrow_suspects(["a", "b", "c", "d"], observations, 8) == Narrowing("test", ("a",))


def test_narrow_suspects_stops_at_the_round_cap_with_suspects_left() -> None:
    observations = [Observation(round=1, installed=["a", "b", "c", "d"], healthy=False)]
    narrowing = narrow_suspects([f"{c}" for c in "abcdefgh"], observations, 1)
    assert narrowing.kind == "stop"
    assert "1 round(s), the policy's cap, left 4 suspects" in narrowing.reason


def test_narrow_suspects_cap_during_confirmation_reports_the_culprit_unconfirmed() -> None:
    observations = [
        Observation(round=1, installed=["a", "b"], healthy=False),
        Observation(round=2, installed=["a"], healthy=False),
    ]
    narrowing = narrow_suspects(["a", "b", "c", "d"], observations, 2)
    assert (narrowing.kind, narrowing.culprits) == ("found", ("a",))
    assert "3 other suspect(s) not confirmed" in narrowing.reason


def test_narrow_suspects_stops_when_a_broken_set_is_all_cleared() -> None:
    observations = [
        Observation(round=1, installed=["a", "b"], healthy=True),
        Observation(round=2, installed=["c", "d"], healthy=True),
    ]
    narrowing = narrow_suspects(["a", "b", "c", "d"], observations, 8)
    assert narrowing.kind == "stop"
    assert "each of those patches installed cleanly in another round" in narrowing.reason


def test_narrow_suspects_ignores_duplicate_suspects() -> None:
    assert narrow_suspects(["a", "a", "b"], [], 8) == Narrowing("test", ("a",))


def test_restore_client_token_differs_per_round_and_fits_ec2s_limit() -> None:
    first = restore_client_token("cycle-2026-12", "staging", 1, "i-0123456789abcdef0", 1)
    assert first != restore_client_token("cycle-2026-12", "staging", 1, "i-0123456789abcdef0", 2)
    assert first == restore_client_token("cycle-2026-12", "staging", 1, "i-0123456789abcdef0", 1)
    assert len(first) <= 64


# -- the steps on fakes -------------------------------------------------------------------------------------------
STARTED = datetime(2026, 12, 8, 20, 0, tzinfo=UTC)
BROKEN, OTHER, HEALTHY = "i-0000000000000000a", "i-0000000000000000b", "i-0000000000000000c"
SUSPECTS = [f"pkg{i}.x86_64" for i in range(6)]
CULPRIT = "pkg4.x86_64"


class _Clock:
    def now(self) -> datetime:
        return STARTED + timedelta(hours=1)

    def wait_timestamp(self, moment: datetime) -> datetime:
        return moment


def _run() -> RunContext:
    return RunContext(
        run_id="cycle-2026-12",
        mode="scheduled",
        started_at=STARTED,
        on_bad_patch="exclude_and_retry",
        approval_timeout_seconds=3600,
        limits=WaitLimits(restore_poll_seconds=5),
    )


BISECT = BisectPolicy(max_rounds=8)


def _stage(bisect: BisectPolicy | None = BISECT) -> StagePlan:
    return StagePlan(
        name="staging",
        patch_group="staging",
        role="test",
        index=1,
        is_last=False,
        snapshots=SnapshotSettings(),
        bisect=bisect,
    )


def _rows(instance_id: str, patch_ids: list[str]) -> list[InstancePatch]:
    return [
        InstancePatch(
            instance_id=instance_id,
            patch_id=patch_id,
            title=f"{patch_id}:0:1.0-1.amzn2023",
            classification="Security",
            severity="Important",
            state=PatchState.INSTALLED,
            installed_time=STARTED + timedelta(minutes=30),
        )
        for patch_id in patch_ids
    ]


class Bench:
    """The ports of a stage whose one AMAZON_LINUX_2023 instance broke after installing SUSPECTS."""

    def __init__(self, snapshot: bool = True) -> None:
        self.directory = FakeCommandDirectory()
        self.directory.fleet[("PatchGroup", "staging")] = [
            ManagedInstance(
                instance_id=i,
                ping_status="Online",
                platform_type="Linux",
                platform_name="Amazon Linux",
                platform_version="2023",
            )
            for i in (BROKEN, HEALTHY)
        ]
        self.tags = FakeCanaryTags(self.directory)
        self.volumes = FakeVolumeSnapshots(_Clock())
        self.snapshots = FakeSnapshotLedger()
        if snapshot:
            self.snapshots.record_set(
                SnapshotSet(
                    run_id="cycle-2026-12",
                    stage_name="staging",
                    instance_id=BROKEN,
                    taken_at=STARTED,
                    snapshots=[
                        VolumeSnapshot(
                            snapshot_id="snap-0000000000000000a", volume_id="vol-0000000000000000a", root=True
                        )
                    ],
                )
            )
        self.patch_sets = FakePatchSets()
        self.ledger = InMemoryBisectionLedger()
        inventory = FakePatchInventory({BROKEN: _rows(BROKEN, SUSPECTS), HEALTHY: _rows(HEALTHY, ["other.noarch"])})
        self.ports = BisectionPorts(
            inventory=inventory,
            snapshots=self.snapshots,
            volumes=self.volumes,
            tags=self.tags,
            directory=self.directory,
            patch_sets=self.patch_sets,
            ledger=self.ledger,
            health_check_document=HEALTH_DOCUMENT,
            now=lambda: STARTED + timedelta(hours=2),
        )

    def start(self, stage: StagePlan | None = None) -> StartBisectionRequest:
        return StartBisectionRequest(
            action="start",
            run=_run(),
            stage=stage or _stage(),
            phase_set="patch",
            unhealthy=[InstanceRef(instance_id=BROKEN, platform="AMAZON_LINUX_2023", reasons=["unreachable"])],
            healthy=[InstanceRef(instance_id=HEALTHY, platform="WINDOWS")],
        )


def _check() -> CheckRestoreRequest:
    return CheckRestoreRequest(action="check_restore", run=_run(), stage=_stage())


def _judge(healthy: bool) -> JudgeRoundRequest:
    return JudgeRoundRequest(action="judge_round", run=_run(), stage=_stage(), healthy=healthy)


def test_bisection_finds_the_culprit_restoring_before_every_round_and_untags_at_the_end() -> None:
    bench = Bench()
    step = advance_bisection(bench.start(), bench.ports)
    assert (step.action, step.poll_seconds, step.suspects) == ("wait_restore", 5, 6)
    assert bench.tags.tagged == [([BROKEN], BISECT_TAG_KEY, "cycle-2026-12/staging")]
    rounds = 0
    while step.action != "exclude":
        if step.action == "wait_restore":
            step = advance_bisection(_check(), bench.ports)
            continue
        assert step.action == "run_round"
        assert step.step is not None
        rounds += 1
        install = step.step.commands[0]
        assert install.targets[0].Key == f"tag:{BISECT_TAG_KEY}"
        assert (install.max_concurrency, install.max_errors, step.step.targeted_instances) == ("100%", "100%", 1)
        installed = bench.patch_sets.install_lists[install.parameters["InstallOverrideList"][0]]
        step = advance_bisection(_judge(healthy=CULPRIT not in installed), bench.ports)
    assert step.culprits == [CULPRIT]
    assert rounds <= rounds_needed(len(SUSPECTS)) + 1
    restores = [call for call in bench.volumes.calls if call.startswith("CreateReplaceRootVolumeTask")]
    assert len(restores) == len(bench.volumes.tasks) >= rounds  # one task per round (and one after a broken last)
    assert set(restores) == {f"CreateReplaceRootVolumeTask {BROKEN} snap-0000000000000000a"}
    record = bench.ledger.bisection("cycle-2026-12", "staging", 1)
    assert record is not None
    assert record.status == "concluded"
    assert record.culprits_by_system()["AMAZON_LINUX_2023"][0].title == f"{CULPRIT}:0:1.0-1.amzn2023"
    assert bench.tags.untagged == [([BROKEN], BISECT_TAG_KEY)]


def test_bisection_judging_a_round_twice_records_it_once() -> None:
    bench = Bench()
    advance_bisection(bench.start(), bench.ports)
    advance_bisection(_check(), bench.ports)
    advance_bisection(_judge(healthy=False), bench.ports)
    again = advance_bisection(_judge(healthy=True), bench.ports)
    record = bench.ledger.bisection("cycle-2026-12", "staging", 1)
    assert record is not None
    assert [o.healthy for o in record.subjects[0].observations] == [False]
    assert again.action == "wait_restore"


def test_bisection_without_a_snapshot_of_the_instance_stops_and_says_why() -> None:
    bench = Bench(snapshot=False)
    step = advance_bisection(bench.start(), bench.ports)
    assert step.action == "stop"
    assert f"AMAZON_LINUX_2023: no pre-patch snapshot of its unhealthy instance(s) ({BROKEN})" in step.reason
    assert bench.volumes.tasks == {}


def test_bisection_of_a_stage_without_bisect_policy_stops() -> None:
    bench = Bench()
    step = advance_bisection(bench.start(_stage(bisect=None)), bench.ports)
    assert (step.action, step.reason) == ("stop", "stage staging does not bisect (its policy has no bisect)")


def test_bisection_restore_that_fails_stops_with_the_task_and_the_rollback_hint() -> None:
    bench = Bench()
    advance_bisection(bench.start(), bench.ports)
    advance_bisection(_check(), bench.ports)
    advance_bisection(_judge(healthy=False), bench.ports)
    task_id = next(reversed(bench.volumes.tasks))
    bench.volumes.replace_root_volume_state = lambda _: "failed"  # type: ignore[method-assign]
    step = advance_bisection(_check(), bench.ports)
    assert step.action == "stop"
    assert f"restoring {BROKEN} ({task_id}) ended failed" in step.reason
    assert f"patchpilot rollback --run cycle-2026-12 --instance {BROKEN}" in step.reason


def test_bisection_restore_still_running_after_the_poll_cap_stops() -> None:
    bench = Bench()
    advance_bisection(bench.start(), bench.ports)
    bench.volumes.replace_root_volume_state = lambda _: "in-progress"  # type: ignore[method-assign]
    steps = [advance_bisection(_check(), bench.ports) for _ in range(MAX_RESTORE_POLLS)]
    assert {s.action for s in steps[:-1]} == {"wait_restore"}
    assert steps[-1].action == "stop"
    assert f"still in-progress after {MAX_RESTORE_POLLS} polls" in steps[-1].reason


def test_bisection_rounds_exhausted_stops_naming_the_cap() -> None:
    bench = Bench()
    stage = _stage(bisect=BisectPolicy(max_rounds=1))
    advance_bisection(bench.start(stage), bench.ports)
    advance_bisection(_check(), bench.ports)
    step = advance_bisection(_judge(healthy=False).model_copy(update={"stage": stage}), bench.ports)
    assert step.action == "stop"
    assert "the policy's cap" in step.reason


def test_bisection_start_waits_for_the_tag_to_be_visible() -> None:
    bench = Bench()
    bench.tags.tag = lambda ids, key, value: None  # type: ignore[method-assign]
    with pytest.raises(TransientAwsError, match=r"0 of 1 bisection tags visible"):
        advance_bisection(bench.start(), bench.ports)


def test_bisection_started_again_after_it_concluded_stops_instead_of_looping() -> None:
    bench = Bench()
    advance_bisection(bench.start(), bench.ports)
    record = bench.ledger.bisection("cycle-2026-12", "staging", 1)
    assert record is not None
    bench.ledger.save(record.model_copy(update={"status": "concluded", "reason": "pkg4.x86_64 after 3 round(s)"}))
    step = advance_bisection(bench.start(), bench.ports)
    assert (step.action, step.reason) == (
        "stop",
        "bisection of this stage attempt already concluded: pkg4.x86_64 after 3 round(s)",
    )
