"""`python -m flink_jobs.metrics`: run the windowed metrics job until stopped (restores its last checkpoint)."""

from __future__ import annotations

from flink_jobs.common import job_paths, latest_checkpoint, run_until_stopped
from flink_jobs.metrics.job import build, log
from speech_coach.kafka import ensure_topics
from speech_coach.logging import configure_logging
from speech_coach.settings import get_settings


def main() -> None:
    settings = get_settings()
    configure_logging(settings.log.level, settings.log.json_output, settings.secret_values())
    ensure_topics(settings)
    checkpoint = latest_checkpoint(job_paths(settings, "metrics").local_checkpoints)
    env = build(settings)
    log.info(
        "metrics_job.starting",
        restored_from=str(checkpoint) if checkpoint else None,
        parallelism=env.get_parallelism(),
        allowed_lateness_s=settings.metrics.allowed_lateness_s,
        last_n=settings.metrics.last_n,
    )
    client = env.execute_async("speech-coach-metrics")
    run_until_stopped(settings, "metrics", client)


if __name__ == "__main__":
    main()
