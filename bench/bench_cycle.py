"""`make bench`: what a patch cycle costs on the local runtime, and what it carries in its state.

Measures, per fleet size: real seconds of the whole cycle, simulated hours, Lambda invocations, AWS calls, state
transitions and the largest state payload (which must not grow with the fleet), plus the per-event cost of the
command-result handler (the hot path: one invocation per instance and status change).
Writes out/bench/results.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from patchpilot_sim.simulate import SimulationOptions, run_simulation


def bench_cycle(instances: int, seed: int) -> dict[str, Any]:
    """One cycle in this process; its peak RSS is this process's (run it in a fresh one per size)."""
    started = time.perf_counter()
    summary = run_simulation(SimulationOptions(instances=instances, seed=seed, out_dir=None))
    elapsed = time.perf_counter() - started
    return {
        "instances": summary["fleet_instances"],
        "status": summary["status"],
        "real_seconds": round(elapsed, 1),
        "simulated_hours": summary["simulated_hours"],
        "lambda_invocations": summary["lambda_invocations"],
        "aws_calls": sum(summary["aws_calls"].values()),
        "state_transitions": summary["state_transitions"],
        "max_state_payload_bytes": summary["max_state_payload_bytes"],
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "command_result_ms_per_event": summary["command_result_ms_per_event"],
    }


def _in_fresh_process(instances: int, seed: int) -> dict[str, Any]:
    output = subprocess.run(
        [sys.executable, __file__, "--one", str(instances), "--seed", str(seed)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    row: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10,100,1000", help="fleet sizes, comma separated")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path("out/bench"))
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(bench_cycle(args.one, args.seed)))
        return
    rows = [_in_fresh_process(int(size), args.seed) for size in args.sizes.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    payloads = [row["max_state_payload_bytes"] for row in rows]
    result = {
        "cycles": rows,
        "payload_spread_bytes": max(payloads) - min(payloads),
        "invocations_per_instance": statistics.mean(
            row["lambda_invocations"] / row["instances"] for row in rows if row["instances"]
        ),
    }
    (args.out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    header = list(rows[0])
    print(" | ".join(header))
    for row in rows:
        print(" | ".join(str(row[key]) for key in header))
    print(f"largest state payload spread across fleet sizes: {result['payload_spread_bytes']} bytes")


if __name__ == "__main__":
    main()
