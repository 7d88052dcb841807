"""Offline speech synthesis with espeak-ng (the `espeakng-loader` wheel), for test audio and the simulator.

`speech(text)` returns 16-bit mono PCM; SSML such as `<break time="900ms"/>` inserts pauses of known length.
`to_ogg_opus` encodes PCM the way Telegram sends voice messages (OGG/Opus, mono, 48 kHz, 32 kbps).
libespeak-ng keeps global state, so every call goes through one lock.
"""

from __future__ import annotations

import ctypes
import math
import struct
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from speech_coach.settings import Settings
from speech_coach.tools import find_ffmpeg

_AUDIO_OUTPUT_SYNCHRONOUS = 2  # samples come to the callback, espeak_Synth returns when done
_ESPEAK_CHARS_UTF8 = 1
_ESPEAK_SSML = 0x10
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

_lock = threading.Lock()
_state: dict[str, object] = {}


@dataclass(frozen=True)
class Pcm:
    samples: bytes  # signed 16-bit little-endian, mono
    sample_rate: int

    @property
    def duration_s(self) -> float:
        return len(self.samples) / 2 / self.sample_rate


def _library() -> tuple[ctypes.CDLL, int]:
    if "lib" not in _state:
        import espeakng_loader

        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        data_parent = str(Path(espeakng_loader.get_data_path()).parent).encode()
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        rate = int(lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_parent, 0))
        if rate <= 0:
            raise RuntimeError(f"espeak-ng failed to initialize (returned {rate})")
        _state["lib"], _state["rate"] = lib, rate
    return _state["lib"], int(_state["rate"])  # type: ignore[return-value,call-overload]


def speech(text: str, *, voice: str = "en-us", words_per_minute: int = 150, ssml: bool = False) -> Pcm:
    """Synthesize `text` (plain, or SSML when `ssml`) to PCM."""
    with _lock:
        lib, rate = _library()
        chunks: list[bytes] = []

        def collect(wav: ctypes._Pointer[ctypes.c_short], count: int, _events: int | None) -> int:
            if count > 0:
                chunks.append(ctypes.string_at(wav, count * 2))
            return 0

        callback = _CALLBACK(collect)  # kept referenced until synthesis ends
        lib.espeak_SetSynthCallback(callback)
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {voice!r}")
        lib.espeak_SetParameter(1, words_per_minute, 0)  # espeakRATE, absolute
        data = text.encode()
        flags = _ESPEAK_CHARS_UTF8 | (_ESPEAK_SSML if ssml else 0)
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
            ctypes.c_void_p, ctypes.c_void_p,
        ]  # fmt: skip
        status = lib.espeak_Synth(data, len(data) + 1, 0, 1, 0, flags, None, None)
        if status != 0:
            raise RuntimeError(f"espeak_Synth failed with status {status}")
        lib.espeak_Synchronize()
        return Pcm(b"".join(chunks), rate)


def tone(seconds: float, *, frequency: float = 440.0, sample_rate: int = 22050) -> Pcm:
    """A sine tone: audio of an exact length when the content does not matter."""
    count = int(seconds * sample_rate)
    samples = (int(8000 * math.sin(2 * math.pi * frequency * i / sample_rate)) for i in range(count))
    return Pcm(struct.pack(f"<{count}h", *samples), sample_rate)


def to_ogg_opus(pcm: Pcm, settings: Settings) -> bytes:
    """Encode as Telegram encodes voice messages: OGG/Opus, mono, 48 kHz, 32 kbps, VoIP tuning."""
    ffmpeg = find_ffmpeg(settings).executable
    proc = subprocess.run(
        [str(ffmpeg), "-hide_banner", "-loglevel", "error", "-f", "s16le", "-ar", str(pcm.sample_rate), "-ac", "1",
         "-i", "pipe:0", "-ac", "1", "-ar", "48000", "-c:a", "libopus", "-b:a", "32k", "-application", "voip",
         "-f", "ogg", "pipe:1"],
        input=pcm.samples, capture_output=True, check=False, timeout=120,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg could not encode OGG/Opus: {proc.stderr.decode(errors='replace')[-400:]}")
    return proc.stdout


def voice_message(
    text: str, settings: Settings, *, voice: str = "en-us", words_per_minute: int = 150, ssml: bool = False
) -> tuple[bytes, float]:
    """A Telegram-like voice message of `text`: (OGG/Opus bytes, duration in seconds)."""
    pcm = speech(text, voice=voice, words_per_minute=words_per_minute, ssml=ssml)
    return to_ogg_opus(pcm, settings), pcm.duration_s
