"""Read template.yaml: the local runtime builds exactly what the template declares."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = REPO_ROOT / "template.yaml"

_SHORT_TAGS = (
    "Ref",
    "GetAtt",
    "Sub",
    "If",
    "Join",
    "Select",
    "Split",
    "Equals",
    "Not",
    "And",
    "Or",
    "FindInMap",
    "GetAZs",
    "ImportValue",
    "Base64",
    "Condition",
    "Cidr",
)


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that turns CloudFormation short-form tags into their long form."""


def _constructor(tag: str) -> Callable[[yaml.SafeLoader, yaml.Node], dict[str, Any]]:
    key = tag if tag in ("Ref", "Condition") else f"Fn::{tag}"

    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        value: Any
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
            if tag == "GetAtt":
                value = str(value).split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
        return {key: value}

    return construct


for _tag in _SHORT_TAGS:
    _CfnLoader.add_constructor(f"!{_tag}", _constructor(_tag))


@dataclass(frozen=True)
class EventRule:
    """An EventBridge rule that reaches a function, directly or through an SQS queue.

    Directly: an EventBridgeRule event source (asynchronous invocation). Through a queue: an AWS::Events::Rule with
    the queue as target, which an SQS event source of the function polls; `queue_logical_id` names the queue.
    """

    name: str
    pattern: dict[str, Any]
    max_retry_attempts: int
    dead_letter_logical_id: str | None
    queue_logical_id: str | None = None


@dataclass(frozen=True)
class SqsSource:
    """An SQS event source mapping of a function (AWS::Serverless::Function event of Type SQS)."""

    name: str
    queue_logical_id: str
    batch_size: int
    batching_window_seconds: int
    report_batch_item_failures: bool


@dataclass(frozen=True)
class FunctionSpec:
    """A Serverless function: where its code is and how it is configured."""

    logical_id: str
    handler: str
    code_uri: Path
    environment: dict[str, Any]
    rules: list[EventRule] = field(default_factory=list)
    sqs_sources: list[SqsSource] = field(default_factory=list)
    async_max_retry_attempts: int = 2
    async_on_failure_logical_id: str | None = None
    sns_topics: list[str] = field(default_factory=list)  # logical ids of the topics its SNS events subscribe to


@dataclass(frozen=True)
class StateMachineSpec:
    """A Serverless state machine: its ASL file and the substitutions the template gives it."""

    logical_id: str
    definition_path: Path
    substitutions: dict[str, Any]


class SamTemplate:
    """The parts of template.yaml the local runtime needs."""

    def __init__(self, path: Path = TEMPLATE_PATH) -> None:
        self.path = path
        self.document: dict[str, Any] = yaml.load(path.read_text(), Loader=_CfnLoader)
        self.resources: dict[str, Any] = self.document["Resources"]
        self.parameters: dict[str, Any] = {
            name: spec.get("Default") for name, spec in self.document.get("Parameters", {}).items()
        }
        self.globals: dict[str, Any] = self.document.get("Globals", {}).get("Function", {})

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        """Resources of one type, by logical id."""
        return {lid: res for lid, res in self.resources.items() if res["Type"] == resource_type}

    def functions(self) -> dict[str, FunctionSpec]:
        """Every AWS::Serverless::Function with Globals applied."""
        specs: dict[str, FunctionSpec] = {}
        for logical_id, resource in self.of_type("AWS::Serverless::Function").items():
            props = resource.get("Properties", {})
            env = dict(self.globals.get("Environment", {}).get("Variables", {}))
            env.update(props.get("Environment", {}).get("Variables", {}))
            invoke = props.get("EventInvokeConfig", {})
            on_failure = invoke.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
            specs[logical_id] = FunctionSpec(
                logical_id=logical_id,
                handler=props["Handler"],
                code_uri=self.path.parent / props.get("CodeUri", self.globals.get("CodeUri", ".")),
                environment=env,
                rules=self._rules(props.get("Events", {})) + self._queue_rules(props.get("Events", {})),
                sqs_sources=self._sqs_sources(props.get("Events", {})),
                async_max_retry_attempts=int(invoke.get("MaximumRetryAttempts", 2)),
                async_on_failure_logical_id=_logical_id_of(on_failure),
                sns_topics=[
                    topic
                    for event in props.get("Events", {}).values()
                    if event.get("Type") == "SNS" and (topic := _logical_id_of(event["Properties"]["Topic"]))
                ],
            )
        return specs

    @staticmethod
    def _rules(events: Mapping[str, Any]) -> list[EventRule]:
        rules = []
        for name, event in events.items():
            if event.get("Type") != "EventBridgeRule":
                continue
            props = event["Properties"]
            rules.append(
                EventRule(
                    name=name,
                    pattern=props["Pattern"],
                    max_retry_attempts=int(props.get("RetryPolicy", {}).get("MaximumRetryAttempts", 185)),
                    dead_letter_logical_id=_logical_id_of(props.get("DeadLetterConfig", {}).get("Arn")),
                )
            )
        return rules

    @staticmethod
    def _sqs_sources(events: Mapping[str, Any]) -> list[SqsSource]:
        sources = []
        for name, event in events.items():
            if event.get("Type") != "SQS":
                continue
            props = event["Properties"]
            queue = _logical_id_of(props["Queue"])
            if queue is None:
                raise ValueError(f"SQS event {name}: the local runtime needs the queue as !GetAtt <Queue>.Arn")
            sources.append(
                SqsSource(
                    name=name,
                    queue_logical_id=queue,
                    batch_size=int(props.get("BatchSize", 10)),
                    batching_window_seconds=int(props.get("MaximumBatchingWindowInSeconds", 0)),
                    report_batch_item_failures="ReportBatchItemFailures" in props.get("FunctionResponseTypes", []),
                )
            )
        return sources

    def _queue_rules(self, events: Mapping[str, Any]) -> list[EventRule]:
        """The AWS::Events::Rule resources whose SQS targets are queues this function's SQS event sources poll."""
        queues = {source.queue_logical_id for source in self._sqs_sources(events)}
        rules = []
        for logical_id, resource in self.of_type("AWS::Events::Rule").items():
            props = resource["Properties"]
            for target in props.get("Targets", []):
                queue = _logical_id_of(target.get("Arn"))
                if queue in queues:
                    rules.append(
                        EventRule(
                            name=logical_id,
                            pattern=props["EventPattern"],
                            max_retry_attempts=int(target.get("RetryPolicy", {}).get("MaximumRetryAttempts", 185)),
                            dead_letter_logical_id=_logical_id_of(target.get("DeadLetterConfig", {}).get("Arn")),
                            queue_logical_id=queue,
                        )
                    )
        return rules

    def state_machines(self) -> dict[str, StateMachineSpec]:
        """Every AWS::Serverless::StateMachine."""
        return {
            logical_id: StateMachineSpec(
                logical_id=logical_id,
                definition_path=self.path.parent / resource["Properties"]["DefinitionUri"],
                substitutions=resource["Properties"].get("DefinitionSubstitutions", {}),
            )
            for logical_id, resource in self.of_type("AWS::Serverless::StateMachine").items()
        }


def table_definition(table_name: str, props: Mapping[str, Any]) -> dict[str, Any]:
    """CreateTable arguments of an ``AWS::DynamoDB::Table`` (keys, billing and its global secondary indexes).

    The CloudFormation properties and the CreateTable parameters share their names and shapes
    (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-dynamodb-table.html).
    """
    definition: dict[str, Any] = {
        "TableName": table_name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
    }
    indexes = props.get("GlobalSecondaryIndexes")
    if indexes:
        definition["GlobalSecondaryIndexes"] = [
            {key: index[key] for key in ("IndexName", "KeySchema", "Projection")} for index in indexes
        ]
    return definition


def _logical_id_of(value: Any) -> str | None:
    if isinstance(value, dict):
        if "Ref" in value:
            return str(value["Ref"])
        if "Fn::GetAtt" in value:
            return str(value["Fn::GetAtt"][0])
    return None


_SUB_VARIABLE = re.compile(r"\$\{([^}]+)\}")


class IntrinsicResolver:
    """Resolves Ref / GetAtt / Sub against the local runtime's physical resources."""

    def __init__(
        self,
        refs: Mapping[str, str],
        attributes: Mapping[tuple[str, str], str],
        pseudo: Mapping[str, str],
    ) -> None:
        self._refs = refs
        self._attributes = attributes
        self._pseudo = pseudo

    def ref(self, name: str) -> str:
        """The value of `!Ref name`."""
        if name in self._pseudo:
            return self._pseudo[name]
        if name not in self._refs:
            raise KeyError(f"the local runtime has no value for !Ref {name}")
        return self._refs[name]

    def get_att(self, logical_id: str, attribute: str) -> str:
        """The value of `!GetAtt logical_id.attribute`."""
        key = (logical_id, attribute)
        if key not in self._attributes:
            raise KeyError(f"the local runtime has no value for !GetAtt {logical_id}.{attribute}")
        return self._attributes[key]

    def resolve(self, value: Any) -> Any:
        """Resolve every intrinsic in `value` (scalars pass through)."""
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, dict):
            return value
        if "Ref" in value:
            return self.ref(str(value["Ref"]))
        if "Fn::GetAtt" in value:
            logical_id, attribute = value["Fn::GetAtt"]
            return self.get_att(logical_id, attribute)
        if "Fn::Sub" in value:
            return self._sub(value["Fn::Sub"])
        return {key: self.resolve(item) for key, item in value.items()}

    def _sub(self, spec: Any) -> str:
        text, variables = (spec, {}) if isinstance(spec, str) else (spec[0], spec[1])

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(self.resolve(variables[name]))
            if "." in name:
                logical_id, attribute = name.split(".", 1)
                return self.get_att(logical_id, attribute)
            return self.ref(name)

        return _SUB_VARIABLE.sub(replace, text)
