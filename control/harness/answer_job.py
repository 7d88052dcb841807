# ruff: noqa: RUF001 - Russian test speech on purpose
"""Helpers for the answer-job tests and benchmark: generated speech, S3 upload, the job as a child process,
and a collector of its output events."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

from control.stack.isolated import free_port_block, settings_env
from speech_coach.audio.tts import Speech, synthesize, to_ogg_opus
from speech_coach.contracts import DeadLetter, Event, FeedbackResult, RawVoiceAnswer, Topic, decode, encode
from speech_coach.kafka import consumer_config, ensure_topics, producer_config, topic_name
from speech_coach.s3 import ensure_bucket, s3_client
from speech_coach.settings import Settings
from speech_coach.tools import find_ffmpeg

ROOT = Path(__file__).resolve().parents[2]

# A TOEFL Task 1 answer of about 45 s at espeak's 150 wpm, with pauses of known length (SSML breaks).
ANSWER_45S = (
    "I prefer studying alone for several reasons. <break time='700ms'/> First, when I study by myself, I can focus "
    "on the topics that are difficult for me. For example, last semester I had trouble with organic chemistry, "
    "<break time='500ms'/> so I spent extra time on it every evening. Second, studying alone lets me choose my own "
    "schedule. <break time='900ms'/> I usually work best early in the morning, but my classmates prefer to meet at "
    "night. Finally, groups often get distracted and start talking about other things, like sports or movies. "
    "<break time='600ms'/> Of course, group study can be useful before a big exam, but in general I learn more "
    "when I study on my own. That is why I think studying alone is the better choice for me."
)
ANSWERS_45S = [
    ANSWER_45S,
    "I would like to visit Japan, especially the city of Kyoto. <break time='800ms'/> I have read a lot about its "
    "old temples and beautiful gardens, and I want to see them with my own eyes. Another reason is the food. "
    "<break time='600ms'/> I love Japanese cooking, and I think it would be wonderful to try fresh dishes in small "
    "local restaurants. I am also interested in the way people live there, because the culture seems very "
    "different from mine. <break time='700ms'/> For example, I would like to stay in a traditional house and learn "
    "how to make tea. Finally, I would travel by train, because the trains in Japan are famous for being fast and "
    "always on time. For all these reasons, Japan is the place I most want to visit.",
    "I agree that online classes can be as effective as classes in a classroom, but only for some students. "
    "<break time='700ms'/> First, online classes are flexible. Students who work or live far from the university "
    "can watch lectures whenever they have time. <break time='900ms'/> Second, many online courses include short "
    "quizzes and videos that you can repeat, which helps with difficult material. However, online learning needs a "
    "lot of discipline. <break time='600ms'/> When I took an online course last year, I often waited until the last "
    "day to finish my work. In a classroom, the teacher and the other students keep you motivated. So I think "
    "online classes work well for organised students, while others learn better in person.",
]
RUSSIAN_ANSWER = (
    "Я предпочитаю учиться один по нескольким причинам. Во-первых, когда я занимаюсь сам, я могу сосредоточиться "
    "на трудных темах. Во-вторых, я сам выбираю своё расписание и не трачу время на разговоры."
)


def plain_text(ssml: str) -> str:
    """The words of an SSML answer, for WER."""
    import re

    return re.sub(r"<[^>]+>", " ", ssml)


def speech_ogg(text: str, ffmpeg: Path, *, voice: str = "en-us") -> tuple[bytes, Speech]:
    speech = synthesize(text, voice=voice)
    return to_ogg_opus(speech, ffmpeg), speech


def upload(settings: Settings, bucket: str, data: bytes, ext: str = "ogg") -> dict[str, Any]:
    """Content-addressed upload, as the bot does; returns the AudioObject fields."""
    sha = hashlib.sha256(data).hexdigest()
    key = f"audio/{sha[:2]}/{sha}.{ext}"
    client = s3_client(settings)
    client.put_object(Bucket=bucket, Key=key, Body=data)
    return {
        "bucket": bucket,
        "key": key,
        "sha256": sha,
        "mime_type": "audio/ogg",
        "size_bytes": max(1, len(data)),
        "duration_s": 45.0,
    }


def raw_answer(audio: dict[str, Any], **overrides: Any) -> RawVoiceAnswer:
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "answer_id": uuid.uuid4().hex,
        "learner_id": f"learner-{uuid.uuid4().hex[:8]}",
        "question_id": "toefl-ind-001",
        "track": "toefl",
        "task_type": "toefl_independent",
        "interface_language": "en",
        "speaking_time_s": 45,
        "question_sent_at": now - timedelta(seconds=75),
        "received_at": now,
        "audio": audio,
        "telegram": {"update_id": 1, "chat_id": 2, "message_id": 3, "file_unique_id": uuid.uuid4().hex},
    }
    values.update(overrides)
    return RawVoiceAnswer.model_validate(values)


class Producer:
    def __init__(self, settings: Settings) -> None:
        from confluent_kafka import Producer as KafkaProducer

        self.settings = settings
        self.producer = KafkaProducer(producer_config(settings, log_level=0))
        self.topic = topic_name(settings, Topic.RAW_ANSWERS)

    def send(self, answer: RawVoiceAnswer) -> float:
        self.producer.produce(self.topic, key=answer.key(), value=encode(answer))
        self.producer.flush(15)
        return time.monotonic()

    def send_raw(self, value: bytes, key: bytes = b"junk") -> None:
        self.producer.produce(self.topic, key=key, value=value)
        self.producer.flush(15)


@dataclass
class Collected:
    feedback: dict[str, list[FeedbackResult]] = field(default_factory=lambda: defaultdict(list))
    metrics: dict[str, list[Event]] = field(default_factory=lambda: defaultdict(list))
    dead: list[DeadLetter] = field(default_factory=list)
    keys: dict[str, bytes] = field(default_factory=dict)
    arrived: dict[str, float] = field(default_factory=dict)  # answer id -> monotonic time its feedback arrived


class Collector:
    """Reads the job's output topics on a background thread, from the beginning."""

    def __init__(self, settings: Settings) -> None:
        from confluent_kafka import Consumer

        self.settings = settings
        self.consumer = Consumer(consumer_config(settings, f"test-collector-{uuid.uuid4().hex[:8]}", log_level=0))
        self.names = {topic_name(settings, t): t for t in (Topic.FEEDBACK, Topic.ANSWER_METRICS, Topic.DEAD_LETTERS)}
        self.consumer.subscribe(list(self.names))
        self.data = Collected()
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            msg = self.consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            now = time.monotonic()
            event = decode(self.names[msg.topic()], msg.value())
            with self.lock:
                if isinstance(event, FeedbackResult):
                    self.data.feedback[event.answer_id].append(event)
                    self.data.keys[event.answer_id] = msg.key()
                    self.data.arrived.setdefault(event.answer_id, now)
                elif isinstance(event, DeadLetter):
                    self.data.dead.append(event)
                else:
                    self.data.metrics[event.answer_id].append(event)  # type: ignore[attr-defined]

    def wait_feedback(self, answer_ids: Iterable[str], timeout: float = 120) -> dict[str, FeedbackResult]:
        ids = list(answer_ids)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if all(self.data.feedback.get(i) for i in ids):
                    return {i: self.data.feedback[i][0] for i in ids}
            time.sleep(0.1)
        with self.lock:
            missing = [i for i in ids if not self.data.feedback.get(i)]
        raise AssertionError(f"no feedback within {timeout} s for {missing}")

    def wait_metrics(self, answer_id: str, timeout: float = 30) -> list[Event]:
        """The answer's metrics events: published beside its feedback, so they may arrive a moment later."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if found := list(self.data.metrics.get(answer_id, [])):
                    return found
            time.sleep(0.1)
        raise AssertionError(f"no answer_metrics within {timeout} s for {answer_id}")

    def dead_letters(self, predicate: Any, timeout: float = 30) -> list[DeadLetter]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                found = [d for d in self.data.dead if predicate(d)]
            if found:
                return found
            time.sleep(0.1)
        return []

    def close(self) -> None:
        self._stop.set()
        self.thread.join(5)
        self.consumer.close()


@dataclass
class JobProcess:
    settings: Settings
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)

    def tail(self, n: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:]) if self.log.exists() else ""


def job_settings(stack_settings: Settings, workdir: Path, **env: str) -> tuple[Settings, dict[str, str]]:
    """Settings and SC_* variables for a job of its own: its own topics, group and checkpoints."""
    tag = uuid.uuid4().hex[:8]
    variables = settings_env(stack_settings) | {
        "SC_KAFKA__TOPIC_PREFIX": f"t{tag}.",
        "SC_ANSWERS__GROUP_ID": f"answers-{tag}",
        "SC_FLINK__CHECKPOINT_DIR": (workdir / "checkpoints").as_uri(),
        "SC_FLINK__CHECKPOINT_INTERVAL_S": "2",
        "SC_LOG__JSON_OUTPUT": "false",
    }
    variables |= env
    # Resolved exactly as the job process resolves them: from the environment.
    with mock.patch.dict(os.environ, variables, clear=True):
        settings = Settings(_env_file=None)  # type: ignore[call-arg]
    return settings, variables


def start_job(settings: Settings, variables: dict[str, str], log: Path) -> JobProcess:
    """The job as a child process; `JobProcess.settings` names the health port it serves on."""
    ensure_topics(settings)
    # /healthz, /readyz, /metrics: a port picked at each start, never one another process took meanwhile.
    port = free_port_block(1)
    variables["SC_ANSWERS__HEALTH_PORT"] = str(port)
    settings = settings.model_copy(update={"answers": settings.answers.model_copy(update={"health_port": port})})
    env = {k: v for k, v in os.environ.items() if not k.startswith("SC_")} | variables
    handle = log.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "flink_jobs.answers"],
        cwd=ROOT,
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return JobProcess(settings, proc, log)


def audio_bucket(settings: Settings) -> str:
    name = f"answers-{uuid.uuid4().hex[:10]}"
    ensure_bucket(s3_client(settings), name)
    return name


def ffmpeg_of(settings: Settings) -> Path:
    return find_ffmpeg(settings).executable


class Harness:
    def __init__(self, settings: Settings, job: JobProcess, bucket: str, variables: dict[str, str]) -> None:
        self.settings, self.job, self.bucket, self.variables = settings, job, bucket, variables
        self.producer = Producer(settings)
        self.collector = Collector(settings)
        self.ffmpeg = ffmpeg_of(settings)

    def submit(self, data: bytes, **overrides: object) -> str:
        answer = raw_answer(upload(self.settings, self.bucket, data), **overrides)
        self.producer.send(answer)
        return answer.answer_id

    def wait(self, *answer_ids: str, timeout: float = 120):  # type: ignore[no-untyped-def]
        try:
            return self.collector.wait_feedback(answer_ids, timeout)
        except AssertionError:
            raise AssertionError(f"job log tail:\n{self.job.tail()}") from None
