import json
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from patchpilot.logic.cycle import start_rollout
from patchpilot.logic.frozen_set import record_stage_passed
from patchpilot.logic.health import allowed_failures, verify_stage_health
from patchpilot.logic.platforms import operating_system_of
from patchpilot.logic.rollout_plan import plan_rollout
from patchpilot.logic.stage_plan import bisect_round_commands, plan_stage_commands
from patchpilot.models.cycle import StartRolloutRequest
from patchpilot.models.exceptions import (
    InvalidRolloutRequest,
    NoInstancesInPatchGroup,
    NoTestedPatchSet,
    NothingToResume,
)
from patchpilot.models.patches import InstancePatch, PatchState
from patchpilot.models.records import ManagedInstance
from patchpilot.models.rollout import (
    CommandResultRef,
    HealthCheck,
    RecordStageRequest,
    RolloutPlan,
    RolloutRequest,
    StageCatalog,
    StageStepRequest,
    StageVerdict,
    VerifyStageRequest,
)
from patchpilot.models.settings import StarterSettings
from patchpilot.models.state import WaitLimits
from tests.fakes import (
    HEALTH_DOCUMENT,
    FakeAlarms,
    FakeCanaryTags,
    FakeCommandDirectory,
    FakeCompliance,
    FakePatchInventory,
    FakePatchSets,
    FakeStarter,
    InMemoryExclusionLedger,
    InMemoryInstallTracker,
    InMemoryRunLedger,
    sample_exclusion,
)

NOW = datetime(2026, 12, 8, 20, 0, tzinfo=UTC)
CATALOG = StageCatalog.model_validate(
    {
        "stages": [
            {
                "name": "dev",
                "patch_group": "dev",
                "role": "test",
                "max_errors": "10%",
                "health_check": {"linux_commands": ["curl -fsS localhost/health"]},
            },
            {"name": "staging", "patch_group": "staging", "role": "test", "bake_seconds": 172_800},
            {
                "name": "prod-1",
                "patch_group": "prod-1",
                "role": "production",
                "requires_approval": True,
                "alarm_name_prefix": "patchpilot-prod-1",
                "max_errors": "1",
            },
            {"name": "prod-2", "patch_group": "prod-2", "role": "production"},
        ]
    }
)


def _plan(**request: object) -> RolloutPlan:
    return plan_rollout(RolloutRequest.model_validate({"run_id": "2026-12", **request}), CATALOG, NOW)


def test_plan_rollout_runs_every_catalog_stage_in_order_with_bake_overrides() -> None:
    plan = _plan(bake_seconds={"staging": 2})
    assert [s.name for s in plan.stages] == ["dev", "staging", "prod-1", "prod-2"]
    assert [s.bake_seconds for s in plan.stages] == [86_400, 2, 86_400, 86_400]
    assert [s.is_last for s in plan.stages] == [False, False, False, True]
    assert plan.run.started_at == NOW


@pytest.mark.parametrize(
    ("request_fields", "message"),
    [
        ({"stages": ["dev", "qa"]}, "unknown stage"),
        ({"stages": ["dev"], "bake_seconds": {"prod-1": 1}}, "does not include"),
        ({"stages": ["prod-1", "prod-2"]}, "need a test stage before them"),
    ],
)
def test_plan_rollout_rejects_bad_requests_before_any_command(request_fields: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidRolloutRequest, match=message):
        _plan(**request_fields)


def test_plan_rollout_allows_emergency_straight_to_production() -> None:
    plan = _plan(mode="emergency", stages=["prod-1"], cve_ids=["CVE-2024-6387"])
    assert [s.name for s in plan.stages] == ["prod-1"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"mode": "emergency"}, "empty patch list"),
        ({"mode": "emergency", "cve_ids": ["CVE-24-1"]}, "cve_ids"),
        ({"patch_ids": ["KB5001"]}, "only for mode=emergency"),
        ({"stages": ["dev", "dev"]}, "must not repeat"),
        ({"bake_seconds": {"dev": 0}}, "bake_seconds"),
    ],
)
def test_rollout_request_validation_names_the_problem(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RolloutRequest.model_validate({"run_id": "2026-12", **fields})


def test_stage_catalog_rejects_a_test_stage_after_production() -> None:
    with pytest.raises(ValidationError, match="before the first production stage"):
        StageCatalog.model_validate(
            {
                "stages": [
                    {"name": "prod-1", "patch_group": "p", "role": "production"},
                    {"name": "dev", "patch_group": "d", "role": "test"},
                ]
            }
        )


def _directory(group: str, count: int, offline: int = 0) -> FakeCommandDirectory:
    directory = FakeCommandDirectory()
    directory.fleet[("PatchGroup", group)] = [
        ManagedInstance(
            instance_id=f"i-{n:017x}",
            ping_status="ConnectionLost" if n < offline else "Online",
            platform_type="Linux",
            platform_name="Amazon Linux",
            platform_version="2023",
        )
        for n in range(count)
    ]
    return directory


def test_plan_stage_commands_patch_step_installs_scans_and_checks_health() -> None:
    plan = _plan()
    step = StageStepRequest(run=plan.run, stage=plan.stages[0], phase_set="patch")
    commands = plan_stage_commands(
        step,
        directory := _directory("dev", 3),
        FakePatchSets(),
        "PatchGroup",
        FakeCanaryTags(directory),
        health_document=HEALTH_DOCUMENT,
    )
    assert commands.targeted_instances == 3
    assert [c.phase for c in commands.commands] == ["install", "scan", "health"]
    install, scan, health = commands.commands
    snapshot = install.parameters["SnapshotId"]
    assert install.parameters == {"Operation": ["Install"], "RebootOption": ["RebootIfNeeded"], "SnapshotId": snapshot}
    assert scan.parameters == {"Operation": ["Scan"], "SnapshotId": snapshot}
    assert install.targets[0].model_dump() == {"Key": "tag:PatchGroup", "Values": ["dev"]}
    # ONE health command of the stack's cross-platform document; Windows nodes run its no-op default step
    assert health.document_name == HEALTH_DOCUMENT
    assert health.parameters == {"linuxCommands": ["curl -fsS localhost/health"], "executionTimeout": ["120"]}


def test_bisect_round_verifies_with_one_command_of_the_stacks_health_check_document() -> None:
    plan = _plan()
    check = HealthCheck(linux_commands=["curl -f :8080"], windows_commands=["exit 0"], timeout_seconds=60)
    stage = plan.stages[0].model_copy(update={"health_check": check})
    round_ = bisect_round_commands(
        plan.run, stage, 1, 2, "s3://a/l.yaml", "PatchPilotBisect", "2026-12/dev", HEALTH_DOCUMENT
    )
    assert [c.phase for c in round_.commands] == ["install", "scan", "health"]
    health = round_.commands[2]
    assert health.document_name == HEALTH_DOCUMENT
    assert health.parameters == {
        "executionTimeout": ["60"],
        "linuxCommands": ["curl -f :8080"],
        "windowsCommands": ["exit 0"],
    }
    assert health.targets[0].model_dump() == {"Key": "tag:PatchPilotBisect", "Values": ["2026-12/dev"]}


def test_plan_stage_commands_production_installs_exactly_the_frozen_set() -> None:
    plan = _plan()
    patch_sets = FakePatchSets()
    step = StageStepRequest(run=plan.run, stage=plan.stages[2], phase_set="patch")
    with pytest.raises(NoTestedPatchSet, match="stage prod-1: no test stage of run 2026-12 froze a patch set"):
        plan_stage_commands(
            step,
            directory := _directory("prod-1", 2),
            patch_sets,
            "PatchGroup",
            FakeCanaryTags(directory),
            health_document=HEALTH_DOCUMENT,
        )
    patch_sets.freeze("2026-12", "staging", [])
    install = plan_stage_commands(
        step,
        directory := _directory("prod-1", 2),
        patch_sets,
        "PatchGroup",
        FakeCanaryTags(directory),
        health_document=HEALTH_DOCUMENT,
    ).commands[0]
    assert install.parameters["InstallOverrideList"] == ["s3://artifacts/runs/2026-12/install-prod-1.yaml"]


def test_plan_stage_commands_emergency_uses_a_baseline_override_and_verify_step_only_checks() -> None:
    plan = _plan(mode="emergency", stages=["dev"], patch_ids=["KB5034441"])
    patch_sets = FakePatchSets()
    patch = plan_stage_commands(
        StageStepRequest(run=plan.run, stage=plan.stages[0], phase_set="patch"),
        _directory("dev", 1),
        patch_sets,
        "PatchGroup",
        FakeCanaryTags(FakeCommandDirectory()),
        health_document=HEALTH_DOCUMENT,
    )
    assert "BaselineOverride" in patch.commands[0].parameters
    verify = plan_stage_commands(
        StageStepRequest(run=plan.run, stage=plan.stages[0], phase_set="verify"),
        _directory("dev", 1),
        patch_sets,
        "PatchGroup",
        FakeCanaryTags(FakeCommandDirectory()),
        health_document=HEALTH_DOCUMENT,
    )
    assert [c.phase for c in verify.commands] == ["health"]


def test_plan_stage_commands_rejects_an_empty_group() -> None:
    plan = _plan()
    with pytest.raises(NoInstancesInPatchGroup, match="stage staging: no managed instance has tag PatchGroup=staging"):
        plan_stage_commands(
            StageStepRequest(run=plan.run, stage=plan.stages[1], phase_set="patch"),
            FakeCommandDirectory(),
            FakePatchSets(),
            "PatchGroup",
            FakeCanaryTags(FakeCommandDirectory()),
            health_document=HEALTH_DOCUMENT,
        )


def _verify(
    stage_index: int,
    directory: FakeCommandDirectory,
    tracker: InMemoryInstallTracker,
    alarms: FakeAlarms | None = None,
    compliance: FakeCompliance | None = None,
) -> StageVerdict:
    plan = _plan()
    request = VerifyStageRequest(
        run=plan.run,
        stage=plan.stages[stage_index],
        phase_set="patch",
        results=[
            CommandResultRef(phase="install", command_id="install-1"),
            CommandResultRef(phase="scan", command_id="scan-1"),
        ],
    )
    return verify_stage_health(
        request, tracker, directory, alarms or FakeAlarms(), compliance or FakeCompliance(), "PatchGroup"
    )


def _tracked(instance_ids: list[str], failed: set[str]) -> InMemoryInstallTracker:
    tracker = InMemoryInstallTracker()
    for command in ("install-1", "scan-1"):
        tracker.register_wait(command, "2026-12", "dev", len(instance_ids), "t")
        for instance_id in instance_ids:
            ok = not (command == "install-1" and instance_id in failed)
            tracker.record_result(command, instance_id, "Success" if ok else "Failed", ok)
    return tracker


def test_verify_stage_health_counts_every_signal_per_instance() -> None:
    directory = _directory("dev", 10, offline=1)
    ids = [i.instance_id for i in directory.fleet[("PatchGroup", "dev")]]
    tracker = _tracked(ids[:9], failed={ids[2]})
    compliance = FakeCompliance()
    compliance.failed[ids[3]] = 1
    verdict = _verify(0, directory, tracker, compliance=compliance)
    assert verdict.reasons == {
        "install_failed": 1,
        "install_not_reported": 1,
        "patch_failed": 1,
        "scan_not_reported": 1,
        "unreachable": 1,
    }
    assert (verdict.unhealthy, verdict.allowed_failures, verdict.healthy) == (4, 1, False)
    assert {r.instance_id for r in verdict.unhealthy_sample} == {ids[0], ids[2], ids[3], ids[9]}
    assert len(verdict.healthy_sample) == 6
    assert all(r.platform == "AMAZON_LINUX_2023" for r in verdict.healthy_sample)


def test_verify_stage_health_fails_on_a_stage_alarm_even_with_healthy_instances() -> None:
    directory = _directory("prod-1", 4)
    ids = [i.instance_id for i in directory.fleet[("PatchGroup", "prod-1")]]
    alarms = FakeAlarms({"patchpilot-prod-1": ["patchpilot-prod-1-5xx"]})
    verdict = _verify(2, directory, _tracked(ids, failed=set()), alarms=alarms)
    assert (verdict.unhealthy, verdict.healthy, verdict.alarms_in_alarm) == (0, False, ["patchpilot-prod-1-5xx"])


def test_allowed_failures_follows_send_command_max_errors() -> None:
    assert [allowed_failures(v, 10) for v in ("0", "2", "10%", "15%")] == [0, 2, 1, 1]


def test_record_stage_passed_freezes_what_the_test_stage_installed_minus_exclusions() -> None:
    plan = _plan()
    tracker = _tracked(["i-a", "i-b"], failed={"i-b"})

    def patch(pid: str, when: datetime | None, state: PatchState = PatchState.INSTALLED) -> InstancePatch:
        return InstancePatch(
            instance_id="i-a",
            patch_id=pid,
            title=pid,
            classification="Security",
            severity="Critical",
            state=state,
            installed_time=when,
        )

    inventory = FakePatchInventory(
        {
            "i-a": [
                patch("KB1", NOW),
                patch("KB-old", datetime(2026, 11, 1, tzinfo=UTC)),
                patch("KB-bad", NOW),
                patch("KB-failed", None, PatchState.FAILED),
            ],
            "i-b": [patch("KB-failed-instance", NOW)],
        }
    )
    patch_sets = FakePatchSets()
    ledger = InMemoryExclusionLedger()
    ledger.record(sample_exclusion("KB-bad"))
    verdict = StageVerdict(
        stage_name="staging", phase_set="verify", healthy=True, targeted=2, unhealthy=0, allowed_failures=0, reasons={}
    )
    outcome = record_stage_passed(
        RecordStageRequest(
            run=plan.run,
            stage=plan.stages[1],
            verdict=verdict,
            results=[CommandResultRef(phase="install", command_id="install-1")],
        ),
        tracker,
        inventory,
        patch_sets,
        ledger,
    )
    assert outcome.frozen_patch_count == 1
    assert [p.patch_id for p in patch_sets.frozen["2026-12"]] == ["KB1"]


def test_record_stage_passed_reads_naive_install_times_as_utc() -> None:
    plan = _plan()
    tracker = _tracked(["i-a"], failed=set())
    naive = (NOW + timedelta(minutes=5)).replace(tzinfo=None)
    inventory = FakePatchInventory(
        {
            "i-a": [
                InstancePatch(
                    instance_id="i-a",
                    patch_id="KB-naive",
                    title="KB-naive",
                    classification="Security",
                    severity="Critical",
                    state=PatchState.INSTALLED,
                    installed_time=naive,
                )
            ]
        }
    )
    patch_sets = FakePatchSets()
    verdict = StageVerdict(
        stage_name="staging", phase_set="verify", healthy=True, targeted=1, unhealthy=0, allowed_failures=0, reasons={}
    )
    request = RecordStageRequest(
        run=plan.run.model_copy(update={"started_at": NOW}),
        stage=plan.stages[1],
        verdict=verdict,
        results=[CommandResultRef(phase="install", command_id="install-1")],
    )
    outcome = record_stage_passed(request, tracker, inventory, patch_sets, InMemoryExclusionLedger())
    assert outcome.frozen_patch_count == 1
    assert [p.patch_id for p in patch_sets.frozen["2026-12"]] == ["KB-naive"]


def test_start_rollout_same_cycle_twice_starts_one_execution() -> None:
    starter = FakeStarter()
    first = start_rollout(StartRolloutRequest(), starter, NOW)
    second = start_rollout(StartRolloutRequest(), starter, NOW)
    assert (first.execution_name, first.run_id, first.started) == ("cycle-2026-12", "2026-12", True)
    assert (second.execution_name, second.started) == ("cycle-2026-12", False)
    assert len(starter.executions) == 1


def test_start_rollout_uses_the_stacks_default_wait_limits_only_when_the_request_names_none() -> None:
    # Given a stack whose default wait limits differ from the model's
    defaults = WaitLimits(install_timeout_seconds=600, heartbeat_seconds=30, max_reconcile_attempts=4)
    starter = FakeStarter()
    # When one run names no limits and another names its own
    start_rollout(StartRolloutRequest(cycle="2026-11"), starter, NOW, default_limits=defaults)
    own = WaitLimits(install_timeout_seconds=900, heartbeat_seconds=60)
    start_rollout(StartRolloutRequest(cycle="2026-12", limits=own), starter, NOW, default_limits=defaults)
    # Then the first runs with the stack's defaults, the second with its own
    first = json.loads(starter.executions["cycle-2026-11"])["limits"]
    second = json.loads(starter.executions["cycle-2026-12"])["limits"]
    assert first == defaults.model_dump()
    assert second == own.model_dump()


def test_starter_settings_default_wait_limits_empty_means_the_model_defaults() -> None:
    arn = "arn:aws:states:us-east-1:123456789012:stateMachine:rollout"
    empty = StarterSettings.model_validate({"STATE_MACHINE_ARN": arn, "DEFAULT_WAIT_LIMITS": ""})
    set_ = StarterSettings.model_validate(
        {"STATE_MACHINE_ARN": arn, "DEFAULT_WAIT_LIMITS": '{"heartbeat_seconds": 5, "install_timeout_seconds": 60}'}
    )
    assert empty.default_wait_limits is None
    assert set_.default_wait_limits == WaitLimits(heartbeat_seconds=5, install_timeout_seconds=60)
    with pytest.raises(ValidationError, match=r"heartbeat_seconds \(60\) must be shorter than install_timeout"):
        StarterSettings.model_validate(
            {
                "STATE_MACHINE_ARN": arn,
                "DEFAULT_WAIT_LIMITS": '{"heartbeat_seconds": 60, "install_timeout_seconds": 60}',
            }
        )


def test_start_rollout_an_invalid_request_is_rejected_before_asking_step_functions() -> None:
    class Untouchable(FakeStarter):
        def latest_attempt(self, execution_name: str) -> None:
            raise AssertionError("an invalid request reached the starter")

    request = StartRolloutRequest.model_validate({"cycle": "2026-12", "bake_seconds": {"dev": 0}})
    with pytest.raises(ValidationError, match=r"bake_seconds\.dev\n  Input should be greater than or equal to 1"):
        start_rollout(request, Untouchable(), NOW)


def test_start_rollout_of_a_failed_cycle_says_so_and_starts_nothing() -> None:
    starter = FakeStarter()
    start_rollout(StartRolloutRequest(), starter, NOW)
    starter.statuses["cycle-2026-12"] = "FAILED"
    again = start_rollout(StartRolloutRequest(), starter, NOW)
    assert (again.started, again.status, again.execution_name) == (False, "FAILED", "cycle-2026-12")
    assert list(starter.executions) == ["cycle-2026-12"]


def test_start_rollout_resume_starts_the_next_attempt_without_the_passed_stages_once() -> None:
    # Given a cycle whose first attempt passed dev and failed in staging
    starter, ledger = FakeStarter(), InMemoryRunLedger()
    start_rollout(StartRolloutRequest(bake_seconds={"dev": 5}), starter, NOW)
    starter.statuses["cycle-2026-12"] = "FAILED"
    ledger.record_stage_passed("2026-12", "dev")
    # When the operator resumes it twice
    resumed = start_rollout(StartRolloutRequest(resume=True), starter, NOW, ledger)
    again = start_rollout(StartRolloutRequest(resume=True), starter, NOW, ledger)
    # Then one new attempt runs the same run without dev, from the first attempt's start, with its settings
    assert (resumed.execution_name, resumed.started, resumed.resumed_from) == (
        "cycle-2026-12-r2",
        True,
        "cycle-2026-12",
    )
    assert resumed.skipped_stages == ["dev"]
    assert (again.execution_name, again.started, again.status) == ("cycle-2026-12-r2", False, "RUNNING")
    attempt = RolloutRequest.model_validate_json(starter.executions["cycle-2026-12-r2"])
    assert (attempt.run_id, attempt.completed_stages, attempt.bake_seconds) == ("2026-12", ["dev"], {"dev": 5})
    assert attempt.run_started_at == datetime(2026, 12, 8, 20, 0, tzinfo=UTC)


def test_start_rollout_resume_of_a_cycle_never_started_is_refused() -> None:
    with pytest.raises(NothingToResume, match="no execution"):
        start_rollout(StartRolloutRequest(cycle="2026-11", resume=True), FakeStarter(), NOW, InMemoryRunLedger())


def test_plan_rollout_skips_completed_stages_but_validates_the_order_with_them() -> None:
    request = RolloutRequest(run_id="2026-12", completed_stages=["dev", "staging"], run_started_at=NOW)
    plan = plan_rollout(request, CATALOG, NOW.replace(day=20))
    assert [stage.name for stage in plan.stages] == [s.name for s in CATALOG.stages if s.name not in ("dev", "staging")]
    assert plan.stages[0].index == 0
    assert plan.run.started_at == NOW


def test_start_rollout_emergency_names_follow_the_request() -> None:
    starter = FakeStarter()
    a = start_rollout(StartRolloutRequest(mode="emergency", patch_ids=["KB1"]), starter, NOW)
    b = start_rollout(StartRolloutRequest(mode="emergency", patch_ids=["KB1"]), starter, NOW)
    c = start_rollout(StartRolloutRequest(mode="emergency", patch_ids=["KB2"]), starter, NOW)
    assert a.execution_name == b.execution_name != c.execution_name
    assert (a.started, b.started, c.started) == (True, False, True)


@pytest.mark.parametrize(
    ("platform", "expected"),
    [
        (("Windows", "Microsoft Windows Server 2022 Datacenter", "10.0"), "WINDOWS"),
        (("Linux", "Amazon Linux", "2023"), "AMAZON_LINUX_2023"),
        (("Linux", "Amazon Linux", "2"), "AMAZON_LINUX_2"),
        (("Linux", "Ubuntu", "22.04"), "UBUNTU"),
        (("Linux", "Red Hat Enterprise Linux", "9.4"), "REDHAT_ENTERPRISE_LINUX"),
        (("Linux", "CentOS Stream", "9"), "CENTOS"),
        (("Linux", "Rocky Linux", "9.4"), "ROCKY_LINUX"),
        (("Linux", "AlmaLinux", "9.4"), "ALMA_LINUX"),
        (("MacOS", "macOS", "14"), "UNKNOWN"),
    ],
)
def test_operating_system_of_maps_ssm_platforms(platform: tuple[str, str, str], expected: str) -> None:
    assert operating_system_of(*platform) == expected


def test_verify_stage_health_healthy_verdict_carries_no_instance_samples() -> None:
    directory = _directory("dev", 30)
    ids = [i.instance_id for i in directory.fleet[("PatchGroup", "dev")]]
    verdict = _verify(0, directory, _tracked(ids, failed={ids[0]}))
    assert (verdict.healthy, verdict.unhealthy, verdict.allowed_failures) == (True, 1, 3)
    assert (verdict.unhealthy_sample, verdict.healthy_sample) == ([], [])


def test_verify_stage_health_an_os_whose_baseline_approves_nothing_is_not_healthy() -> None:
    # Every command succeeds, but no instance reports a single approved patch (e.g. repos without updateinfo.xml)
    directory = _directory("dev", 4)
    ids = [i.instance_id for i in directory.fleet[("PatchGroup", "dev")]]
    compliance = FakeCompliance()
    compliance.installed = dict.fromkeys(ids, 0)
    verdict = _verify(0, directory, _tracked(ids, failed=set()), compliance=compliance)
    assert verdict.reasons == {"approves_nothing": 4}
    assert (verdict.unhealthy, verdict.healthy) == (4, False)
    assert all(r.reasons == ["approves_nothing"] for r in verdict.unhealthy_sample)


def test_verify_stage_health_an_install_that_left_approved_patches_missing_is_not_healthy() -> None:
    directory = _directory("dev", 4)
    ids = [i.instance_id for i in directory.fleet[("PatchGroup", "dev")]]
    compliance = FakeCompliance()
    compliance.missing = {ids[0]: 3, ids[1]: 2}
    verdict = _verify(0, directory, _tracked(ids, failed=set()), compliance=compliance)
    assert verdict.reasons == {"approved_patches_missing": 2}
    assert verdict.healthy is False


def test_verify_stage_health_production_expects_patches_beyond_its_install_list_to_stay_missing() -> None:
    directory = _directory("prod-1", 4)
    ids = [i.instance_id for i in directory.fleet[("PatchGroup", "prod-1")]]
    compliance = FakeCompliance()
    compliance.missing = dict.fromkeys(ids, 2)
    verdict = _verify(2, directory, _tracked(ids, failed=set()), compliance=compliance)
    assert (verdict.reasons, verdict.healthy) == ({}, True)
    compliance.installed = dict.fromkeys(ids, 0)
    compliance.missing = {}
    silent = _verify(2, directory, _tracked(ids, failed=set()), compliance=compliance)
    assert (silent.reasons, silent.healthy) == ({"approves_nothing": 4}, False)


def test_record_stage_passed_on_an_os_without_installed_time_freezes_what_the_instance_runs_with() -> None:
    # Ubuntu-like rows without InstalledTime: the frozen set must not come out empty for that OS
    plan = _plan()
    tracker = _tracked(["i-a"], failed=set())
    rows = [
        InstancePatch(
            instance_id="i-a",
            patch_id=pid,
            title=f"{pid}:1.0",
            classification="Security",
            severity="Important",
            state=PatchState.INSTALLED,
            installed_time=None,
        )
        for pid in ("libc6.amd64", "sudo.amd64")
    ]
    patch_sets = FakePatchSets()
    verdict = StageVerdict(
        stage_name="staging", phase_set="verify", healthy=True, targeted=1, unhealthy=0, allowed_failures=0, reasons={}
    )
    outcome = record_stage_passed(
        RecordStageRequest(
            run=plan.run,
            stage=plan.stages[1],
            verdict=verdict,
            results=[CommandResultRef(phase="install", command_id="install-1")],
        ),
        tracker,
        FakePatchInventory({"i-a": rows}),
        patch_sets,
        InMemoryExclusionLedger(),
    )
    assert outcome.frozen_patch_count == 2
    assert [p.patch_id for p in patch_sets.frozen["2026-12"]] == ["libc6.amd64", "sudo.amd64"]


def test_record_stage_passed_keeps_each_distributions_version_of_a_shared_package_id() -> None:
    plan = _plan()
    tracker = _tracked(["i-a", "i-b"], failed=set())

    def glibc(instance_id: str, version: str) -> InstancePatch:
        return InstancePatch(
            instance_id=instance_id,
            patch_id="glibc.x86_64",
            title=f"glibc.x86_64:{version}",
            classification="Security",
            severity="Medium",
            state=PatchState.INSTALLED,
            installed_time=NOW,
        )

    inventory = FakePatchInventory(
        {"i-a": [glibc("i-a", "0:2.34-117.amzn2023.0.1")], "i-b": [glibc("i-b", "0:2.34-100.el9_4.4")]}
    )
    patch_sets = FakePatchSets()
    verdict = StageVerdict(
        stage_name="staging", phase_set="verify", healthy=True, targeted=2, unhealthy=0, allowed_failures=0, reasons={}
    )
    request = RecordStageRequest(
        run=plan.run,
        stage=plan.stages[1],
        verdict=verdict,
        results=[CommandResultRef(phase="install", command_id="install-1")],
    )
    outcome = record_stage_passed(request, tracker, inventory, patch_sets, InMemoryExclusionLedger())
    assert outcome.frozen_patch_count == 2
    assert sorted(p.title for p in patch_sets.frozen["2026-12"]) == [
        "glibc.x86_64:0:2.34-100.el9_4.4",
        "glibc.x86_64:0:2.34-117.amzn2023.0.1",
    ]


def test_verify_stage_health_an_os_approving_nothing_fails_the_stage_within_the_error_budget() -> None:
    directory = _directory("dev", 20)  # dev tolerates 10 %: 2 instances
    rhel = ManagedInstance(
        instance_id=f"i-{99:017x}",
        ping_status="Online",
        platform_type="Linux",
        platform_name="Red Hat Enterprise Linux",
        platform_version="9.4",
    )
    directory.fleet[("PatchGroup", "dev")].append(rhel)
    ids = [i.instance_id for i in directory.fleet[("PatchGroup", "dev")]]
    compliance = FakeCompliance()
    compliance.installed = {rhel.instance_id: 0}
    verdict = _verify(0, directory, _tracked(ids, failed=set()), compliance=compliance)
    assert (verdict.reasons, verdict.unhealthy, verdict.allowed_failures) == ({"approves_nothing": 1}, 1, 2)
    assert verdict.healthy is False
    assert [(r.instance_id, r.platform) for r in verdict.unhealthy_sample] == [
        (rhel.instance_id, "REDHAT_ENTERPRISE_LINUX")
    ]
