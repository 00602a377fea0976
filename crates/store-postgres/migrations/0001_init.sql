-- dingbridge store, PostgreSQL. Times are Unix milliseconds (BIGINT); JSON is TEXT, as on SQLite.

CREATE TABLE connections (
    name        TEXT PRIMARY KEY NOT NULL,
    kind        TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE flows (
    name        TEXT PRIMARY KEY NOT NULL,
    recipe      TEXT NOT NULL,
    enabled     BOOLEAN NOT NULL,
    config_hash TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE jobs (
    id               BIGSERIAL PRIMARY KEY,
    queue            TEXT NOT NULL,
    kind             TEXT NOT NULL,
    payload          TEXT NOT NULL,
    flow             TEXT,
    status           TEXT NOT NULL CHECK (status IN ('queued','running','retry','done','dead','discarded')),
    priority         BIGINT NOT NULL DEFAULT 0,
    attempts         BIGINT NOT NULL DEFAULT 0,
    max_attempts     BIGINT NOT NULL,
    run_at           BIGINT NOT NULL,
    idempotency_key  TEXT UNIQUE,
    lease_owner      TEXT,
    lease_expires_at BIGINT,
    lease_seq        BIGINT NOT NULL DEFAULT 0,
    last_error       TEXT,
    error_class      TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    finished_at      BIGINT
);
-- The claim scans only runnable jobs, in claim order.
CREATE INDEX jobs_runnable ON jobs (queue, priority DESC, run_at, id) WHERE status IN ('queued','retry');
CREATE INDEX jobs_leases ON jobs (lease_expires_at) WHERE status = 'running';
CREATE INDEX jobs_status ON jobs (status, id);

CREATE TABLE events (
    id           BIGSERIAL PRIMARY KEY,
    connection   TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    payload      TEXT NOT NULL,
    received_at  BIGINT NOT NULL,
    processed_at BIGINT,
    UNIQUE (connection, event_id)
);

CREATE TABLE links (
    flow         TEXT NOT NULL,
    source_key   TEXT NOT NULL,
    target_key   TEXT,
    step         TEXT NOT NULL,
    payload_hash TEXT,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (flow, source_key)
);
CREATE INDEX links_target ON links (flow, target_key);

CREATE TABLE transfer_log (
    id          BIGSERIAL PRIMARY KEY,
    flow        TEXT NOT NULL,
    source_key  TEXT NOT NULL,
    target_key  TEXT,
    job_id      BIGINT,
    attempt     BIGINT NOT NULL,
    request     TEXT,
    response    TEXT,
    outcome     TEXT NOT NULL,
    error       TEXT,
    started_at  BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL
);
CREATE INDEX transfer_log_record ON transfer_log (flow, source_key, id);

CREATE TABLE checkpoints (
    flow       TEXT NOT NULL,
    name       TEXT NOT NULL,
    value      TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (flow, name)
);

CREATE TABLE schedules (
    name          TEXT PRIMARY KEY NOT NULL,
    cron          TEXT NOT NULL,
    next_fire_at  BIGINT NOT NULL,
    last_fired_at BIGINT,
    updated_at    BIGINT NOT NULL
);

CREATE TABLE identities (
    id              BIGSERIAL PRIMARY KEY,
    dingtalk_userid TEXT NOT NULL UNIQUE,
    unionid         TEXT,
    kingdee_user    TEXT,
    ehr_number      TEXT,
    mobile          TEXT,
    job_number      TEXT,
    email           TEXT,
    matched_by      TEXT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX identities_unionid ON identities (unionid);
CREATE INDEX identities_kingdee ON identities (kingdee_user);
CREATE INDEX identities_ehr ON identities (ehr_number);
CREATE INDEX identities_mobile ON identities (mobile);
CREATE INDEX identities_job_number ON identities (job_number);

CREATE TABLE deliveries (
    id          BIGSERIAL PRIMARY KEY,
    endpoint    TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    attempt     BIGINT NOT NULL,
    status_code BIGINT,
    response    TEXT,
    outcome     TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL
);
CREATE INDEX deliveries_endpoint ON deliveries (endpoint, id);

CREATE TABLE audit (
    id     BIGSERIAL PRIMARY KEY,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL,
    at     BIGINT NOT NULL
);
