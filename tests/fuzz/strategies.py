"""Hypothesis strategies: JSON values with the text AWS chokes on, and mutations of a valid seed input."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import strategies as st

Path_ = tuple[str | int, ...]

lone_surrogate_text = st.builds(
    lambda before, surrogate, after: before + surrogate + after,
    st.text(max_size=4),
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
    st.text(max_size=4),
)
edge_strings = st.sampled_from(
    ["", " ", "\n\t", "A" * 2049, "x" * 300, "i-0123456789abcdef0", "mi-0123456789abcdef0", "0" * 36, "dev", "prod-1"]
)
json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    lone_surrogate_text,
    edge_strings,
)
json_values = st.recursive(
    json_leaves,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3),
    max_leaves=8,
)


def paths(value: Any, prefix: Path_ = ()) -> list[Path_]:
    """Every key/index path in a JSON value."""
    found: list[Path_] = []
    items: list[tuple[str | int, Any]] = []
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    for key, item in items:
        found.append((*prefix, key))
        found += paths(item, (*prefix, key))
    return found


def _parent(value: Any, path: Path_) -> Any:
    for key in path[:-1]:
        value = value[key]
    return value


def _tweak(draw: st.DrawFn, current: Any) -> Any:
    """A value of the same kind, often still valid: the near misses a parser must get right."""
    if isinstance(current, bool):
        return not current
    if isinstance(current, int):
        return draw(st.integers(min_value=-1, max_value=max(current * 2 + 2, 2)))
    if isinstance(current, str):
        alphabet = st.sampled_from(sorted(set(current))) if current else st.characters()
        return draw(st.text(alphabet=alphabet, max_size=max(len(current) * 2, 4)) | lone_surrogate_text)
    if isinstance(current, list) and current:
        return current + current[:1] if draw(st.booleans()) else current[1:]
    return draw(json_values)


@st.composite
def mutations(draw: st.DrawFn, seed: Any) -> Any:
    """The seed with up to three fields replaced, tweaked or deleted, and maybe an unknown field added."""
    event = copy.deepcopy(seed)
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        candidates = paths(event)
        if not candidates:
            break
        path = draw(st.sampled_from(candidates))
        parent, key = _parent(event, path), path[-1]
        action = draw(st.sampled_from(["replace", "tweak", "tweak", "delete"]))
        if action == "delete":
            del parent[key]
        elif action == "replace":
            parent[key] = draw(json_values)
        else:
            parent[key] = _tweak(draw, parent[key])
    if isinstance(event, dict) and draw(st.integers(min_value=0, max_value=9)) == 0:
        event[draw(st.text(max_size=10))] = draw(json_values)
    return event


def inputs(seed: Any) -> st.SearchStrategy[Any]:
    """Mostly near misses of the seed, some arbitrary JSON."""
    return st.one_of(mutations(seed), mutations(seed), mutations(seed), json_values)
