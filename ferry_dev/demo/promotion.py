"""Demo step: promote curated local MongoDB data to production (dry run, then execute), then a dataset.

Seeds the local and production servers with overlapping companies / documents / meta summaries
(production already holds one company under another ``_id``, one document and one summary).
"""

from __future__ import annotations

from datetime import datetime

ORDER = 40
DB = "clausea_promotion_demo"
CATALOG_DB = "ferry_catalog_demo"


def _seed(local_db, prod_db) -> None:
    t0, t1 = datetime(2026, 1, 1), datetime(2026, 6, 1)
    prod_db.companies.create_index("domain", unique=True)
    prod_db.companies.insert_one({"_id": "prod-acme", "domain": "acme.com", "name": "Acme", "updated_at": t0})
    prod_db.documents.insert_one(
        {
            "_id": "prod-doc",
            "url": "https://acme.com/privacy",
            "company_id": "prod-acme",
            "title": "Acme privacy policy",
            "updated_at": t0,
        }
    )
    prod_db.meta_summaries.insert_one(
        {
            "_id": "prod-sum",
            "company_id": "prod-acme",
            "kind": "privacy",
            "text": "Acme keeps data 30 days",
            "updated_at": t0,
        }
    )
    companies = [
        ("acme", "acme.com", "Acme"),
        ("globex", "globex.com", "Globex"),
        ("initech", "initech.com", "Initech"),
    ]
    local_db.companies.insert_many([{"_id": i, "domain": d, "name": n, "updated_at": t1} for i, d, n in companies])
    local_db.documents.insert_many(
        [
            {
                "_id": f"{c}-{kind}",
                "url": f"https://{d}/{kind}",
                "company_id": c,
                "title": f"{n} {kind}",
                "updated_at": t1,
            }
            for c, d, n in companies
            for kind in ("privacy", "terms")
        ]
    )
    local_db.meta_summaries.insert_many(
        [
            {"_id": f"{c}-sum", "company_id": c, "kind": "privacy", "text": f"{n} summary", "updated_at": t1}
            for c, _, n in companies
        ]
    )


def _seed_catalog(local_db, s3, bucket: str) -> None:
    local_db.schemas.insert_one(
        {
            "module": "clausea.samples",
            "class_name": "PolicySample",
            "version": "1.0.0",
            "definition": {"fields": {"text": "str", "label": "int"}},
        }
    )
    for name in ("policies-train", "policies-eval"):
        key = f"datasets/{name}/part-000.jsonl"
        s3.put_object(Bucket=bucket, Key=key, Body=b'{"text": "we sell your data", "label": 1}\n' * 100)
        local_db.datasets.insert_one(
            {
                "name": name,
                "schema_ref": "clausea.samples.PolicySample@1.0.0",
                "data_urls": [f"s3://{bucket}/{key}"],
                "tags": ["legal"],
                "description": f"{name} split",
                "license": "CC-BY-4.0",
                "metadata": {"rows": 100},
            }
        )


def run(ctx) -> list[dict]:
    from ferry_dev import dagtest

    s3 = ctx.stack.s3_client()
    public = ctx.bucket + "-public"
    for b in (ctx.bucket, public):
        try:
            s3.create_bucket(Bucket=b)
        except Exception:  # noqa: BLE001 - already there
            pass
    with ctx.stack.mongo_client("local") as local, ctx.stack.mongo_client("prod") as prod:
        _seed(local[DB], prod[DB])
        _seed_catalog(local[CATALOG_DB], s3, ctx.bucket)

        base = {"source_db": DB, "target_db": DB}
        dr = ctx.run_dag("prod_promotion", {**base, "mode": "dry_run", "report_url": f"s3://{ctx.bucket}/promotion"})
        plan = dagtest.xcom(dr, "plan")
        would = ", ".join(f"{r['collection']} +{r['insert']}/={r['skip']}" for r in plan["summary"])
        dr = ctx.run_dag("prod_promotion", {**base, "mode": "execute", "confirm": DB})
        res = dagtest.xcom(dr, "execute")
        landed = ", ".join(f"{r['collection']} +{r['inserted']}/skipped {r['skipped']}" for r in res["outcome"])
        counts = {c: prod[DB][c].count_documents({}) for c in ("companies", "documents", "meta_summaries")}
        dr = ctx.run_dag("prod_promotion", {**base, "mode": "execute", "confirm": DB})
        again = sum(r["inserted"] + r["updated"] for r in dagtest.xcom(dr, "execute")["outcome"])

        conf = {"source_db": CATALOG_DB, "target_db": CATALOG_DB, "copy_data": True, "target_bucket": public}
        conf["dry_run"] = False
        rows = dagtest.xcom(ctx.run_dag("dataset_promotion", conf), "promote")
    ctx.notes.append(f"prod_promotion dry-run plan (JSON lines): {plan['report']}; audit: {DB}._ferry_promotions")
    return [
        {"dag": "prod_promotion (dry_run)", "result": f"would insert/skip: {would}; production untouched"},
        {"dag": "prod_promotion (execute)", "result": f"{landed}; production now {counts}; rerun wrote {again}"},
        {"dag": "dataset_promotion", "result": "; ".join(f"{r['dataset']}: {r['schema']}, {r['data']}" for r in rows)},
    ]
