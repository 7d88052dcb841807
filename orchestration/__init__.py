"""Dagster definitions: question bank, warehouse ingestion, dbt assets, data quality and research exports."""
