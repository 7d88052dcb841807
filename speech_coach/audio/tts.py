"""Offline speech synthesis with espeak-ng (the `espeakng-loader` wheel carries the library and its data).

Used to generate test and simulator speech with a known ground truth: the text is known (for WER), and SSML
`<break time="900ms"/>` inserts pauses of exactly that length (for fluency measurement).
`synthesize()` returns 16-bit mono PCM; `to_ogg_opus()` encodes it the way Telegram sends voice messages.
"""

from __future__ import annotations

import ctypes
import subprocess
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

# espeak-ng's C API (speak_lib.h)
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
_SSML = 0x10
_POS_CHARACTER = 1
_RATE, _PITCH = 1, 3
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

_lock = threading.Lock()  # the library keeps global state: one synthesis at a time per process


@dataclass(frozen=True)
class Speech:
    pcm: npt.NDArray[np.int16]
    sample_rate: int

    @property
    def duration_s(self) -> float:
        return len(self.pcm) / self.sample_rate


@dataclass
class _Engine:
    lib: Any
    sample_rate: int
    chunks: list[npt.NDArray[np.int16]]
    callback: Any = None


@lru_cache(maxsize=1)
def _engine() -> _Engine:
    import espeakng_loader

    lib = ctypes.CDLL(espeakng_loader.get_library_path())
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_Synth.argtypes = [
        ctypes.c_char_p,
        ctypes.c_size_t,
        ctypes.c_uint,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.c_uint,
        ctypes.c_void_p,
        ctypes.c_void_p,
    ]
    data = espeakng_loader.get_data_path().encode()
    rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data, _INITIALIZE_DONT_EXIT)
    if rate <= 0:
        raise RuntimeError(f"espeak-ng failed to initialise (data at {data.decode()})")
    engine = _Engine(lib, rate, [])

    def collect(wav: Any, count: int, _events: Any) -> int:
        if count > 0 and wav:
            engine.chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        return 0  # continue

    engine.callback = _CALLBACK(collect)  # kept referenced: the library calls it later
    lib.espeak_SetSynthCallback(engine.callback)
    return engine


def synthesize(text: str, *, voice: str = "en-us", rate_wpm: int = 150, pitch: int = 50, ssml: bool = True) -> Speech:
    """Speak `text` (SSML allowed: `<break time="900ms"/>`); returns 16-bit mono PCM at espeak's rate."""
    engine = _engine()
    body = f"<speak>{text}</speak>" if ssml and not text.lstrip().startswith("<speak") else text
    data = body.encode()
    with _lock:
        engine.chunks.clear()
        if engine.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {voice!r}")
        engine.lib.espeak_SetParameter(_RATE, rate_wpm, 0)
        engine.lib.espeak_SetParameter(_PITCH, pitch, 0)
        flags = _CHARS_UTF8 | (_SSML if ssml else 0)
        err = engine.lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, flags, None, None)
        if err != 0:
            raise RuntimeError(f"espeak_Synth failed with code {err}")
        engine.lib.espeak_Synchronize()
        pcm = np.concatenate(engine.chunks) if engine.chunks else np.zeros(0, dtype=np.int16)
        engine.chunks.clear()
    return Speech(pcm.astype(np.int16, copy=False), engine.sample_rate)


def silence(seconds: float, sample_rate: int) -> npt.NDArray[np.int16]:
    return np.zeros(round(seconds * sample_rate), dtype=np.int16)


def add_noise(speech: Speech, snr_db: float, seed: int = 0) -> Speech:
    """White noise at the given signal-to-noise ratio (over the whole clip), for robustness tests."""
    rng = np.random.default_rng(seed)
    signal = speech.pcm.astype(np.float64)
    power = float(np.mean(signal**2)) or 1.0
    noise = rng.normal(0.0, np.sqrt(power / 10 ** (snr_db / 10)), len(signal))
    return Speech(np.clip(signal + noise, -32768, 32767).astype(np.int16), speech.sample_rate)


def encode(speech: Speech, ffmpeg: Path, *, fmt: str = "ogg") -> bytes:
    """Encode with ffmpeg: `ogg` is Telegram's voice format (Opus, 48 kHz mono, 32 kbit/s, VoIP); `wav` also works."""
    codec = ["-c:a", "libopus", "-b:a", "32k", "-application", "voip", "-ar", "48000"] if fmt == "ogg" else []
    proc = subprocess.run(
        [
            str(ffmpeg),
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            "s16le",
            "-ar",
            str(speech.sample_rate),
            "-ac",
            "1",
            "-i",
            "pipe:0",
            "-ac",
            "1",
            *codec,
            "-f",
            fmt,
            "pipe:1",
        ],
        input=speech.pcm.tobytes(),
        capture_output=True,
        check=False,
        timeout=120,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg could not encode: {proc.stderr.decode(errors='replace')[-500:]}")
    return proc.stdout


def to_ogg_opus(speech: Speech, ffmpeg: Path) -> bytes:
    return encode(speech, ffmpeg, fmt="ogg")


def tone(seconds: float, *, frequency: float = 440.0, sample_rate: int = 22050) -> Speech:
    """A sine tone: audio of an exact length when the content does not matter."""
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    return Speech((8000 * np.sin(2 * np.pi * frequency * t)).astype(np.int16), sample_rate)
