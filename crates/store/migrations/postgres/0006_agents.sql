-- Agent tokens. An agent token is an `api_tokens` row with role `agent`;
-- the connections it may act on are listed here. A connection removed later
-- simply drops out of the scope (its row is deleted with it).
CREATE TABLE agent_connections (
    token_id      TEXT NOT NULL REFERENCES api_tokens (id) ON DELETE CASCADE,
    connection_id TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    PRIMARY KEY (token_id, connection_id)
);

CREATE INDEX agent_connections_by_connection ON agent_connections (connection_id);
