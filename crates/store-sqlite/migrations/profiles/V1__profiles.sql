-- Profiles: one table per entity, every row keyed by its owner's user id.
-- Decimals are exact TEXT; times are integer milliseconds since the epoch; lists and nested
-- objects of one entity are JSON text; unknown keys are kept in `extra` (JSON object text).

CREATE TABLE accounts (
    user_id                TEXT    NOT NULL,
    account_id             TEXT    NOT NULL,
    account_name           TEXT    NOT NULL,
    account_type           TEXT    NOT NULL,
    institution            TEXT,
    balance                TEXT,
    currency               TEXT,
    notes                  TEXT,
    is_active              INTEGER NOT NULL,
    default_file_map_id    TEXT,
    first_transaction_date INTEGER,
    last_transaction_date  INTEGER,
    imports_start_date     INTEGER,
    imports_end_date       INTEGER,
    created_at             INTEGER NOT NULL,
    updated_at             INTEGER NOT NULL,
    extra                  TEXT,
    PRIMARY KEY (user_id, account_id)
) STRICT;

CREATE TABLE transactions (
    user_id             TEXT    NOT NULL,
    transaction_id      TEXT    NOT NULL,
    account_id          TEXT    NOT NULL,
    file_id             TEXT,
    date                INTEGER NOT NULL,
    description         TEXT    NOT NULL,
    amount              TEXT    NOT NULL,
    currency            TEXT,
    balance             TEXT,
    import_order        INTEGER,
    transaction_type    TEXT,
    memo                TEXT,
    check_number        TEXT,
    fit_id              TEXT,
    status              TEXT,
    status_date         TEXT,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    transaction_hash    INTEGER,
    categories          TEXT,
    primary_category_id TEXT,
    extra               TEXT,
    PRIMARY KEY (user_id, transaction_id)
) STRICT;

-- Backups read newest first; analytics read per account and month.
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
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL,
    inherit_parent_rules  INTEGER NOT NULL,
    rule_inheritance_mode TEXT    NOT NULL,
    extra                 TEXT,
    PRIMARY KEY (user_id, category_id)
) STRICT;

CREATE TABLE file_maps (
    user_id         TEXT    NOT NULL,
    file_map_id     TEXT    NOT NULL,
    name            TEXT    NOT NULL,
    mappings        TEXT    NOT NULL,
    account_id      TEXT,
    description     TEXT,
    reverse_amounts INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    extra           TEXT,
    PRIMARY KEY (user_id, file_map_id)
) STRICT;

CREATE TABLE transaction_files (
    user_id           TEXT    NOT NULL,
    file_id           TEXT    NOT NULL,
    file_name         TEXT    NOT NULL,
    upload_date       INTEGER NOT NULL,
    file_size         INTEGER NOT NULL,
    s3_key            TEXT,
    processing_status TEXT    NOT NULL,
    processed_date    INTEGER,
    file_format       TEXT,
    account_id        TEXT,
    file_map_id       TEXT,
    record_count      INTEGER,
    date_range        TEXT,
    error_message     TEXT,
    opening_balance   TEXT,
    closing_balance   TEXT,
    currency          TEXT,
    duplicate_count   INTEGER,
    transaction_count INTEGER,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    content_sha256    TEXT,
    content_size      INTEGER,
    extra             TEXT,
    PRIMARY KEY (user_id, file_id)
) STRICT;

CREATE TABLE analytics (
    user_id           TEXT    NOT NULL,
    analytic_key      TEXT    NOT NULL,
    analytic_type     TEXT    NOT NULL,
    time_period       TEXT    NOT NULL,
    account_id        TEXT,
    data              TEXT    NOT NULL,
    computed_date     TEXT    NOT NULL,
    data_through_date TEXT    NOT NULL,
    ttl               INTEGER,
    extra             TEXT,
    PRIMARY KEY (user_id, analytic_key)
) STRICT;
