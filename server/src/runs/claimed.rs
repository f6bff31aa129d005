//! Doing work that a dispatcher claimed from the database: a due POST (or one sent again after
//! its sender died), a script whose runner died, or a callback deadline that passed. Each goes
//! through its run's mailbox, fenced on the claim's lease.

use std::sync::Arc;

use aetr_engine::machine::{Event, Reply};

use super::launch::{ScriptJob, ScriptKind, SendJob};
use super::{Fence, Runs};
use crate::dispatch::Slot;
use crate::store::nodes::{ClaimKind, Claimed};

impl Runs {
    /// Does one claimed piece of work, under the claim's lease. `slot`: a POST slot taken for
    /// it, if it is a POST (one is waited for otherwise).
    #[tracing::instrument(level = "debug", skip_all, fields(run = %work.run, node = work.idx))]
    pub async fn do_claimed(&self, work: Claimed, slot: Option<Slot>) {
        let shared = &self.shared;
        let Claimed { run, idx, kind, phase, attempt, epoch, rev, input, result } = work;
        let fence = Some(Fence { idx, epoch });
        let snap = match shared.snapshot_at(run, Some(rev), &[idx]).await {
            Ok(Some(snap)) => snap,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(%run, error = %e, "cannot read a run's snapshot");
                return;
            }
        };
        match kind {
            ClaimKind::Dispatch | ClaimKind::Resend => {
                let slot = match slot {
                    Some(slot) => slot,
                    None => match shared.outbox.slot().await {
                        Some(slot) => slot,
                        None => return,
                    },
                };
                let event = Event::Dispatched { node: idx, attempt };
                match shared.submit(run, event, fence, None).await {
                    Ok(Reply::Send) => {
                        let job = SendJob { run, idx, attempt, epoch, input, slot };
                        Arc::clone(shared).send(snap, job).await;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(%run, node = idx, error = %e, "a claimed dispatch failed")
                    }
                }
            }
            ClaimKind::Timeout => {
                let event = Event::Timeout { node: idx, attempt };
                if let Err(e) = shared.submit(run, event, fence, None).await {
                    tracing::warn!(%run, node = idx, error = %e, "a callback deadline could not be applied");
                }
            }
            ClaimKind::Script => {
                if let Some(kind) = ScriptKind::of(phase, result, input) {
                    let job = ScriptJob { run, idx, epoch, kind };
                    Arc::clone(shared).run_script(snap, job).await;
                }
            }
        }
    }
}
