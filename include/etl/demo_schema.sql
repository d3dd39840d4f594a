-- Ferry production_etl demo schema: an ad-campaign tool's PostgreSQL database.
-- Accounts own campaigns; campaigns have line items and tags. Nullable columns, numeric, jsonb,
-- arrays and timestamptz on purpose: they are what the mapping converts.
CREATE TABLE accounts (
    id          bigint PRIMARY KEY,
    name        text NOT NULL,
    email       text UNIQUE,
    balance     numeric(14, 2),
    region      text,
    settings    jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE campaigns (
    id          bigint PRIMARY KEY,
    account_id  bigint NOT NULL REFERENCES accounts (id),
    name        text NOT NULL,
    status      text NOT NULL DEFAULT 'draft',
    budget      numeric(12, 2),
    starts_on   date,
    channels    text[],
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX campaigns_account_idx ON campaigns (account_id);

CREATE TABLE line_items (
    id           bigint PRIMARY KEY,
    campaign_id  bigint NOT NULL REFERENCES campaigns (id),
    description  text,
    rate         numeric(10, 4) NOT NULL,
    quantity     integer NOT NULL,
    updated_at   timestamptz
);
CREATE INDEX line_items_campaign_idx ON line_items (campaign_id);

CREATE TABLE campaign_tags (
    id           bigint PRIMARY KEY,
    campaign_id  bigint NOT NULL REFERENCES campaigns (id),
    tag          text NOT NULL
);
