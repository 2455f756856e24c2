"""moto's request dispatch without listing the response class's methods again for every request.

moto 5.2.5 routes each request to its handler method (``BaseResponse.call_action``) by listing every function of the
service's response class with ``inspect.getmembers`` (``moto.core.utils.method_names_from_class``) on every request,
about 2 % of a simulated cycle. The classes do not change while a runtime runs, so this keeps each class's list after
its first request; it is forgotten at every install (a new runtime), and the list itself is moto's.
"""

from __future__ import annotations

from typing import Any

from moto.core import responses

moto_responses: Any = responses  # its `method_names_from_class` is an import of moto.core.utils, swapped here
_ORIGINAL = moto_responses.method_names_from_class
_names: dict[object, list[str]] = {}


def _method_names_from_class(clazz: object) -> list[str]:
    names = _names.get(clazz)
    if names is None:
        names = _names[clazz] = _ORIGINAL(clazz)
    return names


def install() -> None:
    """Keep each response class's method names after its first request (for the local runtime's process)."""
    _names.clear()
    moto_responses.method_names_from_class = _method_names_from_class


def uninstall() -> None:
    """List the methods on every request again, as moto does."""
    moto_responses.method_names_from_class = _ORIGINAL
    _names.clear()
