-- Webhook deliveries waiting to be sent: a transactional outbox. Each row is written in the
-- same transaction as what caused it, and deleted once the host answered 2xx (or it is
-- older than WEBHOOK_MAX_AGE_S). Kept in step with migrations/postgres.
CREATE TABLE webhook_outbox (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    body         TEXT NOT NULL,
    -- message.created: sent in seq order per thread.
    thread_id    TEXT,
    seq          BIGINT,
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_at      TIMESTAMP NOT NULL,
    -- A node sending it holds it until then; past it, another node may take it.
    leased_until TIMESTAMP,
    leased_by    TEXT,
    created_at   TIMESTAMP NOT NULL
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (next_at);
CREATE INDEX webhook_outbox_thread ON webhook_outbox (thread_id, seq);
CREATE INDEX webhook_outbox_created ON webhook_outbox (created_at);
