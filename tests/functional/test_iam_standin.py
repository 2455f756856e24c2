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
