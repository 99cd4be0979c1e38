-- When a queued job began waiting for its connection's re-authorization
-- (NULL when it does not wait for that). A job waiting longer than
-- `jobs.reauth_expiry_secs` while its connection is still `needs_reauth`
-- is buried as `dead` (Store::expire_reauth_waits).
ALTER TABLE jobs ADD COLUMN reauth_wait_since BIGINT;
