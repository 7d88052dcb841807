"""Speech Coach core package: settings, event contracts, audio, speech and text analysis.

Every runtime (bot, Flink jobs, Dagster, warehouse) imports this package; runtimes never import each other.
"""

__version__ = "0.1.0"
