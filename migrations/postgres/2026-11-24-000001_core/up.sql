-- Core chat schema. Kept in step with migrations/sqlite (same tables, columns and indexes);
-- tests/it/store.rs compares the two. Timestamps are UTC without a zone, at millisecond
-- precision, so both backends store the same values.

CREATE TABLE threads (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (kind IN ('direct', 'group')),
    title        TEXT,
    -- The host app's key for threads it creates through the server API (e.g. job:123).
    external_ref TEXT UNIQUE,
    -- Sorted pair of user ids for direct threads: the unique index makes racing
    -- "send to bob" requests converge on one thread.
    direct_key   TEXT UNIQUE,
    last_seq     BIGINT NOT NULL DEFAULT 0,
    created_by   TEXT,
    created_at   TIMESTAMP NOT NULL,
    updated_at   TIMESTAMP NOT NULL
);

CREATE TABLE members (
    thread_id     TEXT NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
    user_id       TEXT NOT NULL,
    read_seq      BIGINT NOT NULL DEFAULT 0,
    delivered_seq BIGINT NOT NULL DEFAULT 0,
    joined_at     TIMESTAMP NOT NULL,
    read_at       TIMESTAMP,
    delivered_at  TIMESTAMP,
    PRIMARY KEY (thread_id, user_id)
);
CREATE INDEX members_user ON members (user_id);

CREATE TABLE messages (
    id         TEXT PRIMARY KEY,
    thread_id  TEXT NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
    seq        BIGINT NOT NULL,
    sender_id  TEXT NOT NULL,
    kind       TEXT NOT NULL,
    body       TEXT NOT NULL,
    metadata   TEXT,
    reply_to   TEXT,
    client_id  TEXT,
    created_at TIMESTAMP NOT NULL,
    edited_at  TIMESTAMP,
    deleted    BOOLEAN NOT NULL DEFAULT FALSE,
    UNIQUE (thread_id, seq)
);
-- Idempotency: one message per (sender, client_id), whatever the thread.
CREATE UNIQUE INDEX messages_sender_client ON messages (sender_id, client_id);

-- Known users: display name from their token, and when they were last seen.
CREATE TABLE users (
    id         TEXT PRIMARY KEY,
    name       TEXT,
    last_seen  TIMESTAMP,
    updated_at TIMESTAMP NOT NULL
);

-- For the notifications issue: stored per user, pushed live.
CREATE TABLE notifications (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL,
    category   TEXT NOT NULL,
    priority   TEXT NOT NULL,
    title      TEXT NOT NULL,
    body       TEXT NOT NULL,
    data       TEXT,
    created_at TIMESTAMP NOT NULL,
    read_at    TIMESTAMP,
    dismissed  BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX notifications_user ON notifications (user_id, created_at);

CREATE TABLE notification_prefs (
    user_id          TEXT PRIMARY KEY,
    muted_categories TEXT NOT NULL DEFAULT '[]',
    min_priority     TEXT NOT NULL DEFAULT 'low'
);
