"""Operator-facing errors: bad input in one line (exit 2), handler errors in a few readable lines.

A leaf module: the CLI, the operator commands and the local runtime's `invoke` all report errors this way.
"""

from __future__ import annotations

import re

MAX_MESSAGE_LINES = 4
_VALIDATION_HEADER = re.compile(r"^\d+ validation errors? for (\S+)$")


class InputError(Exception):
    """Bad operator input (a file, a name, an option): reported in one line, exit code 2."""


def _validation_lines(lines: list[str]) -> list[str]:
    """`loc: message` per field of a pydantic ValidationError's text."""
    fields: list[str] = []
    location: str | None = None
    for line in lines[1:]:
        if not line.startswith(" "):
            location = line.strip()
        elif location is not None and not line.strip().startswith("For further information"):
            message = line.strip().split(" [type=", 1)[0]
            fields.append(f"{location}: {message}")
            location = None
    return fields


def error_lines(error_type: str | None, message: str | None, limit: int = MAX_MESSAGE_LINES) -> list[str]:
    """A handler error in a few readable lines: one per invalid field for a validation error."""
    lines = [line for line in (message or "").splitlines() if line.strip()]
    header = _VALIDATION_HEADER.match(lines[0]) if lines else None
    if error_type == "ValidationError" and header:
        fields = _validation_lines(lines)
        shown = fields[:limit] + ([f"... and {len(fields) - limit} more"] if len(fields) > limit else [])
        return [f"ValidationError: {header.group(1)} has {len(fields)} invalid field(s)", *shown]
    head = f"{error_type}: {lines[0] if lines else ''}".rstrip(": ")
    return [head, *lines[1:limit]]
