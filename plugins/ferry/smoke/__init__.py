"""Smoke checks: one idempotent write and read-back per store (PostgreSQL, MongoDB, S3, DuckDB)."""
