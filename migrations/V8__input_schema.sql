-- Checked input: a step's `inputSchema`, a JSON Schema (draft 2020-12) that its input must
-- match. `json` keeps the schema as the user wrote it (key order included).
ALTER TABLE steps ADD COLUMN input_schema json;
