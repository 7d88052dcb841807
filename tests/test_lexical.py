"""Lexical metrics: hand-worked examples from the published definitions, reference implementations, properties,
and a cross-check against the `lexical-diversity` package (differences documented in docs/metrics.md)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wordfreq import zipf_frequency

from speech_coach.contracts.events import AnswerMetrics, TaskType
from speech_coach.text import (
    MattrPrefix,
    analyze,
    analyze_words,
    hdd,
    mattr,
    mattr_windows_sum,
    mtld,
    mtld_factors,
    pool,
    root_ttr,
    tokenize,
    ttr,
)

# Small alphabets make repeats (and so factors and partial windows) likely.
word_lists = st.lists(st.sampled_from(list("abcdefghij")), max_size=160)
rich_word_lists = st.lists(st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=3), max_size=160)


# --- naive references, written straight from the definitions -------------------------------------------------


def naive_mattr(words: list[str], window: int) -> float:
    if len(words) <= window:
        return len(set(words)) / len(words) if words else 0.0
    ttrs = [len(set(words[i : i + window])) / window for i in range(len(words) - window + 1)]
    return sum(ttrs) / len(ttrs)


def naive_mtld_pass(words: list[str], threshold: float = 0.72) -> float:
    factors, start = 0.0, 0
    for i in range(len(words)):
        segment = words[start : i + 1]
        if len(set(segment)) / len(segment) < threshold:
            factors += 1
            start = i + 1
    rest = words[start:]
    if rest:
        factors += (1 - len(set(rest)) / len(rest)) / (1 - threshold)
    return len(words) / factors if factors else float(len(words))


def exact_hdd(words: list[str], sample: int = 42) -> Fraction:
    n = len(words)
    total = Fraction(0)
    for w in set(words):
        f = words.count(w)
        total += 1 - Fraction(math.comb(n - f, sample), math.comb(n, sample))
    return total / sample


# --- tokenization ------------------------------------------------------------------------------------------


def test_tokenize_rules() -> None:
    text = "Um, I DON'T think it\u2019s 3rd-rate... Uhhh, the students' well-known rock'n'roll, erm, 42 times. Hmm! Ah."
    words, fillers = tokenize(text)
    # "3rd" and "42" hold digits and are dropped; "rate" survives the hyphen; the typographic apostrophe in
    # "it\u2019s" is normalised; the trailing apostrophe of "students'" is not part of the word; "ah" is not a filler.
    assert words == [
        "i",
        "don't",
        "think",
        "it's",
        "rate",
        "the",
        "students",
        "well",
        "known",
        "rock'n'roll",
        "times",
        "ah",
    ]
    assert fillers == 4  # um, uhhh, erm, hmm


def test_tokenize_empty_and_fillers_only() -> None:
    assert tokenize("") == ([], 0)
    assert tokenize("um... uh, mm, hmm, er 123") == ([], 5)


# --- diversity indices by hand -----------------------------------------------------------------------------


def test_ttr_and_root_ttr_by_hand() -> None:
    words = ["the", "cat", "and", "the", "dog"]  # 5 tokens, 4 types
    assert ttr(words) == pytest.approx(4 / 5)
    assert root_ttr(words) == pytest.approx(4 / math.sqrt(5))
    assert ttr([]) == 0.0 and root_ttr([]) == 0.0


def test_mtld_by_hand() -> None:
    words = ["the", "cat", "sat", "on", "the", "mat", "and", "the", "dog", "sat", "on", "the", "rug", "on"]  # 14 tokens
    # Forward, running TTR per word: the 1/1, cat 2/2, sat 3/3, on 4/4, the 4/5=.80, mat 5/6=.83, and 6/7=.86,
    # the 6/8=.75, dog 7/9=.78, sat 7/10=.70 < .72 -> factor 1 ends (10 words). Restart: on 1/1, the 2/2,
    # rug 3/3, on 3/4=.75 -> text ends; remainder TTR .75 -> partial (1-.75)/(1-.72) = 25/28.
    fwd = mtld_factors(words)
    assert (fwd.full, fwd.remainder_tokens, fwd.remainder_types) == (1, 4, 3)
    assert fwd.total == pytest.approx(1 + 25 / 28)
    # Backward: on, rug, the, on 3/4=.75, sat 4/5=.80, dog 5/6=.83, the 5/7=.714 < .72 -> factor 1 (7 words).
    # Restart: and, mat, the, on, sat, cat 6/6, the 6/7=.857 -> remainder partial (1-6/7)/.28 = 25/49.
    bwd = mtld_factors(words[::-1])
    assert (bwd.full, bwd.remainder_tokens, bwd.remainder_types) == (1, 7, 6)
    # MTLD = mean(14 / (1 + 25/28), 14 / (1 + 25/49)) = mean(392/53, 686/74) = 8.33325...
    assert mtld(words) == pytest.approx((392 / 53 + 686 / 74) / 2)


def test_mtld_threshold_is_strict() -> None:
    # 25 words, 18 types: TTR = 18/25 = .72 exactly, not below .72, so no factor ends there.
    words = [f"w{i}" for i in range(18)] + ["w0"] * 7
    assert ttr(words) == 0.72
    assert mtld_factors(words).full == 0
    assert mtld_factors([*words, "w0"]).full == 1  # 18/26 = .69


def test_mtld_edge_cases() -> None:
    assert mtld([]) == 0.0
    # No factor and no repeat: the factor length is unobserved; MTLD is the text length (documented bound).
    assert mtld(["a", "b", "c", "d"]) == 4.0
    # "a a": TTR 1/2 < .72 at the 2nd word: one full factor of 2 each way.
    assert mtld(["a", "a"]) == 2.0


def test_mattr_by_hand_small_window() -> None:
    words = ["a", "b", "a", "c", "c"]
    # Windows of 3: [a b a] 2/3, [b a c] 3/3, [a c c] 2/3 -> mean (2 + 3 + 2) / 9 = 7/9.
    assert mattr(words, window=3) == pytest.approx(7 / 9)
    # Shorter than (or as long as) the window: one window, the TTR.
    assert mattr(words, window=50) == pytest.approx(3 / 5)
    assert mattr(words, window=5) == pytest.approx(3 / 5)


def test_hdd_by_hand() -> None:
    # 44 tokens: 40 words once and 2 words twice (42 types), samples of 42.
    # P(word with frequency 1 absent) = C(43, 42) / C(44, 42) = 43 / 946 = 1/22
    # P(word with frequency 2 absent) = C(42, 42) / C(44, 42) = 1 / 946
    # HD-D = (40 * (1 - 1/22) + 2 * (1 - 1/946)) / 42 = (40 * 21/22 + 2 * 945/946) / 42 = 0.95666...
    words = [f"w{i}" for i in range(40)] + ["x", "x", "y", "y"]
    assert hdd(words) == pytest.approx((40 * 21 / 22 + 2 * 945 / 946) / 42, abs=1e-12)
    # 43 tokens: 41 once, 1 twice. P(absent | f=1) = C(42,42)/C(43,42) = 1/43; f=2: C(41,42) = 0.
    # HD-D = (41 * 42/43 + 1) / 42 = 1765/1806
    assert hdd([*(f"w{i}" for i in range(41)), "x", "x"]) == pytest.approx(1765 / 1806, abs=1e-12)


def test_hdd_short_texts_are_ttr() -> None:
    # At exactly 42 tokens every sample is the whole text: the formula gives TTR; below 42 we keep that value.
    words42 = [f"w{i % 30}" for i in range(42)]
    assert hdd(words42) == pytest.approx(30 / 42)
    assert hdd(words42[:10]) == ttr(words42[:10])
    assert hdd([]) == 0.0


# --- per-answer values from the word data ------------------------------------------------------------------


def test_lemmas_zipf_and_bands() -> None:
    m = analyze("The children were running. It's better, isn't it?")
    # simplemma maps "were" and "isn't" to "be", "better" to "good"; "it's" keeps its apostrophe (lemma_of).
    assert m.lemmas == {"the": 1, "child": 1, "be": 2, "run": 1, "it's": 1, "good": 1, "it": 1}
    assert m.tokens == 8 and m.types == 8
    words = ["the", "children", "were", "running", "it's", "better", "isn't", "it"]
    assert m.mean_zipf == pytest.approx(sum(zipf_frequency(w, "en") for w in words) / 8)
    assert m.rare_word_share == 0.0  # all within the 2,000 most frequent words (as form or lemma)

    rare = analyze("the serendipity of the photosynthesis")
    # "serendipity" and "photosynthesis" are outside the top 2,000: 2 of 5 tokens.
    assert rare.rare_word_share == pytest.approx(2 / 5)
    assert analyze("qzxvw qzxvw").mean_zipf == 0.0  # unknown to wordfreq


def test_analyze_empty() -> None:
    m = analyze("Um... 42!")
    assert (m.tokens, m.types, m.filled_pauses, m.lemmas) == (0, 0, 1, {})
    assert m.ttr == m.root_ttr == m.mattr == m.mtld == m.hdd == m.mean_zipf == m.rare_word_share == 0.0


def test_contract_fields_fill_answer_metrics() -> None:
    m = analyze("Well, um, I think remote work is better because I save time and I can focus on my work.")
    fields = m.contract_fields()
    assert set(fields) <= set(AnswerMetrics.model_fields)
    event = AnswerMetrics(
        answer_id="a1",
        learner_id="l1",
        question_id="q1",
        task_type=TaskType.JOB_INTERVIEW,
        answered_at=datetime.now(UTC),
        total_duration_s=10,
        speech_duration_s=8,
        speaking_rate_wpm=110,
        articulation_rate_wpm=130,
        silent_pause_count=2,
        mean_silent_pause_s=0.4,
        mean_length_of_run_words=6,
        filled_pause_count=m.filled_pauses,
        **fields,  # type: ignore[arg-type]
    )
    assert event.tokens == 18 and event.lemmas["work"] == 2 and event.filled_pause_count == 1


# --- references and properties -----------------------------------------------------------------------------


@given(word_lists, st.integers(min_value=1, max_value=12))
def test_mattr_matches_naive_definition(words: list[str], window: int) -> None:
    assert mattr(words, window) == pytest.approx(naive_mattr(words, window))


@given(word_lists)
def test_mtld_matches_naive_definition(words: list[str]) -> None:
    expected = (naive_mtld_pass(words) + naive_mtld_pass(words[::-1])) / 2 if words else 0.0
    assert mtld(words) == pytest.approx(expected)


@settings(max_examples=50)
@given(
    st.lists(
        st.sampled_from(list("abcdefghijklmnopqrst")),
        min_size=43,
        max_size=120,
    )
)
def test_hdd_matches_exact_hypergeometric(words: list[str]) -> None:
    assert hdd(words) == pytest.approx(float(exact_hdd(words)), abs=1e-12)


@given(rich_word_lists)
def test_values_in_range(words: list[str]) -> None:
    m = analyze_words(words)
    assert m.tokens == len(words) and m.types == len(set(words))
    for value in (m.ttr, m.mattr, m.hdd, m.rare_word_share):
        assert 0.0 <= value <= 1.0
    assert 0.0 <= m.root_ttr <= math.sqrt(m.tokens) + 1e-9
    assert m.mtld >= 0.0 and m.mean_zipf >= 0.0
    assert sum(m.lemmas.values()) == m.tokens
    if m.tokens:
        assert m.mtld >= 1.0  # a factor needs at least 2 words; a pass is at least 1 word per factor


@given(word_lists)
def test_mtld_symmetric_under_reversal(words: list[str]) -> None:
    # Forward and backward passes swap when the text is reversed; their mean cannot change.
    assert mtld(words) == pytest.approx(mtld(words[::-1]))


@given(st.lists(st.sampled_from(list("abcdef")), min_size=1, max_size=80))
def test_mtld_palindrome_passes_agree(half: list[str]) -> None:
    words = half + half[::-1]  # a palindrome: the backward pass reads the same words as the forward one
    fwd, bwd = mtld_factors(words), mtld_factors(words[::-1])
    assert fwd == bwd
    expected = len(words) / fwd.total if fwd.total else float(len(words))
    assert mtld(words) == pytest.approx(expected)


@given(rich_word_lists)
def test_pool_of_one_answer_is_the_answer(words: list[str]) -> None:
    m = analyze_words(words)
    w = pool([words])
    assert w.answer_count == 1 and w.tokens == m.tokens and w.types == m.types
    assert (w.pooled_ttr, w.pooled_root_ttr, w.pooled_mattr, w.pooled_mtld) == (m.ttr, m.root_ttr, m.mattr, m.mtld)
    assert sum(w.vocabulary.values()) == len(words)


def test_pool_concatenates_answers() -> None:
    a, b = ["i", "like", "my", "job"], ["my", "job", "is", "hard", "but", "i", "like", "it"]
    w = pool([a, b])
    assert w.answer_count == 2 and w.tokens == 12 and w.types == 8
    assert w.pooled_ttr == pytest.approx(8 / 12)
    assert w.pooled_root_ttr == 8 / math.sqrt(12)  # Guiraud over the pooled words, not a mean of the answers' values
    assert w.pooled_root_ttr != pytest.approx((root_ttr(a) + root_ttr(b)) / 2)
    assert w.vocabulary == {"i": 2, "like": 2, "my": 2, "job": 2, "is": 1, "hard": 1, "but": 1, "it": 1}
    assert w.pooled_mtld == pytest.approx(mtld(a + b)) and w.pooled_mattr == pytest.approx(mattr(a + b))
    assert pool([]).tokens == 0 and pool([]).pooled_mtld == 0.0 and pool([]).pooled_root_ttr == 0.0


@settings(max_examples=200)
@given(
    st.lists(st.lists(st.sampled_from(list("abcdefghijklmnop")), max_size=70), min_size=1, max_size=9),
    st.sampled_from([1, 2, 5, 12, 50]),
)
def test_mattr_prefix_equals_the_pass_over_every_run_of_answers(answers: list[list[str]], window: int) -> None:
    # The job keeps MATTR sums incrementally over a learner's answers (short, empty and window-long ones
    # included); every window of consecutive answers must get exactly the integer a pass over its words gets.
    stream = MattrPrefix(window=window)
    starts = [stream.append(a) for a in answers]
    for i in range(len(answers)):
        for j in range(i, len(answers)):
            words = [w for a in answers[i : j + 1] for w in a]
            assert stream.windows_sum(starts[i], starts[j] + len(answers[j])) == mattr_windows_sum(words, window)
    # Dropping what no window starts at any more changes nothing for the windows that remain.
    stream.forget_before(starts[-1])
    assert stream.windows_sum(starts[-1], stream.length) == mattr_windows_sum(answers[-1], window)


@given(st.lists(st.lists(st.sampled_from(list("abcdefghij")), max_size=60), min_size=1, max_size=6))
def test_pool_with_a_kept_mattr_sum_equals_pool(answers: list[list[str]]) -> None:
    stream = MattrPrefix()
    starts = [stream.append(a) for a in answers]
    kept = pool(answers, stream.windows_sum(starts[0], stream.length))
    assert kept == pool(answers)  # every field, MATTR to the last bit


# --- cross-check against the lexical-diversity package -----------------------------------------------------


def _transcript_words() -> list[list[str]]:
    from benchmarks.lexical import transcripts

    return [tokenize(t).words for t in transcripts(count=200, words=120, seed=7)]


def test_cross_check_lexical_diversity() -> None:
    from lexical_diversity import lex_div as ld

    compared_mtld = 0
    for words in _transcript_words():
        assert ttr(words) == pytest.approx(ld.ttr(words))
        assert root_ttr(words) == pytest.approx(ld.root_ttr(words))
        assert mattr(words) == pytest.approx(ld.mattr(words, window_length=50))
        assert hdd(words) == pytest.approx(ld.hdd(words))  # all have > 42 tokens
        # lexical-diversity scores the last word as a partial factor even when it completes a full one, and
        # by default ignores factors shorter than 10 words (min=10); with min=1 and no factor ending on the
        # last word, the definitions coincide.
        if mtld_factors(words).remainder_tokens and mtld_factors(words[::-1]).remainder_tokens:
            assert mtld(words) == pytest.approx(ld.mtld(words, min=1))
            compared_mtld += 1
    assert compared_mtld >= 150


def test_documented_differences_from_lexical_diversity() -> None:
    from lexical_diversity import lex_div as ld

    short = ["the", "cat", "sat", "on", "the", "mat"]
    assert ld.hdd(short) == 0.0 and hdd(short) == pytest.approx(5 / 6)  # ours: TTR below 42 tokens
    distinct = ["a", "b", "c", "d"]
    assert ld.mtld(distinct) == 0.0 and mtld(distinct) == 4.0  # ours: the text length, not 0


def test_word_cache_stays_bounded_and_complete(monkeypatch: pytest.MonkeyPatch) -> None:
    from speech_coach.text import lexical

    for name in ("_LEMMA", "_ZIPF", "_RARE"):
        monkeypatch.setattr(lexical, name, {})
    monkeypatch.setattr(lexical, "_CACHE_LIMIT", 5)
    analyze_words(["one", "two", "three"])
    # 8 new words with 3 cached and room for 5: the cache is cleared before learning them, not halfway through
    # (which would lose the first ones before the answer's sums are taken).
    words = [f"word{c}" for c in "abcdefgh"]
    m = analyze_words(words)
    assert m.tokens == 8 and sum(m.lemmas.values()) == 8
    assert set(lexical._LEMMA) == set(words)
