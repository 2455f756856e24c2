"""Pre-patch snapshots in the rollout state machine: taken before the install; a failure stops the stage first."""

import pytest

from patchpilot.models.rollout import StageCatalog
from patchpilot.models.snapshots import SnapshotSettings
from patchpilot_sim.runtime import LocalRuntime
from patchpilot_sim.template import SamTemplate
from tests.runtime_helpers import entered_states, launch_fleet, sent_commands, start

pytestmark = pytest.mark.runtime


def _catalog(settings: SnapshotSettings) -> StageCatalog:
    deployed = StageCatalog.model_validate_json(SamTemplate().resources["StageCatalogParameter"]["Properties"]["Value"])
    stages = [s.model_copy(update={"snapshots": settings}) if s.name == "dev" else s for s in deployed.stages]
    return deployed.model_copy(update={"stages": stages})


def test_snapshot_failure_stops_the_stage_before_its_install_with_an_alert() -> None:
    with LocalRuntime(seed=21, stage_catalog=_catalog(SnapshotSettings())) as runtime:
        fleet = launch_fleet(runtime, groups={"dev"})
        runtime.volumes.snapshot_quota = 0
        description = start(runtime, ["dev"])
        arn = description["executionArn"]
        assert (description["status"], description["error"]) == ("FAILED", "SnapshotsIncomplete")
        assert "Snapshot Stage Volumes" in entered_states(runtime, arn)
        assert sent_commands(runtime, arn) == []
        failed = [a for a in runtime.notifications() if a["kind"] == "stage_failed"]
        assert [a["title"] for a in failed] == ["pre-patch snapshots failed: nothing was installed"]
        assert "SnapshotLimitExceeded" in failed[0]["summary"]
        assert all(not runtime.fleet.installed_during_cycle(i.instance_id) for i in fleet["dev"])


def test_best_effort_snapshots_let_the_stage_install_and_snapshot_the_rest() -> None:
    with LocalRuntime(seed=22, stage_catalog=_catalog(SnapshotSettings(best_effort=True))) as runtime:
        fleet = launch_fleet(runtime, groups={"dev"})
        refused = fleet["dev"][0].instance_id
        runtime.volumes.refuse[refused] = ("IncorrectState", "The volume cannot be snapshotted")
        description = start(runtime, ["dev"])
        assert description["status"] == "SUCCEEDED"
        snapshotted = {s.instance_id for s in runtime.volumes.snapshots.values()}
        assert snapshotted == {i.instance_id for i in fleet["dev"]} - {refused}
        assert [c["Parameters"]["Operation"] for c in sent_commands(runtime, description["executionArn"])][:1] == [
            ["Install"]
        ]
