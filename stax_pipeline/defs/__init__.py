"""Dagster definitions, one folder per integration (dagster-open-platform layout)."""
