-- The audit archive: records a connector keeps per connection as they arrive
-- (Twitch followers, subscriptions, raids, cheers), long after the event log
-- has been pruned. One record per (connection, kind, key): the service's
-- message id as key makes a redelivered notification a no-op.
CREATE TABLE archive_records (
    id            TEXT PRIMARY KEY,
    connection_id TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    kind          TEXT NOT NULL,
    record_key    TEXT NOT NULL,
    occurred_at   BIGINT NOT NULL,
    recorded_at   BIGINT NOT NULL,
    record        TEXT NOT NULL
);
CREATE UNIQUE INDEX archive_records_key ON archive_records (connection_id, kind, record_key);
CREATE INDEX archive_records_recent ON archive_records (connection_id, kind, occurred_at);
