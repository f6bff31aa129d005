-- Schedules (design.md, "Schedules"): a step's runs started on a cron expression's ticks, by
-- whichever server claims the schedule's row when a tick is due.
CREATE TABLE schedules (
    id           uuid PRIMARY KEY,
    step_id      uuid NOT NULL REFERENCES steps (id),
    cron         text NOT NULL,
    timezone     text NOT NULL DEFAULT 'UTC',
    -- The runs' input, as the user gave it (any JSON; a string is passed on raw).
    input        json,
    overlap      text NOT NULL DEFAULT 'allow' CHECK (overlap IN ('allow', 'skip')),
    enabled      boolean NOT NULL DEFAULT true,
    -- The next tick; null when the expression has no more.
    next_fire_at timestamptz,
    last_fire_at timestamptz,
    last_run_id  uuid,
    -- Why the last tick started no run (a refused input, say); null once one starts.
    last_error   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX schedules_due ON schedules (next_fire_at) WHERE enabled;
CREATE INDEX schedules_step ON schedules (step_id);

-- A scheduled run names its schedule; `GET /runs?scheduleId=` lists them, newest first.
ALTER TABLE runs ADD COLUMN schedule_id uuid;
CREATE INDEX runs_schedule ON runs (schedule_id, id DESC) WHERE schedule_id IS NOT NULL;
