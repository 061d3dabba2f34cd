"""Provider sources: one folder per provider API, each a dlt source."""
