"""Translation catalogs and feedback formatting: no servers needed."""

from __future__ import annotations

import re
import string
from datetime import UTC, datetime
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from bot.formatting import LIMIT, feedback_messages
from bot.i18n import LOCALES, make_i18n
from speech_coach.contracts.events import FeedbackResult, KeyMetrics, ResultStatus, TaskType, Track
from tests.telegram_stand_in import check_html

ROOT = Path(__file__).resolve().parents[1]


def source_messages() -> set[str]:
    return {str(msg) for _file, _line, msg, _comments, _ctx in extract_from_dir(ROOT / "bot", keywords={"_": None})}


def fields(text: str) -> set[str]:
    return {name for _lit, name, _spec, _conv in string.Formatter().parse(text) if name is not None}


def test_every_string_is_in_both_catalogs_and_translated() -> None:
    wanted = source_messages()
    assert len(wanted) > 80
    for locale in ("en", "ru"):
        with (LOCALES / locale / "LC_MESSAGES" / "messages.po").open("rb") as handle:
            catalog = read_po(handle)
        ids = {str(m.id) for m in catalog if m.id}
        assert wanted - ids == set(), f"{locale}: strings missing from the catalog (see docs/learner-guide.md)"
        assert ids - wanted == set(), f"{locale}: obsolete strings in the catalog"
        if locale == "ru":
            for m in catalog:
                if m.id:
                    assert m.string, f"ru: untranslated {m.id!r}"
                    assert fields(str(m.string)) == fields(str(m.id)), f"ru: placeholders differ in {m.id!r}"
                    assert re.findall(r"</?\w+>", str(m.string)) == re.findall(r"</?\w+>", str(m.id)), m.id


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
