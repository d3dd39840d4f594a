"""Demo step: the smoke DAG touches PostgreSQL, MongoDB, S3 and DuckDB once each."""

ORDER = 0


def run(ctx) -> list[dict]:
    from ferry_dev import dagtest

    dr = ctx.run_dag("ferry_smoke", {"run_key": "demo", "bucket": ctx.bucket})
    results = {r["store"]: r for r in dagtest.xcom(dr, "duckdb")}
    return [
        {
            "dag": "ferry_smoke",
            "result": (
                f"postgres rows={results['postgres']['rows']}, mongo docs={results['mongo']['documents']}, "
                f"s3 bytes={results['s3']['bytes']}, duckdb rows={results['duckdb']['rows']}"
            ),
        }
    ]
