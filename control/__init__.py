"""The local platform, one floor above the runtimes: the `speech-coach` CLI, the stack supervisor, pipeline status,
the docs generators, the simulator and the harnesses that drive the runtimes for tests and benchmarks.

It is the only package that starts runtimes by name; the runtimes and the core never import it.
"""
