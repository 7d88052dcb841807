"""OpenAI feedback: a chat model scores the answer on the track's rubric with structured output (a JSON schema).

The request carries the question, the task's time, the transcript and the measured fluency figures; the response
must validate against the schema sent (strict mode), scores within the scale. Transport failures (429, 5xx,
timeouts) are retried by the SDK with exponential backoff honouring Retry-After; output that is not valid JSON
for the schema is asked for again `invalid_output_retries` times. Then `EngineUnavailable` is raised and the
pipeline falls back to the offline engine.
"""

from __future__ import annotations

import json
from typing import Any

from babel import Locale
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError as SchemaError

from speech_coach import i18n
from speech_coach.contracts.events import RubricScore
from speech_coach.feedback.base import Feedback, FeedbackInput
from speech_coach.feedback.rubric import Scale, scale_for
from speech_coach.settings import Settings
from speech_coach.speech.transcribe import EngineUnavailable, openai_client

PROMPT_VERSION = "feedback-prompt-1"

SYSTEM = """You are an experienced speaking examiner and coach for learners of English.
Score the learner's spoken answer on the given rubric, strictly and consistently, from the transcript and the
measured delivery figures (the transcript comes from speech recognition: ignore its punctuation and casing).
Then coach: write 2 to 4 sentences of overall feedback, 1 to 4 specific strengths, 1 to 4 specific, actionable
suggestions, and an improved example answer that keeps the learner's ideas, fixes the language, and can be spoken
in the task's time. Write feedback, strengths, suggestions and comments in {language}; the improved answer in
English."""


def response_schema(scale: Scale, speaking_time_s: int) -> dict[str, Any]:
    score = {"type": "number", "minimum": scale.low, "maximum": scale.high}
    criterion = {
        "type": "object",
        "additionalProperties": False,
        "required": ["score", "comment"],
        "properties": {"score": score, "comment": {"type": "string"}},
    }
    texts = {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 4}
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["scores", "feedback", "strengths", "suggestions", "improved_answer"],
        "properties": {
            "scores": {
                "type": "object",
                "additionalProperties": False,
                "required": [c.key for c in scale.criteria],
                "properties": {c.key: criterion for c in scale.criteria},
            },
            "feedback": {"type": "string", "description": "2 to 4 sentences."},
            "strengths": texts,
            "suggestions": texts,
            "improved_answer": {
                "type": "string",
                "description": f"An improved answer a learner can speak in {speaking_time_s} seconds.",
            },
        },
    }


def user_message(item: FeedbackInput, scale: Scale) -> str:
    a, fl, lx = item.answer, item.fluency, item.lexical
    rubric = "\n".join(f"- {c.key} ({c.name}): {c.description}" for c in scale.criteria)
    return f"""Task type: {a.task_type.value} ({a.track.value} track). Speaking time: {a.speaking_time_s} s.
Question:
{item.question_text or "(question text unavailable)"}

Rubric, each criterion scored from {scale.low:g} to {scale.high:g} (scale {scale.name}):
{rubric}

Measured delivery: {fl.total_duration_s:.1f} s recorded, {fl.speech_duration_s:.1f} s of speech, speaking rate \
{fl.speaking_rate_wpm:.0f} wpm, articulation rate {fl.articulation_rate_wpm:.0f} wpm, {fl.silent_pause_count} silent \
pauses (mean {fl.mean_silent_pause_s:.2f} s), {fl.filled_pause_count} filled pauses, vocabulary MATTR {lx.mattr:.2f}.
The improved answer should be about {round(a.speaking_time_s * 130 / 60)} words.

Transcript:
{item.transcript}"""


class OpenAIFeedback:
    engine = "openai"

    def __init__(self, settings: Settings, client: Any = None) -> None:
        self.settings = settings
        self.client = client or openai_client(settings)
        self.model = settings.feedback.openai_model

    def _ask(self, item: FeedbackInput, scale: Scale, schema: dict[str, Any]) -> dict[str, Any]:
        import openai

        # The language the learner reads, named in English for the model (CLDR, so every catalog's language has one).
        language_name = Locale.parse(i18n.language(item.answer.interface_language)).english_name
        try:
            completion = self.client.chat.completions.create(
                model=self.model,
                temperature=self.settings.feedback.temperature,
                messages=[
                    {"role": "system", "content": SYSTEM.format(language=language_name)},
                    {"role": "user", "content": user_message(item, scale)},
                ],
                response_format={
                    "type": "json_schema",
                    "json_schema": {"name": f"speaking_feedback_{scale.name}", "strict": True, "schema": schema},
                },
            )
        except (openai.APIError, openai.APIConnectionError, openai.APITimeoutError) as exc:
            raise EngineUnavailable(f"feedback API failed: {type(exc).__name__}: {exc}"[:500]) from exc
        try:
            content = completion.choices[0].message.content or ""
            data: Any = json.loads(content)
            Draft202012Validator(schema).validate(data)
        except (IndexError, AttributeError, json.JSONDecodeError, SchemaError) as exc:
            raise ValueError(f"invalid feedback output: {str(exc)[:300]}") from exc
        if not isinstance(data, dict):
            raise ValueError("invalid feedback output: not an object")
        return data

    def feedback(self, item: FeedbackInput) -> Feedback:
        scale = scale_for(item.answer.track)
        schema = response_schema(scale, item.answer.speaking_time_s)
        error: Exception | None = None
        for _ in range(self.settings.feedback.invalid_output_retries + 1):
            try:
                data = self._ask(item, scale, schema)
                break
            except ValueError as exc:  # malformed output: ask again
                error = exc
        else:
            raise EngineUnavailable(str(error))
        rubric = [
            RubricScore(
                criterion=c.name,
                score=scale.clamp(round(float(data["scores"][c.key]["score"]) * 2) / 2),
                max_score=scale.high,
                comment=str(data["scores"][c.key]["comment"])[:2000],
            )
            for c in scale.criteria
        ]
        return Feedback(
            rubric=rubric,
            overall_score=round(sum(r.score for r in rubric) / len(rubric), 1),
            feedback=str(data["feedback"])[:4000],
            strengths=[str(s) for s in data["strengths"]][:4],
            suggestions=[str(s) for s in data["suggestions"]][:4],
            improved_answer=str(data["improved_answer"])[:8000],
            engine=self.engine,
            model=self.model,
            prompt_version=PROMPT_VERSION,
            scale=scale.name,
        )
