# ruff: noqa: RUF001 - Russian texts and typographic dashes are intended
"""The offline feedback engine's texts in the learner's interface language (English, Russian; else English)."""

from __future__ import annotations

from typing import Any

LANGUAGES = ("en", "ru")

# Offline feedback: criterion comments, strengths, suggestions and the summary, with measured values filled in.
TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "summary": "Your estimated score is {overall} on a {low:g}–{high:g} scale.",
        "summary_areas": "Your strongest area is {best}; focus next on {weakest}.",
        "summary_measured": "You spoke for {speech:.0f} s of the {time} s allowed, at {wpm:.0f} words per minute, "
        "with {pauses} pauses of a quarter second or longer.",
        "summary_relevance": "About {relevance:.0%} of the question's key words appear in your answer.",
        "c.delivery": "{wpm:.0f} words per minute while speaking; {pauses_per_min:.1f} pauses per minute, "
        "{mean_pause:.1f} s on average; {filled} filled pauses.",
        "c.language_use": "Vocabulary variety (MATTR) {mattr:.2f}; {rare:.0%} of your words are beyond the 2,000 "
        "most common.",
        "c.topic_development": "{words} words in {time} s; {relevance_text}",
        "c.relevance": "{relevance_text}",
        "c.structure": "{markers} linking and signposting phrases; {words} words.",
        "c.task_fulfilment": "{words} words in {time} s; {relevance_text}",
        "relevance_known": "{relevance:.0%} of the question's key words used.",
        "relevance_unknown": "relevance to the question was not estimated.",
        "s.delivery": "You spoke smoothly, with few long pauses.",
        "s.language_use": "You used a varied vocabulary, including less common words.",
        "s.topic_development": "You used the time well and stayed on the topic.",
        "s.relevance": "You answered the question that was asked.",
        "s.structure": "Your answer had a clear structure with signposting.",
        "s.task_fulfilment": "You addressed the situation fully.",
        "s.fallback": "You completed a full answer — keep practising regularly.",
        "g.slow": "Your speaking rate was {wpm:.0f} words per minute; aim for 120–150. Practise the answer aloud "
        "twice, then once more without notes.",
        "g.pauses": "You made {pauses} pauses ({pauses_per_min:.1f} per minute). Plan your first two sentences "
        "before you start, and pause at sentence ends rather than mid-phrase.",
        "g.filled": "You said \u201cum\u201d or \u201cuh\u201d {filled} times. Replace them with a short silent "
        "pause or a phrase such as \u201cLet me think\u201d.",
        "g.vocabulary": "Your vocabulary variety (MATTR {mattr:.2f}) is low: avoid repeating the same words and "
        "prepare two or three precise words for the topic (for example, instead of \u201cgood\u201d: "
        "\u201cvaluable\u201d, \u201cefficient\u201d).",
        "g.length": "You used {used:.0%} of the speaking time ({words} words). Add a specific example or a "
        "reason to fill the {time} s.",
        "g.relevance": "Only {relevance:.0%} of the question's key words appear in your answer. Restate the "
        "question in your first sentence and answer it directly.",
        "g.structure": "Use a clear structure: situation, task, action, result — and signpost it (\u201cFirst\u201d, "
        "\u201cAs a result\u201d).",
    },
    "ru": {
        "summary": "Ваша ориентировочная оценка — {overall} по шкале {low:g}–{high:g}.",
        "summary_areas": "Сильнее всего у вас: {best}; дальше поработайте над: {weakest}.",
        "summary_measured": "Вы говорили {speech:.0f} с из {time} с, {wpm:.0f} слов в минуту, сделали {pauses} "
        "пауз длиной от четверти секунды.",
        "summary_relevance": "В ответе есть около {relevance:.0%} ключевых слов вопроса.",
        "c.delivery": "{wpm:.0f} слов в минуту во время речи; {pauses_per_min:.1f} пауз в минуту, в среднем "
        "{mean_pause:.1f} с; слов-паразитов: {filled}.",
        "c.language_use": "Разнообразие лексики (MATTR) {mattr:.2f}; {rare:.0%} слов вне 2000 самых частых.",
        "c.topic_development": "{words} слов за {time} с; {relevance_text}",
        "c.relevance": "{relevance_text}",
        "c.structure": "Связующих фраз: {markers}; слов: {words}.",
        "c.task_fulfilment": "{words} слов за {time} с; {relevance_text}",
        "relevance_known": "использовано {relevance:.0%} ключевых слов вопроса.",
        "relevance_unknown": "соответствие вопросу не оценивалось.",
        "s.delivery": "Вы говорили плавно, без долгих пауз.",
        "s.language_use": "Вы использовали разнообразную лексику, в том числе редкие слова.",
        "s.topic_development": "Вы хорошо использовали время и не отходили от темы.",
        "s.relevance": "Вы ответили именно на заданный вопрос.",
        "s.structure": "У ответа была ясная структура со связующими фразами.",
        "s.task_fulfilment": "Вы полностью справились с рабочей ситуацией.",
        "s.fallback": "Вы дали полный ответ — продолжайте регулярно практиковаться.",
        "g.slow": "Темп речи — {wpm:.0f} слов в минуту; стремитесь к 120–150. Проговорите ответ вслух дважды, "
        "затем ещё раз без заметок.",
        "g.pauses": "Вы сделали {pauses} пауз ({pauses_per_min:.1f} в минуту). Продумайте первые два предложения "
        "до начала ответа и делайте паузы в конце предложений, а не посреди фразы.",
        "g.filled": "Вы {filled} раз сказали \u00abum\u00bb или \u00abuh\u00bb. Заменяйте их короткой паузой "
        "или фразой вроде \u00abLet me think\u00bb.",
        "g.vocabulary": "Разнообразие лексики (MATTR {mattr:.2f}) невысокое: не повторяйте одни и те же слова и "
        "подготовьте два-три точных слова по теме (например, вместо \u00abgood\u00bb — \u00abvaluable\u00bb, "
        "\u00abefficient\u00bb).",
        "g.length": "Вы использовали {used:.0%} времени ({words} слов). Добавьте конкретный пример или довод, "
        "чтобы заполнить {time} с.",
        "g.relevance": "В ответе лишь {relevance:.0%} ключевых слов вопроса. Перефразируйте вопрос в первом "
        "предложении и отвечайте прямо на него.",
        "g.structure": "Стройте ответ по схеме: ситуация, задача, действия, результат — и обозначайте её "
        "(\u00abFirst\u00bb, \u00abAs a result\u00bb).",
    },
}

CRITERION_NAMES: dict[str, dict[str, str]] = {
    "ru": {
        "delivery": "беглость речи",
        "language_use": "языковые средства",
        "topic_development": "раскрытие темы",
        "relevance": "соответствие вопросу",
        "structure": "структура",
        "task_fulfilment": "выполнение задачи",
    }
}


def language(code: str) -> str:
    return code if code in LANGUAGES else "en"


def text(lang: str, key: str, **values: Any) -> str:
    return TEXTS[language(lang)][key].format(**values)


def criterion_name(lang: str, key: str, default: str) -> str:
    return CRITERION_NAMES.get(language(lang), {}).get(key, default)
