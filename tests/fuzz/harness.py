"""Run the real Lambda handlers on in-memory fakes, and classify what each fuzzed input became.

The fakes sit behind `StrictPort`, which is as strict about text as botocore: an argument that is not valid UTF-8
raises `UnicodeEncodeError`, exactly where a real adapter would have crashed mid-call. Every port call is recorded,
so a rejected input can be shown to have caused no side effect at all.

Outcomes: ``valid`` (the handler returned its output model), ``rejected:ValidationError`` (the input model refused
it, before any port was touched), ``rejected:<TypedError>`` (a PatchPilotError the state machine catches by name).
Anything else fails the test.
"""

from __future__ import annotations

import copy
import importlib
import json
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_type_hints
from unittest import mock

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from patchpilot import observability
from patchpilot.handlers import wiring
from patchpilot.logic.bisection import BisectionPorts
from patchpilot.models.exceptions import PatchPilotError
from patchpilot_sim.lambdas import LambdaContext
from patchpilot_sim.template import SamTemplate
from tests.fakes import (
    HEALTH_DOCUMENT,
    FakeAlarms,
    FakeCalendar,
    FakeCanaryTags,
    FakeCommandDirectory,
    FakeCompliance,
    FakeFleetSource,
    FakePatchInventory,
    FakePatchSets,
    FakeSnapshotLedger,
    FakeStarter,
    FakeVolumeSnapshots,
    FixedClock,
    InMemoryApprovalStore,
    InMemoryBisectionLedger,
    InMemoryComplianceStore,
    InMemoryExclusionLedger,
    InMemoryFirstScanLedger,
    InMemoryInstallTracker,
    InMemoryInventory,
    InMemoryPatchBaselines,
    InMemoryReportStore,
    InMemoryRunLedger,
    RecordingAlertPublisher,
    RecordingCallbacks,
    RecordingScanner,
)

OUTCOMES: defaultdict[str, Counter[str]] = defaultdict(Counter)
REPO_ROOT = Path(__file__).resolve().parents[2]
SEEDS = Path(__file__).resolve().parent / "seeds"
CLOCK_NOW = datetime(2026, 11, 29, 16, 30, tzinfo=UTC)  # shortly after the seeds' run started


def walk_text(value: Any) -> None:
    """Raise UnicodeEncodeError, as botocore's serialiser would, if any text in `value` is not valid UTF-8."""
    if isinstance(value, BaseModel):
        value = dict(value)
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, str):
        value.encode("utf-8")
    elif isinstance(value, dict):
        for key, item in value.items():
            walk_text(key)
            walk_text(item)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            walk_text(item)


class StrictPort:
    """A fake port that records every call and refuses text AWS could not carry."""

    def __init__(self, name: str, fake: Any, calls: list[str]) -> None:
        self._name = name
        self._fake = fake
        self._calls = calls

    def __getattr__(self, attribute: str) -> Any:
        value = getattr(self._fake, attribute)
        if not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            self._calls.append(f"{self._name}.{attribute}")
            walk_text((args, kwargs))
            return value(*args, **kwargs)

        return call


@dataclass
class Fakes:
    """One fresh set of in-memory ports per example."""

    tracker: InMemoryInstallTracker = field(default_factory=InMemoryInstallTracker)
    directory: FakeCommandDirectory = field(default_factory=FakeCommandDirectory)
    callbacks: RecordingCallbacks = field(default_factory=RecordingCallbacks)
    approvals: InMemoryApprovalStore = field(default_factory=InMemoryApprovalStore)
    alerts: RecordingAlertPublisher = field(default_factory=RecordingAlertPublisher)
    inventory: InMemoryInventory = field(default_factory=lambda: InMemoryInventory({}))
    scanner: RecordingScanner = field(default_factory=RecordingScanner)
    first_scans: InMemoryFirstScanLedger = field(default_factory=InMemoryFirstScanLedger)
    compliance: FakeCompliance = field(default_factory=FakeCompliance)
    alarms: FakeAlarms = field(default_factory=FakeAlarms)
    patch_sets: FakePatchSets = field(default_factory=FakePatchSets)
    starter: FakeStarter = field(default_factory=FakeStarter)
    patches: FakePatchInventory = field(default_factory=lambda: FakePatchInventory({}))
    baselines: InMemoryPatchBaselines = field(default_factory=lambda: InMemoryPatchBaselines({}))
    exclusions: InMemoryExclusionLedger = field(default_factory=InMemoryExclusionLedger)
    run_ledger: InMemoryRunLedger = field(default_factory=InMemoryRunLedger)
    clock: FixedClock = field(default_factory=lambda: FixedClock(CLOCK_NOW))
    calendar: FakeCalendar = field(default_factory=FakeCalendar)
    fleet: FakeFleetSource = field(default_factory=FakeFleetSource)
    compliance_nodes: InMemoryComplianceStore = field(default_factory=InMemoryComplianceStore)
    reports: InMemoryReportStore = field(default_factory=InMemoryReportStore)
    volumes: FakeVolumeSnapshots = field(default_factory=lambda: FakeVolumeSnapshots(FixedClock(CLOCK_NOW)))
    snapshots: FakeSnapshotLedger = field(default_factory=FakeSnapshotLedger)
    bisections: InMemoryBisectionLedger = field(default_factory=InMemoryBisectionLedger)
    calls: list[str] = field(default_factory=list)

    def wiring(self) -> dict[tuple[Any, str], Any]:
        """(wiring module, factory name) -> the port it hands the handler."""
        ports = {
            (wiring, "install_tracker"): self.tracker,
            (wiring, "command_directory"): self.directory,
            (wiring, "execution_callbacks"): self.callbacks,
            (wiring, "instance_inventory"): self.inventory,
            (wiring, "patch_scanner"): self.scanner,
            (wiring, "first_scan_ledger"): self.first_scans,
            (wiring, "patch_compliance"): self.compliance,
            (wiring, "alarm_monitor"): self.alarms,
            (wiring, "patch_sets"): self.patch_sets,
            (wiring, "rollout_starter"): self.starter,
            (wiring, "approval_store"): self.approvals,
            (wiring, "alert_publisher"): self.alerts,
            (wiring, "patch_inventory"): self.patches,
            (wiring, "patch_baselines"): self.baselines,
            (wiring, "exclusion_ledger"): self.exclusions,
            (wiring, "run_ledger"): self.run_ledger,
            (wiring, "clock"): self.clock,
            (wiring, "change_calendar"): self.calendar,
            (wiring, "fleet_source"): self.fleet,
            (wiring, "compliance_store"): self.compliance_nodes,
            (wiring, "report_store"): self.reports,
            (wiring, "volume_snapshots"): self.volumes,
            (wiring, "snapshot_ledger"): self.snapshots,
            (wiring, "bisection_ledger"): self.bisections,
        }
        names = _names(ports)
        strict = {
            key: StrictPort(name, fake, self.calls) for (key, fake), name in zip(ports.items(), names, strict=True)
        }
        strict[(wiring, "bisection_ports")] = BisectionPorts(  # a bundle of ports: each one strict on its own
            inventory=strict[(wiring, "patch_inventory")],
            snapshots=strict[(wiring, "snapshot_ledger")],
            volumes=strict[(wiring, "volume_snapshots")],
            tags=StrictPort("wiring.canary_tags", FakeCanaryTags(self.directory), self.calls),
            directory=strict[(wiring, "command_directory")],
            patch_sets=strict[(wiring, "patch_sets")],
            ledger=strict[(wiring, "bisection_ledger")],
            health_check_document=HEALTH_DOCUMENT,
            now=lambda: CLOCK_NOW,
        )
        return strict

    def state(self) -> str:
        """Everything the fakes hold (a rejected input must leave it unchanged)."""
        return repr(
            [vars(fake) for name, fake in vars(self).items() if name != "calls"]  # pydantic reprs are deterministic
        )


def _names(ports: dict[tuple[Any, str], Any]) -> list[str]:
    return [f"{module.__name__.rsplit('.', 1)[-1]}.{factory}" for module, factory in ports]


@dataclass(frozen=True)
class Target:
    """A handler under fuzz: its template function, its seed event, and how to give the fakes matching state."""

    function: str
    module: str
    logic: str
    seed: dict[str, Any]
    prepare: Callable[[Fakes, Any], None] = lambda fakes, event: None
    output: type[BaseModel] | None = None  # when the handler's output is not its logic's (an SQS batch response)

    @property
    def output_model(self) -> type[BaseModel]:
        if self.output is not None:
            return self.output
        logic = getattr(importlib.import_module(self.module), self.logic)
        model: type[BaseModel] = get_type_hints(logic)["return"]
        return model


class BatchItemFailure(BaseModel):
    model_config = ConfigDict(extra="forbid")

    itemIdentifier: str  # noqa: N815 (the Lambda partial batch response's field name)


class BatchResponse(BaseModel):
    """An SQS event source mapping's partial batch response (`ReportBatchItemFailures`)."""

    model_config = ConfigDict(extra="forbid")

    batchItemFailures: list[BatchItemFailure]  # noqa: N815


def seed(function: str) -> dict[str, Any]:
    """A valid input captured from a simulated cycle (tests/fuzz/seeds) or a sample event (events/)."""
    path = SEEDS / f"{function}.json"
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def sample_event(relative: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((REPO_ROOT / "events" / relative).read_text())
    return loaded


def _resolved_environment(function: str) -> dict[str, str]:
    template = SamTemplate()
    spec = template.functions()[function]
    catalog = template.resources["StageCatalogParameter"]["Properties"]["Value"]
    env = {
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "POWERTOOLS_METRICS_NAMESPACE": "PatchPilot",
        "POWERTOOLS_SERVICE_NAME": "patchpilot",
    }
    placeholders = {
        "STAGE_CATALOG": catalog,
        "STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:patchpilot-rollout",
        "ALERT_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:patchpilot-alerts",
    }
    for key, value in spec.environment.items():
        if key in env:
            continue
        if key in placeholders:
            env[key] = placeholders[key]
        elif isinstance(value, str):
            env[key] = value
        elif isinstance(value, dict) and "Ref" in value and value["Ref"] in template.parameters:
            env[key] = str(template.parameters[value["Ref"]])
        else:
            env[key] = f"patchpilot-{key.lower().replace('_', '-')}"
    return env


@contextmanager
def handler_environment(function: str) -> Iterator[None]:
    """The function's environment from template.yaml, restored afterwards."""
    env = _resolved_environment(function)
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    # Powertools reads the namespace when the module is first imported, maybe by an earlier test without the env.
    saved_namespace = observability.metrics.namespace
    observability.metrics.namespace = env["POWERTOOLS_METRICS_NAMESPACE"]
    try:
        yield
    finally:
        observability.metrics.namespace = saved_namespace
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@dataclass
class Run:
    outcome: str
    result: dict[str, Any] | None
    fakes: Fakes


def run(target: Target, event: Any) -> Run:
    """Invoke the real handler on fresh fakes; assert the outcome is one of the allowed kinds; count it."""
    fakes = Fakes()
    target.prepare(fakes, event)
    handler = importlib.import_module(target.module).handler
    context = LambdaContext(function_name=target.function, invoked_function_arn=f"arn:aws:lambda:::{target.function}")
    before = fakes.state()
    result: dict[str, Any] | None = None
    with ExitStack() as stack:
        for (module, factory), port in fakes.wiring().items():
            stack.enter_context(mock.patch.object(module, factory, lambda port=port: port))
        try:
            result = handler(copy.deepcopy(event), context)
        except ValidationError:
            outcome = "rejected:ValidationError"
            assert fakes.calls == [], f"a rejected input reached the ports: {fakes.calls}"
            assert fakes.state() == before, "a rejected input changed state"
        except PatchPilotError as error:
            outcome = f"rejected:{type(error).__name__}"
        else:
            target.output_model.model_validate(result)
            json.dumps(result, ensure_ascii=False).encode("utf-8")
            outcome = "valid"
    OUTCOMES[target.function][outcome] += 1
    return Run(outcome, result, fakes)
