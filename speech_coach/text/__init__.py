"""Text analysis shared by the stream and batch runtimes: tokenization and lexical metrics (docs/metrics.md)."""

from speech_coach.text.lexical import (
    LexicalMetrics,
    MattrPrefix,
    MtldFactors,
    WindowLexicalMetrics,
    analyze,
    analyze_words,
    hdd,
    mattr,
    mattr_windows_sum,
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
    "MattrPrefix",
    "MtldFactors",
    "Tokens",
    "WindowLexicalMetrics",
    "analyze",
    "analyze_words",
    "hdd",
    "mattr",
    "mattr_windows_sum",
    "mtld",
    "mtld_factors",
    "pool",
    "root_ttr",
    "tokenize",
    "ttr",
    "warm_up",
]
