"""Lexical richness of one answer and of a window of answers. Definitions and references: docs/metrics.md.

Everything here is pure Python and deterministic, shared by the PyFlink metrics job and the batch code. Per-word
look-ups (lemma, Zipf frequency, frequency band) go through one bounded cache, and each diversity index is a
single O(n) pass, so a 120-word answer costs well under a millisecond once the word data is loaded (`warm_up`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import NamedTuple

from speech_coach.text.tokenize import tokenize

MATTR_WINDOW = 50  # Covington & McFall (2010)
MTLD_THRESHOLD = 0.72  # McCarthy & Jarvis (2010)
HDD_SAMPLE = 42  # McCarthy & Jarvis (2007)
COMMON_BANDS = 2000  # K1 + K2 of a Lexical Frequency Profile (Laufer & Nation 1995), approximated by wordfreq
LANG = "en"

# Per-word caches, filled together by `_learn`: word -> lemma, word -> Zipf frequency, word -> 1 when outside
# the COMMON_BANDS most frequent words (else 0). Separate dicts so the per-answer sums run as C-level map().
_LEMMA: dict[str, str] = {}
_ZIPF: dict[str, float] = {}
_RARE: dict[str, int] = {}
_CACHE_LIMIT = 200_000
_COMMON: frozenset[str] | None = None
# (tokens, sample size) -> P(a type with frequency f is absent from a random sample), indexed by f
_ABSENT: dict[tuple[int, int], list[float]] = {}


def _common_words() -> frozenset[str]:
    global _COMMON
    if _COMMON is None:
        from wordfreq import top_n_list

        _COMMON = frozenset(top_n_list(LANG, COMMON_BANDS))
    return _COMMON


def lemma_of(word: str) -> str:
    """The lemma of a lower-cased word token (simplemma's English dictionary, no part-of-speech context)."""
    import simplemma

    # simplemma restores capitals for names and "I'm"; lemmas here are lower-case like the tokens.
    lemma = simplemma.lemmatize(word, lang=LANG).lower()
    # It reads some contractions as other words ("it's" -> "its"); a lemma that only loses the apostrophe is
    # such a misreading, so the contraction is kept as its own lemma.
    if "'" in word and lemma == word.replace("'", ""):
        return word
    return lemma


def _make_room(words: int) -> None:
    # Bounded, so junk input cannot grow memory forever. Cleared before (never while) an answer's words are
    # learned, so all of them are present when its sums are taken.
    if len(_LEMMA) + words > _CACHE_LIMIT:
        _LEMMA.clear()
        _ZIPF.clear()
        _RARE.clear()


def _learn(word: str) -> None:
    from wordfreq import zipf_frequency

    lemma = lemma_of(word)
    common = _common_words()
    _LEMMA[word] = lemma
    _ZIPF[word] = zipf_frequency(word, LANG)
    # The word form counts too, so that a lemmatizer quirk cannot push a frequent form out of the bands.
    _RARE[word] = 0 if word in common or lemma in common else 1


def word_info(word: str) -> tuple[str, float, bool]:
    """(lemma, Zipf frequency, common) for a lower-cased word token, cached.

    `common` is true when the word form or its lemma is among the COMMON_BANDS most frequent English words of
    wordfreq (`top_n_list("en", 2000)`).
    """
    if word not in _LEMMA:
        _make_room(1)
        _learn(word)
    return _LEMMA[word], _ZIPF[word], not _RARE[word]


def warm_up() -> None:
    """Load the lemma dictionary and the word-frequency data now (about a second) instead of on first use."""
    word_info("warming")


# --- diversity indices -------------------------------------------------------------------------------------


def ttr(words: Sequence[str]) -> float:
    """Type-token ratio: distinct words / words; 0 for no words."""
    return len(set(words)) / len(words) if words else 0.0


def root_ttr(words: Sequence[str]) -> float:
    """Guiraud's index: distinct words / sqrt(words); 0 for no words."""
    return len(set(words)) / math.sqrt(len(words)) if words else 0.0


def _distinct_per_run(words: Sequence[str], window: int) -> list[int]:
    """Distinct words of each run of `window` consecutive words, in order (empty when there is no full run).

    Slides by one: add the entering word, drop the leaving one; O(n) instead of O(n * window)."""
    if len(words) < window:
        return []
    counts: dict[str, int] = {}
    for w in words[:window]:
        counts[w] = counts.get(w, 0) + 1
    distinct = len(counts)
    out = [distinct]
    for i in range(window, len(words)):
        w = words[i]
        c = counts.get(w, 0)
        if c == 0:
            distinct += 1
        counts[w] = c + 1
        old = words[i - window]
        c = counts[old] - 1
        counts[old] = c
        if c == 0:
            distinct -= 1
        out.append(distinct)
    return out


def mattr_windows_sum(words: Sequence[str], window: int = MATTR_WINDOW) -> int:
    """The sum, over every run of `window` consecutive words, of its distinct words (0 when there is no full run).

    MATTR is this sum / (runs * window); an integer, so a sum kept incrementally (`MattrPrefix`) gives the same
    MATTR to the last bit.
    """
    if window < 1:
        raise ValueError("window must be at least 1")
    return sum(_distinct_per_run(words, window))


def mattr(words: Sequence[str], window: int = MATTR_WINDOW) -> float:
    """Moving-average TTR: the mean TTR of every run of `window` consecutive words (each step moves one word).

    A text no longer than the window has a single (partial) window, so its MATTR is its TTR.
    """
    if window < 1:
        raise ValueError("window must be at least 1")
    n = len(words)
    if n <= window:
        return ttr(words)
    return mattr_windows_sum(words, window) / ((n - window + 1) * window)


@dataclass(slots=True)
class MattrPrefix:
    """Running MATTR sums over one learner's word stream (every answer's words, in window order), so that the
    MATTR of any window of consecutive answers costs O(1) instead of a pass over its pooled words.

    D(s) is the number of distinct words in the run of `window` words starting at stream position s; it depends
    only on the stream, not on which window pools it. `marks[x]` = sum of D(s) for s < x, recorded at each
    answer's start and at its end - window + 1. A window pooling the answers that span positions [a, b) then has
    `mattr_windows_sum` = marks[b - window + 1] - marks[a]: the same integer as a pass over its words.
    """

    window: int = MATTR_WINDOW
    length: int = 0  # words in the stream so far
    tail: tuple[str, ...] = ()  # its last window - 1 words
    total: int = 0  # sum of D(s) over the complete runs (s + window <= length)
    marks: dict[int, int] = field(default_factory=dict)
    wanted: list[int] = field(default_factory=list)  # positions to mark that the complete runs have not reached

    def _frontier(self) -> int:
        """Runs counted so far: those complete in the stream (s + window <= length)."""
        return max(0, self.length - self.window + 1)

    def append(self, words: Sequence[str]) -> int:
        """Add one answer's words; returns its start position in the stream."""
        start, window = self.length, self.window
        text = (*self.tail, *words)
        first = self._frontier()  # the stream position of text[0] (the tail holds the incomplete runs' words)
        self.length += len(words)
        self.tail = text[max(0, len(text) - window + 1) :] if window > 1 else ()
        # D(s) of every run that this answer completes, then prefix sums: sums[k] = marks value at first + k.
        sums = list(accumulate(_distinct_per_run(text, window), initial=self.total))
        self.total = sums[-1]
        wanted, self.wanted = [*self.wanted, start, max(0, self.length - window + 1)], []
        for position in wanted:
            if position - first < len(sums):
                self.marks[position] = sums[position - first]
            else:
                self.wanted.append(position)
        return start

    def windows_sum(self, start: int, end: int) -> int:
        """`mattr_windows_sum` of the stream's words in [start, end): answer boundaries appended earlier."""
        if end - start < self.window:
            return 0
        return self.marks[end - self.window + 1] - self.marks[start]

    def forget_before(self, position: int) -> None:
        """Drop the marks no window still open can start at (answers before `position` left every window)."""
        self.marks = {p: v for p, v in self.marks.items() if p >= position}


class MtldFactors(NamedTuple):
    """One MTLD pass: completed factors and the words left over after the last one."""

    full: int
    remainder_tokens: int
    remainder_types: int
    threshold: float = MTLD_THRESHOLD

    @property
    def partial(self) -> float:
        """The remainder's share of a factor: how far its TTR fell from 1 towards the threshold."""
        if self.remainder_tokens == 0:
            return 0.0
        return (1 - self.remainder_types / self.remainder_tokens) / (1 - self.threshold)

    @property
    def total(self) -> float:
        return self.full + self.partial


_FACTOR_LIMITS: dict[float, list[int]] = {}


def _factor_limits(threshold: float, n: int) -> list[int]:
    """limits[c]: the fewest types that keep c words at or above `threshold` (types < limits[c] ends a factor).

    Found with the same float division the definition uses, so 18/25 == 0.72 exactly is not a factor end.
    """
    limits = _FACTOR_LIMITS.setdefault(threshold, [0])
    for c in range(len(limits), n + 1):
        t = max(0, math.floor(threshold * c) - 1)
        while t / c < threshold:
            t += 1
        limits.append(t)
    return limits


def mtld_factors(words: Sequence[str], threshold: float = MTLD_THRESHOLD) -> MtldFactors:
    """Count MTLD factors in one direction: a factor ends at the word where the running TTR drops below
    `threshold`; the count then restarts with the next word."""
    limits = _factor_limits(threshold, len(words))
    full = 0
    seen: set[str] = set()
    count = types = 0
    for w in words:
        count += 1
        if w not in seen:
            seen.add(w)
            types += 1
        elif types < limits[count]:  # only a repeat can lower the TTR
            full += 1
            seen = set()
            count = types = 0
    return MtldFactors(full, count, types, threshold)


def _mtld_one_way(words: Sequence[str], threshold: float) -> float:
    factors = mtld_factors(words, threshold).total
    # No factor at all (every remainder word distinct): the text never showed its factor length, which is
    # therefore longer than the text; report the text length, the bound we know, rather than infinity.
    return len(words) / factors if factors > 0 else float(len(words))


def mtld(words: Sequence[str], threshold: float = MTLD_THRESHOLD) -> float:
    """Measure of Textual Lexical Diversity: words per factor, the mean of a forward and a backward pass."""
    if not words:
        return 0.0
    return (_mtld_one_way(words, threshold) + _mtld_one_way(words[::-1], threshold)) / 2


def _absent_table(n: int, sample: int) -> list[float]:
    """P(a type of frequency f is absent from `sample` words drawn without replacement from n), for f = 0..n.

    Hypergeometric P(X = 0) = C(n - f, sample) / C(n, sample) = prod_{i < f} (n - sample - i) / (n - i), built
    incrementally in f; it reaches 0 once f > n - sample (then every sample holds the type).
    """
    key = (n, sample)
    table = _ABSENT.get(key)
    if table is None:
        table = [1.0] * (n + 1)
        p = 1.0
        for f in range(1, n + 1):
            p = p * (n - sample - f + 1) / (n - f + 1) if p > 0 and n - sample - f + 1 > 0 else 0.0
            table[f] = p
        if len(_ABSENT) >= 4096:
            _ABSENT.clear()
        _ABSENT[key] = table
    return table


def hdd(words: Sequence[str], sample: int = HDD_SAMPLE, counts: Counter[str] | None = None) -> float:
    """HD-D on the TTR scale: the expected number of distinct words in a random `sample` of the text's words,
    divided by `sample`.

    A text of at most `sample` words has no such sample; its whole text is the sample, every type is in it, and
    HD-D is its TTR (the same value the formula gives at exactly `sample` words). 0 for no words.
    """
    if sample < 1:
        raise ValueError("sample must be at least 1")
    n = len(words)
    if n <= sample:
        return ttr(words)
    absent = _absent_table(n, sample)
    freqs = (counts if counts is not None else Counter(words)).values()
    # sum over types of (1 - P(absent)) = types - sum of P(absent)
    return (len(freqs) - sum(map(absent.__getitem__, freqs))) / sample


# --- one answer --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LexicalMetrics:
    """The lexical metrics of one answer. Names match the `AnswerMetrics` contract where they overlap."""

    words: tuple[str, ...]  # the lexical tokens in order, for windows (`pool`)
    filled_pauses: int
    tokens: int
    types: int
    ttr: float
    root_ttr: float
    mattr: float
    mtld: float
    hdd: float
    mean_zipf: float  # mean wordfreq Zipf frequency over tokens; 0 for words wordfreq does not know
    rare_word_share: float  # share of tokens outside the COMMON_BANDS (K1+K2) most frequent words
    lemmas: dict[str, int] = field(default_factory=dict)  # lemma -> count

    CONTRACT_FIELDS = ("tokens", "types", "ttr", "root_ttr", "mattr", "mtld", "hdd", "mean_zipf", "rare_word_share")

    def contract_fields(self) -> dict[str, float | int | dict[str, int]]:
        """The `AnswerMetrics` fields these metrics fill, ready for `AnswerMetrics(**..., **fluency)`."""
        out: dict[str, float | int | dict[str, int]] = {name: getattr(self, name) for name in self.CONTRACT_FIELDS}
        out["lemmas"] = dict(self.lemmas)
        return out


def analyze_words(words: Sequence[str], filled_pauses: int = 0) -> LexicalMetrics:
    """Lexical metrics of already tokenized, lower-cased words (see `tokenize`)."""
    n = len(words)
    counts = Counter(words)
    new = [w for w in counts if w not in _LEMMA]
    if new:
        _make_room(len(new))
        for w in new:
            _learn(w)
    types = len(counts)
    return LexicalMetrics(
        words=tuple(words),
        filled_pauses=filled_pauses,
        tokens=n,
        types=types,
        ttr=types / n if n else 0.0,
        root_ttr=types / math.sqrt(n) if n else 0.0,
        mattr=mattr(words),
        mtld=mtld(words),
        hdd=hdd(words, counts=counts),
        mean_zipf=sum(map(_ZIPF.__getitem__, words)) / n if n else 0.0,
        rare_word_share=sum(map(_RARE.__getitem__, words)) / n if n else 0.0,
        lemmas=dict(Counter(map(_LEMMA.__getitem__, words))),
    )


def analyze(text: str) -> LexicalMetrics:
    """Lexical metrics of one transcript."""
    words, filled_pauses = tokenize(text)
    return analyze_words(words, filled_pauses)


# --- a window of answers -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WindowLexicalMetrics:
    """Pooled metrics of a window (names match `WindowedMetrics`); `vocabulary` fills `WindowedVocabulary.words`."""

    answer_count: int
    tokens: int
    types: int
    pooled_ttr: float
    pooled_root_ttr: float
    pooled_mattr: float
    pooled_mtld: float
    vocabulary: dict[str, int]  # word form -> occurrences in the window


def pool(answers: Sequence[Sequence[str]], mattr_sum: int | None = None) -> WindowLexicalMetrics:
    """Pooled metrics over a window: the answers' words concatenated in the given (time) order, one text.

    MATTR windows and MTLD factors therefore run across answer boundaries, as they would over one long answer.
    `mattr_sum`: the pooled text's `mattr_windows_sum` when the caller keeps it incrementally (`MattrPrefix`).
    """
    words = [w for answer in answers for w in answer]
    vocabulary = dict(Counter(words))
    n = len(words)
    if n <= MATTR_WINDOW:
        pooled_mattr = len(vocabulary) / n if n else 0.0  # = mattr(words): one partial window, its TTR
    else:
        total = mattr_windows_sum(words) if mattr_sum is None else mattr_sum
        pooled_mattr = total / ((n - MATTR_WINDOW + 1) * MATTR_WINDOW)
    return WindowLexicalMetrics(
        answer_count=len(answers),
        tokens=n,
        types=len(vocabulary),
        pooled_ttr=len(vocabulary) / n if n else 0.0,
        pooled_root_ttr=len(vocabulary) / math.sqrt(n) if n else 0.0,
        pooled_mattr=pooled_mattr,
        pooled_mtld=mtld(words),
        vocabulary=vocabulary,
    )
