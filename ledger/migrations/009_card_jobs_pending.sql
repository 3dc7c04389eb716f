-- The card jobs still pending, for cardhost.RetryCardJobs: it runs again
-- the jobs a stopped process or a failed database left pending, and fails
-- those pending for too long.
CREATE INDEX card_jobs_pending ON card_jobs (created_at) WHERE status = 'pending';
