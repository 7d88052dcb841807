"""Dagster definitions: question bank, warehouse ingestion, dbt assets, data quality and research exports.

`defs` is here too, so `dagster ... -m orchestration` finds the code location as `-m orchestration.definitions`
(what `make run` and `[tool.dagster]` in pyproject.toml name) does.
"""

from orchestration.definitions import defs

__all__ = ["defs"]
