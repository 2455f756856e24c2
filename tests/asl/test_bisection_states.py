"""Bisection in the rollout state machine: it runs only on an inconclusive decision, and when it cannot bisect the
stage stops as before, with an exclusion_inconclusive alert that says why."""

import pytest

from patchpilot.models.rollout import BisectPolicy, StageCatalog
from patchpilot.models.snapshots import SnapshotSettings
from patchpilot_sim.runtime import LocalRuntime
from patchpilot_sim.scenarios import _installed_by_every_stage
from patchpilot_sim.template import SamTemplate
from tests.runtime_helpers import entered_states, launch_fleet, start

pytestmark = pytest.mark.runtime
BISECTION_STATES = {"Bisect Suspects?", "Start Bisection", "Wait For Restore", "Check Restore", "Judge Bisection Round"}


def _catalog() -> StageCatalog:
    deployed = StageCatalog.model_validate_json(SamTemplate().resources["StageCatalogParameter"]["Properties"]["Value"])
    bisecting = {"snapshots": SnapshotSettings(best_effort=True), "bisect": BisectPolicy(max_rounds=6)}
    stages = [s.model_copy(update=bisecting) if s.name == "dev" else s for s in deployed.stages]
    return deployed.model_copy(update={"stages": stages})


def test_bisection_without_a_snapshot_of_the_broken_instance_stops_the_stage_with_the_reason() -> None:
    with LocalRuntime(seed=31, stage_catalog=_catalog()) as runtime:
        fleet = launch_fleet(runtime, groups={"dev"})
        victim = fleet["dev"][0]
        patch = _installed_by_every_stage(victim.platform)[0]
        record = victim.patches[patch.patch_id]
        record.state, record.installed_time, record.breaks_health = "Missing", None, True
        runtime.volumes.refuse[victim.instance_id] = ("IncorrectState", "The volume cannot be snapshotted")
        description = start(runtime, ["dev"])
        arn = description["executionArn"]
        assert (description["status"], description["error"]) == ("FAILED", "StageHealthCheckFailed")
        entered = entered_states(runtime, arn)
        assert "Start Bisection" in entered
        assert "Wait For Restore" not in entered
        alerts = [a for a in runtime.notifications() if a["kind"] == "exclusion_inconclusive"]
        assert len(alerts) == 1
        assert f"no pre-patch snapshot of its unhealthy instance(s) ({victim.instance_id})" in alerts[0]["summary"]
        assert runtime.volumes.tasks == {}


def test_healthy_stage_never_enters_a_bisection_state() -> None:
    with LocalRuntime(seed=32, stage_catalog=_catalog()) as runtime:
        launch_fleet(runtime, groups={"dev"})
        description = start(runtime, ["dev"])
        assert description["status"] == "SUCCEEDED"
        assert not BISECTION_STATES & set(entered_states(runtime, description["executionArn"]))
