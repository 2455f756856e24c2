"""`make bench`'s report: bench.json's shape, the markdown table, the time budget, the cold-import ratio, the goals."""

from typing import Any

import pytest

from patchpilot_sim.bench_goals import evaluate, render_goals, spread
from patchpilot_sim.benchmark import (
    BASELINE_MODULE,
    Budget,
    build_results,
    cold_import_ratios,
    handler_modules,
    markdown_table,
    run_sizes,
)
from patchpilot_sim.template import SamTemplate

CONFIGURATION = {"CommandResultFunction": (256, "arm64")}


def _run(
    instances: int, wall: float, transitions: int = 200, payload: int = 5_000, healthy: bool = True
) -> dict[str, Any]:
    events = instances * 4
    return {
        "instances": instances,
        "status": "SUCCEEDED" if healthy else "FAILED",
        "outcome_as_expected": healthy,
        "problems": [] if healthy else ["ended FAILED StageHealthCheckFailed, expected SUCCEEDED", "750 unhealthy"],
        "stages": 5,
        "wall_s": wall,
        "peak_rss_mib": 300.0 + instances / 10,
        "state_transitions": transitions,
        "max_state_payload_bytes": payload,
        "aws_calls": {"ssm.SendCommand": 10, "dynamodb.GetItem": 2 * events},
        "sqs_messages": events,
        "sqs_batches": events // 10 + 1,
        "metering": {
            "invocations": {"CommandResultFunction": {"count": events // 10 + 1, "billed_ms": events * 5}},
            "dynamodb_request_units": {"read": 2.0 * events, "write": 4.0 * events},
            "command_result": {"events": events, "table_ops": 3 * events, "api_calls": 4 * events, "seconds": 2.0},
            "per_event": {"table_ops": 3.0, "api_calls": 4.0},
        },
    }


IMPORTS = {"baseline_s": 1.0, "repeats": 3, "seconds": {}, "ratios": {"CommandResultFunction": 1.1}}


def test_bench_results_have_every_metric_by_string_size() -> None:
    rows = {"10": _run(10, 20.0), "1000": _run(1_000, 8.0), "10000": {"skipped": "stopped after 400 s"}}
    results = build_results(rows, IMPORTS, CONFIGURATION)
    for key in (
        "state_transitions",
        "max_state_payload_bytes",
        "aws_calls",
        "wall_s",
        "peak_rss_mib",
        "per_event",
        "command_result_events_per_s",
    ):
        assert list(results[key]) == ["10", "1000", "10000"], key
        assert results[key]["10000"] == {"skipped": "stopped after 400 s"}
    assert results["aws_calls"]["1000"] == {"ssm.SendCommand": 10, "dynamodb.GetItem": 8_000}
    assert results["per_event"]["10"] == {"table_ops": 3.0, "api_calls": 4.0}
    assert results["command_result_events_per_s"]["1000"] == 2_000.0
    assert results["cold_import_ratio"] == {"CommandResultFunction": 1.1}
    assert isinstance(results["cost_usd_10000"], float)
    assert results["cost_basis_10000"] == "estimated on the line through 10 and 1000 instances (10000 not measured)"


def test_bench_results_name_a_size_left_out_of_bench_sizes() -> None:
    results = build_results({"10": _run(10, 20.0)}, IMPORTS, CONFIGURATION)
    assert results["wall_s"] == {
        "10": 20.0,
        "1000": {"skipped": "not in BENCH_SIZES"},
        "10000": {"skipped": "not in BENCH_SIZES"},
    }
    assert results["cost_basis_10000"].startswith("estimated: the 10-instance counts scaled")
    lines = {line["item"]: line["quantity"] for line in results["cost_breakdown_10000"]["lines"]}
    assert lines["Step Functions Standard state transitions"] == 200  # a cycle's transitions do not scale
    assert lines["DynamoDB on-demand write request units"] == pytest.approx(160_000)  # 4 WRU x 40 events x 1,000


def test_bench_cost_measured_at_10000_when_it_ran() -> None:
    results = build_results({"10000": _run(10_000, 50.0)}, IMPORTS, CONFIGURATION)
    assert results["cost_basis_10000"] == "measured at 10000 instances"
    # 200 transitions ($0.005) + 40,000 events' 80,000 RRU ($0.01) and 160,000 WRU ($0.1), SQS, Lambda
    breakdown = {line["item"]: line["usd"] for line in results["cost_breakdown_10000"]["lines"]}
    assert breakdown["Step Functions Standard state transitions"] == pytest.approx(0.005)
    assert breakdown["DynamoDB on-demand write request units"] == pytest.approx(0.1)
    assert results["cost_usd_10000"] == pytest.approx(round(results["cost_breakdown_10000"]["total_usd"], 4))


def test_bench_no_cost_when_nothing_was_measured() -> None:
    results = build_results({"10": {"skipped": "the run failed"}}, IMPORTS, CONFIGURATION)
    assert results["cost_usd_10000"] == {"skipped": "no size ran a whole healthy cycle"}
    goal = _goals(results)["orchestration cost of a 10,000-instance cycle <= $0.10"]
    assert (goal["status"], goal["detail"]) == ("not measured", "no size ran a whole healthy cycle")


def test_bench_markdown_table_one_row_per_size() -> None:
    rows = {"10": _run(10, 20.04), "1000": {"skipped": "stopped after 400 s"}}
    table = markdown_table(build_results(rows, IMPORTS, CONFIGURATION)).splitlines()
    assert table[0].startswith("| instances | wall s | peak RSS MiB | state transitions |")
    assert table[1] == "|---|---|---|---|---|---|---|---|---|---|"
    assert table[2] == "| 10 | 20.0 | 301 | 200 | 5000 | 90 | 3.00 | 4.00 | 20.0 | SUCCEEDED |"
    assert table[3].startswith("| 1000 | skipped: stopped after 400 s |")
    assert table[4].startswith("| 10000 | skipped: not in BENCH_SIZES |")
    assert all(line.count("|") == 11 for line in table)


def test_bench_a_cycle_that_failed_is_shown_and_kept_out_of_the_comparisons() -> None:
    rows = {"10": _run(10, 20.0), "1000": _run(1_000, 5.0, transitions=150, healthy=False)}
    results = build_results(rows, IMPORTS, CONFIGURATION)
    assert results["cycle"]["1000"] == "FAILED: 750 unhealthy"
    assert markdown_table(results).splitlines()[3].endswith("| FAILED: 750 unhealthy |")
    assert results["cost_basis_10000"].startswith("estimated: the 10-instance counts scaled")  # not through 1000
    goals = _goals(results)
    assert goals["the healthy cycle SUCCEEDED at every size run"]["status"] == "missed"
    assert goals["state transitions identical at every size"]["status"] == "not measured"
    assert goals["1,000 instances in <= 10 s"] == {
        "goal": "1,000 instances in <= 10 s",
        "status": "not measured",
        "detail": "5 s, but the cycle did not end as expected",
    }


def test_bench_a_failed_cycle_over_its_time_limit_still_misses_it() -> None:
    rows = {"1000": _run(1_000, 1_260.0, healthy=False)}
    goal = _goals(build_results(rows, IMPORTS, CONFIGURATION))["1,000 instances in <= 10 s"]
    assert goal["status"] == "missed"
    assert goal["detail"].endswith("(and the cycle did not end as expected)")


def test_bench_run_sizes_skips_larger_sizes_once_one_runs_out_of_time() -> None:
    ran: list[tuple[int, float]] = []

    def runner(size: int, seed: int, timeout: float) -> dict[str, Any]:
        ran.append((size, timeout))
        return _run(size, 1.0) if size == 10 else {"skipped": f"stopped after {timeout:.0f} s"}

    rows = run_sizes([10_000, 10, 1_000], seed=7, budget=Budget(480.0), runner=runner)
    assert [size for size, _ in ran] == [10, 1_000]
    assert ran[0][1] == 480.0
    assert rows["10000"] == {"skipped": "not run: the 1000-instance fleet already ran out of time"}
    assert list(rows) == ["10", "1000", "10000"]


def test_bench_run_sizes_records_a_spent_budget() -> None:
    def runner(size: int, seed: int, timeout: float) -> dict[str, Any]:
        return {"skipped": "the run failed (exit 1): boom"}

    rows = run_sizes([10, 1_000], seed=7, budget=Budget(0.0), runner=runner)
    assert rows == {
        "10": {"skipped": "not run: the benchmark's time budget is spent"},
        "1000": {"skipped": "not run: the benchmark's time budget is spent"},
    }


def test_bench_cold_import_ratio_is_median_over_baseline_median() -> None:
    samples = {BASELINE_MODULE: [1.0, 3.0, 1.2], "patchpilot.handlers.a": [1.5, 1.3, 9.0]}
    calls: list[str] = []

    def measure(module: str) -> float:
        calls.append(module)
        return samples[module].pop(0)

    result = cold_import_ratios({"AFunction": "patchpilot.handlers.a"}, repeats=3, measure=measure)
    assert calls == [BASELINE_MODULE, "patchpilot.handlers.a"] * 3  # interleaved
    assert result["ratios"] == {"AFunction": 1.25}  # 1.5 / 1.2
    assert result["baseline_s"] == 1.2


def test_bench_cold_import_rounds_stop_before_the_time_limit() -> None:
    ticks = iter([0.0, 0.0, 40.0, 40.0, 80.0])  # start; round 1 from 0 to 40 s; round 2 from 40 to 80 s

    def clock() -> float:
        return next(ticks)

    result = cold_import_ratios(
        {"AFunction": "patchpilot.handlers.a"}, repeats=5, measure=lambda _: 1.0, time_limit=100.0, clock=clock
    )
    assert result["repeats"] == 2  # a third round would end at 120 s, past the limit
    assert result["ratios"] == {"AFunction": 1.0}


def test_bench_handler_modules_of_the_template() -> None:
    modules = handler_modules(SamTemplate())
    assert modules["CommandResultFunction"] == "patchpilot.handlers.command_result"
    assert len(modules) == len(SamTemplate().of_type("AWS::Serverless::Function"))


def _goals(results: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {goal["goal"]: goal for goal in evaluate(results)}


def test_bench_goals_met_missed_and_not_measured() -> None:
    rows = {"10": _run(10, 20.0, transitions=260), "1000": _run(1_000, 12.5, transitions=260, payload=9_000)}
    goals = _goals(build_results(rows, IMPORTS, CONFIGURATION))
    assert goals["10,000 instances in <= 60 s"]["status"] == "not measured"
    assert goals["1,000 instances in <= 10 s"] == {
        "goal": "1,000 instances in <= 10 s",
        "status": "missed",
        "detail": "12.5 s, 2.5 s (25%) over",
    }
    assert goals["state transitions identical at every size"]["status"] == "met"
    assert goals["<= 40 state transitions per stage"]["detail"] == "52 per stage, 12 per stage (30%) over"
    assert goals["largest state payload <= 8 KiB"]["status"] == "missed"
    assert goals["largest state payload flat across sizes"]["detail"] == "10: 5000, 1000: 9000 (80% apart)"
    assert goals["table ops per command-result event flat"]["status"] == "met"
    assert goals["cold import <= 1.3 x a minimal Powertools handler"]["detail"] == "worst CommandResultFunction: 1.1 x"
    assert (
        "estimated on the line through 10 and 1000"
        in goals["orchestration cost of a 10,000-instance cycle <= $0.10"]["detail"]
    )
    assert render_goals(evaluate(build_results(rows, IMPORTS, CONFIGURATION)))[0] == "goals (issue 12):"


def test_bench_goals_per_event_cost_may_fall_but_not_grow() -> None:
    falling = {"10": _run(10, 1.0), "1000": _run(1_000, 1.0)}
    falling["1000"]["metering"]["per_event"] = {"table_ops": 0.5, "api_calls": 4.4}
    goals = _goals(build_results(falling, IMPORTS, CONFIGURATION))
    assert goals["table ops per command-result event flat"] == {
        "goal": "table ops per command-result event flat",
        "status": "met",
        "detail": "10: 3, 1000: 0.5",
    }
    assert goals["API calls per command-result event flat"]["status"] == "met"  # 10 % above: within the tolerance
    falling["1000"]["metering"]["per_event"] = {"table_ops": 3.5, "api_calls": 4.0}
    goal = _goals(build_results(falling, IMPORTS, CONFIGURATION))["table ops per command-result event flat"]
    assert goal == {
        "goal": "table ops per command-result event flat",
        "status": "missed",
        "detail": "10: 3, 1000: 3.5 (17% above the smallest fleet's)",
    }


def test_bench_goals_transitions_must_be_identical_not_just_close() -> None:
    rows = {"10": _run(10, 1.0, transitions=200), "1000": _run(1_000, 1.0, transitions=201)}
    goal = _goals(build_results(rows, IMPORTS, CONFIGURATION))["state transitions identical at every size"]
    assert goal["status"] == "missed"


def test_bench_spread_is_relative_to_the_smallest_value() -> None:
    assert spread([4.0, 4.4, 4.2]) == pytest.approx(0.1)
    assert spread([3.0, 3.0]) == 0.0
