"""Compliance reports end to end: the demo writes them and its numbers match summary.json; `patchpilot report`."""

import csv
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from patchpilot_cli.main import app
from patchpilot_sim.runtime import LocalRuntime
from patchpilot_sim.scenarios import build_fleet
from patchpilot_sim.simulate import SimulationOptions, run_simulation
from patchpilot_sim.stack_standin import register_stack_outputs

# One worker runs the whole module: its module-scoped local stack (or cycle) is set up once, not once per worker.
pytestmark = [pytest.mark.runtime, pytest.mark.full_cycle, pytest.mark.xdist_group("test_compliance_report")]
STATUSES = ["compliant", "non_compliant", "unmanaged", "scan_in_progress", "install_in_progress"]
STACK = "patchpilot-report-test"


def test_compliance_demo_writes_the_reports_and_matches_summary_json(tmp_path: Path) -> None:
    summary = run_simulation(SimulationOptions(instances=10, out_dir=tmp_path))
    assert summary["problems"] == []
    compliance = json.loads((tmp_path / "summary.json").read_text())["compliance"]
    report = json.loads((tmp_path / "report.json").read_text())
    rows = list(csv.DictReader((tmp_path / "compliance.csv").open()))
    assert (tmp_path / "report.html").read_text().count("<svg") == 5
    assert sorted(p.name for p in (tmp_path / "stages").iterdir()) == [
        f"{stage}.html" for stage in sorted(["dev", "staging", "prod-1", "prod-2", "prod-3"])
    ]
    assert compliance["counts"] == report["summary"]["counts"] == dict(Counter(r["status"] for r in rows))
    assert (
        compliance["rate"] == report["summary"]["rate"] == round(100 * compliance["counts"]["compliant"] / len(rows), 1)
    )
    assert compliance["nodes"] == len(rows)
    assert all(compliance["counts"][status] > 0 for status in STATUSES)  # every status shows in the demo
    assert compliance["counts"]["unmanaged"] == 4  # two agentless instances, no patch group, a silent agent
    assert any(r["node_id"].startswith("mi-") for r in rows)
    assert compliance["nodes_at_risk"] >= 1
    cycle = compliance["cycle"]
    assert cycle["rate_before"] is not None
    assert cycle["rate_after"] >= cycle["rate_before"]
    assert cycle["report_uri"].endswith("/reports/2026-12/report.html")


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    with LocalRuntime() as rt:
        rt.add_instances([i for i in build_fleet(10, 3) if i.patch_group in {"dev", "prod-1"}])
        register_stack_outputs(rt, STACK)
        yield rt


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["report", *args, "--stack-name", STACK])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, "".join(
        line for line in result.output.splitlines(keepends=True) if not line.startswith('{"')
    )


def test_compliance_report_command_builds_an_on_demand_report(runtime: LocalRuntime, tmp_path: Path) -> None:
    exit_code, output = _cli("--out", str(tmp_path))
    assert exit_code == 0, output
    nodes = runtime.fleet.instances.values()
    # Nothing patched yet: a node is non-compliant when it misses a patch its baseline approves by now (a December
    # patch is not approved before its release date plus the baseline's ApproveAfterDays)
    non_compliant = [
        node
        for node in nodes
        if any(
            record.state == "Missing" and patch_id not in runtime._unapproved_patches(node)
            for patch_id, record in node.patches.items()
        )
    ]
    assert non_compliant
    rate = round(100 * (len(nodes) - len(non_compliant)) / len(nodes), 1)
    assert f"compliance {rate} % of {len(nodes)} nodes" in output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["compliance.csv", "report.html", "report.json"]


def test_compliance_report_command_builds_a_missing_run_report(runtime: LocalRuntime, tmp_path: Path) -> None:
    exit_code, output = _cli("--run", "2026-07", "--out", str(tmp_path))
    assert exit_code == 0, output
    assert json.loads((tmp_path / "report.json").read_text())["run_id"] == "2026-07"
    assert str(tmp_path / "report.html") in output


def _compliance_event(instance_id: str, event_id: str) -> dict[str, object]:
    event = json.loads((Path(__file__).resolve().parents[2] / "events/ssm/compliance-state-change.json").read_text())
    event["id"] = event_id
    event["resources"] = [f"arn:aws:ssm:us-east-1:123456789012:managed-instance/{instance_id}"]
    event["detail"] = {**event["detail"], "resource-id": instance_id, "last-runtime": "2099-01-01T00:00:00Z"}
    return event


def test_compliance_event_function_updates_a_node_once(runtime: LocalRuntime) -> None:
    instance_id = next(iter(runtime.fleet.instances))
    first = runtime.lambdas.invoke("ComplianceEventFunction", _compliance_event(instance_id, "event-1"))
    again = runtime.lambdas.invoke("ComplianceEventFunction", _compliance_event(instance_id, "event-1"))
    assert not first.failed, first.error_message
    assert (first.payload["outcome"], first.payload["status"]) == ("updated", "non_compliant")
    assert again.payload["outcome"] == "duplicate"
