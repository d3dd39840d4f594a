"""Demo data for include/etl/demo_schema.sql (deterministic; COPY in; sized by argument)."""

from __future__ import annotations

import datetime as dt
import json
import random
from decimal import Decimal

from ferry import settings

SCHEMA_SQL = settings.include("etl", "demo_schema.sql")
MAPPING = settings.include("etl", "demo_mapping.yaml")

REGIONS = ["emea", "amer", "apac", None]
STATUSES = ["draft", "live", "paused", "done"]
CHANNELS = ["search", "social", "video", "display", "audio"]


def create_schema(conn) -> None:
    conn.execute(SCHEMA_SQL.read_text())
    conn.commit()


def seed(
    conn, accounts: int = 40, campaigns_per: int = 3, items_per: int = 4, tags_per: int = 2, seed_: int = 7
) -> dict:
    """Insert accounts, their campaigns, line items and tags (COPY). Returns row counts."""
    rnd = random.Random(seed_)
    base = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    counts = {"accounts": 0, "campaigns": 0, "line_items": 0, "campaign_tags": 0}
    cur = conn.cursor()
    with cur.copy("COPY accounts (id, name, email, balance, region, settings, created_at) FROM STDIN") as cp:
        for a in range(1, accounts + 1):
            settings = (
                json.dumps({"currency": rnd.choice(["EUR", "USD"]), "alerts": rnd.random() < 0.5}) if a % 5 else None
            )
            cp.write_row(
                (
                    a,
                    f"Account {a}",
                    f"a{a}@example.com" if a % 7 else None,
                    Decimal(rnd.randint(0, 10_000_000)) / 100,
                    REGIONS[a % 4],
                    settings,
                    base + dt.timedelta(minutes=a),
                )
            )
            counts["accounts"] += 1
    c_id = 0
    with cur.copy(
        "COPY campaigns (id, account_id, name, status, budget, starts_on, channels, created_at) FROM STDIN"
    ) as cp:
        for a in range(1, accounts + 1):
            for _ in range(campaigns_per):
                c_id += 1
                cp.write_row(
                    (
                        c_id,
                        a,
                        f"Campaign {c_id}",
                        STATUSES[c_id % 4],
                        Decimal(rnd.randint(100, 5_000_000)) / 100 if c_id % 6 else None,
                        (base + dt.timedelta(days=c_id % 90)).date() if c_id % 4 else None,
                        rnd.sample(CHANNELS, k=1 + c_id % 3),
                        base + dt.timedelta(hours=c_id),
                    )
                )
                counts["campaigns"] += 1
    li = tg = 0
    with cur.copy("COPY line_items (id, campaign_id, description, rate, quantity, updated_at) FROM STDIN") as cp:
        for c in range(1, c_id + 1):
            for _ in range(items_per):
                li += 1
                cp.write_row(
                    (
                        li,
                        c,
                        f"Line {li}" if li % 9 else None,
                        Decimal(rnd.randint(1, 999_999)) / 10_000,
                        rnd.randint(1, 1000),
                        base + dt.timedelta(seconds=li) if li % 3 else None,
                    )
                )
    with cur.copy("COPY campaign_tags (id, campaign_id, tag) FROM STDIN") as cp:
        for c in range(1, c_id + 1):
            for k in range(tags_per):
                tg += 1
                cp.write_row((tg, c, f"tag-{(c + k) % 11}"))
    counts["line_items"], counts["campaign_tags"] = li, tg
    conn.commit()
    return counts
