//! Runs' snapshots, kept in memory. A snapshot changes only when a redrive on the latest
//! definitions gives its run a new one, with a new revision, so every server may keep its own
//! copy: it is read from the database once, and an event then costs only the rows of the nodes
//! it involves. Whoever reads a node row also reads its revision, and asks for that one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aetr_engine::{Block, Blocks, NodeIdx, SnapNode, Snapshot, Tree};
use anyhow::Result;
use deadpool_postgres::GenericClient;
use uuid::Uuid;

use crate::store::runs;

/// How many nodes the cached snapshots may hold together (about 300 bytes each). The snapshot
/// in use is always kept, however large.
const BUDGET_NODES: usize = 1_000_000;

/// A run's snapshot, and when the run was made (every node's `createdAt`), with the blocks of
/// its Maps' instances known so far (they are only ever added, within a revision).
#[derive(Debug)]
pub struct RunSnapshot {
    pub snapshot: Snapshot,
    pub created_at: i64,
    /// Its revision: 0, then one more for each redrive on the latest definitions.
    pub rev: i32,
    blocks: Mutex<Arc<Blocks>>,
}

/// Where a node is in its run's tree (see [`RunSnapshot::place`]).
#[derive(Debug)]
pub struct Place<'a> {
    /// Its snapshot node: itself, or its template in a Map's instance.
    pub step: &'a SnapNode,
    pub parent: Option<NodeIdx>,
    /// Its index among its parent's children (an instance's: its item's).
    pub position: u32,
    pub depth: u32,
    /// How many children it has in the run (a Map's: its instances, once it started).
    pub child_count: u32,
}

impl RunSnapshot {
    pub fn new(snapshot: Snapshot, created_at: i64, rev: i32) -> Self {
        RunSnapshot { snapshot, created_at, rev, blocks: Mutex::default() }
    }

    /// The blocks known so far.
    pub fn blocks(&self) -> Arc<Blocks> {
        Arc::clone(&self.blocks.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Runs `f` on the run's tree as far as it is known.
    pub fn with_tree<R>(&self, f: impl FnOnce(&Tree<'_>) -> R) -> R {
        let blocks = self.blocks();
        f(&Tree::new(&self.snapshot, &blocks))
    }

    /// The snapshot node of a node of the run (its template, in a Map's instance); `None` if
    /// the run has no such node, as far as is known. A node of the snapshot needs no block.
    pub fn step(&self, idx: NodeIdx) -> Option<&SnapNode> {
        if (idx as usize) < self.snapshot.len() {
            return (!self.snapshot.in_template(idx)).then(|| self.snapshot.node(idx));
        }
        let template = self.with_tree(|t| t.locate(idx).map(|n| n.template))?;
        self.snapshot.get(template)
    }

    /// Where node `idx` is in the run's tree; `None` if the run has no such node, as far as is
    /// known.
    pub fn place(&self, idx: NodeIdx) -> Option<Place<'_>> {
        let (template, parent, position, depth, child_count) = self.with_tree(|tree| {
            let at = tree.locate(idx)?;
            Some((at.template, at.parent, at.position, at.depth, tree.child_count(&at)))
        })?;
        let step = self.snapshot.get(template)?;
        Some(Place { step, parent, position, depth, child_count })
    }

    /// A node's children in the run (a Map's: its instances).
    pub fn children(&self, idx: NodeIdx) -> Vec<NodeIdx> {
        self.with_tree(|tree| tree.locate(idx).map(|at| tree.children(&at)).unwrap_or_default())
    }

    /// Whether it is known for each of `idxs` if the run has it: it is in the snapshot, or
    /// below the end of the blocks known.
    pub fn knows_all(&self, idxs: impl IntoIterator<Item = NodeIdx>) -> bool {
        let mut end = None;
        idxs.into_iter().all(|idx| {
            (idx as usize) < self.snapshot.len()
                || u64::from(idx) < *end.get_or_insert_with(|| self.blocks().end())
        })
    }

    /// Makes sure that it knows whether its run has each of `idxs` (see [`Self::refresh`]).
    pub async fn cover(
        &self,
        client: &impl GenericClient,
        run: Uuid,
        idxs: impl IntoIterator<Item = NodeIdx>,
    ) -> Result<()> {
        match self.knows_all(idxs) {
            true => Ok(()),
            false => self.refresh(client, run).await,
        }
    }

    /// Reads the blocks of its run that it does not know yet.
    pub async fn refresh(&self, client: &impl GenericClient, run: Uuid) -> Result<()> {
        let known = self.blocks();
        let end = known.end().max(self.snapshot.len() as u64);
        let rows = runs::blocks(client, run, self.rev, i32::try_from(end)?).await?;
        let mut blocks = (*known).clone();
        let mut new = Vec::with_capacity(rows.len());
        for (map, base, count) in rows {
            let block = Tree::new(&self.snapshot, &blocks)
                .block_for(map, base, count)
                .ok_or_else(|| anyhow::anyhow!("run {run}: the block at {base} has no Map"))?;
            blocks.add(block).map_err(anyhow::Error::msg)?;
            new.push(block);
        }
        self.add_blocks(new)
    }

    /// Adds blocks (those known already are skipped), in the order of their numbers.
    pub fn add_blocks(&self, new: impl IntoIterator<Item = Block>) -> Result<()> {
        let mut guard = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
        let blocks = Arc::make_mut(&mut guard);
        for block in new {
            if u64::from(block.base) >= blocks.end() {
                blocks.add(block).map_err(anyhow::Error::msg)?;
            }
        }
        Ok(())
    }
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
        let found = Arc::new(RunSnapshot::new(snapshot, created_at, rev));
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
