-- Rules. Rules written through the API live here (rules from a file live in
-- the file). A run is one rule's answer to one event: its rendered actions,
-- how far it got and which jobs it created; (rule, event_id) is unique so
-- that an event starts a rule at most once, whichever process sees it.
CREATE TABLE rules (
    name        TEXT PRIMARY KEY,
    definition  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE rule_runs (
    id           TEXT PRIMARY KEY,
    rule         TEXT NOT NULL,
    event_id     BIGINT NOT NULL,
    queue        TEXT,
    priority     BIGINT NOT NULL,
    state        TEXT NOT NULL,
    actions      TEXT NOT NULL,
    next_action  BIGINT NOT NULL,
    error        TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    UNIQUE (rule, event_id)
);
CREATE INDEX rule_runs_state ON rule_runs (state, queue, priority, created_at);
CREATE INDEX rule_runs_event ON rule_runs (event_id);

-- Variables rules read and set (counters, last values), and small engine
-- state (the event cursor, paused queues).
CREATE TABLE rule_vars (
    name        TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE rule_meta (
    key         TEXT PRIMARY KEY,
    value       TEXT NOT NULL
);
