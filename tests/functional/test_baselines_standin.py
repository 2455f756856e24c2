"""The local patch-baseline stand-in: the template's baselines and groups behind the SSM API shapes moto lacks."""

from typing import Any

import pytest

from patchpilot_sim.baselines import PatchBaselineStandIn, baseline_id_for
from patchpilot_sim.fleet import SimulatedApiError

PROD_AL2023 = baseline_id_for("patchpilot-prod-amazon-linux-2023")


@pytest.fixture
def standin() -> PatchBaselineStandIn:
    return PatchBaselineStandIn(stack_name="patchpilot")


def _error(standin: PatchBaselineStandIn, operation: str, params: dict[str, Any]) -> SimulatedApiError:
    with pytest.raises(SimulatedApiError, match=r"^[A-Za-z]+: \S") as caught:
        standin.handle(operation, params)
    return caught.value


def test_baselines_standin_serves_the_operations_moto_lacks(standin: PatchBaselineStandIn) -> None:
    assert {
        "GetPatchBaseline",
        "UpdatePatchBaseline",
        "DescribePatchGroups",
        "GetPatchBaselineForPatchGroup",
    } <= standin.operations
    with pytest.raises(NotImplementedError, match=r"^CreatePatchBaseline$"):
        standin.handle("CreatePatchBaseline", {})


def test_baselines_standin_get_returns_the_templates_baseline(standin: PatchBaselineStandIn) -> None:
    baseline = standin.handle("GetPatchBaseline", {"BaselineId": PROD_AL2023})
    assert baseline["Name"] == "patchpilot-prod-amazon-linux-2023"
    assert baseline["OperatingSystem"] == "AMAZON_LINUX_2023"
    assert baseline["RejectedPatchesAction"] == "BLOCK"
    assert baseline["PatchGroups"] == ["prod-1", "prod-2", "prod-3"]
    assert {r["ApproveAfterDays"] for r in baseline["ApprovalRules"]["PatchRules"]} == {7}


def test_baselines_standin_every_baseline_blocks_rejected_patches(standin: PatchBaselineStandIn) -> None:
    assert len(standin.baselines) == 40  # 5 environments x 8 operating systems
    assert {b["RejectedPatchesAction"] for b in standin.baselines.values()} == {"BLOCK"}


def test_baselines_standin_unknown_or_malformed_baseline_id(standin: PatchBaselineStandIn) -> None:
    assert _error(standin, "GetPatchBaseline", {"BaselineId": "pb-00000000000000000"}).code == "DoesNotExistException"
    assert _error(standin, "GetPatchBaseline", {"BaselineId": "pb-1"}).code == "ValidationException"


def test_baselines_standin_update_replaces_the_rejected_list_like_aws(standin: PatchBaselineStandIn) -> None:
    standin.handle("UpdatePatchBaseline", {"BaselineId": PROD_AL2023, "RejectedPatches": ["openssl-1*"]})
    standin.handle("UpdatePatchBaseline", {"BaselineId": PROD_AL2023, "RejectedPatches": ["curl-8*"]})
    baseline = standin.handle("GetPatchBaseline", {"BaselineId": PROD_AL2023})
    assert baseline["RejectedPatches"] == ["curl-8*"]
    assert baseline["RejectedPatchesAction"] == "BLOCK"


def test_baselines_standin_read_merge_write_keeps_every_exclusion_as_a_set(standin: PatchBaselineStandIn) -> None:
    for batch in (["openssl-1*", "curl-8*"], ["curl-8*", "glibc-2*"]):
        current = standin.handle("GetPatchBaseline", {"BaselineId": PROD_AL2023})["RejectedPatches"]
        merged = list(dict.fromkeys([*current, *batch]))
        response = standin.handle("UpdatePatchBaseline", {"BaselineId": PROD_AL2023, "RejectedPatches": merged})
        assert response["RejectedPatches"] == merged
    final = standin.handle("GetPatchBaseline", {"BaselineId": PROD_AL2023})["RejectedPatches"]
    assert final == ["openssl-1*", "curl-8*", "glibc-2*"]
    assert [call["RejectedPatches"] for call in standin.update_calls][-1] == final


def test_baselines_standin_update_deduplicates_and_validates(standin: PatchBaselineStandIn) -> None:
    response = standin.handle("UpdatePatchBaseline", {"BaselineId": PROD_AL2023, "RejectedPatches": ["a*", "a*"]})
    assert response["RejectedPatches"] == ["a*"]
    too_many = {"BaselineId": PROD_AL2023, "RejectedPatches": [f"pkg-{n}*" for n in range(51)]}
    assert _error(standin, "UpdatePatchBaseline", too_many).code == "ValidationException"
    bad_action = {"BaselineId": PROD_AL2023, "RejectedPatchesAction": "DROP"}
    assert "BLOCK" in _error(standin, "UpdatePatchBaseline", bad_action).message
    assert standin.handle("GetPatchBaseline", {"BaselineId": PROD_AL2023})["RejectedPatches"] == ["a*"]


def test_baselines_standin_describe_patch_groups_maps_each_group_and_os(standin: PatchBaselineStandIn) -> None:
    mappings = standin.handle("DescribePatchGroups", {})["Mappings"]
    assert len(mappings) == 5 * 8
    pairs = {(m["PatchGroup"], m["BaselineIdentity"]["OperatingSystem"]): m["BaselineIdentity"] for m in mappings}
    assert pairs[("prod-2", "UBUNTU")]["BaselineName"] == "patchpilot-prod-ubuntu"
    assert pairs[("staging", "WINDOWS")]["BaselineName"] == "patchpilot-staging-windows"
    filtered = standin.handle(
        "DescribePatchGroups",
        {"Filters": [{"Key": "NAME_PREFIX", "Values": ["prod"]}, {"Key": "OPERATING_SYSTEM", "Values": ["WINDOWS"]}]},
    )["Mappings"]
    assert [m["PatchGroup"] for m in filtered] == ["prod-1", "prod-2", "prod-3"]


def test_baselines_standin_describe_patch_groups_paginates(standin: PatchBaselineStandIn) -> None:
    seen, token = [], None
    while True:
        page = standin.handle("DescribePatchGroups", {"MaxResults": 7, **({"NextToken": token} if token else {})})
        seen.extend(page["Mappings"])
        token = page.get("NextToken")
        if token is None:
            break
    assert len(seen) == 40
    assert len({(m["PatchGroup"], m["BaselineIdentity"]["OperatingSystem"]) for m in seen}) == 40


def test_baselines_standin_baseline_for_patch_group(standin: PatchBaselineStandIn) -> None:
    found = standin.handle(
        "GetPatchBaselineForPatchGroup", {"PatchGroup": "prod-1", "OperatingSystem": "AMAZON_LINUX_2023"}
    )
    assert found == {"BaselineId": PROD_AL2023, "PatchGroup": "prod-1", "OperatingSystem": "AMAZON_LINUX_2023"}
    unregistered = standin.handle(
        "GetPatchBaselineForPatchGroup", {"PatchGroup": "nobody", "OperatingSystem": "UBUNTU"}
    )
    default = standin.handle("GetDefaultPatchBaseline", {"OperatingSystem": "UBUNTU"})
    assert unregistered["BaselineId"] == default["BaselineId"] != PROD_AL2023
    bad_os = {"PatchGroup": "dev", "OperatingSystem": "BEOS"}
    assert "AMAZON_LINUX_2023" in _error(standin, "GetPatchBaselineForPatchGroup", bad_os).message


def test_baselines_standin_a_group_has_one_baseline_per_os(standin: PatchBaselineStandIn) -> None:
    dev_al2023 = baseline_id_for("patchpilot-dev-amazon-linux-2023")
    register = {"BaselineId": dev_al2023, "PatchGroup": "prod-1"}
    assert _error(standin, "RegisterPatchBaselineForPatchGroup", register).code == "AlreadyExistsException"
    standin.handle("DeregisterPatchBaselineForPatchGroup", {"BaselineId": PROD_AL2023, "PatchGroup": "prod-1"})
    standin.handle("RegisterPatchBaselineForPatchGroup", register)
    assert standin.baselines_by_group()["prod-1"]["AMAZON_LINUX_2023"] == "patchpilot-dev-amazon-linux-2023"
    missing = {"BaselineId": PROD_AL2023, "PatchGroup": "prod-1"}
    assert _error(standin, "DeregisterPatchBaselineForPatchGroup", missing).code == "DoesNotExistException"


def test_baselines_standin_responses_are_copies(standin: PatchBaselineStandIn) -> None:
    baseline = standin.handle("GetPatchBaseline", {"BaselineId": PROD_AL2023})
    baseline["RejectedPatches"].append("tampered")
    assert standin.handle("GetPatchBaseline", {"BaselineId": PROD_AL2023})["RejectedPatches"] == []


def test_baselines_standin_uses_the_stack_name() -> None:
    standin = PatchBaselineStandIn(stack_name="sim")
    assert standin.baselines_by_group()["dev"]["WINDOWS"] == "sim-dev-windows"
