"""The ClickHouse schema (versioned migrations) and access layer used by ingestion, dbt and exports."""
