"""PyFlink jobs: the answer job (transcription and feedback UDFs) and the sliding-window metrics job."""
