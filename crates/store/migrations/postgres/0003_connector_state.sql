-- Durable per-connection state a connector keeps across restarts (polling
-- cursors, a cached account identity). Not secret: plain JSON as text.
CREATE TABLE connector_state (
    connection_id TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    key           TEXT NOT NULL,
    value         TEXT NOT NULL,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (connection_id, key)
);
