"""The product's shape, floor by floor: which of our packages each package may import.

- `speech_coach/`, the core, imports none of ours: it is the domain every runtime shares.
- `warehouse/` is the warehouse's schema and access layer, a library over the core.
- The runtimes (`bot/`, `flink_jobs/`, `orchestration/`) import the core, never each other; Dagster also uses the
  warehouse library.
- `control/` is the floor above: the `speech-coach` CLI, the local stack, pipeline status, the docs generators,
  the simulator and the harnesses that drive the runtimes. It is the only package that names runtimes.
- `benchmarks/` measure all of the above; only `tests/` import `tests`.
"""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = "speech_coach"
RUNTIMES = ["bot", "flink_jobs", "orchestration"]
MAY_IMPORT: dict[str, set[str]] = {
    CORE: set(),
    "warehouse": {CORE},
    "bot": {CORE},
    "flink_jobs": {CORE},
    "orchestration": {CORE, "warehouse"},
    "control": {CORE, "warehouse", *RUNTIMES},
    "benchmarks": {CORE, "warehouse", *RUNTIMES, "control"},
}
OURS = {*MAY_IMPORT, "tests"}
# Packages that start other packages' code by name (`python -m ...`, Dagster code locations).
MAY_NAME = {"control", "benchmarks", "tests"}


def python_files(package: str) -> list[Path]:
    return [p for p in (ROOT / package).rglob("*.py") if "__pycache__" not in p.parts]


def imported_top_levels(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_every_python_package_has_a_floor() -> None:
    """A new top-level package must be placed in the floors above before it can land."""
    found = {
        p.relative_to(ROOT).parts[0]
        for p in ROOT.glob("*/**/*.py")
        if not {".venv", ".local", "build", "__pycache__"} & set(p.relative_to(ROOT).parts)
    }
    assert found - OURS == set(), f"packages without a floor in MAY_IMPORT: {sorted(found - OURS)}"


@pytest.mark.parametrize("package", sorted(MAY_IMPORT))
def test_package_imports_only_the_floors_below(package: str) -> None:
    files = python_files(package)
    assert files, f"{package}/ is missing"
    allowed = MAY_IMPORT[package] | {package}
    for path in files:
        wrong = (imported_top_levels(path) & OURS) - allowed
        assert not wrong, f"{path.relative_to(ROOT)} imports {sorted(wrong)}; {package} may import {sorted(allowed)}"


def _module_exists(dotted: str) -> bool:
    base = ROOT.joinpath(*dotted.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file() or (base / "__main__.py").is_file()


def named_modules(path: Path, own: str) -> list[str]:
    """Other packages' modules this file names in a string: `"flink_jobs.answers"`, or `"-m", "bot"`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.List | ast.Tuple):
            items = [e.value if isinstance(e, ast.Constant) else None for e in node.elts]
            found += [b for a, b in itertools.pairwise(items) if a == "-m" and isinstance(b, str)]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and "." in node.value:
            found.append(node.value)
    return [name for name in found if name.split(".")[0] in OURS and name.split(".")[0] != own and _module_exists(name)]


@pytest.mark.parametrize("package", sorted(set(MAY_IMPORT) - MAY_NAME))
def test_only_control_names_other_packages_modules(package: str) -> None:
    for path in python_files(package):
        named = named_modules(path, package)
        assert not named, f"{path.relative_to(ROOT)} names {named}: starting other packages is control's job"


def test_the_name_check_sees_a_module_started_by_name(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text('CMD = ["python", "-m", "bot"]\nLOCATION = "orchestration.definitions"\nWORD = "bot"\n')
    assert named_modules(probe, "speech_coach") == ["bot", "orchestration.definitions"]


def test_nothing_outside_tests_imports_tests() -> None:
    for package in MAY_IMPORT:
        for path in python_files(package):
            assert "tests" not in imported_top_levels(path), f"{path.relative_to(ROOT)} imports tests"


def test_layout_exists() -> None:
    for entry in ["bot", "flink_jobs", "orchestration", "control", "dbt", "warehouse", "deploy/helm", "Makefile",
                  "pyproject.toml", "requirements.lock", ".env.example", ".ci/run", "docs/events.md"]:  # fmt: skip
        assert (ROOT / entry).exists(), entry
