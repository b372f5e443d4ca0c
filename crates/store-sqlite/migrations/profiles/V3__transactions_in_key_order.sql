-- Transactions live in key order: the table is clustered on (user_id, transaction_id)
-- (WITHOUT ROWID), and backups read them in that order. Restoring an fzip package therefore
-- appends to the table instead of writing pages at random, and reading a profile (backups,
-- analytics, imports' duplicate index) walks its rows in storage order. A second index on the
-- date would take the random writes back (1M-row restores measured twice as slow with it);
-- date ranges scan the profile instead.
CREATE TABLE transactions_by_key (
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
) STRICT, WITHOUT ROWID;

INSERT INTO transactions_by_key SELECT * FROM transactions ORDER BY user_id, transaction_id;
DROP TABLE transactions;
ALTER TABLE transactions_by_key RENAME TO transactions;
