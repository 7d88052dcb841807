"""Audio helpers shared by the runtimes and their tests."""
