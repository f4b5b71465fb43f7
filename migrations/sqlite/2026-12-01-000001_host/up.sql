-- The host backend's side: notification templates, the organisations users belong to (from
-- their tokens' orgs claim), and the answers kept for Idempotency-Key. Kept in step with
-- migrations/postgres.

CREATE TABLE notification_templates (
    key        TEXT PRIMARY KEY,
    category   TEXT NOT NULL,
    priority   TEXT NOT NULL,
    title      TEXT NOT NULL,
    body       TEXT NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

-- Replaced for a user each time they connect with a token.
CREATE TABLE user_orgs (
    user_id TEXT NOT NULL,
    org     TEXT NOT NULL,
    PRIMARY KEY (user_id, org)
);
CREATE INDEX user_orgs_org ON user_orgs (org);

-- One row per Idempotency-Key: status 0 while the first request is in flight, then its
-- answer. Rows older than 24 h are ignored and swept.
CREATE TABLE idempotency_keys (
    key         TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    status      INTEGER NOT NULL,
    body        TEXT,
    created_at  TIMESTAMP NOT NULL
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- Newest first per user, by id (UUIDv7: time-ordered).
CREATE INDEX notifications_user_id ON notifications (user_id, id);
