-- Completion webhooks (design.md, "Pushing the outcome to the client"). A run started with
-- `notify` keeps where to send its outcome here; the secret is never returned by any endpoint.
CREATE TABLE run_notify (
    run_id  uuid PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    url     text NOT NULL,
    secret  text,
    -- {"name": "value"}, sent after aetr's own headers.
    headers json NOT NULL DEFAULT '{}'
);

-- The outbox: one message each time a run with a `notify` ends, written in the transaction
-- that ends it. Any server claims a due message by moving `next_at` past the try's timeout
-- (FOR UPDATE SKIP LOCKED), so a server killed mid-try leaves it to be tried again: at least
-- once. `body` is the exact text sent, and signed, on every try.
CREATE TABLE notify_messages (
    -- The Standard Webhooks `webhook-id`: msg_<32 hex digits>.
    id          text PRIMARY KEY,
    run_id      uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    body        text NOT NULL,
    state       text NOT NULL DEFAULT 'Pending'
                CHECK (state IN ('Pending', 'Delivered', 'Failed')),
    tries       integer NOT NULL DEFAULT 0,
    next_at     timestamptz NOT NULL,
    -- No try starts after this (24 hours after the run ended).
    give_up_at  timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notify_messages_due ON notify_messages (next_at) WHERE state = 'Pending';
CREATE INDEX notify_messages_run ON notify_messages (run_id, created_at);
