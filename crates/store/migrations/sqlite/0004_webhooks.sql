-- Webhook deliveries: every request to POST /hooks/{name}, accepted or not,
-- with its headers (those carrying secrets removed), body and verdict, kept
-- per hook by age and count. An accepted delivery id is unique per hook
-- (replay protection); refused attempts with the same id are recorded too,
-- hence a partial index rather than a table constraint.
CREATE TABLE webhook_deliveries (
    id            TEXT PRIMARY KEY,
    connection_id TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    hook          TEXT NOT NULL,
    delivery_id   TEXT,
    received_at   BIGINT NOT NULL,
    verdict       TEXT NOT NULL,
    failed_check  TEXT,
    reason        TEXT,
    headers       TEXT NOT NULL,
    body          BLOB NOT NULL,
    body_size     BIGINT NOT NULL,
    event_id      BIGINT
);
CREATE UNIQUE INDEX webhook_deliveries_accepted_id
    ON webhook_deliveries (connection_id, delivery_id) WHERE verdict = 'accepted';
CREATE INDEX webhook_deliveries_recent ON webhook_deliveries (connection_id, received_at);
