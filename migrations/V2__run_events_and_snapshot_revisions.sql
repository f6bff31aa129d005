-- A run's history: every state change, attempt, callback and operator action, in order.
-- One row per thing that happened; `changes` lists the nodes whose state it changed.
CREATE TABLE run_events (
    run_id   uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    -- The order of events, across all runs (a run's events are read in this order).
    seq      bigint GENERATED ALWAYS AS IDENTITY,
    at       timestamptz NOT NULL,
    -- started, dispatched, resent, postFailed, callback, timedOut, mapped, reduced,
    -- cancelled, retried, completedByHand, failedByHand, redispatchedByHand
    kind     text NOT NULL,
    idx      integer,
    attempt  integer,
    -- What the kind needs: an error, an HTTP status, a retry's time, a refusal's reason.
    detail   jsonb,
    -- [{"idx": n, "from": "<state>", "to": "<state>"}]
    changes  jsonb NOT NULL DEFAULT '[]',
    PRIMARY KEY (run_id, seq)
);

-- A redrive on the latest definitions gives a run a new snapshot. Servers keep snapshots in
-- memory; this revision (on the run, and on each of its nodes) tells them when theirs is stale.
ALTER TABLE runs ADD COLUMN snapshot_rev integer NOT NULL DEFAULT 0;
ALTER TABLE run_nodes ADD COLUMN snapshot_rev integer NOT NULL DEFAULT 0;
