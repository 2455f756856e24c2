from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from patchpilot.logic.exclusion import blocks_every_version, exclude_failing_patches, rejection_entry
from patchpilot.models.exceptions import BaselineUpdateConflict, InvalidExclusionRequest, RejectedPatchListFull
from patchpilot.models.exclusion import ExclusionDecision, ExclusionRequest, ExclusionThresholds
from patchpilot.models.patches import InstancePatch, PatchState
from tests.fakes import FakePatchInventory, InMemoryExclusionLedger, InMemoryPatchBaselines

RUN_START = datetime(2026, 12, 8, 18, 0, tzinfo=UTC)
DURING = RUN_START + timedelta(hours=1)
BEFORE = RUN_START - timedelta(days=3)
GROUP = "staging"
AL2023 = "AMAZON_LINUX_2023"
WINDOWS = "WINDOWS"
BASELINE_AL = "pb-0123456789abcdef0"
BASELINE_WIN = "pb-0fedcba9876543210"
COMMON = [f"common-{n}.x86_64" for n in range(8)]


def _id(n: int) -> str:
    return f"i-{n:017x}"


def _fleet(unhealthy: int, healthy: int, system: str = AL2023, first: int = 1) -> tuple[list[str], list[str]]:
    ids = [_id(first + n) for n in range(unhealthy + healthy)]
    return ids[:unhealthy], ids[unhealthy:]


def _patch(
    instance_id: str, patch_id: str, state: PatchState = PatchState.INSTALLED, when: datetime | None = DURING
) -> InstancePatch:
    return InstancePatch(
        instance_id=instance_id,
        patch_id=patch_id,
        title=f"{patch_id} title",
        classification="Security",
        severity="Important",
        state=state,
        installed_time=when,
    )


def _request(
    unhealthy: list[str], healthy: list[str], systems: dict[str, str] | None = None, **thresholds: float
) -> ExclusionRequest:
    systems = systems or {}
    return ExclusionRequest.model_validate(
        {
            "run_id": "2026-12",
            "stage_name": "staging",
            "patch_group": GROUP,
            "run_started_at": RUN_START,
            "unhealthy": [
                {"instance_id": i, "platform": systems.get(i, AL2023), "reasons": ["health_failed"]} for i in unhealthy
            ],
            "healthy": [{"instance_id": i, "platform": systems.get(i, AL2023)} for i in healthy],
            "thresholds": thresholds,
        }
    )


def _baselines(
    rejected: dict[str, list[str]] | None = None, concurrent_writes: list[str] | None = None
) -> InMemoryPatchBaselines:
    groups = {(GROUP, AL2023): BASELINE_AL, (GROUP, WINDOWS): BASELINE_WIN}
    return InMemoryPatchBaselines(groups, rejected, concurrent_writes)


def _common(instances: list[str]) -> dict[str, list[InstancePatch]]:
    return {i: [_patch(i, p) for p in COMMON] for i in instances}


def _decide(
    request: ExclusionRequest,
    patches: dict[str, list[InstancePatch]],
    baselines: InMemoryPatchBaselines | None = None,
    ledger: InMemoryExclusionLedger | None = None,
) -> tuple[ExclusionDecision, InMemoryPatchBaselines, InMemoryExclusionLedger]:
    baselines = baselines or _baselines()
    ledger = ledger or InMemoryExclusionLedger()
    decision = exclude_failing_patches(
        request, FakePatchInventory(patches), baselines, ledger, now=lambda: RUN_START + timedelta(days=1)
    )
    return decision, baselines, ledger


def test_exclude_single_bad_patch_among_many_rejects_it_and_records_evidence() -> None:
    # Given 10 unhealthy and 10 healthy instances that all got 8 common patches, and a bad one on 9 unhealthy only
    unhealthy, healthy = _fleet(10, 10)
    patches = _common(unhealthy + healthy)
    for instance_id in unhealthy[:9]:
        patches[instance_id].append(_patch(instance_id, "bad-lib.x86_64"))
    patches[healthy[0]].append(_patch(healthy[0], "kernel-old.x86_64", when=BEFORE))
    # When the exclusion step decides
    decision, baselines, ledger = _decide(_request(unhealthy, healthy), patches)
    # Then exactly the bad patch is rejected in the group's baseline, with its evidence
    assert decision.outcome == "exclude"
    [evidence] = decision.patches
    assert (evidence.patch_id, evidence.failing_with, evidence.failing_total) == ("bad-lib.x86_64", 9, 10)
    assert (evidence.healthy_with, evidence.healthy_total, evidence.failed_installs) == (0, 10, 0)
    assert [(b.baseline_id, b.operating_system, b.patch_ids) for b in decision.baselines] == [
        (BASELINE_AL, AL2023, ["bad-lib.x86_64"])
    ]
    assert baselines.rejected[BASELINE_AL] == ["bad-lib.x86_64"]
    [record] = ledger.exclusions_of("2026-12")
    assert (record.stage_name, record.patch_id, record.baseline_ids) == ("staging", "bad-lib.x86_64", [BASELINE_AL])
    assert record.failing_instances == sorted(unhealthy[:9])
    assert not decision.already_recorded
    assert decision.decided_at == RUN_START + timedelta(days=1)


def test_exclude_two_co_installed_patches_rejects_both() -> None:
    unhealthy, healthy = _fleet(5, 5)
    patches = _common(unhealthy + healthy)
    for instance_id in unhealthy:
        patches[instance_id] += [_patch(instance_id, "libfoo.x86_64"), _patch(instance_id, "libfoo-common.noarch")]
    decision, baselines, ledger = _decide(_request(unhealthy, healthy), patches)
    assert decision.outcome == "exclude"
    assert sorted(p.patch_id for p in decision.patches) == ["libfoo-common.noarch", "libfoo.x86_64"]
    assert sorted(baselines.rejected[BASELINE_AL]) == ["libfoo-common.noarch", "libfoo.x86_64"]
    assert len(baselines.writes) == 1
    assert len(ledger.records) == 2


def test_exclude_co_installed_patches_keeps_only_the_one_whose_install_failed() -> None:
    # A FAILED install is strong evidence: of two patches that arrived together, the failed one is the culprit
    unhealthy, healthy = _fleet(4, 4)
    patches = _common(unhealthy + healthy)
    for n, instance_id in enumerate(unhealthy):
        untimed = None if n % 2 else datetime(1970, 1, 1, tzinfo=UTC)  # SSM gives a failed row no time, or the epoch
        patches[instance_id] += [
            _patch(instance_id, "libbar.x86_64", PatchState.FAILED, when=untimed),
            _patch(instance_id, "libbar-doc.noarch", PatchState.INSTALLED_PENDING_REBOOT),
        ]
    decision, baselines, _ = _decide(_request(unhealthy, healthy), patches)
    assert decision.outcome == "exclude"
    assert [(p.patch_id, p.failed_installs) for p in decision.patches] == [("libbar.x86_64", 4)]
    assert baselines.rejected[BASELINE_AL] == ["libbar.x86_64"]


def test_inconclusive_when_too_many_patches_arrived_on_the_same_instances() -> None:
    unhealthy, healthy = _fleet(6, 6)
    patches = _common(unhealthy + healthy)
    bundle = [f"bundle-{n}.x86_64" for n in range(4)]
    for instance_id in unhealthy:
        patches[instance_id] += [_patch(instance_id, p) for p in bundle]
    decision, baselines, ledger = _decide(_request(unhealthy, healthy), patches)
    assert decision.outcome == "inconclusive"
    assert sorted(p.patch_id for p in decision.patches) == bundle
    assert "4 patches" in decision.reason
    assert (decision.baselines, baselines.writes, ledger.records) == ([], [], {})


def test_inconclusive_threshold_is_configurable() -> None:
    unhealthy, healthy = _fleet(6, 6)
    patches = _common(unhealthy + healthy)
    bundle = [f"bundle-{n}.x86_64" for n in range(4)]
    for instance_id in unhealthy:
        patches[instance_id] += [_patch(instance_id, p) for p in bundle]
    decision, baselines, _ = _decide(_request(unhealthy, healthy, max_patches_per_decision=4), patches)
    assert decision.outcome == "exclude"
    assert sorted(baselines.rejected[BASELINE_AL]) == bundle


def test_nothing_to_exclude_when_no_patch_correlates() -> None:
    # Every patch went everywhere (healthy too), one went to half the unhealthy only, old installs do not count
    unhealthy, healthy = _fleet(6, 6)
    patches = _common(unhealthy + healthy)
    for instance_id in unhealthy[:3]:
        patches[instance_id].append(_patch(instance_id, "half.x86_64"))
    for instance_id in unhealthy:
        patches[instance_id].append(_patch(instance_id, "old.x86_64", when=BEFORE))
        patches[instance_id].append(_patch(instance_id, "missing.x86_64", PatchState.MISSING, when=None))
    decision, baselines, ledger = _decide(_request(unhealthy, healthy), patches)
    assert decision.outcome == "nothing_to_exclude"
    assert decision.patches == []
    assert (baselines.writes, ledger.records) == ([], {})


def test_nothing_to_exclude_when_the_patch_also_arrived_on_healthy_instances() -> None:
    unhealthy, healthy = _fleet(5, 5)
    patches = _common(unhealthy + healthy)
    for instance_id in [*unhealthy, *healthy[:2]]:
        patches[instance_id].append(_patch(instance_id, "suspect.x86_64"))
    decision, _, _ = _decide(_request(unhealthy, healthy), patches)
    assert decision.outcome == "nothing_to_exclude"


def test_nothing_to_exclude_without_unhealthy_instances() -> None:
    _, healthy = _fleet(0, 3)
    decision, _, _ = _decide(_request([], healthy), _common(healthy))
    assert decision.outcome == "nothing_to_exclude"
    assert decision.unhealthy_sampled == 0


def test_duplicate_decision_has_no_second_effect() -> None:
    unhealthy, healthy = _fleet(3, 3)
    patches = _common(unhealthy + healthy)
    for instance_id in unhealthy:
        patches[instance_id].append(_patch(instance_id, "bad.x86_64"))
    request = _request(unhealthy, healthy)
    first, baselines, ledger = _decide(request, patches)
    again, _, _ = _decide(request, patches, baselines, ledger)
    assert (first.outcome, again.outcome) == ("exclude", "exclude")
    assert (first.already_recorded, again.already_recorded) == (False, True)
    assert len(baselines.writes) == 1
    assert baselines.rejected[BASELINE_AL] == ["bad.x86_64"]
    assert len(ledger.records) == 1


def test_reject_merges_as_a_set_union_keeping_existing_rejections() -> None:
    unhealthy, healthy = _fleet(3, 3)
    patches = _common(unhealthy + healthy)
    for instance_id in unhealthy:
        patches[instance_id].append(_patch(instance_id, "bad.x86_64"))
    baselines = _baselines(rejected={BASELINE_AL: ["KB-old-1", "bad.x86_64.old", "KB-old-2"]})
    _decide(_request(unhealthy, healthy), patches, baselines)
    assert baselines.rejected[BASELINE_AL] == ["KB-old-1", "bad.x86_64.old", "KB-old-2", "bad.x86_64"]


def test_reject_retries_when_a_concurrent_writer_overwrote_the_first_update() -> None:
    # Given another writer that replaces the list right after our first write, from a copy read before it
    unhealthy, healthy = _fleet(3, 3)
    patches = _common(unhealthy + healthy)
    for instance_id in unhealthy:
        patches[instance_id].append(_patch(instance_id, "bad.x86_64"))
    baselines = _baselines(rejected={BASELINE_AL: ["KB-old"]}, concurrent_writes=["their-exclusion"])
    # When the exclusion step rejects the patch
    decision, _, _ = _decide(_request(unhealthy, healthy), patches, baselines)
    # Then the verification noticed, merged again, and both writers' entries survive
    assert decision.outcome == "exclude"
    assert baselines.rejected[BASELINE_AL] == ["KB-old", "their-exclusion", "bad.x86_64"]
    assert [ids for _, ids in baselines.writes] == [
        ["KB-old", "bad.x86_64"],
        ["KB-old", "their-exclusion", "bad.x86_64"],
    ]
    assert baselines.pauses == [1]


def test_reject_gives_up_with_a_typed_error_when_writers_keep_overwriting() -> None:
    unhealthy, healthy = _fleet(2, 2)
    patches = _common(unhealthy + healthy)
    for instance_id in unhealthy:
        patches[instance_id].append(_patch(instance_id, "bad.x86_64"))
    baselines = _baselines(concurrent_writes=[f"theirs-{n}" for n in range(10)])
    with pytest.raises(
        BaselineUpdateConflict, match=r"\[\'bad\.x86_64\'\] still missing from RejectedPatches after 4 merge"
    ):
        _decide(_request(unhealthy, healthy), patches, baselines)
    assert len(baselines.writes) == baselines.max_merge_attempts


def test_reject_refuses_to_grow_rejected_patches_beyond_fifty() -> None:
    unhealthy, healthy = _fleet(2, 2)
    patches = _common(unhealthy + healthy)
    for instance_id in unhealthy:
        patches[instance_id].append(_patch(instance_id, "bad.x86_64"))
    baselines = _baselines(rejected={BASELINE_AL: [f"KB{n}" for n in range(50)]})
    with pytest.raises(
        RejectedPatchListFull, match=r"rejecting \[\'bad\.x86_64\'\] would make 51 RejectedPatches \(at most 50\)"
    ):
        _decide(_request(unhealthy, healthy), patches, baselines)
    assert baselines.writes == []


def test_patches_go_to_the_baseline_of_each_operating_system_they_broke() -> None:
    # Given a mixed stage: a Windows update breaks the Windows instances, a package breaks the Linux ones
    unhealthy, healthy = _fleet(6, 6)
    systems = {i: WINDOWS for i in [*unhealthy[:3], *healthy[:3]]}
    patches = _common(unhealthy + healthy)
    for instance_id in unhealthy:
        patches[instance_id].append(_patch(instance_id, "KB5031234" if systems.get(instance_id) else "bad.x86_64"))
    # When the exclusion step decides
    decision, baselines, ledger = _decide(_request(unhealthy, healthy, systems), patches)
    # Then every OS is decided in the same pass: each culprit is rejected in its own OS's baseline only, and shares
    # count only instances that could have received a patch (its OS)
    assert decision.outcome == "exclude"
    by_patch = {p.patch_id: p for p in decision.patches}
    assert sorted(by_patch) == ["KB5031234", "bad.x86_64"]
    for patch_id, system in (("KB5031234", WINDOWS), ("bad.x86_64", AL2023)):
        evidence = by_patch[patch_id]
        assert evidence.operating_systems == [system]
        assert (evidence.failing_with, evidence.failing_total, evidence.healthy_with, evidence.healthy_total) == (
            3,
            3,
            0,
            3,
        )
    assert sorted((b.baseline_id, tuple(b.patch_ids)) for b in decision.baselines) == [
        (BASELINE_AL, ("bad.x86_64",)),
        (BASELINE_WIN, ("KB5031234",)),
    ]
    assert baselines.rejected == {BASELINE_AL: ["bad.x86_64"], BASELINE_WIN: ["KB5031234"]}
    assert sorted(record.patch_id for record in ledger.exclusions_of("2026-12")) == ["KB5031234", "bad.x86_64"]
    assert f"{AL2023}: bad.x86_64 arrived on 3/3" in decision.reason
    assert f"{WINDOWS}: KB5031234 arrived on 3/3" in decision.reason


def test_one_pass_excludes_one_os_culprit_and_reports_the_other_os_as_inconclusive() -> None:
    # Given two OSes failing: the Windows culprit failed its install; the Linux instances got five indistinguishable
    # packages that all installed cleanly
    unhealthy, healthy = _fleet(4, 4)
    systems = {i: WINDOWS for i in [*unhealthy[:2], *healthy[:2]]}
    patches = _common(unhealthy + healthy)
    for instance_id in unhealthy:
        if systems.get(instance_id) == WINDOWS:
            patches[instance_id].append(_patch(instance_id, "KB5031234", PatchState.FAILED))
        else:
            patches[instance_id].extend(_patch(instance_id, f"new-{n}.x86_64") for n in range(5))
    # When the exclusion step decides
    decision, baselines, _ = _decide(_request(unhealthy, healthy, systems), patches)
    # Then the Windows culprit is excluded, and the Linux OS is named inconclusive in the reason, nothing rejected there
    assert decision.outcome == "exclude"
    assert [p.patch_id for p in decision.patches] == ["KB5031234"]
    assert baselines.rejected == {BASELINE_AL: [], BASELINE_WIN: ["KB5031234"]}
    assert f"{AL2023}: 5 patches arrived on exactly the same instances" in decision.reason


def test_one_pass_is_inconclusive_only_when_no_os_names_a_culprit() -> None:
    unhealthy, healthy = _fleet(4, 4)
    systems = {i: WINDOWS for i in [*unhealthy[:2], *healthy[:2]]}
    patches = _common(unhealthy + healthy)
    for instance_id in unhealthy[2:]:
        patches[instance_id].extend(_patch(instance_id, f"new-{n}.x86_64") for n in range(5))
    decision, baselines, ledger = _decide(_request(unhealthy, healthy, systems), patches)
    assert decision.outcome == "inconclusive"
    assert f"{WINDOWS}: none of the 8 patch(es)" in decision.reason
    assert baselines.writes == []
    assert ledger.exclusions_of("2026-12") == []


def test_a_patch_on_several_operating_systems_is_rejected_in_each_baseline() -> None:
    unhealthy, healthy = _fleet(4, 4)
    systems = {i: WINDOWS for i in [*unhealthy[:2], *healthy[:2]]}
    patches = _common(unhealthy + healthy)
    for instance_id in unhealthy:
        patches[instance_id].append(_patch(instance_id, "agent-2.1"))
    decision, baselines, ledger = _decide(_request(unhealthy, healthy, systems), patches)
    assert [(b.operating_system, b.baseline_id) for b in decision.baselines] == [
        (AL2023, BASELINE_AL),
        (WINDOWS, BASELINE_WIN),
    ]
    assert baselines.rejected == {BASELINE_AL: ["agent-2.1"], BASELINE_WIN: ["agent-2.1"]}
    assert ledger.exclusions_of("2026-12")[0].baseline_ids == [BASELINE_AL, BASELINE_WIN]


def test_aws_managed_baseline_cannot_be_changed_so_the_decision_is_inconclusive() -> None:
    unhealthy, healthy = _fleet(2, 2)
    patches = _common(unhealthy + healthy)
    for instance_id in unhealthy:
        patches[instance_id].append(_patch(instance_id, "bad.x86_64"))
    managed = "arn:aws:ssm:us-east-1:075727635805:patchbaseline/pb-0123456789abcdef0"
    baselines = InMemoryPatchBaselines({(GROUP, AL2023): managed})
    decision, _, ledger = _decide(_request(unhealthy, healthy), patches, baselines)
    assert decision.outcome == "inconclusive"
    assert "AWS-managed" in decision.reason
    assert [p.patch_id for p in decision.patches] == ["bad.x86_64"]
    assert (baselines.writes, ledger.records) == ([], {})


def test_unknown_operating_system_leaves_no_baseline_to_reject_in() -> None:
    unhealthy, healthy = _fleet(2, 2)
    systems = dict.fromkeys(unhealthy, "UNKNOWN")
    patches = _common(unhealthy + healthy)
    for instance_id in unhealthy:
        patches[instance_id].append(_patch(instance_id, "bad.x86_64"))
    decision, baselines, _ = _decide(_request(unhealthy, healthy, systems), patches)
    assert decision.outcome == "inconclusive"
    assert baselines.writes == []


@pytest.mark.parametrize(
    ("unhealthy", "healthy"),
    [([_id(1), _id(1)], [_id(2)]), ([_id(1)], [_id(1), _id(2)])],
    ids=["listed-twice", "both-unhealthy-and-healthy"],
)
def test_impossible_requests_raise_a_typed_error(unhealthy: list[str], healthy: list[str]) -> None:
    with pytest.raises(
        InvalidExclusionRequest,
        match=r"^stage staging: .*(listed twice in one sample|listed as both unhealthy and healthy)$",
    ):
        _decide(_request(unhealthy, healthy), {})


def test_request_validation_bounds_samples_and_thresholds() -> None:
    with pytest.raises(ValidationError, match="max_healthy_share must be below min_failing_share"):
        ExclusionThresholds(min_failing_share=0.5, max_healthy_share=0.5)
    unhealthy, _ = _fleet(51, 0)
    with pytest.raises(
        ValidationError,
        match=r"1 validation error for ExclusionRequest\nunhealthy\n  List should have at most 50 items",
    ):
        _request(unhealthy, [])
    with pytest.raises(
        ValidationError,
        match=r"1 validation error for ExclusionRequest\nunhealthy\.0\.instance_id\n  String should match pattern",
    ):
        _request(["not-an-instance"], [])


def test_naive_times_are_utc() -> None:
    unhealthy, healthy = _fleet(2, 2)
    patches = {i: [_patch(i, "bad.x86_64", when=DURING.replace(tzinfo=None))] for i in unhealthy}
    decision, _, _ = _decide(_request(unhealthy, healthy), patches)
    assert decision.outcome == "exclude"


def test_exclude_keeps_same_package_name_on_other_distributions_apart() -> None:
    # Given glibc failing on the RHEL instance while AL2023 instances installed their own glibc and stay healthy
    rhel = "REDHAT_ENTERPRISE_LINUX"
    unhealthy, healthy = _fleet(1, 3)
    systems = {unhealthy[0]: rhel}
    patches = {
        unhealthy[0]: [
            _patch(unhealthy[0], "glibc.x86_64", PatchState.FAILED, when=None),
            _patch(unhealthy[0], "tuned.noarch"),
        ],
        **{i: [_patch(i, "glibc.x86_64")] for i in healthy},
    }
    baselines = InMemoryPatchBaselines({(GROUP, rhel): "pb-0aaaaaaaaaaaaaaaa"}, None, None)
    # When the exclusion step decides
    decision, baselines, _ = _decide(_request(unhealthy, healthy, systems), patches, baselines)
    # Then the RHEL glibc is the culprit (healthy AL2023 glibc says nothing about it)
    assert decision.outcome == "exclude"
    assert [(p.patch_id, p.failed_installs, p.operating_systems) for p in decision.patches] == [
        ("glibc.x86_64", 1, [rhel])
    ]
    assert baselines.rejected["pb-0aaaaaaaaaaaaaaaa"] == ["glibc.x86_64"]


def test_exclude_whole_install_failure_blames_no_patch() -> None:
    unhealthy, healthy = _fleet(1, 3)
    patches = {
        unhealthy[0]: [_patch(unhealthy[0], p, PatchState.FAILED, when=None) for p in COMMON[:4]],
        **_common(healthy),
    }
    decision, baselines, ledger = _decide(_request(unhealthy, healthy), patches)
    assert decision.outcome == "nothing_to_exclude"
    assert "failed as a whole" in decision.reason
    assert baselines.writes == []
    assert not ledger.records


def test_exclude_rejects_in_the_later_stages_baselines_too() -> None:
    unhealthy, healthy = _fleet(3, 3)
    patches = _common(unhealthy + healthy)
    for instance_id in unhealthy:
        patches[instance_id].append(_patch(instance_id, "bad-lib.x86_64"))
    groups = {(GROUP, AL2023): BASELINE_AL, ("prod-1", AL2023): "pb-0bbbbbbbbbbbbbbbb"}
    baselines = InMemoryPatchBaselines(groups, None, None)
    request = _request(unhealthy, healthy).model_copy(update={"later_patch_groups": ["prod-1"]})
    decision, baselines, _ = _decide(request, patches, baselines)
    assert sorted(b.baseline_id for b in decision.baselines) == [BASELINE_AL, "pb-0bbbbbbbbbbbbbbbb"]
    assert baselines.rejected["pb-0bbbbbbbbbbbbbbbb"] == ["bad-lib.x86_64"]


@pytest.mark.parametrize(
    ("patch_id", "title", "system", "entry"),
    [
        ("glibc.x86_64", "glibc.x86_64:0:2.34-117.amzn2023.0.1", AL2023, "glibc-2.34-117.amzn2023.0.1.x86_64"),
        (
            "bind-libs.x86_64",
            "bind-libs.x86_64:32:9.11.4-26.P2.amzn2.13.5",
            "AMAZON_LINUX_2",
            "bind-libs-9.11.4-26.P2.amzn2.13.5.x86_64",
        ),
        ("tzdata.noarch", "tzdata.noarch:0:2026b-1.el9", "REDHAT_ENTERPRISE_LINUX", "tzdata-2026b-1.el9.noarch"),
        ("libc6.amd64", "libc6.amd64:2.35-0ubuntu3.8", "UBUNTU", "libc6"),
        ("KB5071546", "2026-12 Cumulative Update (KB5071546)", WINDOWS, "KB5071546"),
        ("odd.x86_64", "odd.x86_64 title", AL2023, "odd.x86_64"),
    ],
)
def test_rejection_entry_uses_the_documented_package_name_format(
    patch_id: str, title: str, system: str, entry: str
) -> None:
    assert rejection_entry(patch_id, title, system) == entry


def test_rejection_entry_only_apt_and_versionless_entries_block_every_version() -> None:
    assert not blocks_every_version("glibc-2.34-117.amzn2023.0.1.x86_64", "glibc.x86_64", AL2023)
    assert not blocks_every_version("KB5071546", "KB5071546", WINDOWS)
    assert blocks_every_version("libc6", "libc6.amd64", "UBUNTU")
    assert blocks_every_version("odd.x86_64", "odd.x86_64", AL2023)


def test_exclude_rejects_the_exact_version_that_failed_not_every_version() -> None:
    # Given a bad glibc version installed on every unhealthy instance only
    unhealthy, healthy = _fleet(5, 5)
    patches = _common(unhealthy + healthy)
    title = "glibc.x86_64:0:2.34-117.amzn2023.0.1"
    for instance_id in unhealthy:
        patches[instance_id].append(
            InstancePatch(
                instance_id=instance_id,
                patch_id="glibc.x86_64",
                title=title,
                classification="Security",
                severity="Medium",
                state=PatchState.INSTALLED,
                installed_time=DURING,
            )
        )
    # When the exclusion step decides
    decision, baselines, ledger = _decide(_request(unhealthy, healthy), patches)
    # Then the baseline rejects name-version-release.arch (a later glibc stays approvable), and the ledger says so
    assert baselines.rejected[BASELINE_AL] == ["glibc-2.34-117.amzn2023.0.1.x86_64"]
    [record] = ledger.exclusions_of("2026-12")
    assert record.rejected_as == ["glibc-2.34-117.amzn2023.0.1.x86_64"]
    assert record.rejection_entries == ["glibc-2.34-117.amzn2023.0.1.x86_64"]
    assert record.baseline_ids == [BASELINE_AL]
    assert record.patch_groups == [GROUP]
    assert decision.baselines[0].patch_ids == ["glibc-2.34-117.amzn2023.0.1.x86_64"]


def test_allow_patches_drops_only_the_given_ids_and_is_a_no_op_when_they_are_not_rejected() -> None:
    baselines = InMemoryPatchBaselines({(GROUP, AL2023): BASELINE_AL}, {BASELINE_AL: ["KB-old", "bad", "other"]})
    assert baselines.allow_patches(BASELINE_AL, ["bad"]) is True
    assert baselines.rejected[BASELINE_AL] == ["KB-old", "other"]
    assert baselines.allow_patches(BASELINE_AL, ["bad"]) is False
    assert baselines.writes == [(BASELINE_AL, ["KB-old", "other"])]


def test_allow_patches_merges_again_when_a_concurrent_writer_restored_the_patch() -> None:
    # the other writer read the list before our write and writes it back with its own exclusion
    baselines = InMemoryPatchBaselines(
        {(GROUP, AL2023): BASELINE_AL}, {BASELINE_AL: ["KB-old", "bad"]}, concurrent_writes=["theirs"]
    )
    assert baselines.allow_patches(BASELINE_AL, ["bad"]) is True
    assert baselines.rejected[BASELINE_AL] == ["KB-old", "theirs"]
    assert baselines.pauses == [1]


def test_allow_patches_gives_up_when_writers_keep_restoring_the_patch() -> None:
    baselines = InMemoryPatchBaselines(
        {(GROUP, AL2023): BASELINE_AL}, {BASELINE_AL: ["bad"]}, concurrent_writes=["a", "b", "c", "d", "e"]
    )
    with pytest.raises(BaselineUpdateConflict, match=r"\['bad'\] still in RejectedPatches after 4 merge"):
        baselines.allow_patches(BASELINE_AL, ["bad"])
