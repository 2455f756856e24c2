"""A rollout that stops still reports: the failed stage gets its completion report, the run its compliance report.

A report that cannot be written never hides why the rollout stopped: the run ends FAILED with the stage's error.
"""

import json
from typing import Any

import pytest

from patchpilot_sim.faults import NO_FAULTS, FaultInjector
from patchpilot_sim.runtime import LocalRuntime
from tests.runtime_helpers import entered_states, launch_fleet, start

pytestmark = pytest.mark.runtime


def _object(runtime: LocalRuntime, key: str) -> str:
    s3 = runtime.admin.client("s3")
    body = s3.get_object(Bucket=runtime.bucket_names["ArtifactsBucket"], Key=key)["Body"].read()
    return str(body.decode())


def _keys(runtime: LocalRuntime, prefix: str) -> list[str]:
    s3 = runtime.admin.client("s3")
    listed = s3.list_objects_v2(Bucket=runtime.bucket_names["ArtifactsBucket"], Prefix=prefix)
    return sorted(item["Key"] for item in listed.get("Contents", []))


def test_stopped_rollout_reports_the_failed_stage_and_the_fleet_compliance() -> None:
    with LocalRuntime(seed=13) as runtime:
        fleet = launch_fleet(runtime, groups={"dev", "staging"})
        fleet["dev"][0].install_outcome = "Failed"
        description = start(runtime, ["dev", "staging"])
        arn = description["executionArn"]
        assert (description["status"], description["error"]) == ("FAILED", "StageHealthCheckFailed")
        states = entered_states(runtime, arn)
        assert states.count("Write Failed Stage Report") == 1
        assert "Summarize Stopped Rollout" in states
        report = json.loads(_object(runtime, "reports/manual-2026-12/stages/dev.json"))
        assert (report["status"], report["stage_name"]) == ("failed", "dev")
        assert report["failure"].startswith("StageHealthCheckFailed: stage dev (patch step, attempt 2)")
        assert report["failed"] >= 1
        assert report["targeted"] == len(fleet["dev"])
        assert "The stage stopped:" in _object(runtime, "reports/manual-2026-12/stages/dev.html")
        assert _keys(runtime, "reports/manual-2026-12/stages/") == [
            "reports/manual-2026-12/stages/dev.csv",
            "reports/manual-2026-12/stages/dev.html",
            "reports/manual-2026-12/stages/dev.json",
        ]
        compliance = json.loads(_object(runtime, "reports/manual-2026-12/report.json"))
        assert compliance["title"].endswith("(rollout stopped: StageHealthCheckFailed)")
        assert [stage["status"] for stage in compliance["stages"]] == ["failed"]


def _report_keys(params: dict[str, Any]) -> bool:
    return str(params.get("Key", "")).startswith("reports/")


def test_stopped_rollout_whose_reports_cannot_be_written_still_fails_with_the_stage_error() -> None:
    with LocalRuntime(seed=13) as runtime:
        fleet = launch_fleet(runtime, groups={"dev"})
        fleet["dev"][0].install_outcome = "Failed"
        injector = FaultInjector(NO_FAULTS, seed=1)
        injector.install(runtime)
        injector.refuse("s3", "PutObject", "AccessDenied", _report_keys)
        description = start(runtime, ["dev"])
        assert (description["status"], description["error"]) == ("FAILED", "StageHealthCheckFailed")
        assert "stage dev (patch step, attempt 2)" in description["cause"]
        assert injector.injected["s3.AccessDenied"] >= 2  # the stage report and the compliance report were refused
        assert _keys(runtime, "reports/") == []
        assert [a["kind"] for a in runtime.notifications()][-1] == "rollout_failed"
