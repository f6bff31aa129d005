//! Sending one attempt's POST, and reporting how it went.

use std::sync::Arc;

use aetr_engine::machine::Event;
use aetr_engine::{Action, StepBody};

use super::launch::SendJob;
use super::node_id::node_id;
use super::{Fence, RunSnapshot, Shared};
use crate::dispatch::request::{span_id, Answer, Call};
use crate::metrics::METRICS;
use crate::otel;
use crate::store::nodes::Accepted;

impl Shared {
    /// POSTs an attempt (its node is recorded as `Executing` already) and reports the answer:
    /// an accepted POST releases the node's lease; a sync result or a failure is an event,
    /// fenced on the lease. If nothing can be recorded, the lease runs out and the same
    /// attempt is sent again, by this server or another.
    #[tracing::instrument(level = "debug", skip_all, fields(run = %job.run, node = job.idx, attempt = job.attempt))]
    pub(crate) async fn send(self: Arc<Self>, snap: Arc<RunSnapshot>, job: SendJob) {
        let SendJob { run, idx, attempt, epoch, input, slot } = job;
        let Some(StepBody::Action { action: Action::Api(action) }) =
            snap.step(idx).map(|n| &n.body)
        else {
            tracing::error!(%run, node = idx, "a node that is not an api action was to be sent");
            return;
        };
        let callback_url = self.callback_url(run, idx, attempt);
        let call = Call {
            action,
            input: input.as_deref(),
            callback_url: &callback_url,
            run,
            node_id: node_id(run, idx),
            attempt,
        };
        let started = std::time::Instant::now();
        let answer = self.outbox.post(&call).await;
        drop(slot);
        let status = match &answer {
            Answer::Accepted { status } | Answer::Result { status, .. } => Some(*status),
            Answer::Failed { status, .. } => *status,
        };
        let took = started.elapsed();
        METRICS.post_answered(status, took);
        otel::attempt(run, span_id(call.node_id, attempt), call.node_id, attempt, status, took);
        let fence = Some(Fence { idx, epoch });
        let reported = match answer {
            Answer::Accepted { status } => {
                self.outbox.accepted(Accepted { run, idx, attempt, epoch, http_status: status });
                return;
            }
            Answer::Result { status, body } => {
                let event = Event::Result { node: idx, attempt, result: body };
                self.submit(run, event, fence, Some(status)).await
            }
            Answer::Failed { error, retry, status } => {
                tracing::info!(%run, node = idx, attempt, %error, "a POST failed");
                let event = Event::PostFailed { node: idx, attempt, error, retry };
                self.submit(run, event, fence, status).await
            }
        };
        if let Err(e) = reported {
            tracing::warn!(%run, node = idx, attempt, error = %e,
                "cannot record a POST's outcome; the attempt will be sent again");
        }
    }
}
