from __future__ import annotations

import contextlib
import json
import re
import typing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from speech_coach.contracts import (
    EVENT_TYPES,
    TOPIC_EVENT,
    AnswerMetrics,
    AudioObject,
    ContractError,
    DeadLetter,
    EngineInfo,
    FeedbackResult,
    KeyMetrics,
    LearnerDeletionRequest,
    RawVoiceAnswer,
    ResultStatus,
    RubricScore,
    TaskType,
    TelegramRef,
    Topic,
    Track,
    WindowedMetrics,
    WindowedVocabulary,
    WindowKind,
    decode,
    encode,
    unit_of,
)

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def samples() -> list:
    raw = RawVoiceAnswer(
        answer_id="ans-1",
        learner_id="lrn-1",
        question_id="toefl-t1-001",
        track=Track.TOEFL,
        task_type=TaskType.TOEFL_INDEPENDENT,
        interface_language="ru",
        speaking_time_s=45,
        question_sent_at=T0,
        received_at=T0 + timedelta(seconds=70),
        audio=AudioObject(
            bucket="speech-coach-audio",
            key="audio/ab/" + "ab" * 32 + ".ogg",
            sha256="ab" * 32,
            mime_type="audio/ogg",
            size_bytes=170_000,
            duration_s=44.2,
        ),
        transcription_temperature=0.2,
        telegram=TelegramRef(update_id=10, chat_id=20, message_id=30, file_unique_id="AgADx"),
    )
    feedback = FeedbackResult(
        answer_id="ans-1",
        learner_id="lrn-1",
        question_id="toefl-t1-001",
        track=Track.TOEFL,
        task_type=TaskType.TOEFL_INDEPENDENT,
        status=ResultStatus.OK,
        transcript="I prefer studying in the morning because...",
        rubric=[RubricScore(criterion="delivery", score=3, max_score=4)],
        overall_score=3.0,
        feedback="Clear and well paced.",
        strengths=["clear structure"],
        suggestions=["add a concrete example"],
        improved_answer="I prefer studying in the morning, because...",
        metrics=KeyMetrics(words_per_minute=118.5, pause_count=4, mean_pause_s=0.6, lexical_diversity=0.71),
        engine=EngineInfo(
            transcription_engine="faster-whisper",
            transcription_model="tiny.en",
            feedback_engine="offline",
            feedback_model="rubric-estimator",
            prompt_version="rubric-v1",
            scale="toefl_0_4",
        ),
        answered_at=T0,
    )
    metrics = AnswerMetrics(
        answer_id="ans-1", learner_id="lrn-1", question_id="q", task_type=TaskType.JOB_INTERVIEW,
        answered_at=T0, total_duration_s=45, speech_duration_s=38, speaking_rate_wpm=120,
        articulation_rate_wpm=142, silent_pause_count=5, mean_silent_pause_s=0.7,
        mean_length_of_run_words=14.2, filled_pause_count=1, time_to_answer_s=12.5, tokens=90, types=60,
        ttr=0.667, root_ttr=6.32, mattr=0.7, mtld=55.1, hdd=0.8, mean_zipf=5.1, rare_word_share=0.1,
        lemmas={"be": 4, "prefer": 1},
    )  # fmt: skip
    window = WindowedMetrics(
        learner_id="lrn-1", window_kind=WindowKind.DAY, window_start=T0, window_end=T0 + timedelta(days=1),
        answer_count=3, pooled_ttr=0.5, pooled_mattr=0.7, pooled_mtld=60, pooled_root_ttr=7.1, mean_score=2.5,
        mean_speaking_rate_wpm=115, mean_time_to_answer_s=10,
    )  # fmt: skip
    vocab = WindowedVocabulary(
        learner_id="lrn-1", window_kind=WindowKind.MONTH, window_start=T0, window_end=T0 + timedelta(days=30),
        words={"study": 3},
    )  # fmt: skip
    deletion = LearnerDeletionRequest(learner_id="lrn-1")
    dead = DeadLetter(
        source_topic=Topic.RAW_ANSWERS.value, source_partition=1, source_offset=7, payload_b64="AAE=",
        stage="decode", reason="contract.invalid", detail="answer_id: missing",
    )  # fmt: skip
    return [raw, feedback, metrics, window, vocab, deletion, dead]


def test_every_topic_has_one_contract() -> None:
    assert set(TOPIC_EVENT) == set(Topic)
    assert {type(e) for e in samples()} == set(EVENT_TYPES.values())


@pytest.mark.parametrize("event", samples(), ids=lambda e: e.EVENT_TYPE)
def test_round_trip(event) -> None:
    data = encode(event)
    body = json.loads(data)
    assert body["schema_version"] == 1 and body["event_type"] == event.EVENT_TYPE
    assert decode(event.TOPIC, data) == event
    assert isinstance(event.key(), bytes) and event.key()


def test_errors_name_the_field() -> None:
    body = json.loads(encode(samples()[0]))
    body["audio"]["sha256"] = "not-a-hash"
    del body["question_id"]
    with pytest.raises(ContractError) as info:
        decode(Topic.RAW_ANSWERS, json.dumps(body))
    assert info.value.reason == "contract.invalid"
    assert "audio.sha256" in str(info.value) and "question_id" in str(info.value)


def test_unknown_fields_are_rejected() -> None:
    body = json.loads(encode(LearnerDeletionRequest(learner_id="x"))) | {"telegram_username": "@someone"}
    with pytest.raises(ContractError, match="telegram_username"):
        decode(Topic.DELETION_REQUESTS, json.dumps(body))


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xff\xfe not json", "contract.not_json"),
        (b"[1, 2]", "contract.not_object"),
        (b'{"event_type": "feedback_result", "schema_version": 1}', "contract.wrong_type"),
        (b'{"event_type": "raw_voice_answer", "schema_version": 2}', "contract.unsupported_version"),
        (b'{"event_type": "raw_voice_answer"}', "contract.unsupported_version"),
    ],
)
def test_malformed_payloads(payload: bytes, reason: str) -> None:
    with pytest.raises(ContractError) as info:
        decode(Topic.RAW_ANSWERS, payload)
    assert info.value.reason == reason


def test_unknown_topic() -> None:
    with pytest.raises(ContractError) as info:
        decode("no.such.topic", b"{}")
    assert info.value.reason == "contract.unknown_topic"


def test_naive_timestamps_are_refused() -> None:
    body = json.loads(encode(samples()[0]))
    body["received_at"] = "2026-11-23T09:00:00"
    with pytest.raises(ContractError, match="received_at"):
        decode(Topic.RAW_ANSWERS, json.dumps(body))


@settings(max_examples=300, deadline=None)
@given(topic=st.sampled_from(list(Topic)), data=st.binary(max_size=512))
def test_decoders_only_raise_contract_errors_on_random_bytes(topic: Topic, data: bytes) -> None:
    with contextlib.suppress(ContractError):
        decode(topic, data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(event=st.sampled_from(samples()), field=st.text(max_size=12), value=json_values)
def test_mutated_events_decode_or_fail_cleanly(event, field: str, value) -> None:
    body = json.loads(encode(event))
    body[field or "answer_id"] = value
    try:
        decoded = decode(event.TOPIC, json.dumps(body))
    except ContractError as exc:
        assert str(exc)
    else:
        assert decoded.EVENT_TYPE == event.EVENT_TYPE


def test_docs_list_every_topic_and_event() -> None:
    doc = (ROOT / "docs" / "events.md").read_text()
    for topic in Topic:
        assert f"`{topic.value}`" in doc
    for name, cls in EVENT_TYPES.items():
        assert f"`{name}`" in doc
        for field in cls.model_fields:
            assert re.search(rf"`{field}`", doc), f"docs/events.md does not describe {name}.{field}"


def test_generated_reference_is_current() -> None:
    from control.reference import env_example, events_reference

    assert events_reference() in (ROOT / "docs" / "events.md").read_text(), (
        "docs/events.md is stale: python -m control.reference events"
    )
    assert (ROOT / ".env.example").read_text() == env_example(), (
        ".env.example is stale: python -m control.reference env > .env.example"
    )


def test_an_event_declares_its_topic_type_and_key_once() -> None:
    from speech_coach.contracts.events import Event

    assert LearnerDeletionRequest.model_fields["event_type"].default == "learner_deletion_request"
    assert LearnerDeletionRequest(learner_id="lrn-1").key() == b"lrn-1"
    with pytest.raises(TypeError, match="declared twice"):

        class Again(Event, topic=Topic.FEEDBACK, event_type="feedback_again", key=("event_id",)):
            pass

    assert set(EVENT_TYPES) == {cls.EVENT_TYPE for cls in TOPIC_EVENT.values()}, "a refused class was registered"
    assert set(TOPIC_EVENT) == set(Topic)

    with pytest.raises(TypeError, match="fields it does not have"):

        class Keyless(Event, topic="speech-coach.probe.v1", event_type="probe", key=("learner",)):  # type: ignore[arg-type]
            pass

    assert set(EVENT_TYPES) == {cls.EVENT_TYPE for cls in TOPIC_EVENT.values()}, "a refused class was registered"
    assert set(TOPIC_EVENT) == set(Topic)


def _all_models() -> list[type[BaseModel]]:
    """Every event and every model nested in one, once."""
    models: list[type[BaseModel]] = list(EVENT_TYPES.values())
    for model in models:
        for field in model.model_fields.values():
            for arg in (field.annotation, *typing.get_args(field.annotation)):
                for inner in (arg, *typing.get_args(arg)):
                    if isinstance(inner, type) and issubclass(inner, BaseModel) and inner not in models:
                        models.append(inner)
    return models


# Numbers that are not measurements (a sampling setting, Kafka coordinates): no unit to give.
UNITLESS = {"RawVoiceAnswer.transcription_temperature"}


def test_every_field_is_described_and_every_measure_has_a_unit() -> None:
    # The contracts are the source of every field's description and unit: docs/events.md, the dbt docs and the
    # research codebook are generated from them, so a field without a description would be blank everywhere.
    undescribed, unitless = [], []
    for model in _all_models():
        for name, field in model.model_fields.items():
            where = f"{model.__name__}.{name}"
            if not field.description:
                undescribed.append(where)
            is_float = float in (field.annotation, *typing.get_args(field.annotation))
            if is_float and not unit_of(field) and where not in UNITLESS:
                unitless.append(where)
    assert not undescribed, f"fields without a description: {undescribed}"
    assert not unitless, f"numeric measures without a unit (Field(json_schema_extra=unit(...))): {unitless}"


def test_a_window_from_before_pooled_root_ttr_still_decodes() -> None:
    # pooled_root_ttr joined WindowedMetrics within version 1: events written before it must still be read.
    window = next(e for e in samples() if isinstance(e, WindowedMetrics))
    body = json.loads(encode(window))
    del body["pooled_root_ttr"]
    decoded = decode(Topic.WINDOWED_METRICS, json.dumps(body))
    assert decoded.pooled_root_ttr is None and decoded.pooled_mtld == window.pooled_mtld


def test_every_topic_has_a_deliberate_retention() -> None:
    from speech_coach.contracts.topics import RETENTION_DAYS, topic_config

    assert set(RETENTION_DAYS) == set(Topic)
    assert topic_config(Topic.DELETION_REQUESTS) == {"cleanup.policy": "compact", "retention.ms": "-1"}
    assert topic_config(Topic.RAW_ANSWERS) == {"cleanup.policy": "delete", "retention.ms": str(7 * 86_400_000)}
    doc = (ROOT / "docs" / "events.md").read_text()
    for topic, days in RETENTION_DAYS.items():
        shown = "kept for ever (compacted)" if days is None else f"{days} days"
        assert f"| `{topic.value}` | {shown} |" in doc, f"docs/events.md does not give {topic.value}'s retention"
