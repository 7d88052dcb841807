"""Benchmarks behind `make bench`. Each module measures one part and writes its section of docs/benchmarks.md."""
