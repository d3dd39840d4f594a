"""Ferry's sales family: the nightly sales load into DuckDB, user import, health checks and backups."""
