-- Pools (design.md, "Pools: protecting a service"): at most `slots` attempts of the actions
-- that name a pool are Executing at once, across all runs and servers; `per_second` caps how
-- many POSTs a second start (a token bucket: `tokens`, refilled from `refilled_at`).
CREATE TABLE pools (
    name        text PRIMARY KEY,
    slots       integer NOT NULL CHECK (slots > 0),
    per_second  double precision CHECK (per_second > 0),
    tokens      double precision NOT NULL DEFAULT 0,
    refilled_at timestamptz NOT NULL DEFAULT now(),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- The pool of a node's action, if it names one (it never changes). A pooled node that is due
-- waits for a slot, first come first served, and only the pools' claim takes it: the usual
-- claim of due nodes and its index leave pooled nodes out.
ALTER TABLE run_nodes ADD COLUMN pool text;
DROP INDEX run_nodes_due;
CREATE INDEX run_nodes_due ON run_nodes (due_at) WHERE phase = 'Ready' AND pool IS NULL;
CREATE INDEX run_nodes_pool_ready ON run_nodes (pool, due_at)
    WHERE phase = 'Ready' AND pool IS NOT NULL;
CREATE INDEX run_nodes_pool_busy ON run_nodes (pool)
    WHERE phase = 'Executing' AND pool IS NOT NULL;
