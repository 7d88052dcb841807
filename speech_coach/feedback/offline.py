"""Offline feedback (no LLM): rubric estimates from measured features and templated, specific suggestions.

Each criterion is a quality in [0, 1] made of features measured on this answer (docs/answer-pipeline.md):

- fluency: articulation rate, silent pauses per minute, mean pause length, filled pauses per minute;
- lexical: MATTR, share of words beyond the 2,000 most frequent (K1+K2), mean wordfreq Zipf;
- length: words relative to what the task's speaking time holds at a moderate pace;
- relevance: share of the question's content lemmas that the answer uses;
- structure: linking and signposting phrases.

The quality maps linearly onto the track's scale (half points). These are estimates for practice, calibrated on
synthetic answers, not a certified score; the result says so through `EngineInfo` (engine offline, rubric version).
"""

from __future__ import annotations

import re
from typing import Any

from speech_coach.contracts.events import RubricScore
from speech_coach.feedback import messages
from speech_coach.feedback.base import Feedback, FeedbackInput
from speech_coach.feedback.rubric import OFFLINE_RUBRIC_VERSION, scale_for
from speech_coach.text import tokenize
from speech_coach.text.lexical import lemma_of

MODEL = "rubric-estimator"
EXPECTED_WPM = 110  # words per minute a complete answer sustains over the task time (pauses included)

# Function words and the prompts' own instructions: not evidence that an answer is on topic.
STOPWORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "him",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "one",
        "also",
        "well",
        "get",
        "make",
        "thing",
        "think",
        "way",
        "really",
        "much",
        "many",
        "like",
        "use",
        "specific",
        "reason",
        "example",
        "support",
        "answer",
        "explain",
        "describe",
        "give",
        "detail",
        "question",
        "prefer",
        "agree",
        "disagree",
        "view",
        "opinion",
        "others",
        "people",
        "some",
        "person",
        "say",
        "tell",
        "talk",
    ]
)
MARKERS = re.compile(
    r"\b(first(ly)?|second(ly)?|third|finally|in conclusion|to sum up|for example|for instance|because|therefore|"
    r"as a result|however|on the other hand|in addition|moreover|also|so that|the situation|my task|"
    r"i decided|the result|in the end)\b"
)


def ramp(value: float, zero: float, one: float) -> float:
    """0 at `zero`, 1 at `one`, linear between (either direction), clamped."""
    if one == zero:
        return 1.0 if value >= one else 0.0
    return max(0.0, min(1.0, (value - zero) / (one - zero)))


def content_lemmas(text: str) -> set[str]:
    words, _ = tokenize(text)
    return {lemma_of(w) for w in words if len(w) > 2 and w not in STOPWORDS} - STOPWORDS


def relevance(question_text: str | None, answer_lemmas: set[str]) -> float | None:
    """Share of the question's content lemmas the answer uses; None without a question."""
    if not question_text:
        return None
    wanted = content_lemmas(question_text)
    if not wanted:
        return None
    return len(wanted & answer_lemmas) / len(wanted)


class OfflineFeedback:
    engine = "offline"
    model = MODEL

    def feedback(self, item: FeedbackInput) -> Feedback:
        answer, fl, lx = item.answer, item.fluency, item.lexical
        lang = messages.language(answer.interface_language)
        scale = scale_for(answer.track)
        minutes = max(fl.span_s, 1.0) / 60
        pauses_per_min = fl.silent_pause_count / minutes
        filled_per_min = fl.filled_pause_count / minutes
        spoken = lx.tokens + fl.filled_pause_count
        expected_words = EXPECTED_WPM * answer.speaking_time_s / 60
        answer_lemmas = {lemma_of(w) for w in lx.words}
        rel = relevance(item.question_text, answer_lemmas)
        markers = len(MARKERS.findall(item.transcript.lower()))

        fluency_q = (
            0.4 * ramp(fl.articulation_rate_wpm, 70, 140)
            + 0.25 * ramp(pauses_per_min, 30, 10)
            + 0.2 * ramp(fl.mean_silent_pause_s, 1.6, 0.6)
            + 0.15 * ramp(filled_per_min, 10, 2)
        )
        lexical_q = (
            0.5 * ramp(lx.mattr, 0.55, 0.8)
            + 0.3 * ramp(lx.rare_word_share, 0.03, 0.15)
            + 0.2 * ramp(lx.mean_zipf, 6.3, 5.4)
        ) * ramp(lx.tokens, 5, 30)  # a handful of words shows little vocabulary
        length_q = ramp(spoken / expected_words, 0.25, 0.85) if expected_words else 0.0
        relevance_q = rel if rel is None else ramp(rel, 0.05, 0.35)
        topic_q = length_q if relevance_q is None else 0.5 * length_q + 0.5 * relevance_q
        structure_q = 0.6 * ramp(markers, 0, 4) + 0.4 * length_q
        quality = {
            "delivery": fluency_q,
            "language_use": lexical_q,
            "topic_development": topic_q,
            "relevance": relevance_q if relevance_q is not None else length_q,
            "structure": structure_q,
            "task_fulfilment": topic_q,
        }
        values: dict[str, Any] = {
            "wpm": fl.articulation_rate_wpm,
            "pauses": fl.silent_pause_count,
            "pauses_per_min": pauses_per_min,
            "mean_pause": fl.mean_silent_pause_s,
            "filled": fl.filled_pause_count,
            "mattr": lx.mattr,
            "rare": lx.rare_word_share,
            "words": spoken,
            "time": answer.speaking_time_s,
            "markers": markers,
            "relevance": rel or 0.0,
            "used": min(fl.span_s / answer.speaking_time_s, 9.99),
            "speech": fl.speech_duration_s,
        }
        values["relevance_text"] = messages.text(
            lang, "relevance_known" if rel is not None else "relevance_unknown", **values
        )

        rubric = [
            RubricScore(
                criterion=c.name,
                score=scale.from_quality(quality[c.key]),
                max_score=scale.high,
                comment=messages.text(lang, f"c.{c.key}", **values),
            )
            for c in scale.criteria
        ]
        overall = round(sum(r.score for r in rubric) / len(rubric), 1)
        ranked = sorted(scale.criteria, key=lambda c: quality[c.key])
        weakest, best = ranked[0], ranked[-1]

        strengths = [messages.text(lang, f"s.{c.key}") for c in reversed(ranked) if quality[c.key] >= 0.7][:3]
        if not strengths:
            strengths = [
                messages.text(lang, f"s.{best.key}") if quality[best.key] >= 0.5 else messages.text(lang, "s.fallback")
            ]
        suggestions = self._suggestions(
            lang,
            values,
            fl.articulation_rate_wpm,
            pauses_per_min,
            filled_per_min,
            lx.mattr,
            length_q,
            relevance_q,
            structure_q,
            answer.track.value,
        )

        name = {c.key: messages.criterion_name(lang, c.key, c.name) for c in scale.criteria}
        sentences = [messages.text(lang, "summary", overall=f"{overall:g}", low=scale.low, high=scale.high)]
        if quality[best.key] - quality[weakest.key] >= 0.1:
            sentences.append(messages.text(lang, "summary_areas", best=name[best.key], weakest=name[weakest.key]))
        sentences.append(messages.text(lang, "summary_measured", **values))
        if rel is not None:
            sentences.append(messages.text(lang, "summary_relevance", **values))
        return Feedback(
            rubric=rubric,
            overall_score=overall,
            feedback=" ".join(sentences[:4]),
            strengths=strengths,
            suggestions=suggestions,
            improved_answer="",  # writing a model answer needs a language model
            engine=self.engine,
            model=self.model,
            prompt_version=OFFLINE_RUBRIC_VERSION,
            scale=scale.name,
            features={k: round(v, 4) for k, v in quality.items() if v is not None},
        )

    @staticmethod
    def _suggestions(
        lang: str,
        values: dict[str, Any],
        wpm: float,
        pauses_per_min: float,
        filled_per_min: float,
        mattr: float,
        length_q: float,
        relevance_q: float | None,
        structure_q: float,
        track: str,
    ) -> list[str]:
        # (how far below the target, key): the biggest gaps first, at most three, at least one.
        gaps = [
            (ramp(wpm, 140, 70), "g.slow"),
            (ramp(pauses_per_min, 10, 30), "g.pauses"),
            (ramp(filled_per_min, 1, 8), "g.filled"),
            (ramp(mattr, 0.8, 0.55), "g.vocabulary"),
            (1 - length_q, "g.length"),
        ]
        if relevance_q is not None:
            gaps.append((1 - relevance_q, "g.relevance"))
        if track == "job_interview":
            gaps.append((1 - structure_q, "g.structure"))
        chosen = [key for gap, key in sorted(gaps, reverse=True) if gap > 0.3][:3]
        if not chosen:
            chosen = [max(gaps)[1]]
        return [messages.text(lang, key, **values) for key in chosen]
