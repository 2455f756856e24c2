"""`patchpilot invoke`: one event through the template's rules (or one payload to one function), in the local runtime.

Like `sam local invoke`, without Docker: the handlers run in-process on moto with the template's environment.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from patchpilot_cli.errors import InputError
from patchpilot_sim.lambdas import InvocationResult
from patchpilot_sim.runtime import LocalRuntime
from patchpilot_sim.template import SamTemplate

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient


@dataclass(frozen=True)
class HandlerOutcome:
    """What one function did with the event."""

    function: str
    rule: str | None
    result: InvocationResult


@dataclass
class InvokeReport:
    """Every handler the event reached (none when no rule matched), and executions stopped afterwards."""

    outcomes: list[HandlerOutcome] = field(default_factory=list)
    stopped_executions: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(outcome.result.failed for outcome in self.outcomes)


def function_names(template: SamTemplate | None = None) -> list[str]:
    """The template's function logical ids, sorted."""
    return sorted((template or SamTemplate()).functions())


def resolve_function(name: str, names: list[str]) -> str:
    """The logical id a name means: exact, case-insensitive, or without the `Function` suffix."""
    wanted = name.strip().lower()
    for candidate in names:
        if wanted in (candidate.lower(), candidate.lower().removesuffix("function")):
            return candidate
    raise InputError(f"unknown function {name!r}; choose one of: {', '.join(names)}")


def load_event(path: Path) -> dict[str, Any]:
    """The JSON object in an event file, or an InputError naming what is wrong with it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"event file {str(path)!r} does not exist; pass a JSON file, e.g. events/ssm/*.json") from None
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else type(error).__name__
        raise InputError(f"cannot read event file {str(path)!r}: {reason}") from None
    try:
        event = json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(
            f"event file {str(path)!r} is not JSON (line {error.lineno}, column {error.colno}: {error.msg}); "
            "expected a JSON object"
        ) from None
    if not isinstance(event, dict):
        raise InputError(f"event file {str(path)!r} holds a JSON {type(event).__name__}; expected a JSON object")
    return event


def is_eventbridge_event(event: dict[str, Any]) -> bool:
    """Whether the object has the envelope of an EventBridge event (a rule can only match those)."""
    return isinstance(event.get("source"), str) and isinstance(event.get("detail-type"), str)


def _stop(runtime: LocalRuntime, sfn: SFNClient, execution_arn: str) -> None:
    """Stop one execution; moto refuses until its worker has started: let what is ready run first."""
    runtime.clock.quiesce()
    sfn.stop_execution(executionArn=execution_arn, error="LocalRuntimeEnded", cause="patchpilot invoke ended")


def _stop_running_executions(runtime: LocalRuntime) -> list[str]:
    """Stop what a handler started: the runtime ends with the command (a whole cycle is `patchpilot simulate`)."""
    sfn = runtime.admin.client("stepfunctions")
    stopped = []
    for arn in runtime.resources.state_machine_arns.values():
        for execution in sfn.list_executions(stateMachineArn=arn, statusFilter="RUNNING")["executions"]:
            _stop(runtime, sfn, execution["executionArn"])
            stopped.append(execution["executionArn"])
    if stopped:
        runtime.clock.quiesce()  # the stopped executions end; a task in flight finishes (no simulated time passes)
    return stopped


def _batch_item_outcome(result: InvocationResult, log_text: str) -> InvocationResult:
    """An SQS-fed function that reported the message failed rejected it: say so, with the reasons it logged."""
    payload = result.payload
    failures = payload.get("batchItemFailures") if isinstance(payload, dict) else None
    if result.failed or not failures:
        return result
    reasons = []
    for line in log_text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        for error in record.get("errors") or [] if isinstance(record, dict) else []:
            reasons.append(f"{'.'.join(str(part) for part in error.get('loc', []))}: {error.get('msg')}")
    return InvocationResult(
        function=result.function,
        payload=payload,
        error_type="BatchItemFailure",
        error_message="\n".join(
            ["the message was reported failed: SQS redelivers it, then moves it to the dead-letter queue", *reasons]
        ),
    )


def invoke_event(event: dict[str, Any], function: str | None = None, region: str = "us-east-1") -> InvokeReport:
    """Deliver the event once (no retries) to the functions whose rules match it, or to `function` directly."""
    report = InvokeReport()
    log = io.StringIO()
    with LocalRuntime(region=region, lambda_log=log) as runtime:
        if function is not None:
            report.outcomes.append(HandlerOutcome(function, None, runtime.lambdas.invoke(function, event)))
        else:
            rules = {spec.logical_id: rule.name for spec, rule in runtime.router.matching(event)}
            for spec, result in runtime.router.deliver_now(event):
                outcome = _batch_item_outcome(result, log.getvalue())
                report.outcomes.append(HandlerOutcome(spec.logical_id, rules.get(spec.logical_id), outcome))
        report.stopped_executions = _stop_running_executions(runtime)
    return report
