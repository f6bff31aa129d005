//! The snapshots of the trees that runs start from, kept in memory while the step graph's
//! version (see [`crate::store::steps::graph_version`]) stays the same: many starts of one tree
//! cost one walk of the step graph, not one each.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aetr_engine::{FieldError, Snapshot};
use uuid::Uuid;

/// How many nodes the kept snapshots may hold together; past it, they are all dropped.
const BUDGET_NODES: usize = 200_000;

/// A tree's snapshot, or why it cannot be run (it breaks a limit).
pub(crate) type Tree = Result<Snapshot, FieldError>;

#[derive(Debug, Default)]
pub(crate) struct Trees {
    inner: Mutex<Kept>,
}

#[derive(Debug, Default)]
struct Kept {
    /// The graph's version that every kept tree was read at.
    version: i64,
    trees: HashMap<Uuid, Arc<Tree>>,
    nodes: usize,
}

impl Trees {
    /// The kept trees of `roots` at `version`, and the roots that must be read.
    pub fn get(&self, version: i64, roots: &[Uuid]) -> (HashMap<Uuid, Arc<Tree>>, Vec<Uuid>) {
        let mut kept = self.lock();
        if kept.version != version {
            *kept = Kept { version, ..Kept::default() };
        }
        let mut found = HashMap::new();
        let mut missing = Vec::new();
        for root in roots {
            match kept.trees.get(root) {
                Some(tree) => {
                    found.insert(*root, Arc::clone(tree));
                }
                None => missing.push(*root),
            }
        }
        (found, missing)
    }

    /// Keeps trees read at `version`.
    pub fn keep(&self, version: i64, trees: &HashMap<Uuid, Arc<Tree>>) {
        let mut kept = self.lock();
        if kept.version != version {
            return;
        }
        for (root, tree) in trees {
            let size = tree.as_ref().as_ref().map_or(1, Snapshot::len);
            if kept.nodes + size > BUDGET_NODES {
                kept.trees.clear();
                kept.nodes = 0;
            }
            if size <= BUDGET_NODES && kept.trees.insert(*root, Arc::clone(tree)).is_none() {
                kept.nodes += size;
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}
