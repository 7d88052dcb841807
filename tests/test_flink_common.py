"""The Flink jobs' shared plumbing: connector jars and checkpoint recovery (the jobs' own tests run them)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from flink_jobs.common import job_paths, latest_checkpoint
from flink_jobs.connectors import JARS, ConnectorError, connector_jars
from tests.conftest import make_settings


def test_connector_jars_are_installed_by_make_install(tmp_path: Path) -> None:
    jars = connector_jars(make_settings(tmp_path))
    assert [j.name for j in jars] == list(JARS)
    assert all(j.stat().st_size > 100_000 for j in jars)


def test_missing_connector_jars_name_the_fix(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, flink={"lib_dir": tmp_path / "empty"})
    with pytest.raises(ConnectorError, match=r"flink-connector-kafka\.jar.*make install.*SC_FLINK__LIB_DIR"):
        connector_jars(settings)


def test_recovery_picks_the_newest_completed_checkpoint(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    paths = job_paths(settings, "answers")
    assert paths.checkpoints.startswith("file://") and paths.local_checkpoints is not None
    assert latest_checkpoint(paths.local_checkpoints) is None
    job = paths.local_checkpoints / "0f0f"
    for n, done in ((1, True), (2, True), (3, False)):  # chk-3 is still being written: no _metadata yet
        (job / f"chk-{n}").mkdir(parents=True)
        if done:
            (job / f"chk-{n}" / "_metadata").write_bytes(b"x")
            stamp = time.time() - 100 + n
            os.utime(job / f"chk-{n}" / "_metadata", (stamp, stamp))
            os.utime(job / f"chk-{n}", (stamp, stamp))
    assert latest_checkpoint(paths.local_checkpoints) == job / "chk-2"


def test_external_checkpoint_storage_is_used_as_given(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, flink={"checkpoint_dir": "s3://ckpt/flink/"})
    paths = job_paths(settings, "metrics")
    assert paths.checkpoints == "s3://ckpt/flink/metrics"
    assert paths.local_checkpoints is None
