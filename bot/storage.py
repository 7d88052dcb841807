"""The learners' recordings in S3 under content-addressed keys (`audio/<sha[:2]>/<sha>.<ext>`)."""

from __future__ import annotations

import asyncio
import hashlib

from botocore.exceptions import ClientError

from speech_coach.s3 import audio_key, ensure_bucket, s3_client
from speech_coach.settings import Settings


class AudioStore:
    def __init__(self, settings: Settings) -> None:
        self.bucket = settings.s3.audio_bucket
        self.client = s3_client(settings)

    def ensure_bucket(self) -> None:
        ensure_bucket(self.client, self.bucket, wait_s=10)

    async def put(self, data: bytes, mime_type: str) -> tuple[str, str]:
        """Store the bytes (a no-op when the same content is already there); returns (key, sha256)."""
        sha = hashlib.sha256(data).hexdigest()
        key = audio_key(sha, mime_type)

        def upload() -> None:
            self.client.put_object(
                Bucket=self.bucket, Key=key, Body=data, ContentType=mime_type, Metadata={"sha256": sha}
            )

        await asyncio.to_thread(upload)
        return key, sha

    async def delete(self, bucket: str, key: str) -> None:
        await asyncio.to_thread(self.client.delete_object, Bucket=bucket, Key=key)

    async def exists(self, key: str) -> bool:
        try:
            await asyncio.to_thread(self.client.head_object, Bucket=self.bucket, Key=key)
        except ClientError:
            return False
        return True
