-- Org sync (issue 5): every run with its status, counts and duration. Times are Unix
-- milliseconds (BIGINT); JSON is TEXT, as on SQLite; `complete` is NULL until the run finishes.
CREATE TABLE sync_runs (
    id          BIGSERIAL PRIMARY KEY,
    flow        TEXT NOT NULL,
    mode        TEXT NOT NULL,
    job_id      BIGINT,
    status      TEXT NOT NULL CHECK (status IN ('running','success','partial','failed')),
    complete    BOOLEAN,
    counts      TEXT NOT NULL,
    report      TEXT NOT NULL,
    attempts    BIGINT NOT NULL DEFAULT 1,
    started_at  BIGINT NOT NULL,
    finished_at BIGINT,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX sync_runs_flow ON sync_runs (flow, id);
CREATE INDEX sync_runs_job ON sync_runs (job_id);
-- A job has at most one running run: a second start by the same job resumes it (the upsert's
-- conflict target), also when two starts race.
CREATE UNIQUE INDEX sync_runs_running_job ON sync_runs (job_id) WHERE status = 'running';

-- Reconciliation pages through a flow's links by source key. Keys are ordered as bytes, as on
-- SQLite (BINARY) and in Rust, whatever the database's collation: this index serves
-- `ORDER BY source_key COLLATE "C"` and its range conditions.
CREATE INDEX links_source_bytes ON links (flow, source_key COLLATE "C");
