"""The run request of ``ferry_smoke`` (``dags/smoke.py`` gives ``SmokeRequest.params()`` to the DAG; each task
reads ``SmokeRequest.from_context(ctx)``). Imported by the DAG file at parse time: keep it light."""

from __future__ import annotations

from ferry.request import Bucket, MongoDatabase, Request, Text, param


class SmokeRequest(Request):
    """A ``ferry_smoke`` run's params."""

    run_key: Text | None = param(None, "Key of this check's records. Empty: the run id.")
    mongo_db: MongoDatabase = param("ferry_smoke", "MongoDB database on ferry_mongo_local.")
    bucket: Bucket = param("ferry-smoke", "S3 bucket on ferry_s3 (created if missing).")

    def key(self, run_id: str) -> str:
        """The key of this run's records."""
        return self.run_key or run_id
