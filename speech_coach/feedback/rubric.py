"""The published rubrics: one score scale per track, with its criteria.

TOEFL answers are scored like the TOEFL Speaking section (Delivery, Language Use, Topic Development, 0-4 each);
job-interview and workplace answers get a 1-5 scale with criteria that fit those tasks. Every result names its
scale (`EngineInfo.scale`) and the rubric or prompt version that produced it.
"""

from __future__ import annotations

from dataclasses import dataclass

from speech_coach.contracts.events import Track
from speech_coach.i18n import N_


@dataclass(frozen=True)
class Criterion:
    key: str  # stable machine name, also the JSON key the LLM fills
    name: str  # as shown in RubricScore.criterion (English); translated where a learner text names it
    description: str  # what a top score means, given to the LLM


@dataclass(frozen=True)
class Scale:
    name: str
    low: float
    high: float
    criteria: tuple[Criterion, ...]

    def clamp(self, score: float) -> float:
        return min(self.high, max(self.low, score))

    def from_quality(self, quality: float) -> float:
        """A quality in [0, 1] on this scale, in half points."""
        raw = self.low + max(0.0, min(1.0, quality)) * (self.high - self.low)
        return self.clamp(round(raw * 2) / 2)


DELIVERY = Criterion(
    "delivery", N_("Delivery"), "Clear, fluid speech at a natural pace, with few long pauses or hesitations."
)
LANGUAGE_USE = Criterion(
    "language_use", N_("Language Use"), "Accurate grammar and a varied, precise vocabulary, used effectively."
)
TOPIC_DEVELOPMENT = Criterion(
    "topic_development",
    N_("Topic Development"),
    "Answers the question fully, with relevant, well-connected ideas and specific support in the time given.",
)
RELEVANCE = Criterion("relevance", N_("Relevance"), "Answers the question asked, with details the interviewer wants.")
STRUCTURE = Criterion(
    "structure", N_("Structure"), "A clear shape (e.g. situation, task, action, result) with signposting and a close."
)
TASK_FULFILMENT = Criterion(
    "task_fulfilment",
    N_("Task Fulfilment"),
    "Does what the workplace situation needs (informs, asks, proposes, responds) completely and politely.",
)

SCALES: dict[Track, Scale] = {
    Track.TOEFL: Scale("toefl_0_4", 0, 4, (DELIVERY, LANGUAGE_USE, TOPIC_DEVELOPMENT)),
    Track.JOB_INTERVIEW: Scale("interview_1_5", 1, 5, (DELIVERY, LANGUAGE_USE, RELEVANCE, STRUCTURE)),
    Track.WORKPLACE: Scale("workplace_1_5", 1, 5, (DELIVERY, LANGUAGE_USE, TASK_FULFILMENT)),
}

# Version of the offline estimator below; bump whenever a threshold or weight changes.
OFFLINE_RUBRIC_VERSION = "offline-rubric-1"


def scale_for(track: Track) -> Scale:
    return SCALES[track]
