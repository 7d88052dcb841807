"""The product's shape: runtimes import the core package, never each other.

`warehouse/` is the warehouse's schema and access layer: a library that Dagster (orchestration) uses, which
itself imports only the core.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUNTIMES = ["bot", "flink_jobs", "orchestration"]
LIBRARIES = ["warehouse"]


def imported_top_levels(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_runtime_imports_no_other_runtime(runtime: str) -> None:
    files = list((ROOT / runtime).rglob("*.py"))
    assert files, f"{runtime}/ is missing"
    for path in files:
        others = imported_top_levels(path) & (set(RUNTIMES) - {runtime})
        assert not others, f"{path.relative_to(ROOT)} imports {sorted(others)}"


@pytest.mark.parametrize("package", ["speech_coach", *LIBRARIES])
def test_core_and_libraries_import_no_runtime(package: str) -> None:
    for path in (ROOT / package).rglob("*.py"):
        assert not imported_top_levels(path) & (set(RUNTIMES) | set(LIBRARIES) - {package}), path


def test_layout_exists() -> None:
    for entry in ["bot", "flink_jobs", "orchestration", "dbt", "warehouse", "deploy/helm", "Makefile",
                  "pyproject.toml", "requirements.lock", ".env.example", ".ci/run", "docs/events.md"]:  # fmt: skip
        assert (ROOT / entry).exists(), entry
