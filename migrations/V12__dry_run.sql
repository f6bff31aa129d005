-- Dry runs (a start's `dryRun`): no action calls anything. They are left out of the runs list
-- and the counts unless asked for, so a dry run is marked on its row as well as in its snapshot.
ALTER TABLE runs ADD COLUMN dry_run boolean NOT NULL DEFAULT false;
CREATE INDEX runs_dry ON runs (id DESC) WHERE dry_run;
