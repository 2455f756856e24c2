"""Limits every boundary input shares: text AWS can carry (valid UTF-8), and AWS's own id and token bounds.

The lengths and formats are the AWS API models' (the botocore service models carry them):

- Step Functions ``SendTaskSuccess``/``SendTaskFailure``/``SendTaskHeartbeat`` ``taskToken``: 1 to 2048 characters.
- SSM ``CommandId``: exactly 36 characters (a UUID). Inputs accept 1 to 36 so that local fakes may use short ids.
- SSM ``InstanceId``: ``i-`` + 8 or 17 characters, or ``mi-`` + 17 (hybrid managed nodes).

A lone UTF-16 surrogate (U+D800 to U+DFFF) is a valid Python ``str`` but no valid UTF-8: botocore, pydantic's JSON
serialiser and every AWS API fail on it deep inside a call, after side effects may have happened. Boundary models
reject it up front with a validation error that names the field.
"""

from typing import Annotated, Any

from pydantic import BaseModel, SecretStr, StringConstraints, model_validator

TASK_TOKEN_MAX_LENGTH = 2048
COMMAND_ID_MAX_LENGTH = 36
INSTANCE_ID_PATTERN = r"^(i-([0-9a-f]{8}|[0-9a-f]{17})|mi-[0-9a-f]{17})$"
EC2_INSTANCE_ID_PATTERN = r"^i-([0-9a-f]{8}|[0-9a-f]{17})$"

TaskToken = Annotated[str, StringConstraints(min_length=1, max_length=TASK_TOKEN_MAX_LENGTH)]
CommandId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]{1,36}$")]
InstanceId = Annotated[str, StringConstraints(pattern=INSTANCE_ID_PATTERN)]


def _surrogate_path(value: Any, path: str) -> str | None:
    """The path of the first string holding a lone surrogate (dict keys included), or None."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, str):
        return None if value.isascii() or _encodes(value) else path or "(input)"
    if isinstance(value, dict):
        for key, item in value.items():
            found = _surrogate_path(key, f"{path}.<key>" if path else "<key>")
            found = found or _surrogate_path(item, f"{path}.{key}" if path else str(key))
            if found:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = _surrogate_path(item, f"{path}[{index}]")
            if found:
                return found
    return None


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def reject_lone_surrogates(data: Any) -> Any:
    """Return ``data`` unchanged, or raise ``ValueError`` naming the first field that is not valid UTF-8."""
    path = _surrogate_path(data, "")
    if path is not None:
        raise ValueError(f"{path} holds a lone surrogate (U+D800..U+DFFF): not valid UTF-8, AWS cannot carry it")
    return data


class Utf8Input(BaseModel):
    """Base of boundary models: an input that holds text AWS cannot carry is rejected before any side effect."""

    @model_validator(mode="before")
    @classmethod
    def _valid_utf8(cls, data: Any) -> Any:
        return reject_lone_surrogates(data)
