"""`patchpilot plan` against the local runtime acting as a deployed stack: the simulated fleet's last scans."""

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from patchpilot.logic.plan_preview import scheduled_start
from patchpilot.logic.platforms import operating_system_of
from patchpilot_cli.main import app
from patchpilot_sim import patches as pm
from patchpilot_sim.deployed_stack import deploy_stack
from patchpilot_sim.fleet import PLATFORMS
from patchpilot_sim.runtime import STACK_NAME, LocalRuntime
from patchpilot_sim.scenarios import build_fleet

# One worker runs the whole module: its module-scoped local stack (or cycle) is set up once, not once per worker.
pytestmark = [pytest.mark.runtime, pytest.mark.xdist_group("test_cli_plan")]
CYCLE = "2030-12"  # a cycle still ahead whenever the test runs; Patch Tuesday is 10 December 2030


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    with LocalRuntime() as rt:
        rt.add_instances(build_fleet(16, 5))
        deploy_stack(rt, STACK_NAME)
        yield rt


def _plan(*args: str, stack: str = STACK_NAME) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["plan", "--stack-name", stack, *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    own = "".join(line for line in result.stdout.splitlines(keepends=True) if not line.startswith('{"'))
    return result.exit_code, own, result.stderr


def _lacking(runtime: LocalRuntime, group: str) -> dict[str, dict[str, int]]:
    """Ground truth: per OS, how many of the group's instances lack each patch (Missing or Failed, as scanned)."""
    found: dict[str, Counter[str]] = {}
    for instance in runtime.fleet.instances.values():
        if instance.patch_group != group or instance.last_operation is None:
            continue
        os_name = operating_system_of(*PLATFORMS[instance.platform])
        operation = instance.last_operation
        counter = found.setdefault(os_name, Counter())
        for patch_id, record in instance.patches.items():
            if pm.reported_state(record, operation.rejected, operation.unapproved) in ("Missing", "Failed"):
                counter[patch_id] += 1
    return {os_name: dict(counter) for os_name, counter in found.items()}


def test_cli_plan_json_shows_each_stages_fleet_and_missing_patches_from_the_last_scan(runtime: LocalRuntime) -> None:
    commands_before = len(runtime.fleet.commands)
    code, output, _ = _plan("--cycle", CYCLE, "--json")
    assert code == 0, output
    preview: dict[str, Any] = json.loads(output)
    assert [stage["name"] for stage in preview["stages"]] == ["dev", "staging", "prod-1", "prod-2", "prod-3"]
    groups = Counter(instance.patch_group for instance in runtime.fleet.instances.values())
    for stage in preview["stages"]:
        assert stage["instances"] == groups[stage["patch_group"]]
        assert sum(system["instances"] for system in stage["operating_systems"]) == stage["instances"]
    dev = preview["stages"][0]
    listed = {
        s["operating_system"]: {p["patch_id"]: p["instances"] for p in s["patches"]} for s in dev["operating_systems"]
    }
    assert listed
    assert listed == _lacking(runtime, "dev")  # a test stage installs everything its baseline approves
    assert len(runtime.fleet.commands) == commands_before  # read-only: no command was sent


def test_cli_plan_json_times_the_stages_from_the_schedule_through_windows_bakes_and_approval(
    runtime: LocalRuntime,
) -> None:
    code, output, _ = _plan("--cycle", CYCLE, "--json", "--approval-wait", "2")
    assert code == 0, output
    preview = json.loads(output)
    starts = scheduled_start("cron(0 20 ? * TUE#2 *)", CYCLE)
    assert preview["cycle_starts_at"] == starts.isoformat().replace("+00:00", "Z")
    dev, staging, prod1 = (stage["timeline"] for stage in preview["stages"][:3])
    assert dev["install_starts_at"] == "2030-12-10T21:00:00Z"  # Patch Tuesday, dev's window at 21:00
    assert staging["install_starts_at"] == "2030-12-13T03:00:00Z"  # PT + 3 days
    assert prod1["approval_requested_at"] == staging["passed_at"]
    assert prod1["install_starts_at"] == "2030-12-17T03:00:00Z"  # PT + 7 days, after the assumed 2 h approval
    ends = preview["stages"][-1]["timeline"]["passed_at"]
    assert preview["cycle_ends_at"] == ends
    assert preview["expected_hours"] > 24 * 11  # prod-3's window opens PT + 11 days


def test_cli_plan_text_says_where_the_patches_come_from(runtime: LocalRuntime) -> None:
    code, output, _ = _plan("--cycle", CYCLE, "--stages", "dev,staging")
    assert code == 0, output
    lines = output.splitlines()
    assert lines[0].startswith("plan of cycle 2030-12: starts Tue 2030-12-10 20:00 UTC; every stage passed by ")
    assert any(line.startswith("stage dev (test): patch group dev, ") for line in lines)
    assert any(line.startswith("  approved and missing per the last scan (oldest scan ") for line in lines)
    assert "stage prod-1" not in output
    assert "what each instance's last scan reports Missing or Failed under its group's baseline" in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cycle", "2030-13"], "error: invalid cycle '2030-13' (expected YYYY-MM, e.g. 2026-12)"),
        (["--cycle", "12-2030"], "error: invalid cycle '12-2030' (expected YYYY-MM, e.g. 2026-12)"),
        (["--cycle", "2020-01"], "error: cycle 2020-01 is over"),
        (["--cycle", CYCLE, "--stages", "dev,prod-9"], "error: unknown stage(s) ['prod-9']"),
        (["--cycle", CYCLE, "--stages", "prod-1"], "error: production stages need a test stage before them"),
        (["--approval-wait", "-1"], "error: --approval-wait must be from 0 to 168 hours"),
    ],
)
def test_cli_plan_bad_input_is_one_clear_line_and_exit_2(runtime: LocalRuntime, args: list[str], message: str) -> None:
    code, output, errors = _plan(*args)
    assert code == 2, output
    assert errors.startswith(message)
    assert len(errors.strip().splitlines()) == 1
    assert output == ""


def test_cli_plan_of_a_stack_that_does_not_exist_is_exit_2(runtime: LocalRuntime) -> None:
    code, _, errors = _plan("--cycle", CYCLE, stack="no-such-stack")
    assert code == 2
    assert errors.startswith("error: stack 'no-such-stack' not found in the default region")
