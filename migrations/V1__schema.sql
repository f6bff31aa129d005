-- aetr's schema, first version.
--
-- Definitions (steps and their child links) are edited by users; runs, run nodes and attempts
-- are written by the server as runs move. Times are timestamptz; the API shows them as epoch
-- milliseconds.
--
-- Definitions that the API returns in the order they were given (an action's headers, say) are
-- stored as `json`, not `jsonb`: `json` keeps the text as it was written, and nothing queries
-- inside them.

------------------------------------------------------------------------------------------------
-- Steps: the nodes of step trees. A step's children are other steps, linked in step_children.
------------------------------------------------------------------------------------------------
CREATE TABLE steps (
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    step_type   text NOT NULL CHECK (step_type IN ('Sequential', 'Parallel', 'Action')),
    -- An Action's action: {"type":"api","url":...} or {"type":"no-op"}.
    action      json,
    -- A Parallel step's reducer: {"type":"last"}, {"type":"no-op"} or {"type":"js","js":...}.
    reducer     json,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CHECK ((step_type = 'Action') = (action IS NOT NULL)),
    CHECK ((step_type = 'Parallel') = (reducer IS NOT NULL))
);
-- `GET /steps` pages by id (the primary key). Its `q` filter matches a substring of the name,
-- which scans: step lists are small next to runs, and a trigram index would need pg_trgm,
-- which a managed PostgreSQL may not allow.

-- The ordered links from a parent to its children. A link is keyed by its position, so a child
-- list may name the same step twice, and the mapper lives on the link: one step reused in two
-- trees can have two mappers.
CREATE TABLE step_children (
    parent_id   uuid NOT NULL REFERENCES steps (id) ON DELETE CASCADE,
    position    integer NOT NULL CHECK (position >= 0),
    -- No cascade: a step that another step still uses cannot be deleted.
    child_id    uuid NOT NULL REFERENCES steps (id),
    -- {"type":"js","js":...} or {"type":"no-op"}; NULL for none.
    mapper      json,
    PRIMARY KEY (parent_id, position)
);
-- The parents of a step (`GET /steps/{id}/parents`, the in-use check of a delete, and the
-- walk up from a changed step to the trees it is part of).
CREATE INDEX step_children_child ON step_children (child_id);

------------------------------------------------------------------------------------------------
-- Runs: one execution of a step tree, with the snapshot of the tree taken when it started.
------------------------------------------------------------------------------------------------
CREATE TABLE runs (
    -- UUIDv7, so ids grow with time and "newest first" is ORDER BY id DESC.
    id              uuid PRIMARY KEY,
    -- The root step, its name and its kind when the run started. Not a foreign key: a run keeps
    -- its snapshot when the step is deleted.
    step_id         uuid NOT NULL,
    step_name       text NOT NULL,
    step_type       text NOT NULL,
    -- The root node's state, kept here for the run lists' filter. The root node (idx 0 in
    -- run_nodes) holds the run's input, result and error.
    state           text NOT NULL
                    CHECK (state IN ('Pending', 'Executing', 'Complete', 'Error', 'Cancelled')),
    -- The tree with reuse expanded, as the engine's Snapshot: later edits never change a run.
    -- Servers read it once per run and keep it in memory; it never changes.
    snapshot        json NOT NULL,
    node_count      integer NOT NULL,
    -- The node whose failure failed the run.
    failed_node     integer,
    -- `POST /runs/step/{id}` with an idempotencyKey returns the first run made with it.
    idempotency_key text UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    completed_at    timestamptz
);
-- `GET /runs?state=`, newest first.
CREATE INDEX runs_state ON runs (state, id DESC);
-- `GET /runs?stepId=`, newest first.
CREATE INDEX runs_step ON runs (step_id, id DESC);

-- The nodes of a run, one row per node of its snapshot, all made when the run starts. An event
-- reads and writes only its node and that node's ancestors, locked in idx order (the root
-- first, which serialises a run's events); a node's static part (its step, mapper, action) is
-- in the run's snapshot.
CREATE TABLE run_nodes (
    run_id       uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    -- The node's number in the snapshot's pre-order; 0 is the root. Its public id is derived
    -- from the run's id and this number.
    idx          integer NOT NULL,
    parent_idx   integer,
    -- The index among the parent's children, and the levels below the root.
    position     integer NOT NULL,
    depth        integer NOT NULL,
    -- The engine's phase (Waiting, Ready, Executing, Received, Reducing, Held, Complete, Error,
    -- Cancelled); the public state follows from it.
    phase        text NOT NULL,
    input        text,
    -- The node's own result, and the result after the mapper on its link: what moves on.
    result       text,
    output       text,
    error        text,
    -- Why the node failed ("Action", "Mapper", "Reducer" or {"Child": n}): what a redrive
    -- runs again.
    fault        jsonb,
    -- The attempt last made or due, counted from 1 across retries and redrives; the first
    -- attempt of the current retry round; the oldest attempt whose callback is still accepted.
    attempt      integer NOT NULL DEFAULT 0,
    round_from   integer NOT NULL DEFAULT 0,
    live_from    integer NOT NULL DEFAULT 0,
    -- A Parallel node's children that have not passed on their result yet.
    remaining    integer NOT NULL DEFAULT 0,
    -- Ready: not to be sent before this (NULL: parked, because the run stopped). Executing (an
    -- action): the callback deadline.
    due_at       timestamptz,
    -- Work in hand: a POST being sent, or a mapper or reducer running. The server doing it
    -- holds the node until then; when the lease expires, any server takes the work over (and
    -- re-sends the same attempt). The epoch grows with every new holder, and the holder's
    -- writes are fenced on it, so that a stale one cannot overwrite newer state.
    lease_until  timestamptz,
    lease_epoch  bigint NOT NULL DEFAULT 0,
    started_at   timestamptz,
    completed_at timestamptz,
    PRIMARY KEY (run_id, idx)
);
-- The dispatcher's claims, one index each: Ready nodes that are due, oldest first; work whose
-- lease expired; callback deadlines that passed.
CREATE INDEX run_nodes_due ON run_nodes (due_at) WHERE phase = 'Ready';
CREATE INDEX run_nodes_lease ON run_nodes (lease_until) WHERE lease_until IS NOT NULL;
CREATE INDEX run_nodes_deadline ON run_nodes (due_at)
    WHERE phase = 'Executing' AND due_at IS NOT NULL;
-- A node's children in order: a page of them (`GET /runs/{id}/nodes/{nodeId}/children`), and
-- a reducer's inputs.
CREATE INDEX run_nodes_children ON run_nodes (run_id, parent_idx, idx);
-- A redrive's failed, held and parked nodes of one run.
CREATE INDEX run_nodes_redrive ON run_nodes (run_id) WHERE phase IN ('Error', 'Held', 'Ready');

-- Every attempt at an action: when it was sent, and how it ended.
CREATE TABLE attempts (
    run_id        uuid NOT NULL,
    idx           integer NOT NULL,
    n             integer NOT NULL CHECK (n >= 1),
    dispatched_at timestamptz NOT NULL,
    -- Executing (sent, no outcome yet), Complete, Error or TimedOut.
    status        text NOT NULL,
    -- The HTTP status of the POST's answer, when there was one.
    http_status   integer,
    error         text,
    finished_at   timestamptz,
    PRIMARY KEY (run_id, idx, n),
    FOREIGN KEY (run_id, idx) REFERENCES run_nodes (run_id, idx) ON DELETE CASCADE
);

------------------------------------------------------------------------------------------------
-- The key of the callback tokens' HMAC-SHA256. Generated once, here, so that every replica on
-- this database shares it. One row.
------------------------------------------------------------------------------------------------
CREATE TABLE callback_key (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    key         bytea NOT NULL CHECK (length(key) = 32),
    created_at  timestamptz NOT NULL DEFAULT now()
);
-- 32 bytes from two gen_random_uuid() values, which PostgreSQL draws from its strong random
-- source (pg_strong_random): 244 random bits, with no extension needed.
INSERT INTO callback_key (key)
VALUES (decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex'));
