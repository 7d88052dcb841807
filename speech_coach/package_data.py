"""Data directories shipped inside our packages (the question bank, the dbt project), found with importlib.resources.

In the wheel they are package data in site-packages; in the editable install they are the repository's top-level
directories, reached through a symlink in the package (`speech_coach/question_bank`, `warehouse/dbt_project`).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def data_dir(package: str, name: str) -> Path:
    """The directory `name` inside `package`, as a real path: the YAML loader and dbt read files by path.

    Resolved, so that paths in messages name the repository's files in a checkout. Not checked for existence here:
    importing a module must not fail because of data that only one of its functions reads.
    """
    found = files(package) / name
    if not isinstance(found, Path):  # e.g. a zip import: the platform always installs to the filesystem
        raise FileNotFoundError(f"{package}/{name}: package data is not on the filesystem ({found!r})")
    return found.resolve()
