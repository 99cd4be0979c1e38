-- Foundation schema. Timestamps are epoch milliseconds, flags 0/1, JSON as text:
-- the same representation on SQLite and PostgreSQL (see store/src/lib.rs).
CREATE TABLE connections (
    id            TEXT PRIMARY KEY,
    connector     TEXT NOT NULL,
    label         TEXT NOT NULL,
    enabled       BIGINT NOT NULL,
    settings      TEXT NOT NULL,
    status        TEXT NOT NULL,
    status_reason TEXT,
    status_since  BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE UNIQUE INDEX connections_connector_label ON connections (connector, label);

CREATE TABLE vault_meta (
    id          BIGINT PRIMARY KEY,
    key_check   BYTEA NOT NULL,
    rotated_at  BIGINT NOT NULL
);

CREATE TABLE data_keys (
    scope       TEXT PRIMARY KEY,
    wrapped     BYTEA NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE secrets (
    connection_id TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    sealed        BYTEA NOT NULL,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (connection_id, name)
);

CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    role         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    revoked_at   BIGINT
);

CREATE TABLE jobs (
    id               TEXT PRIMARY KEY,
    connection_id    TEXT NOT NULL,
    action           TEXT NOT NULL,
    params           TEXT NOT NULL,
    state            TEXT NOT NULL,
    attempts         BIGINT NOT NULL,
    max_attempts     BIGINT NOT NULL,
    next_attempt_at  BIGINT NOT NULL,
    idempotency_key  TEXT UNIQUE,
    result           TEXT,
    error            TEXT,
    waiting_reason   TEXT,
    recovered        BIGINT NOT NULL,
    lease_owner      TEXT,
    lease_expires_at BIGINT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    started_at       BIGINT,
    finished_at      BIGINT
);
CREATE INDEX jobs_due ON jobs (state, next_attempt_at);
CREATE INDEX jobs_connection ON jobs (connection_id, state);

CREATE TABLE events (
    id            BIGSERIAL PRIMARY KEY,
    kind          TEXT NOT NULL,
    connection_id TEXT,
    payload       TEXT NOT NULL,
    at            BIGINT NOT NULL
);
CREATE INDEX events_at ON events (at);
