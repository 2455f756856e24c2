"""The runtime tests' xdist scheduler (tests/conftest.py): a module marked xdist_group is one unit of work."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from tests.conftest import ModuleGroupScheduling


def test_module_group_scheduling_keeps_a_grouped_module_on_one_worker_and_splits_the_rest(tmp_path: Path) -> None:
    # Given a module that declares an xdist group and one that does not
    (tmp_path / "test_stack.py").write_text('pytestmark = [pytest.mark.xdist_group("test_stack")]\n')
    (tmp_path / "test_scenarios.py").write_text("import pytest\n")
    scheduler = ModuleGroupScheduling.__new__(ModuleGroupScheduling)
    scheduler.config = SimpleNamespace(rootpath=tmp_path)  # type: ignore[assignment]

    # When their tests are split into units of work
    units = {
        nodeid: scheduler._split_scope(nodeid)
        for nodeid in (
            "test_stack.py::test_one",
            "test_stack.py::test_two[a]",
            "test_scenarios.py::test_case[chaos]",
            "test_scenarios.py::test_case[healthy]",
        )
    }

    # Then the grouped module is one unit and every other test its own
    assert units["test_stack.py::test_one"] == units["test_stack.py::test_two[a]"] == "test_stack.py"
    assert units["test_scenarios.py::test_case[chaos]"] == "test_scenarios.py::test_case[chaos]"
    assert units["test_scenarios.py::test_case[healthy]"] == "test_scenarios.py::test_case[healthy]"
