"""Canary planning: who the canaries are, how they are targeted and judged, and how the rest of the group follows."""

from typing import Any

import pytest
from pydantic import ValidationError

from patchpilot.integrations.canary_tags import batches
from patchpilot.logic.health import stratified_sample, verify_stage_health
from patchpilot.logic.stage_plan import canary_tag_value, choose_canaries, plan_stage_commands
from patchpilot.models.exceptions import NoInstancesInPatchGroup, TransientAwsError
from patchpilot.models.records import ManagedInstance
from patchpilot.models.rollout import (
    CANARY_TAG_KEY,
    CanaryPolicy,
    CommandResultRef,
    StagePlan,
    StageStepRequest,
    VerifyStageRequest,
)
from tests.fakes import (
    HEALTH_DOCUMENT,
    FakeAlarms,
    FakeCanaryTags,
    FakeCommandDirectory,
    FakeCompliance,
    FakePatchSets,
    InMemoryInstallTracker,
)
from tests.unit.test_rollout import _plan

PLATFORMS = {
    "AMAZON_LINUX_2023": ("Linux", "Amazon Linux", "2023"),
    "UBUNTU": ("Linux", "Ubuntu", "22.04"),
    "WINDOWS": ("Windows", "Microsoft Windows Server 2022 Datacenter", "10.0.20348"),
}


def _instances(counts: dict[str, int], offline: set[str] | None = None, first: int = 0) -> list[ManagedInstance]:
    instances = []
    n = first
    for system, count in counts.items():
        platform_type, name, version = PLATFORMS[system]
        for _ in range(count):
            instance_id = f"i-{n:017x}"
            instances.append(
                ManagedInstance(
                    instance_id=instance_id,
                    ping_status="ConnectionLost" if instance_id in (offline or set()) else "Online",
                    platform_type=platform_type,
                    platform_name=name,
                    platform_version=version,
                )
            )
            n += 1
    return instances


def _systems(instances: list[ManagedInstance], chosen: list[str]) -> dict[str, int]:
    by_id = {i.instance_id: i for i in instances}
    counts: dict[str, int] = {}
    for instance_id in chosen:
        info = by_id[instance_id]
        system = next(
            s for s, p in PLATFORMS.items() if p == (info.platform_type, info.platform_name, info.platform_version)
        )
        counts[system] = counts.get(system, 0) + 1
    return counts


def test_canary_policy_takes_exactly_one_rule() -> None:
    assert CanaryPolicy(per_os=2).per_os == 2
    with pytest.raises(ValidationError, match="exactly one of per_os and percent"):
        CanaryPolicy(per_os=1, percent=10)
    with pytest.raises(ValidationError, match="exactly one of per_os and percent"):
        CanaryPolicy()
    with pytest.raises(ValidationError, match="less than or equal to 50"):
        CanaryPolicy(percent=60)


def test_choose_canaries_per_os_takes_that_many_of_every_os() -> None:
    fleet = _instances({"AMAZON_LINUX_2023": 6, "UBUNTU": 4, "WINDOWS": 3})
    assert _systems(fleet, choose_canaries(fleet, CanaryPolicy(per_os=1), "2026-12/prod-1")) == {
        "AMAZON_LINUX_2023": 1,
        "UBUNTU": 1,
        "WINDOWS": 1,
    }
    assert _systems(fleet, choose_canaries(fleet, CanaryPolicy(per_os=2), "2026-12/prod-1")) == {
        "AMAZON_LINUX_2023": 2,
        "UBUNTU": 2,
        "WINDOWS": 2,
    }


def test_choose_canaries_percent_rounds_up_per_os_with_at_least_one() -> None:
    fleet = _instances({"AMAZON_LINUX_2023": 31, "WINDOWS": 5})
    chosen = choose_canaries(fleet, CanaryPolicy(percent=10), "2026-12/prod-1")
    assert _systems(fleet, chosen) == {"AMAZON_LINUX_2023": 4, "WINDOWS": 1}  # ceil(3.1), ceil(0.5)


def test_choose_canaries_skips_unreachable_instances() -> None:
    fleet = _instances({"AMAZON_LINUX_2023": 3, "WINDOWS": 1}, offline={f"i-{3:017x}"})
    chosen = choose_canaries(fleet, CanaryPolicy(per_os=2), "salt")
    assert _systems(fleet, chosen) == {"AMAZON_LINUX_2023": 2}


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ({"AMAZON_LINUX_2023": 1}, 1),  # a group of one: the canary is the group
        ({"AMAZON_LINUX_2023": 1, "WINDOWS": 1}, 1),  # never the whole group of two or more
        ({"AMAZON_LINUX_2023": 2, "WINDOWS": 1, "UBUNTU": 1}, 3),
    ],
)
def test_choose_canaries_in_small_groups_leaves_some_for_after(counts: dict[str, int], expected: int) -> None:
    fleet = _instances(counts)
    assert len(choose_canaries(fleet, CanaryPolicy(per_os=1), "salt")) == expected


def test_choose_canaries_caps_at_fifty_giving_every_os_its_share_round_robin() -> None:
    fleet = _instances({"AMAZON_LINUX_2023": 150, "WINDOWS": 50})
    chosen = choose_canaries(fleet, CanaryPolicy(percent=50), "salt")  # 75 + 25 wanted
    assert len(chosen) == 50
    assert _systems(fleet, chosen) == {"AMAZON_LINUX_2023": 25, "WINDOWS": 25}


def test_choose_canaries_is_stable_within_a_run_and_rotates_across_runs() -> None:
    fleet = _instances({"AMAZON_LINUX_2023": 40})
    december = choose_canaries(fleet, CanaryPolicy(per_os=3), "2026-12/prod-1")
    assert choose_canaries(list(reversed(fleet)), CanaryPolicy(per_os=3), "2026-12/prod-1") == december
    january = choose_canaries(fleet, CanaryPolicy(per_os=3), "2027-01/prod-1")
    assert january != december


def _canary_stage(policy: CanaryPolicy | None = None) -> tuple[Any, StagePlan]:
    plan = _plan(mode="emergency", stages=["dev", "prod-1"], patch_ids=["KB5034441"])
    stage = plan.stages[1].model_copy(update={"canary": policy or CanaryPolicy(per_os=1), "health_check": None})
    return plan.run, stage


def _group(directory: FakeCommandDirectory, instances: list[ManagedInstance]) -> None:
    directory.fleet[("PatchGroup", "prod-1")] = instances


def test_canary_step_tags_the_canaries_and_targets_them_by_tag() -> None:
    run, stage = _canary_stage()
    directory = FakeCommandDirectory()
    _group(directory, _instances({"AMAZON_LINUX_2023": 4, "WINDOWS": 4}))
    tags = FakeCanaryTags(directory)
    step = StageStepRequest(run=run, stage=stage, phase_set="canary")
    planned = plan_stage_commands(step, directory, FakePatchSets(), "PatchGroup", tags, health_document=HEALTH_DOCUMENT)
    value = canary_tag_value("2026-12", "prod-1")
    [(tagged, key, tag_value)] = tags.tagged
    assert (len(tagged), key, tag_value) == (2, CANARY_TAG_KEY, value)
    assert planned.targeted_instances == 2
    assert [c.phase for c in planned.commands] == ["install", "scan"]
    for command in planned.commands:
        assert [t.model_dump() for t in command.targets] == [{"Key": f"tag:{CANARY_TAG_KEY}", "Values": [value]}]
        assert (command.max_concurrency, command.max_errors) == ("100%", "100%")  # every canary reports
    # planned again (a retry after an exclusion): the same canaries, no new tags
    again = plan_stage_commands(step, directory, FakePatchSets(), "PatchGroup", tags, health_document=HEALTH_DOCUMENT)
    assert again.targeted_instances == 2
    assert len(tags.tagged) == 1


def test_canary_step_that_waits_for_its_window_tags_nothing() -> None:
    run, stage = _canary_stage()
    directory = FakeCommandDirectory()
    _group(directory, _instances({"AMAZON_LINUX_2023": 4}))
    tags = FakeCanaryTags(directory)
    step = StageStepRequest(run=run, stage=stage, phase_set="canary")
    planned = plan_stage_commands(
        step, directory, FakePatchSets(), "PatchGroup", tags, tag_now=False, health_document=HEALTH_DOCUMENT
    )
    assert planned.targeted_instances == 1
    assert tags.tagged == []


def test_rest_of_group_step_removes_the_canary_tags_and_targets_the_whole_group() -> None:
    run, stage = _canary_stage()
    directory = FakeCommandDirectory()
    _group(directory, _instances({"AMAZON_LINUX_2023": 4, "WINDOWS": 2}))
    tags = FakeCanaryTags(directory)
    plan_stage_commands(
        StageStepRequest(run=run, stage=stage, phase_set="canary"),
        directory,
        FakePatchSets(),
        "PatchGroup",
        tags,
        health_document=HEALTH_DOCUMENT,
    )
    rest = plan_stage_commands(
        StageStepRequest(run=run, stage=stage, phase_set="patch"),
        directory,
        FakePatchSets(),
        "PatchGroup",
        tags,
        health_document=HEALTH_DOCUMENT,
    )
    assert rest.targeted_instances == 6
    assert rest.commands[0].targets[0].model_dump() == {"Key": "tag:PatchGroup", "Values": ["prod-1"]}
    assert (rest.commands[0].max_concurrency, rest.commands[0].max_errors) == (stage.max_concurrency, stage.max_errors)
    [(untagged, key)] = tags.untagged
    assert (sorted(untagged), key) == (sorted(tags.tagged[0][0]), CANARY_TAG_KEY)
    assert directory.managed_instances(CANARY_TAG_KEY, canary_tag_value("2026-12", "prod-1")) == []


class _InvisibleTags(FakeCanaryTags):
    """Tags that SSM does not see yet (EC2 tags are eventually consistent)."""

    def tag(self, instance_ids: list[str], key: str, value: str) -> None:
        self.tagged.append((list(instance_ids), key, value))


def test_canary_step_plans_again_when_ssm_does_not_see_every_canary_tag_yet() -> None:
    run, stage = _canary_stage()
    directory = FakeCommandDirectory()
    _group(directory, _instances({"AMAZON_LINUX_2023": 3}))
    step = StageStepRequest(run=run, stage=stage, phase_set="canary")
    with pytest.raises(TransientAwsError, match="0 of 1 canary tags visible to SSM yet"):
        plan_stage_commands(
            step, directory, FakePatchSets(), "PatchGroup", _InvisibleTags(directory), health_document=HEALTH_DOCUMENT
        )


def test_canary_step_without_a_reachable_instance_is_a_typed_error() -> None:
    run, stage = _canary_stage()
    directory = FakeCommandDirectory()
    fleet = _instances({"AMAZON_LINUX_2023": 2})
    _group(directory, [i.model_copy(update={"ping_status": "ConnectionLost"}) for i in fleet])
    step = StageStepRequest(run=run, stage=stage, phase_set="canary")
    with pytest.raises(NoInstancesInPatchGroup, match="no instance of patch group prod-1 is Online"):
        plan_stage_commands(
            step, directory, FakePatchSets(), "PatchGroup", FakeCanaryTags(directory), health_document=HEALTH_DOCUMENT
        )


def test_canary_verdict_judges_only_the_canaries_with_no_error_budget() -> None:
    run, stage = _canary_stage()
    stage = stage.model_copy(update={"max_errors": "50%"})
    directory = FakeCommandDirectory()
    group = _instances({"AMAZON_LINUX_2023": 4, "WINDOWS": 4})
    _group(directory, group)
    tags = FakeCanaryTags(directory)
    plan_stage_commands(
        StageStepRequest(run=run, stage=stage, phase_set="canary"),
        directory,
        FakePatchSets(),
        "PatchGroup",
        tags,
        health_document=HEALTH_DOCUMENT,
    )
    canaries = sorted(tags.tagged[0][0])
    tracker = InMemoryInstallTracker()
    for command in ("install-1", "scan-1"):
        tracker.register_wait(command, "2026-12", "prod-1", len(canaries), "t")
        for instance_id in canaries:
            ok = not (command == "install-1" and instance_id == canaries[0])
            tracker.record_result(command, instance_id, "Success" if ok else "Failed", ok)
    request = VerifyStageRequest(
        run=run,
        stage=stage,
        phase_set="canary",
        results=[
            CommandResultRef(phase="install", command_id="install-1"),
            CommandResultRef(phase="scan", command_id="scan-1"),
        ],
    )
    verdict = verify_stage_health(request, tracker, directory, FakeAlarms(), FakeCompliance(), "PatchGroup")
    # One failed canary of two fails the step although the stage's budget (50 %) would tolerate it; the other six
    # instances of the group were never judged (nor touched)
    assert (verdict.targeted, verdict.unhealthy, verdict.allowed_failures, verdict.healthy) == (2, 1, 0, False)
    assert [r.instance_id for r in verdict.unhealthy_sample] == [canaries[0]]
    assert [r.instance_id for r in verdict.healthy_sample] == [canaries[1]]


def test_stratified_sample_gives_every_os_a_share_of_a_large_stage() -> None:
    system_of = {f"a{n:03d}": "AMAZON_LINUX_2023" for n in range(100)} | {f"w{n:03d}": "WINDOWS" for n in range(5)}
    sample = stratified_sample(sorted(system_of), system_of, size=50)
    assert len(sample) == 50
    assert sum(1 for i in sample if system_of[i] == "WINDOWS") == 5
    assert stratified_sample(["a001"], system_of) == ["a001"]


def test_batches_split_ids_into_chunks_of_at_most_fifty() -> None:
    ids = [f"i-{n:017x}" for n in range(120)]
    assert [len(b) for b in batches(ids)] == [50, 50, 20]
    assert [i for b in batches(ids) for i in b] == ids
    assert list(batches([])) == []
    with pytest.raises(ValueError, match="batch size must be at least 1"):
        list(batches(ids, 0))
