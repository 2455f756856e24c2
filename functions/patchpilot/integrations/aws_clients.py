"""boto3 clients, created once per process and reused across invocations; transient errors come out typed."""

from functools import cache
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

from patchpilot.integrations.aws_errors import classified

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_ssm import SSMClient
    from mypy_boto3_stepfunctions import SFNClient

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5})


@cache
def dynamodb() -> "DynamoDBClient":
    """The DynamoDB client."""
    return classified(boto3.client("dynamodb", config=_CONFIG))


@cache
def ec2() -> "EC2Client":
    """The EC2 client."""
    return classified(boto3.client("ec2", config=_CONFIG))


@cache
def ssm() -> "SSMClient":
    """The SSM client."""
    return classified(boto3.client("ssm", config=_CONFIG))


@cache
def stepfunctions() -> "SFNClient":
    """The Step Functions client."""
    return classified(boto3.client("stepfunctions", config=_CONFIG))


@cache
def s3() -> "S3Client":
    """The S3 client."""
    return classified(boto3.client("s3", config=_CONFIG))


@cache
def cloudwatch() -> "CloudWatchClient":
    """The CloudWatch client."""
    return classified(boto3.client("cloudwatch", config=_CONFIG))


@cache
def sns() -> "SNSClient":
    """The SNS client."""
    return boto3.client("sns", config=_CONFIG)


@cache
def sqs() -> "SQSClient":
    """The SQS client."""
    return classified(boto3.client("sqs", config=_CONFIG))


# A full compliance refresh pages through the whole fleet: adaptive retries slow down on throttling instead of failing
# (botocore "Retries" guide: adaptive = standard retries + client-side rate limiting).
_THROTTLING_AWARE = Config(retries={"mode": "adaptive", "max_attempts": 10})


@cache
def ssm_throttling_aware() -> "SSMClient":
    """An SSM client for fleet-wide paginated reads (adaptive retry mode)."""
    return boto3.client("ssm", config=_THROTTLING_AWARE)


CLIENT_FACTORIES = (dynamodb, ec2, ssm, stepfunctions, s3, cloudwatch, sns, sqs, ssm_throttling_aware)


def reset_clients() -> None:
    """Forget every cached client (a new boto3 default session, e.g. a fresh local runtime, needs new ones)."""
    for factory in CLIENT_FACTORIES:
        factory.cache_clear()
