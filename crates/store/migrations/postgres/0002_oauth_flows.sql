-- Authorization flows in progress (OAuth 2 PKCE, OAuth 1.0a): single use,
-- short-lived. The flow secret (PKCE verifier, request token secret) is sealed
-- by the vault.
CREATE TABLE oauth_flows (
    state          TEXT PRIMARY KEY,
    connection_id  TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    sealed_secret  BYTEA NOT NULL,
    data           TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    consumed_at    BIGINT
);
CREATE INDEX oauth_flows_expires ON oauth_flows (expires_at);
