"""Production ETL: PostgreSQL -> MongoDB with schema-change detection (see docs/etl.md)."""
