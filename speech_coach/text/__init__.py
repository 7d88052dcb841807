"""Text analysis shared by the stream and batch runtimes: tokenization and lexical metrics (docs/metrics.md)."""

from speech_coach.text.lexical import (
    LexicalMetrics,
    MtldFactors,
    WindowLexicalMetrics,
    analyze,
    analyze_words,
    hdd,
    mattr,
    mtld,
    mtld_factors,
    pool,
    root_ttr,
    ttr,
    warm_up,
)
from speech_coach.text.tokenize import Tokens, tokenize

__all__ = [
    "LexicalMetrics",
    "MtldFactors",
    "Tokens",
    "WindowLexicalMetrics",
    "analyze",
    "analyze_words",
    "hdd",
    "mattr",
    "mtld",
    "mtld_factors",
    "pool",
    "root_ttr",
    "tokenize",
    "ttr",
    "warm_up",
]
