"""Speech analysis shared by the runtimes: transcription engines, fluency from voice activity, word error rate."""
