"""`patchpilot rollback` against the local runtime: a real run's snapshots, the checks, the dry run, the restore."""

import json
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from patchpilot.models.rollout import StageCatalog
from patchpilot_cli.main import app
from patchpilot_sim import rollback_demo
from patchpilot_sim.runtime import LocalRuntime
from patchpilot_sim.scenarios import build_fleet
from patchpilot_sim.simulate import LOCAL_LIMITS
from patchpilot_sim.stack_standin import register_stack_outputs
from patchpilot_sim.template import SamTemplate

# One worker runs the whole module: its module-scoped local stack (or cycle) is set up once, not once per worker.
pytestmark = [pytest.mark.runtime, pytest.mark.xdist_group("test_cli_rollback")]
STACK = "patchpilot-rollback-test"


def _catalog() -> StageCatalog:
    deployed = StageCatalog.model_validate_json(SamTemplate().resources["StageCatalogParameter"]["Properties"]["Value"])
    stages = [s.model_copy(update=rollback_demo.snapshots_of(s, ("dev",))) for s in deployed.stages]
    return deployed.model_copy(update={"stages": stages})


@pytest.fixture(scope="module")
def failed_run() -> Iterator[tuple[LocalRuntime, rollback_demo.RollbackCase]]:
    with LocalRuntime(stage_catalog=_catalog()) as runtime:
        fleet = runtime.add_instances([i for i in build_fleet(20, 3) if i.patch_group == "dev"])
        case = rollback_demo.prepare(fleet, "rollback", lambda _: None)
        assert case is not None
        register_stack_outputs(runtime, STACK)
        request = {"mode": "scheduled", "cycle": "2026-12", "stages": ["dev"], "bake_seconds": {"dev": 1}}
        started = runtime.lambdas.invoke("StartRolloutFunction", {**request, "limits": LOCAL_LIMITS})
        assert not started.failed, started.error_message
        description = runtime.wait_for_execution(str(started.payload["execution_arn"]), timeout=300)
        assert (description["status"], description.get("error")) == ("FAILED", "StageHealthCheckFailed")
        runtime.settle()
        yield runtime, case


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["rollback", *args, "--stack-name", STACK])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = [line for line in result.output.splitlines() if not line.startswith("{")]  # in-process handler logs
    return result.exit_code, "\n".join(lines)


def test_cli_rollback_plan_lists_the_runs_snapshots(
    failed_run: tuple[LocalRuntime, rollback_demo.RollbackCase],
) -> None:
    runtime, case = failed_run
    code, output = _cli("--run", "2026-12", "--plan")
    print(output)
    assert code == 0
    assert f"patchpilot rollback --run 2026-12 --instance {case.victim.instance_id}" in output
    dev = [i for i in runtime.fleet.instances.values() if i.patch_group == "dev"]
    assert output.count("root snap-") == len(dev)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--run", "2026-11", "--instance", "i-0123456789abcdef0"), "run '2026-11' not found"),
        (("--run", "2026-12", "--instance", "i-0123456789abcdef0"), "has no pre-patch snapshot in run 2026-12"),
    ],
)
def test_cli_rollback_bad_input_exits_2_and_changes_nothing(
    failed_run: tuple[LocalRuntime, rollback_demo.RollbackCase], args: tuple[str, ...], message: str
) -> None:
    runtime, _ = failed_run
    tasks = dict(runtime.volumes.tasks)
    code, output = _cli(*args)
    print(output)
    assert code == 2
    assert message in output
    assert runtime.volumes.tasks == tasks


def test_cli_rollback_dry_run_then_restore_heals_the_instance_at_its_pre_patch_level(
    failed_run: tuple[LocalRuntime, rollback_demo.RollbackCase],
) -> None:
    runtime, case = failed_run
    victim = case.victim.instance_id
    assert not case.victim.healthy
    code, output = _cli("--run", "2026-12", "--instance", victim, "--dry-run")
    print(output)
    assert code == 0
    assert "nothing changed" in output
    assert runtime.volumes.tasks == {}
    code, output = _cli("--run", "2026-12", "--instance", victim)
    print(output)
    assert code == 0
    (task,) = runtime.volumes.tasks.values()
    runtime.run_until(lambda: task.state == "succeeded")
    assert task.state == "succeeded"
    assert case.victim.healthy
    assert {p: r.state for p, r in case.victim.patches.items()} == case.pre_patch_level
    code, output = _cli("--run", "2026-12", "--plan")
    assert f"rolled back: {task.task_id} succeeded" in output
    rows = runtime.admin.client("dynamodb").scan(TableName=runtime.resources.table_names["RunsTable"])["Items"]
    rollbacks = [json.loads(r["record"]["S"]) for r in rows if r["sk"]["S"].startswith("ROLLBACK#")]
    assert [(r["instance_id"], r["task_id"]) for r in rollbacks] == [(victim, task.task_id)]
