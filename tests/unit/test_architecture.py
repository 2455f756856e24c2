"""Dependencies point one way: handlers -> logic -> integrations; nothing in Lambda code imports the local runtime."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "functions" / "patchpilot"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _modules(layer: str) -> list[Path]:
    return sorted((PACKAGE / layer).glob("*.py"))


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_architecture_lambda_code_never_imports_the_local_runtime_or_moto(path: Path) -> None:
    assert not {name for name in _imports(path) if name.split(".")[0] in {"patchpilot_local", "moto"}}


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
