-- Which job wrote a profile, committed in the same transaction as the rows it wrote, so a job
-- interrupted between its commit and its status update can tell what happened.
CREATE TABLE job_log (
    user_id      TEXT    NOT NULL,
    job_id       TEXT    NOT NULL,
    committed_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, job_id)
) STRICT;
