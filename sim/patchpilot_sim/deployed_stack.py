"""The local runtime seen as a deployed stack, for `patchpilot doctor`: what `sam deploy` would leave in an account.

On top of the DescribeStacks stand-in (stack_standin.py) this adds, for the template's resources:

- CloudFormation ListStackResources after the SAM transform (a function's `<Function>Role` and its EventBridge rules
  `<Function><Event>`, the state machine's role), physical ids of the runtime's resources (moto has no stack here);
- the IAM roles in moto's IAM with the template's inline statements (resolved; the SAM policy templates the template
  uses, LambdaInvokePolicy and SNSPublishMessagePolicy, expanded as SAM documents them), and SimulatePrincipalPolicy
  over them (iam_standin.py; moto does not implement it);
- the monthly schedule in moto's EventBridge Scheduler, the stage catalog parameter in moto's SSM, the functions'
  EventBridge rules in moto's EventBridge, and events.TestEventPattern evaluated with moto's pattern matcher (moto's
  own TestEventPattern is a no-op);
- the AWS/Lambda `Invocations` and `Errors` metrics in moto's CloudWatch, published per invocation as Lambda does;
- instance profiles per patch group (`attach_instance_profiles`), which the fleet's instances do not have otherwise,
  and shell commands that read an S3 object (`aws s3 cp s3://…` / `Read-S3Object -BucketName … -Key …`) do so with
  the instance profile's credentials: the invocation fails when its role may not s3:GetObject it or it is missing.

The runtime names its state machine after the logical id (runtime.py), the template after `${AWS::StackName}-rollout`:
policy resources naming the template's state machine are mapped to the runtime's, so they point at the same resource
as in a deployment.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import boto3
from botocore.awsrequest import AWSResponse, HTTPHeaders
from moto.events.models import EventPattern

from patchpilot_sim.baselines import baseline_id_for
from patchpilot_sim.fleet import ACCOUNT_ID, Command, SimulatedInstance, healthy_outcome
from patchpilot_sim.iam_standin import PolicySimulatorStandIn, evaluate, role_policies
from patchpilot_sim.stack_standin import register_stack_outputs

if TYPE_CHECKING:
    from patchpilot_sim.lambdas import InvocationResult
    from patchpilot_sim.runtime import LocalRuntime

LAMBDA_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}
EC2_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}
# What the agent needs to be managed (the actions of AmazonSSMManagedInstanceCore that matter here).
AGENT_STATEMENT = {
    "Effect": "Allow",
    "Action": ["ssm:UpdateInstanceInformation", "ssmmessages:*", "ec2messages:*", "ssm:ListInstanceAssociations"],
    "Resource": "*",
}


_S3_READS = (
    re.compile(r"aws s3 cp '?s3://(?P<bucket>[^/'\s]+)/(?P<key>[^'\s]+)"),
    re.compile(r"Read-S3Object -BucketName '(?P<bucket>[^']+)' -Key '(?P<key>[^']+)'"),
)


_NO_VALUE = object()  # what {"Ref": "AWS::NoValue"} resolves to before the key or list item holding it is dropped


def _response(status: int) -> AWSResponse:
    return AWSResponse("https://local.patchpilot", status, HTTPHeaders(), None)


@dataclass
class DeployedStack:
    """The stack's resources as ListStackResources lists them, and the stand-ins serving the doctor's calls."""

    runtime: LocalRuntime
    stack_name: str
    resources: list[dict[str, str]] = field(default_factory=list)
    simulator: PolicySimulatorStandIn | None = None
    _params: dict[str, dict[str, Any]] = field(default_factory=dict)
    _metrics_lock: threading.Lock = field(default_factory=threading.Lock)
    _clients: dict[str, Any] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        """One admin client per service (creating clients is slow; their calls are thread-safe)."""
        if service not in self._clients:
            self._clients[service] = self.runtime.admin.client(service)  # type: ignore[call-overload]
        return self._clients[service]

    # -- resources ------------------------------------------------------------------------------------------------
    def add(self, logical_id: str, resource_type: str, physical_id: str) -> None:
        self.resources.append(
            {"LogicalResourceId": logical_id, "ResourceType": resource_type, "PhysicalResourceId": physical_id}
        )

    def physical_id(self, logical_id: str) -> str:
        return next(r["PhysicalResourceId"] for r in self.resources if r["LogicalResourceId"] == logical_id)

    def role_arn(self, logical_id: str) -> str:
        return f"arn:aws:iam::{ACCOUNT_ID}:role/{self.physical_id(logical_id)}"

    # -- hooks ----------------------------------------------------------------------------------------------------
    def install(self, events: Any) -> None:
        for operation in ("cloudformation.ListStackResources", "events.TestEventPattern"):
            events.register_first(f"before-parameter-build.{operation}", self._remember)
        events.register_first("before-call.cloudformation.ListStackResources", self._list_resources)
        events.register_first("before-call.events.TestEventPattern", self._test_event_pattern)

    def _remember(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["patchpilot_sim_deployed_params"] = dict(params)

    def _list_resources(self, context: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        name = str(context.get("patchpilot_sim_deployed_params", {}).get("StackName", ""))
        if name != self.stack_name:
            error = {"Code": "ValidationError", "Message": f"Stack with id {name} does not exist"}
            return _response(400), {"Error": error, "ResponseMetadata": {"HTTPStatusCode": 400}}
        now = datetime.now(UTC)
        summaries = [{**r, "LastUpdatedTimestamp": now, "ResourceStatus": "CREATE_COMPLETE"} for r in self.resources]
        return _response(200), {"StackResourceSummaries": summaries, "ResponseMetadata": {"HTTPStatusCode": 200}}

    def _test_event_pattern(self, context: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        params = context.get("patchpilot_sim_deployed_params", {})
        matched = EventPattern.load(params["EventPattern"]).matches_event(json.loads(params["Event"]))
        return _response(200), {"Result": bool(matched), "ResponseMetadata": {"HTTPStatusCode": 200}}

    def shell_outcome(self, command: Command, instance: SimulatedInstance) -> str:
        """A shell command that reads an S3 object succeeds only if the instance profile may get it and it exists."""
        outcome = healthy_outcome(command, instance)
        # AWS-RunShellScript's `commands`, or the health-check document's per-platform lists
        lines = [
            line
            for key, values in command.parameters.items()
            if key.endswith(("commands", "Commands"))
            for line in values
        ]
        text = "\n".join(lines)
        reads = [match for pattern in _S3_READS for match in pattern.finditer(text)]
        if outcome != "Success" or not reads:
            return outcome
        described = self.client("ec2").describe_instances(InstanceIds=[instance.instance_id])
        profile = (described["Reservations"][0]["Instances"][0].get("IamInstanceProfile") or {}).get("Arn")
        if profile is None:
            return "Failed"  # no credentials on the instance
        iam = self.client("iam")
        roles = iam.get_instance_profile(InstanceProfileName=profile.rsplit("/", 1)[-1])["InstanceProfile"]["Roles"]
        documents = [doc for role in roles for doc in role_policies(iam, role["RoleName"])]
        for read in reads:
            bucket, key = read.group("bucket"), read.group("key")
            if evaluate(documents, "s3:GetObject", f"arn:aws:s3:::{bucket}/{key}")[0] != "allowed":
                return "Failed"
            if self.client("s3").list_objects_v2(Bucket=bucket, Prefix=key).get("KeyCount", 0) == 0:
                return "Failed"
        return "Success"

    def publish_lambda_metrics(self, function: str, _event: Any, result: InvocationResult) -> None:
        """What Lambda publishes per invocation: AWS/Lambda Invocations and Errors by FunctionName."""
        dimensions = [{"Name": "FunctionName", "Value": function}]
        now = datetime.now(UTC)
        data: list[Any] = [
            {"MetricName": "Invocations", "Dimensions": dimensions, "Value": 1.0, "Unit": "Count", "Timestamp": now},
            {
                "MetricName": "Errors",
                "Dimensions": dimensions,
                "Value": 1.0 if result.failed else 0.0,
                "Unit": "Count",
                "Timestamp": now,
            },
        ]
        with self._metrics_lock:
            self.client("cloudwatch").put_metric_data(Namespace="AWS/Lambda", MetricData=data)


class _Deployer:
    """Creates what `sam deploy` would in moto, resolving the template's intrinsics with the runtime's names."""

    def __init__(self, runtime: LocalRuntime, stack: DeployedStack) -> None:
        self.runtime = runtime
        self.stack = stack
        self.prefix = stack.stack_name
        self.iam = runtime.admin.client("iam")
        self.extra: dict[tuple[str, str], str] = {}
        self.renames: list[tuple[str, str]] = []
        for logical_id, resource in runtime.template.of_type("AWS::Serverless::StateMachine").items():
            declared = resource.get("Properties", {}).get("Name")
            if declared is not None:
                template_name = str(runtime.resolver.resolve(declared))
                actual = runtime.state_machine_arn(logical_id).rsplit(":", 1)[-1]
                self.renames += [(f":stateMachine:{template_name}", f":stateMachine:{actual}")]
                self.renames += [(f":execution:{template_name}:", f":execution:{actual}:")]

    def condition(self, name: str) -> bool:
        """The value of a template condition (the ``Conditions`` section), as CloudFormation evaluates it."""
        conditions = self.runtime.template.document.get("Conditions", {})
        if name not in conditions:
            raise KeyError(f"the template has no condition {name}")
        return self._holds(conditions[name])

    def _holds(self, spec: Any) -> bool:
        """Fn::Equals / Fn::Not / Fn::And / Fn::Or / Condition (CloudFormation user guide, "Condition functions")."""
        if isinstance(spec, dict) and len(spec) == 1:
            ((function, args),) = spec.items()
            if function == "Condition":
                return self.condition(str(args))
            if function == "Fn::Equals":
                left, right = (self.resolve(arg) for arg in args)
                return str(left) == str(right)
            if function == "Fn::Not":
                return not self._holds(args[0])
            if function in ("Fn::And", "Fn::Or"):
                results = [self._holds(arg) for arg in args]
                return all(results) if function == "Fn::And" else any(results)
        raise ValueError(f"not a condition function: {spec!r}")

    def resolve(self, value: Any) -> Any:
        """Resolve intrinsics as CloudFormation does, including Fn::If and AWS::NoValue (the key or item is removed)."""
        resolved = self._resolve(value)
        return None if resolved is _NO_VALUE else resolved

    def _resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [item for item in (self._resolve(item) for item in value) if item is not _NO_VALUE]
        if isinstance(value, dict) and set(value) == {"Fn::If"}:
            name, when_true, when_false = value["Fn::If"]
            return self._resolve(when_true if self.condition(str(name)) else when_false)
        if value == {"Ref": "AWS::NoValue"}:
            return _NO_VALUE
        if isinstance(value, dict) and "Fn::GetAtt" in value and tuple(value["Fn::GetAtt"]) in self.extra:
            return self.extra[tuple(value["Fn::GetAtt"])]
        if isinstance(value, dict) and not {"Ref", "Fn::GetAtt", "Fn::Sub"} & set(value):
            entries = ((key, self._resolve(item)) for key, item in value.items())
            return {key: item for key, item in entries if item is not _NO_VALUE}
        resolved = self.runtime.resolver.resolve(value)
        if isinstance(resolved, str):
            for old, new in self.renames:
                resolved = resolved.replace(old, new)
        return resolved

    def _policy_template(self, name: str, args: dict[str, Any]) -> dict[str, Any] | None:
        region = self.runtime.region
        if name == "LambdaInvokePolicy":
            function = self.resolve(args["FunctionName"])
            resource = f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{function}*"
            return {"Effect": "Allow", "Action": ["lambda:InvokeFunction"], "Resource": resource}
        if name == "SNSPublishMessagePolicy":
            topic = self.resolve(args["TopicName"])
            return {
                "Effect": "Allow",
                "Action": ["sns:Publish"],
                "Resource": f"arn:aws:sns:{region}:{ACCOUNT_ID}:{topic}",
            }
        return None  # a policy template the template does not use: not granted here

    def create_role(self, logical_id: str, trust: dict[str, Any], policies: list[Any]) -> None:
        role_name = f"{self.prefix}-{logical_id}"[:64]
        self.iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=json.dumps(trust))
        for number, policy in enumerate(policies):
            if isinstance(policy, dict) and "Statement" in policy:
                document = {"Version": "2012-10-17", "Statement": self.resolve(policy["Statement"])}
            elif isinstance(policy, dict) and len(policy) == 1:
                ((name, args),) = policy.items()
                statement = self._policy_template(name, args or {})
                if statement is None:
                    continue
                document = {"Version": "2012-10-17", "Statement": [statement]}
            else:
                continue  # a managed policy name (e.g. AWSLambdaBasicExecutionRole): nothing the doctor checks
            self.iam.put_role_policy(
                RoleName=role_name, PolicyName=f"{logical_id}Policy{number}", PolicyDocument=json.dumps(document)
            )
        self.stack.add(logical_id, "AWS::IAM::Role", role_name)
        self.extra[(logical_id, "Arn")] = f"arn:aws:iam::{ACCOUNT_ID}:role/{role_name}"

    def deploy(self, logical_id: str, kind: str, props: dict[str, Any]) -> None:
        handlers: dict[str, Callable[[str, dict[str, Any]], None]] = {
            "AWS::Serverless::Function": self._function,
            "AWS::Serverless::StateMachine": self._state_machine,
            "AWS::IAM::Role": self.role,
            "AWS::SSM::PatchBaseline": self._baseline,
            "AWS::SSM::Parameter": self._parameter,
            "AWS::Scheduler::Schedule": self._schedule,
            "AWS::Events::Rule": self._rule,
        }
        if kind in handlers:
            handlers[kind](logical_id, props)
            return
        if kind in ("AWS::SecretsManager::Secret", "AWS::SSM::Document"):  # physical id = Ref: the ARN / the name
            self.stack.add(logical_id, kind, str(self.runtime.resolver.ref(logical_id)))
            return
        physical = {
            "AWS::DynamoDB::Table": self.runtime.resources.table_names,
            "AWS::SQS::Queue": self.runtime.resources.queue_urls,
            "AWS::SNS::Topic": self.runtime.resources.topic_arns,
            "AWS::S3::Bucket": self.runtime.bucket_names,
        }.get(kind, {})
        self.stack.add(logical_id, kind, physical.get(logical_id, f"{self.prefix}-{logical_id}"))

    def _function(self, logical_id: str, props: dict[str, Any]) -> None:
        self.stack.add(logical_id, "AWS::Lambda::Function", logical_id)
        self.create_role(f"{logical_id}Role", LAMBDA_TRUST, list(props.get("Policies", [])))
        events = self.runtime.admin.client("events")
        for rule in self.runtime.lambdas.functions[logical_id].rules:
            name = f"{self.prefix}-{logical_id}{rule.name}"[:64]
            events.put_rule(Name=name, EventPattern=json.dumps(rule.pattern), State="ENABLED")
            self.stack.add(f"{logical_id}{rule.name}", "AWS::Events::Rule", name)

    def _state_machine(self, logical_id: str, props: dict[str, Any]) -> None:
        self.stack.add(logical_id, "AWS::StepFunctions::StateMachine", self.runtime.state_machine_arn(logical_id))
        trust = json.loads(json.dumps(LAMBDA_TRUST).replace("lambda.amazonaws.com", "states.amazonaws.com"))
        self.create_role(f"{logical_id}Role", trust, list(props.get("Policies", [])))

    def role(self, logical_id: str, props: dict[str, Any]) -> None:
        documents = [p["PolicyDocument"] for p in props.get("Policies", [])]
        self.create_role(logical_id, self.resolve(props["AssumeRolePolicyDocument"]), documents)

    def _rule(self, logical_id: str, props: dict[str, Any]) -> None:
        name = f"{self.prefix}-{logical_id}"[:64]
        pattern = json.dumps(self.resolve(props.get("EventPattern", {})))
        self.runtime.admin.client("events").put_rule(Name=name, EventPattern=pattern, State="ENABLED")
        self.stack.add(logical_id, "AWS::Events::Rule", name)

    def _baseline(self, logical_id: str, props: dict[str, Any]) -> None:
        self.stack.add(logical_id, "AWS::SSM::PatchBaseline", baseline_id_for(str(self.resolve(props["Name"]))))

    def _parameter(self, logical_id: str, props: dict[str, Any]) -> None:
        name = str(self.resolve(props["Name"]))
        self.runtime.admin.client("ssm").put_parameter(Name=name, Value=str(props["Value"]), Type="String")
        self.stack.add(logical_id, "AWS::SSM::Parameter", name)

    def _schedule(self, logical_id: str, props: dict[str, Any]) -> None:
        resolved = self.resolve(props)
        target = {
            key: resolved["Target"][key] for key in ("Arn", "RoleArn", "Input", "RetryPolicy", "DeadLetterConfig")
        }
        self.runtime.admin.client("scheduler").create_schedule(
            Name=resolved["Name"],
            ScheduleExpression=resolved["ScheduleExpression"],
            ScheduleExpressionTimezone=resolved.get("ScheduleExpressionTimezone", "UTC"),
            FlexibleTimeWindow=resolved["FlexibleTimeWindow"],
            State=resolved.get("State", "ENABLED"),
            Target=target,
        )
        self.stack.add(logical_id, "AWS::Scheduler::Schedule", resolved["Name"])


def deploy_stack(runtime: LocalRuntime, stack_name: str) -> DeployedStack:
    """Make the runtime answer the doctor's calls as the deployed stack `stack_name` would (call once per runtime).

    `stack_name` should be the runtime's STACK_NAME: the template's names (`${AWS::StackName}-…`) resolve with it.
    """
    register_stack_outputs(runtime, stack_name)
    stack = DeployedStack(runtime, stack_name)
    deployer = _Deployer(runtime, stack)
    # The schedule's role is referenced by GetAtt before its turn in the template: create roles first.
    for logical_id, resource in runtime.template.of_type("AWS::IAM::Role").items():
        deployer.role(logical_id, resource.get("Properties", {}))
    for logical_id, resource in runtime.template.resources.items():
        if resource["Type"] != "AWS::IAM::Role":
            deployer.deploy(logical_id, resource["Type"], resource.get("Properties", {}))
    session = boto3.DEFAULT_SESSION
    if session is None:
        raise RuntimeError("deploy_stack needs a started LocalRuntime")
    stack.install(session.events)
    stack.simulator = PolicySimulatorStandIn(runtime.admin.client("iam"))
    stack.simulator.install(session.events)
    runtime.lambdas.on_invoke.append(stack.publish_lambda_metrics)
    runtime.fleet.health_outcome = stack.shell_outcome
    return stack


def attach_instance_profiles(
    runtime: LocalRuntime, bucket: str, groups: dict[str, bool], prefix: str = "patchpilot-local"
) -> dict[str, str]:
    """Give every instance of each patch group the group's instance profile; True: its role may read `runs/`.

    Returns group -> instance profile ARN. The role always carries what the agent needs to be managed.
    """
    iam, ec2 = runtime.admin.client("iam"), runtime.admin.client("ec2")
    profiles = {}
    for group, reads_runs in groups.items():
        name = f"{prefix}-{group}-instance"
        statements: list[dict[str, Any]] = [AGENT_STATEMENT]
        if reads_runs:
            statements.append(
                {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/runs/*"}
            )
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(EC2_TRUST))
        iam.put_role_policy(
            RoleName=name,
            PolicyName="ManagedInstance",
            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements}),
        )
        profile = iam.create_instance_profile(InstanceProfileName=name)["InstanceProfile"]
        iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)
        profiles[group] = str(profile["Arn"])
        for instance in runtime.fleet.instances.values():
            if instance.patch_group == group:
                ec2.associate_iam_instance_profile(IamInstanceProfile={"Name": name}, InstanceId=instance.instance_id)
    return profiles
