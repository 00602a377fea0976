-- The approval bridge (issue 6): API keys of in-house systems (hashed), idempotency keys of
-- their requests, the approvals they started, and the webhook outbox (ordered per subject).
-- Times are Unix milliseconds (INTEGER); JSON is TEXT.

CREATE TABLE api_keys (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL UNIQUE,
    hash         TEXT NOT NULL,
    -- A JSON array of scope names.
    scopes       TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
);

-- `status_code` and `response` stay NULL while the request is being answered.
CREATE TABLE idempotency_keys (
    api_key_id   INTEGER NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status_code  INTEGER,
    response     TEXT,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    PRIMARY KEY (api_key_id, key)
);

CREATE TABLE approvals (
    id           TEXT PRIMARY KEY NOT NULL,
    flow         TEXT NOT NULL,
    api_key_id   INTEGER,
    process_code TEXT NOT NULL,
    instance_id  TEXT UNIQUE,
    originator   TEXT NOT NULL,
    business_key TEXT,
    request      TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('pending','running','completed','terminated','failed')),
    result       TEXT,
    snapshot     TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX approvals_flow ON approvals (flow, created_at);
CREATE INDEX approvals_status ON approvals (status);
CREATE INDEX approvals_business_key ON approvals (business_key);

-- One row per subject: adding and finishing a subject's messages write this row first, so they
-- take turns per subject; `last_seq` is the seq of the subject's last message.
CREATE TABLE webhook_subjects (
    subject  TEXT PRIMARY KEY NOT NULL,
    last_seq INTEGER NOT NULL
);

CREATE TABLE webhook_messages (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    subject      TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    endpoint     TEXT NOT NULL,
    message_id   TEXT NOT NULL UNIQUE,
    event_type   TEXT NOT NULL,
    payload      TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('pending','delivered','dead')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    delivered_at INTEGER,
    UNIQUE (subject, seq)
);
