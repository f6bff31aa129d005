-- The step graph's version: one more with every write to the graph (every such write takes the
-- graph's lock first, and counts here in the same transaction). Servers keep the snapshots of
-- the trees they start in memory, and read a tree again only when this has changed: a start
-- then costs no walk of the step graph.
CREATE TABLE graph_version (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    n           bigint NOT NULL
);
INSERT INTO graph_version (n) VALUES (0);
