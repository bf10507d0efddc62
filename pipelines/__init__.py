"""The plain core, with no Dagster import: landing zone, staging, knowledge base and indicators
(one SQL file per table and view under ``sql/``), the impact comparison, data-quality checks,
the synthetic generator and read-only access. Callable from tests, scripts and the Dagster layer."""
