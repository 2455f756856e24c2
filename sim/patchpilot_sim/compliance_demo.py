"""The demo's compliance story: a fleet that shows all five statuses, and the reports copied out of the bucket.

Before the cycle the fleet gains a hybrid node (``mi-…``, patched like an instance), two EC2 instances without the
SSM agent (unmanaged), a managed node without a patch group, and an agent of the ``legacy`` group that stopped
reporting ten days ago; the compliance refresh runs once (as its schedule would), so the cycle has a "before".
After the cycle, a new instance boots (PatchPilot's registration starts its first scan) and on-call starts an
emergency run on dev whose install is still running when the on-demand compliance report is taken: a snapshot with
a scan and an install in progress. Every step goes through the product's own functions.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from patchpilot_sim.fleet import ACCOUNT_ID, Command, PatchOperation, SimulatedInstance
from patchpilot_sim.lambdas import InvocationResult

if TYPE_CHECKING:
    from patchpilot_sim.runtime import LocalRuntime

HYBRID_NODE_ID = "mi-0c0ffee0c0ffee001"
SLOW_MINUTES = 24 * 60.0  # longer than the 2-hour execution timeout: the invocation runs until that timeout
SNAPSHOT_TIMEOUT_SECONDS = 600.0
"""While the snapshot is set up the simulation runs at 60x: an AWS-RunPatchBaseline invocation ends after its
2-hour execution timeout, so the first scan and the emergency install overlap for up to 2 real minutes (at 3,600x,
2 seconds), far more than the in-process latency between them. The moment both run is caught by a pause."""


@dataclass
class ComplianceDemo:
    """The extra nodes of the demo fleet and what the snapshot found."""

    runtime: LocalRuntime
    notes: list[str]

    @classmethod
    def prepare(cls, runtime: LocalRuntime) -> ComplianceDemo:
        """Add the extra nodes and run one compliance refresh (the cycle's "before")."""
        demo = cls(runtime, [])
        demo._add_hybrid_node()
        demo._launch_unmanaged(2)
        demo._add_managed("AMAZON_LINUX_2", {"Name": "build-runner-01"}, group="")
        demo._add_silent_agent()
        result = invoke_as_operator(runtime, "ComplianceRefreshFunction", {"source": "patchpilot.demo"})
        if result.failed:
            raise RuntimeError(f"ComplianceRefreshFunction failed: {result.error_type}: {result.error_message}")
        return demo

    def _ec2(self) -> Any:
        return self.runtime.admin.client("ec2")

    def _run_instance(self, tags: dict[str, str]) -> str:
        tag_spec: Any = [{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]
        reservation = self._ec2().run_instances(
            ImageId="ami-12c6146b", MinCount=1, MaxCount=1, InstanceType="t3.micro", TagSpecifications=tag_spec
        )
        return str(reservation["Instances"][0]["InstanceId"])

    def _add_hybrid_node(self) -> None:
        tags = {"PatchGroup": "prod-3", "Name": "onprem-db-01", "OS": "UBUNTU"}
        self.runtime.fleet.add_instance(SimulatedInstance(HYBRID_NODE_ID, "prod-3", "UBUNTU", tags))
        self.notes.append(f"hybrid node {HYBRID_NODE_ID} (on premises, prod-3)")

    def _launch_unmanaged(self, count: int) -> None:
        for index in range(count):
            instance_id = self._run_instance({"PatchGroup": "prod-2", "Name": f"no-agent-{index + 1:02d}"})
            self.notes.append(f"{instance_id} runs without the SSM agent (unmanaged)")

    def _add_managed(self, platform: str, tags: dict[str, str], group: str, **fields: Any) -> SimulatedInstance:
        instance = SimulatedInstance(self._run_instance(tags), group, platform, tags, **fields)
        self.runtime.fleet.add_instance(instance)
        return instance

    def _add_silent_agent(self) -> None:
        start = self.runtime.clock.start
        last_scan = start - timedelta(days=10)
        instance = self._add_managed(
            "WINDOWS",
            {"PatchGroup": "legacy", "Name": "legacy-app-01"},
            group="legacy",
            online=False,
            offline_since=last_scan,
            last_operation=PatchOperation("Scan", last_scan, last_scan, "RebootIfNeeded", frozenset()),
        )
        self.notes.append(f"{instance.instance_id} (legacy) stopped reporting ten days ago")

    # -- after the cycle -----------------------------------------------------------------------------------------
    def snapshot(self, run_id: str, catalog_bake: dict[str, int]) -> dict[str, Any]:
        """Boot a new instance, start an emergency run on dev, and take the on-demand report while both run."""
        new = self._add_managed("AMAZON_LINUX_2023", {"Name": "web-new-01"}, group="", scan_minutes=SLOW_MINUTES)
        dev = [i for i in self.runtime.fleet.instances.values() if i.patch_group == "dev"]
        dev[0].install_minutes = SLOW_MINUTES
        both = BothRunning(self, dev[0].instance_id, new.instance_id)
        self.runtime.fleet.invocation_started.append(both)
        try:
            self.runtime.router.put_event(_instance_running(new.instance_id, self.runtime.region))
            started = invoke_as_operator(
                self.runtime,
                "StartRolloutFunction",
                {
                    "mode": "emergency",
                    "stages": ["dev"],
                    "patch_ids": ["openssh-server.x86_64"],
                    "bake_seconds": {"dev": catalog_bake.get("dev", 1)},
                },
            )
            if started.failed:
                raise RuntimeError(f"emergency start failed: {started.error_type}: {started.error_message}")
            if not self.runtime.run_until(both.reached.is_set, real_timeout=SNAPSHOT_TIMEOUT_SECONDS):
                raise TimeoutError("the emergency install and the first scan did not both start")
            report = invoke_as_operator(
                self.runtime, "ComplianceReportFunction", {"action": "on_demand", "run_id": run_id}
            )
        finally:
            self.runtime.fleet.invocation_started.remove(both)
        self.runtime.admin.client("stepfunctions").stop_execution(
            executionArn=started.payload["execution_arn"], cause="demo snapshot taken"
        )
        if report.failed:
            raise RuntimeError(f"ComplianceReportFunction failed: {report.error_type}: {report.error_message}")
        self.notes.append(
            f"snapshot: {new.instance_id} scanning (first scan), {dev[0].instance_id} installing (emergency run)"
        )
        return dict(report.payload)

    def running(self, instance_id: str, operation: str) -> bool:
        """Whether the instance runs a command of that operation now."""
        with self.runtime.fleet._lock:
            return any(
                command.operation == operation
                and instance_id in command.invocations
                and command.invocations[instance_id].status in ("Pending", "InProgress")
                for command in self.runtime.fleet.commands.values()
            )


class BothRunning:
    """A fleet observer: notes the moment the emergency install and the first scan both run.

    It runs as the second invocation starts; the driver's `run_until` stops at the next quiescent point, before any
    later timer (no invocation can end in between), and simulated time stands still while the snapshot is taken.
    """

    def __init__(self, demo: ComplianceDemo, installing: str, scanning: str) -> None:
        self.demo = demo
        self.installing = installing
        self.scanning = scanning
        self.reached = threading.Event()

    def __call__(self, command: Command, instance_id: str) -> None:
        if self.reached.is_set() or instance_id not in (self.installing, self.scanning):
            return
        if self.demo.running(self.installing, "Install") and self.demo.running(self.scanning, "Scan"):
            self.reached.set()


def _instance_running(instance_id: str, region: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "EC2 Instance State-change Notification",
        "source": "aws.ec2",
        "account": ACCOUNT_ID,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "region": region,
        "resources": [f"arn:aws:ec2:{region}:{ACCOUNT_ID}:instance/{instance_id}"],
        "detail": {"instance-id": instance_id, "state": "running"},
    }


def copy_reports(runtime: LocalRuntime, run_id: str, report_uri: str, out: Path) -> dict[str, Path]:
    """Copy the on-demand report set and the run's stage reports from the artifacts bucket into `out`."""
    s3 = runtime.admin.client("s3")
    bucket, _, key = report_uri.removeprefix("s3://").partition("/")
    prefix = key.rsplit("/", 1)[0]
    written: dict[str, Path] = {}
    for name in ("report.html", "compliance.csv", "report.json"):
        body = s3.get_object(Bucket=bucket, Key=f"{prefix}/{name}")["Body"].read()
        (out / name).write_bytes(body)
        written[name] = out / name
    (out / "stages").mkdir(exist_ok=True)
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"reports/{run_id}/stages/").get("Contents", [])
    for item in listed:
        name = item["Key"].rsplit("/", 1)[1]
        if name.endswith(".html"):
            (out / "stages" / name).write_bytes(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())
            written[f"stages/{name}"] = out / "stages" / name
    return written


def compliance_object(report_json: Path, cycle: dict[str, Any] | None) -> dict[str, Any]:
    """summary.json's `compliance`: the report's rate and counts per status, and the cycle's before/after."""
    report = json.loads(report_json.read_text())
    summary = report["summary"]
    return {
        "rate": summary["rate"],
        "nodes": summary["nodes"],
        "counts": summary["counts"],
        "taken_at": summary["taken_at"],
        "critical_missing": summary["critical_missing"],
        "important_missing": summary["important_missing"],
        "stale_scans": len(summary["stale_scans"]),
        "nodes_at_risk": len(report["risks"]),
        "cycle": cycle,
    }


# What an operator (or Lambda's own async retries) does with a call that failed on a transient AWS fault: call again.
# The chaos scenario's faults reach these direct invocations too; every one of them is idempotent.
OPERATOR_RETRIED_ERRORS = frozenset({"TransientAwsError", "ComplianceReadFailed", "Runtime.ExitError"})
OPERATOR_ATTEMPTS = 5


def invoke_as_operator(runtime: LocalRuntime, function: str, payload: dict[str, Any]) -> InvocationResult:
    """Invoke a function like an operator would: again, up to `OPERATOR_ATTEMPTS` times, after a transient failure."""
    result = runtime.lambdas.invoke(function, payload)
    for _ in range(OPERATOR_ATTEMPTS - 1):
        if not result.failed or result.error_type not in OPERATOR_RETRIED_ERRORS:
            break
        result = runtime.lambdas.invoke(function, payload)
    return result
