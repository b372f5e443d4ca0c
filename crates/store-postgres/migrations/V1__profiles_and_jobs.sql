-- Profiles: one table per entity, every row keyed by its owner's user id (the same mapping as
-- SQLite, see fzip_store::codec). Decimals are exact TEXT; times are BIGINT milliseconds since
-- the epoch; lists and nested objects of one entity are JSON text (kept as written); unknown
-- keys are kept in `extra` (JSON object text).

CREATE TABLE accounts (
    user_id                TEXT    NOT NULL,
    account_id             TEXT    NOT NULL,
    account_name           TEXT    NOT NULL,
    account_type           TEXT    NOT NULL,
    institution            TEXT,
    balance                TEXT,
    currency               TEXT,
    notes                  TEXT,
    is_active              BOOLEAN NOT NULL,
    default_file_map_id    TEXT,
    first_transaction_date BIGINT,
    last_transaction_date  BIGINT,
    imports_start_date     BIGINT,
    imports_end_date       BIGINT,
    created_at             BIGINT  NOT NULL,
    updated_at             BIGINT  NOT NULL,
    extra                  TEXT,
    PRIMARY KEY (user_id, account_id)
);

CREATE TABLE transactions (
    user_id             TEXT    NOT NULL,
    transaction_id      TEXT    NOT NULL,
    account_id          TEXT    NOT NULL,
    file_id             TEXT,
    date                BIGINT  NOT NULL,
    description         TEXT    NOT NULL,
    amount              TEXT    NOT NULL,
    currency            TEXT,
    balance             TEXT,
    import_order        BIGINT,
    transaction_type    TEXT,
    memo                TEXT,
    check_number        TEXT,
    fit_id              TEXT,
    status              TEXT,
    status_date         TEXT,
    created_at          BIGINT  NOT NULL,
    updated_at          BIGINT  NOT NULL,
    transaction_hash    BIGINT,
    categories          TEXT,
    primary_category_id TEXT,
    extra               TEXT,
    PRIMARY KEY (user_id, transaction_id)
);

-- Backups read newest first; imports look transactions up by date range.
CREATE INDEX transactions_by_date ON transactions (user_id, date, transaction_id);

CREATE TABLE categories (
    user_id               TEXT    NOT NULL,
    category_id           TEXT    NOT NULL,
    name                  TEXT    NOT NULL,
    category_type         TEXT    NOT NULL,
    parent_category_id    TEXT,
    icon                  TEXT,
    color                 TEXT,
    rules                 TEXT    NOT NULL,
    created_at            BIGINT  NOT NULL,
    updated_at            BIGINT  NOT NULL,
    inherit_parent_rules  BOOLEAN NOT NULL,
    rule_inheritance_mode TEXT    NOT NULL,
    extra                 TEXT,
    PRIMARY KEY (user_id, category_id)
);

CREATE TABLE file_maps (
    user_id         TEXT    NOT NULL,
    file_map_id     TEXT    NOT NULL,
    name            TEXT    NOT NULL,
    mappings        TEXT    NOT NULL,
    account_id      TEXT,
    description     TEXT,
    reverse_amounts BOOLEAN NOT NULL,
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL,
    extra           TEXT,
    PRIMARY KEY (user_id, file_map_id)
);

CREATE TABLE transaction_files (
    user_id           TEXT    NOT NULL,
    file_id           TEXT    NOT NULL,
    file_name         TEXT    NOT NULL,
    upload_date       BIGINT  NOT NULL,
    file_size         BIGINT  NOT NULL,
    s3_key            TEXT,
    processing_status TEXT    NOT NULL,
    processed_date    BIGINT,
    file_format       TEXT,
    account_id        TEXT,
    file_map_id       TEXT,
    record_count      BIGINT,
    date_range        TEXT,
    error_message     TEXT,
    opening_balance   TEXT,
    closing_balance   TEXT,
    currency          TEXT,
    duplicate_count   BIGINT,
    transaction_count BIGINT,
    created_at        BIGINT  NOT NULL,
    updated_at        BIGINT  NOT NULL,
    content_sha256    TEXT,
    content_size      BIGINT,
    extra             TEXT,
    PRIMARY KEY (user_id, file_id)
);

CREATE TABLE analytics (
    user_id           TEXT    NOT NULL,
    analytic_key      TEXT    NOT NULL,
    analytic_type     TEXT    NOT NULL,
    time_period       TEXT    NOT NULL,
    account_id        TEXT,
    data              TEXT    NOT NULL,
    computed_date     TEXT    NOT NULL,
    data_through_date TEXT    NOT NULL,
    ttl               BIGINT,
    extra             TEXT,
    PRIMARY KEY (user_id, analytic_key)
);

-- Which job wrote a profile, committed in the same transaction as the rows it wrote.
CREATE TABLE job_log (
    user_id      TEXT   NOT NULL,
    job_id       TEXT   NOT NULL,
    committed_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, job_id)
);

-- Jobs and the audit trail, shared by every server process. Workers claim jobs with
-- FOR UPDATE SKIP LOCKED and hold a lease they renew with each progress report.
CREATE TABLE jobs (
    job_id           TEXT    PRIMARY KEY,
    user_id          TEXT    NOT NULL,
    job_type         TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    progress         INTEGER NOT NULL,
    current_phase    TEXT    NOT NULL,
    created_at       BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL,
    completed_at     BIGINT,
    expires_at       BIGINT,
    params           TEXT    NOT NULL,
    package_key      TEXT,
    package_size     BIGINT,
    package_sha256   TEXT,
    uploaded_at      BIGINT,
    results          TEXT    NOT NULL,
    error            TEXT,
    error_code       TEXT,
    work             TEXT,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    attempts         INTEGER NOT NULL DEFAULT 0,
    lease_owner      TEXT,
    lease_until      BIGINT,
    idempotency_key  TEXT,
    version          BIGINT  NOT NULL
);

CREATE INDEX jobs_by_user ON jobs (user_id, created_at, job_id);
CREATE UNIQUE INDEX jobs_by_idempotency_key ON jobs (user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX jobs_with_work ON jobs (created_at) WHERE work IS NOT NULL;
CREATE INDEX jobs_by_expiry ON jobs (expires_at) WHERE package_key IS NOT NULL;

CREATE TABLE audit (
    id      BIGSERIAL PRIMARY KEY,
    at      BIGINT NOT NULL,
    user_id TEXT   NOT NULL,
    action  TEXT   NOT NULL,
    job_id  TEXT,
    outcome TEXT   NOT NULL,
    detail  TEXT,
    source  TEXT
);

CREATE INDEX audit_by_user ON audit (user_id, id);
