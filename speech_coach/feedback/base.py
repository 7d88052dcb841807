"""What every feedback engine receives and returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from speech_coach.contracts.events import RawVoiceAnswer, RubricScore
from speech_coach.speech.fluency import Fluency
from speech_coach.text.lexical import LexicalMetrics


@dataclass(frozen=True)
class FeedbackInput:
    answer: RawVoiceAnswer
    question_text: str | None  # the prompt with its material; None when the question is not in the bank
    transcript: str
    fluency: Fluency
    lexical: LexicalMetrics


@dataclass(frozen=True)
class Feedback:
    rubric: list[RubricScore]
    overall_score: float
    feedback: str
    strengths: list[str]
    suggestions: list[str]
    improved_answer: str
    engine: str
    model: str
    prompt_version: str
    scale: str
    features: dict[str, float] = field(default_factory=dict)


class FeedbackEngine(Protocol):
    engine: str

    def feedback(self, item: FeedbackInput) -> Feedback: ...
