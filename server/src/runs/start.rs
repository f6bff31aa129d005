//! Starting runs: each run's snapshot, nodes and first dispatches. Starts that come together
//! are committed together, in groups (see [`super::group`]): one transaction, one statement per
//! table, and one read of the step definitions for all of them.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use aetr_engine::machine::{self, Event, NodeState, Nodes, State};
use aetr_engine::{NodeIdx, Snapshot};
use futures_util::future::{try_join, try_join4};
use tokio::sync::oneshot;
use uuid::Uuid;

use super::group::{Groups, Part};
use super::plan::{Plan, NOTIFY_SQL};
use super::{RunSnapshot, Runs, Shared};
use crate::definitions::not_found;
use crate::http::ApiError;
use crate::store::nodes::NewNodes;
use crate::store::time::now_ms;
use crate::store::tx::Tx;
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

/// A start waiting for its group, and who waits for its answer.
#[derive(Debug)]
pub(crate) struct Start {
    request: StartRun,
    reply: oneshot::Sender<Result<Started, ApiError>>,
}

impl Part for Start {
    type Outcome = Result<Started, ApiError>;
    type Error = ApiError;

    fn events(&self) -> usize {
        1
    }

    fn alone(&self) -> bool {
        false
    }

    fn groups(shared: &Shared) -> &Groups<Start> {
        &shared.starts
    }

    async fn commit(shared: &Arc<Shared>, group: &[Start]) -> Result<Vec<Self::Outcome>, ApiError> {
        shared.try_starts(group).await
    }

    fn failed(&self, _: &Shared, error: ApiError) -> Self::Outcome {
        Err(error)
    }

    fn answer(self, _: &Arc<Shared>, outcome: Self::Outcome) {
        let _ = self.reply.send(outcome);
    }
}

impl Runs {
    pub async fn start(&self, request: StartRun) -> Result<Started, ApiError> {
        let shared = &self.shared;
        if let Some(key) = &request.idempotency_key {
            let client = shared.pool.get().await?;
            if let Some(found) = earlier(&client, key, request.step_id).await? {
                return Ok(found);
            }
        }
        let (reply, answer) = oneshot::channel();
        shared.starts.commit(shared, Start { request, reply }).await;
        answer.await.unwrap_or_else(|_| {
            Err(ApiError::Internal(anyhow::anyhow!("the start was dropped unanswered")))
        })
    }
}

/// A run that a start is to make, before it is written.
struct NewRun {
    id: Uuid,
    snapshot: Snapshot,
    state: Nodes,
    plan: Plan,
}

impl Shared {
    /// Starts a group of runs in one transaction; each start's own outcome (a step that does
    /// not exist, say) is in the list.
    async fn try_starts(
        self: &Arc<Self>,
        starts: &[Start],
    ) -> Result<Vec<Result<Started, ApiError>>, ApiError> {
        let requests: Vec<&StartRun> = starts.iter().map(|s| &s.request).collect();
        let tx = Tx::new(self.pool.get().await?);
        let client = tx.client();
        let step_ids: BTreeSet<Uuid> = requests.iter().map(|r| r.step_id).collect();
        let snapshots = self.snapshots_of_steps(client, step_ids).await?;
        let now = now_ms();
        let outcomes: Vec<Result<NewRun, ApiError>> = requests
            .iter()
            .map(|request| {
                let snapshot = match snapshots.get(&request.step_id).map(Arc::as_ref) {
                    Some(Ok(snapshot)) => snapshot.clone(),
                    Some(Err(e)) => return Err(e.clone().into()),
                    None => return Err(not_found(request.step_id)),
                };
                self.new_run(snapshot, request.input.clone(), now)
                    .map_err(|e| ApiError::Internal(e.into()))
            })
            .collect();

        let made: Vec<(&StartRun, &NewRun)> = requests
            .iter()
            .zip(&outcomes)
            .filter_map(|(request, outcome)| Some((*request, outcome.as_ref().ok()?)))
            .collect();
        let (inserted, mut epochs) = match made.is_empty() {
            true => Default::default(),
            false => write_runs(&tx, &made, now).await?,
        };

        let mut answers = Vec::with_capacity(requests.len());
        for (request, outcome) in requests.iter().zip(outcomes) {
            let new = match outcome {
                Ok(new) => new,
                Err(e) => {
                    answers.push(Err(e));
                    continue;
                }
            };
            if !inserted.contains(&new.id) {
                let key = request.idempotency_key.as_deref().unwrap_or_default();
                answers.push(earlier(client, key, request.step_id).await.and_then(|found| {
                    found.ok_or_else(|| {
                        let e = anyhow::anyhow!("the run of idempotency key {key:?} vanished");
                        ApiError::Internal(e)
                    })
                }));
                continue;
            }
            let NewRun { id, snapshot, state, plan } = new;
            tracing::info!(run = %id, step = %request.step_id, nodes = snapshot.len(), "run started");
            let snap = Arc::new(RunSnapshot { snapshot, created_at: now, rev: 0 });
            let epochs = epochs.remove(&id).unwrap_or_default();
            self.launch_run(id, snap, plan, &state, epochs);
            answers.push(Ok(Started { id, created: true }));
        }
        Ok(answers)
    }

    /// A new run of `snapshot`: its start applied by the engine, and the work it takes.
    fn new_run(
        &self,
        snapshot: Snapshot,
        input: Option<String>,
        now: i64,
    ) -> Result<NewRun, machine::MachineError> {
        let mut state = Nodes::new();
        state.load(0, NodeState::default());
        let start = Event::Start { input };
        let outcome = machine::apply(&snapshot, &mut state, start.clone(), &self.ctx(now))?;
        let mut plan = Plan::new(now);
        plan.record(&snapshot, &start, &outcome, &state, false, None);
        plan.take(self, &snapshot, &mut state, &outcome.work)?;
        Ok(NewRun { id: Uuid::now_v7(), snapshot, state, plan })
    }
}

/// Every statement that [`write_runs`] sends after the runs' own rows.
const NEW_RUN_WRITES: [&str; 4] =
    [nodes::INSERT_ALL_SQL, attempts::INSERT_SQL, events::INSERT_SQL, NOTIFY_SQL];

/// Writes new runs in one transaction, in two round trips: its BEGIN with the runs, then their
/// nodes, first attempts and history with its COMMIT. Returns the runs inserted (a run whose
/// idempotency key another start took, in this group or committed since the key was looked up,
/// is not: that start's run is the answer), and the lease epochs of their started nodes.
async fn write_runs(
    tx: &Tx,
    made: &[(&StartRun, &NewRun)],
    now: i64,
) -> Result<(HashSet<Uuid>, HashMap<Uuid, Vec<(NodeIdx, i64)>>), ApiError> {
    let client = tx.client();
    let rows: Vec<runs::NewRun<'_>> = made
        .iter()
        .map(|(request, new)| {
            let root = new.state.get(0);
            runs::NewRun {
                id: new.id,
                snapshot: &new.snapshot,
                state: root.map_or(State::Pending, NodeState::state),
                idempotency_key: request.idempotency_key.as_deref(),
                created_at: now,
                completed_at: root.and_then(|root| root.completed_at),
            }
        })
        .collect();
    let begin = async { anyhow::Ok(tx.begin("").await?) };
    let (_, inserted) = try_join(begin, runs::insert(client, &rows)).await?;
    let made: Vec<&NewRun> =
        made.iter().map(|(_, new)| *new).filter(|new| inserted.contains(&new.id)).collect();
    let new_nodes: Vec<NewNodes<'_>> = made
        .iter()
        .map(|new| NewNodes {
            run: new.id,
            snapshot: &new.snapshot,
            rev: Default::default(),
            started: new
                .state
                .changed()
                .map(|(idx, st)| (idx, st, new.plan.lease_until(idx)))
                .collect(),
        })
        .collect();
    let sent: Vec<_> = made.iter().map(|new| (new.id, new.plan.sent.as_slice())).collect();
    let history: Vec<_> = made.iter().map(|n| (n.id, n.plan.history.as_slice())).collect();
    let notify = Plan::notify(made.iter().map(|new| &new.plan), client);
    let writes = try_join4(
        nodes::insert_all(client, &new_nodes),
        attempts::insert(client, &sent, now),
        events::insert(client, &history, now),
        notify,
    );
    let (written, ..) = tx.commit_with(&NEW_RUN_WRITES, writes).await?;
    let mut epochs: HashMap<Uuid, Vec<(NodeIdx, i64)>> = HashMap::new();
    for (run, idx, epoch) in written {
        epochs.entry(run).or_default().push((idx, epoch));
    }
    Ok((inserted, epochs))
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
