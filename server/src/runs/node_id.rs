//! The public ids of run nodes, derived from the run's id and the node's number: no column and
//! no index hold them.
//!
//! A node's id is the run's id with its last 32 bits XORed with the node's number, so the root
//! (node 0) has the run's own id, as design.md asks, and a node's id shows which run it is of.
//! Run ids are UUIDv7 with 74 random bits, so two runs' nodes do not collide in practice, and a
//! node's `Idempotency-Key` (`<nodeId>:<attempt>`) is unique across runs.

use aetr_engine::NodeIdx;
use uuid::Uuid;

pub fn node_id(run: Uuid, idx: NodeIdx) -> Uuid {
    Uuid::from_u128(run.as_u128() ^ u128::from(idx))
}

/// The number of node `id` of `run`, if it is one of a run with `node_count` nodes.
pub fn node_idx(run: Uuid, id: Uuid, node_count: usize) -> Option<NodeIdx> {
    let idx = NodeIdx::try_from(run.as_u128() ^ id.as_u128()).ok()?;
    ((idx as usize) < node_count).then_some(idx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_round_trip_and_the_root_is_the_run() {
        let run = Uuid::now_v7();
        assert_eq!(node_id(run, 0), run);
        for idx in [1, 2, 99_999] {
            let id = node_id(run, idx);
            assert_ne!(id, run);
            assert_eq!(id.get_version_num(), 7, "still a UUIDv7");
            assert_eq!(node_idx(run, id, 100_000), Some(idx));
        }
        assert_eq!(node_idx(run, node_id(run, 5), 5), None, "past the last node");
        assert_eq!(node_idx(run, Uuid::now_v7(), 100), None, "another run's id");
    }
}
