-- The outbox's claim finds, for each patient with a due submission, the oldest undelivered one with
-- one index probe (LIMIT 1 in this order) instead of sorting every undelivered row of every such
-- patient: a one-patient backlog of 10,000 rows cost 6-12 ms per claim, 3-4 ms with this index
-- (bench/README.md, step 5). Only undelivered rows are indexed, so delivered ones kept for the
-- retention period are never walked.
CREATE INDEX submissions_pending_heads ON submissions (country, patient_ref, submitted_at, tracking_id) WHERE status IN ('queued', 'delivering');
