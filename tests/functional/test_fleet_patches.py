"""The simulated fleet's patch level: Install/Scan/health commands and the patch-state APIs, driven directly."""

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import boto3
import pytest
from botocore.loaders import Loader
from moto import mock_aws

from patchpilot_cli.policy_render import load_policy, render_resources
from patchpilot_sim import patches as pm
from patchpilot_sim.clock import Scheduler, SimClock
from patchpilot_sim.fleet import SimulatedApiError, SimulatedInstance, SsmAgentSimulator
from patchpilot_sim.scenarios import SCENARIOS, apply_scenario, build_fleet, group_sizes, groups_from

AL2023 = "AMAZON_LINUX_2023"
AL2023_APPLICABLE = {p.patch_id for p in pm.catalog_for(AL2023) if p.applicability >= 0.5}
OVERRIDE_URL = "s3://patchpilot-artifacts/runs/2026-12/install-prod-1.yaml"


@dataclass
class Fleet:
    sim: SsmAgentSimulator
    events: list[dict[str, Any]]
    objects: dict[str, str] = field(default_factory=dict)

    def add(self, instance_id: str, platform: str = AL2023, group: str = "dev") -> SimulatedInstance:
        instance = SimulatedInstance(
            instance_id=instance_id,
            patch_group=group,
            platform=platform,
            tags={"PatchGroup": group, "Name": instance_id},
            install_minutes=20.0,
        )
        self.sim.add_instance(instance)
        return instance

    def run(self, instance_ids: list[str], document: str = "AWS-RunPatchBaseline", **parameters: str) -> str:
        """Send a command, wait until every invocation ended; returns the command id."""
        command = self.sim.handle(
            "SendCommand",
            {
                "InstanceIds": instance_ids,
                "DocumentName": document,
                "Parameters": {k: [v] for k, v in parameters.items()},
            },
        )["Command"]
        assert self.sim.clock.run_until(lambda: not self.sim.busy()), "the simulated command did not finish"
        return str(command["CommandId"])

    def status(self, command_id: str, instance_id: str) -> str:
        invocation = self.sim.handle("GetCommandInvocation", {"CommandId": command_id, "InstanceId": instance_id})
        return str(invocation["Status"])

    def patches(self, instance_id: str, **filters: list[str]) -> dict[str, str]:
        params: dict[str, Any] = {"InstanceId": instance_id}
        if filters:
            params["Filters"] = [{"Key": key, "Values": values} for key, values in filters.items()]
        rows = self.sim.handle("DescribeInstancePatches", params)["Patches"]
        return {row["KBId"]: row["State"] for row in rows}

    def state(self, instance_id: str) -> dict[str, Any]:
        rows = self.sim.handle("DescribeInstancePatchStates", {"InstanceIds": [instance_id]})["InstancePatchStates"]
        assert len(rows) == 1
        return dict(rows[0])


@pytest.fixture
def fleet() -> Iterator[Fleet]:
    clock = SimClock()
    scheduler = Scheduler(clock)
    events: list[dict[str, Any]] = []
    objects: dict[str, str] = {}
    sim = SsmAgentSimulator(clock, scheduler, events.append, "us-east-1", seed=3, fetch_object=objects.__getitem__)
    yield Fleet(sim, events, objects)
    scheduler.stop()
    assert not scheduler.errors


def _error(call: Callable[[], object]) -> str:
    with pytest.raises(SimulatedApiError, match=r"^[A-Za-z]+: \S") as caught:
        call()
    return caught.value.code


# -- Install ---------------------------------------------------------------------------------------------------------
def test_install_installs_every_missing_patch(fleet: Fleet) -> None:
    fleet.add("i-0000000000000000a")
    assert fleet.sim.installed_patches("i-0000000000000000a") == set()
    command_id = fleet.run(["i-0000000000000000a"], Operation="Install")
    assert fleet.status(command_id, "i-0000000000000000a") == "Success"
    assert fleet.sim.installed_patches("i-0000000000000000a") == AL2023_APPLICABLE
    assert set(fleet.patches("i-0000000000000000a", State=["Installed"])) == AL2023_APPLICABLE
    assert fleet.patches("i-0000000000000000a", State=["Missing"]) == {}
    statuses = [e["detail"]["status"] for e in fleet.events if e["detail-type"].startswith("EC2 Command Invocation")]
    assert statuses == ["InProgress", "Success"]


def test_install_override_list_installs_only_listed_missing_patches(fleet: Fleet) -> None:
    fleet.add("i-0000000000000000a")
    fleet.objects[OVERRIDE_URL] = (
        "patches:\n"
        "  - id: 'openssl-libs.x86_64'\n"
        "    title: 'openssl-libs.x86_64:1:3.0.8-1.amzn2023.0.18'\n"
        "  - id: 'curl.x86_64'\n"
        "    title: '*:7.*'\n"  # an older version than the catalog's: not selected
        "  - id: 'KB5071546'\n"  # not a patch of this OS
        "    title: 'it''s Windows'\n"
    )
    fleet.run(["i-0000000000000000a"], Operation="Install", InstallOverrideList=OVERRIDE_URL)
    assert fleet.sim.installed_patches("i-0000000000000000a") == {"openssl-libs.x86_64"}
    assert fleet.state("i-0000000000000000a")["InstallOverrideList"] == OVERRIDE_URL


def test_install_override_list_wildcard_ids_and_windows_kb_ids(fleet: Fleet) -> None:
    fleet.add("i-0000000000000000a")
    fleet.add("i-0000000000000000b", platform="WINDOWS")
    url = "https://patchpilot-artifacts.s3.amazonaws.com/runs/2026-12/list.yaml"
    fleet.objects[url] = "patches:\n  - id: 'glibc*'\n  - id: 'KB5071595'\n    title: 'ignored on Windows'\n"
    fleet.run(["i-0000000000000000a", "i-0000000000000000b"], Operation="Install", InstallOverrideList=url)
    assert fleet.sim.installed_patches("i-0000000000000000a") == {"glibc.x86_64"}
    assert fleet.sim.installed_patches("i-0000000000000000b") == {"KB5071595"}


def test_install_override_list_unreadable_fails_the_invocation(fleet: Fleet) -> None:
    fleet.add("i-0000000000000000a")
    command_id = fleet.run(["i-0000000000000000a"], Operation="Install", InstallOverrideList="s3://nowhere/x.yaml")
    assert fleet.status(command_id, "i-0000000000000000a") == "Failed"
    assert fleet.sim.installed_patches("i-0000000000000000a") == set()


def test_install_override_list_is_read_from_s3_by_default() -> None:
    clock = SimClock()
    scheduler = Scheduler(clock)
    try:
        with mock_aws():
            s3 = boto3.session.Session(region_name="us-east-1").client("s3")
            s3.create_bucket(Bucket="patchpilot-artifacts")
            s3.put_object(Bucket="patchpilot-artifacts", Key="l.yaml", Body=b"patches:\n  - id: 'kernel.x86_64'\n")
            sim = SsmAgentSimulator(clock, scheduler, lambda _: None, "us-east-1")
            harness = Fleet(sim, [])
            harness.add("i-0000000000000000a")
            harness.run(
                ["i-0000000000000000a"], Operation="Install", InstallOverrideList="s3://patchpilot-artifacts/l.yaml"
            )
            assert sim.installed_patches("i-0000000000000000a") == {"kernel.x86_64"}
    finally:
        scheduler.stop()


def test_install_skips_rejected_patches_and_reports_them_installed_rejected(fleet: Fleet) -> None:
    fleet.add("i-0000000000000000a")
    fleet.sim.rejected_patches = lambda instance: {"kernel.x86_64"} if instance.patch_group == "dev" else set()
    command_id = fleet.run(["i-0000000000000000a"], Operation="Install")
    assert fleet.status(command_id, "i-0000000000000000a") == "Success"
    assert fleet.sim.installed_patches("i-0000000000000000a") == AL2023_APPLICABLE - {"kernel.x86_64"}
    assert "kernel.x86_64" not in fleet.patches("i-0000000000000000a")  # rejected and absent: not reported
    assert fleet.state("i-0000000000000000a")["MissingCount"] == 0

    fleet.sim.rejected_patches = lambda _: {"glibc.x86_64"}
    fleet.run(["i-0000000000000000a"], Operation="Scan")
    assert fleet.patches("i-0000000000000000a")["glibc.x86_64"] == "InstalledRejected"
    state = fleet.state("i-0000000000000000a")
    assert (state["InstalledRejectedCount"], state["MissingCount"]) == (1, 1)  # kernel is approved again


def test_install_no_reboot_leaves_patches_pending_reboot(fleet: Fleet) -> None:
    fleet.add("i-0000000000000000a")
    fleet.run(["i-0000000000000000a"], Operation="Install", RebootOption="NoReboot")
    assert set(fleet.patches("i-0000000000000000a", State=["InstalledPendingReboot"])) == AL2023_APPLICABLE
    state = fleet.state("i-0000000000000000a")
    assert state["InstalledPendingRebootCount"] == len(AL2023_APPLICABLE)
    assert state["RebootOption"] == "NoReboot"
    assert "LastNoRebootInstallOperationTime" in state
    assert fleet.sim.installed_patches("i-0000000000000000a") == AL2023_APPLICABLE  # on disk, not yet active

    fleet.run(["i-0000000000000000a"], Operation="Install")  # RebootIfNeeded: the reboot completes them
    assert fleet.patches("i-0000000000000000a", State=["InstalledPendingReboot"]) == {}
    assert fleet.state("i-0000000000000000a")["InstalledCount"] == len(AL2023_APPLICABLE)


def test_install_patch_that_fails_install_fails_the_invocation(fleet: Fleet) -> None:
    instance = fleet.add("i-0000000000000000a")
    instance.patches["curl.x86_64"].fails_install = True
    command_id = fleet.run(["i-0000000000000000a"], Operation="Install")
    assert fleet.status(command_id, "i-0000000000000000a") == "Failed"
    assert fleet.patches("i-0000000000000000a", State=["Failed"]) == {"curl.x86_64": "Failed"}
    assert fleet.sim.installed_patches("i-0000000000000000a") == AL2023_APPLICABLE - {"curl.x86_64"}
    state = fleet.state("i-0000000000000000a")
    assert (state["Operation"], state["FailedCount"], state["MissingCount"]) == ("Install", 1, 0)


def test_install_failing_instance_marks_attempted_patches_failed(fleet: Fleet) -> None:
    instance = fleet.add("i-0000000000000000a")
    instance.install_outcome = "Failed"
    command_id = fleet.run(["i-0000000000000000a"], Operation="Install")
    assert fleet.status(command_id, "i-0000000000000000a") == "Failed"
    assert fleet.sim.installed_patches("i-0000000000000000a") == set()
    assert fleet.state("i-0000000000000000a")["FailedCount"] == len(AL2023_APPLICABLE)


def test_install_flaky_instance_fails_once_then_succeeds(fleet: Fleet) -> None:
    instance = fleet.add("i-0000000000000000a")
    instance.flaky_failures_left, instance.flaky_outcome = 1, "TimedOut"
    first = fleet.run(["i-0000000000000000a"], Operation="Install")
    assert fleet.status(first, "i-0000000000000000a") == "TimedOut"
    assert fleet.sim.installed_patches("i-0000000000000000a") == set()
    assert fleet.state("i-0000000000000000a")["Operation"] == "Scan"  # a timed-out install reports nothing
    retry = fleet.run(["i-0000000000000000a"], Operation="Install")
    assert fleet.status(retry, "i-0000000000000000a") == "Success"
    assert fleet.sim.installed_patches("i-0000000000000000a") == AL2023_APPLICABLE


def test_scan_changes_nothing_but_the_operation(fleet: Fleet) -> None:
    fleet.add("i-0000000000000000a")
    before = fleet.patches("i-0000000000000000a")
    initial = fleet.state("i-0000000000000000a")
    command_id = fleet.run(["i-0000000000000000a"], Operation="Scan", InstallOverrideList=OVERRIDE_URL)
    assert fleet.status(command_id, "i-0000000000000000a") == "Success"
    assert fleet.patches("i-0000000000000000a") == before
    state = fleet.state("i-0000000000000000a")
    assert state["Operation"] == "Scan"
    assert state["OperationEndTime"] > initial["OperationEndTime"]
    assert "InstallOverrideList" not in state  # Scan ignores the list


# -- health command --------------------------------------------------------------------------------------------------
def test_patch_that_breaks_health_leaves_the_instance_unreachable(fleet: Fleet) -> None:
    broken = fleet.add("i-0000000000000000a")
    fleet.add("i-0000000000000000b")
    broken.patches["openssl-libs.x86_64"].breaks_health = True
    install = fleet.run(["i-0000000000000000a", "i-0000000000000000b"], Operation="Install")
    assert fleet.status(install, "i-0000000000000000a") == "Success"  # it installs fine
    assert broken.healthy is False
    health = fleet.run(["i-0000000000000000a", "i-0000000000000000b"], "AWS-RunShellScript", commands="curl -f :8080")
    assert fleet.status(health, "i-0000000000000000a") == "DeliveryTimedOut"
    assert fleet.status(health, "i-0000000000000000b") == "Success"
    pings = {
        i["InstanceId"]: i["PingStatus"]
        for i in fleet.sim.handle("DescribeInstanceInformation", {})["InstanceInformationList"]
    }
    assert pings == {"i-0000000000000000a": "ConnectionLost", "i-0000000000000000b": "Online"}


def test_health_command_powershell_succeeds_on_healthy_instance(fleet: Fleet) -> None:
    fleet.add("i-0000000000000000b", platform="WINDOWS")
    health = fleet.run(["i-0000000000000000b"], "AWS-RunPowerShellScript", commands="Test-NetConnection -Port 443")
    assert fleet.status(health, "i-0000000000000000b") == "Success"


def test_send_command_rejects_unknown_documents_and_missing_commands(fleet: Fleet) -> None:
    fleet.add("i-0000000000000000a")
    base = {"InstanceIds": ["i-0000000000000000a"]}
    assert _error(lambda: fleet.sim.handle("SendCommand", {**base, "DocumentName": "AWS-RunAnsible"})) == (
        "InvalidDocument"
    )
    no_commands = {**base, "DocumentName": "AWS-RunShellScript", "Parameters": {}}
    assert _error(lambda: fleet.sim.handle("SendCommand", no_commands)) == "InvalidParameters"
    bad_reboot = {**base, "DocumentName": "AWS-RunPatchBaseline", "Parameters": {"RebootOption": ["Always"]}}
    assert _error(lambda: fleet.sim.handle("SendCommand", bad_reboot)) == "InvalidParameters"


# -- DescribeInstancePatches -----------------------------------------------------------------------------------------
def test_describe_instance_patches_filters_by_state_classification_and_severity(fleet: Fleet) -> None:
    instance = fleet.add("i-0000000000000000b", platform="WINDOWS")
    instance.patches["KB5071744"].fails_install = True
    fleet.run(["i-0000000000000000b"], Operation="Install")
    assert fleet.patches("i-0000000000000000b", State=["Failed"]) == {"KB5071744": "Failed"}
    assert set(fleet.patches("i-0000000000000000b", Severity=["Critical"])) == {"KB5071546"}
    assert set(fleet.patches("i-0000000000000000b", Classification=["SecurityUpdates"], State=["Installed"])) == {
        "KB5071546",
        "KB5071595",
        "KB5071703",
    }
    assert fleet.patches("i-0000000000000000b", State=["NotApplicable"]) == {"KB5071871": "NotApplicable"}
    row = next(
        r
        for r in fleet.sim.handle("DescribeInstancePatches", {"InstanceId": "i-0000000000000000b"})["Patches"]
        if r["KBId"] == "KB5071546"
    )
    assert row["Title"].endswith("(KB5071546)")
    assert row["CVEIds"] == "CVE-2026-49112,CVE-2026-49127,CVE-2026-49140"
    assert row["InstalledTime"] == fleet.state("i-0000000000000000b")["OperationEndTime"]


def test_describe_instance_patches_pages_with_max_results(fleet: Fleet) -> None:
    fleet.add("i-0000000000000000b", platform="WINDOWS")
    seen: list[str] = []
    params: dict[str, Any] = {"InstanceId": "i-0000000000000000b", "MaxResults": 3}
    pages = 0
    while True:
        page = fleet.sim.handle("DescribeInstancePatches", params)
        assert len(page["Patches"]) <= 3
        seen.extend(row["KBId"] for row in page["Patches"])
        pages += 1
        if "NextToken" not in page:
            break
        params["NextToken"] = page["NextToken"]
    assert pages == 3
    assert seen == [p.patch_id for p in pm.catalog_for("WINDOWS")]


def test_describe_instance_patches_errors(fleet: Fleet) -> None:
    fleet.add("i-0000000000000000a")
    describe = fleet.sim.handle
    assert _error(lambda: describe("DescribeInstancePatches", {"InstanceId": "i-0000000000000000f"})) == (
        "InvalidInstanceId"
    )
    bad_filter = {"InstanceId": "i-0000000000000000a", "Filters": [{"Key": "Product", "Values": ["x"]}]}
    assert _error(lambda: describe("DescribeInstancePatches", bad_filter)) == "InvalidFilter"
    too_many = {"InstanceId": "i-0000000000000000a", "MaxResults": 101}
    assert _error(lambda: describe("DescribeInstancePatches", too_many)) == "ValidationException"
    bad_token = {"InstanceId": "i-0000000000000000a", "NextToken": "garbage"}
    assert _error(lambda: describe("DescribeInstancePatches", bad_token)) == "InvalidNextToken"


# -- DescribeInstancePatchStates(ForPatchGroup) ----------------------------------------------------------------------
def test_describe_instance_patch_states_counts(fleet: Fleet) -> None:
    instance = fleet.add("i-0000000000000000a")
    fleet.add("i-0000000000000000c")
    before = fleet.state("i-0000000000000000a")
    assert (before["Operation"], before["MissingCount"], before["InstalledCount"]) == ("Scan", 7, 0)
    assert before["NotApplicableCount"] == 1
    instance.patches["python3.x86_64"].fails_install = True
    fleet.run(["i-0000000000000000a"], Operation="Install", RebootOption="RebootIfNeeded")
    rows = fleet.sim.handle(
        "DescribeInstancePatchStates",
        {"InstanceIds": ["i-0000000000000000a", "i-0000000000000000c", "i-0000000000ffff"]},
    )["InstancePatchStates"]
    assert [row["InstanceId"] for row in rows] == ["i-0000000000000000a", "i-0000000000000000c"]
    after = rows[0]
    assert after["Operation"] == "Install"
    assert after["PatchGroup"] == "dev"
    assert after["BaselineId"].startswith("pb-")
    assert len(after["BaselineId"]) == 20
    assert after["OperationStartTime"] < after["OperationEndTime"]
    counts = {key: after[key] for key in after if key.endswith("Count")}
    assert counts["InstalledCount"] == 6
    assert counts["FailedCount"] == 1
    assert counts["MissingCount"] == 0
    assert (
        counts["InstalledPendingRebootCount"] == counts["InstalledRejectedCount"] == counts["InstalledOtherCount"] == 0
    )
    assert counts["NotApplicableCount"] == 1
    assert counts["SecurityNonCompliantCount"] == 1  # python3 is a Security patch
    assert rows[1]["MissingCount"] == 7
    too_many = {"InstanceIds": [f"i-{n:017x}" for n in range(51)]}
    assert _error(lambda: fleet.sim.handle("DescribeInstancePatchStates", too_many)) == "ValidationException"


def test_describe_instance_patch_states_for_patch_group_filters_and_pages(fleet: Fleet) -> None:
    for n in range(12):
        fleet.add(f"i-{n:017x}", group="staging")
    fleet.add("i-00000000000000ddd", group="dev")
    fleet.run([f"i-{n:017x}" for n in range(4)], Operation="Install")
    describe = fleet.sim.handle
    ids: list[str] = []
    params: dict[str, Any] = {"PatchGroup": "staging", "MaxResults": 10}
    while True:
        page = describe("DescribeInstancePatchStatesForPatchGroup", params)
        ids.extend(row["InstanceId"] for row in page["InstancePatchStates"])
        if "NextToken" not in page:
            break
        params["NextToken"] = page["NextToken"]
    assert ids == [f"i-{n:017x}" for n in range(12)]
    missing = {"PatchGroup": "staging", "Filters": [{"Key": "MissingCount", "Values": ["0"], "Type": "GreaterThan"}]}
    assert len(describe("DescribeInstancePatchStatesForPatchGroup", missing)["InstancePatchStates"]) == 8
    bad = {"PatchGroup": "staging", "Filters": [{"Key": "MissingCount", "Values": ["0"], "Type": "Around"}]}
    assert _error(lambda: describe("DescribeInstancePatchStatesForPatchGroup", bad)) == "InvalidFilter"


def test_patch_state_responses_use_only_botocore_model_members(fleet: Fleet) -> None:
    fleet.add("i-0000000000000000a")
    fleet.run(["i-0000000000000000a"], Operation="Install", RebootOption="NoReboot")
    shapes = Loader().load_service_model("ssm", "service-2")["shapes"]
    for shape_name, row in (
        ("PatchComplianceData", fleet.sim.handle("DescribeInstancePatches", {"InstanceId": "i-0000000000000000a"})),
        ("InstancePatchState", {"Patches": [fleet.state("i-0000000000000000a")]}),
    ):
        shape = shapes[shape_name]
        for item in row["Patches"]:
            assert set(item) <= set(shape["members"]), shape_name
            assert set(shape.get("required", [])) <= set(item), shape_name


# -- catalog, override lists, scenarios ------------------------------------------------------------------------------
def test_catalog_covers_every_platform_with_realistic_patches() -> None:
    from patchpilot_sim.fleet import PLATFORMS

    assert set(pm.CATALOG) == set(PLATFORMS)
    for platform, catalog in pm.CATALOG.items():
        assert 6 <= len(catalog) <= 10, platform
        assert len({p.patch_id for p in catalog}) == len(catalog), platform
        assert any(p.kernel for p in catalog), platform
        windows = platform == "WINDOWS"
        for patch in catalog:
            assert all(cve.startswith("CVE-2026-") for cve in patch.cve_ids)
            if windows:
                assert patch.patch_id.startswith("KB")
                assert patch.title.endswith(f"({patch.patch_id})")
            else:
                assert patch.title.startswith(f"{patch.patch_id}:")
                assert patch.classification in {"Security", "Bugfix", "Enhancement"}
                assert patch.severity in {"Critical", "Important", "Medium", "Low"}


def test_patches_parse_s3_urls_in_every_form_run_patch_baseline_reads() -> None:
    assert pm.parse_s3_url("s3://bucket/runs/a.yaml") == ("bucket", "runs/a.yaml")
    assert pm.parse_s3_url("https://bucket.s3.amazonaws.com/runs/a.yaml") == ("bucket", "runs/a.yaml")
    assert pm.parse_s3_url("https://bucket.s3.eu-west-1.amazonaws.com/a.yaml") == ("bucket", "a.yaml")
    assert pm.parse_s3_url("https://s3.amazonaws.com/bucket/a.yaml") == ("bucket", "a.yaml")
    with pytest.raises(ValueError, match="not an S3 URL"):
        pm.parse_s3_url("https://example.com/a.yaml")


def test_patches_parse_install_override_list() -> None:
    text = "patches:\n  - id: 'KB5071546'\n    title: '2026-12 Cumulative Update (KB5071546)'\n    severity: Critical\n"
    assert pm.parse_install_override_list(text) == [
        pm.OverrideEntry("KB5071546", "2026-12 Cumulative Update (KB5071546)")
    ]
    assert pm.parse_install_override_list("patches: []\n") == []
    for bad in ("- id: x\n", "patches:\n  - title: 'no id'\n", "patches: [\n"):
        with pytest.raises(ValueError, match="InstallOverrideList"):
            pm.parse_install_override_list(bad)


def test_patches_rejected_names_match_like_baseline_lists() -> None:
    assert pm.rejected_ids(AL2023, ["openssl-libs.x86_64"]) == {"openssl-libs.x86_64"}
    assert pm.rejected_ids(AL2023, ["openssl-libs-3.0.8*"]) == {"openssl-libs.x86_64"}
    assert pm.rejected_ids(AL2023, ["kernel"]) == {"kernel.x86_64"}
    assert pm.rejected_ids(AL2023, ["CVE-2026-35117"]) == set()  # CVE ids are for approved lists only
    assert pm.rejected_ids("WINDOWS", ["KB5071546", "kernel"]) == {"KB5071546"}


def test_patches_rejected_full_package_name_rejects_only_that_version() -> None:
    # SSM user guide, approved-rejected-package-name-formats: YUM/DNF full names are name-version-release.arch
    exact = "glibc-2.34-117.amzn2023.0.1.x86_64"
    assert pm.rejected_ids(AL2023, [exact]) == {"glibc.x86_64"}
    assert pm.rejected_ids(AL2023, ["glibc-0:2.34-117.amzn2023.0.1.x86_64"]) == {"glibc.x86_64"}
    assert pm.rejected_ids(AL2023, ["glibc-2.34-117.amzn2023.0.2.x86_64"]) == set()
    assert pm.rejected_ids(AL2023, ["glibc-*.amzn2023.0.1.x86_64"]) == {"glibc.x86_64"}
    records = pm.initial_patch_states(AL2023)
    fixed = pm.release_fixed_version(records, "glibc.x86_64", "0:2.34-117.amzn2023.0.2", date(2027, 1, 5))
    assert fixed is not None
    assert fixed.title == "glibc.x86_64:0:2.34-117.amzn2023.0.2"
    assert pm.rejected_ids(AL2023, [exact], records) == set()  # next month's fix is not rejected
    assert pm.rejected_ids(AL2023, ["glibc.x86_64"], records) == {"glibc.x86_64"}  # a bare name.arch: every version
    assert records["glibc.x86_64"].state == pm.MISSING


def test_patches_apt_rejections_take_the_bare_package_name_only() -> None:
    assert pm.rejected_ids("UBUNTU", ["libc6"]) == {"libc6.amd64"}
    assert pm.rejected_ids("UBUNTU", ["libc6.amd64"]) == set()
    assert pm.rejected_ids("UBUNTU", ["libc6-2.35-0ubuntu3.8.amd64"]) == set()


def test_install_override_list_installs_a_rejected_patch_it_names(fleet: Fleet) -> None:
    # Whether BLOCK outranks InstallOverrideList is undocumented: the agent takes the pessimistic reading
    fleet.add("i-0000000000000000a")
    fleet.sim.rejected_patches = lambda _: {"glibc.x86_64"}
    fleet.objects[OVERRIDE_URL] = "patches:\n  - id: 'glibc.x86_64'\n    title: 'glibc.x86_64:*'\n"
    fleet.run(["i-0000000000000000a"], Operation="Install", InstallOverrideList=OVERRIDE_URL)
    assert fleet.sim.installed_patches("i-0000000000000000a") == {"glibc.x86_64"}


def test_scenarios_build_fleet_patch_level_is_deterministic_by_seed() -> None:
    def levels(seed: int) -> list[dict[str, str]]:
        return [{k: r.state for k, r in i.patches.items()} for i in build_fleet(40, seed)]

    assert levels(7) == levels(7)
    assert levels(7) != levels(8)
    states = [state for level in levels(7) for state in level.values()]
    assert states.count("Missing") > states.count("Installed") > 0
    assert set(states) == {"Missing", "Installed", "NotApplicable"}


def test_scenarios_bad_patch_fails_one_non_kernel_patch_from_staging_on() -> None:
    fleet = build_fleet(40, 7)
    changes = apply_scenario(SCENARIOS["bad-patch"], fleet, 7)
    flagged = {(i.platform, p) for i in fleet for p, r in i.patches.items() if r.fails_install}
    assert len(flagged) == 1
    ((platform, patch_id),) = flagged
    assert not pm.find_patch(platform, patch_id).kernel
    assert patch_id in changes[0]
    victims = [i for i in fleet if i.platform == platform and i.patches[patch_id].fails_install]
    assert {i.patch_group for i in victims} == set(groups_from("staging"))
    assert all(i.patches[patch_id].state == "Missing" for i in victims)
    assert SCENARIOS["bad-patch"].expected_status == "SUCCEEDED"


def _policy_baselines() -> dict[tuple[str, str], dict[str, Any]]:
    """The rendered policy's baseline properties by (patch group, OS)."""
    return {
        (group, props["OperatingSystem"]): props
        for resource in render_resources(load_policy()).values()
        if isinstance(resource, dict) and resource.get("Type") == "AWS::SSM::PatchBaseline"
        for props in [resource["Properties"]]
        for group in props.get("PatchGroups", [])
    }


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize(("scenario", "broken_oses"), [("bad-patch", 1), ("two-bad-patches", 2)])
def test_scenarios_bad_patches_break_only_patches_every_stage_from_staging_installs(
    scenario: str, broken_oses: int, seed: int
) -> None:
    fleet = build_fleet(20, seed)
    apply_scenario(SCENARIOS[scenario], fleet, seed)
    broken = {(i.platform, p) for i in fleet for p, r in i.patches.items() if r.fails_install}
    assert len(broken) == broken_oses
    assert len({platform for platform, _ in broken}) == broken_oses
    baselines = _policy_baselines()
    for platform, patch_id in sorted(broken):
        assert any(i.platform == platform and i.patch_group == "staging" for i in fleet)
        record = next(i.patches[patch_id] for i in fleet if i.platform == platform)
        for group in groups_from("staging"):
            baseline = baselines[(group, platform)]
            assert not any(record.patch.matches_name(name) for name in baseline.get("RejectedPatches", []))
            assert pm.unapproved_ids(platform, baseline, {patch_id: record}, True, None) == set(), (
                f"{patch_id} ({platform}) is not approved for {group}: the scenario claims it fails there"
            )


def test_scenarios_flaky_and_failing_instance_act_on_dev() -> None:
    fleet = build_fleet(20, 7)
    apply_scenario(SCENARIOS["flaky-instance"], fleet, 7)
    assert [i.patch_group for i in fleet if i.flaky_failures_left == 1] == ["dev"]
    fleet = build_fleet(20, 7)
    changes = apply_scenario(SCENARIOS["failing-instance"], fleet, 7)
    assert [i.patch_group for i in fleet if i.install_outcome == "Failed"] == ["dev"]
    assert changes


@pytest.mark.parametrize("instances", [5, 9, 10, 11, 16, 60, 1_000, 10_000])
def test_build_fleet_has_exactly_the_requested_instances_split_by_the_group_shares(instances: int) -> None:
    fleet = build_fleet(instances, 7)
    assert len(fleet) == instances
    per_group = {group: sum(i.patch_group == group for i in fleet) for group in group_sizes(instances)}
    assert per_group == group_sizes(instances)
    # each group is within one instance of its share (dev 10 %, staging 15 %, each production group 25 %)
    shares = {"dev": 0.1, "staging": 0.15, "prod-1": 0.25, "prod-2": 0.25, "prod-3": 0.25}
    assert all(abs(per_group[group] - instances * share) < 1 for group, share in shares.items())


def test_scenarios_existing_behaviour_unchanged() -> None:
    fleet = build_fleet(20, 7)
    assert apply_scenario(SCENARIOS["healthy"], fleet, 7) == []
    lost = apply_scenario(SCENARIOS["lost-events"], fleet, 7)
    assert len(lost) == sum(i.drop_terminal_event for i in fleet) >= 1
    assert random.Random(7).uniform(8, 40) == pytest.approx(build_fleet(20, 7)[0].install_minutes)


AFTER_RELEASES = datetime(2026, 12, 31, tzinfo=UTC)


def _baseline(non_security: bool, approved: tuple[str, ...] = ()) -> dict[str, object]:
    rule = {"PatchFilterGroup": {"PatchFilters": []}, "EnableNonSecurity": non_security}
    return {"ApprovalRules": {"PatchRules": [rule]}, "ApprovedPatches": list(approved)}


def test_patches_ubuntu_without_enable_non_security_approves_only_security_pocket_updates() -> None:
    records = pm.initial_patch_states("UBUNTU")
    assert pm.unapproved_ids("UBUNTU", _baseline(False), records, True, AFTER_RELEASES) == {"snapd.amd64"}
    assert pm.unapproved_ids("UBUNTU", _baseline(True), records, True, AFTER_RELEASES) == set()


def test_patches_repositories_without_updateinfo_approve_nothing_with_a_security_only_baseline() -> None:
    rhel, centos = pm.initial_patch_states("REDHAT_ENTERPRISE_LINUX"), pm.initial_patch_states("CENTOS")
    assert pm.unapproved_ids("REDHAT_ENTERPRISE_LINUX", _baseline(True), rhel, False, AFTER_RELEASES) == set(rhel)
    assert pm.unapproved_ids("CENTOS", _baseline(False), centos, False, AFTER_RELEASES) == set(centos)
    assert pm.unapproved_ids("CENTOS", _baseline(True), centos, False, AFTER_RELEASES) == set()
    assert pm.unapproved_ids("CENTOS", _baseline(False, ("bash.x86_64",)), centos, False, AFTER_RELEASES) == set(
        centos
    ) - {"bash.x86_64"}
    assert pm.unapproved_ids("CENTOS", _baseline(False), centos, True, AFTER_RELEASES) == set()


def test_install_skips_unapproved_patches_and_reports_none_missing(fleet: Fleet) -> None:
    # A baseline that approves nothing: the install succeeds, installs nothing, and compliance looks clean
    instance = fleet.add("i-0000000000000000a")
    fleet.sim.unapproved_patches = lambda _: set(instance.patches)
    command_id = fleet.run(["i-0000000000000000a"], Operation="Install")
    assert fleet.status(command_id, "i-0000000000000000a") == "Success"
    assert fleet.sim.installed_patches("i-0000000000000000a") == set()
    state = fleet.state("i-0000000000000000a")
    assert (state["MissingCount"], state["InstalledCount"], state["FailedCount"]) == (0, 0, 0)


def test_scan_rows_carry_no_installed_time_on_an_os_that_does_not_report_it(fleet: Fleet) -> None:
    instance = fleet.add("i-0000000000000000a")
    instance.reports_installed_time = False
    fleet.run(["i-0000000000000000a"], Operation="Install")
    rows = fleet.sim.handle("DescribeInstancePatches", {"InstanceId": "i-0000000000000000a"})["Patches"]
    assert rows
    assert {row["InstalledTime"] for row in rows} == {pm.NOT_INSTALLED_TIME}


@pytest.mark.parametrize("platform", ["ROCKY_LINUX", "ALMA_LINUX"])
def test_fleet_rocky_and_alma_instances_patch_and_reject_like_rhel(fleet: Fleet, platform: str) -> None:
    instance = fleet.add("i-0000000000000000a", platform=platform)
    info = fleet.sim.handle("DescribeInstanceInformation", {})["InstanceInformationList"][0]
    assert (info["PlatformType"], info["PlatformName"]) == (
        "Linux",
        "Rocky Linux" if platform == "ROCKY_LINUX" else "AlmaLinux",
    )
    assert pm.rejected_ids(platform, ["sudo-1.9.5p2-10.el9_4.1.x86_64"], instance.patches) == {"sudo.x86_64"}
    fleet.sim.rejected_patches = lambda i: pm.rejected_ids(i.platform, ["sudo-1.9.5p2-10.el9_4.1.x86_64"], i.patches)
    fleet.run(["i-0000000000000000a"], Operation="Install")
    installed = fleet.sim.installed_patches("i-0000000000000000a")
    assert "sudo.x86_64" not in installed
    assert "glibc.x86_64" in installed


def _rule(delay: int, **filters: list[str]) -> dict[str, object]:
    patch_filters = [{"Key": "PRODUCT", "Values": ["*"]}]
    patch_filters += [{"Key": key, "Values": values} for key, values in filters.items()]
    return {"PatchFilterGroup": {"PatchFilters": patch_filters}, "ApproveAfterDays": delay}


PROD_AL2023 = {
    "ApprovalRules": {
        "PatchRules": [
            _rule(7, CLASSIFICATION=["Security"], SEVERITY=["Critical"]),
            _rule(7, CLASSIFICATION=["Security"], SEVERITY=["Important"]),
        ]
    },
    "ApprovedPatches": [],
}


def test_patches_rules_approve_only_matching_classification_and_severity_after_the_delay() -> None:
    # AL2023, December: kernel (Security/Important, released Dec 3), openssl-libs (Important, Nov 24),
    # nginx (Important, Dec 7); glibc/curl (Medium), python3 (Low), systemd (Bugfix), ssm-agent (Enhancement)
    records = pm.initial_patch_states("AMAZON_LINUX_2023")
    approved_dec_9 = set(records) - pm.unapproved_ids(
        "AMAZON_LINUX_2023", PROD_AL2023, records, True, datetime(2026, 12, 9, tzinfo=UTC)
    )
    assert approved_dec_9 == {"openssl-libs.x86_64"}  # the kernel is 6 days old, nginx 2: not yet approved
    approved_dec_14 = set(records) - pm.unapproved_ids(
        "AMAZON_LINUX_2023", PROD_AL2023, records, True, datetime(2026, 12, 14, tzinfo=UTC)
    )
    assert approved_dec_14 == {"kernel.x86_64", "openssl-libs.x86_64"} | ({"nginx.x86_64"} & set(records))


def test_patches_approved_patches_and_approve_until_date_and_unmodelled_keys() -> None:
    records = pm.initial_patch_states("AMAZON_LINUX_2023")
    at = datetime(2026, 12, 31, tzinfo=UTC)
    explicit = {**PROD_AL2023, "ApprovedPatches": ["python3"]}
    assert "python3.x86_64" not in pm.unapproved_ids("AMAZON_LINUX_2023", explicit, records, True, at)
    until = {
        "ApprovalRules": {"PatchRules": [{**_rule(0, CLASSIFICATION=["Security"]), "ApproveUntilDate": "2026-12-02"}]}
    }
    approved = set(records) - pm.unapproved_ids("AMAZON_LINUX_2023", until, records, True, at)
    assert approved == {"openssl-libs.x86_64", "glibc.x86_64"}  # security, released on or before Dec 2
    product = {
        "ApprovalRules": {
            "PatchRules": [
                {"PatchFilterGroup": {"PatchFilters": [{"Key": "PRODUCT", "Values": ["AmazonLinux2023.9"]}]}}
            ]
        }
    }
    assert pm.unapproved_ids("AMAZON_LINUX_2023", product, records, True, at) == set(records)
    assert pm.unapproved_ids("AMAZON_LINUX_2023", {"ApprovalRules": {"PatchRules": []}}, records, True, at) == set(
        records
    )


def test_patches_windows_msrc_severity_and_ubuntu_priority_filters() -> None:
    at = datetime(2026, 12, 31, tzinfo=UTC)
    windows = pm.initial_patch_states("WINDOWS")
    rule = _rule(7, CLASSIFICATION=["SecurityUpdates", "CriticalUpdates"], MSRC_SEVERITY=["Critical"])
    baseline = {"ApprovalRules": {"PatchRules": [rule]}}
    assert set(windows) - pm.unapproved_ids("WINDOWS", baseline, windows, True, at) == {"KB5071546"}
    ubuntu = pm.initial_patch_states("UBUNTU")
    required = {"ApprovalRules": {"PatchRules": [_rule(0, SECTION=["*"], PRIORITY=["Required"])]}}
    approved = set(ubuntu) - pm.unapproved_ids("UBUNTU", required, ubuntu, True, at)
    assert approved == {p for p, r in ubuntu.items() if r.patch.severity == "Critical"} != set()


def test_patches_without_a_moment_rules_match_but_no_delay_is_judged() -> None:
    records = pm.initial_patch_states("AMAZON_LINUX_2023")
    approved = set(records) - pm.unapproved_ids("AMAZON_LINUX_2023", PROD_AL2023, records, True, None)
    assert approved == {"kernel.x86_64", "openssl-libs.x86_64"} | ({"nginx.x86_64"} & set(records))
