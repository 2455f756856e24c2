"""`patchpilot rollback` on fakes: each bad input exits 2 and changes nothing; the dry run changes nothing."""

from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from patchpilot.logic.rollback import check_rollback
from patchpilot.models.exceptions import RollbackRefused
from patchpilot.models.snapshots import RunExecution, SnapshotSet, VolumeSnapshot
from patchpilot_cli import rollback as rollback_cli
from patchpilot_cli.main import app
from tests.fakes import FakeRunExecutions, FakeSnapshotLedger, FakeVolumeSnapshots, FixedClock

NOW = datetime(2026, 12, 16, 9, 0, tzinfo=UTC)
INSTANCE = "i-0000000000000000a"


def _ports(status: str = "FAILED", stage: str | None = None) -> rollback_cli.RollbackPorts:
    ledger = FakeSnapshotLedger()
    ledger.record_set(
        SnapshotSet(
            run_id="2026-12",
            stage_name="prod-1",
            instance_id=INSTANCE,
            taken_at=datetime(2026, 12, 15, 3, tzinfo=UTC),
            snapshots=[
                VolumeSnapshot(snapshot_id="snap-00000000000000001", volume_id="vol-00000000000000001", root=True),
                VolumeSnapshot(snapshot_id="snap-00000000000000002", volume_id="vol-00000000000000002", root=False),
            ],
        )
    )
    executions = FakeRunExecutions({"2026-12": [RunExecution(name="cycle-2026-12", status=status, stage_name=stage)]})
    return rollback_cli.RollbackPorts(
        ledger=ledger, volumes=FakeVolumeSnapshots(FixedClock(NOW)), executions=executions
    )


def _run(monkeypatch: pytest.MonkeyPatch, ports: rollback_cli.RollbackPorts, *args: str) -> tuple[int, str]:
    monkeypatch.setattr(rollback_cli, "_ports", lambda stack_name, region: ports)
    result = CliRunner().invoke(app, ["rollback", *args])
    return result.exit_code, result.output


def _unchanged(ports: rollback_cli.RollbackPorts) -> bool:
    volumes = ports.volumes
    assert isinstance(volumes, FakeVolumeSnapshots)
    return volumes.tasks == {} and ports.ledger.rollbacks_of("2026-12") == []


@pytest.mark.parametrize(
    ("args", "status", "stage", "message"),
    [
        (["--run", "2026-11", "--instance", INSTANCE], "FAILED", None, "run '2026-11' not found"),
        (["--run", "2026-12", "--instance", "i-0000000000000000f"], "FAILED", None, "has no pre-patch snapshot"),
        (["--run", "2026-12", "--instance", INSTANCE], "RUNNING", "prod-1", "stage prod-1 of run 2026-12 is still"),
        (["--run", "2026-12", "--instance", INSTANCE], "RUNNING", None, "is still running"),
        (["--run", "2026-12", "--instance", "web-1"], "FAILED", None, "invalid --instance 'web-1'"),
        (["--run", "2026-12"], "FAILED", None, "give --instance i-... to roll one instance back, or --plan"),
        (["--run", "2026-11", "--plan"], "FAILED", None, "run '2026-11' not found"),
    ],
)
def test_rollback_command_bad_input_exits_2_and_changes_nothing(
    monkeypatch: pytest.MonkeyPatch, args: list[str], status: str, stage: str | None, message: str
) -> None:
    ports = _ports(status, stage)
    code, output = _run(monkeypatch, ports, *args)
    assert code == 2
    assert message in output
    assert _unchanged(ports)


def test_rollback_command_while_a_later_stage_runs_restores() -> None:
    ports = _ports("RUNNING", "prod-2")
    chosen = check_rollback("2026-12", INSTANCE, ports.executions, ports.ledger)
    assert chosen.stage_name == "prod-1"


def test_rollback_command_dry_run_says_what_it_would_do_and_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    ports = _ports()
    code, output = _run(monkeypatch, ports, "--run", "2026-12", "--instance", INSTANCE, "--dry-run")
    assert code == 0
    assert f"dry run: would restore the root volume of {INSTANCE} from snap-00000000000000001" in output
    assert _unchanged(ports)


def test_rollback_command_restores_once_and_records_the_rollback(monkeypatch: pytest.MonkeyPatch) -> None:
    ports = _ports()
    for _ in range(2):
        code, output = _run(monkeypatch, ports, "--run", "2026-12", "--instance", INSTANCE)
        assert code == 0
        assert "rollback started: restore the root volume" in output
    volumes = ports.volumes
    assert isinstance(volumes, FakeVolumeSnapshots)
    assert list(volumes.tasks.values()) == [(INSTANCE, "snap-00000000000000001")]  # the same token: one task
    records = ports.ledger.rollbacks_of("2026-12")
    assert [(r.instance_id, r.snapshot_id, r.task_state) for r in records] == [
        (INSTANCE, "snap-00000000000000001", "pending")
    ]


def test_rollback_command_plan_lists_snapshots_and_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    ports = _ports()
    code, output = _run(monkeypatch, ports, "--run", "2026-12", "--plan")
    assert code == 0
    assert "prod-1 i-0000000000000000a: root snap-00000000000000001, data snap-00000000000000002" in output
    assert f"patchpilot rollback --run 2026-12 --instance {INSTANCE}" in output
    assert _unchanged(ports)


def test_rollback_command_plan_shows_the_current_state_of_a_rollback(monkeypatch: pytest.MonkeyPatch) -> None:
    ports = _ports()
    assert _run(monkeypatch, ports, "--run", "2026-12", "--instance", INSTANCE)[0] == 0
    code, output = _run(monkeypatch, ports, "--run", "2026-12", "--plan")
    assert code == 0
    assert "rolled back: replacevol-00000000000000001 succeeded" in output


def test_check_rollback_refuses_a_set_without_root_snapshot() -> None:
    ports = _ports()
    ports.ledger.record_set(
        SnapshotSet(
            run_id="2026-12",
            stage_name="prod-1",
            instance_id="i-0000000000000000b",
            taken_at=NOW,
            snapshots=[
                VolumeSnapshot(snapshot_id="snap-00000000000000009", volume_id="vol-00000000000000009", root=False)
            ],
        )
    )
    with pytest.raises(RollbackRefused, match=r"no root-volume snapshot to restore"):
        check_rollback("2026-12", "i-0000000000000000b", ports.executions, ports.ledger)
