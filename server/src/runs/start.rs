//! Starting a run: its snapshot, its nodes and its first dispatches, in one transaction.

use std::sync::Arc;

use aetr_engine::machine::{self, Event, NodeState, Nodes};
use futures_util::future::try_join;
use uuid::Uuid;

use super::plan::Plan;
use super::{RunSnapshot, Runs};
use crate::definitions::not_found;
use crate::http::ApiError;
use crate::store::time::now_ms;
use crate::store::{attempts, events, nodes, runs};

/// `POST /runs/step/{stepId}`'s request.
#[derive(Debug)]
pub struct StartRun {
    pub step_id: Uuid,
    pub input: Option<String>,
    pub idempotency_key: Option<String>,
}

/// The run that a start made, or found by its idempotency key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Started {
    pub id: Uuid,
    /// `false`: an earlier start with the same idempotency key made it.
    pub created: bool,
}

impl Runs {
    pub async fn start(&self, request: StartRun) -> Result<Started, ApiError> {
        let shared = &self.shared;
        let StartRun { step_id, input, idempotency_key: key } = request;
        let mut client = shared.pool.get().await?;
        if let Some(key) = &key {
            if let Some(found) = earlier(&client, key, step_id).await? {
                return Ok(found);
            }
        }
        let snapshot =
            shared.snapshot_of_step(&client, step_id).await?.ok_or_else(|| not_found(step_id))?;

        let (id, now) = (Uuid::now_v7(), now_ms());
        let mut state = Nodes::new();
        state.load(0, NodeState::default());
        let start = Event::Start { input };
        let outcome = machine::apply(&snapshot, &mut state, start.clone(), &shared.ctx(now))
            .map_err(|e| ApiError::Internal(e.into()))?;
        let mut plan = Plan::new(now);
        plan.record(&snapshot, &start, &outcome, &state, false, None);
        plan.take(shared, &snapshot, &mut state, &outcome.work)
            .map_err(|e| ApiError::Internal(e.into()))?;
        let root = state.get(0).cloned().unwrap_or_default();
        let started: Vec<_> =
            state.changed().map(|(idx, st)| (idx, st, plan.lease_until(idx))).collect();

        let tx = client.transaction().await?;
        let run = runs::NewRun {
            id,
            snapshot: &snapshot,
            state: root.state(),
            idempotency_key: key.as_deref(),
            created_at: now,
            completed_at: root.completed_at,
        };
        if !runs::insert(&tx, &run).await? {
            // Another start with this key won the race; it has committed.
            drop(tx);
            let key = key.as_deref().unwrap_or_default();
            return earlier(&client, key, step_id).await?.ok_or_else(|| {
                ApiError::Internal(anyhow::anyhow!("the run of idempotency key {key:?} vanished"))
            });
        }
        let epochs = nodes::insert_all(&tx, id, &snapshot, &Default::default(), &started).await?;
        try_join(
            attempts::insert(&tx, id, &plan.sent, now),
            events::insert(&tx, id, &plan.history, now),
        )
        .await?;
        plan.notify(&tx).await?;
        tx.commit().await?;

        tracing::info!(run = %id, step = %step_id, nodes = snapshot.len(), "run started");
        let snap = Arc::new(RunSnapshot { snapshot, created_at: now, rev: 0 });
        shared.launch_run(id, snap, plan, &state, epochs);
        Ok(Started { id, created: true })
    }
}

/// The run that an earlier start with this idempotency key made: 409 if it was of another step.
async fn earlier(
    client: &impl deadpool_postgres::GenericClient,
    key: &str,
    step_id: Uuid,
) -> Result<Option<Started>, ApiError> {
    match runs::by_idempotency_key(client, key).await? {
        None => Ok(None),
        Some((id, step)) if step == step_id => Ok(Some(Started { id, created: false })),
        Some((id, step)) => Err(ApiError::Conflict(format!(
            "idempotencyKey {key:?} was used for run {id} of step {step}, not of step {step_id}"
        ))),
    }
}
