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

from speech_coach import i18n
from speech_coach.contracts.events import RubricScore
from speech_coach.feedback.base import Feedback, FeedbackInput
from speech_coach.feedback.rubric import OFFLINE_RUBRIC_VERSION, scale_for
from speech_coach.i18n import N_
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
        lang = i18n.language(answer.interface_language)
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
        texts = Texts(lang, values, relevance_known=rel is not None)

        rubric = [
            RubricScore(
                criterion=c.name,
                score=scale.from_quality(quality[c.key]),
                max_score=scale.high,
                comment=texts.comment(c.key),
            )
            for c in scale.criteria
        ]
        overall = round(sum(r.score for r in rubric) / len(rubric), 1)
        ranked = sorted(scale.criteria, key=lambda c: quality[c.key])
        weakest, best = ranked[0], ranked[-1]

        strengths = [texts.strength(c.key) for c in reversed(ranked) if quality[c.key] >= 0.7][:3]
        if not strengths:
            strengths = [texts.strength(best.key if quality[best.key] >= 0.5 else "fallback")]
        suggestions = [
            texts.suggestion(key)
            for key in self._suggestions(
                fl.articulation_rate_wpm,
                pauses_per_min,
                filled_per_min,
                lx.mattr,
                length_q,
                relevance_q,
                structure_q,
                answer.track.value,
            )
        ]

        sentences = [texts.summary(overall, scale.low, scale.high)]
        if quality[best.key] - quality[weakest.key] >= 0.1:
            sentences.append(texts.areas(best.name, weakest.name))
        sentences.append(texts.measured())
        if rel is not None:
            sentences.append(texts.summary_relevance())
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
        wpm: float,
        pauses_per_min: float,
        filled_per_min: float,
        mattr: float,
        length_q: float,
        relevance_q: float | None,
        structure_q: float,
        track: str,
    ) -> list[str]:
        """The suggestions to give, as `Texts.suggestion` keys."""
        # (how far below the target, key): the biggest gaps first, at most three, at least one.
        gaps = [
            (ramp(wpm, 140, 70), "slow"),
            (ramp(pauses_per_min, 10, 30), "pauses"),
            (ramp(filled_per_min, 1, 8), "filled"),
            (ramp(mattr, 0.8, 0.55), "vocabulary"),
            (1 - length_q, "length"),
        ]
        if relevance_q is not None:
            gaps.append((1 - relevance_q, "relevance"))
        if track == "job_interview":
            gaps.append((1 - structure_q, "structure"))
        chosen = [key for gap, key in sorted(gaps, reverse=True) if gap > 0.3][:3]
        if not chosen:
            chosen = [max(gaps)[1]]
        return chosen


STRENGTHS = {
    "delivery": N_("You spoke smoothly, with few long pauses."),
    "language_use": N_("You used a varied vocabulary, including less common words."),
    "topic_development": N_("You used the time well and stayed on the topic."),
    "relevance": N_("You answered the question that was asked."),
    "structure": N_("Your answer had a clear structure with signposting."),
    "task_fulfilment": N_("You addressed the situation fully."),
    "fallback": N_("You completed a full answer — keep practising regularly."),
}


class Texts:
    """The offline engine's texts in one language, with the measured values filled in (speech_coach/locales).

    Where a count is shown, the text takes the plural form the count needs (ngettext); a sentence with two counts
    is built from pluralized pieces. Rates are shown rounded and take the plural of the number shown.
    """

    def __init__(self, lang: str, values: dict[str, Any], *, relevance_known: bool) -> None:
        self.lang, self.v = lang, values | {"wpm": round(values["wpm"])}
        self.v["relevance_text"] = self.relevance(known=relevance_known)

    def fill(self, text: str, **extra: Any) -> str:
        return text.format(**(self.v | extra))

    def relevance(self, *, known: bool) -> str:
        if known:
            return self.fill(i18n.gettext(self.lang, "{relevance:.0%} of the question's key words used."))
        return i18n.gettext(self.lang, "relevance to the question was not estimated.")

    def comment(self, key: str) -> str:
        lang, v = self.lang, self.v
        if key == "delivery":
            rate = i18n.ngettext(
                lang, "{wpm} word per minute while speaking", "{wpm} words per minute while speaking", v["wpm"]
            )
            filled = i18n.ngettext(lang, "{filled} filled pause", "{filled} filled pauses", v["filled"])
            text = i18n.gettext(
                lang, "{rate}; {pauses_per_min:.1f} pauses per minute, {mean_pause:.1f} s on average; {filled}."
            )
            return self.fill(text, rate=self.fill(rate), filled=self.fill(filled))
        if key == "language_use":
            return self.fill(
                i18n.gettext(
                    lang,
                    "Vocabulary variety (MATTR) {mattr:.2f}; {rare:.0%} of your words are beyond the 2,000 most "
                    "common.",
                )
            )
        if key in ("topic_development", "task_fulfilment"):
            text = i18n.ngettext(
                lang, "{words} word in {time} s; {relevance_text}", "{words} words in {time} s; {relevance_text}",
                v["words"],
            )  # fmt: skip
            return self.fill(text)
        if key == "relevance":
            return str(v["relevance_text"])
        if key == "structure":
            phrases = i18n.ngettext(
                lang, "{markers} linking or signposting phrase", "{markers} linking and signposting phrases",
                v["markers"],
            )  # fmt: skip
            words = i18n.ngettext(lang, "{words} word", "{words} words", v["words"])
            return i18n.gettext(lang, "{phrases}; {words}.").format(phrases=self.fill(phrases), words=self.fill(words))
        raise KeyError(key)

    def strength(self, key: str) -> str:
        return i18n.gettext(self.lang, STRENGTHS[key])

    def summary(self, overall: float, low: float, high: float) -> str:
        text = i18n.gettext(self.lang, "Your estimated score is {overall} on a {low:g}\u2013{high:g} scale.")
        return text.format(overall=f"{overall:g}", low=low, high=high)

    def areas(self, best: str, weakest: str) -> str:
        """`best` and `weakest` are rubric criterion names (English, marked in rubric.py), translated here."""
        text = i18n.gettext(self.lang, "Your strongest area is {best}; focus next on {weakest}.")
        return text.format(best=i18n.gettext(self.lang, best), weakest=i18n.gettext(self.lang, weakest))

    def measured(self) -> str:
        lang, v = self.lang, self.v
        rate = i18n.ngettext(lang, "{wpm} word per minute", "{wpm} words per minute", v["wpm"])
        pauses = i18n.ngettext(
            lang, "{pauses} pause of a quarter second or longer", "{pauses} pauses of a quarter second or longer",
            v["pauses"],
        )  # fmt: skip
        text = i18n.gettext(lang, "You spoke for {speech:.0f} s of the {time} s allowed, at {rate}, with {pauses}.")
        return self.fill(text, rate=self.fill(rate), pauses=self.fill(pauses))

    def summary_relevance(self) -> str:
        return self.fill(
            i18n.gettext(self.lang, "About {relevance:.0%} of the question's key words appear in your answer.")
        )

    def suggestion(self, key: str) -> str:
        lang, v = self.lang, self.v
        if key == "slow":
            text = i18n.ngettext(
                lang,
                "Your speaking rate was {wpm} word per minute; aim for 120\u2013150. Practise the answer aloud twice, "
                "then once more without notes.",
                "Your speaking rate was {wpm} words per minute; aim for 120\u2013150. Practise the answer aloud twice, "
                "then once more without notes.",
                v["wpm"],
            )
        elif key == "pauses":
            text = i18n.ngettext(
                lang,
                "You made {pauses} pause ({pauses_per_min:.1f} per minute). Plan your first two sentences before you "
                "start, and pause at sentence ends rather than mid-phrase.",
                "You made {pauses} pauses ({pauses_per_min:.1f} per minute). Plan your first two sentences before you "
                "start, and pause at sentence ends rather than mid-phrase.",
                v["pauses"],
            )
        elif key == "filled":
            text = i18n.ngettext(
                lang,
                "You said \u201cum\u201d or \u201cuh\u201d {filled} time. Replace them with a short silent pause or a "
                "phrase such as \u201cLet me think\u201d.",
                "You said \u201cum\u201d or \u201cuh\u201d {filled} times. Replace them with a short silent pause or a "
                "phrase such as \u201cLet me think\u201d.",
                v["filled"],
            )
        elif key == "vocabulary":
            text = i18n.gettext(
                lang,
                "Your vocabulary variety (MATTR {mattr:.2f}) is low: avoid repeating the same words and prepare two or "
                "three precise words for the topic (for example, instead of \u201cgood\u201d: \u201cvaluable\u201d, "
                "\u201cefficient\u201d).",
            )
        elif key == "length":
            text = i18n.ngettext(
                lang,
                "You used {used:.0%} of the speaking time ({words} word). Add a specific example or a reason to fill "
                "the {time} s.",
                "You used {used:.0%} of the speaking time ({words} words). Add a specific example or a reason to fill "
                "the {time} s.",
                v["words"],
            )
        elif key == "relevance":
            text = i18n.gettext(
                lang,
                "Only {relevance:.0%} of the question's key words appear in your answer. Restate the question in your "
                "first sentence and answer it directly.",
            )
        elif key == "structure":
            text = i18n.gettext(
                lang,
                "Use a clear structure: situation, task, action, result \u2014 and signpost it (\u201cFirst\u201d, "
                "\u201cAs a result\u201d).",
            )
        else:
            raise KeyError(key)
        return self.fill(text)
