"""Word tokens of a transcript: lower-cased letters with internal apostrophes; filled pauses counted apart.

Rules (docs/metrics.md, "Tokenization"):

- the text is lower-cased and typographic apostrophes (U+2019, U+2018, U+02BC) become `'`;
- a token is a maximal run of letters and digits, runs joined by single internal apostrophes (`don't`,
  `o'clock`, `rock'n'roll`); leading and trailing apostrophes are not part of it (`students'` -> `students`);
- anything else separates tokens, hyphens included (`well-known` -> `well`, `known`);
- a token containing a digit is dropped (`42`, `3rd`, `covid19`): numbers are not vocabulary;
- filled pauses (`um`, `uh`, `uhm`, `er`, `erm`, `ehm`, `hm`, `hmm`, `mm` and lengthened spellings such as
  `ummm`, `uhhh`, `errr`; the regex `FILLED_PAUSE`) are not lexical tokens; they are counted in `filled_pauses`.
"""

from __future__ import annotations

import re
from typing import NamedTuple

# Letters and digits (\w minus underscore), joined by internal apostrophes only.
_RUN = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})
# Hesitation sounds as ASR and human transcribers spell them. Deliberately excluded: "ah", "oh", "eh"
# (interjections that carry meaning) and backchannels like "uh-huh" (the hyphen splits it; "huh" stays a word).
FILLED_PAUSE = re.compile(r"u+[hm]+|e+r+m*|e+h+m+|h+m+|m+")

# Token kinds, cached per distinct run: a transcript repeats most of its words, and a stream repeats the language.
WORD, FILLER, DROP = 0, 1, 2
_KIND: dict[str, int] = {}
_CACHE_LIMIT = 200_000  # distinct runs; cleared when exceeded so junk input cannot grow memory without bound


class Tokens(NamedTuple):
    words: list[str]
    filled_pauses: int


def token_kind(run: str) -> int:
    """WORD, FILLER or DROP for one lower-cased run matched by the tokenizer."""
    kind = _KIND.get(run)
    if kind is None:
        if any(c.isdigit() for c in run):
            kind = DROP
        elif FILLED_PAUSE.fullmatch(run):
            kind = FILLER
        else:
            kind = WORD
        if len(_KIND) >= _CACHE_LIMIT:
            _KIND.clear()
        _KIND[run] = kind
    return kind


def tokenize(text: str) -> Tokens:
    """The lexical word tokens of `text`, in order, and the number of filled pauses."""
    runs = _RUN.findall(text.lower().translate(_APOSTROPHES))
    try:
        kinds = [_KIND[run] for run in runs]  # the common case: every run seen before
    except KeyError:
        kinds = [token_kind(run) for run in runs]
    return Tokens([run for run, kind in zip(runs, kinds, strict=True) if kind == WORD], kinds.count(FILLER))
