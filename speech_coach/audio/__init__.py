"""Audio shared by the runtimes: decoding to 16 kHz mono and offline speech synthesis for tests and simulation."""

from speech_coach.audio.decode import SAMPLE_RATE, Audio, AudioError, decode

__all__ = ["SAMPLE_RATE", "Audio", "AudioError", "decode"]
