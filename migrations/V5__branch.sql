-- Branch steps: a step that runs one of its children, chosen by a JS function of its input
-- (`branch`, {"type":"js","js":...}). Its children not chosen end `Skipped`, a phase of
-- run_nodes (which has no CHECK on phases), and a Parallel step may now `collect` its results.
ALTER TABLE steps ADD COLUMN branch json;
ALTER TABLE steps DROP CONSTRAINT steps_step_type_check;
ALTER TABLE steps ADD CONSTRAINT steps_step_type_check
    CHECK (step_type IN ('Sequential', 'Parallel', 'Branch', 'Action'));
ALTER TABLE steps ADD CONSTRAINT steps_branch_check
    CHECK ((step_type = 'Branch') = (branch IS NOT NULL));
