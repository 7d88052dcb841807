"""Drivers for the real runtimes, shared by the tests and the benchmarks: a Telegram Bot API stand-in with
simulated learners, the answer job as a child process, and the whole learner path as separate processes."""
