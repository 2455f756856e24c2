"""The local runtime: moto in-process, the template's resources, the real ASL, the real handlers, a simulated fleet."""

from __future__ import annotations

import copy
import functools
import io
import json
import logging
import os
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

import boto3
import yaml
from botocore.awsrequest import AWSPreparedRequest, AWSResponse, HTTPHeaders
from botocore.response import StreamingBody
from moto import mock_aws
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service_aws_sdk as aws_sdk_task,
)
from moto.stepfunctions.responses import get_backend as stepfunctions_backend

from patchpilot.handlers import wiring
from patchpilot.integrations import aws_clients
from patchpilot.models.rollout import StageCatalog
from patchpilot.models.state import WaitLimits
from patchpilot_sim import moto_dispatch, moto_dynamodb, moto_ec2, moto_sqs, moto_transactions
from patchpilot_sim.baselines import PatchBaselineStandIn
from patchpilot_sim.chat import LocalChat, generated_secret_string
from patchpilot_sim.clock import DEFAULT_REAL_TIMEOUT_SECONDS, Scheduler, SimClock
from patchpilot_sim.ec2_volumes import Ec2VolumesStandIn, moto_block_devices
from patchpilot_sim.eventbus import EventRouter
from patchpilot_sim.fleet import ACCOUNT_ID, SimulatedApiError, SimulatedInstance, SsmAgentSimulator
from patchpilot_sim.instance_tags import InstanceTagMirror
from patchpilot_sim.lambdas import ENVIRONMENT_LOCK, InProcessLambda, ThreadRoutedStream
from patchpilot_sim.moto_clock import MotoClockPatch, ProductClockPatch, SdkBackoffPatch
from patchpilot_sim.patches import rejected_ids, unapproved_ids
from patchpilot_sim.sqs_poller import SqsEventSourcePoller, queue_state
from patchpilot_sim.windows import ChangeCalendarStandIn, SimulatedWallClock

if TYPE_CHECKING:
    from mypy_boto3_ec2.type_defs import TagSpecificationTypeDef, TagTypeDef

from patchpilot_sim.template import TEMPLATE_PATH, FunctionSpec, IntrinsicResolver, SamTemplate, table_definition

STACK_NAME = "patchpilot-local"
LOCAL_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_SECURITY_TOKEN": "testing",
}
# What a handler sees beyond the template's variables: there is no X-Ray daemon here; the chat webhooks are a
# loopback sink whose "timeouts" hold an answer 1.5 real seconds, so the notifier waits 1 s instead of 5 (a webhook
# call is real I/O: it takes real time, and no simulated time).
# The install wait's limits of the local stack: the product's defaults (15-minute heartbeat, 4-hour wait, 3
# reconciliations), in simulated seconds (the clock is discrete-event: in-process latency costs no simulated time, so
# no real-time floor is needed). A production group's waves can leave results 40 minutes apart: a reconciliation that
# finds SSM still running the command before its ExpiresAfter is not an attempt (logic/install_tracking.py).
LOCAL_LIMITS: dict[str, int] = WaitLimits().model_dump()
HANDLER_ENV = {
    "POWERTOOLS_TRACE_DISABLED": "true",
    "CHAT_POST_TIMEOUT_SECONDS": "1",
    "DEFAULT_WAIT_LIMITS": json.dumps(LOCAL_LIMITS),
}
PARAMS_KEY = "patchpilot_sim_api_params"
LAUNCH_BATCH = 100  # instances per RunInstances of the fleet's launch (moto finds each new one in its reservation)


def _http(status: int) -> AWSResponse:
    return AWSResponse("https://local.patchpilot", status, HTTPHeaders(), None)


class _RawBody(io.BytesIO):
    """A response body as urllib3's raw response offers it to botocore."""

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.getvalue()


# The JSON protocol of the services answered per HTTP attempt: content type and the namespace of `__type` error names.
JSON_PROTOCOL = {
    "dynamodb": ("application/x-amz-json-1.0", "com.amazonaws.dynamodb.v20120810#"),
    "ssm": ("application/x-amz-json-1.1", ""),
    "sfn": ("application/x-amz-json-1.0", ""),
}
NOT_SENT = "https://answered-locally.patchpilot.invalid/"  # moto leaves requests to an address outside AWS alone


def http_answer(service: str, status: int, body: dict[str, Any]) -> AWSResponse:
    """The raw HTTP response of one attempt in the service's JSON protocol, with the request id every answer carries."""
    content = json.dumps(body).encode()
    content_type = JSON_PROTOCOL[service][0]
    headers = {"x-amzn-RequestId": str(uuid.uuid4()), "Content-Type": content_type, "Content-Length": str(len(content))}
    return AWSResponse("https://local.patchpilot", status, HTTPHeaders.from_dict(headers), _RawBody(content))


def http_error(service: str, status: int, code: str, message: str, **extra: Any) -> AWSResponse:
    """An AWS JSON-protocol error response (`__type`, `message`), as botocore's parser and retry handler read it."""
    return http_answer(service, status, {"__type": f"{JSON_PROTOCOL[service][1]}{code}", "message": message, **extra})


_ATTEMPT = threading.local()  # `.serve`: the stand-in answer of this thread's call; `.parsed`: what it answered


def error_response(status: int, code: str, message: str, **extra: Any) -> tuple[AWSResponse, dict[str, Any]]:
    """An AWS error answer as botocore parses it: `Error`, and `ResponseMetadata` with the request id.

    Every AWS API response carries a request id (the `x-amzn-RequestId` header), errors included; botocore puts it
    in `ResponseMetadata.RequestId` (boto3 guide "Error handling",
    https://boto3.amazonaws.com/v1/documentation/api/latest/guide/error-handling.html). moto's Step Functions
    engine reads it to build an `aws-sdk:` task's `Cause` ("..., Request ID: ..."); without it the task does not
    fail with the service error but ends the execution with `States.Runtime`, past every Retry and Catch.
    """
    request_id = str(uuid.uuid4())
    metadata = {
        "RequestId": request_id,
        "HTTPStatusCode": status,
        "HTTPHeaders": {"x-amzn-requestid": request_id},
        "RetryAttempts": 0,
    }
    body = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": metadata, **extra}
    headers = HTTPHeaders.from_dict({"x-amzn-requestid": request_id})
    return AWSResponse("https://local.patchpilot", status, headers, None), body


class RuntimeTimeout(Exception):
    """A local execution did not finish within the allowed simulated time."""


@dataclass(frozen=True)
class LocalResources:
    """Physical names of what the runtime created from the template."""

    state_machine_arns: dict[str, str]
    table_names: dict[str, str]
    queue_urls: dict[str, str]
    topic_arns: dict[str, str]
    alert_inbox_url: str


class LocalRuntime:
    """Runs PatchPilot locally: `with LocalRuntime() as rt: rt.add_instances(...); rt.start_rollout(...)`."""

    def __init__(
        self,
        seed: int = 7,
        region: str = "us-east-1",
        template_path: Path = TEMPLATE_PATH,
        lambda_log: IO[str] | None = None,
        stage_catalog: StageCatalog | None = None,
    ) -> None:
        self.region = region
        self.template = SamTemplate(template_path)
        self.clock = SimClock()
        # The deployed stage catalog (StageCatalogParameter) as a differently configured policy would render it.
        self.stage_catalog_override = stage_catalog
        self.seed = seed
        self.lambda_log: IO[str] = lambda_log or io.StringIO()
        self.aws_calls: Counter[str] = Counter()
        self._calls_lock = threading.Lock()
        self._mock: Any = None
        self.alerts: list[dict[str, Any]] = []
        # Every message that reached the events dead-letter queue, seen as it arrived (the queue's alarm fires then):
        # a month-long cycle outlasts the queue's 14-day retention, after which SQS deletes it.
        self.dead_lettered: dict[str, dict[str, Any]] = {}
        self._saved_env: dict[str, str | None] = {}
        # Answer a call before the runtime does (fault injection): (service, operation, params) -> response or None.
        self.call_hooks: list[Callable[[str, str, dict[str, Any]], tuple[AWSResponse, dict[str, Any]] | None]] = []
        # Answer one HTTP attempt before the stand-ins and moto do (fault injection): (service, operation) -> response.
        self.send_hooks: list[Callable[[str, str], AWSResponse | None]] = []

    # -- lifecycle -----------------------------------------------------------------------------------------------
    def __enter__(self) -> LocalRuntime:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        for name in ("moto", "moto.stepfunctions", "botocore.credentials"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
        env = {**LOCAL_ENV, "AWS_DEFAULT_REGION": self.region, "AWS_REGION": self.region}
        with ENVIRONMENT_LOCK:
            self._saved_env = {key: os.environ.get(key) for key in env}
            os.environ.update(env)
        self._streams = (sys.stdout, sys.stderr)
        sys.stdout = ThreadRoutedStream(sys.stdout)
        sys.stderr = ThreadRoutedStream(sys.stderr)
        # Step Functions names SDK-integration errors `<Service>.<ErrorName>` with the service capitalised
        # (`Ssm.ThrottlingException`); moto knows only DynamoDb and Sfn and would say `ssm.ThrottlingException`.
        # https://docs.aws.amazon.com/step-functions/latest/dg/supported-services-awssdk.html
        aws_sdk_task._SERVICE_ERROR_NAMES.setdefault("ssm", "Ssm")
        self._mock = mock_aws(config={"stepfunctions": {"execute_state_machine": True}})
        self._mock.start()
        self._moto_clock = MotoClockPatch(self.clock)
        self._moto_clock.install()
        self.sdk_backoff = SdkBackoffPatch(self.clock)  # before any client: a token bucket takes its Condition then
        self.sdk_backoff.install()
        moto_transactions.install()  # a transaction backs up the items it names, not whole tables (O(fleet) each)
        moto_dynamodb.install()  # a base-table Query reads its partition, not the whole table sorted (O(fleet) each)
        moto_ec2.install()  # an instance by id, and its tags, without scanning the region (O(fleet) each)
        moto_sqs.install()  # a received message's retention check without rebuilding the queue's attributes (O(queue))
        moto_dispatch.install()  # a request finds its handler without listing the response class's methods again
        boto3.setup_default_session(region_name=self.region)
        aws_clients.reset_clients()
        self.admin = boto3.session.Session(region_name=self.region)
        self.scheduler = Scheduler(self.clock)
        self.fleet = SsmAgentSimulator(self.clock, self.scheduler, self._emit_event, self.region, self.seed)
        self.call_hooks.append(InstanceTagMirror(self.fleet))  # the canary tag reaches the fleet's tag targets
        self.baselines = PatchBaselineStandIn(
            self.template, stack_name=STACK_NAME, region=self.region, now=self.clock.now
        )
        self.fleet.rejected_patches = self._rejected_patches
        self.fleet.unapproved_patches = self._unapproved_patches
        self.fleet.baseline_id = self._baseline_id
        # EBS snapshots and root-volume replacement of the simulated instances (ec2_volumes.py)
        self.volumes = Ec2VolumesStandIn(
            self.clock,
            self.scheduler,
            self.fleet.instances,
            moto_block_devices(ACCOUNT_ID, self.region),
            self.fleet.hold(),
        )
        self.calendars = ChangeCalendarStandIn(self.clock)
        self.wall_clock = SimulatedWallClock(self.clock)
        self._previous_clock = wiring.use_clock(self.wall_clock)
        self.resources = self._create_resources()
        self.lambdas = InProcessLambda(
            self.template.functions(), self._function_env, self._function_arn, self.lambda_log
        )
        self.lambdas.preload()
        self._product_clock = ProductClockPatch(self.clock)  # after preload: every handler module is imported
        self._product_clock.install()
        self.poller = SqsEventSourcePoller(
            self.lambdas,
            self.admin.client("sqs"),
            self.resources.queue_urls,
            self.queue_arns,
            self.region,
            self.clock,
        )
        self.router = EventRouter(
            self.lambdas, self.admin.client("sqs"), self.resources.queue_urls, self.poller, self.resolver.resolve
        )
        self.chat = LocalChat(self)
        for source in (self.router.deliver_one, self.poller.poll_once, self.chat.delivery.deliver_one, self.collect):
            self.clock.add_work_source(source)
        self._create_state_machines()
        events = boto3.DEFAULT_SESSION.events  # type: ignore[union-attr]
        events.register_first("before-parameter-build.*.*", self._remember_params)
        events.register_first("before-call.*.*", cast(Callable[..., None], self._intercept))
        events.register_first("before-send.*.*", cast(Callable[..., None], self._send))
        events.register_first("before-parse.*.*", self._parse_served)

    def stop(self) -> None:
        self.chat.stop()
        self.router.stop()
        self.scheduler.stop()
        wiring.use_clock(self._previous_clock)
        self.lambdas.restore_environment()
        self._product_clock.uninstall()
        self.sdk_backoff.uninstall()
        self._moto_clock.uninstall()
        self._mock.stop()
        boto3.DEFAULT_SESSION = None
        aws_clients.reset_clients()
        sys.stdout, sys.stderr = self._streams
        with ENVIRONMENT_LOCK:
            for key, value in self._saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    # -- resources -----------------------------------------------------------------------------------------------
    def _physical_name(self, logical_id: str) -> str:
        return f"{STACK_NAME}-{logical_id}"

    def _function_arn(self, logical_id: str) -> str:
        return f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:function:{logical_id}"

    def _create_resources(self) -> LocalResources:
        sqs, sns = self.admin.client("sqs"), self.admin.client("sns")
        refs: dict[str, str] = {name: str(value) for name, value in self.template.parameters.items()}
        attributes: dict[tuple[str, str], str] = {}
        created: dict[str, dict[str, str]] = {"tables": {}, "queues": {}, "topics": {}}
        self.bucket_names: dict[str, str] = {}
        self.queue_arns: dict[str, str] = {}
        for logical_id, resource in self.template.resources.items():
            self._create_resource(logical_id, resource, refs, attributes, created)
        tables, queues, topics = created["tables"], created["queues"], created["topics"]
        self.resolver = IntrinsicResolver(
            refs,
            attributes,
            {
                "AWS::Region": self.region,
                "AWS::AccountId": ACCOUNT_ID,
                "AWS::StackName": STACK_NAME,
                "AWS::Partition": "aws",
                "AWS::URLSuffix": "amazonaws.com",
            },
        )
        inbox = sqs.create_queue(QueueName=f"{STACK_NAME}-alert-inbox")["QueueUrl"]
        inbox_arn = f"arn:aws:sqs:{self.region}:{ACCOUNT_ID}:{STACK_NAME}-alert-inbox"
        for topic_arn in topics.values():
            sns.subscribe(
                TopicArn=topic_arn, Protocol="sqs", Endpoint=inbox_arn, Attributes={"RawMessageDelivery": "true"}
            )
        return LocalResources({}, tables, queues, topics, inbox)

    def _create_resource(
        self,
        logical_id: str,
        resource: dict[str, Any],
        refs: dict[str, str],
        attributes: dict[tuple[str, str], str],
        created: dict[str, dict[str, str]],
    ) -> None:
        """Create one template resource in moto (or name it, when moto has nothing to create) and record its refs."""
        kind, props = resource["Type"], resource.get("Properties", {})
        name = self._physical_name(logical_id)
        arn_prefix = f"{self.region}:{ACCOUNT_ID}"
        if kind == "AWS::DynamoDB::Table":
            self.admin.client("dynamodb").create_table(**table_definition(name, props))
            created["tables"][logical_id] = refs[logical_id] = name
            attributes[(logical_id, "Arn")] = f"arn:aws:dynamodb:{arn_prefix}:table/{name}"
        elif kind == "AWS::SQS::Queue":
            created["queues"][logical_id] = refs[logical_id] = self.admin.client("sqs").create_queue(
                QueueName=name, Attributes=cast(Any, self._queue_attributes(props, attributes))
            )["QueueUrl"]
            attributes[(logical_id, "Arn")] = self.queue_arns[logical_id] = f"arn:aws:sqs:{arn_prefix}:{name}"
            attributes[(logical_id, "QueueName")] = name
        elif kind == "AWS::SecretsManager::Secret":
            refs[logical_id] = self.admin.client("secretsmanager").create_secret(
                Name=name, SecretString=generated_secret_string(props)
            )["ARN"]
        elif kind == "AWS::SNS::Topic":
            created["topics"][logical_id] = refs[logical_id] = self.admin.client("sns").create_topic(Name=name)[
                "TopicArn"
            ]
            attributes[(logical_id, "TopicName")] = name
        elif kind == "AWS::S3::Bucket":
            self.admin.client("s3").create_bucket(Bucket=name.lower())
            self.bucket_names[logical_id] = refs[logical_id] = name.lower()
            attributes[(logical_id, "Arn")] = f"arn:aws:s3:::{name.lower()}"
        else:
            self._name_resource(logical_id, kind, props, refs, attributes)

    def _name_resource(
        self,
        logical_id: str,
        kind: str,
        props: dict[str, Any],
        refs: dict[str, str],
        attributes: dict[tuple[str, str], str],
    ) -> None:
        """Refs and attributes of a resource moto has nothing to create for (or the runtime creates later)."""
        name = self._physical_name(logical_id)
        arn_prefix = f"{self.region}:{ACCOUNT_ID}"
        if kind == "AWS::SSM::Parameter":
            # Its value is plain text (no intrinsics): the rendered stage catalog.
            value = str(props["Value"])
            if logical_id == "StageCatalogParameter" and self.stage_catalog_override is not None:
                value = self.stage_catalog_override.model_dump_json(exclude_defaults=True)
            attributes[(logical_id, "Value")] = value
        elif kind == "AWS::Serverless::Function":
            refs[logical_id] = logical_id
            attributes[(logical_id, "Arn")] = self._function_arn(logical_id)
        elif kind == "AWS::Logs::LogGroup":
            refs[logical_id] = name
            attributes[(logical_id, "Arn")] = f"arn:aws:logs:{arn_prefix}:log-group:{name}"
        elif kind == "AWS::Serverless::StateMachine":
            refs[logical_id] = f"arn:aws:states:{arn_prefix}:stateMachine:{name}"
        elif kind == "AWS::SSM::Document":
            # The fleet plays SSM's SendCommand: the stack's Command document is created there (moto's SSM would hold
            # it, but never run it). `!Ref` is the document's name.
            content = props["Content"]
            self.fleet.register_document(name, yaml.safe_load(content) if isinstance(content, str) else content)
            refs[logical_id] = name

    def _queue_attributes(self, props: dict[str, Any], attributes: dict[tuple[str, str], str]) -> dict[str, str]:
        """The queue's attributes as the template declares them (redrive policy, visibility timeout, retention...).

        moto's SQS runs on the simulated clock (moto_clock.py): its timeouts and retention are simulated seconds,
        like in AWS, so a dead-letter queue keeps its messages the template's 14 days of a month-long cycle, not
        SQS's default 4.
        """
        result: dict[str, str] = {
            key: str(int(props[key]))
            for key in ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds", "MaximumMessageSize")
            if key in props
        }
        redrive = props.get("RedrivePolicy")
        if redrive:
            target = redrive["deadLetterTargetArn"]["Fn::GetAtt"][0]
            result["RedrivePolicy"] = json.dumps(
                {"deadLetterTargetArn": attributes[(target, "Arn")], "maxReceiveCount": int(redrive["maxReceiveCount"])}
            )
        return result

    def _create_state_machines(self) -> None:
        sfn = self.admin.client("stepfunctions")
        for logical_id, spec in self.template.state_machines().items():
            definition = spec.definition_path.read_text()
            for key, value in spec.substitutions.items():
                definition = definition.replace("${" + key + "}", str(self.resolver.resolve(value)))
            arn = sfn.create_state_machine(
                name=self._physical_name(logical_id),
                definition=definition,
                roleArn=f"arn:aws:iam::{ACCOUNT_ID}:role/{STACK_NAME}-{logical_id}",
                type="STANDARD",
            )["stateMachineArn"]
            self.resources.state_machine_arns[logical_id] = arn

    def _function_env(self, spec: FunctionSpec) -> dict[str, str]:
        env = {key: str(self.resolver.resolve(value)) for key, value in spec.environment.items()}
        # CHAT_POSTING_LEASE_SECONDS keeps the product's default (120 s): the handlers read the simulated clock
        # (ProductClockPatch), so a crashed notifier's claim lapses after 120 simulated seconds, before Lambda's async
        # retries 1 and 2 simulated minutes later (sns_lambda.py) find it; nothing is compressed.
        return {**env, **HANDLER_ENV, "AWS_LAMBDA_FUNCTION_NAME": spec.logical_id}

    # -- the fleet and its events --------------------------------------------------------------------------------
    def add_instances(self, instances: Iterable[SimulatedInstance]) -> list[SimulatedInstance]:
        """Launch the instances as moto EC2 instances (tags included) and hand them to the simulated agent.

        Instances that share every tag but their ``Name`` are launched together, up to `LAUNCH_BATCH` per RunInstances
        (MinCount = MaxCount, the shared tags in its TagSpecifications), and each ``Name`` is tagged after with
        CreateTags: RunInstances costs moto far more per call than per instance.
        """
        ec2 = self.admin.client("ec2")
        added = list(instances)
        groups: dict[tuple[tuple[str, str], ...], list[SimulatedInstance]] = {}
        for instance in added:
            shared = tuple((key, value) for key, value in instance.tags.items() if key != "Name")
            groups.setdefault(shared, []).append(instance)
        for shared, members in groups.items():
            for start in range(0, len(members), LAUNCH_BATCH):
                self._launch(ec2, dict(shared), members[start : start + LAUNCH_BATCH])
        for instance in added:
            self.fleet.add_instance(instance)
        return added

    @staticmethod
    def _launch(ec2: Any, shared_tags: dict[str, str], batch: list[SimulatedInstance]) -> None:
        tags: list[TagTypeDef] = [{"Key": k, "Value": v} for k, v in shared_tags.items()]
        tag_spec: list[TagSpecificationTypeDef] = [{"ResourceType": "instance", "Tags": tags}] if tags else []
        reservation = ec2.run_instances(
            ImageId="ami-12c6146b",
            MinCount=len(batch),
            MaxCount=len(batch),
            InstanceType="t3.micro",
            TagSpecifications=tag_spec,
        )
        for instance, launched in zip(batch, reservation["Instances"], strict=True):
            instance.instance_id = launched["InstanceId"]
            if "Name" in instance.tags:
                ec2.create_tags(
                    Resources=[instance.instance_id], Tags=[{"Key": "Name", "Value": instance.tags["Name"]}]
                )

    def _emit_event(self, event: dict[str, Any]) -> None:
        self.router.put_event(event)

    # -- botocore hooks: count calls, run Lambda in-process, serve the fleet ------------------------------------
    @staticmethod
    def _remember_params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context[PARAMS_KEY] = dict(params)

    def _intercept(
        self, event_name: str, context: dict[str, Any], **_: Any
    ) -> tuple[AWSResponse, dict[str, Any]] | None:
        service, operation = event_name.split(".", 2)[1:]
        with self._calls_lock:
            self.aws_calls[f"{service}.{operation}"] += 1
        params = context.get(PARAMS_KEY, {})
        _ATTEMPT.serve = None
        for hook in self.call_hooks:
            answer = hook(service, operation, params)
            if answer is not None:
                return answer
        if service == "lambda" and operation == "Invoke":
            return self._invoke_lambda(params)
        stand_in: Any = self._ssm_stand_in(operation) if service == "ssm" else None
        if service == "ec2" and operation in self.volumes.operations:  # snapshots, root-volume replacement
            stand_in = self.volumes
        if stand_in is not None and service in JSON_PROTOCOL:  # served per HTTP attempt (`_send`): SDK retries apply
            _ATTEMPT.serve = functools.partial(stand_in.handle, operation, params)
            return None
        if stand_in is not None:
            try:
                return _http(200), stand_in.handle(operation, params)
            except SimulatedApiError as error:
                return error_response(400, error.code, error.message)
        return None

    def _send(self, event_name: str, request: AWSPreparedRequest, **_: Any) -> AWSResponse | None:
        """Answer one HTTP attempt: a send hook's fault first, else the stand-in serving this call, else moto."""
        service, operation = event_name.split(".", 2)[1:]
        answer = next((a for hook in self.send_hooks if (a := hook(service, operation)) is not None), None)
        serve = getattr(_ATTEMPT, "serve", None)
        if answer is None and serve is not None:
            try:
                parsed = serve()
                answer = http_answer(service, 200, {})
            except SimulatedApiError as error:
                answer, parsed = http_error(service, 400, error.code, error.message), None
            _ATTEMPT.serve, _ATTEMPT.parsed = serve, parsed  # a stand-in's own calls ran on this thread meanwhile
        if answer is not None:
            request.url = NOT_SENT  # every before-send hook runs: moto's must not carry out an answered attempt
        return answer

    @staticmethod
    def _parse_served(customized_response_dict: dict[str, Any], **_: Any) -> None:
        """Hand botocore the stand-in's answer of this attempt as the parsed response."""
        parsed = getattr(_ATTEMPT, "parsed", None)
        if parsed is not None:
            _ATTEMPT.parsed = None
            customized_response_dict.update(parsed)

    def _baseline_id(self, instance: SimulatedInstance) -> str:
        if not instance.patch_group:  # no patch group: Patch Manager uses the OS's default baseline
            return self.baselines.default_baseline_id(instance.platform)
        answer = self.baselines.handle(
            "GetPatchBaselineForPatchGroup", {"PatchGroup": instance.patch_group, "OperatingSystem": instance.platform}
        )
        return str(answer["BaselineId"])

    def _rejected_patches(self, instance: SimulatedInstance) -> set[str]:
        """What the instance's baseline rejects (BLOCK), as catalog patch ids: the agent never installs those."""
        if not instance.patch_group:  # the OS's AWS-managed default baseline rejects nothing
            return set()
        baseline = self.baselines.handle("GetPatchBaseline", {"BaselineId": self._baseline_id(instance)})
        return rejected_ids(instance.platform, baseline.get("RejectedPatches", []), instance.patches)

    def _unapproved_patches(self, instance: SimulatedInstance) -> set[str]:
        """What the instance's baseline does not approve at the simulated now (its rules and the silent cases)."""
        baseline = self.baselines.handle("GetPatchBaseline", {"BaselineId": self._baseline_id(instance)})
        # Approval delays are not judged yet: the simulated fleet has no earlier months' approved patches Installed,
        # so a baseline inside its delay would look silent (approving nothing), which AWS never shows.
        return unapproved_ids(instance.platform, baseline, instance.patches, instance.updateinfo, None)

    def _ssm_stand_in(self, operation: str) -> SsmAgentSimulator | PatchBaselineStandIn | ChangeCalendarStandIn | None:
        if operation in self.fleet.operations:
            return self.fleet
        if operation in self.calendars.operations:
            return self.calendars
        if operation in self.baselines.operations:
            return self.baselines
        return None

    def _invoke_lambda(self, params: dict[str, Any]) -> tuple[AWSResponse, dict[str, Any]]:
        raw = params.get("Payload") or b"{}"
        event = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        if params.get("InvocationType") == "Event":

            def invoke_later() -> None:
                self.lambdas.invoke(params["FunctionName"], event)

            self.scheduler.after(0, invoke_later)
            return _http(202), {"StatusCode": 202}
        result = self.lambdas.invoke(params["FunctionName"], event)
        if result.sdk_backoff_seconds > 0 and self.clock.counted():
            # The Task sees the function end when its SDK's backoff would have let it (simulated seconds).
            self.clock.sleep(result.sdk_backoff_seconds)
        body = json.dumps(result.error_payload() if result.failed else result.payload).encode()
        response: dict[str, Any] = {
            "StatusCode": 200,
            "ExecutedVersion": "$LATEST",
            "Payload": StreamingBody(io.BytesIO(body), len(body)),
        }
        if result.failed:
            response["FunctionError"] = "Unhandled"
        return _http(200), response

    # -- executions ----------------------------------------------------------------------------------------------
    def state_machine_arn(self, logical_id: str = "RolloutStateMachine") -> str:
        return self.resources.state_machine_arns[logical_id]

    def start_rollout(self, request: dict[str, Any], name: str, logical_id: str = "RolloutStateMachine") -> str:
        sfn = self.admin.client("stepfunctions")
        response = sfn.start_execution(
            stateMachineArn=self.state_machine_arn(logical_id), name=name, input=json.dumps(request)
        )
        return response["executionArn"]

    def run_until(
        self,
        predicate: Callable[[], bool],
        max_simulated_seconds: float | None = None,
        real_timeout: float = DEFAULT_REAL_TIMEOUT_SECONDS,
    ) -> bool:
        """Let the simulation run until `predicate()` holds (see `SimClock.run_until`); time stands still after."""
        return self.clock.run_until(predicate, max_simulated_seconds, real_timeout)

    def execution_status(self, execution_arn: str) -> str:
        """An execution's status read from moto's backend (no API call: a predicate checked at every step)."""
        execution: Any = stepfunctions_backend(ACCOUNT_ID, self.region).describe_execution(execution_arn)
        return str(execution.status)

    def wait_for_execution(
        self,
        execution_arn: str,
        timeout: float = DEFAULT_REAL_TIMEOUT_SECONDS,
        max_simulated_seconds: float | None = None,
    ) -> dict[str, Any]:
        """Run the simulation until the execution ends; `timeout` is a real-time guard against a hung run."""
        ended = self.run_until(
            lambda: self.execution_status(execution_arn) != "RUNNING", max_simulated_seconds, real_timeout=timeout
        )
        if not ended:
            raise RuntimeTimeout(f"execution {execution_arn} still RUNNING after {max_simulated_seconds} simulated s")
        sfn = self.admin.client("stepfunctions")
        return dict(sfn.describe_execution(executionArn=execution_arn))

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        sfn = self.admin.client("stepfunctions")
        events: list[dict[str, Any]] = []
        for page in sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn):
            events.extend(cast(list[dict[str, Any]], page["events"]))
        return events

    def history_since(self, execution_arn: str, seen: int) -> list[dict[str, Any]]:
        """The execution's history events after the first `seen`, read from moto's execution as they are appended.

        What GetExecutionHistory pages through, without deep-copying and serialising the whole history again on
        every poll (it grows with the run; a follower that polls ten times a second would re-read it each time).
        """
        execution: Any = stepfunctions_backend(ACCOUNT_ID, self.region).describe_execution(execution_arn)
        worker = execution.exec_worker  # moto's ASL engine (execute_state_machine: the parser backend)
        env = worker.env if worker is not None else None
        if env is None:  # not started yet
            return []
        manager = env.event_manager
        with manager._mutex:
            return copy.deepcopy(list(manager._history_event_list[seen:]))

    def settle(self, timeout: float = DEFAULT_REAL_TIMEOUT_SECONDS) -> None:
        """Run the simulation until no event is being delivered and the fleet has no running command."""
        self.run_until(
            lambda: self.router.idle() and not self.fleet.busy() and self.poller.idle() and self.chat.idle(),
            real_timeout=timeout,
        )

    def collect(self) -> bool:
        """Take the alerts from the inbox as they arrive, like a subscriber would: a cycle outlasts SQS's retention.

        A work source of the simulated clock that never counts as work (reading the inbox starts nothing).
        """
        if queue_state(self.resources.alert_inbox_url).visible:
            self.notifications()
        url = self.resources.queue_urls["EventsDeadLetterQueue"]
        if queue_state(url).total > len(self.dead_lettered):
            for message in self.dead_letter_messages():
                self.dead_lettered.setdefault(message["MessageId"], message)
        return False

    def notifications(self) -> list[dict[str, Any]]:
        """Every alert published to the template's topics so far (delivered to a local inbox queue)."""
        sqs = self.admin.client("sqs")
        messages = self.alerts
        while True:
            batch = sqs.receive_message(QueueUrl=self.resources.alert_inbox_url, MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if not batch:
                break
            for message in batch:
                messages.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=self.resources.alert_inbox_url, ReceiptHandle=message["ReceiptHandle"])
        return messages

    def dead_letter_messages(self, logical_id: str = "EventsDeadLetterQueue") -> list[dict[str, Any]]:
        """Messages in a dead-letter queue (left in place)."""
        sqs = self.admin.client("sqs")
        response = sqs.receive_message(
            QueueUrl=self.resources.queue_urls[logical_id],
            MaxNumberOfMessages=10,
            MessageAttributeNames=["All"],
            VisibilityTimeout=0,
        )
        return cast(list[dict[str, Any]], response.get("Messages", []))
