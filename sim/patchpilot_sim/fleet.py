"""The simulated fleet: managed instances and an SSM Agent model that answers AWS-RunPatchBaseline.

It stands in, behind the same boto3 calls production makes, for what moto lacks or gets wrong (see
shared/FACTS.md): tag-target resolution at fleet scale, per-instance command progress, rate control,
status-change events, ListCommandInvocations, DescribeInstanceInformation and the patch-state APIs
(DescribeInstancePatches, DescribeInstancePatchStates, DescribeInstancePatchStatesForPatchGroup).

Each instance carries a patch level (patches.py): Install installs its missing patches except those rejected for it
(or only those an InstallOverrideList selects), Scan reports, and a shell/PowerShell command acts as a health check:
AWS-RunShellScript / AWS-RunPowerShellScript, or a registered schema 2.2 Command document (PatchPilot's
cross-platform health check) whose steps run or are skipped per platform (``CommandDocument``).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import boto3

from patchpilot.models.events import TERMINAL_INVOCATION_STATUSES
from patchpilot_sim import patches as pm
from patchpilot_sim.clock import Scheduler, SimClock

ACCOUNT_ID = "123456789012"
PATCH_DOCUMENT = "AWS-RunPatchBaseline"
SHELL_DOCUMENTS = frozenset({"AWS-RunShellScript", "AWS-RunPowerShellScript"})
SUPPORTED_DOCUMENTS = frozenset({PATCH_DOCUMENT, *SHELL_DOCUMENTS})
# The platforms each document runs on; any other ends InvalidPlatform (monitor-commands.md: "Invalid Platform").
DOCUMENT_PLATFORMS = {
    PATCH_DOCUMENT: frozenset({"Windows", "Linux"}),
    "AWS-RunShellScript": frozenset({"Linux"}),
    "AWS-RunPowerShellScript": frozenset({"Windows"}),
}
# The platforms each plugin runs on (SSM user guide, documents-command-ssm-plugin-reference: aws:runShellScript "only
# runs on Linux operating systems", aws:runPowerShellScript "runs on Microsoft Windows Server and Linux"; both are among
# the plugins supported on macOS). A document's platforms are its plugins' platforms: a node outside them ends
# InvalidPlatform before anything runs.
PLUGIN_PLATFORMS = {
    "aws:runShellScript": frozenset({"Linux", "MacOS"}),
    "aws:runPowerShellScript": frozenset({"Windows", "Linux", "MacOS"}),
}
PLATFORM_TYPES = frozenset({"Linux", "Windows", "MacOS"})  # what a `platformType` precondition may compare with
SCAN_MINUTES = 2.0
HEALTH_COMMAND_MINUTES = 0.5
SKIPPED_STEPS_SECONDS = 1.0  # an invocation whose every step is skipped runs nothing and ends at once
DEFAULT_TIMEOUT_SECONDS = 3600  # SendCommand TimeoutSeconds default (API reference: SendCommand)
MIN_TIMEOUT_SECONDS, MAX_TIMEOUT_SECONDS = 30, 2_592_000
# The execution timeout each document gives its plugin ("timeoutSeconds" in the document): AWS-RunPatchBaseline's
# plugins run up to 7200 s; AWS-RunShellScript/AWS-RunPowerShellScript take it from `executionTimeout` (3600).
EXECUTION_TIMEOUT_SECONDS = {PATCH_DOCUMENT: 7200}
DEFAULT_EXECUTION_TIMEOUT_SECONDS = 3600
# Invocation outcomes that do not count toward MaxErrors (SSM user guide, monitor-commands.md: "Delivery Timed Out",
# "Undeliverable", "Invalid Platform", "Access Denied"); Failed and ExecutionTimedOut do.
NOT_COUNTED_AS_ERRORS = frozenset({"DeliveryTimedOut", "Undeliverable", "InvalidPlatform", "AccessDenied"})
# How long SSM takes to resolve a command's tag targets: until then ListCommands reports TargetCount 0 and no
# invocation exists (the SendCommand response always carries TargetCount 0 for tag targets).
TARGET_RESOLUTION_SECONDS = 2.0
MAX_PATCH_RESULTS = 100
INSTALLED_STATES = pm.ON_DISK | {pm.INSTALLED_REJECTED}
COUNT_FILTER_KEYS = {
    "InstalledCount": pm.INSTALLED,
    "InstalledOtherCount": pm.INSTALLED_OTHER,
    "InstalledPendingRebootCount": pm.INSTALLED_PENDING_REBOOT,
    "InstalledRejectedCount": pm.INSTALLED_REJECTED,
    "MissingCount": pm.MISSING,
    "FailedCount": pm.FAILED,
    "NotApplicableCount": pm.NOT_APPLICABLE,
}
TERMINAL = TERMINAL_INVOCATION_STATUSES  # the product's own list: the simulator must agree with it
PLATFORMS: dict[str, tuple[str, str, str]] = {
    # PatchPilot OS name -> (PlatformType, PlatformName, PlatformVersion)
    "WINDOWS": ("Windows", "Microsoft Windows Server 2022 Datacenter", "10.0.20348"),
    "AMAZON_LINUX_2": ("Linux", "Amazon Linux", "2"),
    "AMAZON_LINUX_2023": ("Linux", "Amazon Linux", "2023"),
    "UBUNTU": ("Linux", "Ubuntu", "22.04"),
    "REDHAT_ENTERPRISE_LINUX": ("Linux", "Red Hat Enterprise Linux", "9.4"),
    "CENTOS": ("Linux", "CentOS Stream", "9"),
    "ROCKY_LINUX": ("Linux", "Rocky Linux", "9.4"),
    "ALMA_LINUX": ("Linux", "AlmaLinux", "9.4"),
}


@dataclass(frozen=True)
class DocumentStep:
    """One step (plugin) of a schema 2.2 Command document."""

    action: str
    name: str
    platform: str | None  # the `platformType` its precondition requires (None: no precondition)
    timeout: str  # inputs.timeoutSeconds as written: seconds or a `{{ parameter }}` reference

    def runs_on(self, platform_type: str) -> bool:
        """Whether the agent runs the step on a node of this platform, or skips it.

        Plugin compatibility is evaluated before the precondition; an incompatible plugin or an unsatisfied
        precondition skips the step (SSM user guide, documents-schemas-features, "Using the precondition parameter").
        """
        return platform_type in PLUGIN_PLATFORMS[self.action] and self.platform in (None, platform_type)


def _precondition_platform(where: str, step: dict[str, Any]) -> str | None:
    """The platform of a `precondition: {StringEquals: [platformType, X]}` (the only operator SSM supports)."""
    precondition = step.get("precondition")
    if precondition is None:
        return None
    operands = precondition.get("StringEquals") if isinstance(precondition, dict) else None
    if set(precondition) != {"StringEquals"} or not isinstance(operands, list) or len(operands) != 2:
        raise SimulatedApiError("InvalidDocumentContent", f"{where}: only StringEquals with 2 arguments is supported")
    if "platformType" not in operands:
        raise SimulatedApiError("InvalidDocumentContent", f"{where}: the simulator models platformType preconditions")
    platform = str(operands[1] if operands[0] == "platformType" else operands[0])
    if platform not in PLATFORM_TYPES:
        raise SimulatedApiError("InvalidDocumentContent", f"{where}: platformType is one of {sorted(PLATFORM_TYPES)}")
    return platform


_PARAMETER_REFERENCE = re.compile(r"^\{\{\s*(\w+)\s*\}\}$")


@dataclass(frozen=True)
class CommandDocument:
    """A custom schema 2.2 Command document of shell/PowerShell steps (what PatchPilot's health check is).

    On each node every step either runs or is skipped (``DocumentStep.runs_on``); the agent aggregates the steps into
    the invocation's status with a skipped step counting as a success: Success when every step ran successfully or
    was skipped, Failed when one failed (amazon-ssm-agent, agent/contracts/aggregator.go, DocumentResultAggregator:
    "Skipped is a form of success"). A node whose platform none of the document's plugins supports ends
    InvalidPlatform without running anything (monitor-commands.md, "Invalid Platform").
    """

    name: str
    parameters: dict[str, dict[str, Any]]
    steps: tuple[DocumentStep, ...]

    @classmethod
    def from_content(cls, name: str, content: dict[str, Any]) -> CommandDocument:
        """Parse a document's content (CreateDocument's checks: schema 2.2, known plugins, unique step names)."""
        if str(content.get("schemaVersion")) != "2.2":
            raise SimulatedApiError("InvalidDocumentSchemaVersion", f"{name}: the simulator models schema 2.2")
        raw_steps = content.get("mainSteps")
        if not isinstance(raw_steps, list) or not raw_steps:
            raise SimulatedApiError("InvalidDocumentContent", f"{name}: mainSteps must list at least one step")
        steps = []
        for index, step in enumerate(raw_steps):
            where = f"{name}.mainSteps[{index}]"
            if step.get("action") not in PLUGIN_PLATFORMS:
                raise SimulatedApiError(
                    "InvalidDocumentContent", f"{where}: plugin {step.get('action')!r} not modelled"
                )
            inputs = step.get("inputs") or {}
            if "runCommand" not in inputs:
                raise SimulatedApiError("InvalidDocumentContent", f"{where}: runCommand is required")
            timeout = str(inputs.get("timeoutSeconds", DEFAULT_EXECUTION_TIMEOUT_SECONDS))
            steps.append(
                DocumentStep(step["action"], str(step.get("name")), _precondition_platform(where, step), timeout)
            )
        if len({step.name for step in steps}) != len(steps):
            raise SimulatedApiError("InvalidDocumentContent", f"{name}: step names must be unique")
        return cls(name, dict(content.get("parameters") or {}), tuple(steps))

    @property
    def platform_types(self) -> frozenset[str]:
        """The platforms a command of this document is delivered to: those of its plugins."""
        return frozenset().union(*(PLUGIN_PLATFORMS[step.action] for step in self.steps))

    def steps_for(self, platform_type: str) -> list[DocumentStep]:
        """The steps that run on a node of this platform (the others are skipped)."""
        return [step for step in self.steps if step.runs_on(platform_type)]

    def resolve(self, passed: dict[str, list[str]]) -> dict[str, list[str]]:
        """The parameters a command runs with: the passed ones over the defaults, each checked as SSM does."""
        unknown = sorted(set(passed) - set(self.parameters))
        if unknown:
            raise SimulatedApiError("InvalidParameters", f"{self.name}: parameters not in the document: {unknown}")
        resolved: dict[str, list[str]] = {}
        for key, spec in self.parameters.items():
            if key in passed:
                values = passed[key]
            elif "default" in spec:
                default = spec["default"]
                values = [str(v) for v in default] if isinstance(default, list) else [str(default)]
            else:
                raise SimulatedApiError("InvalidParameters", f"{self.name}: parameter {key!r} is required")
            if spec.get("type") == "String" and len(values) != 1:
                raise SimulatedApiError("InvalidParameters", f"{self.name}: parameter {key!r} takes one value")
            pattern = spec.get("allowedPattern")
            if pattern and not all(re.fullmatch(pattern, value) for value in values):
                raise SimulatedApiError("InvalidParameters", f"{self.name}: {key!r} must match {pattern}")
            resolved[key] = values
        return resolved

    def step_timeout(self, step: DocumentStep, parameters: dict[str, list[str]]) -> int:
        """A step's execution timeout in seconds (its `timeoutSeconds`, parameters resolved)."""
        reference = _PARAMETER_REFERENCE.match(step.timeout)
        return int(parameters[reference.group(1)][0] if reference else step.timeout)


class SimulatedApiError(Exception):
    """An SSM error response (code + message), returned to the caller as a botocore ClientError."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass
class SimulatedInstance:
    """One managed instance and how its agent behaves."""

    instance_id: str
    patch_group: str
    platform: str
    tags: dict[str, str]
    install_outcome: str = "Success"
    install_minutes: float = 20.0
    online: bool = True
    drop_terminal_event: bool = False
    # Patch level (patches.py); empty -> filled with every applicable catalog patch Missing when added to the fleet.
    patches: dict[str, pm.InstancePatchRecord] = field(default_factory=dict)
    healthy: bool = True  # what a health command (shell, PowerShell, the health-check document) finds
    flaky_failures_left: int = 0  # this many Install invocations end `flaky_outcome` before one succeeds
    flaky_outcome: str = "Failed"
    last_operation: PatchOperation | None = None  # the last Scan/Install that reported compliance
    last_no_reboot_install: datetime | None = None
    updateinfo: bool = True  # False: its repositories publish no updateinfo.xml (no classification, no severity)
    reports_installed_time: bool = True  # False: DescribeInstancePatches gives every row the epoch as InstalledTime
    scan_minutes: float = SCAN_MINUTES
    offline_since: datetime | None = None  # when the agent stopped reporting (LastPingDateTime while not Online)

    @property
    def reachable(self) -> bool:
        """Whether SSM reaches the agent.

        A patch that breaks the instance's health leaves it unable to come back after the reboot (ping
        ConnectionLost, later commands DeliveryTimedOut).
        """
        return self.online and self.healthy


@dataclass(frozen=True)
class PatchOperation:
    """The last patching operation that reported compliance for an instance (a DescribeInstancePatchStates row)."""

    operation: str
    started: datetime
    ended: datetime
    reboot_option: str
    rejected: frozenset[str]
    install_override_list: str | None = None
    unapproved: frozenset[str] = frozenset()
    snapshot_id: str | None = None


@dataclass
class Invocation:
    instance: SimulatedInstance
    status: str = "Pending"
    started: datetime | None = None
    ended: datetime | None = None
    plan: pm.InstallPlan | None = None  # an Install's patches, decided when it starts
    rejected: frozenset[str] = frozenset()  # the rejections the invocation ran under
    unapproved: frozenset[str] = frozenset()  # what the baseline's rules did not approve when it ran


@dataclass
class Command:
    command_id: str
    document_name: str
    comment: str
    parameters: dict[str, list[str]]
    targets: list[dict[str, Any]]
    max_concurrency: str
    max_errors: str
    requested: datetime
    delivery_timeout_seconds: int
    execution_timeout_seconds: int = DEFAULT_EXECUTION_TIMEOUT_SECONDS
    document: CommandDocument | None = None  # a registered custom document (None: an AWS document)
    resolved: bool = False  # tag targets resolved into invocations (TargetCount known)
    override: list[pm.OverrideEntry] | None = None  # the InstallOverrideList of an Install, read at SendCommand
    override_error: str | None = None  # why that list could not be read (every Install invocation then fails)
    baseline_override: dict[str, list[str]] | None = None  # BaselineOverride: approved patches/CVEs per OS
    invocations: dict[str, Invocation] = field(default_factory=dict)
    queue: list[str] = field(default_factory=list)
    status: str = "Pending"
    running: int = 0
    errors: int = 0
    completed: int = 0  # invocations in a terminal status (kept as they end: a fleet-wide scan per result is O(n^2))
    unsuccessful: int = 0  # of those, the ones that did not end Success
    delivery_timed_out: int = 0  # of those, the ones that ended DeliveryTimedOut

    @property
    def finished(self) -> bool:
        return self.resolved and self.completed == len(self.invocations)

    @property
    def expires_after(self) -> datetime:
        """When the command expires: TimeoutSeconds + the document's execution timeout after it was sent."""
        return self.requested + timedelta(seconds=self.delivery_timeout_seconds + self.execution_timeout_seconds)

    @property
    def operation(self) -> str:
        """Scan or Install for AWS-RunPatchBaseline, Health for a shell/PowerShell command or custom document."""
        if self.document_name in SHELL_DOCUMENTS or self.document is not None:
            return "Health"
        return (self.parameters.get("Operation") or ["Scan"])[0]

    def parameter(self, name: str, default: str = "") -> str:
        values = self.parameters.get(name) or [default]
        return values[0] if values else default


def _limit(value: str, total: int, minimum: int) -> int:
    if value.endswith("%"):
        return max(math.ceil(total * int(value[:-1]) / 100), minimum)
    return int(value)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def s3_object_reader(region: str) -> Callable[[str], str]:
    """Read an `s3://` or https S3 URL as text with a boto3 Session of its own (moto's S3 in the local runtime).

    One client per thread, made on first use (a Session is not thread-safe; making a client costs more than the read).
    """
    clients = threading.local()

    def read(url: str) -> str:
        bucket, key = pm.parse_s3_url(url)
        s3 = getattr(clients, "s3", None)
        if s3 is None:
            s3 = clients.s3 = boto3.session.Session(region_name=region).client("s3")
        body: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        return body.decode("utf-8")

    return read


def no_rejections(_: SimulatedInstance) -> set[str]:
    return set()


def healthy_outcome(_: Command, instance: SimulatedInstance) -> str:
    """What a shell/PowerShell command ends with: Success on a healthy instance."""
    return "Success" if instance.healthy else "Failed"


def everything_approved(_: SimulatedInstance) -> set[str]:
    return set()


def stable_baseline_id(instance: SimulatedInstance) -> str:
    """A stable, well-formed baseline id per patch group and OS (`pb-` + 17 hex digits)."""
    digest = hashlib.sha256(f"{_patch_group(instance)}/{instance.platform}".encode()).hexdigest()
    return f"pb-{digest[:17]}"


def _patch_group(instance: SimulatedInstance) -> str:
    return instance.tags.get("PatchGroup") or instance.tags.get("Patch Group") or instance.patch_group


def _normalized(value: str) -> str:
    return value.replace("_", "").lower()


def _page_of(items: list[Any], params: dict[str, Any], default_size: int) -> tuple[list[Any], str | None]:
    size = int(params.get("MaxResults") or default_size)
    if not 1 <= size <= MAX_PATCH_RESULTS:
        raise SimulatedApiError("ValidationException", f"MaxResults must be at most {MAX_PATCH_RESULTS}.")
    token = params.get("NextToken") or "0"
    if not str(token).isdigit() or int(token) > len(items):
        raise SimulatedApiError("InvalidNextToken", "The NextToken is not valid.")
    start = int(token)
    end = start + size
    return items[start:end], (str(end) if end < len(items) else None)


class SsmAgentSimulator:
    """Plays the SSM service + agent side for the simulated fleet; thread-safe."""

    def __init__(
        self,
        clock: SimClock,
        scheduler: Scheduler,
        emit_event: Callable[[dict[str, Any]], None],
        region: str,
        seed: int = 7,
        fetch_object: Callable[[str], str] | None = None,
    ) -> None:
        self.clock = clock
        self.scheduler = scheduler
        self.emit_event = emit_event
        self.region = region
        self.instances: dict[str, SimulatedInstance] = {}
        self.commands: dict[str, Command] = {}
        self.documents: dict[str, CommandDocument] = {}  # custom Command documents by name (the stack's)
        self.dropped_events: list[dict[str, Any]] = []
        # Wiring points: the patches the baseline rejects for an instance (ids as DescribeInstancePatches' KBId),
        # how an InstallOverrideList URL is read, and the baseline id reported per instance.
        self.rejected_patches: Callable[[SimulatedInstance], set[str]] = no_rejections
        self.unapproved_patches: Callable[[SimulatedInstance], set[str]] = everything_approved
        self.fetch_object: Callable[[str], str] = fetch_object or s3_object_reader(region)
        self.baseline_id: Callable[[SimulatedInstance], str] = stable_baseline_id
        self.health_outcome: Callable[[Command, SimulatedInstance], str] = healthy_outcome
        # Instances that get their patch group tag while the next Install is being sent: SSM targets them (tag
        # targets resolve after SendCommand) although the planner could not count them.
        self.join_during_next_install: list[SimulatedInstance] = []
        # Observers told when an invocation starts running (the compliance demo pauses the simulation there).
        self.invocation_started: list[Callable[[Command, str], None]] = []
        self._rng = random.Random(seed)
        self._lock = threading.RLock()

    # -- fleet ---------------------------------------------------------------------------------------------------
    def add_instance(self, instance: SimulatedInstance) -> None:
        """Manage an instance; one without a patch level gets every applicable catalog patch Missing (and a scan)."""
        with self._lock:
            if not instance.patches:
                instance.patches = pm.initial_patch_states(instance.platform)
            before_cycle = self.clock.start - timedelta(hours=12)
            for record in instance.patches.values():  # what is on disk already was installed before the cycle
                if record.installed_time is not None and record.installed_time > before_cycle:
                    record.installed_time = before_cycle
            if instance.last_operation is None:  # the daily scan before the cycle (the clock may restart later)
                scanned = self.clock.start - timedelta(hours=6)
                rejected = frozenset(self.rejected_patches(instance))
                unapproved = frozenset(self.unapproved_patches(instance))
                instance.last_operation = PatchOperation(
                    "Scan", scanned, scanned, "RebootIfNeeded", rejected, unapproved=unapproved
                )
            self.instances[instance.instance_id] = instance

    def register_document(self, name: str, content: dict[str, Any]) -> CommandDocument:
        """Create a custom Command document (as the stack's AWS::SSM::Document does); SendCommand then takes it."""
        with self._lock:
            document = self.documents[name] = CommandDocument.from_content(name, content)
            return document

    def installed_patches(self, instance_id: str) -> set[str]:
        """Ground truth for tests: the ids of the patches on the instance's disk (pending reboot included)."""
        with self._lock:
            records = self.instances[instance_id].patches
            return {patch_id for patch_id, record in records.items() if record.state in pm.ON_DISK}

    def installed_during_cycle(self, instance_id: str) -> set[str]:
        """Ground truth for tests: the patches installed since the simulated clock (re)started."""
        with self._lock:
            records = self.instances[instance_id].patches
            return {
                patch_id
                for patch_id, record in records.items()
                if record.state in pm.ON_DISK
                and record.installed_time is not None
                and record.installed_time >= self.clock.start
            }

    def _instances_with_tag(self, key: str, values: list[str]) -> list[SimulatedInstance]:
        return [i for i in self.instances.values() if i.tags.get(key) in values]

    def hold(self) -> threading.RLock:
        """The service's lock: `with sim.hold():` makes several calls land before any scheduled step runs."""
        return self._lock

    def busy(self) -> bool:
        with self._lock:
            return any(not command.finished for command in self.commands.values())

    # -- API -----------------------------------------------------------------------------------------------------
    @property
    def operations(self) -> frozenset[str]:
        """The SSM operations this simulator serves (every `_op_<Operation>` method)."""
        return frozenset(name.removeprefix("_op_") for name in dir(self) if name.startswith("_op_"))

    def handle(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        handler = getattr(self, f"_op_{operation}", None)
        if handler is None:
            raise NotImplementedError(operation)
        with self._lock:
            result: dict[str, Any] = handler(params)
            return result

    def _resolve_targets(self, params: dict[str, Any]) -> list[SimulatedInstance]:
        instance_ids = params.get("InstanceIds") or []
        targets = params.get("Targets") or []
        if bool(instance_ids) == bool(targets):
            raise SimulatedApiError("InvalidParameters", "Specify exactly one of InstanceIds and Targets.")
        if instance_ids:
            if len(instance_ids) > 50:
                raise SimulatedApiError("ValidationException", "InstanceIds has at most 50 items.")
            unknown = [i for i in instance_ids if i not in self.instances]
            if unknown:
                raise SimulatedApiError("InvalidInstanceId", f"Instances not managed: {', '.join(unknown)}")
            return [self.instances[i] for i in instance_ids]
        if len(targets) > 5:
            raise SimulatedApiError("ValidationException", "Targets has at most 5 items.")
        resolved: dict[str, SimulatedInstance] = {}
        for target in targets:
            key, values = target.get("Key", ""), target.get("Values", [])
            if key.startswith("tag:"):
                matched = self._instances_with_tag(key[4:], values)
            elif key == "InstanceIds":
                matched = [self.instances[i] for i in values if i in self.instances]
            else:
                raise SimulatedApiError("InvalidTarget", f"Unsupported target key {key!r} in the simulator.")
            resolved.update({instance.instance_id: instance for instance in matched})
        return list(resolved.values())

    def _op_SendCommand(self, params: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        document = params.get("DocumentName", "")
        custom = self.documents.get(document)
        if document not in SUPPORTED_DOCUMENTS and custom is None:
            raise SimulatedApiError("InvalidDocument", f"Document {document!r} is not known to the simulator.")
        comment = params.get("Comment", "")
        if len(comment) > 100:
            raise SimulatedApiError("ValidationException", "Comment must be at most 100 characters.")
        timeout = int(params.get("TimeoutSeconds", DEFAULT_TIMEOUT_SECONDS))
        if not MIN_TIMEOUT_SECONDS <= timeout <= MAX_TIMEOUT_SECONDS:
            raise SimulatedApiError(
                "ValidationException", f"TimeoutSeconds must be {MIN_TIMEOUT_SECONDS} to {MAX_TIMEOUT_SECONDS}."
            )
        parameters = params.get("Parameters") or {}
        resolved = custom.resolve(parameters) if custom is not None else self._check_parameters(document, parameters)
        instances = self._resolve_targets(params)  # validates the targets now; tag targets resolve again later
        command = Command(
            command_id=str(uuid.UUID(int=self._rng.getrandbits(128))),
            document_name=document,
            comment=comment,
            parameters=parameters,
            targets=params.get("Targets") or [],
            max_concurrency=str(params.get("MaxConcurrency", "50")),
            max_errors=str(params.get("MaxErrors", "0")),
            requested=self.clock.now(),
            delivery_timeout_seconds=timeout,
            execution_timeout_seconds=self._execution_timeout(document, resolved, custom),
            document=custom,
        )
        if command.operation == "Install" and command.parameter("InstallOverrideList"):
            self._read_override_list(command)
        if command.operation == "Install" and command.parameter("BaselineOverride"):
            self._read_baseline_override(command)
        self.commands[command.command_id] = command
        if command.operation == "Install":
            for joining in self.join_during_next_install:
                self.add_instance(joining)
            self.join_during_next_install = []
        anchor = self.scheduler.anchor(chained=True)  # one base: resolution, deadline and expiry keep their order
        if command.targets:
            resolve = lambda: self._resolve_command(command.command_id, params)  # noqa: E731
            self.scheduler.after(TARGET_RESOLUTION_SECONDS, resolve, anchor=anchor)
        else:
            self._target(command, instances, anchor)
        self.scheduler.after(timeout, lambda: self._delivery_deadline(command.command_id), anchor=anchor)
        expiry = timeout + command.execution_timeout_seconds
        self.scheduler.after(expiry, lambda: self._expire(command.command_id), anchor=anchor)
        return {"Command": self._command_view(command)}

    @staticmethod
    def _execution_timeout(document: str, parameters: dict[str, list[str]], custom: CommandDocument | None) -> int:
        if custom is not None:  # every step may run to its own timeout
            return sum(custom.step_timeout(step, parameters) for step in custom.steps)
        if document in SHELL_DOCUMENTS:
            value = (parameters.get("executionTimeout") or [str(DEFAULT_EXECUTION_TIMEOUT_SECONDS)])[0]
            return int(value)
        return EXECUTION_TIMEOUT_SECONDS.get(document, DEFAULT_EXECUTION_TIMEOUT_SECONDS)

    def _resolve_command(self, command_id: str, params: dict[str, Any]) -> None:
        """Tag targets resolve a moment after SendCommand: instances tagged by then are targeted too."""
        with self._lock:
            command = self.commands[command_id]
            self._target(command, self._resolve_targets(params))
        self._dispatch(command_id)

    def _target(self, command: Command, instances: list[SimulatedInstance], anchor: float | None = None) -> None:
        command.invocations = {i.instance_id: Invocation(instance=i) for i in instances}
        command.completed = command.unsuccessful = command.delivery_timed_out = 0
        command.queue = [i.instance_id for i in instances]
        command.resolved = True
        if not command.targets:
            self.scheduler.after(2.0, lambda: self._dispatch(command.command_id), anchor=anchor)

    def _delivery_deadline(self, command_id: str) -> None:
        """TimeoutSeconds passed: an invocation that has not started by now never runs (DeliveryTimedOut)."""
        with self._lock:
            command = self.commands[command_id]
            for invocation in command.invocations.values():
                if invocation.status in TERMINAL or invocation.started is not None:
                    continue
                if invocation.instance.instance_id in command.queue:
                    command.queue.remove(invocation.instance.instance_id)
                else:
                    command.running -= 1  # an unreachable instance held its slot
                self._finish(command, invocation.instance.instance_id, "DeliveryTimedOut")
        self._dispatch(command_id)

    def _expire(self, command_id: str) -> None:
        """The command expired: every invocation still InProgress, Pending or Delayed becomes DeliveryTimedOut."""
        with self._lock:
            command = self.commands[command_id]
            for invocation in command.invocations.values():
                if invocation.status not in TERMINAL:
                    command.queue[:] = [i for i in command.queue if i != invocation.instance.instance_id]
                    self._finish(command, invocation.instance.instance_id, "DeliveryTimedOut")
            self._maybe_complete(command)

    @staticmethod
    def _check_parameters(document: str, parameters: dict[str, list[str]]) -> dict[str, list[str]]:
        if document in SHELL_DOCUMENTS:
            if not any(parameters.get("commands") or []):
                raise SimulatedApiError("InvalidParameters", f"{document} requires the parameter 'commands'.")
            return parameters
        operation = (parameters.get("Operation") or ["Scan"])[0]
        if operation not in ("Scan", "Install"):
            raise SimulatedApiError("InvalidParameters", f"Operation must be Scan or Install, not {operation!r}.")
        reboot = (parameters.get("RebootOption") or ["RebootIfNeeded"])[0]
        if reboot not in ("RebootIfNeeded", "NoReboot"):
            raise SimulatedApiError(
                "InvalidParameters", f"RebootOption must be RebootIfNeeded or NoReboot, not {reboot!r}."
            )
        return parameters

    def _read_override_list(self, command: Command) -> None:
        """Read the InstallOverrideList once per command; the agent fails the Install if it cannot (as AWS does)."""
        url = command.parameter("InstallOverrideList")
        try:
            command.override = pm.parse_install_override_list(self.fetch_object(url))
        except Exception as error:  # any read/parse failure ends every invocation Failed, like the real document
            command.override_error = f"{type(error).__name__}: {error}"

    def _read_baseline_override(self, command: Command) -> None:
        """Read a BaselineOverride (a JSON list of baselines): only its explicitly approved patches/CVEs install."""
        try:
            baselines = json.loads(self.fetch_object(command.parameter("BaselineOverride")))
            command.baseline_override = {b["OperatingSystem"]: list(b.get("ApprovedPatches", [])) for b in baselines}
        except Exception as error:  # any read/parse failure ends every invocation Failed, like the real document
            command.override_error = f"{type(error).__name__}: {error}"

    def _override_for(self, command: Command, instance: SimulatedInstance) -> list[pm.OverrideEntry] | None:
        if command.baseline_override is None:
            return command.override
        approved = command.baseline_override.get(instance.platform, [])
        return [
            pm.OverrideEntry(patch_id=patch_id)
            for patch_id, record in instance.patches.items()
            if any(record.patch.matches_name(name) for name in approved)
        ]

    def _dispatch(self, command_id: str) -> None:
        with self._lock:
            command = self.commands[command_id]
            if not command.resolved or command.status in TERMINAL:
                return
            if command.status == "Pending":
                command.status = "InProgress"
            total = len(command.invocations)
            concurrency = _limit(command.max_concurrency, total, 1)
            error_budget = _limit(command.max_errors, total, 0)
            while command.queue and command.running < concurrency:
                if command.errors > error_budget:
                    for instance_id in command.queue:  # max-errors exceeded: the rest never run
                        self._finish(command, instance_id, "Terminated")
                    command.queue.clear()
                    break
                self._start(command, command.queue.pop(0))
            self._maybe_complete(command)

    def _start(self, command: Command, instance_id: str) -> None:
        invocation = command.invocations[instance_id]
        instance = invocation.instance
        platform_type = PLATFORMS[instance.platform][0]
        platforms = command.document.platform_types if command.document else DOCUMENT_PLATFORMS[command.document_name]
        if platform_type not in platforms:
            self._finish(command, instance_id, "InvalidPlatform")  # never runs, holds no slot
            return
        if not instance.reachable:
            command.running += 1  # holds its slot, never starts: the delivery deadline ends it
            return
        invocation.status = "InProgress"
        invocation.started = self.clock.now()
        command.running += 1
        self._emit_invocation(command, invocation)
        if command.operation == "Install":
            minutes, outcome = instance.install_minutes, self._begin_install(command, invocation)
        elif command.operation == "Health":
            minutes, outcome = self._health_run(command, instance, platform_type)
        else:
            minutes, outcome = instance.scan_minutes, "Success"
            invocation.rejected = frozenset(self.rejected_patches(instance))
            invocation.unapproved = frozenset(self.unapproved_patches(instance))
        seconds = minutes * 60 * self._rng.uniform(0.8, 1.25)
        limit = self._run_timeout(command, platform_type)
        if seconds > limit:
            seconds, outcome = limit, "ExecutionTimedOut"
        self.scheduler.after(seconds, lambda: self._complete(command.command_id, instance_id, outcome), chained=True)
        for observer in self.invocation_started:
            observer(command, instance_id)

    def _health_run(self, command: Command, instance: SimulatedInstance, platform_type: str) -> tuple[float, str]:
        """How long a health command runs on the instance and how it ends (the instance's simulated health).

        A custom document runs only the steps for the node's platform; when every step is skipped nothing runs and
        the invocation ends Success (a skipped step counts as a success: ``CommandDocument``).
        """
        if command.document is None:
            return HEALTH_COMMAND_MINUTES, self.health_outcome(command, instance)
        ran = command.document.steps_for(platform_type)
        if not ran:
            return SKIPPED_STEPS_SECONDS / 60, "Success"
        return HEALTH_COMMAND_MINUTES * len(ran), self.health_outcome(command, instance)

    @staticmethod
    def _run_timeout(command: Command, platform_type: str) -> int:
        """The execution timeout of an invocation: the document's, or the sum of the steps that run on the node."""
        if command.document is None:
            return command.execution_timeout_seconds
        parameters = command.document.resolve(command.parameters)
        ran = command.document.steps_for(platform_type)
        return sum(command.document.step_timeout(step, parameters) for step in ran) or command.execution_timeout_seconds

    def _begin_install(self, command: Command, invocation: Invocation) -> str:
        """Decide what an Install does on its instance (the baseline snapshot is taken when it starts)."""
        instance = invocation.instance
        if command.override_error is not None:
            return "Failed"
        outcome = instance.install_outcome
        if instance.flaky_failures_left > 0:
            instance.flaky_failures_left -= 1
            outcome = instance.flaky_outcome
        if outcome not in ("Success", "Failed"):
            return outcome  # timed out / cancelled by the agent: nothing reported
        invocation.rejected = frozenset(self.rejected_patches(instance))
        invocation.unapproved = frozenset(self.unapproved_patches(instance))
        invocation.plan = pm.plan_install(
            instance.patches,
            set(invocation.rejected),
            self._override_for(command, instance),
            fail_all=outcome == "Failed",
            unapproved=invocation.unapproved,
        )
        return "Failed" if invocation.plan.failed or outcome == "Failed" else "Success"

    def _complete(self, command_id: str, instance_id: str, status: str) -> None:
        with self._lock:
            command = self.commands[command_id]
            if command.invocations[instance_id].status in TERMINAL:
                return  # the command expired while it ran
            command.running -= 1
            if status != "Success" and status not in NOT_COUNTED_AS_ERRORS:
                command.errors += 1
            self._record_patching(command, command.invocations[instance_id], status)
            self._finish(command, instance_id, status)
        self._dispatch(command_id)

    def _record_patching(self, command: Command, invocation: Invocation, status: str) -> None:
        """At the end of a Scan or Install: change the patch level and report compliance."""
        instance, now = invocation.instance, self.clock.now()
        reboot_option = command.parameter("RebootOption", "RebootIfNeeded")
        override_url: str | None = None
        if command.operation == "Install" and invocation.plan is not None:
            reboot = reboot_option != "NoReboot"
            if pm.apply_install(instance.patches, invocation.plan, now, reboot):
                instance.healthy = False
            if not reboot:
                instance.last_no_reboot_install = now
            override_url = command.parameter("InstallOverrideList") or None
        elif command.operation != "Scan" or status != "Success":
            return
        snapshot_id = command.parameter("SnapshotId")
        instance.last_operation = PatchOperation(
            operation=command.operation,
            started=invocation.started or now,
            ended=now,
            reboot_option=reboot_option,
            rejected=invocation.rejected,
            unapproved=invocation.unapproved,
            install_override_list=override_url,
            snapshot_id=snapshot_id if len(snapshot_id) == 36 else None,
        )

    def _finish(self, command: Command, instance_id: str, status: str) -> None:
        invocation = command.invocations[instance_id]
        if invocation.status not in TERMINAL and status in TERMINAL:
            command.completed += 1
            command.unsuccessful += status != "Success"
            command.delivery_timed_out += status == "DeliveryTimedOut"
        invocation.status = status
        invocation.ended = self.clock.now()
        self._emit_invocation(command, invocation)

    def _maybe_complete(self, command: Command) -> None:
        if command.status in TERMINAL or not command.finished:
            return
        error_budget = _limit(command.max_errors, len(command.invocations), 0)
        statuses = [inv.status for inv in command.invocations.values()]
        # Not-counted outcomes alone do not fail a command, unless no invocation succeeded (monitor-commands.md).
        failed = command.errors > error_budget or "Success" not in statuses
        command.status = "Failed" if failed else "Success"
        self.emit_event(
            self._event(
                "EC2 Command Status-change Notification",
                [f"arn:aws:ec2:{self.region}:{ACCOUNT_ID}:instance/{i}" for i in command.invocations],
                {
                    "command-id": command.command_id,
                    "document-name": command.document_name,
                    "expire-after": _iso(command.expires_after),
                    "parameters": command.parameters,
                    "requested-date-time": _iso(command.requested),
                    "status": command.status,
                },
            )
        )

    def _emit_invocation(self, command: Command, invocation: Invocation) -> None:
        instance = invocation.instance
        event = self._event(
            "EC2 Command Invocation Status-change Notification",
            [f"arn:aws:ec2:{self.region}:{ACCOUNT_ID}:instance/{instance.instance_id}"],
            {
                "command-id": command.command_id,
                "document-name": command.document_name,
                "instance-id": instance.instance_id,
                "requested-date-time": _iso(command.requested),
                "status": invocation.status,
            },
        )
        if instance.drop_terminal_event and invocation.status in TERMINAL:
            self.dropped_events.append(event)
            return
        self.emit_event(event)

    def _event(self, detail_type: str, resources: list[str], detail: dict[str, Any]) -> dict[str, Any]:
        return {
            "version": "0",
            "id": str(uuid.UUID(int=self._rng.getrandbits(128))),
            "detail-type": detail_type,
            "source": "aws.ssm",
            "account": ACCOUNT_ID,
            "time": self.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": self.region,
            "resources": resources,
            "detail": detail,
        }

    def _command_view(self, command: Command) -> dict[str, Any]:
        return {
            "CommandId": command.command_id,
            "DocumentName": command.document_name,
            "Comment": command.comment,
            "Parameters": command.parameters,
            "Targets": command.targets,
            "RequestedDateTime": command.requested,
            "Status": command.status,
            "StatusDetails": command.status,
            "ExpiresAfter": command.expires_after,
            "MaxConcurrency": command.max_concurrency,
            "MaxErrors": command.max_errors,
            "TargetCount": len(command.invocations),
            "CompletedCount": command.completed,
            "ErrorCount": command.unsuccessful,
            "DeliveryTimedOutCount": command.delivery_timed_out,
            "TimeoutSeconds": command.delivery_timeout_seconds,
        }

    def _command(self, command_id: str) -> Command:
        command = self.commands.get(command_id)
        if command is None:
            raise SimulatedApiError("InvalidCommandId", f"Command {command_id} does not exist.")
        return command

    def _op_ListCommands(self, params: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        if params.get("CommandId"):
            return {"Commands": [self._command_view(self._command(params["CommandId"]))]}
        commands = [
            c for c in self.commands.values() if all(_command_filter(c, f) for f in params.get("Filters") or [])
        ]
        page, token = _page_of([self._command_view(c) for c in commands], params, 50)
        return {"Commands": page, **({"NextToken": token} if token else {})}

    @staticmethod
    def _page(items: list[Any], params: dict[str, Any], default_size: int) -> tuple[list[Any], str | None]:
        size = int(params.get("MaxResults") or default_size)
        start = int(params.get("NextToken") or 0)
        end = start + size
        return items[start:end], (str(end) if end < len(items) else None)

    def _op_ListCommandInvocations(self, params: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        command = self._command(params["CommandId"])
        views = [
            {
                "CommandId": command.command_id,
                "InstanceId": inv.instance.instance_id,
                "DocumentName": command.document_name,
                "Comment": command.comment,
                "RequestedDateTime": command.requested,
                "Status": inv.status,
                "StatusDetails": inv.status,
            }
            for inv in command.invocations.values()
        ]
        page, token = self._page(views, params, 50)
        return {"CommandInvocations": page, **({"NextToken": token} if token else {})}

    def _op_GetCommandInvocation(self, params: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        command = self._command(params["CommandId"])
        invocation = command.invocations.get(params["InstanceId"])
        if invocation is None:
            raise SimulatedApiError("InvocationDoesNotExist", "The command has no invocation on that instance.")
        return {
            "CommandId": command.command_id,
            "InstanceId": invocation.instance.instance_id,
            "DocumentName": command.document_name,
            "Status": invocation.status,
            "StatusDetails": invocation.status,
            "ResponseCode": 0 if invocation.status == "Success" else 1,
        }

    def _op_DescribeInstanceInformation(self, params: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        instances = list(self.instances.values())
        for flt in params.get("Filters") or []:
            key, values = flt["Key"], flt["Values"]
            if key.startswith("tag:"):
                instances = [i for i in instances if i.tags.get(key[4:]) in values]
            elif key == "PingStatus":
                instances = [i for i in instances if ("Online" if i.reachable else "ConnectionLost") in values]
            elif key == "InstanceIds":
                instances = [i for i in instances if i.instance_id in values]
            else:
                raise SimulatedApiError("InvalidInstanceInformationFilterValue", f"Unsupported filter {key!r}.")
        views = [
            {
                "InstanceId": i.instance_id,
                "PingStatus": "Online" if i.reachable else "ConnectionLost",
                # InstanceInformation (API reference): LastPingDateTime is the agent's last heartbeat; ResourceType
                # is EC2Instance or ManagedInstance (hybrid activations, ids `mi-` + 17 hex digits).
                "LastPingDateTime": self.clock.now() if i.reachable else (i.offline_since or self.clock.start),
                "PlatformType": PLATFORMS[i.platform][0],
                "PlatformName": PLATFORMS[i.platform][1],
                "PlatformVersion": PLATFORMS[i.platform][2],
                "ResourceType": "ManagedInstance" if i.instance_id.startswith("mi-") else "EC2Instance",
                "AgentVersion": "3.3.1142.0",
                "IsLatestVersion": True,
                "ComputerName": i.tags.get("Name", i.instance_id),
            }
            for i in instances
        ]
        page, token = self._page(views, params, 50)
        return {"InstanceInformationList": page, **({"NextToken": token} if token else {})}

    # -- patch compliance ----------------------------------------------------------------------------------------
    def _patch_rows(self, instance: SimulatedInstance) -> list[dict[str, Any]]:
        operation = instance.last_operation
        rejected = operation.rejected if operation else frozenset()
        unapproved = operation.unapproved if operation else frozenset()
        rows = []
        for record in instance.patches.values():
            state = pm.reported_state(record, rejected, unapproved)
            if state is None:
                continue
            patch = record.patch
            row: dict[str, Any] = {
                "Title": patch.title,
                "KBId": patch.patch_id,
                "Classification": patch.classification,
                "Severity": patch.severity,
                "State": state,
                "InstalledTime": (
                    record.installed_time if state in INSTALLED_STATES and instance.reports_installed_time else None
                )
                or pm.NOT_INSTALLED_TIME,  # the field is required; an OS that does not report it gives the epoch
            }
            if patch.cve_ids:
                row["CVEIds"] = ",".join(patch.cve_ids)
            rows.append(row)
        return rows

    def _op_DescribeInstancePatches(self, params: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        instance = self.instances.get(params.get("InstanceId", ""))
        if instance is None:
            raise SimulatedApiError("InvalidInstanceId", f"Instance {params.get('InstanceId')} is not managed.")
        filters = params.get("Filters") or []
        if len(filters) > 5:
            raise SimulatedApiError("ValidationException", "Filters has at most 5 items.")
        rows = self._patch_rows(instance)
        for flt in filters:
            key, values = flt.get("Key", ""), {_normalized(v) for v in flt.get("Values") or []}
            if key not in ("State", "Classification", "Severity", "KBId"):
                raise SimulatedApiError("InvalidFilter", f"Unsupported filter key {key!r}.")
            rows = [row for row in rows if _normalized(row[key]) in values]
        page, token = _page_of(rows, params, 50)
        return {"Patches": page, **({"NextToken": token} if token else {})}

    def _state_row(self, instance: SimulatedInstance) -> dict[str, Any] | None:
        operation = instance.last_operation
        if operation is None:
            return None
        counts = pm.count_states(instance.patches, operation.rejected, operation.unapproved)
        row: dict[str, Any] = {
            "InstanceId": instance.instance_id,
            "PatchGroup": _patch_group(instance),
            "BaselineId": self.baseline_id(instance),
            "OperationStartTime": operation.started,
            "OperationEndTime": operation.ended,
            "Operation": operation.operation,
            "RebootOption": operation.reboot_option,
            **{key: counts.by_state[state] for key, state in COUNT_FILTER_KEYS.items()},
            "UnreportedNotApplicableCount": 0,
            "CriticalNonCompliantCount": counts.critical_non_compliant,
            "SecurityNonCompliantCount": counts.security_non_compliant,
            "OtherNonCompliantCount": counts.other_non_compliant,
        }
        if operation.install_override_list:
            row["InstallOverrideList"] = operation.install_override_list
        if operation.snapshot_id:
            row["SnapshotId"] = operation.snapshot_id
        if instance.last_no_reboot_install:
            row["LastNoRebootInstallOperationTime"] = instance.last_no_reboot_install
        return row

    def _op_DescribeInstancePatchStates(self, params: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        instance_ids = params.get("InstanceIds") or []
        if len(instance_ids) > 50:
            raise SimulatedApiError("ValidationException", "InstanceIds has at most 50 items.")
        rows = [self._state_row(self.instances[i]) for i in dict.fromkeys(instance_ids) if i in self.instances]
        page, token = _page_of([row for row in rows if row is not None], params, 50)
        return {"InstancePatchStates": page, **({"NextToken": token} if token else {})}

    def _op_DescribeInstancePatchStatesForPatchGroup(self, params: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        group = params.get("PatchGroup") or ""
        if not 1 <= len(group) <= 256:
            raise SimulatedApiError("ValidationException", "PatchGroup must be 1 to 256 characters.")
        filters = params.get("Filters") or []
        if len(filters) > 4:
            raise SimulatedApiError("ValidationException", "Filters has at most 4 items.")
        rows = [self._state_row(i) for i in self.instances.values() if _patch_group(i) == group]
        selected = [row for row in rows if row is not None and all(_count_filter(row, flt) for flt in filters)]
        page, token = _page_of(selected, params, 50)
        return {"InstancePatchStates": page, **({"NextToken": token} if token else {})}


_COMPARISONS: dict[str, Callable[[int, int], bool]] = {
    "Equal": lambda a, b: a == b,
    "NotEqual": lambda a, b: a != b,
    "LessThan": lambda a, b: a < b,
    "GreaterThan": lambda a, b: a > b,
}


def _count_filter(row: dict[str, Any], flt: dict[str, Any]) -> bool:
    key, values, kind = flt.get("Key", ""), flt.get("Values") or [], flt.get("Type", "")
    if key not in COUNT_FILTER_KEYS or kind not in _COMPARISONS or len(values) != 1 or not str(values[0]).isdigit():
        raise SimulatedApiError("InvalidFilter", f"Unsupported instance patch state filter {flt!r}.")
    return _COMPARISONS[kind](int(row[key]), int(values[0]))


COMMAND_STATUSES = frozenset({"Pending", "InProgress", "Success", "Cancelled", "Failed", "TimedOut", "Cancelling"})


def _command_filter(command: Command, flt: dict[str, Any]) -> bool:
    """One ListCommands filter (CommandFilter: InvokedAfter, InvokedBefore, Status, DocumentName; API reference)."""
    key, value = flt.get("key", ""), str(flt.get("value", ""))
    if key in ("InvokedAfter", "InvokedBefore"):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as error:
            raise SimulatedApiError("InvalidFilterValue", f"{key} must be a timestamp, not {value!r}.") from error
        return command.requested >= moment if key == "InvokedAfter" else command.requested <= moment
    if key == "Status":
        if value not in COMMAND_STATUSES:
            raise SimulatedApiError("InvalidFilterValue", f"Status {value!r} is not a command status.")
        return command.status == value
    if key == "DocumentName":
        return command.document_name == value
    raise SimulatedApiError("InvalidFilterKey", f"Unsupported ListCommands filter key {key!r}.")
