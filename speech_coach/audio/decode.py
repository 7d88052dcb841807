"""Decode a voice answer (any container ffmpeg reads: OGG/Opus from Telegram, WAV, MP3...) to 16 kHz mono.

ffmpeg does the decoding and resampling and writes a WAV that pydub reads; pydub's own `from_file` is not used
because it needs `ffprobe` for non-WAV input (the imageio-ffmpeg wheel carries only ffmpeg) and places extra
ffmpeg parameters after the output, where ffmpeg ignores them. Every failure is an `AudioError` with a machine
reason the pipeline reports to the learner and the dead-letter topic.
"""

from __future__ import annotations

import io
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from speech_coach.rejections import RejectionReason

with warnings.catch_warnings():
    # pydub warns at import when no ffmpeg is on PATH; it is given one explicitly (speech_coach.tools).
    warnings.simplefilter("ignore", RuntimeWarning)
    from pydub import AudioSegment

SAMPLE_RATE = 16_000
# The bytes come from learners. ffmpeg would otherwise pick any demuxer its probe suggests, playlists included
# (HLS, DASH, concat, SDP), which open further URLs or files: only audio containers may read them, only from the
# pipe.
DEMUXERS = "ogg,matroska,webm,wav,mp3,mov,aac,flac"
PROTOCOLS = "pipe"


class AudioError(ValueError):
    """The audio cannot be used, for `reason` (docs/answer-pipeline.md lists the codes)."""

    def __init__(self, reason: RejectionReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Audio:
    samples: npt.NDArray[np.float32]  # mono, SAMPLE_RATE, in [-1, 1]

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE

    def wav_bytes(self) -> bytes:
        """16-bit WAV, e.g. to upload to a transcription API."""
        pcm = (np.clip(self.samples, -1.0, 1.0) * 32767).astype(np.int16)
        segment = AudioSegment(pcm.tobytes(), frame_rate=SAMPLE_RATE, sample_width=2, channels=1)
        out = io.BytesIO()
        segment.export(out, format="wav")
        return out.getvalue()


def decode(data: bytes, ffmpeg: Path, *, max_duration_s: float, timeout_s: float = 60.0) -> Audio:
    """16 kHz mono samples of `data`. Raises AudioError: audio.empty, audio.undecodable, audio.too_long."""
    if not data:
        raise AudioError(RejectionReason.AUDIO_EMPTY, "the audio file is empty")
    # Decode at most a little more than the limit: a too-long answer is refused without decoding all of it.
    cap = f"{max_duration_s + 1.0:.3f}"
    try:
        proc = subprocess.run(
            [
                str(ffmpeg),
                "-nostdin",
                "-hide_banner",
                "-loglevel",
                "error",
                "-protocol_whitelist",
                PROTOCOLS,
                "-format_whitelist",
                DEMUXERS,
                "-i",
                "pipe:0",
                "-t",
                cap,
                "-vn",
                "-ac",
                "1",
                "-ar",
                str(SAMPLE_RATE),
                "-c:a",
                "pcm_s16le",
                "-f",
                "wav",
                "pipe:1",
            ],
            input=data,
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise AudioError(RejectionReason.AUDIO_UNDECODABLE, f"decoding took longer than {timeout_s:.0f} s") from exc
    if proc.returncode != 0 or len(proc.stdout) <= 44:
        # The first line says why (e.g. a refused format); the last one only that opening failed.
        detail = [line.strip() for line in proc.stderr.decode(errors="replace").splitlines() if line.strip()]
        message = " / ".join(dict.fromkeys([detail[0], detail[-1]])) if detail else "no audio stream"
        if proc.returncode == 0:  # a valid container with no samples in it
            raise AudioError(RejectionReason.AUDIO_EMPTY, "the audio has no samples")
        raise AudioError(RejectionReason.AUDIO_UNDECODABLE, f"ffmpeg could not decode the audio: {message}"[:500])
    segment = AudioSegment.from_wav(io.BytesIO(proc.stdout))
    pcm = np.frombuffer(segment.raw_data, dtype=np.int16)
    audio = Audio(pcm.astype(np.float32) / 32768.0)
    if audio.duration_s < 0.05:
        raise AudioError(RejectionReason.AUDIO_EMPTY, f"the audio lasts only {audio.duration_s:.2f} s")
    if audio.duration_s > max_duration_s:
        raise AudioError(RejectionReason.AUDIO_TOO_LONG, f"the audio is longer than {max_duration_s:.0f} s")
    return audio
