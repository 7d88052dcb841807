"""S3 access shared by every runtime: a boto3 client from settings and idempotent bucket creation."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from speech_coach.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def s3_client(settings: Settings, *, timeout: float = 10.0, retries: int = 3) -> S3Client:
    config = Config(
        connect_timeout=timeout,
        read_timeout=max(timeout, 30.0),
        retries={"max_attempts": retries, "mode": "standard"},
        s3={"addressing_style": "path"},  # SeaweedFS and MinIO serve buckets on the path
    )
    client: S3Client = boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint,
        aws_access_key_id=settings.s3.access_key,
        aws_secret_access_key=settings.s3.secret_key.get_secret_value(),
        region_name=settings.s3.region,
        config=config,
    )
    return client


def _error_code(exc: ClientError) -> str:
    error: Any = exc.response.get("Error", {})
    return str(error.get("Code", ""))


def ensure_bucket(client: S3Client, bucket: str, *, wait_s: float = 0.0) -> None:
    """Create the bucket unless it exists. A fresh store answers 5xx for a few seconds: retry until wait_s."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            client.head_bucket(Bucket=bucket)
            return
        except ClientError as exc:
            if _error_code(exc) not in {"404", "NoSuchBucket", "NotFound"} and time.monotonic() >= deadline:
                raise
        except BotoCoreError:
            if time.monotonic() >= deadline:
                raise
        try:
            client.create_bucket(Bucket=bucket)
            return
        except ClientError as exc:
            if _error_code(exc) in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                return
            if time.monotonic() >= deadline:
                raise
        time.sleep(0.3)


AUDIO_EXTENSIONS = {
    "audio/ogg": "ogg", "audio/opus": "opus", "audio/mpeg": "mp3", "audio/mp3": "mp3", "audio/mp4": "m4a",
    "audio/x-m4a": "m4a", "audio/m4a": "m4a", "audio/aac": "aac", "audio/wav": "wav", "audio/x-wav": "wav",
    "audio/flac": "flac", "audio/x-flac": "flac", "audio/webm": "webm",
}  # fmt: skip


def audio_key(sha256: str, mime_type: str) -> str:
    """Content-addressed key of a recording: the same bytes always land on the same key, so a re-upload is a no-op."""
    return f"audio/{sha256[:2]}/{sha256}.{AUDIO_EXTENSIONS.get(mime_type, 'bin')}"
