-- Map steps: a step that runs its one child once per item of a list (`map`,
-- {"items"?: "<js>", "maxConcurrency"?: n}), with a reducer (default {"type":"collect"}).
ALTER TABLE steps ADD COLUMN map json;
ALTER TABLE steps DROP CONSTRAINT steps_step_type_check;
ALTER TABLE steps ADD CONSTRAINT steps_step_type_check
    CHECK (step_type IN ('Sequential', 'Parallel', 'Map', 'Branch', 'Action'));
ALTER TABLE steps ADD CONSTRAINT steps_map_check CHECK ((step_type = 'Map') = (map IS NOT NULL));
ALTER TABLE steps DROP CONSTRAINT steps_check1;
ALTER TABLE steps ADD CONSTRAINT steps_reducer_check
    CHECK ((step_type IN ('Parallel', 'Map')) = (reducer IS NOT NULL));

-- A Map's instances are nodes numbered in a block above the snapshot's (see the engine's
-- tree module): `count` copies of its child's subtree of `size` nodes, from `base`. The
-- snapshot's nodes under a Map have no rows. A Map counts the instances it started in
-- `started`; the root keeps the first number not yet given to a block in `next_free`.
ALTER TABLE run_nodes ADD COLUMN started integer NOT NULL DEFAULT 0;
ALTER TABLE run_nodes ADD COLUMN next_free integer NOT NULL DEFAULT 0;
CREATE TABLE run_blocks (
    run_id  uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    rev     integer NOT NULL,
    base    integer NOT NULL,
    map_idx integer NOT NULL,
    count   integer NOT NULL,
    PRIMARY KEY (run_id, rev, base)
);
