"""`patchpilot doctor --probe` on the local runtime: one harmless command per group, read with the instance profile."""

from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial
from typing import Any

import pytest
from typer.testing import CliRunner

from patchpilot_cli import doctor_probe
from patchpilot_cli.doctor_checks import Check
from patchpilot_cli.doctor_probe import INVOCATION_EVENT, run_probe
from patchpilot_cli.main import app
from patchpilot_sim.deployed_stack import attach_instance_profiles, deploy_stack
from patchpilot_sim.runtime import STACK_NAME, LocalRuntime
from patchpilot_sim.scenarios import build_fleet
from tests.runtime_helpers import REAL_TIMEOUT

# One worker runs the whole module: its module-scoped local stack (or cycle) is set up once, not once per worker.
pytestmark = [pytest.mark.runtime, pytest.mark.xdist_group("test_cli_doctor_probe")]
GROUPS = ("dev", "staging", "prod-1", "prod-2", "prod-3")


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    with LocalRuntime() as rt:
        rt.add_instances(build_fleet(5, 3))  # one instance per patch group
        deploy_stack(rt, STACK_NAME)
        readers = {group: group != "prod-2" for group in GROUPS}  # prod-2's instance role may not read runs/
        attach_instance_profiles(rt, rt.bucket_names["ArtifactsBucket"], readers)
        yield rt


def _rule_takes(runtime: LocalRuntime, document: str) -> bool:
    """Whether the template's rules deliver a status event of the document to PatchPilot in the local runtime."""
    event = {
        "source": "aws.ssm",
        "detail-type": INVOCATION_EVENT,
        "detail": {"document-name": document, "status": "Success", "command-id": "c", "instance-id": "i-1"},
    }
    return bool(runtime.router.matching(event))


def test_doctor_probe_says_what_it_does_then_reports_each_group_and_changes_nothing(
    runtime: LocalRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a fleet whose prod-2 instance profile cannot read the artifacts bucket
    patches_before = {i: runtime.fleet.installed_patches(i) for i in runtime.fleet.instances}
    tags_before = {i.instance_id: dict(i.tags) for i in runtime.fleet.instances.values()}
    # (the probe's waits run on the simulated clock: the simulation runs while the operator's command polls)
    poller = _SimulatedPoller(runtime)
    monkeypatch.setattr(
        doctor_probe, "run_probe", partial(doctor_probe.run_probe, clock=poller.clock, sleep=poller.sleep)
    )
    # When the operator runs the probe
    result = CliRunner().invoke(app, ["doctor", "--stack-name", STACK_NAME, "--probe"])
    output = "".join(line for line in result.output.splitlines(keepends=True) if not line.startswith('{"'))
    lines = output.splitlines()
    # Then it first says what it will send, per group
    plan = lines.index(next(line for line in lines if line.startswith("probe: put s3://")))
    first_probe_result = lines.index(next(line for line in lines if "  probe: group " in line))
    assert plan < first_probe_result
    health_document = runtime.resolver.ref("HealthCheckDocument")  # what PatchPilot's health checks send
    assert f"  prod-2: {health_document} to 1 node(s)" in lines
    # And every group whose instance profile reads runs/ passes, prod-2 fails with the reason
    probes = {line.split("probe: group ")[1].split(":")[0]: line for line in lines if "  probe: group " in line}
    assert set(probes) == set(GROUPS)
    assert all(probes[g].startswith("ok    ") and "1/1 Success" in probes[g] for g in GROUPS if g != "prod-2")
    assert probes["prod-2"].startswith("fail  ")
    assert "0/1 Success" in probes["prod-2"]
    assert "instance profile cannot get runs/ objects" in probes["prod-2"]
    assert result.exit_code == 1
    # And the status-event line says what the stack's rule does with the probe's documents
    events = next(line for line in lines if "probe: status events:" in line)
    assert _rule_takes(runtime, health_document)
    assert events.startswith("ok    ")
    assert f"matches the {health_document} status events" in events
    # And nothing changed: no baseline update, no tag, no patch, no patching command
    assert runtime.baselines.update_calls == []
    assert {i.instance_id: i.tags for i in runtime.fleet.instances.values()} == tags_before
    assert {i: runtime.fleet.installed_patches(i) for i in runtime.fleet.instances} == patches_before
    documents = {c.document_name for c in runtime.fleet.commands.values()}
    assert documents == {health_document}


class _SimulatedPoller:
    """The probe's clock and sleep on the local runtime: a sleep lets the simulated side deliver, then counts."""

    def __init__(self, runtime: LocalRuntime) -> None:
        self.runtime = runtime
        self.seconds = 0.0
        self.sleeps = 0

    def clock(self) -> float:
        return self.seconds

    def sleep(self, seconds: float) -> None:
        self.runtime.settle(timeout=REAL_TIMEOUT)  # the commands ran and their events were delivered, or dropped
        self.seconds += seconds
        self.sleeps += 1


def _probe(runtime: LocalRuntime, group: str) -> tuple[list[Check], _SimulatedPoller]:
    from patchpilot_cli.doctor import load
    from patchpilot_cli.stack import resolve_outputs

    stack = load(resolve_outputs(STACK_NAME, None), datetime.now(UTC), group)
    stack.groups = [group]
    poller = _SimulatedPoller(runtime)
    return run_probe(stack, 60.0, clock=poller.clock, sleep=poller.sleep), poller


def _command_row(runtime: LocalRuntime, command_id: str) -> dict[str, Any] | None:
    item = runtime.admin.client("dynamodb").get_item(
        TableName=runtime.resources.table_names["RunsTable"],
        Key={"pk": {"S": f"COMMAND#{command_id}"}, "sk": {"S": "COMMAND"}},
    )
    return item.get("Item")


def test_doctor_probe_observes_the_status_event_recorded_by_patchpilot(runtime: LocalRuntime) -> None:
    found, poller = _probe(runtime, "dev")
    events = next(check for check in found if check.name == "status events")
    assert events.status == "ok", events
    assert "PatchPilot recorded all 1 within" in events.found
    probe_ids = [c.command_id for c in runtime.fleet.commands.values() if c.comment == "patchpilot doctor probe (dev)"]
    assert probe_ids
    row = _command_row(runtime, probe_ids[-1])
    assert row is not None
    assert row["foreign_command"]["BOOL"] is True
    assert poller.seconds < 60


def test_doctor_probe_fails_when_the_status_event_never_reaches_patchpilot(runtime: LocalRuntime) -> None:
    # Given staging's node whose agent's status events are lost on the way (the command itself succeeds)
    [victim] = [i for i in runtime.fleet.instances.values() if i.patch_group == "staging"]
    victim.drop_terminal_event = True
    try:
        found, poller = _probe(runtime, "staging")
    finally:
        victim.drop_terminal_event = False
    group = next(check for check in found if check.name == "group staging")
    events = next(check for check in found if check.name == "status events")
    assert group.status == "ok", group
    assert events.status == "fail", events
    assert "PatchPilot recorded none for 1/1 probe command(s) within 60 s" in events.found
    assert "is ENABLED" in events.fix
    assert poller.seconds >= 60  # it waited the whole bounded minute, in simulated polls, not wall time
