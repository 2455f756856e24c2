"""Test distribution over pytest-xdist workers (`make runtime-tests` runs `-n 2 --dist loadgroup`).

Two things decide how long the runtime tests take on 2 cores:

- A module whose tests share a module-scoped local stack (or a whole simulated cycle) is marked
  ``pytest.mark.xdist_group``: all its tests must run on one worker, or each worker sets the stack up again.
  pytest-xdist 3.8's ``loadgroup`` tags each item's nodeid through ``item._nodeid``, which pytest 9.2 no longer reads
  (a node's id is ``item._id`` there), so its groups are silently ignored: the no-secrets module ran its 8-instance
  cycle once per worker. `ModuleGroupScheduling` groups such a module by its path instead, read from the module's
  source on the controller (which collects nothing itself).
- Tests run in collection order, so the longest ones go first (``pytest.mark.full_cycle``: a whole simulated cycle;
  ``full_cycle(cycles=N)`` for N of them, longest first): started last, one would run alone while the other core idles.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest
from xdist.scheduler import LoadScopeScheduling

_GROUP_MARK = re.compile(r"pytest\.mark\.xdist_group\(")


@cache
def _module_is_grouped(path: Path) -> bool:
    try:
        return bool(_GROUP_MARK.search(path.read_text(encoding="utf-8")))
    except OSError:
        return False


class ModuleGroupScheduling(LoadScopeScheduling):
    """Load scheduling where each test is its own unit, except that a module marked ``xdist_group`` is one unit."""

    def _split_scope(self, nodeid: str) -> str:
        module = nodeid.split("::", 1)[0]
        return module if _module_is_grouped(Path(self.config.rootpath) / module) else nodeid


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> LoadScopeScheduling | None:
    if config.getvalue("dist") != "loadgroup":
        return None
    return ModuleGroupScheduling(config, log)  # type: ignore[arg-type]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def cycles(item: pytest.Item) -> int:
        marker = item.get_closest_marker("full_cycle")
        return 0 if marker is None else int(marker.kwargs.get("cycles", 1))

    items.sort(key=lambda item: -cycles(item))
