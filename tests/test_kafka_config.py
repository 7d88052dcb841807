"""Kafka over TLS and SASL: the settings reach every client the platform builds (librdkafka's producers, consumers
and admin clients; the Flink jobs' Java sources and sinks), only when set. No servers: the configs are inspected."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import structlog
from pydantic import ValidationError

from flink_jobs.common import _kafka_properties
from speech_coach.kafka import client_config, consumer_config, producer_config
from speech_coach.logging import configure_logging, get_logger
from speech_coach.settings import KafkaSettings, Settings

PASSWORD = 'sasl-PASSW0RD-"quoted"\\x'
TLS_KEYS = {"sasl.mechanism", "sasl.username", "sasl.password", "ssl.ca.location"}


def secured(**kafka: str) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        kafka=KafkaSettings(
            bootstrap_servers="b-1.kafka.example.net:9096",
            **{  # type: ignore[arg-type]
                "security_protocol": "SASL_SSL",
                "sasl_mechanism": "SCRAM-SHA-512",
                "sasl_username": "speech-coach",
                "sasl_password": PASSWORD,
                "ssl_ca_location": "/etc/kafka-ca/ca.crt",
                **kafka,
            },
        ),
    )


def test_the_local_stack_stays_plaintext_with_no_tls_or_sasl_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SECURITY_PROTOCOL", "SASL_MECHANISM", "SASL_USERNAME", "SASL_PASSWORD", "SSL_CA_LOCATION"):
        monkeypatch.delenv(f"SC_KAFKA__{name}", raising=False)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    for conf in (client_config(settings), producer_config(settings), consumer_config(settings, "g")):
        assert conf["security.protocol"] == "PLAINTEXT" and conf["bootstrap.servers"].startswith("127.0.0.1:")
        assert not TLS_KEYS & set(conf), conf
    assert _kafka_properties(settings) == {"security.protocol": "PLAINTEXT"}


def test_tls_and_sasl_reach_producers_consumers_admin_and_the_flink_connector() -> None:
    settings = secured()
    wanted = {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "speech-coach",
        "sasl.password": PASSWORD,
        "ssl.ca.location": "/etc/kafka-ca/ca.crt",
    }
    # The admin client (topic creation, health checks) is built from client_config itself.
    for conf in (client_config(settings), producer_config(settings), consumer_config(settings, "g")):
        assert wanted.items() <= conf.items(), conf
    props = _kafka_properties(settings)
    assert props["security.protocol"] == "SASL_SSL" and props["sasl.mechanism"] == "SCRAM-SHA-512"
    assert props["sasl.jaas.config"] == (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        'username="speech-coach" password="sasl-PASSW0RD-\\"quoted\\"\\\\x";'
    )
    assert props["ssl.truststore.type"] == "PEM" and props["ssl.truststore.location"] == "/etc/kafka-ca/ca.crt"
    # TLS without SASL: a CA file and nothing of SASL.
    tls = secured(security_protocol="SSL", sasl_mechanism="", sasl_username="", sasl_password="")
    assert client_config(tls)["ssl.ca.location"] == "/etc/kafka-ca/ca.crt"
    assert not {"sasl.mechanism", "sasl.password"} & set(client_config(tls))
    assert set(_kafka_properties(tls)) == {"security.protocol", "ssl.truststore.type", "ssl.truststore.location"}
    plain = _kafka_properties(secured(sasl_mechanism="PLAIN"))
    assert plain["sasl.jaas.config"].startswith("org.apache.kafka.common.security.plain.PlainLoginModule required")


@pytest.mark.parametrize(
    ("kafka", "message"),
    [
        ({"security_protocol": "SSL"}, "needs security_protocol SASL_SSL"),
        ({"sasl_mechanism": ""}, "needs a sasl_mechanism"),
        ({"sasl_mechanism": "GSSAPI"}, "sasl_mechanism"),
    ],
)
def test_sasl_without_a_sasl_protocol_is_refused(kafka: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        secured(**kafka)


def test_the_sasl_password_is_a_secret_that_never_reaches_the_logs(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    settings = secured()
    assert PASSWORD not in repr(settings) and PASSWORD not in str(settings.kafka)
    assert PASSWORD in settings.secret_values()
    configure_logging("DEBUG", json_output=True, secrets=settings.secret_values())
    try:
        # A client's configuration logged whole, by the platform and by a library's stdlib logger.
        get_logger("kafka-test").info("kafka client", config=client_config(settings))
        logging.getLogger("confluent_kafka").warning("config %s", _kafka_properties(settings))
    finally:
        structlog.reset_defaults()
    out, err = capfd.readouterr()
    assert "kafka client" in out + err and "speech-coach" in out + err
    assert "PASSW0RD" not in out + err
