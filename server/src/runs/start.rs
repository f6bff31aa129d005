//! Starting runs: each run's snapshot, nodes and first dispatches. Starts that come together
//! are committed together, in groups (see [`super::group`]): one transaction, one statement per
//! table, and one read of the step definitions for all of them.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use aetr_engine::machine::{Event, MachineError, NodeState, Nodes, State};
use aetr_engine::{Action, Blocks, DryRun, FieldError, FieldErrors, Snapshot, StepBody, Tree};
use futures_util::future::try_join3;
use tokio::sync::oneshot;
use uuid::Uuid;

use super::apply::Applier;
use super::group::{Groups, Part};
use super::plan::Plan;
use super::{RunError, RunSnapshot, Runs, Shared};
use crate::metrics::METRICS;
use crate::notify::Target;
use crate::store::changes::{self, Epochs};
use crate::store::nodes::Revision;
use crate::store::notify;
use crate::store::runs::{self, RunRow};
use crate::store::time::now_ms;
use crate::store::tx::Tx;

/// `POST /runs/step/{stepId}`'s request.
#[derive(Debug)]
pub struct StartRun {
    pub step_id: Uuid,
    pub input: Option<String>,
    pub idempotency_key: Option<String>,
    /// Where to POST the run's outcome when it ends.
    pub notify: Option<Target>,
    /// The schedule that starts it.
    pub schedule_id: Option<Uuid>,
    /// A dry run: no action calls anything (see [`DryRun`]).
    pub dry: Option<DryRun>,
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
    reply: oneshot::Sender<Result<Started, RunError>>,
}

impl Part for Start {
    type Answer = Result<Started, RunError>;
    type Error = RunError;

    fn events(&self) -> usize {
        1
    }

    fn alone(&self) -> bool {
        false
    }

    fn groups(shared: &Shared) -> &Groups<Start> {
        &shared.starts
    }

    async fn commit(shared: &Arc<Shared>, group: &[Start]) -> Result<Vec<Self::Answer>, RunError> {
        shared.try_starts(group).await
    }

    fn failed(&self, _: &Shared, error: RunError) -> Self::Answer {
        Err(error)
    }

    fn answer(self, _: &Arc<Shared>, answer: Self::Answer) {
        let _ = self.reply.send(answer);
    }
}

impl Runs {
    #[tracing::instrument(level = "debug", skip_all, fields(step = %request.step_id))]
    pub async fn start(&self, request: StartRun) -> Result<Started, RunError> {
        let shared = &self.shared;
        if let Some(key) = &request.idempotency_key {
            let client = shared.pool.get().await?;
            if let Some(found) = earlier(&client, key, request.step_id).await? {
                return Ok(found);
            }
        }
        let (reply, answer) = oneshot::channel();
        shared.starts.commit(shared, Start { request, reply }).await;
        answer.await.unwrap_or_else(|_| Err(RunError::internal("the start was dropped unanswered")))
    }
}

/// A run that a start is to make: its start applied by the engine, before it is written.
struct Prepared {
    id: Uuid,
    snapshot: Snapshot,
    /// The blocks of the Maps that its start started.
    blocks: Blocks,
    state: Nodes,
    plan: Plan,
}

impl Shared {
    /// Starts a group of runs in one transaction; each start's own answer (a step that does
    /// not exist, say) is in the list.
    async fn try_starts(
        self: &Arc<Self>,
        starts: &[Start],
    ) -> Result<Vec<Result<Started, RunError>>, RunError> {
        let requests: Vec<&StartRun> = starts.iter().map(|s| &s.request).collect();
        let tx = Tx::new(self.pool.get().await?);
        let client = tx.client();
        let step_ids: BTreeSet<Uuid> = requests.iter().map(|r| r.step_id).collect();
        let snapshots = self.snapshots_of_steps(client, step_ids).await?;
        let now = now_ms();
        let prepared: Vec<Result<Prepared, RunError>> = requests
            .iter()
            .map(|request| {
                let snapshot = match snapshots.get(&request.step_id).map(Arc::as_ref) {
                    Some(Ok(snapshot)) => snapshot.clone(),
                    Some(Err(e)) => return Err(RunError::Refused(e.clone())),
                    None => return Err(RunError::NoSuchStep(request.step_id)),
                };
                check_input(&snapshot, request.input.as_deref())?;
                let snapshot = with_dry(snapshot, request.dry.as_ref())?;
                self.prepare(snapshot, request.input.clone(), now).map_err(|error| {
                    RunError::internal(format!("a start of step {}: {error}", request.step_id))
                })
            })
            .collect();

        let made: Vec<(&StartRun, &Prepared)> = requests
            .iter()
            .zip(&prepared)
            .filter_map(|(request, prepared)| Some((*request, prepared.as_ref().ok()?)))
            .collect();
        let (inserted, epochs) = match made.is_empty() {
            true => Default::default(),
            false => write_runs(&tx, &made, now).await?,
        };
        // A dry run is not counted as a real one.
        let real = made.iter().filter(|(_, new)| new.snapshot.dry().is_none());
        METRICS
            .runs_started
            .inc_by(real.filter(|(_, new)| inserted.contains(&new.id)).count() as u64);

        let mut answers = Vec::with_capacity(requests.len());
        for (request, prepared) in requests.iter().zip(prepared) {
            let new = match prepared {
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
                        RunError::internal(format!("the run of idempotency key {key:?} vanished"))
                    })
                }));
                continue;
            }
            let Prepared { id, snapshot, blocks, state, plan } = new;
            tracing::info!(run = %id, step = %request.step_id, nodes = snapshot.len(), "run started");
            let snap = Arc::new(RunSnapshot::new(snapshot, now, 0));
            if let Err(e) = snap.add_blocks(blocks.iter()) {
                answers.push(Err(RunError::internal(format!("run {id}: {e}"))));
                continue;
            }
            self.launch_run(id, snap, plan, &state, &epochs);
            answers.push(Ok(Started { id, created: true }));
        }
        Ok(answers)
    }

    /// A new run of `snapshot`: its start applied by the engine, and the work it takes.
    fn prepare(
        &self,
        snapshot: Snapshot,
        input: Option<String>,
        now: i64,
    ) -> Result<Prepared, MachineError> {
        let mut state = Nodes::new();
        state.load(0, NodeState::default());
        let none = Blocks::default();
        let mut applier = Applier::new(self, &snapshot, &none, state, now);
        let outcome = applier.apply(&Event::Start { input }, false, None)?;
        applier.take(&outcome.work)?;
        let (state, plan, blocks) = applier.finish();
        let blocks = blocks.unwrap_or_default();
        Ok(Prepared { id: Uuid::now_v7(), snapshot, blocks, state, plan })
    }
}

/// Checks a run's input against its root step's `inputSchema`, before anything is stored.
fn check_input(snapshot: &Snapshot, input: Option<&str>) -> Result<(), RunError> {
    let Some(schema) = &snapshot.root().input_schema else { return Ok(()) };
    schema.check_field(input, "input").map_err(RunError::BadInput)
}

/// The snapshot of a dry run (`dry`), whose given results must each name an `api` action of
/// the tree; or of a real one.
fn with_dry(snapshot: Snapshot, dry: Option<&DryRun>) -> Result<Snapshot, RunError> {
    let Some(dry) = dry else { return Ok(snapshot) };
    let is_api = |name: &String| {
        snapshot.nodes().iter().any(|n| {
            &n.name == name && matches!(n.body, StepBody::Action { action: Action::Api(_) })
        })
    };
    let unknown = dry.results.keys().filter(|name| !is_api(name)).map(|name| {
        FieldError::refused(
            format!("dryRun.results.{name}"),
            format!("the tree has no api action named {name:?}"),
        )
    });
    match FieldErrors::from_vec(unknown.collect()) {
        Some(errors) => Err(RunError::BadInput(errors)),
        None => Ok(snapshot.with_dry(Some(dry.clone()))),
    }
}

/// Writes new runs in one transaction, in two round trips: its BEGIN with the runs' rows, then
/// their nodes, first attempts and history with its COMMIT (see [`changes::commit`]). Returns
/// the runs inserted (a run whose idempotency key another start took, in this group or
/// committed since the key was looked up, is not: that start's run is the answer), and the
/// lease epochs of their started nodes.
async fn write_runs(
    tx: &Tx,
    made: &[(&StartRun, &Prepared)],
    now: i64,
) -> Result<(HashSet<Uuid>, Epochs), RunError> {
    let rows: Vec<RunRow<'_>> = made
        .iter()
        .map(|(request, new)| {
            let root = new.state.get(0);
            RunRow {
                id: new.id,
                snapshot: &new.snapshot,
                state: root.map_or(State::Pending, NodeState::state),
                idempotency_key: request.idempotency_key.as_deref(),
                created_at: now,
                completed_at: root.and_then(|root| root.completed_at),
                schedule_id: request.schedule_id,
            }
        })
        .collect();
    let targets: Vec<(Uuid, &Target)> =
        made.iter().filter_map(|(request, new)| Some((new.id, request.notify.as_ref()?))).collect();
    let begin = async { anyhow::Ok(tx.begin("").await?) };
    // In this order: the targets of the runs inserted (a run that ends as it starts queues its
    // webhook's message in the COMMIT's round trip).
    let (_, inserted, ()) = try_join3(
        begin,
        runs::insert(tx.client(), &rows),
        notify::insert_targets(tx.client(), &targets),
    )
    .await?;
    let made: Vec<&Prepared> =
        made.iter().map(|(_, new)| *new).filter(|new| inserted.contains(&new.id)).collect();
    let changes: Vec<_> = made
        .iter()
        .map(|new| {
            let tree = Tree::new(&new.snapshot, &new.blocks);
            let nodes = new.plan.all_nodes(new.id, &tree, &new.state, Revision::default());
            // A run that ended as it started (a tree of no-op actions) is inserted in its end
            // state; passed on as a change too, it is counted and traced as an ended run.
            let ended = new
                .plan
                .run_state(new.id, &new.snapshot, &new.state)
                .filter(|s| s.state.is_terminal());
            new.plan.changes(new.id, Vec::new(), Some(nodes), ended)
        })
        .collect();
    let notify = made.iter().any(|new| new.plan.deferred);
    let epochs = changes::commit(tx, &changes, notify, now).await?;
    Ok((inserted, epochs))
}

/// The run that an earlier start with this idempotency key made: 409 if it was of another step.
async fn earlier(
    client: &impl deadpool_postgres::GenericClient,
    key: &str,
    step_id: Uuid,
) -> Result<Option<Started>, RunError> {
    match runs::by_idempotency_key(client, key).await? {
        None => Ok(None),
        Some((id, step)) if step == step_id => Ok(Some(Started { id, created: false })),
        Some((run, step)) => {
            Err(RunError::KeyOfAnotherStep { key: key.to_owned(), run, step, requested: step_id })
        }
    }
}
