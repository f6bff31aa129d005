//! Runs' snapshots, kept in memory. A snapshot changes only when a redrive on the latest
//! definitions gives its run a new one, with a new revision, so every server may keep its own
//! copy: it is read from the database once, and an event then costs only the rows of the nodes
//! it involves. Whoever reads a node row also reads its revision, and asks for that one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aetr_engine::Snapshot;
use anyhow::Result;
use deadpool_postgres::GenericClient;
use uuid::Uuid;

use crate::store::runs;

/// How many nodes the cached snapshots may hold together (about 300 bytes each). The snapshot
/// in use is always kept, however large.
const BUDGET_NODES: usize = 1_000_000;

/// A run's snapshot, and when the run was made (every node's `createdAt`).
#[derive(Debug)]
pub struct RunSnapshot {
    pub snapshot: Snapshot,
    pub created_at: i64,
    /// Its revision: 0, then one more for each redrive on the latest definitions.
    pub rev: i32,
}

#[derive(Debug, Default)]
pub(crate) struct Snapshots {
    inner: Mutex<Cache>,
}

#[derive(Debug, Default)]
struct Cache {
    entries: HashMap<Uuid, (Arc<RunSnapshot>, u64)>,
    nodes: usize,
    clock: u64,
}

impl Snapshots {
    /// The snapshot of a run, at revision `rev` if one is given (the one in memory may be
    /// older, or newer than a node row read before a redrive); `None` if there is no such run.
    pub async fn get(
        &self,
        client: &impl GenericClient,
        run: Uuid,
        rev: Option<i32>,
    ) -> Result<Option<Arc<RunSnapshot>>> {
        if let Some(found) = self.cached(run).filter(|s| rev.is_none_or(|rev| s.rev == rev)) {
            return Ok(Some(found));
        }
        let Some((snapshot, created_at, rev)) = runs::snapshot(client, run).await? else {
            return Ok(None);
        };
        let found = Arc::new(RunSnapshot { snapshot, created_at, rev });
        self.insert(run, Arc::clone(&found));
        Ok(Some(found))
    }

    /// The current snapshot of a run, checked against the database's revision.
    pub async fn current(
        &self,
        client: &impl GenericClient,
        run: Uuid,
    ) -> Result<Option<Arc<RunSnapshot>>> {
        match runs::snapshot_rev(client, run).await? {
            None => Ok(None),
            Some(rev) => self.get(client, run, Some(rev)).await,
        }
    }

    pub fn insert(&self, run: Uuid, snapshot: Arc<RunSnapshot>) {
        let mut cache = self.lock();
        cache.clock += 1;
        let clock = cache.clock;
        cache.nodes += snapshot.snapshot.len();
        if let Some((old, _)) = cache.entries.insert(run, (snapshot, clock)) {
            cache.nodes -= old.snapshot.len();
        }
        // Evict the least recently used until within budget, keeping the newest.
        while cache.nodes > BUDGET_NODES && cache.entries.len() > 1 {
            let oldest = cache.entries.iter().min_by_key(|(_, (_, used))| *used).map(|(id, _)| *id);
            if let Some((evicted, _)) = oldest.and_then(|id| cache.entries.remove(&id)) {
                cache.nodes -= evicted.snapshot.len();
            }
        }
    }

    /// The snapshot in memory, if any (no database read).
    pub(super) fn cached(&self, run: Uuid) -> Option<Arc<RunSnapshot>> {
        let mut cache = self.lock();
        cache.clock += 1;
        let clock = cache.clock;
        let (snapshot, used) = cache.entries.get_mut(&run)?;
        *used = clock;
        Some(Arc::clone(snapshot))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}
