"""Fluency measured on the audio with Silero VAD (bundled in faster-whisper), not from Whisper's word gaps.

Whisper's word timestamps smear across pauses, so pauses and speech time come from a voice-activity detector.
Definitions (docs/answer-pipeline.md, "Fluency"):

- speech segments: Silero VAD, no padding; silences shorter than `min_silence_ms` do not split a segment;
- speech duration: the sum of the segments;
- silent pauses: gaps of at least 250 ms between segments (leading and trailing silence are not pauses);
- speaking rate: words per minute over the answer's span, first speech onset to last speech offset;
- articulation rate: words per minute of speech (pauses excluded);
- mean length of run: words per stretch of speech between silent pauses (= words / (pauses + 1));
- time to answer: question sent -> start of speech (recording start = received - duration, plus the onset).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise

import numpy as np
import numpy.typing as npt

from speech_coach.audio.decode import SAMPLE_RATE

PAUSE_MIN_S = 0.25


@dataclass(frozen=True)
class Segment:
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Fluency:
    total_duration_s: float
    speech_duration_s: float
    speech_onset_s: float  # first speech in the recording
    span_s: float  # first speech onset to last speech offset
    speaking_rate_wpm: float
    articulation_rate_wpm: float
    silent_pause_count: int
    mean_silent_pause_s: float
    mean_length_of_run_words: float
    filled_pause_count: int
    time_to_answer_s: float | None
    pauses: tuple[float, ...]  # each silent pause's length, in order

    def contract_fields(self) -> dict[str, float | int | None]:
        """The `AnswerMetrics` fluency fields."""
        return {
            "total_duration_s": round(self.total_duration_s, 3),
            "speech_duration_s": round(self.speech_duration_s, 3),
            "speaking_rate_wpm": round(self.speaking_rate_wpm, 2),
            "articulation_rate_wpm": round(self.articulation_rate_wpm, 2),
            "silent_pause_count": self.silent_pause_count,
            "mean_silent_pause_s": round(self.mean_silent_pause_s, 3),
            "mean_length_of_run_words": round(self.mean_length_of_run_words, 2),
            "filled_pause_count": self.filled_pause_count,
            "time_to_answer_s": None if self.time_to_answer_s is None else round(self.time_to_answer_s, 3),
        }


def speech_segments(
    samples: npt.NDArray[np.float32], *, threshold: float = 0.5, min_silence_ms: int = 200
) -> list[Segment]:
    """Stretches of speech found by Silero VAD, in seconds."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    options = VadOptions(
        threshold=threshold, min_silence_duration_ms=min_silence_ms, speech_pad_ms=0, min_speech_duration_ms=100
    )
    stamps = get_speech_timestamps(samples, options, sampling_rate=SAMPLE_RATE)
    return [Segment(s["start"] / SAMPLE_RATE, s["end"] / SAMPLE_RATE) for s in stamps]


def measure(
    segments: list[Segment],
    *,
    total_duration_s: float,
    words: int,
    filled_pauses: int,
    question_sent_at: datetime | None = None,
    received_at: datetime | None = None,
) -> Fluency:
    """Fluency of one answer from its speech segments and its word count."""
    speech = sum(s.end_s - s.start_s for s in segments)
    gaps = [b.start_s - a.end_s for a, b in pairwise(segments)]
    pauses = tuple(g for g in gaps if g >= PAUSE_MIN_S)
    onset = segments[0].start_s if segments else 0.0
    span = segments[-1].end_s - onset if segments else 0.0
    time_to_answer = None
    if question_sent_at is not None and received_at is not None and received_at >= question_sent_at:
        # The voice message arrives when recording stops; it started `total_duration_s` earlier.
        waited = (received_at - question_sent_at).total_seconds() - total_duration_s + onset
        time_to_answer = max(0.0, waited)
    return Fluency(
        total_duration_s=total_duration_s,
        speech_duration_s=speech,
        speech_onset_s=onset,
        span_s=span,
        speaking_rate_wpm=words / span * 60 if span > 0 else 0.0,
        articulation_rate_wpm=words / speech * 60 if speech > 0 else 0.0,
        silent_pause_count=len(pauses),
        mean_silent_pause_s=sum(pauses) / len(pauses) if pauses else 0.0,
        mean_length_of_run_words=words / (len(pauses) + 1) if segments else 0.0,
        filled_pause_count=filled_pauses,
        time_to_answer_s=time_to_answer,
        pauses=pauses,
    )
