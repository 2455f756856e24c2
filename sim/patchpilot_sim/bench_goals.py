"""Issue 12's goals, judged from bench.json's numbers: met, missed (by how much) or not measured."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

FLAT_TOLERANCE = 0.10  # "flat": the largest value at most 10 % above the smallest
MAX_WALL_S = {"10000": 60.0, "1000": 10.0}
MAX_RSS_MIB_10000 = 1024.0
MAX_TRANSITIONS_PER_STAGE = 40
MAX_PAYLOAD_BYTES = 8 * 1024
MAX_COLD_IMPORT_RATIO = 1.3
MAX_COST_USD = 0.10


def _values(per_size: Mapping[str, Any]) -> dict[str, Any]:
    """The measured values of a by-size metric (skipped sizes left out)."""
    return {size: value for size, value in per_size.items() if not (isinstance(value, dict) and "skipped" in value)}


def _healthy(results: Mapping[str, Any], per_size: Mapping[str, Any]) -> dict[str, Any]:
    """The measured values of the sizes whose cycle ended as the healthy scenario expects (whole cycles only)."""
    runs = results.get("runs", {})
    return {size: value for size, value in _values(per_size).items() if runs.get(size, {}).get("outcome_as_expected")}


def _goal(name: str, status: str, detail: str) -> dict[str, str]:
    return {"goal": name, "status": status, "detail": detail}


def _at_most(name: str, value: float | None, limit: float, unit: str) -> dict[str, str]:
    if value is None:
        return _goal(name, "not measured", "the size was skipped")
    if value <= limit:
        return _goal(name, "met", f"{value:g} {unit}")
    return _goal(name, "missed", f"{value:g} {unit}, {value - limit:g} {unit} ({value / limit - 1:.0%}) over")


def spread(values: list[float]) -> float:
    """How far the largest value is above the smallest, as a fraction of the smallest."""
    low, high = min(values), max(values)
    if high == low:
        return 0.0
    return (high - low) / low if low else float("inf")


def _flat(name: str, per_size: Mapping[str, float], exact: bool = False) -> dict[str, str]:
    if len(per_size) < 2:
        return _goal(name, "not measured", "fewer than two sizes ran a whole healthy cycle")
    shown = ", ".join(f"{size}: {value:g}" for size, value in per_size.items())
    width = spread(list(per_size.values()))
    if width == 0 or (not exact and width <= FLAT_TOLERANCE):
        return _goal(name, "met", shown)
    return _goal(name, "missed", f"{shown} ({width:.0%} apart)")


def _cycle_goal(results: Mapping[str, Any]) -> dict[str, str]:
    outcomes = _values(results.get("cycle", {}))
    name = "the healthy cycle SUCCEEDED at every size run"
    if not outcomes:
        return _goal(name, "not measured", "no size ran")
    failed = {size: outcome for size, outcome in outcomes.items() if outcome != "SUCCEEDED"}
    if not failed:
        return _goal(name, "met", ", ".join(outcomes))
    return _goal(name, "missed", "; ".join(f"{size}: {outcome}" for size, outcome in failed.items()))


def _limit_of_size(
    results: Mapping[str, Any], key: str, size: str, name: str, limit: float, unit: str
) -> dict[str, str]:
    """A time or memory limit: a cycle that did not end as expected meets nothing, but can still miss."""
    value = _values(results[key]).get(size)
    goal = _at_most(name, value, limit, unit)
    if value is not None and size not in _healthy(results, results[key]):
        if goal["status"] == "met":
            return _goal(name, "not measured", f"{value:g} {unit}, but the cycle did not end as expected")
        goal["detail"] += " (and the cycle did not end as expected)"
    return goal


def _size_goals(results: Mapping[str, Any]) -> list[dict[str, str]]:
    return [
        _limit_of_size(results, "wall_s", "10000", "10,000 instances in <= 60 s", MAX_WALL_S["10000"], "s"),
        _limit_of_size(
            results, "peak_rss_mib", "10000", "10,000 instances in <= 1 GiB peak RSS", MAX_RSS_MIB_10000, "MiB"
        ),
        _limit_of_size(results, "wall_s", "1000", "1,000 instances in <= 10 s", MAX_WALL_S["1000"], "s"),
    ]


def _transition_goals(results: Mapping[str, Any]) -> list[dict[str, str]]:
    transitions = _healthy(results, results["state_transitions"])
    stages = {size: run.get("stages", 0) for size, run in results.get("runs", {}).items() if "skipped" not in run}
    per_stage = [transitions[size] / stages[size] for size in transitions if stages.get(size)]
    return [
        _flat("state transitions identical at every size", transitions, exact=True),
        _at_most(
            f"<= {MAX_TRANSITIONS_PER_STAGE} state transitions per stage",
            round(max(per_stage), 1) if per_stage else None,
            MAX_TRANSITIONS_PER_STAGE,
            "per stage",
        ),
    ]


def _payload_goals(results: Mapping[str, Any]) -> list[dict[str, str]]:
    payloads = _healthy(results, results["max_state_payload_bytes"])
    return [
        _at_most("largest state payload <= 8 KiB", max(payloads.values(), default=None), MAX_PAYLOAD_BYTES, "B"),
        _flat("largest state payload flat across sizes", payloads),
    ]


def _not_growing(name: str, per_size: Mapping[str, float]) -> dict[str, str]:
    """Flat or falling with fleet size: no larger fleet above the smallest one's value (within the tolerance)."""
    if len(per_size) < 2:
        return _goal(name, "not measured", "fewer than two sizes ran a whole healthy cycle")
    shown = ", ".join(f"{size}: {value:g}" for size, value in per_size.items())
    smallest = per_size[min(per_size, key=int)]
    worst = max(per_size.values())
    if worst <= smallest * (1 + FLAT_TOLERANCE):
        return _goal(name, "met", shown)
    return _goal(name, "missed", f"{shown} ({worst / smallest - 1:.0%} above the smallest fleet's)")


def _per_event_goals(results: Mapping[str, Any]) -> list[dict[str, str]]:
    per_event = _healthy(results, results["per_event"])
    return [
        _not_growing("table ops per command-result event flat", {s: v["table_ops"] for s, v in per_event.items()}),
        _not_growing("API calls per command-result event flat", {s: v["api_calls"] for s, v in per_event.items()}),
    ]


def _import_goal(results: Mapping[str, Any]) -> dict[str, str]:
    ratios: Mapping[str, float] = results["cold_import_ratio"]
    if not ratios:
        return _goal("cold import <= 1.3 x a minimal Powertools handler", "not measured", "no handler measured")
    worst = max(ratios, key=lambda name: ratios[name])
    goal = _at_most("cold import <= 1.3 x a minimal Powertools handler", ratios[worst], MAX_COLD_IMPORT_RATIO, "x")
    over = sorted(name for name, ratio in ratios.items() if ratio > MAX_COLD_IMPORT_RATIO)
    goal["detail"] = f"worst {worst}: {goal['detail']}" + (f"; over: {', '.join(over)}" if over else "")
    return goal


def _cost_goal(results: Mapping[str, Any]) -> dict[str, str]:
    cost = results["cost_usd_10000"]
    goal = _at_most(
        "orchestration cost of a 10,000-instance cycle <= $0.10",
        None if isinstance(cost, dict) else float(cost),
        MAX_COST_USD,
        "USD",
    )
    if goal["status"] == "not measured":
        goal["detail"] = str(results["cost_basis_10000"])
    else:
        goal["detail"] += f" ({results['cost_basis_10000']})"
    return goal


def evaluate(results: Mapping[str, Any]) -> list[dict[str, str]]:
    """Every goal of issue 12 with its status and the numbers behind it."""
    return [
        _cycle_goal(results),
        *_size_goals(results),
        *_transition_goals(results),
        *_payload_goals(results),
        *_per_event_goals(results),
        _import_goal(results),
        _cost_goal(results),
    ]


def render_goals(goals: list[dict[str, str]]) -> list[str]:
    """One printable line per goal."""
    marks = {"met": "MET    ", "missed": "MISSED ", "not measured": "NOT MEASURED"}
    return ["goals (issue 12):"] + [f"  {marks[g['status']]:12} {g['goal']}: {g['detail']}" for g in goals]
