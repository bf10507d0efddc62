"""Pipeline steps as plain functions (landing, staging, knowledge base, indicators)
and the thin Dagster asset definitions that call them."""
