-- Jobs and the audit trail. They live in their own database file (jobs.db), so that status
-- requests, progress reports and cancels never wait for a long restore holding the profile
-- database's write lock.

CREATE TABLE jobs (
    job_id           TEXT    PRIMARY KEY,
    user_id          TEXT    NOT NULL,
    job_type         TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    progress         INTEGER NOT NULL,
    current_phase    TEXT    NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    completed_at     INTEGER,
    expires_at       INTEGER,
    params           TEXT    NOT NULL,
    package_key      TEXT,
    package_size     INTEGER,
    package_sha256   TEXT,
    uploaded_at      INTEGER,
    results          TEXT    NOT NULL,
    error            TEXT,
    error_code       TEXT,
    work             TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    attempts         INTEGER NOT NULL DEFAULT 0,
    lease_owner      TEXT,
    lease_until      INTEGER,
    idempotency_key  TEXT,
    version          INTEGER NOT NULL
) STRICT;

CREATE INDEX jobs_by_user ON jobs (user_id, created_at, job_id);
CREATE UNIQUE INDEX jobs_by_idempotency_key ON jobs (user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX jobs_with_work ON jobs (created_at) WHERE work IS NOT NULL;
CREATE INDEX jobs_by_expiry ON jobs (expires_at) WHERE package_key IS NOT NULL;

CREATE TABLE audit (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,
    user_id TEXT    NOT NULL,
    action  TEXT    NOT NULL,
    job_id  TEXT,
    outcome TEXT    NOT NULL,
    detail  TEXT,
    source  TEXT
) STRICT;

CREATE INDEX audit_by_user ON audit (user_id, id);
