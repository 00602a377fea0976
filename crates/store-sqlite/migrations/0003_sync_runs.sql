-- Org sync (issue 5): every run with its status, counts and duration. Times are Unix
-- milliseconds (INTEGER); JSON is TEXT; `complete` is 0/1, NULL until the run finishes.
CREATE TABLE sync_runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    flow        TEXT NOT NULL,
    mode        TEXT NOT NULL,
    job_id      INTEGER,
    status      TEXT NOT NULL CHECK (status IN ('running','success','partial','failed')),
    complete    INTEGER,
    counts      TEXT NOT NULL,
    report      TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 1,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX sync_runs_flow ON sync_runs (flow, id);
CREATE INDEX sync_runs_job ON sync_runs (job_id);
-- A job has at most one running run: a second start by the same job resumes it (the upsert's
-- conflict target), also when two starts race.
CREATE UNIQUE INDEX sync_runs_running_job ON sync_runs (job_id) WHERE status = 'running';
