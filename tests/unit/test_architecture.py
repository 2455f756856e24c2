"""Dependencies point one way: handlers -> logic -> integrations; the Lambda package imports neither the CLI nor the
simulator; the CLI loads the simulator only inside the commands that run it."""

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "functions" / "patchpilot"
CLI_PACKAGE = ROOT / "cli" / "patchpilot_cli"
SIM_PACKAGE = ROOT / "sim" / "patchpilot_sim"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _module_level_imports(path: Path) -> set[str]:
    """Imports that run when the module is imported (not inside functions, not under `if TYPE_CHECKING:`)."""
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _modules(layer: str) -> list[Path]:
    return sorted((PACKAGE / layer).glob("*.py"))


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_architecture_lambda_code_never_imports_the_cli_the_simulator_or_moto(path: Path) -> None:
    forbidden = {"patchpilot_cli", "patchpilot_sim", "moto"}
    assert not {name for name in _imports(path) if name.split(".")[0] in forbidden}


@pytest.mark.parametrize("path", sorted(CLI_PACKAGE.rglob("*.py")), ids=lambda p: p.name)
def test_architecture_cli_never_imports_the_simulator_or_moto_at_module_level(path: Path) -> None:
    offenders = {name for name in _module_level_imports(path) if name.split(".")[0] in {"patchpilot_sim", "moto"}}
    assert offenders == set()


@pytest.mark.parametrize("path", sorted(SIM_PACKAGE.rglob("*.py")), ids=lambda p: p.name)
def test_architecture_simulator_uses_only_the_cli_error_module(path: Path) -> None:
    # The simulator may report errors the CLI's way; the operator commands are not its business.
    cli_imports = {name for name in _imports(path) if name.split(".")[0] == "patchpilot_cli"}
    assert cli_imports <= {"patchpilot_cli.errors"}


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["status", "--help"], ["approve", "--help"], ["doctor", "--help"], ["plan", "--help"]],
    ids=" ".join,
)
def test_architecture_operator_cli_runs_without_moto(tmp_path: Path, argv: list[str]) -> None:
    # Given a moto and a simulator that cannot be imported (an operator's machine without the dev dependencies)
    for package in ("moto", "patchpilot_sim"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text(f"raise ImportError('{package} is not installed here')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT / "functions"), str(ROOT / "cli")])}
    # When the operator asks for help
    result = subprocess.run(
        [sys.executable, "-c", "from patchpilot_cli.main import main; main()", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # Then the command answers
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout


@pytest.mark.parametrize(
    ("layer", "forbidden"),
    [
        ("logic", "patchpilot.handlers"),
        ("integrations", "patchpilot.logic"),
        ("integrations", "patchpilot.handlers"),
        ("models", "patchpilot.logic"),
    ],
)
def test_architecture_dependencies_point_one_way(layer: str, forbidden: str) -> None:
    offenders = [p.name for p in _modules(layer) if any(name.startswith(forbidden) for name in _imports(p))]
    assert offenders == []


def test_architecture_logic_reads_no_environment() -> None:
    offenders = [p.name for p in _modules("logic") if "os.environ" in p.read_text() or "getenv" in p.read_text()]
    assert offenders == []


def _raises_without_match(path: Path) -> list[int]:
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        is_raises = (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "raises"
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "pytest"
        )
        if is_raises and not any(keyword.arg == "match" for keyword in node.keywords):
            lines.append(node.lineno)
    return lines


def test_architecture_every_pytest_raises_names_the_expected_message() -> None:
    # without match= a test passes on the wrong error of the right type
    missing = {
        str(path.relative_to(ROOT)): lines
        for path in sorted((ROOT / "tests").rglob("*.py"))
        if (lines := _raises_without_match(path))
    }
    assert missing == {}


def test_architecture_runs_table_keys_are_built_in_one_module() -> None:
    # every `pk`/`sk` prefix of the runs table is spelled in runs_table_keys.py only
    prefixes = ('"RUN#', '"EXCLUSION#', '"EXCLUSION_REMOVED#', '"COMMAND#', '"INSTANCE#', '"APPROVAL#', 'f"RUN#')
    spelled = sorted(
        str(path.relative_to(ROOT))
        for package in (PACKAGE, CLI_PACKAGE)
        for path in package.rglob("*.py")
        if path.name != "runs_table_keys.py" and any(prefix in path.read_text() for prefix in prefixes)
    )
    assert spelled == []


def test_architecture_no_table_scan_in_the_cli_or_the_lambda_package() -> None:
    # operator and Lambda paths query by key or index; a Scan reads (and bills) the whole runs table
    scans = sorted(
        str(path.relative_to(ROOT))
        for package in (PACKAGE, CLI_PACKAGE)
        for path in package.rglob("*.py")
        if re.search(r"""\.scan\(|get_paginator\(["']scan["']\)""", path.read_text())
    )
    assert scans == []
