"""`make bench`: what a healthy patch cycle costs at 10, 1,000 and 10,000 instances, against issue 12's goals.

One time budget (BENCH_BUDGET_S, 9 minutes by default) covers the whole benchmark. The cold import of every handler
module is measured first, in fresh interpreters, against a minimal Powertools handler
(bench/minimal_powertools_handler.py): interleaved rounds, medians compared, no more rounds than fit in a third of the
budget. Then each fleet size runs in a fresh process (its peak RSS is its own) with what is left: a size that outlives
it is stopped and recorded as `{"skipped": reason}`, and so are the larger sizes after it. The orchestration cost of a
10,000-instance cycle is priced from the measured counts (costs.py); when the 10,000 run was skipped it is estimated on
the line through the two largest measured sizes, and says so.

Writes out/bench/bench.json and prints a markdown table, the cost breakdown and each goal met or missed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from patchpilot_sim.costs import (
    CycleCost,
    CycleCounts,
    counts_from_run,
    cycle_cost,
    extrapolate,
    function_configuration,
)
from patchpilot_sim.template import REPO_ROOT, SamTemplate

REPORTED_SIZES = ("10", "1000", "10000")
COST_SIZE = 10_000
DEFAULT_BUDGET_SECONDS = 540.0
DEFAULT_IMPORT_REPEATS = 3
IMPORT_SHARE_OF_BUDGET = 1 / 3  # cold-import rounds stop before they take more than this share of the budget
BASELINE_MODULE = "minimal_powertools_handler"
BENCH_DIR = REPO_ROOT / "bench"
MIB = 1024 * 1024
# Import one module in a fresh interpreter and print how long the import took (interpreter start-up excluded).
_IMPORT_PROBE = (
    "import importlib, sys, time\n"
    "sys.path.insert(0, {bench!r})\n"
    "started = time.perf_counter()\n"
    "importlib.import_module({module!r})\n"
    "print(time.perf_counter() - started)\n"
)
# What a handler's module sees at a cold start in Lambda (without the variables only an invocation needs).
LAMBDA_IMPORT_ENV = {
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_LAMBDA_FUNCTION_NAME": "cold-import-probe",
    "POWERTOOLS_SERVICE_NAME": "patchpilot",
    "POWERTOOLS_METRICS_NAMESPACE": "PatchPilot",
}


# -- one size, in this process ------------------------------------------------------------------------------------
def run_one(instances: int, seed: int) -> dict[str, Any]:
    """One healthy cycle in this process: the summary's counts, the metering and this process's peak RSS."""
    from patchpilot_sim.simulate import SimulationOptions, run_simulation

    started = time.perf_counter()
    summary = run_simulation(SimulationOptions(instances=instances, seed=seed, out_dir=None))
    cycle_seconds = time.perf_counter() - started
    return {
        "instances": summary["fleet_instances"],
        "status": summary["status"],
        "outcome_as_expected": summary["outcome_as_expected"],
        "problems": summary["problems"],
        "cycle_s": round(cycle_seconds, 2),
        "simulated_hours": summary["simulated_hours"],
        "stages": len(summary["stages"]),
        "state_transitions": summary["state_transitions"],
        "max_state_payload_bytes": summary["max_state_payload_bytes"],
        "aws_calls": summary["aws_calls"],
        "lambda_invocations": summary["lambda_invocations"],
        "sqs_messages": summary["sqs_messages"],
        "sqs_batches": summary["sqs_batches"],
        "metering": summary["metering"],
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


# -- every size, each in a fresh process, under one budget --------------------------------------------------------
@dataclass
class Budget:
    """Real seconds left for the simulations."""

    seconds: float

    def spend(self, seconds: float) -> None:
        self.seconds = max(0.0, self.seconds - seconds)


Runner = Callable[[int, int, float], dict[str, Any]]


def run_in_fresh_process(instances: int, seed: int, timeout: float) -> dict[str, Any]:
    """Run one size in a child interpreter; `{"skipped": ...}` when it outlives `timeout` or fails."""
    command = [sys.executable, "-m", "patchpilot_sim.benchmark", "--one", str(instances), "--seed", str(seed)]
    started = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"skipped": f"stopped after {timeout:.0f} s, the time left of the benchmark's budget"}
    wall = time.perf_counter() - started
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        return {"skipped": f"the run failed (exit {done.returncode}): {tail}"}
    row: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    row["wall_s"] = round(wall, 1)
    return row


def run_sizes(
    sizes: Sequence[int], seed: int, budget: Budget, runner: Runner = run_in_fresh_process
) -> dict[str, dict[str, Any]]:
    """Every size, smallest first; once one is skipped for time, the larger ones are skipped without running."""
    rows: dict[str, dict[str, Any]] = {}
    out_of_time: str | None = None
    for size in sorted(sizes):
        if out_of_time is not None:
            rows[str(size)] = {"skipped": f"not run: {out_of_time}"}
            continue
        if budget.seconds <= 0:
            rows[str(size)] = {"skipped": "not run: the benchmark's time budget is spent"}
            continue
        started = time.perf_counter()
        rows[str(size)] = runner(size, seed, budget.seconds)
        budget.spend(time.perf_counter() - started)
        if "skipped" in rows[str(size)] and rows[str(size)]["skipped"].startswith("stopped"):
            out_of_time = f"the {size}-instance fleet already ran out of time"
    return rows


# -- cold imports -------------------------------------------------------------------------------------------------
def handler_modules(template: SamTemplate) -> dict[str, str]:
    """Each function's handler module, by logical id."""
    return {
        logical_id: str(resource["Properties"]["Handler"]).rsplit(".", 1)[0]
        for logical_id, resource in sorted(template.of_type("AWS::Serverless::Function").items())
    }


def import_seconds(module: str) -> float:
    """One cold import of a module in a fresh interpreter (start-up excluded)."""
    code = _IMPORT_PROBE.format(bench=str(BENCH_DIR), module=module)
    env = {**os.environ, **LAMBDA_IMPORT_ENV}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def cold_import_ratios(
    modules: Mapping[str, str],
    repeats: int,
    measure: Callable[[str], float] = import_seconds,
    time_limit: float = math.inf,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, Any]:
    """Median cold import of each handler over the baseline's median, measured interleaved (drift hits both alike).

    Up to `repeats` rounds of every module; no further round starts when it would end past `time_limit` seconds
    (at least one round runs).
    """
    samples: dict[str, list[float]] = {name: [] for name in [BASELINE_MODULE, *modules]}
    started = clock()
    rounds = 0
    while rounds < repeats:
        round_started = clock()
        samples[BASELINE_MODULE].append(measure(BASELINE_MODULE))
        for name, module in modules.items():
            samples[name].append(measure(module))
        rounds += 1
        now = clock()
        if (now - started) + (now - round_started) > time_limit:
            break
    medians = {name: statistics.median(values) for name, values in samples.items()}
    baseline = medians[BASELINE_MODULE]
    return {
        "baseline_s": round(baseline, 4),
        "repeats": rounds,
        "seconds": {name: round(medians[name], 4) for name in modules},
        "ratios": {name: round(medians[name] / baseline, 3) for name in modules},
    }


# -- results ------------------------------------------------------------------------------------------------------
def _healthy(rows: Mapping[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The runs that ended as the healthy scenario expects: only their counts describe a whole cycle."""
    return {size: row for size, row in rows.items() if "skipped" not in row and row.get("outcome_as_expected")}


def cycle_outcome(row: Mapping[str, Any]) -> str:
    """How a run's cycle ended: SUCCEEDED, or its status and first problem (a failed cycle's counts are partial)."""
    if row.get("outcome_as_expected"):
        return str(row["status"])
    problems = row.get("problems") or ["not as expected"]
    return f"{row['status']}: {problems[-1]}"


def _per_size(rows: Mapping[str, dict[str, Any]], value: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    reported = sorted({*REPORTED_SIZES, *rows}, key=int)
    result: dict[str, Any] = {}
    for size in reported:
        row = rows.get(size, {"skipped": "not in BENCH_SIZES"})
        result[size] = {"skipped": row["skipped"]} if "skipped" in row else value(row)
    return result


def _events_per_second(row: dict[str, Any]) -> float:
    handled = row["metering"]["command_result"]
    return round(handled["events"] / handled["seconds"], 1) if handled["seconds"] else 0.0


def cost_at_10000(
    rows: Mapping[str, dict[str, Any]], configuration: Mapping[str, tuple[int, str]]
) -> tuple[CycleCost | None, str]:
    """The 10,000-instance cycle's cost: measured, or estimated from the measured sizes (the basis says which)."""
    measured = {int(size): counts_from_run(row, configuration) for size, row in _healthy(rows).items()}
    if COST_SIZE in measured:
        return cycle_cost(measured[COST_SIZE]), "measured at 10000 instances"
    if not measured:
        return None, "no size ran a whole healthy cycle"
    sizes = sorted(measured)
    if len(sizes) == 1:
        only = measured[sizes[0]]
        empty_fleet = CycleCounts(state_transitions=only.state_transitions, aws_calls={})
        counts = extrapolate(empty_fleet, 0, only, sizes[0], COST_SIZE)
        basis = f"estimated: the {sizes[0]}-instance counts scaled to 10000, transitions held (10000 not measured)"
        return cycle_cost(counts), basis
    small, large = sizes[-2:]
    counts = extrapolate(measured[small], small, measured[large], large, COST_SIZE)
    return cycle_cost(counts), f"estimated on the line through {small} and {large} instances (10000 not measured)"


def build_results(
    rows: Mapping[str, dict[str, Any]], imports: Mapping[str, Any], configuration: Mapping[str, tuple[int, str]]
) -> dict[str, Any]:
    """bench.json: every metric by fleet size (string keys), the cold import ratios and the priced cycle."""
    cost, basis = cost_at_10000(rows, configuration)
    return {
        "cycle": _per_size(rows, cycle_outcome),
        "state_transitions": _per_size(rows, lambda row: row["state_transitions"]),
        "max_state_payload_bytes": _per_size(rows, lambda row: row["max_state_payload_bytes"]),
        "aws_calls": _per_size(rows, lambda row: row["aws_calls"]),
        "wall_s": _per_size(rows, lambda row: row["wall_s"]),
        "peak_rss_mib": _per_size(rows, lambda row: row["peak_rss_mib"]),
        "per_event": _per_size(rows, lambda row: row["metering"]["per_event"]),
        "command_result_events_per_s": _per_size(rows, _events_per_second),
        "cold_import_ratio": dict(imports.get("ratios", {})),
        "cost_usd_10000": round(cost.total_usd, 4) if cost is not None else {"skipped": basis},
        "cost_basis_10000": basis,
        "cost_breakdown_10000": cost.as_dict() if cost is not None else None,
        "cold_import": dict(imports),
        "runs": {size: rows[size] for size in sorted(rows, key=int)},
    }


def markdown_table(results: Mapping[str, Any]) -> str:
    """One row per fleet size."""
    header = (
        "| instances | wall s | peak RSS MiB | state transitions | max payload B | AWS calls "
        "| table ops / event | API calls / event | events / s | cycle |"
    )
    lines = [header, "|" + "---|" * header.count(" | ") + "---|"]
    for size, transitions in results["state_transitions"].items():
        if isinstance(transitions, dict):
            lines.append(f"| {size} | skipped: {transitions['skipped']} |" + " |" * 8)
            continue
        per_event = results["per_event"][size]
        cells = [
            size,
            f"{results['wall_s'][size]:.1f}",
            f"{results['peak_rss_mib'][size]:.0f}",
            str(transitions),
            str(results["max_state_payload_bytes"][size]),
            str(sum(results["aws_calls"][size].values())),
            f"{per_event['table_ops']:.2f}",
            f"{per_event['api_calls']:.2f}",
            f"{results['command_result_events_per_s'][size]:.1f}",
            results["cycle"][size],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report(rows: Mapping[str, dict[str, Any]], imports: Mapping[str, Any], out: Path) -> dict[str, Any]:
    """Write bench.json from the measured rows and cold imports; print the table, the cost and the goals."""
    from patchpilot_sim.bench_goals import evaluate, render_goals

    configuration = function_configuration(SamTemplate())
    results = build_results(rows, imports, configuration)
    results["goals"] = evaluate(results)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(results, indent=2) + "\n")
    print()
    print(markdown_table(results))
    print()
    print(f"10,000-instance cycle, {results['cost_basis_10000']}:")
    cost = cost_at_10000(rows, configuration)[0]
    print("\n".join(cost.render() if cost is not None else []))
    ratios: Mapping[str, float] = imports.get("ratios", {})
    if ratios:
        worst = max(ratios, key=lambda name: ratios[name])
        print(
            f"cold import vs a minimal Powertools handler ({imports['baseline_s']:.3f} s, median of "
            f"{imports['repeats']}): worst {worst} {ratios[worst]}"
        )
    print()
    print("\n".join(render_goals(results["goals"])))
    print(f"\nwrote {out / 'bench.json'}")
    return results


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=os.environ.get("BENCH_SIZES", ",".join(REPORTED_SIZES)))
    parser.add_argument("--budget", type=float, default=float(os.environ.get("BENCH_BUDGET_S", DEFAULT_BUDGET_SECONDS)))
    parser.add_argument(
        "--import-repeats", type=int, default=int(os.environ.get("BENCH_IMPORT_REPEATS", DEFAULT_IMPORT_REPEATS))
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path("out/bench"))
    parser.add_argument(
        "--from-json", type=Path, help="report again from an earlier bench.json's measurements (prices, goals)"
    )
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one is not None:
        print(json.dumps(run_one(args.one, args.seed)))
        return
    if args.from_json is not None:
        earlier = json.loads(args.from_json.read_text())
        report(earlier["runs"], earlier["cold_import"], args.out)
        return
    sizes = [int(size) for size in args.sizes.split(",") if size.strip()]
    budget = Budget(args.budget)
    print(f"cold imports: up to {args.import_repeats} interleaved rounds of every handler and the minimal handler ...")
    started = time.perf_counter()
    imports = cold_import_ratios(
        handler_modules(SamTemplate()), args.import_repeats, time_limit=args.budget * IMPORT_SHARE_OF_BUDGET
    )
    budget.spend(time.perf_counter() - started)
    print(f"fleet sizes {sizes}, each in a fresh process, {budget.seconds:.0f} s of the budget left ...")
    report(run_sizes(sizes, args.seed, budget), imports, args.out)


if __name__ == "__main__":
    main()
