"""The rendered policy in template.yaml: in sync with the policy file, prod/dev rules per OS, BLOCK everywhere."""

import json
from typing import Any

import pytest

from patchpilot.models.cycle import StartRolloutRequest
from patchpilot.models.policy import CLASSIFICATIONS, UBUNTU_PRIORITIES
from patchpilot.models.rollout import StageCatalog
from patchpilot_cli.policy_render import (
    BEGIN_MARKER,
    END_MARKER,
    TEMPLATE_PATH,
    PolicyError,
    baseline_logical_id,
    generated_section,
    load_policy,
    render_block,
    splice,
    window_schedule,
)
from patchpilot_sim.template import SamTemplate

POLICY = load_policy()
TEMPLATE = SamTemplate()
BASELINES = TEMPLATE.of_type("AWS::SSM::PatchBaseline")
NON_UBUNTU = [os_name for os_name in POLICY.operating_systems if os_name != "UBUNTU"]


def _props(environment: str, os_name: str) -> dict[str, Any]:
    props: dict[str, Any] = BASELINES[baseline_logical_id(environment, os_name)]["Properties"]
    return props


def _filters(rule: dict[str, Any]) -> dict[str, list[str]]:
    return {f["Key"]: f["Values"] for f in rule["PatchFilterGroup"]["PatchFilters"]}


def test_baselines_template_is_in_sync_with_the_policy() -> None:
    assert generated_section(TEMPLATE_PATH.read_text()) == render_block(POLICY), "run `make baselines`"


def test_baselines_one_per_environment_and_os() -> None:
    assert len(BASELINES) == len(POLICY.environments) * len(POLICY.operating_systems) == 40
    assert {props["Properties"]["OperatingSystem"] for props in BASELINES.values()} == set(POLICY.operating_systems)


def test_baselines_block_rejected_patches_everywhere() -> None:
    assert {lid: r["Properties"]["RejectedPatchesAction"] for lid, r in BASELINES.items()} == dict.fromkeys(
        BASELINES, "BLOCK"
    )


@pytest.mark.parametrize("os_name", NON_UBUNTU)
def test_baselines_prod_is_security_only_critical_important_after_7_days(os_name: str) -> None:
    rules = _props("prod", os_name)["ApprovalRules"]["PatchRules"]
    security = {"SecurityUpdates", "CriticalUpdates"} if os_name == "WINDOWS" else {"Security"}
    severity_key = "MSRC_SEVERITY" if os_name == "WINDOWS" else "SEVERITY"
    assert rules
    for rule in rules:
        filters = _filters(rule)
        assert set(filters["CLASSIFICATION"]) <= security
        assert set(filters[severity_key]) <= {"Critical", "Important"}
        assert rule["ApproveAfterDays"] == 7
        assert rule.get("EnableNonSecurity", False) is False
    assert {s for rule in rules for s in _filters(rule)[severity_key]} == {"Critical", "Important"}
    assert {(tuple(_filters(r)[severity_key]), r["ComplianceLevel"]) for r in rules} == {
        (("Critical",), "CRITICAL"),
        (("Important",), "HIGH"),
    }


def test_baselines_prod_ubuntu_uses_priority_filters_without_approval_delay() -> None:
    rules = _props("prod", "UBUNTU")["ApprovalRules"]["PatchRules"]
    assert {p for rule in rules for p in _filters(rule)["PRIORITY"]} == {"Required", "Important"}
    assert all("ApproveAfterDays" not in rule and "ApproveUntilDate" not in rule for rule in rules)
    assert all("CLASSIFICATION" not in _filters(rule) for rule in rules)


@pytest.mark.parametrize("os_name", POLICY.operating_systems)
def test_baselines_dev_approves_every_classification_at_once(os_name: str) -> None:
    rules = _props("dev", os_name)["ApprovalRules"]["PatchRules"]
    if os_name == "UBUNTU":
        assert {p for rule in rules for p in _filters(rule)["PRIORITY"]} == set(UBUNTU_PRIORITIES)
        assert all("ApproveAfterDays" not in rule for rule in rules)
        return
    assert {c for rule in rules for c in _filters(rule)["CLASSIFICATION"]} == set(CLASSIFICATIONS[os_name])
    assert all(rule["ApproveAfterDays"] == 0 for rule in rules)
    assert all("SEVERITY" not in _filters(rule) and "MSRC_SEVERITY" not in _filters(rule) for rule in rules)
    if os_name != "WINDOWS":
        assert all(rule["EnableNonSecurity"] is True for rule in rules)


@pytest.mark.parametrize("os_name", POLICY.operating_systems)
def test_baselines_emergency_has_only_an_explicit_patch_list(os_name: str) -> None:
    props = _props("emergency", os_name)
    assert "ApprovalRules" not in props
    assert props["ApprovedPatches"]
    assert "PatchGroups" not in props


def test_baselines_staging_holds_linux_kernel_updates() -> None:
    assert "kernel*" in _props("staging", "AMAZON_LINUX_2023")["RejectedPatches"]
    assert "linux-image-aws" in _props("staging", "UBUNTU")["RejectedPatches"]
    assert "RejectedPatches" not in _props("prod", "AMAZON_LINUX_2023")


def test_baselines_each_group_has_exactly_one_baseline_per_os_of_its_environment() -> None:
    registered: dict[tuple[str, str], list[str]] = {}
    for logical_id, resource in BASELINES.items():
        for group in resource["Properties"].get("PatchGroups", []):
            registered.setdefault((group, resource["Properties"]["OperatingSystem"]), []).append(logical_id)
    expected = {
        (group, os_name): [baseline_logical_id(spec.environment, os_name)]
        for group, spec in POLICY.patch_groups.items()
        for os_name in POLICY.operating_systems
    }
    assert registered == expected


@pytest.mark.parametrize(("offset", "cron", "schedule_offset"), [(0, "TUE#2", 0), (3, "TUE#2", 3), (9, "TUE#3", 2)])
def test_baselines_window_schedule_is_patch_tuesday_plus_offset(offset: int, cron: str, schedule_offset: int) -> None:
    assert window_schedule(offset, 3) == (f"cron(0 3 ? * {cron} *)", schedule_offset)


def test_baselines_every_group_has_a_window_targeting_its_tag_with_a_scan_task() -> None:
    windows = TEMPLATE.of_type("AWS::SSM::MaintenanceWindow")
    targets = TEMPLATE.of_type("AWS::SSM::MaintenanceWindowTarget")
    tasks = TEMPLATE.of_type("AWS::SSM::MaintenanceWindowTask")
    assert len(windows) == len(targets) == len(tasks) == len(POLICY.patch_groups)
    assert sorted(t["Properties"]["Targets"][0]["Values"][0] for t in targets.values()) == sorted(POLICY.patch_groups)
    assert all(t["Properties"]["Targets"][0]["Key"] == {"Fn::Sub": "tag:${PatchGroupTagKey}"} for t in targets.values())
    for task in tasks.values():
        props = task["Properties"]
        assert props["TaskArn"] == "AWS-RunPatchBaseline"
        assert props["TaskInvocationParameters"]["MaintenanceWindowRunCommandParameters"]["Parameters"] == {
            "Operation": ["Scan"]
        }
    prod_2 = windows["MaintenanceWindowProd2"]["Properties"]
    assert (prod_2["Schedule"], prod_2["ScheduleOffset"]) == ("cron(0 3 ? * TUE#3 *)", 2)


def test_baselines_daily_scan_association_covers_every_managed_instance() -> None:
    (association,) = TEMPLATE.of_type("AWS::SSM::Association").values()
    props = association["Properties"]
    assert (props["Name"], props["Parameters"], props["Targets"]) == (
        "AWS-RunPatchBaseline",
        {"Operation": ["Scan"]},
        [{"Key": "InstanceIds", "Values": ["*"]}],
    )


def test_baselines_monthly_schedule_starts_the_cycle_through_the_idempotent_starter() -> None:
    (schedule,) = TEMPLATE.of_type("AWS::Scheduler::Schedule").values()
    target = schedule["Properties"]["Target"]
    assert target["Arn"] == {"Fn::GetAtt": ["StartRolloutFunction", "Arn"]}
    assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": ["EventsDeadLetterQueue", "Arn"]}
    assert StartRolloutRequest.model_validate(json.loads(target["Input"])).mode == "scheduled"
    role = TEMPLATE.resources["MonthlyRolloutScheduleRole"]["Properties"]
    actions = {s["Action"] for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]}
    assert actions == {"lambda:InvokeFunction", "sqs:SendMessage"}


def test_baselines_stage_catalog_follows_the_policy_stages_and_environments() -> None:
    value = TEMPLATE.resources["StageCatalogParameter"]["Properties"]["Value"]
    catalog = StageCatalog.model_validate_json(value)
    assert [s.name for s in catalog.stages] == list(POLICY.stages)
    roles = {s.name: s.role for s in catalog.stages}
    assert roles == {
        "dev": "test",
        "staging": "test",
        "prod-1": "production",
        "prod-2": "production",
        "prod-3": "production",
    }
    prod = catalog.by_name()["prod-1"]
    assert prod.requires_approval
    assert set(prod.eligible_severities) >= {"Critical", "Important"}
    assert "Bugfix" not in prod.eligible_classifications
    assert catalog.by_name()["dev"].eligible_classifications == []


def test_baselines_default_patch_group_parameter_matches_the_policy() -> None:
    assert TEMPLATE.parameters["DefaultPatchGroup"] == POLICY.default_patch_group


def test_baselines_splice_rewrites_only_between_the_markers() -> None:
    text = f"head: 1\n{BEGIN_MARKER}\n  Old: x\n{END_MARKER}\n\ntail: 2\n"
    assert splice(text, "  New: y\n") == f"head: 1\n{BEGIN_MARKER}\n  New: y\n{END_MARKER}\n\ntail: 2\n"


@pytest.mark.parametrize(
    "text", ["no markers\n", f"{END_MARKER}\n{BEGIN_MARKER}\n", f"{BEGIN_MARKER}\n{BEGIN_MARKER}\n"]
)
def test_baselines_splice_refuses_missing_or_misordered_markers(text: str) -> None:
    with pytest.raises(PolicyError, match="marker"):
        splice(text, "  New: y\n")


def test_baselines_registration_function_is_wired_to_running_events_and_the_dead_letter_queue() -> None:
    spec = TEMPLATE.functions()["InstanceRegistrationFunction"]
    assert spec.handler == "patchpilot.handlers.register_instance.handler"
    assert spec.environment["DEFAULT_PATCH_GROUP"] == {"Ref": "DefaultPatchGroup"}
    (rule,) = spec.rules
    assert rule.pattern["detail"] == {"state": ["running"]}
    assert rule.dead_letter_logical_id == spec.async_on_failure_logical_id == "EventsDeadLetterQueue"
    log_group = TEMPLATE.resources["InstanceRegistrationLogGroup"]["Properties"]
    assert log_group["LogGroupName"] == {"Fn::Sub": "/aws/lambda/${InstanceRegistrationFunction}"}
    policy = TEMPLATE.resources["EventsDeadLetterQueuePolicy"]["Properties"]["PolicyDocument"]
    sources = policy["Statement"][0]["Condition"]["ArnEquals"]["aws:SourceArn"]
    assert {"Fn::GetAtt": ["InstanceRegistrationFunctionEc2InstanceRunning", "Arn"]} in sources


@pytest.mark.parametrize(
    ("environment", "enabled"), [("dev", True), ("test", True), ("staging", True), ("prod", False)]
)
def test_baselines_ubuntu_rules_enable_non_security_where_the_environment_wants_bug_fixes(
    environment: str, enabled: bool
) -> None:
    rules = _props(environment, "UBUNTU")["ApprovalRules"]["PatchRules"]
    assert all("EnableNonSecurity" in rule for rule in rules)
    assert any(rule["EnableNonSecurity"] for rule in rules) is enabled
