"""The answer job: raw voice answers -> transcription, fluency, feedback -> feedback, metrics and dead letters."""
