"""The catalogs of learner texts (speech_coach/locales) and feedback formatting: no servers needed."""

from __future__ import annotations

import html
import re
import string
from datetime import UTC, datetime
from pathlib import Path

from babel.messages.extract import extract_from_dir
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bot.formatting import LIMIT, feedback_messages
from bot.i18n import make_i18n
from control.harness.telegram import check_html
from speech_coach.contracts.events import FeedbackResult, KeyMetrics, ResultStatus, RubricScore, TaskType, Track
from speech_coach.i18n import DEFAULT_LANGUAGE, EXTRACT_KEYWORDS, languages, ngettext, read_catalog

ROOT = Path(__file__).resolve().parents[1]
# Every package that produces a text a learner reads: the core (feedback engines, rejections, task labels), the
# bot, and the answer job.
LEARNER_TEXT_PACKAGES = ("speech_coach", "bot", "flink_jobs")


def source_messages() -> set[str | tuple[str, str]]:
    """Every msgid (a (singular, plural) pair for ngettext) the code marks, as Babel extracts it."""
    found: set[str | tuple[str, str]] = set()
    for package in LEARNER_TEXT_PACKAGES:
        for _file, _line, msg, _comments, _ctx in extract_from_dir(ROOT / package, keywords=EXTRACT_KEYWORDS):
            found.add(tuple(msg) if isinstance(msg, tuple | list) else str(msg))  # type: ignore[arg-type]
    return found


def fields(text: str) -> set[str]:
    return {name for _lit, name, _spec, _conv in string.Formatter().parse(text) if name is not None}


def tags(text: str) -> list[str]:
    return re.findall(r"</?\w+>", text)


def test_the_core_catalogs_are_the_only_ones() -> None:
    assert languages() == ("en", "ru")
    assert sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob("*/locales/*/LC_MESSAGES/*.po")) == [
        f"speech_coach/locales/{lang}/LC_MESSAGES/messages.po" for lang in languages()
    ]


def test_every_string_is_in_every_catalog_and_translated() -> None:
    wanted = source_messages()
    assert len(wanted) > 130
    assert any(isinstance(m, tuple) for m in wanted)  # plural texts are extracted too
    for lang in languages():
        catalog = read_catalog(lang)
        ids = {m.id if isinstance(m.id, str) else tuple(m.id) for m in catalog if m.id}
        assert wanted - ids == set(), f"{lang}: strings missing from the catalog (see docs/operator-guide.md)"
        assert ids - wanted == set(), f"{lang}: obsolete strings in the catalog"
        assert not [m.id for m in catalog if m.id and m.fuzzy], f"{lang}: fuzzy entries are not used"
        if lang == DEFAULT_LANGUAGE:
            continue  # the source language: an empty msgstr means the msgid itself
        for m in catalog:
            if not m.id:
                continue
            forms = [m.string] if isinstance(m.string, str) else list(m.string)
            assert len(forms) == (1 if isinstance(m.id, str) else catalog.num_plurals), m.id
            source = m.id if isinstance(m.id, str) else m.id[1]
            for form in forms:
                assert form, f"{lang}: untranslated {m.id!r}"
                assert fields(form) == fields(source), f"{lang}: placeholders differ in {m.id!r}"
                assert tags(form) == tags(source), f"{lang}: HTML tags differ in {m.id!r}"


def test_russian_takes_three_plural_forms() -> None:
    ru = read_catalog("ru")
    assert ru.num_plurals == 3, ru.plural_forms
    forms = ("{words} слово", "{words} слова", "{words} слов")
    expected = {1: 0, 2: 1, 4: 1, 5: 2, 11: 2, 12: 2, 14: 2, 21: 0, 22: 1, 25: 2, 101: 0, 111: 2, 0: 2}
    for n, form in expected.items():
        assert ngettext("ru", "{words} word", "{words} words", n) == forms[form], n
    assert ngettext("en", "{words} word", "{words} words", 1) == "{words} word"
    assert ngettext("de", "{words} word", "{words} words", 2) == "{words} words"  # no catalog: English


def test_long_feedback_is_split_into_valid_messages() -> None:
    result = FeedbackResult(
        answer_id="a", learner_id="l", question_id="q", track=Track.TOEFL, task_type=TaskType.TOEFL_INDEPENDENT,
        status=ResultStatus.OK, transcript=("Tom & Jerry <say> hello. " * 700), improved_answer="Better & more. " * 500,
        strengths=["a < b"], metrics=KeyMetrics(words_per_minute=120, pause_count=3, mean_pause_s=0.5,
                                               lexical_diversity=0.7), answered_at=datetime.now(UTC),
    )  # fmt: skip
    with make_i18n().context() as i18n, i18n.use_locale("ru"):
        messages = feedback_messages(result, "Title <x>")
    assert len(messages) >= 6
    for text in messages:
        visible, error = check_html(text)
        assert not error and len(text) <= LIMIT and visible <= LIMIT
    joined = "".join(messages)
    assert "Расшифровка" in joined and "Title &lt;x&gt;" in joined and joined.count("hello.") == 700  # nothing lost


def _visible(messages: list[str]) -> str:
    """The text a reader sees across the messages, whitespace removed (splits may move or drop it)."""
    return re.sub(r"\s+", "", html.unescape(re.sub(r"<[^>]+>", "", "".join(messages))))


_text = st.text(st.characters(codec="utf-8"), max_size=3000)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    transcript=st.text(st.characters(codec="utf-8"), max_size=20000),
    summary=st.text(st.characters(codec="utf-8"), max_size=4000),
    improved=st.text(st.characters(codec="utf-8"), max_size=8000),
    rubric=st.lists(st.tuples(st.text(st.characters(codec="utf-8"), min_size=1, max_size=512),
                              st.text(st.characters(codec="utf-8"), max_size=2000)), max_size=6),
    strengths=st.lists(_text, max_size=6),
    suggestions=st.lists(_text, max_size=6),
    title=st.text(st.characters(codec="utf-8"), max_size=300),
)  # fmt: skip
@example(  # what random text rarely reaches: three criteria with the longest comments, long advice lists
    transcript="", summary="", improved="", title="Q", rubric=[("Delivery", "Pace & <pauses> " * 125)] * 3,
    strengths=["Clear 👍 thesis " * 200] * 2, suggestions=["Use linking words. " * 150] * 4,
)  # fmt: skip
def test_any_feedback_the_contract_allows_fits_telegram_and_loses_nothing(
    transcript: str, summary: str, improved: str, rubric: list[tuple[str, str]], strengths: list[str],
    suggestions: list[str], title: str,
) -> None:  # fmt: skip
    # Unicode of every kind and the contract's longest fields: each message is valid HTML under Telegram's
    # limit (a message over it is refused, and the learner would get no feedback at all), and no text is lost.
    result = FeedbackResult(
        answer_id="a", learner_id="l", question_id="q", track=Track.TOEFL, task_type=TaskType.TOEFL_INDEPENDENT,
        status=ResultStatus.OK, transcript=transcript, feedback=summary, improved_answer=improved,
        rubric=[RubricScore(criterion=c, score=2, max_score=4, comment=m) for c, m in rubric],
        strengths=strengths, suggestions=suggestions, answered_at=datetime.now(UTC),
    )  # fmt: skip
    with make_i18n().context() as i18n, i18n.use_locale("en"):
        messages = feedback_messages(result, title)
    for text in messages:
        visible, error = check_html(text)
        assert not error and len(text) <= LIMIT and visible <= LIMIT
    seen = _visible(messages)
    for field in [transcript, summary, improved, *strengths, *suggestions, *(part for pair in rubric for part in pair)]:
        assert re.sub(r"\s+", "", field) in seen
