"""The `patchpilot` command."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console

from patchpilot_cli import chat, operator, resume
from patchpilot_cli import plan as plan_command
from patchpilot_cli import report as report_command
from patchpilot_cli import rollback as rollback_command
from patchpilot_cli.doctor import doctor
from patchpilot_cli.errors import InputError, error_lines
from patchpilot_cli.operator import build_decision, build_start_request, parse_bake_seconds
from patchpilot_cli.stack import DEFAULT_STACK_NAME, STACK_ENV, StackOutputs, default_stack_name, resolve_outputs

if TYPE_CHECKING:
    from patchpilot_sim.invoke import InvokeReport


app = typer.Typer(add_completion=False, no_args_is_help=True, help="PatchPilot: staged, self-healing OS patching.")
console = Console(highlight=False, soft_wrap=True)


@app.callback()
def _root() -> None:
    """PatchPilot command line."""


@app.command()
def simulate(
    scenario: Annotated[str, typer.Option(help="a scenario name ('list' names and describes them)")] = "healthy",
    instances: Annotated[int, typer.Option(help="size of the simulated fleet (all groups)")] = 40,
    seed: Annotated[int, typer.Option(help="seed of the fleet and its behaviour")] = 7,
    out: Annotated[Path, typer.Option(help="where summary.json and lambda.log go")] = Path("out/demo"),
    as_json: Annotated[bool, typer.Option("--json", help="print summary.json instead of progress")] = False,
) -> None:
    """Run one patch cycle locally: moto, the real state machine and handlers, a simulated fleet."""
    from patchpilot_sim.progress import progress_view
    from patchpilot_sim.scenarios import SCENARIOS
    from patchpilot_sim.simulate import SimulationOptions, run_simulation

    if scenario == "list":
        for name, spec in SCENARIOS.items():
            typer.echo(f"{name:18} {spec.description}")
        raise typer.Exit(0)
    if scenario not in SCENARIOS:
        raise typer.BadParameter(f"unknown scenario {scenario!r}; choose one of: {', '.join(SCENARIOS)}")
    if instances <= 0:
        raise typer.BadParameter("--instances must be at least 1")
    options = SimulationOptions(instances=instances, scenario=scenario, seed=seed, out_dir=out)
    view = progress_view(console, as_json)
    try:
        summary = run_simulation(options, view.say, view)
    finally:
        view.close()
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        _print_summary(summary, out)
    raise typer.Exit(0 if summary["outcome_as_expected"] else 1)


def _print_summary(summary: dict[str, Any], out: Path) -> None:
    console.print()
    frozen_by = [s["name"] for s in summary["stages"] if s.get("frozen_patch_count") is not None]
    for stage in summary["stages"]:
        frozen = stage.get("frozen_patch_count")
        note = ""
        if frozen is not None:
            last = stage["name"] == frozen_by[-1]
            note = f", froze {frozen} patches" + (" (the set production installs)" if last else "")
        console.print(
            f"stage {stage['name']:8} {stage['status']:9} {stage['succeeded']}/{stage['targeted']} instances healthy"
            + note,
            markup=False,
        )
    for patch in summary["excluded_patches"]:
        console.print(
            f"excluded {patch['patch_id']} at {patch['stage']}: on {patch['failing_with']}/{patch['failing_total']} "
            f"unhealthy and {patch['healthy_with']}/{patch['healthy_total']} healthy instances",
            markup=False,
        )
    error = f" ({summary['error']})" if summary["error"] else ""
    console.print(f"execution: {summary['status']}{error}", markup=False)
    console.print(
        f"state transitions {summary['state_transitions']}, largest state payload "
        f"{summary['max_state_payload_bytes']} bytes, alerts {summary['notifications']['alerts_published']}, "
        f"chat messages {summary['notifications']['messages']}, "
        f"lost events {summary['lost_events']}, dead letters {summary['dead_letters']}",
        markup=False,
    )
    verdict = "as the scenario expects" if summary["outcome_as_expected"] else "NOT as the scenario expects"
    console.print(f"scenario {summary['scenario']}: ended {verdict}; summary in {out / 'summary.json'}", markup=False)


def fail(message: str) -> NoReturn:
    """Bad input: one line on stderr, exit code 2, no traceback."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


@app.command()
def invoke(
    event: Annotated[Path, typer.Option("--event", "-e", help="JSON file: an EventBridge event or a direct payload")],
    function: Annotated[
        str | None, typer.Option("--function", "-f", help="invoke this function directly (template logical id)")
    ] = None,
) -> None:
    """Run one event through the template's rules (or one payload through --function) in the local runtime."""
    from patchpilot_sim.invoke import function_names, invoke_event, load_event, resolve_function

    try:
        payload = load_event(event)
        target = resolve_function(function, function_names()) if function is not None else None
    except InputError as error:
        fail(str(error))
    report = invoke_event(payload, target)
    if not report.outcomes:
        _print_unmatched(payload)
        raise typer.Exit(0)
    _print_report(report)
    raise typer.Exit(2 if report.failed else 0)


def _print_unmatched(payload: dict[str, Any]) -> None:
    from patchpilot_sim.invoke import function_names, is_eventbridge_event

    if is_eventbridge_event(payload):
        typer.echo(
            f"no rule in template.yaml matches this event (source {payload['source']!r}, detail-type "
            f"{payload['detail-type']!r}): nothing was invoked"
        )
    else:
        typer.echo(
            "no rule matches: this is not an EventBridge event (no source/detail-type); to send it to a function "
            f"directly pass --function, one of: {', '.join(function_names())}"
        )


def _print_report(report: InvokeReport) -> None:
    for outcome in report.outcomes:
        via = f" (rule {outcome.rule})" if outcome.rule else ""
        if outcome.result.failed:
            typer.echo(f"{outcome.function}{via}: rejected the event")
            for line in error_lines(outcome.result.error_type, outcome.result.error_message):
                typer.echo(f"  {line}")
        else:
            typer.echo(f"{outcome.function}{via}: ok")
            typer.echo(json.dumps(outcome.result.payload, indent=2))
    for arn in report.stopped_executions:
        typer.echo(f"stopped execution {arn} (the local runtime ends here; `patchpilot simulate` runs a whole cycle)")


# -- a deployed stack ------------------------------------------------------------------------------------------------
StackName = Annotated[
    str | None,
    typer.Option("--stack-name", help=f"the deployed stack (default: ${STACK_ENV} or {DEFAULT_STACK_NAME!r})"),
]
Region = Annotated[str | None, typer.Option("--region", help="AWS region of the stack (default: the AWS config's)")]
Stages = Annotated[str | None, typer.Option("--stages", help="comma-separated stages, e.g. dev,staging (default all)")]
BakeSeconds = Annotated[
    list[str] | None, typer.Option("--bake-seconds", help="STAGE=SECONDS: override a stage's bake (repeatable)")
]
ApprovalTimeout = Annotated[
    int | None, typer.Option("--approval-timeout", help="seconds an approval request waits (default: the policy's)")
]

exclusions_app = typer.Typer(no_args_is_help=True, help="Patches PatchPilot excluded in a run, with the evidence.")
app.add_typer(exclusions_app, name="exclusions")
app.add_typer(chat.chat_app, name="chat")
app.command(name="report")(report_command.report)


def _stack(stack_name: str | None, region: str | None) -> StackOutputs:
    try:
        return resolve_outputs(stack_name or default_stack_name(), region)
    except InputError as error:
        fail(str(error))


def _stage_list(stages: str | None) -> list[str] | None:
    return [stage.strip() for stage in stages.split(",") if stage.strip()] if stages else None


def _start(outputs: StackOutputs, **fields: Any) -> None:
    try:
        request = build_start_request(**{**fields, "bake_seconds": parse_bake_seconds(fields["bake_seconds"] or [])})
    except InputError as error:
        fail(str(error))
    try:
        started = operator.start(outputs, request)
    except operator.HandlerFailed as error:
        fail(f"{error.function} refused the start: " + "; ".join(error.lines))
    if started.get("started"):
        typer.echo(f"started execution {started['execution_name']} (run {started['run_id']})")
    elif started.get("status") in ("FAILED", "TIMED_OUT", "ABORTED"):
        typer.echo(
            f"execution {started['execution_name']} (run {started['run_id']}) ended {started['status']}; nothing new "
            "was started. Continue it from where it stopped with `patchpilot resume`"
        )
    else:
        state = "already done" if started.get("status") == "SUCCEEDED" else "already running"
        typer.echo(
            f"{state}: execution {started['execution_name']} (run {started['run_id']}) was started "
            "earlier for this request; nothing new was started"
        )
    typer.echo(f"  {started['execution_arn']}")


@app.command()
def start(
    cycle: Annotated[str | None, typer.Option(help="YYYY-MM (default: this month)")] = None,
    stages: Stages = None,
    bake_seconds: BakeSeconds = None,
    approval_timeout: ApprovalTimeout = None,
    stack_name: StackName = None,
    region: Region = None,
) -> None:
    """Start the monthly cycle now (idempotent: a second start of the same cycle is a no-op)."""
    fields = {"stages": _stage_list(stages), "bake_seconds": bake_seconds, "approval_timeout_seconds": approval_timeout}
    try:
        build_start_request(mode="manual", cycle=cycle, **{**fields, "bake_seconds": None})
    except InputError as error:
        fail(str(error))
    _start(_stack(stack_name, region), mode="manual", cycle=cycle, **fields)


@app.command()
def emergency(
    patch: Annotated[list[str] | None, typer.Option("--patch", help="a patch id to install (repeatable)")] = None,
    cve: Annotated[list[str] | None, typer.Option("--cve", help="a CVE id, CVE-YYYY-NNNN (repeatable)")] = None,
    stages: Stages = None,
    bake_seconds: BakeSeconds = None,
    approval_timeout: ApprovalTimeout = None,
    stack_name: StackName = None,
    region: Region = None,
) -> None:
    """Install only the named patches/CVEs now, stage by stage (mode emergency)."""
    if not patch and not cve:
        fail("emergency needs at least one --patch ID (e.g. KB5034441) or --cve CVE-YYYY-NNNN")
    fields = {
        "mode": "emergency",
        "patch_ids": patch or [],
        "cve_ids": cve or [],
        "stages": _stage_list(stages),
        "approval_timeout_seconds": approval_timeout,
    }
    try:
        build_start_request(**fields)
    except InputError as error:
        fail(str(error))
    _start(_stack(stack_name, region), bake_seconds=bake_seconds, **fields)


def _print_status(outputs: StackOutputs, limit: int) -> bool:
    rows, approvals = operator.status(outputs, operator.connect(outputs), limit)
    typer.echo(f"stack {outputs.stack_name}: {len(rows)} recent execution(s)")
    for row in rows:
        where = f"  stage {row.stage or '-'}: {row.state}" if row.status == "RUNNING" else ""
        typer.echo(f"  {row.name:32} {row.status:10} started {row.started:%Y-%m-%d %H:%M:%S}{where}")
    for approval in approvals:
        typer.echo(
            f"  waiting for approval {approval.approval_id}: run {approval.run_id} -> {approval.stage_name} "
            f"until {approval.expires_at:%Y-%m-%d %H:%M:%S} UTC (patchpilot approve|reject {approval.approval_id})"
        )
    if not approvals:
        typer.echo("  no approval is waiting")
    return any(row.status == "RUNNING" for row in rows)


@app.command()
def status(
    watch: Annotated[bool, typer.Option("--watch", help="refresh until no execution is running")] = False,
    interval: Annotated[float, typer.Option(help="seconds between refreshes with --watch")] = 10.0,
    limit: Annotated[int, typer.Option(help="how many recent executions to show")] = 10,
    stack_name: StackName = None,
    region: Region = None,
) -> None:
    """Recent executions (state and stage of running ones) and approvals waiting for an answer."""
    if interval <= 0:
        fail("--interval must be a positive number of seconds")
    if not 1 <= limit <= 1000:
        fail("--limit must be from 1 to 1000")
    outputs = _stack(stack_name, region)
    while _print_status(outputs, limit) and watch:
        time.sleep(interval)


def _decide(decision: str, approval_id: str, reason: str | None, approver: str | None, outputs: StackOutputs) -> None:
    try:
        request = build_decision(approval_id, decision, approver or os.environ.get("USER") or "", reason)
    except InputError as error:
        fail(str(error))
    try:
        decided = operator.decide(outputs, request)
    except operator.HandlerFailed as error:
        fail("; ".join(error.lines))
    if decided.get("recorded_earlier"):
        typer.echo(
            f"approval {decided['approval_id']} was already {decided['status']} by {decided['approver']}; "
            "nothing changed"
        )
        return
    resumed = "the execution was told" if decided.get("execution_notified") else "the execution no longer waits"
    typer.echo(
        f"approval {decided['approval_id']} {decided['status']} by {decided['approver']}: run {decided['run_id']} "
        f"-> {decided['stage_name']} ({resumed})"
    )


ApprovalIdArg = Annotated[str, typer.Argument(help="the approval id from the alert, e.g. k7m2x9qa")]
Reason = Annotated[str | None, typer.Option(help="why (kept with the decision and alerted)")]
Approver = Annotated[str | None, typer.Option(help="who decides (default: $USER)")]


@app.command()
def approve(
    approval_id: ApprovalIdArg,
    reason: Reason = None,
    approver: Approver = None,
    stack_name: StackName = None,
    region: Region = None,
) -> None:
    """Approve a waiting promotion: the rollout goes on to the stage."""
    _decide("approve", approval_id, reason, approver, _stack(stack_name, region))


@app.command()
def reject(
    approval_id: ApprovalIdArg,
    reason: Reason = None,
    approver: Approver = None,
    stack_name: StackName = None,
    region: Region = None,
) -> None:
    """Reject a waiting promotion: the rollout stops with ApprovalRejected."""
    _decide("reject", approval_id, reason, approver, _stack(stack_name, region))


RunOption = Annotated[str, typer.Option("--run", help="the run id, e.g. 2026-12 (execution names show it)")]


@exclusions_app.command("list")
def exclusions_list(run: RunOption, stack_name: StackName = None, region: Region = None) -> None:
    """The run's excluded patches with the evidence recorded for each."""
    rows = operator.exclusions(operator.connect(_stack(stack_name, region)), run)
    if not rows:
        typer.echo(f"run {run}: no patch was excluded")
        return
    for row in rows:
        record, evidence = row.record, row.record.evidence
        removed = f" - REMOVED by {row.removed_by} at {row.removed_at:%Y-%m-%d %H:%M:%S} UTC" if row.removed_at else ""
        typer.echo(f"{record.patch_id} excluded at {record.stage_name} on {record.decided_at:%Y-%m-%d %H:%M}{removed}")
        typer.echo(
            f"  evidence: on {evidence.failing_with}/{evidence.failing_total} unhealthy and "
            f"{evidence.healthy_with}/{evidence.healthy_total} healthy instances, {evidence.failed_installs} failed "
            f"install(s); {evidence.title}"
        )
        typer.echo(f"  operating systems: {', '.join(evidence.operating_systems) or '-'}")
        typer.echo(f"  rejected in baselines: {', '.join(record.baseline_ids) or '-'}")
        typer.echo(f"  unhealthy instances: {', '.join(record.failing_instances) or '-'}")


@exclusions_app.command("remove")
def exclusions_remove(
    run: RunOption,
    patch: Annotated[str, typer.Option("--patch", help="the excluded patch id (see exclusions list)")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
    stack_name: StackName = None,
    region: Region = None,
) -> None:
    """Allow an excluded patch again: drop it from the baselines' RejectedPatches and retire its ledger row."""
    ports = operator.connect(_stack(stack_name, region))
    try:
        rows = operator.exclusions_of_patch(ports, run, patch)
    except InputError as error:
        fail(str(error))
    baselines = sorted({baseline for row in rows for baseline in row.record.baseline_ids})
    question = (
        f"allow {patch} again in {', '.join(baselines) or 'no baseline'} "
        f"(excluded at {', '.join(row.record.stage_name for row in rows)} in run {run})?"
    )
    if not yes and not typer.confirm(question, default=False):
        typer.echo("nothing changed")
        raise typer.Exit(1)
    who = os.environ.get("USER") or "patchpilot-cli"
    for row in rows:
        changed = operator.remove_exclusion(ports, row, who)
        typer.echo(
            f"removed the exclusion of {patch} at {row.record.stage_name}: baselines changed: "
            f"{', '.join(changed) or 'none (already allowed)'}; the ledger row is kept as removed"
        )


@exclusions_app.command("export")
def exclusions_export(
    output: Annotated[Path, typer.Option(help="the ledger file to update (commit it with template.yaml)")] = Path(
        "policy/exclusions.yaml"
    ),
    stack_name: StackName = None,
    region: Region = None,
) -> None:
    """Write every active exclusion into the committed ledger, so that the next deploy keeps it (then: make baselines).

    Run-time rejections are drift on CloudFormation-owned baselines: a stack update that touches a baseline resets
    its RejectedPatches to the template's. The ledger is rendered into the template by `make baselines`.
    """
    from patchpilot_cli.exclusion_ledger import LedgerError, dump_ledger, load_ledger, merge_ledger
    from patchpilot_cli.policy_render import PolicyError, load_policy

    try:
        policy = load_policy(ledger_path=None)
        existing = load_ledger(output)
    except (PolicyError, LedgerError) as error:
        fail(str(error))
    active, removed = operator.all_exclusions(operator.connect(_stack(stack_name, region)))
    ledger = merge_ledger(existing, active, removed, policy)
    output.write_text(dump_ledger(ledger))
    added = len({e.key for e in ledger.exclusions} - {e.key for e in existing.exclusions})
    dropped = len({e.key for e in existing.exclusions} - {e.key for e in ledger.exclusions})
    typer.echo(
        f"{output}: {len(ledger.exclusions)} exclusion(s), {added} added, {dropped} removed; "
        "now run `make baselines` and commit both files"
    )
    for entry in ledger.exclusions:
        if entry.blocks_every_version:
            typer.echo(
                f"  note: {entry.reject} ({entry.operating_system}) blocks every version of the package: "
                "remove the exclusion once a fixed version ships"
            )


app.command("doctor")(doctor)
app.command()(resume.resume)
app.command("plan")(plan_command.plan)
app.command(name="rollback")(rollback_command.rollback)


def main() -> None:
    app()
