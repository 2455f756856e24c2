"""The local runtime's AWS error answers parse like AWS's: code, message, and the request id every answer carries."""

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from patchpilot_sim.runtime import error_response


def test_error_response_reaches_the_caller_as_a_client_error_with_a_request_id() -> None:
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")

    def answer(**_: Any) -> Any:
        return error_response(400, "ThrottlingException", "Rate exceeded (injected)")

    session.events.register("before-call.ssm.SendCommand", answer)
    ssm = session.client("ssm")
    with pytest.raises(ClientError, match="Rate exceeded") as raised:
        ssm.send_command(DocumentName="AWS-RunPatchBaseline", InstanceIds=["i-0123456789abcdef0"])
    response = raised.value.response
    assert response["Error"]["Code"] == "ThrottlingException"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    request_id = response["ResponseMetadata"]["RequestId"]
    assert len(request_id) == 36
    assert response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"] == request_id


def test_error_response_ids_differ_per_answer() -> None:
    first = error_response(500, "InternalServerError", "Internal error")[1]
    second = error_response(500, "InternalServerError", "Internal error")[1]
    assert first["ResponseMetadata"]["RequestId"] != second["ResponseMetadata"]["RequestId"]
