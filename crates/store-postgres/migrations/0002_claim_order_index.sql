-- The claim walks runnable jobs in claim order and stops at its LIMIT. The first index led
-- with `queue`, which the claim's queue filter (a list, or all queues) cannot use in order, so
-- every claim read and sorted the whole backlog (found by `scripts/bench queue`).
DROP INDEX jobs_runnable;
CREATE INDEX jobs_claim_order ON jobs (priority DESC, run_at, id) WHERE status IN ('queued', 'retry');
