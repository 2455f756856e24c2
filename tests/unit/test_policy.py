"""The patch policy model: the repository's policy is valid; bad input fails naming the field and allowed values."""

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from patchpilot.models.policy import CLASSIFICATIONS, SEVERITIES, PatchPolicy
from patchpilot.models.rollout import HealthCheck, StageCatalog
from patchpilot_cli.policy_render import POLICY_PATH, PolicyError, load_policy, stage_catalog

RAW: dict[str, Any] = yaml.safe_load(POLICY_PATH.read_text())


def _raw() -> dict[str, Any]:
    return copy.deepcopy(RAW)


def _error(raw: dict[str, Any]) -> str:
    with pytest.raises(ValidationError, match=r"^1 validation error for PatchPolicy\n") as caught:
        PatchPolicy.model_validate(raw)
    return str(caught.value)


def test_policy_repository_file_is_valid() -> None:
    policy = load_policy()
    assert set(policy.environments) == {"dev", "test", "staging", "prod", "emergency"}
    assert set(policy.patch_groups) == {"dev", "staging", "prod-1", "prod-2", "prod-3"}
    assert policy.groups_of("prod") == ["prod-1", "prod-2", "prod-3"]


def test_policy_unknown_classification_names_field_and_allowed_values() -> None:
    raw = _raw()
    raw["environments"]["prod"]["rules"]["AMAZON_LINUX_2"][0]["classifications"] = ["Security", "Hotfix"]
    message = _error(raw)
    assert "environments.prod.rules.AMAZON_LINUX_2[0].classifications" in message
    assert "'Hotfix'" in message
    assert ", ".join(CLASSIFICATIONS["AMAZON_LINUX_2"]) in message


def test_policy_windows_classification_is_not_valid_on_linux() -> None:
    raw = _raw()
    raw["environments"]["dev"]["rules"]["CENTOS"][0]["classifications"] = ["SecurityUpdates"]
    assert "environments.dev.rules.CENTOS[0].classifications: 'SecurityUpdates' not allowed for CENTOS" in _error(raw)


def test_policy_unknown_severity_names_field_and_allowed_values() -> None:
    raw = _raw()
    raw["environments"]["prod"]["rules"]["WINDOWS"][1]["severities"] = ["Important", "Severe"]
    message = _error(raw)
    assert "environments.prod.rules.WINDOWS[1].severities: 'Severe' not allowed for WINDOWS" in message
    assert ", ".join(SEVERITIES["WINDOWS"]) in message


def test_policy_ubuntu_rejects_classifications_and_requires_priorities() -> None:
    raw = _raw()
    raw["environments"]["prod"]["rules"]["UBUNTU"][0] = {"classifications": ["Security"], "sections": ["*"]}
    message = _error(raw)
    assert "rules.UBUNTU[0].classifications: 'Security' not allowed for UBUNTU" in message
    assert "rules.UBUNTU[0].priorities: required for UBUNTU; allowed values: Required, Important, Standard" in message


def test_policy_unknown_os_lists_allowed_operating_systems() -> None:
    raw = _raw()
    raw["operating_systems"].append("SOLARIS")
    message = _error(raw)
    assert "operating_systems.8" in message
    assert "'WINDOWS'" in message
    assert "'CENTOS'" in message
    assert "'ROCKY_LINUX'" in message
    assert "'ALMA_LINUX'" in message


def test_policy_unknown_os_in_rules_is_rejected() -> None:
    raw = _raw()
    raw["environments"]["dev"]["rules"]["DEBIAN"] = [{"priorities": ["Required"]}]
    assert "environments.dev.rules.DEBIAN" in _error(raw)


def test_policy_negative_approval_delay_is_rejected() -> None:
    raw = _raw()
    raw["environments"]["staging"]["approve_after_days"] = -1
    message = _error(raw)
    assert "environments.staging.approve_after_days" in message
    assert "greater than or equal to 0" in message


def test_policy_group_mapped_to_no_stage_lists_stages() -> None:
    raw = _raw()
    del raw["patch_groups"]["prod-2"]["stage"]
    message = _error(raw)
    assert "patch_groups.prod-2.stage: None is not a stage" in message
    assert "allowed values: dev, staging, prod-1, prod-2, prod-3" in message


def test_policy_group_mapped_to_unknown_stage_is_rejected() -> None:
    raw = _raw()
    raw["patch_groups"]["prod-3"]["stage"] = "prod-9"
    assert "patch_groups.prod-3.stage: 'prod-9' is not a stage" in _error(raw)


def test_policy_environment_must_cover_every_os() -> None:
    raw = _raw()
    del raw["environments"]["test"]["rules"]["UBUNTU"]
    assert "environments.test: no rules and no approved_patches for UBUNTU" in _error(raw)


def test_policy_default_group_must_exist() -> None:
    raw = _raw()
    raw["default_patch_group"] = "qa"
    assert "default_patch_group: 'qa' is not a patch group" in _error(raw)


def test_policy_window_cutoff_must_leave_time_to_run() -> None:
    raw = _raw()
    raw["stages"]["dev"]["window"] |= {"duration_hours": 2, "cutoff_hours": 2}
    assert "cutoff_hours (2) must be less than duration_hours (2)" in _error(raw)


def test_policy_load_reports_the_file_and_the_problem(tmp_path: Path) -> None:
    raw = _raw()
    raw["environments"]["prod"]["approve_after_days"] = -7
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(PolicyError, match=r"policy.yaml is not a valid patch policy(.|\n)*approve_after_days"):
        load_policy(path)


def test_policy_ubuntu_must_enable_non_security_where_the_environment_wants_bug_fixes() -> None:
    raw = _raw()
    for rule in raw["environments"]["dev"]["rules"]["UBUNTU"]:
        rule.pop("enable_non_security", None)
    message = _error(raw)
    assert "environments.dev.rules.UBUNTU: other OSes enable non-security updates" in message
    assert "*-security pocket" in message


def test_policy_first_window_must_still_take_installs_when_the_rollout_starts() -> None:
    raw = _raw()
    raw["stages"]["dev"]["window"] = {"patch_tuesday_offset_days": 0, "start_hour_utc": 18, "duration_hours": 2}
    message = _error(raw)
    assert "stages.dev.window" in message
    assert "next month's window" in message


@pytest.mark.parametrize(("field", "value"), [("install_minutes", 2), ("change_calendar", "no spaces allowed")])
def test_policy_rejects_bad_install_minutes_and_calendar_names(field: str, value: object) -> None:
    raw = _raw()
    if field == "install_minutes":
        raw["stages"]["prod-1"][field] = value
    else:
        raw[field] = value
    assert field in _error(raw)


def test_policy_renders_each_stage_window_and_calendar_into_the_catalog() -> None:
    raw = _raw()
    raw["change_calendar"] = "patchpilot-change-freeze"
    catalog = stage_catalog(PatchPolicy.model_validate(raw)).by_name()
    staging = catalog["staging"]
    assert staging.window is not None
    assert staging.window.model_dump() == {
        "schedule": "cron(0 3 ? * TUE#2 *)",
        "schedule_offset_days": 3,
        "duration_hours": 4,
        "cutoff_hours": 1,
    }
    assert staging.change_calendar == "patchpilot-change-freeze"
    assert catalog["prod-3"].window is not None
    assert catalog["prod-3"].window.schedule == "cron(0 3 ? * TUE#3 *)"


def test_policy_health_checks_per_document_fail_with_how_to_write_the_cross_platform_check() -> None:
    raw = _raw()
    raw["stages"]["dev"]["health_check"] = {"document_name": "AWS-RunShellScript", "commands": ["curl -f :8080"]}
    raw["stages"]["dev"]["windows_health_check"] = {"document_name": "AWS-RunPowerShellScript", "commands": ["exit 0"]}
    message = _error(raw)
    assert "stages.dev: health checks are one cross-platform check now" in message
    assert "stages.dev.health_check.commands (AWS-RunShellScript) -> stages.dev.health_check.linux_commands" in message
    assert "stages.dev.windows_health_check.commands (AWS-RunPowerShellScript) -> " in message
    assert "stages.dev.health_check.windows_commands" in message


def test_policy_health_check_needs_commands_for_some_platform() -> None:
    raw = _raw()
    raw["stages"]["dev"]["health_check"] = {"timeout_seconds": 60}
    assert "a health check needs linux_commands, windows_commands or both" in _error(raw)
    raw["stages"]["dev"]["health_check"] = {"linux_commands": ["curl -f :8080", "  "]}
    assert "empty health check command(s): linux_commands[1]" in _error(raw)


def test_policy_health_check_renders_both_platforms_into_one_catalog_check() -> None:
    raw = _raw()
    check = {"linux_commands": ["curl -f :8080"], "windows_commands": ["Test-NetConnection -Port 443"]}
    raw["stages"]["staging"]["health_check"] = {**check, "timeout_seconds": 300}
    staging = stage_catalog(PatchPolicy.model_validate(raw)).by_name()["staging"]
    assert staging.health_check is not None
    assert staging.health_check.parameters() == {
        "executionTimeout": ["300"],
        "linuxCommands": ["curl -f :8080"],
        "windowsCommands": ["Test-NetConnection -Port 443"],
    }


def test_stage_catalog_of_an_earlier_release_reads_its_per_document_checks_as_one() -> None:
    # stage plans of executions started before the upgrade carry the old shape: a deploy mid-cycle must not fail them
    catalog = stage_catalog(load_policy()).model_dump(mode="json", exclude_defaults=True)
    dev = catalog["stages"][0]
    dev["health_check"] = {"document_name": "AWS-RunShellScript", "commands": ["true"], "timeout_seconds": 60}
    dev["windows_health_check"] = {"document_name": "AWS-RunPowerShellScript", "commands": ["exit 0"]}
    check = StageCatalog.model_validate(catalog).stages[0].health_check
    assert check == HealthCheck(linux_commands=["true"], windows_commands=["exit 0"], timeout_seconds=120)


def test_policy_canary_defaults_to_one_per_os_in_production_and_none_in_test_stages() -> None:
    raw = _raw()
    raw["stages"]["staging"]["canary"] = {"percent": 20}
    raw["stages"]["prod-3"]["canary"] = False
    raw["stages"]["prod-2"]["canary"] = {"per_os": 2}
    catalog = stage_catalog(PatchPolicy.model_validate(raw)).by_name()
    assert catalog["dev"].canary is None
    assert catalog["staging"].canary is not None
    assert catalog["staging"].canary.percent == 20
    assert catalog["prod-1"].canary is not None
    assert catalog["prod-1"].canary.per_os == 1
    assert catalog["prod-2"].canary is not None
    assert catalog["prod-2"].canary.per_os == 2
    assert catalog["prod-3"].canary is None


def test_policy_canary_takes_exactly_one_rule() -> None:
    raw = _raw()
    raw["stages"]["prod-1"]["canary"] = {"per_os": 1, "percent": 10}
    assert "a canary takes exactly one of per_os and percent" in _error(raw)


def test_policy_bisect_defaults_on_where_the_stage_takes_snapshots() -> None:
    raw = _raw()
    raw["stages"]["staging"]["snapshots"] = {"enabled": True, "retention_days": 3}
    raw["stages"]["prod-3"]["bisect"] = False
    raw["stages"]["prod-2"]["bisect"] = {"max_rounds": 4}
    catalog = stage_catalog(PatchPolicy.model_validate(raw)).by_name()
    assert catalog["dev"].bisect is None  # a test stage without snapshots cannot restore anything
    assert catalog["staging"].bisect is not None
    assert catalog["staging"].bisect.max_rounds == 8
    assert catalog["prod-1"].bisect is not None  # production takes snapshots by default
    assert catalog["prod-2"].bisect is not None
    assert catalog["prod-2"].bisect.max_rounds == 4
    assert catalog["prod-3"].bisect is None


@pytest.mark.parametrize("snapshots", [None, {"enabled": False}])
def test_policy_bisect_without_snapshots_is_refused_with_the_fix(snapshots: dict[str, Any] | None) -> None:
    raw = _raw()
    raw["stages"]["staging"]["bisect"] = {"max_rounds": 4}
    if snapshots is not None:
        raw["stages"]["staging"]["snapshots"] = snapshots
    assert (
        "stages.staging.bisect: bisection restores instances from their pre-patch snapshots, and this stage takes "
        "none; turn them on (snapshots: {enabled: true}) or remove bisect" in _error(raw)
    )


def test_policy_bisect_rounds_are_bounded() -> None:
    raw = _raw()
    raw["stages"]["prod-1"]["bisect"] = {"max_rounds": 40}
    assert "max_rounds: Input should be less than or equal to 12" in _error(raw)
