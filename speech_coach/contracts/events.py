"""Versioned event contracts for every Kafka topic.

Each event is a pydantic model with `schema_version` and `event_type` fields. `encode` writes compact JSON;
`decode` reads bytes for a given topic and raises `ContractError`, whose message names the failing fields,
for malformed JSON, unknown event types and unsupported schema versions. Consumers send what fails to
decode to the dead-letter topic with that message as the reason.
"""

from __future__ import annotations

import base64
import inspect
import json
import re
import typing
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from pydantic.config import JsonDict
from pydantic.fields import FieldInfo

from speech_coach.contracts.topics import Topic

NonEmptyStr = Annotated[str, Field(min_length=1, max_length=512)]


def unit(symbol: str) -> JsonDict:
    """A field's unit, as `Field(json_schema_extra=unit("s"))` or in a measure type below (`Seconds`, `Ratio`):
    docs/events.md, the dbt docs and the research codebook show it beside the description."""
    return {"unit": symbol}


def _declared(field: FieldInfo) -> list[FieldInfo]:
    """The field, and the Annotated measure inside its `| None`: pydantic keeps an optional measure's unit and
    bounds there rather than on the field."""
    infos = [field]
    for arg in typing.get_args(field.annotation):
        if typing.get_origin(arg) is Annotated:
            infos += [m for m in typing.get_args(arg)[1:] if isinstance(m, FieldInfo)]
    return infos


def unit_of(field: FieldInfo) -> str:
    """The unit a field declares with `unit()`, or "" when it has none."""
    for info in _declared(field):
        if isinstance(extra := info.json_schema_extra, dict) and "unit" in extra:
            return str(extra["unit"])
    return ""


def constraints_of(field: FieldInfo) -> list[Any]:
    """The field's constraints (Ge, Le, MaxLen, ...), wherever pydantic keeps them."""
    return [meta for info in _declared(field) for meta in info.metadata]


# Units used across the contracts, so the same quantity reads the same everywhere.
SECONDS, WPM, POINTS, RATIO, SHARE = "s", "words/min", "points", "ratio (0-1)", "share (0-1)"

# Measures: a kind of number with its bounds and unit, declared once.
Seconds = Annotated[float, Field(ge=0, json_schema_extra=unit(SECONDS))]
WordsPerMinute = Annotated[float, Field(ge=0, json_schema_extra=unit(WPM))]
Points = Annotated[float, Field(ge=0, json_schema_extra=unit(POINTS))]
Ratio = Annotated[float, Field(ge=0, le=1, json_schema_extra=unit(RATIO))]
Share = Annotated[float, Field(ge=0, le=1, json_schema_extra=unit(SHARE))]
Pauses = Annotated[int, Field(ge=0, json_schema_extra=unit("pauses"))]
Words = Annotated[int, Field(ge=0, json_schema_extra=unit("words"))]
GuiraudIndex = Annotated[float, Field(ge=0, json_schema_extra=unit("types/√tokens"))]  # root TTR

# Identifiers every event shares, described once.
AnswerId = Annotated[
    str, Field(min_length=1, max_length=512, description="Random answer id assigned by the bot; no personal data.")
]
LearnerId = Annotated[
    str, Field(min_length=1, max_length=512, description="Internal learner id (a UUID), never a Telegram id.")
]
QuestionId = Annotated[
    str, Field(min_length=1, max_length=512, description="Stable question id from the question bank.")
]
InterfaceLanguage = Annotated[
    str, Field(pattern=r"^[a-z]{2}$", description="Language of the learner's interface (ISO 639-1 code).")
]


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


class ContractError(ValueError):
    """An event failed its contract. `reason` is a short machine code; the message names the fields."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Track(StrEnum):
    TOEFL = "toefl"
    JOB_INTERVIEW = "job_interview"
    WORKPLACE = "workplace"


class TaskType(StrEnum):
    TOEFL_INDEPENDENT = "toefl_independent"  # Task 1
    TOEFL_INTEGRATED_CAMPUS = "toefl_integrated_campus"  # Task 2
    TOEFL_INTEGRATED_ACADEMIC = "toefl_integrated_academic"  # Task 3
    TOEFL_INTEGRATED_LECTURE = "toefl_integrated_lecture"  # Task 4
    TOEFL_LISTEN_REPEAT = "toefl_listen_repeat"
    TOEFL_INTERVIEW = "toefl_interview"
    JOB_INTERVIEW = "job_interview"
    WORKPLACE = "workplace"


PracticeTrack = Annotated[Track, Field(description="Practice track.")]
PracticeTask = Annotated[TaskType, Field(description="Task type within the track.")]


class Part(BaseModel):
    """A part of an event: as strict as the event (unknown fields refused, values frozen)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class _Event(BaseModel):
    """Base of every event. A subclass declares its wire identity once, in its class line:

        class RawVoiceAnswer(Event, topic=Topic.RAW_ANSWERS, event_type="raw_voice_answer", key=("learner_id",))

    which gives it the `schema_version` and `event_type` fields (literals, checked on decode), the `TOPIC`,
    `EVENT_TYPE`, `SCHEMA_VERSION` and `KEY` class attributes, `key()`, and its place in `EVENT_TYPES`. An event
    whose key is not a plain join of fields (`DeadLetter`) passes `key=None` and defines `key()` itself.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)

    EVENT_TYPE: ClassVar[str]
    TOPIC: ClassVar[Topic]
    SCHEMA_VERSION: ClassVar[int]
    KEY: ClassVar[tuple[str, ...] | None]

    schema_version: int = Field(0, description="Version of this event's schema; bumped on a breaking change.")
    event_type: str = Field("", description="Which event this is; fixed per topic.")
    event_id: str = Field(default_factory=new_id, min_length=1, max_length=64, description="Unique per message.")
    occurred_at: AwareDatetime = Field(default_factory=utcnow, description="When the producer created it.")
    traceparent: str | None = Field(
        None, max_length=128, description="W3C trace context, so one answer can be followed across services."
    )

    def __init_subclass__(
        cls, *, topic: Topic, event_type: str, key: tuple[str, ...] | None, version: int = 1, **kwargs: Any
    ) -> None:
        super().__init_subclass__(**kwargs)
        if event_type in EVENT_TYPES or topic in TOPIC_EVENT:
            raise TypeError(f"{cls.__name__}: event type {event_type!r} or topic {topic} is declared twice")
        if key is None and "key" not in cls.__dict__:
            raise TypeError(f"{cls.__name__}: key=None needs a key() method of its own")
        declared = {name for klass in cls.__mro__ for name in inspect.get_annotations(klass)}
        if missing := [name for name in key or () if name not in declared]:
            raise TypeError(f"{cls.__name__}: key names fields it does not have: {missing}")
        cls.TOPIC, cls.EVENT_TYPE, cls.SCHEMA_VERSION, cls.KEY = topic, event_type, version, key
        # Pydantic collects fields after this hook runs, so these annotations become the literal fields.
        cls.__annotations__ = {
            "schema_version": Literal[version],
            "event_type": Literal[event_type],
            **inspect.get_annotations(cls),
        }
        cls.schema_version = Field(version, description=_Event.model_fields["schema_version"].description)
        cls.event_type = Field(event_type, description=_Event.model_fields["event_type"].description)
        EVENT_TYPES[event_type] = cls
        TOPIC_EVENT[topic] = cls

    def key(self) -> bytes:
        """Kafka message key: the idempotency/partitioning key, the `KEY` fields joined by `|`."""
        assert self.KEY is not None
        return "|".join(_key_part(getattr(self, name)) for name in self.KEY).encode()


def _key_part(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value.value if isinstance(value, StrEnum) else value)


# Filled as the event classes below are defined.
EVENT_TYPES: dict[str, type[_Event]] = {}
TOPIC_EVENT: dict[Topic, type[_Event]] = {}


# --- raw voice answer (bot -> answer job) -------------------------------------------------------------


class AudioObject(Part):
    bucket: NonEmptyStr = Field(description="S3 bucket holding the audio.")
    key: NonEmptyStr = Field(description="Content-addressed: audio/<sha256[:2]>/<sha256>.<ext>")
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] = Field(description="SHA-256 of the audio file, hex.")
    mime_type: NonEmptyStr = Field(description="Media type of the audio file, e.g. audio/ogg.")
    size_bytes: int = Field(gt=0, description="Size of the audio file.", json_schema_extra=unit("bytes"))
    duration_s: float = Field(
        gt=0, description="Duration reported by Telegram (the job measures its own).", json_schema_extra=unit(SECONDS)
    )


class TelegramRef(Part):
    """The Telegram ids used for idempotency; they never leave the operational systems."""

    update_id: int = Field(description="Telegram update id.")
    chat_id: int = Field(description="Telegram chat id.")
    message_id: int = Field(description="Telegram message id of the voice message.")
    file_unique_id: NonEmptyStr = Field(description="Telegram's stable id of the voice file.")


class RawVoiceAnswer(_Event, topic=Topic.RAW_ANSWERS, event_type="raw_voice_answer", key=("learner_id",)):
    """A learner's accepted voice answer; the audio itself is in S3 under a content-addressed key."""

    answer_id: AnswerId
    learner_id: LearnerId
    question_id: QuestionId
    track: PracticeTrack
    task_type: PracticeTask
    interface_language: InterfaceLanguage = "en"
    speaking_time_s: int = Field(
        gt=0, le=600, description="The task's allowed speaking time.", json_schema_extra=unit(SECONDS)
    )
    question_sent_at: AwareDatetime = Field(description="When the bot sent the question.")
    received_at: AwareDatetime = Field(description="When the bot received the voice message.")
    audio: AudioObject = Field(description="Where the audio is stored.")
    transcription_temperature: float = Field(
        0.0, ge=0, le=1, description="Sampling temperature asked of the transcription engine (0: deterministic)."
    )
    telegram: TelegramRef = Field(description="Telegram ids, for recognising redelivered updates.")


# --- transcription / feedback result (answer job -> bot, warehouse, metrics job) ----------------------


class ResultStatus(StrEnum):
    OK = "ok"
    REJECTED = "rejected"  # bad audio: the learner is told why, and no credit is spent


class WordTiming(Part):
    word: str = Field(max_length=128, description="The word as transcribed.")
    start_s: Seconds = Field(description="Where the word starts in the audio.")
    end_s: Seconds = Field(description="Where the word ends in the audio.")


class RubricScore(Part):
    criterion: NonEmptyStr = Field(description="Rubric criterion, e.g. delivery.")
    score: Points = Field(description="Score on this criterion.")
    max_score: float = Field(gt=0, description="Top of this criterion's scale.", json_schema_extra=unit(POINTS))
    comment: str = Field("", max_length=2000, description="Comment on this criterion, for the learner.")


class EngineInfo(Part):
    transcription_engine: NonEmptyStr = Field(description="Transcription engine, e.g. faster-whisper or openai.")
    transcription_model: NonEmptyStr = Field(description="Transcription model, e.g. tiny.en or whisper-1.")
    feedback_engine: NonEmptyStr = Field(description="Feedback engine, e.g. offline or openai.")
    feedback_model: NonEmptyStr = Field(description="Model or estimator that wrote the feedback.")
    prompt_version: NonEmptyStr = Field(description="Prompt or rubric version used to produce the feedback.")
    scale: NonEmptyStr = Field(description="Name of the score scale, e.g. toefl_0_4.")
    fallback: bool = Field(False, description="True when the offline engine stood in for a failed remote one.")


class KeyMetrics(Part):
    words_per_minute: WordsPerMinute = Field(description="Speaking rate shown to the learner.")
    pause_count: Pauses = Field(description="Silent pauses of at least 250 ms.")
    mean_pause_s: Seconds = Field(description="Mean silent pause length.")
    lexical_diversity: float = Field(
        ge=0, description="MATTR (window 50) of the transcript.", json_schema_extra=unit(RATIO)
    )


class FeedbackResult(_Event, topic=Topic.FEEDBACK, event_type="feedback_result", key=("answer_id",)):
    """What the learner gets back: transcript, rubric scores and advice, or why the answer was rejected."""

    answer_id: AnswerId
    learner_id: LearnerId
    question_id: QuestionId
    track: PracticeTrack
    task_type: PracticeTask
    status: ResultStatus = Field(description="ok, or rejected when the audio could not be assessed.")
    rejection_reason: str | None = Field(
        None, max_length=64, description="Why the audio was rejected: a machine code such as audio.silent."
    )
    interface_language: InterfaceLanguage = "en"
    transcript: str = Field(
        "", max_length=20000, description="What the learner said, transcribed automatically; may contain errors."
    )
    words: list[WordTiming] = Field(default_factory=list, description="Word timings, when the engine gives them.")
    rubric: list[RubricScore] = Field(default_factory=list, description="Scores per rubric criterion.")
    overall_score: Points | None = Field(None, description="Overall score on the task's scale; null when rejected.")
    feedback: str = Field("", max_length=4000, description="Feedback for the learner, in their interface language.")
    strengths: list[str] = Field(default_factory=list, description="What went well.")
    suggestions: list[str] = Field(default_factory=list, description="What to work on next.")
    improved_answer: str = Field("", max_length=8000, description="An improved version of the answer.")
    metrics: KeyMetrics | None = Field(None, description="The fluency and lexical figures shown to the learner.")
    engine: EngineInfo | None = Field(None, description="The engines that produced the result.")
    answered_at: AwareDatetime = Field(description="When the answer was received (the raw answer's received_at).")


# --- per-answer metrics (answer job -> metrics job, warehouse) ------------------------------------------


class AnswerMetrics(_Event, topic=Topic.ANSWER_METRICS, event_type="answer_metrics", key=("answer_id",)):
    """Fluency (measured on the audio) and lexical features of one answer, for windows and the warehouse.
    Definitions: docs/metrics.md."""

    answer_id: AnswerId
    learner_id: LearnerId
    question_id: QuestionId
    task_type: PracticeTask
    answered_at: AwareDatetime = Field(description="Event time for windowing: when the answer was received.")
    # fluency, measured on the audio with a voice-activity detector
    total_duration_s: Seconds = Field(description="Length of the audio.")
    speech_duration_s: Seconds = Field(description="Time with speech, by voice activity detection.")
    speaking_rate_wpm: WordsPerMinute = Field(
        description="Words per minute from the first to the last speech, pauses included."
    )
    articulation_rate_wpm: WordsPerMinute = Field(description="Words per minute of speech, pauses excluded.")
    silent_pause_count: Pauses = Field(description="Silent pauses of at least 250 ms.")
    mean_silent_pause_s: Seconds = Field(description="Mean silent pause length.")
    mean_length_of_run_words: float = Field(
        ge=0, description="Mean number of words between silent pauses.", json_schema_extra=unit("words")
    )
    filled_pause_count: Pauses = Field(description="Filled pauses (um, uh, ...) in the transcript.")
    time_to_answer_s: Seconds | None = Field(
        None, description="From the question to the first speech of the answer; null when unknown."
    )
    # lexical, from the transcript
    tokens: Words = Field(description="Word tokens in the transcript.")
    types: Words = Field(description="Distinct word forms in the transcript.")
    ttr: Ratio = Field(description="Type-token ratio: types / tokens.")
    root_ttr: GuiraudIndex = Field(description="Guiraud's index: types / √tokens (Guiraud 1960).")
    mattr: Ratio = Field(description="Moving-average type-token ratio, window 50 (Covington & McFall 2010).")
    mtld: float = Field(
        ge=0,
        description="Measure of textual lexical diversity, threshold 0.72 (McCarthy & Jarvis 2010).",
        json_schema_extra=unit("tokens"),
    )
    hdd: Ratio = Field(description="HD-D lexical diversity, samples of 42 words (McCarthy & Jarvis 2007).")
    mean_zipf: float = Field(
        ge=0, description="Mean word frequency on the Zipf scale (wordfreq, English).", json_schema_extra=unit("Zipf")
    )
    rare_word_share: Share = Field(
        description="Share of tokens outside the 2,000 most frequent English words (Laufer & Nation 1995)."
    )
    overall_score: Points | None = Field(None, description="The feedback's overall score, copied.")
    lemmas: dict[str, int] = Field(default_factory=dict, description="Lemma -> count in this answer.")


# --- windowed lexical metrics and active vocabulary (metrics job -> warehouse) --------------------------


class WindowKind(StrEnum):
    LAST_10 = "last_10_answers"
    DAY = "day"
    MONTH = "month"
    SLIDING_7D = "sliding_7d"


# The window every windowed event is about (definitions: docs/metrics.md, "Windows").
WindowKindField = Annotated[WindowKind, Field(description="Which window: last 10 answers, UTC day, month or 7 days.")]
WindowStart = Annotated[
    AwareDatetime, Field(description="The oldest answer's time (last_10_answers), else the first midnight, UTC.")
]
WindowEnd = Annotated[
    AwareDatetime,
    Field(description="The newest answer's time (last_10_answers, included), else the midnight after it, excluded."),
]


class WindowedMetrics(
    _Event,
    topic=Topic.WINDOWED_METRICS,
    event_type="windowed_metrics",
    key=("learner_id", "window_kind", "window_start"),
):
    """Per-learner lexical and fluency aggregates over one window (last 10 answers, day, month, 7 days).
    `pooled_*` fields are the per-answer definitions applied to the window's words as one text (`pool`)."""

    learner_id: LearnerId
    window_kind: WindowKindField
    window_start: WindowStart
    window_end: WindowEnd
    answer_count: int = Field(ge=1, description="Answers in the window.", json_schema_extra=unit("answers"))
    pooled_ttr: Ratio = Field(description="Type-token ratio over the window's words.")
    pooled_mattr: Ratio = Field(description="MATTR (window 50) over the window's words.")
    pooled_mtld: float = Field(ge=0, description="MTLD over the window's words.", json_schema_extra=unit("tokens"))
    # Added within version 1, so optional: events written before it decode with null.
    pooled_root_ttr: GuiraudIndex | None = Field(
        None, description="Guiraud's index over the window's words: types / √tokens; null in events from before it."
    )
    mean_score: float | None = Field(
        None,
        description="Mean overall score of the scored answers; null when none has one.",
        json_schema_extra=unit(POINTS),
    )
    mean_speaking_rate_wpm: WordsPerMinute = Field(description="Mean speaking rate of the answers.")
    mean_time_to_answer_s: float | None = Field(
        None,
        description="Mean time to answer, over answers with one; null when none has.",
        json_schema_extra=unit(SECONDS),
    )


class WindowedVocabulary(
    _Event, topic=Topic.VOCABULARY, event_type="windowed_vocabulary", key=("learner_id", "window_kind", "window_start")
):
    """A learner's active vocabulary in one window: each word with its frequency."""

    learner_id: LearnerId
    window_kind: WindowKindField
    window_start: WindowStart
    window_end: WindowEnd
    words: dict[str, int] = Field(description="Word -> frequency within the window.")


# --- learner data deletion ------------------------------------------------------------------------------


class LearnerDeletionRequest(
    _Event, topic=Topic.DELETION_REQUESTS, event_type="learner_deletion_request", key=("learner_id",)
):
    """A learner asked to erase their data; every store holding it erases on receipt."""

    learner_id: LearnerId
    requested_at: AwareDatetime = Field(default_factory=utcnow, description="When the learner asked.")


# --- dead letters ---------------------------------------------------------------------------------------


class DeadLetter(_Event, topic=Topic.DEAD_LETTERS, event_type="dead_letter", key=None):
    """A record that could not be processed, kept with the reason so nothing is dropped silently."""

    source_topic: NonEmptyStr = Field(description="Topic the record was read from.")
    source_partition: int | None = Field(None, description="Its partition, when known.")
    source_offset: int | None = Field(None, description="Its offset, when known.")
    source_key: str | None = Field(None, description="Original key, decoded as UTF-8 with replacement.")
    payload_b64: str = Field(
        description="Original value, base64, so undecodable bytes survive; a raw answer's Telegram ids are removed."
    )
    stage: NonEmptyStr = Field(description="Where it failed: decode, download, transcribe, feedback, ...")
    reason: NonEmptyStr = Field(description="Machine code, e.g. contract.invalid, audio.silent.")
    detail: str = Field("", max_length=4000, description="What went wrong, for operators.")
    answer_id: str | None = Field(None, description="The answer it belongs to, when known.")
    learner_id: str | None = Field(
        None, max_length=512, description="The learner it is about, when known, so their erasure reaches it."
    )

    def key(self) -> bytes:
        return (self.answer_id or self.source_topic).encode()

    @classmethod
    def of_record(cls, value: bytes, **fields: Any) -> DeadLetter:
        """A dead letter for `value`: its bytes without Telegram's ids, and the learner it names, if any."""
        payload, learner = without_operational_ids(value)
        fields.setdefault("learner_id", learner)
        return cls(payload_b64=base64.b64encode(payload).decode(), **fields)


# Telegram's ids (a raw answer's `telegram` block) stay in the bot's tables: a dead letter, which reaches operators
# and the warehouse, keeps the rest of the record.
OPERATIONAL_KEYS = ("telegram", "update_id", "chat_id", "message_id", "file_unique_id", "telegram_user_id")
_OPERATIONAL = re.compile(
    rb'"telegram"\s*:\s*\{[^{}]*\}\s*,?|"(?:update_id|chat_id|message_id|file_unique_id|telegram_user_id)"'
    rb'\s*:\s*(?:"[^"]*"|[^,}\s]*)\s*,?'
)
_LEARNER = re.compile(rb'"learner_id"\s*:\s*"([^"]{1,512})"')


def without_operational_ids(value: bytes) -> tuple[bytes, str | None]:
    """(`value` without Telegram's ids, the learner id it names): JSON objects lose those keys; other bytes (a
    truncated or garbled record) lose anything that looks like them."""
    try:
        raw = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raw = None
    if isinstance(raw, dict):
        learner = raw.get("learner_id")
        learner = learner if isinstance(learner, str) and 0 < len(learner) <= 512 else None
        if not any(key in raw for key in OPERATIONAL_KEYS):
            return value, learner  # nothing to remove: the bytes stay exactly as they were
        cleaned = {k: v for k, v in raw.items() if k not in OPERATIONAL_KEYS}
        return json.dumps(cleaned, separators=(",", ":"), ensure_ascii=False).encode(), learner
    match = _LEARNER.search(value)
    return _OPERATIONAL.sub(b"", value), match.group(1).decode(errors="replace") if match else None


Event = _Event
E = TypeVar("E", bound=_Event)


def encode(event: _Event) -> bytes:
    return event.model_dump_json(exclude_none=False).encode()


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "<root>"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def decode_as(cls: type[E], data: bytes | str) -> E:
    """Decode bytes as the given event type, checking type and version first for clear messages."""
    try:
        raw: Any = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ContractError("contract.not_json", f"{cls.EVENT_TYPE}: payload is not valid JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise ContractError("contract.not_object", f"{cls.EVENT_TYPE}: payload must be a JSON object")
    event_type = raw.get("event_type")
    if event_type != cls.EVENT_TYPE:
        raise ContractError("contract.wrong_type", f"event_type: expected {cls.EVENT_TYPE!r}, got {event_type!r}")
    version = raw.get("schema_version")
    if version != cls.SCHEMA_VERSION:
        raise ContractError(
            "contract.unsupported_version",
            f"schema_version: {cls.EVENT_TYPE} supports version {cls.SCHEMA_VERSION}, got {version!r}",
        )
    try:
        return cls.model_validate(raw)
    except ValidationError as exc:
        raise ContractError("contract.invalid", f"{cls.EVENT_TYPE}: {_describe(exc)}") from exc


def decode(topic: Topic | str, data: bytes | str) -> _Event:
    """Decode a record read from `topic` (plain topic name, without the environment prefix)."""
    try:
        cls = TOPIC_EVENT[Topic(topic)]
    except ValueError as exc:
        raise ContractError("contract.unknown_topic", f"topic: no contract for {topic!r}") from exc
    return decode_as(cls, data)
