from datetime import datetime

from patchpilot.logic.silent_patching import approved_count, silent_patching_reasons
from patchpilot.models.patches import InstancePatchSummary


def _summary(instance_id: str, installed: int = 0, missing: int = 0, other: int = 5) -> InstancePatchSummary:
    return InstancePatchSummary(
        instance_id=instance_id,
        patch_group="dev",
        baseline_id="pb-0123456789abcdef0",
        operation="Scan",
        operation_end_time=datetime(2026, 12, 8, 20),
        installed=installed,
        installed_other=other,
        installed_pending_reboot=0,
        installed_rejected=0,
        missing=missing,
        failed=0,
        not_applicable=3,
    )


def test_silent_patching_approved_count_leaves_out_installed_other_and_not_applicable() -> None:
    assert approved_count(_summary("i-1", installed=2, missing=1)) == 3
    assert approved_count(_summary("i-1")) == 0


def test_silent_patching_flags_only_the_os_none_of_whose_instances_has_an_approved_patch() -> None:
    systems = {"i-1": "REDHAT_ENTERPRISE_LINUX", "i-2": "REDHAT_ENTERPRISE_LINUX", "i-3": "AMAZON_LINUX_2023"}
    summaries = [_summary("i-1"), _summary("i-2"), _summary("i-3", installed=4)]
    assert silent_patching_reasons(systems, summaries, True, ["i-1", "i-2", "i-3"]) == {
        "i-1": ["approves_nothing"],
        "i-2": ["approves_nothing"],
    }


def test_silent_patching_one_instance_with_approved_patches_clears_its_os() -> None:
    systems = {"i-1": "CENTOS", "i-2": "CENTOS"}
    summaries = [_summary("i-1"), _summary("i-2", installed=1)]
    assert silent_patching_reasons(systems, summaries, True, ["i-1", "i-2"]) == {}


def test_silent_patching_missing_after_a_failed_install_is_not_silent() -> None:
    systems = {"i-1": "UBUNTU", "i-2": "UBUNTU"}
    summaries = [_summary("i-1", installed=1, missing=2), _summary("i-2", installed=1, missing=2)]
    assert silent_patching_reasons(systems, summaries, True, ["i-2"]) == {"i-2": ["approved_patches_missing"]}


def test_silent_patching_installs_from_a_list_expect_other_approved_patches_to_stay_missing() -> None:
    # production (InstallOverrideList) and emergency runs (BaselineOverride) install a list, not the baseline
    systems = {"i-1": "WINDOWS"}
    summaries = [_summary("i-1", installed=1, missing=4)]
    assert silent_patching_reasons(systems, summaries, False, ["i-1"]) == {}
    assert silent_patching_reasons(systems, [_summary("i-1")], False, ["i-1"]) == {"i-1": ["approves_nothing"]}
