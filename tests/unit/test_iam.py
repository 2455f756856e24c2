"""Least privilege: every IAM statement in template.yaml is as narrow as AWS allows, or a justified exception.

The test reads every identity policy of the template (functions' ``Policies`` with SAM policy templates expanded,
the state machine's ``Policies``, ``AWS::IAM::Role``/``Policy``/``ManagedPolicy`` documents) and fails on a statement
that is broader than the rules below, unless ``EXCEPTIONS`` lists it with a reason.

Rules (sources: the Service Authorization Reference pages for SSM, EC2 and Step Functions,
https://docs.aws.amazon.com/service-authorization/latest/reference/list_awssystemsmanager.html,
.../list_amazonec2.html, .../list_awsstepfunctions.html, and the SSM user guide "Restricting Run Command access
based on tags", sysman-rc-setting-up-cmdsec):

- no action wildcard (``ssm:*``, ``ssm:Describe*``);
- no ``Resource: "*"`` unless the action has no resource type in the reference (then: an exception with a reason);
- ``ssm:SendCommand`` names only the documents the principal really sends (``SENT_DOCUMENTS``, derived from the
  code), and reaches instances only under an ``ssm:resourceTag/<patch group tag key>`` condition, in a statement
  of its own (a resource-tag condition next to a document ARN would deny the document);
- patch-baseline writes reach only tagged PatchPilot baselines (``aws:ResourceTag/...`` condition) or named ARNs;
- ``ec2:CreateTags`` may add only the patch group tag, only where the instance has none (``aws:TagKeys``,
  ``aws:RequestTag/...`` and ``Null ec2:ResourceTag/...``): it can never overwrite a patch group; or only keys that
  are not a patch group key, required in the request (``ForAllValues:StringEquals`` + ``Null`` ``false`` on
  ``aws:TagKeys``: the canary tag). ``ec2:DeleteTags`` only the latter way.

To justify a broader statement, add ``(principal logical id, Sid)`` to ``EXCEPTIONS`` with the exact actions and a
reason that cites the reference. A new function that sends SSM documents adds its documents to ``SENT_DOCUMENTS``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import pytest

from patchpilot.integrations.ssm_scanner import SCAN_DOCUMENT
from patchpilot.logic.stage_plan import PATCH_DOCUMENT
from patchpilot_sim.template import SamTemplate

TEMPLATE = SamTemplate()

SENT_DOCUMENTS: dict[str, frozenset[str]] = {
    # patch Scan of a newly registered instance (integrations/ssm_scanner.py)
    "InstanceRegistrationFunction": frozenset({SCAN_DOCUMENT}),
    # install/scan (logic/stage_plan.py) and the stage health checks: one command of the stack's own cross-platform
    # document (HealthCheckDocument, named by the stack: HEALTH_CHECK_DOCUMENT of the planners)
    "RolloutStateMachine": frozenset({PATCH_DOCUMENT, "${HealthCheckDocument}"}),
}

_NO_RESOURCE_TYPE = "the Service Authorization Reference lists no resource type for {actions}: Resource must be '*'"


@dataclass(frozen=True)
class Justified:
    """A statement allowed to be broader than the rules: exactly these actions, for this reason."""

    actions: frozenset[str]
    reason: str


def _exception(*actions: str, reason: str = "") -> Justified:
    return Justified(frozenset(actions), reason or _NO_RESOURCE_TYPE.format(actions=", ".join(actions)))


EXCEPTIONS: dict[tuple[str, str], Justified] = {
    ("PlanStageFunction", "CountManagedInstances"): _exception("ssm:DescribeInstanceInformation"),
    ("CommandResultFunction", "IdentifyCommand"): _exception("ssm:ListCommands"),
    ("ReconcileInstallFunction", "ReadCommand"): _exception("ssm:ListCommands", "ssm:ListCommandInvocations"),
    ("VerifyStageFunction", "ReadFleetHealth"): _exception(
        "ssm:DescribeInstanceInformation",
        "ssm:DescribeInstancePatchStates",
        "cloudwatch:DescribeAlarms",
        reason="DescribeInstanceInformation has no resource type; DescribeInstancePatchStates takes instance ids "
        "from any patch group of the stage and DescribeAlarms reads alarms named by the policy at run time",
    ),
    ("RecordStageFunction", "ReadInstalledPatches"): _exception(
        "ssm:DescribeInstancePatches",
        reason="read-only, on the stage's instances (any patch group of the policy); no write",
    ),
    ("ExcludePatchesFunction", "ReadInstalledPatches"): _exception(
        "ssm:DescribeInstancePatches",
        "ssm:GetPatchBaselineForPatchGroup",
        "ssm:GetPatchBaseline",
        reason="read-only: GetPatchBaselineForPatchGroup has no resource type; reading a baseline changes nothing",
    ),
    ("InstanceRegistrationFunction", "ReadInstanceTags"): _exception("ec2:DescribeInstances"),
    ("BisectSuspectsFunction", "ReadBisectionEvidence"): _exception(
        "ssm:DescribeInstancePatches",
        "ssm:DescribeInstanceInformation",
        "ec2:DescribeReplaceRootVolumeTasks",
        reason="read-only: DescribeInstanceInformation and DescribeReplaceRootVolumeTasks have no resource type; "
        "DescribeInstancePatches reads the failed stage's instances, of any patch group of the policy",
    ),
    ("AwaitInstallFunction", "CountTargets"): _exception("ssm:ListCommands"),
    ("SnapshotStageFunction", "ListStageInstances"): _exception(
        "ssm:DescribeInstanceInformation", "ec2:DescribeInstances", "ec2:DescribeSnapshots"
    ),
    ("ComplianceEventFunction", "ReadNodeCompliance"): _exception(
        "ssm:DescribeInstanceInformation", "ssm:ListCommands", "ssm:ListCommandInvocations"
    ),
    ("StageReportFunction", "ReadStageNodes"): _exception(
        "ssm:DescribeInstanceInformation", "ssm:ListCommands", "ssm:ListCommandInvocations"
    ),
    ("ComplianceRefreshFunction", "ReadFleetCompliance"): _exception(
        "ec2:DescribeInstances", "ssm:DescribeInstanceInformation", "ssm:ListCommands", "ssm:ListCommandInvocations"
    ),
    ("ComplianceReportFunction", "ReadFleetCompliance"): _exception(
        "ec2:DescribeInstances", "ssm:DescribeInstanceInformation", "ssm:ListCommands", "ssm:ListCommandInvocations"
    ),
    ("RolloutStateMachine", "DeliverExecutionLogs"): _exception(
        "logs:CreateLogDelivery",
        "logs:GetLogDelivery",
        "logs:UpdateLogDelivery",
        "logs:DeleteLogDelivery",
        "logs:ListLogDeliveries",
        "logs:PutResourcePolicy",
        "logs:DescribeResourcePolicies",
        "logs:DescribeLogGroups",
        reason="vended-log delivery for Step Functions logging needs Resource '*' (Step Functions developer guide, "
        "'IAM policies for logging to CloudWatch Logs')",
    ),
    ("RolloutStateMachine", "EncryptAlerts"): _exception(
        "kms:GenerateDataKey",
        "kms:Decrypt",
        reason="the AWS managed key alias/aws/sns has no ARN known at deploy time; scoped by kms:ViaService to SNS",
    ),
}

# SAM policy templates in use, expanded as samtranslator does (policy_templates.json). Add one when a new one is used.
SAM_POLICY_TEMPLATES: dict[str, list[dict[str, Any]]] = {
    "LambdaInvokePolicy": [
        {
            "Effect": "Allow",
            "Action": ["lambda:InvokeFunction"],
            "Resource": {"Fn::Sub": "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:<p>*"},
        }
    ],
    "SNSPublishMessagePolicy": [
        {
            "Effect": "Allow",
            "Action": ["sns:Publish"],
            "Resource": {"Fn::Sub": "arn:${AWS::Partition}:sns:${AWS::Region}:${AWS::AccountId}:<p>"},
        }
    ],
}

# Patch Manager honours only these tag keys for patch groups (FACTS; SSM user guide, patch-manager-patch-groups).
PATCH_GROUP_TAG_KEYS = ("patchgroup", "patch group")
INSTANCE_ARN_MARKERS = (":instance/", ":managed-instance/")
BASELINE_WRITES = {
    "ssm:UpdatePatchBaseline",
    "ssm:DeletePatchBaseline",
    "ssm:RegisterPatchBaselineForPatchGroup",
    "ssm:DeregisterPatchBaselineForPatchGroup",
}


@dataclass(frozen=True)
class Statement:
    principal: str
    sid: str
    actions: frozenset[str]
    resources: tuple[str, ...]
    condition: dict[str, Any]

    @property
    def where(self) -> str:
        return f"{self.principal} statement {self.sid!r} ({', '.join(sorted(self.actions))})"


def _text(value: Any) -> str:
    """A resource as text: !Sub strings as written, !Ref/!GetAtt as placeholders (they name one resource)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        if "Fn::Sub" in value:
            sub = value["Fn::Sub"]
            return str(sub[0] if isinstance(sub, list) else sub)
        if "Ref" in value:
            return f"<ref {value['Ref']}>"
        if "Fn::GetAtt" in value:
            return f"<getatt {'.'.join(value['Fn::GetAtt'])}>"
    return repr(value)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _branches(value: Any) -> list[Any]:
    """Both sides of an ``Fn::If`` (each must be least privilege), else the value itself."""
    if isinstance(value, dict) and set(value) == {"Fn::If"}:
        return [branch for side in value["Fn::If"][1:] for branch in _branches(side)]
    return [value]


def _statements_of(principal: str, raw_statements: list[Any]) -> list[Statement]:
    statements = []
    for index, raw_or_if in enumerate(raw_statements):
        for raw in _branches(raw_or_if):
            if not isinstance(raw, dict) or raw.get("Effect") != "Allow":
                continue
            for condition in _branches(raw.get("Condition", {})):
                statements.append(
                    Statement(
                        principal=principal,
                        sid=str(raw.get("Sid", f"#{index}")),
                        actions=frozenset(str(action) for action in _list(raw["Action"])),
                        resources=tuple(_text(resource) for resource in _list(raw.get("Resource", []))),
                        condition=condition or {},
                    )
                )
    return statements


def _expand_policies(principal: str, policies: Any) -> list[Statement]:
    statements: list[Statement] = []
    for policy in _list(policies or []):
        if isinstance(policy, str):
            raise AssertionError(f"{principal}: managed policy {policy!r}: use an inline statement or a SAM template")
        if "Statement" in policy:
            statements += _statements_of(principal, _list(policy["Statement"]))
            continue
        for name in policy:
            if name not in SAM_POLICY_TEMPLATES:
                raise AssertionError(
                    f"{principal}: SAM policy template {name} is not known to this test: add its expansion "
                    "(samtranslator policy_templates.json) to SAM_POLICY_TEMPLATES"
                )
            statements += _statements_of(f"{principal}", copy.deepcopy(SAM_POLICY_TEMPLATES[name]))
    return statements


def identity_statements(template: dict[str, Any]) -> list[Statement]:
    """Every Allow statement of every identity policy in a (SAM) template."""
    statements: list[Statement] = []
    for logical_id, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        kind = resource["Type"]
        if kind in ("AWS::Serverless::Function", "AWS::Serverless::StateMachine"):
            statements += _expand_policies(logical_id, props.get("Policies"))
        elif kind == "AWS::IAM::Role":
            for policy in props.get("Policies", []):
                statements += _statements_of(logical_id, _list(policy["PolicyDocument"]["Statement"]))
        elif kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            statements += _statements_of(logical_id, _list(props["PolicyDocument"]["Statement"]))
    return statements


def _condition_keys(statement: Statement) -> dict[str, tuple[str, Any]]:
    """Condition key (lower case) -> (operator, value)."""
    return {
        key.lower(): (operator, value)
        for operator, block in statement.condition.items()
        for key, value in block.items()
    }


def _has_key(statement: Statement, prefix: str) -> bool:
    return any(key.startswith(prefix.lower()) for key in _condition_keys(statement))


def _has_patch_group_key(statement: Statement, prefix: str) -> bool:
    return any(f"{prefix.lower()}{tag}" in _condition_keys(statement) for tag in PATCH_GROUP_TAG_KEYS)


def _send_command_problems(statement: Statement) -> list[str]:
    problems = []
    documents = {r.split(":document/", 1)[1] for r in statement.resources if ":document/" in r}
    instances = [r for r in statement.resources if any(marker in r for marker in INSTANCE_ARN_MARKERS)]
    allowed = SENT_DOCUMENTS.get(statement.principal)
    if allowed is None:
        problems.append("sends SSM commands but has no SENT_DOCUMENTS entry: list the documents its code sends")
    elif documents - allowed:
        problems.append(
            f"may send {sorted(documents - allowed)}, which its code never sends (it sends {sorted(allowed)})"
        )
    tag_scoped = _has_patch_group_key(statement, "ssm:resourceTag/")
    if instances and not tag_scoped:
        problems.append(f"reaches every instance ({instances}): add an ssm:resourceTag/<patch group key> condition")
    if documents and tag_scoped:
        problems.append(
            "puts documents under a resource-tag condition (denies them): give instances their own statement"
        )
    return problems


def _tags_only_other_keys(statement: Statement) -> bool:
    """Tag writes limited to keys that are not a patch group key, with the tag keys required in the request.

    ``ForAllValues:StringEquals`` on ``aws:TagKeys`` holds for a request without tags (a DeleteTags without tags
    deletes every tag), so ``Null aws:TagKeys = false`` must require them (IAM user guide, "Multivalued context
    keys"; Service Authorization Reference, list_amazonec2: CreateTags/DeleteTags, condition key aws:TagKeys).
    """
    operators = {
        operator: value
        for operator, block in statement.condition.items()
        for key, value in block.items()
        if key.lower() == "aws:tagkeys"
    }
    allowed = operators.get("ForAllValues:StringEquals")
    if allowed is None or str(operators.get("Null", "")).lower() != "false":
        return False
    listed = [allowed] if isinstance(allowed, str) else list(allowed)
    return not any(key.lower() in PATCH_GROUP_TAG_KEYS for key in listed)


def _tags_on_create_only(statement: Statement) -> bool:
    """CreateTags on new snapshots only, while they are created (ec2:CreateAction), never on an existing resource."""
    action = _condition_keys(statement).get("ec2:createaction")
    snapshots_only = bool(statement.resources) and all(":snapshot/" in r for r in statement.resources)
    return snapshots_only and action is not None and action[0] == "StringEquals" and "*" not in str(action[1])


def _create_tags_problems(statement: Statement) -> list[str]:
    if _tags_only_other_keys(statement):
        return []  # e.g. the canary tag: it can never add, change or remove a patch group
    if _tags_on_create_only(statement):
        return []
    keys = _condition_keys(statement)
    problems = []
    if not _has_key(statement, "aws:TagKeys"):
        problems.append("may add any tag key: restrict aws:TagKeys (ForAllValues:StringEquals) to the patch group key")
    if not _has_patch_group_key(statement, "aws:RequestTag/"):
        problems.append("may set any value: restrict aws:RequestTag/<patch group key> to the default patch group")
    absent = [
        f"ec2:resourcetag/{tag}"
        for tag in PATCH_GROUP_TAG_KEYS
        if keys.get(f"ec2:resourcetag/{tag}", ("",))[0] == "Null"
    ]
    if not absent or any(str(keys[k][1]).lower() != "true" for k in absent):
        problems.append("may overwrite an existing tag: add Null ec2:ResourceTag/<patch group key> = true")
    return problems


def problems_of(statement: Statement) -> list[str]:
    """What makes one statement broader than the rules (exceptions not applied)."""
    problems = [f"action wildcard {action!r}" for action in sorted(statement.actions) if "*" in action]
    if "*" in statement.resources:
        problems.append('Resource "*"')
    if "ssm:SendCommand" in statement.actions:
        problems += _send_command_problems(statement)
    baseline_wildcards = [r for r in statement.resources if ":patchbaseline/*" in r]
    if statement.actions & BASELINE_WRITES and baseline_wildcards and not _has_key(statement, "aws:ResourceTag/"):
        problems.append(
            "may change every patch baseline: name PatchPilot's baselines or add an aws:ResourceTag condition"
        )
    if "ec2:CreateTags" in statement.actions:
        problems += _create_tags_problems(statement)
    elif "ec2:DeleteTags" in statement.actions and not _tags_only_other_keys(statement):
        problems.append("may delete any tag, the patch group's too: restrict aws:TagKeys and require them (Null false)")
    return problems


def violations(statements: list[Statement], exceptions: dict[tuple[str, str], Justified]) -> list[str]:
    """Every too-broad statement not covered by an exception, with what to do about it."""
    found = []
    for statement in statements:
        problems = problems_of(statement)
        if not problems:
            continue
        excepted = exceptions.get((statement.principal, statement.sid))
        if excepted and statement.actions <= excepted.actions and problems == ['Resource "*"']:
            continue
        found.append(
            f"{statement.where}: {'; '.join(problems)}. Narrow it, or justify it in EXCEPTIONS of "
            f"tests/unit/test_iam.py as ({statement.principal!r}, {statement.sid!r}): "
            "_exception(<actions>, reason=<why, citing the reference>)"
        )
    return found


STATEMENTS = identity_statements(TEMPLATE.document)


def test_iam_every_statement_is_least_privilege_or_a_justified_exception() -> None:
    assert STATEMENTS
    found = violations(STATEMENTS, EXCEPTIONS)
    assert not found, "IAM statements broader than least privilege:\n" + "\n".join(found)


def test_iam_every_exception_is_still_used_and_has_a_reason() -> None:
    used = {(s.principal, s.sid) for s in STATEMENTS if problems_of(s) == ['Resource "*"']}
    assert set(EXCEPTIONS) <= used, f"stale EXCEPTIONS (statement gone or now narrow): {sorted(set(EXCEPTIONS) - used)}"
    assert all(len(exception.reason) >= 20 for exception in EXCEPTIONS.values())


def test_iam_every_principal_that_sends_commands_sends_its_documents() -> None:
    senders = {s.principal for s in STATEMENTS if "ssm:SendCommand" in s.actions}
    assert senders == set(SENT_DOCUMENTS)
    for principal, documents in SENT_DOCUMENTS.items():
        named = {
            r.split(":document/", 1)[1]
            for s in STATEMENTS
            if s.principal == principal and "ssm:SendCommand" in s.actions
            for r in s.resources
            if ":document/" in r
        }
        assert named == documents, principal


def _statement(**overrides: Any) -> Statement:
    fields: dict[str, Any] = {
        "principal": "SomeFunction",
        "sid": "S",
        "actions": frozenset({"ssm:GetPatchBaseline"}),
        "resources": ("arn:aws:ssm:us-east-1:1:patchbaseline/pb-1",),
        "condition": {},
    }
    fields.update(overrides)
    return Statement(**fields)


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        (_statement(actions=frozenset({"ssm:*"})), "action wildcard 'ssm:*'"),
        (_statement(resources=("*",)), 'Resource "*"'),
        (
            _statement(
                principal="InstanceRegistrationFunction",
                actions=frozenset({"ssm:SendCommand"}),
                resources=("arn:aws:ssm:r::document/AWS-RunShellScript",),
            ),
            "its code never sends",
        ),
        (
            _statement(
                principal="RolloutStateMachine",
                actions=frozenset({"ssm:SendCommand"}),
                resources=("arn:aws:ec2:r:1:instance/*",),
            ),
            "reaches every instance",
        ),
        (
            _statement(
                principal="NewFunction",
                actions=frozenset({"ssm:SendCommand"}),
                resources=("arn:aws:ssm:r::document/AWS-RunPatchBaseline",),
            ),
            "no SENT_DOCUMENTS entry",
        ),
        (
            _statement(actions=frozenset({"ssm:UpdatePatchBaseline"}), resources=("arn:aws:ssm:r:1:patchbaseline/*",)),
            "every patch baseline",
        ),
        (
            _statement(
                actions=frozenset({"ec2:CreateTags"}),
                resources=("arn:aws:ec2:r:1:instance/*",),
                condition={"ForAllValues:StringEquals": {"aws:TagKeys": ["PatchGroup"]}},
            ),
            "may overwrite an existing tag",
        ),
        (
            _statement(
                actions=frozenset({"ec2:DeleteTags"}),
                resources=("arn:aws:ec2:r:1:instance/*",),
                condition={"ForAllValues:StringEquals": {"aws:TagKeys": ["PatchPilotCanary"]}},
            ),
            "may delete any tag",  # without Null aws:TagKeys = false, a DeleteTags without tags passes
        ),
        (
            _statement(
                actions=frozenset({"ec2:CreateTags", "ec2:DeleteTags"}),
                resources=("arn:aws:ec2:r:1:instance/*",),
                condition={
                    "ForAllValues:StringEquals": {"aws:TagKeys": ["PatchPilotCanary", "PatchGroup"]},
                    "Null": {"aws:TagKeys": "false"},
                },
            ),
            "may set any value",
        ),
    ],
)
def test_iam_rules_catch_broad_statements(statement: Statement, expected: str) -> None:
    found = violations([statement], {})
    assert len(found) == 1
    assert expected in found[0]
    assert statement.principal in found[0]
    assert "EXCEPTIONS" in found[0]


def test_iam_tag_writes_limited_to_another_key_and_required_in_the_request_are_narrow() -> None:
    statement = _statement(
        actions=frozenset({"ec2:CreateTags", "ec2:DeleteTags"}),
        resources=("arn:aws:ec2:r:1:instance/*",),
        condition={
            "ForAllValues:StringEquals": {"aws:TagKeys": ["PatchPilotCanary"]},
            "Null": {"aws:TagKeys": "false"},
        },
    )
    assert violations([statement], {}) == []


def test_iam_exception_covers_only_its_listed_actions() -> None:
    statement = _statement(actions=frozenset({"ssm:ListCommands", "ssm:SendCommandX"}), resources=("*",))
    exceptions = {("SomeFunction", "S"): _exception("ssm:ListCommands")}
    assert violations([statement], exceptions)
    assert not violations([_statement(actions=frozenset({"ssm:ListCommands"}), resources=("*",))], exceptions)


def test_iam_baseline_writes_reach_every_patchpilot_baseline() -> None:
    """The tag condition on baseline writes must match a tag every rendered baseline carries (else exclusion breaks)."""
    baselines = TEMPLATE.of_type("AWS::SSM::PatchBaseline")
    writes = [s for s in STATEMENTS if s.actions & BASELINE_WRITES]
    assert baselines
    assert writes
    for statement in writes:
        for key, (operator, value) in _condition_keys(statement).items():
            assert operator == "StringEquals"
            assert key.startswith("aws:resourcetag/"), statement.where
            tag_key = key.split("/", 1)[1]
            for logical_id, baseline in baselines.items():
                tags = {tag["Key"].lower(): tag["Value"] for tag in baseline["Properties"]["Tags"]}
                assert tag_key in tags, f"{logical_id} lacks the tag {tag_key} that {statement.where} requires"
                assert tags[tag_key] == {"Fn::Sub": "${AWS::StackName}"}
                assert value == {"Ref": "AWS::StackName"}
