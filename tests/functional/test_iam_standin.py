"""The local runtime's SimulatePrincipalPolicy: IAM's evaluation logic over the policies moto stores."""

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from patchpilot_sim.iam_standin import PolicySimulatorStandIn, evaluate

MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:pp-rollout"
POLICY: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": ["states:SendTask*"], "Resource": MACHINE},
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::bkt/runs/*"},
        {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::bkt/runs/secret?"},
        {
            "Effect": "Allow",
            "Action": "ec2:CreateTags",
            "Resource": "*",
            "Condition": {"ForAllValues:StringEquals": {"aws:TagKeys": ["PatchGroup"]}},
        },
        {
            "Effect": "Allow",
            "Action": "kms:Decrypt",
            "Resource": "*",
            "Condition": {"StringEquals": {"kms:ViaService": "sns.us-east-1.amazonaws.com"}},
        },
        {"Effect": "Allow", "NotAction": "iam:*", "Resource": "arn:aws:sqs:*:123456789012:pp-*"},
    ],
}


@pytest.mark.parametrize(
    ("action", "resource", "context", "decision"),
    [
        ("states:SendTaskSuccess", MACHINE, {}, "allowed"),
        ("STATES:sendtaskheartbeat", MACHINE, {}, "allowed"),
        ("states:SendTaskSuccess", "*", {}, "implicitDeny"),
        ("states:StartExecution", MACHINE, {}, "implicitDeny"),
        ("s3:GetObject", "arn:aws:s3:::bkt/runs/2026-12/install.yaml", {}, "allowed"),
        ("s3:GetObject", "arn:aws:s3:::bkt/runs/secret1", {}, "explicitDeny"),
        ("s3:GetObject", "arn:aws:s3:::bkt/RUNS/x", {}, "implicitDeny"),
        (
            "ec2:CreateTags",
            "arn:aws:ec2:us-east-1:123456789012:instance/i-1",
            {"aws:TagKeys": ["PatchGroup"]},
            "allowed",
        ),
        (
            "ec2:CreateTags",
            "arn:aws:ec2:us-east-1:123456789012:instance/i-1",
            {"aws:TagKeys": ["Owner"]},
            "implicitDeny",
        ),
        ("kms:Decrypt", "*", {"kms:ViaService": ["sns.us-east-1.amazonaws.com"]}, "allowed"),
        ("kms:Decrypt", "*", {}, "implicitDeny"),
        ("sqs:SendMessage", "arn:aws:sqs:us-east-1:123456789012:pp-dlq", {}, "allowed"),
        ("iam:PassRole", "arn:aws:sqs:us-east-1:123456789012:pp-dlq", {}, "implicitDeny"),
    ],
)
def test_iam_standin_evaluates_like_iam(action: str, resource: str, context: dict[str, Any], decision: str) -> None:
    assert evaluate([POLICY], action, resource, context)[0] == decision


def test_iam_standin_reports_condition_keys_the_request_lacks() -> None:
    assert evaluate([POLICY], "kms:Decrypt", "*") == ("implicitDeny", ["kms:ViaService"])


@pytest.fixture
def iam() -> Iterator[Any]:
    with mock_aws():
        session = boto3.session.Session(region_name="us-east-1")
        simulator = PolicySimulatorStandIn(session.client("iam"))
        simulator.install(session.events)
        yield session.client("iam")


def test_iam_standin_serves_simulate_principal_policy_for_a_role_in_moto(iam: Any) -> None:
    iam.create_role(RoleName="pp-role", AssumeRolePolicyDocument="{}")
    iam.put_role_policy(RoleName="pp-role", PolicyName="inline", PolicyDocument=json.dumps(POLICY))
    answer = iam.simulate_principal_policy(
        PolicySourceArn="arn:aws:iam::123456789012:role/pp-role",
        ActionNames=["states:SendTaskSuccess", "states:StartExecution"],
        ResourceArns=[MACHINE],
    )
    decisions = {r["EvalActionName"]: r["EvalDecision"] for r in answer["EvaluationResults"]}
    assert decisions == {"states:SendTaskSuccess": "allowed", "states:StartExecution": "implicitDeny"}


def test_iam_standin_unknown_role_is_no_such_entity(iam: Any) -> None:
    with pytest.raises(iam.exceptions.NoSuchEntityException, match="pp-missing"):
        iam.simulate_principal_policy(
            PolicySourceArn="arn:aws:iam::123456789012:role/pp-missing", ActionNames=["s3:GetObject"]
        )


class _Template:
    document: dict[str, Any] = {
        "Conditions": {
            "KeyHasSpace": {"Fn::Equals": [{"Ref": "TagKey"}, "Patch Group"]},
            "KeyIsPlain": {"Fn::Not": [{"Condition": "KeyHasSpace"}]},
            "Both": {
                "Fn::And": [
                    {"Condition": "KeyIsPlain"},
                    {"Fn::Or": [{"Condition": "KeyHasSpace"}, {"Condition": "KeyIsPlain"}]},
                ]
            },
        }
    }

    def of_type(self, _kind: str) -> dict[str, Any]:
        return {}


class _Runtime:
    def __init__(self, tag_key: str) -> None:
        from patchpilot_sim.template import IntrinsicResolver

        self.template = _Template()
        self.resolver = IntrinsicResolver({"TagKey": tag_key}, {}, {"AWS::Region": "us-east-1"})
        self.admin = self

    def client(self, _service: str) -> None:
        return None


@pytest.mark.parametrize(("tag_key", "expected_key"), [("PatchGroup", "PatchGroup"), ("Patch Group", "Patch Group")])
def test_iam_standin_deployer_resolves_if_and_no_value_as_cloudformation(tag_key: str, expected_key: str) -> None:
    from patchpilot_sim.deployed_stack import DeployedStack, _Deployer

    runtime: Any = _Runtime(tag_key)
    deployer = _Deployer(runtime, DeployedStack(runtime, "pp"))
    statements = [
        {
            "Effect": "Allow",
            "Action": "ssm:SendCommand",
            "Resource": {"Fn::Sub": "arn:aws:ec2:${AWS::Region}:1:instance/*"},
            "Condition": {
                "Fn::If": [
                    "KeyHasSpace",
                    {"StringLike": {"ssm:resourceTag/Patch Group": "*"}},
                    {"StringLike": {"ssm:resourceTag/PatchGroup": "*"}},
                ]
            },
            "Sid": {"Fn::If": ["KeyIsPlain", "Plain", {"Ref": "AWS::NoValue"}]},
        },
        {"Fn::If": ["Both", {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}, {"Ref": "AWS::NoValue"}]},
    ]

    resolved = deployer.resolve(statements)

    assert resolved[0]["Condition"] == {"StringLike": {f"ssm:resourceTag/{expected_key}": "*"}}
    assert resolved[0]["Resource"] == "arn:aws:ec2:us-east-1:1:instance/*"
    assert ("Sid" in resolved[0]) == (tag_key == "PatchGroup")
    assert len(resolved) == (2 if tag_key == "PatchGroup" else 1)
    with pytest.raises(ValueError, match="not a condition function"):
        deployer._holds({"Fn::Whatever": []})


def test_iam_standin_null_condition_tests_whether_the_key_is_present() -> None:
    policy = {
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "ec2:CreateTags",
                "Resource": "*",
                "Condition": {"Null": {"ec2:ResourceTag/PatchGroup": "true"}},
            }
        ]
    }
    assert evaluate([policy], "ec2:CreateTags", "arn:aws:ec2:r:1:instance/i-1") == ("allowed", [])
    tagged = {"ec2:ResourceTag/PatchGroup": ["dev"]}
    assert evaluate([policy], "ec2:CreateTags", "arn:aws:ec2:r:1:instance/i-1", tagged) == ("implicitDeny", [])
